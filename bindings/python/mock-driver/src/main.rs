//! `akr-mock-driver`: the project's `mock-upstream` on `127.0.0.1:0`, scripted by the Python
//! tests over stdin.
//!
//! The `mock-upstream` binary answers `Ok` to everything; the tests of the Python package need
//! the library's [`Script`](mock_upstream::Script) (rate-limited keys, invalid keys) from
//! another language. This process prints `{"base_url": …}` once listening, then answers one
//! JSON line per command line:
//!
//! | command | answer |
//! |---|---|
//! | `{"op":"on_key","key":K,"behavior":B}` | `{"ok":true}` |
//! | `{"op":"once","key":K,"behavior":B}` | `{"ok":true}` (the next request with `K` only) |
//! | `{"op":"count","key":K}` | `{"count":N}` |
//! | `{"op":"requests"}` | `{"requests":[{"path","query","key","headers":[[n,v],…]},…]}` |
//! | `{"op":"clear"}` | `{"ok":true}`: forgets recorded requests and every rule |
//!
//! `B` is `"ok"`, `"invalid_key"`, `"server_error"`, `"overloaded"`, `"insufficient_quota"`,
//! `{"rate_limited_ms": N}`, `{"delay_ms": N}` (answers `ok` after N ms) or
//! `{"raw": {"status": S, "headers": [[n, v], …], "body": "…"}}`. The process ends when stdin
//! closes.

use std::time::Duration;

use mock_upstream::{Behavior, Config, MockUpstream, Rule};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let mock = MockUpstream::start(Config::new()).await?;
    let mut out = tokio::io::stdout();
    let hello = json!({ "base_url": mock.base_url() });
    out.write_all(format!("{hello}\n").as_bytes()).await?;
    out.flush().await?;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let answer = match serde_json::from_str::<Value>(&line) {
            Ok(cmd) => run(&mock, &cmd).unwrap_or_else(|e| json!({ "error": e })),
            Err(e) => json!({ "error": format!("not JSON: {e}") }),
        };
        out.write_all(format!("{answer}\n").as_bytes()).await?;
        out.flush().await?;
    }
    mock.shutdown().await;
    Ok(())
}

fn run(mock: &MockUpstream, cmd: &Value) -> Result<Value, String> {
    let key = || {
        cmd["key"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| "missing \"key\"".to_owned())
    };
    match cmd["op"].as_str() {
        Some("on_key") => {
            mock.script().on_key(key()?, behavior(&cmd["behavior"])?);
            Ok(json!({ "ok": true }))
        }
        Some("once") => {
            mock.script()
                .add(Rule::key(key()?, behavior(&cmd["behavior"])?).once());
            Ok(json!({ "ok": true }))
        }
        Some("count") => Ok(json!({ "count": mock.count_for_key(&key()?) })),
        Some("requests") => {
            let requests: Vec<Value> = mock
                .requests()
                .iter()
                .map(|r| {
                    let headers: Vec<(String, String)> = r
                        .headers
                        .iter()
                        .map(|(n, v)| (n.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
                        .collect();
                    json!({ "path": r.path, "query": r.query, "key": r.key, "headers": headers })
                })
                .collect();
            Ok(json!({ "requests": requests }))
        }
        Some("clear") => {
            mock.clear();
            mock.script().reset();
            Ok(json!({ "ok": true }))
        }
        other => Err(format!("unknown op {other:?}")),
    }
}

fn behavior(b: &Value) -> Result<Behavior, String> {
    if let Some(ms) = b["rate_limited_ms"].as_u64() {
        return Ok(Behavior::rate_limited(Duration::from_millis(ms)));
    }
    if let Some(ms) = b["delay_ms"].as_u64() {
        return Ok(Behavior::Delay(Duration::from_millis(ms)));
    }
    if let Some(raw) = b.get("raw") {
        let status = raw["status"].as_u64().ok_or("raw needs a \"status\"")?;
        let headers = raw["headers"]
            .as_array()
            .map(|hs| {
                hs.iter()
                    .filter_map(|h| Some((h[0].as_str()?.to_owned(), h[1].as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        return Ok(Behavior::Raw {
            status: u16::try_from(status).map_err(|e| e.to_string())?,
            headers,
            body: raw["body"].as_str().unwrap_or("").to_owned().into(),
        });
    }
    match b.as_str() {
        Some("ok") => Ok(Behavior::Ok),
        Some("invalid_key") => Ok(Behavior::InvalidKey),
        Some("server_error") => Ok(Behavior::ServerError),
        Some("overloaded") => Ok(Behavior::Overloaded),
        Some("insufficient_quota") => Ok(Behavior::InsufficientQuota),
        _ => Err(format!("unknown behavior {b}")),
    }
}
