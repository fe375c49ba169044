//! The rules of a retrospective: what each role may change in each phase, and what a valid board
//! or desk looks like. The server checks every incoming change against them before it accepts or
//! relays it; the client asks the same functions what to offer.
//!
//! A change is checked twice. First every operation it contains is placed at its path in the
//! document and matched against the table in [`check_board_write`] / [`check_desk_write`], so a
//! forbidden write is refused even when it loses a conflict and changes nothing visible. Then the
//! state after the change is compared with the state before ([`check_board_state`],
//! [`check_desk_state`]), which catches values that are out of range or point nowhere.

use automerge::legacy::{Key, ObjectId, OpType};
use automerge::{Automerge, Change, ObjId, Prop, ReadDoc as _};

use crate::edit::is_iso_date;
use crate::schema::{
    Board, Desk, MAX_ACTION_CHARS, MAX_CLUSTER_TITLE_CHARS, MAX_DRAFTS_PER_DESK, MAX_ITEMS_PER_BOARD, MAX_NAME_CHARS,
    MAX_NOTE_CHARS, MAX_NOTES_PER_BOARD, MAX_TITLE_CHARS, MAX_VOTE_BUDGET, Phase,
};

/// Who is making a change to a board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Holds the facilitator role: runs the phases.
    Facilitator,
    /// Joined the board.
    Participant,
    /// Did not join (a plain automerge-repo client, say): may read, never write.
    Viewer,
}

/// Why a change was refused: a sentence for the person who made it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);

fn refuse<T>(reason: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal(reason.into()))
}

// ---- What each phase allows --------------------------------------------------------------------

/// New notes are written during Write only: the composer shows then.
pub fn can_write_notes(phase: Phase) -> bool {
    phase == Phase::Write
}

/// The server takes new notes until grouping ends. A note written offline during Write reaches
/// the server only when its author reconnects; it must still be revealed, not lost. (The server
/// cannot tell when a note was written: its timestamp is the writer's word.)
pub fn accepts_new_notes(phase: Phase) -> bool {
    matches!(phase, Phase::Write | Phase::Reveal | Phase::Group)
}

/// Authors may edit or delete their notes until grouping ends.
pub fn can_edit_notes(phase: Phase) -> bool {
    matches!(phase, Phase::Write | Phase::Reveal | Phase::Group)
}

pub fn can_group(phase: Phase) -> bool {
    phase == Phase::Group
}

pub fn can_vote(phase: Phase) -> bool {
    phase == Phase::Vote
}

pub fn can_edit_actions(phase: Phase) -> bool {
    matches!(phase, Phase::Discuss | Phase::Actions)
}

/// Vote settings and anonymity are settled before anyone votes.
pub fn can_change_settings(phase: Phase) -> bool {
    phase <= Phase::Group
}

// ---- Placing operations in the document --------------------------------------------------------

/// One step of a path in a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    /// A list element (lists hold nothing a participant may write).
    Elem,
}

impl Seg {
    fn key(&self) -> Option<&str> {
        match self {
            Seg::Key(key) => Some(key),
            Seg::Elem => None,
        }
    }
}

/// What an operation does at its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// Creates a map there.
    MakeMap,
    /// Creates a list or text there.
    MakeOther,
    /// Puts a scalar value there.
    Put,
    Delete,
    /// Increments a counter, or formats text: nothing in Hindsight's schemas uses these.
    Other,
}

/// The paths a change writes to, resolved in `doc`, which must already contain the change.
///
/// Also refuses changes that carry metadata Hindsight never writes: a message, an author, or
/// extra bytes (each could carry identifying information into the shared history).
pub fn written_paths(doc: &Automerge, change: &Change) -> Result<Vec<(Vec<Seg>, Write)>, Refusal> {
    if change.message().is_some() || change.author().is_some() || !change.extra_bytes().is_empty() {
        return refuse("changes may not carry a message, an author or extra bytes");
    }
    let expanded = change.decode();
    let mut writes = Vec::with_capacity(expanded.operations.len());
    for op in &expanded.operations {
        let obj = match &op.obj {
            ObjectId::Root => ObjId::Root,
            ObjectId::Id(id) => ObjId::Id(id.counter(), id.actor().clone(), usize::MAX),
        };
        let mut path = match &op.obj {
            ObjectId::Root => Vec::new(),
            ObjectId::Id(_) => object_path(doc, obj.clone())?,
        };
        path.push(match &op.key {
            Key::Map(key) => Seg::Key(key.to_string()),
            Key::Seq(_) => Seg::Elem,
        });
        let write = match &op.action {
            OpType::Make(automerge::ObjType::Map) => Write::MakeMap,
            OpType::Make(_) => Write::MakeOther,
            OpType::Put(_) => Write::Put,
            // Automerge writes a put of the value a conflicted key already shows as a delete of
            // the other values: the key keeps its value, so that delete is a put.
            OpType::Delete => match &op.key {
                Key::Map(key) if doc.get(&obj, key.as_str()).ok().flatten().is_some() => Write::Put,
                _ => Write::Delete,
            },
            OpType::Increment(_) | OpType::MarkBegin(_) | OpType::MarkEnd(_) => Write::Other,
        };
        writes.push((path, write));
    }
    Ok(writes)
}

/// The path from the root to an object.
fn object_path(doc: &Automerge, obj: ObjId) -> Result<Vec<Seg>, Refusal> {
    let parents = doc.parents(&obj).or_else(|_| refuse("the change writes to an object that does not exist"))?;
    let mut path: Vec<Seg> = parents
        .map(|parent| match parent.prop {
            Prop::Map(key) => Seg::Key(key),
            Prop::Seq(_) => Seg::Elem,
        })
        .collect();
    path.reverse();
    Ok(path)
}

// ---- The board -----------------------------------------------------------------------------------

/// May `role` make this write to the board document during `phase`?
pub fn check_board_write(role: Role, phase: Phase, path: &[Seg], write: Write) -> Result<(), Refusal> {
    let keys: Vec<Option<&str>> = path.iter().map(Seg::key).collect();
    if role == Role::Viewer {
        return refuse("join the board to make changes");
    }
    let facilitator = role == Role::Facilitator;
    if phase == Phase::Done && keys.as_slice() != [Some("phase")] {
        return refuse("the retro is done: the board is read-only");
    }
    let only_facilitator = |what: &str| -> Result<(), Refusal> {
        if facilitator { Ok(()) } else { refuse(format!("only the facilitator changes {what}")) }
    };
    let in_phase = |allowed: bool, what: &str| -> Result<(), Refusal> {
        if allowed { Ok(()) } else { refuse(format!("{what} is not possible in the {} phase", phase.as_str())) }
    };
    match (keys.as_slice(), write) {
        ([Some("title")], Write::Put) => only_facilitator("the title"),
        ([Some("phase")], Write::Put) => only_facilitator("the phase"),
        ([Some("facilitator")], Write::Put) => only_facilitator("who facilitates"),
        ([Some("settings"), Some("anonymous" | "vote_budget" | "max_votes_per_item")], Write::Put) => {
            only_facilitator("the settings")?;
            in_phase(can_change_settings(phase), "changing the settings")
        }
        ([Some("timer"), Some("ends_at" | "duration_ms")], Write::Put) => only_facilitator("the timer"),
        ([Some("revealed"), Some(_)], Write::Put) => {
            only_facilitator("what is revealed")?;
            in_phase(phase == Phase::Reveal, "revealing")
        }
        ([Some("focus")], Write::Put) => {
            only_facilitator("the focus")?;
            in_phase(can_edit_actions(phase), "focusing an item")
        }
        ([Some("notes"), Some(_), Some("cluster")], Write::Put) => in_phase(can_group(phase), "grouping"),
        ([Some("clusters"), Some(_)], Write::MakeMap)
        | ([Some("clusters"), Some(_), Some("id" | "title")], Write::Put) => in_phase(can_group(phase), "grouping"),
        ([Some("action_items"), Some(_)], Write::MakeMap | Write::Delete)
        | ([Some("action_items"), Some(_), Some("id" | "text" | "owner" | "due" | "cluster")], Write::Put) => {
            in_phase(can_edit_actions(phase), "editing action items")
        }
        ([Some("notes"), ..], _) => refuse("notes are published by the server; write them on your desk"),
        ([Some("vote_totals"), ..], _) => refuse("only the server counts votes"),
        _ => refuse(format!("this change writes where no one may write ({})", describe(path))),
    }
}

fn describe(path: &[Seg]) -> String {
    let parts: Vec<&str> = path.iter().map(|s| s.key().unwrap_or("[]")).collect();
    parts.join("/")
}

/// What the board's state must satisfy after a participant's change (`before` is the board as
/// it was). `is_participant` says whether an id belongs to someone who joined.
pub fn check_board_state(before: &Board, after: &Board, is_participant: impl Fn(&str) -> bool) -> Result<(), Refusal> {
    if after.title.trim().is_empty() || after.title.chars().count() > MAX_TITLE_CHARS {
        return refuse(format!("a title has 1 to {MAX_TITLE_CHARS} characters"));
    }
    if after.settings != before.settings {
        let s = &after.settings;
        if !(1..=MAX_VOTE_BUDGET).contains(&s.vote_budget) {
            return refuse(format!("the vote budget is 1 to {MAX_VOTE_BUDGET} dots"));
        }
        if !(1..=s.vote_budget).contains(&s.max_votes_per_item) {
            return refuse("the most dots per item is 1 to the vote budget");
        }
        if s.anonymous != before.settings.anonymous && !before.notes.is_empty() {
            return refuse("anonymity cannot change once notes are revealed");
        }
    }
    if after.timer != before.timer {
        let t = &after.timer;
        if t.ends_at.is_some_and(|e| e < 0) || !(0..=24 * 3_600_000).contains(&t.duration_ms) {
            return refuse("a timer runs for at most a day");
        }
    }
    for (column, revealed) in &after.revealed {
        if before.revealed.get(column) == Some(revealed) {
            continue;
        }
        if !revealed {
            return refuse("revealed notes cannot be hidden again");
        }
        if !after.columns.iter().any(|c| &c.id == column) {
            return refuse(format!("there is no column `{column}` to reveal"));
        }
    }
    if after.focus != before.focus
        && let Some(focus) = &after.focus
        && !after.is_vote_item(focus)
    {
        return refuse("only a cluster or a lone note can be focused");
    }
    if after.facilitator != before.facilitator {
        match &after.facilitator {
            Some(id) if is_participant(id) => {}
            _ => return refuse("the facilitator role goes to someone who joined the board"),
        }
    }
    if after.clusters.len() > MAX_ITEMS_PER_BOARD || after.action_items.len() > MAX_ITEMS_PER_BOARD {
        return refuse(format!("a board holds at most {MAX_ITEMS_PER_BOARD} clusters and action items"));
    }
    for (id, note) in &after.notes {
        if before.notes.get(id).map(|n| &n.cluster) == Some(&note.cluster) {
            continue;
        }
        if let Some(cluster) = &note.cluster
            && !after.clusters.contains_key(cluster)
        {
            return refuse(format!("there is no cluster `{cluster}`"));
        }
    }
    for (key, cluster) in &after.clusters {
        if before.clusters.get(key) == Some(cluster) {
            continue;
        }
        if &cluster.id != key {
            return refuse("a cluster's id is its key");
        }
        if cluster.title.chars().count() > MAX_CLUSTER_TITLE_CHARS {
            return refuse(format!("a cluster title has at most {MAX_CLUSTER_TITLE_CHARS} characters"));
        }
    }
    for (key, item) in &after.action_items {
        if before.action_items.get(key) == Some(item) {
            continue;
        }
        if &item.id != key {
            return refuse("an action item's id is its key");
        }
        if item.text.trim().is_empty() || item.text.chars().count() > MAX_ACTION_CHARS {
            return refuse(format!("an action item has 1 to {MAX_ACTION_CHARS} characters"));
        }
        if item.owner.chars().count() > MAX_NAME_CHARS {
            return refuse(format!("an owner's name has at most {MAX_NAME_CHARS} characters"));
        }
        if !item.due.is_empty() && !is_iso_date(&item.due) {
            return refuse("a due date is written YYYY-MM-DD");
        }
        if let Some(target) = &item.cluster
            && !after.clusters.contains_key(target)
            && !after.notes.contains_key(target)
        {
            return refuse("an action item addresses a cluster or a note of this board");
        }
    }
    Ok(())
}

// ---- The desk ------------------------------------------------------------------------------------

/// May the desk's owner make this write to their desk? (What the phase allows is checked on the
/// state, in [`check_desk_state`].)
pub fn check_desk_write(path: &[Seg], write: Write) -> Result<(), Refusal> {
    let keys: Vec<Option<&str>> = path.iter().map(Seg::key).collect();
    match (keys.as_slice(), write) {
        ([Some("drafts"), Some(_)], Write::MakeMap | Write::Delete)
        | ([Some("drafts"), Some(_), Some("id" | "column" | "text" | "created_at")], Write::Put)
        | ([Some("votes"), Some(_)], Write::Put | Write::Delete)
        | ([Some("ready" | "abstain")], Write::Put) => Ok(()),
        _ => refuse(format!("a desk holds drafts, votes, ready and abstain, not {}", describe(path))),
    }
}

/// What a desk must satisfy after its owner's change, given the board as it is.
pub fn check_desk_state(before: &Desk, after: &Desk, board: &Board) -> Result<(), Refusal> {
    let phase = board.phase;
    if phase == Phase::Done && after != before {
        return refuse("the retro is done: nothing changes any more");
    }
    if after.drafts.len() > MAX_DRAFTS_PER_DESK {
        return refuse(format!("one person may write at most {MAX_DRAFTS_PER_DESK} notes"));
    }
    if after.drafts.len() > before.drafts.len() && board.notes.len() >= MAX_NOTES_PER_BOARD {
        return refuse(format!("the board is full: it holds at most {MAX_NOTES_PER_BOARD} notes"));
    }
    for id in before.drafts.keys() {
        if !after.drafts.contains_key(id) && !can_edit_notes(phase) {
            return refuse(format!("notes cannot be deleted in the {} phase", phase.as_str()));
        }
    }
    for (key, draft) in &after.drafts {
        let old = before.drafts.get(key);
        if old == Some(draft) {
            continue;
        }
        match old {
            None if !accepts_new_notes(phase) => {
                return refuse(format!("new notes are no longer taken in the {} phase", phase.as_str()));
            }
            Some(old) if !can_edit_notes(phase) => {
                let _ = old;
                return refuse(format!("notes cannot be edited in the {} phase", phase.as_str()));
            }
            Some(old) if old.column != draft.column && !can_write_notes(phase) => {
                return refuse("notes change columns only while writing");
            }
            _ => {}
        }
        if &draft.id != key {
            return refuse("a note's id is its key");
        }
        if !board.columns.iter().any(|c| c.id == draft.column) {
            return refuse(format!("there is no column `{}`", draft.column));
        }
        if draft.text.trim().is_empty() || draft.text.chars().count() > MAX_NOTE_CHARS {
            return refuse(format!("a note has 1 to {MAX_NOTE_CHARS} characters"));
        }
    }
    if after.votes != before.votes || after.abstain != before.abstain {
        if !can_vote(phase) {
            return refuse(format!("voting happens in the vote phase, not {}", phase.as_str()));
        }
        let settings = &board.settings;
        for (item, dots) in &after.votes {
            if !(1..=settings.max_votes_per_item).contains(dots) {
                return refuse(format!("an item takes 1 to {} of your dots", settings.max_votes_per_item));
            }
            if before.votes.get(item) != Some(dots) && !board.is_vote_item(item) {
                return refuse("votes go to clusters and lone notes of this board");
            }
        }
        if after.votes_cast() > settings.vote_budget {
            return refuse(format!("you have {} dots to place", settings.vote_budget));
        }
        if after.abstain && !after.votes.is_empty() {
            return refuse("take your dots back before you abstain");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Cluster, Draft, Note, Settings};

    fn path(keys: &[&str]) -> Vec<Seg> {
        keys.iter().map(|k| Seg::Key((*k).to_owned())).collect()
    }

    #[test]
    fn the_write_table() {
        use Role::*;
        let ok = |role, phase, keys: &[&str], write| check_board_write(role, phase, &path(keys), write).is_ok();
        assert!(ok(Facilitator, Phase::Write, &["phase"], Write::Put));
        assert!(!ok(Participant, Phase::Write, &["phase"], Write::Put));
        assert!(!ok(Viewer, Phase::Group, &["notes", "n", "cluster"], Write::Put));
        assert!(ok(Participant, Phase::Group, &["notes", "n", "cluster"], Write::Put));
        assert!(!ok(Participant, Phase::Vote, &["notes", "n", "cluster"], Write::Put));
        assert!(!ok(Participant, Phase::Group, &["notes", "n", "text"], Write::Put));
        assert!(!ok(Facilitator, Phase::Group, &["notes", "n"], Write::MakeMap));
        assert!(!ok(Facilitator, Phase::Group, &["notes"], Write::MakeMap), "root objects are never replaced");
        assert!(ok(Participant, Phase::Group, &["clusters", "c"], Write::MakeMap));
        assert!(!ok(Participant, Phase::Group, &["clusters", "c"], Write::Delete));
        assert!(ok(Participant, Phase::Actions, &["action_items", "a"], Write::Delete));
        assert!(!ok(Participant, Phase::Group, &["action_items", "a"], Write::MakeMap));
        assert!(ok(Facilitator, Phase::Reveal, &["revealed", "mad"], Write::Put));
        assert!(!ok(Facilitator, Phase::Write, &["revealed", "mad"], Write::Put));
        assert!(!ok(Facilitator, Phase::Vote, &["settings", "vote_budget"], Write::Put));
        assert!(!ok(Participant, Phase::Discuss, &["vote_totals", "x"], Write::Put));
        assert!(ok(Facilitator, Phase::Done, &["phase"], Write::Put));
        assert!(!ok(Facilitator, Phase::Done, &["title"], Write::Put));
        assert!(!ok(Facilitator, Phase::Write, &["surprise"], Write::Put));
    }

    fn board() -> Board {
        let mut board = Board { title: "Retro".into(), ..Board::default() };
        board.columns.push(crate::schema::Column { id: "mad".into(), title: "Mad".into(), prompt: String::new() });
        board.notes.insert(
            "n".into(),
            Note { id: "n".into(), column: "mad".into(), text: "x".into(), created_at: 0, cluster: None, author: None },
        );
        board
    }

    #[test]
    fn board_state_checks() {
        let before = board();
        let mut after = before.clone();
        after.notes.get_mut("n").expect("note").cluster = Some("ghost".into());
        assert!(check_board_state(&before, &after, |_| true).is_err(), "a note joins an existing cluster");
        after.clusters.insert("ghost".into(), Cluster { id: "ghost".into(), title: "CI".into() });
        assert!(check_board_state(&before, &after, |_| true).is_ok());

        let mut after = before.clone();
        after.settings = Settings { anonymous: false, ..Settings::default() };
        assert!(check_board_state(&before, &after, |_| true).is_err(), "anonymity is fixed once notes are out");
        let mut after = before.clone();
        after.settings.max_votes_per_item = 9;
        assert!(check_board_state(&before, &after, |_| true).is_err());
        let mut after = before.clone();
        after.facilitator = Some("stranger".into());
        assert!(check_board_state(&before, &after, |id| id == "p1").is_err());
        after.facilitator = Some("p1".into());
        assert!(check_board_state(&before, &after, |id| id == "p1").is_ok());
    }

    #[test]
    fn a_full_board_takes_no_new_drafts_but_edits_of_old_ones() {
        let mut board = board();
        for n in 0..MAX_NOTES_PER_BOARD {
            let id = format!("n{n}");
            let note = Note {
                id: id.clone(),
                column: "mad".into(),
                text: "x".into(),
                created_at: 0,
                cluster: None,
                author: None,
            };
            board.notes.insert(id, note);
        }
        let draft = |text: &str| Draft { id: "d".into(), column: "mad".into(), text: text.into(), created_at: 0 };
        let mut before = Desk::default();
        let mut after = before.clone();
        after.drafts.insert("d".into(), draft("One too many"));
        let refusal = check_desk_state(&before, &after, &board).expect_err("the board is full");
        assert!(refusal.0.contains("at most 10000 notes"), "{}", refusal.0);
        before.drafts.insert("d".into(), draft("Written before it filled up"));
        assert!(check_desk_state(&before, &after, &board).is_ok(), "an old draft can still be edited");
    }

    #[test]
    fn desk_state_checks_follow_the_phase() {
        let mut board = board();
        let before = Desk::default();
        let mut after = before.clone();
        after.drafts.insert(
            "d".into(),
            Draft { id: "d".into(), column: "mad".into(), text: "Slow builds".into(), created_at: 0 },
        );
        assert!(check_desk_state(&before, &after, &board).is_ok());
        board.phase = Phase::Group;
        assert!(check_desk_state(&before, &after, &board).is_ok(), "a note written offline still arrives");
        board.phase = Phase::Vote;
        assert!(check_desk_state(&before, &after, &board).is_err(), "no new notes once voting starts");

        board.phase = Phase::Vote;
        let mut votes = Desk::default();
        votes.votes.insert("n".into(), 3);
        assert!(check_desk_state(&before, &votes, &board).is_ok());
        votes.votes.insert("n".into(), 4);
        assert!(check_desk_state(&before, &votes, &board).is_err(), "per-item maximum");
        votes.votes.insert("n".into(), 1);
        votes.votes.insert("ghost".into(), 1);
        assert!(check_desk_state(&before, &votes, &board).is_err(), "votes go to real items");
        board.phase = Phase::Discuss;
        votes.votes.remove("ghost");
        assert!(check_desk_state(&before, &votes, &board).is_err(), "votes only while voting");
    }

    #[test]
    fn the_budget_holds() {
        let mut board = board();
        board.phase = Phase::Vote;
        board.settings.vote_budget = 2;
        board.settings.max_votes_per_item = 2;
        for id in ["a", "b"] {
            board.notes.insert(
                id.into(),
                Note {
                    id: id.into(),
                    column: "mad".into(),
                    text: id.into(),
                    created_at: 0,
                    cluster: None,
                    author: None,
                },
            );
        }
        let mut desk = Desk::default();
        desk.votes.insert("a".into(), 2);
        desk.votes.insert("b".into(), 1);
        assert!(check_desk_state(&Desk::default(), &desk, &board).is_err());
    }

    fn keys(writes: &[(Vec<Seg>, Write)]) -> Vec<(String, Write)> {
        writes.iter().map(|(path, write)| (describe(path), *write)).collect()
    }

    #[test]
    fn written_paths_places_every_operation_even_invisible_ones() {
        use crate::edit;
        let template = crate::templates::find("mad-sad-glad").expect("template");
        let mut server = crate::schema::new_board_document(automerge::ActorId::random(), "R", template).expect("board");
        let mut tx = server.transaction();
        let note =
            Note { id: "n".into(), column: "mad".into(), text: "x".into(), created_at: 0, cluster: None, author: None };
        edit::publish_note(&mut tx, &note).expect("publish");
        edit::publish_note(&mut tx, &Note { id: "m".into(), ..note }).expect("publish");
        tx.commit();

        // A participant groups two notes: one change creating a cluster and pointing notes at it.
        let mut client = server.fork();
        let board = Board::read(&client).expect("board");
        let mut tx = client.transaction();
        edit::group(&mut tx, &board, "n", "m", "k").expect("group");
        tx.commit();
        let change = client.get_last_local_change().expect("a change");
        server.apply_changes([change.clone()]).expect("apply");
        let writes = keys(&written_paths(&server, &change).expect("placed"));
        assert!(writes.contains(&("clusters/k".into(), Write::MakeMap)), "{writes:?}");
        assert!(writes.contains(&("clusters/k/title".into(), Write::Put)), "{writes:?}");
        assert!(writes.contains(&("notes/n/cluster".into(), Write::Put)), "{writes:?}");

        // A write that loses a conflict changes nothing visible, but is still found.
        let mut sneaky = server.fork();
        let mut tx = sneaky.transaction();
        edit::set_phase(&mut tx, Phase::Done).expect("put");
        tx.commit();
        let mut tx = server.transaction();
        edit::set_phase(&mut tx, Phase::Reveal).expect("put");
        edit::set_phase(&mut tx, Phase::Group).expect("put again, for a higher op counter");
        tx.commit();
        let change = sneaky.get_last_local_change().expect("a change");
        server.apply_changes([change.clone()]).expect("apply");
        let writes = keys(&written_paths(&server, &change).expect("placed"));
        assert_eq!(writes, [("phase".to_owned(), Write::Put)]);
    }

    #[test]
    fn a_put_that_settles_a_conflict_is_a_put() {
        use crate::edit;
        let template = crate::templates::find("mad-sad-glad").expect("template");
        let mut server = crate::schema::new_board_document(automerge::ActorId::random(), "R", template).expect("board");
        let mut tx = server.transaction();
        let note =
            Note { id: "n".into(), column: "mad".into(), text: "x".into(), created_at: 0, cluster: None, author: None };
        edit::publish_note(&mut tx, &note).expect("publish");
        tx.commit();

        // Two people drag the note into different clusters at once.
        let put_cluster = |doc: &mut Automerge, cluster: &str| {
            let mut tx = doc.transaction();
            let notes = crate::schema::root_map(&tx, "notes").expect("notes");
            let (_, obj) = automerge::ReadDoc::get(&tx, &notes, "n").expect("get").expect("the note");
            automerge::transaction::Transactable::put(&mut tx, &obj, "cluster", cluster).expect("put");
            tx.commit();
        };
        let (mut one, mut two) = (server.fork(), server.fork());
        put_cluster(&mut one, "k1");
        put_cluster(&mut two, "k2");
        server.merge(&mut one).expect("merge");
        server.merge(&mut two).expect("merge");
        // A third drops it onto the cluster it now shows: Automerge writes that as a delete.
        let mut client = server.fork();
        let shown = Board::read(&client).expect("board").notes["n"].cluster.clone().expect("a cluster");
        put_cluster(&mut client, &shown);
        let change = client.get_last_local_change().expect("a change");
        let actions: Vec<_> = change.decode().operations.into_iter().map(|op| op.action).collect();
        assert_eq!(actions, [OpType::Delete], "automerge settles the conflict with a delete");
        server.apply_changes([change.clone()]).expect("apply");
        let writes = keys(&written_paths(&server, &change).expect("placed"));
        assert_eq!(writes, [("notes/n/cluster".to_owned(), Write::Put)]);
        assert!(
            check_board_write(Role::Participant, Phase::Group, &path(&["notes", "n", "cluster"]), Write::Put).is_ok()
        );

        // A delete that leaves the key empty stays a delete.
        let mut client = server.fork();
        let mut tx = client.transaction();
        let notes = crate::schema::root_map(&tx, "notes").expect("notes");
        let (_, obj) = automerge::ReadDoc::get(&tx, &notes, "n").expect("get").expect("the note");
        automerge::transaction::Transactable::delete(&mut tx, &obj, "cluster").expect("delete");
        tx.commit();
        let change = client.get_last_local_change().expect("a change");
        server.apply_changes([change.clone()]).expect("apply");
        assert_eq!(
            keys(&written_paths(&server, &change).expect("placed")),
            [("notes/n/cluster".to_owned(), Write::Delete)]
        );
    }

    #[test]
    fn the_desk_write_table() {
        assert!(check_desk_write(&path(&["drafts", "d"]), Write::MakeMap).is_ok());
        assert!(check_desk_write(&path(&["votes", "x"]), Write::Put).is_ok());
        assert!(check_desk_write(&path(&["drafts"]), Write::MakeMap).is_err());
        assert!(check_desk_write(&path(&["name"]), Write::Put).is_err());
    }
}
