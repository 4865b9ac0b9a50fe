//! The dashboard in a real browser: headless Chromium driven through chromedriver (WebDriver,
//! plain HTTP and JSON). The test loads the page from a running gateway, checks the rendered
//! DOM (keys, states, countdown, counts, tokens, budget use against limits), cools a key
//! through the mock upstream and waits for the page to show it (and the answer's tokens), disables a key with the admin buttons, writes a screenshot to
//! `target/artifacts/dashboard.png`, and scans the page source and every endpoint for a
//! canary key.
//!
//! Needs `chromium` and `chromedriver` (Debian: `apt-get install chromium chromium-driver`;
//! `.ci/run` installs them). Without them the test fails and says so: it never passes
//! silently.

mod support;

use std::net::TcpListener as StdListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ai_key_rotator::Fingerprint;
use mock_upstream::{Behavior, Config, MockUpstream};
use serde_json::{Value, json};
use support::{CHAT, InProcess, TOKEN, provider};

const ADMIN: &str = "akr-admin-token-browser-0123456789";
const CANARY: &str = "sk-canary-browser-5c1d9e7a3b6f2e8d";

/// chromedriver, stopped when dropped.
struct Driver {
    child: Child,
    base: String,
    http: reqwest::Client,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find(names: &[&str]) -> Option<String> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|n| {
        std::env::split_paths(&path)
            .map(|d| d.join(n))
            .find(|p| p.is_file())
            .map(|p| p.display().to_string())
    })
}

impl Driver {
    async fn start() -> Driver {
        let (Some(driver), Some(_)) = (
            find(&["chromedriver"]),
            find(&["chromium", "chromium-browser", "google-chrome"]),
        ) else {
            panic!(
                "the dashboard's browser test needs chromium and chromedriver: install them \
                 with `apt-get install -y chromium chromium-driver` (Debian), as .ci/run does"
            );
        };
        let port = {
            let l = StdListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let d = Driver {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http: support::client(),
        };
        support::wait_until("chromedriver is ready", || async {
            match d.http.get(format!("{}/status", d.base)).send().await {
                Ok(r) => {
                    let v: Value = serde_json::from_slice(&r.bytes().await.unwrap_or_default())
                        .unwrap_or_default();
                    v["value"]["ready"] == true
                }
                Err(_) => false,
            }
        })
        .await;
        d
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut r = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            r = r
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let r = r.send().await.expect("chromedriver answers");
        let v: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
        assert!(v["value"]["error"].is_null(), "webdriver {path}: {v}");
        v["value"].clone()
    }

    async fn session(&self) -> Session<'_> {
        let profile = tempfile::tempdir().unwrap();
        let binary = find(&["chromium", "chromium-browser", "google-chrome"]).unwrap();
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "goog:chromeOptions": {
                "binary": binary,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        }}});
        let v = self
            .call(reqwest::Method::POST, "/session", Some(caps))
            .await;
        let id = v["sessionId"].as_str().expect("a session id").to_owned();
        Session {
            driver: self,
            id,
            _profile: profile,
        }
    }
}

struct Session<'d> {
    driver: &'d Driver,
    id: String,
    _profile: tempfile::TempDir,
}

impl Session<'_> {
    async fn go(&self, url: &str) {
        self.driver
            .call(
                reqwest::Method::POST,
                &format!("/session/{}/url", self.id),
                Some(json!({ "url": url })),
            )
            .await;
    }

    async fn js(&self, script: &str, args: Value) -> Value {
        self.driver
            .call(
                reqwest::Method::POST,
                &format!("/session/{}/execute/sync", self.id),
                Some(json!({ "script": script, "args": args })),
            )
            .await
    }

    async fn source(&self) -> String {
        self.driver
            .call(
                reqwest::Method::GET,
                &format!("/session/{}/source", self.id),
                None,
            )
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn screenshot(&self) -> Vec<u8> {
        let v = self
            .driver
            .call(
                reqwest::Method::GET,
                &format!("/session/{}/screenshot", self.id),
                None,
            )
            .await;
        base64_decode(v.as_str().unwrap())
    }

    /// The rendered keys and provider facts, read from the DOM.
    async fn dom(&self) -> Value {
        self.js(
            "const rows = [...document.querySelectorAll('tr.key')].map(r => ({
                fp: r.dataset.fp, state: r.dataset.state,
                used: r.querySelector('.used').textContent,
                answers: r.querySelector('.answers').textContent,
                tokens: r.querySelector('.tokens').textContent.replace(/\\u00a0/g, ' '),
                countdown: (r.querySelector('.countdown') || {}).textContent || null,
                buttons: [...r.querySelectorAll('button')].map(b => b.dataset.act) }));
             const p = document.querySelector('section.provider');
             return { rows, healthy: p && p.querySelector('.healthy').textContent,
                      minute: p && p.querySelector('.minute').textContent,
                      next: p && p.querySelector('.next').textContent,
                      tokens: p && p.querySelector('.facts .tokens').textContent.replace(/\\u00a0/g, ' '),
                      budgets: p ? [...p.querySelectorAll('li.budget')].map(b => ({
                        budget: b.dataset.budget, kind: b.dataset.kind,
                        use: b.querySelector('.use').textContent })) : [],
                      updated: document.querySelector('#updated').textContent };",
            json!([]),
        )
        .await
    }

    async fn wait_for(&self, what: &str, mut ok: impl FnMut(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let dom = self.dom().await;
            if ok(&dom) {
                return dom;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "gave up waiting: {what}; the page shows {dom}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn end(self) {
        self.driver
            .call(
                reqwest::Method::DELETE,
                &format!("/session/{}", self.id),
                None,
            )
            .await;
    }
}

fn row<'a>(dom: &'a Value, key: &str) -> &'a Value {
    let fp = Fingerprint::of(key).to_string();
    dom["rows"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["fp"] == fp.as_str()))
        .unwrap_or(&Value::Null)
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let clean: Vec<u8> = s
        .bytes()
        .filter(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/')
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let v: Vec<u32> = chunk.iter().map(|&c| u32::from(val(c))).collect();
        let n = v.iter().fold(0u32, |a, &b| (a << 6) | b) << (6 * (4 - v.len()));
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..v.len().saturating_sub(1)]);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_pool_live_in_a_real_browser() {
    let upstream = MockUpstream::start(Config::new()).await.unwrap();
    // The first key is rate limited for a long while: cooling, with a countdown.
    upstream
        .script()
        .on_key("sk-first", Behavior::rate_limited(Duration::from_secs(600)));
    let gw = InProcess::start(&support::config_text(
        &upstream.base_url(),
        &format!("admin_tokens = [{{ key = \"{ADMIN}\", label = \"browser\" }}]"),
        &[
            provider("openai", "openai", &["sk-first", CANARY, "sk-third"])
                .with("budget = { requests_per_minute = 600, tokens_per_day = 1000000 }"),
        ],
    ))
    .await;
    let driver = Driver::start().await;
    let s = driver.session().await;
    let dashboard = format!("{}/dashboard", gw.url());

    // Without a token the page asks for one and shows no key.
    s.go(&dashboard).await;
    let dom = s
        .wait_for("the token form", |d| d["updated"] == "a token is needed")
        .await;
    assert_eq!(dom["rows"], json!([]));

    // With the client token (kept in sessionStorage), every key, available.
    s.js(
        "sessionStorage.setItem('akr-token', arguments[0]); return true;",
        json!([TOKEN]),
    )
    .await;
    s.go(&dashboard).await;
    let dom = s
        .wait_for("three available keys", |d| {
            d["rows"]
                .as_array()
                .is_some_and(|r| r.len() == 3 && r.iter().all(|k| k["state"] == "available"))
        })
        .await;
    assert_eq!(dom["healthy"], "3/3");
    assert_eq!(
        row(&dom, "sk-first")["buttons"],
        json!([]),
        "no admin token yet"
    );

    // A request through the gateway cools the first key (the mock answers 429); the page
    // shows it cooling, counting down, with the answer counted, without a reload.
    let r = support::client()
        .post(format!("{}/openai/v1/chat/completions", gw.url()))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(CHAT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let answer: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    let (tokens_in, tokens_out) = (
        answer["usage"]["prompt_tokens"].as_u64().unwrap(),
        answer["usage"]["completion_tokens"].as_u64().unwrap(),
    );
    assert!(tokens_in > 0 && tokens_out > 0, "{answer}");
    // The answer's tokens show on its key and the provider, and count against the keys'
    // token budget (three keys: three times the per-key limit).
    let tokens = format!("{tokens_in} in / {tokens_out} out");
    let used = format!("{} / 3000000", tokens_in + tokens_out);
    let dom = s
        .wait_for("the answer's tokens and budget use", |d| {
            row(d, CANARY)["tokens"] == tokens.as_str()
                && d["tokens"] == tokens.as_str()
                && d["budgets"].as_array().is_some_and(|b| {
                    b.iter()
                        .any(|b| b["kind"] == "tokens_per_day" && b["use"] == used.as_str())
                })
        })
        .await;
    assert_eq!(row(&dom, "sk-first")["tokens"], "0 in / 0 out");
    let rpm = dom["budgets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["kind"] == "requests_per_minute")
        .expect("the per-minute budget is shown");
    assert_eq!(rpm["budget"], "keys");
    assert!(rpm["use"].as_str().unwrap().ends_with(" / 1800"), "{rpm}");
    let dom = s
        .wait_for("the first key cooling", |d| {
            row(d, "sk-first")["state"] == "cooling" && d["healthy"] == "2/3"
        })
        .await;
    let first = row(&dom, "sk-first");
    let countdown = first["countdown"].as_str().expect("a countdown");
    assert!(
        countdown.ends_with('s') && countdown.contains('m'),
        "{countdown}"
    );
    assert!(
        first["answers"].as_str().unwrap().contains("rate_limited"),
        "{first}"
    );
    let canary = row(&dom, CANARY);
    assert_eq!(canary["used"], "1");
    assert!(
        canary["answers"].as_str().unwrap().contains("ok"),
        "{canary}"
    );
    assert_eq!(dom["minute"], "1");

    // The countdown moves on its own.
    let before = countdown.to_owned();
    s.wait_for("the countdown to move", |d| {
        row(d, "sk-first")["countdown"]
            .as_str()
            .is_some_and(|c| c != before)
    })
    .await;

    // With the admin token, buttons; "disable" disables the third key.
    s.js(
        "sessionStorage.setItem('akr-admin', arguments[0]); return true;",
        json!([ADMIN]),
    )
    .await;
    let third = Fingerprint::of("sk-third").to_string();
    s.wait_for("admin buttons", |d| {
        row(d, "sk-third")["buttons"]
            .as_array()
            .is_some_and(|b| b.contains(&json!("disable")))
    })
    .await;
    s.js(
        "document.querySelector(`button[data-act=disable][data-fp='${arguments[0]}']`).click(); \
         return true;",
        json!([third]),
    )
    .await;
    s.wait_for("the third key disabled", |d| {
        row(d, "sk-third")["state"] == "disabled"
    })
    .await;

    // A screenshot for the record.
    let png = s.screenshot().await;
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("dashboard.png"), &png).unwrap();

    // The canary key is nowhere: not in the page the browser holds, nor in any endpoint.
    let source = s.source().await;
    assert!(source.contains(&Fingerprint::of(CANARY).to_string()));
    assert!(!source.contains(CANARY), "the key is in the page");
    let storage = s
        .js("return JSON.stringify(sessionStorage);", json!([]))
        .await;
    assert!(!storage.to_string().contains(CANARY));
    for path in [
        "/dashboard",
        "/dashboard.json",
        "/status",
        "/metrics",
        "/healthz",
    ] {
        let body = support::client()
            .get(format!("{}{path}", gw.url()))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!body.contains(CANARY), "the key is in {path}");
        assert!(
            !body.contains("sk-first") && !body.contains("sk-third"),
            "{path}"
        );
    }
    s.end().await;
}
