//! The server's own writes: it publishes revealed drafts as notes (and their edits and
//! deletions), counts the votes when voting closes, publishes the ROTI results when the
//! facilitator shows them (only if enough people rated), and clears everyone's "ready" when the
//! phase changes.
//!
//! Anonymity: notes reach the board document only here, written by the server's actor, in one
//! change per pass with notes ordered by an id derived from a secret. The author of a note is
//! known here (its desk) and nowhere in any document a peer receives.
//!
//! Invariant: this is the only place notes are written on the board, and nothing written here
//! names their author.

use std::collections::{BTreeMap, HashSet};

use hindsight_shared::edit;
use hindsight_shared::ids::{DocumentId, published_note_id};
use hindsight_shared::schema::{Board, MAX_NOTES_PER_BOARD, Note, Phase, ROTI_RATINGS, SchemaError};
use hindsight_shared::timeline::{Event, MAX_EVENTS_PER_BOARD};

use super::desk::Desks;
use super::replica::Replica;

/// What the server last reacted to, and what it has yet to look at.
#[derive(Debug)]
pub struct Governor {
    /// The phase the server last reacted to.
    governed_phase: Phase,
    /// Desks changed since the last publication pass.
    dirty: HashSet<DocumentId>,
    /// What decides publication changed (phase, reveals, anonymity): look at every desk.
    publish_all: bool,
    /// The fewest ratings the ROTI results are shown for.
    roti_min_raters: usize,
    /// The ROTI was counted since this board was loaded (shown or not: ratings are closed).
    roti_counted: bool,
}

/// What a pass of the server's writes did.
#[derive(Debug, Default)]
pub struct Governed {
    /// Bytes the server's changes added to the board and its desks.
    pub bytes: usize,
    /// Something the presence roster shows changed (everyone's "ready").
    pub roster_changed: bool,
    /// The phase changed from this one.
    pub left: Option<Phase>,
}

impl Governor {
    pub fn new(phase: Phase, roti_min_raters: usize) -> Self {
        Self { governed_phase: phase, dirty: HashSet::new(), publish_all: false, roti_min_raters, roti_counted: false }
    }

    /// A desk's drafts changed (or it was just loaded): look at it in the next pass.
    pub fn desk_changed(&mut self, desk: DocumentId) {
        self.dirty.insert(desk);
    }

    /// What decides publication changed: the next pass looks at every desk.
    pub fn publication_changed(&mut self) {
        self.publish_all = true;
    }

    /// True when the next pass needs every desk in memory: it reacts to a new phase or to what
    /// decides publication.
    pub fn needs_every_desk(&self, board: &Board) -> bool {
        self.publish_all || board.phase != self.governed_phase || self.roti_due(board)
    }

    /// The facilitator showed the ROTI results and the server has yet to count them.
    fn roti_due(&self, board: &Board) -> bool {
        board.phase == Phase::Done && board.roti_shown && board.roti.is_empty() && !self.roti_counted
    }

    /// The server's reactions to the state the peers left, written to the board `replica` (whose
    /// typed copy is `board`) and to the desks.
    pub fn govern(
        &mut self,
        replica: &mut Replica,
        board: &mut Board,
        desks: &mut Desks,
        now_ms: i64,
    ) -> Result<Governed, SchemaError> {
        let mut governed = Governed::default();
        if board.phase != self.governed_phase {
            governed.left = Some(self.governed_phase);
            self.governed_phase = board.phase;
            self.publish_all = true;
            for desk in desks.values_mut().filter_map(|slot| slot.loaded.as_mut()) {
                if desk.cache.ready {
                    governed.bytes += desk.replica.write(|tx| edit::set_ready(tx, false))?;
                    desk.cache.ready = false;
                    governed.roster_changed = true;
                }
            }
        }
        governed.bytes += self.publish(replica, board, desks, now_ms)?;
        governed.bytes += count_votes(replica, board, desks)?;
        governed.bytes += self.count_roti(replica, board, desks)?;
        Ok(governed)
    }

    /// Brings the board's notes in line with the desks: a draft is published once its column is
    /// revealed (and stays published), follows its draft's edits, and goes when the draft goes.
    /// Looks only at desks that changed, unless what decides publication changed.
    fn publish(
        &mut self,
        replica: &mut Replica,
        board: &mut Board,
        desks: &mut Desks,
        now_ms: i64,
    ) -> Result<usize, SchemaError> {
        let targets: Vec<DocumentId> = if std::mem::take(&mut self.publish_all) {
            self.dirty.clear();
            desks.keys().copied().collect()
        } else {
            self.dirty.drain().collect()
        };
        let bytes = publish_events(replica, board, desks, &targets)?;
        let mut changed: Vec<Note> = Vec::new();
        let mut stale: Vec<String> = Vec::new();
        // Drafts beyond what a board holds stay on their desks, unpublished (the desks refuse new
        // drafts once the board is full, but a crowd can fill it in private before the reveal).
        let mut room = MAX_NOTES_PER_BOARD.saturating_sub(board.notes.len());
        for &desk_id in &targets {
            let Some(slot) = desks.get_mut(&desk_id) else { continue };
            let Some(desk) = slot.loaded.as_mut() else { continue };
            let author = (!board.settings.anonymous)
                .then(|| slot.participant.name.clone())
                .filter(|name| !name.trim().is_empty());
            let mut live = HashSet::with_capacity(desk.live.len());
            for draft in desk.cache.drafts.values() {
                let id = desk
                    .note_ids
                    .entry(draft.id.clone())
                    .or_insert_with(|| published_note_id(&desk_id, &draft.id))
                    .clone();
                let current = board.notes.get(&id);
                let due = current.is_some() || (board.phase != Phase::Write && board.is_revealed(&draft.column));
                if !due {
                    continue;
                }
                let note = Note {
                    id: id.clone(),
                    column: draft.column.clone(),
                    text: draft.text.clone(),
                    // Publication time, not writing time: the writer's clock says nothing here.
                    created_at: current.map_or(now_ms, |n| n.created_at),
                    cluster: current.and_then(|n| n.cluster.clone()),
                    author: author.clone(),
                };
                if current.is_none() {
                    if room == 0 {
                        continue;
                    }
                    room -= 1;
                }
                if current != Some(&note) {
                    changed.push(note);
                }
                live.insert(id);
            }
            stale.extend(desk.live.difference(&live).filter(|id| board.notes.contains_key(*id)).cloned());
            desk.live = live;
            let drafts = &desk.cache.drafts;
            desk.note_ids.retain(|draft, _| drafts.contains_key(draft));
        }
        if stale.is_empty() && changed.is_empty() {
            return Ok(bytes);
        }
        // One change for the whole pass, notes in id order: nothing in it groups notes by author.
        changed.sort_by(|a, b| a.id.cmp(&b.id));
        stale.sort();
        let cache = &*board;
        let written = replica.write(|tx| {
            for note in &changed {
                edit::write_note(tx, cache.notes.get(&note.id), note)?;
            }
            for id in &stale {
                edit::unpublish_note(tx, id)?;
            }
            Ok(())
        })?;
        // The typed copy follows exactly what was written, without reading the board again.
        for id in &stale {
            board.notes.remove(id);
        }
        for note in changed {
            board.notes.insert(note.id.clone(), note);
        }
        Ok(bytes + written)
    }
}

/// Brings the board's timeline in line with the desks that changed: every event a desk holds is
/// published at once (the timeline is not private like notes before their reveal, but it is
/// anonymous like them), follows its edits, and goes when it goes. One change per pass, events
/// in id order; each published under an id derived from the desk's secret id. A star stays.
fn publish_events(
    replica: &mut Replica,
    board: &mut Board,
    desks: &mut Desks,
    targets: &[DocumentId],
) -> Result<usize, SchemaError> {
    let mut changed: Vec<Event> = Vec::new();
    let mut stale: Vec<String> = Vec::new();
    let mut room = MAX_EVENTS_PER_BOARD.saturating_sub(board.timeline.len());
    for desk_id in targets {
        let Some(desk) = desks.get_mut(desk_id).and_then(|slot| slot.loaded.as_mut()) else { continue };
        let mut live = HashSet::with_capacity(desk.live_events.len());
        for event in desk.cache.events.values() {
            let id = published_note_id(desk_id, &format!("event:{}", event.id));
            // Taken off the board by the facilitator: it stays off, whatever its desk does.
            if board.removed_events.contains_key(&id) {
                continue;
            }
            let current = board.timeline.get(&id);
            if current.is_none() {
                if room == 0 {
                    continue;
                }
                room -= 1;
            }
            let published = Event {
                id: id.clone(),
                at: event.at.clone(),
                text: event.text.clone(),
                kind: event.kind.clone(),
                source: event.source.clone(),
                starred: current.is_some_and(|e| e.starred),
            };
            if current != Some(&published) {
                changed.push(published);
            }
            live.insert(id);
        }
        stale.extend(desk.live_events.difference(&live).filter(|id| board.timeline.contains_key(*id)).cloned());
        desk.live_events = live;
    }
    if changed.is_empty() && stale.is_empty() {
        return Ok(0);
    }
    changed.sort_by(|a, b| a.id.cmp(&b.id));
    stale.sort();
    let bytes = replica.write(|tx| {
        for event in &changed {
            edit::publish_event(tx, event)?;
        }
        for id in &stale {
            edit::unpublish_event(tx, id)?;
        }
        Ok(())
    })?;
    for id in &stale {
        board.timeline.remove(id);
    }
    for event in changed {
        board.timeline.insert(event.id.clone(), event);
    }
    Ok(bytes)
}

impl Governor {
    /// Once the facilitator shows the ROTI results, publishes how many gave each rating, if at
    /// least `roti_min_raters` rated; else nothing at all (not even how many rated), so no
    /// rating can be told apart. Ratings are closed from then on, so this runs once.
    fn count_roti(&mut self, replica: &mut Replica, board: &mut Board, desks: &Desks) -> Result<usize, SchemaError> {
        if !self.roti_due(board) {
            return Ok(0);
        }
        self.roti_counted = true;
        let ratings: Vec<i64> = desks.values().filter_map(|slot| slot.loaded.as_ref()?.cache.roti).collect();
        if ratings.len() < self.roti_min_raters {
            return Ok(0);
        }
        let histogram: BTreeMap<String, i64> = ROTI_RATINGS
            .map(|rating| (rating.to_string(), ratings.iter().filter(|r| **r == rating).count() as i64))
            .collect();
        let bytes = replica.write(|tx| edit::set_roti_results(tx, &histogram))?;
        board.roti = histogram;
        Ok(bytes)
    }
}

/// Writes the vote totals once voting is closed, and clears them if voting reopens.
fn count_votes(replica: &mut Replica, board: &mut Board, desks: &Desks) -> Result<usize, SchemaError> {
    let counted = !board.vote_totals.is_empty();
    if (board.phase > Phase::Vote) == counted {
        // Counted once when voting closed (nobody votes after that), or nothing to clear.
        return Ok(0);
    }
    let totals: BTreeMap<String, i64> = if board.phase > Phase::Vote {
        let mut totals: BTreeMap<String, i64> =
            board.vote_items().iter().map(|item| (item.id().to_owned(), 0)).collect();
        for desk in desks.values().filter_map(|slot| slot.loaded.as_ref()) {
            for (item, dots) in &desk.cache.votes {
                if let Some(total) = totals.get_mut(item) {
                    *total += dots;
                }
            }
        }
        totals
    } else {
        BTreeMap::new()
    };
    if totals == board.vote_totals {
        return Ok(0);
    }
    let bytes = replica.write(|tx| edit::set_vote_totals(tx, &totals))?;
    board.vote_totals = totals;
    Ok(bytes)
}
