//! One server or a Redis Cluster, behind one connection type: every script touches the keys
//! of one hash tag (one slot), so the same commands run on both; the cluster connection
//! routes each by its key and follows `MOVED` after a failover.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

use super::MAX_BACKOFF;

/// Where the store connects: one server, or a cluster given by some of its nodes.
// One per store, cloned once into its thread: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub(super) enum Target {
    Single(redis::Client),
    Cluster {
        client: Box<redis::cluster::ClusterClient>,
        /// Each node given, for the subscription (published messages reach every node of a
        /// cluster, so any one will do; the next is tried when it goes).
        nodes: Vec<redis::Client>,
    },
}

/// A connection to the target; cheap to clone (both kinds multiplex).
#[derive(Clone)]
pub(super) enum Con {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Target {
    pub(super) async fn connect(
        &self,
        connect_timeout: Duration,
        command_timeout: Duration,
    ) -> redis::RedisResult<Con> {
        match self {
            Target::Single(client) => {
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(connect_timeout))
                    .set_response_timeout(Some(command_timeout))
                    .set_number_of_retries(1)
                    .set_max_delay(MAX_BACKOFF);
                client
                    .get_connection_manager_with_config(config)
                    .await
                    .map(Con::Single)
            }
            Target::Cluster { client, .. } => {
                let connect = client.get_async_connection();
                match tokio::time::timeout(connect_timeout + command_timeout, connect).await {
                    Ok(con) => con.map(Con::Cluster),
                    Err(_) => Err(redis::RedisError::from(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "connecting to the cluster timed out",
                    ))),
                }
            }
        }
    }

    /// The client to subscribe with on attempt `n`.
    pub(super) fn subscriber(&self, n: usize) -> &redis::Client {
        match self {
            Target::Single(client) => client,
            Target::Cluster { nodes, .. } => &nodes[n % nodes.len()],
        }
    }
}

impl ConnectionLike for Con {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Con::Single(c) => c.req_packed_command(cmd),
            Con::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Con::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Con::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Con::Single(c) => c.get_db(),
            Con::Cluster(c) => c.get_db(),
        }
    }
}
