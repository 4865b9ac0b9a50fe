//! The canary check for configuration errors: the parsers quote the offending line or value, and
//! a key sits on that line. No error may show it, whatever kind of error it is.

use ai_key_rotator::{ConfigError, RotatorConfig};

const CANARY: &str = "sk-CANARY-0123456789abcdefghijklmnopqrstuvwxyz";

/// One bad configuration: the text, and what its error must name.
struct Row {
    text: String,
    /// Fragments the message must contain (line, provider, credential, field).
    names: &'static [&'static str],
}

fn row(text: impl Into<String>, names: &'static [&'static str]) -> Row {
    Row {
        text: text.into().replace("CANARY", CANARY),
        names,
    }
}

fn check_all(read: fn(&str) -> Result<RotatorConfig, ConfigError>, rows: &[Row]) {
    let mut failures = Vec::new();
    for r in rows {
        let message = match read(&r.text) {
            Ok(_) => {
                failures.push(format!("{}\n    accepted", r.text));
                continue;
            }
            Err(e) => format!("{e} / {e:?}"),
        };
        if message.contains(CANARY) || message.contains(&CANARY[3..20]) {
            failures.push(format!("{}\n    leaks the key: {message}", r.text));
        }
        for name in r.names {
            if !message.contains(name) {
                failures.push(format!("{}\n    {name:?} not in {message}", r.text));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn toml_errors_never_show_a_key() {
    let p = "reset_interval_ms = 0\n[providers.openai]\n";
    check_all(
        RotatorConfig::from_toml_str,
        &[
            // A typo on the key's line.
            row(
                format!("{p}credentials = [{{ key = \"CANARY\", lable = \"x\" }}]"),
                &[
                    "line 3",
                    "provider `openai`",
                    "credential ef0f8a998061cc10",
                    "field `lable`",
                    "unknown field",
                ],
            ),
            // A syntax error on the key's line (an unclosed inline table).
            row(
                format!("{p}credentials = [{{ key = \"CANARY\", label = \"x\" ]"),
                &["TOML", "line 3"],
            ),
            // A key written without quotes.
            row(
                format!("{p}credentials = [{{ key = CANARY }}]"),
                &["line 3"],
            ),
            // A wrong type on the key's line: the value is a string where a number belongs.
            row(
                format!(
                    "{p}credentials = [{{ key = \"CANARY\", label = \"w\", weight = \"CANARY\" }}]"
                ),
                &["line 3", "credential w", "field `weight`", "invalid type"],
            ),
            // The key where a list of credentials belongs.
            row(
                format!("{p}credentials = \"CANARY\""),
                &["line 3", "field `credentials`", "invalid type"],
            ),
            // A missing key.
            row(
                format!("{p}credentials = [{{ label = \"lost\" }}]"),
                &["line 3", "credential lost", "missing field `key`"],
            ),
            // The key as a strategy's name.
            row(
                format!("{p}credentials = [{{ key = \"sk-1\" }}]\nstrategy = \"CANARY\""),
                &["line 4", "field `strategy`", "unknown variant"],
            ),
        ],
    );
}

#[test]
fn json_errors_never_show_a_key() {
    let open = "{\"providers\": {\"openai\": {\n\"credentials\": [";
    let close = "]}}}";
    check_all(
        RotatorConfig::from_json_str,
        &[
            row(
                format!("{open}{{\"key\": \"CANARY\", \"lable\": \"x\"}}{close}"),
                &[
                    "JSON",
                    "line 2",
                    "provider `openai`",
                    "credential ef0f8a998061cc10",
                    "field `lable`",
                ],
            ),
            row(
                format!("{open}{{\"key\": \"CANARY\" \"label\": \"x\"}}{close}"),
                &["line 2"],
            ),
            row(format!("{open}{{\"key\": CANARY}}{close}"), &["line 2"]),
            row(
                format!(
                    "{open}{{\"key\": \"CANARY\", \"label\": \"w\", \"weight\": \"CANARY\"}}{close}"
                ),
                &["line 2", "credential w", "field `weight`", "invalid type"],
            ),
            row(
                format!("{open}\"CANARY\"{close}"),
                &["line 2", "provider `openai`", "invalid type"],
            ),
            row(
                format!("{open}{{\"label\": \"lost\"}}{close}"),
                &["line 2", "credential lost", "missing field `key`"],
            ),
            row(
                format!("{open}{{\"key\": \"CANARY\"}}{close} trailing"),
                &["line 2"],
            ),
        ],
    );
}

#[test]
fn the_credential_is_named_by_fingerprint_when_it_has_no_label() {
    let e = RotatorConfig::from_toml_str(&format!(
        "[providers.openai]\ncredentials = [{{ key = \"sk-1\" }}, {{ key = \"{CANARY}\", wieght = 1 }}]"
    ))
    .unwrap_err();
    let fingerprint = ai_key_rotator::Fingerprint::of(CANARY).to_string();
    match &e {
        ConfigError::Parse {
            line,
            provider,
            credential,
            field,
            ..
        } => {
            assert_eq!(*line, Some(2));
            assert_eq!(provider.as_deref(), Some("openai"));
            assert_eq!(credential.as_deref(), Some(fingerprint.as_str()));
            assert_eq!(field.as_deref(), Some("wieght"));
        }
        other => panic!("not a parse error: {other:?}"),
    }
}

/// The message README.md shows, word for word.
#[test]
fn the_readme_message_is_the_real_one() {
    let text = "reset_interval_ms = 600000\n\n[providers.openai]\n\
                cooldown = { type = \"fixed\", duration_ms = 60000 }\ncredentials = [\n  \
                { key = \"sk-key1\", label = \"personal\", wieght = 2 },\n]\n";
    assert_eq!(
        RotatorConfig::from_toml_str(text).unwrap_err().to_string(),
        "invalid TOML configuration at line 6 (provider `openai`, credential personal, field \
         `wieght`): unknown field `wieght`, expected one of `key`, `label`, `meta`, `scope`, \
         `weight`"
    );
}
