//! Link capture against a real local HTTP server (axum), and the SSRF
//! refusals, which happen before any connection is made.

#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use common::{files_under, read_all};
use custody_evidence::{
    fetch_snapshot, fetch_snapshot_with, AddressClass, AllowRule, BlobStore, FetchError,
    FetchPolicy, HostResolver, LocalBlobStore, Sha256Digest,
};

const BIG_BODY: usize = 2 * 1024 * 1024;

/// A test server on 127.0.0.1 with a body that the test can change.
struct Server {
    address: SocketAddr,
    changing_body: Arc<Mutex<String>>,
}

impl Server {
    async fn start() -> Self {
        let changing_body = Arc::new(Mutex::new("version 1".to_string()));
        let router = Router::new()
            .route("/hello", get(|| async { "hello, evidence" }))
            .route(
                "/page",
                get(|| async {
                    (
                        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                        "<!DOCTYPE html><title>CHG-1042 approval</title>",
                    )
                }),
            )
            .route(
                "/changing",
                get(|State(body): State<Arc<Mutex<String>>>| async move {
                    body.lock().unwrap().clone()
                }),
            )
            .route(
                "/missing",
                get(|| async { (StatusCode::NOT_FOUND, "no such change ticket") }),
            )
            .route("/redirect/{hops}", get(redirect_chain))
            .route(
                "/to-metadata",
                get(|| async { redirect("http://169.254.169.254/latest/meta-data/") }),
            )
            .route(
                "/to-private",
                get(|| async { redirect("http://10.1.2.3/admin") }),
            )
            .route("/to-file", get(|| async { redirect("file:///etc/passwd") }))
            .route(
                "/to-c1",
                get(|| async {
                    // A Location with a C1 CSI (U+009B, UTF-8 C2 9B), a C1
                    // NEL and a bidi override (HTTP allows these bytes as
                    // obs-text; a terminal acts on them).
                    let mut response = StatusCode::FOUND.into_response();
                    response.headers_mut().insert(
                        header::LOCATION,
                        header::HeaderValue::from_bytes(
                            "/next\u{9b}2J\u{85}\u{202e}fdp.exe".as_bytes(),
                        )
                        .unwrap(),
                    );
                    response
                }),
            )
            .route("/big", get(|| async { vec![b'x'; BIG_BODY] }))
            .route(
                "/big-chunked",
                get(|| async { Body::from_stream(chunks(32, 64 * 1024, None)) }),
            )
            .route(
                "/stall-body",
                get(|| async { Body::from_stream(chunks(2, 1024, Some(Duration::from_secs(30)))) }),
            )
            .route(
                "/stall-headers",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    "too late"
                }),
            )
            .with_state(changing_body.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Self {
            address,
            changing_body,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }
}

async fn redirect_chain(Path(hops): Path<u32>) -> Response {
    if hops == 0 {
        "end of the chain".into_response()
    } else {
        redirect(&format!("/redirect/{}", hops - 1))
    }
}

fn redirect(location: &str) -> Response {
    (
        StatusCode::FOUND,
        [(header::LOCATION, location.to_string())],
    )
        .into_response()
}

/// `count` chunks of `size` bytes, with an optional stall after the first.
fn chunks(
    count: usize,
    size: usize,
    stall: Option<Duration>,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send {
    futures_util::stream::unfold(0, move |index| async move {
        if index == count {
            return None;
        }
        if index == 1 {
            if let Some(stall) = stall {
                tokio::time::sleep(stall).await;
            }
        }
        Some((Ok(vec![b'y'; size]), index + 1))
    })
}

struct Store {
    directory: tempfile::TempDir,
    store: LocalBlobStore,
}

impl Store {
    fn new() -> Self {
        let directory = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::new(directory.path().to_path_buf());
        Self { directory, store }
    }

    fn files(&self) -> Vec<std::path::PathBuf> {
        files_under(self.directory.path())
    }
}

fn policy_allowing_loopback() -> FetchPolicy {
    FetchPolicy {
        timeout: Duration::from_secs(10),
        max_bytes: 1024 * 1024,
        max_redirects: 3,
        allow: vec!["127.0.0.1".parse().unwrap()],
    }
}

fn assert_refused(error: &FetchError, class: AddressClass, address: &str) {
    match error {
        FetchError::Refused {
            reason,
            address: refused,
            ..
        } => {
            assert_eq!(*reason, class, "{error}");
            assert_eq!(refused, address, "{error}");
            assert!(error.to_string().contains(class.as_str()), "{error}");
        }
        other => panic!("expected a refusal of {address} as {class}, got {other:?}"),
    }
}

#[tokio::test]
async fn an_allowed_page_is_captured_with_its_hash_status_and_type() {
    let server = Server::start().await;
    let store = Store::new();
    let url = server.url("/page");
    let snapshot = fetch_snapshot(&url, &policy_allowing_loopback(), &store.store)
        .await
        .unwrap();
    let body = b"<!DOCTYPE html><title>CHG-1042 approval</title>";
    assert_eq!(snapshot.requested_url, url);
    assert_eq!(snapshot.final_url, url);
    assert_eq!(snapshot.status, 200);
    assert!(snapshot.is_success());
    assert_eq!(
        snapshot.content_type.as_deref(),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(snapshot.blob.sha256, Sha256Digest::of(body));
    assert_eq!(snapshot.blob.size, body.len() as u64);
    assert_eq!(snapshot.blob.sniffed_media_type, "text/html");
    assert_eq!(
        snapshot.fetched_at.len(),
        "2026-01-01T00:00:00.000000Z".len()
    );
    assert!(snapshot.fetched_at.ends_with('Z'));
    assert_eq!(
        read_all(store.store.get(&snapshot.blob.sha256).await.unwrap()).await,
        body
    );
}

#[tokio::test]
async fn the_same_url_without_the_allow_list_is_refused_as_loopback() {
    let server = Server::start().await;
    let store = Store::new();
    let error = fetch_snapshot(&server.url("/hello"), &FetchPolicy::default(), &store.store)
        .await
        .unwrap_err();
    assert_refused(&error, AddressClass::Loopback, "127.0.0.1");
    assert!(!error.leaves_link_unverified());
    assert!(store.files().is_empty());
}

/// The fetcher's client resolves no name itself (its resolver refuses every
/// lookup), so this capture only works because the checked addresses of
/// `localhost` were pinned for the connection.
#[tokio::test]
async fn an_allow_listed_host_name_is_pinned_to_its_checked_addresses() {
    let server = Server::start().await;
    let store = Store::new();
    let policy = FetchPolicy {
        allow: vec!["localhost".parse().unwrap()],
        ..policy_allowing_loopback()
    };
    let url = format!("http://localhost:{}/hello", server.address.port());
    let snapshot = fetch_snapshot(&url, &policy, &store.store).await.unwrap();
    assert_eq!(snapshot.blob.sha256, Sha256Digest::of(b"hello, evidence"));
}

/// One refusal per address class, with literal addresses: refused before
/// any connection, so no network is needed (or touched).
#[tokio::test]
async fn every_special_address_class_is_refused() {
    let store = Store::new();
    let cases: &[(&str, AddressClass, &str)] = &[
        ("http://127.0.0.1/", AddressClass::Loopback, "127.0.0.1"),
        (
            "http://127.1.2.3:8080/x",
            AddressClass::Loopback,
            "127.1.2.3",
        ),
        ("http://[::1]/", AddressClass::Loopback, "::1"),
        ("http://10.1.2.3/", AddressClass::Private, "10.1.2.3"),
        ("http://172.16.0.1/", AddressClass::Private, "172.16.0.1"),
        ("http://192.168.1.1/", AddressClass::Private, "192.168.1.1"),
        (
            "https://169.254.1.1/",
            AddressClass::LinkLocal,
            "169.254.1.1",
        ),
        (
            "http://169.254.169.254/latest/meta-data/",
            AddressClass::Metadata,
            "169.254.169.254",
        ),
        (
            "http://[fd00:ec2::254]/",
            AddressClass::Metadata,
            "fd00:ec2::254",
        ),
        ("http://[fe80::1]/", AddressClass::LinkLocal, "fe80::1"),
        ("http://[fc00::1]/", AddressClass::Private, "fc00::1"),
        ("http://0.0.0.0/", AddressClass::Unspecified, "0.0.0.0"),
        ("http://[::]/", AddressClass::Unspecified, "::"),
        (
            "http://100.64.0.1/",
            AddressClass::CarrierGradeNat,
            "100.64.0.1",
        ),
        (
            "http://[::ffff:127.0.0.1]/",
            AddressClass::Loopback,
            "::ffff:127.0.0.1",
        ),
        (
            "http://[::ffff:169.254.169.254]/",
            AddressClass::Metadata,
            "::ffff:169.254.169.254",
        ),
        (
            "http://[64:ff9b::7f00:1]/",
            AddressClass::Loopback,
            "64:ff9b::7f00:1",
        ),
        ("http://224.0.0.1/", AddressClass::Multicast, "224.0.0.1"),
        (
            "http://255.255.255.255/",
            AddressClass::Broadcast,
            "255.255.255.255",
        ),
        (
            "http://192.0.2.10/",
            AddressClass::Documentation,
            "192.0.2.10",
        ),
        (
            "http://[2001:db8::1]/",
            AddressClass::Documentation,
            "2001:db8::1",
        ),
        // Other spellings of 127.0.0.1, normalised by the URL parser.
        ("http://2130706433/", AddressClass::Loopback, "127.0.0.1"),
        ("http://0x7f.1/", AddressClass::Loopback, "127.0.0.1"),
        ("http://0177.0.0.1/", AddressClass::Loopback, "127.0.0.1"),
    ];
    for (url, class, address) in cases {
        let error = fetch_snapshot(url, &FetchPolicy::default(), &store.store)
            .await
            .unwrap_err();
        assert_refused(&error, *class, address);
    }
    assert!(store.files().is_empty());
}

#[tokio::test]
async fn a_host_name_resolving_to_loopback_is_refused() {
    let store = Store::new();
    let error = fetch_snapshot("http://localhost:9/", &FetchPolicy::default(), &store.store)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &error,
            FetchError::Refused {
                reason: AddressClass::Loopback,
                ..
            }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn metadata_service_names_are_refused_before_any_lookup() {
    let store = Store::new();
    for url in [
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://METADATA.google.internal./",
    ] {
        let error = fetch_snapshot(url, &FetchPolicy::default(), &store.store)
            .await
            .unwrap_err();
        assert_refused(&error, AddressClass::Metadata, "metadata.google.internal");
    }
}

#[tokio::test]
async fn allow_list_networks_open_exactly_their_range() {
    let server = Server::start().await;
    let store = Store::new();
    let policy = FetchPolicy {
        allow: vec!["127.0.0.0/8".parse::<AllowRule>().unwrap()],
        ..policy_allowing_loopback()
    };
    let snapshot = fetch_snapshot(&server.url("/hello"), &policy, &store.store)
        .await
        .unwrap();
    assert_eq!(snapshot.status, 200);
    // The IPv6 loopback and other classes stay refused.
    let error = fetch_snapshot("http://[::1]:9/", &policy, &store.store)
        .await
        .unwrap_err();
    assert_refused(&error, AddressClass::Loopback, "::1");
    let error = fetch_snapshot("http://192.168.1.1/", &policy, &store.store)
        .await
        .unwrap_err();
    assert_refused(&error, AddressClass::Private, "192.168.1.1");
}

#[tokio::test]
async fn urls_of_other_schemes_or_with_credentials_are_refused() {
    let store = Store::new();
    let cases = [
        "file:///etc/passwd",
        "ftp://example.com/file",
        "gopher://127.0.0.1:6379/_INFO",
        "http://user:secret@example.com/",
        "https://token@example.com/",
    ];
    for url in cases {
        let error = fetch_snapshot(url, &FetchPolicy::default(), &store.store)
            .await
            .unwrap_err();
        assert!(
            matches!(error, FetchError::UrlNotAllowed { .. }),
            "{url}: {error:?}"
        );
    }
    let error = fetch_snapshot("not a url", &FetchPolicy::default(), &store.store)
        .await
        .unwrap_err();
    assert!(matches!(error, FetchError::InvalidUrl { .. }), "{error:?}");
}

#[tokio::test]
async fn a_redirect_to_a_refused_address_is_refused_at_that_hop() {
    let server = Server::start().await;
    let store = Store::new();
    let error = fetch_snapshot(
        &server.url("/to-metadata"),
        &policy_allowing_loopback(),
        &store.store,
    )
    .await
    .unwrap_err();
    assert_refused(&error, AddressClass::Metadata, "169.254.169.254");
    match &error {
        FetchError::Refused { url, .. } => {
            assert_eq!(url, "http://169.254.169.254/latest/meta-data/")
        }
        other => panic!("{other:?}"),
    }
    let error = fetch_snapshot(
        &server.url("/to-private"),
        &policy_allowing_loopback(),
        &store.store,
    )
    .await
    .unwrap_err();
    assert_refused(&error, AddressClass::Private, "10.1.2.3");
    let error = fetch_snapshot(
        &server.url("/to-file"),
        &policy_allowing_loopback(),
        &store.store,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(error, FetchError::UrlNotAllowed { .. }),
        "{error:?}"
    );
    assert!(store.files().is_empty());
}

#[tokio::test]
async fn redirects_are_followed_up_to_the_limit_and_no_further() {
    let server = Server::start().await;
    let store = Store::new();
    let policy = policy_allowing_loopback();
    assert_eq!(policy.max_redirects, 3);
    let snapshot = fetch_snapshot(&server.url("/redirect/3"), &policy, &store.store)
        .await
        .unwrap();
    assert_eq!(snapshot.requested_url, server.url("/redirect/3"));
    assert_eq!(snapshot.final_url, server.url("/redirect/0"));
    assert_eq!(snapshot.blob.sha256, Sha256Digest::of(b"end of the chain"));

    let error = fetch_snapshot(&server.url("/redirect/4"), &policy, &store.store)
        .await
        .unwrap_err();
    assert!(
        matches!(error, FetchError::TooManyRedirects { limit: 3, .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_and_nothing_is_stored() {
    let server = Server::start().await;
    let store = Store::new();
    let policy = policy_allowing_loopback();
    // With Content-Length: refused before reading.
    let error = fetch_snapshot(&server.url("/big"), &policy, &store.store)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            FetchError::TooLarge {
                limit: 1_048_576,
                ..
            }
        ),
        "{error:?}"
    );
    // Chunked, no length: refused while streaming.
    let error = fetch_snapshot(&server.url("/big-chunked"), &policy, &store.store)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            FetchError::TooLarge {
                limit: 1_048_576,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(store.files(), Vec::<std::path::PathBuf>::new());
    assert!(store.store.list().await.unwrap().is_empty());

    // The same chunked body fits under a larger limit.
    let generous = FetchPolicy {
        max_bytes: BIG_BODY as u64,
        ..policy
    };
    let snapshot = fetch_snapshot(&server.url("/big-chunked"), &generous, &store.store)
        .await
        .unwrap();
    assert_eq!(snapshot.blob.size, BIG_BODY as u64);
}

#[tokio::test]
async fn a_stalling_server_times_out_and_nothing_is_stored() {
    let server = Server::start().await;
    let store = Store::new();
    let policy = FetchPolicy {
        timeout: Duration::from_millis(700),
        ..policy_allowing_loopback()
    };
    for path in ["/stall-headers", "/stall-body"] {
        let started = Instant::now();
        let error = fetch_snapshot(&server.url(path), &policy, &store.store)
            .await
            .unwrap_err();
        assert!(
            matches!(error, FetchError::Timeout { .. }),
            "{path}: {error:?}"
        );
        assert!(error.leaves_link_unverified());
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{path}: the timeout did not bound the fetch"
        );
    }
    assert_eq!(store.files(), Vec::<std::path::PathBuf>::new());
}

#[tokio::test]
async fn an_unreachable_server_is_reported_as_unverified() {
    let store = Store::new();
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let error = fetch_snapshot(
        &format!("http://127.0.0.1:{closed_port}/"),
        &policy_allowing_loopback(),
        &store.store,
    )
    .await
    .unwrap_err();
    assert!(matches!(error, FetchError::Unreachable { .. }), "{error:?}");
    assert!(error.leaves_link_unverified());
    // HTTPS to a server that speaks plain HTTP: the TLS client (rustls with
    // the ring provider) is built and starts a handshake that fails.
    let server = Server::start().await;
    let error = fetch_snapshot(
        &format!("https://{}/hello", server.address),
        &policy_allowing_loopback(),
        &store.store,
    )
    .await
    .unwrap_err();
    assert!(matches!(error, FetchError::Unreachable { .. }), "{error:?}");
    assert!(store.files().is_empty());
    // `.invalid` never resolves (RFC 6761); without a working resolver the
    // lookup may time out instead, which is recorded the same way.
    let short = FetchPolicy {
        timeout: Duration::from_secs(3),
        ..FetchPolicy::default()
    };
    let error = fetch_snapshot("http://no-such-host.invalid/", &short, &store.store)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            FetchError::Unreachable { .. } | FetchError::Timeout { .. }
        ),
        "{error:?}"
    );
    assert!(error.leaves_link_unverified());
}

/// A link that answers an error is reported with its status, and its body
/// is not stored: nothing would reference it.
#[tokio::test]
async fn a_non_2xx_answer_is_reported_and_nothing_is_stored() {
    let server = Server::start().await;
    let store = Store::new();
    let error = fetch_snapshot(
        &server.url("/missing"),
        &policy_allowing_loopback(),
        &store.store,
    )
    .await
    .unwrap_err();
    match &error {
        FetchError::ErrorStatus { url, status } => {
            assert_eq!(*status, 404);
            assert_eq!(url, &server.url("/missing"));
        }
        other => panic!("expected an error status, got {other:?}"),
    }
    assert!(error.leaves_link_unverified());
    assert!(error.to_string().contains("answered HTTP 404"), "{error}");
    assert!(
        !store
            .store
            .exists(&Sha256Digest::of(b"no such change ticket"))
            .await
            .unwrap(),
        "the error page must not be stored"
    );
    assert_eq!(store.files(), Vec::<std::path::PathBuf>::new());
}

/// A redirect's `Location` is the remote server's text: its control and
/// bidi characters are escaped before they reach the error that is stored.
#[tokio::test]
async fn a_redirect_location_with_control_characters_is_escaped() {
    let server = Server::start().await;
    let store = Store::new();
    let error = fetch_snapshot(
        &server.url("/to-c1"),
        &policy_allowing_loopback(),
        &store.store,
    )
    .await
    .unwrap_err();
    let FetchError::InvalidRedirect { location, .. } = &error else {
        panic!("expected an invalid redirect, got {error:?}");
    };
    assert_eq!(location, "/next\\u{9b}2J\\u{85}\\u{202e}fdp.exe");
    let message = error.to_string();
    assert!(
        !message.chars().any(custody_core::text::is_unsafe_char),
        "{message:?}"
    );
    assert_eq!(store.files(), Vec::<std::path::PathBuf>::new());
}

/// A resolver that answers one name with fixed addresses (the port is the
/// one the URL asks for).
struct FixedResolver {
    name: &'static str,
    addresses: Vec<std::net::IpAddr>,
}

impl HostResolver for FixedResolver {
    fn resolve<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = std::io::Result<Vec<SocketAddr>>> + Send + 'a>,
    > {
        let answer = if host == self.name {
            Ok(self
                .addresses
                .iter()
                .map(|ip| SocketAddr::new(*ip, port))
                .collect())
        } else {
            Err(std::io::Error::other(format!("{host} is unknown here")))
        };
        Box::pin(async move { answer })
    }
}

/// The check covers every address a name resolves to: with 127.0.0.1
/// allowed, a name that resolves to it *and* to a private address is
/// refused (checking only the first address would connect to the test
/// server), while a name resolving only to allowed addresses is captured
/// through a real connection.
#[tokio::test]
async fn a_name_with_one_refused_address_among_allowed_ones_is_refused() {
    let server = Server::start().await;
    let store = Store::new();
    let policy = policy_allowing_loopback();
    let url = format!("http://evidence.test:{}/hello", server.address.port());
    let mixed = FixedResolver {
        name: "evidence.test",
        addresses: vec!["127.0.0.1".parse().unwrap(), "10.20.30.40".parse().unwrap()],
    };
    let error = fetch_snapshot_with(&url, &policy, &store.store, &mixed)
        .await
        .unwrap_err();
    assert_refused(&error, AddressClass::Private, "10.20.30.40");
    let public_then_loopback = FixedResolver {
        name: "evidence.test",
        addresses: vec!["93.184.215.14".parse().unwrap(), "::1".parse().unwrap()],
    };
    let error = fetch_snapshot_with(
        &url,
        &FetchPolicy::default(),
        &store.store,
        &public_then_loopback,
    )
    .await
    .unwrap_err();
    assert_refused(&error, AddressClass::Loopback, "::1");
    assert_eq!(store.files(), Vec::<std::path::PathBuf>::new());

    let allowed = FixedResolver {
        name: "evidence.test",
        addresses: vec!["127.0.0.1".parse().unwrap()],
    };
    let snapshot = fetch_snapshot_with(&url, &policy, &store.store, &allowed)
        .await
        .unwrap();
    assert_eq!(snapshot.status, 200);
    assert_eq!(snapshot.blob.sha256, Sha256Digest::of(b"hello, evidence"));
}

#[tokio::test]
async fn a_changed_page_gives_a_different_hash() {
    let server = Server::start().await;
    let store = Store::new();
    let policy = policy_allowing_loopback();
    let first = fetch_snapshot(&server.url("/changing"), &policy, &store.store)
        .await
        .unwrap();
    let unchanged = fetch_snapshot(&server.url("/changing"), &policy, &store.store)
        .await
        .unwrap();
    assert_eq!(first.blob.sha256, unchanged.blob.sha256);
    assert!(unchanged.blob.already_present);

    *server.changing_body.lock().unwrap() = "version 2".to_string();
    let second = fetch_snapshot(&server.url("/changing"), &policy, &store.store)
        .await
        .unwrap();
    assert_ne!(
        first.blob.sha256, second.blob.sha256,
        "the changed page must hash differently"
    );
    assert_eq!(second.blob.sha256, Sha256Digest::of(b"version 2"));
    assert_eq!(
        store.store.list().await.unwrap().len(),
        2,
        "both versions stay stored"
    );
}
