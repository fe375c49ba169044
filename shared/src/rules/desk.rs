//! A desk's rules: what its owner may write on it in each phase, and the budget its votes keep
//! once a change is merged (two tabs of one person may vote at once).

use std::collections::HashSet;

use automerge::{Automerge, ScalarValue};

use super::value::{boolean, int, string};
use super::{Made, PlacedOp, Refusal, Write, accepts_new_notes, can_edit_notes, can_vote, can_write_notes, refuse};
use crate::schema::{
    self, Board, Desk, Draft, MAX_DRAFTS_PER_DESK, MAX_NOTE_CHARS, MAX_NOTES_PER_BOARD, Phase, ROTI_RATINGS,
    SchemaError,
};
use crate::timeline::{KINDS, MAX_EVENT_CHARS, MAX_EVENTS_PER_DESK, MAX_SOURCE_CHARS};

/// A part of a desk one change may touch, to read back once it is merged.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DeskPart {
    Draft(String),
    /// The votes and the abstention, which are checked together.
    Votes,
    Ready,
    Roti,
    /// A timeline event.
    Event(String),
}

/// Checks every write of one change to a desk, by its owner, before it is applied. Returns the
/// parts of the desk it touches.
pub fn check_desk_writes(desk: &Desk, board: &Board, ops: &[PlacedOp]) -> Result<Vec<DeskPart>, Refusal> {
    let phase = board.phase;
    // At Done, a desk takes its owner's rating of the retro and nothing else.
    if phase == Phase::Done && ops.iter().any(|op| op.keys().as_slice() != [Some("roti")]) {
        return refuse("the retro is done: nothing changes any more");
    }
    let mut parts: Vec<DeskPart> = Vec::new();
    let mut made = Made::default();
    let mut new_drafts: HashSet<&str> = HashSet::new();
    let mut new_events = 0;
    for op in ops {
        let keys = op.keys();
        let put = match &op.write {
            Write::Put(v) => Some(Some(v)),
            Write::Settle => Some(None),
            _ => None,
        };
        // An edit of a draft the desk holds (rather than one this change writes anew).
        let existing = |draft: &str| op.made_in.is_none() && desk.drafts.contains_key(draft);
        let part = match (keys.as_slice(), put) {
            ([Some("drafts"), Some(id)], None) if op.write == Write::MakeMap => {
                made.object(op.index, "note");
                if desk.drafts.contains_key(*id) {
                    edit_allowed(phase)?;
                } else {
                    if !accepts_new_notes(phase) {
                        return refuse(format!("new notes are no longer taken in the {} phase", phase.as_str()));
                    }
                    if board.notes.len() >= MAX_NOTES_PER_BOARD {
                        return refuse(format!("the board is full: it holds at most {MAX_NOTES_PER_BOARD} notes"));
                    }
                    new_drafts.insert(id);
                }
                DeskPart::Draft((*id).to_owned())
            }
            ([Some("drafts"), Some(id)], None) if op.write == Write::Delete => {
                if !can_edit_notes(phase) {
                    return refuse(format!("notes cannot be deleted in the {} phase", phase.as_str()));
                }
                DeskPart::Draft((*id).to_owned())
            }
            ([Some("drafts"), Some(id), Some(field @ ("id" | "column" | "text" | "created_at"))], Some(v)) => {
                if existing(id) {
                    edit_allowed(phase)?;
                }
                if let Some(v) = v {
                    check_draft_field(desk, board, id, field, v, existing(id))?;
                }
                if let Some(object) = op.made_in {
                    made.field(object, field);
                }
                DeskPart::Draft((*id).to_owned())
            }
            ([Some("votes"), Some(item)], put) if put.is_some() || op.write == Write::Delete => {
                if !can_vote(phase) {
                    return refuse(format!("voting happens in the vote phase, not {}", phase.as_str()));
                }
                if let Some(Some(v)) = put {
                    let max = board.settings.max_votes_per_item;
                    let dots = int(v, "a vote", 1..=max)
                        .map_err(|_| Refusal(format!("an item takes 1 to {max} of your dots")))?;
                    if desk.votes.get(*item) != Some(&dots) && !board.is_vote_item(item) {
                        return refuse("votes go to clusters and lone notes of this board");
                    }
                }
                DeskPart::Votes
            }
            ([Some("abstain")], Some(v)) => {
                if !can_vote(phase) {
                    return refuse(format!("voting happens in the vote phase, not {}", phase.as_str()));
                }
                if let Some(v) = v {
                    boolean(v, "abstaining")?;
                }
                DeskPart::Votes
            }
            ([Some("roti")], Some(v)) => {
                if phase != Phase::Done {
                    return refuse("the retro is rated once it is done");
                }
                if board.roti_shown {
                    return refuse("the ROTI results are out: ratings are closed");
                }
                if let Some(v) = v
                    && *v != ScalarValue::Null
                {
                    int(v, "a rating", ROTI_RATINGS).map_err(|_| Refusal("a rating is 1 to 5".into()))?;
                }
                DeskPart::Roti
            }
            ([Some("events"), Some(id)], None) if matches!(op.write, Write::MakeMap | Write::Delete) => {
                if op.write == Write::MakeMap {
                    made.object(op.index, "event");
                    if !desk.events.contains_key(*id) {
                        new_events += 1;
                    }
                }
                DeskPart::Event((*id).to_owned())
            }
            ([Some("events"), Some(id), Some(field @ ("id" | "at" | "text" | "kind" | "source"))], Some(v)) => {
                if let Some(v) = v {
                    check_event_field(id, field, v)?;
                }
                if let Some(object) = op.made_in {
                    made.field(object, field);
                }
                DeskPart::Event((*id).to_owned())
            }
            ([Some("ready")], Some(v)) => {
                if let Some(v) = v {
                    boolean(v, "ready")?;
                }
                DeskPart::Ready
            }
            _ => {
                let path: Vec<&str> = keys.iter().map(|k| k.unwrap_or("[]")).collect();
                return refuse(format!(
                    "a desk holds drafts, votes, ready, abstain, roti and events, not {}",
                    path.join("/")
                ));
            }
        };
        if !parts.contains(&part) {
            parts.push(part);
        }
    }
    made.check(|what| match what {
        "event" => &["id", "at", "text", "kind", "source"],
        _ => &["id", "column", "text", "created_at"],
    })?;
    if desk.drafts.len() + new_drafts.len() > MAX_DRAFTS_PER_DESK {
        return refuse(format!("one person may write at most {MAX_DRAFTS_PER_DESK} notes"));
    }
    if desk.events.len() + new_events > MAX_EVENTS_PER_DESK {
        return refuse(format!("one person may write at most {MAX_EVENTS_PER_DESK} timeline events"));
    }
    Ok(parts)
}

/// One field of a timeline event on a desk.
pub(super) fn check_event_field(id: &str, field: &str, v: &ScalarValue) -> Result<(), Refusal> {
    match field {
        "id" => match v {
            ScalarValue::Str(s) if s.as_str() == id => Ok(()),
            _ => refuse("an event's id is its key"),
        },
        "at" => {
            let at = string(v, "an event's time", 40, false)?;
            match crate::incident::parse_time(at) {
                Some(_) => Ok(()),
                None => refuse("an event's time is RFC 3339 with its offset, like 2026-11-30T14:02:00+01:00"),
            }
        }
        "text" => string(v, "an event", MAX_EVENT_CHARS, false).map(drop),
        "kind" => {
            let kind = string(v, "an event's kind", 16, false)?;
            if KINDS.contains(&kind) { Ok(()) } else { refuse(format!("an event is one of: {}", KINDS.join(", "))) }
        }
        _ => super::value::line(v, "an event's source", MAX_SOURCE_CHARS, true).map(drop),
    }
}

fn edit_allowed(phase: Phase) -> Result<(), Refusal> {
    if can_edit_notes(phase) {
        Ok(())
    } else {
        refuse(format!("notes cannot be edited in the {} phase", phase.as_str()))
    }
}

fn check_draft_field(
    desk: &Desk,
    board: &Board,
    id: &str,
    field: &str,
    v: &ScalarValue,
    existing: bool,
) -> Result<(), Refusal> {
    match field {
        "id" => match v {
            ScalarValue::Str(s) if s.as_str() == id => Ok(()),
            _ => refuse("a note's id is its key"),
        },
        "column" => {
            let column = string(v, "a column", usize::MAX, false)?;
            if !board.columns.iter().any(|c| c.id == column) {
                return refuse(format!("there is no column `{column}`"));
            }
            let moved = existing && desk.drafts.get(id).is_some_and(|d| d.column != column);
            if moved && !can_write_notes(board.phase) {
                return refuse("notes change columns only while writing");
            }
            Ok(())
        }
        "text" => string(v, "a note", MAX_NOTE_CHARS, false)
            .map(drop)
            .map_err(|_| Refusal(format!("a note has 1 to {MAX_NOTE_CHARS} characters"))),
        _ => int(v, "a note's time", i64::MIN..=i64::MAX).map(drop),
    }
}

/// Reads back the parts of a desk a change touched, once it is applied to `doc`, and checks what
/// depends on the merged state: the number of notes, the vote budget, abstaining with no votes.
/// On success `desk` holds them; on refusal it is unchanged (and the caller rolls `doc` back).
pub fn settle_desk(doc: &Automerge, desk: &mut Desk, board: &Board, parts: &[DeskPart]) -> Result<(), Refusal> {
    let malformed = |e: SchemaError| Refusal(format!("the desk would be malformed: {e}"));
    let mut drafts: Vec<(String, Option<Draft>)> = Vec::new();
    let mut votes = None;
    let mut ready = None;
    let mut roti = None;
    let mut events: Vec<(String, Option<crate::timeline::DeskEvent>)> = Vec::new();
    for part in parts {
        match part {
            DeskPart::Draft(id) => drafts.push((id.clone(), schema::read_entry(doc, "drafts", id).map_err(malformed)?)),
            DeskPart::Votes => {
                let map = autosurgeon::hydrate_prop(doc, automerge::ROOT, "votes").map_err(|e| malformed(e.into()))?;
                let abstain: bool =
                    autosurgeon::hydrate_prop(doc, automerge::ROOT, "abstain").map_err(|e| malformed(e.into()))?;
                votes = Some((map, abstain));
            }
            DeskPart::Ready => {
                ready =
                    Some(autosurgeon::hydrate_prop(doc, automerge::ROOT, "ready").map_err(|e| malformed(e.into()))?);
            }
            DeskPart::Event(id) => events.push((id.clone(), schema::read_entry(doc, "events", id).map_err(malformed)?)),
            DeskPart::Roti => {
                let rating: Option<i64> =
                    autosurgeon::hydrate_prop(doc, automerge::ROOT, "roti").map_err(|e| malformed(e.into()))?;
                roti = Some(rating);
            }
        }
    }
    let count = desk.drafts.len()
        + drafts.iter().filter(|(id, d)| d.is_some() && !desk.drafts.contains_key(id)).count()
        - drafts.iter().filter(|(id, d)| d.is_none() && desk.drafts.contains_key(id)).count();
    if count > MAX_DRAFTS_PER_DESK {
        return refuse(format!("one person may write at most {MAX_DRAFTS_PER_DESK} notes"));
    }
    if let Some((votes, abstain)) = &votes {
        let settings = &board.settings;
        let votes: &std::collections::BTreeMap<String, i64> = votes;
        if votes.values().sum::<i64>() > settings.vote_budget {
            return refuse(format!("you have {} dots to place", settings.vote_budget));
        }
        if *abstain && !votes.is_empty() {
            return refuse("take your dots back before you abstain");
        }
    }
    for (id, draft) in drafts {
        match draft {
            Some(draft) => desk.drafts.insert(id, draft),
            None => desk.drafts.remove(&id),
        };
    }
    if let Some((map, abstain)) = votes {
        desk.votes = map;
        desk.abstain = abstain;
    }
    if let Some(ready) = ready {
        desk.ready = ready;
    }
    if let Some(rating) = roti {
        desk.roti = rating;
    }
    for (id, event) in events {
        match event {
            Some(event) => desk.events.insert(id, event),
            None => desk.events.remove(&id),
        };
    }
    Ok(())
}
