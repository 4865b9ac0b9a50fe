//! The configuration file's parsing and validation, table by table.
use super::*;

fn parse(text: &str) -> Result<(GatewayConfig, Vec<Warning>), ConfigFileError> {
    GatewayConfig::from_toml(text, Path::new("."))
}

#[test]
fn minimal_config_gets_defaults() {
    let (c, w) = parse(
        r#"client_tokens = ["a-long-enough-client-token"]
           [providers.openai]
           family = "openai"
           keys = ["sk-1", { key = "sk-2", label = "two" }]"#,
    )
    .unwrap();
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(c.body_limit, DEFAULT_BODY_LIMIT);
    assert_eq!(c.providers[0].route, "/openai");
    assert_eq!(c.providers[0].upstream, "https://api.openai.com");
    assert_eq!(c.listen, default_listen());
}

#[test]
fn rejects_unsafe_or_incomplete_configs() {
    let cases = [
        // No tokens and not explicitly unauthenticated.
        (
            r#"[providers.o]
            family = "openai"
            keys = ["k"]"#,
            "client_tokens",
        ),
        (
            r#"client_tokens = ["t"]
            [providers.a]
            family = "azure-openai"
            keys = ["k"]"#,
            "needs an `upstream`",
        ),
        (
            r#"client_tokens = ["t"]
            [providers.o]
            family = "openai"
            upstream = "ftp://x"
            keys = ["k"]"#,
            "scheme",
        ),
        (
            r#"client_tokens = ["t"]
            [providers.o]
            family = "openai"
            route = "/status"
            keys = ["k"]"#,
            "route",
        ),
        (
            r#"client_tokens = ["t"]
            [providers.o]
            family = "openai"
            fallback = ["a"]
            keys = ["k"]
            [providers.a]
            family = "anthropic"
            keys = ["k"]"#,
            "different API",
        ),
        (
            r#"client_tokens = ["t"]
            [providers.o]
            family = "openai"
            keys = ["k", "k"]"#,
            "duplicate",
        ),
        (
            r#"client_tokens = ["t"]
            [providers.o]
            family = "openai"
            keys = ["${AKR_SURELY_UNSET_VAR}"]"#,
            "AKR_SURELY_UNSET_VAR",
        ),
        (
            r#"client_tokens = ["t"]
            max_connections = 0
            [providers.o]
            family = "openai"
            keys = ["k"]"#,
            "max_connections",
        ),
        (
            r#"client_tokens = ["t"]
            header_limit = 100
            [providers.o]
            family = "openai"
            keys = ["k"]"#,
            "header_limit",
        ),
        (
            r#"client_tokens = ["t"]
            body_read_timeout_ms = 0
            [providers.o]
            family = "openai"
            keys = ["k"]"#,
            "timeouts",
        ),
        (
            r#"client_tokens = ["t"]
            access_log = "loud"
            [providers.o]
            family = "openai"
            keys = ["k"]"#,
            "access_log",
        ),
        (
            r#"client_tokens = ["t"]
            typo = 1
            [providers.o]
            family = "openai"
            keys = ["k"]"#,
            "typo",
        ),
        (
            r#"client_tokens = ["t"]
            [providers.o]
            family = "openai"
            usage_day_timezone = "Pacific/Atlantis"
            keys = ["k"]"#,
            "usage_day_timezone `Pacific/Atlantis`",
        ),
    ];
    for (text, needle) in cases {
        let err = parse(text).unwrap_err().to_string();
        assert!(err.contains(needle), "{needle:?} not in {err:?}");
    }
}

#[test]
fn selection_and_budgets_reach_the_rotator() {
    let (c, w) = parse(
        r#"client_tokens = ["a-long-enough-client-token"]
           [providers.openai]
           family = "openai"
           strategy = "weighted"
           cache_affinity = true
           budget = { requests_per_minute = 500, max_in_flight = 8 }
           scope_budgets = { org-a = { requests_per_day = 10000, time_zone = "UTC" } }
           keys = [
             { key = "sk-1", scope = "org-a", weight = 3 },
             { key = "sk-2", label = "two", scope = "org-a" },
             "sk-3",
           ]"#,
    )
    .unwrap();
    assert!(w.is_empty(), "{w:?}");
    let p = &c.providers[0].rotator;
    assert_eq!(p.strategy, Strategy::Weighted);
    assert!(p.cache_affinity);
    let budget = p.budget.as_ref().unwrap();
    assert_eq!(budget.requests_per_minute, Some(500));
    assert_eq!(budget.max_in_flight, Some(8));
    assert_eq!(p.scope_budgets["org-a"].requests_per_day, Some(10_000));
    let keys: Vec<(Option<&str>, Option<u32>)> = p
        .credentials
        .iter()
        .map(|c| (c.scope.as_deref(), c.weight))
        .collect();
    assert_eq!(
        keys,
        [
            (Some("org-a"), Some(3)),
            (Some("org-a"), None),
            (None, None)
        ]
    );
}

#[test]
fn every_strategy_name_parses() {
    for (name, expected) in [
        ("fill-first", Strategy::FillFirst),
        ("round-robin", Strategy::RoundRobin),
        ("least-recently-used", Strategy::LeastRecentlyUsed),
        ("weighted", Strategy::Weighted),
        ("least-in-flight", Strategy::LeastInFlight),
        ("most-remaining", Strategy::MostRemaining),
    ] {
        let (c, _) = parse(&format!(
            "client_tokens = [\"a-long-enough-client-token\"]\n\
             [providers.o]\nfamily = \"openai\"\nstrategy = \"{name}\"\nkeys = [\"k\"]"
        ))
        .unwrap();
        assert_eq!(c.providers[0].rotator.strategy, expected, "{name}");
    }
    let (c, _) = parse(
        r#"client_tokens = ["a-long-enough-client-token"]
           [providers.o]
           family = "openai"
           keys = ["k"]"#,
    )
    .unwrap();
    assert_eq!(c.providers[0].rotator.strategy, Strategy::FillFirst);
}

#[test]
fn rejects_bad_selection_and_budget_settings() {
    let cases = [
        (
            "strategy = \"random\"\nkeys = [\"k\"]",
            "field `strategy`): unknown variant",
        ),
        (
            "keys = [{ key = \"k\", weight = 0 }]\nstrategy = \"weighted\"",
            "weight 0",
        ),
        (
            "budget = { requests_per_minute = 0 }\nkeys = [\"k\"]",
            "budget",
        ),
        (
            "budget = { requests_per_hour = 5 }\nkeys = [\"k\"]",
            "requests_per_hour",
        ),
        (
            "budget = { requests_per_day = 5, time_zone = \"Mars/Base\" }\nkeys = [\"k\"]",
            "Mars/Base",
        ),
        ("cache_affinity = \"yes\"\nkeys = [\"k\"]", "cache_affinity"),
        (
            "circuit = { rate_limits = true, rate_limit_window_ms = 0 }\nkeys = [\"k\"]",
            "rate_limit_window_ms",
        ),
    ];
    for (provider, needle) in cases {
        let text = format!(
            "client_tokens = [\"a-long-enough-client-token\"]\n\
             [providers.o]\nfamily = \"openai\"\n{provider}"
        );
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains(needle), "{needle:?} not in {err:?}");
    }
    let err = parse(
        r#"client_tokens = [{ key = "a-long-enough-client-token", scope = "x" }]
           [providers.o]
           family = "openai"
           keys = ["k"]"#,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("provider keys only"), "{err}");
}

#[test]
fn warns_about_settings_that_do_nothing() {
    let (_, w) = parse(
        r#"client_tokens = ["a-long-enough-client-token"]
           [providers.o]
           family = "openai"
           scope_budgets = { nobody = { requests_per_minute = 5 } }
           keys = [{ key = "k", weight = 2 }]"#,
    )
    .unwrap();
    assert!(w.iter().any(|w| w.0.contains("scope `nobody`")), "{w:?}");
    assert!(w.iter().any(|w| w.0.contains("`weighted`")), "{w:?}");
}

#[test]
fn store_paths_are_relative_to_the_configuration() {
    let (c, _) = parse(
        r#"client_tokens = ["a-long-enough-client-token"]
           store = { type = "sqlite", path = "state.db" }
           [providers.openai]
           family = "openai"
           keys = ["sk-1"]"#,
    )
    .unwrap();
    assert_eq!(
        c.store,
        Some(StoreConfig::Sqlite {
            path: "./state.db".into()
        })
    );
    // A file without a store keeps state in SQLite next to itself.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rotator.toml");
    std::fs::write(
        &path,
        "client_tokens = [\"a-long-enough-client-token\"]\n\
         [providers.openai]\nfamily = \"openai\"\nkeys = [\"sk-1\"]\n",
    )
    .unwrap();
    let (c, _) = GatewayConfig::load(&path).unwrap();
    assert_eq!(
        c.store,
        Some(StoreConfig::Sqlite {
            path: dir.path().join(DEFAULT_STATE_FILE).display().to_string()
        })
    );
}

#[test]
fn retry_and_preamble_settings_have_defaults_and_are_checked() {
    const PROVIDER: &str = "\n[providers.o]\nfamily = \"openai\"\nkeys = [\"k\"]";
    let with = |top: &str| {
        parse(&format!(
            "client_tokens = [\"a-long-enough-client-token\"]\n{top}{PROVIDER}"
        ))
    };
    let (c, _) = with("").unwrap();
    assert_eq!(
        c.retry,
        RetrySettings {
            backoff_base: Duration::from_millis(200),
            backoff_max: Duration::from_secs(5),
            deadline: None,
        }
    );
    assert_eq!(
        c.preamble,
        PreambleLimits {
            max_bytes: 64 * 1024,
            max_wait: Duration::from_secs(10),
        }
    );
    assert!(c.preamble.enabled());
    let (c, _) = with(
        "retry_backoff_base_ms = 50\nretry_backoff_max_ms = 50\nretry_deadline_ms = 30000\n\
         stream_preamble_bytes = 0",
    )
    .unwrap();
    assert_eq!(c.retry.backoff_max, Duration::from_millis(50));
    assert_eq!(c.retry.deadline, Some(Duration::from_secs(30)));
    assert!(!c.preamble.enabled());
    for (top, expected) in [
        (
            "retry_backoff_base_ms = 500\nretry_backoff_max_ms = 100",
            "retry_backoff_max_ms must be at least retry_backoff_base_ms",
        ),
        (
            "retry_deadline_ms = 0",
            "retry_deadline_ms must be positive",
        ),
        ("stream_preamble_bytes = -1", "stream_preamble_bytes"),
        ("retry_backoff_base_ms = \"fast\"", "retry_backoff_base_ms"),
    ] {
        let err = with(top).unwrap_err().to_string();
        assert!(err.contains(expected), "{top}: {err}");
    }
}

/// A config file with `store` and one provider, and the directory it is in.
fn with_store(store: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rotator.toml");
    std::fs::write(
        &path,
        format!(
            "client_tokens = [{{ file = \"token\" }}]\nstore = {store}\n\
             [providers.openai]\nfamily = \"openai\"\nkeys = [{{ file = \"key\" }}]\n"
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("token"), "a-long-enough-client-token\n").unwrap();
    std::fs::write(dir.path().join("key"), "sk-1\n").unwrap();
    (dir, path)
}

#[cfg(unix)]
fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

const PASSWORD: &str = "canary-redis-password-5e1f";

#[cfg(unix)]
#[test]
fn an_inline_store_password_in_a_file_others_can_read_is_warned_about() {
    let url = format!("\"redis://:{PASSWORD}@127.0.0.1:6379\"");
    let (_dir, path) = with_store(&format!("{{ type = \"redis\", url = {url} }}"));
    chmod(&path, 0o644);
    let (c, w) = GatewayConfig::load(&path).unwrap();
    assert!(w.iter().any(|w| w.0.contains("store password")), "{w:?}");
    // Neither the warning nor the configuration's Debug output shows the password.
    let shown = format!("{w:?} {c:?}");
    assert!(!shown.contains(PASSWORD), "{shown}");
    // Readable by its owner only: no warning.
    chmod(&path, 0o600);
    let (_, w) = GatewayConfig::load(&path).unwrap();
    assert!(w.is_empty(), "{w:?}");
    // A URL without a password is no secret.
    let (_dir, path) = with_store(r#"{ type = "redis", url = "redis://127.0.0.1:6379" }"#);
    chmod(&path, 0o644);
    let (_, w) = GatewayConfig::load(&path).unwrap();
    assert!(w.is_empty(), "{w:?}");
}

#[cfg(unix)]
#[test]
fn a_store_url_from_a_file_is_not_inline_and_its_options_are_read() {
    let (dir, path) = with_store(
        r#"{ type = "redis", url = { file = "redis-url" }, prefix = "prod", connect_timeout_ms = 700, command_timeout_ms = 300 }"#,
    );
    std::fs::write(
        dir.path().join("redis-url"),
        format!("redis://:{PASSWORD}@127.0.0.1:6379/2\n"),
    )
    .unwrap();
    chmod(&path, 0o644);
    let (c, w) = GatewayConfig::load(&path).unwrap();
    assert!(w.is_empty(), "{w:?}");
    let Some(StoreConfig::Redis(s)) = c.store() else {
        panic!("{:?}", c.store());
    };
    assert_eq!(s.prefix(), Some("prod"));
    assert!(!s.tls());
    assert_eq!(s.cluster_nodes(), 0);
    let shown = format!("{s:?}");
    assert!(
        shown.contains("700ms") && shown.contains("300ms"),
        "{shown}"
    );
    assert!(!shown.contains(PASSWORD), "{shown}");
}

#[test]
fn store_options_say_what_is_wrong_without_quoting_the_url() {
    let cases = [
        (
            r#"{ type = "redis", url = "${AKR_TEST_SURELY_UNSET}" }"#,
            "AKR_TEST_SURELY_UNSET",
        ),
        (
            r#"{ type = "redis", url = "http://:canary-redis-password-5e1f@h" }"#,
            "redis:// or rediss://",
        ),
        (
            r#"{ type = "redis", url = "redis://h", connect_timeout_ms = 0 }"#,
            "connect_timeout_ms must be positive",
        ),
        (
            r#"{ type = "redis", url = "redis://h", prefix = "a{b}" }"#,
            "prefix",
        ),
        (
            r#"{ type = "redis", url = "redis://h", ca_file = "missing.pem" }"#,
            "missing.pem",
        ),
        (
            r#"{ type = "redis", url = "redis://h", timeout = 3 }"#,
            "timeout",
        ),
        (
            r#"{ type = "redis", url = "redis://h", cluster = ["redis://h:7000"] }"#,
            "either `url` or `cluster`",
        ),
        (r#"{ type = "redis" }"#, "either `url` or `cluster`"),
        (
            r#"{ type = "redis", cluster = ["redis://h:7000", "${AKR_TEST_SURELY_UNSET}"] }"#,
            "store cluster node #2",
        ),
    ];
    for (store, expected) in cases {
        let (_dir, path) = with_store(store);
        let e = GatewayConfig::load(&path).unwrap_err().to_string();
        assert!(e.contains(expected), "{store}: {e}");
        assert!(!e.contains(PASSWORD), "{store}: {e}");
    }
    // A CA for a URL without TLS is a mistake worth naming.
    let (dir, path) = with_store(r#"{ type = "redis", url = "redis://h", ca_file = "ca.pem" }"#);
    std::fs::write(dir.path().join("ca.pem"), "-----BEGIN CERTIFICATE-----\n").unwrap();
    let e = GatewayConfig::load(&path).unwrap_err().to_string();
    assert!(e.contains("rediss://"), "{e}");
}

#[cfg(unix)]
#[test]
fn a_cluster_is_a_list_of_node_urls_each_a_secret() {
    let (dir, path) = with_store(
        r#"{ type = "redis", cluster = ["redis://127.0.0.1:7000", { file = "node-2" }] }"#,
    );
    std::fs::write(
        dir.path().join("node-2"),
        format!("redis://:{PASSWORD}@127.0.0.1:7001\n"),
    )
    .unwrap();
    chmod(&path, 0o644);
    let (c, w) = GatewayConfig::load(&path).unwrap();
    assert!(w.is_empty(), "{w:?}");
    let Some(StoreConfig::Redis(s)) = c.store() else {
        panic!("{:?}", c.store());
    };
    assert_eq!(s.cluster_nodes(), 2);
    assert!(!format!("{s:?}").contains(PASSWORD));
    // An inline password in one node's URL is warned about.
    let (_dir, path) = with_store(&format!(
        "{{ type = \"redis\", cluster = [\"redis://127.0.0.1:7000\", \"redis://:{PASSWORD}@127.0.0.1:7001\"] }}"
    ));
    chmod(&path, 0o644);
    let (_, w) = GatewayConfig::load(&path).unwrap();
    assert!(w.iter().any(|w| w.0.contains("store password")), "{w:?}");
    assert!(!format!("{w:?}").contains(PASSWORD));
}
