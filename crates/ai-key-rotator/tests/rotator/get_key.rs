use std::time::Duration;

use ai_key_rotator::{Cooldown, CredentialState, KeyRotator, ProviderConfig, Timestamp};

use crate::support::{START, clock, key, provider, rotator};

#[test]
fn fill_first_is_sticky_until_the_key_is_exhausted() {
    let (r, _) = rotator(&["sk-a", "sk-b", "sk-c"]);
    for _ in 0..5 {
        assert_eq!(key(&r, "openai").as_deref(), Some("sk-a"));
    }
    assert!(r.mark_exhausted("openai", None));
    for _ in 0..5 {
        assert_eq!(key(&r, "openai").as_deref(), Some("sk-b"));
    }
    assert!(r.mark_exhausted("openai", Some("sk-c")));
    // Marking a key that is not the current one leaves the current one alone.
    assert_eq!(key(&r, "openai").as_deref(), Some("sk-b"));
    assert!(r.mark_exhausted("openai", None));
    assert_eq!(key(&r, "openai"), None);
    assert!(!r.has_available("openai"));
}

#[test]
fn unknown_provider_gives_none_and_false() {
    let (r, _) = rotator(&["sk-a"]);
    assert!(r.get_key("anthropic").is_none());
    assert!(!r.mark_exhausted("anthropic", None));
    assert!(!r.mark_exhausted("openai", Some("sk-unknown")));
    assert!(!r.rotate_next("anthropic"));
    assert!(!r.has_available("anthropic"));
    assert!(r.provider_status("anthropic").is_none());
}

#[test]
fn a_key_is_back_exactly_when_its_cooldown_ends() {
    let (r, clock) = rotator(&["sk-a"]);
    r.mark_exhausted("openai", None);
    clock.advance(Duration::from_millis(59_999));
    assert_eq!(key(&r, "openai"), None, "one millisecond early");
    clock.advance(Duration::from_millis(1));
    assert_eq!(key(&r, "openai").as_deref(), Some("sk-a"), "on the dot");
}

#[test]
fn the_earliest_key_to_return_comes_back_first_and_then_stays_current() {
    let (r, clock) = rotator(&["sk-a", "sk-b"]);
    r.mark_exhausted("openai", None); // a until +60s
    clock.advance(Duration::from_secs(10));
    r.mark_exhausted("openai", None); // b until +70s
    assert_eq!(key(&r, "openai"), None);
    clock.advance(Duration::from_secs(50));
    assert_eq!(key(&r, "openai").as_deref(), Some("sk-a"));
    clock.advance(Duration::from_secs(20));
    // b is back too, but fill-first stays on a.
    assert_eq!(key(&r, "openai").as_deref(), Some("sk-a"));
}

#[test]
fn a_second_mark_extends_but_never_shortens() {
    let clock = clock();
    let r = KeyRotator::builder()
        .provider("p", provider(&["sk-a"], Duration::from_secs(60)))
        .clock(clock.clone())
        .reset_interval(Duration::ZERO)
        .build()
        .unwrap();
    r.mark_exhausted("p", Some("sk-a"));
    let until = |r: &KeyRotator| match r.provider_status("p").unwrap().credentials[0].state {
        CredentialState::Cooling { until } => until,
        other => panic!("expected cooling, got {other:?}"),
    };
    assert_eq!(until(&r), START.saturating_add(Duration::from_secs(60)));
    clock.advance(Duration::from_secs(30));
    r.mark_exhausted("p", Some("sk-a"));
    assert_eq!(
        until(&r),
        START.saturating_add(Duration::from_secs(90)),
        "extended"
    );

    // A mark whose cooldown would end earlier (here: the clock stepped back 20 s, as after an
    // NTP correction) leaves the later end in place.
    clock.set(START.saturating_add(Duration::from_secs(10)));
    assert!(r.mark_exhausted("p", Some("sk-a")));
    assert_eq!(
        until(&r),
        START.saturating_add(Duration::from_secs(90)),
        "not shortened"
    );
    let status = r.provider_status("p").unwrap();
    assert_eq!(status.credentials[0].times_exhausted, 3);
    assert_eq!(
        status.credentials[0].last_exhausted_at,
        Some(START.saturating_add(Duration::from_secs(10)))
    );
}

#[test]
fn midnight_utc_cooldown_ends_at_the_next_midnight() {
    let clock = clock();
    let r = KeyRotator::builder()
        .provider(
            "google",
            ProviderConfig::new()
                .credential("AIza-1")
                .cooldown(Cooldown::MidnightUtc),
        )
        .clock(clock.clone())
        .reset_interval(Duration::ZERO)
        .build()
        .unwrap();
    r.mark_exhausted("google", None);
    let midnight = Timestamp::from_secs(1_795_651_200); // 2026-11-26T00:00:00Z
    let status = r.provider_status("google").unwrap();
    assert_eq!(status.next_available_at, Some(midnight));
    clock.set(Timestamp::from_millis(midnight.as_millis() - 1));
    assert!(r.get_key("google").is_none());
    clock.set(midnight);
    assert_eq!(r.get_key("google").unwrap().expose_key(), "AIza-1");
}

#[test]
fn rotate_next_moves_on_even_when_the_current_key_is_fine() {
    let (r, _) = rotator(&["sk-a", "sk-b", "sk-c"]);
    assert!(r.rotate_next("openai"));
    assert_eq!(key(&r, "openai").as_deref(), Some("sk-b"));
    r.mark_exhausted("openai", Some("sk-c"));
    // c is cooling, so the next available after b is a.
    assert!(r.rotate_next("openai"));
    assert_eq!(key(&r, "openai").as_deref(), Some("sk-a"));
    r.mark_exhausted("openai", Some("sk-b"));
    assert!(!r.rotate_next("openai"), "no other available key");
    assert_eq!(key(&r, "openai").as_deref(), Some("sk-a"));
}

#[test]
fn reset_all_makes_every_cooling_key_available() {
    let clock = clock();
    let r = KeyRotator::builder()
        .provider("a", provider(&["a1", "a2"], Duration::from_secs(60)))
        .provider("b", provider(&["b1"], Duration::from_secs(60)))
        .clock(clock)
        .reset_interval(Duration::ZERO)
        .build()
        .unwrap();
    r.mark_exhausted("a", None);
    r.mark_exhausted("a", None);
    r.mark_exhausted("b", None);
    assert_eq!(r.reset_all(Some("a")), 2);
    assert_eq!(
        key(&r, "a").as_deref(),
        Some("a2"),
        "cursor stays where it was"
    );
    assert!(r.get_key("b").is_none());
    assert_eq!(r.reset_all(None), 1);
    assert_eq!(key(&r, "b").as_deref(), Some("b1"));
    assert_eq!(r.reset_all(None), 0);
}

#[test]
fn status_reports_every_credential() {
    let (r, clock) = rotator(&["sk-a", "sk-b"]);
    r.get_key("openai");
    r.get_key("openai");
    r.mark_exhausted("openai", None);
    r.get_key("openai");
    let s = r.provider_status("openai").unwrap();
    assert_eq!((s.total, s.available), (2, 1));
    assert_eq!(
        s.current.as_ref().and_then(|c| c.label.as_deref()),
        Some("sk-b")
    );
    assert_eq!(s.next_available_at, Some(START));
    let a = &s.credentials[0];
    assert_eq!(a.times_used, 2);
    assert_eq!(a.times_exhausted, 1);
    assert_eq!(a.last_exhausted_at, Some(START));
    assert_eq!(
        a.state,
        CredentialState::Cooling {
            until: START.saturating_add(Duration::from_secs(60))
        }
    );
    assert_eq!(s.credentials[1].times_used, 1);

    r.mark_exhausted("openai", None);
    let s = r.provider_status("openai").unwrap();
    assert_eq!(s.available, 0);
    assert_eq!(s.current, None);
    assert_eq!(
        s.next_available_at,
        Some(START.saturating_add(Duration::from_secs(60)))
    );

    // Serializable to JSON, with times as Unix milliseconds.
    let json = serde_json::to_value(r.status()).unwrap();
    assert_eq!(json["providers"][0]["name"], "openai");
    assert_eq!(json["providers"][0]["credentials"][0]["state"], "cooling");
    assert_eq!(
        json["providers"][0]["credentials"][0]["until"],
        START.as_millis() + 60_000
    );
    assert_eq!(json["providers"][0]["credentials"][0]["label"], "sk-a");

    // A cooldown that ended shows as available even before anyone asks.
    clock.advance(Duration::from_secs(60));
    assert_eq!(r.provider_status("openai").unwrap().available, 2);
}

#[test]
fn providers_are_listed_in_the_order_they_were_added() {
    let r = KeyRotator::builder()
        .provider("openai", ProviderConfig::new().credential("sk-1"))
        .provider("google", ProviderConfig::new().credential("AIza-1"))
        .reset_interval(Duration::ZERO)
        .build()
        .unwrap();
    assert_eq!(r.providers(), ["openai", "google"]);
}

#[test]
fn many_cooling_keys_do_not_hide_the_available_ones() {
    let keys: Vec<String> = (0..1000).map(|i| format!("sk-{i:04}")).collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let (r, clock) = rotator(&refs);
    for k in &refs[..999] {
        r.mark_exhausted("openai", Some(k));
    }
    assert_eq!(key(&r, "openai").as_deref(), Some("sk-0999"));
    r.mark_exhausted("openai", None);
    assert_eq!(key(&r, "openai"), None);
    assert_eq!(
        r.provider_status("openai").unwrap().next_available_at,
        Some(START.saturating_add(Duration::from_secs(60)))
    );
    // All come back together; fill-first resumes at the current position.
    clock.advance(Duration::from_secs(60));
    assert_eq!(key(&r, "openai").as_deref(), Some("sk-0999"));
    assert_eq!(r.provider_status("openai").unwrap().available, 1000);
}
