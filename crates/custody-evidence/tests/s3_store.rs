//! The S3 blob store against a real S3 server (moto), with requests signed by
//! this crate's SigV4.

#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use common::moto::{self, raw_list_keys, raw_request, store_on_new_bucket};
use common::scenarios::{self, Backend};
use common::{files_under, pseudo_random_bytes, read_all};
use custody_evidence::{
    BlobError, BlobStore, BlobStoreConfig, S3BlobStore, S3Config, Sha256Digest,
};
use reqwest::Method;

struct S3 {
    bucket: String,
    staging: tempfile::TempDir,
    store: S3BlobStore,
}

impl S3 {
    async fn new() -> Self {
        let bucket = unique_bucket();
        let staging = tempfile::tempdir().unwrap();
        let store = store_on_new_bucket(&bucket, staging.path().to_path_buf()).await;
        Self {
            bucket,
            staging,
            store,
        }
    }

    fn object_path(&self, digest: &Sha256Digest) -> String {
        format!("/{}/{}", self.bucket, self.store.object_key(digest))
    }
}

impl Backend for S3 {
    fn store(&self) -> &dyn BlobStore {
        &self.store
    }

    async fn remove_behind_the_back(&self, digest: &Sha256Digest) {
        let response =
            raw_request(Method::DELETE, &self.object_path(digest), &[], Vec::new()).await;
        assert!(
            response.status().is_success(),
            "DELETE: {}",
            response.status()
        );
    }

    async fn overwrite_behind_the_back(&self, digest: &Sha256Digest, bytes: &[u8]) {
        let response =
            raw_request(Method::PUT, &self.object_path(digest), &[], bytes.to_vec()).await;
        assert!(response.status().is_success(), "PUT: {}", response.status());
    }

    async fn everything_stored(&self) -> Vec<PathBuf> {
        let mut everything: Vec<PathBuf> = raw_list_keys(&self.bucket)
            .await
            .into_iter()
            .map(PathBuf::from)
            .collect();
        everything.extend(files_under(self.staging.path()));
        everything
    }
}

fn unique_bucket() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "evidence-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

#[tokio::test]
async fn streaming_put_larger_than_buffer() {
    let s3 = S3::new().await;
    scenarios::streaming_put_larger_than_buffer(&s3).await;
    // The object sits under the documented key and the staging file is gone.
    let data = pseudo_random_bytes(3 * 64 * 1024 + 12_345, 1);
    let digest = Sha256Digest::of(&data);
    let hex = digest.to_hex();
    assert!(raw_list_keys(&s3.bucket)
        .await
        .contains(&format!("evidence/sha256/{}/{hex}", &hex[..2])));
    assert!(files_under(s3.staging.path()).is_empty());
}

#[tokio::test]
async fn identical_content_stored_once() {
    scenarios::identical_content_stored_once(&S3::new().await).await;
}

#[tokio::test]
async fn limit_exceeded_leaves_nothing() {
    scenarios::limit_exceeded_leaves_nothing(&S3::new().await).await;
}

#[tokio::test]
async fn failed_and_cancelled_uploads_leave_nothing() {
    scenarios::failed_and_cancelled_uploads_leave_nothing(&S3::new().await).await;
}

#[tokio::test]
async fn verify_detects_missing_and_corrupt() {
    scenarios::verify_detects_missing_and_corrupt(&S3::new().await).await;
}

#[tokio::test]
async fn list_finds_orphans() {
    let s3 = S3::new().await;
    scenarios::list_finds_orphans(&s3).await;
    // Objects outside the layout are not blobs.
    let stray = raw_request(
        Method::PUT,
        &format!("/{}/evidence/sha256/zz/readme.txt", s3.bucket),
        &[],
        b"x".to_vec(),
    )
    .await;
    assert!(stray.status().is_success());
    assert_eq!(s3.store.list().await.unwrap().len(), 2);
}

#[tokio::test]
async fn list_follows_pagination() {
    // Seven blobs listed two keys per request: four pages, joined by
    // continuation tokens.
    let s3 = S3::new().await;
    let mut expected = Vec::new();
    for seed in 0..7 {
        let data = pseudo_random_bytes(100, 100 + seed);
        expected.push(
            s3.store
                .put_stream(&mut data.as_slice(), 1000)
                .await
                .unwrap()
                .sha256,
        );
    }
    expected.sort();
    let paged = S3BlobStore::new(moto::config(&s3.bucket, s3.staging.path().to_path_buf()))
        .unwrap()
        .with_list_page_size(2);
    assert_eq!(paged.list().await.unwrap(), expected);
}

#[tokio::test]
async fn get_streams_the_object_and_sends_the_sniffed_type() {
    let s3 = S3::new().await;
    let page = b"<!doctype html><title>CHG-7</title>".to_vec();
    let stored = s3
        .store
        .put_stream(&mut page.as_slice(), 1 << 20)
        .await
        .unwrap();
    assert_eq!(stored.sniffed_media_type, "text/html");
    assert_eq!(
        read_all(s3.store.get(&stored.sha256).await.unwrap()).await,
        page
    );
    let response = raw_request(
        Method::HEAD,
        &s3.object_path(&stored.sha256),
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!(response.headers()["content-type"], "text/html");
}

/// A server that checks every SigV4 signature with botocore's signer
/// accepts this crate's requests (bucket creation, HEAD, PUT with the
/// payload hash, GET, DELETE) and refuses a wrong secret or an unknown key,
/// with the S3 code in the error. (It cannot check ListObjectsV2: see
/// `common::moto`.)
#[tokio::test]
async fn signatures_are_accepted_by_an_independent_verifier_and_wrong_keys_refused() {
    let server = moto::moto_checking_signatures();
    let bucket = unique_bucket();
    let staging = tempfile::tempdir().unwrap();
    let config = moto::config_on(server, &bucket, staging.path().to_path_buf());
    let store = S3BlobStore::new(config.clone()).unwrap();
    store.create_bucket().await.unwrap();
    let data = pseudo_random_bytes(200_000, 77);
    let stored = store
        .put_stream(&mut data.as_slice(), 1 << 20)
        .await
        .unwrap();
    assert!(!stored.already_present);
    assert!(
        store
            .put_stream(&mut data.as_slice(), 1 << 20)
            .await
            .unwrap()
            .already_present
    );
    assert!(store.exists(&stored.sha256).await.unwrap());
    assert_eq!(
        read_all(store.get(&stored.sha256).await.unwrap()).await,
        data
    );
    assert_eq!(
        store.verify(&stored.sha256).await.unwrap(),
        custody_evidence::VerifyOutcome::Intact { size: 200_000 }
    );

    let cases = [
        (
            S3Config {
                secret_access_key: "not-the-secret".into(),
                ..config.clone()
            },
            "SignatureDoesNotMatch",
        ),
        (
            S3Config {
                access_key_id: "AKIAUNKNOWNKEY000000".into(),
                ..config.clone()
            },
            "InvalidAccessKeyId",
        ),
    ];
    for (wrong, expected_code) in cases {
        let wrong_store = S3BlobStore::new(wrong).unwrap();
        // GET answers with an error document that names the code.
        let error = match wrong_store.get(&stored.sha256).await {
            Err(error) => error,
            Ok(_) => panic!("a request signed with {expected_code} credentials was accepted"),
        };
        match &error {
            BlobError::S3Status { status, code, .. } => {
                assert_eq!(*status, 403, "{error}");
                assert_eq!(code, expected_code, "{error}");
            }
            other => panic!("expected an S3 status error, got {other:?}"),
        }
        assert!(
            error
                .to_string()
                .contains("check access_key_id, secret_access_key and region"),
            "{error}"
        );
        // An upload is refused (at its HEAD) and leaves no staging file.
        let error = wrong_store
            .put_stream(&mut &b"evidence"[..], 100)
            .await
            .unwrap_err();
        assert!(
            matches!(error, BlobError::S3Status { status: 403, .. }),
            "{error:?}"
        );
        assert!(
            wrong_store.delete(&stored.sha256).await.is_err(),
            "a delete with {expected_code} credentials must fail"
        );
    }
    assert!(
        files_under(staging.path()).is_empty(),
        "staging files must be removed"
    );
    assert!(store.delete(&stored.sha256).await.unwrap());
    assert!(!store.exists(&stored.sha256).await.unwrap());
}

#[tokio::test]
async fn a_missing_bucket_is_reported_with_the_s3_code() {
    let staging = tempfile::tempdir().unwrap();
    let store =
        S3BlobStore::new(moto::config(&unique_bucket(), staging.path().to_path_buf())).unwrap();
    let error = store
        .put_stream(&mut &b"evidence"[..], 100)
        .await
        .unwrap_err();
    match &error {
        BlobError::S3Status { status, code, .. } => {
            assert_eq!(*status, 404);
            assert_eq!(code, "NoSuchBucket");
        }
        other => panic!("expected an S3 status error, got {other:?}"),
    }
    assert!(error.to_string().contains("create the bucket"), "{error}");
    assert!(
        files_under(staging.path()).is_empty(),
        "the staging file must be removed after a failed upload"
    );
}

#[tokio::test]
async fn config_from_toml_opens_an_s3_store() {
    let bucket = unique_bucket();
    let staging = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
        backend = "s3"
        endpoint = "{endpoint}"
        bucket = "{bucket}"
        region = "us-east-1"
        access_key_id = "{access_key_id}"
        secret_access_key = "{secret_access_key}"
        prefix = "from-toml"
        staging_directory = "{staging}"
        "#,
        endpoint = moto::moto().endpoint,
        access_key_id = moto::moto().access_key_id,
        secret_access_key = moto::moto().secret_access_key,
        staging = staging.path().display()
    );
    let config: BlobStoreConfig = toml::from_str(&text).unwrap();
    config.validate().unwrap();
    let BlobStoreConfig::S3(s3_config) = &config else {
        panic!("expected S3, got {config:?}")
    };
    assert!(s3_config.path_style, "path_style defaults to true");
    S3BlobStore::new(s3_config.clone())
        .unwrap()
        .create_bucket()
        .await
        .unwrap();
    let store = config.open(std::path::Path::new("/unused")).unwrap();
    let stored = store
        .put_stream(&mut &b"configured"[..], 100)
        .await
        .unwrap();
    let hex = stored.sha256.to_hex();
    assert_eq!(
        raw_list_keys(&bucket).await,
        vec![format!("from-toml/sha256/{}/{hex}", &hex[..2])]
    );

    let typo = text.replace("secret_access_key", "secret_key");
    let error = toml::from_str::<BlobStoreConfig>(&typo).unwrap_err();
    assert!(error.to_string().contains("secret_key"), "{error}");
    let bad_bucket = text.replace(&bucket, "Bad_Bucket");
    let config: BlobStoreConfig = toml::from_str(&bad_bucket).unwrap();
    assert!(matches!(
        config.validate(),
        Err(BlobError::InvalidConfig {
            field: "bucket",
            ..
        })
    ));
}

/// Objects by their own keys (what the CloudTrail reader uses): listed
/// after a key in key order, a page at a time, and read whole within a
/// limit.
#[tokio::test]
async fn objects_by_key_are_listed_after_a_key_and_read_within_a_limit() {
    let s3 = S3::new().await;
    let prefix = "AWSLogs/111122223333/CloudTrail/us-east-1/";
    let keys: Vec<String> = (0..5)
        .map(|index| format!("{prefix}2026/03/14/file-{index}.json.gz"))
        .collect();
    // Stored out of order, beside an object outside the prefix.
    for key in keys.iter().rev() {
        s3.store
            .put_object_bytes(key, key.as_bytes().to_vec())
            .await
            .unwrap();
    }
    s3.store
        .put_object_bytes("AWSLogs/other.txt", b"x".to_vec())
        .await
        .unwrap();

    let page = s3.store.list_keys_after(prefix, None, 1000).await.unwrap();
    assert_eq!(page.keys, keys);
    assert!(!page.truncated);
    let page = s3
        .store
        .list_keys_after(prefix, Some(&keys[1]), 2)
        .await
        .unwrap();
    assert_eq!(page.keys, keys[2..4]);
    assert!(page.truncated);
    let page = s3
        .store
        .list_keys_after(prefix, Some(&keys[4]), 2)
        .await
        .unwrap();
    assert!(page.keys.is_empty());

    assert_eq!(
        s3.store.get_object_bytes(&keys[0], 1024).await.unwrap(),
        Some(keys[0].as_bytes().to_vec())
    );
    assert!(matches!(
        s3.store.get_object_bytes(&keys[0], 4).await,
        Err(BlobError::ObjectTooLarge { limit: 4, .. })
    ));
    assert_eq!(
        s3.store
            .get_object_bytes(&format!("{prefix}missing.json.gz"), 1024)
            .await
            .unwrap(),
        None
    );
}
