//! Typed writes to board and desk documents. Each function checks its input and makes the
//! smallest change that does the job, inside a transaction the caller commits.
//!
//! Who may call what is not decided here but in [`crate::rules`], which the server enforces on
//! every change and the client consults to offer only what is allowed.

use automerge::{ObjType, ROOT, ScalarValue};
use autosurgeon::{Doc, ReadDoc};

use crate::schema::{
    ActionItem, Board, Cluster, Draft, MAX_ACTION_CHARS, MAX_CLUSTER_TITLE_CHARS, MAX_NAME_CHARS, MAX_NOTE_CHARS,
    MAX_RANK, MAX_TITLE_CHARS, Note, Phase, SchemaError, Settings, root_map,
};

fn too_long(what: &str, text: &str, max: usize) -> Result<(), SchemaError> {
    if text.chars().count() > max {
        return Err(SchemaError::Invalid(format!("{what} may hold at most {max} characters")));
    }
    Ok(())
}

fn entry(doc: &impl ReadDoc, map: &'static str, id: &str) -> Result<automerge::ObjId, SchemaError> {
    let parent = root_map(doc, map)?;
    match doc.get(&parent, id)? {
        Some((automerge::Value::Object(ObjType::Map), obj)) => Ok(obj),
        _ => Err(SchemaError::Invalid(format!("there is no `{id}` in `{map}`"))),
    }
}

pub(crate) fn put_entry<T: autosurgeon::Reconcile>(
    doc: &mut impl Doc,
    map: &'static str,
    id: &str,
    value: &T,
) -> Result<(), SchemaError> {
    let parent = root_map(doc, map)?;
    autosurgeon::reconcile_prop(doc, &parent, id, value)?;
    Ok(())
}

fn delete_entry(doc: &mut impl Doc, map: &'static str, id: &str) -> Result<(), SchemaError> {
    entry(doc, map, id)?;
    let parent = root_map(doc, map)?;
    doc.delete(&parent, id)?;
    Ok(())
}

fn columns(doc: &impl ReadDoc) -> Result<Vec<String>, SchemaError> {
    let columns: Vec<crate::schema::Column> = autosurgeon::hydrate_prop(doc, ROOT, "columns")?;
    Ok(columns.into_iter().map(|c| c.id).collect())
}

// ---- The facilitator's controls -------------------------------------------------------------

/// Moves the retro to `phase`. Finishing it stops the timer: nothing keeps counting on a done
/// board.
pub fn set_phase(doc: &mut impl Doc, phase: Phase) -> Result<(), SchemaError> {
    autosurgeon::reconcile_prop(doc, ROOT, "phase", phase)?;
    if phase == Phase::Done {
        stop_timer(doc)?;
    }
    Ok(())
}

pub fn set_title(doc: &mut impl Doc, title: &str) -> Result<(), SchemaError> {
    too_long("a title", title, MAX_TITLE_CHARS)?;
    doc.put(ROOT, "title", title)?;
    Ok(())
}

pub fn set_settings(doc: &mut impl Doc, settings: &Settings) -> Result<(), SchemaError> {
    autosurgeon::reconcile_prop(doc, ROOT, "settings", settings)?;
    Ok(())
}

/// Starts the shared countdown: it ends `duration_ms` after `now_ms`.
pub fn start_timer(doc: &mut impl Doc, duration_ms: i64, now_ms: i64) -> Result<(), SchemaError> {
    let timer = root_map(doc, "timer")?;
    doc.put(&timer, "ends_at", now_ms.saturating_add(duration_ms))?;
    doc.put(&timer, "duration_ms", duration_ms)?;
    Ok(())
}

pub fn stop_timer(doc: &mut impl Doc) -> Result<(), SchemaError> {
    let timer = root_map(doc, "timer")?;
    doc.put(&timer, "ends_at", ScalarValue::Null)?;
    Ok(())
}

/// Reveals one column's notes.
pub fn reveal(doc: &mut impl Doc, column: &str) -> Result<(), SchemaError> {
    if !columns(doc)?.iter().any(|c| c == column) {
        return Err(SchemaError::Invalid(format!("there is no column `{column}`")));
    }
    let revealed = root_map(doc, "revealed")?;
    doc.put(&revealed, column, true)?;
    Ok(())
}

/// Reveals every column.
pub fn reveal_all(doc: &mut impl Doc) -> Result<(), SchemaError> {
    for column in columns(doc)? {
        reveal(doc, &column)?;
    }
    Ok(())
}

/// Focuses one item for everyone during the discussion, or none.
pub fn set_focus(doc: &mut impl Doc, item: Option<&str>) -> Result<(), SchemaError> {
    match item {
        Some(item) => doc.put(ROOT, "focus", item)?,
        None => doc.put(ROOT, "focus", ScalarValue::Null)?,
    }
    Ok(())
}

/// Hands the facilitator role to another participant.
pub fn hand_over(doc: &mut impl Doc, participant: &str) -> Result<(), SchemaError> {
    doc.put(ROOT, "facilitator", participant)?;
    Ok(())
}

/// Makes a participant a co-facilitator (`on`), with the facilitator's rights, or no longer one.
pub fn set_co_facilitator(doc: &mut impl Doc, participant: &str, on: bool) -> Result<(), SchemaError> {
    let map = root_map(doc, "co_facilitators")?;
    if on {
        doc.put(&map, participant, true)?;
    } else if doc.get(&map, participant)?.is_some() {
        doc.delete(&map, participant)?;
    }
    Ok(())
}

// ---- Arranging (everyone, from Reveal to Discuss) -------------------------------------------

/// The distance between neighbouring ranks when a column is numbered afresh, so that most later
/// moves write one rank.
const RANK_STEP: i64 = 1024;

/// Gives the notes of `order` the ranks that put them in that order, writing only the ranks
/// that change.
pub fn arrange(doc: &mut impl Doc, board: &Board, order: &[&str]) -> Result<(), SchemaError> {
    let ranks = root_map(doc, "ranks")?;
    for (i, id) in order.iter().enumerate() {
        let rank = (i as i64 + 1) * RANK_STEP;
        if board.ranks.get(*id) != Some(&rank) {
            doc.put(&ranks, *id, rank)?;
        }
    }
    Ok(())
}

/// Moves note `moved` to just before note `before` (to the end if `None`) in `order`, the notes
/// of one column as they are shown. Writes one rank when the new neighbours leave room between
/// them, else numbers the column afresh.
pub fn move_note(
    doc: &mut impl Doc,
    board: &Board,
    order: &[&str],
    moved: &str,
    before: Option<&str>,
) -> Result<(), SchemaError> {
    let mut new: Vec<&str> = order.iter().copied().filter(|id| *id != moved).collect();
    let at = before.and_then(|b| new.iter().position(|id| *id == b)).unwrap_or(new.len());
    new.insert(at, moved);
    let all_ranked = new.iter().all(|id| *id == moved || board.ranks.contains_key(*id));
    let rank = |i: usize| new.get(i).and_then(|id| board.ranks.get(*id)).copied();
    let between = match (at.checked_sub(1).map(rank), rank(at + 1)) {
        (Some(Some(prev)), Some(next)) if next - prev >= 2 => Some(prev + (next - prev) / 2),
        (None, Some(next)) => next.checked_sub(RANK_STEP).filter(|r| *r > -MAX_RANK),
        (Some(Some(prev)), None) if at + 1 == new.len() => prev.checked_add(RANK_STEP).filter(|r| *r < MAX_RANK),
        _ => None,
    };
    match between {
        Some(rank) if all_ranked => {
            let ranks = root_map(doc, "ranks")?;
            doc.put(&ranks, moved, rank)?;
            Ok(())
        }
        _ => arrange(doc, board, &new),
    }
}

/// How a sort orders the cards of each column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortBy {
    /// Alphabetically by what the card says (a cluster by its title).
    Text,
    /// Most dots first, once voting has closed; then by text.
    Votes,
}

/// Sorts every column for everyone: while revealing, the notes; from grouping on, the cards
/// (lone notes and clusters, which move with their anchor).
pub fn sort(doc: &mut impl Doc, board: &Board, by: SortBy) -> Result<(), SchemaError> {
    for column in &board.columns {
        let mut cards: Vec<(String, String, i64)> = if board.phase >= Phase::Group {
            board
                .cards_in(&column.id)
                .into_iter()
                .map(|(item, anchor)| {
                    let title = board.item_title(item.id()).unwrap_or_default();
                    (anchor, title, board.vote_totals.get(item.id()).copied().unwrap_or(0))
                })
                .collect()
        } else {
            board.notes_in(&column.id).map(|n| (n.id.clone(), n.text.clone(), 0)).collect()
        };
        cards.sort_by(|(a, ta, va), (b, tb, vb)| {
            let text = ta.to_lowercase().cmp(&tb.to_lowercase()).then_with(|| a.cmp(b));
            if by == SortBy::Votes { vb.cmp(va).then(text) } else { text }
        });
        let order: Vec<&str> = cards.iter().map(|(id, _, _)| id.as_str()).collect();
        arrange(doc, board, &order)?;
    }
    Ok(())
}

// ---- Grouping (everyone, during Group) -------------------------------------------------------

fn set_cluster(doc: &mut impl Doc, note: &str, cluster: Option<&str>) -> Result<(), SchemaError> {
    let obj = entry(doc, "notes", note)?;
    match cluster {
        Some(cluster) => doc.put(&obj, "cluster", cluster)?,
        None => doc.put(&obj, "cluster", ScalarValue::Null)?,
    }
    Ok(())
}

/// Drops note `dragged` onto `target`, a note or a cluster: onto a cluster it joins it; onto a
/// note in a cluster it joins that cluster; onto a lone note both form a new cluster with id
/// `new_cluster`.
pub fn group(
    doc: &mut impl Doc,
    board: &Board,
    dragged: &str,
    target: &str,
    new_cluster: &str,
) -> Result<(), SchemaError> {
    if dragged == target {
        return Ok(());
    }
    if !board.notes.contains_key(dragged) {
        return Err(SchemaError::Invalid(format!("there is no note `{dragged}`")));
    }
    if board.clusters.contains_key(target) {
        return set_cluster(doc, dragged, Some(target));
    }
    let Some(target_note) = board.notes.get(target) else {
        return Err(SchemaError::Invalid(format!("there is no note or cluster `{target}`")));
    };
    if let Some(cluster) = board.cluster_of(target_note) {
        return set_cluster(doc, dragged, Some(&cluster.id));
    }
    put_entry(doc, "clusters", new_cluster, &Cluster { id: new_cluster.to_owned(), title: String::new() })?;
    // The new cluster takes the place of the note it was dropped on.
    let anchors = root_map(doc, "anchors")?;
    doc.put(&anchors, new_cluster, target)?;
    set_cluster(doc, target, Some(new_cluster))?;
    set_cluster(doc, dragged, Some(new_cluster))
}

/// Takes a note out of its cluster.
pub fn ungroup(doc: &mut impl Doc, note: &str) -> Result<(), SchemaError> {
    set_cluster(doc, note, None)
}

/// Moves every note of cluster `from` into cluster `into`. The emptied cluster stays in the
/// document (clusters are never deleted, so a concurrent move into it cannot dangle) and is no
/// longer shown. No name is lost: an untitled `into` takes `from`'s name, and two names are
/// joined ("A / B") as far as a title's length allows.
pub fn merge_clusters(doc: &mut impl Doc, board: &Board, from: &str, into: &str) -> Result<(), SchemaError> {
    if from == into {
        return Ok(());
    }
    if !board.clusters.contains_key(into) {
        return Err(SchemaError::Invalid(format!("there is no cluster `{into}`")));
    }
    let moving: Vec<String> =
        board.notes.values().filter(|n| n.cluster.as_deref() == Some(from)).map(|n| n.id.clone()).collect();
    for note in moving {
        set_cluster(doc, &note, Some(into))?;
    }
    let name = |id: &str| board.clusters.get(id).map(|c| c.title.trim().to_owned()).filter(|t| !t.is_empty());
    let joined = match (name(into), name(from)) {
        (None, Some(from)) => Some(from),
        (Some(into), Some(from)) if into != from => {
            Some(format!("{into} / {from}").chars().take(MAX_CLUSTER_TITLE_CHARS).collect())
        }
        _ => None,
    };
    if let Some(title) = joined {
        set_cluster_title(doc, into, &title)?;
    }
    Ok(())
}

/// Names a cluster (the root cause it stands for).
pub fn set_cluster_title(doc: &mut impl Doc, cluster: &str, title: &str) -> Result<(), SchemaError> {
    too_long("a cluster title", title, MAX_CLUSTER_TITLE_CHARS)?;
    let obj = entry(doc, "clusters", cluster)?;
    doc.put(&obj, "title", title)?;
    Ok(())
}

// ---- Action items (everyone, during Discuss and Actions) ------------------------------------

fn check_action(item: &ActionItem) -> Result<(), SchemaError> {
    too_long("an action item", &item.text, MAX_ACTION_CHARS)?;
    too_long("an owner", &item.owner, MAX_NAME_CHARS)?;
    if !item.due.is_empty() && !is_iso_date(&item.due) {
        return Err(SchemaError::Invalid("a due date is written YYYY-MM-DD".into()));
    }
    Ok(())
}

/// True for `YYYY-MM-DD` with a plausible month and day.
pub fn is_iso_date(text: &str) -> bool {
    let bytes = text.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return false;
    }
    let number = |range: std::ops::Range<usize>| text.get(range).and_then(|s| s.parse::<u32>().ok());
    matches!((number(0..4), number(5..7), number(8..10)), (Some(_), Some(1..=12), Some(1..=31)))
}

/// Adds an action item, or replaces the one with the same id.
pub fn put_action(doc: &mut impl Doc, item: &ActionItem) -> Result<(), SchemaError> {
    check_action(item)?;
    put_entry(doc, "action_items", &item.id, item)
}

pub fn delete_action(doc: &mut impl Doc, id: &str) -> Result<(), SchemaError> {
    delete_entry(doc, "action_items", id)
}

/// What the group says of one of the team's actions, in Review.
pub fn set_review(
    doc: &mut impl Doc,
    id: &str,
    status: crate::ledger::Status,
    reason: &str,
) -> Result<(), SchemaError> {
    too_long("a reason", reason, crate::ledger::MAX_REASON_CHARS)?;
    let obj = entry(doc, "review", id)?;
    autosurgeon::reconcile_prop(doc, &obj, "status", status)?;
    autosurgeon::reconcile_prop(doc, &obj, "reason", reason)?;
    Ok(())
}

/// The server offers the past causes this board's clusters are like: the best match per
/// cluster. Makes the `recurrences` map on a board that has none (only the server writes it).
pub fn offer_recurrences(doc: &mut impl Doc, offers: &[crate::schema::Recurrence]) -> Result<(), SchemaError> {
    if doc.get(&ROOT, "recurrences")?.is_none() {
        doc.put_object(ROOT, "recurrences", ObjType::Map)?;
    }
    for offer in offers {
        put_entry(doc, "recurrences", &offer.cluster, offer)?;
    }
    Ok(())
}

/// The facilitator confirms that a cluster is the same cause as the one offered.
pub fn confirm_recurrence(doc: &mut impl Doc, cluster: &str) -> Result<(), SchemaError> {
    let obj = entry(doc, "recurrences", cluster)?;
    doc.put(&obj, "confirmed", true)?;
    Ok(())
}

/// Turns the incident's facts on (or off) for this board (the facilitator).
pub fn show_incident(doc: &mut impl Doc, on: bool) -> Result<(), SchemaError> {
    let incident = root_map(doc, "incident")?;
    doc.put(&incident, "on", on)?;
    Ok(())
}

/// Sets one of the incident's facts or milestones (`severity`, `impact`, `services`, `tags`,
/// `links`, `zone`, or a milestone's key), if it changed.
pub fn set_incident(doc: &mut impl Doc, field: &str, value: &str) -> Result<(), SchemaError> {
    let incident = root_map(doc, "incident")?;
    let current = match doc.get(&incident, field)? {
        Some((automerge::Value::Scalar(s), _)) => match s.as_ref() {
            ScalarValue::Str(s) => Some(s.to_string()),
            _ => None,
        },
        _ => None,
    };
    if current.as_deref() != Some(value) {
        doc.put(&incident, field, value)?;
    }
    Ok(())
}

/// Stars (or unstars) a timeline event: the postmortem keeps the starred ones.
pub fn star_event(doc: &mut impl Doc, id: &str, starred: bool) -> Result<(), SchemaError> {
    let obj = entry(doc, "timeline", id)?;
    doc.put(&obj, "starred", starred)?;
    Ok(())
}

/// Publishes a desk's event on the timeline (the server), keeping its star; or adds the
/// facilitator's own event to it.
pub fn publish_event(doc: &mut impl Doc, event: &crate::timeline::Event) -> Result<(), SchemaError> {
    put_entry(doc, "timeline", &event.id, event)
}

/// Takes an event off the timeline: the server, when its desk drops it.
pub fn unpublish_event(doc: &mut impl Doc, id: &str) -> Result<(), SchemaError> {
    delete_entry(doc, "timeline", id)
}

/// The facilitator takes an event off the timeline (noise, a duplicate) for good: its desk's
/// later edits do not bring it back.
pub fn remove_event(doc: &mut impl Doc, id: &str) -> Result<(), SchemaError> {
    delete_entry(doc, "timeline", id)?;
    let removed = root_map(doc, "removed_events")?;
    doc.put(&removed, id, true)?;
    Ok(())
}

/// Writes (or rewrites) an event of the timeline on the participant's desk.
pub fn put_desk_event(doc: &mut impl Doc, event: &crate::timeline::DeskEvent) -> Result<(), SchemaError> {
    too_long("an event", &event.text, crate::timeline::MAX_EVENT_CHARS)?;
    if crate::incident::parse_time(&event.at).is_none() {
        return Err(SchemaError::Invalid("an event's time is RFC 3339 with its offset".into()));
    }
    put_entry(doc, "events", &event.id, event)
}

pub fn delete_desk_event(doc: &mut impl Doc, id: &str) -> Result<(), SchemaError> {
    delete_entry(doc, "events", id)
}

/// Adds a contributing factor, or replaces the one with the same id.
pub fn put_factor(doc: &mut impl Doc, factor: &crate::factors::Factor) -> Result<(), SchemaError> {
    too_long("a factor", &factor.text, crate::factors::MAX_FACTOR_CHARS)?;
    put_entry(doc, "factors", &factor.id, factor)
}

/// Deletes a factor with its links and what pointed at it.
pub fn delete_factor(doc: &mut impl Doc, board: &Board, id: &str) -> Result<(), SchemaError> {
    for (from, to) in crate::factors::links(board) {
        if from == id || to == id {
            delete_entry_if_any(doc, "causal", &crate::factors::link_key(from, to))?;
        }
    }
    for (action, factor) in &board.addresses {
        if factor == id {
            delete_entry_if_any(doc, "addresses", action)?;
        }
    }
    delete_entry_if_any(doc, "factors", id)
}

fn delete_entry_if_any(doc: &mut impl Doc, map: &'static str, id: &str) -> Result<(), SchemaError> {
    let parent = root_map(doc, map)?;
    if doc.get(&parent, id)?.is_some() {
        doc.delete(&parent, id)?;
    }
    Ok(())
}

/// Says that factor `from` led to factor `to` (or takes it back).
pub fn link_factors(doc: &mut impl Doc, from: &str, to: &str, on: bool) -> Result<(), SchemaError> {
    let key = crate::factors::link_key(from, to);
    if on {
        let parent = root_map(doc, "causal")?;
        doc.put(&parent, key.as_str(), true)?;
        Ok(())
    } else {
        delete_entry_if_any(doc, "causal", &key)
    }
}

/// Points an action item at the factor it addresses, or at none.
pub fn address_factor(doc: &mut impl Doc, action: &str, factor: Option<&str>) -> Result<(), SchemaError> {
    match factor {
        Some(factor) => {
            let parent = root_map(doc, "addresses")?;
            doc.put(&parent, action, factor)?;
            Ok(())
        }
        None => delete_entry_if_any(doc, "addresses", action),
    }
}

/// Gives an action item its type (prevent, mitigate, process), or none.
pub fn set_action_kind(doc: &mut impl Doc, action: &str, kind: Option<&str>) -> Result<(), SchemaError> {
    match kind {
        Some(kind) => {
            let parent = root_map(doc, "action_kinds")?;
            doc.put(&parent, action, kind)?;
            Ok(())
        }
        None => delete_entry_if_any(doc, "action_kinds", action),
    }
}

// ---- The desk (its owner) ----------------------------------------------------------------------

/// Writes a new note on the desk.
pub fn add_draft(doc: &mut impl Doc, draft: &Draft) -> Result<(), SchemaError> {
    too_long("a note", &draft.text, MAX_NOTE_CHARS)?;
    if draft.text.trim().is_empty() {
        return Err(SchemaError::Invalid("a note needs some text".into()));
    }
    put_entry(doc, "drafts", &draft.id, draft)
}

pub fn set_draft_text(doc: &mut impl Doc, id: &str, text: &str) -> Result<(), SchemaError> {
    too_long("a note", text, MAX_NOTE_CHARS)?;
    let obj = entry(doc, "drafts", id)?;
    doc.put(&obj, "text", text)?;
    Ok(())
}

pub fn delete_draft(doc: &mut impl Doc, id: &str) -> Result<(), SchemaError> {
    delete_entry(doc, "drafts", id)
}

/// Sets how many dots the participant gives an item; zero takes them all back.
pub fn set_votes(doc: &mut impl Doc, item: &str, dots: i64) -> Result<(), SchemaError> {
    let votes = root_map(doc, "votes")?;
    if dots <= 0 {
        if doc.get(&votes, item)?.is_some() {
            doc.delete(&votes, item)?;
        }
    } else {
        doc.put(&votes, item, dots)?;
    }
    Ok(())
}

pub fn set_ready(doc: &mut impl Doc, ready: bool) -> Result<(), SchemaError> {
    doc.put(ROOT, "ready", ready)?;
    Ok(())
}

pub fn set_abstain(doc: &mut impl Doc, abstain: bool) -> Result<(), SchemaError> {
    doc.put(ROOT, "abstain", abstain)?;
    Ok(())
}

/// Rates the retro on one's desk (1 to 5), or takes the rating back (`None`).
pub fn set_roti(doc: &mut impl Doc, rating: Option<i64>) -> Result<(), SchemaError> {
    match rating {
        Some(rating) => doc.put(ROOT, "roti", rating)?,
        None => doc.put(ROOT, "roti", ScalarValue::Null)?,
    }
    Ok(())
}

/// Closes the ROTI ratings and asks the server to show the results. Only a facilitator does
/// this, at Done, once.
pub fn show_roti(doc: &mut impl Doc) -> Result<(), SchemaError> {
    doc.put(ROOT, "roti_shown", true)?;
    Ok(())
}

/// Writes the ROTI results (how many gave each rating). Only the server does this.
pub fn set_roti_results(
    doc: &mut impl Doc,
    histogram: &std::collections::BTreeMap<String, i64>,
) -> Result<(), SchemaError> {
    autosurgeon::reconcile_prop(doc, ROOT, "roti", histogram)?;
    Ok(())
}

// ---- The server's own writes ------------------------------------------------------------------

/// Publishes a note on the board (or rewrites it). Only the server does this.
pub fn publish_note(doc: &mut impl Doc, note: &Note) -> Result<(), SchemaError> {
    too_long("a note", &note.text, MAX_NOTE_CHARS)?;
    put_entry(doc, "notes", &note.id, note)
}

/// Writes a note on the board given how it was before (`None`: it is new), touching only the
/// fields that changed: the server's fast path for publishing, which needs no reading back.
pub fn write_note(doc: &mut impl Doc, before: Option<&Note>, note: &Note) -> Result<(), SchemaError> {
    too_long("a note", &note.text, MAX_NOTE_CHARS)?;
    let optional = |value: &Option<String>| value.as_ref().map_or(ScalarValue::Null, |v| ScalarValue::Str(v.into()));
    let obj = match before {
        Some(_) => entry(doc, "notes", &note.id)?,
        None => {
            let notes = root_map(doc, "notes")?;
            let obj = doc.put_object(&notes, note.id.as_str(), ObjType::Map)?;
            doc.put(&obj, "id", note.id.as_str())?;
            obj
        }
    };
    if before.is_none_or(|b| b.column != note.column) {
        doc.put(&obj, "column", note.column.as_str())?;
    }
    if before.is_none_or(|b| b.text != note.text) {
        doc.put(&obj, "text", note.text.as_str())?;
    }
    if before.is_none_or(|b| b.created_at != note.created_at) {
        doc.put(&obj, "created_at", note.created_at)?;
    }
    if before.is_none_or(|b| b.cluster != note.cluster) {
        doc.put(&obj, "cluster", optional(&note.cluster))?;
    }
    if before.is_none_or(|b| b.author != note.author) {
        doc.put(&obj, "author", optional(&note.author))?;
    }
    Ok(())
}

/// Takes a published note off the board. Only the server does this.
pub fn unpublish_note(doc: &mut impl Doc, id: &str) -> Result<(), SchemaError> {
    delete_entry(doc, "notes", id)
}

/// Replaces the vote totals (empty clears them). Only the server does this.
pub fn set_vote_totals(
    doc: &mut impl Doc,
    totals: &std::collections::BTreeMap<String, i64>,
) -> Result<(), SchemaError> {
    autosurgeon::reconcile_prop(doc, ROOT, "vote_totals", totals)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Desk, new_board_document, new_desk_document};
    use crate::templates;

    fn board_doc() -> automerge::Automerge {
        let template = templates::find("start-stop-continue").expect("template");
        new_board_document(automerge::ActorId::random(), "Retro", template, None).expect("board")
    }

    fn note(id: &str) -> Note {
        Note { id: id.into(), column: "start".into(), text: id.into(), created_at: 0, cluster: None, author: None }
    }

    fn edit(doc: &mut automerge::Automerge, f: impl FnOnce(&mut automerge::transaction::Transaction<'_>)) {
        let mut tx = doc.transaction();
        f(&mut tx);
        tx.commit();
    }

    #[test]
    fn grouping_forms_joins_and_merges_clusters() {
        let mut doc = board_doc();
        edit(&mut doc, |tx| {
            for id in ["a", "b", "c", "d"] {
                publish_note(tx, &note(id)).expect("publish");
            }
        });
        let board = Board::read(&doc).expect("board");
        edit(&mut doc, |tx| group(tx, &board, "a", "b", "k1").expect("form"));
        let board = Board::read(&doc).expect("board");
        assert_eq!(board.notes["a"].cluster.as_deref(), Some("k1"));
        assert_eq!(board.notes["b"].cluster.as_deref(), Some("k1"));
        edit(&mut doc, |tx| group(tx, &board, "c", "a", "unused").expect("join via a note"));
        edit(&mut doc, |tx| group(tx, &board, "d", "k1", "unused").expect("join the cluster"));
        let board = Board::read(&doc).expect("board");
        assert!(board.notes.values().all(|n| n.cluster.as_deref() == Some("k1")));
        assert_eq!(board.clusters.len(), 1, "joining never creates a cluster");

        edit(&mut doc, |tx| ungroup(tx, "d").expect("ungroup"));
        let board = Board::read(&doc).expect("board");
        edit(&mut doc, |tx| group(tx, &board, "d", "c", "unused").expect("join again"));
        edit(&mut doc, |tx| set_cluster_title(tx, "k1", "Slow CI").expect("title"));
        let board = Board::read(&doc).expect("board");
        assert_eq!(board.clusters["k1"].title, "Slow CI");
        assert_eq!(board.vote_items().len(), 1);
    }

    /// A board with two clusters: `k1` of notes a and b, `k2` of notes c and d.
    fn two_clusters() -> automerge::Automerge {
        let mut doc = board_doc();
        edit(&mut doc, |tx| {
            for id in ["a", "b", "c", "d"] {
                publish_note(tx, &note(id)).expect("publish");
            }
        });
        let board = Board::read(&doc).expect("board");
        edit(&mut doc, |tx| group(tx, &board, "a", "b", "k1").expect("form"));
        edit(&mut doc, |tx| group(tx, &board, "c", "d", "k2").expect("form"));
        doc
    }

    #[test]
    fn merging_moves_every_note_and_keeps_a_title() {
        let mut doc = two_clusters();
        edit(&mut doc, |tx| set_cluster_title(tx, "k1", "Flaky tests").expect("title"));
        let board = Board::read(&doc).expect("board");
        edit(&mut doc, |tx| merge_clusters(tx, &board, "k1", "k2").expect("merge"));
        let board = Board::read(&doc).expect("board");
        assert!(board.notes.values().all(|n| n.cluster.as_deref() == Some("k2")));
        assert_eq!(board.clusters["k2"].title, "Flaky tests");
        assert_eq!(board.vote_items().len(), 1);
    }

    #[test]
    fn merging_two_named_clusters_keeps_both_names() {
        let mut doc = two_clusters();
        edit(&mut doc, |tx| set_cluster_title(tx, "k1", "Flaky tests").expect("title"));
        edit(&mut doc, |tx| set_cluster_title(tx, "k2", "Slow CI").expect("title"));
        let board = Board::read(&doc).expect("board");
        edit(&mut doc, |tx| merge_clusters(tx, &board, "k1", "k2").expect("merge"));
        assert_eq!(Board::read(&doc).expect("board").clusters["k2"].title, "Slow CI / Flaky tests");
    }

    /// The notes of the `start` column, in the board's order.
    fn order(doc: &automerge::Automerge) -> Vec<String> {
        Board::read(doc).expect("board").notes_in("start").map(|n| n.id.clone()).collect()
    }

    #[test]
    fn moving_a_note_writes_one_rank_when_there_is_room_and_renumbers_when_not() {
        let mut doc = board_doc();
        edit(&mut doc, |tx| {
            for id in ["a", "b", "c", "d"] {
                publish_note(tx, &note(id)).expect("publish");
            }
        });
        assert_eq!(order(&doc), ["a", "b", "c", "d"], "unarranged: by publication, then id");
        let board = Board::read(&doc).expect("board");
        edit(&mut doc, |tx| move_note(tx, &board, &["a", "b", "c", "d"], "d", Some("b")).expect("move"));
        assert_eq!(order(&doc), ["a", "d", "b", "c"]);
        assert_eq!(Board::read(&doc).expect("board").ranks.len(), 4, "the first move numbers the column");

        let board = Board::read(&doc).expect("board");
        let before = doc.get_heads();
        edit(&mut doc, |tx| move_note(tx, &board, &["a", "d", "b", "c"], "a", None).expect("move"));
        assert_eq!(order(&doc), ["d", "b", "c", "a"]);
        let change = doc.get_changes(&before).pop().expect("a change");
        assert_eq!(change.len(), 1, "one rank written");
        let board = Board::read(&doc).expect("board");
        edit(&mut doc, |tx| move_note(tx, &board, &["d", "b", "c", "a"], "c", Some("d")).expect("move"));
        assert_eq!(order(&doc), ["c", "d", "b", "a"]);
    }

    #[test]
    fn sorting_orders_every_column_and_clusters_move_with_their_anchor() {
        let mut doc = board_doc();
        edit(&mut doc, |tx| {
            for (id, text) in [("a", "zebra"), ("b", "apple"), ("c", "mango"), ("d", "kiwi")] {
                publish_note(tx, &Note { text: text.into(), ..note(id) }).expect("publish");
            }
            set_phase(tx, Phase::Group).expect("phase");
        });
        let board = Board::read(&doc).expect("board");
        // "d" dropped on "a": the cluster takes "a"'s place and is named after it until named.
        edit(&mut doc, |tx| group(tx, &board, "d", "a", "k").expect("group"));
        let board = Board::read(&doc).expect("board");
        let cards: Vec<String> = board.cards_in("start").into_iter().map(|(item, _)| item.id().to_owned()).collect();
        assert_eq!(cards, ["k", "b", "c"], "the cluster sits where its anchor was");
        assert_eq!(board.item_title("k").as_deref(), Some("zebra"));
        edit(&mut doc, |tx| sort(tx, &board, SortBy::Text).expect("sort"));
        let board = Board::read(&doc).expect("board");
        let cards: Vec<String> = board.cards_in("start").into_iter().map(|(item, _)| item.id().to_owned()).collect();
        assert_eq!(cards, ["b", "c", "k"], "apple, mango, zebra");
    }

    #[test]
    fn a_cluster_without_its_anchor_keeps_the_place_it_was_moved_to() {
        let mut doc = board_doc();
        edit(&mut doc, |tx| {
            for id in ["a", "b", "c", "d", "e"] {
                publish_note(tx, &Note { created_at: id.as_bytes()[0] as i64, ..note(id) }).expect("publish");
            }
        });
        // Every note ranked while revealing, then grouping.
        let board = Board::read(&doc).expect("board");
        edit(&mut doc, |tx| arrange(tx, &board, &["a", "b", "c", "d", "e"]).expect("arrange"));
        edit(&mut doc, |tx| set_phase(tx, Phase::Group).expect("phase"));
        let board = Board::read(&doc).expect("board");
        // A cluster of c and d with no anchor recorded (a board from before anchors).
        edit(&mut doc, |tx| {
            group(tx, &board, "c", "d", "k").expect("group");
            let anchors = root_map(tx, "anchors").expect("anchors");
            tx.delete(&anchors, "k").expect("forget the anchor");
        });
        let cards = |doc: &automerge::Automerge| -> Vec<String> {
            Board::read(doc).expect("board").cards_in("start").into_iter().map(|(i, _)| i.id().to_owned()).collect()
        };
        assert_eq!(cards(&doc), ["a", "b", "k", "e"]);
        for (before, expected) in [(Some("a"), ["k", "a", "b", "e"]), (None, ["a", "b", "e", "k"])] {
            let board = Board::read(&doc).expect("board");
            let order = board.places_in("start");
            let refs: Vec<&str> = order.iter().map(String::as_str).collect();
            let place = board.cards_in("start").into_iter().find(|(i, _)| i.id() == "k").expect("k").1;
            edit(&mut doc, |tx| move_note(tx, &board, &refs, &place, before).expect("move"));
            assert_eq!(cards(&doc), expected, "the cluster stays where it was put");
        }
    }

    #[test]
    fn a_cluster_keyed_by_a_notes_id_is_no_cluster() {
        let mut doc = board_doc();
        edit(&mut doc, |tx| {
            for id in ["a", "b"] {
                publish_note(tx, &note(id)).expect("publish");
            }
        });
        let board = Board::read(&doc).expect("board");
        edit(&mut doc, |tx| group(tx, &board, "b", "a", "a").expect("a cluster named like note a"));
        let board = Board::read(&doc).expect("board");
        let mut ids: Vec<String> = board.vote_items().iter().map(|i| i.id().to_owned()).collect();
        ids.sort();
        assert_eq!(ids, ["a", "b"], "two lone notes, each id naming one item");
    }

    #[test]
    fn finishing_the_retro_stops_the_timer() {
        let mut doc = board_doc();
        edit(&mut doc, |tx| start_timer(tx, 60_000, 1_000).expect("timer"));
        assert!(Board::read(&doc).expect("board").timer.ends_at.is_some());
        edit(&mut doc, |tx| set_phase(tx, Phase::Done).expect("done"));
        assert_eq!(Board::read(&doc).expect("board").timer.ends_at, None);
    }

    #[test]
    fn an_old_board_is_upgraded_once() {
        let mut doc = automerge::Automerge::new();
        edit(&mut doc, |tx| {
            for map in ["notes", "clusters"] {
                tx.put_object(ROOT, map, ObjType::Map).expect("map");
            }
        });
        edit(&mut doc, |tx| assert!(crate::schema::upgrade_board(tx).expect("upgrade")));
        edit(&mut doc, |tx| assert!(!crate::schema::upgrade_board(tx).expect("upgrade"), "nothing left to add"));
        assert!(root_map(&doc, "ranks").is_ok() && root_map(&doc, "anchors").is_ok());
        assert!(root_map(&doc, "co_facilitators").is_ok());
    }

    #[test]
    fn an_old_desk_is_upgraded_once_and_then_takes_timeline_events() {
        let mut doc = automerge::Automerge::new();
        edit(&mut doc, |tx| {
            for map in ["drafts", "votes"] {
                tx.put_object(ROOT, map, ObjType::Map).expect("map");
            }
        });
        let event = crate::timeline::DeskEvent {
            id: "e".into(),
            at: "2026-11-30T14:02:00Z".into(),
            text: "the pager went off".into(),
            kind: "alert".into(),
            source: String::new(),
        };
        let mut tx = doc.transaction();
        assert!(put_desk_event(&mut tx, &event).is_err(), "an old desk has nowhere to keep events");
        tx.rollback();
        edit(&mut doc, |tx| assert!(crate::schema::upgrade_desk(tx).expect("upgrade")));
        edit(&mut doc, |tx| assert!(!crate::schema::upgrade_desk(tx).expect("upgrade"), "nothing left to add"));
        edit(&mut doc, |tx| put_desk_event(tx, &event).expect("an event"));
        let read: Option<crate::timeline::DeskEvent> = crate::schema::read_entry(&doc, "events", "e").expect("read");
        assert_eq!(read, Some(event));
    }

    #[test]
    fn writing_a_note_directly_reads_back_as_reconciling_it() {
        let mut doc = board_doc();
        let first = note("a");
        let edited =
            Note { text: "changed".into(), cluster: Some("k".into()), author: Some("Ann".into()), ..note("a") };
        edit(&mut doc, |tx| write_note(tx, None, &first).expect("new"));
        assert_eq!(Board::read(&doc).expect("board").notes["a"], first);
        edit(&mut doc, |tx| write_note(tx, Some(&first), &edited).expect("edit"));
        assert_eq!(Board::read(&doc).expect("board").notes["a"], edited);
    }

    #[test]
    fn desk_edits_and_their_checks() {
        let mut doc = new_desk_document(automerge::ActorId::random()).expect("desk");
        let draft = Draft { id: "d1".into(), column: "start".into(), text: "Pair more".into(), created_at: 1 };
        edit(&mut doc, |tx| {
            add_draft(tx, &draft).expect("add");
            set_draft_text(tx, "d1", "Pair more often").expect("edit");
            set_votes(tx, "item", 2).expect("vote");
            set_votes(tx, "other", 1).expect("vote");
            set_votes(tx, "other", 0).expect("take back");
            set_ready(tx, true).expect("ready");
        });
        let desk = Desk::read(&doc).expect("desk");
        assert_eq!(desk.drafts["d1"].text, "Pair more often");
        assert_eq!(desk.votes_cast(), 2);
        assert!(desk.ready);
        let mut tx = doc.transaction();
        let empty = Draft { text: "  ".into(), ..draft };
        assert!(add_draft(&mut tx, &empty).is_err());
        assert!(set_draft_text(&mut tx, "ghost", "x").is_err());
        assert!(delete_draft(&mut tx, "ghost").is_err());
    }

    #[test]
    fn action_items_check_their_fields() {
        let mut doc = board_doc();
        let item = |due: &str| ActionItem {
            id: "a1".into(),
            text: "Fix the flaky test".into(),
            owner: "Sam".into(),
            due: due.into(),
            cluster: None,
        };
        let mut tx = doc.transaction();
        put_action(&mut tx, &item("2026-12-01")).expect("valid");
        put_action(&mut tx, &item("")).expect("no date is fine");
        assert!(put_action(&mut tx, &item("next week")).is_err());
        assert!(put_action(&mut tx, &item("2026-13-01")).is_err());
        delete_action(&mut tx, "a1").expect("delete");
        tx.commit();
        assert!(Board::read(&doc).expect("board").action_items.is_empty());
        assert!(is_iso_date("2026-02-28") && !is_iso_date("2026-2-28"));
    }
}
