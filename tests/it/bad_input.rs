//! Hostile and malformed input on the WebSocket: every bad frame, spoofed id, broken handshake,
//! oversized frame or document too many gets an `error` message and a close frame with a fitting
//! code (an unknown board gets `doc-unavailable`), only the offending connection ends, a healthy
//! participant on the same board keeps syncing throughout, and the server never panics. Changes
//! the rules forbid are refused without ending the connection, until a connection has had 50
//! refused; a connection that syncs two participants' desks is closed. The server runs as a child
//! process, so a panic in any of its tasks shows in its log, which each test reads at the end.

use automerge::sync::{self, SyncDoc};
use hindsight_shared::edit;
use hindsight_shared::ids::{DocumentId, PeerId};
use hindsight_shared::protocol::WireMessage;
use hindsight_shared::schema::Phase;
use hindsight_tests::ws::empty_doc_sync_message;
use hindsight_tests::{Closing, Joined, Participant, ServerProcess, SyncPeer, Verdict, WsClient};
use minicbor::Encoder;

/// The message limit the server runs with here, so an oversized frame stays cheap to send.
const MAX_MESSAGE_BYTES: usize = 64 * 1024;

async fn joined(server: &ServerProcess) -> anyhow::Result<Joined> {
    Joined::open(&server.ws_url()).await
}

/// Reads until the server closes, and checks it refused us as [`Closing::assert_refused`] says.
async fn expect_refused(mut joined: Joined, case: &str, code: u16, error: &str) -> anyhow::Result<()> {
    joined.client.expect_close().await?.assert_refused(case, code, error);
    Ok(())
}

fn assert_refused(case: &str, closing: &Closing, code: u16, error: &str) {
    closing.assert_refused(case, code, error);
}

/// A CBOR map with the given string fields, for messages our own encoder would never write.
fn cbor_map(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut e = Encoder::new(Vec::new());
    type Failure = minicbor::encode::Error<std::convert::Infallible>;
    let write = |e: &mut Encoder<Vec<u8>>| -> Result<(), Failure> {
        e.map(fields.len() as u64)?;
        for (key, value) in fields {
            e.str(key)?.str(value)?;
        }
        Ok(())
    };
    write(&mut e).expect("writing CBOR into a Vec cannot fail");
    e.into_writer()
}

/// Deterministic noise (xorshift), so a failure can be replayed.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A server process with a small message limit, a board, and a healthy participant (its
/// facilitator) syncing it. The data directory lives as long as the returned guard.
async fn server_with_a_healthy_peer() -> anyhow::Result<(ServerProcess, DocumentId, Participant, tempfile::TempDir)> {
    let data = tempfile::tempdir()?;
    let limit = MAX_MESSAGE_BYTES.to_string();
    let server = ServerProcess::start_with(data.path(), &["--max-message-bytes", &limit]).await?;
    let board = server.create_board("Hostile retro", "mad-sad-glad").await?;
    let healthy = Participant::join_as_facilitator(&server, &board, "Healthy").await?;
    Ok((server, board.board_id, healthy, data))
}

#[tokio::test]
async fn bad_input_is_refused_and_a_healthy_peer_keeps_syncing() -> anyhow::Result<()> {
    let (mut server, board, mut healthy, _data) = server_with_a_healthy_peer().await?;
    let mut notes = 0;
    // After each group of attacks the healthy participant writes a note and retitles the board,
    // and sees both stored.
    macro_rules! healthy_peer_still_syncs {
        ($after:expr) => {
            notes += 1;
            healthy.write("glad", &format!("still here after {}", $after)).await?;
            healthy.set_title(&format!("Still here after {}", $after)).await?;
            healthy.wait_acknowledged().await?;
        };
    }

    // Frames that are not protocol messages, before and after `join`.
    let mut c = WsClient::connect(&server.ws_url()).await?;
    c.send_binary(noise(1, 300)).await?;
    assert_refused("random bytes before join", &c.expect_close().await?, 1002, "malformed message");
    for seed in 2..12 {
        let mut j = joined(&server).await?;
        j.client.send_binary(noise(seed, 1 + (seed as usize * 37) % 500)).await?;
        expect_refused(j, &format!("random bytes, seed {seed}"), 1002, "malformed message").await?;
    }
    let mut j = joined(&server).await?;
    j.client.send_binary(vec![0x82, 0x01, 0x02]).await?;
    expect_refused(j, "a CBOR array", 1002, "must be a CBOR map").await?;
    let mut j = joined(&server).await?;
    j.client.send_text(r#"{"type":"sync"}"#).await?;
    expect_refused(j, "a text frame", 1003, "binary").await?;
    let mut j = joined(&server).await?;
    j.client.send_binary(cbor_map(&[("senderId", j.me.as_str()), ("targetId", j.server.as_str())])).await?;
    expect_refused(j, "a map without `type`", 1002, "no `type` field").await?;
    let mut j = joined(&server).await?;
    j.client.send_binary(cbor_map(&[("type", "launch-missiles")])).await?;
    expect_refused(j, "an unknown message type", 1002, "unknown message type").await?;
    healthy_peer_still_syncs!("malformed frames");

    // Garbage where a sync message belongs, on the very board the healthy peer has open.
    let mut j = joined(&server).await?;
    j.client.send(&j.sync(board, noise(99, 64))).await?;
    expect_refused(j, "a sync message with garbage data", 1002, "sync message is malformed").await?;

    // A well-formed sync message whose change was tampered with: its checksum fails, so it is
    // malformed input, and nothing of it is stored (the healthy participant's board is unchanged).
    let heads = healthy.heads();
    let mut j = joined(&server).await?;
    j.client.send(&j.sync(board, tampered_change_sync_message())).await?;
    expect_refused(j, "a tampered change", 1002, "bad checksum").await?;
    let mut probe = SyncPeer::open(&server.ws_url(), board).await?;
    probe.pump_until_heads(&heads).await?;
    probe.close().await?;
    healthy_peer_still_syncs!("garbage sync data");

    // An unknown board is no error: `doc-unavailable`, and the connection lives on.
    let mut j = joined(&server).await?;
    let unknown = DocumentId::random();
    j.client.send(&j.request(unknown)).await?;
    match j.client.recv().await? {
        WireMessage::DocUnavailable { document_id, sender_id, target_id } => {
            assert_eq!((document_id, &sender_id, &target_id), (unknown, &j.server, &j.me));
        }
        other => panic!("an unknown board: expected `doc-unavailable`, got {other:?}"),
    }
    j.client.send(&j.request(board)).await?;
    match j.client.recv().await? {
        WireMessage::Sync { document_id, .. } => assert_eq!(document_id, board),
        other => panic!("after `doc-unavailable`, a real board: expected `sync`, got {other:?}"),
    }

    // A document id that is not one is a malformed message.
    let mut j = joined(&server).await?;
    let mut invalid = cbor_map(&[
        ("type", "request"),
        ("documentId", "not-a-document-id"),
        ("senderId", j.me.as_str()),
        ("targetId", j.server.as_str()),
    ]);
    // A fifth entry by hand, `data`: a one-byte byte string.
    invalid[0] += 1;
    invalid.extend_from_slice(&[0x64, b'd', b'a', b't', b'a', 0x41, 0x00]);
    j.client.send_binary(invalid).await?;
    expect_refused(j, "an invalid document id", 1002, "not a valid document id").await?;

    // One connection may have at most 16 documents open.
    let mut j = joined(&server).await?;
    for _ in 0..16 {
        let unknown = DocumentId::random();
        j.client.send(&j.request(unknown)).await?;
        let answer = j.client.recv().await?;
        let unavailable = matches!(answer, WireMessage::DocUnavailable { document_id, .. } if document_id == unknown);
        assert!(unavailable, "an unknown board: expected `doc-unavailable`, got {answer:?}");
    }
    j.client.send(&j.request(board)).await?;
    expect_refused(j, "a seventeenth document", 1008, "at most 16 documents").await?;
    healthy_peer_still_syncs!("unknown, invalid and too many document ids");

    // The handshake: `join` first, once, with a version we speak.
    let mut c = WsClient::connect(&server.ws_url()).await?;
    let me = PeerId::random();
    let early = WireMessage::Leave { sender_id: me.clone() };
    c.send(&early).await?;
    assert_refused("a first message that is not join", &c.expect_close().await?, 1002, "first message must be `join`");
    let mut c = WsClient::connect(&server.ws_url()).await?;
    let old = WireMessage::Join { sender_id: me, supported_protocol_versions: vec!["0".into()], metadata: None };
    c.send(&old).await?;
    assert_refused("an unsupported protocol version", &c.expect_close().await?, 1002, "unsupported protocol");
    let mut j = joined(&server).await?;
    let again =
        WireMessage::Join { sender_id: j.me.clone(), supported_protocol_versions: vec!["1".into()], metadata: None };
    j.client.send(&again).await?;
    expect_refused(j, "a second join", 1002, "already joined").await?;
    healthy_peer_still_syncs!("handshake violations");

    // Spoofing: speaking as the healthy peer, or to someone other than the server.
    let mut j = joined(&server).await?;
    let mut spoof = j.sync(board, empty_doc_sync_message());
    if let WireMessage::Sync { sender_id, .. } = &mut spoof {
        *sender_id = healthy.peer_id().clone();
    }
    j.client.send(&spoof).await?;
    expect_refused(j, "a spoofed senderId", 1002, "senderId must be").await?;
    let mut j = joined(&server).await?;
    let mut misdirected = j.sync(board, empty_doc_sync_message());
    if let WireMessage::Sync { target_id, .. } = &mut misdirected {
        *target_id = healthy.peer_id().clone();
    }
    j.client.send(&misdirected).await?;
    expect_refused(j, "a targetId other than the server", 1002, "targetId must be").await?;

    // Joining under the healthy peer's own id and sending garbage ends only the impostor.
    let mut impostor = WsClient::connect(&server.ws_url()).await?;
    let server_id = impostor.join(healthy.peer_id()).await?;
    let (sender_id, target_id) = (healthy.peer_id().clone(), server_id);
    impostor.send(&WireMessage::Sync { document_id: board, sender_id, target_id, data: vec![0x42, 0xff] }).await?;
    assert_refused("an impostor with garbage", &impostor.expect_close().await?, 1002, "sync message is malformed");
    healthy_peer_still_syncs!("spoofing");

    // Everything the healthy participant wrote is on the server, as a second connection sees.
    let again = Participant::connect(&server.ws_url(), healthy.identity().clone()).await?;
    assert_eq!(again.heads(), healthy.heads());
    assert_eq!(again.desk().drafts.len(), notes);
    assert_eq!(again.board().title, "Still here after spoofing");

    server.stop().await?;
    server.assert_no_panics();
    Ok(())
}

#[tokio::test]
async fn an_oversized_frame_is_refused_with_close_code_1009() -> anyhow::Result<()> {
    let (mut server, board, mut healthy, _data) = server_with_a_healthy_peer().await?;

    // A frame just under the limit is read, and refused for what it says.
    let mut j = joined(&server).await?;
    j.client.send_binary(noise(7, MAX_MESSAGE_BYTES - 1024)).await?;
    expect_refused(j, "a frame under the limit", 1002, "malformed").await?;

    // A frame over the limit is refused unread.
    let mut j = joined(&server).await?;
    j.client.send_binary(noise(8, MAX_MESSAGE_BYTES + 40 * 1024)).await?;
    let closing = j.client.expect_close().await?;

    healthy.write("mad", "An attacker sent a huge frame").await?;
    healthy.set_title("After a huge frame").await?;
    let mut newcomer = SyncPeer::open(&server.ws_url(), board).await?;
    newcomer.pump_until_heads(&healthy.heads()).await?;
    assert_eq!(newcomer.board().title, "After a huge frame");
    server.stop().await?;
    server.assert_no_panics();

    assert_eq!(closing.error(), Some("message too big"), "an oversized frame: {closing:?}");
    assert_eq!(
        closing.code,
        Some(1009),
        "SERVER BUG: the server sent `error` but its 1009 close frame never arrived; the client saw `{}`. \
         The server does not set TCP_NODELAY, so the small close frame waits (Nagle) behind the \
         unacknowledged `error` frame, and then the socket is dropped with the rest of the oversized \
         frame unread, so the kernel sends a TCP reset that discards the waiting close frame \
         (server/src/server.rs axum::serve without nodelay; server/src/connection.rs serve/write_loop \
         drop the socket right after the close frame). {closing:?}",
        closing.ended.as_deref().unwrap_or("no close frame"),
    );
    Ok(())
}

/// A sync message that carries one change whose bytes were tampered with after it was made.
fn tampered_change_sync_message() -> Vec<u8> {
    let mut doc = automerge::Automerge::new();
    let mut tx = doc.transaction();
    automerge::transaction::Transactable::put(&mut tx, automerge::ROOT, "title", "x".repeat(40))
        .expect("a put on a fresh document");
    tx.commit();
    let mut state = sync::State::new();
    // Pretend the other side has nothing, so the message carries the change.
    let first = doc.generate_sync_message(&mut state).expect("a first message");
    let mut reply_state = sync::State::new();
    let mut empty = automerge::Automerge::new();
    empty.receive_sync_message(&mut reply_state, first).expect("an empty doc takes a first message");
    let reply = empty.generate_sync_message(&mut reply_state).expect("a reply");
    doc.receive_sync_message(&mut state, reply).expect("the reply applies");
    let mut bytes = doc.generate_sync_message(&mut state).expect("a message with the change").encode();
    // Flip a byte in the middle of the title's text, inside the change.
    let at = bytes.windows(8).position(|w| w == b"xxxxxxxx").expect("the change is in the message") + 4;
    bytes[at] ^= 0x55;
    bytes
}

#[tokio::test]
async fn a_viewers_change_is_refused_and_its_connection_lives_on() -> anyhow::Result<()> {
    let (mut server, board, mut healthy, _data) = server_with_a_healthy_peer().await?;
    let mut viewer = SyncPeer::open(&server.ws_url(), board).await?;
    let verdict = viewer.raw_board_change(|tx| Ok(edit::set_phase(tx, Phase::Vote)?)).await?;
    assert!(
        matches!(&verdict, Verdict::Refused(reason) if reason.contains("join the board")),
        "a viewer's change: {verdict:?}"
    );
    assert_eq!(viewer.board().phase, Phase::Write, "the viewer dropped its refused change");

    // Still connected and syncing: the facilitator's change reaches the viewer.
    healthy.set_title("Seen by the viewer").await?;
    viewer.pump_until("the new title", |b| b.title == "Seen by the viewer").await?;
    assert_eq!(viewer.heads(), healthy.heads());
    server.stop().await?;
    server.assert_no_panics();
    Ok(())
}

#[tokio::test]
async fn a_connection_that_keeps_sending_refused_changes_is_closed() -> anyhow::Result<()> {
    let (mut server, board, _healthy, _data) = server_with_a_healthy_peer().await?;
    let mut viewer = SyncPeer::open(&server.ws_url(), board).await?;
    for n in 0..50 {
        let verdict = viewer.raw_board_change(|tx| Ok(edit::set_title(tx, &format!("Mine {n}"))?)).await?;
        assert!(verdict.is_refused(), "refusal {n}: {verdict:?}");
    }
    let options = hindsight_tests::ChangeOptions::default();
    let attempt = viewer.raw_change(board, &options, |tx| Ok(edit::set_title(tx, "One too many")?)).await;
    let error = attempt.expect_err("the 51st refused change ends the connection");
    // The `error` message ended the sync, or is still waiting if an answer to the server failed
    // first because the connection was already closing.
    let closing = viewer.client().expect_close().await?;
    let said = format!("{error:#} / {:?}", closing.error());
    assert!(said.contains("too many refused changes"), "{said}");
    assert_eq!(closing.code, Some(1008), "{closing:?}");
    server.stop().await?;
    server.assert_no_panics();
    Ok(())
}

#[tokio::test]
async fn a_connection_that_syncs_two_desks_is_closed() -> anyhow::Result<()> {
    let (mut server, board, mut healthy, _data) = server_with_a_healthy_peer().await?;
    let mut ann = Participant::join(&server, board, "Ann").await?;
    let mut bob = Participant::join(&server, board, "Bob").await?;

    // Ann's connection asks for Bob's desk too: it would be two people at once.
    let bobs_desk = bob.desk_id();
    ann.peer().request(bobs_desk).await?;
    let closing = ann.peer().client().expect_close().await?;
    assert_refused("a second desk", &closing, 1002, "one participant's desk");
    let leaked = closing
        .messages
        .iter()
        .any(|m| matches!(m, WireMessage::Sync { document_id, .. } if *document_id == bobs_desk));
    assert!(!leaked, "nothing of Bob's desk was sent: {closing:?}");

    // Bob and everyone else carry on.
    bob.write("sad", "Someone tried my desk").await?;
    healthy.set_title("Carrying on").await?;
    bob.pump_until("the new title", |p| p.board().title == "Carrying on").await?;
    server.stop().await?;
    server.assert_no_panics();
    Ok(())
}
