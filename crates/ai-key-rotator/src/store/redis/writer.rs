//! The writer task: connects, starts the subscriber, and writes each batch of changed
//! credentials from the shared queue (`store/worker.rs`), retrying transient failures with
//! backoff and giving up on permanent ones for the credential concerned.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::con::{Con, Target};
use super::{
    FIRST_BACKOFF, MAX_BACKOFF, Shared, decode_reason, encode_reason, fault, parse_cooling,
    scripts, subscribe,
};
use crate::clock::Timestamp;
use crate::status::{CredentialState, ModelCooldownStatus};
use crate::store::worker::{Batch, Dirty, Key};
use crate::store::{CredentialRecord, RemoteChange, StoreLink};

/// The counters of one credential as last written here: this process's uses (what the stored
/// count was last raised to include), failure streak, exhaustions, last exhaustion.
pub(super) type Counted = (u64, u32, u64, Option<Timestamp>);

/// How often, at most, the counters that change without events (uses, failure streaks) are
/// written when nothing else is: what a crash (not a shutdown, which flushes) may lose.
const COUNTERS_EVERY: Duration = Duration::from_secs(1);

pub(super) async fn run(shared: Arc<Shared>, target: Target, rotator: StoreLink) {
    let mut backoff = FIRST_BACKOFF;
    let manager = loop {
        match target
            .connect(shared.connect_timeout, shared.command_timeout)
            .await
        {
            Ok(m) => break m,
            Err(error) => {
                shared.fail("cannot connect", fault::classify(&error, None));
                // Changes made meanwhile stay queued (one entry per credential); the first
                // reconcile writes the whole local view anyway.
                if !rotator.is_alive() || !shared.queue.pause_async(backoff).await {
                    return;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    };
    let subscriber = tokio::spawn(subscribe(
        Arc::clone(&shared),
        target,
        manager.clone(),
        rotator.clone(),
    ));
    let fleet = tokio::spawn(super::fleet::run(
        Arc::clone(&shared),
        manager.clone(),
        rotator.clone(),
    ));
    let usage = shared.ledger.get().cloned().map(|ledger| {
        tokio::spawn(super::usage::run(
            Arc::clone(&shared),
            manager.clone(),
            rotator.clone(),
            ledger,
        ))
    });
    let mut con = manager;
    let mut backoff = FIRST_BACKOFF;
    // Set by a transient failure: once the server answers again, the whole local view is
    // written again, because a server that failed over (a cluster's replica promoted) may
    // have lost writes it had acknowledged, and the local view still has them.
    let mut rewrite = false;
    let mut tick = tokio::time::interval(COUNTERS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // `next` takes a batch only under the queue's lock and returns it at once, so a tick
        // that wins the race loses nothing.
        let batch = tokio::select! {
            batch = shared.queue.next() => match batch {
                Some(batch) => batch,
                None => break,
            },
            _ = tick.tick() => {
                // While the server is away, batches find out (and back off); a tick waits.
                if !rewrite && shared.connected.load(std::sync::atomic::Ordering::Acquire) {
                    // A failure is noted in the health; the counters are written next time.
                    let _ = write_counters(&shared, &mut con, &rotator).await;
                }
                continue;
            }
        };
        let failed = match write_batch(&shared, &mut con, &rotator, &batch).await {
            Ok(()) => {
                // Before the batch is done, so that a flush finds the counters written.
                let counters = write_counters(&shared, &mut con, &rotator).await;
                shared.queue.done(batch);
                counters.is_err()
                    || (rewrite && rewrite_all(&shared, &mut con, &rotator).await.is_err())
            }
            Err(rest) => {
                // What is left goes back into the queue (merged with what changed since, so
                // it never grows past one entry per credential) and is written when the
                // server answers again. Every script keeps the longer cooldown, so nothing
                // is lost or shortened by the wait.
                shared.queue.retry(rest, false);
                true
            }
        };
        if failed {
            rewrite = true;
            if !rotator.is_alive() || !shared.queue.pause_async(backoff).await {
                break;
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        } else {
            rewrite = false;
            backoff = FIRST_BACKOFF;
        }
    }
    subscriber.abort();
    fleet.abort();
    // The usage task writes what was counted up to the close, boundedly.
    if let Some(usage) = usage {
        let _ = tokio::time::timeout(shared.command_timeout * 2, usage).await;
    }
}

/// Writes each credential of the batch as it stands in the local view now. A permanent
/// failure (data of the wrong type) is given up on for that credential alone; on a transient
/// one (an outage), returns the credentials still to write.
async fn write_batch(
    shared: &Shared,
    con: &mut Con,
    rotator: &StoreLink,
    batch: &Batch,
) -> Result<(), Vec<(Key, Dirty)>> {
    let records: HashMap<Key, CredentialRecord> = rotator
        .records()
        .into_iter()
        .map(|r| ((Arc::clone(&r.provider), r.credential.fingerprint), r))
        .collect();
    let items: Vec<(Key, Dirty)> = if batch.everything {
        records
            .keys()
            .map(|k| (k.clone(), Dirty::default()))
            .collect()
    } else {
        batch.items.clone()
    };
    write_items(shared, con, rotator, &records, items).await
}

/// Writes every cooling or disabled credential's state again (see `rewrite` in [`run`]).
async fn rewrite_all(shared: &Shared, con: &mut Con, rotator: &StoreLink) -> Result<(), ()> {
    let records: HashMap<Key, CredentialRecord> = rotator
        .records()
        .into_iter()
        .map(|r| ((Arc::clone(&r.provider), r.credential.fingerprint), r))
        .collect();
    let items = records
        .keys()
        .map(|k| (k.clone(), Dirty::default()))
        .collect();
    // On a failure nothing goes back into the queue: the next rewrite covers them all.
    write_items(shared, con, rotator, &records, items)
        .await
        .map_err(drop)
}

async fn write_items(
    shared: &Shared,
    con: &mut Con,
    rotator: &StoreLink,
    records: &HashMap<Key, CredentialRecord>,
    items: Vec<(Key, Dirty)>,
) -> Result<(), Vec<(Key, Dirty)>> {
    for (i, (key, dirty)) in items.iter().enumerate() {
        // A credential removed since is nobody's business any more; one available with no
        // reset or enabling to write has nothing to write (and proves nothing about the
        // server's health).
        let Some(record) = records.get(key).filter(|r| {
            matches!(
                r.state,
                CredentialState::Cooling { .. } | CredentialState::Disabled
            ) || dirty.enabled
                || dirty.reset
                || dirty.models_reset
                || !r.model_cooldowns.is_empty()
        }) else {
            continue;
        };
        match write(shared, con, rotator, record, *dirty).await {
            Ok(()) => shared.health.ok(),
            Err(error) => {
                let fault = fault::classify(&error, Some(&key.0));
                let transient = fault::is_transient(&fault);
                shared.fail("write failed", fault);
                if transient {
                    return Err(items[i..].to_vec());
                }
            }
        }
    }
    Ok(())
}

/// Writes one credential's local state: its cooldown (the longer one wins on the server, and
/// then here), its disabling or enabling, or the end of a cooldown reset here.
async fn write(
    shared: &Shared,
    con: &mut Con,
    rotator: &StoreLink,
    record: &CredentialRecord,
    dirty: Dirty,
) -> redis::RedisResult<()> {
    let channel = shared.channel();
    let provider = &*record.provider;
    let fp = record.credential.fingerprint;
    let why = encode_reason(record.reason.as_ref());
    let now = rotator.now().unwrap_or(Timestamp::UNIX_EPOCH);
    if dirty.models_reset {
        // A reset here ends the credential's rests on the server too (those made since are
        // written just below).
        let _: i64 = scripts::RESET_MODELS
            .key(shared.models_key(provider))
            .arg(format!("{fp}:"))
            .invoke_async(con)
            .await?;
    }
    for m in &record.model_cooldowns {
        let stored = mark_model(shared, con, record, m, now).await?;
        // Another process may rest it longer: agree on it, and on why.
        if let Some((until, why)) = stored.split_once(':')
            && let Ok(until) = until.parse::<u64>()
            && until > m.until.as_millis()
        {
            rotator.apply_remote(
                provider,
                fp,
                RemoteChange::ModelCooling {
                    model: m.model,
                    until: Timestamp::from_millis(until),
                    reason: decode_reason(why),
                },
            );
        }
    }
    match record.state {
        CredentialState::Cooling { until } => {
            shared.know(provider, fp, until);
            let (stored, why): (String, String) = scripts::MARK
                .key(shared.key(provider))
                .key(shared.reasons_key(provider))
                .arg(fp.to_string())
                .arg(until.as_millis())
                .arg(&channel)
                .arg(&shared.origin)
                .arg(provider)
                .arg(why)
                .invoke_async(con)
                .await?;
            // Another process may have set a longer one: agree on it, and on why.
            if let Some(t) = parse_cooling(&stored)
                && t > until
            {
                shared.know(provider, fp, t);
                let reason = decode_reason(&why);
                rotator.apply_remote(provider, fp, RemoteChange::Cooling { until: t, reason });
            }
        }
        CredentialState::Disabled => {
            let _: i64 = scripts::DISABLE
                .key(shared.key(provider))
                .key(shared.reasons_key(provider))
                .arg(fp.to_string())
                .arg("d")
                .arg(&channel)
                .arg(&shared.origin)
                .arg(provider)
                .arg(why)
                .invoke_async(con)
                .await?;
        }
        _ => {
            if dirty.enabled {
                let _: i64 = scripts::DISABLE
                    .key(shared.key(provider))
                    .key(shared.reasons_key(provider))
                    .arg(fp.to_string())
                    .arg("e")
                    .arg(&channel)
                    .arg(&shared.origin)
                    .arg(provider)
                    .arg("")
                    .invoke_async(con)
                    .await?;
            }
            if dirty.reset {
                let now = rotator.now().unwrap_or(Timestamp::UNIX_EPOCH);
                let up_to = shared.known(provider, fp).unwrap_or(now).max(now);
                let _: i64 = scripts::RESET
                    .key(shared.key(provider))
                    .key(shared.reasons_key(provider))
                    .arg(fp.to_string())
                    .arg(up_to.as_millis())
                    .arg(&channel)
                    .arg(&shared.origin)
                    .arg(provider)
                    .invoke_async(con)
                    .await?;
            }
        }
    }
    Ok(())
}

/// Writes one per-model rest of `record` (the longer one wins on the server); returns the
/// stored value afterwards (`<until-ms>:<reason>`).
pub(super) async fn mark_model(
    shared: &Shared,
    con: &mut Con,
    record: &CredentialRecord,
    m: &ModelCooldownStatus,
    now: Timestamp,
) -> redis::RedisResult<String> {
    let fp = record.credential.fingerprint.to_string();
    scripts::MARK_MODEL
        .key(shared.models_key(&record.provider))
        .arg(format!("{fp}:{}", m.model))
        .arg(m.until.as_millis())
        .arg(shared.channel())
        .arg(&shared.origin)
        .arg(&*record.provider)
        .arg(encode_reason(Some(&m.reason)))
        .arg(&fp)
        .arg(m.model.as_str())
        .arg(now.as_millis())
        .invoke_async(con)
        .await
}

/// Writes the counters that changed since they were last written here (see `Counted`): the
/// uses counted since are added to the stored count. A failure of one provider's data (the
/// wrong type) is noted and the others go on; an outage stops the pass, and what is left is
/// written next time.
async fn write_counters(
    shared: &Shared,
    con: &mut Con,
    rotator: &StoreLink,
) -> redis::RedisResult<()> {
    for r in rotator.records() {
        let key: Key = (Arc::clone(&r.provider), r.credential.fingerprint);
        let now: Counted = (
            r.uses_here,
            r.consecutive_failures,
            r.times_exhausted,
            r.last_exhausted_at,
        );
        let was = shared
            .counted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .copied()
            .unwrap_or((0, 0, 0, None));
        if now == was {
            continue;
        }
        // Fewer uses than written means the credential was configured again (a fresh
        // count): all of it is new.
        let added = if now.0 >= was.0 { now.0 - was.0 } else { now.0 };
        let written: redis::RedisResult<i64> = scripts::COUNT
            .key(shared.counters_key(&r.provider))
            .arg(r.credential.fingerprint.to_string())
            .arg(added)
            .arg(now.1)
            .arg(now.2)
            .arg(
                now.3
                    .map_or_else(String::new, |t| t.as_millis().to_string()),
            )
            .invoke_async(con)
            .await;
        match written {
            Ok(_) => {
                shared
                    .counted
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key, now);
            }
            Err(error) => {
                let fault = fault::classify(&error, Some(&r.provider));
                let transient = fault::is_transient(&fault);
                shared.fail("counters write failed", fault);
                if transient {
                    return Err(error);
                }
            }
        }
    }
    Ok(())
}
