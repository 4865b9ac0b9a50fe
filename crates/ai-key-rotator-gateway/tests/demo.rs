#![cfg(feature = "demo")]
//! `ai-key-rotator demo`: the subcommand starts, serves the dashboard, and a request like the
//! `curl` line it prints succeeds; the scripted keys end up in their states.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use ai_key_rotator_gateway::demo::{CLIENT_TOKEN, Demo};

#[tokio::test]
async fn the_demo_subcommand_serves_the_dashboard_and_the_curl_line_works() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ai-key-rotator"))
        .args(["demo", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{line:?}"))
        .to_owned();
    let mut banner = String::new();
    for _ in 0..4 {
        out.read_line(&mut banner).unwrap();
    }
    assert!(banner.contains("/dashboard"), "{banner}");
    let url = format!("http://{addr}");
    let page = support::client()
        .get(format!("{url}/dashboard"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("good-1"));
    // The curl line.
    let r = support::client()
        .post(format!("{url}/openai/v1/chat/completions"))
        .bearer_auth(CLIENT_TOKEN)
        .header("content-type", "application/json")
        .body(support::CHAT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn the_scripted_keys_end_up_cooling_disabled_and_resting() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let demo = Demo::start(listener, false).await.unwrap();
    // Round robin: five requests meet every key; each succeeds for the client.
    for _ in 0..5 {
        let r = support::client()
            .post(format!("{}/openai/v1/chat/completions", demo.url))
            .bearer_auth(CLIENT_TOKEN)
            .header("content-type", "application/json")
            .body(support::CHAT)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let status = demo.gateway().rotator().provider_status("openai").unwrap();
    let state = |label: &str| {
        let c = status
            .credentials
            .iter()
            .find(|c| c.id.label.as_deref() == Some(label))
            .unwrap();
        (c.state, c.reason.as_ref().map(|r| r.cause.to_string()))
    };
    assert_eq!(
        state("good-1").0,
        ai_key_rotator::CredentialState::Available
    );
    assert_eq!(
        state("good-2").0,
        ai_key_rotator::CredentialState::Available
    );
    assert!(matches!(
        state("rate-limited").0,
        ai_key_rotator::CredentialState::Cooling { .. }
    ));
    assert_eq!(
        state("invalid").0,
        ai_key_rotator::CredentialState::Disabled
    );
    // Out of credits: depleted until a re-check proves otherwise.
    let (s, why) = state("no-credits");
    assert!(
        matches!(s, ai_key_rotator::CredentialState::Depleted { .. }),
        "{s:?}"
    );
    assert!(why.unwrap().contains("quota"));
    demo.stop().await.unwrap();
}
