use std::time::Duration;

use ai_key_rotator::{ConfigError, CredentialConfig, Event, ProviderConfig};

use crate::support::{key, provider, rotator};

#[test]
fn added_credentials_go_last_and_are_available_at_once() {
    let (r, _) = rotator(&["sk-a"]);
    r.mark_exhausted("openai", None);
    assert_eq!(key(&r, "openai"), None);
    r.add_credential("openai", CredentialConfig::new("sk-b").label("b"))
        .unwrap();
    assert_eq!(key(&r, "openai").as_deref(), Some("sk-b"));
    assert_eq!(r.provider_status("openai").unwrap().total, 2);
}

#[test]
fn adding_a_bad_credential_is_a_clear_error() {
    let (r, _) = rotator(&["sk-a"]);
    assert_eq!(
        r.add_credential("nope", "sk-x"),
        Err(ConfigError::UnknownProvider {
            provider: "nope".into()
        })
    );
    let e = r
        .add_credential("openai", CredentialConfig::new("sk-a").label("again"))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "credential again of provider `openai` is a duplicate key"
    );
    let e = r.add_credential("openai", "  ").unwrap_err();
    assert_eq!(
        e.to_string(),
        "credential #2 of provider `openai` has an empty key"
    );
}

#[test]
fn removing_the_current_key_moves_to_the_next() {
    let (r, _) = rotator(&["sk-a", "sk-b", "sk-c"]);
    let mut events = r.subscribe();
    assert_eq!(key(&r, "openai").as_deref(), Some("sk-a"));
    let held = r.get_key("openai").unwrap();
    assert!(r.remove_credential("openai", "sk-a"));
    assert_eq!(key(&r, "openai").as_deref(), Some("sk-b"));
    // A handle given out before the removal stays readable.
    assert_eq!(held.expose_key(), "sk-a");
    // But it can no longer be marked, and is never handed out again.
    assert!(!r.mark_credential_exhausted(&held));
    assert!(!r.remove_credential("openai", "sk-a"));
    assert!(matches!(
        events.try_recv(),
        Ok(Event::Rotated { from: Some(f), to, .. })
            if f.label.as_deref() == Some("sk-a") && to.label.as_deref() == Some("sk-b")
    ));

    // Removing a key before the current one keeps the current one.
    r.rotate_next("openai"); // -> c
    assert!(r.remove_credential("openai", "sk-b"));
    assert_eq!(key(&r, "openai").as_deref(), Some("sk-c"));
    // Removing the last one leaves nothing.
    assert!(r.remove_credential("openai", "sk-c"));
    assert_eq!(key(&r, "openai"), None);
    assert_eq!(r.provider_status("openai").unwrap().total, 0);
    // And the provider can be refilled.
    r.add_credential("openai", "sk-d").unwrap();
    assert_eq!(key(&r, "openai").as_deref(), Some("sk-d"));
}

#[test]
fn removing_the_last_positioned_current_key_wraps_around() {
    let (r, _) = rotator(&["sk-a", "sk-b", "sk-c"]);
    r.rotate_next("openai");
    r.rotate_next("openai"); // -> c
    assert!(r.remove_credential("openai", "sk-c"));
    assert_eq!(key(&r, "openai").as_deref(), Some("sk-a"));
}

#[test]
fn removed_cooling_key_can_be_re_added_fresh() {
    let (r, _) = rotator(&["sk-a"]);
    r.mark_exhausted("openai", None);
    assert!(r.remove_credential("openai", "sk-a"));
    r.add_credential("openai", "sk-a").unwrap();
    assert_eq!(key(&r, "openai").as_deref(), Some("sk-a"));
}

#[test]
fn providers_can_be_added_at_run_time() {
    let (r, _) = rotator(&["sk-a"]);
    r.add_provider("google", provider(&["AIza-1"], Duration::from_secs(1)))
        .unwrap();
    assert_eq!(r.providers(), ["openai", "google"]);
    assert_eq!(key(&r, "google").as_deref(), Some("AIza-1"));
    assert_eq!(
        r.add_provider("google", provider(&["AIza-2"], Duration::from_secs(1))),
        Err(ConfigError::DuplicateProvider {
            provider: "google".into()
        })
    );
    assert_eq!(
        r.add_provider("empty", ProviderConfig::new()),
        Err(ConfigError::NoCredentials {
            provider: "empty".into()
        })
    );
    // The failed additions changed nothing.
    assert_eq!(r.providers(), ["openai", "google"]);
    assert_eq!(key(&r, "openai").as_deref(), Some("sk-a"));
}
