//! AWS Signature Version 4 for S3 requests, and the HMAC-SHA256 under it
//! (the `hmac` crate over `sha2`: the workspace's one HMAC, which
//! custody-notify's webhook signatures use too).
//!
//! Proven against the RFC 4231 HMAC vectors and the worked examples of the
//! AWS S3 documentation ("Signature Calculations for the Authorization
//! Header: Transferring Payload in a Single Chunk").

use std::time::SystemTime;

use custody_core::hex;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::time::UtcDateTime;

/// The hex SHA-256 of the empty string, the payload hash of a body-less request.
pub const EMPTY_PAYLOAD_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// An access key pair.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The access key ID (public).
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// The parts of an HTTP request that SigV4 signs.
#[derive(Debug, Clone, Copy)]
pub struct RequestToSign<'a> {
    /// `GET`, `PUT`, ...
    pub method: &'a str,
    /// The path exactly as sent, already URI-encoded (see [`uri_encode`]).
    pub canonical_uri: &'a str,
    /// Query parameters, not encoded; they are encoded and sorted here. A
    /// valueless parameter (`?lifecycle`) has an empty value.
    pub query: &'a [(&'a str, &'a str)],
    /// The headers to sign, `host` and `x-amz-date` and `x-amz-content-sha256`
    /// included; names in any case.
    pub headers: &'a [(&'a str, &'a str)],
    /// The hex SHA-256 of the body (or [`EMPTY_PAYLOAD_SHA256`]).
    pub payload_sha256_hex: &'a str,
}

/// Where and when a request is signed.
#[derive(Debug, Clone, Copy)]
pub struct SigningScope<'a> {
    /// `YYYYMMDDTHHMMSSZ`, the value of the `x-amz-date` header.
    pub amz_date: &'a str,
    /// The region, such as `us-east-1`.
    pub region: &'a str,
    /// The service, `s3` here.
    pub service: &'a str,
}

/// HMAC-SHA256 of `message` under `key` (RFC 2104).
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of every length (long keys are hashed, short ones
    // padded), so `new_from_slice` cannot fail for it.
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// URI-encodes `input` the way SigV4 wants: every byte except the unreserved
/// `A-Z a-z 0-9 - _ . ~` becomes `%XX` (upper-case hex); `/` is kept when
/// `encode_slash` is false (object key paths) and encoded otherwise (query
/// values).
pub fn uri_encode(input: &str, encode_slash: bool) -> String {
    let mut encoded = String::with_capacity(input.len());
    for &byte in input.as_bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                encoded.push(char::from(byte))
            }
            b'/' if !encode_slash => encoded.push('/'),
            _ => encoded.push_str(&format!("%{byte:02X}")),
        }
    }
    encoded
}

/// The canonical query string: each name and value URI-encoded, sorted by
/// name then value, joined with `&`.
pub fn canonical_query_string(query: &[(&str, &str)]) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(name, value)| (uri_encode(name, true), uri_encode(value, true)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The canonical request and the `SignedHeaders` list.
fn canonical_request(request: &RequestToSign<'_>) -> (String, String) {
    let mut headers: Vec<(String, String)> = request
        .headers
        .iter()
        .map(|(name, value)| {
            (
                name.to_ascii_lowercase(),
                value.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .collect();
    headers.sort_by(|left, right| left.0.cmp(&right.0));
    // Repeated headers are signed once, their values joined with commas.
    let mut merged: Vec<(String, String)> = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        match merged.last_mut() {
            Some((last_name, last_value)) if *last_name == name => {
                last_value.push(',');
                last_value.push_str(&value);
            }
            _ => merged.push((name, value)),
        }
    }
    let canonical_headers: String = merged
        .iter()
        .map(|(name, value)| format!("{name}:{value}\n"))
        .collect();
    let signed_headers = merged
        .iter()
        .map(|(name, _)| name.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        request.method,
        request.canonical_uri,
        canonical_query_string(request.query),
        canonical_headers,
        signed_headers,
        request.payload_sha256_hex
    );
    (canonical, signed_headers)
}

/// The string to sign for a canonical request.
fn string_to_sign(scope: &SigningScope<'_>, canonical_request: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256\n{}\n{}\n{}",
        scope.amz_date,
        credential_scope(scope),
        hex::encode(&Sha256::digest(canonical_request.as_bytes()))
    )
}

/// The signing key derived from the secret for one day, region and service.
fn signing_key(secret_access_key: &str, scope: &SigningScope<'_>) -> [u8; 32] {
    let date = scope.amz_date.get(..8).unwrap_or(scope.amz_date);
    let date_key = hmac_sha256(
        format!("AWS4{secret_access_key}").as_bytes(),
        date.as_bytes(),
    );
    let region_key = hmac_sha256(&date_key, scope.region.as_bytes());
    let service_key = hmac_sha256(&region_key, scope.service.as_bytes());
    hmac_sha256(&service_key, b"aws4_request")
}

/// The value of the `Authorization` header for `request`.
pub fn authorization(
    credentials: &Credentials,
    scope: &SigningScope<'_>,
    request: &RequestToSign<'_>,
) -> String {
    let (canonical, signed_headers) = canonical_request(request);
    let to_sign = string_to_sign(scope, &canonical);
    let signature = hmac_sha256(
        &signing_key(&credentials.secret_access_key, scope),
        to_sign.as_bytes(),
    );
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{},SignedHeaders={},Signature={}",
        credentials.access_key_id,
        credential_scope(scope),
        signed_headers,
        hex::encode(&signature)
    )
}

/// `time` as `YYYYMMDDTHHMMSSZ`, the `x-amz-date` form.
pub fn amz_date(time: SystemTime) -> String {
    UtcDateTime::from_system_time(time).amz_date()
}

fn credential_scope(scope: &SigningScope<'_>) -> String {
    let date = scope.amz_date.get(..8).unwrap_or(scope.amz_date);
    format!("{date}/{}/{}/aws4_request", scope.region, scope.service)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231 section 4, test cases 1, 2, 3, 4, 6 and 7 (case 5 is a
    /// truncated output, which SigV4 does not use).
    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        let cases: Vec<(Vec<u8>, Vec<u8>, &str)> = vec![
            (
                vec![0x0b; 20],
                b"Hi There".to_vec(),
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                b"Jefe".to_vec(),
                b"what do ya want for nothing?".to_vec(),
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                vec![0xaa; 20],
                vec![0xdd; 50],
                "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
            ),
            (
                hex::decode("0102030405060708090a0b0c0d0e0f10111213141516171819").unwrap(),
                vec![0xcd; 50],
                "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
            ),
            (
                vec![0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(),
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
            (
                vec![0xaa; 131],
                b"This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.".to_vec(),
                "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
            ),
        ];
        for (index, (key, data, expected)) in cases.iter().enumerate() {
            assert_eq!(
                hex::encode(&hmac_sha256(key, data)),
                *expected,
                "RFC 4231 case {index}"
            );
        }
    }

    const ACCESS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
    const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const HOST: &str = "examplebucket.s3.amazonaws.com";
    const DATE: &str = "20130524T000000Z";

    fn example_credentials() -> Credentials {
        Credentials {
            access_key_id: ACCESS_KEY.into(),
            secret_access_key: SECRET_KEY.into(),
        }
    }

    fn example_scope() -> SigningScope<'static> {
        SigningScope {
            amz_date: DATE,
            region: "us-east-1",
            service: "s3",
        }
    }

    fn signature_of(authorization: &str) -> &str {
        authorization.rsplit("Signature=").next().unwrap()
    }

    /// AWS S3 documentation, "Example: GET Object".
    #[test]
    fn aws_example_get_object() {
        let request = RequestToSign {
            method: "GET",
            canonical_uri: "/test.txt",
            query: &[],
            headers: &[
                ("Host", HOST),
                ("Range", "bytes=0-9 "),
                ("x-amz-content-sha256", EMPTY_PAYLOAD_SHA256),
                ("x-amz-date", DATE),
            ],
            payload_sha256_hex: EMPTY_PAYLOAD_SHA256,
        };
        let (canonical, signed_headers) = canonical_request(&request);
        assert_eq!(
            canonical,
            format!(
                "GET\n/test.txt\n\nhost:{HOST}\nrange:bytes=0-9\nx-amz-content-sha256:{EMPTY_PAYLOAD_SHA256}\nx-amz-date:{DATE}\n\nhost;range;x-amz-content-sha256;x-amz-date\n{EMPTY_PAYLOAD_SHA256}"
            )
        );
        assert_eq!(signed_headers, "host;range;x-amz-content-sha256;x-amz-date");
        assert_eq!(
            string_to_sign(&example_scope(), &canonical),
            "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"
        );
        let header = authorization(&example_credentials(), &example_scope(), &request);
        assert_eq!(
            header,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    /// AWS S3 documentation, "Example: PUT Object" (a key that needs encoding
    /// and a real payload hash).
    #[test]
    fn aws_example_put_object() {
        let payload_hash = hex::encode(&Sha256::digest(b"Welcome to Amazon S3."));
        assert_eq!(
            payload_hash,
            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"
        );
        let path = format!("/{}", uri_encode("test$file.text", false));
        assert_eq!(path, "/test%24file.text");
        let request = RequestToSign {
            method: "PUT",
            canonical_uri: &path,
            query: &[],
            headers: &[
                ("Date", "Fri, 24 May 2013 00:00:00 GMT"),
                ("Host", HOST),
                ("x-amz-content-sha256", &payload_hash),
                ("x-amz-date", DATE),
                ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
            ],
            payload_sha256_hex: &payload_hash,
        };
        let header = authorization(&example_credentials(), &example_scope(), &request);
        assert_eq!(
            signature_of(&header),
            "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
        );
        assert!(header.contains(
            "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,"
        ));
    }

    /// AWS S3 documentation, "Example: GET Bucket Lifecycle" (a valueless
    /// query parameter) and "Example: Get Bucket (List Objects)" (query
    /// parameters that must be sorted).
    #[test]
    fn aws_examples_with_query_strings() {
        let headers = [
            ("host", HOST),
            ("x-amz-content-sha256", EMPTY_PAYLOAD_SHA256),
            ("x-amz-date", DATE),
        ];
        let cases: [(&[(&str, &str)], &str); 2] = [
            (
                &[("lifecycle", "")],
                "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
            ),
            (
                &[("prefix", "J"), ("max-keys", "2")],
                "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
            ),
        ];
        for (query, expected) in cases {
            let request = RequestToSign {
                method: "GET",
                canonical_uri: "/",
                query,
                headers: &headers,
                payload_sha256_hex: EMPTY_PAYLOAD_SHA256,
            };
            let header = authorization(&example_credentials(), &example_scope(), &request);
            assert_eq!(signature_of(&header), expected, "{query:?}");
        }
    }

    #[test]
    fn a_changed_payload_hash_changes_the_signature() {
        let request = |payload| RequestToSign {
            method: "PUT",
            canonical_uri: "/bucket/key",
            query: &[],
            headers: &[("host", "s3.example"), ("x-amz-date", DATE)],
            payload_sha256_hex: payload,
        };
        let first = authorization(
            &example_credentials(),
            &example_scope(),
            &request(EMPTY_PAYLOAD_SHA256),
        );
        let second = authorization(
            &example_credentials(),
            &example_scope(),
            &request("44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"),
        );
        assert_ne!(signature_of(&first), signature_of(&second));
    }

    #[test]
    fn uri_encoding_follows_the_sigv4_rules() {
        assert_eq!(uri_encode("a-b_c.d~e", true), "a-b_c.d~e");
        assert_eq!(uri_encode("a b/c+d=\u{e9}", true), "a%20b%2Fc%2Bd%3D%C3%A9");
        assert_eq!(
            uri_encode("prefix/sha256/ab/cd", false),
            "prefix/sha256/ab/cd"
        );
        assert_eq!(uri_encode("!'()*", false), "%21%27%28%29%2A");
        assert_eq!(
            canonical_query_string(&[("continuation-token", "a/b+c=="), ("list-type", "2")]),
            "continuation-token=a%2Fb%2Bc%3D%3D&list-type=2"
        );
    }

    #[test]
    fn credentials_debug_hides_the_secret() {
        let text = format!("{:?}", example_credentials());
        assert!(!text.contains(SECRET_KEY), "{text}");
        assert!(text.contains(ACCESS_KEY), "{text}");
    }
}
