//! `rediss://`: the Redis store over TLS (rustls), against a local `redis-server` whose
//! certificate a test CA made here signed.
#![cfg(feature = "redis-tls")]

mod store_support;

use std::time::Duration;

use ai_key_rotator::{RedisStore, StoreError, StoreFault, StoreHealth};
use store_support::redis_server::RedisServer;
use store_support::*;

fn tls_store(url: &str, ca: Option<&[u8]>) -> RedisStore {
    let b = RedisStore::builder(url)
        .prefix("tls")
        .connect_timeout(Duration::from_secs(2))
        .command_timeout(Duration::from_secs(2));
    match ca {
        Some(pem) => b.ca_certificate_pem(pem),
        None => b,
    }
    .build()
    .unwrap()
}

#[test]
fn two_rotators_share_a_cooldown_over_tls_with_a_password() {
    let Some((server, ca)) = RedisServer::start_tls() else {
        return;
    };
    // The password is a canary: it must show in no output.
    server.command(&["CONFIG", "SET", "requirepass", CANARY]);
    let url = format!("rediss://:{CANARY}@127.0.0.1:{}", server.tls_port.unwrap());
    let clock = clock();
    let a = builder(&["sk-a", "sk-b"], &clock)
        .store(tls_store(&url, Some(&ca)))
        .build()
        .unwrap();
    let b = builder(&["sk-a", "sk-b"], &clock)
        .store(tls_store(&url, Some(&ca)))
        .build()
        .unwrap();
    assert!(a.store_error().is_none(), "{:?}", a.store_error());
    assert_eq!(b.store_health(), StoreHealth::Healthy);
    a.mark_exhausted("openai", Some("sk-a"));
    assert!(
        wait_until(PATIENCE, || key(&b).as_deref() == Some("sk-b")),
        "b saw a's cooldown over TLS"
    );
    let shown = format!(
        "{:?} {:?} {:?}",
        tls_store(&url, Some(&ca)),
        RedisStore::builder(&url),
        b.store_health()
    );
    assert!(!shown.contains(CANARY), "{shown}");
}

#[test]
fn an_untrusted_certificate_is_refused_and_said_so() {
    let Some((server, _ca)) = RedisServer::start_tls() else {
        return;
    };
    // Without the test CA, the system's roots do not trust the server's certificate.
    let clock = clock();
    let r = builder(&["sk-a", "sk-b"], &clock)
        .store(tls_store(&server.tls_url(), None))
        .build()
        .unwrap();
    let error = r.store_error().expect("the load failed");
    assert!(
        matches!(error, StoreError::Unavailable(StoreFault::Tls { reason }) if reason.contains("certificate")),
        "{error}"
    );
    assert!(
        matches!(
            r.store_health(),
            StoreHealth::Failing {
                fault: StoreFault::Tls { .. },
                ..
            }
        ),
        "{:?}",
        r.store_health()
    );
    // It still serves from its local view.
    assert!(r.mark_exhausted("openai", Some("sk-a")));
    assert_eq!(key(&r).as_deref(), Some("sk-b"));
}

#[test]
fn build_names_what_is_wrong_without_quoting_the_url() {
    let bad_ca = RedisStore::builder(format!("rediss://:{CANARY}@127.0.0.1:1"))
        .ca_certificate_pem(b"not a certificate".to_vec())
        .build()
        .unwrap_err()
        .to_string();
    assert!(!bad_ca.contains(CANARY), "{bad_ca}");
    let not_tls = RedisStore::builder(format!("redis://:{CANARY}@127.0.0.1:1"))
        .ca_certificate_pem(b"-----BEGIN CERTIFICATE-----".to_vec())
        .build()
        .unwrap_err()
        .to_string();
    assert!(not_tls.contains("not rediss://"), "{not_tls}");
    assert!(!not_tls.contains(CANARY), "{not_tls}");
    let garbage = RedisStore::builder(format!("redis//{CANARY}"))
        .build()
        .unwrap_err()
        .to_string();
    assert!(garbage.contains("invalid redis URL"), "{garbage}");
    assert!(!garbage.contains(CANARY), "{garbage}");
}
