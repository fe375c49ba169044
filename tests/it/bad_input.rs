//! Hostile and malformed input on the WebSocket: every bad frame gets an `error` message and a
//! close frame with a fitting code (or, for an unknown board, `doc-unavailable`), only the
//! offending connection ends, a healthy peer on the same board keeps syncing throughout, and the
//! server never panics. The server runs as a child process so that a panic in any of its tasks
//! shows in its log, which the test reads at the end.

use automerge::sync::{self, SyncDoc};
use hindsight_shared::ids::{DocumentId, PeerId};
use hindsight_shared::protocol::WireMessage;
use hindsight_tests::{Closing, ServerProcess, SyncPeer, WsClient};
use minicbor::Encoder;

/// The message limit the server runs with here, so an oversized frame stays cheap to send.
const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// A connection that has joined: the client, our peer id and the server's.
struct Joined {
    client: WsClient,
    me: PeerId,
    server: PeerId,
}

async fn joined(server: &ServerProcess) -> anyhow::Result<Joined> {
    let mut client = WsClient::connect(&server.ws_url()).await?;
    let me = PeerId::random();
    let server = client.join(&me).await?;
    Ok(Joined { client, me, server })
}

/// Checks that the server closed with `code` after an `error` message containing `error`.
fn assert_refused(case: &str, closing: &Closing, code: u16, error: &str) {
    assert_eq!(closing.code, Some(code), "{case}: the close code; the server said {closing:?}");
    let said = closing.error().unwrap_or_else(|| panic!("{case}: no `error` message before the close: {closing:?}"));
    assert!(said.contains(error), "{case}: the error `{said}` does not mention `{error}`");
}

/// The first sync message of an empty document: what `request` carries.
fn empty_doc_sync_message() -> Vec<u8> {
    let message = automerge::Automerge::new().generate_sync_message(&mut sync::State::new());
    message.expect("an empty document has a first sync message").encode()
}

/// A CBOR map with the given string fields, for messages our own encoder would never write.
fn cbor_map(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut e = Encoder::new(Vec::new());
    let write = |e: &mut Encoder<Vec<u8>>| -> Result<(), minicbor::encode::Error<std::convert::Infallible>> {
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

#[tokio::test]
async fn bad_input_is_refused_and_a_healthy_peer_keeps_syncing() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let limit = MAX_MESSAGE_BYTES.to_string();
    let mut server = ServerProcess::start_with(data.path(), &["--max-message-bytes", &limit]).await?;
    let board = server.create_board("Hostile retro", "mad-sad-glad").await?.board_id;
    let mut healthy = SyncPeer::open(&server.ws_url(), board).await?;
    let mut notes = 0;
    // The healthy peer writes a note and sees it stored after every attack.
    macro_rules! healthy_peer_still_syncs {
        ($case:expr) => {
            notes += 1;
            healthy.add_note("glad", &format!("still here after: {}", $case)).await?;
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
        assert_refused(&format!("random bytes, seed {seed}"), &j.client.expect_close().await?, 1002, "malformed");
    }
    healthy_peer_still_syncs!("random bytes");

    let mut j = joined(&server).await?;
    j.client.send_binary(vec![0x82, 0x01, 0x02]).await?;
    assert_refused("a CBOR array", &j.client.expect_close().await?, 1002, "must be a CBOR map");

    let mut j = joined(&server).await?;
    j.client.send_text(r#"{"type":"sync"}"#).await?;
    assert_refused("a text frame", &j.client.expect_close().await?, 1003, "binary");

    let mut j = joined(&server).await?;
    j.client.send_binary(cbor_map(&[("senderId", j.me.as_str()), ("targetId", j.server.as_str())])).await?;
    assert_refused("a map without `type`", &j.client.expect_close().await?, 1002, "no `type` field");

    let mut j = joined(&server).await?;
    j.client.send_binary(cbor_map(&[("type", "launch-missiles")])).await?;
    assert_refused("an unknown message type", &j.client.expect_close().await?, 1002, "unknown message type");
    healthy_peer_still_syncs!("malformed messages");

    // Garbage where a sync message belongs, on the very board the healthy peer has open.
    let mut j = joined(&server).await?;
    let garbage = WireMessage::Sync { document_id: board, sender_id: j.me.clone(), target_id: j.server.clone(), data: noise(99, 64) };
    j.client.send(&garbage).await?;
    assert_refused("a sync message with garbage data", &j.client.expect_close().await?, 1002, "sync message is malformed");

    // A well-formed sync message whose change is corrupt: checked, not trusted.
    let mut j = joined(&server).await?;
    let corrupt = corrupt_change_sync_message();
    j.client.send(&WireMessage::Sync { document_id: board, sender_id: j.me.clone(), target_id: j.server.clone(), data: corrupt }).await?;
    let closing = j.client.expect_close().await?;
    assert_eq!(closing.code, Some(1002), "a sync message with a corrupt change: {closing:?}");
    assert!(closing.error().is_some(), "a sync message with a corrupt change: no `error`: {closing:?}");
    healthy_peer_still_syncs!("garbage sync data");

    // Ids: an unknown board is not an error, a malformed id is.
    let mut j = joined(&server).await?;
    let unknown = DocumentId::random();
    let request = |document_id| WireMessage::Request {
        document_id,
        sender_id: j.me.clone(),
        target_id: j.server.clone(),
        data: empty_doc_sync_message(),
    };
    j.client.send(&request(unknown)).await?;
    match j.client.recv().await? {
        WireMessage::DocUnavailable { document_id, sender_id, target_id } => {
            assert_eq!((document_id, &sender_id, &target_id), (unknown, &j.server, &j.me));
        }
        other => panic!("an unknown board: expected `doc-unavailable`, got {other:?}"),
    }
    // The connection lives on and can open a real board.
    j.client.send(&request(board)).await?;
    match j.client.recv().await? {
        WireMessage::Sync { document_id, .. } => assert_eq!(document_id, board),
        other => panic!("after `doc-unavailable`, a real board: expected `sync`, got {other:?}"),
    }

    let mut j = joined(&server).await?;
    let mut invalid = cbor_map(&[
        ("type", "request"),
        ("documentId", "not-a-document-id"),
        ("senderId", j.me.as_str()),
        ("targetId", j.server.as_str()),
    ]);
    // Add the `data` field by hand: a fifth entry with a byte string.
    invalid[0] += 1;
    invalid.extend_from_slice(&[0x64, b'd', b'a', b't', b'a', 0x41, 0x00]);
    j.client.send_binary(invalid).await?;
    assert_refused("an invalid document id", &j.client.expect_close().await?, 1002, "not a valid document id");
    healthy_peer_still_syncs!("unknown and invalid ids");

    // The handshake: `join` first, once, with a version we speak.
    let mut c = WsClient::connect(&server.ws_url()).await?;
    let me = PeerId::random();
    c.send(&WireMessage::Request { document_id: board, sender_id: me.clone(), target_id: "server".into(), data: empty_doc_sync_message() })
        .await?;
    assert_refused("a first message that is not join", &c.expect_close().await?, 1002, "first message must be `join`");

    let mut c = WsClient::connect(&server.ws_url()).await?;
    c.send(&WireMessage::Join { sender_id: me.clone(), supported_protocol_versions: vec!["0".into()], metadata: None })
        .await?;
    assert_refused("an unsupported protocol version", &c.expect_close().await?, 1002, "unsupported protocol version");

    let mut j = joined(&server).await?;
    j.client
        .send(&WireMessage::Join { sender_id: j.me.clone(), supported_protocol_versions: vec!["1".into()], metadata: None })
        .await?;
    assert_refused("a second join", &j.client.expect_close().await?, 1002, "already joined");
    healthy_peer_still_syncs!("handshake violations");

    // Spoofing: speaking as the healthy peer, or to someone other than the server.
    let mut j = joined(&server).await?;
    let spoof = WireMessage::Sync {
        document_id: board,
        sender_id: healthy.peer_id().clone(),
        target_id: j.server.clone(),
        data: empty_doc_sync_message(),
    };
    j.client.send(&spoof).await?;
    assert_refused("a spoofed senderId", &j.client.expect_close().await?, 1002, "senderId must be");

    let mut j = joined(&server).await?;
    let misdirected = WireMessage::Sync {
        document_id: board,
        sender_id: j.me.clone(),
        target_id: healthy.peer_id().clone(),
        data: empty_doc_sync_message(),
    };
    j.client.send(&misdirected).await?;
    assert_refused("a targetId other than the server", &j.client.expect_close().await?, 1002, "targetId must be");

    // Joining under the healthy peer's own id and sending garbage ends only the impostor.
    let mut impostor = WsClient::connect(&server.ws_url()).await?;
    let server_id = impostor.join(healthy.peer_id()).await?;
    let garbage = WireMessage::Sync { document_id: board, sender_id: healthy.peer_id().clone(), target_id: server_id, data: vec![0x42, 0xff] };
    impostor.send(&garbage).await?;
    assert_refused("an impostor with garbage", &impostor.expect_close().await?, 1002, "sync message is malformed");
    healthy_peer_still_syncs!("spoofing");

    // Size: a frame just under the limit is read (and refused for what it says); one over is refused
    // unread.
    let mut j = joined(&server).await?;
    j.client.send_binary(noise(7, MAX_MESSAGE_BYTES - 1024)).await?;
    assert_refused("a frame under the limit", &j.client.expect_close().await?, 1002, "malformed");
    let mut j = joined(&server).await?;
    j.client.send_binary(noise(8, MAX_MESSAGE_BYTES + 40 * 1024)).await?;
    assert_refused("an oversized frame", &j.client.expect_close().await?, 1009, "too big");
    healthy_peer_still_syncs!("an oversized frame");

    // Everything the healthy peer wrote is on the server, as a newcomer sees.
    let mut newcomer = SyncPeer::open(&server.ws_url(), board).await?;
    newcomer.pump_until_heads(&healthy.heads()).await?;
    assert_eq!(newcomer.board().notes.len(), notes);

    server.stop().await?;
    server.assert_no_panics();
    Ok(())
}

/// A sync message that carries one change whose bytes were tampered with after it was made.
fn corrupt_change_sync_message() -> Vec<u8> {
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
