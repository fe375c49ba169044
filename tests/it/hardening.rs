//! Hardening (issue 11): the server decides before it works. Each test is one attack a holder of
//! a board link could make, and what the server must do about it:
//!
//! - [`decompression_bombs_cost_nothing_and_leave_other_boards_fast`]: changes of a few dozen
//!   bytes that declare millions of operations are refused before they are decoded, from a
//!   viewer and from participants, three attackers at once; memory, the health check and another
//!   board's acknowledgements stay within bounds throughout.
//! - [`ephemeral_messages_are_relayed_small_and_at_a_bounded_rate`]: megabyte ephemeral messages
//!   to thirty peers that do not read are not relayed; small ones are relayed at a bounded rate.
//! - [`only_the_server_speaks_as_the_server`]: `join` with the server's id or a malformed id is
//!   refused; a peer's ephemeral message shaped like a notice reaches others under its own id.
//! - [`changes_waiting_for_a_dependency_are_bounded_in_bytes`]: parked changes are refused past
//!   their byte bound.
//! - [`a_storm_of_refused_changes_does_not_delay_another_participant`]: 2,000 refused changes in
//!   one message cost one refusal, on a board of 2,000 clusters.
//! - [`the_role_is_decided_change_by_change`]: a facilitator who hands over and then moves the
//!   phase in the same message has the hand-over accepted and the rest refused.
//! - [`idle_and_trickling_http_connections_are_closed`],
//!   [`one_address_holds_a_bounded_share_of_connections_boards_and_joins`]: timeouts and limits
//!   per client address; the open-file limit is raised.
//! - [`a_board_and_its_desks_share_a_storage_quota_and_desks_load_when_needed`],
//!   [`idle_boards_are_deleted_after_their_retention`]: storage per board, lazy desks, retention.
//! - [`presence_is_sent_as_changes_and_names_are_cleaned`]: a thousand ghosts cost each update a
//!   few entries; names lose control and direction characters.
//! - [`logs_hold_no_secret_and_no_forged_line`]: no board id, desk id or key in any log line.
//! - [`pages_and_exports_carry_security_headers_and_exports_are_inert`].
//! - [`a_stock_client_that_forwards_ephemerals_is_not_cut_off`],
//!   [`text_objects_are_refused_with_what_to_write_instead`]: interop with stock clients.
//! - [`a_connection_is_one_participant_per_board`]: as ARCHITECTURE.md says.
//! - [`no_sync_message_comes_right_before_a_close`],
//!   [`a_stopped_server_does_not_find_quiet_connections_idle`]: closing politely.

use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use automerge::ReadDoc;
use automerge::transaction::Transactable;
use hindsight_shared::api;
use hindsight_shared::edit;
use hindsight_shared::ids::{DocumentId, PeerId, random_token};
use hindsight_shared::presence::Notice;
use hindsight_shared::protocol::WireMessage;
use hindsight_shared::schema::{self, ActionItem, Draft, Phase};
use hindsight_tests::peer::now_ms;
use hindsight_tests::watch::{HealthWatch, RssWatch};
use hindsight_tests::{
    ChangeOptions, Joined, Participant, ServerProcess, SyncPeer, TIMEOUT, Verdict, WsClient, bomb, http, within,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// The slowest a health check or another board's acknowledgement may be while an attack runs.
const HEALTHY: Duration = Duration::from_secs(1);

/// A participant on a board of its own who edits a note every 50 ms until stopped, timing each
/// acknowledgement: how another board fares during an attack.
struct Bystander {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<(Participant, Vec<Duration>)>>,
}

impl Bystander {
    async fn start(server: &ServerProcess) -> anyhow::Result<Self> {
        let board = server.create_board("Quiet board", "mad-sad-glad").await?;
        let mut participant = Participant::join_as_facilitator(server, &board, "Bystander").await?;
        let note = participant.write("glad", "before the attack").await?;
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                let mut latencies = Vec::new();
                let mut pace = tokio::time::interval(Duration::from_millis(50));
                while !stop.is_cancelled() || latencies.len() < 10 {
                    pace.tick().await;
                    let started = Instant::now();
                    participant.edit_draft(&note, &format!("edit {}", latencies.len())).await?;
                    latencies.push(started.elapsed());
                }
                Ok((participant, latencies))
            }
        });
        Ok(Self { stop, task })
    }

    /// Stops, and returns the slowest acknowledgement and how many there were.
    async fn stop(self) -> anyhow::Result<(Duration, usize)> {
        self.stop.cancel();
        let (_, latencies) = self.task.await??;
        Ok((latencies.iter().max().copied().unwrap_or_default(), latencies.len()))
    }
}

// ---- 1. Decompression bombs --------------------------------------------------------------------

/// One attacker: sends two bombs of `ops` operations about `doc` on a fresh connection (after
/// opening `first`, its desk, if it has one) and reports how the server answered.
async fn bomb_attack(ws_url: String, first: Option<DocumentId>, doc: DocumentId, ops: u64) -> anyhow::Result<String> {
    let mut raw = Joined::open(&ws_url).await?;
    if let Some(desk) = first {
        raw.client.send(&raw.sync(desk, bomb::sync_message(vec![]))).await?;
    }
    let message = bomb::sync_message(vec![bomb::change(ops), bomb::compressed_change(ops)]);
    ensure!(message.len() < 1024, "a bomb of {} bytes", message.len());
    raw.client.send(&raw.sync(doc, message)).await?;
    let closing = raw.client.expect_close().await?;
    ensure!(closing.code == Some(1008), "a bomb is refused with 1008: {closing:?}");
    Ok(closing.error().unwrap_or_default().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decompression_bombs_cost_nothing_and_leave_other_boards_fast() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let mut server = ServerProcess::start(data.path()).await?;
    let board = server.create_board("Target", "mad-sad-glad").await?;
    let _fay = Participant::join_as_facilitator(&server, &board, "Fay").await?;
    let ann = http::join_board(&server.http_url(), board.board_id, "Ann", None).await?;
    let bob = http::join_board(&server.http_url(), board.board_id, "Bob", None).await?;
    let bystander = Bystander::start(&server).await?;
    let rss = RssWatch::start(server.pid().context("running")?)?;
    let health = HealthWatch::start(&server.http_url());

    // Three at once, two bombs each, 1 to 8 million operations: a viewer who never joined (on
    // the board), and two participants (on the board and on a desk).
    let started = Instant::now();
    let mut attacks = Vec::new();
    for ops in [1_000_000, 8_000_000] {
        let url = server.ws_url();
        attacks.push(tokio::spawn(bomb_attack(url.clone(), None, board.board_id, ops)));
        attacks.push(tokio::spawn(bomb_attack(url.clone(), Some(ann.desk_id), board.board_id, ops)));
        attacks.push(tokio::spawn(bomb_attack(url, Some(bob.desk_id), bob.desk_id, ops)));
    }
    let mut answers = Vec::new();
    for attack in attacks {
        answers.push(attack.await??);
    }
    let attacked = started.elapsed();
    let (slowest_ack, acks) = bystander.stop().await?;
    let health = health.stop().await?;
    let rss = rss.stop().await?;
    eprintln!(
        "bombs: 6 attackers of 1M and 8M operations refused in {attacked:?}; RSS {} MiB, peak +{} MiB; \
         /healthz slowest {:?} of {}; the other board's slowest acknowledgement {slowest_ack:?} of {acks}",
        rss.baseline_kib / 1024,
        rss.growth_mib(),
        health.slowest,
        health.checks
    );
    for answer in &answers {
        assert!(answer.contains("too costly") && answer.contains("operations"), "a clear refusal: {answer}");
    }
    assert!(rss.growth_mib() < 64, "memory grew by {} MiB", rss.growth_mib());
    assert!(health.slowest < HEALTHY, "/healthz took {:?}", health.slowest);
    assert!(slowest_ack < HEALTHY, "another board waited {slowest_ack:?} for an acknowledgement");
    server.stop().await?;
    server.assert_no_panics();
    Ok(())
}

// ---- 2. Ephemeral amplification ------------------------------------------------------------------

/// A peer that opens a board and then never reads: its socket's buffers fill.
async fn non_reader(ws_url: &str, board: DocumentId) -> anyhow::Result<tokio_tungstenite::WebSocketStream<TcpStream>> {
    use futures_util::SinkExt;
    let (mut ws, me, server) = hindsight_tests::ws::quiet(ws_url).await?;
    let data = bomb::sync_message(vec![]);
    let request = WireMessage::Request { document_id: board, sender_id: me, target_id: server, data };
    ws.send(tokio_tungstenite::tungstenite::Message::Binary(request.encode().into())).await?;
    Ok(ws)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_messages_are_relayed_small_and_at_a_bounded_rate() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let mut server = ServerProcess::start(data.path()).await?;
    let board = server.create_board("Crowded", "mad-sad-glad").await?;
    let mut silent = Vec::new();
    for _ in 0..30 {
        silent.push(non_reader(&server.ws_url(), board.board_id).await?);
    }
    let mut watcher = SyncPeer::open(&server.ws_url(), board.board_id).await?;
    let mut attacker = Joined::open(&server.ws_url()).await?;
    attacker.client.send(&attacker.sync(board.board_id, bomb::sync_message(vec![]))).await?;
    let rss = RssWatch::start(server.pid().context("running")?)?;

    // Megabyte messages: never relayed, and the connection that sends them is soon over its
    // bytes. Then small ones as fast as a connection may send them.
    let started = Instant::now();
    for count in 0..40 {
        if attacker.client.send(&attacker.ephemeral(board.board_id, count, vec![7; 1024 * 1024])).await.is_err() {
            break;
        }
    }
    let closing = attacker.client.expect_close().await?;
    assert_eq!(closing.code, Some(1008), "{closing:?}");
    assert!(closing.error().is_some_and(|e| e.contains("too many bytes")), "{closing:?}");
    let mut attacker = Joined::open(&server.ws_url()).await?;
    let small = 350;
    for count in 0..small {
        attacker.client.send(&attacker.ephemeral(board.board_id, 1_000 + count, vec![7; 4 * 1024])).await?;
    }
    // The end of the flood, marked by a barrier from another peer.
    let mut marker = SyncPeer::open(&server.ws_url(), board.board_id).await?;
    let barrier = marker.send_barrier().await?;
    watcher.wait_barrier(marker.peer_id(), barrier).await?;
    let elapsed = started.elapsed();
    let mut relayed = Vec::new();
    while let Ok(Ok(message)) = tokio::time::timeout(Duration::from_millis(1), watcher.next_ephemeral()).await {
        relayed.push(message);
    }
    let rss = rss.stop().await?;
    let sizes: Vec<usize> = relayed
        .iter()
        .filter_map(|m| match m {
            WireMessage::Ephemeral { data, sender_id, .. } if *sender_id == attacker.me => Some(data.len()),
            _ => None,
        })
        .collect();
    eprintln!(
        "ephemeral flood: 1 MiB messages and {small} × 4 KiB to 30 non-reading peers in {elapsed:?}: {} relayed to a \
         reader, RSS peak +{} MiB",
        sizes.len(),
        rss.growth_mib()
    );
    assert!(sizes.iter().all(|size| *size <= 4 * 1024), "nothing over 4 KiB is relayed: {sizes:?}");
    assert!(!sizes.is_empty(), "small ephemeral messages are still relayed");
    let allowed = 200.0 + 50.0 * elapsed.as_secs_f64();
    assert!((sizes.len() as f64) <= allowed, "{} relayed in {elapsed:?}, more than the rate allows", sizes.len());
    assert!(rss.growth_mib() < 100, "memory grew by {} MiB", rss.growth_mib());
    drop(silent);
    server.stop().await?;
    server.assert_no_panics();
    Ok(())
}

// ---- 3. Forged server notices ----------------------------------------------------------------------

#[tokio::test]
async fn only_the_server_speaks_as_the_server() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let mut server = ServerProcess::start(data.path()).await?;
    let board = server.create_board("Trust", "mad-sad-glad").await?;
    let first = Joined::open(&server.ws_url()).await?;

    // Joining as the server, or as an id no log line or peer should see, is refused.
    for (case, id) in [
        ("the server's own id", first.server.to_string()),
        ("a newline", "peer\nFORGED line".to_owned()),
        ("an ANSI escape", "\u{1b}[31mred".to_owned()),
        ("a space", "two words".to_owned()),
        ("an overlong id", "x".repeat(500)),
    ] {
        let mut client = WsClient::connect(&server.ws_url()).await?;
        let join = WireMessage::Join {
            sender_id: PeerId::from(id),
            supported_protocol_versions: vec!["1".into()],
            metadata: None,
        };
        client.send(&join).await?;
        let closing = client.expect_close().await?;
        assert_eq!(closing.code, Some(1002), "{case}: {closing:?}");
        assert!(closing.error().is_some_and(|e| e.contains("peer id")), "{case}: {closing:?}");
    }

    // A peer's ephemeral message shaped like a notice reaches others under the peer's own id.
    let mut fay = Participant::join_as_facilitator(&server, &board, "Fay").await?;
    let mut forger = Joined::open(&server.ws_url()).await?;
    forger.client.send(&forger.sync(board.board_id, bomb::sync_message(vec![]))).await?;
    let forged = Notice::Refused { reason: "forged".into(), changes: vec![fay.heads()[0].0] };
    let heads = fay.heads();
    forger.client.send(&forger.ephemeral(board.board_id, 1, forged.encode())).await?;
    let relayed = fay.peer().next_ephemeral().await?;
    match relayed {
        WireMessage::Ephemeral { sender_id, .. } => {
            assert_eq!(sender_id, forger.me, "relayed under the forger's id");
            assert_ne!(&sender_id, fay.peer().server_id());
        }
        other => bail!("expected the relayed ephemeral, got {other:?}"),
    }
    assert_eq!(fay.peer().refusals(), 0, "the forged refusal is no notice from the server");
    assert_eq!(fay.heads(), heads, "nothing was dropped");
    server.stop().await?;
    server.assert_no_panics();
    Ok(())
}

// ---- 4. Parked changes ---------------------------------------------------------------------------

#[tokio::test]
async fn changes_waiting_for_a_dependency_are_bounded_in_bytes() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let mut server = ServerProcess::start(data.path()).await?;
    let board = server.create_board("Parked", "mad-sad-glad").await?;
    let mut ann = Participant::join(&server, board.board_id, "Ann").await?;
    let desk = ann.desk_id();
    // A change never sent, then twenty of 120 KB each on top of it: they wait for it.
    let options = ChangeOptions { fresh_actor: false, ..ChangeOptions::default() };
    let hidden = ann.peer().commit_local(desk, &options, |tx| Ok(tx.put(automerge::ROOT, "ready", true)?))?;
    let mut parked = Vec::new();
    for n in 0..20 {
        let padding: String = (0..120_000).map(|i| char::from(b'a' + ((i * 7 + n * 13) % 26) as u8)).collect();
        parked.push(ann.peer().commit_local(desk, &options, |tx| Ok(tx.put(automerge::ROOT, "padding", padding)?))?);
    }
    let heads = ann.desk_heads();
    ann.peer().send_sync_by_hand(desk, heads, &parked).await?;
    let verdict = ann.peer().verdict(desk, parked[19]).await?;
    assert!(
        matches!(&verdict, Verdict::Refused(reason) if reason.contains("dependencies")),
        "2.4 MB of changes that cannot be applied are refused, not kept: {verdict:?} (the first was {hidden})"
    );
    server.stop().await?;
    server.assert_no_panics();
    Ok(())
}

// ---- 5. A refusal storm ------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_refused_changes_does_not_delay_another_participant() -> anyhow::Result<()> {
    const CLUSTERS: usize = 2_000;
    let data = tempfile::tempdir()?;
    let mut server = ServerProcess::start(data.path()).await?;
    let board = server.create_board("Stormy", "mad-sad-glad").await?;
    let mut fay = Participant::join_as_facilitator(&server, &board, "Fay").await?;
    fay.set_phase(Phase::Group).await?;
    // 2,000 clusters in one change.
    fay.raw_board_change(|tx| {
        let clusters = schema::root_map(tx, "clusters")?;
        for n in 0..CLUSTERS {
            let id = format!("c{n}");
            let cluster = tx.put_object(&clusters, id.as_str(), automerge::ObjType::Map)?;
            tx.put(&cluster, "id", id.as_str())?;
            tx.put(&cluster, "title", format!("Cause {n}"))?;
        }
        Ok(())
    })
    .await?
    .accepted()?;
    let mut mallory = Participant::join(&server, board.board_id, "Mallory").await?;
    mallory.pump_until("the clusters", |p| p.board().clusters.len() == CLUSTERS).await?;

    // 2,000 changes in one message, each refused on its own (a title longer than a cluster title
    // may be), none built on another: each made on the board as the server has it, by a fresh
    // actor, as the real client does.
    let doc = mallory.board_id();
    let mut changes = Vec::new();
    for n in 0..CLUSTERS {
        let mut fork = mallory.board_doc().fork().with_actor(automerge::ActorId::random());
        let mut tx = fork.transaction();
        // Written raw: the typed edit refuses a title this long.
        let clusters = schema::root_map(&tx, "clusters")?;
        let (_, obj) = tx.get(&clusters, format!("c{n}").as_str())?.context("the cluster")?;
        tx.put(&obj, "title", "x".repeat(300))?;
        tx.commit();
        changes.push(fork.get_last_local_change().context("a change")?.raw_bytes().to_vec());
    }
    let message = WireMessage::Sync {
        document_id: doc,
        sender_id: mallory.peer_id().clone(),
        target_id: mallory.peer().server_id().clone(),
        data: bomb::sync_message(changes),
    };
    let started = Instant::now();
    mallory.peer().client().send(&message).await?;
    let mut latencies = Vec::new();
    for n in 0..10 {
        let at = Instant::now();
        fay.set_title(&format!("Still here {n}")).await?;
        latencies.push(at.elapsed());
    }
    mallory.pump_until("the refusal", |p| p.refusals() > 0).await?;
    let answered = started.elapsed();
    let slowest = latencies.iter().max().copied().unwrap_or_default();
    eprintln!(
        "refusal storm: {CLUSTERS} refused changes in one message; the facilitator's slowest acknowledgement {slowest:?}, the storm answered in {answered:?}"
    );
    assert!(slowest < 2 * HEALTHY, "the facilitator waited {slowest:?}");
    server.stop().await?;
    server.assert_no_panics();
    Ok(())
}

// ---- 6. The role per change -----------------------------------------------------------------------

#[tokio::test]
async fn the_role_is_decided_change_by_change() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let mut server = ServerProcess::start(data.path()).await?;
    let board = server.create_board("Handover", "mad-sad-glad").await?;
    let mut fay = Participant::join_as_facilitator(&server, &board, "Fay").await?;
    let mut ann = Participant::join(&server, board.board_id, "Ann").await?;
    fay.pump_until("Ann", |p| p.roster().is_some_and(|r| r.len() == 2)).await?;
    let doc = fay.board_id();
    let options = ChangeOptions::default();
    let ann_id = ann.id().to_owned();
    let handed = fay.peer().commit_local(doc, &options, |tx| Ok(edit::hand_over(tx, &ann_id)?))?;
    let moved = fay.peer().commit_local(doc, &options, |tx| Ok(edit::set_phase(tx, Phase::Reveal)?))?;
    let renamed = fay.peer().commit_local(doc, &options, |tx| Ok(edit::set_title(tx, "Fay's anyway")?))?;
    fay.peer().send_sync(doc).await?;
    assert_eq!(fay.peer().verdict(doc, handed).await?, Verdict::Accepted);
    let moved = fay.peer().verdict(doc, moved).await?;
    assert!(matches!(&moved, Verdict::Refused(r) if r.contains("only the facilitator")), "{moved:?}");
    assert!(fay.peer().verdict(doc, renamed).await?.is_refused());
    ann.pump_until("the hand-over", |p| p.board().facilitator.as_deref() == Some(p.id())).await?;
    let board = ann.board();
    assert_eq!((board.phase, board.title.as_str()), (Phase::Write, "Handover"));
    server.stop().await?;
    server.assert_no_panics();
    Ok(())
}

// ---- 14. One desk per board per connection ------------------------------------------------------

/// A connection may be a participant of two boards (a stock client with both open), which gives
/// it nothing on either beyond its own desk; it may not be two participants of one board.
#[tokio::test]
async fn a_connection_is_one_participant_per_board() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let mut server = ServerProcess::start(data.path()).await?;
    let first = server.create_board("First", "mad-sad-glad").await?;
    let second = server.create_board("Second", "mad-sad-glad").await?;
    let ann = http::join_board(&server.http_url(), first.board_id, "Ann", None).await?;
    let ann_too = http::join_board(&server.http_url(), second.board_id, "Ann", None).await?;
    let mut peer = SyncPeer::connect(&server.ws_url()).await?;
    for desk in [ann.desk_id, ann_too.desk_id] {
        peer.request(desk).await?;
        peer.wait_arrived(desk).await?;
        let draft = Draft { id: random_token::<9>(), column: "mad".into(), text: "Mine".into(), created_at: now_ms() };
        let options = ChangeOptions { fresh_actor: false, ..ChangeOptions::default() };
        let hash = peer.send_change(desk, &options, |tx| Ok(edit::add_draft(tx, &draft)?)).await?;
        assert_eq!(peer.verdict(desk, hash).await?, Verdict::Accepted, "a draft on each board's desk");
    }
    let bob = http::join_board(&server.http_url(), first.board_id, "Bob", None).await?;
    peer.request(bob.desk_id).await?;
    let closing = peer.client().expect_close().await?;
    assert_eq!(closing.code, Some(1002), "{closing:?}");
    assert!(closing.error().is_some_and(|e| e.contains("one participant's desk")), "{closing:?}");
    server.stop().await?;
    server.assert_no_panics();
    Ok(())
}

// ---- 7. Connections ---------------------------------------------------------------------------------

/// Waits until the server closes `tcp` (reads end), and says how long that took.
async fn closed_by_server(tcp: &mut TcpStream) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut buffer = [0u8; 1024];
    within("the server to close the connection", async {
        loop {
            match tcp.read(&mut buffer).await {
                Ok(0) | Err(_) => return Ok(started.elapsed()),
                Ok(_) => {}
            }
        }
    })
    .await
}

#[tokio::test]
async fn idle_and_trickling_http_connections_are_closed() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let mut server = ServerProcess::start_with(data.path(), &["--http-timeout-secs", "2"]).await?;
    let address = server.http_url().trim_start_matches("http://").to_owned();

    let mut idle = TcpStream::connect(&address).await?;
    let idle_for = closed_by_server(&mut idle).await?;

    let mut trickle = TcpStream::connect(&address).await?;
    trickle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await?;
    let trickler = tokio::spawn(async move {
        let started = Instant::now();
        // One byte of a header every 300 ms, never the end of the headers.
        while trickle.write_all(b"X").await.is_ok() && started.elapsed() < TIMEOUT {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        started.elapsed()
    });
    let trickled_for = trickler.await?;

    // A connection that is answered and then sits idle is closed too.
    let mut kept = TcpStream::connect(&address).await?;
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await?;
    let kept_for = closed_by_server(&mut kept).await?;
    eprintln!(
        "HTTP timeouts: idle closed after {idle_for:?}, trickling after {trickled_for:?}, kept-alive after {kept_for:?}"
    );
    assert!(
        idle_for < Duration::from_secs(8) && trickled_for < Duration::from_secs(8) && kept_for < Duration::from_secs(8)
    );
    assert!(idle_for >= Duration::from_millis(1500), "not before the timeout: {idle_for:?}");
    server.stop().await?;
    Ok(())
}

#[tokio::test]
async fn one_address_holds_a_bounded_share_of_connections_boards_and_joins() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let flags = ["--max-connections-per-ip", "6", "--board-creations-per-minute", "3", "--joins-per-minute", "4"];
    let mut server = ServerProcess::start_with(data.path(), &flags).await?;
    let base = server.http_url();

    // The open-file limit was raised as far as it goes.
    let pid = server.pid().context("running")?;
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits"))?;
    let line = limits.lines().find(|l| l.starts_with("Max open files")).context("the limit")?;
    let numbers: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
    assert_eq!(numbers.first(), numbers.get(1), "soft limit = hard limit: {line}");

    // Board creations and joins per minute: one more gets 429.
    let mut boards = Vec::new();
    for n in 0..3 {
        boards.push(http::create_board(&base, &format!("Board {n}"), "mad-sad-glad").await?);
    }
    let refused = http::post_json(
        &format!("{base}{}", api::BOARDS),
        &serde_json::json!({"title": "One too many", "template": "4ls"}),
    )
    .await?;
    assert_eq!(refused.status, 429, "{}", refused.text());
    assert!(refused.text().contains("too many new boards"), "{}", refused.text());
    for n in 0..4 {
        http::join_board(&base, boards[0].board_id, &format!("P{n}"), None).await?;
    }
    let url = format!("{base}{}", api::participants(boards[0].board_id));
    let refused = http::post_json(&url, &serde_json::json!({"name": "Late"})).await?;
    assert_eq!(refused.status, 429, "{}", refused.text());

    // Connections per address: the seventh is closed at once, and a slot frees when one goes.
    // Each held connection is proved taken by a request answered over it: one the server was
    // still closing from the requests above may hold a slot for a moment on a busy machine.
    let address = base.trim_start_matches("http://").to_owned();
    let mut held = Vec::new();
    within("six connections taken", async {
        while held.len() < 6 {
            let mut tcp = TcpStream::connect(&address).await?;
            tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: hindsight\r\n\r\n").await?;
            let mut answer = Vec::new();
            let mut buffer = [0u8; 1024];
            while !answer.ends_with(b"ok") {
                match tcp.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => answer.extend_from_slice(&buffer[..n]),
                }
            }
            if answer.ends_with(b"ok") {
                held.push(tcp);
            }
        }
        Ok(())
    })
    .await?;
    let mut seventh = TcpStream::connect(&address).await?;
    let refused_after = closed_by_server(&mut seventh).await?;
    assert!(refused_after < Duration::from_secs(1), "closed at once, not after a timeout: {refused_after:?}");
    assert!(WsClient::connect(&server.ws_url()).await.is_err(), "no WebSocket either");
    held.pop();
    within("a slot to free", async {
        loop {
            if let Ok(answer) = http::get(&format!("{base}/healthz")).await
                && answer.status == 200
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await?;
    drop(held);
    server.stop().await?;
    Ok(())
}

// ---- 8. Storage per board ---------------------------------------------------------------------------

#[tokio::test]
async fn a_board_and_its_desks_share_a_storage_quota_and_desks_load_when_needed() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let mut server = ServerProcess::start_logging(
        data.path(),
        &["--max-board-bytes", "300000"],
        "info,hindsight_server::board=debug",
    )
    .await?;
    let board = server.create_board("Quota", "mad-sad-glad").await?;
    let fay = Participant::join_as_facilitator(&server, &board, "Fay").await?;
    // Three people write long notes until the board, desks included, is full.
    let mut writers = Vec::new();
    for name in ["Ann", "Bob", "Cy"] {
        writers.push(Participant::join(&server, board.board_id, name).await?);
    }
    let mut refusal = None;
    'write: for round in 0..200 {
        for writer in &mut writers {
            let text: String = (0..1_900).map(|i| char::from(b'a' + ((i * 31 + round * 7) % 26) as u8)).collect();
            let (_, hash) = writer.send_draft("mad", &text).await?;
            if let Verdict::Refused(reason) = writer.verdict(hash).await? {
                refusal = Some((round, reason));
                break 'write;
            }
        }
    }
    let (rounds, reason) = refusal.context("the board never filled up")?;
    assert!(reason.contains("the board is full"), "{reason}");
    assert!(rounds < 60, "each desk alone is far from the document limit; together they fill the board");

    // After a restart, a viewer opens the board without loading a desk; a participant's desk
    // loads when it connects; every desk loads when the facilitator moves the phase.
    server.stop().await?;
    let identities: Vec<_> = writers.iter().map(|w| w.identity().clone()).collect();
    drop(writers);
    let fay_identity = fay.identity().clone();
    drop(fay);
    let mut server = ServerProcess::start_logging(
        data.path(),
        &["--max-board-bytes", "300000"],
        "info,hindsight_server::board=debug",
    )
    .await?;
    let viewer = SyncPeer::open(&server.ws_url(), board.board_id).await?;
    assert_eq!(viewer.board().title, "Quota");
    let loaded = |server: &ServerProcess| {
        server.log().iter().filter(|l| l.contains("loaded desks")).cloned().collect::<Vec<_>>()
    };
    assert!(loaded(&server).is_empty(), "a viewer loads no desk: {:?}", loaded(&server));
    let mut fay = Participant::connect(&server.ws_url(), fay_identity).await?;
    let after_fay = loaded(&server);
    assert!(after_fay.len() == 1 && after_fay[0].contains("desks=1"), "{after_fay:?}");
    fay.set_phase(Phase::Reveal).await?;
    let after_phase = loaded(&server);
    assert!(after_phase.len() == 2 && after_phase[1].contains("desks=3"), "{after_phase:?}");
    let _ = identities;
    server.stop().await?;
    server.assert_no_panics();
    Ok(())
}

#[tokio::test]
async fn idle_boards_are_deleted_after_their_retention() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    // Two seconds, in days.
    let retention = format!("{}", 2.0 / 86_400.0);
    let flags = ["--board-retention-days", retention.as_str(), "--board-idle-secs", "1"];
    let mut server = ServerProcess::start_with(data.path(), &flags).await?;
    let idle = server.create_board("Forgotten", "mad-sad-glad").await?;
    let active = server.create_board("In use", "mad-sad-glad").await?;
    let mut fay = Participant::join_as_facilitator(&server, &active, "Fay").await?;
    let page = |id: DocumentId| format!("{}/b/{id}", server.http_url());
    let started = Instant::now();
    within("the idle board to be deleted", async {
        loop {
            if http::get(&page(idle.board_id)).await?.status == 404 {
                return Ok(());
            }
            // The active board changes now and then, as a retro does.
            fay.set_title(&format!("In use {}", started.elapsed().as_millis())).await?;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await?;
    assert!(started.elapsed() >= Duration::from_millis(1500), "not before its retention: {:?}", started.elapsed());
    assert_eq!(http::get(&page(active.board_id)).await?.status, 200, "a board in use stays");
    let join = http::post_json(
        &format!("{}{}", server.http_url(), api::participants(idle.board_id)),
        &serde_json::json!({"name": "Late"}),
    )
    .await?;
    assert_eq!(join.status, 404);
    server.stop().await?;
    server.assert_no_panics();
    Ok(())
}

// ---- 9. Presence -------------------------------------------------------------------------------------

#[tokio::test]
async fn presence_is_sent_as_changes_and_names_are_cleaned() -> anyhow::Result<()> {
    const GHOSTS: usize = 400;
    let data = tempfile::tempdir()?;
    let mut server = ServerProcess::start_with(data.path(), &["--joins-per-minute", "10000"]).await?;
    let board = server.create_board("Ghosts", "mad-sad-glad").await?;
    for n in 0..GHOSTS {
        http::join_board(&server.http_url(), board.board_id, &format!("Ghost {n}"), None).await?;
    }
    let mut viewer = SyncPeer::open(&server.ws_url(), board.board_id).await?;
    viewer.pump("the whole roster", |p| p.roster().is_some_and(|r| r.len() == GHOSTS)).await?;
    let mark = viewer.mark();
    let ann = Participant::join(&server, board.board_id, "Ann\u{202e}evil\u{0007}\n ").await?;
    let ann_id = ann.id().to_owned();
    viewer.pump("Ann online", |p| p.roster().is_some_and(|r| r.iter().any(|e| e.id == ann_id && e.online))).await?;
    let updates: Vec<usize> =
        viewer.frames_since(mark).iter().filter(|f| hindsight_tests::peer::is_presence(f)).map(Vec::len).collect();
    let largest = updates.iter().max().copied().unwrap_or_default();
    eprintln!("presence: {GHOSTS} ghosts; roster updates after one person came: {updates:?} bytes");
    assert!(largest < 2_048, "an update carries what changed, not {GHOSTS} entries: {largest} bytes");
    let roster = viewer.roster().context("a roster")?;
    assert_eq!(roster.len(), GHOSTS + 1);
    assert_eq!(roster.iter().find(|e| e.id == ann_id).map(|e| e.name.as_str()), Some("Annevil"));
    server.stop().await?;
    server.assert_no_panics();
    Ok(())
}

// ---- 10. Logs ------------------------------------------------------------------------------------------

#[tokio::test]
async fn logs_hold_no_secret_and_no_forged_line() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let mut server = ServerProcess::start_logging(data.path(), &[], "debug").await?;
    let board = server.create_board("Secrets", "mad-sad-glad").await?;
    let mut fay = Participant::join_as_facilitator(&server, &board, "Fay").await?;
    let mut ann = Participant::join(&server, board.board_id, "Ann").await?;
    // Refusals on the board and on a desk, a desk of another's asked for, garbage, a bad id.
    let verdict = ann.raw_board_change(|tx| Ok(edit::set_phase(tx, Phase::Vote)?)).await?;
    assert!(verdict.is_refused());
    fay.set_phase(Phase::Vote).await?;
    let draft = Draft { id: random_token::<9>(), column: "mad".into(), text: "late".into(), created_at: now_ms() };
    assert!(ann.raw_desk_change(|tx| Ok(edit::add_draft(tx, &draft)?)).await?.is_refused());
    let mut raw = Joined::open(&server.ws_url()).await?;
    raw.client.send(&raw.sync(fay.desk_id(), bomb::sync_message(vec![]))).await?;
    raw.client.send(&raw.sync(ann.desk_id(), bomb::sync_message(vec![]))).await?;
    let _ = raw.client.expect_close().await?;
    let mut forger = WsClient::connect(&server.ws_url()).await?;
    let join = WireMessage::Join {
        sender_id: PeerId::from("x\nFORGED INFO fake line"),
        supported_protocol_versions: vec!["1".into()],
        metadata: None,
    };
    forger.send(&join).await?;
    let _ = forger.expect_close().await?;
    let mut errant = Joined::open(&server.ws_url()).await?;
    errant.client.send(&WireMessage::Error { message: "oops\nFORGED WARN another\u{1b}[2J".into() }).await?;
    let _ = errant.client.expect_close().await?;
    server.stop().await?;

    let log = server.log();
    let secrets = [
        ("the board id", board.board_id.to_string()),
        ("the facilitator key", board.facilitator_key.clone()),
        ("Fay's desk id", fay.desk_id().to_string()),
        ("Ann's desk id", ann.desk_id().to_string()),
    ];
    for line in &log {
        for (what, secret) in &secrets {
            assert!(!line.contains(secret.as_str()), "{what} in a log line: {line}");
        }
        assert!(!line.starts_with("FORGED"), "a forged log line: {line}");
        assert!(!line.contains('\u{1b}'), "an escape sequence in a log line: {line:?}");
    }
    assert!(
        log.iter().any(|l| l.contains("refused changes") && l.contains("document=\"desk\"")),
        "refusals are logged"
    );
    assert!(log.len() > 20, "the debug log says something");
    server.assert_no_panics();
    Ok(())
}

// ---- 11. Headers and exports ---------------------------------------------------------------------

#[tokio::test]
async fn pages_and_exports_carry_security_headers_and_exports_are_inert() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let mut server = ServerProcess::start(data.path()).await?;
    let board = server.create_board("Headers", "mad-sad-glad").await?;
    let base = server.http_url();
    for url in [format!("{base}/"), format!("{base}/b/{}", board.board_id)] {
        let page = http::get(&url).await?;
        let policy = page.header("content-security-policy").context("a CSP")?;
        assert!(policy.contains("frame-ancestors 'none'") && policy.contains("script-src 'self'"), "{policy}");
        assert!(!policy.contains("'unsafe-inline'; ") || policy.contains("style-src-attr 'unsafe-inline'"), "{policy}");
        assert_eq!(page.header("x-frame-options"), Some("DENY"));
        assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    }
    let mut fay = Participant::join_as_facilitator(&server, &board, "Fay").await?;
    fay.write("mad", "<img src=x onerror=alert(1)> [x](javascript:alert(1))").await?;
    fay.write("sad", "\t=cmd|' /C calc'!A0").await?;
    fay.set_phase(Phase::Group).await?;
    fay.pump_until("the notes", |p| p.board().notes.len() == 2).await?;
    let export = |format: &str| format!("{base}{}", api::export(board.board_id, format));
    let html = http::get(&export("html")).await?;
    let policy = html.header("content-security-policy").context("a CSP on the export")?;
    assert!(policy.contains("default-src 'none'") && policy.contains("frame-ancestors 'none'"), "{policy}");
    assert!(!html.text().contains("<img"));
    let md = http::get(&export("md")).await?.text();
    assert!(!md.contains("<img") && !md.contains("](javascript:"), "{md}");
    let csv = http::get(&export("csv")).await?.text();
    assert!(csv.contains("\"'\t=cmd"), "{csv:?}");
    server.stop().await?;
    Ok(())
}

// ---- 12. Stock clients ---------------------------------------------------------------------------------

#[tokio::test]
async fn a_stock_client_that_forwards_ephemerals_is_not_cut_off() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let mut server = ServerProcess::start(data.path()).await?;
    let board = server.create_board("Gossip", "mad-sad-glad").await?;
    let mut fay = Participant::join_as_facilitator(&server, &board, "Fay").await?;
    let mut ann = Participant::join(&server, board.board_id, "Ann").await?;
    // Fay broadcasts presence; Ann's client (as automerge-repo does) passes it on to its other
    // peers, the server among them, with Fay's id as the sender.
    fay.peer().send_ephemeral("presence", 1, &[0xa1, 0x61, 0x78, 0x01]).await?;
    let received = ann.peer().next_ephemeral().await?;
    let WireMessage::Ephemeral { document_id, sender_id, session_id, count, data, .. } = received else {
        bail!("expected an ephemeral message");
    };
    assert_eq!(&sender_id, fay.peer_id());
    let forwarded = WireMessage::Ephemeral {
        document_id,
        sender_id,
        target_id: ann.peer().server_id().clone(),
        session_id,
        count,
        data,
    };
    ann.peer().client().send(&forwarded).await?;
    // Ann is still connected and syncing, and Fay does not get her own message back.
    ann.write("glad", "still here").await?;
    let mark = fay.mark();
    let barrier = ann.send_barrier().await?;
    fay.wait_barrier(ann.peer_id(), barrier).await?;
    let echoed = fay.frames_since(mark).iter().any(
        |f| matches!(WireMessage::decode(f), Ok(WireMessage::Ephemeral { session_id, .. }) if session_id == "presence"),
    );
    assert!(!echoed, "the forwarded copy is not relayed again");
    server.stop().await?;
    server.assert_no_panics();
    Ok(())
}

#[tokio::test]
async fn text_objects_are_refused_with_what_to_write_instead() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let mut server = ServerProcess::start(data.path()).await?;
    let board = server.create_board("Strings", "mad-sad-glad").await?;
    let mut ann = Participant::join(&server, board.board_id, "Ann").await?;
    // What Automerge 3's JavaScript API writes for `draft.text = "..."` by default.
    let verdict = ann
        .raw_desk_change(|tx| {
            let drafts = schema::root_map(tx, "drafts")?;
            let draft = tx.put_object(&drafts, "d1", automerge::ObjType::Map)?;
            tx.put(&draft, "id", "d1")?;
            tx.put(&draft, "column", "mad")?;
            tx.put(&draft, "created_at", 1)?;
            let text = tx.put_object(&draft, "text", automerge::ObjType::Text)?;
            tx.splice_text(&text, 0, 0, "A collaborative string")?;
            Ok(())
        })
        .await?;
    assert!(matches!(&verdict, Verdict::Refused(r) if r.contains("ImmutableString")), "{verdict:?}");
    // The same with a scalar string is taken.
    let draft = Draft { id: "d1".into(), column: "mad".into(), text: "A plain string".into(), created_at: 1 };
    ann.raw_desk_change(|tx| Ok(edit::add_draft(tx, &draft)?)).await?.accepted()?;
    assert_eq!(ann.desk().drafts["d1"].text, "A plain string");
    let _ =
        ActionItem { id: String::new(), text: String::new(), owner: String::new(), due: String::new(), cluster: None };
    server.stop().await?;
    server.assert_no_panics();
    Ok(())
}

// ---- 16. Closing ---------------------------------------------------------------------------------------

#[tokio::test]
async fn no_sync_message_comes_right_before_a_close() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let mut server = ServerProcess::start(data.path()).await?;
    let board = server.create_board("Closing", "mad-sad-glad").await?;
    let mut fay = Participant::join_as_facilitator(&server, &board, "Fay").await?;
    let mut viewer = Joined::open(&server.ws_url()).await?;
    viewer
        .client
        .send(&WireMessage::Request {
            document_id: board.board_id,
            sender_id: viewer.me.clone(),
            target_id: viewer.server.clone(),
            data: bomb::sync_message(vec![]),
        })
        .await?;
    // Changes keep flowing to the viewer while the server shuts down.
    let writer = tokio::spawn(async move {
        for n in 0..1_000 {
            if fay.set_title(&format!("Title {n}")).await.is_err() {
                break;
            }
        }
    });
    viewer.client.recv().await?;
    let (stopped, closing) = tokio::join!(server.stop(), viewer.client.expect_close());
    stopped?;
    let closing = closing?;
    writer.abort();
    let closed_at = closing.closed_at.context("a close frame")?;
    let frames = viewer.client.received_frames();
    let last_sync = frames
        .iter()
        .zip(viewer.client.received_at())
        .rev()
        .find(|(f, _)| matches!(WireMessage::decode(f), Ok(WireMessage::Sync { .. })))
        .map(|(_, at)| *at)
        .context("sync messages arrived")?;
    let quiet = closed_at.duration_since(last_sync);
    eprintln!("closing: the close frame came {quiet:?} after the last sync message ({} frames)", frames.len());
    assert_eq!(closing.code, Some(1001));
    assert!(quiet >= Duration::from_millis(450), "a sync message came {quiet:?} before the close");
    server.assert_no_panics();
    Ok(())
}

#[tokio::test]
async fn a_stopped_server_does_not_find_quiet_connections_idle() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let mut server = ServerProcess::start_with(data.path(), &["--ping-interval-secs", "1"]).await?;
    let board = server.create_board("Paused", "mad-sad-glad").await?;
    let mut quiet = Vec::new();
    for _ in 0..11 {
        quiet.push(SyncPeer::open(&server.ws_url(), board.board_id).await?);
    }
    // Stopped for longer than three ping intervals: resumed, it reads the pongs that waited.
    server.signal("STOP").await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    server.signal("CONT").await?;
    // Two more intervals on, every quiet connection still syncs.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut fay = Participant::join_as_facilitator(&server, &board, "Fay").await?;
    fay.set_title("After the pause").await?;
    for peer in &mut quiet {
        peer.pump_until("the new title", |b| b.title == "After the pause").await?;
    }
    // And a connection that really goes quiet (it reads nothing, so it answers no ping) is closed
    // as idle, three intervals on: read raw, under the WebSocket, so reading sends no pong.
    let mut silent = non_reader(&server.ws_url(), board.board_id).await?;
    let idle_for = closed_by_server(silent.get_mut()).await?;
    eprintln!("a quiet connection was closed as idle after {idle_for:?}");
    assert!(idle_for >= Duration::from_millis(2500), "{idle_for:?}");
    server.stop().await?;
    server.assert_no_panics();
    Ok(())
}
