//! Watchers that run beside an attack and report what the server went through: its resident
//! memory ([`RssWatch`]) and how long its health check took to answer ([`HealthWatch`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::http;

/// Samples a process's resident memory every 20 ms.
pub struct RssWatch {
    baseline_kib: u64,
    peak_kib: Arc<AtomicU64>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// The memory a process used while it was watched.
#[derive(Debug, Clone, Copy)]
pub struct Rss {
    pub baseline_kib: u64,
    pub peak_kib: u64,
}

impl Rss {
    /// How much the resident memory grew above where it started, in MiB.
    pub fn growth_mib(&self) -> u64 {
        self.peak_kib.saturating_sub(self.baseline_kib) / 1024
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

impl RssWatch {
    pub fn start(pid: u32) -> anyhow::Result<Self> {
        let baseline_kib = rss_kib(pid).context("the process has no resident memory to read")?;
        let peak_kib = Arc::new(AtomicU64::new(baseline_kib));
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let (peak, stop) = (Arc::clone(&peak_kib), stop.clone());
            async move {
                let mut every = tokio::time::interval(Duration::from_millis(20));
                while !stop.is_cancelled() {
                    every.tick().await;
                    if let Some(rss) = rss_kib(pid) {
                        peak.fetch_max(rss, Ordering::Relaxed);
                    }
                }
            }
        });
        Ok(Self { baseline_kib, peak_kib, stop, task })
    }

    pub async fn stop(self) -> anyhow::Result<Rss> {
        self.stop.cancel();
        self.task.await?;
        Ok(Rss { baseline_kib: self.baseline_kib, peak_kib: self.peak_kib.load(Ordering::Relaxed) })
    }
}

/// Asks `GET /healthz` every 100 ms and keeps the slowest answer.
pub struct HealthWatch {
    stop: CancellationToken,
    task: JoinHandle<anyhow::Result<(Duration, usize)>>,
}

/// How the health check answered while it was watched.
#[derive(Debug, Clone, Copy)]
pub struct Health {
    /// The slowest answer (a request that never came back counts as the time it was waited for).
    pub slowest: Duration,
    pub checks: usize,
}

impl HealthWatch {
    pub fn start(http_url: &str) -> Self {
        let url = format!("{http_url}/healthz");
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                let mut slowest = Duration::ZERO;
                let mut checks = 0;
                let mut every = tokio::time::interval(Duration::from_millis(100));
                while !stop.is_cancelled() {
                    every.tick().await;
                    let started = Instant::now();
                    let answer = http::get(&url).await;
                    slowest = slowest.max(started.elapsed());
                    checks += 1;
                    anyhow::ensure!(answer.is_ok_and(|a| a.status == 200), "/healthz failed");
                }
                Ok((slowest, checks))
            }
        });
        Self { stop, task }
    }

    pub async fn stop(self) -> anyhow::Result<Health> {
        self.stop.cancel();
        let (slowest, checks) = self.task.await??;
        Ok(Health { slowest, checks })
    }
}
