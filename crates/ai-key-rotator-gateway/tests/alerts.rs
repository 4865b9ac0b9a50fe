//! Webhook alerts against a local receiver: each alert fires once and re-arms when its
//! condition clears; a receiver that is down or slow costs a bounded queue and never the
//! proxy.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ai_key_rotator::Fingerprint;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use mock_upstream::{Behavior, Config, MockUpstream};
use serde_json::Value;
use support::{CHAT, InProcess, TOKEN, provider};

const CANARY: &str = "sk-canary-alerts-8e2f4a6c1d3b5e7f";

/// A webhook receiver: records every JSON body; answers after `delay`.
struct Receiver {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    async fn start(delay: Duration) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = Arc::clone(&got);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let g = Arc::clone(&g);
                tokio::spawn(async move {
                    let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let g = Arc::clone(&g);
                        async move {
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let v: Value = serde_json::from_slice(&body).unwrap();
                            g.lock().unwrap().push(v);
                            tokio::time::sleep(delay).await;
                            Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::new())))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Receiver { addr, got }
    }

    fn alerts(&self, kind: &str) -> Vec<Value> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a["alert"] == kind)
            .cloned()
            .collect()
    }
}

fn alerts_config(url: &str, healthy_below: usize) -> String {
    format!("[alerts]\nhealthy_below = {healthy_below}\n\n[[alerts.webhook]]\nurl = \"{url}\"\n")
}

/// Returns once the gateway serves (its alert watcher is subscribed before it does).
async fn serving(gw: &InProcess) {
    let r = support::client()
        .get(format!("{}/healthz", gw.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

async fn wait_for(r: &Receiver, kind: &str, n: usize) {
    support::wait_until(&format!("{n} {kind} alert(s)"), || async {
        r.alerts(kind).len() >= n
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_alert_fires_once_and_rearms() {
    let upstream = MockUpstream::start(Config::new()).await.unwrap();
    let receiver = Receiver::start(Duration::ZERO).await;
    // Provider sections must come after [alerts], as TOML tables do.
    let mut text = support::config_text(
        &upstream.base_url(),
        "",
        &[provider("openai", "openai", &["sk-a", CANARY])],
    );
    text.push_str(&alerts_config(&format!("http://{}/hook", receiver.addr), 2));
    let gw = InProcess::start(&text).await;
    serving(&gw).await;
    let rotator = gw.gateway.rotator();
    let canary = Fingerprint::of(CANARY);

    // Disabling one key: "key disabled" and "healthy keys low" (1 < 2), once each.
    assert!(rotator.disable_credential("openai", canary, "test"));
    wait_for(&receiver, "key-disabled", 1).await;
    wait_for(&receiver, "healthy-low", 1).await;
    let disabled = &receiver.alerts("key-disabled")[0];
    assert_eq!(disabled["provider"], "openai");
    assert_eq!(disabled["key"]["fingerprint"], canary.to_string());
    assert_eq!(disabled["key"]["label"], "openai-2");
    // Disabling it again changes nothing and says nothing.
    assert!(!rotator.disable_credential("openai", canary, "test"));

    // Back: "key enabled"; the pool is healthy again, so "healthy low" re-arms.
    assert!(rotator.enable_credential("openai", canary));
    wait_for(&receiver, "key-enabled", 1).await;
    // Every key cooling: both keys rate limited through the mock.
    upstream
        .script()
        .on_key("sk-a", Behavior::rate_limited(Duration::from_secs(300)));
    upstream
        .script()
        .on_key(CANARY, Behavior::rate_limited(Duration::from_secs(300)));
    let r = support::client()
        .post(format!("{}/openai/v1/chat/completions", gw.url()))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(CHAT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    wait_for(&receiver, "all-cooling", 1).await;
    let cooling = &receiver.alerts("all-cooling")[0];
    assert_eq!(cooling["provider"], "openai");
    assert!(cooling["eta"].as_str().is_some(), "{cooling}");
    wait_for(&receiver, "healthy-low", 2).await;
    // Reset: a key came back, so the condition cleared and re-arms; cooling again alerts
    // again (the watcher reads events in order, so it sees the reset before the new cooling).
    rotator.reset_all(Some("openai"));
    let r = support::client()
        .post(format!("{}/openai/v1/chat/completions", gw.url()))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(CHAT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    wait_for(&receiver, "all-cooling", 2).await;
    // Once per start of each condition: never more than the conditions started.
    assert_eq!(receiver.alerts("key-disabled").len(), 1);
    assert_eq!(receiver.alerts("key-enabled").len(), 1);
    assert!(receiver.alerts("all-cooling").len() == 2);
    let everything = serde_json::to_string(&*receiver.got.lock().unwrap()).unwrap();
    assert!(!everything.contains(CANARY) && !everything.contains("sk-a\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_or_slow_is_bounded_and_never_blocks_the_proxy() {
    let upstream = MockUpstream::start(Config::new()).await.unwrap();
    let slow = Receiver::start(Duration::from_secs(600)).await;
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut text = support::config_text(
        &upstream.base_url(),
        "",
        &[provider("openai", "openai", &["sk-a", CANARY])],
    );
    text.push_str(&alerts_config(&format!("http://{}/hook", slow.addr), 1));
    text.push_str(&format!(
        "\n[[alerts.webhook]]\nurl = \"http://{down}/hook\"\n"
    ));
    let gw = InProcess::start(&text).await;
    serving(&gw).await;
    let rotator = gw.gateway.rotator();
    let canary = Fingerprint::of(CANARY);
    // Far more alerts than a queue holds.
    for _ in 0..200 {
        assert!(rotator.disable_credential("openai", canary, "test"));
        assert!(rotator.enable_credential("openai", canary));
    }
    // The proxy serves meanwhile.
    for _ in 0..5 {
        let r = support::client()
            .post(format!("{}/openai/v1/chat/completions", gw.url()))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(CHAT)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // The queues dropped their oldest alerts, and said so.
    let url = format!("{}/metrics", gw.url());
    support::wait_until("dropped alerts counted", || {
        let url = url.clone();
        async move {
            let m = support::client()
                .get(&url)
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            m.lines()
                .find(|l| l.starts_with("akr_gateway_alerts_total{outcome=\"dropped\"}"))
                .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                .is_some_and(|n| n > 0)
        }
    })
    .await;
    // The slow receiver holds one delivery at a time.
    assert!(slow.got.lock().unwrap().len() <= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_degrading_and_recovering_is_told() {
    let upstream = MockUpstream::start(Config::new()).await.unwrap();
    let receiver = Receiver::start(Duration::ZERO).await;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut text = support::config_text(
        &upstream.base_url(),
        &format!("store = {{ type = \"redis\", url = \"redis://127.0.0.1:{port}/\" }}"),
        &[provider("openai", "openai", &["sk-a"])],
    );
    text.push_str(&alerts_config(&format!("http://{}/hook", receiver.addr), 1));
    let gw = InProcess::start(&text).await;
    serving(&gw).await;
    // Nobody answers on the store's port: degraded, with the cause.
    wait_for(&receiver, "store-degraded", 1).await;
    let cause = receiver.alerts("store-degraded")[0]["cause"].to_string();
    assert!(
        cause.contains("reached") || cause.contains("in time"),
        "{cause}"
    );
    // A Redis server on that port: recovered.
    let dir = tempfile::tempdir().unwrap();
    let mut redis = std::process::Command::new("redis-server")
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
    // Something must be written for the store to find its way back.
    for _ in 0..3000 {
        if !receiver.alerts("store-recovered").is_empty() {
            break;
        }
        gw.gateway.rotator().mark_exhausted("openai", None);
        gw.gateway.rotator().reset_all(None);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (recovered, degraded) = (
        receiver.alerts("store-recovered").len(),
        receiver.alerts("store-degraded").len(),
    );
    let _ = redis.kill();
    let _ = redis.wait();
    assert_eq!((recovered, degraded), (1, 1));
}
