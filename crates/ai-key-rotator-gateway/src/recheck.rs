//! The background re-check of depleted keys: keys out of credits or over a cap with no known
//! reset (and, with `recheck_invalid`, keys the provider called invalid) are proven again with
//! the provider's model list on the core's backoff, and come back when it answers.
//!
//! The core decides what is due and when ([`KeyRotator::due_probes`]); this task only asks
//! each tick, sends each probe through [`probe`](crate::probe) (the cheapest authenticated
//! call, never a paid completion) and records the outcome. A provider whose `recheck` is off
//! has nothing due, so nothing is sent for it.
//!
//! [`KeyRotator::due_probes`]: ai_key_rotator::KeyRotator::due_probes

use std::sync::Arc;
use std::time::Duration;

use crate::probe::{self, ProbeOutcome};
use crate::proxy::Shared;

/// How often the task asks the core what is due. Re-checks are minutes apart by default;
/// a second is fine-grained enough for any configured backoff and costs a scan of the
/// disabled keys.
const TICK: Duration = Duration::from_secs(1);

/// Runs until the returned task is aborted (the gateway does so when it stops serving).
pub(crate) fn spawn(shared: Arc<Shared>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            recheck_due(&shared).await;
        }
    })
}

/// Probes every key that is due now, one after another (a handful at most: depleted keys).
pub(crate) async fn recheck_due(shared: &Shared) {
    let rotator = &shared.rotator;
    for provider in rotator.providers() {
        for due in rotator.due_probes(&provider) {
            let credential = &due.credential;
            let id = credential.id().clone();
            match probe::probe(shared, &provider, credential.fingerprint()).await {
                Ok(outcome) if outcome.works() => {
                    if rotator.probe_succeeded(credential) {
                        tracing::info!(provider, credential = %id, kind = ?due.kind, "re-check: key works again");
                    }
                }
                Ok(ProbeOutcome::Unreachable { reason, .. }) => {
                    // Nothing is said about the key: the claim lapses and it is offered again
                    // after the first wait.
                    tracing::debug!(provider, credential = %id, reason, "re-check: provider unreachable");
                }
                Ok(outcome) => {
                    let next = rotator.probe_failed(credential);
                    tracing::info!(provider, credential = %id, kind = ?due.kind,
                        status = ?status_of(&outcome), next = ?next.map(|t| t.to_string()),
                        "re-check: key still out");
                }
                Err(e) => {
                    tracing::debug!(provider, credential = %id, error = %e, "re-check not sent");
                }
            }
        }
    }
}

fn status_of(outcome: &ProbeOutcome) -> Option<u16> {
    match outcome {
        ProbeOutcome::Answered { status, .. } => Some(*status),
        _ => None,
    }
}
