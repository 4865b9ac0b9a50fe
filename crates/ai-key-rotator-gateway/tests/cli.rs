//! The command line as an operator meets it: `status` against a running gateway from a shell
//! without the providers' keys, and `check` refusing what `serve` would refuse.

mod support;

use std::process::Command;

use mock_upstream::{Config, MockUpstream};
use support::{GatewayProcess, TOKEN, provider};

fn cli() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ai-key-rotator"));
    c.env_remove("RUST_LOG");
    c
}

#[tokio::test]
async fn status_needs_only_the_url_and_a_token() {
    let upstream = MockUpstream::start(Config::new()).await.unwrap();
    let gw = GatewayProcess::start(&support::config_text(
        &upstream.base_url(),
        "",
        &[provider("openai", "openai", &["sk-a", "sk-b"])],
    ));
    // The operator's copy of the file: keys from variables this shell does not have.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rotator.toml");
    std::fs::write(
        &path,
        format!(
            "client_tokens = [\"{TOKEN}\"]\n[providers.openai]\nfamily = \"openai\"\n\
             keys = [\"${{AKR_SURELY_UNSET_KEY_1}}\", \"${{AKR_SURELY_UNSET_KEY_2}}\"]\n"
        ),
    )
    .unwrap();
    let url = gw.url();
    let out = tokio::task::spawn_blocking(move || {
        cli()
            .args(["status", "--url", &url, "--config"])
            .arg(&path)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("openai-1") && stdout.contains("openai-2"),
        "{stdout}"
    );
}

#[test]
fn check_refuses_what_serve_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rotator.toml");
    std::fs::write(
        &path,
        "listen = \"0.0.0.0:8787\"\nallow_unauthenticated = true\n\
         [providers.openai]\nfamily = \"openai\"\nkeys = [\"sk-a\"]\n",
    )
    .unwrap();
    let check = |path: &std::path::Path| cli().arg("check").arg("--config").arg(path).output();
    let out = check(&path).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "check accepted it: {stderr}");
    assert!(
        stderr.contains("allow_unauthenticated") && stderr.contains("0.0.0.0:8787"),
        "{stderr}"
    );
    // And `serve` does refuse it, with the same words.
    let out = cli()
        .arg("serve")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("allow_unauthenticated"));

    // On loopback the same file passes.
    std::fs::write(
        &path,
        "listen = \"127.0.0.1:8787\"\nallow_unauthenticated = true\n\
         [providers.openai]\nfamily = \"openai\"\nkeys = [\"sk-a\"]\n",
    )
    .unwrap();
    let out = check(&path).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
