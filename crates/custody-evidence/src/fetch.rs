//! SSRF-safe link capture: fetch a URL under a [`FetchPolicy`] and store the
//! body as a blob.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::TryStreamExt;
use reqwest::header::{ACCEPT, CONTENT_TYPE, LOCATION};
use serde::{Deserialize, Deserializer, Serialize};
use tokio_util::io::StreamReader;
use url::{Host, Url};

use crate::blob::{BlobError, BlobStore, StoredBlob};
use crate::netclass::{classify, normalize_host, AddressClass, AllowRule, METADATA_HOST_NAMES};
use crate::time::now_rfc3339;

/// Resolves a host name to the addresses a link capture may connect to.
///
/// [`fetch_snapshot`] uses [`SystemResolver`]; tests (and deployments with
/// their own resolution) give another one to [`fetch_snapshot_with`]. Every
/// address returned is checked against the policy before any connection, and
/// the connection goes only to these addresses.
pub trait HostResolver: Send + Sync {
    /// The addresses of `host` (a domain name, never an IP literal), with
    /// `port` filled in.
    fn resolve<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<SocketAddr>>> + Send + 'a>>;
}

/// The operating system's resolver (`getaddrinfo`, through tokio).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl HostResolver for SystemResolver {
    fn resolve<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        Box::pin(async move { Ok(tokio::net::lookup_host((host, port)).await?.collect()) })
    }
}

/// The `User-Agent` sent with every snapshot request.
pub const USER_AGENT: &str = concat!(
    "custody-evidence/",
    env!("CARGO_PKG_VERSION"),
    " (evidence link snapshot)"
);

/// Limits and exceptions for [`fetch_snapshot`].
///
/// From TOML (every key optional):
///
/// ```toml
/// timeout_seconds = 20
/// max_bytes = 26214400
/// max_redirects = 5
/// allow = ["10.20.0.0/16", "wiki.internal.example.com"]
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FetchPolicy {
    /// The time allowed for the whole capture: every DNS lookup, connection,
    /// redirect hop and the body. Written `timeout_seconds` (a number, which
    /// may have a fraction) in configuration.
    #[serde(rename = "timeout_seconds", deserialize_with = "deserialize_seconds")]
    pub timeout: Duration,
    /// The largest body that is stored; a longer one is refused and nothing
    /// is stored.
    pub max_bytes: u64,
    /// How many redirects are followed; one more is refused.
    pub max_redirects: u32,
    /// Addresses, networks and host names that may be fetched even though
    /// their addresses are not public (an intranet wiki, a test server).
    pub allow: Vec<AllowRule>,
}

impl Default for FetchPolicy {
    /// 20 seconds, 25 MiB, 5 redirects, nothing allow-listed.
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(20),
            max_bytes: 25 * 1024 * 1024,
            max_redirects: 5,
            allow: Vec::new(),
        }
    }
}

impl FetchPolicy {
    /// Checks the limits: a zero timeout or byte limit would refuse every link.
    pub fn validate(&self) -> Result<(), FetchError> {
        if self.timeout.is_zero() {
            return Err(FetchError::InvalidPolicy {
                problem: "timeout_seconds is 0, so every capture would time out; set a few seconds, such as 20".into(),
            });
        }
        if self.max_bytes == 0 {
            return Err(FetchError::InvalidPolicy {
                problem: "max_bytes is 0, so every capture would be refused; set a size such as 26214400 (25 MiB)".into(),
            });
        }
        Ok(())
    }

    fn allows_host(&self, host: &str) -> bool {
        self.allow.iter().any(|rule| rule.allows_host(host))
    }

    fn allows_address(&self, address: IpAddr) -> bool {
        self.allow.iter().any(|rule| rule.allows_address(address))
    }
}

fn deserialize_seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let seconds = f64::deserialize(deserializer)?;
    Duration::try_from_secs_f64(seconds).map_err(|_| {
        serde::de::Error::custom(format!("timeout_seconds = {seconds} is not a usable duration; write a positive number of seconds"))
    })
}

/// A captured copy of what a link served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The URL that was asked for, as parsed (normalised) before fetching.
    pub requested_url: String,
    /// The URL the body came from, after redirects.
    pub final_url: String,
    /// The HTTP status of the final response: always 2xx (any other final
    /// status is [`FetchError::ErrorStatus`], and its body is not stored).
    pub status: u16,
    /// When the final response arrived, `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC).
    pub fetched_at: String,
    /// The stored body.
    pub blob: StoredBlob,
    /// The `Content-Type` header of the final response, if it had a readable one.
    pub content_type: Option<String>,
}

impl Snapshot {
    /// Whether the final status was 2xx, so the capture shows what the link
    /// serves.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Why a link could not be captured.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The text is not a URL.
    #[error("`{url}` is not a URL: {problem}; give a full link such as https://example.com/page")]
    InvalidUrl {
        /// The text given.
        url: String,
        /// The parser's complaint.
        problem: String,
    },
    /// The URL's form is refused (scheme, user name or password).
    #[error("the link `{url}` is refused: {reason}")]
    UrlNotAllowed {
        /// The URL.
        url: String,
        /// Why, and what to do.
        reason: &'static str,
    },
    /// The URL's host is, or resolves to, an address the policy refuses. No
    /// connection was made.
    #[error("the link `{url}` is refused: {address} is a {reason} address, and evidence links may only reach public addresses; if this host is trusted, add it to the fetch policy's allow list")]
    Refused {
        /// The URL of the hop that was refused (the requested URL or a redirect target).
        url: String,
        /// The class of the refused address (`loopback`, `private`, `metadata`, ...).
        reason: AddressClass,
        /// The refused address (or host name, for metadata service names).
        address: String,
    },
    /// The link redirected more often than the policy allows.
    #[error("the link `{url}` redirected more than {limit} times; link to the final page instead")]
    TooManyRedirects {
        /// The requested URL.
        url: String,
        /// The policy's limit.
        limit: u32,
    },
    /// A redirect's `Location` could not be followed.
    #[error("the link `{url}` redirected to `{location}`, which cannot be followed: {problem}")]
    InvalidRedirect {
        /// The URL that answered with the redirect.
        url: String,
        /// The `Location` header as received, with every control, bidi and
        /// invisible character escaped ([`custody_core::text::escape`]): it
        /// is the remote server's text and ends up in the ledger.
        location: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The final answer was not 2xx (after redirects): the link does not
    /// serve what it was meant to. Its body is not stored (no blob is left
    /// that no record references). Record the link as unverified.
    #[error("the link `{url}` answered HTTP {status}, so nothing was stored; the link stays unverified, check it and try again later")]
    ErrorStatus {
        /// The URL that answered (the requested URL or a redirect target).
        url: String,
        /// The HTTP status it answered with.
        status: u16,
    },
    /// The body is larger than the policy allows; nothing was stored.
    #[error("the page at `{url}` is larger than the limit of {limit} bytes, so nothing was stored; attach the document as a file instead")]
    TooLarge {
        /// The URL whose body was too large.
        url: String,
        /// The policy's limit.
        limit: u64,
    },
    /// The whole capture took longer than the policy allows; nothing was
    /// stored. Record the link as unverified.
    #[error("capturing `{url}` took longer than {after:?}, so it was abandoned and nothing was stored; the link stays unverified, try again later")]
    Timeout {
        /// The requested URL.
        url: String,
        /// The policy's timeout.
        after: Duration,
    },
    /// The host could not be resolved or reached, or the connection broke.
    /// Record the link as unverified.
    #[error("could not reach `{url}`: {detail}; the link stays unverified, check it and try again later")]
    Unreachable {
        /// The URL of the hop that failed.
        url: String,
        /// What failed, escaped like [`FetchError::InvalidRedirect`]'s
        /// `location` (it can quote what the remote side sent).
        detail: String,
    },
    /// Storing the body failed.
    #[error("the page was fetched but could not be stored: {0}")]
    Store(#[from] BlobError),
    /// The policy itself is unusable.
    #[error("invalid fetch policy: {problem}")]
    InvalidPolicy {
        /// What is wrong and what to write instead.
        problem: String,
    },
}

impl FetchError {
    /// Whether the failure says nothing about the link itself (it could not
    /// be reached in time), so the caller records the link as "unverified"
    /// rather than as refused or broken.
    pub fn leaves_link_unverified(&self) -> bool {
        matches!(
            self,
            Self::Unreachable { .. } | Self::Timeout { .. } | Self::ErrorStatus { .. }
        )
    }
}

/// Fetches `url` under `policy` and stores the body in `store`.
///
/// Rules, checked on the requested URL and again on every redirect hop:
/// only `http` and `https`; no user name or password in the URL; the host is
/// resolved here and refused if any address it resolves to is not public (see
/// [`AddressClass`]) or if it is a metadata service name, unless the host,
/// address or network is in `policy.allow`. The connection then goes only to
/// the addresses that were checked (the client is built per hop with those
/// addresses pinned and every other name lookup refused), so DNS rebinding
/// between check and connect cannot redirect it. Redirects are followed by
/// hand, at most `policy.max_redirects`. `policy.timeout` bounds the whole
/// capture and `policy.max_bytes` the body; a refused, failed or abandoned
/// capture stores nothing, and neither does a final answer that is not 2xx
/// ([`FetchError::ErrorStatus`]).
///
/// Strings the remote side chooses (a redirect's `Location`, error details)
/// are escaped with [`custody_core::text::escape`] before they are put in an
/// error, so they reach the ledger without control or bidi characters. URLs
/// are written by the URL parser, which percent-encodes or punycodes every
/// non-ASCII character.
pub async fn fetch_snapshot(
    url: &str,
    policy: &FetchPolicy,
    store: &dyn BlobStore,
) -> Result<Snapshot, FetchError> {
    fetch_snapshot_with(url, policy, store, &SystemResolver).await
}

/// [`fetch_snapshot`] with host names resolved by `resolver`.
pub async fn fetch_snapshot_with(
    url: &str,
    policy: &FetchPolicy,
    store: &dyn BlobStore,
    resolver: &dyn HostResolver,
) -> Result<Snapshot, FetchError> {
    policy.validate()?;
    match tokio::time::timeout(
        policy.timeout,
        fetch_within_timeout(url, policy, store, resolver),
    )
    .await
    {
        Ok(result) => result,
        // The dropped future removes any partly stored body.
        Err(_elapsed) => Err(FetchError::Timeout {
            url: url.to_string(),
            after: policy.timeout,
        }),
    }
}

async fn fetch_within_timeout(
    text: &str,
    policy: &FetchPolicy,
    store: &dyn BlobStore,
    resolver: &dyn HostResolver,
) -> Result<Snapshot, FetchError> {
    crate::install_crypto_provider();
    let requested = parse_link(text)?;
    let mut current = requested.clone();
    let mut redirects_followed = 0u32;
    loop {
        let pinned_addresses = check_destination(&current, policy, resolver).await?;
        let client = client_for(&current, &pinned_addresses, policy)?;
        let response = client
            .get(current.clone())
            .header(ACCEPT, "*/*")
            .send()
            .await
            .map_err(|error| unreachable(&current, &error))?;
        let status = response.status();

        if status.is_redirection() {
            if let Some(location) = response.headers().get(LOCATION) {
                // The remote server's bytes: escaped before they can reach an
                // error message, and so the ledger.
                let location_text =
                    custody_core::text::escape(&String::from_utf8_lossy(location.as_bytes()))
                        .into_owned();
                if redirects_followed >= policy.max_redirects {
                    return Err(FetchError::TooManyRedirects {
                        url: requested.to_string(),
                        limit: policy.max_redirects,
                    });
                }
                let invalid_redirect = |problem: String| FetchError::InvalidRedirect {
                    url: current.to_string(),
                    location: location_text.clone(),
                    problem,
                };
                let location = location
                    .to_str()
                    .map_err(|_| invalid_redirect("the Location header is not text".into()))?;
                let next = current
                    .join(location)
                    .map_err(|error| invalid_redirect(error.to_string()))?;
                check_link_form(&next)?;
                tracing::debug!(from = %current, to = %next, "following a redirect");
                redirects_followed += 1;
                current = next;
                continue;
            }
        }

        if !status.is_success() {
            // Nothing is stored: a body no record would reference is only
            // clutter that `verify` reports (`evidence.blob-unreferenced`).
            return Err(FetchError::ErrorStatus {
                url: current.to_string(),
                status: status.as_u16(),
            });
        }
        let fetched_at = now_rfc3339();
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        if response
            .content_length()
            .is_some_and(|length| length > policy.max_bytes)
        {
            return Err(FetchError::TooLarge {
                url: current.to_string(),
                limit: policy.max_bytes,
            });
        }
        let body = Box::pin(response.bytes_stream().map_err(std::io::Error::other));
        let mut reader = StreamReader::new(body);
        let blob = store
            .put_stream(&mut reader, policy.max_bytes)
            .await
            .map_err(|error| match error {
                BlobError::TooLarge { .. } => FetchError::TooLarge {
                    url: current.to_string(),
                    limit: policy.max_bytes,
                },
                BlobError::Read { source } => FetchError::Unreachable {
                    url: current.to_string(),
                    detail: custody_core::text::escape(&format!(
                        "the connection broke while the page was read ({source})"
                    ))
                    .into_owned(),
                },
                other => FetchError::Store(other),
            })?;
        return Ok(Snapshot {
            requested_url: requested.to_string(),
            final_url: current.to_string(),
            status: status.as_u16(),
            fetched_at,
            blob,
            content_type,
        });
    }
}

/// Parses a link and checks its form.
fn parse_link(text: &str) -> Result<Url, FetchError> {
    let url = Url::parse(text.trim()).map_err(|error| FetchError::InvalidUrl {
        url: text.to_string(),
        problem: error.to_string(),
    })?;
    check_link_form(&url)?;
    Ok(url)
}

fn check_link_form(url: &Url) -> Result<(), FetchError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(FetchError::UrlNotAllowed {
            url: url.to_string(),
            reason: "only http:// and https:// links can be captured",
        });
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(FetchError::UrlNotAllowed {
            url: url.to_string(),
            reason: "links with a user name or password are not captured; remove the `user:password@` part",
        });
    }
    if url.host().is_none() {
        return Err(FetchError::InvalidUrl {
            url: url.to_string(),
            problem: "it has no host".into(),
        });
    }
    Ok(())
}

/// Resolves the URL's host and checks every address against the policy.
/// Returns the addresses to pin the connection to (empty for an IP literal,
/// which needs no resolution).
async fn check_destination(
    url: &Url,
    policy: &FetchPolicy,
    resolver: &dyn HostResolver,
) -> Result<Vec<SocketAddr>, FetchError> {
    let port = url.port_or_known_default().unwrap_or(80);
    let check = |address: IpAddr| -> Result<(), FetchError> {
        let class = classify(address);
        if class == AddressClass::Public || policy.allows_address(address) {
            Ok(())
        } else {
            Err(FetchError::Refused {
                url: url.to_string(),
                reason: class,
                address: address.to_string(),
            })
        }
    };
    match url.host() {
        Some(Host::Ipv4(address)) => check(IpAddr::V4(address)).map(|()| Vec::new()),
        Some(Host::Ipv6(address)) => check(IpAddr::V6(address)).map(|()| Vec::new()),
        Some(Host::Domain(name)) => {
            let host = normalize_host(name);
            let host_allowed = policy.allows_host(&host);
            if !host_allowed && METADATA_HOST_NAMES.contains(&host.as_str()) {
                return Err(FetchError::Refused {
                    url: url.to_string(),
                    reason: AddressClass::Metadata,
                    address: host,
                });
            }
            let addresses: Vec<SocketAddr> =
                resolver
                    .resolve(name, port)
                    .await
                    .map_err(|error| FetchError::Unreachable {
                        url: url.to_string(),
                        detail: custody_core::text::escape(&format!(
                            "the host name `{name}` could not be resolved ({error})"
                        ))
                        .into_owned(),
                    })?;
            if addresses.is_empty() {
                return Err(FetchError::Unreachable {
                    url: url.to_string(),
                    detail: format!("the host name `{name}` has no addresses"),
                });
            }
            // Every address, not only the first: the connection may go to
            // any of them.
            if !host_allowed {
                for address in &addresses {
                    check(address.ip())?;
                }
            }
            Ok(addresses)
        }
        None => Err(FetchError::InvalidUrl {
            url: url.to_string(),
            problem: "it has no host".into(),
        }),
    }
}

/// A client for one hop: no proxy (it would choose the destination), no
/// automatic redirects, and name resolution limited to the checked addresses.
fn client_for(
    url: &Url,
    pinned_addresses: &[SocketAddr],
    policy: &FetchPolicy,
) -> Result<reqwest::Client, FetchError> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .user_agent(USER_AGENT)
        .connect_timeout(policy.timeout)
        .pool_max_idle_per_host(0)
        .dns_resolver(Arc::new(RefuseUnpinnedNames));
    if let Some(Host::Domain(name)) = url.host() {
        builder = builder.resolve_to_addrs(name, pinned_addresses);
    }
    builder.build().map_err(|error| unreachable(url, &error))
}

/// A resolver that resolves nothing: every name the client may use was
/// pinned with `resolve_to_addrs`, so a lookup reaching this resolver means a
/// name slipped past the checks, and it must fail rather than go to DNS.
struct RefuseUnpinnedNames;

impl reqwest::dns::Resolve for RefuseUnpinnedNames {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let message = format!(
            "refusing to resolve `{}`: only checked addresses may be used",
            name.as_str()
        );
        Box::pin(async move { Err(message.into()) })
    }
}

fn unreachable(url: &Url, error: &reqwest::Error) -> FetchError {
    let mut detail = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    FetchError::Unreachable {
        url: url.to_string(),
        detail: custody_core::text::escape(&detail).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_from_toml() {
        let policy: FetchPolicy = toml::from_str(
            r#"
            timeout_seconds = 1.5
            max_bytes = 1000
            allow = ["127.0.0.1", "10.0.0.0/8", "wiki.internal"]
            "#,
        )
        .unwrap();
        assert_eq!(policy.timeout, Duration::from_millis(1500));
        assert_eq!(policy.max_bytes, 1000);
        assert_eq!(policy.max_redirects, FetchPolicy::default().max_redirects);
        assert_eq!(policy.allow.len(), 3);
        assert!(policy.allows_host("WIKI.internal."));
        assert!(policy.allows_address("10.9.9.9".parse().unwrap()));
        assert!(!policy.allows_address("11.0.0.1".parse().unwrap()));

        let error = toml::from_str::<FetchPolicy>(r#"allow = ["http://x/"]"#).unwrap_err();
        assert!(
            error.to_string().contains("not an allow list entry"),
            "{error}"
        );
        assert!(toml::from_str::<FetchPolicy>("timeout_seconds = -1").is_err());
        assert!(toml::from_str::<FetchPolicy>("max_byte = 5").is_err());
    }

    /// A resolver that answers every name with fixed addresses.
    struct Fixed(Vec<IpAddr>);

    impl HostResolver for Fixed {
        fn resolve<'a>(
            &'a self,
            _host: &'a str,
            port: u16,
        ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<SocketAddr>>> + Send + 'a>> {
            let addresses = self.0.iter().map(|ip| SocketAddr::new(*ip, port)).collect();
            Box::pin(async move { Ok(addresses) })
        }
    }

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|ip| ip.parse().unwrap()).collect()
    }

    /// Every resolved address is checked, wherever the private one is in the
    /// answer; a name with only public addresses goes on to connect to them.
    #[tokio::test]
    async fn a_name_resolving_to_a_public_and_a_private_address_is_refused() {
        let url = Url::parse("https://mixed.example.com/doc").unwrap();
        let policy = FetchPolicy::default();
        for answer in [["93.184.215.14", "10.0.0.7"], ["10.0.0.7", "93.184.215.14"]] {
            match check_destination(&url, &policy, &Fixed(ips(&answer))).await {
                Err(FetchError::Refused {
                    reason, address, ..
                }) => {
                    assert_eq!(reason, AddressClass::Private, "{answer:?}");
                    assert_eq!(address, "10.0.0.7", "{answer:?}");
                }
                other => panic!("{answer:?}: expected a refusal, got {other:?}"),
            }
        }
        let three = ["93.184.215.14", "1.1.1.1", "169.254.169.254"];
        assert!(matches!(
            check_destination(&url, &policy, &Fixed(ips(&three))).await,
            Err(FetchError::Refused {
                reason: AddressClass::Metadata,
                ..
            })
        ));
        let public = Fixed(ips(&[
            "93.184.215.14",
            "2606:2800:21f:cb07:6820:80da:af6b:8b2c",
        ]));
        let pinned = check_destination(&url, &policy, &public).await.unwrap();
        assert_eq!(
            pinned,
            vec![
                "93.184.215.14:443".parse::<SocketAddr>().unwrap(),
                "[2606:2800:21f:cb07:6820:80da:af6b:8b2c]:443"
                    .parse()
                    .unwrap()
            ],
            "only public addresses: the connection is pinned to all of them"
        );
    }

    #[test]
    fn zero_limits_are_refused() {
        let zero_timeout = FetchPolicy {
            timeout: Duration::ZERO,
            ..FetchPolicy::default()
        };
        assert!(matches!(
            zero_timeout.validate(),
            Err(FetchError::InvalidPolicy { .. })
        ));
        let zero_bytes = FetchPolicy {
            max_bytes: 0,
            ..FetchPolicy::default()
        };
        assert!(matches!(
            zero_bytes.validate(),
            Err(FetchError::InvalidPolicy { .. })
        ));
    }
}
