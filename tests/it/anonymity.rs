//! Anonymity (issue 3): nothing another participant receives ties a note to its author.
//!
//! - While writing, a participant's note exists only on their desk: another participant's frames
//!   (raw, and every change inside them) and board history never carry its text, nor the
//!   author's desk id, participant id or name (presence names who is here, by design, and is
//!   checked for the text and the desk id only). Once revealed, the text does arrive.
//! - After a whole retro, the board the server stored links no note to anyone: no name anywhere,
//!   participant ids only where the facilitator is named, every operation on a note's content by
//!   an actor no participant ever used, every participant change under an actor of its own, every
//!   timestamp zero.
//! - The control: with named notes chosen before the reveal, notes do carry their author's name.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use automerge::{ActorId, Automerge, ReadDoc};
use hindsight_shared::ids::DocumentId;
use hindsight_shared::presence::Notice;
use hindsight_shared::protocol::WireMessage;
use hindsight_shared::schema::{ActionItem, Phase};
use hindsight_tests::history::{self, frame_mentions, history_mentions};
use hindsight_tests::{Participant, SyncPeer, TestServer};

/// True if a frame is a presence notice from the server (which names who is here).
fn is_presence(frame: &[u8]) -> bool {
    match WireMessage::decode(frame) {
        Ok(WireMessage::Ephemeral { data, .. }) => matches!(Notice::decode(&data), Ok(Notice::Presence { .. })),
        _ => false,
    }
}

#[tokio::test]
async fn an_unrevealed_note_reaches_nobody_but_its_author_and_the_server() -> anyhow::Result<()> {
    const MARKER: &str = "zebra-quokka-7731 the deploy script is cursed";
    let server = TestServer::spawn().await;
    let board = server.create_board("Private", "mad-sad-glad").await;
    let mut fay = Participant::join_as_facilitator(&server, &board, "Fay").await?;
    let mut ann = Participant::join(&server, board.board_id, "Annabelle Quist").await?;
    let mut bob = Participant::join(&server, board.board_id, "Bob").await?;
    let draft = ann.write("mad", MARKER).await?;
    ann.edit_draft(&draft, &format!("{MARKER}, really")).await?;
    // Everything the board sent Bob because of Ann's writing has arrived by this barrier.
    let barrier = ann.send_barrier().await?;
    bob.wait_barrier(ann.peer_id(), barrier).await?;
    bob.pump_until("Ann's count on the roster", |p| {
        p.roster().is_some_and(|r| r.iter().any(|e| e.name == "Annabelle Quist" && e.notes == Some(1)))
    })
    .await?;

    let secrets = [ann.desk_id().to_string(), ann.id().to_owned(), ann.name().to_owned()];
    for (i, frame) in bob.frames().iter().enumerate() {
        assert!(!frame_mentions(frame, MARKER), "frame {i} carries Ann's unrevealed text");
        assert!(!frame_mentions(frame, &secrets[0]), "frame {i} carries Ann's desk id");
        if !is_presence(frame) {
            for secret in &secrets[1..] {
                assert!(!frame_mentions(frame, secret), "frame {i} carries `{secret}`");
            }
        }
    }
    for secret in std::iter::once(MARKER).chain(secrets.iter().map(String::as_str)) {
        assert!(!history_mentions(bob.board_doc(), secret), "Bob's board history carries `{secret}`");
    }

    // Revealed, the text does arrive: the searches above can find it.
    fay.set_phase(Phase::Reveal).await?;
    fay.reveal("mad").await?;
    let note = ann.note_id(&draft);
    bob.pump_until("Ann's note", |p| p.board().notes.contains_key(&note)).await?;
    assert!(bob.frames().iter().any(|frame| frame_mentions(frame, MARKER)), "the revealed text in a frame");
    assert!(history_mentions(bob.board_doc(), MARKER), "the revealed text in Bob's board history");
    assert_eq!(bob.board().notes[&note].author, None);
    for secret in &secrets {
        assert!(!history_mentions(bob.board_doc(), secret), "Bob's board history carries `{secret}`");
    }
    server.shutdown().await;
    Ok(())
}

/// The cast of a whole retro.
const NAMES: [&str; 3] = ["Ada Lovelace", "Grace Hopper", "Edsger Dijkstra"];

#[tokio::test]
async fn after_a_whole_retro_the_stored_board_links_no_note_to_anyone() -> anyhow::Result<()> {
    let server = TestServer::spawn().await;
    let board = server.create_board("Sprint 42", "mad-sad-glad").await;
    let mut ada = Participant::join_as_facilitator(&server, &board, NAMES[0]).await?;
    let mut grace = Participant::join(&server, board.board_id, NAMES[1]).await?;
    let mut edsger = Participant::join(&server, board.board_id, NAMES[2]).await?;

    // Write: drafts, an edit, a deletion, everyone ready.
    let mut notes: HashMap<&str, String> = HashMap::new();
    write_all(&mut ada, &[("glad", "The demo went well")], &mut notes).await?;
    let grace_writes =
        [("mad", "CI takes forty minutes"), ("mad", "Flaky integration tests"), ("sad", "Nobody reviewed my PR")];
    write_all(&mut grace, &grace_writes, &mut notes).await?;
    let edsger_writes = [("mad", "The build cache is cold"), ("glad", "Pairing on the parser"), ("sad", "A typo")];
    write_all(&mut edsger, &edsger_writes, &mut notes).await?;
    let typo = edsger.desk().drafts.into_values().find(|d| d.text == "A typo").expect("the typo").id;
    edsger.delete_draft(&typo).await?;
    let review = grace.desk().drafts.into_values().find(|d| d.text.starts_with("Nobody")).expect("a draft").id;
    grace.edit_draft(&review, "Nobody reviewed my PR for a week").await?;
    for who in [&mut ada, &mut grace, &mut edsger] {
        who.ready(true).await?;
    }

    // Reveal column by column, then group.
    ada.set_phase(Phase::Reveal).await?;
    ada.reveal("mad").await?;
    ada.reveal_all().await?;
    ada.set_phase(Phase::Group).await?;
    grace.pump_until("six notes", |p| p.board().notes.len() == 6).await?;
    let ci = grace.group(&notes["CI takes forty minutes"], &notes["The build cache is cold"]).await?;
    edsger.pump_until_heads(&grace.heads()).await?;
    let flaky = edsger.group(&notes["Flaky integration tests"], &notes["Nobody reviewed my PR"]).await?;
    ada.pump_until_heads(&edsger.heads()).await?;
    ada.title_cluster(&flaky, "Slow feedback").await?;
    grace.pump_until_heads(&ada.heads()).await?;
    grace.merge(&flaky, &ci).await?;
    edsger.pump_until_heads(&grace.heads()).await?;
    edsger.ungroup(&notes["Nobody reviewed my PR"]).await?;
    grace.edit_draft(&review, "Nobody reviewed my PR for two weeks").await?;

    // Vote, discuss, act, done.
    ada.pump_until("one cluster and three lone notes", |p| p.board().vote_items().len() == 4).await?;
    ada.set_phase(Phase::Vote).await?;
    let others = ada.board().vote_items().into_iter().map(|item| item.id().to_owned()).filter(|id| *id != ci);
    let items: Vec<String> = std::iter::once(ci.clone()).chain(others).collect();
    for (who, dots) in [(&mut ada, [2, 1, 1, 1]), (&mut grace, [3, 0, 2, 0]), (&mut edsger, [1, 1, 2, 1])] {
        who.pump_until("the vote phase", |p| p.board().phase == Phase::Vote).await?;
        for (item, dots) in items.iter().zip(dots) {
            if dots > 0 {
                who.vote(item, dots).await?;
            }
        }
    }
    ada.set_phase(Phase::Discuss).await?;
    ada.pump_until("the totals", |p| !p.board().vote_totals.is_empty()).await?;
    let top = ada.board().ranked_items()[0].0.id().to_owned();
    assert_eq!(top, ci, "the merged cluster got the most dots");
    ada.focus(Some(&top)).await?;
    grace.pump_until_heads(&ada.heads()).await?;
    let action = ActionItem {
        id: "a1".into(),
        text: "Warm the build cache nightly".into(),
        owner: "The platform team".into(),
        due: "2026-12-01".into(),
        cluster: Some(ci.clone()),
    };
    grace.put_action(&action).await?;
    ada.pump_until_heads(&grace.heads()).await?;
    ada.set_phase(Phase::Actions).await?;
    edsger.pump_until_heads(&ada.heads()).await?;
    edsger
        .put_action(&ActionItem { id: "a2".into(), text: "Review within a day".into(), cluster: None, ..action })
        .await?;
    ada.pump_until_heads(&edsger.heads()).await?;
    ada.set_phase(Phase::Done).await?;
    let people = [&ada, &grace, &edsger];
    for who in people {
        assert_eq!(who.refusals(), 0, "{}: {:?}", who.name(), who.notices());
    }

    // The board as a newcomer receives it, and as the server stored it.
    let mut viewer = SyncPeer::open(&server.ws_url(), board.board_id).await?;
    viewer.pump_until_heads(&ada.heads()).await?;
    let final_board = viewer.board();
    assert_eq!(final_board.phase, Phase::Done);
    assert_eq!(final_board.vote_totals.values().sum::<i64>(), 15);
    let identities: Vec<(String, String, DocumentId)> =
        people.iter().map(|p| (p.name().to_owned(), p.id().to_owned(), p.desk_id())).collect();
    let made: Vec<(String, Vec<(automerge::ChangeHash, ActorId)>)> = [&mut ada, &mut grace, &mut edsger]
        .into_iter()
        .map(|p| {
            let board_id = p.board_id();
            let name = p.name().to_owned();
            let changes =
                p.peer().made_changes().iter().filter(|m| m.doc == board_id).map(|m| (m.hash, m.actor.clone()));
            (name, changes.collect())
        })
        .collect();
    let stopped = server.stop().await;
    let stored = stopped.stored_document(board.board_id).await?;
    assert_eq!(stored.get_heads(), viewer.heads(), "the newcomer received what the server stored");

    assert_links_no_note_to_anyone(&stored, &identities, &made);
    assert_links_no_note_to_anyone(viewer.doc(), &identities, &made);
    Ok(())
}

/// Writes drafts and remembers the ids their notes will be published under, by text.
async fn write_all<'a>(
    who: &mut Participant,
    drafts: &[(&str, &'a str)],
    notes: &mut HashMap<&'a str, String>,
) -> anyhow::Result<()> {
    for (column, text) in drafts {
        let draft = who.write(column, text).await?;
        notes.insert(text, who.note_id(&draft));
    }
    Ok(())
}

/// The stored board's whole history against the participants (name, participant id, desk id)
/// and the board changes each made.
fn assert_links_no_note_to_anyone(
    doc: &Automerge,
    identities: &[(String, String, DocumentId)],
    made: &[(String, Vec<(automerge::ChangeHash, ActorId)>)],
) {
    for (name, _, desk) in identities {
        assert!(!history_mentions(doc, name), "{name}'s name is in the board's history");
        assert!(!history_mentions(doc, &desk.to_string()), "{name}'s desk id is in the board's history");
    }
    // A participant id appears only where the facilitator is named.
    let ops = history::operations(doc);
    for op in &ops {
        for (name, id, _) in identities {
            assert!(!op.path.iter().any(|key| key.contains(id.as_str())), "{name}'s id is a key: {:?}", op.path);
            if op.string().is_some_and(|value| value.contains(id.as_str())) {
                assert_eq!(op.path, ["facilitator"], "{name}'s participant id is written at {:?}", op.path);
            }
        }
    }

    // Every participant board change is in the history (all were accepted), each under an actor
    // of its own that appears on no other change.
    let changes = doc.get_changes(&[]);
    let mut changes_per_actor: HashMap<ActorId, usize> = HashMap::new();
    for change in &changes {
        *changes_per_actor.entry(change.actor_id().clone()).or_default() += 1;
        assert_eq!(change.timestamp(), 0, "a change carries a time: {:?}", change.hash());
        assert!(change.message().is_none() && change.author().is_none(), "a change carries a message or author");
    }
    let mut participant_actors: BTreeMap<ActorId, &str> = BTreeMap::new();
    for (name, changes_made) in made {
        assert!(!changes_made.is_empty(), "{name} made board changes");
        for (hash, actor) in changes_made {
            assert!(doc.get_change_by_hash(hash).is_some(), "{name}'s change {hash:?} is missing");
            assert_eq!(changes_per_actor.get(actor), Some(&1), "{name}'s actor {actor} made other changes too");
            assert!(participant_actors.insert(actor.clone(), name).is_none(), "an actor used twice");
        }
    }

    // Every operation on a note, but moving it between clusters, is by an actor that no
    // participant's board change ever used.
    let mut note_writers: BTreeSet<ActorId> = BTreeSet::new();
    let mut content_ops = 0;
    for op in ops.iter().filter(|op| op.under(&["notes"]) && op.path.len() >= 2) {
        let moves_cluster = op.path.len() == 3 && op.path[2] == "cluster";
        if moves_cluster {
            continue;
        }
        content_ops += 1;
        note_writers.insert(op.actor.clone());
        if let Some(name) = participant_actors.get(&op.actor) {
            panic!("{name}'s board change wrote {:?} ({:?})", op.path, op.action);
        }
    }
    assert!(content_ops >= 6 * 5, "the notes' content is in the history ({content_ops} operations)");
    assert!(!note_writers.is_empty());
    let clustered = ops.iter().filter(|op| op.path.len() == 3 && op.path[0] == "notes" && op.path[2] == "cluster");
    for op in clustered {
        assert!(
            participant_actors.contains_key(&op.actor) || note_writers.contains(&op.actor),
            "a cluster move by an unknown actor"
        );
    }
}

#[tokio::test]
async fn named_notes_chosen_before_the_reveal_carry_their_authors_name() -> anyhow::Result<()> {
    let server = TestServer::spawn().await;
    let board = server.create_board("Named", "mad-sad-glad").await;
    let mut fay = Participant::join_as_facilitator(&server, &board, "Fay").await?;
    let mut ann = Participant::join(&server, board.board_id, "Annabelle Quist").await?;
    fay.set_settings(|s| s.anonymous = false).await?;
    let draft = ann.write("glad", "Thanks for the pairing").await?;
    fay.set_phase(Phase::Reveal).await?;
    fay.reveal_all().await?;
    let note = ann.note_id(&draft);
    fay.pump_until("Ann's note", |p| p.board().notes.contains_key(&note)).await?;
    assert_eq!(fay.board().notes[&note].author.as_deref(), Some("Annabelle Quist"));
    assert!(history_mentions(fay.board_doc(), "Annabelle Quist"), "the name is in the history, as chosen");
    server.shutdown().await;
    Ok(())
}
