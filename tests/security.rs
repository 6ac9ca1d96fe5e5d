//! Security: `AUTH` with a password and with an ACL user, a wrong password
//! answered at once as an authentication error, TLS (`rediss://`, with the
//! `tls` feature) against a server and certificates the test makes itself,
//! and the password kept out of every `Debug` output, error and event.

mod support;

use iftb_cache::{Bar, CacheConfig, CacheManager, Error, ErrorKind, Timeframe};
use std::time::{Duration, Instant};
use support::RedisServer;

const PASSWORD: &str = "pw-7f3a9c-DO-NOT-PRINT";
const ALICE_PASSWORD: &str = "alice-4b2e81-DO-NOT-PRINT";

/// A server with a password on the default user, and an ACL user `alice`
/// who may touch only the `iftb:` namespace.
fn secured_server() -> RedisServer {
    let alice = format!(">{ALICE_PASSWORD}");
    RedisServer::start_with(&[
        "--requirepass",
        PASSWORD,
        "--user",
        "alice",
        "on",
        &alice,
        "~iftb:*",
        "+@all",
    ])
}

fn config_at(url: &str) -> CacheConfig {
    CacheConfig::builder()
        .redis_url(url)
        .connect_timeout(Duration::from_millis(500))
        .response_timeout(Duration::from_millis(500))
        .build()
        .expect("config")
}

/// Writes and reads bars and a value: every kind of command the cache sends
/// (script, sorted-set reads, strings, SCAN + UNLINK) passes the ACL.
async fn serves(cache: &CacheManager) {
    let bars = [Bar::new(60_000, 1.0, 2.0, 0.5, 1.5, 3.0)];
    let o = cache.ohlcv();
    o.set_bars("BTCUSDT", Timeframe::M1, &bars).await.unwrap();
    let latest = o.get_latest_bar("BTCUSDT", Timeframe::M1).await.unwrap();
    assert_eq!(latest, Some(bars[0]));
    cache.client().set("k", "v", None).await.unwrap();
    assert_eq!(cache.client().get("k").await.unwrap().as_deref(), Some("v"));
    assert!(cache.health_check().await);
    // The series (its runs and its head) and the value.
    assert_eq!(cache.clear_all().await.unwrap(), 3);
}

/// How many failed `AUTH`s the server logged (`ACL LOG`, reason `auth`).
fn failed_auths(server: &RedisServer) -> u64 {
    let mut raw = server.raw_at(&server.url_with(&format!(":{PASSWORD}")));
    let log: Vec<redis::Value> = redis::cmd("ACL").arg("LOG").query(&mut raw).unwrap();
    let mut total = 0;
    for entry in log {
        let fields: Vec<(String, redis::Value)> = redis::from_redis_value(entry).unwrap();
        let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v);
        let reason: String = redis::from_redis_value(field("reason").unwrap().clone()).unwrap();
        if reason == "auth" {
            let count: u64 = redis::from_redis_value(field("count").unwrap().clone()).unwrap();
            total += count;
        }
    }
    total
}

#[tokio::test]
async fn a_password_in_the_url_authenticates() {
    let server = secured_server();
    let url = server.url_with(&format!(":{PASSWORD}"));
    let cache = CacheManager::connect(config_at(&url)).await.unwrap();
    serves(&cache).await;
}

#[tokio::test]
async fn a_password_given_to_redis_host_authenticates() {
    let server = secured_server();
    let config = CacheConfig::builder()
        .redis_host("127.0.0.1", server.port(), Some(PASSWORD), 0)
        .build()
        .unwrap();
    let cache = CacheManager::connect(config).await.unwrap();
    serves(&cache).await;
}

#[tokio::test]
async fn an_acl_user_authenticates_and_stays_in_its_namespace() {
    let server = secured_server();
    let url = server.url_with(&format!("alice:{ALICE_PASSWORD}"));
    let cache = CacheManager::connect(config_at(&url)).await.unwrap();
    serves(&cache).await;
    // Outside `iftb:` alice may do nothing: a namespace of another bot is refused.
    let other = CacheConfig::builder()
        .redis_url(&url)
        .namespace("otherbot")
        .build()
        .unwrap();
    let other = CacheManager::connect(other).await.unwrap();
    let err = other.client().set("k", "v", None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Authentication, "{err}");
}

/// Connecting with `url` fails with an authentication error, at once and
/// after one attempt: a refused password is not retried.
async fn refused_at_once(server: &RedisServer, url: &str) -> Error {
    let before = failed_auths(server);
    let started = Instant::now();
    let err = CacheManager::connect(config_at(url)).await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.kind(), ErrorKind::Authentication, "{err}");
    assert!(took < Duration::from_millis(200), "took {took:?}");
    let attempts = failed_auths(server) - before;
    assert!(attempts <= 1, "{attempts} AUTH attempts: a retry loop");
    err
}

#[tokio::test]
async fn a_wrong_password_is_an_authentication_error_at_once() {
    let server = secured_server();
    let err = refused_at_once(&server, &server.url_with(":not-the-password")).await;
    let text = err.to_string();
    assert!(
        text.contains("WRONGPASS") || text.contains("auth"),
        "{text}"
    );
}

#[tokio::test]
async fn a_wrong_acl_password_is_an_authentication_error_at_once() {
    let server = secured_server();
    refused_at_once(&server, &server.url_with("alice:not-alices-password")).await;
}

#[tokio::test]
async fn an_unknown_acl_user_is_an_authentication_error_at_once() {
    let server = secured_server();
    refused_at_once(&server, &server.url_with(&format!("mallory:{PASSWORD}"))).await;
}

#[tokio::test]
async fn no_password_at_all_is_an_authentication_error() {
    let server = secured_server();
    let started = Instant::now();
    let err = CacheManager::connect(config_at(&server.url()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Authentication, "{err}");
    assert!(started.elapsed() < Duration::from_millis(200));
}

/// Everything a user might print or log, gathered as text.
fn shown(texts: &mut Vec<String>, err: &Error) {
    texts.push(err.to_string());
    texts.push(format!("{err:?}"));
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        texts.push(format!("{s} {s:?}"));
        source = s.source();
    }
}

#[tokio::test(flavor = "current_thread")]
async fn the_password_appears_in_no_debug_output_error_or_event() {
    let events = support::capture_events();
    let mut server = secured_server();
    let mut texts = Vec::new();
    let secrets = [PASSWORD, ALICE_PASSWORD];

    for url in [
        server.url_with(&format!(":{PASSWORD}")),
        server.url_with(&format!("alice:{ALICE_PASSWORD}")),
    ] {
        let config = config_at(&url);
        texts.push(format!("{config:?} {}", config.backend_description()));
        let cache = CacheManager::connect(config).await.unwrap();
        texts.push(format!("{cache:?} {:?}", cache.config()));
        serves(&cache).await;
        // The other user's password given as this one's: refused, and shown.
        let wrong = url.replace(PASSWORD, ALICE_PASSWORD);
        let wrong = if wrong == url {
            url.replace(ALICE_PASSWORD, PASSWORD)
        } else {
            wrong
        };
        shown(
            &mut texts,
            &CacheManager::connect(config_at(&wrong)).await.unwrap_err(),
        );
        // Unparsable URLs carrying the password.
        let bad = url.replace("127.0.0.1:", "127.0.0.1:notaport");
        let bad = CacheConfig::builder().redis_url(&bad).build().unwrap_err();
        shown(&mut texts, &bad);
        let bad = url.replace("redis://", "http://");
        shown(
            &mut texts,
            &CacheConfig::builder().redis_url(&bad).build().unwrap_err(),
        );
        let builder = CacheConfig::builder().redis_url(&bad);
        texts.push(format!("{builder:?}"));
    }

    // A failing manager: errors and events while Redis is away.
    let url = server.url_with(&format!(":{PASSWORD}"));
    let cache = CacheManager::connect(config_at(&url)).await.unwrap();
    server.kill();
    shown(&mut texts, &cache.client().get("k").await.unwrap_err());
    shown(
        &mut texts,
        &cache
            .ohlcv()
            .get_bars("BTCUSDT", Timeframe::M1, 1)
            .await
            .unwrap_err(),
    );
    assert!(!cache.health_check().await);
    shown(
        &mut texts,
        &CacheManager::connect(config_at(&url)).await.unwrap_err(),
    );
    cache.disconnect().await;

    texts.push(events.text());
    let all = texts.join("\n");
    assert!(all.contains("redis_connected"), "the events were captured");
    assert!(all.contains("redis_connection_failed"), "{all}");
    for secret in secrets {
        assert!(!all.contains(secret), "the password leaked:\n{all}");
    }
}

#[cfg(feature = "tls")]
mod tls {
    //! `rediss://`: a TLS-only redis-server with a certificate signed by a CA
    //! the test makes; the client trusts it through `SSL_CERT_FILE`, as a
    //! deployment with a private CA would.

    use super::*;
    use std::path::{Path, PathBuf};
    use std::sync::OnceLock;

    /// PEM files of one CA and one server certificate it signed.
    struct Pki {
        dir: PathBuf,
    }

    impl Pki {
        fn file(&self, name: &str) -> PathBuf {
            self.dir.join(name)
        }
    }

    /// A CA and a certificate for `localhost` / `127.0.0.1`, in `dir`.
    fn make_pki(dir: &Path, name: &str) -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let sans = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let server = CertificateParams::new(sans).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = server.signed_by(&key, &ca_cert, &ca_key).unwrap();
        let dir = dir.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ca.crt"), ca_cert.pem()).unwrap();
        std::fs::write(dir.join("server.crt"), cert.pem()).unwrap();
        std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
        Pki { dir }
    }

    /// The trusted PKI; its CA is the only root the client trusts, set once
    /// for the process before any TLS connection.
    fn trusted() -> &'static Pki {
        static PKI: OnceLock<(tempfile::TempDir, Pki)> = OnceLock::new();
        &PKI.get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let pki = make_pki(dir.path(), "trusted");
            std::env::set_var("SSL_CERT_FILE", pki.file("ca.crt"));
            (dir, pki)
        })
        .1
    }

    fn tls_server(pki: &Pki, extra: &[&str]) -> RedisServer {
        RedisServer::start_tls(
            &pki.file("server.crt"),
            &pki.file("server.key"),
            &pki.file("ca.crt"),
            extra,
        )
    }

    #[tokio::test]
    async fn rediss_serves_over_tls_with_a_trusted_certificate() {
        let server = tls_server(trusted(), &[]);
        let cache = CacheManager::connect(config_at(&server.tls_url()))
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
        serves(&cache).await;
        // The server speaks only TLS: plain text on its port gets nothing.
        let plain = CacheManager::connect(config_at(&server.url())).await;
        assert!(plain.is_err(), "plain text was served on the TLS port");
    }

    #[tokio::test]
    async fn rediss_with_a_password_authenticates_over_tls() {
        let server = tls_server(trusted(), &["--requirepass", PASSWORD]);
        let url = server
            .tls_url()
            .replace("rediss://", &format!("rediss://:{PASSWORD}@"));
        let cache = CacheManager::connect(config_at(&url)).await.unwrap();
        serves(&cache).await;
        let wrong = server.tls_url().replace("rediss://", "rediss://:wrong@");
        let err = CacheManager::connect(config_at(&wrong)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Authentication, "{err}");
        assert!(!format!("{err:?}").contains(PASSWORD));
    }

    #[tokio::test]
    async fn a_certificate_from_an_unknown_ca_is_refused() {
        trusted();
        let dir = tempfile::tempdir().unwrap();
        let server = tls_server(&make_pki(dir.path(), "untrusted"), &[]);
        let started = Instant::now();
        let err = CacheManager::connect(config_at(&server.tls_url()))
            .await
            .unwrap_err();
        assert!(err.is_connection(), "{err}");
        assert!(err.to_string().contains("certificate"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
