//! The cost of one message: any sync message up to the size limit costs the server's board core a
//! bounded CPU time and a bounded amount of memory, whatever it holds: bombs of up to ten million
//! declared operations, plain or deflated; real messages with random bit flips, splices and
//! truncations; whole documents with extra operations; garbage. From a participant and from a
//! viewer.
//!
//! Its own test binary, because it counts every allocation of the process (its global allocator
//! keeps the peak), and other tests running beside it would count too. The figures it prints
//! (the most expensive message it found) are the ones in the README.

use std::time::{Duration, Instant};

use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge};
use hindsight_server::board::core::{BoardCore, CoreConfig, DocMessage, Effects};
use hindsight_server::board::desk::Participant;
use hindsight_server::board::replica::Limits;
use hindsight_shared::edit;
use hindsight_shared::ids::{DocumentId, PeerId};
use hindsight_shared::schema::{self, Note};
use hindsight_tests::bomb;
use peak_alloc::PeakAlloc;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

#[global_allocator]
static MEMORY: PeakAlloc = PeakAlloc;

/// The tests here take turns: the allocator's peak is the whole process's.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// What one message may cost the board core, at most (a debug build of the server with Automerge
/// optimised, as the test command builds it).
const MAX_CPU: Duration = Duration::from_millis(500);
const MAX_MEMORY_MIB: f32 = 64.0;
/// The largest message the server takes by default.
const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// A board with a hundred notes, a facilitator and a participant, as the server holds it.
struct Target {
    core: BoardCore,
    board: DocumentId,
    desk: DocumentId,
    /// The board as a client holds it, to build real messages from.
    client: Automerge,
}

/// A board document with `notes` published notes, `clusters` clusters and `actions` action
/// items, in `phase`, as the server created and wrote it.
fn board_document(notes: usize, clusters: usize, actions: usize, phase: schema::Phase) -> Automerge {
    let template = hindsight_shared::templates::find("mad-sad-glad").expect("template");
    let mut doc = schema::new_board_document(ActorId::random(), "Costly", template, None).expect("board");
    let mut tx = doc.transaction();
    for n in 0..notes {
        let text = format!("Note {n}");
        let note = Note { id: format!("n{n}"), column: "mad".into(), text, created_at: 0, cluster: None, author: None };
        edit::publish_note(&mut tx, &note).expect("publish");
    }
    let parent = schema::root_map(&tx, "clusters").expect("clusters");
    for n in 0..clusters {
        let cluster = tx.put_object(&parent, format!("c{n}"), automerge::ObjType::Map).expect("cluster");
        tx.put(&cluster, "id", format!("c{n}")).expect("put");
        tx.put(&cluster, "title", format!("Cause {n}")).expect("put");
    }
    for n in 0..actions {
        edit::put_action(&mut tx, &action(&format!("a{n}"), &format!("Action {n}"))).expect("action");
    }
    edit::set_phase(&mut tx, phase).expect("phase");
    tx.commit();
    doc
}

fn action(id: &str, text: &str) -> schema::ActionItem {
    schema::ActionItem { id: id.into(), text: text.into(), owner: "Sam".into(), due: String::new(), cluster: None }
}

/// The server's core for a board document, with one participant (the facilitator if
/// `facilitator`) whose connection 1 has opened its desk.
fn core_for(doc: &Automerge, facilitator: bool) -> (BoardCore, DocumentId, DocumentId) {
    let config = CoreConfig {
        max_document_bytes: 32 << 20,
        max_board_bytes: 64 << 20,
        max_participant_connections: 100,
        max_viewer_connections: 100,
        limits: Limits::default(),
        roti_min_raters: 3,
        max_team_retros: 1_000,
        max_team_actions: 10_000,
    };
    let board = DocumentId::random();
    let mut core = BoardCore::load(board, PeerId::from("server"), &doc.save(), &[], vec![], config).expect("loads");
    let desk = DocumentId::random();
    let participant = Participant { id: "p1".into(), name: "Ann".into(), desk };
    let desk_doc = schema::new_desk_document(ActorId::random()).expect("desk");
    core.join(participant, desk_doc, 100, facilitator).expect("joins");
    let hello = DocMessage::Sync(bomb::sync_message(vec![]));
    core.receive(1, &PeerId::from("ann"), desk, hello, Instant::now(), &mut u64::MAX.clone(), &mut Effects::default());
    (core, board, desk)
}

fn target() -> Target {
    let doc = board_document(100, 0, 0, schema::Phase::Group);
    let (core, board, desk) = core_for(&doc, false);
    Target { client: doc, core, board, desk }
}

/// A message a client could send, before mutation.
#[derive(Debug, Clone)]
enum Seed {
    /// A bomb of so many operations, deflated or not.
    Bomb { ops: u64, deflated: bool },
    /// Real changes: `count` groupings of notes, each its own change.
    Changes { count: usize },
    /// The whole board again with `extra` operations of the client's own (a document chunk).
    Document { extra: usize },
    /// Random bytes.
    Garbage(Vec<u8>),
}

fn seed() -> impl Strategy<Value = Seed> {
    prop_oneof![
        (1u64..10_000_000, any::<bool>()).prop_map(|(ops, deflated)| Seed::Bomb { ops, deflated }),
        (1usize..200).prop_map(|count| Seed::Changes { count }),
        (0usize..60_000).prop_map(|extra| Seed::Document { extra }),
        proptest::collection::vec(any::<u8>(), 0..4096).prop_map(Seed::Garbage),
    ]
}

/// How a message is damaged before it is sent.
#[derive(Debug, Clone)]
enum Damage {
    None,
    Flip { at: usize, bit: u8 },
    Truncate { at: usize },
    Splice { at: usize, bytes: Vec<u8> },
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        2 => Just(Damage::None),
        1 => (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Damage::Flip { at, bit }),
        1 => any::<usize>().prop_map(|at| Damage::Truncate { at }),
        1 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..64)).prop_map(|(at, bytes)| Damage::Splice { at, bytes }),
    ]
}

fn message(target: &Target, seed: &Seed) -> Vec<u8> {
    match seed {
        Seed::Bomb { ops, deflated } => {
            let chunk = if *deflated { bomb::compressed_change(*ops) } else { bomb::change(*ops) };
            bomb::sync_message(vec![chunk])
        }
        Seed::Changes { count } => {
            let mut client = target.client.fork().with_actor(ActorId::random());
            for n in 0..*count {
                let board = schema::Board::read(&client).expect("board");
                let mut tx = client.transaction();
                let (a, b) = (format!("n{}", n % 100), format!("n{}", (n + 1) % 100));
                let _ = edit::group(&mut tx, &board, &a, &b, &format!("k{n}"));
                tx.commit();
            }
            // What the client sends a server that has the board as it was: its new changes.
            let changes = client.get_changes(&target.client.get_heads());
            bomb::sync_message(changes.iter().map(|c| c.raw_bytes().to_vec()).collect())
        }
        Seed::Document { extra } => {
            let mut client = target.client.fork().with_actor(ActorId::random());
            let mut tx = client.transaction();
            let map = tx.put_object(automerge::ROOT, "junk", automerge::ObjType::Map).expect("map");
            for n in 0..*extra {
                tx.put(&map, format!("k{n}"), n as i64).expect("put");
            }
            tx.commit();
            bomb::sync_message(vec![client.save()])
        }
        Seed::Garbage(bytes) => bytes.clone(),
    }
}

fn damaged(mut bytes: Vec<u8>, damage: &Damage) -> Vec<u8> {
    if bytes.is_empty() {
        return bytes;
    }
    match damage {
        Damage::None => {}
        Damage::Flip { at, bit } => {
            let at = at % bytes.len();
            bytes[at] ^= 1 << bit;
        }
        Damage::Truncate { at } => bytes.truncate(at % bytes.len()),
        Damage::Splice { at, bytes: inserted } => {
            let at = at % bytes.len();
            bytes.splice(at..at, inserted.iter().copied());
        }
    }
    bytes.truncate(MAX_MESSAGE_BYTES);
    bytes
}

/// The most one message cost, and which.
#[derive(Debug, Default)]
struct Worst {
    cpu: Duration,
    cpu_case: String,
    memory_mib: f32,
    memory_case: String,
}

#[test]
fn any_message_costs_the_server_a_bounded_time_and_memory() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let cases = std::env::var("HINDSIGHT_FUZZ_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(64);
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    let worst = std::cell::RefCell::new(Worst::default());
    let started = Instant::now();
    let result = runner.run(&(seed(), damage(), any::<bool>()), |(seed, damage, from_viewer)| {
        let mut target = target();
        let data = damaged(message(&target, &seed), &damage);
        let (doc, conn) = if from_viewer { (target.board, 2) } else { (target.desk, 1) };
        let doc = if matches!(seed, Seed::Changes { .. } | Seed::Document { .. }) { target.board } else { doc };
        let baseline = MEMORY.current_usage_as_mb();
        MEMORY.reset_peak_usage();
        let cpu = cpu_time::ThreadTime::now();
        let mut fx = Effects::default();
        target.core.receive(
            conn,
            &PeerId::from("peer"),
            doc,
            DocMessage::Sync(data.clone()),
            Instant::now(),
            &mut 100_000,
            &mut fx,
        );
        let spent = cpu.elapsed();
        let memory = MEMORY.peak_usage_as_mb() - baseline;
        let case = format!("{seed:?} {damage:?} viewer={from_viewer} ({} bytes)", data.len());
        let mut worst = worst.borrow_mut();
        if spent > worst.cpu {
            worst.cpu = spent;
            worst.cpu_case = case.chars().take(200).collect();
        }
        if memory > worst.memory_mib {
            worst.memory_mib = memory;
            worst.memory_case = case.chars().take(200).collect();
        }
        prop_assert!(spent <= MAX_CPU, "{case} took {spent:?} of CPU");
        prop_assert!(memory <= MAX_MEMORY_MIB, "{case} took {memory:.1} MiB");
        Ok(())
    });
    let worst = worst.into_inner();
    eprintln!(
        "message cost: {cases} messages in {:?}; the worst took {:?} of CPU ({}) and {:.1} MiB at its peak ({})",
        started.elapsed(),
        worst.cpu,
        worst.cpu_case,
        worst.memory_mib,
        worst.memory_case
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// The bombs of the issue, one by one, from a participant: refused before they cost anything.
#[test]
fn the_bombs_cost_nothing() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    for ops in [1_000_000, 8_000_000] {
        for deflated in [false, true] {
            let mut target = target();
            let chunk = if deflated { bomb::compressed_change(ops) } else { bomb::change(ops) };
            let baseline = MEMORY.current_usage_as_mb();
            MEMORY.reset_peak_usage();
            let cpu = cpu_time::ThreadTime::now();
            let mut fx = Effects::default();
            let message = DocMessage::Sync(bomb::sync_message(vec![chunk]));
            target.core.receive(
                1,
                &PeerId::from("ann"),
                target.desk,
                message,
                Instant::now(),
                &mut u64::MAX.clone(),
                &mut fx,
            );
            let (spent, memory) = (cpu.elapsed(), MEMORY.peak_usage_as_mb() - baseline);
            eprintln!("a bomb of {ops} operations (deflated: {deflated}): {spent:?} of CPU, {memory:.2} MiB");
            assert_eq!(fx.close.len(), 1, "the connection is closed: {fx:?}");
            assert!(fx.close[0].1.message.contains("too costly"), "{:?}", fx.close);
            assert!(spent < Duration::from_millis(50) && memory < 1.0, "{spent:?}, {memory} MiB");
        }
    }
}

/// The costliest message the server takes whole: the board again as one document chunk, with five
/// changes of a thousand action items each (30,000 new operations, within every bound), from the
/// facilitator. Printed for the README; bounded loosely here (a debug build).
#[test]
fn the_costliest_message_taken() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let doc = board_document(100, 0, 0, schema::Phase::Actions);
    let (mut core, board, _) = core_for(&doc, true);
    // The facilitator writes offline, then sends the whole board back as one document.
    let mut client = doc.fork();
    client.merge(&mut core.board_doc().clone()).expect("the server's board");
    for batch in 0..5 {
        let actor = hindsight_shared::ids::fresh_board_actor(&client);
        client.set_actor(actor);
        let mut tx = client.transaction();
        for n in 0..1_000 {
            edit::put_action(&mut tx, &action(&format!("a{batch}-{n}"), &format!("Action {n}"))).expect("action");
        }
        tx.commit();
    }
    let message = DocMessage::Sync(bomb::sync_message(vec![client.save()]));
    let baseline = MEMORY.current_usage_as_mb();
    MEMORY.reset_peak_usage();
    let cpu = cpu_time::ThreadTime::now();
    let mut fx = Effects::default();
    core.receive(1, &PeerId::from("ann"), board, message, Instant::now(), &mut u64::MAX.clone(), &mut fx);
    let (spent, memory) = (cpu.elapsed(), MEMORY.peak_usage_as_mb() - baseline);
    eprintln!(
        "the costliest message taken (the board and 5,000 action items as one document): {spent:?} of CPU, {memory:.1} MiB at its peak"
    );
    assert!(fx.close.is_empty() && fx.send.is_empty(), "taken: {fx:?}");
    assert_eq!(core.board().action_items.len(), 5_000);
    assert!(spent < Duration::from_secs(10) && memory < MAX_MEMORY_MIB, "{spent:?}, {memory} MiB");
}

/// What taking one ordinary change costs the board core on a large board (5,000 notes, 600
/// clusters, 1,500 action items): decoding, checking, applying and settling it, without storage
/// or sync. Printed for the README; bounded loosely here (a debug build).
#[test]
fn one_change_on_a_large_board() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let doc = board_document(5_000, 600, 1_500, schema::Phase::Actions);
    let (mut core, board, _) = core_for(&doc, true);
    let mut client = doc.fork();
    let mut spent = Vec::new();
    for n in 0..200 {
        let actor = hindsight_shared::ids::fresh_board_actor(&client);
        client.set_actor(actor);
        let mut tx = client.transaction();
        let item = schema::ActionItem {
            id: format!("a{n}"),
            text: format!("Edited {n}"),
            owner: "Sam".into(),
            due: String::new(),
            cluster: None,
        };
        edit::put_action(&mut tx, &item).expect("edit");
        tx.commit();
        let change = client.get_last_local_change().expect("a change").raw_bytes().to_vec();
        let message = DocMessage::Sync(bomb::sync_message(vec![change]));
        let mut fx = Effects::default();
        let cpu = cpu_time::ThreadTime::now();
        core.receive(1, &PeerId::from("ann"), board, message, Instant::now(), &mut u64::MAX.clone(), &mut fx);
        spent.push(cpu.elapsed());
        assert!(fx.send.is_empty() && fx.close.is_empty(), "accepted: {fx:?}");
        core.saved();
    }
    spent.sort();
    let median = spent[spent.len() / 2];
    eprintln!(
        "one change on a board of 5000 notes, 600 clusters, 1500 action items: {median:?} of CPU to take (median of {})",
        spent.len()
    );
    assert!(median < Duration::from_millis(20), "{median:?}");
}
