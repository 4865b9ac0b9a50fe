//! Alerts: webhooks told when the pool is in trouble. A key disabled, a key back after being
//! disabled, a provider's healthy keys below `healthy_below`, every key of a provider cooling
//! (with when the first returns), the state store degraded, and recovered.
//!
//! One task watches: it is fed by the rotator's event subscription (disabling and enabling)
//! and looks at the status once a second and after each event (conditions on the whole pool).
//! A condition alerts once when it starts to hold and re-arms when it stops. Each webhook has
//! its own bounded queue and sender task: a receiver that is down or slow fills its queue,
//! whose oldest alerts are then dropped (and counted, `akr_gateway_alerts_total{outcome=
//! "dropped"}`); the proxy never waits for any of it. Deliveries are POSTs of JSON, retried
//! with jittered exponential backoff. An alert names keys by label and fingerprint only.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ai_key_rotator::{CredentialId, Event, RecvError, StoreHealth, Timestamp};
use serde_json::json;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::config::{AlertKind, AlertsConfig, Webhook, host_of};
use crate::ops::metrics::Metrics;
use crate::proxy::Shared;

/// Alerts waiting per webhook; beyond this the oldest is dropped.
pub(crate) const QUEUE: usize = 64;
/// Tries per alert (the first and three retries).
const TRIES: u32 = 4;
/// Time allowed for one delivery.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The running alert tasks; [`stop`](Self::stop) ends them.
#[derive(Debug)]
pub(crate) struct Running(Vec<JoinHandle<()>>);

impl Running {
    pub(crate) fn stop(self) {
        for t in self.0 {
            t.abort();
        }
    }
}

/// One webhook's queue.
#[derive(Debug)]
struct Outbox {
    webhook: Webhook,
    queue: Mutex<VecDeque<Arc<serde_json::Value>>>,
    ready: Notify,
}

impl Outbox {
    fn push(&self, alert: &Arc<serde_json::Value>, metrics: &Metrics) {
        let dropped = {
            let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            let dropped = if q.len() >= QUEUE {
                q.pop_front()
            } else {
                None
            };
            q.push_back(Arc::clone(alert));
            dropped.is_some()
        };
        if dropped {
            metrics.alert("dropped");
        }
        self.ready.notify_one();
    }

    fn pop(&self) -> Option<Arc<serde_json::Value>> {
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()
    }
}

/// Starts the watcher and one sender per webhook; `None` without webhooks (then nothing
/// subscribes to the rotator's events, which then cost nothing).
pub(crate) fn start(shared: &Arc<Shared>, config: &AlertsConfig) -> Option<Running> {
    if config.webhooks.is_empty() {
        return None;
    }
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .ok()?;
    let outboxes: Vec<Arc<Outbox>> = config
        .webhooks
        .iter()
        .map(|w| {
            Arc::new(Outbox {
                webhook: w.clone(),
                queue: Mutex::new(VecDeque::with_capacity(QUEUE)),
                ready: Notify::new(),
            })
        })
        .collect();
    let mut tasks: Vec<JoinHandle<()>> = outboxes
        .iter()
        .map(|o| {
            tokio::spawn(send_loop(
                Arc::clone(o),
                client.clone(),
                shared.metrics.clone(),
            ))
        })
        .collect();
    // Subscribed here, before the gateway serves, so no event of its first request is missed.
    let events = shared.rotator.subscribe();
    tasks.push(tokio::spawn(watch(
        Arc::clone(shared),
        events,
        config.healthy_below,
        outboxes,
    )));
    Some(Running(tasks))
}

/// What is true now, so each condition alerts once when it starts to hold.
#[derive(Default)]
struct Armed {
    low: HashSet<String>,
    cooling: HashSet<String>,
    store_bad: bool,
}

async fn watch(
    shared: Arc<Shared>,
    mut events: ai_key_rotator::Subscription,
    healthy_below: usize,
    outboxes: Vec<Arc<Outbox>>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut armed = Armed::default();
    let send = |kind: AlertKind, alert: serde_json::Value| {
        let alert = Arc::new(alert);
        for o in outboxes.iter().filter(|o| o.webhook.events.contains(&kind)) {
            o.push(&alert, &shared.metrics);
        }
    };
    loop {
        tokio::select! {
            e = events.recv() => match e {
                Ok(event) => {
                    // A key came back: "every key cooling" has cleared, even if the pool is
                    // all cooling again by the time the status is read below.
                    if let Some(p) = came_back(&event) {
                        armed.cooling.remove(p);
                    }
                    // The pool is looked at before the event's own alert goes out, so
                    // whoever receives that alert knows the conditions were re-read after it.
                    check(&shared, healthy_below, &mut armed, &send);
                    on_event(&event, &send);
                }
                // Missed events are disabling and enabling; the pool conditions are read
                // from the status, which missed nothing.
                Err(RecvError::Lagged(_)) => check(&shared, healthy_below, &mut armed, &send),
                Err(_) => return,
            },
            _ = tick.tick() => check(&shared, healthy_below, &mut armed, &send),
        }
    }
}

fn came_back(event: &Event) -> Option<&str> {
    match event {
        Event::Remote { change } => came_back(change),
        Event::Reset { provider, .. } | Event::Enabled { provider, .. } => Some(provider),
        _ => None,
    }
}

fn on_event(event: &Event, send: &impl Fn(AlertKind, serde_json::Value)) {
    match event {
        Event::Remote { change } => on_event(change, send),
        Event::Disabled {
            provider,
            credential,
            reason,
            ..
        } => send(
            AlertKind::KeyDisabled,
            json!({ "alert": "key-disabled", "provider": &**provider,
                "key": key(credential), "reason": reason, "at": now() }),
        ),
        Event::Enabled {
            provider,
            credential,
            ..
        } => send(
            AlertKind::KeyEnabled,
            json!({ "alert": "key-enabled", "provider": &**provider,
                "key": key(credential), "at": now() }),
        ),
        _ => {}
    }
}

fn check(
    shared: &Shared,
    healthy_below: usize,
    armed: &mut Armed,
    send: &impl Fn(AlertKind, serde_json::Value),
) {
    let status = shared.rotator.status();
    for p in &status.providers {
        let low = p.available < healthy_below;
        if low && armed.low.insert(p.name.clone()) {
            send(
                AlertKind::HealthyLow,
                json!({ "alert": "healthy-low", "provider": p.name, "healthy": p.available,
                    "total": p.total, "threshold": healthy_below, "at": now() }),
            );
        } else if !low {
            armed.low.remove(&p.name);
        }
        let all = p.total > 0 && p.available == 0;
        if all && armed.cooling.insert(p.name.clone()) {
            send(
                AlertKind::AllCooling,
                json!({ "alert": "all-cooling", "provider": p.name, "total": p.total,
                    "eta": p.next_available_at.map(|t| t.to_string()), "at": now() }),
            );
        } else if !all {
            armed.cooling.remove(&p.name);
        }
    }
    match shared.rotator.store_health() {
        StoreHealth::Degraded { fault, .. } | StoreHealth::Failing { fault, .. } => {
            if !armed.store_bad {
                armed.store_bad = true;
                send(
                    AlertKind::StoreDegraded,
                    json!({ "alert": "store-degraded", "cause": fault.to_string(), "at": now() }),
                );
            }
        }
        _ => {
            if armed.store_bad {
                armed.store_bad = false;
                send(
                    AlertKind::StoreRecovered,
                    json!({ "alert": "store-recovered", "at": now() }),
                );
            }
        }
    }
}

fn key(id: &CredentialId) -> serde_json::Value {
    json!({ "label": id.label.as_deref(), "fingerprint": id.fingerprint.to_string() })
}

fn now() -> String {
    Timestamp::from_millis(crate::ops::stats::now_ms()).to_string()
}

async fn send_loop(outbox: Arc<Outbox>, client: reqwest::Client, metrics: Metrics) {
    let host = host_of(&outbox.webhook.url);
    loop {
        let Some(alert) = outbox.pop() else {
            outbox.ready.notified().await;
            continue;
        };
        let body = alert.to_string();
        let mut delivered = false;
        for attempt in 0..TRIES {
            if attempt > 0 {
                tokio::time::sleep(backoff(attempt)).await;
            }
            let sent = client
                .post(&outbox.webhook.url)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => {
                    delivered = true;
                    break;
                }
                Ok(r) => {
                    tracing::debug!(
                        host,
                        status = r.status().as_u16(),
                        attempt,
                        "webhook refused"
                    )
                }
                Err(e) => {
                    tracing::debug!(host, error = %e.without_url(), attempt, "webhook failed")
                }
            }
        }
        if delivered {
            metrics.alert("sent");
        } else {
            metrics.alert("failed");
            tracing::warn!(
                host,
                alert = alert["alert"].as_str().unwrap_or(""),
                "webhook alert not delivered after {TRIES} tries"
            );
        }
    }
}

/// 0.5 s, 1 s, 2 s… before retry `attempt`, each by a factor between 0.5 and 1.5 so that
/// several gateways do not retry in step.
fn backoff(attempt: u32) -> Duration {
    let base = 500u64 << attempt.saturating_sub(1).min(6);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    // A cheap spread from the clock's low bits: no random generator is needed for jitter.
    let factor = 500 + u64::from(nanos.wrapping_mul(2_654_435_761) % 1000);
    Duration::from_millis(base * factor / 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_within_bounds() {
        for attempt in 1..=4 {
            let base = 500u64 << (attempt - 1);
            let d = backoff(attempt).as_millis() as u64;
            assert!(d >= base / 2 && d < base * 3 / 2, "{attempt}: {d}");
        }
    }
}
