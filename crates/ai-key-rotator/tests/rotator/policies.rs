//! Cooldown policies applied by the rotator, with the fake clock.

use std::time::Duration;

use ai_key_rotator::classify::{LimitKind, LimitScope, Verdict};
use ai_key_rotator::{
    Clock, ConfigError, Cooldown, CredentialState, FakeClock, KeyRotator, ProviderConfig, Timestamp,
};

fn ts(s: &str) -> Timestamp {
    let t: std::time::SystemTime = std::time::UNIX_EPOCH
        + Duration::from_secs(
            s.parse::<u64>()
                .unwrap_or_else(|_| panic!("use epoch seconds: {s}")),
        );
    Timestamp::from_system_time(t)
}

fn with_policy(cooldown: Cooldown, start: Timestamp) -> (KeyRotator, FakeClock) {
    let clock = FakeClock::new(start);
    let r = KeyRotator::builder()
        .provider(
            "p",
            ProviderConfig::new()
                .credential("k1")
                .credential("k2")
                .cooldown(cooldown),
        )
        .clock(clock.clone())
        .reset_interval(Duration::ZERO)
        .build()
        .unwrap();
    (r, clock)
}

fn until(r: &KeyRotator) -> Timestamp {
    match r.provider_status("p").unwrap().credentials[0].state {
        CredentialState::Cooling { until } => until,
        other => panic!("expected cooling, got {other:?}"),
    }
}

#[test]
fn daily_at_midnight_los_angeles_across_the_dst_change() {
    // 2026-03-07T18:00:00Z, the day before spring-forward.
    let (r, clock) = with_policy(
        Cooldown::daily_at("00:00", "America/Los_Angeles"),
        ts("1772906400"),
    );
    r.mark_exhausted("p", Some("k1"));
    // 2026-03-08T00:00-08:00 = 08:00Z.
    assert_eq!(until(&r).to_string(), "2026-03-08T08:00:00.000Z");
    // Marked again at noon on the 23-hour day: the next midnight is 23 hours after the last.
    clock.set(ts("1772996400")); // 2026-03-08T19:00:00Z
    r.mark_exhausted("p", Some("k1"));
    assert_eq!(until(&r).to_string(), "2026-03-09T07:00:00.000Z");
    clock.set(ts("1773039599")); // a second before 2026-03-09T07:00:00Z
    assert!(matches!(
        r.provider_status("p").unwrap().credentials[0].state,
        CredentialState::Cooling { .. }
    ));
    clock.set(ts("1773039600")); // exactly then
    assert_eq!(
        r.provider_status("p").unwrap().credentials[0].state,
        CredentialState::Available
    );
}

#[test]
fn daily_at_on_the_fall_back_day() {
    // 2026-11-01T12:00:00Z (05:00 PDT); the day is 25 hours long.
    let (r, _) = with_policy(
        Cooldown::daily_at("00:00", "America/Los_Angeles"),
        ts("1793534400"),
    );
    r.mark_exhausted("p", Some("k1"));
    assert_eq!(until(&r).to_string(), "2026-11-02T08:00:00.000Z");
}

#[test]
fn monthly_resets_on_the_first_across_month_and_year_ends() {
    // 2026-01-31T23:59:59Z
    let (r, clock) = with_policy(Cooldown::monthly("UTC"), ts("1769903999"));
    r.mark_exhausted("p", Some("k1"));
    assert_eq!(until(&r).to_string(), "2026-02-01T00:00:00.000Z");
    clock.set(ts("1798761599")); // 2026-12-31T23:59:59Z
    r.mark_exhausted("p", Some("k2"));
    let s = r.provider_status("p").unwrap();
    assert_eq!(
        s.credentials[1].state,
        CredentialState::Cooling {
            until: ts("1798761600") // 2027-01-01T00:00:00Z
        }
    );
}

#[test]
fn exponential_backoff_grows_with_repeated_failures_and_resets_on_success() {
    let (r, clock) = with_policy(
        Cooldown::Exponential {
            base_ms: 1000,
            factor: 2.0,
            max_ms: 8000,
            jitter: false,
        },
        Timestamp::from_secs(1_000_000),
    );
    let rl = Verdict::RateLimited {
        until: None,
        scope: LimitScope::Key,
        limit: LimitKind::Unknown,
    };
    let c = r.get_key("p").unwrap();
    assert_eq!(c.expose_key(), "k1");
    let mut rests = Vec::new();
    for _ in 0..5 {
        r.reset_all(None);
        let now = clock.now();
        r.report(&c, &rl);
        rests.push(until(&r).saturating_duration_since(now).as_millis());
    }
    assert_eq!(rests, [1000, 2000, 4000, 8000, 8000]);
    assert_eq!(
        r.provider_status("p").unwrap().credentials[0].consecutive_failures,
        5
    );
    r.reset_all(None);
    r.report_success(&c);
    let now = clock.now();
    r.report(&c, &rl);
    assert_eq!(until(&r).saturating_duration_since(now).as_millis(), 1000);
}

#[test]
fn from_response_caps_the_provider_time_and_falls_back_without_one() {
    let start = Timestamp::from_secs(1_000_000);
    let (r, _) = with_policy(
        Cooldown::from_response(
            Cooldown::fixed(Duration::from_secs(30)),
            Some(Duration::from_secs(600)),
        ),
        start,
    );
    let c = r.get_key("p").unwrap();
    r.report(
        &c,
        &Verdict::QuotaExhausted {
            until: Some(start.saturating_add(Duration::from_secs(86_400))),
            scope: LimitScope::Key,
            limit: LimitKind::RequestsPerDay,
        },
    );
    assert_eq!(until(&r), start.saturating_add(Duration::from_secs(600)));
    r.mark_exhausted("p", Some("k2"));
    assert_eq!(
        r.provider_status("p").unwrap().credentials[1].state,
        CredentialState::Cooling {
            until: start.saturating_add(Duration::from_secs(30))
        }
    );
}

#[test]
fn policies_in_toml_and_their_errors() {
    let config: ai_key_rotator::RotatorConfig = toml::from_str(
        r#"
        [providers.gemini]
        family = "gemini"
        cooldown = { type = "daily-at", time_zone = "America/Los_Angeles" }
        credentials = [{ key = "AIza-1", scope = "project-1" }]

        [providers.anthropic]
        cooldown = { type = "monthly", day = 1, time_zone = "UTC" }
        credentials = [{ key = "sk-ant-1" }]

        [providers.groq]
        cooldown = { type = "exponential", base_ms = 500, max_ms = 60000 }
        credentials = [{ key = "gsk-1" }]

        [providers.openrouter]
        cooldown = { type = "from-response", cap_ms = 3600000, fallback = { type = "fixed", duration_ms = 5000 } }
        credentials = [{ key = "sk-or-1" }]
        "#,
    )
    .unwrap();
    let r = KeyRotator::from_config(config).unwrap();
    assert_eq!(
        r.family("gemini"),
        Some(ai_key_rotator::classify::Family::Gemini)
    );
    assert_eq!(
        r.family("groq"),
        Some(ai_key_rotator::classify::Family::Groq)
    );
    r.shutdown();

    let bad: ai_key_rotator::RotatorConfig = toml::from_str(
        r#"
        [providers.gemini]
        cooldown = { type = "daily-at", at = "24:30", time_zone = "America/Los_Angeles" }
        credentials = [{ key = "AIza-1" }]
        "#,
    )
    .unwrap();
    assert_eq!(
        KeyRotator::from_config(bad).unwrap_err(),
        ConfigError::InvalidCooldown {
            provider: "gemini".into(),
            reason: ai_key_rotator::InvalidPolicy::TimeOfDay("24:30".into())
        }
    );
    let e = toml::from_str::<ai_key_rotator::RotatorConfig>(
        "[providers.x]\nfamily = \"openia\"\ncredentials = [{ key = \"k\" }]",
    )
    .unwrap_err();
    assert!(e.to_string().contains("openia"), "{e}");
}
