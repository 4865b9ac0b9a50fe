//! Prompt-cache affinity: requests with the same stable prompt prefix land on the same key, and
//! a key that goes away moves only its own prefixes.

use std::collections::HashMap;
use std::time::Duration;

use ai_key_rotator::classify::{Api, LimitKind, LimitScope, ModelName, Verdict};
use ai_key_rotator::{
    AcquireOptions, Budget, CredentialConfig, KeyRotator, ProviderConfig, RotatorConfig, Strategy,
    prefix_hash,
};

use super::support::{START, clock};

const KEYS: usize = 10;

fn rotator_with(strategy: Strategy, budget: Option<Budget>) -> KeyRotator {
    let mut p = (0..KEYS).fold(
        ProviderConfig::new()
            .strategy(strategy)
            .cache_affinity(true)
            .cooldown(ai_key_rotator::Cooldown::fixed(Duration::from_secs(60))),
        |p, i| p.credential(CredentialConfig::new(format!("sk-{i}")).label(format!("k{i}"))),
    );
    if let Some(b) = budget {
        p = p.budget(b);
    }
    KeyRotator::builder()
        .provider("openai", p)
        .clock(clock())
        .reset_interval(Duration::ZERO)
        .build()
        .unwrap()
}

/// A chat request whose system prompt is number `i` and whose last user message is `turn`.
fn body(i: usize, turn: &str) -> String {
    format!(
        r#"{{"model":"gpt-4o","messages":[{{"role":"system","content":"You are assistant number {i}; answer briefly."}},{{"role":"user","content":"Hello"}},{{"role":"assistant","content":"Hi"}},{{"role":"user","content":"{turn}"}}]}}"#
    )
}

/// The prefix hashes of 1 000 different applications' prompts (a deterministic sample).
fn prefixes() -> Vec<u64> {
    (0..1000)
        .map(|i| prefix_hash(Api::OpenAi, body(i, "go").as_bytes()).unwrap())
        .collect()
}

fn place(r: &KeyRotator, options: &AcquireOptions) -> String {
    r.acquire_with("openai", options)
        .unwrap()
        .expose_key()
        .to_owned()
}

fn placements(r: &KeyRotator, hashes: &[u64]) -> Vec<String> {
    hashes
        .iter()
        .map(|&h| place(r, &AcquireOptions::default().affinity(h)))
        .collect()
}

#[test]
fn the_same_prefix_lands_on_the_same_key_whatever_the_strategy() {
    for strategy in [
        Strategy::FillFirst,
        Strategy::RoundRobin,
        Strategy::LeastRecentlyUsed,
        Strategy::LeastInFlight,
    ] {
        let r = rotator_with(strategy, None);
        // Later turns of one conversation share the prefix; their hashes are equal.
        let h1 = prefix_hash(Api::OpenAi, body(7, "first question").as_bytes()).unwrap();
        let h2 = prefix_hash(Api::OpenAi, body(7, "a follow-up").as_bytes()).unwrap();
        assert_eq!(h1, h2);
        let home = place(&r, &AcquireOptions::default().affinity(h1));
        for _ in 0..20 {
            assert_eq!(place(&r, &AcquireOptions::default().affinity(h2)), home);
        }
        assert_eq!(r.provider_status("openai").unwrap().affinity_placed, 21);
    }
}

#[test]
fn prefixes_spread_over_every_key_and_only_a_lost_keys_prefixes_move() {
    let r = rotator_with(Strategy::FillFirst, None);
    let hashes = prefixes();
    let first = placements(&r, &hashes);
    assert_eq!(first, placements(&r, &hashes), "placement is stable");
    // Roughly even: 100 per key expected; a generous bound that a fair hash meets always.
    let mut per_key: HashMap<&str, usize> = HashMap::new();
    for k in &first {
        *per_key.entry(k.as_str()).or_default() += 1;
    }
    assert_eq!(per_key.len(), KEYS, "{per_key:?}");
    assert!(
        per_key.values().all(|&n| (40..=200).contains(&n)),
        "{per_key:?}"
    );

    // A cooling key: its prefixes go elsewhere (never to it), every other stays.
    assert!(r.mark_exhausted("openai", Some("sk-3")));
    let cooling = placements(&r, &hashes);
    let mut moved = 0;
    for (before, now) in first.iter().zip(&cooling) {
        assert_ne!(now, "sk-3");
        if before == "sk-3" {
            moved += 1;
        } else {
            assert_eq!(before, now, "a prefix not on the cooling key moved");
        }
    }
    assert_eq!(moved, per_key["sk-3"]);
    // The moved prefixes spread over the others instead of piling onto one key.
    let targets: std::collections::HashSet<_> = first
        .iter()
        .zip(&cooling)
        .filter(|(b, _)| *b == "sk-3")
        .map(|(_, n)| n)
        .collect();
    assert!(targets.len() > 3, "{targets:?}");

    // A disabled key likewise; the cooled one still is never chosen.
    assert!(r.disable("openai", "sk-5"));
    let disabled = placements(&r, &hashes);
    for (before, now) in first.iter().zip(&disabled) {
        assert!(now != "sk-3" && now != "sk-5");
        if before != "sk-3" && before != "sk-5" {
            assert_eq!(before, now);
        }
    }

    // When they come back, every prefix goes home.
    assert!(r.enable("openai", "sk-5"));
    r.reset_all(None);
    assert_eq!(placements(&r, &hashes), first);

    // A removed key: only its prefixes move.
    assert!(r.remove_credential("openai", "sk-0"));
    let removed = placements(&r, &hashes);
    for (before, now) in first.iter().zip(&removed) {
        assert_ne!(now, "sk-0");
        if before != "sk-0" {
            assert_eq!(before, now);
        }
    }
}

#[test]
fn a_key_resting_for_the_model_or_over_its_budget_is_skipped() {
    // Per-model rests: the prefix's key for this model rests, so it goes elsewhere for that
    // model only.
    let r = rotator_with(Strategy::FillFirst, None);
    let h = prefixes()[0];
    let home = place(&r, &AcquireOptions::default().affinity(h));
    let lease = r
        .acquire_with(
            "openai",
            &AcquireOptions::default().affinity(h).model("gpt-4o"),
        )
        .unwrap();
    assert_eq!(lease.expose_key(), home);
    lease.report(&Verdict::RateLimited {
        until: Some(START.saturating_add(Duration::from_secs(30))),
        scope: LimitScope::Model(ModelName::new("gpt-4o").unwrap()),
        limit: LimitKind::TokensPerMinute,
    });
    let for_model = AcquireOptions::default().affinity(h).model("gpt-4o");
    assert_ne!(place(&r, &for_model), home);
    assert_eq!(
        place(
            &r,
            &AcquireOptions::default().affinity(h).model("gpt-4o-mini")
        ),
        home
    );

    // Budgets: one request per minute per key; the prefix's key takes one, then the next
    // request of the prefix goes to another key instead of failing.
    let r = rotator_with(
        Strategy::FillFirst,
        Some(Budget {
            requests_per_minute: Some(1),
            ..Budget::default()
        }),
    );
    let options = AcquireOptions::default().affinity(h);
    let a = place(&r, &options);
    let b = place(&r, &options);
    assert_ne!(a, b);
}

#[test]
fn a_session_keeps_precedence_and_no_hash_keeps_the_strategy() {
    let r = rotator_with(Strategy::RoundRobin, None);
    let h = prefixes()[1];
    let session = AcquireOptions::default().session("conversation-9");
    let by_session = place(&r, &session);
    for _ in 0..5 {
        assert_eq!(place(&r, &session.clone().affinity(h)), by_session);
    }
    // Sessions are not counted as placed by affinity.
    assert_eq!(r.provider_status("openai").unwrap().affinity_placed, 0);
    // Without a hash, round-robin rotates as before: ten acquires, ten keys.
    let plain: std::collections::HashSet<String> = (0..KEYS)
        .map(|_| place(&r, &AcquireOptions::default()))
        .collect();
    assert_eq!(plain.len(), KEYS);
    assert_eq!(r.provider_status("openai").unwrap().affinity_placed, 0);
}

#[test]
fn cache_affinity_is_read_from_configuration() {
    let config = RotatorConfig::from_toml_str(
        r#"
        [providers.openai]
        credentials = [{ key = "sk-a" }, { key = "sk-b" }]
        cache_affinity = true

        [providers.anthropic]
        credentials = [{ key = "sk-ant-a" }]
        "#,
    )
    .unwrap();
    let r = KeyRotator::builder().config(config).build().unwrap();
    assert!(r.cache_affinity("openai"));
    assert!(!r.cache_affinity("anthropic"));
    assert!(!r.cache_affinity("nobody"));
    let bad = RotatorConfig::from_toml_str(
        r#"
        [providers.openai]
        credentials = [{ key = "sk-a" }]
        cache_affinity = "yes"
        "#,
    )
    .unwrap_err()
    .to_string();
    assert!(bad.contains("cache_affinity"), "{bad}");
    assert!(!bad.contains("sk-a"), "{bad}");
}
