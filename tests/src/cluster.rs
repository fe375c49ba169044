//! [`ClusterUnderTest`]: Hindsight in cluster mode as an operator runs it: a real Postgres, a
//! real NATS server and several `hindsight` processes (nodes) on them, each on its own port.

use std::time::{Duration, Instant};

use anyhow::Context;

use crate::nats::Nats;
use crate::postgres::Postgres;
use crate::{ServerProcess, http, within};

/// A cluster of nodes on one database and one NATS server.
pub struct ClusterUnderTest {
    pub postgres: Postgres,
    pub nats: Nats,
    database: String,
    lease_ms: u64,
    dirs: Vec<tempfile::TempDir>,
    /// The nodes, by index; `None` while one is down.
    pub nodes: Vec<Option<ServerProcess>>,
}

impl ClusterUnderTest {
    /// Starts Postgres, NATS and `nodes` nodes (`node-0`, `node-1`, …) with leases of
    /// `lease_ms`.
    pub async fn start(nodes: usize, lease_ms: u64) -> anyhow::Result<Self> {
        let postgres = Postgres::start().await?;
        let database = postgres.create_database("hindsight").await?;
        let nats = Nats::start().await?;
        let mut cluster = Self { postgres, nats, database, lease_ms, dirs: Vec::new(), nodes: Vec::new() };
        for i in 0..nodes {
            cluster.dirs.push(tempfile::tempdir()?);
            cluster.nodes.push(None);
            cluster.start_node(i).await?;
        }
        Ok(cluster)
    }

    /// The flags node `i` runs with.
    pub fn flags(&self, i: usize) -> Vec<String> {
        [
            "--database-url",
            &self.database,
            "--nats-url",
            self.nats.url(),
            "--node-id",
            &format!("node-{i}"),
            "--lease-ms",
            &self.lease_ms.to_string(),
            // Idle boards leave memory (and their leases go) within a few seconds.
            "--board-idle-secs",
            "5",
        ]
        .map(String::from)
        .to_vec()
    }

    /// Starts node `i` (again).
    pub async fn start_node(&mut self, i: usize) -> anyhow::Result<()> {
        let flags = self.flags(i);
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let node = ServerProcess::start_with(self.dirs[i].path(), &flags).await?;
        self.nodes[i] = Some(node);
        Ok(())
    }

    /// Node `i`, which must be up.
    pub fn node(&self, i: usize) -> &ServerProcess {
        self.nodes[i].as_ref().expect("the node is up")
    }

    pub fn node_mut(&mut self, i: usize) -> &mut ServerProcess {
        self.nodes[i].as_mut().expect("the node is up")
    }

    /// Takes node `i` out (to stop or kill it); the slot is empty until it starts again.
    pub fn take(&mut self, i: usize) -> ServerProcess {
        self.nodes[i].take().expect("the node is up")
    }

    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.lease_ms)
    }

    /// Stops every node gracefully and checks that none panicked.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        for node in self.nodes.iter_mut().flatten() {
            node.stop().await?;
            node.assert_no_panics();
        }
        Ok(())
    }
}

/// One value of node's `/metrics` (0 if absent).
pub async fn metric(node: &ServerProcess, name: &str) -> anyhow::Result<f64> {
    let text = http::get(&format!("{}/metrics", node.http_url())).await?.text();
    Ok(text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok()).unwrap_or(0.0))
}

/// Polls `/metrics` of `node` until `name` reaches at least `value`; how long it took. Metrics
/// change with no event to wait on: each poll is a real round trip.
pub async fn metric_reaches(node: &ServerProcess, name: &str, value: f64) -> anyhow::Result<Duration> {
    let started = Instant::now();
    within(&format!("{name} to reach {value}"), async {
        loop {
            if metric(node, name).await.context("reading /metrics")? >= value {
                return Ok(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    })
    .await
}
