//! Sync through the server: participants who write at the same time converge on one board once
//! the facilitator reveals, a late viewer learns all of it from the server alone, the server
//! acknowledges every stored change to its writer, edits and deletions of drafts follow to the
//! board, the presence roster reaches every board peer, and client `ephemeral` messages are
//! relayed but never stored.

use std::collections::BTreeSet;
use std::time::Duration;

use hindsight_shared::edit;
use hindsight_shared::presence::Notice;
use hindsight_shared::protocol::WireMessage;
use hindsight_shared::schema::Phase;
use hindsight_tests::{Participant, SyncPeer, TestServer};

const NOTES_PER_PARTICIPANT: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_participants_writing_at_once_converge_after_the_reveal() -> anyhow::Result<()> {
    let server = TestServer::spawn().await;
    let board = server.create_board("Sprint 42", "start-stop-continue").await;
    let columns = ["start", "stop", "continue"];
    let mut people = vec![Participant::join_as_facilitator(&server, &board, "Fay").await?];
    for name in ["Ann", "Bob"] {
        people.push(Participant::join(&server, board.board_id, name).await?);
    }

    // Each writes their drafts as fast as they can, without waiting for anyone, then waits for
    // the server to have stored them all.
    let writers: Vec<_> = people
        .into_iter()
        .zip(columns)
        .enumerate()
        .map(|(i, (mut person, column))| {
            tokio::spawn(async move {
                for n in 0..NOTES_PER_PARTICIPANT {
                    person.send_draft(column, &format!("person {i}, note {n}")).await?;
                }
                person.wait_acknowledged().await?;
                anyhow::Ok(person)
            })
        })
        .collect();
    let mut people = Vec::new();
    for writer in writers {
        people.push(writer.await??);
    }
    for person in &people {
        assert_eq!(person.desk().drafts.len(), NOTES_PER_PARTICIPANT);
        assert!(person.board().notes.is_empty(), "drafts stay on their desks while writing");
    }

    people[0].set_phase(Phase::Reveal).await?;
    people[0].reveal_all().await?;
    let total = columns.len() * NOTES_PER_PARTICIPANT;
    for person in &mut people {
        person.pump_until(&format!("all {total} notes"), |p| p.board().notes.len() == total).await?;
    }
    let heads = people[0].heads();
    let content = people[0].board();
    for person in &mut people[1..] {
        person.pump_until_heads(&heads).await?;
        assert_eq!(person.board(), content);
    }
    for (i, column) in columns.into_iter().enumerate() {
        let texts: BTreeSet<String> = content.notes_in(column).map(|note| note.text.clone()).collect();
        let expected: BTreeSet<String> = (0..NOTES_PER_PARTICIPANT).map(|n| format!("person {i}, note {n}")).collect();
        assert_eq!(texts, expected, "the notes of column {column}");
    }

    // A viewer that arrives now learns everything from the server alone.
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
    let mut writer = Participant::join_as_facilitator(&server, &board, "Fay").await?;
    for round in 0..10 {
        // The first change keeps the board busy storing it while the second and a message that
        // restates the writer's heads (a browser answering a server message) queue up; the board
        // then takes both in one batch. Once on the desk, once on the board.
        writer.send_draft("glad", &format!("round {round}, first")).await?;
        writer.send_draft("glad", &format!("round {round}, second")).await?;
        let desk = writer.desk_id();
        writer.peer().restate_heads(desk).await?;
        writer.send_board_change(|tx| Ok(edit::set_title(tx, &format!("Round {round}"))?)).await?;
        writer.send_board_change(|tx| Ok(edit::set_title(tx, &format!("Round {round}, again"))?)).await?;
        let board_id = writer.board_id();
        writer.peer().restate_heads(board_id).await?;
        tokio::time::timeout(Duration::from_secs(5), writer.wait_acknowledged())
            .await
            .map_err(|_| anyhow::anyhow!("round {round}: the server stored the changes but never said so"))??;
    }
    assert_eq!(writer.refusals(), 0, "{:?}", writer.notices());
    assert_eq!(writer.desk().drafts.len(), 20);
    assert_eq!(writer.board().title, "Round 9, again");
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn edits_and_deletions_of_drafts_follow_to_the_board() -> anyhow::Result<()> {
    let server = TestServer::spawn().await;
    let board = server.create_board("Incident 7", "incident-postmortem").await;
    let mut fay = Participant::join_as_facilitator(&server, &board, "Fay").await?;
    let mut alice = Participant::join(&server, board.board_id, "Alice").await?;
    let mut bob = Participant::join(&server, board.board_id, "Bob").await?;
    let column = alice.board().columns[0].id.clone();
    let alices = alice.write(&column, "The pager was silent").await?;
    let bobs = bob.write(&column, "Nobody owned the rota").await?;
    let (alices, bobs) = (alice.note_id(&alices), bob.note_id(&bobs));

    fay.set_phase(Phase::Reveal).await?;
    fay.reveal(&column).await?;
    bob.pump_until("alice's note", |p| p.board().notes.contains_key(&alices)).await?;
    alice.pump_until("bob's note", |p| p.board().notes.contains_key(&bobs)).await?;
    assert_eq!(bob.board().notes[&alices].text, "The pager was silent");
    assert_eq!(bob.board().notes[&alices].column, column);

    let draft = alice.desk().drafts.into_keys().next().expect("alice's draft");
    alice.edit_draft(&draft, "The pager was muted").await?;
    bob.pump_until("alice's edit", |p| p.board().notes.get(&alices).is_some_and(|n| n.text == "The pager was muted"))
        .await?;

    let draft = bob.desk().drafts.into_keys().next().expect("bob's draft");
    bob.delete_draft(&draft).await?;
    alice.pump_until("bob's deletion", |p| !p.board().notes.contains_key(&bobs)).await?;
    assert_eq!(alice.board().notes.len(), 1);
    fay.pump_until_heads(&alice.heads()).await?;
    assert_eq!(fay.board(), alice.board());

    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn the_roster_tells_every_board_peer_who_is_here() -> anyhow::Result<()> {
    let server = TestServer::spawn().await;
    let board = server.create_board("Presence", "mad-sad-glad").await;
    let mut viewer = SyncPeer::open(&server.ws_url(), board.board_id).await?;
    let mut fay = Participant::join_as_facilitator(&server, &board, "Fay").await?;
    let mut ann = Participant::join(&server, board.board_id, "Ann").await?;
    ann.write("mad", "Slow builds").await?;
    ann.write("sad", "No demo").await?;

    let ann_id = ann.id().to_owned();
    viewer
        .pump("a roster with Ann's two notes", |v| {
            v.roster().is_some_and(|r| r.iter().any(|p| p.id == ann_id && p.notes == Some(2)))
        })
        .await?;
    let roster = viewer.roster().expect("a roster").to_vec();
    let names: BTreeSet<&str> = roster.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, BTreeSet::from(["Ann", "Fay"]));
    assert!(roster.iter().all(|p| p.online));
    assert!(roster.iter().any(|p| p.name == "Fay" && p.facilitator && p.id == fay.id()));
    assert!(roster.iter().any(|p| p.name == "Ann" && !p.facilitator));
    let you = |notices: &[(_, Notice)]| -> Vec<Option<String>> {
        notices
            .iter()
            .filter_map(|(_, n)| match n {
                Notice::Presence { you, .. } => Some(you.clone()),
                Notice::Refused { .. } => None,
            })
            .collect()
    };
    assert!(you(viewer.notices()).iter().all(Option::is_none), "a viewer is nobody");
    fay.pump_until("a roster", |p| p.roster().is_some()).await?;
    assert!(
        you(fay.notices()).iter().all(|you| you.as_deref() == Some(fay.id())),
        "each participant is told who they are"
    );

    ann.close().await?;
    viewer
        .pump("Ann to go offline", |v| v.roster().is_some_and(|r| r.iter().any(|p| p.id == ann_id && !p.online)))
        .await?;
    server.shutdown().await;
    Ok(())
}

/// A participant who does nothing still hears from the board: an empty roster update at least
/// every 15 s, by which the browser tells a quiet connection from a dead one.
#[tokio::test]
async fn a_quiet_connection_hears_a_heartbeat() -> anyhow::Result<()> {
    let server = TestServer::spawn().await;
    let board = server.create_board("Quiet retro", "mad-sad-glad").await;
    let mut ann = Participant::join(&server, board.board_id, "Ann").await?;
    ann.pump_until("the roster", |p| p.roster().is_some()).await?;
    let heard = ann.notices().len();
    let started = tokio::time::Instant::now();
    let is_beat = |notice: &Notice| matches!(notice, Notice::Presence { participants, full: false, .. } if participants.is_empty());
    // The heartbeat is due 15 s after the last update; a busy machine may add to that.
    let deadline = started + Duration::from_secs(45);
    while !ann.notices()[heard..].iter().any(|(_, notice)| is_beat(notice)) {
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "no heartbeat within 45 s");
        let seen = ann.notices().len();
        // Each wait ends with the next notice, or after the harness's timeout; then look again.
        let _ = ann.pump_until("a notice", |p| p.notices().len() > seen).await;
    }
    assert!(started.elapsed() >= Duration::from_secs(10), "a heartbeat only after a quiet while");
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn ephemeral_messages_are_relayed_to_the_other_peers_and_never_stored() -> anyhow::Result<()> {
    let server = TestServer::spawn().await;
    let board = server.create_board("Presence", "mad-sad-glad").await;
    let mut fay = Participant::join_as_facilitator(&server, &board, "Fay").await?;
    let mut alice = SyncPeer::open(&server.ws_url(), board.board_id).await?;
    let mut bob = SyncPeer::open(&server.ws_url(), board.board_id).await?;
    let mut carol = SyncPeer::open(&server.ws_url(), board.board_id).await?;
    alice.pump_until_heads(&fay.heads()).await?;
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

    // Not stored: a title written afterwards is the only change a newcomer finds beyond the board.
    fay.set_title("After the cursor moved").await?;
    let mut newcomer = SyncPeer::open(&server.ws_url(), board.board_id).await?;
    newcomer.pump_until_heads(&fay.heads()).await?;
    assert_eq!(newcomer.doc().get_changes(&heads).len(), 1, "only the title was stored");

    server.shutdown().await;
    Ok(())
}

/// Automerge's sync protocol may send a change before the change it builds on: the receiver's
/// bloom filter can falsely claim to hold the first (about 1% of the time), and the sender then
/// sends only the second; the receiver asks for the first by `need`. A server that refuses the
/// second instead makes the writer drop it: a note that silently disappears.
#[tokio::test]
async fn a_change_that_arrives_before_the_one_it_builds_on_waits_for_it() -> anyhow::Result<()> {
    let server = TestServer::spawn().await;
    let board = server.create_board("Out of order", "mad-sad-glad").await;
    let mut ann = Participant::join(&server, board.board_id, "Ann").await?;
    let desk = ann.desk_id();
    let draft = |id: &str| hindsight_shared::schema::Draft {
        id: id.into(),
        column: "glad".into(),
        text: format!("draft {id}"),
        created_at: 0,
    };
    let options = hindsight_tests::ChangeOptions { fresh_actor: false, ..Default::default() };
    let first = ann.peer().commit_local(desk, &options, |tx| Ok(edit::add_draft(tx, &draft("first"))?))?;
    let second = ann.peer().commit_local(desk, &options, |tx| Ok(edit::add_draft(tx, &draft("second"))?))?;
    // What a sender whose bloom filter check went wrong for `first` sends.
    ann.peer().send_sync_by_hand(desk, vec![second], &[second]).await?;

    let verdict = ann.verdict(second).await?;
    assert!(
        !verdict.is_refused(),
        "SERVER BUG: a change whose dependency has not arrived yet was refused ({verdict:?}), so the \
         writer drops it and the note is lost. server/src/board/replica.rs Replica::receive refuses \
         changes with missing dependencies instead of keeping them until the dependency arrives \
         (and asking for it: automerge's `need` is computed from its own queue, which the server \
         bypasses)."
    );
    assert_eq!(ann.verdict(first).await?, hindsight_tests::Verdict::Accepted);
    assert_eq!(ann.desk().drafts.len(), 2);
    server.shutdown().await;
    Ok(())
}

/// A change built on a refused change can only be refused too, even when it comes in a later
/// message; it must not wait for its dependency, which will never come.
#[tokio::test]
async fn a_change_built_on_a_refused_change_is_refused_at_once() -> anyhow::Result<()> {
    let server = TestServer::spawn().await;
    let board = server.create_board("Built on sand", "mad-sad-glad").await;
    let mut ann = Participant::join(&server, board.board_id, "Ann").await?;
    let sand = ann
        .send_desk_change(|tx| Ok(automerge::transaction::Transactable::put(tx, automerge::ROOT, "name", "Ann")?))
        .await?;
    let built = ann.send_draft("glad", "Built on it").await?.1;
    let named = |hash: automerge::ChangeHash| {
        move |p: &Participant| {
            p.notices().iter().any(|(_, n)| matches!(n, Notice::Refused { changes, .. } if changes.contains(&hash.0)))
        }
    };
    ann.pump_until("the server to refuse the first change", named(sand)).await?;
    ann.pump_until("the server to refuse the change built on it", named(built)).await?;
    assert!(ann.desk().drafts.is_empty());
    ann.write("glad", "On solid ground").await?;
    assert_eq!(ann.desk().drafts.len(), 1);
    server.shutdown().await;
    Ok(())
}
