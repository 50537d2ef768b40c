//! The local-disk blob store against a real directory.

#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

mod common;

use std::path::PathBuf;

use common::scenarios::{self, Backend};
use common::{files_under, pseudo_random_bytes};
use custody_evidence::{BlobStore, BlobStoreConfig, LocalBlobStore, Sha256Digest};

struct Local {
    _directory: tempfile::TempDir,
    store: LocalBlobStore,
}

impl Local {
    fn new() -> Self {
        let directory = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::new(directory.path().join("evidence"));
        Self {
            _directory: directory,
            store,
        }
    }
}

impl Backend for Local {
    fn store(&self) -> &dyn BlobStore {
        &self.store
    }

    async fn remove_behind_the_back(&self, digest: &Sha256Digest) {
        std::fs::remove_file(self.store.blob_path(digest)).unwrap();
    }

    async fn overwrite_behind_the_back(&self, digest: &Sha256Digest, bytes: &[u8]) {
        std::fs::write(self.store.blob_path(digest), bytes).unwrap();
    }

    async fn everything_stored(&self) -> Vec<PathBuf> {
        files_under(self.store.root())
    }
}

#[tokio::test]
async fn streaming_put_larger_than_buffer() {
    let local = Local::new();
    scenarios::streaming_put_larger_than_buffer(&local).await;
    // The blob is a plain file at the documented place, with no temporary
    // file left beside it.
    let data = pseudo_random_bytes(3 * 64 * 1024 + 12_345, 1);
    let digest = Sha256Digest::of(&data);
    assert_eq!(std::fs::read(local.store.blob_path(&digest)).unwrap(), data);
    let hex = digest.to_hex();
    assert!(local
        .store
        .blob_path(&digest)
        .ends_with(format!("sha256/{}/{hex}", &hex[..2])));
    assert!(files_under(&local.store.temporary_directory()).is_empty());
}

#[tokio::test]
async fn identical_content_stored_once() {
    scenarios::identical_content_stored_once(&Local::new()).await;
}

#[tokio::test]
async fn limit_exceeded_leaves_nothing() {
    scenarios::limit_exceeded_leaves_nothing(&Local::new()).await;
}

#[tokio::test]
async fn failed_and_cancelled_uploads_leave_nothing() {
    scenarios::failed_and_cancelled_uploads_leave_nothing(&Local::new()).await;
}

#[tokio::test]
async fn verify_detects_missing_and_corrupt() {
    scenarios::verify_detects_missing_and_corrupt(&Local::new()).await;
}

#[tokio::test]
async fn list_finds_orphans() {
    let local = Local::new();
    scenarios::list_finds_orphans(&local).await;
    // Files that are not blobs of this layout are not reported.
    let stray = local.store.root().join("sha256").join("zz");
    std::fs::create_dir_all(&stray).unwrap();
    std::fs::write(stray.join("notes.txt"), "x").unwrap();
    let misplaced = Sha256Digest::of(b"misplaced");
    std::fs::write(
        local
            .store
            .root()
            .join("sha256")
            .join("zz")
            .join(misplaced.to_hex()),
        "x",
    )
    .unwrap();
    assert_eq!(local.store.list().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_damaged_copy_is_replaced_by_a_new_upload_of_the_same_content() {
    let local = Local::new();
    let data = pseudo_random_bytes(10_000, 42);
    let stored = local
        .store
        .put_stream(&mut data.as_slice(), 1 << 20)
        .await
        .unwrap();
    std::fs::write(local.store.blob_path(&stored.sha256), &data[..5_000]).unwrap();
    let again = local
        .store
        .put_stream(&mut data.as_slice(), 1 << 20)
        .await
        .unwrap();
    assert!(
        !again.already_present,
        "a truncated copy must not count as present"
    );
    assert_eq!(
        std::fs::read(local.store.blob_path(&stored.sha256)).unwrap(),
        data
    );
}

#[tokio::test]
async fn concurrent_puts_of_the_same_content_leave_one_file() {
    let local = Local::new();
    let data = pseudo_random_bytes(300_000, 9);
    let puts = (0..4).map(|_| {
        let data = data.clone();
        let store = local.store.clone();
        tokio::spawn(async move {
            store
                .put_stream(&mut data.as_slice(), 1 << 20)
                .await
                .unwrap()
        })
    });
    for put in puts {
        assert_eq!(put.await.unwrap().sha256, Sha256Digest::of(&data));
    }
    let files = files_under(local.store.root());
    assert_eq!(files.len(), 1, "{files:?}");
}

#[tokio::test]
async fn config_from_toml_opens_the_local_store() {
    let directory = tempfile::tempdir().unwrap();
    let config: BlobStoreConfig = toml::from_str(&format!(
        "backend = \"local\"\npath = \"{}\"",
        directory.path().join("custom").display()
    ))
    .unwrap();
    let store = config.open(&directory.path().join("default")).unwrap();
    store
        .put_stream(&mut &b"configured"[..], 100)
        .await
        .unwrap();
    assert_eq!(files_under(&directory.path().join("custom")).len(), 1);

    let defaulted: BlobStoreConfig = toml::from_str("backend = \"local\"").unwrap();
    assert_eq!(defaulted, BlobStoreConfig::default());
    let store = defaulted.open(&directory.path().join("default")).unwrap();
    store.put_stream(&mut &b"defaulted"[..], 100).await.unwrap();
    assert_eq!(files_under(&directory.path().join("default")).len(), 1);

    let error = toml::from_str::<BlobStoreConfig>("backend = \"ftp\"").unwrap_err();
    assert!(error.to_string().contains("unknown variant"), "{error}");
    let error = toml::from_str::<BlobStoreConfig>("backend = \"local\"\npth = \"/x\"").unwrap_err();
    assert!(error.to_string().contains("pth"), "{error}");
    let empty: BlobStoreConfig = toml::from_str("backend = \"local\"\npath = \"\"").unwrap();
    assert!(matches!(
        empty.validate(),
        Err(custody_evidence::BlobError::InvalidConfig { field: "path", .. })
    ));
}
