//! A board core and browsers in memory, delivering every message until nobody has anything to
//! say (as samod's test network does): the board's rules, anonymity and publication tested
//! without sockets, and the change validator fuzzed with random sessions from every role.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use automerge::{ActorId, ChangeHash};
use hindsight_shared::client::ClientReplica;
use hindsight_shared::edit;
use hindsight_shared::ids::{DocumentId, PeerId, published_note_id};
use hindsight_shared::presence::{Notice, PresenceEntry};
use hindsight_shared::protocol::WireMessage;
use hindsight_shared::schema::{self, Board, Desk, Draft, MAX_DRAFTS_PER_DESK, Note, Phase};
use hindsight_shared::templates;

use super::core::{BoardCore, CoreConfig, DocMessage, Effects};
use super::desk::Participant;
use super::replica::{ConnId, Limits};

/// A browser in memory: the board and its desk, each a replica synced as the browser syncs it.
struct Client {
    conn: ConnId,
    peer: PeerId,
    desk_id: DocumentId,
    board: ClientReplica,
    desk: ClientReplica,
    notices: Vec<Notice>,
    /// The roster as the server's full rosters and their updates built it.
    roster: BTreeMap<String, PresenceEntry>,
    /// Cut off from the server: sends nothing, receives nothing.
    offline: bool,
}

/// The core and its clients, delivering every message until nobody has anything to say, and
/// saving before every flush as the actor does.
struct Net {
    core: BoardCore,
    clients: Vec<Client>,
    now: i64,
    /// The monotonic clock, advanced by each round so rosters are never held back.
    instant: Instant,
}

/// A board's bounds as the server's defaults have them, with room for anything a test writes.
pub(crate) fn test_config() -> CoreConfig {
    CoreConfig {
        max_document_bytes: usize::MAX,
        max_board_bytes: usize::MAX,
        max_participant_connections: 1_000,
        max_viewer_connections: 1_000,
        limits: Limits::default(),
        roti_min_raters: 3,
        max_team_retros: 1_000,
        max_team_actions: 10_000,
    }
}

impl Net {
    fn new() -> Self {
        let template = templates::find("mad-sad-glad").expect("template");
        let doc = schema::new_board_document(ActorId::random(), "Retro", template, None).expect("board");
        let core = BoardCore::load(DocumentId::random(), "server".into(), &doc.save(), &[], vec![], test_config())
            .expect("load");
        Self { core, clients: Vec::new(), now: 1_000, instant: Instant::now() }
    }

    fn join(&mut self, name: &str, facilitator: bool) -> usize {
        let desk_id = DocumentId::random();
        let desk = schema::new_desk_document(ActorId::random()).expect("desk");
        let participant = Participant { id: format!("p-{name}"), name: name.into(), desk: desk_id };
        self.core.join(participant, desk, 0, facilitator).expect("join");
        let conn = self.clients.len() as ConnId;
        self.clients.push(Client {
            conn,
            peer: PeerId::from(format!("browser-{name}")),
            desk_id,
            board: ClientReplica::new(self.core.id()),
            desk: ClientReplica::new(desk_id),
            notices: Vec::new(),
            roster: BTreeMap::new(),
            offline: false,
        });
        self.settle();
        conn as usize
    }

    fn settle(&mut self) {
        let board_id = self.core.id();
        for _ in 0..50 {
            let mut quiet = true;
            let mut fx = Effects::default();
            self.instant += super::presence::INTERVAL;
            let now = self.instant;
            for client in self.clients.iter_mut().filter(|c| !c.offline) {
                // The desk first, as the browser does, so the connection is known before it
                // writes to the board.
                if let Some(m) = client.desk.next_message() {
                    quiet = false;
                    let message = DocMessage::Sync(m.data);
                    self.core.receive(
                        client.conn,
                        &client.peer,
                        client.desk_id,
                        message,
                        now,
                        &mut u64::MAX.clone(),
                        &mut fx,
                    );
                }
                if let Some(m) = client.board.next_message() {
                    quiet = false;
                    let message = DocMessage::Sync(m.data);
                    self.core.receive(
                        client.conn,
                        &client.peer,
                        board_id,
                        message,
                        now,
                        &mut u64::MAX.clone(),
                        &mut fx,
                    );
                }
            }
            self.core.govern(self.now).expect("govern");
            self.core.saved();
            self.core.flush(now, self.now, &mut fx);
            assert!(fx.close.is_empty(), "no connection is closed: {:?}", fx.close);
            for (conn, message) in fx.send {
                let client = &mut self.clients[conn as usize];
                if client.offline {
                    continue;
                }
                match message {
                    WireMessage::Sync { document_id, data, .. } => {
                        quiet = false;
                        let replica = if document_id == board_id { &mut client.board } else { &mut client.desk };
                        replica.receive(&data).expect("apply");
                    }
                    WireMessage::Ephemeral { document_id, data, .. } => {
                        let notice = Notice::decode(&data).expect("a notice");
                        if let Notice::Refused { changes, .. } = &notice {
                            // What the browser does: forget the refused changes and every change
                            // built on them, and sync that document afresh.
                            let replica = if document_id == board_id { &mut client.board } else { &mut client.desk };
                            replica.drop_refused(changes.iter().copied().map(ChangeHash)).expect("rebuild");
                            quiet = false;
                        }
                        if let Notice::Presence { participants, full, .. } = &notice {
                            if *full {
                                client.roster.clear();
                            }
                            client.roster.extend(participants.iter().map(|p| (p.id.clone(), p.clone())));
                        }
                        client.notices.push(notice);
                    }
                    _ => {}
                }
            }
            if quiet {
                return;
            }
        }
        panic!("the network did not settle");
    }

    fn board_edit(&mut self, who: usize, f: impl FnOnce(&mut automerge::transaction::Transaction<'_>, &Board)) {
        let client = &mut self.clients[who];
        let board = Board::read(client.board.doc()).expect("board");
        client.board.doc_mut().set_actor(ActorId::random());
        let mut tx = client.board.doc_mut().transaction();
        f(&mut tx, &board);
        tx.commit();
        self.settle();
    }

    fn desk_edit(&mut self, who: usize, f: impl FnOnce(&mut automerge::transaction::Transaction<'_>)) {
        let mut tx = self.clients[who].desk.doc_mut().transaction();
        f(&mut tx);
        tx.commit();
        self.settle();
    }

    fn write(&mut self, who: usize, id: &str, column: &str, text: &str) {
        let draft = Draft { id: id.into(), column: column.into(), text: text.into(), created_at: 5 };
        self.desk_edit(who, |tx| edit::add_draft(tx, &draft).expect("draft"));
    }

    fn board_of(&self, who: usize) -> Board {
        Board::read(self.clients[who].board.doc()).expect("board")
    }

    fn refusals(&self, who: usize) -> usize {
        self.clients[who].notices.iter().filter(|n| matches!(n, Notice::Refused { .. })).count()
    }
}

/// A board made before the `co_facilitators`, `ranks` and `anchors` maps gets them when the
/// server loads it, as a change of its own waiting to be stored; then notes can be arranged.
#[test]
fn a_board_from_before_the_new_maps_is_upgraded_when_loaded() {
    use automerge::transaction::Transactable;
    let template = templates::find("mad-sad-glad").expect("template");
    let mut old = schema::new_board_document(ActorId::random(), "Retro", template, None).expect("board");
    let mut tx = old.transaction();
    for map in ["co_facilitators", "ranks", "anchors"] {
        tx.delete(automerge::ROOT, map).expect("an older board lacks it");
    }
    tx.commit();
    assert!(schema::root_map(&old, "ranks").is_err());
    let core =
        BoardCore::load(DocumentId::random(), "server".into(), &old.save(), &[], vec![], test_config()).expect("load");
    for map in ["co_facilitators", "ranks", "anchors"] {
        assert!(schema::root_map(core.board_doc(), map).is_ok(), "{map} added");
    }
    assert_eq!(core.unsaved().iter().map(|(_, changes)| changes.len()).sum::<usize>(), 1, "one change to store");
    let again =
        BoardCore::load(DocumentId::random(), "server".into(), &core.board_doc().save(), &[], vec![], test_config())
            .expect("load");
    assert!(again.unsaved().iter().all(|(_, changes)| changes.is_empty()), "upgraded once");
}

#[test]
fn private_writing_reveal_and_publication() {
    let mut net = Net::new();
    let fac = net.join("Fay", true);
    let ann = net.join("Ann", false);
    assert_eq!(net.board_of(ann).facilitator.as_deref(), Some("p-Fay"));
    net.write(ann, "d1", "mad", "Slow reviews");
    net.write(fac, "d2", "glad", "Nice demo");
    assert!(net.board_of(fac).notes.is_empty(), "drafts stay on desks while writing");

    net.board_edit(fac, |tx, _| edit::set_phase(tx, Phase::Reveal).expect("phase"));
    net.board_edit(fac, |tx, _| edit::reveal(tx, "mad").expect("reveal"));
    let board = net.board_of(fac);
    assert_eq!(board.notes.len(), 1, "only the revealed column is published");
    let note = board.notes.values().next().expect("a note");
    assert_eq!((note.text.as_str(), note.author.as_ref()), ("Slow reviews", None));
    assert_eq!(note.id, published_note_id(&net.clients[ann].desk_id, "d1"));

    net.board_edit(fac, |tx, _| edit::set_phase(tx, Phase::Group).expect("phase"));
    assert_eq!(net.board_of(ann).notes.len(), 2, "everything is public from Group on");
    net.desk_edit(ann, |tx| edit::set_draft_text(tx, "d1", "Slow code reviews").expect("edit"));
    assert!(net.board_of(fac).notes.values().any(|n| n.text == "Slow code reviews"), "edits follow");
    net.desk_edit(ann, |tx| edit::delete_draft(tx, "d1").expect("delete"));
    assert_eq!(net.board_of(fac).notes.len(), 1, "deletions follow");

    // Every note operation in the board's history is the server's: its actor now, or the one
    // that created the board.
    let history = net.core.board_doc().get_changes(&[]);
    let server = [net.core.board_doc().get_actor().clone(), history[0].actor_id().clone()];
    for change in &history {
        let touches_notes = change.decode().operations.iter().any(|op| match &op.key {
            automerge::legacy::Key::Map(k) => k.as_str() == "notes" || k.as_str() == "text",
            _ => false,
        });
        if touches_notes {
            assert!(server.contains(change.actor_id()), "a note was written by someone other than the server");
        }
    }
}

#[test]
fn notes_written_offline_are_revealed_when_their_author_returns() {
    let mut net = Net::new();
    let fac = net.join("Fay", true);
    let ann = net.join("Ann", false);
    net.clients[ann].offline = true;
    net.write(ann, "d1", "mad", "Written on the train");
    net.board_edit(fac, |tx, _| edit::set_phase(tx, Phase::Reveal).expect("phase"));
    net.board_edit(fac, |tx, _| edit::reveal_all(tx).expect("reveal"));
    assert!(net.board_of(fac).notes.is_empty(), "nothing reached the server yet");

    // Back online: a fresh connection, as after a reconnect.
    let client = &mut net.clients[ann];
    client.offline = false;
    client.board.restart_sync();
    client.desk.restart_sync();
    net.core.leave(client.conn);
    net.settle();
    let texts: Vec<String> = net.board_of(fac).notes.values().map(|n| n.text.clone()).collect();
    assert_eq!(texts, ["Written on the train"]);
}

#[test]
fn several_changes_in_one_message_are_taken() {
    let mut net = Net::new();
    let _fac = net.join("Fay", true);
    let ann = net.join("Ann", false);
    for i in 0..30 {
        net.write(ann, &format!("synced{i}"), "mad", &format!("Note {i}"));
    }
    // A few edits made before the server answers travel as one V2 message, their changes
    // back to back in one chunk (fewer than a third of the document, so not as a whole
    // document); many travel as the whole document.
    for burst in [3, 80] {
        net.clients[ann].offline = true;
        for i in 0..burst {
            net.write(ann, &format!("b{burst}-{i}"), "sad", &format!("Burst {burst}, note {i}"));
        }
        net.clients[ann].offline = false;
        net.settle();
    }
    assert_eq!(net.refusals(ann), 0);
    let desk = Desk::read(net.core.desk_doc(net.clients[ann].desk_id).expect("desk")).expect("desk");
    assert_eq!(desk.drafts.len(), 30 + 3 + 80);
}

#[test]
fn forbidden_changes_are_refused_and_never_relayed() {
    let mut net = Net::new();
    let fac = net.join("Fay", true);
    let ann = net.join("Ann", false);
    let bob = net.join("Bob", false);
    net.board_edit(ann, |tx, _| edit::set_phase(tx, Phase::Vote).expect("phase"));
    assert_eq!(net.refusals(ann), 1);
    assert_eq!(net.board_of(bob).phase, Phase::Write, "others never see it");
    assert_eq!(net.board_of(ann).phase, Phase::Write, "the sender recovers the server's state");
    assert_eq!(net.core.board().phase, Phase::Write);

    net.board_edit(ann, |tx, _| {
        let note = Note {
            id: "forged".into(),
            column: "mad".into(),
            text: "I name you".into(),
            created_at: 0,
            cluster: None,
            author: Some("Bob".into()),
        };
        edit::publish_note(tx, &note).expect("write")
    });
    assert_eq!(net.refusals(ann), 2);
    assert!(net.board_of(bob).notes.is_empty());

    net.board_edit(fac, |tx, _| edit::set_phase(tx, Phase::Vote).expect("phase"));
    assert_eq!(net.board_of(bob).phase, Phase::Vote, "the facilitator may");
    net.write(ann, "late", "mad", "Too late");
    assert_eq!(net.refusals(ann), 3, "no new notes once voting started");
    assert!(
        net.core.desk_doc(net.clients[ann].desk_id).is_some_and(|d| Desk::read(d).expect("desk").drafts.is_empty())
    );
}

#[test]
fn votes_stay_private_until_closed_and_totals_are_right() {
    let mut net = Net::new();
    let fac = net.join("Fay", true);
    let ann = net.join("Ann", false);
    net.write(ann, "a", "mad", "A");
    net.write(ann, "b", "sad", "B");
    net.board_edit(fac, |tx, _| edit::set_phase(tx, Phase::Group).expect("phase"));
    net.board_edit(fac, |tx, _| edit::set_phase(tx, Phase::Vote).expect("phase"));
    let ids: Vec<String> = net.board_of(ann).notes.keys().cloned().collect();
    net.desk_edit(ann, |tx| edit::set_votes(tx, &ids[0], 3).expect("vote"));
    net.desk_edit(fac, |tx| edit::set_votes(tx, &ids[0], 2).expect("vote"));
    net.desk_edit(fac, |tx| edit::set_votes(tx, &ids[1], 3).expect("vote"));
    assert_eq!(net.refusals(fac), 0);
    net.desk_edit(fac, |tx| edit::set_votes(tx, &ids[1], 4).expect("vote"));
    assert_eq!(net.refusals(fac), 1, "per-item maximum");
    assert!(net.board_of(ann).vote_totals.is_empty(), "votes are private while voting");
    let roster = net.clients[ann].notices.iter().rev().find_map(|n| match n {
        Notice::Presence { participants, .. } => Some(participants.clone()),
        _ => None,
    });
    assert!(roster.expect("a roster").iter().all(|p| p.voted), "everyone voted, and that shows");

    net.board_edit(fac, |tx, _| edit::set_phase(tx, Phase::Discuss).expect("phase"));
    let totals = net.board_of(ann).vote_totals;
    assert_eq!(totals.get(&ids[0]), Some(&5));
    assert_eq!(totals.get(&ids[1]), Some(&3));
}

// ---- Fuzzing the change validator --------------------------------------------------------

/// A key for a random path: the schema's own names, ids that exist, and nonsense.
const KEYS: &[&str] = &[
    "title",
    "phase",
    "columns",
    "notes",
    "clusters",
    "action_items",
    "settings",
    "revealed",
    "facilitator",
    "co_facilitators",
    "ranks",
    "anchors",
    "vote_totals",
    "focus",
    "timer",
    "drafts",
    "votes",
    "ready",
    "abstain",
    "roti",
    "roti_shown",
    "id",
    "column",
    "text",
    "cluster",
    "author",
    "created_at",
    "anonymous",
    "vote_budget",
    "mad",
    "d1",
    "x",
    "0",
    "p-Ann",
];

/// A value a fuzzed change writes.
#[derive(Debug, Clone)]
enum Value {
    Str(String),
    Int(i64),
    F64(f64),
    Bool(bool),
    Null,
    Counter(i64),
    Map,
    List,
}

/// One gesture of a fuzzed session: raw writes at random paths by anyone, and the valid
/// gestures that move a retro along, so the raw writes meet every phase.
#[derive(Debug, Clone)]
enum Op {
    Board { who: usize, path: Vec<usize>, value: Option<Value> },
    Desk { who: usize, path: Vec<usize>, value: Option<Value> },
    Phase(usize),
    Write { who: usize, draft: usize, text: String },
    Vote { who: usize, note: usize, dots: i64 },
}

fn value() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    prop_oneof![
        prop_oneof![
            Just(String::new()),
            "[a-z ]{1,12}",
            Just("x".repeat(3_000)),
            Just("write".into()),
            Just("vote".into())
        ]
        .prop_map(Value::Str),
        (-5i64..100).prop_map(Value::Int),
        any::<f64>().prop_map(Value::F64),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
        (-5i64..100).prop_map(Value::Counter),
        Just(Value::Map),
        Just(Value::List),
    ]
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    let path = proptest::collection::vec(0..KEYS.len(), 1..4);
    prop_oneof![
        4 => (0..3usize, path.clone(), proptest::option::weighted(0.8, value()))
            .prop_map(|(who, path, value)| Op::Board { who, path, value }),
        3 => (0..3usize, path, proptest::option::weighted(0.8, value()))
            .prop_map(|(who, path, value)| Op::Desk { who, path, value }),
        1 => (0..Phase::ALL.len()).prop_map(Op::Phase),
        2 => (0..3usize, 0..4usize, "[a-z]{1,8}").prop_map(|(who, draft, text)| Op::Write { who, draft, text }),
        1 => (0..3usize, 0..8usize, -2i64..8).prop_map(|(who, note, dots)| Op::Vote { who, note, dots }),
    ]
}

/// Applies a raw write at the end of `path`, walking down through the objects that exist.
fn raw_write(tx: &mut automerge::transaction::Transaction<'_>, path: &[usize], value: &Option<Value>) {
    use automerge::transaction::Transactable;
    use automerge::{ObjType, ReadDoc, ScalarValue};
    let mut obj = automerge::ROOT;
    let mut keys = path.iter().map(|k| KEYS[*k]).peekable();
    while let Some(key) = keys.next() {
        let is_list = tx.object_type(&obj).is_ok_and(|t| t == ObjType::List);
        let last = keys.peek().is_none();
        if !last {
            let child = if is_list { tx.get(&obj, 0usize) } else { tx.get(&obj, key) };
            if let Ok(Some((automerge::Value::Object(_), id))) = child {
                obj = id;
                continue;
            }
        }
        let scalar = |v: &Value| -> Option<ScalarValue> {
            Some(match v {
                Value::Str(s) => ScalarValue::Str(s.as_str().into()),
                Value::Int(i) => ScalarValue::Int(*i),
                Value::F64(f) => ScalarValue::F64(*f),
                Value::Bool(b) => ScalarValue::Boolean(*b),
                Value::Null => ScalarValue::Null,
                Value::Counter(c) => ScalarValue::counter(*c),
                Value::Map | Value::List => return None,
            })
        };
        let objtype = |v: &Value| if matches!(v, Value::List) { ObjType::List } else { ObjType::Map };
        // Errors (a key in a list, an index out of range) are fine: the write just fails.
        let _ = match (is_list, value) {
            (false, None) => tx.delete(&obj, key),
            (true, None) => tx.delete(&obj, 0usize),
            (false, Some(v)) => match scalar(v) {
                Some(s) => tx.put(&obj, key, s),
                None => tx.put_object(&obj, key, objtype(v)).map(|_| ()),
            },
            (true, Some(v)) => match scalar(v) {
                Some(s) => tx.insert(&obj, 0, s),
                None => tx.insert_object(&obj, 0, objtype(v)).map(|_| ()),
            },
        };
        return;
    }
}

/// Runs one fuzzed session and checks what must hold whatever the peers sent.
fn fuzz_session(ops: &[Op]) {
    let mut net = Net::new();
    let fac = net.join("Fay", true);
    let people = [fac, net.join("Ann", false), net.join("Bob", false)];
    let mut phase = net.core.board().phase;
    for op in ops {
        match op {
            Op::Board { who, path, value } => net.board_edit(people[*who], |tx, _| raw_write(tx, path, value)),
            Op::Desk { who, path, value } => net.desk_edit(people[*who], |tx| raw_write(tx, path, value)),
            Op::Phase(to) => {
                let to = Phase::ALL[*to];
                net.board_edit(fac, |tx, _| edit::set_phase(tx, to).expect("phase"));
            }
            Op::Write { who, draft, text } => {
                let draft = Draft { id: format!("d{draft}"), column: "mad".into(), text: text.clone(), created_at: 1 };
                net.desk_edit(people[*who], |tx| {
                    let _ = edit::add_draft(tx, &draft);
                });
            }
            Op::Vote { who, note, dots } => {
                let board = net.core.board().clone();
                if let Some(item) = board.vote_items().get(*note) {
                    let id = item.id().to_owned();
                    net.desk_edit(people[*who], |tx| {
                        let _ = edit::set_votes(tx, &id, *dots);
                    });
                }
            }
        }
        // Whatever was sent, the server's documents still read as a board and desks.
        let board = Board::read(net.core.board_doc()).expect("the server's board always reads");
        let moved_by_facilitator = matches!(op, Op::Phase(_) | Op::Board { who: 0, .. });
        assert!(board.phase == phase || moved_by_facilitator, "only the facilitator moves the phase: {op:?}");
        phase = board.phase;
        let mut drafts = HashMap::new();
        for client in &net.clients {
            let desk = Desk::read(net.core.desk_doc(client.desk_id).expect("desk")).expect("a desk always reads");
            assert!(desk.drafts.len() <= MAX_DRAFTS_PER_DESK);
            for draft in desk.drafts.values() {
                drafts.insert(published_note_id(&client.desk_id, &draft.id), draft.text.clone());
            }
        }
        // Every note on the board is a draft of somebody's desk, with its text: nobody writes
        // notes but the server, and nobody forges one.
        for note in board.notes.values() {
            assert_eq!(drafts.get(&note.id), Some(&note.text), "note {} is a published draft", note.id);
        }
        // And every client converged on the server's documents, refusals undone.
        for client in &net.clients {
            assert_eq!(client.board.doc().get_heads(), net.core.board_doc().get_heads(), "{op:?}");
        }
    }
}

/// Random sessions of valid and invalid changes from every role. `HINDSIGHT_FUZZ_CASES` sets
/// how many (`just fuzz` runs many more); the figures are printed.
#[test]
fn fuzzed_changes_never_break_the_rules_or_the_server() {
    use proptest::test_runner::{Config, TestRunner};
    let cases = std::env::var("HINDSIGHT_FUZZ_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(48);
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    let executed = std::cell::Cell::new(0usize);
    let sessions = proptest::collection::vec(op(), 1..40);
    let result = runner.run(&sessions, |ops| {
        executed.set(executed.get() + ops.len());
        fuzz_session(&ops);
        Ok(())
    });
    if let Err(e) = result {
        panic!("after {} changes: {e}", executed.get());
    }
    eprintln!("change validator fuzz: {cases} sessions passed, {} changes checked", executed.get());
}
