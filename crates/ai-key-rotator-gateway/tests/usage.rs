//! Per-key usage statistics: counted per answer class, kept in the SQLite state store, so
//! they survive a restart and add up across gateways sharing the database.

mod support;

use std::time::Duration;

use ai_key_rotator::Fingerprint;
use mock_upstream::{Behavior, Config, MockUpstream};
use support::{CHAT, GatewayProcess, TOKEN, provider};

async fn chat(url: &str) -> u16 {
    support::client()
        .post(format!("{url}/openai/v1/chat/completions"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(CHAT)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn today<'a>(status: &'a serde_json::Value, key: &str) -> &'a serde_json::Value {
    &status["providers"][0]["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["fingerprint"] == Fingerprint::of(key).to_string())
        .unwrap()["today"]
}

#[tokio::test]
async fn usage_survives_a_restart_and_adds_up_across_gateways() {
    let upstream = MockUpstream::start(Config::new()).await.unwrap();
    upstream.script().on_key(
        "sk-limited",
        Behavior::rate_limited(Duration::from_millis(1)),
    );
    let db = tempfile::tempdir().unwrap();
    let store = format!(
        "store = {{ type = \"sqlite\", path = \"{}\" }}",
        db.path().join("state.db").display()
    );
    let config = support::config_text(
        &upstream.base_url(),
        &store,
        &[provider("openai", "openai", &["sk-limited", "sk-good"])],
    );
    // Two answers: the first key's 429, then the second key's 200 (the client sees a 200).
    let gw = GatewayProcess::start(&config);
    assert_eq!(chat(&gw.url()).await, 200);
    let status = support::get_json(&format!("{}/status", gw.url())).await;
    // The first key's 429 (it cools for a millisecond, so a retry may meet it again).
    assert!(
        today(&status, "sk-limited")["rate_limited"].as_u64() >= Some(1),
        "{status}"
    );
    assert_eq!(today(&status, "sk-good")["ok"], 1, "{status}");
    assert_eq!(today(&status, "sk-good")["requests"], 1, "{status}");
    // The tokens next to the classes (the answer's usage, counted when the gateway is done
    // with its body, which may be just after the client read it), and the day the counts are
    // for: OpenAI's is UTC's.
    assert_eq!(today(&status, "sk-limited")["tokens_in"], 0, "{status}");
    support::wait_until("the answer's tokens are counted", || {
        let url = gw.url();
        async move {
            let s = support::get_json(&format!("{url}/status")).await;
            today(&s, "sk-good")["tokens_in"].as_u64() > Some(0)
                && today(&s, "sk-good")["tokens_out"].as_u64() > Some(0)
        }
    })
    .await;
    let day = &status["providers"][0]["usage_day"];
    assert_eq!(day["time_zone"], "UTC", "{status}");
    assert_eq!(day["date"].as_str().map(str::len), Some(10), "{status}");
    // A graceful stop writes what is new.
    let _ = gw.stop();

    // A new process reads today's totals back, and counts on from them.
    let gw = GatewayProcess::start(&config);
    support::wait_until("the restarted gateway reads today's usage", || {
        let url = gw.url();
        async move {
            let s = support::get_json(&format!("{url}/status")).await;
            today(&s, "sk-good")["ok"] == 1
        }
    })
    .await;
    assert!(status.to_string().contains("\"today\""), "{status}");
    // A second gateway on the same database: both add to the same totals.
    let other = GatewayProcess::start(&config);
    // The first key cools for a millisecond only; each request may or may not meet it, so
    // only the second key's successes are counted exactly.
    upstream.script().reset();
    for url in [gw.url(), other.url(), other.url()] {
        assert_eq!(chat(&url).await, 200);
    }
    let _ = other.stop();
    let _ = gw.stop();
    let gw = GatewayProcess::start(&config);
    support::wait_until("both gateways' answers add up", || {
        let url = gw.url();
        async move {
            let s = support::get_json(&format!("{url}/status")).await;
            let first = today(&s, "sk-limited")["ok"].as_u64().unwrap_or(0);
            let good = today(&s, "sk-good")["ok"].as_u64().unwrap_or(0);
            // Three more successes, on whichever key each request got.
            first + good == 4
        }
    })
    .await;
    let dash = support::get_json(&format!("{}/dashboard.json", gw.url())).await;
    let keys = dash["providers"][0]["keys"].as_array().unwrap();
    let ok: u64 = keys
        .iter()
        .map(|k| k["today"]["ok"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(ok, 4, "{dash}");
    let metrics = support::client()
        .get(format!("{}/metrics", gw.url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("akr_gateway_key_answers_today{"),
        "{metrics}"
    );
}

/// A redis-server of its own on a free port, stopped when dropped.
struct Redis {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Redis {
    fn start() -> Redis {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let dir = tempfile::tempdir().unwrap();
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .arg("--dir")
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (apt-get install redis-server)");
        for _ in 0..500 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Redis {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn with_redis_gateways_share_their_usage() {
    let redis = Redis::start();
    let upstream = MockUpstream::start(Config::new()).await.unwrap();
    let config = support::config_text(
        &upstream.base_url(),
        &format!(
            "store = {{ type = \"redis\", url = \"redis://127.0.0.1:{}/\" }}",
            redis.port
        ),
        &[provider("openai", "openai", &["sk-good"])],
    );
    let a = GatewayProcess::start(&config);
    let b = GatewayProcess::start(&config);
    assert_eq!(chat(&a.url()).await, 200);
    assert_eq!(chat(&b.url()).await, 200);
    assert_eq!(chat(&b.url()).await, 200);
    // A graceful stop writes what is new (HINCRBY: additive).
    let _ = a.stop();
    let _ = b.stop();
    let c = GatewayProcess::start(&config);
    support::wait_until("the fleet's usage adds up", || {
        let url = c.url();
        async move {
            let s = support::get_json(&format!("{url}/status")).await;
            today(&s, "sk-good")["ok"] == 3
        }
    })
    .await;
}
