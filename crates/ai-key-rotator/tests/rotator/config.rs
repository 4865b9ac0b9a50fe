use ai_key_rotator::{ConfigError, Cooldown, KeyRotator, RotatorConfig};

fn from_toml(text: &str) -> Result<KeyRotator, ConfigError> {
    let config: RotatorConfig = toml::from_str(text).expect("parses");
    KeyRotator::from_config(config)
}

#[test]
fn toml_in_the_original_shape() {
    let config: RotatorConfig = toml::from_str(
        r#"
        reset_interval_ms = 0

        [providers.openai]
        cooldown = { type = "fixed", duration_ms = 60000 }
        credentials = [
            { key = "sk-key1", label = "personal" },
            { key = "sk-key2", label = "work" },
        ]

        [providers.google]
        credentials = [
            { key = "AIza-1", meta = { model = "gemini-flash" } },
            { key = "AIza-2", meta = { model = "gemini-pro" } },
        ]
        "#,
    )
    .unwrap();
    assert_eq!(config.reset_interval_ms, 0);
    assert_eq!(
        config.providers["openai"].cooldown,
        Cooldown::Fixed {
            duration_ms: 60_000
        }
    );
    assert_eq!(config.providers["google"].cooldown, Cooldown::MidnightUtc);
    let r = KeyRotator::from_config(config).unwrap();
    let g = r.get_key("google").unwrap();
    assert_eq!(g.meta().unwrap()["model"], "gemini-flash");
    assert_eq!(r.get_key("openai").unwrap().label(), Some("personal"));
}

#[test]
fn json_with_the_original_camel_case_names() {
    let config: RotatorConfig = serde_json::from_str(
        r#"{"providers":{"openai":{"credentials":[{"key":"sk-1"}],
            "cooldown":{"type":"fixed","durationMs":1000}}},"resetIntervalMs":0}"#,
    )
    .unwrap();
    assert_eq!(
        config.providers["openai"].cooldown,
        Cooldown::Fixed { duration_ms: 1000 }
    );
    assert_eq!(config.reset_interval_ms, 0);
}

#[test]
fn misspelt_options_are_rejected() {
    let e = toml::from_str::<RotatorConfig>(
        "[providers.openai]\ncredentials = [{ key = \"sk-1\", lable = \"x\" }]",
    )
    .unwrap_err();
    assert!(e.to_string().contains("lable"), "{e}");
    let e = toml::from_str::<RotatorConfig>(
        "[providers.openai]\ncredentials = [{ key = \"sk-1\" }]\ncooldown = { type = \"weekly\" }",
    )
    .unwrap_err();
    assert!(e.to_string().contains("weekly"), "{e}");
}

/// One row per invalid configuration: the TOML, and the exact error message.
#[test]
fn invalid_configs_name_the_provider_and_credential() {
    #[track_caller]
    fn check(text: &str, expected: &str) {
        let err = from_toml(text).expect_err(text);
        assert_eq!(err.to_string(), expected);
    }
    check(
        "[providers.openai]\ncredentials = []",
        "provider `openai` has no credentials",
    );
    check(
        "[providers.openai]\ncredentials = [{ key = \"sk-1\" }, { key = \"\" }]",
        "credential #2 of provider `openai` has an empty key",
    );
    check(
        "[providers.openai]\ncredentials = [{ key = \"sk-1\" }, { key = \" \", label = \"work\" }]",
        "credential work of provider `openai` has an empty key",
    );
    check(
        "[providers.openai]\ncredentials = [{ key = \"sk-1\" }, { key = \"sk-1\", label = \"twin\" }]",
        "credential twin of provider `openai` is a duplicate key",
    );
    // Without a label the duplicate is named by its fingerprint, never by the key.
    check(
        "[providers.openai]\ncredentials = [{ key = \"abc\" }, { key = \"abc\" }]",
        "credential ba7816bf8f01cfea of provider `openai` is a duplicate key",
    );
    check(
        "[providers.openai]\ncredentials = [{ key = \"sk-1\" }]\ncooldown = { type = \"fixed\", duration_ms = 0 }",
        "provider `openai` has a zero-length cooldown",
    );
    check(
        "[providers.\"\"]\ncredentials = [{ key = \"sk-1\" }]",
        "provider name is empty",
    );
}

#[test]
fn duplicate_provider_in_the_builder_is_an_error() {
    let e = KeyRotator::builder()
        .provider(
            "openai",
            ai_key_rotator::ProviderConfig::new().credential("a"),
        )
        .provider(
            "openai",
            ai_key_rotator::ProviderConfig::new().credential("b"),
        )
        .build()
        .unwrap_err();
    assert_eq!(e.to_string(), "provider `openai` already exists");
}
