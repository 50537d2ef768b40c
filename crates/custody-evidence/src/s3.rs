//! The S3-compatible blob store, signed with our own SigV4 (no AWS SDK).

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use futures_util::TryStreamExt;
use reqwest::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, HOST};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use tokio::io::AsyncRead;
use tokio_util::io::{ReaderStream, StreamReader};
use url::Url;

use crate::blob::{
    copy_hashing, hash_reader, BlobError, BlobFuture, BlobReader, BlobStore, StoredBlob,
    TemporaryFile, VerifyOutcome, COPY_BUFFER_SIZE,
};
use crate::digest::Sha256Digest;
use crate::sigv4::{self, Credentials, RequestToSign, SigningScope, EMPTY_PAYLOAD_SHA256};

/// The largest object a single S3 `PUT` may carry (5 GiB). This store does
/// not use multipart uploads, so it refuses larger blobs with
/// [`BlobError::TooLarge`]; evidence files are far smaller.
pub const MAX_SINGLE_PUT_SIZE: u64 = 5 * 1024 * 1024 * 1024;

/// Settings of an S3-compatible object store (AWS S3, MinIO, Ceph RGW,
/// Garage, R2, ...).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// The service endpoint, such as `https://s3.eu-west-1.amazonaws.com` or
    /// `http://127.0.0.1:9000`; no path, query or credentials.
    pub endpoint: String,
    /// The bucket name (3 to 63 characters: `a-z`, `0-9`, `.` and `-`).
    pub bucket: String,
    /// The region the requests are signed for, such as `us-east-1`.
    pub region: String,
    /// The access key ID.
    pub access_key_id: String,
    /// The secret access key (never printed by `Debug`).
    pub secret_access_key: String,
    /// A key prefix, such as `prod/` (letters, digits, `-`, `_`, `.`, `/`); a
    /// missing trailing `/` is added.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`), which every
    /// S3-compatible server supports; `false` uses virtual-hosted style
    /// (`bucket.endpoint/key`). Default `true`.
    #[serde(default = "default_path_style")]
    pub path_style: bool,
    /// Where uploads are staged while they are hashed, before they are sent;
    /// the system temporary directory when absent. It needs room for the
    /// largest blob being uploaded at once.
    #[serde(default)]
    pub staging_directory: Option<PathBuf>,
}

fn default_path_style() -> bool {
    true
}

impl fmt::Debug for S3Config {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("prefix", &self.prefix)
            .field("path_style", &self.path_style)
            .field("staging_directory", &self.staging_directory)
            .finish()
    }
}

impl S3Config {
    /// Checks every setting without touching the network.
    pub fn validate(&self) -> Result<(), BlobError> {
        self.parsed_endpoint()?;
        let bucket = &self.bucket;
        let bucket_is_valid = (3..=63).contains(&bucket.len())
            && bucket.bytes().all(|byte| {
                byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'.' || byte == b'-'
            })
            && bucket.starts_with(|character: char| character.is_ascii_alphanumeric())
            && bucket.ends_with(|character: char| character.is_ascii_alphanumeric());
        if !bucket_is_valid {
            return Err(invalid(
                "bucket",
                format!("`{bucket}` is not a bucket name; use 3 to 63 characters of a-z, 0-9, `.` and `-`, starting and ending with a letter or digit"),
            ));
        }
        if self.region.is_empty()
            || !self
                .region
                .bytes()
                .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
        {
            return Err(invalid(
                "region",
                format!("`{}` is not a region name; write one such as `us-east-1` (S3-compatible servers usually accept `us-east-1`)", self.region),
            ));
        }
        if self.access_key_id.trim().is_empty() {
            return Err(invalid(
                "access_key_id",
                "it is empty; set the access key ID".into(),
            ));
        }
        if self.secret_access_key.is_empty() {
            return Err(invalid(
                "secret_access_key",
                "it is empty; set the secret access key".into(),
            ));
        }
        if let Some(prefix) = &self.prefix {
            let prefix_is_valid = prefix.len() <= 512
                && !prefix.starts_with('/')
                && !prefix
                    .split('/')
                    .any(|segment| segment == ".." || segment == ".")
                && prefix.bytes().all(|byte| {
                    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'/')
                });
            if !prefix_is_valid {
                return Err(invalid(
                    "prefix",
                    format!("`{prefix}` is not a usable key prefix; use letters, digits, `-`, `_`, `.` and `/`, without a leading `/` or `..` segments"),
                ));
            }
        }
        Ok(())
    }

    fn parsed_endpoint(&self) -> Result<Url, BlobError> {
        let endpoint = Url::parse(&self.endpoint)
            .map_err(|error| invalid("endpoint", format!("`{}` is not a URL ({error}); write one such as `https://s3.eu-west-1.amazonaws.com`", self.endpoint)))?;
        if !matches!(endpoint.scheme(), "http" | "https") {
            return Err(invalid(
                "endpoint",
                format!(
                    "`{}` must start with https:// (or http:// for a local test server)",
                    self.endpoint
                ),
            ));
        }
        if !endpoint.username().is_empty() || endpoint.password().is_some() {
            return Err(invalid(
                "endpoint",
                "it must not contain credentials; use access_key_id and secret_access_key".into(),
            ));
        }
        if endpoint.host_str().is_none()
            || endpoint.query().is_some()
            || endpoint.fragment().is_some()
            || endpoint.path() != "/"
        {
            return Err(invalid(
                "endpoint",
                format!("`{}` must be only a scheme, host and optional port; put the bucket in `bucket` and any folder in `prefix`", self.endpoint),
            ));
        }
        if !self.path_style && !matches!(endpoint.host(), Some(url::Host::Domain(_))) {
            return Err(invalid(
                "path_style",
                format!("virtual-hosted addressing needs a host name, and `{}` is an IP address; set path_style = true", self.endpoint),
            ));
        }
        Ok(endpoint)
    }

    /// The prefix as used in keys: empty, or ending with `/`.
    fn normalized_prefix(&self) -> String {
        match self.prefix.as_deref() {
            None | Some("") => String::new(),
            Some(prefix) if prefix.ends_with('/') => prefix.to_string(),
            Some(prefix) => format!("{prefix}/"),
        }
    }
}

/// Blobs as objects in an S3 bucket, under
/// `<prefix>sha256/<first two hex digits>/<64 hex digits>` (the local layout).
///
/// An upload is first streamed to a staging file while it is hashed and
/// counted, so the size limit is enforced before any byte reaches S3 and the
/// object key can be the hash. Then a `HEAD` checks whether the object already
/// exists (and is skipped if so) and a single `PUT` sends the file, signed
/// with its real SHA-256 in `x-amz-content-sha256`, which S3 checks against
/// the received bytes. Objects are limited to [`MAX_SINGLE_PUT_SIZE`].
pub struct S3BlobStore {
    config: S3Config,
    endpoint: Url,
    prefix: String,
    credentials: Credentials,
    client: reqwest::Client,
    staging_directory: PathBuf,
    list_page_size: u32,
}

impl fmt::Debug for S3BlobStore {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("S3BlobStore")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// One addressed S3 request target.
struct Target {
    url: Url,
    host: String,
    canonical_uri: String,
}

impl S3BlobStore {
    /// A store for `config`, after [`S3Config::validate`]. Makes no request.
    pub fn new(config: S3Config) -> Result<Self, BlobError> {
        config.validate()?;
        let endpoint = config.parsed_endpoint()?;
        crate::install_crypto_provider();
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|source| BlobError::S3Request {
                operation: "client setup",
                key: config.bucket.clone(),
                source,
            })?;
        Ok(Self {
            prefix: config.normalized_prefix(),
            credentials: Credentials {
                access_key_id: config.access_key_id.clone(),
                secret_access_key: config.secret_access_key.clone(),
            },
            staging_directory: config
                .staging_directory
                .clone()
                .unwrap_or_else(std::env::temp_dir),
            endpoint,
            client,
            config,
            list_page_size: 1000,
        })
    }

    /// Sets how many keys each `ListObjectsV2` request of
    /// [`list`](BlobStore::list) asks for: 1 to 1000 (the S3 maximum and the
    /// default). Smaller pages mean more requests; this exists mostly to
    /// exercise pagination.
    pub fn with_list_page_size(mut self, keys: u32) -> Self {
        self.list_page_size = keys.clamp(1, 1000);
        self
    }

    /// The object key of the blob with this digest.
    pub fn object_key(&self, sha256: &Sha256Digest) -> String {
        let hex = sha256.to_hex();
        format!("{}sha256/{}/{}", self.prefix, &hex[..2], hex)
    }

    /// Creates the bucket if it does not exist yet (for setup scripts and
    /// tests; production buckets are usually made by the operator).
    pub async fn create_bucket(&self) -> Result<(), BlobError> {
        let body = if self.config.region == "us-east-1" {
            String::new()
        } else {
            format!(
                "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><LocationConstraint>{}</LocationConstraint></CreateBucketConfiguration>",
                self.config.region
            )
        };
        let payload_hash = Sha256Digest::of(body.as_bytes()).to_hex();
        let length = body.len() as u64;
        let response = self
            .send(
                Method::PUT,
                "CreateBucket",
                None,
                &[],
                &payload_hash,
                Some((reqwest::Body::from(body), length)),
                None,
            )
            .await?;
        match response.status() {
            status if status.is_success() => Ok(()),
            _ => {
                let error =
                    status_error("CreateBucket", self.config.bucket.clone(), response).await;
                match &error {
                    BlobError::S3Status { code, .. } if code == "BucketAlreadyOwnedByYou" => Ok(()),
                    _ => Err(error),
                }
            }
        }
    }

    fn target(&self, key: Option<&str>, query: &[(&str, &str)]) -> Result<Target, BlobError> {
        // Safe: validate() made sure the endpoint has a host.
        let endpoint_host = self.endpoint.host_str().unwrap_or_default();
        let authority = match self.endpoint.port() {
            Some(port) => format!("{endpoint_host}:{port}"),
            None => endpoint_host.to_string(),
        };
        let encoded_key = key.map(|key| sigv4::uri_encode(key, false));
        let (host, canonical_uri) = if self.config.path_style {
            let path = match &encoded_key {
                Some(key) => format!("/{}/{key}", self.config.bucket),
                None => format!("/{}", self.config.bucket),
            };
            (authority, path)
        } else {
            (
                format!("{}.{authority}", self.config.bucket),
                format!("/{}", encoded_key.unwrap_or_default()),
            )
        };
        let query_string = sigv4::canonical_query_string(query);
        let text = if query_string.is_empty() {
            format!("{}://{host}{canonical_uri}", self.endpoint.scheme())
        } else {
            format!(
                "{}://{host}{canonical_uri}?{query_string}",
                self.endpoint.scheme()
            )
        };
        let url = Url::parse(&text).map_err(|error| {
            invalid(
                "endpoint",
                format!("the request URL `{text}` is not valid: {error}"),
            )
        })?;
        Ok(Target {
            url,
            host,
            canonical_uri,
        })
    }

    /// Signs and sends one request.
    #[allow(clippy::too_many_arguments)]
    async fn send(
        &self,
        method: Method,
        operation: &'static str,
        key: Option<&str>,
        query: &[(&str, &str)],
        payload_sha256_hex: &str,
        body: Option<(reqwest::Body, u64)>,
        content_type: Option<&str>,
    ) -> Result<reqwest::Response, BlobError> {
        let target = self.target(key, query)?;
        let amz_date = sigv4::amz_date(SystemTime::now());
        let signed_headers = [
            ("host", target.host.as_str()),
            ("x-amz-content-sha256", payload_sha256_hex),
            ("x-amz-date", amz_date.as_str()),
        ];
        let authorization = sigv4::authorization(
            &self.credentials,
            &SigningScope {
                amz_date: &amz_date,
                region: &self.config.region,
                service: "s3",
            },
            &RequestToSign {
                method: method.as_str(),
                canonical_uri: &target.canonical_uri,
                query,
                headers: &signed_headers,
                payload_sha256_hex,
            },
        );
        let key_for_errors = key.unwrap_or(&self.config.bucket).to_string();
        let header_error = |_| {
            BlobError::InvalidConfig {
            field: "endpoint",
            problem: format!("a request header for `{key_for_errors}` is not valid; check the endpoint and credentials for unusual characters"),
        }
        };
        let mut request = self
            .client
            .request(method, target.url)
            .header(
                HOST,
                HeaderValue::from_str(&target.host).map_err(header_error)?,
            )
            .header("x-amz-content-sha256", payload_sha256_hex)
            .header("x-amz-date", amz_date.as_str())
            .header(
                "authorization",
                HeaderValue::from_str(&authorization).map_err(header_error)?,
            );
        if let Some(content_type) = content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        if let Some((body, length)) = body {
            request = request.header(CONTENT_LENGTH, length).body(body);
        }
        request.send().await.map_err(|source| BlobError::S3Request {
            operation,
            key: key_for_errors.clone(),
            source,
        })
    }

    /// The stored object's length, or `None` if it does not exist.
    async fn head(&self, key: &str) -> Result<Option<u64>, BlobError> {
        let response = self
            .send(
                Method::HEAD,
                "HEAD",
                Some(key),
                &[],
                EMPTY_PAYLOAD_SHA256,
                None,
                None,
            )
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            status if status.is_success() => Ok(Some(
                response
                    .headers()
                    .get(CONTENT_LENGTH)
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| value.parse().ok())
                    .unwrap_or(0),
            )),
            _ => Err(status_error("HEAD", key.to_string(), response).await),
        }
    }

    /// Starts a GET of the object; `None` if it does not exist.
    async fn get_object(&self, key: &str) -> Result<Option<reqwest::Response>, BlobError> {
        let response = self
            .send(
                Method::GET,
                "GET",
                Some(key),
                &[],
                EMPTY_PAYLOAD_SHA256,
                None,
                None,
            )
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            status if status.is_success() => Ok(Some(response)),
            _ => Err(status_error("GET", key.to_string(), response).await),
        }
    }

    async fn put_impl(
        &self,
        reader: &mut (dyn AsyncRead + Unpin + Send),
        limit: u64,
    ) -> Result<StoredBlob, BlobError> {
        tokio::fs::create_dir_all(&self.staging_directory)
            .await
            .map_err(|source| BlobError::Io {
                action: "create the S3 staging directory",
                path: self.staging_directory.clone(),
                source,
            })?;
        let (temporary, mut file) = TemporaryFile::create_in(&self.staging_directory).await?;
        let copied = copy_hashing(
            reader,
            &mut file,
            temporary.path(),
            limit.min(MAX_SINGLE_PUT_SIZE),
        )
        .await?;
        drop(file);
        let key = self.object_key(&copied.sha256);
        let mut stored = StoredBlob {
            sha256: copied.sha256,
            size: copied.size,
            already_present: false,
            sniffed_media_type: copied.sniffed_media_type.to_string(),
        };
        match self.head(&key).await? {
            Some(existing_size) if existing_size == copied.size => {
                stored.already_present = true;
                return Ok(stored);
            }
            Some(existing_size) => tracing::warn!(
                key,
                existing_size,
                expected_size = copied.size,
                "replacing a damaged evidence object with a fresh upload of the same content"
            ),
            None => {}
        }
        let staged = tokio::fs::File::open(temporary.path())
            .await
            .map_err(|source| BlobError::Io {
                action: "reopen the staged upload",
                path: temporary.path().to_path_buf(),
                source,
            })?;
        let body =
            reqwest::Body::wrap_stream(ReaderStream::with_capacity(staged, COPY_BUFFER_SIZE));
        let response = self
            .send(
                Method::PUT,
                "PUT",
                Some(&key),
                &[],
                &copied.sha256.to_hex(),
                Some((body, copied.size)),
                Some(copied.sniffed_media_type),
            )
            .await?;
        if !response.status().is_success() {
            return Err(status_error("PUT", key, response).await);
        }
        // The staged file is removed when `temporary` drops.
        Ok(stored)
    }

    async fn get_impl(&self, sha256: &Sha256Digest) -> Result<BlobReader, BlobError> {
        let key = self.object_key(sha256);
        let response = self
            .get_object(&key)
            .await?
            .ok_or(BlobError::NotFound { sha256: *sha256 })?;
        let stream = response.bytes_stream().map_err(io::Error::other);
        Ok(Box::pin(StreamReader::new(stream)))
    }

    async fn list_impl(&self) -> Result<Vec<Sha256Digest>, BlobError> {
        let list_prefix = format!("{}sha256/", self.prefix);
        let mut digests = Vec::new();
        let mut continuation: Option<String> = None;
        let page_size = self.list_page_size.to_string();
        loop {
            let mut query = vec![
                ("list-type", "2"),
                ("max-keys", page_size.as_str()),
                ("prefix", list_prefix.as_str()),
            ];
            if let Some(token) = &continuation {
                query.push(("continuation-token", token.as_str()));
            }
            let response = self
                .send(
                    Method::GET,
                    "ListObjectsV2",
                    None,
                    &query,
                    EMPTY_PAYLOAD_SHA256,
                    None,
                    None,
                )
                .await?;
            if !response.status().is_success() {
                return Err(status_error("ListObjectsV2", list_prefix, response).await);
            }
            let body = response
                .text()
                .await
                .map_err(|source| BlobError::S3Request {
                    operation: "ListObjectsV2",
                    key: list_prefix.clone(),
                    source,
                })?;
            for key in xml_values(&body, "Key") {
                // Only keys of this store's exact layout are blobs.
                let Some(rest) = key.strip_prefix(&list_prefix) else {
                    continue;
                };
                let Some((shard, name)) = rest.split_once('/') else {
                    continue;
                };
                if let Ok(digest) = name.parse::<Sha256Digest>() {
                    if digest.to_hex().starts_with(shard) && shard.len() == 2 {
                        digests.push(digest);
                    }
                }
            }
            let truncated = xml_values(&body, "IsTruncated")
                .first()
                .is_some_and(|value| value == "true");
            continuation = xml_values(&body, "NextContinuationToken")
                .into_iter()
                .next();
            if !truncated || continuation.is_none() {
                break;
            }
        }
        digests.sort();
        digests.dedup();
        Ok(digests)
    }

    async fn verify_impl(&self, sha256: &Sha256Digest) -> Result<VerifyOutcome, BlobError> {
        let key = self.object_key(sha256);
        let Some(response) = self.get_object(&key).await? else {
            return Ok(VerifyOutcome::Missing);
        };
        let mut reader = StreamReader::new(response.bytes_stream().map_err(io::Error::other));
        let (actual, size) = hash_reader(&mut reader)
            .await
            .map_err(|source| BlobError::Read { source })?;
        Ok(if actual == *sha256 {
            VerifyOutcome::Intact { size }
        } else {
            VerifyOutcome::Corrupt {
                actual_sha256: actual,
                actual_size: size,
            }
        })
    }

    async fn delete_impl(&self, sha256: &Sha256Digest) -> Result<bool, BlobError> {
        let key = self.object_key(sha256);
        if self.head(&key).await?.is_none() {
            return Ok(false);
        }
        let response = self
            .send(
                Method::DELETE,
                "DELETE",
                Some(&key),
                &[],
                EMPTY_PAYLOAD_SHA256,
                None,
                None,
            )
            .await?;
        if !response.status().is_success() {
            return Err(status_error("DELETE", key, response).await);
        }
        Ok(true)
    }
}

impl BlobStore for S3BlobStore {
    fn put_stream<'a>(
        &'a self,
        reader: &'a mut (dyn AsyncRead + Unpin + Send),
        limit: u64,
    ) -> BlobFuture<'a, StoredBlob> {
        Box::pin(self.put_impl(reader, limit))
    }

    fn get<'a>(&'a self, sha256: &'a Sha256Digest) -> BlobFuture<'a, BlobReader> {
        Box::pin(self.get_impl(sha256))
    }

    fn exists<'a>(&'a self, sha256: &'a Sha256Digest) -> BlobFuture<'a, bool> {
        Box::pin(async move { Ok(self.head(&self.object_key(sha256)).await?.is_some()) })
    }

    fn list(&self) -> BlobFuture<'_, Vec<Sha256Digest>> {
        Box::pin(self.list_impl())
    }

    fn verify<'a>(&'a self, sha256: &'a Sha256Digest) -> BlobFuture<'a, VerifyOutcome> {
        Box::pin(self.verify_impl(sha256))
    }

    fn delete<'a>(&'a self, sha256: &'a Sha256Digest) -> BlobFuture<'a, bool> {
        Box::pin(self.delete_impl(sha256))
    }
}

/// One page of a listing by key ([`S3BlobStore::list_keys_after`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyPage {
    /// The keys, in S3's order (UTF-8 binary, that is lexicographic).
    pub keys: Vec<String>,
    /// Whether more keys follow the last one.
    pub truncated: bool,
}

/// Objects by their own keys, outside the blob layout: for readers of
/// other objects in a bucket (CloudTrail's log files). `prefix` and keys
/// are whole keys; the store's own `prefix` does not apply.
impl S3BlobStore {
    /// Up to `max_keys` (1 to 1000) keys under `prefix` that sort after
    /// `start_after` (`ListObjectsV2` with `start-after`).
    pub async fn list_keys_after(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        max_keys: u32,
    ) -> Result<KeyPage, BlobError> {
        let page_size = max_keys.clamp(1, 1000).to_string();
        let mut query = vec![("list-type", "2"), ("max-keys", page_size.as_str())];
        if !prefix.is_empty() {
            query.push(("prefix", prefix));
        }
        if let Some(start) = start_after {
            query.push(("start-after", start));
        }
        let response = self
            .send(
                Method::GET,
                "ListObjectsV2",
                None,
                &query,
                EMPTY_PAYLOAD_SHA256,
                None,
                None,
            )
            .await?;
        if !response.status().is_success() {
            return Err(status_error("ListObjectsV2", prefix.to_string(), response).await);
        }
        let body = response
            .text()
            .await
            .map_err(|source| BlobError::S3Request {
                operation: "ListObjectsV2",
                key: prefix.to_string(),
                source,
            })?;
        Ok(KeyPage {
            keys: xml_values(&body, "Key"),
            truncated: xml_values(&body, "IsTruncated")
                .first()
                .is_some_and(|value| value == "true"),
        })
    }

    /// The whole object under `key`, or `None` if there is none; refused
    /// past `limit` bytes (read no further).
    pub async fn get_object_bytes(
        &self,
        key: &str,
        limit: u64,
    ) -> Result<Option<Vec<u8>>, BlobError> {
        let Some(response) = self.get_object(key).await? else {
            return Ok(None);
        };
        if response
            .content_length()
            .is_some_and(|length| length > limit)
        {
            return Err(BlobError::ObjectTooLarge {
                key: key.to_string(),
                limit,
            });
        }
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream
            .try_next()
            .await
            .map_err(|source| BlobError::S3Request {
                operation: "GET",
                key: key.to_string(),
                source,
            })?
        {
            if (body.len() + chunk.len()) as u64 > limit {
                return Err(BlobError::ObjectTooLarge {
                    key: key.to_string(),
                    limit,
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Some(body))
    }

    /// Stores `bytes` under `key` (for setup scripts, tests and the
    /// benchmarks' generated trails).
    pub async fn put_object_bytes(&self, key: &str, bytes: Vec<u8>) -> Result<(), BlobError> {
        let payload_hash = Sha256Digest::of(&bytes).to_hex();
        let length = bytes.len() as u64;
        let response = self
            .send(
                Method::PUT,
                "PUT",
                Some(key),
                &[],
                &payload_hash,
                Some((reqwest::Body::from(bytes), length)),
                None,
            )
            .await?;
        if !response.status().is_success() {
            return Err(status_error("PUT", key.to_string(), response).await);
        }
        Ok(())
    }
}

fn invalid(field: &'static str, problem: String) -> BlobError {
    BlobError::InvalidConfig { field, problem }
}

/// Turns an unexpected S3 answer into [`BlobError::S3Status`], with the error
/// code and message from its XML body.
async fn status_error(
    operation: &'static str,
    key: String,
    response: reqwest::Response,
) -> BlobError {
    let status_code = response.status();
    let status = status_code.as_u16();
    // The error document is small; cap what is read in case it is not.
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Ok(Some(chunk)) = stream.try_next().await {
        body.extend_from_slice(&chunk);
        if body.len() > 16 * 1024 {
            break;
        }
    }
    let text = String::from_utf8_lossy(&body);
    // A HEAD answer has no body, so no error document: fall back to the
    // status's reason phrase.
    let code = xml_values(&text, "Code")
        .into_iter()
        .next()
        .unwrap_or_else(|| {
            status_code
                .canonical_reason()
                .unwrap_or("error")
                .replace(' ', "")
        });
    let message = xml_values(&text, "Message")
        .into_iter()
        .next()
        .unwrap_or_else(|| "the answer carried no error document".into());
    let hint = match (status, code.as_str()) {
        (_, "NoSuchBucket") => "create the bucket or correct `bucket`",
        (_, "SignatureDoesNotMatch" | "InvalidAccessKeyId") => "check access_key_id, secret_access_key and region",
        (_, "XAmzContentSHA256Mismatch" | "BadDigest") => "the bytes were changed on the way; retry the upload",
        (301 | 307, _) => "the bucket is in another region or needs another endpoint; correct `region` and `endpoint`",
        (403, _) => "check the credentials and that they may use this bucket",
        _ => "check the object store's logs",
    };
    BlobError::S3Status {
        operation,
        key,
        status,
        code,
        message,
        hint,
    }
}

/// The text of every `<tag>...</tag>` element in `xml`, entities decoded. S3
/// answers are flat enough that this is all the XML this crate needs.
fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut values = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after_open = &rest[start + open.len()..];
        let Some(end) = after_open.find(&close) else {
            break;
        };
        values.push(
            after_open[..end]
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&"),
        );
        rest = &after_open[end + close.len()..];
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> S3Config {
        S3Config {
            endpoint: "https://s3.eu-west-1.amazonaws.com".into(),
            bucket: "custody-evidence".into(),
            region: "eu-west-1".into(),
            access_key_id: "AKIAEXAMPLE".into(),
            secret_access_key: "secret-never-printed".into(),
            prefix: Some("prod".into()),
            path_style: true,
            staging_directory: None,
        }
    }

    #[test]
    fn validation_names_the_bad_setting() {
        config().validate().unwrap();
        let cases: Vec<(S3Config, &str)> = vec![
            (
                S3Config {
                    endpoint: "s3.amazonaws.com".into(),
                    ..config()
                },
                "endpoint",
            ),
            (
                S3Config {
                    endpoint: "ftp://s3.example".into(),
                    ..config()
                },
                "endpoint",
            ),
            (
                S3Config {
                    endpoint: "https://key:secret@s3.example".into(),
                    ..config()
                },
                "endpoint",
            ),
            (
                S3Config {
                    endpoint: "https://s3.example/bucket".into(),
                    ..config()
                },
                "endpoint",
            ),
            (
                S3Config {
                    bucket: "Upper_Case".into(),
                    ..config()
                },
                "bucket",
            ),
            (
                S3Config {
                    bucket: "ab".into(),
                    ..config()
                },
                "bucket",
            ),
            (
                S3Config {
                    region: "".into(),
                    ..config()
                },
                "region",
            ),
            (
                S3Config {
                    access_key_id: " ".into(),
                    ..config()
                },
                "access_key_id",
            ),
            (
                S3Config {
                    secret_access_key: "".into(),
                    ..config()
                },
                "secret_access_key",
            ),
            (
                S3Config {
                    prefix: Some("/abs".into()),
                    ..config()
                },
                "prefix",
            ),
            (
                S3Config {
                    prefix: Some("a/../b".into()),
                    ..config()
                },
                "prefix",
            ),
            (
                S3Config {
                    prefix: Some("sp ace".into()),
                    ..config()
                },
                "prefix",
            ),
            (
                S3Config {
                    endpoint: "http://127.0.0.1:9000".into(),
                    path_style: false,
                    ..config()
                },
                "path_style",
            ),
        ];
        for (config, field) in cases {
            match config.validate() {
                Err(BlobError::InvalidConfig {
                    field: reported, ..
                }) => assert_eq!(reported, field, "{config:?}"),
                other => panic!("expected an invalid `{field}`, got {other:?}"),
            }
        }
    }

    #[test]
    fn debug_hides_the_secret() {
        let text = format!("{:?}", S3BlobStore::new(config()).unwrap());
        assert!(!text.contains("secret-never-printed"), "{text}");
    }

    #[test]
    fn keys_and_addressing() {
        let digest = Sha256Digest::of(b"abc");
        let store = S3BlobStore::new(config()).unwrap();
        let key = store.object_key(&digest);
        assert_eq!(key, format!("prod/sha256/ba/{digest}"));
        let target = store.target(Some(&key), &[]).unwrap();
        assert_eq!(target.host, "s3.eu-west-1.amazonaws.com");
        assert_eq!(
            target.url.as_str(),
            format!("https://s3.eu-west-1.amazonaws.com/custody-evidence/{key}")
        );
        assert_eq!(target.canonical_uri, format!("/custody-evidence/{key}"));

        let virtual_hosted = S3BlobStore::new(S3Config {
            path_style: false,
            endpoint: "http://minio.internal:9000".into(),
            prefix: None,
            ..config()
        })
        .unwrap();
        let target = virtual_hosted
            .target(Some("sha256/ab/cd"), &[("list-type", "2")])
            .unwrap();
        assert_eq!(target.host, "custody-evidence.minio.internal:9000");
        assert_eq!(target.canonical_uri, "/sha256/ab/cd");
        assert_eq!(target.url.query(), Some("list-type=2"));
    }

    #[test]
    fn xml_values_decode_entities() {
        let xml = "<R><Key>a&amp;b</Key><Key>c</Key><IsTruncated>false</IsTruncated></R>";
        assert_eq!(
            xml_values(xml, "Key"),
            vec!["a&b".to_string(), "c".to_string()]
        );
        assert_eq!(xml_values(xml, "IsTruncated"), vec!["false".to_string()]);
        assert!(xml_values(xml, "Missing").is_empty());
    }
}
