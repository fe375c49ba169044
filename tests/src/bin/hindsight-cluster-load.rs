//! `hindsight-cluster-load`: a benchmark of cluster mode. It measures what the hops between
//! nodes cost a change: the same workload on one node and on three (real Postgres, real NATS,
//! real `hindsight` processes), then the frames the non-owners forwarded per second, and how
//! long the board is out of reach when its owner is killed.
//!
//! The workload is one board and three people. An anchor joins first, on node 0, so node 0 owns
//! the board. The writer joins with the facilitator key (which makes them the facilitator) and
//! renames the board `--changes` times (default 200), one change every `--pace-ms` (default 20,
//! which keeps each connection under the server's default message rate). The reader waits for
//! each new title in their replica of the board. On one node all three are on node 0; on three
//! nodes the writer is on node 1 and the reader on node 2, so every change goes from the writer
//! to node 1, over NATS to the owner (node 0), over NATS to node 2, and to the reader.
//!
//! Run it with `just bench-cluster` (a release build; the nodes run as child processes, the
//! `hindsight-under-test` binary built beside this one).

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use hindsight_shared::edit;
use hindsight_tests::cluster::{ClusterUnderTest, metric};
use hindsight_tests::{Participant, percentiles};
use tokio::time::MissedTickBehavior;

/// Changes made before measuring, so that connections and sync states have settled.
const WARM_UP: usize = 10;

fn main() -> anyhow::Result<()> {
    tokio::runtime::Runtime::new()?.block_on(bench())
}

/// Runs the workload on one node, then on three with a failover at the end, and prints the table.
async fn bench() -> anyhow::Result<()> {
    let arg = |name: &str, default: u64| -> anyhow::Result<u64> {
        let args: Vec<String> = std::env::args().collect();
        match args.iter().position(|a| a == name) {
            Some(at) => args.get(at + 1).context("a number after the flag")?.parse().context(name.to_owned()),
            None => Ok(default),
        }
    };
    let (changes, lease_ms, pace_ms) = (arg("--changes", 200)?, arg("--lease-ms", 2_000)?, arg("--pace-ms", 20)?);
    let (changes, pace) = (changes as usize, Duration::from_millis(pace_ms));
    let command = std::env::args().collect::<Vec<_>>().join(" ");

    // One node: everyone on node 0.
    let single = ClusterUnderTest::start(1, lease_ms).await?;
    let (anchor, mut writer, mut reader) = people(&single, [0, 0, 0]).await?;
    propagate(&mut writer, &mut reader, WARM_UP, pace, "Warm-up").await?;
    let mut one = propagate(&mut writer, &mut reader, changes, pace, "One node").await?;
    let rss_one = mib(single.node(0).status_kib("VmRSS")?);
    drop((anchor, writer, reader));
    single.stop().await?;

    // Three nodes: the anchor on the owner, the writer and the reader on the other two.
    let mut cluster = ClusterUnderTest::start(3, lease_ms).await?;
    let (anchor, mut writer, mut reader) = people(&cluster, [0, 1, 2]).await?;
    ensure!(metric(cluster.node(0), "hindsight_cluster_boards_owned").await? == 1.0, "node 0 does not own the board");
    propagate(&mut writer, &mut reader, WARM_UP, pace, "Warm-up").await?;
    let before = frames(&cluster).await?;
    let started = Instant::now();
    let mut three = propagate(&mut writer, &mut reader, changes, pace, "Three nodes").await?;
    let wall = started.elapsed().as_secs_f64();
    let after = frames(&cluster).await?;
    let rss_three =
        (0..3).map(|i| Ok(mib(cluster.node(i).status_kib("VmRSS")?))).collect::<anyhow::Result<Vec<f64>>>()?;

    // Failover: the owner dies, and the writer renames the board at once through node 1.
    let mut owner = cluster.take(0);
    let killed = Instant::now();
    owner.kill9().await?;
    let title = "After the failover".to_owned();
    let hash = writer.send_board_change(|tx| Ok(edit::set_title(tx, &title)?)).await?;
    writer.verdict(hash).await?.accepted().context("the change made during the failover")?;
    let accepted = killed.elapsed().as_secs_f64() * 1000.0;
    reader.pump_until("the change made during the failover", |p| p.board().title == title).await?;
    let seen = killed.elapsed().as_secs_f64() * 1000.0;
    owner.assert_no_panics();
    drop((anchor, writer, reader));
    cluster.stop().await?;

    let ((one50, one90), (three50, three90)) = (percentiles(&mut one), percentiles(&mut three));
    // `percentiles` sorted both lists, so the 99th percentile (nearest rank) is one index away.
    let p99 = |sorted: &[f64]| sorted[((0.99 * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1];
    let (forwarded, returned) = (after.0 - before.0, after.1 - before.1);
    let per = |frames: f64| format!("{:.1} ({:.1} a change)", frames / wall, frames / changes as f64);
    println!("`{command}`\n");
    println!(
        "Workload: the facilitator renames the board {changes} times, one change every {pace_ms} ms; latency is \
         from the writer sending a change until the reader's replica has it. On 3 nodes: writer on node 1, reader \
         on node 2, the board owned by node 0. Every change is committed to Postgres before anyone sees it, on 1 \
         node as on 3. Failover: one kill -9 of the owner (one sample), lease {lease_ms} ms.\n"
    );
    println!("| measure | 1 node | 3 nodes |\n|---|---|---|");
    println!("| propagation p50 (ms) | {one50:.2} | {three50:.2} |");
    println!("| propagation p90 (ms) | {one90:.2} | {three90:.2} |");
    println!("| propagation p99 (ms) | {:.2} | {:.2} |", p99(&one), p99(&three));
    println!("| overhead of 3 nodes at p50 (ms) | | {:.2} |", three50 - one50);
    println!("| frames forwarded to the owner by nodes 1 and 2 (per s) | | {} |", per(forwarded));
    println!("| frames returned from the owner by nodes 1 and 2 (per s) | | {} |", per(returned));
    println!("| failover: kill -9 of the owner until the writer's change is accepted (ms) | | {accepted:.0} |");
    println!("| failover: kill -9 of the owner until the reader has it (ms) | | {seen:.0} |");
    let rss_three: Vec<String> = rss_three.iter().map(|m| format!("{m:.1}")).collect();
    println!("| RSS after the run, node 0 / 1 / 2 (MiB) | {rss_one:.1} | {} |", rss_three.join(" / "));
    Ok(())
}

/// Makes a board on `cluster` and brings in its anchor, writer and reader, on the nodes given
/// in that order. The anchor joins first, so the anchor's node owns the board; the writer joins
/// with the facilitator key, so the writer is the facilitator.
async fn people(
    cluster: &ClusterUnderTest,
    nodes: [usize; 3],
) -> anyhow::Result<(Participant, Participant, Participant)> {
    let board = cluster.node(nodes[0]).create_board("Cluster load", "4ls").await?;
    let anchor = Participant::join(cluster.node(nodes[0]), board.board_id, "Anchor").await?;
    let writer = Participant::join_as_facilitator(cluster.node(nodes[1]), &board, "Writer").await?;
    let reader = Participant::join(cluster.node(nodes[2]), board.board_id, "Reader").await?;
    Ok((anchor, writer, reader))
}

/// Renames the board `changes` times from `writer`, one change every `pace`, and returns how
/// long each took, in ms, from the writer sending it until the reader's replica had it. The
/// writer then waits for the server's verdict, so that a refused change fails the run.
async fn propagate(
    writer: &mut Participant,
    reader: &mut Participant,
    changes: usize,
    pace: Duration,
    label: &str,
) -> anyhow::Result<Vec<f64>> {
    let mut ticks = tokio::time::interval(pace);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut latencies = Vec::with_capacity(changes);
    for i in 0..changes {
        ticks.tick().await;
        let title = format!("{label}, change {i}");
        let sent = Instant::now();
        let hash = writer.send_board_change(|tx| Ok(edit::set_title(tx, &title)?)).await?;
        reader.pump_until("the writer's new title", |p| p.board().title == title).await?;
        latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
        writer.verdict(hash).await?.accepted().with_context(|| format!("renaming the board to `{title}`"))?;
    }
    Ok(latencies)
}

/// The frames nodes 1 and 2 forwarded to the owner and returned from it so far, summed.
async fn frames(cluster: &ClusterUnderTest) -> anyhow::Result<(f64, f64)> {
    let (mut forwarded, mut returned) = (0.0, 0.0);
    for i in [1, 2] {
        forwarded += metric(cluster.node(i), "hindsight_cluster_frames_forwarded_total").await?;
        returned += metric(cluster.node(i), "hindsight_cluster_frames_returned_total").await?;
    }
    Ok((forwarded, returned))
}

/// KiB to MiB.
fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
