//! The configuration file's errors: never a key, whether it is inline, from `${VAR}` or from a
//! file, and every misspelt option named.

use std::path::Path;

use ai_key_rotator_gateway::config::GatewayConfig;

const CANARY: &str = "sk-CANARY-0123456789abcdefghijklmnopqrstuvwxyz";
const HEAD: &str =
    "client_tokens = [\"a-long-enough-client-token\"]\n[providers.openai]\nfamily = \"openai\"\n";

/// Parses `HEAD` + `rest` (with `CANARY` replaced by the canary key) and returns the error.
fn error(rest: &str, base: &Path) -> String {
    let text = format!("{HEAD}{}", rest.replace("CANARY", CANARY));
    match GatewayConfig::from_toml(&text, base) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => format!("{e} / {e:?}"),
    }
}

#[test]
fn errors_never_show_a_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key"), format!("{CANARY}\n")).unwrap();
    // PATH is set in every test process and is not a key, but it stands in for a `${VAR}`
    // secret: its value must not show either.
    let path_value = std::env::var("PATH").unwrap();
    let rows: &[(&str, &[&str])] = &[
        // A typo next to an inline key.
        (
            "keys = [{ key = \"CANARY\", lable = \"x\" }]",
            &[
                "line 4",
                "provider `openai`",
                "field `lable`",
                "unknown field",
            ],
        ),
        // ... next to a key from a file, and from the environment.
        (
            "keys = [{ file = \"key\", label = \"f\", wieght = 2 }]",
            &["line 4", "credential f", "field `wieght`"],
        ),
        (
            "keys = [{ key = \"${PATH}\", scope = 3 }]",
            &["line 4", "credential #1", "field `scope`", "invalid type"],
        ),
        // Syntax errors on the key's line.
        ("keys = [{ key = \"CANARY\", label = \"x\" ]", &["line 4"]),
        ("keys = [CANARY]", &["line 4"]),
        // Wrong types.
        (
            "keys = [{ key = \"CANARY\", label = \"w\", weight = \"CANARY\" }]",
            &["line 4", "credential w", "field `weight`"],
        ),
        ("keys = \"CANARY\"", &["line 4", "field `keys`"]),
        (
            "keys = [\"CANARY\"]\nstrategy = \"CANARY\"",
            &["line 5", "field `strategy`"],
        ),
        // A key with neither `key` nor `file`.
        (
            "keys = [{ label = \"lost\" }]",
            &["key #1", "exactly one of `key` or `file`"],
        ),
        // An unknown option beside the keys.
        (
            "keys = [\"CANARY\"]\nroute = \"/o\"\ncooldown = { type = \"midnight-utc\", time_zone = \"UTC\" }",
            &["line 6", "field `time_zone`"],
        ),
        (
            "keys = [\"CANARY\"]\n[store]\ntype = \"memory\"\npath = \"x\"",
            &["field `path`"],
        ),
    ];
    let mut failures = Vec::new();
    for (rest, names) in rows {
        let message = error(rest, dir.path());
        if message.contains(CANARY) || message.contains(&CANARY[3..20]) {
            failures.push(format!("{rest}\n    leaks the key: {message}"));
        }
        if message.contains(&path_value) {
            failures.push(format!("{rest}\n    shows an environment value: {message}"));
        }
        for name in *names {
            if !message.contains(name) {
                failures.push(format!("{rest}\n    {name:?} not in {message}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
