//! The fleet on the server: leases of fleet-wide budgets (GCRA in one Lua script, one round
//! trip per lease) and each process's heartbeat, which counts the live processes (for the
//! outage fallback of budgets) and publishes a digest of its key set (the fleet view).
//!
//! Keys, each under a hash tag so every script touches one slot (Redis Cluster):
//! - `{<prefix>:<provider>}:budget:<fingerprint | scope:<name>>`: a hash with the theoretical
//!   arrival times of requests and tokens (`rtat`, `ttat`, in µs of server time) and the daily
//!   window's end and counts (`day`, `dreq`, `dtok`); it expires when unused.
//! - `{<prefix>:fleet}:live`: a sorted set of process ids scored by their last heartbeat (ms).
//! - `{<prefix>:fleet}:replicas`: a hash from process id to `<digest> <credentials>`.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::Script;

use super::con::Con;
use super::{Shared, fault};
use crate::budget::fleet::{FleetShare, LeaseAsk};
use crate::clock::Timestamp;
use crate::store::{FleetView, Replica, StoreLink};

/// How often a process says it is alive.
pub(super) const HEARTBEAT: Duration = Duration::from_secs(1);
/// A process not heard from for this long is no longer counted.
const LIVE_FOR: Duration = Duration::from_secs(5);

/// Leases cells of one budget. KEYS[1] the budget's hash; ARGV: requests wanted, tokens
/// wanted, requests/min, tokens/min, requests/day, tokens/day (0 = none), the request burst,
/// the token burst, the daily window's end (ms, 0 = none), the period (ms). Returns the
/// requests and tokens granted and how long until more (ms).
static LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local period = tonumber(ARGV[10]) * 1000
local day_end = tonumber(ARGV[9])
if day_end > 0 and tonumber(redis.call('HGET', KEYS[1], 'day') or '0') ~= day_end then
  redis.call('HSET', KEYS[1], 'day', string.format('%.0f', day_end), 'dreq', 0, 'dtok', 0)
end
local function grant(want, limit, burst, field, dlimit, dfield)
  if want <= 0 then return 0, 0 end
  local k = want
  local wait = 0
  local tat, T
  if limit > 0 then
    T = math.max(1, math.floor(period / limit))
    tat = math.max(tonumber(redis.call('HGET', KEYS[1], field) or '0'), now)
    local cap = math.floor((now + burst * T - tat) / T)
    if cap < 0 then cap = 0 end
    if cap < k then k = cap end
  end
  if dlimit > 0 then
    local left = dlimit - tonumber(redis.call('HGET', KEYS[1], dfield) or '0')
    if left < 0 then left = 0 end
    if left < k then
      k = left
      if k == 0 then wait = math.max(0, day_end * 1000 - now) end
    end
    redis.call('HINCRBY', KEYS[1], dfield, k)
  end
  if limit > 0 then
    local new_tat = tat + k * T
    redis.call('HSET', KEYS[1], field, string.format('%.0f', new_tat))
    if k < want then wait = math.max(wait, new_tat + T - burst * T - now) end
  end
  return k, wait
end
local kr, wr = grant(tonumber(ARGV[1]), tonumber(ARGV[3]), tonumber(ARGV[7]), 'rtat', tonumber(ARGV[5]), 'dreq')
local kt, wt = grant(tonumber(ARGV[2]), tonumber(ARGV[4]), tonumber(ARGV[8]), 'ttat', tonumber(ARGV[6]), 'dtok')
local ttl = 2 * period
if day_end > 0 then ttl = math.max(ttl, day_end * 1000 - now + period) end
redis.call('PEXPIRE', KEYS[1], math.ceil(ttl / 1000))
return {kr, kt, math.ceil(math.max(wr, wt) / 1000)}
",
    )
});

/// A process's heartbeat. KEYS[1] the live set, KEYS[2] the replicas' digests; ARGV: this
/// process's id, how long a process stays live (ms), its `<digest> <credentials>`. Forgets
/// the processes no longer live and returns, per live one, its id, digest line and last
/// heartbeat (ms of server time), then the server's time.
static HEARTBEAT_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local live_for = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - live_for)
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
local all = redis.call('HGETALL', KEYS[2])
local out = {}
for i = 1, #all, 2 do
  local seen = redis.call('ZSCORE', KEYS[1], all[i])
  if seen then
    table.insert(out, all[i]); table.insert(out, all[i + 1]); table.insert(out, seen)
  else
    redis.call('HDEL', KEYS[2], all[i])
  end
end
redis.call('PEXPIRE', KEYS[1], live_for * 10)
redis.call('PEXPIRE', KEYS[2], live_for * 10)
table.insert(out, tostring(now))
return out
",
    )
});

impl Shared {
    fn budget_key(&self, share: &FleetShare) -> String {
        format!(
            "{{{}:{}}}:budget:{}",
            self.prefix, share.subject.provider, share.subject.name
        )
    }
}

/// A digest of the key set (providers and fingerprints, never a key), as hex, and its size.
pub(super) fn key_digest(rotator: &StoreLink) -> (String, usize) {
    let (digest, count) = rotator.key_digest().unwrap_or((0, 0));
    (format!("{digest:016x}"), count)
}

/// Leases for the shares that asked, and beats the heart every [`HEARTBEAT`]; while the
/// server is out of reach, budgets fall back to their share.
pub(super) async fn run(shared: Arc<Shared>, mut con: Con, rotator: StoreLink) {
    let hub = Arc::clone(&shared.hub);
    let mut next_beat = tokio::time::Instant::now();
    while rotator.is_alive() {
        if tokio::time::Instant::now() >= next_beat {
            next_beat = tokio::time::Instant::now() + HEARTBEAT;
            match beat(&shared, &mut con, &rotator).await {
                Ok(view) => {
                    hub.set_live(view.live_processes);
                    hub.set_fallback(false);
                    *shared.view.lock().unwrap_or_else(|e| e.into_inner()) = Some(view);
                }
                Err(error) => {
                    let fault = fault::classify(&error, None);
                    if !fault.is_partial() {
                        hub.set_fallback(true);
                    }
                }
            }
        }
        let mut wake_at = next_beat;
        if hub.fallback().is_none() {
            let now = rotator.now().unwrap_or(Timestamp::UNIX_EPOCH);
            for share in hub.shares() {
                let Some(ask) = share.ask() else { continue };
                match lease(&shared, &mut con, &share, ask, now).await {
                    Ok((requests, tokens, wait_ms)) => {
                        let next_at = Timestamp::from_millis(now.as_millis() + wait_ms);
                        share.granted(ask, requests, tokens, next_at);
                        if share.waiting_until().is_some() {
                            // Nothing granted: ask again when the server will have more.
                            let again = tokio::time::Instant::now()
                                + Duration::from_millis(wait_ms.clamp(1, 1000));
                            wake_at = wake_at.min(again);
                        }
                    }
                    Err(error) => {
                        let fault = fault::classify(&error, Some(&share.subject.provider));
                        let partial = fault.is_partial();
                        shared.fail("cannot lease a fleet budget", fault);
                        if !partial {
                            hub.set_fallback(true);
                            break;
                        }
                    }
                }
            }
        }
        // The writer aborts this task when the store closes.
        tokio::select! {
            () = hub.wake.notified() => {}
            () = tokio::time::sleep_until(wake_at) => {}
        }
    }
}

async fn lease(
    shared: &Shared,
    con: &mut Con,
    share: &FleetShare,
    ask: LeaseAsk,
    now: Timestamp,
) -> redis::RedisResult<(u64, u64, u64)> {
    let [rpm, tpm, rpd, tpd, period] = share.limits.numbers();
    let day_end = share.limits.day_end(now).map_or(0, Timestamp::as_millis);
    LEASE
        .key(shared.budget_key(share))
        .arg(ask.requests)
        .arg(ask.tokens)
        .arg(rpm)
        .arg(tpm)
        .arg(rpd)
        .arg(tpd)
        .arg(share.batch_requests.max(1))
        .arg(ask.token_burst.max(1))
        .arg(day_end)
        .arg(period)
        .invoke_async(con)
        .await
}

async fn beat(
    shared: &Shared,
    con: &mut Con,
    rotator: &StoreLink,
) -> redis::RedisResult<FleetView> {
    let (digest, credentials) = key_digest(rotator);
    let live = format!("{{{}:fleet}}:live", shared.prefix);
    let replicas = format!("{{{}:fleet}}:replicas", shared.prefix);
    let out: Vec<String> = HEARTBEAT_SCRIPT
        .key(live)
        .key(replicas)
        .arg(&shared.origin)
        .arg(LIVE_FOR.as_millis() as u64)
        .arg(format!("{digest} {credentials}"))
        .invoke_async(con)
        .await?;
    let server_now: u64 = out.last().and_then(|t| t.parse().ok()).unwrap_or(0);
    let mut replicas: Vec<Replica> = out[..out.len().saturating_sub(1)]
        .chunks_exact(3)
        .map(|c| {
            let (d, n) = c[1].split_once(' ').unwrap_or((&c[1], "0"));
            let seen: u64 = c[2].parse().unwrap_or(server_now);
            Replica {
                id: c[0].clone(),
                key_digest: d.to_owned(),
                credentials: n.parse().unwrap_or(0),
                last_seen_ms_ago: server_now.saturating_sub(seen),
                differs: false,
                this_process: c[0] == shared.origin,
            }
        })
        .collect();
    // The key set most replicas run (this process's on a tie) is the reference: a replica
    // left on an old configuration is the one flagged.
    let count = |d: &str| replicas.iter().filter(|r| r.key_digest == d).count();
    let reference = replicas
        .iter()
        .map(|r| r.key_digest.clone())
        .max_by_key(|d| (count(d), *d == digest))
        .unwrap_or_else(|| digest.clone());
    for r in &mut replicas {
        r.differs = r.key_digest != reference;
    }
    replicas.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(FleetView {
        this_process: shared.origin.clone(),
        live_processes: u32::try_from(replicas.len()).unwrap_or(u32::MAX).max(1),
        budgets_fallback: None,
        replicas,
    })
}
