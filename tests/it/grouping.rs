//! Grouping under pressure: several participants group, ungroup, merge and name clusters of the
//! same notes at once, each acting on a view the others keep changing. Whatever the races, every
//! copy converges on one board, no note points at a cluster that does not exist, and the things
//! one votes on are well formed: every note in exactly one item, every cluster item holding
//! notes. And a note two people dragged at once (a conflict in the document) can still be moved:
//! Automerge writes that move as a delete of the losing value, which the rules must take as the
//! put it is.

use std::collections::BTreeMap;

use automerge::ReadDoc;
use hindsight_shared::edit;
use hindsight_shared::schema::{self, Board, Phase, VoteItem};
use hindsight_tests::{Participant, SyncPeer, TestServer};

const GROUPERS: usize = 4;
const ROUNDS: usize = 3;

/// One participant's gestures, made as fast as the server answers, on whatever it sees.
async fn group_at_once(mut who: Participant, n: usize, notes: Vec<String>) -> anyhow::Result<Participant> {
    let note = |k: usize| notes[(n + k) % notes.len()].clone();
    for round in 0..ROUNDS {
        let cluster = who.group(&note(round), &note(round + 1)).await?;
        who.group(&note(round + 2), &note(round)).await?;
        who.ungroup(&note(round + 1)).await?;
        let other = who.board().notes.values().filter_map(|n| n.cluster.clone()).find(|c| *c != cluster);
        if let Some(other) = other {
            who.merge(&cluster, &other).await?;
        }
        who.title_cluster(&cluster, &format!("Named by {} in round {round}", who.name())).await?;
    }
    who.wait_acknowledged().await?;
    Ok(who)
}

/// Checks that a board's clusters and vote items are well formed.
fn assert_well_formed(board: &Board) {
    for note in board.notes.values() {
        if let Some(cluster) = &note.cluster {
            assert!(board.clusters.contains_key(cluster), "note {} points at a missing cluster {cluster}", note.id);
        }
    }
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    let items = board.vote_items();
    for item in &items {
        assert!(board.is_vote_item(item.id()), "{} is listed but is not a vote item", item.id());
        match item {
            VoteItem::Note(note) => *seen.entry(note.id.as_str()).or_default() += 1,
            VoteItem::Cluster(cluster, notes) => {
                assert!(!notes.is_empty(), "cluster {} is an item without notes", cluster.id);
                for note in notes {
                    assert_eq!(note.cluster.as_deref(), Some(cluster.id.as_str()));
                    *seen.entry(note.id.as_str()).or_default() += 1;
                }
            }
        }
    }
    assert_eq!(seen.len(), board.notes.len(), "every note is in an item");
    assert!(seen.values().all(|count| *count == 1), "a note is in two items: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_groupers_converge_on_a_well_formed_board() -> anyhow::Result<()> {
    let server = TestServer::spawn().await;
    let board = server.create_board("Grouping", "start-stop-continue").await;
    let mut fay = Participant::join_as_facilitator(&server, &board, "Fay").await?;
    let mut groupers = Vec::new();
    for n in 0..GROUPERS {
        let mut who = Participant::join(&server, board.board_id, &format!("Grouper {n}")).await?;
        for column in ["start", "stop"] {
            who.write(column, &format!("{column} note by grouper {n}")).await?;
        }
        groupers.push(who);
    }
    fay.set_phase(Phase::Group).await?;
    let total = 2 * GROUPERS;
    fay.pump_until("every note", |p| p.board().notes.len() == total).await?;
    let notes: Vec<String> = fay.board().notes.into_keys().collect();

    let mut runs = Vec::new();
    for (n, mut who) in groupers.into_iter().enumerate() {
        who.pump_until("every note", |p| p.board().notes.len() == total).await?;
        runs.push(tokio::spawn(group_at_once(who, n * 2, notes.clone())));
    }
    let mut groupers = Vec::new();
    for run in runs {
        groupers.push(run.await??);
    }

    // Everyone converges on what the server holds.
    let viewer = SyncPeer::open(&server.ws_url(), board.board_id).await?;
    let heads = viewer.heads();
    let settled = viewer.board();
    fay.pump_until_heads(&heads).await?;
    for who in &mut groupers {
        who.pump_until_heads(&heads).await?;
        assert_eq!(who.board(), settled, "{} sees another board", who.name());
        assert_eq!(who.refusals(), 0, "{}: {:?}", who.name(), who.notices());
    }
    assert_eq!(fay.board(), settled);
    assert_eq!(settled.notes.len(), total);
    assert!(settled.clusters.len() >= GROUPERS, "the groupers made clusters");
    assert!(settled.notes.values().any(|n| n.cluster.is_some()), "some notes ended up grouped");
    assert_well_formed(&settled);

    // The board is still usable: voting opens on the items it shows.
    fay.set_phase(Phase::Vote).await?;
    let item = settled.vote_items()[0].id().to_owned();
    fay.vote(&item, 1).await?;
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_note_two_people_dragged_at_once_can_still_be_moved() -> anyhow::Result<()> {
    let server = TestServer::spawn().await;
    let board = server.create_board("Conflict", "mad-sad-glad").await;
    let mut fay = Participant::join_as_facilitator(&server, &board, "Fay").await?;
    let mut ann = Participant::join(&server, board.board_id, "Ann").await?;
    let mut bob = Participant::join(&server, board.board_id, "Bob").await?;
    let note = fay.write("mad", "Dragged twice").await?;
    let note = fay.note_id(&note);
    let target_a = ann.write("mad", "Ann's").await?;
    let target_a = ann.note_id(&target_a);
    let target_b = bob.write("mad", "Bob's").await?;
    let target_b = bob.note_id(&target_b);
    fay.set_phase(Phase::Group).await?;
    for who in [&mut fay, &mut ann, &mut bob] {
        who.pump_until("three notes", |p| p.board().notes.len() == 3).await?;
    }

    // Ann and Bob drop the same note onto different notes, neither seeing the other's move.
    let (seen_a, seen_b) = (ann.board(), bob.board());
    let a = ann.send_board_change(|tx| Ok(edit::group(tx, &seen_a, &note, &target_a, "ka")?)).await?;
    let b = bob.send_board_change(|tx| Ok(edit::group(tx, &seen_b, &note, &target_b, "kb")?)).await?;
    ann.verdict(a).await?.accepted()?;
    bob.verdict(b).await?.accepted()?;
    fay.pump_until("both moves", |p| p.board().clusters.len() == 2).await?;
    let notes = schema::root_map(fay.board_doc(), "notes")?;
    let (_, entry) = fay.board_doc().get(&notes, note.as_str())?.expect("the note");
    assert_eq!(fay.board_doc().get_all(&entry, "cluster")?.len(), 2, "the note's cluster is in conflict");

    // Fay drops it onto the cluster it shows: Automerge writes a delete of the other value.
    let shown = fay.board().notes[&note].cluster.clone().expect("a cluster");
    fay.group(&note, &shown).await?;
    assert_eq!(fay.board_doc().get_all(&entry, "cluster")?.len(), 1, "the conflict is settled");
    ann.pump_until_heads(&fay.heads()).await?;
    assert_eq!(ann.board().notes[&note].cluster.as_deref(), Some(shown.as_str()));
    assert_well_formed(&ann.board());
    server.shutdown().await;
    Ok(())
}
