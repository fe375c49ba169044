//! Sync through the server: peers that write at the same time converge on one document, the
//! server holds all of it and acknowledges every stored change to its writer, edits and deletes
//! travel from one peer to another, and presence (`ephemeral`) is relayed but never stored.

use std::collections::BTreeSet;
use std::time::Duration;

use hindsight_shared::protocol::WireMessage;
use hindsight_tests::{SyncPeer, TestServer};

const NOTES_PER_PEER: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_peers_writing_at_once_converge_and_the_server_keeps_all() -> anyhow::Result<()> {
    let server = TestServer::spawn().await;
    let board = server.create_board("Sprint 42", "start-stop-continue").await;
    let columns = ["start", "stop", "continue"];
    let mut peers = Vec::new();
    for _ in columns {
        peers.push(SyncPeer::open(&server.ws_url(), board.board_id).await?);
    }

    // Each peer writes its notes as fast as it can, without waiting for the others.
    let writers: Vec<_> = peers
        .into_iter()
        .zip(columns)
        .enumerate()
        .map(|(i, (mut peer, column))| {
            tokio::spawn(async move {
                for n in 0..NOTES_PER_PEER {
                    peer.add_note(column, &format!("peer {i}, note {n}")).await?;
                }
                anyhow::Ok(peer)
            })
        })
        .collect();
    let mut peers = Vec::new();
    for writer in writers {
        peers.push(writer.await??);
    }

    let total = columns.len() * NOTES_PER_PEER;
    for peer in &mut peers {
        peer.pump_until(&format!("all {total} notes"), |board| board.notes.len() == total).await?;
    }
    let heads = peers[0].heads();
    let content = peers[0].board();
    for peer in &peers[1..] {
        assert_eq!(peer.heads(), heads, "two peers hold all notes but different histories");
        assert_eq!(peer.board(), content);
    }
    for (i, column) in columns.into_iter().enumerate() {
        // Notes written in the same millisecond have no order, so compare them as sets.
        let texts: BTreeSet<String> = content.notes_in(column).map(|note| note.text.clone()).collect();
        let expected: BTreeSet<String> = (0..NOTES_PER_PEER).map(|n| format!("peer {i}, note {n}")).collect();
        assert_eq!(texts, expected, "the notes of column {column}");
    }

    // A peer that arrives now learns everything from the server alone.
    let mut late = SyncPeer::open(&server.ws_url(), board.board_id).await?;
    late.pump_until_heads(&heads).await?;
    assert_eq!(late.board(), content);
    assert_eq!(late.board().title, "Sprint 42");

    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn every_stored_change_is_acknowledged_to_its_writer() -> anyhow::Result<()> {
    let server = TestServer::spawn().await;
    let board = server.create_board("Acknowledgements", "mad-sad-glad").await;
    let mut writer = SyncPeer::open(&server.ws_url(), board.board_id).await?;
    for round in 0..10 {
        // The first note keeps the board busy storing it while the second note and a message
        // that restates the writer's heads (a browser answering a server message) queue up; the
        // board then takes both in one batch.
        writer.add_note("glad", &format!("round {round}, first")).await?;
        writer.add_note("glad", &format!("round {round}, second")).await?;
        writer.restate_heads().await?;
        if tokio::time::timeout(Duration::from_secs(5), writer.wait_acknowledged()).await.is_err() {
            let mut probe = SyncPeer::open(&server.ws_url(), board.board_id).await?;
            probe.pump_until_heads(&writer.heads()).await?;
            panic!(
                "SERVER BUG: round {round}: the server stored the writer's note (a fresh peer gets heads \
                 {:?}) but never sent the writer a sync message with those heads, so its client shows \
                 the edit as unsynced. When a peer's change and its next heads-only message are in one \
                 batch, automerge's receive_sync_message sets last_sent_heads to the peer's heads and \
                 generate_sync_message then returns None (server/src/board/core.rs, flush).",
                writer.heads()
            );
        }
    }
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn an_edit_and_a_delete_reach_the_other_peer() -> anyhow::Result<()> {
    let server = TestServer::spawn().await;
    let board = server.create_board("Incident 7", "incident-postmortem").await;
    let mut alice = SyncPeer::open(&server.ws_url(), board.board_id).await?;
    let mut bob = SyncPeer::open(&server.ws_url(), board.board_id).await?;
    let column = alice.board().columns[0].id.clone();

    let id = alice.add_note(&column, "The pager was silent").await?;
    bob.pump_until("alice's note", |b| b.notes.get(id.as_str()).is_some_and(|n| n.text == "The pager was silent"))
        .await?;
    assert_eq!(bob.board().notes[id.as_str()].column, column);

    alice.edit_note(&id, "The pager was muted").await?;
    bob.pump_until("alice's edit", |b| b.notes.get(id.as_str()).is_some_and(|n| n.text == "The pager was muted"))
        .await?;

    alice.delete_note(&id).await?;
    bob.pump_until("alice's delete", |b| !b.notes.contains_key(id.as_str())).await?;
    assert!(bob.board().notes.is_empty());

    // And back the other way: alice hears of bob's note.
    let reply = bob.add_note(&column, "Nobody owned the rota").await?;
    alice.pump_until("bob's note", |b| b.notes.contains_key(reply.as_str())).await?;
    assert_eq!(alice.board().notes.len(), 1);

    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn presence_is_relayed_to_the_other_peers_and_never_stored() -> anyhow::Result<()> {
    let server = TestServer::spawn().await;
    let board = server.create_board("Presence", "mad-sad-glad").await;
    let mut alice = SyncPeer::open(&server.ws_url(), board.board_id).await?;
    let mut bob = SyncPeer::open(&server.ws_url(), board.board_id).await?;
    let mut carol = SyncPeer::open(&server.ws_url(), board.board_id).await?;
    let heads = alice.heads();

    alice.send_ephemeral("alice-tab-1", 7, b"\xa1\x66cursor\x03").await?;
    for (name, peer) in [("bob", &mut bob), ("carol", &mut carol)] {
        match peer.next_ephemeral().await? {
            WireMessage::Ephemeral { document_id, sender_id, target_id, session_id, count, data } => {
                assert_eq!(document_id, board.board_id, "{name}");
                assert_eq!(&sender_id, alice.peer_id(), "{name}: relayed as alice's");
                assert_eq!(&target_id, peer.peer_id(), "{name}: addressed to its receiver");
                assert_eq!(
                    (session_id.as_str(), count, data.as_slice()),
                    ("alice-tab-1", 7, &b"\xa1\x66cursor\x03"[..])
                );
            }
            other => panic!("{name}: expected an ephemeral message, got {other:?}"),
        }
    }

    // Not stored: a note written afterwards is the only change a newcomer finds beyond the board.
    bob.add_note("glad", "After the cursor moved").await?;
    let mut newcomer = SyncPeer::open(&server.ws_url(), board.board_id).await?;
    newcomer.pump_until_heads(&bob.heads()).await?;
    assert_eq!(newcomer.doc().get_changes(&heads).len(), 1, "only bob's note was stored");

    server.shutdown().await;
    Ok(())
}
