//! `hindsight-cluster-load`: a benchmark of cluster mode. It measures what the hops between
//! nodes cost a change: the same workload on one node and on three (real Postgres, real NATS,
//! real `hindsight` processes), then the frames the non-owners forwarded per second, how many
//! changes a second the board takes from writers who do not wait for one another, and how long
//! the board is out of reach when its owner is killed.
//!
//! The workload is one board and three people. An anchor joins first, on node 0, so node 0 owns
//! the board. The writer joins with the facilitator key (which makes them the facilitator) and
//! renames the board `--changes` times (default 200), one change every `--pace-ms` (default 20,
//! which keeps each connection under the server's default message rate). The reader waits for
//! each new title in their replica of the board. On one node all three are on node 0; on three
//! nodes the writer is on node 1 and the reader on node 2, so every change goes from the writer
//! to node 1, over NATS to the owner (node 0), over NATS to node 2, and to the reader.
//!
//! Then the throughput: `--writers` participants (default 6) join the same board and write
//! drafts on their own desks (the board is in the Write phase), each in a closed loop (the next
//! change once the server stored the previous one), all at once for `--seconds` (default 5)
//! after a warm-up. On one node they are on node 0; on three nodes half are on node 1 and half
//! on node 2, so every change is forwarded to the owner and its acknowledgement returned. A desk
//! holds at most 200 drafts: each writer writes new drafts until its desk holds
//! [`DRAFTS_PER_DESK`], then edits their texts in turn. A writer makes at most one change every
//! [`MIN_GAP`] (6 ms), so that no machine is fast enough to take it over the server's 200
//! messages a second per connection: the figure is then the server's, at up to 166 changes a
//! second per writer.
//!
//! Run it with `just bench-cluster` (a release build; the nodes run as child processes, the
//! `hindsight-under-test` binary built beside this one).

use std::time::{Duration, Instant};

/// The least time between two changes of one throughput writer.
const MIN_GAP: Duration = Duration::from_millis(6);

use anyhow::{Context, bail, ensure};
use hindsight_shared::edit;
use hindsight_shared::ids::DocumentId;
use hindsight_tests::cluster::{ClusterUnderTest, metric};
use hindsight_tests::{Participant, percentiles};
use tokio::time::MissedTickBehavior;

/// Changes made before measuring, so that connections and sync states have settled.
const WARM_UP: usize = 10;

/// New drafts each writer of the throughput phase writes before measuring (not counted).
const WARM_UP_DRAFTS: usize = 20;

/// The drafts a writer's desk holds at most in the throughput phase (the server takes 200): once
/// it holds that many, the writer edits their texts instead of writing new ones.
const DRAFTS_PER_DESK: usize = 150;

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
    let (writers, seconds) = (arg("--writers", 6)? as usize, arg("--seconds", 5)?);
    ensure!(writers > 0 && seconds > 0, "--writers and --seconds take at least 1");
    let (changes, pace, span) = (changes as usize, Duration::from_millis(pace_ms), Duration::from_secs(seconds));
    let command = std::env::args().collect::<Vec<_>>().join(" ");

    // One node: everyone on node 0.
    let single = ClusterUnderTest::start(1, lease_ms).await?;
    let (anchor, mut writer, mut reader) = people(&single, [0, 0, 0]).await?;
    propagate(&mut writer, &mut reader, WARM_UP, pace, "Warm-up").await?;
    let mut one = propagate(&mut writer, &mut reader, changes, pace, "One node").await?;
    let mut busy_one = throughput(&single, anchor.board_id(), &vec![0; writers], span).await?;
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
    // The throughput writers, half on node 1 and half on node 2: none on the owner.
    let spread: Vec<usize> = (0..writers).map(|i| 1 + i % 2).collect();
    let mut busy_three = throughput(&cluster, anchor.board_id(), &spread, span).await?;
    ensure!(metric(cluster.node(0), "hindsight_cluster_boards_owned").await? == 1.0, "node 0 lost the board");
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
    let p99 = |sorted: &[f64]| rank(sorted, 0.99);
    let (forwarded, returned) = (after.0 - before.0, after.1 - before.1);
    let per = |frames: f64| format!("{:.1} ({:.1} a change)", frames / wall, frames / changes as f64);
    let (busy50_one, busy50_three) =
        (percentiles(&mut busy_one.round_trips).0, percentiles(&mut busy_three.round_trips).0);
    let busy_frames = |frames: f64| {
        format!("{:.1} ({:.2} a change)", frames / busy_three.wall, frames / busy_three.round_trips.len() as f64)
    };
    println!("`{command}`\n");
    println!(
        "Workload: the facilitator renames the board {changes} times, one change every {pace_ms} ms; latency is \
         from the writer sending a change until the reader's replica has it. On 3 nodes: writer on node 1, reader \
         on node 2, the board owned by node 0. Every change is committed to Postgres before anyone sees it, on 1 \
         node as on 3. Failover: one kill -9 of the owner (one sample), lease {lease_ms} ms.\n"
    );
    println!(
        "Throughput: {writers} writers on the same board (Write phase), each in a closed loop on its own desk: a \
         change, then the next once the server acknowledged it (stored it: its heads include the change) and at \
         least 6 ms after the last began (under the server's 200 messages a second per connection), all at \
         once for {seconds} s after {WARM_UP_DRAFTS} new drafts each (not counted). A change is a new draft \
         (`write`) while the writer's desk holds fewer than {DRAFTS_PER_DESK}, then a new text for one of its \
         drafts (`edit_draft`, in turn). Round trip: from making the change until its acknowledgement. On 1 node \
         all writers are on node 0; on 3 nodes half are on node 1 and half on node 2 (the board owned by node 0), \
         so every change is forwarded to the owner.\n"
    );
    println!("| measure | 1 node | 3 nodes |\n|---|---|---|");
    println!("| propagation p50 (ms) | {one50:.2} | {three50:.2} |");
    println!("| propagation p90 (ms) | {one90:.2} | {three90:.2} |");
    println!("| propagation p99 (ms) | {:.2} | {:.2} |", p99(&one), p99(&three));
    println!("| overhead of 3 nodes at p50 (ms) | | {:.2} |", three50 - one50);
    println!("| paced: frames forwarded to the owner by nodes 1 and 2 (per s) | | {} |", per(forwarded));
    println!("| paced: frames returned from the owner by nodes 1 and 2 (per s) | | {} |", per(returned));
    println!(
        "| throughput: accepted changes per second, {writers} writers | {:.0} | {:.0} |",
        busy_one.rate(),
        busy_three.rate()
    );
    println!(
        "| throughput: accepted changes per second per writer (at most 166: one change every 6 ms) | {:.0} | {:.0} |",
        busy_one.rate() / writers as f64,
        busy_three.rate() / writers as f64
    );
    println!("| throughput: changes accepted (new drafts + edits) | {} | {} |", busy_one.split(), busy_three.split());
    println!("| throughput: round trip p50 (ms) | {busy50_one:.2} | {busy50_three:.2} |");
    println!(
        "| throughput: round trip p99 (ms) | {:.2} | {:.2} |",
        p99(&busy_one.round_trips),
        p99(&busy_three.round_trips)
    );
    println!(
        "| throughput: frames forwarded to the owner by nodes 1 and 2 (per s) | | {} |",
        busy_frames(busy_three.forwarded)
    );
    println!(
        "| throughput: frames returned from the owner by nodes 1 and 2 (per s) | | {} |",
        busy_frames(busy_three.returned)
    );
    println!("| failover: kill -9 of the owner until the writer's change is accepted (ms) | | {accepted:.0} |");
    println!("| failover: kill -9 of the owner until the reader has it (ms) | | {seen:.0} |");
    let rss_three: Vec<String> = rss_three.iter().map(|m| format!("{m:.1}")).collect();
    println!("| RSS after the run, node 0 / 1 / 2 (MiB) | {rss_one:.1} | {} |", rss_three.join(" / "));
    Ok(())
}

/// What the throughput phase measured.
struct Throughput {
    /// The round trip of every accepted change, in ms.
    round_trips: Vec<f64>,
    /// How many of them were new drafts (the others edited one).
    drafts: usize,
    /// From the common start until the last writer's last change was accepted, in s.
    wall: f64,
    /// The frames nodes 1 and 2 forwarded to the owner meanwhile, and returned from it (0 on one
    /// node).
    forwarded: f64,
    returned: f64,
}

impl Throughput {
    /// Accepted changes per second, all writers together.
    fn rate(&self) -> f64 {
        self.round_trips.len() as f64 / self.wall
    }

    fn split(&self) -> String {
        let changes = self.round_trips.len();
        format!("{changes} ({} + {})", self.drafts, changes - self.drafts)
    }
}

/// One writer of the throughput phase: a participant writing on their own desk.
struct Writer {
    participant: Participant,
    node: usize,
    column: String,
    /// The drafts on the desk, by id, in the order written.
    drafts: Vec<String>,
    /// Changes made so far, accepted ones (every change must be).
    made: usize,
}

impl Writer {
    /// Makes one change and waits until the server stored it: a new draft while the desk holds
    /// fewer than [`DRAFTS_PER_DESK`], else a new text for one of the drafts, in turn. True for
    /// a new draft.
    async fn change(&mut self) -> anyhow::Result<bool> {
        let text = format!("{}: change {}", self.participant.name(), self.made);
        let new = self.drafts.len() < DRAFTS_PER_DESK;
        if new {
            let id = self.participant.write(&self.column, &text).await?;
            self.drafts.push(id);
        } else {
            let id = &self.drafts[self.made % self.drafts.len()];
            self.participant.edit_draft(id, &text).await?;
        }
        self.made += 1;
        Ok(new)
    }

    /// Wraps an error with who failed where, so that a writer the server closed shows.
    fn failed(&self, e: anyhow::Error) -> anyhow::Error {
        let name = self.participant.name().to_owned();
        e.context(format!("{name} on node {} failed after {} accepted changes", self.node, self.made))
    }
}

/// The throughput phase: one writer per entry of `nodes`, joined to `board` on that node, warm
/// up with [`WARM_UP_DRAFTS`] new drafts each, then all write at once in closed loops until
/// `span` is over. Every change must be accepted; a writer that fails (the server closed its
/// connection, say) fails the run, with every writer's error.
async fn throughput(
    cluster: &ClusterUnderTest,
    board: DocumentId,
    nodes: &[usize],
    span: Duration,
) -> anyhow::Result<Throughput> {
    let mut writers = Vec::with_capacity(nodes.len());
    for (i, &node) in nodes.iter().enumerate() {
        let participant = Participant::join(cluster.node(node), board, &format!("Writer {i}")).await?;
        let column = participant.board().columns.first().context("the board has no column")?.id.clone();
        writers.push(Writer { participant, node, column, drafts: Vec::new(), made: 0 });
    }

    let warm_up = writers.into_iter().map(|mut writer| {
        tokio::spawn(async move {
            for _ in 0..WARM_UP_DRAFTS {
                writer.change().await.map_err(|e| writer.failed(e.context("warming up")))?;
            }
            anyhow::Ok(writer)
        })
    });
    let writers = settle(warm_up.collect()).await?;

    let counted = nodes.iter().any(|&node| node != 0);
    let before = if counted { frames(cluster).await? } else { (0.0, 0.0) };
    let started = Instant::now();
    let deadline = started + span;
    let runs = writers.into_iter().map(|mut writer| {
        tokio::spawn(async move {
            let (mut round_trips, mut drafts) = (Vec::new(), 0);
            while Instant::now() < deadline {
                let sent = Instant::now();
                let new = writer.change().await.map_err(|e| writer.failed(e))?;
                round_trips.push(sent.elapsed().as_secs_f64() * 1000.0);
                drafts += usize::from(new);
                // At most one change per `MIN_GAP`: under the server's 200 messages a second
                // per connection on any machine.
                tokio::time::sleep_until((sent + MIN_GAP).into()).await;
            }
            anyhow::Ok((writer, round_trips, drafts))
        })
    });
    let runs = settle(runs.collect()).await?;
    let wall = started.elapsed().as_secs_f64();
    let after = if counted { frames(cluster).await? } else { (0.0, 0.0) };

    let mut measured = Throughput { round_trips: Vec::new(), drafts: 0, wall, forwarded: 0.0, returned: 0.0 };
    (measured.forwarded, measured.returned) = (after.0 - before.0, after.1 - before.1);
    for (writer, round_trips, drafts) in runs {
        measured.round_trips.extend(round_trips);
        measured.drafts += drafts;
        writer.participant.close().await?;
    }
    Ok(measured)
}

/// Waits for every task; fails with every error if any failed.
async fn settle<T>(tasks: Vec<tokio::task::JoinHandle<anyhow::Result<T>>>) -> anyhow::Result<Vec<T>> {
    let (mut done, mut errors) = (Vec::with_capacity(tasks.len()), Vec::new());
    for task in tasks {
        match task.await {
            Ok(Ok(value)) => done.push(value),
            Ok(Err(e)) => errors.push(format!("{e:#}")),
            Err(e) => errors.push(format!("a writer's task failed: {e}")),
        }
    }
    if !errors.is_empty() {
        bail!("{} of {} writers failed:\n{}", errors.len(), done.len() + errors.len(), errors.join("\n"));
    }
    Ok(done)
}

/// The `q` quantile (nearest rank) of sorted values.
fn rank(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1]
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
