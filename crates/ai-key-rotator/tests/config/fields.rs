//! Unknown and misplaced fields, one row per cooldown, budget and strategy variant and per
//! level of the configuration.

use ai_key_rotator::{Budget, Cooldown, RotatorConfig, Strategy};

/// A provider with one credential and `options` (TOML lines) added.
fn provider(options: &str) -> String {
    format!("[providers.openai]\ncredentials = [{{ key = \"sk-1\", label = \"one\" }}]\n{options}")
}

/// The expectation of a row whose text must be accepted.
const OK: &str = "";

/// Runs every row and reports all failures at once: `expected` is a fragment of the error
/// message, or [`OK`] when the text must be accepted.
fn check_all(rows: &[(&str, &str)]) {
    let mut failures = Vec::new();
    for (options, expected) in rows {
        let text = provider(options);
        match (RotatorConfig::from_toml_str(&text), *expected) {
            (Ok(_), OK) => {}
            (Err(e), fragment) if fragment != OK && e.to_string().contains(fragment) => {}
            (got, _) => failures.push(format!(
                "{options}\n    expected {expected:?}\n    got      {:?}",
                got.map(|_| "accepted").map_err(|e| e.to_string())
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

#[test]
fn every_cooldown_variant_rejects_fields_it_does_not_have() {
    check_all(&[
        // Accepted: each variant with its own fields, and the original's camelCase name.
        ("cooldown = { type = \"fixed\", duration_ms = 1000 }", OK),
        ("cooldown = { type = \"fixed\", durationMs = 1000 }", OK),
        ("cooldown = { type = \"midnight-utc\" }", OK),
        (
            "cooldown = { type = \"daily-at\", at = \"00:00\", time_zone = \"UTC\" }",
            OK,
        ),
        (
            "cooldown = { type = \"monthly\", day = 1, at = \"00:00\", time_zone = \"UTC\" }",
            OK,
        ),
        (
            "cooldown = { type = \"exponential\", base_ms = 1, factor = 2.0, max_ms = 9, jitter = false }",
            OK,
        ),
        (
            "cooldown = { type = \"from-response\", cap_ms = 5, fallback = { type = \"midnight-utc\" } }",
            OK,
        ),
        // Rejected: a field of another variant, or a misspelling.
        (
            "cooldown = { type = \"midnight-utc\", time_zone = \"America/Los_Angeles\" }",
            "unknown field `time_zone`",
        ),
        (
            "cooldown = { type = \"fixed\", duration_ms = 1000, time_zone = \"UTC\" }",
            "unknown field `time_zone`",
        ),
        (
            "cooldown = { type = \"fixed\", duration = 1000 }",
            "unknown field `duration`",
        ),
        (
            "cooldown = { type = \"daily-at\", time_zone = \"UTC\", day = 1 }",
            "unknown field `day`",
        ),
        (
            "cooldown = { type = \"daily-at\", timezone = \"UTC\" }",
            "unknown field `timezone`",
        ),
        (
            "cooldown = { type = \"monthly\", day = 1, duration_ms = 5 }",
            "unknown field `duration_ms`",
        ),
        (
            "cooldown = { type = \"exponential\", base_ms = 1, max_ms = 9, cap_ms = 5 }",
            "unknown field `cap_ms`",
        ),
        (
            "cooldown = { type = \"from-response\", cap = 5, fallback = { type = \"midnight-utc\" } }",
            "unknown field `cap`",
        ),
        (
            "cooldown = { type = \"from-response\", fallback = { type = \"midnight-utc\", at = \"01:00\" } }",
            "unknown field `at`",
        ),
        ("cooldown = { type = \"weekly\" }", "unknown variant"),
        ("cooldown = { duration_ms = 5 }", "missing field `type`"),
    ]);
}

#[test]
fn budgets_and_strategies_reject_unknown_options() {
    check_all(&[
        (
            "budget = { requests_per_minute = 5, tokens_per_minute = 6, requests_per_day = 7, \
             tokens_per_day = 8, max_in_flight = 2, day_starts_at = \"00:00\", time_zone = \"UTC\" }",
            OK,
        ),
        (
            "budget = { requests_per_hour = 5 }",
            "unknown field `requests_per_hour`",
        ),
        (
            "scope_budgets = { org = { requests_per_minute = 5, cooldown = 1 } }",
            "unknown field `cooldown`",
        ),
        ("strategy = \"round-robin\"", OK),
        ("strategy = \"random\"", "unknown variant"),
        ("strategy = { type = \"round-robin\" }", "field `strategy`"),
    ]);
    let all = [
        Strategy::FillFirst,
        Strategy::RoundRobin,
        Strategy::LeastRecentlyUsed,
        Strategy::Weighted,
        Strategy::LeastInFlight,
        Strategy::MostRemaining,
    ];
    for s in all {
        let name = serde_json::to_value(s).unwrap();
        let text = provider(&format!("strategy = {name}"));
        assert_eq!(
            RotatorConfig::from_toml_str(&text).unwrap().providers["openai"].strategy,
            s
        );
    }
    assert_eq!(
        RotatorConfig::from_toml_str(&provider("budget = { max_in_flight = 2 }"))
            .unwrap()
            .providers["openai"]
            .budget,
        Some(Budget {
            max_in_flight: Some(2),
            ..Budget::default()
        })
    );
}

#[test]
fn providers_and_credentials_reject_unknown_options() {
    check_all(&[
        ("family = \"openai\"", OK),
        (
            "cooldwon = { type = \"midnight-utc\" }",
            "unknown field `cooldwon`",
        ),
        // A cooldown option one level too high.
        ("time_zone = \"UTC\"", "unknown field `time_zone`"),
        ("family = \"open-ai\"", "field `family`"),
    ]);
    let e = RotatorConfig::from_toml_str(
        "reset_interval = 0\n[providers.openai]\ncredentials = [{ key = \"sk-1\" }]",
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("unknown field `reset_interval`"),
        "{e}"
    );
    let e = RotatorConfig::from_toml_str(
        "[providers.openai]\ncredentials = [{ key = \"sk-1\", wieght = 2 }]",
    )
    .unwrap_err();
    assert!(e.to_string().contains("unknown field `wieght`"), "{e}");
    // The original's camelCase names still read.
    let c = RotatorConfig::from_json_str(
        r#"{"providers":{"openai":{"credentials":[{"key":"sk-1"}],
            "cooldown":{"type":"fixed","durationMs":1000}}},"resetIntervalMs":0}"#,
    )
    .unwrap();
    assert_eq!(c.reset_interval_ms, 0);
    assert_eq!(
        c.providers["openai"].cooldown,
        Cooldown::Fixed { duration_ms: 1000 }
    );
}
