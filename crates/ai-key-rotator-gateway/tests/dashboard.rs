//! The dashboard's page and JSON, and the admin actions: who may read, who may act, what each
//! action does, and that no key ever appears.

mod support;

use std::time::Duration;

use ai_key_rotator::Fingerprint;
use mock_upstream::{Behavior, Config, MockUpstream};
use support::{CHAT, InProcess, TOKEN, provider};

const ADMIN: &str = "akr-admin-token-0123456789abcdef";
/// A key that must never leave the gateway.
const CANARY: &str = "sk-canary-7f3e9d1c5b2a4e6f8d0c";

async fn setup() -> (MockUpstream, InProcess) {
    let upstream = MockUpstream::start(Config::new()).await.unwrap();
    upstream.script().on_key(
        "sk-limited",
        Behavior::rate_limited(Duration::from_secs(90)),
    );
    let gw = InProcess::start(&support::config_text(
        &upstream.base_url(),
        &format!("admin_tokens = [{{ key = \"{ADMIN}\", label = \"alice\" }}]"),
        &[provider(
            "openai",
            "openai",
            &["sk-limited", CANARY, "sk-third"],
        )],
    ))
    .await;
    (upstream, gw)
}

async fn chat(gw: &InProcess) -> reqwest::Response {
    support::client()
        .post(format!("{}/openai/v1/chat/completions", gw.url()))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(CHAT)
        .send()
        .await
        .unwrap()
}

async fn get(gw: &InProcess, path: &str, token: Option<&str>) -> (u16, String) {
    let mut r = support::client().get(format!("{}{path}", gw.url()));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn admin(gw: &InProcess, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
    let mut r = support::client().post(format!("{}{path}", gw.url()));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (
        status,
        serde_json::from_slice(&r.bytes().await.unwrap()).unwrap_or_default(),
    )
}

fn key<'a>(d: &'a serde_json::Value, k: &str) -> &'a serde_json::Value {
    d["providers"][0]["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["fingerprint"] == Fingerprint::of(k).to_string())
        .unwrap()
}

#[tokio::test]
async fn the_json_shows_states_reasons_counts_and_never_a_key() {
    let (_upstream, gw) = setup().await;
    assert_eq!(chat(&gw).await.status(), 200);
    let (status, body) = get(&gw, "/dashboard.json", Some(TOKEN)).await;
    assert_eq!(status, 200);
    assert!(
        !body.contains(CANARY) && !body.contains("sk-limited"),
        "{body}"
    );
    let d: serde_json::Value = serde_json::from_str(&body).unwrap();
    let p = &d["providers"][0];
    assert_eq!(p["name"], "openai");
    assert_eq!(
        (p["healthy"].as_u64(), p["total"].as_u64()),
        (Some(2), Some(3))
    );
    assert_eq!(p["minute"]["requests"], 1);
    assert_eq!(p["today"]["requests"], 1);
    assert!(p["next_at"].as_u64().is_some());
    let limited = key(&d, "sk-limited");
    assert_eq!(limited["state"], "cooling");
    assert_eq!(limited["label"], "openai-1");
    assert_eq!(limited["reason"]["verdict"], "rate-limited");
    assert!(limited["until"].as_u64().unwrap() > d["at"].as_u64().unwrap());
    assert_eq!(limited["answers"]["rate_limited"], 1);
    assert_eq!(limited["last"]["class"], "rate_limited");
    let canary = key(&d, CANARY);
    assert_eq!(canary["state"], "available");
    assert_eq!(canary["answers"]["ok"], 1);
    assert_eq!(canary["used"], 1);
}

#[tokio::test]
async fn reading_needs_a_token_and_the_page_renders_without_script() {
    let (_upstream, gw) = setup().await;
    assert_eq!(chat(&gw).await.status(), 200);
    assert_eq!(get(&gw, "/dashboard.json", None).await.0, 401);
    assert_eq!(
        get(&gw, "/dashboard.json", Some("wrong-token-0123456789"))
            .await
            .0,
        401
    );
    // An admin token reads too.
    assert_eq!(get(&gw, "/dashboard.json", Some(ADMIN)).await.0, 200);

    // Without a token: the page, with a token form and no data.
    let (status, shell) = get(&gw, "/dashboard", None).await;
    assert_eq!(status, 200);
    assert!(shell.contains("id=\"auth\">"), "the token form is shown");
    for k in ["sk-limited", CANARY, "sk-third"] {
        assert!(
            !shell.contains(&Fingerprint::of(k).to_string()),
            "no key without a token"
        );
    }
    // With one: every key rendered server-side, by label and fingerprint.
    let (_, page) = get(&gw, "/dashboard", Some(TOKEN)).await;
    assert!(page.len() < 150 * 1024);
    for k in ["sk-limited", CANARY, "sk-third"] {
        assert!(page.contains(&Fingerprint::of(k).to_string()));
    }
    assert!(page.contains("data-state=\"cooling\""));
    assert!(page.contains("class=\"countdown\""));
    assert!(!page.contains(CANARY) && !page.contains("sk-limited"));
    assert!(!page.contains("http://") && !page.contains("https://"));

    // `/` leads to the dashboard.
    let r = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(gw.url())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], "/dashboard");
}

#[tokio::test]
async fn admin_actions_need_the_admin_token_and_do_what_they_say() {
    let (upstream, gw) = setup().await;
    let fp = Fingerprint::of(CANARY);
    let path = |action: &str| format!("/admin/keys/openai/{fp}/{action}");
    // No token: 401; a client token or another token: 403.
    for action in ["disable", "enable", "reset", "probe"] {
        assert_eq!(admin(&gw, &path(action), None).await.0, 401, "{action}");
        assert_eq!(
            admin(&gw, &path(action), Some(TOKEN)).await.0,
            403,
            "{action}"
        );
        assert_eq!(
            admin(&gw, &path(action), Some("not-a-token-0123456789"))
                .await
                .0,
            403,
            "{action}"
        );
    }
    assert_eq!(admin(&gw, "/admin/reload", None).await.0, 401);
    assert_eq!(admin(&gw, "/admin/reload", Some(TOKEN)).await.0, 403);
    // Nothing was changed by the refused requests.
    let state = |gw: &InProcess, k: &str| {
        let s = gw.gateway.rotator().provider_status("openai").unwrap();
        s.credentials
            .iter()
            .find(|c| c.id.fingerprint == Fingerprint::of(k))
            .unwrap()
            .state
    };
    assert_eq!(
        state(&gw, CANARY),
        ai_key_rotator::CredentialState::Available
    );

    let (status, body) = admin(&gw, &path("disable"), Some(ADMIN)).await;
    assert_eq!(
        (status, body["changed"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    assert_eq!(
        state(&gw, CANARY),
        ai_key_rotator::CredentialState::Disabled
    );
    let (_, body) = admin(&gw, &path("disable"), Some(ADMIN)).await;
    assert_eq!(body["changed"], false);
    let (status, body) = admin(&gw, &path("enable"), Some(ADMIN)).await;
    assert_eq!((status, body["changed"].as_bool()), (200, Some(true)));
    assert_eq!(
        state(&gw, CANARY),
        ai_key_rotator::CredentialState::Available
    );

    // Reset: cool the first key through the mock, then end its cooldown by hand.
    assert_eq!(chat(&gw).await.status(), 200);
    assert!(matches!(
        state(&gw, "sk-limited"),
        ai_key_rotator::CredentialState::Cooling { .. }
    ));
    let limited = format!("/admin/keys/openai/{}/reset", Fingerprint::of("sk-limited"));
    let (status, body) = admin(&gw, &limited, Some(ADMIN)).await;
    assert_eq!(
        (status, body["changed"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    assert_eq!(
        state(&gw, "sk-limited"),
        ai_key_rotator::CredentialState::Available
    );

    // Probe: the model list, never a completion.
    upstream.clear();
    let (status, body) = admin(&gw, &path("probe"), Some(ADMIN)).await;
    assert_eq!(
        (status, body["works"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    let seen = upstream.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/v1/models");

    // Unknown keys and actions, malformed fingerprints, GET.
    let (status, _) = admin(
        &gw,
        "/admin/keys/openai/0000000000000000/disable",
        Some(ADMIN),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(
        admin(&gw, "/admin/keys/openai/xyz/disable", Some(ADMIN))
            .await
            .0,
        400
    );
    assert_eq!(admin(&gw, &path("explode"), Some(ADMIN)).await.0, 404);
    let r = support::client()
        .get(format!("{}{}", gw.url(), path("disable")))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    // In-process gateways have no file to reload from.
    assert_eq!(admin(&gw, "/admin/reload", Some(ADMIN)).await.0, 409);
}

#[tokio::test]
async fn admin_actions_are_audited_and_reload_reads_the_file() {
    let upstream = MockUpstream::start(Config::new()).await.unwrap();
    let config = support::config_text(
        &upstream.base_url(),
        &format!("admin_tokens = [{{ key = \"{ADMIN}\", label = \"alice\" }}]"),
        &[provider("openai", "openai", &["sk-a", CANARY])],
    );
    let gw = support::GatewayProcess::start(&config);
    let c = support::client();
    let fp = Fingerprint::of(CANARY);
    let r = c
        .post(format!("{}/admin/keys/openai/{fp}/disable", gw.url()))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Reload after adding a key to the file.
    let more = config.replace(
        &format!("\"{CANARY}\", label = \"openai-2\" }}"),
        &format!("\"{CANARY}\", label = \"openai-2\" }}, {{ key = \"sk-new\", label = \"new\" }}"),
    );
    assert_ne!(more, config);
    std::fs::write(gw.config_path(), more).unwrap();
    let r = c
        .post(format!("{}/admin/reload", gw.url()))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert!(body["changes"].to_string().contains("new"), "{body}");
    let logs = gw.stop_and_read_logs();
    let audit: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("admin action"))
        .collect();
    assert!(
        audit
            .iter()
            .any(|l| l.contains("alice") && l.contains("disable") && l.contains(&fp.to_string())),
        "{logs}"
    );
    assert!(
        audit
            .iter()
            .any(|l| l.contains("alice") && l.contains("reload")),
        "{logs}"
    );
    assert!(!logs.contains(CANARY), "the key appeared in the log");
    assert!(!logs.contains(ADMIN), "the admin token appeared in the log");
}

#[tokio::test]
async fn an_admin_token_must_differ_from_client_tokens() {
    let text = support::config_text(
        "http://127.0.0.1:9",
        &format!("admin_tokens = [\"{TOKEN}\"]"),
        &[provider("openai", "openai", &["sk-a"])],
    );
    let e = ai_key_rotator_gateway::GatewayConfig::from_toml(&text, ".".as_ref()).unwrap_err();
    assert!(
        e.to_string()
            .contains("admin token #1 is also a client token"),
        "{e}"
    );
    assert!(!e.to_string().contains(TOKEN));
}

async fn metrics(gw: &InProcess) -> String {
    get(gw, "/metrics", Some(TOKEN)).await.1
}

#[tokio::test]
async fn metrics_tell_the_store_health_and_each_keys_answers() {
    let (_upstream, gw) = setup().await;
    assert_eq!(chat(&gw).await.status(), 200);
    let m = metrics(&gw).await;
    assert!(m.contains("akr_gateway_store_up 1"), "{m}");
    let limited = Fingerprint::of("sk-limited").to_string();
    assert!(
        m.lines().any(|l| l.starts_with("akr_gateway_key_answers{")
            && l.contains("key=\"openai-1\"")
            && l.contains(&limited)
            && l.contains("class=\"rate_limited\"")
            && l.ends_with(" 1")),
        "{m}"
    );
    assert!(!m.contains(CANARY));

    // A Redis store nobody answers on: down, and its failures counted.
    let upstream = MockUpstream::start(Config::new()).await.unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let gw = InProcess::start(&support::config_text(
        &upstream.base_url(),
        &format!("store = {{ type = \"redis\", url = \"redis://127.0.0.1:{port}/\" }}"),
        &[provider("openai", "openai", &["sk-a"])],
    ))
    .await;
    let mut last = String::new();
    for _ in 0..3000 {
        last = metrics(&gw).await;
        if last.contains("akr_gateway_store_up 0") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(last.contains("akr_gateway_store_up 0"), "{last}");
    let errors: u64 = last
        .lines()
        .find(|l| l.starts_with("akr_gateway_store_errors_total{state=\"failing\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no store error counter in {last}"));
    assert!(errors >= 1);
}

#[tokio::test]
async fn logs_can_be_json_lines_from_the_configuration() {
    let upstream = MockUpstream::start(Config::new()).await.unwrap();
    let gw = support::GatewayProcess::start(&support::config_text(
        &upstream.base_url(),
        &format!(
            "log_format = \"json\"\nadmin_tokens = [{{ key = \"{ADMIN}\", label = \"alice\" }}]"
        ),
        &[provider("openai", "openai", &[CANARY])],
    ));
    let r = support::client()
        .post(format!(
            "{}/admin/keys/openai/{}/disable",
            gw.url(),
            Fingerprint::of(CANARY)
        ))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let logs = gw.stop_and_read_logs();
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .all(|l| l["level"].is_string() && l["timestamp"].is_string())
    );
    let audit = lines
        .iter()
        .find(|l| l["target"] == "audit")
        .unwrap_or_else(|| panic!("no audit line in {logs}"));
    assert_eq!(audit["who"], "alice");
    assert_eq!(audit["action"], "disable");
    assert!(!logs.contains(CANARY));
}
