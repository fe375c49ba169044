//! `hindsight-bench`: measures Hindsight beside the reference automerge-repo sync server, in the
//! same run, on the same machine, with the same workload, and prints the tables with ratios.
//!
//! Run it with `just bench` (which builds both, pins each server to CPU 0 and this generator to
//! CPU 1). `--quick` is a one-minute smoke run with small sizes.
//!
//! # Layout
//! - [`servers`]: starting, measuring and restarting the two servers.
//! - [`client`]: an automerge-repo peer that writes notes and times their arrival elsewhere.
//! - [`scenarios`]: the measurements.
//!
//! Invariant: the bench never links the server crate; it speaks the wire protocol and HTTP like any
//! other client, so it measures what a client sees (tidy: bench-is-a-client).

mod client;
mod scenarios;
mod servers;

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Parser;

use crate::scenarios::Propagation;
use crate::servers::{Kind, Launch};

/// Benchmarks Hindsight against the reference automerge-repo sync server.
#[derive(Debug, Parser)]
struct Args {
    /// Hindsight's release binary.
    #[arg(long)]
    hindsight_bin: PathBuf,
    /// The folder with the reference server's `server.mjs` and its `node_modules`.
    #[arg(long, default_value = "bench/reference")]
    reference_dir: PathBuf,
    /// The CPU to pin each server to (the generator should run on another).
    #[arg(long)]
    server_cpu: Option<usize>,
    /// A short smoke run with small sizes.
    #[arg(long)]
    quick: bool,
    /// Also write the report to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Only these servers (default: both).
    #[arg(long, value_delimiter = ',')]
    servers: Vec<Kind>,
    /// Only these parts (default: all): headline, ramp, memory, cold, growth, validation.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Seconds per latency run (default: 20, or 5 with --quick).
    #[arg(long)]
    seconds: Option<f64>,
    /// The headline load as boards,clients,writes-per-second (default: 100,20,1).
    #[arg(long, value_delimiter = ',')]
    headline: Vec<f64>,
}

/// The sizes of one run.
struct Plan {
    headline: (usize, usize, f64),
    seconds: f64,
    growth: Vec<(usize, usize, f64, usize)>,
    ramp: (usize, usize, Vec<f64>),
    idle: (usize, usize),
    boards: (usize, usize),
    cold: (usize, usize),
    /// Boards for the validation cost: (notes, clusters, action items), and changes measured.
    validation: (Vec<(usize, usize, usize)>, usize),
}

impl Plan {
    fn full() -> Self {
        Self {
            headline: (100, 20, 1.0),
            seconds: 20.0,
            growth: vec![
                (10, 10, 1.0, 0),
                (50, 10, 1.0, 0),
                (100, 10, 1.0, 0),
                (10, 5, 1.0, 0),
                (10, 20, 1.0, 0),
                (10, 40, 1.0, 0),
                (10, 10, 1.0, 1000),
                (10, 10, 1.0, 5000),
            ],
            ramp: (10, 10, vec![0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0]),
            idle: (10_000, 20),
            boards: (200, 20),
            cold: (5000, 3),
            validation: (vec![(0, 100, 0), (0, 600, 0), (0, 600, 1500), (5000, 600, 1500)], 500),
        }
    }

    fn quick() -> Self {
        Self {
            headline: (10, 5, 1.0),
            seconds: 5.0,
            growth: vec![(5, 5, 1.0, 0), (5, 5, 1.0, 200)],
            ramp: (4, 5, vec![2.0, 8.0]),
            idle: (500, 5),
            boards: (20, 10),
            cold: (1000, 1),
            validation: (vec![(0, 100, 0), (1000, 600, 1500)], 100),
        }
    }
}

/// The machine's CPUs, whatever this process is pinned to (`available_parallelism` counts only
/// the CPUs it may run on).
fn cpus_online() -> usize {
    std::fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|list| {
            list.trim()
                .split(',')
                .map(|range| match range.split_once('-') {
                    Some((a, b)) => Some(b.parse::<usize>().ok()? - a.parse::<usize>().ok()? + 1),
                    None => range.parse::<usize>().ok().map(|_| 1),
                })
                .sum::<Option<usize>>()
        })
        .unwrap_or(0)
}

fn ratio(ours: f64, theirs: f64) -> String {
    if ours <= 0.0 || theirs <= 0.0 { "–".into() } else { format!("{:.1}×", theirs / ours) }
}

fn latency_row(out: &mut String, run: &Propagation) {
    let _ = writeln!(
        out,
        "| {} | {}×{} @ {}/s, {} notes | {:.0} | {:.1} | {:.1} | {:.1} | {} | {:.0}% | {:.0} |",
        run.kind.name(),
        run.boards,
        run.clients,
        run.rate,
        run.prefill,
        run.throughput(),
        run.p50_ms,
        run.p99_ms,
        run.max_ms,
        run.missing,
        run.cpu_percent,
        run.peak_rss_mib
    );
}

const LATENCY_HEADER: &str = "| server | boards×clients @ writes/s each, notes before | writes/s delivered | p50 ms | p99 ms | max ms | missing | server CPU | peak RSS MiB |\n|---|---|---|---|---|---|---|---|---|\n";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let launch = Launch { hindsight_bin: args.hindsight_bin, reference_dir: args.reference_dir, cpu: args.server_cpu };
    let mut plan = if args.quick { Plan::quick() } else { Plan::full() };
    if let Some(seconds) = args.seconds {
        plan.seconds = seconds;
    }
    if let [boards, clients, rate] = args.headline[..] {
        plan.headline = (boards as usize, clients as usize, rate);
    }
    let kinds: Vec<Kind> =
        if args.servers.is_empty() { vec![Kind::Hindsight, Kind::Reference] } else { args.servers.clone() };
    let part = |name: &str| args.only.is_empty() || args.only.iter().any(|p| p == name);

    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Benchmark: Hindsight vs the automerge-repo sync server\n\n{} CPUs online; servers pinned to CPU {}, the load generator on the other; {}.\n",
        cpus_online(),
        launch.cpu.map_or("(none)".to_owned(), |c| c.to_string()),
        if args.quick { "quick run" } else { "full run" },
    );
    print!("{out}");
    // The headline load goes last: 2,000 clients leave the generator's heap large and slow for
    // what follows (measured: the ramp's p99 at 1 write/s went from 5 ms to 138 ms after it).
    for name in ["validation", "ramp", "memory", "cold", "growth", "headline"] {
        if !part(name) {
            continue;
        }
        let mut section = String::new();
        match name {
            "ramp" => ramp(&launch, &plan, &kinds, &mut section).await?,
            "memory" => memory(&launch, &plan, &kinds, &mut section).await?,
            "cold" => cold(&launch, &plan, &kinds, &mut section).await?,
            "growth" => growth(&launch, &plan, &kinds, &mut section).await?,
            "validation" => validation(&launch, &plan, &mut section).await?,
            _ => headline(&launch, &plan, &kinds, &mut section).await?,
        }
        print!("{section}");
        out.push_str(&section);
    }
    if let Some(path) = args.out {
        std::fs::write(&path, &out)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

async fn headline(launch: &Launch, plan: &Plan, kinds: &[Kind], out: &mut String) -> anyhow::Result<()> {
    eprintln!("propagation latency, headline load...");
    let (b, c, r) = plan.headline;
    let mut runs = Vec::new();
    for &kind in kinds {
        runs.push(scenarios::propagation(launch, kind, b, c, r, 0, plan.seconds).await?);
    }
    let _ = writeln!(out, "### Propagation latency ({b} boards × {c} clients, each writing {r}/s)\n");
    out.push_str(LATENCY_HEADER);
    for run in &runs {
        latency_row(out, run);
    }
    if let [ours, theirs] = &runs[..] {
        // A latency over the few writes that arrived says nothing when most never did.
        let delivered = |run: &Propagation| run.delivered as f64 / (run.delivered + run.missing).max(1) as f64;
        let latency = if delivered(theirs) < 0.99 || delivered(ours) < 0.99 {
            format!(
                "– (writes delivered to every peer: Hindsight {:.0}%, reference {:.0}%)",
                100.0 * delivered(ours),
                100.0 * delivered(theirs)
            )
        } else {
            ratio(ours.p99_ms, theirs.p99_ms)
        };
        let _ = writeln!(
            out,
            "\nRatio (reference / Hindsight): p99 latency {latency}, peak memory {}.\n",
            ratio(ours.peak_rss_mib, theirs.peak_rss_mib)
        );
    }
    Ok(())
}

async fn ramp(launch: &Launch, plan: &Plan, kinds: &[Kind], out: &mut String) -> anyhow::Result<()> {
    eprintln!("throughput ramp...");
    let (b, c, rates) = &plan.ramp;
    let mut best = Vec::new();
    for &kind in kinds {
        let (top, _) = scenarios::throughput(launch, kind, *b, *c, rates, plan.seconds.min(10.0)).await?;
        best.push((kind, top));
    }
    let _ = writeln!(out, "### Sustained throughput ({b} boards × {c} clients, p99 ≤ 100 ms)\n");
    out.push_str("| server | writes/s delivered | at writes/s per client | p99 ms | server CPU | peak RSS MiB |\n|---|---|---|---|---|---|\n");
    for (kind, top) in &best {
        match top {
            Some(run) => {
                let _ = writeln!(
                    out,
                    "| {} | {:.0} | {} | {:.1} | {:.0}% | {:.0} |",
                    kind.name(),
                    run.throughput(),
                    run.rate,
                    run.p99_ms,
                    run.cpu_percent,
                    run.peak_rss_mib
                );
            }
            None => {
                let _ = writeln!(out, "| {} | below the first step | – | – | – | – |", kind.name());
            }
        }
    }
    if let [(_, Some(ours)), (_, Some(theirs))] = &best[..] {
        let _ = writeln!(
            out,
            "\nRatio (Hindsight / reference): throughput {:.1}×, at {} the reference's peak memory.\n",
            ours.throughput() / theirs.throughput(),
            ratio(theirs.peak_rss_mib, ours.peak_rss_mib)
        );
    }
    Ok(())
}

async fn memory(launch: &Launch, plan: &Plan, kinds: &[Kind], out: &mut String) -> anyhow::Result<()> {
    eprintln!("memory...");
    let (n, boards) = plan.idle;
    let (m, notes) = plan.boards;
    let _ = writeln!(
        out,
        "### Memory\n\n| server | per idle connection ({n} over {boards} boards) | RSS with them | per open board ({m} boards of {notes} notes) |\n|---|---|---|---|"
    );
    for &kind in kinds {
        let (per_connection, total) = scenarios::idle_connections(launch, kind, n, boards).await?;
        let per_board = scenarios::per_board(launch, kind, m, notes).await?;
        let _ =
            writeln!(out, "| {} | {:.1} KiB | {:.0} MiB | {:.0} KiB |", kind.name(), per_connection, total, per_board);
    }
    out.push('\n');
    Ok(())
}

async fn cold(launch: &Launch, plan: &Plan, kinds: &[Kind], out: &mut String) -> anyhow::Result<()> {
    eprintln!("cold load...");
    let (notes, tries) = plan.cold;
    let _ = writeln!(
        out,
        "### Cold load of a {notes}-note board (each note its own change), from storage after a restart\n\n| server | time to a client holding every note (median of {tries}) |\n|---|---|"
    );
    for &kind in kinds {
        let ms = scenarios::cold_load(launch, kind, notes, tries).await?;
        let _ = writeln!(out, "| {} | {ms:.0} ms |", kind.name());
    }
    out.push('\n');
    Ok(())
}

async fn validation(launch: &Launch, plan: &Plan, out: &mut String) -> anyhow::Result<()> {
    eprintln!("validation cost...");
    let (boards, changes) = &plan.validation;
    let _ = writeln!(
        out,
        "### Server CPU per accepted change, by board size (Hindsight; one participant, {changes} changes, each waiting for its acknowledgement)\n\n| board | server CPU per change | acknowledgement (median) |\n|---|---|---|"
    );
    for &(notes, clusters, actions) in boards {
        let run = scenarios::validation(launch, notes, clusters, actions, *changes).await?;
        let _ = writeln!(
            out,
            "| {} notes, {} clusters, {} action items | {:.0} µs | {:.1} ms |",
            run.notes, run.clusters, run.actions, run.cpu_us, run.ack_ms
        );
    }
    out.push('\n');
    Ok(())
}

async fn growth(launch: &Launch, plan: &Plan, kinds: &[Kind], out: &mut String) -> anyhow::Result<()> {
    eprintln!("growth...");
    let _ = writeln!(out, "### How latency and cost grow with boards, clients and board size\n");
    out.push_str(LATENCY_HEADER);
    for &(b, c, r, prefill) in &plan.growth {
        for &kind in kinds {
            // A server that fails a step is a result, not the end of the run.
            match scenarios::propagation(launch, kind, b, c, r, prefill, plan.seconds.min(10.0)).await {
                Ok(run) => latency_row(out, &run),
                Err(e) => {
                    eprintln!("  {} {b}x{c} at {r}/s, {prefill} notes: failed: {e:#}", kind.name());
                    let _ = writeln!(
                        out,
                        "| {} | {b}×{c} @ {r}/s, {prefill} notes | failed: {e:#} | | | | | | |",
                        kind.name()
                    );
                }
            }
        }
    }
    Ok(())
}
