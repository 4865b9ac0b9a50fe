//! What a shared store knows about the fleet: the live processes, whether budgets run on
//! their share during an outage, and each replica's key-set digest. Data only.

/// The fleet as a shared store last saw it; see `RedisMonitor::fleet`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FleetView {
    /// This process's id in the fleet.
    pub this_process: String,
    /// Processes whose heartbeat is recent (this one included).
    pub live_processes: u32,
    /// `Some(n)` while the store is out of reach and each fleet-wide budget runs on this
    /// process's share, `limit ÷ n`.
    pub budgets_fallback: Option<u32>,
    /// Every live process, by id.
    pub replicas: Vec<Replica>,
}

/// One process of the fleet.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Replica {
    /// Its id (process id and start time).
    pub id: String,
    /// A digest of its key set (providers and fingerprints, hashed: never a key).
    pub key_digest: String,
    /// How many credentials it has.
    pub credentials: u64,
    /// How long ago its last heartbeat was, by the server's clock.
    pub last_seen_ms_ago: u64,
    /// Its key set differs from the one most replicas run: a replica left on an old
    /// configuration, whose requests may fail where the others' would not.
    pub differs: bool,
    /// Whether it is this process.
    pub this_process: bool,
}
