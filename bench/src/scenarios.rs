//! The measurements, each run against one freshly started server: propagation latency under a
//! steady write rate, the throughput a server sustains before p99 passes 100 ms, memory per
//! idle connection and per open board, and the cold load of a large board.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::client::{self, BoardSpec, Client, Tracker};
use crate::servers::{Kind, Launch, Server};

/// How long writes may take to land after the writers stop, before they count as missing.
const DRAIN: Duration = Duration::from_secs(10);

/// One propagation run.
#[derive(Debug, Clone)]
pub struct Propagation {
    pub kind: Kind,
    pub boards: usize,
    pub clients: usize,
    /// Writes per second per client.
    pub rate: f64,
    /// Notes on each board before the run.
    pub prefill: usize,
    pub seconds: f64,
    /// Writes that reached every other client of their board.
    pub delivered: u64,
    pub missing: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Server CPU, in percent of one core, during the run.
    pub cpu_percent: f64,
    pub peak_rss_mib: f64,
}

impl Propagation {
    /// Writes per second that reached everyone.
    pub fn throughput(&self) -> f64 {
        self.delivered as f64 / self.seconds
    }

    /// True when the run kept up: p99 under `limit_ms` and (nearly) nothing missing.
    pub fn kept_up(&self, limit_ms: f64) -> bool {
        self.p99_ms <= limit_ms && self.missing as f64 <= 0.01 * (self.delivered + self.missing) as f64
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// How many notes one filler writes: under Hindsight's limit of 200 per person.
const NOTES_PER_FILLER: usize = 150;

/// Puts `notes` notes on a board (already in Group on Hindsight), written by as many
/// participants as a board of that size would have, each note its own change.
async fn prefill(spec: &BoardSpec, notes: usize, tracker: &Arc<Tracker>) -> anyhow::Result<()> {
    let mut written = 0;
    let mut filler = 1_000_000;
    while written < notes {
        let count = NOTES_PER_FILLER.min(notes - written);
        let mut client = Client::open(filler, spec, false, Arc::clone(tracker)).await?;
        written += count;
        client.fill(count, written).await.context("filling the board")?;
        filler += 1;
    }
    Ok(())
}

/// Opens `boards` boards with `clients` clients each (on Hindsight the first client of each board
/// facilitates and moves it to Group), `prefill` notes on each. Every board is filled before any
/// client opens: a client that reads nothing for a minute would be dropped as idle (it answers no
/// pings), and filling many boards takes longer than that.
async fn open_boards(
    server: &Server,
    boards: usize,
    clients: usize,
    prefill: usize,
    tracker: &Arc<Tracker>,
) -> anyhow::Result<Vec<Vec<Client>>> {
    let name = server.kind.name();
    let mut specs = Vec::with_capacity(boards);
    let mut next = 0u32;
    for _ in 0..boards {
        let spec: BoardSpec = client::create_board(server.kind, &server.ws_url(), &server.http_url())
            .await
            .with_context(|| format!("{name}: creating a board"))?;
        if server.kind == Kind::Hindsight {
            let mut first = Client::open(next, &spec, true, Arc::clone(tracker))
                .await
                .with_context(|| format!("{name}: opening a board"))?;
            next += 1;
            first.start_grouping().await.context("moving to Group")?;
        }
        if prefill > 0 {
            self::prefill(&spec, prefill, tracker).await?;
        }
        specs.push(spec);
    }
    let mut all = Vec::with_capacity(boards);
    for spec in &specs {
        let mut board = Vec::with_capacity(clients);
        for i in 0..clients {
            let client = Client::open(next, spec, i == 0, Arc::clone(tracker))
                .await
                .with_context(|| format!("{name}: client {next} joining"))?;
            board.push(client);
            next += 1;
        }
        all.push(board);
    }
    Ok(all)
}

/// Every client writes `rate` times a second for `seconds`; reports how long each write took to
/// reach every other client of its board.
pub async fn propagation(
    launch: &Launch,
    kind: Kind,
    boards: usize,
    clients: usize,
    rate: f64,
    prefill: usize,
    seconds: f64,
) -> anyhow::Result<Propagation> {
    let server = Server::start(kind, launch).await?;
    let tracker = Arc::new(Tracker::default());
    let all = open_boards(&server, boards, clients, prefill, &tracker).await?;
    tracker.take();

    let writing = CancellationToken::new();
    let done = CancellationToken::new();
    let receivers = clients.saturating_sub(1) as u32;
    let period = 1.0 / rate.max(0.001);
    let started = Instant::now();
    let before = server.sample();
    let mut tasks = Vec::new();
    for (i, client) in all.into_iter().flatten().enumerate() {
        // Spread the writers over one period, so the load is steady rather than in waves.
        let offset = Duration::from_secs_f64(period * (i as f64 * 0.618_034).fract());
        tasks.push(tokio::spawn(client.run(rate, offset, receivers, writing.clone(), done.clone())));
    }
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    writing.cancel();
    let elapsed = started.elapsed().as_secs_f64();
    let after = server.sample();
    let drain_until = Instant::now() + DRAIN;
    while tracker.in_flight() > 0 && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    done.cancel();
    for task in tasks {
        task.await.context("a client task panicked")??;
    }
    let (histogram, delivered, missing) = tracker.take();
    let ms = |us: u64| us as f64 / 1000.0;
    let result = Propagation {
        kind,
        boards,
        clients,
        rate,
        prefill,
        seconds: elapsed,
        delivered,
        missing,
        p50_ms: ms(histogram.value_at_quantile(0.50)),
        p99_ms: ms(histogram.value_at_quantile(0.99)),
        max_ms: ms(histogram.max()),
        cpu_percent: (after.cpu_seconds - before.cpu_seconds) / elapsed * 100.0,
        peak_rss_mib: mib(after.peak_rss_kib),
    };
    server.stop().await;
    Ok(result)
}

/// The most writes per second a server delivers with p99 under 100 ms: raises the rate per
/// client step by step on `boards` × `clients` until p99 passes 100 ms (or writes go missing).
pub async fn throughput(
    launch: &Launch,
    kind: Kind,
    boards: usize,
    clients: usize,
    rates: &[f64],
    seconds: f64,
) -> anyhow::Result<(Option<Propagation>, Vec<Propagation>)> {
    let mut best: Option<Propagation> = None;
    let mut steps = Vec::new();
    for &rate in rates {
        let run = propagation(launch, kind, boards, clients, rate, 0, seconds).await?;
        eprintln!(
            "  {} {boards}x{clients} at {rate}/s each: {:.0} writes/s delivered, p99 {:.1} ms, missing {}",
            kind.name(),
            run.throughput(),
            run.p99_ms,
            run.missing
        );
        let kept_up = run.kept_up(100.0);
        steps.push(run.clone());
        if !kept_up {
            break;
        }
        best = Some(run);
    }
    Ok((best, steps))
}

/// Memory per idle connection: `n` viewers, each syncing one of `boards` small boards, then idle.
pub async fn idle_connections(launch: &Launch, kind: Kind, n: usize, boards: usize) -> anyhow::Result<(f64, f64)> {
    let server = Server::start(kind, launch).await?;
    let tracker = Arc::new(Tracker::default());
    let mut specs = Vec::new();
    for _ in 0..boards {
        specs.push(client::create_board(kind, &server.ws_url(), &server.http_url()).await?);
    }
    // Load every board once, so the measurement counts connections, not boards.
    let mut warm = Vec::new();
    for spec in &specs {
        warm.push(Client::view(u32::MAX - 1, spec, Arc::clone(&tracker)).await?);
    }
    let before = server.sample();
    let mut clients = Vec::with_capacity(n);
    for i in 0..n {
        clients.push(Client::view(i as u32, &specs[i % boards], Arc::clone(&tracker)).await?);
    }
    // Let the server settle (buffers, allocator) before reading its memory.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = server.sample();
    let per_connection_kib = after.rss_kib.saturating_sub(before.rss_kib) as f64 / n as f64;
    drop(clients);
    drop(warm);
    server.stop().await;
    Ok((per_connection_kib, mib(after.rss_kib)))
}

/// Memory per open board: `boards` boards of `notes` notes, one client each.
pub async fn per_board(launch: &Launch, kind: Kind, boards: usize, notes: usize) -> anyhow::Result<f64> {
    let server = Server::start(kind, launch).await?;
    let tracker = Arc::new(Tracker::default());
    let before = server.sample();
    let open = open_boards(&server, boards, 1, notes, &tracker).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = server.sample();
    drop(open);
    server.stop().await;
    Ok(after.rss_kib.saturating_sub(before.rss_kib) as f64 / boards as f64)
}

/// Cold load of a board of `notes` notes, each written by its own change: the server restarts
/// (nothing in memory), a client asks for the board; the time until it has every note. The
/// median of `tries` restarts, in milliseconds.
pub async fn cold_load(launch: &Launch, kind: Kind, notes: usize, tries: usize) -> anyhow::Result<f64> {
    let mut server = Server::start(kind, launch).await?;
    let tracker = Arc::new(Tracker::default());
    let spec = client::create_board(kind, &server.ws_url(), &server.http_url()).await?;
    let mut facilitator = Client::open(0, &spec, true, Arc::clone(&tracker)).await?;
    if kind == Kind::Hindsight {
        facilitator.start_grouping().await?;
    }
    prefill(&spec, notes, &tracker).await?;
    drop(facilitator);
    let mut times = Vec::new();
    for _ in 0..tries {
        server = server.restart().await?;
        let started = Instant::now();
        let mut reader = Client::view(1, &spec, Arc::clone(&tracker)).await?;
        let deadline = started + Duration::from_secs(60);
        while reader.board_notes() < notes {
            if Instant::now() > deadline {
                anyhow::bail!(
                    "{}: after a restart the board has {} of {notes} notes",
                    kind.name(),
                    reader.board_notes()
                );
            }
            let _ = tokio::time::timeout_at(deadline, reader.receive_one()).await;
        }
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    server.stop().await;
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// The server's CPU per accepted change on a board of a given size.
#[derive(Debug, Clone)]
pub struct Validation {
    pub notes: usize,
    pub clusters: usize,
    pub actions: usize,
    /// Server CPU (all threads) per accepted change, in microseconds.
    pub cpu_us: f64,
    /// The acknowledgement's round trip as the participant saw it, median, in milliseconds.
    pub ack_ms: f64,
}

/// One participant (the facilitator, alone on the board) edits action items `changes` times (a
/// different item each time, round the board), each change waiting for its acknowledgement, on a board of `notes` notes, `clusters` clusters
/// and `actions` action items; the server's CPU time per change. Hindsight only.
pub async fn validation(
    launch: &Launch,
    notes: usize,
    clusters: usize,
    actions: usize,
    changes: usize,
) -> anyhow::Result<Validation> {
    use hindsight_shared::edit;
    use hindsight_shared::schema::{ActionItem, Phase};
    let server = Server::start(Kind::Hindsight, launch).await?;
    let tracker = Arc::new(Tracker::default());
    let spec = client::create_board(Kind::Hindsight, &server.ws_url(), &server.http_url()).await?;
    let mut facilitator = Client::open(0, &spec, true, Arc::clone(&tracker)).await?;
    facilitator.start_grouping().await?;
    if notes > 0 {
        prefill(&spec, notes, &tracker).await?;
    }
    // Clusters and action items in changes of at most 3,000 objects (the server takes at most
    // 10,000 operations in one change).
    for start in (0..clusters).step_by(3_000) {
        facilitator
            .change_board(|tx| {
                let parent = hindsight_shared::schema::root_map(tx, "clusters")?;
                for n in start..(start + 3_000).min(clusters) {
                    let id = format!("c{n}");
                    let cluster = automerge::transaction::Transactable::put_object(
                        tx,
                        &parent,
                        id.as_str(),
                        automerge::ObjType::Map,
                    )?;
                    automerge::transaction::Transactable::put(tx, &cluster, "id", id.as_str())?;
                    automerge::transaction::Transactable::put(tx, &cluster, "title", format!("Cause {n}"))?;
                }
                Ok(())
            })
            .await?;
    }
    facilitator.change_board(|tx| edit::set_phase(tx, Phase::Actions)).await?;
    let item = |n: usize, text: String| ActionItem {
        id: format!("a{n}"),
        text,
        owner: "Sam".into(),
        due: String::new(),
        cluster: None,
    };
    for start in (0..actions.max(1)).step_by(1_500) {
        facilitator
            .change_board(|tx| {
                for n in start..(start + 1_500).min(actions.max(1)) {
                    edit::put_action(tx, &item(n, format!("Action {n}")))?;
                }
                Ok(())
            })
            .await?;
    }
    // Warm up, then measure.
    let items = actions.max(1);
    for n in 0..20 {
        facilitator.change_board(|tx| edit::put_action(tx, &item(n % items, format!("Warm-up {n}")))).await?;
    }
    if std::env::var_os("BENCH_VERBOSE").is_some() {
        eprintln!("measuring the validation cost on {notes} notes: server pid {:?}", server.pid());
    }
    let before = server.sample();
    let mut acks = Vec::with_capacity(changes);
    for n in 0..changes {
        let started = Instant::now();
        facilitator.change_board(|tx| edit::put_action(tx, &item(n % items, format!("Edit {n}")))).await?;
        acks.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let after = server.sample();
    server.stop().await;
    acks.sort_by(f64::total_cmp);
    Ok(Validation {
        notes,
        clusters,
        actions,
        cpu_us: (after.cpu_seconds - before.cpu_seconds) * 1e6 / changes as f64,
        ack_ms: acks[acks.len() / 2],
    })
}
