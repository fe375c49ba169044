//! Limits (issue 4): hostile clients cannot take the server down, grow its memory without bound or
//! slow other boards, and every configured bound answers with a clear error.
//!
//! - A client that sends garbage in a loop, a slow consumer that never reads while it makes the
//!   server send it a large board again and again, and a client that opens 300 sockets (each a
//!   viewer of a third board), all at once: the server stays up, is closed on the slow consumer (1008) instead of buffering for
//!   it, its resident memory stays bounded, and a participant on another board has each of its
//!   writes acknowledged within a second throughout.
//! - `--max-connections`: one WebSocket too many gets `503` with a JSON error; after one closes, a
//!   new one is taken.
//! - `--max-peers-per-board` and `--max-viewers-per-board`: one connection too many of either kind
//!   gets an `error` and close 1008; viewers cannot take participants' room; the board's peers and
//!   other boards carry on.
//! - `--max-messages-per-second`: a flooding connection gets `too many messages` and close 1008; a
//!   connection at a normal pace on another board is untouched.
//!
//! (`--max-message-bytes` is covered in `bad_input`.)

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use futures_util::{SinkExt, StreamExt};
use hindsight_shared::edit;
use hindsight_shared::ids::{DocumentId, random_token};
use hindsight_shared::protocol::WireMessage;
use hindsight_shared::schema::{Draft, Phase};
use hindsight_tests::peer::now_ms;
use hindsight_tests::ws::empty_doc_sync_message;
use hindsight_tests::{
    ChangeOptions, Closing, Joined, Participant, Rng, ServerProcess, SyncPeer, TIMEOUT, TestServer, WsClient, http,
    within,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::Message;
use tokio_util::sync::CancellationToken;

fn assert_refused(case: &str, closing: &Closing, code: u16, error: &str) {
    closing.assert_refused(case, code, error);
}

// ---- hostile clients -----------------------------------------------------------------------------

/// The notes on the board the slow consumer asks for, again and again.
const BIG_BOARD_NOTES: usize = 300;
const HOSTILE_SOCKETS: usize = 300;
/// The longest a healthy participant's write may wait for its acknowledgement under attack.
const HEALTHY_ACK: Duration = Duration::from_secs(1);
/// How much the server's resident memory may grow under the attacks.
const MAX_RSS_GROWTH_KIB: u64 = 150 * 1024;

/// A field of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`).
fn proc_status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with(field)).with_context(|| format!("no {field} for {pid}"))?;
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).with_context(|| format!("bad line `{line}`"))
}

/// Writes drafts on a desk in one sync message (committed locally first, sent at once) and waits
/// until the server stored them all.
async fn write_many(participant: &mut Participant, count: usize, rng: &mut Rng) -> anyhow::Result<()> {
    let desk = participant.desk_id();
    let options = ChangeOptions { fresh_actor: false, ..ChangeOptions::default() };
    for _ in 0..count {
        // Letters at random, so the text does not compress away.
        let text: String = (0..200).map(|_| char::from(b'a' + rng.range(0..26) as u8)).collect();
        let draft = Draft { id: random_token::<9>(), column: "mad".into(), text, created_at: now_ms() };
        participant.peer().commit_local(desk, &options, |tx| Ok(edit::add_draft(tx, &draft)?))?;
    }
    participant.peer().send_sync(desk).await?;
    participant.wait_acknowledged().await
}

/// What the garbage client did.
#[derive(Debug, Default)]
struct Garbage {
    connections: usize,
    /// Connections that ended without the close frame expected.
    unclosed: Vec<String>,
}

/// Sends garbage until `stop`: raw bytes where HTTP belongs, noise frames before and after `join`,
/// text frames, CBOR maps of nonsense. Each connection must be closed by the server.
async fn send_garbage(server: String, ws_url: String, stop: CancellationToken, seed: u64) -> anyhow::Result<Garbage> {
    let mut rng = Rng::new(seed);
    let mut garbage = Garbage::default();
    // A new connection every few milliseconds: hostile, but not the whole test's CPU.
    let mut pace = tokio::time::interval(Duration::from_millis(5));
    while !stop.is_cancelled() {
        pace.tick().await;
        garbage.connections += 1;
        let noise: Vec<u8> = (0..rng.range(1..2000)).map(|_| rng.next_u64() as u8).collect();
        match garbage.connections % 4 {
            0 => {
                // The server may hang up before all of it is written.
                let mut tcp = TcpStream::connect(&server).await?;
                let _ = tcp.write_all(&noise).await;
                let _ = tcp.write_all(b"\r\n\r\n").await;
                let mut answer = Vec::new();
                let _ =
                    within("the server to hang up on garbage", async { Ok(tcp.read_to_end(&mut answer).await?) }).await;
            }
            1 => {
                let mut client = WsClient::connect(&ws_url).await?;
                client.send_binary(noise).await?;
                let closing = client.expect_close().await?;
                if closing.code != Some(1002) {
                    garbage.unclosed.push(format!("noise before join: {closing:?}"));
                }
            }
            2 => {
                let mut joined = Joined::open(&ws_url).await?;
                joined.client.send_text(&String::from_utf8_lossy(&noise)).await?;
                let closing = joined.client.expect_close().await?;
                if closing.code != Some(1003) {
                    garbage.unclosed.push(format!("a text frame: {closing:?}"));
                }
            }
            _ => {
                let mut joined = Joined::open(&ws_url).await?;
                // A CBOR map of two random entries, whatever they hold.
                let mut frame = vec![0xa2];
                frame.extend_from_slice(&noise);
                joined.client.send_binary(frame).await?;
                let closing = joined.client.expect_close().await?;
                if closing.code.is_none() {
                    garbage.unclosed.push(format!("a random map: {closing:?}"));
                }
            }
        }
    }
    Ok(garbage)
}

/// What the slow consumer saw.
#[derive(Debug)]
struct SlowConsumer {
    /// Messages it sent while it read nothing.
    sent: u64,
    /// Frames it read once it started reading, after the server dropped it.
    read: u64,
    close_code: Option<u16>,
}

/// A participant whose client never reads: joins, opens its desk and the big board, then asks for
/// the whole board again and again (a sync message from an empty document) until `dropped`.
/// Then it reads what the server had queued, up to the close.
async fn consume_slowly(
    ws_url: &str,
    desk: DocumentId,
    board: DocumentId,
    dropped: CancellationToken,
) -> anyhow::Result<SlowConsumer> {
    let (ws, me, server) = hindsight_tests::ws::quiet(ws_url).await?;
    let (mut sink, mut stream) = ws.split();
    let message = |document_id| WireMessage::Sync {
        document_id,
        sender_id: me.clone(),
        target_id: server.clone(),
        data: empty_doc_sync_message(),
    };
    sink.send(Message::Binary(message(desk).encode().into())).await?;
    let mut sent = 1;
    // Under the rate limit: the server must drop this client for not reading, not for flooding.
    let mut pace = tokio::time::interval(Duration::from_millis(7));
    while !dropped.is_cancelled() {
        tokio::select! {
            () = dropped.cancelled() => break,
            _ = pace.tick() => {}
        }
        tokio::select! {
            () = dropped.cancelled() => break,
            result = sink.send(Message::Binary(message(board).encode().into())) => match result {
                Ok(()) => sent += 1,
                // The server reset the connection: it is gone.
                Err(_) => break,
            },
        }
    }
    // Now read what is left: the frames the server had queued, then its close frame.
    let mut read = 0;
    let mut close_code = None;
    within("the slow consumer's connection to end", async {
        while let Some(frame) = stream.next().await {
            match frame {
                Ok(Message::Binary(_)) => read += 1,
                Ok(Message::Close(frame)) => {
                    close_code = frame.map(|f| u16::from(f.code));
                    break;
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        Ok(())
    })
    .await?;
    Ok(SlowConsumer { sent, read, close_code })
}

/// Opens `count` sockets that join and open `board`, and holds them until `stop`.
async fn open_sockets(
    ws_url: String,
    board: DocumentId,
    count: usize,
    opened: CancellationToken,
    stop: CancellationToken,
) -> anyhow::Result<usize> {
    let mut sockets = Vec::with_capacity(count);
    while sockets.len() < count {
        let batch = (count - sockets.len()).min(25);
        let opening = (0..batch).map(|_| SyncPeer::open(&ws_url, board));
        for socket in futures_util::future::join_all(opening).await {
            sockets.push(socket?);
        }
    }
    opened.cancel();
    stop.cancelled().await;
    let held = sockets.len();
    for socket in sockets {
        socket.close().await?;
    }
    Ok(held)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_a_slow_consumer_and_300_sockets_leave_the_server_up_bounded_and_other_boards_fast()
-> anyhow::Result<()> {
    let seed = Rng::seed_from_env("HINDSIGHT_FAULT_SEED");
    eprintln!("hostile clients: seed {seed}");
    let mut rng = Rng::new(seed);
    let data = tempfile::tempdir()?;
    let mut server = ServerProcess::start(data.path()).await?;
    let pid = server.pid().context("the server runs")?;
    let ws_url = server.ws_url();

    // The board under attack holds a few hundred long notes.
    let big = server.create_board("Big board", "mad-sad-glad").await?;
    let mut owner = Participant::join_as_facilitator(&server, &big, "Owner").await?;
    owner.set_phase(Phase::Group).await?;
    let mut helper = Participant::join(&server, big.board_id, "Helper").await?;
    write_many(&mut owner, BIG_BOARD_NOTES / 2, &mut rng).await?;
    write_many(&mut helper, BIG_BOARD_NOTES / 2, &mut rng).await?;
    owner.pump_until("the big board's notes", |p| p.board().notes.len() == BIG_BOARD_NOTES).await?;
    let board_bytes = owner.board_doc().save().len();
    let slow = http::join_board(&server.http_url(), big.board_id, "Slow", None).await?;
    // The board the client with hundreds of sockets opens on each.
    let crowded = server.create_board("Crowded board", "sailboat").await?;

    // The healthy participant, on a board of its own.
    let quiet = server.create_board("Quiet board", "mad-sad-glad").await?;
    let mut healthy = Participant::join_as_facilitator(&server, &quiet, "Healthy").await?;
    let note = healthy.write("glad", "before the attacks").await?;

    let baseline = proc_status_kib(pid, "VmRSS")?;
    let peak_sampled = Arc::new(AtomicU64::new(baseline));
    let stop = CancellationToken::new();
    let sampler = {
        let (peak, stop) = (Arc::clone(&peak_sampled), stop.clone());
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(50));
            while !stop.is_cancelled() {
                every.tick().await;
                if let Ok(rss) = proc_status_kib(pid, "VmRSS") {
                    peak.fetch_max(rss, Ordering::Relaxed);
                }
            }
        })
    };

    let address = server.http_url().trim_start_matches("http://").to_owned();
    let garbage = tokio::spawn(send_garbage(address, ws_url.clone(), stop.clone(), rng.next_u64()));
    let opened = CancellationToken::new();
    let sockets =
        tokio::spawn(open_sockets(ws_url.clone(), crowded.board_id, HOSTILE_SOCKETS, opened.clone(), stop.clone()));
    let dropped = CancellationToken::new();
    let consumer = {
        let (ws_url, dropped) = (ws_url.clone(), dropped.clone());
        tokio::spawn(async move { consume_slowly(&ws_url, slow.desk_id, big.board_id, dropped).await })
    };
    // The owner watches the roster: the slow consumer comes online, then the server drops it.
    let watcher = tokio::spawn({
        let dropped = dropped.clone();
        async move {
            let is_slow = |p: &Participant, online: bool| {
                p.roster().is_some_and(|r| r.iter().any(|e| e.name == "Slow" && e.online == online))
            };
            owner.pump_until("the slow consumer online", |p| is_slow(p, true)).await?;
            owner.pump_until("the server to drop the slow consumer", |p| is_slow(p, false)).await?;
            dropped.cancel();
            anyhow::Ok(owner)
        }
    });

    // The healthy participant edits its note at a steady pace until every attack has done its
    // worst, and times each acknowledgement.
    let attacks = Instant::now();
    let mut latencies = Vec::new();
    let mut pace = tokio::time::interval(Duration::from_millis(50));
    while !(dropped.is_cancelled() && opened.is_cancelled()) || latencies.len() < 20 {
        pace.tick().await;
        let started = Instant::now();
        healthy.edit_draft(&note, &format!("healthy edit {}", latencies.len())).await?;
        latencies.push(started.elapsed());
        ensure!(attacks.elapsed() < 3 * TIMEOUT, "the attacks took too long");
    }
    let last_text = format!("healthy edit {}", latencies.len() - 1);
    stop.cancel();
    let owner = watcher.await??;
    let consumer = consumer.await??;
    let held = sockets.await??;
    let garbage = garbage.await??;
    sampler.await?;
    let peak = peak_sampled.load(Ordering::Relaxed).max(proc_status_kib(pid, "VmHWM")?);
    let after = proc_status_kib(pid, "VmRSS")?;

    // Still up, and everything the healthy participant wrote is there.
    let health = http::get(&format!("{}/healthz", server.http_url())).await?;
    let again = Participant::connect(&ws_url, healthy.identity().clone()).await?;
    latencies.sort();
    let max = latencies.last().copied().unwrap_or_default();
    eprintln!(
        "hostile clients, {:.1?} of attacks: {} garbage connections, {held} sockets held on a third board ({board_bytes} bytes saved), \
         a slow consumer sent {} requests, read {} frames after the server dropped it (close {:?}); the server's \
         RSS {} MiB before, peak {} MiB, {} MiB after; the healthy participant's {} edits were acknowledged in \
         {:?} (median), {max:?} (max)",
        attacks.elapsed(),
        garbage.connections,
        consumer.sent,
        consumer.read,
        consumer.close_code,
        baseline / 1024,
        peak / 1024,
        after / 1024,
        latencies.len(),
        latencies[latencies.len() / 2],
    );
    assert_eq!(health.status, 200, "the server is up");
    assert_eq!(again.desk().drafts.get(&note).map(|d| d.text.clone()), Some(last_text), "every edit is stored");
    assert!(max < HEALTHY_ACK, "a healthy write waited {max:?} for its acknowledgement");
    assert!(garbage.unclosed.is_empty(), "garbage connections the server did not close: {:#?}", garbage.unclosed);
    assert_eq!(consumer.close_code, Some(1008), "the slow consumer is closed for not reading: {consumer:?}");
    assert!(
        consumer.read < consumer.sent,
        "the server dropped frames for the slow consumer rather than queueing one per request: {consumer:?}"
    );
    assert!(
        peak.saturating_sub(baseline) < MAX_RSS_GROWTH_KIB,
        "the server's memory grew from {baseline} KiB to {peak} KiB"
    );
    assert_eq!(owner.board().notes.len(), BIG_BOARD_NOTES, "the big board is whole");

    server.stop().await?;
    server.assert_no_panics();
    Ok(())
}

// ---- configured limits ----------------------------------------------------------------------------

/// Opens a WebSocket and expects the upgrade to be refused; returns the status and the body.
async fn refused_upgrade(ws_url: &str) -> anyhow::Result<(u16, serde_json::Value)> {
    use tokio_tungstenite::tungstenite::Error;
    match tokio_tungstenite::connect_async(ws_url).await {
        Ok(_) => bail!("the WebSocket was accepted"),
        Err(Error::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            let json = serde_json::from_slice(&body)
                .with_context(|| format!("the body is not JSON: {}", String::from_utf8_lossy(&body)))?;
            Ok((response.status().as_u16(), json))
        }
        Err(e) => bail!("the upgrade failed otherwise: {e}"),
    }
}

/// Connects until the server takes the connection (it frees a slot once the connection that held
/// it has ended, which this waits for by trying).
async fn connect_when_accepted(ws_url: &str) -> anyhow::Result<Joined> {
    within("the server to take a new connection", async {
        loop {
            match Joined::open(ws_url).await {
                Ok(joined) => return Ok(joined),
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    })
    .await
}

#[tokio::test]
async fn one_websocket_over_max_connections_gets_503_until_one_closes() -> anyhow::Result<()> {
    const MAX: usize = 4;
    let server = TestServer::spawn_with(|config| config.max_connections = MAX).await;
    let mut open = Vec::new();
    for _ in 0..MAX {
        open.push(Joined::open(&server.ws_url()).await?);
    }
    let (status, body) = refused_upgrade(&server.ws_url()).await?;
    assert_eq!(status, 503);
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.contains("full"), "the 503 says why: {body}");
    // HTTP is not limited: the API still answers.
    assert_eq!(http::get(&format!("{}/healthz", server.http_url())).await?.status, 200);

    open.pop().context("an open connection")?.client.close().await?;
    let mut newcomer = connect_when_accepted(&server.ws_url()).await?;
    let unknown = DocumentId::random();
    newcomer.client.send(&newcomer.request(unknown)).await?;
    assert!(matches!(newcomer.client.recv().await?, WireMessage::DocUnavailable { .. }), "the newcomer is served");
    let (status, _) = refused_upgrade(&server.ws_url()).await?;
    assert_eq!(status, 503, "full again");
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn viewers_and_participants_have_their_own_room_on_a_board_and_other_boards_carry_on() -> anyhow::Result<()> {
    const MAX: usize = 2;
    let server = TestServer::spawn_with(|config| {
        config.max_peers_per_board = MAX;
        config.max_viewers_per_board = MAX;
    })
    .await;
    let full = server.create_board("Full board", "mad-sad-glad").await;
    let other = server.create_board("Other board", "mad-sad-glad").await;
    let mut viewers = vec![SyncPeer::open(&server.ws_url(), full.board_id).await?];
    viewers.push(SyncPeer::open(&server.ws_url(), full.board_id).await?);

    // One viewer too many is refused...
    let mut extra = Joined::open(&server.ws_url()).await?;
    extra.client.send(&extra.request(full.board_id)).await?;
    assert_refused("one viewer too many", &extra.client.expect_close().await?, 1008, "at once");
    // ...but viewers cannot lock the participants out: they have room of their own.
    let mut fay = Participant::join_as_facilitator(&server, &full, "Fay").await?;
    let mut ann = Participant::join(&server, full.board_id, "Ann").await?;
    let bob = http::join_board(&server.http_url(), full.board_id, "Bob", None).await?;
    let mut third = Joined::open(&server.ws_url()).await?;
    third.client.send(&third.request(bob.desk_id)).await?;
    assert_refused("one participant's connection too many", &third.client.expect_close().await?, 1008, "participants");

    // The board's own peers carry on, and so does another board, with more peers than the limit
    // counts in all.
    fay.set_title("Still full").await?;
    ann.pump_until("the new title", |p| p.board().title == "Still full").await?;
    for viewer in &mut viewers {
        viewer.pump_until("the new title", |b| b.title == "Still full").await?;
    }
    let mut carol = Participant::join(&server, other.board_id, "Carol").await?;
    carol.write("glad", "Another board is not full").await?;
    let mut watchers = Vec::new();
    for _ in 0..MAX {
        watchers.push(SyncPeer::open(&server.ws_url(), other.board_id).await?);
    }
    carol.write("glad", "Another board takes its own peers").await?;
    for watcher in &mut watchers {
        watcher.pump_until_heads(&carol.heads()).await?;
    }

    // When a viewer leaves, the board takes a new one.
    viewers.pop().context("a viewer")?.close().await?;
    let newcomer = within("the board to take a new viewer", async {
        loop {
            match SyncPeer::open(&server.ws_url(), full.board_id).await {
                Ok(peer) => return Ok(peer),
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    })
    .await?;
    assert_eq!(newcomer.board().title, "Still full");
    server.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_connection_is_closed_and_a_normal_one_on_another_board_is_untouched() -> anyhow::Result<()> {
    const RATE: u32 = 30;
    let server = TestServer::spawn_with(|config| config.max_messages_per_second = RATE).await;
    let flooded = server.create_board("Flooded", "mad-sad-glad").await;
    let calm = server.create_board("Calm", "mad-sad-glad").await;
    let mut ann = Participant::join_as_facilitator(&server, &calm, "Ann").await?;

    // Ann writes at a human pace while the flood runs.
    let writer = tokio::spawn(async move {
        let mut pace = tokio::time::interval(Duration::from_millis(150));
        for n in 0..12 {
            pace.tick().await;
            ann.write("glad", &format!("calm note {n}")).await?;
        }
        anyhow::Ok(ann)
    });
    let mut flood = Joined::open(&server.ws_url()).await?;
    flood.client.send(&flood.request(flooded.board_id)).await?;
    // Four times the rate at once: the burst allowance is twice the rate.
    for count in 0..4 * u64::from(RATE) {
        if flood.client.send(&flood.ephemeral(flooded.board_id, count, vec![0xa0])).await.is_err() {
            break;
        }
    }
    assert_refused("a flood", &flood.client.expect_close().await?, 1008, "too many messages");

    let mut ann = writer.await??;
    assert_eq!(ann.desk().drafts.len(), 12);
    ann.set_title("Untouched by the flood").await?;
    ann.wait_acknowledged().await?;
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_document_at_its_size_limit_refuses_more_and_keeps_what_it_holds() -> anyhow::Result<()> {
    const MAX_BYTES: usize = 48 * 1024;
    let server = TestServer::spawn_with(|config| config.max_document_bytes = MAX_BYTES).await;
    let board = server.create_board("Size-limited retro", "mad-sad-glad").await;
    let mut ann = Participant::join(&server, board.board_id, "Ann").await?;
    let mut rng = Rng::new(7);
    let mut kept = Vec::new();
    let refusal = loop {
        ensure!(kept.len() < 200, "{} drafts of 1,000 random letters fit in {MAX_BYTES} bytes", kept.len());
        // Letters at random, so the text does not compress away.
        let text: String = (0..1_000).map(|_| char::from(b'a' + rng.range(0..26) as u8)).collect();
        let (id, hash) = ann.send_draft("mad", &text).await?;
        match ann.verdict(hash).await? {
            hindsight_tests::Verdict::Accepted => kept.push((id, text)),
            hindsight_tests::Verdict::Refused(reason) => break reason,
        }
    };
    assert!(refusal.contains("the document is full"), "a clear reason: {refusal}");
    assert!(kept.len() >= 20, "only {} drafts fit before the limit", kept.len());

    // What the desk took is all there, read afresh; and the server serves other documents.
    let back = Participant::connect(&server.ws_url(), ann.identity().clone()).await?;
    let desk = back.desk();
    for (id, text) in &kept {
        assert_eq!(desk.drafts.get(id).map(|d| &d.text), Some(text), "draft {id} was kept");
    }
    assert_eq!(desk.drafts.len(), kept.len(), "the refused draft is not on the desk");
    let mut bob = Participant::join(&server, board.board_id, "Bob").await?;
    bob.write("glad", "My own desk has room").await?;
    server.shutdown().await;
    Ok(())
}
