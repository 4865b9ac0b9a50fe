//! Per-key usage statistics that outlive the process: each key's upstream answers by class
//! (`ok`, `rate_limited`, …; their sum is its requests) per UTC day, kept in the state store.
//!
//! The request path only bumps in-memory counters (`ops/stats.rs`). A task writes what is new
//! since its last write every few seconds (and once more at shutdown) as *additive* deltas,
//! then reads today's totals back: with SQLite an upsert that adds (`count = count +
//! excluded.count`) in its own table `key_usage`; with Redis `HINCRBY` on one hash per provider
//! and day (`{prefix}:usage:{provider}:{day}`, the store's prefix, `akr` by default; fields `{fingerprint}:{class}`, expiring after 35
//! days). Either way gateways sharing the store add up and a restart resumes from the stored
//! totals. A failed write is kept and retried with the next
//! one; nothing is lost while the store is away, and the request path never waits for it.
//!
//! Days are UTC days; a delta is counted on the day it is written (at most one write interval
//! late around midnight).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ai_key_rotator::Fingerprint;

use crate::ops::stats::{KeyTable, USAGE_FIELDS, UsageCounts, now_ms};

/// How often new counts are written.
pub(crate) const WRITE_EVERY: Duration = Duration::from_secs(5);

const DAY_MS: u64 = 86_400_000;

/// A key's counts by class, then its tokens in and out.
pub(crate) type Counts = UsageCounts;

/// A key by provider and fingerprint.
type KeyName = (Arc<str>, Fingerprint);

/// A key's new counts: its name, its counts now, and what is new since the last write.
type Delta = (KeyName, Counts, Counts);

/// Where the counts are kept.
enum Sink {
    Sqlite(Mutex<Option<rusqlite::Connection>>, String),
    /// The connection, the URL, the key prefix.
    Redis(Mutex<Option<redis::Connection>>, String, String),
}

impl std::fmt::Debug for Sink {
    // The Redis URL may hold a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Sink::Sqlite(..) => "Sink::Sqlite",
            Sink::Redis(..) => "Sink::Redis",
        })
    }
}

/// Where usage statistics are kept.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Keep<'a> {
    /// In memory only.
    Memory,
    /// In the SQLite database at this path.
    Sqlite(&'a str),
    /// In the Redis server at this URL, under this key prefix.
    Redis(&'a str, &'a str),
}

/// The usage of every key: today's stored totals and what is not written yet.
#[derive(Debug)]
pub(crate) struct Usage {
    sink: Option<Sink>,
    /// The configured providers, whose totals are read back (Redis reads per provider).
    providers: Vec<Arc<str>>,
    state: Mutex<State>,
    /// One sync at a time: two syncs computing deltas from the same `written` would both
    /// write them (the periodic one may still run when the final one starts).
    syncing: Mutex<()>,
}

#[derive(Debug, Default)]
struct State {
    /// What of each key's in-memory counts was written.
    written: HashMap<KeyName, Counts>,
    /// Today's totals as the store last said, and the day they are for.
    today: HashMap<KeyName, Counts>,
    day: u64,
}

impl Usage {
    /// Usage kept where `keep` says.
    pub(crate) fn new(keep: Keep<'_>, providers: Vec<Arc<str>>) -> Usage {
        Usage {
            providers,
            sink: match keep {
                Keep::Memory => None,
                Keep::Sqlite(p) => Some(Sink::Sqlite(Mutex::new(None), p.to_owned())),
                Keep::Redis(u, prefix) => Some(Sink::Redis(
                    Mutex::new(None),
                    u.to_owned(),
                    prefix.to_owned(),
                )),
            },
            state: Mutex::new(State::default()),
            syncing: Mutex::new(()),
        }
    }

    /// Today's counts for a key: the stored total plus what is not written yet.
    pub(crate) fn today(
        &self,
        keys: &KeyTable,
        provider: &str,
        fingerprint: Fingerprint,
    ) -> Counts {
        let now = keys.get(provider, fingerprint).usage();
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let name = (Arc::from(provider), fingerprint);
        let written = st.written.get(&name).copied().unwrap_or_default();
        let stored = if st.day == now_ms() / DAY_MS {
            st.today.get(&name).copied().unwrap_or_default()
        } else {
            Counts::default()
        };
        std::array::from_fn(|i| stored[i] + now[i].saturating_sub(written[i]))
    }

    /// Writes what is new and reads today's totals back. Blocks (SQLite): call it on a
    /// blocking thread.
    pub(crate) fn sync(&self, keys: &KeyTable) {
        let _one = self.syncing.lock().unwrap_or_else(|e| e.into_inner());
        let day = now_ms() / DAY_MS;
        let current = keys.all();
        let deltas: Vec<Delta> = {
            let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            current
                .into_iter()
                .filter_map(|(name, now)| {
                    let written = st.written.get(&name).copied().unwrap_or_default();
                    let delta: Counts = std::array::from_fn(|i| now[i].saturating_sub(written[i]));
                    (delta != Counts::default()).then_some((name, now, delta))
                })
                .collect()
        };
        let Some(sink) = &self.sink else {
            // In memory only: "today" is what this process counted.
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if st.day != day {
                st.day = day;
                st.today.clear();
            }
            for (name, now, delta) in deltas {
                let t = st.today.entry(name.clone()).or_default();
                for i in 0..t.len() {
                    t[i] += delta[i];
                }
                st.written.insert(name, now);
            }
            return;
        };
        let written = match sink {
            Sink::Sqlite(conn, path) => {
                let mut conn = conn.lock().unwrap_or_else(|e| e.into_inner());
                let r = write_sqlite(&mut conn, path, day, &deltas).map_err(|e| e.to_string());
                if r.is_err() {
                    // Opened afresh for the next write.
                    *conn = None;
                }
                r
            }
            Sink::Redis(conn, url, prefix) => {
                let mut conn = conn.lock().unwrap_or_else(|e| e.into_inner());
                // Only the kind of failure: a Redis error can quote the URL, password included.
                let r = write_redis(&mut conn, url, prefix, day, &deltas, &self.providers)
                    .map_err(|e| format!("{:?}", e.kind()));
                if r.is_err() {
                    *conn = None;
                }
                r
            }
        };
        match written {
            Ok(today) => {
                let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                for (name, now, _) in deltas {
                    st.written.insert(name, now);
                }
                st.today = today;
                st.day = day;
            }
            Err(e) => {
                // Kept for the next write.
                tracing::warn!(error = %e, "usage statistics could not be written; retrying");
            }
        }
    }
}

/// How long a Redis write may take before it is retried with the next one.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

fn write_redis(
    conn: &mut Option<redis::Connection>,
    url: &str,
    prefix: &str,
    day: u64,
    deltas: &[Delta],
    configured: &[Arc<str>],
) -> redis::RedisResult<HashMap<KeyName, Counts>> {
    if conn.is_none() {
        let client = redis::Client::open(url)?;
        let c = client.get_connection_with_timeout(REDIS_TIMEOUT)?;
        c.set_read_timeout(Some(REDIS_TIMEOUT))?;
        c.set_write_timeout(Some(REDIS_TIMEOUT))?;
        *conn = Some(c);
    }
    let Some(c) = conn.as_mut() else {
        unreachable!("opened above")
    };
    let hash = |provider: &str| format!("{prefix}:usage:{{{provider}}}:{day}");
    let mut providers: Vec<Arc<str>> = deltas
        .iter()
        .map(|((p, _), _, _)| Arc::clone(p))
        .chain(configured.iter().cloned())
        .collect();
    let mut pipe = redis::pipe();
    pipe.atomic();
    for ((provider, fp), _, delta) in deltas {
        for (i, n) in delta.iter().enumerate().filter(|(_, n)| **n > 0) {
            pipe.hincr(hash(provider), format!("{fp}:{}", USAGE_FIELDS[i]), *n)
                .ignore();
        }
        pipe.expire(hash(provider), 35 * 86_400).ignore();
    }
    if !deltas.is_empty() {
        pipe.query::<()>(c)?;
    }
    // Today's totals of every configured provider, and of any this process counted for.
    let known: Vec<Arc<str>> = {
        providers.sort();
        providers.dedup();
        providers
    };
    let mut today: HashMap<KeyName, Counts> = HashMap::new();
    for provider in known {
        let all: HashMap<String, u64> = redis::cmd("HGETALL").arg(hash(&provider)).query(c)?;
        for (field, count) in all {
            let Some((fp, class)) = field.split_once(':') else {
                continue;
            };
            let (Ok(fp), Some(i)) = (
                fp.parse::<Fingerprint>(),
                USAGE_FIELDS.iter().position(|c| *c == class),
            ) else {
                continue;
            };
            today.entry((Arc::clone(&provider), fp)).or_default()[i] = count;
        }
    }
    Ok(today)
}

fn write_sqlite(
    conn: &mut Option<rusqlite::Connection>,
    path: &str,
    day: u64,
    deltas: &[Delta],
) -> rusqlite::Result<HashMap<KeyName, Counts>> {
    if conn.is_none() {
        let c = rusqlite::Connection::open(path)?;
        c.busy_timeout(Duration::from_secs(5))?;
        c.execute_batch(
            "CREATE TABLE IF NOT EXISTS key_usage (
                provider TEXT NOT NULL, fingerprint TEXT NOT NULL, day INTEGER NOT NULL,
                class TEXT NOT NULL, count INTEGER NOT NULL,
                PRIMARY KEY (provider, fingerprint, day, class))",
        )?;
        *conn = Some(c);
    }
    let Some(c) = conn.as_mut() else {
        unreachable!("opened above")
    };
    let tx = c.transaction()?;
    {
        let mut add = tx.prepare_cached(
            "INSERT INTO key_usage (provider, fingerprint, day, class, count)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (provider, fingerprint, day, class)
             DO UPDATE SET count = count + excluded.count",
        )?;
        for ((provider, fp), _, delta) in deltas {
            for (i, n) in delta.iter().enumerate().filter(|(_, n)| **n > 0) {
                add.execute(rusqlite::params![
                    &**provider,
                    fp.to_string(),
                    day as i64,
                    USAGE_FIELDS[i],
                    *n as i64
                ])?;
            }
        }
    }
    let mut today: HashMap<KeyName, Counts> = HashMap::new();
    {
        let mut read = tx.prepare_cached(
            "SELECT provider, fingerprint, class, count FROM key_usage WHERE day = ?1",
        )?;
        let rows = read.query_map([day as i64], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        for row in rows {
            let (provider, fp, class, count) = row?;
            // Rows this version cannot read (another class name, a malformed fingerprint)
            // are left alone.
            let (Ok(fp), Some(i)) = (
                fp.parse::<Fingerprint>(),
                USAGE_FIELDS.iter().position(|c| *c == class),
            ) else {
                continue;
            };
            today.entry((Arc::from(provider), fp)).or_default()[i] = count.max(0) as u64;
        }
    }
    tx.commit()?;
    Ok(today)
}
