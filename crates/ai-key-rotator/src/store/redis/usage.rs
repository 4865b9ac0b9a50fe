//! Per-key usage (`ledger/`) in Redis: one hash per provider and provider day,
//! `<prefix>:usage:{<provider>}:<day>` (days since 1970-01-01; the braces are the hash tag, so
//! each script runs on one slot of a Cluster), fields `<fingerprint>:<counter>` (`ok`,
//! `rate_limited`, …, `tokens_in`, `tokens_out`), added to with `HINCRBY` so that the fleet
//! adds up, expiring 35 days after the last write. The layout is the one the gateway used
//! before usage moved into the core, so existing totals carry on.
//!
//! The task runs next to the writer on the store's own connection (TLS, Cluster, timeouts and
//! health as for every other write): every second, or when a flush asks, it takes the
//! ledger's deltas, adds them one hash at a time, and reads today's hashes back.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use redis::Script;

use super::con::Con;
use super::{Shared, fault};
use crate::clock::Timestamp;
use crate::identity::Fingerprint;
use crate::ledger::{Key, Ledger, SYNC_EVERY, Totals, UsageBatch, UsageCounts};
use crate::store::StoreLink;

/// How long a day's hash is kept after its last write.
const KEEP_SECONDS: u64 = 35 * 86_400;

/// Adds ARGV[2k] to field ARGV[2k+1] of hash KEYS[1] and sets its expiry to ARGV[1] seconds:
/// one atomic step per hash, so a hash is either added to whole or not at all.
static ADD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
for i = 2, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
",
    )
});

impl Shared {
    fn usage_key(&self, provider: &str, day: i64) -> String {
        format!("{}:usage:{{{provider}}}:{day}", self.prefix)
    }
}

/// Syncs the ledger every second, when a flush asks, and once more when the store closes.
pub(super) async fn run(
    shared: Arc<Shared>,
    mut con: Con,
    rotator: StoreLink,
    ledger: Arc<Ledger>,
) {
    loop {
        sync(&shared, &mut con, &rotator, &ledger).await;
        let open = tokio::select! {
            open = shared.queue.pause_async(SYNC_EVERY) => open,
            () = ledger.asked() => true,
        };
        if !open {
            // Closing: what was counted up to now reaches the server before the thread goes.
            sync(&shared, &mut con, &rotator, &ledger).await;
            return;
        }
    }
}

async fn sync(shared: &Shared, con: &mut Con, rotator: &StoreLink, ledger: &Ledger) {
    let now = rotator.now().unwrap_or(Timestamp::UNIX_EPOCH);
    let mut batch = ledger.take(now);
    match write(shared, con, &mut batch).await {
        Ok(totals) => {
            ledger.written(batch, totals);
            shared.health.ok();
        }
        Err(error) => {
            shared.fail("usage write failed", fault::classify(&error, None));
            ledger.failed(batch);
        }
    }
}

/// One hash's deltas.
type Deltas<'a> = Vec<&'a (Key, UsageCounts)>;

async fn write(
    shared: &Shared,
    con: &mut Con,
    batch: &mut UsageBatch,
) -> redis::RedisResult<Vec<(Arc<str>, Totals)>> {
    let mut hashes: HashMap<(Arc<str>, i64), Deltas<'_>> = HashMap::new();
    for d in &batch.deltas {
        let ((provider, _, day), _) = d;
        hashes
            .entry((Arc::clone(provider), *day))
            .or_default()
            .push(d);
    }
    let mut done: Vec<(Arc<str>, i64)> = Vec::new();
    let mut failure = None;
    for ((provider, day), deltas) in &hashes {
        let mut call = ADD.key(shared.usage_key(provider, *day));
        call.arg(KEEP_SECONDS);
        for ((_, fp, _), counts) in deltas {
            for (field, n) in counts.fields() {
                call.arg(format!("{fp}:{field}")).arg(n);
            }
        }
        match call.invoke_async::<i64>(con).await {
            Ok(_) => done.push((Arc::clone(provider), *day)),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    if let Some(e) = failure {
        // The hashes added to must not be added to again by the retry.
        batch.mark_written(|(p, _, d)| done.iter().any(|(dp, dd)| dp == p && dd == d));
        return Err(e);
    }
    let mut totals = Vec::with_capacity(batch.days.len());
    for (provider, day) in &batch.days {
        let fields: HashMap<String, u64> = redis::cmd("HGETALL")
            .arg(shared.usage_key(provider, *day))
            .query_async(con)
            .await?;
        let mut keys: HashMap<Fingerprint, UsageCounts> = HashMap::new();
        for (field, n) in fields {
            // A field this version cannot read (a newer writer's counter) is left alone.
            let Some((fp, name)) = field.split_once(':') else {
                continue;
            };
            let Ok(fp) = fp.parse::<Fingerprint>() else {
                continue;
            };
            let mut c = keys.get(&fp).copied().unwrap_or_default();
            if c.set(name, n) {
                keys.insert(fp, c);
            }
        }
        totals.push((Arc::clone(provider), (*day, keys)));
    }
    Ok(totals)
}
