//! Single sign-on with OpenID Connect against a real, certified OpenID
//! provider (the `oidc-provider` npm package, started by
//! `tests/oidc/provider.mjs` on a loopback port; `cargo xtask test` installs
//! it and names its directory in `CUSTODY_OIDC_PROVIDER`).
//!
//! The browser sign-in (authorization code flow with PKCE, `state` and
//! `nonce`) is driven over HTTP by a cookie-keeping client through the
//! provider's redirects, then finished by `custody_server::oidc`'s library
//! functions against the in-process server's store. The API is configured
//! with `audience` = the client, so it accepts the provider's ID tokens as
//! bearer tokens (the provider issues opaque access tokens unless resource
//! indicators are set up). Every refusal is tested with a token crafted for
//! it, signed with the provider's real key (or forged where that is the
//! point), and records nothing.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use custody_server::oidc::{Oidc, OidcConfig};
use serde_json::{json, Value};

use crate::common::{self, Body, Server, TestStore, STORES};

pub(crate) const CLIENT: &str = "console";
/// A confidential client (`client_secret_basic`), with its secret.
const CONFIDENTIAL: &str = "console-confidential";
const SECRET: &str = "a secret/with+characters&to=encode";

fn provider_dir() -> String {
    std::env::var("CUSTODY_OIDC_PROVIDER").unwrap_or_else(|_| {
        panic!(
            "CUSTODY_OIDC_PROVIDER is not set: the OIDC tests need the `oidc-provider` npm package. \
             Run `cargo xtask test`, which installs it, or install it yourself: \
             `npm install --prefix target/oidc-provider oidc-provider@9.13.3` and \
             `export CUSTODY_OIDC_PROVIDER=$PWD/target/oidc-provider`"
        )
    })
}

fn script() -> String {
    format!("{}/tests/oidc/provider.mjs", env!("CARGO_MANIFEST_DIR"))
}

fn node(args: &[&str], input: Option<&str>) -> String {
    let mut child = Command::new("node")
        .arg(script())
        .args(args)
        .env("CUSTODY_OIDC_PROVIDER", provider_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run node (Node.js 20 is needed for the OIDC tests)");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.unwrap_or("").as_bytes()).unwrap();
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "provider.mjs {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// An RSA signing key: the private JWK (for the provider and for forging),
/// its `kid`, and its public key as PEM (the HS/RS confusion's "secret").
pub(crate) struct Key {
    private: Value,
    kid: String,
    public_pem: String,
}

pub(crate) fn keygen() -> Key {
    let generated: Value = serde_json::from_str(&node(&["keygen"], None)).unwrap();
    Key {
        kid: generated["private"]["kid"].as_str().unwrap().to_string(),
        private: generated["private"].clone(),
        public_pem: generated["public_pem"].as_str().unwrap().to_string(),
    }
}

/// A token with `header` and `claims`, signed by `key` (RS256).
fn sign(key: &Key, header: Value, claims: &Value) -> String {
    node(
        &["sign"],
        Some(&json!({"header": header, "claims": claims, "key": key.private}).to_string()),
    )
}

/// The provider process, on its port; stopped on drop.
pub(crate) struct Provider {
    child: Child,
    port: u16,
    root: tempfile::TempDir,
}

impl Provider {
    fn start(port: u16, keys: &[&Key], root: tempfile::TempDir) -> Provider {
        Provider::start_for(port, keys, root, &redirect_url())
    }

    /// Starts the provider on `port` signing with `keys`, its clients
    /// registered with the redirect URI `redirect`.
    pub(crate) fn start_for(
        port: u16,
        keys: &[&Key],
        root: tempfile::TempDir,
        redirect: &str,
    ) -> Provider {
        let config = json!({
            "port": port,
            "keys": keys.iter().map(|key| key.private.clone()).collect::<Vec<_>>(),
            "accounts_file": root.path().join("accounts.json"),
            "clients": [{
                "client_id": CLIENT,
                "token_endpoint_auth_method": "none",
                "redirect_uris": [redirect],
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
            }, {
                "client_id": CONFIDENTIAL,
                "client_secret": SECRET,
                "token_endpoint_auth_method": "client_secret_basic",
                "redirect_uris": [redirect],
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
            }],
        });
        let path = root.path().join("provider.json");
        std::fs::write(&path, config.to_string()).unwrap();
        let mut child = Command::new("node")
            .arg(script())
            .arg("serve")
            .arg(&path)
            .env("CUSTODY_OIDC_PROVIDER", provider_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the OpenID provider");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = lines
            .next()
            .expect("the provider says it is ready")
            .unwrap();
        assert!(ready.starts_with("ready "), "{ready}");
        Provider { child, port, root }
    }

    pub(crate) fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub(crate) fn set_accounts(&self, accounts: &Value) {
        std::fs::write(self.root.path().join("accounts.json"), accounts.to_string()).unwrap();
    }

    /// Stops it and starts it again on the same port with `keys`, keeping
    /// the accounts: the issuer rotated its keys.
    fn rotate(mut self, keys: &[&Key]) -> Provider {
        self.stop();
        let root = std::mem::replace(&mut self.root, tempfile::tempdir().unwrap());
        Provider::start(self.port, keys, root)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.stop();
    }
}

fn redirect_url() -> String {
    "http://127.0.0.1:9/oidc/callback".to_string()
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn oidc_config(issuer: &str) -> String {
    format!(
        r#"
[oidc]
issuer = "{issuer}"
audience = "{CLIENT}"
client_id = "{CLIENT}"
redirect_url = "{}"
allowed_groups = ["approvers", "team-*"]
unknown_key_refresh_seconds = 1
"#,
        redirect_url()
    )
}

/// Follows the provider's redirects from `url` with a cookie-keeping
/// client until it sends the browser to the redirect URL; returns that
/// URL's query (`code`, `state`, `iss`).
async fn browse(url: &str) -> Vec<(String, String)> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut cookies: Vec<(String, String)> = Vec::new();
    let mut url = url.to_string();
    for _ in 0..10 {
        let cookie = cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ");
        let response = client
            .get(&url)
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        for set in response.headers().get_all("set-cookie") {
            let pair = set.to_str().unwrap().split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            cookies.retain(|(known, _)| known != name);
            cookies.push((name.to_string(), value.to_string()));
        }
        let location = response
            .headers()
            .get("location")
            .unwrap_or_else(|| panic!("{url} answered {} without a redirect", response.status()))
            .to_str()
            .unwrap()
            .to_string();
        let next = reqwest::Url::parse(&url).unwrap().join(&location).unwrap();
        if next.as_str().starts_with(&redirect_url()) {
            return next
                .query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
        }
        url = next.to_string();
    }
    panic!("the provider never sent the browser back");
}

fn param(query: &[(String, String)], name: &str) -> String {
    query
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.clone())
        .unwrap_or_else(|| panic!("no {name} in {query:?}"))
}

/// The administration record's events, as JSON.
fn admin_record(server: &Server) -> Vec<Value> {
    server.cli_json(&server.admin_token, &["admin", "record"])["events"]
        .as_array()
        .unwrap()
        .clone()
}

fn claims(issuer: &str, subject: &str, username: &str, now: i64) -> Value {
    json!({"iss": issuer, "aud": CLIENT, "sub": subject, "preferred_username": username,
        "groups": ["approvers"], "iat": now, "exp": now + 600, "nonce": "n-1"})
}

#[test]
fn oidc_sign_in_provisions_principals_on_the_record_and_refuses_every_crafted_token() {
    for store in STORES {
        oidc_on(store);
    }
}

fn oidc_on(store: TestStore) {
    let key = keygen();
    let port = free_port();
    let provider = Provider::start(port, &[&key], tempfile::tempdir().unwrap());
    provider.set_accounts(&json!({
        "alice-sub": {"preferred_username": "alice", "name": "Alice",
                      "groups": ["approvers", "admins", "team-payments", "other"]},
        "bob-sub": {"preferred_username": "bob", "groups": []},
    }));
    let issuer = provider.issuer();
    let (server, _) = Server::start_in_process(store, Some(&oidc_config(&issuer)));
    let config: OidcConfig = serde_json::from_value(json!({
        "issuer": issuer, "audience": CLIENT, "client_id": CLIENT,
        "redirect_url": redirect_url(), "allowed_groups": ["approvers", "team-*"],
        "unknown_key_refresh_seconds": 1,
    }))
    .unwrap();
    let oidc = Oidc::new(config, server.store(), server.shared_clock()).unwrap();

    // 1. The browser sign-in: code flow with PKCE, through the provider.
    let sign_in = |login: &str| {
        server.block_on(async {
            let (url, pending) = oidc.begin_login("/inbox", None).await.unwrap();
            assert!(url.contains("code_challenge_method=S256"), "{url}");
            let back = browse(&format!("{url}&login_hint={login}")).await;
            oidc.finish_login(pending, &param(&back, "code"), &param(&back, "state"))
                .await
        })
    };
    let before = admin_record(&server).len();
    let alice = sign_in("alice-sub").expect("alice signs in");
    assert_eq!(alice.principal.id.as_str(), "alice");
    // `admins` is not allowed; `other` is in no allowed group or prefix.
    assert_eq!(alice.principal.groups, vec!["approvers", "team-payments"]);
    assert_eq!(alice.return_to, "/inbox");
    let record = admin_record(&server);
    assert_eq!(record.len(), before + 1);
    let added = record.last().unwrap();
    assert_eq!(added["kind"], "principal_added", "{added:#}");
    assert_eq!(added["payload"]["principal"], "alice");
    assert_eq!(added["actor"]["principal"], "alice");
    assert_eq!(added["actor"]["via"], "web");
    assert_eq!(
        added["actor"]["auth"],
        json!({"method": "oidc", "issuer": issuer, "subject": "alice-sub"}),
        "{added:#}"
    );
    // Signed in again with the same groups: nothing recorded.
    sign_in("alice-sub").expect("alice signs in again");
    assert_eq!(admin_record(&server).len(), before + 1);

    // A confidential client signs in with `client_secret_basic`; the
    // wrong secret is refused by the issuer, and nothing is recorded.
    let confidential = |secret: &str| {
        let config: OidcConfig = serde_json::from_value(json!({
            "issuer": issuer, "audience": CLIENT, "client_id": CONFIDENTIAL,
            "redirect_url": redirect_url(), "allowed_groups": ["approvers", "team-*"],
        }))
        .unwrap();
        let client = Oidc::with_client_secret(
            config,
            Some(secret.to_string()),
            server.store(),
            server.shared_clock(),
        )
        .unwrap();
        server.block_on(async {
            let (url, pending) = client.begin_login("/", None).await.unwrap();
            let back = browse(&format!("{url}&login_hint=alice-sub")).await;
            client
                .finish_login(pending, &param(&back, "code"), &param(&back, "state"))
                .await
        })
    };
    assert_eq!(
        confidential(SECRET)
            .expect("the confidential client")
            .principal
            .id
            .as_str(),
        "alice"
    );
    let refused = confidential("not the secret").expect_err("a wrong client secret");
    assert_eq!(refused.status, 401);
    assert!(
        refused.detail.contains("invalid_client"),
        "{}",
        refused.detail
    );
    assert_eq!(admin_record(&server).len(), before + 1);

    // 2. The issuer changes her groups: recorded at the next sign-in.
    provider.set_accounts(&json!({
        "alice-sub": {"preferred_username": "alice", "groups": ["team-payments"]},
        "bob-sub": {"preferred_username": "bob", "groups": []},
    }));
    let again = sign_in("alice-sub").expect("alice signs in with new groups");
    assert_eq!(again.principal.groups, vec!["team-payments"]);
    let changed = admin_record(&server).last().unwrap().clone();
    assert_eq!(changed["kind"], "principal_groups_changed", "{changed:#}");
    assert_eq!(
        changed["payload"]["previous"],
        json!(["approvers", "team-payments"])
    );
    assert_eq!(changed["payload"]["groups"], json!(["team-payments"]));
    assert_eq!(changed["actor"]["principal"], "alice");

    // 3. The API with the provider's ID token (audience = the client).
    let id_token = server.block_on(async {
        let (url, pending) = oidc.begin_login("/", None).await.unwrap();
        let back = browse(&format!("{url}&login_hint=bob-sub")).await;
        let verifier = pending.code_verifier.clone();
        let answer: Value = reqwest::Client::new()
            .post(format!("{issuer}/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "grant_type=authorization_code&client_id={CLIENT}&code={}&code_verifier={verifier}&redirect_uri={}",
                param(&back, "code"),
                "http%3A%2F%2F127.0.0.1%3A9%2Foidc%2Fcallback"
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["id_token"].as_str().unwrap().to_string()
    });
    let whoami = server.http("GET", "/v1/whoami", Some(&id_token), &[], Body::None);
    assert_eq!(whoami.status, 200, "{}", whoami.text);
    assert_eq!(whoami.json["principal"]["id"], "bob");
    let created = server.http(
        "POST",
        "/v1/cases",
        Some(&id_token),
        &[],
        Body::Json(json!({"subject": {"kind": "user", "id": "zoe"}, "entitlement": "db-read"})),
    );
    assert_eq!(created.status, 201, "{}", created.text);
    let case = created.json["case_id"].as_str().unwrap().to_string();
    let shown = server.show(&server.admin_token, &case);
    let actor = &shown["events"][0]["actor"];
    assert_eq!(actor["principal"], "bob");
    assert_eq!(
        actor["auth"],
        json!({"method": "oidc", "issuer": issuer, "subject": "bob-sub"})
    );
    assert!(
        !shown.to_string().contains(&id_token),
        "the token itself is never recorded"
    );

    // 4. Every refusal, with a token crafted for it: 401 (or 403 for the
    // identity rules), and nothing recorded.
    let now = custody_core::Timestamp::now().as_micros() / 1_000_000;
    let header = json!({"alg": "RS256", "kid": key.kid});
    let good = claims(&issuer, "bob-sub", "bob", now);
    let with = |change: &dyn Fn(&mut Value)| {
        let mut claims = good.clone();
        change(&mut claims);
        sign(&key, header.clone(), &claims)
    };
    let other_key = keygen();
    let b64 = |value: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
    };
    let mut tampered = sign(&key, header.clone(), &good);
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let hs256 = node(
        &["sign"],
        Some(
            &json!({"header": {"alg": "HS256", "kid": key.kid}, "claims": good,
                    "hmac_secret": key.public_pem})
            .to_string(),
        ),
    );
    let refusals: Vec<(&str, String, u16)> = vec![
        (
            "wrong audience",
            with(&|c| c["aud"] = json!("someone-else")),
            401,
        ),
        (
            "wrong audience among several",
            with(&|c| c["aud"] = json!(["a", "b"])),
            401,
        ),
        (
            "wrong issuer",
            with(&|c| c["iss"] = json!("http://127.0.0.1:1")),
            401,
        ),
        ("expired", with(&|c| c["exp"] = json!(now - 3600)), 401),
        (
            "not yet valid",
            with(&|c| c["nbf"] = json!(now + 3600)),
            401,
        ),
        (
            "issued in the future",
            with(&|c| c["iat"] = json!(now + 3600)),
            401,
        ),
        (
            "alg none",
            format!("{}.{}.", b64(&json!({"alg": "none"})), b64(&good)),
            401,
        ),
        (
            "unknown kid",
            sign(
                &other_key,
                json!({"alg": "RS256", "kid": other_key.kid}),
                &good,
            ),
            401,
        ),
        (
            "another key under the provider's kid",
            sign(&other_key, header.clone(), &good),
            401,
        ),
        ("HS256 with the RSA public key as secret", hs256, 401),
        ("bad signature", tampered, 401),
        ("not a token", "eyJhbGciOiJSUzI1NiJ9.e30".to_string(), 401),
        ("garbage", "a.b.c".to_string(), 401),
        (
            "subject mismatch: another subject names alice",
            with(&|c| {
                c["sub"] = json!("mallory-sub");
                c["preferred_username"] = json!("alice");
            }),
            403,
        ),
        (
            "the admin made by init is bound to no identity",
            with(&|c| {
                c["sub"] = json!("mallory-sub");
                c["preferred_username"] = json!("admin");
            }),
            403,
        ),
        (
            "a bound identity names another principal",
            with(&|c| c["preferred_username"] = json!("carol")),
            403,
        ),
        (
            "an invalid principal name",
            with(&|c| {
                c["sub"] = json!("new-sub");
                c["preferred_username"] = json!("Not A Name");
            }),
            403,
        ),
        (
            "system",
            with(&|c| {
                c["sub"] = json!("new-sub");
                c["preferred_username"] = json!("system");
            }),
            403,
        ),
    ];
    let size = server.log_size();
    for (name, token, status) in &refusals {
        let response = server.http("GET", "/v1/whoami", Some(token), &[], Body::None);
        assert_eq!(response.status, *status, "{name}: {}", response.text);
        assert!(
            response
                .header("content-type")
                .is_some_and(|t| t.starts_with("application/problem+json")),
            "{name}"
        );
        assert!(
            !response.text.contains(token.as_str()),
            "{name}: the token is echoed"
        );
        if *status == 403 && name.contains("mismatch") {
            assert_eq!(response.json["rule"], "oidc.identity-mismatch", "{name}");
        }
        assert_eq!(server.log_size(), size, "{name}: something was recorded");
    }

    // The browser sign-in's own refusals: a mismatched state, a mismatched nonce.
    let wrong_state = server.block_on(async {
        let (url, pending) = oidc.begin_login("/", None).await.unwrap();
        let back = browse(&format!("{url}&login_hint=alice-sub")).await;
        oidc.finish_login(pending, &param(&back, "code"), "another-state")
            .await
    });
    let problem = wrong_state.expect_err("a mismatched state is refused");
    assert_eq!(problem.status, 401);
    assert!(problem.detail.contains("state"), "{}", problem.detail);
    let id_token_for_alice = sign(
        &key,
        header.clone(),
        &claims(&issuer, "alice-sub", "alice", now),
    );
    let wrong_nonce = server.block_on(oidc.accept_id_token(&id_token_for_alice, "another-nonce"));
    let problem = wrong_nonce.expect_err("a mismatched nonce is refused");
    assert!(problem.detail.contains("nonce"), "{}", problem.detail);
    let mut for_the_api = claims(&issuer, "alice-sub", "alice", now);
    for_the_api["aud"] = json!(["api", CLIENT]);
    let no_azp = sign(&key, header.clone(), &for_the_api);
    let problem = server
        .block_on(oidc.accept_id_token(&no_azp, "n-1"))
        .expect_err("several audiences and no azp");
    assert!(problem.detail.contains("azp"), "{}", problem.detail);
    assert_eq!(
        server.log_size(),
        size,
        "the browser refusals recorded something"
    );

    // 5. Two first sign-ins at once add one principal.
    let carol = sign(
        &key,
        header.clone(),
        &claims(&issuer, "carol-sub", "carol", now),
    );
    let (first, second) = server.block_on(async {
        tokio::join!(
            oidc.accept_id_token(&carol, "n-1"),
            oidc.accept_id_token(&carol, "n-1")
        )
    });
    assert_eq!(first.unwrap().principal.id.as_str(), "carol");
    assert_eq!(second.unwrap().principal.id.as_str(), "carol");
    let carols = admin_record(&server)
        .iter()
        .filter(|event| {
            event["kind"] == "principal_added" && event["payload"]["principal"] == "carol"
        })
        .count();
    assert_eq!(carols, 1);

    // 6. The issuer rotates its keys: a token under the new key is accepted
    // without restarting the server, and the old key is no longer trusted.
    let new_key = keygen();
    let provider = provider.rotate(&[&new_key]);
    // Past the rate limit of the refresh an unknown kid forced above.
    std::thread::sleep(Duration::from_millis(1100));
    let rotated = sign(&new_key, json!({"alg": "RS256", "kid": new_key.kid}), &good);
    let response = server.http("GET", "/v1/whoami", Some(&rotated), &[], Body::None);
    assert_eq!(response.status, 200, "{}", response.text);
    let old = sign(&key, header.clone(), &good);
    let response = server.http("GET", "/v1/whoami", Some(&old), &[], Body::None);
    assert_eq!(response.status, 401, "the retired key: {}", response.text);
    drop(provider);

    // `verify` accepts the principals OIDC provisioned.
    server.assert_verify_ok();
    if server.database.is_none() {
        restored_from_a_bundle(&server, &issuer);
    }

    // A binding inserted behind the store's back (an identity made to sign
    // in as the admin) is a finding.
    let insert = format!(
        "INSERT INTO oidc_identities (issuer, subject, principal_id, bound_at)
         VALUES ('{issuer}', 'mallory-sub', 'admin', '2026-01-01T00:00:00.000000Z')"
    );
    let (output, report) = match &server.database {
        Some(database) => {
            database.execute(&insert).unwrap();
            server.verify_with(&[])
        }
        None => {
            let copy = common::tamper::copy_of(&server.data);
            let mut db = common::tamper::Db::open(copy.path());
            db.run(&insert);
            drop(db);
            common::verify_dir(copy.path())
        }
    };
    assert_eq!(output.status.code(), Some(1), "{report:#}");
    let critical: Vec<&Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|finding| finding["severity"] != "info")
        .collect();
    assert_eq!(critical.len(), 1, "{report:#}");
    assert_eq!(critical[0]["code"], "admin.identity-unrecorded");
    assert!(
        critical[0]["message"]
            .as_str()
            .unwrap()
            .contains("mallory-sub"),
        "{report:#}"
    );
}

/// A whole-log bundle carries the bindings: an import rebuilds them from
/// the `principal_added` events (its `verify` compares the two), and the
/// identity signs in as the same principal on the restored store.
fn restored_from_a_bundle(server: &Server, issuer: &str) {
    let root = tempfile::tempdir().unwrap();
    let bundle = root.path().join("whole.jsonl");
    // A whole-log bundle ends at a signed checkpoint: sign one now, so that
    // it holds the sign-ins above (the server's own is on a timer).
    server.sign_checkpoint();
    let output = common::command()
        .args(["export", "--format", "bundle", "--data"])
        .arg(&server.data)
        .arg("--out")
        .arg(&bundle)
        .output()
        .unwrap();
    common::assert_success(&output, "custody export --format bundle");
    let imported = root.path().join("imported");
    let key = server.log_keys()[0].clone();
    let output = common::command()
        .args(["import", "--bundle"])
        .arg(&bundle)
        .arg("--data")
        .arg(&imported)
        .args(["--key", &key])
        .output()
        .unwrap();
    common::assert_success(&output, "custody import --data");
    std::fs::copy(
        server.data.join("log-signing.key"),
        imported.join("log-signing.key"),
    )
    .unwrap();
    common::assert_verify_ok(&imported);
    let bound = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = custody_store::Store::open(&imported).await.unwrap();
        store.oidc_identity(issuer, "alice-sub").await.unwrap()
    });
    assert_eq!(
        bound.map(|principal| principal.id.to_string()).as_deref(),
        Some("alice")
    );
}
