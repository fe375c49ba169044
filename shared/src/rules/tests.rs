//! The rules, on real documents: a change is made on a client's copy with the typed edits (or
//! raw writes), placed in the server's copy before it is applied, checked, applied and settled.

use automerge::transaction::{Transactable, Transaction};
use automerge::{ActorId, Automerge, ROOT, ReadDoc};

use super::*;
use crate::edit;
use crate::schema::{self, ActionItem, Board, Desk, Draft, MAX_NOTES_PER_BOARD, Note, Phase};

/// A server's board document in `phase`, holding published notes `n` and `m` (in no cluster).
fn server_board(phase: Phase) -> Automerge {
    let template = crate::templates::find("mad-sad-glad").expect("template");
    let mut doc = schema::new_board_document(ActorId::random(), "Retro", template, None).expect("board");
    let mut tx = doc.transaction();
    for id in ["n", "m"] {
        let note =
            Note { id: id.into(), column: "mad".into(), text: id.into(), created_at: 0, cluster: None, author: None };
        edit::publish_note(&mut tx, &note).expect("publish");
    }
    edit::set_phase(&mut tx, phase).expect("phase");
    tx.commit();
    doc
}

/// What the server makes of one change a client makes to its copy of `server`: the check before,
/// then (if it passes) the change applied and settled.
fn verdict(
    server: &mut Automerge,
    role: Role,
    write: impl FnOnce(&mut Transaction<'_>, &Board),
) -> Result<(), Refusal> {
    let mut client = server.fork().with_actor(ActorId::random());
    let board = Board::read(&client).expect("board");
    let mut tx = client.transaction();
    write(&mut tx, &board);
    tx.commit();
    let change = client.get_last_local_change().expect("a change").clone();
    let mut cache = Board::read(server).expect("board");
    let ops = place(server, &change)?;
    let parts = check_board_writes(role, &cache, &ops, |id| id == "p1")?;
    server.apply_changes([change]).expect("apply");
    settle_board(server, &mut cache, &parts)?;
    assert_eq!(cache, Board::read(server).expect("board"), "the settled copy is the board");
    Ok(())
}

#[test]
fn the_write_table() {
    use Role::*;
    let ok =
        |role, phase, write: fn(&mut Transaction<'_>, &Board)| verdict(&mut server_board(phase), role, write).is_ok();
    assert!(ok(Facilitator, Phase::Write, |tx, _| edit::set_phase(tx, Phase::Reveal).expect("phase")));
    assert!(!ok(Participant, Phase::Write, |tx, _| edit::set_phase(tx, Phase::Reveal).expect("phase")));
    assert!(!ok(Viewer, Phase::Group, |tx, b| edit::group(tx, b, "n", "m", "k").expect("group")));
    assert!(ok(Participant, Phase::Group, |tx, b| edit::group(tx, b, "n", "m", "k").expect("group")));
    assert!(!ok(Participant, Phase::Vote, |tx, b| edit::group(tx, b, "n", "m", "k").expect("group")));
    assert!(!ok(Participant, Phase::Group, |tx, _| {
        let notes = schema::root_map(tx, "notes").expect("notes");
        let (_, n) = tx.get(&notes, "n").expect("get").expect("note");
        tx.put(&n, "text", "rewritten").expect("put");
    }));
    assert!(!ok(Facilitator, Phase::Group, |tx, _| {
        tx.put_object(ROOT, "notes", automerge::ObjType::Map).expect("replace");
    }));
    let action =
        ActionItem { id: "a".into(), text: "Fix CI".into(), owner: "Ann".into(), due: String::new(), cluster: None };
    let put_action = |tx: &mut Transaction<'_>, _: &Board| {
        edit::put_action(
            tx,
            &ActionItem {
                id: "a".into(),
                text: "Fix CI".into(),
                owner: "Ann".into(),
                due: String::new(),
                cluster: None,
            },
        )
        .expect("action")
    };
    assert!(ok(Participant, Phase::Actions, put_action));
    assert!(!ok(Participant, Phase::Group, put_action));
    let _ = action;
    assert!(ok(Facilitator, Phase::Reveal, |tx, _| edit::reveal(tx, "mad").expect("reveal")));
    assert!(!ok(Facilitator, Phase::Write, |tx, _| edit::reveal(tx, "mad").expect("reveal")));
    assert!(!ok(Facilitator, Phase::Vote, |tx, b| {
        edit::set_settings(tx, &schema::Settings { vote_budget: 9, ..b.settings.clone() }).expect("settings")
    }));
    assert!(!ok(Participant, Phase::Discuss, |tx, _| {
        let totals = schema::root_map(tx, "vote_totals").expect("totals");
        tx.put(&totals, "n", 3).expect("put");
    }));
    assert!(ok(Facilitator, Phase::Done, |tx, _| edit::set_phase(tx, Phase::Actions).expect("phase")));
    assert!(!ok(Facilitator, Phase::Done, |tx, _| edit::set_title(tx, "Renamed").expect("title")));
    assert!(!ok(Facilitator, Phase::Write, |tx, _| tx.put(ROOT, "surprise", 1).expect("put")));
}

#[test]
fn values_are_checked_before_anything_is_applied() {
    let refusal = |phase, role, write: fn(&mut Transaction<'_>, &Board)| {
        let mut server = server_board(phase);
        let heads = server.get_heads();
        let refusal = verdict(&mut server, role, write).expect_err("refused");
        assert_eq!(server.get_heads(), heads, "nothing was applied");
        refusal.0
    };
    use Role::*;
    assert!(refusal(Phase::Write, Facilitator, |tx, _| tx.put(ROOT, "title", "").expect("put")).contains("title"));
    assert!(refusal(Phase::Write, Facilitator, |tx, _| tx.put(ROOT, "title", 7).expect("put")).contains("string"));
    assert!(
        refusal(Phase::Write, Facilitator, |tx, _| tx.put(ROOT, "phase", "party").expect("put")).contains("no phase")
    );
    assert!(
        refusal(Phase::Write, Facilitator, |tx, _| edit::hand_over(tx, "stranger").expect("put")).contains("joined")
    );
    assert!(
        refusal(Phase::Group, Participant, |tx, _| {
            let notes = schema::root_map(tx, "notes").expect("notes");
            let (_, n) = tx.get(&notes, "n").expect("get").expect("note");
            tx.put(&n, "cluster", "ghost").expect("put");
        })
        .contains("no cluster")
    );
    // A cluster made without its title, or with another id.
    assert!(
        refusal(Phase::Group, Participant, |tx, _| {
            let clusters = schema::root_map(tx, "clusters").expect("clusters");
            let k = tx.put_object(&clusters, "k", automerge::ObjType::Map).expect("make");
            tx.put(&k, "id", "k").expect("put");
        })
        .contains("needs its `title`")
    );
    assert!(
        refusal(Phase::Group, Participant, |tx, _| {
            let clusters = schema::root_map(tx, "clusters").expect("clusters");
            let k = tx.put_object(&clusters, "k", automerge::ObjType::Map).expect("make");
            tx.put(&k, "id", "other").expect("put");
            tx.put(&k, "title", "").expect("put");
        })
        .contains("id is its key")
    );
    assert!(
        refusal(Phase::Actions, Participant, |tx, _| {
            let item = ActionItem {
                id: "a".into(),
                text: "x".into(),
                owner: "o".into(),
                due: "2026-13-01".into(),
                cluster: None,
            };
            edit::put_action(tx, &ActionItem { due: String::new(), ..item }).expect("action");
            let actions = schema::root_map(tx, "action_items").expect("actions");
            let (_, a) = tx.get(&actions, "a").expect("get").expect("item");
            tx.put(&a, "due", "2026-13-01").expect("put");
        })
        .contains("YYYY-MM-DD")
    );
    // Text objects, as Automerge 3's JavaScript API writes strings by default.
    assert!(
        refusal(Phase::Write, Facilitator, |tx, _| {
            let text = tx.put_object(ROOT, "title", automerge::ObjType::Text).expect("text");
            tx.splice_text(&text, 0, 0, "Retro").expect("splice");
        })
        .contains("ImmutableString")
    );
}

#[test]
fn settings_agree_with_each_other_and_anonymity_is_fixed_once_notes_are_out() {
    let mut server = server_board(Phase::Write);
    let refused = verdict(&mut server, Role::Facilitator, |tx, b| {
        edit::set_settings(tx, &schema::Settings { max_votes_per_item: 9, ..b.settings.clone() }).expect("set")
    });
    assert!(refused.is_err_and(|r| r.0.contains("most dots per item")));
    let refused = verdict(&mut server, Role::Facilitator, |tx, b| {
        edit::set_settings(tx, &schema::Settings { anonymous: false, ..b.settings.clone() }).expect("set")
    });
    assert!(refused.is_err_and(|r| r.0.contains("anonymity")), "notes n and m are out");
    verdict(&mut server, Role::Facilitator, |tx, b| {
        edit::set_settings(tx, &schema::Settings { vote_budget: 8, max_votes_per_item: 8, ..b.settings.clone() })
            .expect("set")
    })
    .expect("a consistent change");
}

#[test]
fn a_write_that_loses_a_conflict_is_still_checked() {
    let mut server = server_board(Phase::Reveal);
    let mut sneaky = server.fork().with_actor(ActorId::random());
    let mut tx = sneaky.transaction();
    edit::set_phase(&mut tx, Phase::Done).expect("put");
    tx.commit();
    let mut tx = server.transaction();
    edit::set_phase(&mut tx, Phase::Group).expect("put");
    edit::set_phase(&mut tx, Phase::Vote).expect("put again, for a higher op counter");
    tx.commit();
    let change = sneaky.get_last_local_change().expect("a change").clone();
    let ops = place(&server, &change).expect("placed");
    assert_eq!(ops.iter().map(PlacedOp::keys).collect::<Vec<_>>(), [vec![Some("phase")]]);
    let board = Board::read(&server).expect("board");
    assert!(check_board_writes(Role::Participant, &board, &ops, |_| true).is_err());
}

#[test]
fn a_put_that_settles_a_conflict_is_a_put() {
    let mut server = server_board(Phase::Group);
    // Two people drag note n into different clusters at once.
    let put_cluster = |doc: &mut Automerge, cluster: &str| {
        let mut tx = doc.transaction();
        let clusters = schema::root_map(&tx, "clusters").expect("clusters");
        if tx.get(&clusters, cluster).expect("get").is_none() {
            let obj = tx.put_object(&clusters, cluster, automerge::ObjType::Map).expect("make");
            tx.put(&obj, "id", cluster).expect("put");
            tx.put(&obj, "title", "").expect("put");
        }
        let notes = schema::root_map(&tx, "notes").expect("notes");
        let (_, obj) = tx.get(&notes, "n").expect("get").expect("the note");
        tx.put(&obj, "cluster", cluster).expect("put");
        tx.commit();
        doc.get_last_local_change().expect("a change").clone()
    };
    let (mut one, mut two) = (server.fork(), server.fork());
    let one = put_cluster(&mut one, "k1");
    let two = put_cluster(&mut two, "k2");
    server.apply_changes([one, two]).expect("merge");
    // A third drops it onto the cluster it now shows: Automerge writes that as a delete.
    let mut client = server.fork();
    let shown = Board::read(&client).expect("board").notes["n"].cluster.clone().expect("a cluster");
    let change = put_cluster(&mut client, &shown);
    let actions: Vec<_> = change.decode().operations.into_iter().map(|op| op.action).collect();
    assert_eq!(actions, [automerge::legacy::OpType::Delete], "automerge settles the conflict with a delete");
    let ops = place(&server, &change).expect("placed");
    assert_eq!(ops[0].write, Write::Settle);
    let board = Board::read(&server).expect("board");
    assert!(check_board_writes(Role::Participant, &board, &ops, |_| true).is_ok());
}

/// A desk, the board it belongs to, and what the server makes of one change its owner makes.
fn desk_verdict(
    board: &Board,
    desk_doc: &mut Automerge,
    write: impl FnOnce(&mut Transaction<'_>),
) -> Result<(), Refusal> {
    let mut client = desk_doc.fork();
    let mut tx = client.transaction();
    write(&mut tx);
    tx.commit();
    let change = client.get_last_local_change().expect("a change").clone();
    let mut cache = Desk::read(desk_doc).expect("desk");
    let ops = place(desk_doc, &change)?;
    let parts = check_desk_writes(&cache, board, &ops)?;
    desk_doc.apply_changes([change]).expect("apply");
    settle_desk(desk_doc, &mut cache, board, &parts)?;
    assert_eq!(cache, Desk::read(desk_doc).expect("desk"), "the settled copy is the desk");
    Ok(())
}

fn draft(id: &str, text: &str) -> Draft {
    Draft { id: id.into(), column: "mad".into(), text: text.into(), created_at: 0 }
}

#[test]
fn desk_writes_follow_the_phase() {
    let mut board = Board::read(&server_board(Phase::Write)).expect("board");
    let mut desk = schema::new_desk_document(ActorId::random()).expect("desk");
    desk_verdict(&board, &mut desk, |tx| edit::add_draft(tx, &draft("d", "Slow builds")).expect("draft")).expect("ok");
    board.phase = Phase::Group;
    desk_verdict(&board, &mut desk, |tx| edit::add_draft(tx, &draft("e", "Offline")).expect("draft"))
        .expect("a note written offline still arrives");
    desk_verdict(&board, &mut desk, |tx| edit::set_draft_text(tx, "d", "Slower builds").expect("edit")).expect("edits");
    board.phase = Phase::Vote;
    let late = desk_verdict(&board, &mut desk, |tx| edit::add_draft(tx, &draft("f", "Late")).expect("draft"));
    assert!(late.is_err_and(|r| r.0.contains("no longer taken")));
    let edit = desk_verdict(&board, &mut desk, |tx| edit::set_draft_text(tx, "d", "Too late").expect("edit"));
    assert!(edit.is_err_and(|r| r.0.contains("cannot be edited")));
    let gone = desk_verdict(&board, &mut desk, |tx| edit::delete_draft(tx, "d").expect("delete"));
    assert!(gone.is_err_and(|r| r.0.contains("cannot be deleted")));
    let nowhere = desk_verdict(&board, &mut desk, |tx| tx.put(ROOT, "name", "me").expect("put"));
    assert!(nowhere.is_err_and(|r| r.0.contains("a desk holds")));
}

#[test]
fn votes_keep_the_per_item_maximum_and_the_budget_even_from_two_tabs() {
    let mut board = Board::read(&server_board(Phase::Vote)).expect("board");
    board.settings.vote_budget = 4;
    let mut desk = schema::new_desk_document(ActorId::random()).expect("desk");
    desk_verdict(&board, &mut desk, |tx| edit::set_votes(tx, "n", 3).expect("vote")).expect("three dots");
    let over = desk_verdict(&board, &mut desk, |tx| edit::set_votes(tx, "m", 4).expect("vote"));
    assert!(over.is_err_and(|r| r.0.contains("1 to 3")), "per-item maximum");
    let ghost = desk_verdict(&board, &mut desk, |tx| edit::set_votes(tx, "ghost", 1).expect("vote"));
    assert!(ghost.is_err_and(|r| r.0.contains("clusters and lone notes")));
    // Two tabs of one person, each within the budget alone: the second merged one is refused
    // after it is applied, and the caller rolls it back.
    let mut desk = schema::new_desk_document(ActorId::random()).expect("desk");
    let (mut one, mut two) = (desk.fork(), desk.fork());
    let mut tx = one.transaction();
    edit::set_votes(&mut tx, "n", 3).expect("vote");
    tx.commit();
    let mut tx = two.transaction();
    edit::set_votes(&mut tx, "m", 3).expect("vote");
    tx.commit();
    let mut cache = Desk::read(&desk).expect("desk");
    for (client, accepted) in [(&one, true), (&two, false)] {
        let change = client.get_last_local_change().expect("a change").clone();
        let ops = place(&desk, &change).expect("placed");
        let parts = check_desk_writes(&cache, &board, &ops).expect("each tab alone is within the budget");
        desk.apply_changes([change]).expect("apply");
        assert_eq!(settle_desk(&desk, &mut cache, &board, &parts).is_ok(), accepted);
    }
}

#[test]
fn a_full_board_takes_no_new_drafts_but_edits_of_old_ones() {
    let mut board = Board::read(&server_board(Phase::Write)).expect("board");
    let mut desk = schema::new_desk_document(ActorId::random()).expect("desk");
    desk_verdict(&board, &mut desk, |tx| edit::add_draft(tx, &draft("d", "Before it filled up")).expect("draft"))
        .expect("room");
    for n in 0..MAX_NOTES_PER_BOARD {
        let id = format!("x{n}");
        let note =
            Note { id: id.clone(), column: "mad".into(), text: "x".into(), created_at: 0, cluster: None, author: None };
        board.notes.insert(id, note);
    }
    let full = desk_verdict(&board, &mut desk, |tx| edit::add_draft(tx, &draft("e", "One too many")).expect("draft"));
    assert!(full.is_err_and(|r| r.0.contains("at most 10000 notes")));
    desk_verdict(&board, &mut desk, |tx| edit::set_draft_text(tx, "d", "Edited").expect("edit"))
        .expect("an old draft can still be edited");
}

#[test]
fn placing_finds_objects_made_in_the_same_change() {
    let mut server = server_board(Phase::Group);
    let mut client = server.fork();
    let board = Board::read(&client).expect("board");
    let mut tx = client.transaction();
    edit::group(&mut tx, &board, "n", "m", "k").expect("group");
    tx.commit();
    let change = client.get_last_local_change().expect("a change").clone();
    let ops = place(&server, &change).expect("placed");
    let paths: Vec<String> =
        ops.iter().map(|op| op.keys().iter().map(|k| k.unwrap_or("[]")).collect::<Vec<_>>().join("/")).collect();
    assert!(paths.contains(&"clusters/k".to_owned()), "{paths:?}");
    assert!(paths.contains(&"clusters/k/title".to_owned()), "{paths:?}");
    assert!(paths.contains(&"notes/n/cluster".to_owned()), "{paths:?}");
    let made = ops.iter().find(|op| op.write == Write::MakeMap).expect("the cluster is made");
    assert!(ops.iter().filter(|op| op.made_in == Some(made.index)).count() == 2, "id and title go into it");
    server.apply_changes([change]).expect("apply");
    assert!(server.get(ROOT, "clusters").expect("get").is_some());
}

#[test]
fn a_key_longer_than_any_id_is_refused_before_its_path_is_looked_up() {
    let mut server = server_board(Phase::Group);
    let long = "k".repeat(place::MAX_KEY_BYTES + 1);
    let refused = verdict(&mut server, Role::Facilitator, |tx, _| {
        let clusters = tx.get(ROOT, "clusters").expect("get").map(|(_, id)| id).expect("clusters");
        let cluster = tx.put_object(&clusters, long.as_str(), automerge::ObjType::Map).expect("make");
        tx.put(&cluster, "id", long.as_str()).expect("put");
    });
    assert!(refused.is_err_and(|r| r.0.contains("a key is at most")));
    let fits = "k".repeat(place::MAX_KEY_BYTES);
    let error = verdict(&mut server, Role::Facilitator, |tx, _| {
        let clusters = tx.get(ROOT, "clusters").expect("get").map(|(_, id)| id).expect("clusters");
        let cluster = tx.put_object(&clusters, fits.as_str(), automerge::ObjType::Map).expect("make");
        tx.put(&cluster, "id", fits.as_str()).expect("put");
        tx.put(&cluster, "title", "").expect("put");
    });
    // Whatever else the rules say of it, a key of the longest length is not refused for its length.
    if let Err(refusal) = error {
        assert!(!refusal.0.contains("a key is at most"), "{refusal:?}");
    }
}

#[test]
fn co_facilitators_are_named_by_facilitators_and_share_their_rights() {
    use Role::*;
    let mut doc = server_board(Phase::Write);
    assert!(verdict(&mut doc, Participant, |tx, _| edit::set_co_facilitator(tx, "p1", true).expect("co")).is_err());
    assert!(
        verdict(&mut doc, Facilitator, |tx, _| edit::set_co_facilitator(tx, "stranger", true).expect("co")).is_err()
    );
    assert!(
        verdict(&mut doc, Facilitator, |tx, _| {
            let map = schema::root_map(tx, "co_facilitators").expect("map");
            tx.put(&map, "p1", "yes").expect("put");
        })
        .is_err(),
        "a co-facilitator is marked true"
    );
    verdict(&mut doc, Facilitator, |tx, _| edit::set_co_facilitator(tx, "p1", true).expect("co")).expect("named");
    let board = Board::read(&doc).expect("board");
    assert!(board.facilitates("p1") && !board.facilitates("p2"));
    verdict(&mut doc, Facilitator, |tx, _| edit::set_co_facilitator(tx, "p1", false).expect("co")).expect("removed");
    assert!(!Board::read(&doc).expect("board").facilitates("p1"));
}

#[test]
fn everyone_arranges_notes_from_reveal_to_discuss_with_whole_ranks() {
    use Role::*;
    let arrange = |tx: &mut Transaction<'_>, b: &Board| edit::arrange(tx, b, &["m", "n"]).expect("arrange");
    assert!(verdict(&mut server_board(Phase::Write), Participant, arrange).is_err());
    assert!(verdict(&mut server_board(Phase::Actions), Participant, arrange).is_err());
    assert!(verdict(&mut server_board(Phase::Group), Viewer, arrange).is_err());
    let mut doc = server_board(Phase::Reveal);
    verdict(&mut doc, Participant, arrange).expect("arranged");
    let board = Board::read(&doc).expect("board");
    let order: Vec<&str> = board.notes_in("mad").map(|n| n.id.as_str()).collect();
    assert_eq!(order, ["m", "n"]);
    let raw = |value: automerge::ScalarValue| {
        move |tx: &mut Transaction<'_>, _: &Board| {
            let ranks = schema::root_map(tx, "ranks").expect("ranks");
            tx.put(&ranks, "n", value).expect("put");
        }
    };
    assert!(verdict(&mut doc, Participant, raw(automerge::ScalarValue::F64(0.5))).is_err(), "ranks are whole");
    assert!(verdict(&mut doc, Participant, raw(automerge::ScalarValue::Int(i64::MAX))).is_err(), "ranks are bounded");
    assert!(
        verdict(&mut doc, Participant, |tx, _| {
            let ranks = schema::root_map(tx, "ranks").expect("ranks");
            tx.put(&ranks, "no-such-note", 5).expect("put");
        })
        .is_err()
    );
}

#[test]
fn anchors_are_set_while_grouping_to_a_note_of_the_board_and_a_cluster_never_takes_a_notes_id() {
    use Role::*;
    let group = |tx: &mut Transaction<'_>, b: &Board| edit::group(tx, b, "n", "m", "k").expect("group");
    let mut doc = server_board(Phase::Group);
    verdict(&mut doc, Participant, group).expect("grouped, anchored at m");
    assert_eq!(Board::read(&doc).expect("board").anchors.get("k").map(String::as_str), Some("m"));
    let anchor = |value: &'static str| {
        move |tx: &mut Transaction<'_>, _: &Board| {
            let anchors = schema::root_map(tx, "anchors").expect("anchors");
            tx.put(&anchors, "k", value).expect("put");
        }
    };
    assert!(verdict(&mut doc, Participant, anchor("no-such-note")).is_err());
    verdict(&mut doc, Participant, anchor("n")).expect("another note");
    assert!(verdict(&mut server_board(Phase::Vote), Participant, group).is_err(), "anchors only while grouping");
    // A cluster keyed by a note's id would make one id name two items.
    assert!(
        verdict(&mut server_board(Phase::Group), Participant, |tx, b| {
            edit::group(tx, b, "n", "m", "m").expect("group")
        })
        .is_err()
    );
}

#[test]
fn roti_is_rated_on_ones_desk_at_done_until_the_facilitator_shows_the_results() {
    use Role::*;
    let mut board = Board::read(&server_board(Phase::Actions)).expect("board");
    let mut desk = schema::new_desk_document(ActorId::random()).expect("desk");
    let early = desk_verdict(&board, &mut desk, |tx| edit::set_roti(tx, Some(4)).expect("rate"));
    assert!(early.is_err_and(|r| r.0.contains("once it is done")));
    board.phase = Phase::Done;
    desk_verdict(&board, &mut desk, |tx| edit::set_roti(tx, Some(4)).expect("rate")).expect("a rating at Done");
    desk_verdict(&board, &mut desk, |tx| edit::set_roti(tx, None).expect("unrate")).expect("taken back");
    for bad in [0, 6, -1] {
        let refused = desk_verdict(&board, &mut desk, |tx| edit::set_roti(tx, Some(bad)).expect("rate"));
        assert!(refused.is_err_and(|r| r.0.contains("1 to 5")), "{bad}");
    }
    let other = desk_verdict(&board, &mut desk, |tx| edit::set_ready(tx, true).expect("ready"));
    assert!(other.is_err_and(|r| r.0.contains("done")), "at Done a desk takes only its rating");
    board.roti_shown = true;
    let late = desk_verdict(&board, &mut desk, |tx| edit::set_roti(tx, Some(3)).expect("rate"));
    assert!(late.is_err_and(|r| r.0.contains("closed")));

    // Showing the results: a facilitator's, once, at Done; the results are the server's.
    let ok = |role, phase, write: fn(&mut Transaction<'_>, &Board)| verdict(&mut server_board(phase), role, write);
    ok(Facilitator, Phase::Done, |tx, _| edit::show_roti(tx).expect("show")).expect("the facilitator shows them");
    assert!(ok(Participant, Phase::Done, |tx, _| edit::show_roti(tx).expect("show")).is_err());
    assert!(ok(Facilitator, Phase::Actions, |tx, _| edit::show_roti(tx).expect("show")).is_err());
    let mut shown = server_board(Phase::Done);
    let mut tx = shown.transaction();
    edit::show_roti(&mut tx).expect("show");
    tx.commit();
    let hidden = verdict(&mut shown, Facilitator, |tx, _| tx.put(ROOT, "roti_shown", false).expect("hide"));
    assert!(hidden.is_err_and(|r| r.0.contains("cannot be hidden")));
    let forged = ok(Facilitator, Phase::Actions, |tx, _| {
        let results = [("5".to_owned(), 9)].into_iter().collect();
        edit::set_roti_results(tx, &results).expect("forge");
    });
    assert!(forged.is_err_and(|r| r.0.contains("only the server")));
}
