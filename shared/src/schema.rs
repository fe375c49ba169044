//! The two document schemas over Automerge, read with autosurgeon: the shared board every
//! participant receives, and each participant's private desk.
//!
//! The board's root map (field by field in ARCHITECTURE.md): `title`, `template`, `phase`,
//! `columns`, `notes`, `clusters`, `action_items`, `settings`, `timer`, `revealed`, `focus`,
//! `facilitator`, `co_facilitators`, `vote_totals`, `ranks`, `anchors`, `roti`, `roti_shown`. A
//! desk's root map: `drafts`, `votes`, `ready`, `abstain`, `roti`.
//!
//! The server creates every object of both documents when it creates the document. Browsers only
//! put entries into those objects, never replace them: two peers that each created a `notes` map
//! would conflict, and one map (with its entries) would lose.
//!
//! Invariant: the browser never creates root objects; only `new_board_document`,
//! `new_desk_document` and `upgrade_board` (run by the server) do.

use std::collections::BTreeMap;

use automerge::{ActorId, AutomergeError, ObjType, ROOT};
use autosurgeon::{Hydrate, HydrateError, ReadDoc, Reconcile, ReconcileError};

use crate::templates::Template;

/// The longest note text, in characters.
pub const MAX_NOTE_CHARS: usize = 2_000;
/// The longest board title, in characters.
pub const MAX_TITLE_CHARS: usize = 120;
/// The longest cluster title, in characters.
pub const MAX_CLUSTER_TITLE_CHARS: usize = 200;
/// The longest action item text, in characters.
pub const MAX_ACTION_CHARS: usize = 500;
/// The longest display name or action owner, in characters.
pub const MAX_NAME_CHARS: usize = 60;
/// The most notes one participant may write on one board.
pub const MAX_DRAFTS_PER_DESK: usize = 200;
/// The most clusters, or action items, a board holds.
pub const MAX_ITEMS_PER_BOARD: usize = 5_000;
/// The most notes a board holds.
pub const MAX_NOTES_PER_BOARD: usize = 10_000;
/// The largest rank (in size) a note may be given: beyond it, ranks would lose precision in
/// JavaScript clients.
pub const MAX_RANK: i64 = 1 << 50;
/// The largest vote budget a facilitator may set.
pub const MAX_VOTE_BUDGET: i64 = 50;
/// A ROTI rating (return on time invested) runs from 1 (a waste of time) to 5 (worth every
/// minute).
pub const ROTI_RATINGS: std::ops::RangeInclusive<i64> = 1..=5;
/// The fewest ratings the ROTI results are shown for: below it, each rater could tell the others'
/// ratings apart (k-anonymity). The server may ask for more, never fewer.
pub const MIN_ROTI_RATERS: usize = 3;

/// True for characters that do not belong in a one-line name or title: control characters, and
/// the format characters that reorder or hide text (bidirectional overrides and isolates, zero
/// width joiners), which can make a name read as something it is not.
pub fn is_hidden_or_control(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061c}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

/// A one-line text (a display name, a title) with control and hidden characters taken out, and
/// trimmed.
pub fn clean_line(text: &str) -> String {
    text.chars().filter(|c| !is_hidden_or_control(*c)).collect::<String>().trim().to_owned()
}

/// The stages of a retrospective, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Reconcile, Hydrate)]
pub enum Phase {
    /// A team's retro begins by reviewing the team's open action items (only boards made in a
    /// team with open actions start here; no board comes back to it).
    #[autosurgeon(rename = "review")]
    Review,
    /// Everyone writes notes in private.
    #[default]
    #[autosurgeon(rename = "write")]
    Write,
    /// The facilitator reveals the notes, column by column or all at once.
    #[autosurgeon(rename = "reveal")]
    Reveal,
    /// Notes are clustered into root causes.
    #[autosurgeon(rename = "group")]
    Group,
    /// Dot-voting on clusters and lone notes.
    #[autosurgeon(rename = "vote")]
    Vote,
    /// The items, most voted first, one at a time.
    #[autosurgeon(rename = "discuss")]
    Discuss,
    /// Action items with owners and due dates.
    #[autosurgeon(rename = "actions")]
    Actions,
    /// Read-only, with a summary.
    #[autosurgeon(rename = "done")]
    Done,
}

impl Phase {
    pub const ALL: [Phase; 8] = [
        Phase::Review,
        Phase::Write,
        Phase::Reveal,
        Phase::Group,
        Phase::Vote,
        Phase::Discuss,
        Phase::Actions,
        Phase::Done,
    ];

    /// The word the document stores and the UI shows in lower case.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Review => "review",
            Phase::Write => "write",
            Phase::Reveal => "reveal",
            Phase::Group => "group",
            Phase::Vote => "vote",
            Phase::Discuss => "discuss",
            Phase::Actions => "actions",
            Phase::Done => "done",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Phase::Review => "Review",
            Phase::Write => "Write",
            Phase::Reveal => "Reveal",
            Phase::Group => "Group",
            Phase::Vote => "Vote",
            Phase::Discuss => "Discuss",
            Phase::Actions => "Actions",
            Phase::Done => "Done",
        }
    }

    pub fn next(self) -> Option<Phase> {
        Self::ALL.get(self as usize + 1).copied()
    }

    /// The phase before, to step back to; none before Write (a retro reviews its team's actions
    /// only as it begins).
    pub fn previous(self) -> Option<Phase> {
        (self as usize).checked_sub(1).map(|i| Self::ALL[i]).filter(|p| *p != Phase::Review)
    }
}

/// Board settings, changed by the facilitator.
#[derive(Debug, Clone, PartialEq, Eq, Reconcile, Hydrate)]
pub struct Settings {
    /// Notes carry no author (the default). When false, the server writes each note's author.
    pub anonymous: bool,
    /// How many dots each participant may place.
    pub vote_budget: i64,
    /// How many of one participant's dots one item may take.
    pub max_votes_per_item: i64,
}

impl Default for Settings {
    fn default() -> Self {
        Self { anonymous: true, vote_budget: 5, max_votes_per_item: 3 }
    }
}

/// A shared countdown, set by the facilitator.
#[derive(Debug, Clone, PartialEq, Eq, Default, Reconcile, Hydrate)]
pub struct Timer {
    /// When it runs out, in milliseconds since the epoch by the server's clock as the
    /// facilitator's browser reads it (its own clock corrected by the offset to the last presence
    /// notice's `now`); none when no timer runs.
    pub ends_at: Option<i64>,
    /// The length it was started with, in milliseconds.
    pub duration_ms: i64,
}

/// The whole board, as read from its document.
#[derive(Debug, Clone, PartialEq, Default, Reconcile, Hydrate)]
pub struct Board {
    pub title: String,
    /// The id of the template the board was created from.
    pub template: String,
    pub phase: Phase,
    pub columns: Vec<Column>,
    /// Published notes, by id. Only the server writes notes, except their `cluster`.
    pub notes: BTreeMap<String, Note>,
    pub clusters: BTreeMap<String, Cluster>,
    pub action_items: BTreeMap<String, ActionItem>,
    #[autosurgeon(missing = "Default::default")]
    pub settings: Settings,
    #[autosurgeon(missing = "Default::default")]
    pub timer: Timer,
    /// Columns the facilitator revealed, by column id. Every column counts as revealed from the
    /// Group phase on.
    #[autosurgeon(missing = "Default::default")]
    pub revealed: BTreeMap<String, bool>,
    /// The item under discussion (a cluster id or a note id).
    #[autosurgeon(missing = "Default::default")]
    pub focus: Option<String>,
    /// The participant id of the current facilitator.
    #[autosurgeon(missing = "Default::default")]
    pub facilitator: Option<String>,
    /// Participants who run the retro alongside the facilitator, with the same rights, by
    /// participant id (the value is always `true`).
    #[autosurgeon(missing = "Default::default")]
    pub co_facilitators: BTreeMap<String, bool>,
    /// Dots per item, written by the server when voting closes; empty while votes are private.
    #[autosurgeon(missing = "Default::default")]
    pub vote_totals: BTreeMap<String, i64>,
    /// Where the group put each note in its column, by note id: smaller ranks come first. Notes
    /// the group has not arranged follow, in the order they were published (for notes revealed
    /// together, the order of their ids: unlinkable to their authors).
    #[autosurgeon(missing = "Default::default")]
    pub ranks: BTreeMap<String, i64>,
    /// The note each cluster sits at, by cluster id: a cluster made by dropping a note on
    /// another takes that other note's place, and keeps it while that note is in it.
    #[autosurgeon(missing = "Default::default")]
    pub anchors: BTreeMap<String, String>,
    /// The ROTI results: how many people gave each rating ("1" to "5"), written by the server
    /// once the facilitator showed the results, and only if enough people rated; empty otherwise.
    #[autosurgeon(missing = "Default::default")]
    pub roti: BTreeMap<String, i64>,
    /// The facilitator showed the ROTI results: ratings are closed.
    #[autosurgeon(missing = "Default::default")]
    pub roti_shown: bool,
    /// The team the board belongs to (its ledger's id), written by the server when the board is
    /// made and never changed; `None` for a board made without a team.
    #[autosurgeon(missing = "Default::default")]
    pub team: Option<String>,
    /// The team's open action items as they were when the board was made, and what the group
    /// says of each in Review, by ledger action id.
    #[autosurgeon(missing = "Default::default")]
    pub review: BTreeMap<String, ReviewItem>,
    /// Past causes of the team this retro's clusters are like, by cluster id: offered by the
    /// server at Done, confirmed by the facilitator.
    #[autosurgeon(missing = "Default::default")]
    pub recurrences: BTreeMap<String, Recurrence>,
    /// The incident's facts and milestones, on a postmortem board (see [`crate::incident`]).
    #[autosurgeon(missing = "Default::default")]
    pub incident: crate::incident::Incident,
    /// The incident's timeline, by event id: published by the server from the desks.
    #[autosurgeon(missing = "Default::default")]
    pub timeline: BTreeMap<String, crate::timeline::Event>,
    /// Contributing factors, by id (see [`crate::factors`]).
    #[autosurgeon(missing = "Default::default")]
    pub factors: BTreeMap<String, crate::factors::Factor>,
    /// "Led to" links between factors: `"<from>><to>"` → true.
    #[autosurgeon(missing = "Default::default")]
    pub causal: BTreeMap<String, bool>,
    /// The factor each action item addresses, by action id.
    #[autosurgeon(missing = "Default::default")]
    pub addresses: BTreeMap<String, String>,
    /// What each action item does about its factor (prevent, mitigate, process), by action id.
    #[autosurgeon(missing = "Default::default")]
    pub action_kinds: BTreeMap<String, String>,
    /// Timeline events the facilitator took off the board, by event id → true: the server does
    /// not publish them again when their desk changes.
    #[autosurgeon(missing = "Default::default")]
    pub removed_events: BTreeMap<String, bool>,
}

/// "Same cause as …": a past cause of the team that a cluster of this retro is like.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Reconcile, Hydrate)]
pub struct Recurrence {
    /// The cluster of this board.
    pub cluster: String,
    /// The past cause, by its ledger id, its title and the title of its retro.
    pub past: String,
    pub title: String,
    pub retro: String,
    /// How alike they are, in percent.
    pub score: i64,
    /// Every action the past cause had was done: it came back after its fix.
    pub after_fix: bool,
    /// The facilitator confirmed it is the same cause.
    pub confirmed: bool,
}

/// An open action item of the team, reviewed at the start of its next retro.
#[derive(Debug, Clone, PartialEq, Eq, Default, Reconcile, Hydrate)]
pub struct ReviewItem {
    pub id: String,
    pub text: String,
    pub owner: String,
    pub due: String,
    /// What it addressed, in the retro it came from.
    pub origin: String,
    /// How many retros reviewed it and left it open before this one.
    pub carried: i64,
    /// What the group says of it now: written in Review.
    pub status: crate::ledger::Status,
    pub reason: String,
    /// Its status in the ledger when the board was made: the group's word reaches the ledger
    /// only if nobody changed the action there since.
    #[autosurgeon(missing = "Default::default")]
    pub was: crate::ledger::Status,
}

/// The root maps a board made by an older version may lack; [`upgrade_board`] adds them.
const ADDED_MAPS: [&str; 11] = [
    "co_facilitators",
    "ranks",
    "anchors",
    "roti",
    "incident",
    "timeline",
    "factors",
    "causal",
    "addresses",
    "action_kinds",
    "removed_events",
];

/// Adds to a board document the root maps that boards made before them lack, so browsers can
/// write into them (browsers never make root objects). Returns whether it changed anything.
/// Only the server calls it, once per board: two peers making the same map would conflict.
pub fn upgrade_board(doc: &mut impl autosurgeon::Doc) -> Result<bool, SchemaError> {
    let mut changed = false;
    for name in ADDED_MAPS {
        if doc.get(&ROOT, name)?.is_none() {
            doc.put_object(ROOT, name, ObjType::Map)?;
            changed = true;
        }
    }
    Ok(changed)
}

/// The root maps a desk made by an older version may lack; [`upgrade_desk`] adds them.
const ADDED_DESK_MAPS: [&str; 1] = ["events"];

/// Adds to a desk document the root maps that desks made before them lack (the timeline's
/// `events`), as [`upgrade_board`] does for a board; only the server calls it, when it loads a desk.
pub fn upgrade_desk(doc: &mut impl autosurgeon::Doc) -> Result<bool, SchemaError> {
    let mut changed = false;
    for name in ADDED_DESK_MAPS {
        if doc.get(&ROOT, name)?.is_none() {
            doc.put_object(ROOT, name, ObjType::Map)?;
            changed = true;
        }
    }
    Ok(changed)
}

/// A column of the board.
#[derive(Debug, Clone, PartialEq, Eq, Reconcile, Hydrate)]
pub struct Column {
    #[key]
    pub id: String,
    pub title: String,
    /// The question the column asks, shown as a placeholder.
    pub prompt: String,
}

/// A published sticky note. Read by hand (see [`Fields`]): a board holds thousands.
#[derive(Debug, Clone, PartialEq, Eq, Reconcile)]
pub struct Note {
    pub id: String,
    /// The id of the column the note sits in.
    pub column: String,
    pub text: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    /// The cluster the note belongs to, if any. A note whose cluster does not exist is a lone note.
    pub cluster: Option<String>,
    /// The author's display name, only on boards with named notes.
    #[autosurgeon(missing = "Default::default")]
    pub author: Option<String>,
}

/// A group of notes that share a root cause.
#[derive(Debug, Clone, PartialEq, Eq, Reconcile, Hydrate)]
pub struct Cluster {
    pub id: String,
    pub title: String,
}

/// A follow-up the team commits to.
#[derive(Debug, Clone, PartialEq, Eq, Reconcile, Hydrate)]
pub struct ActionItem {
    pub id: String,
    pub text: String,
    pub owner: String,
    /// An ISO date (`2026-12-01`), or empty.
    pub due: String,
    /// The cluster (or lone note) the action addresses, if any.
    pub cluster: Option<String>,
}

/// A participant's private desk: what they write and how they vote, seen only by them and the
/// server.
#[derive(Debug, Clone, PartialEq, Eq, Default, Reconcile, Hydrate)]
pub struct Desk {
    /// The participant's notes, published by the server once their column is revealed.
    pub drafts: BTreeMap<String, Draft>,
    /// Dots per item (cluster id or note id).
    pub votes: BTreeMap<String, i64>,
    /// "I'm done" for the current phase.
    pub ready: bool,
    /// The participant chose not to vote.
    pub abstain: bool,
    /// Their ROTI rating of the retro, at Done (see [`ROTI_RATINGS`]); never leaves the desk.
    #[autosurgeon(missing = "Default::default")]
    pub roti: Option<i64>,
    /// What they saw during the incident, for the timeline: published without an author.
    #[autosurgeon(missing = "Default::default")]
    pub events: BTreeMap<String, crate::timeline::DeskEvent>,
}

/// A note as its author wrote it. Read by hand (see [`Fields`]).
#[derive(Debug, Clone, PartialEq, Eq, Reconcile)]
pub struct Draft {
    pub id: String,
    pub column: String,
    pub text: String,
    pub created_at: i64,
}

/// Why a document cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    // The library errors are boxed: they are large, and this error travels through every edit.
    #[error("the document does not have the expected shape: {0}")]
    Hydrate(Box<HydrateError>),
    #[error("could not write the document: {0}")]
    Reconcile(Box<ReconcileError>),
    #[error("automerge refused the change: {0}")]
    Automerge(Box<AutomergeError>),
    #[error("the document has no `{0}` map")]
    MissingRoot(&'static str),
    #[error("{0}")]
    Invalid(String),
}

impl From<HydrateError> for SchemaError {
    fn from(e: HydrateError) -> Self {
        Self::Hydrate(Box::new(e))
    }
}

impl From<ReconcileError> for SchemaError {
    fn from(e: ReconcileError) -> Self {
        Self::Reconcile(Box::new(e))
    }
}

impl From<AutomergeError> for SchemaError {
    fn from(e: AutomergeError) -> Self {
        Self::Automerge(Box::new(e))
    }
}

impl Board {
    /// The published ROTI: how many rated and their mean rating; `None` while nothing is
    /// published (the results were not asked for, or too few rated).
    pub fn roti_mean(&self) -> Option<(i64, f64)> {
        let (raters, sum) = ROTI_RATINGS.fold((0, 0), |(raters, sum), rating| {
            let count = self.roti.get(&rating.to_string()).copied().unwrap_or(0);
            (raters + count, sum + count * rating)
        });
        (raters > 0).then(|| (raters, sum as f64 / raters as f64))
    }

    /// Reads the whole board from a document.
    pub fn read(doc: &impl ReadDoc) -> Result<Self, SchemaError> {
        Ok(autosurgeon::hydrate(doc)?)
    }

    /// True if `participant` runs the retro: the facilitator or a co-facilitator.
    pub fn facilitates(&self, participant: &str) -> bool {
        self.facilitator.as_deref() == Some(participant) || self.co_facilitators.contains_key(participant)
    }

    /// Where a note sits in its column, as a sort key: arranged notes by rank, then the others
    /// in the order they were published, ties by id.
    pub fn place<'a>(&self, note: &'a Note) -> (bool, i64, i64, &'a str) {
        match self.ranks.get(&note.id) {
            Some(&rank) => (false, rank, 0, &note.id),
            None => (true, 0, note.created_at, &note.id),
        }
    }

    /// The notes of one column in the group's order (see [`Board::place`]).
    pub fn notes_in<'a>(&'a self, column: &'a str) -> impl Iterator<Item = &'a Note> + 'a {
        let mut notes: Vec<&Note> = self.notes.values().filter(|n| n.column == column).collect();
        notes.sort_by(|a, b| self.place(a).cmp(&self.place(b)));
        notes.into_iter()
    }

    /// The note a cluster sits at: its anchor while the anchor is in it, else its first note
    /// by column, publication and id — never by rank, so that moving the cluster (which ranks
    /// this note) does not hand its place to another of its notes. `None` for a cluster with no
    /// notes.
    pub fn anchor_of<'a>(&'a self, cluster: &str, notes: &[&'a Note]) -> Option<&'a Note> {
        if let Some(anchor) = self.anchors.get(cluster).and_then(|id| notes.iter().find(|n| n.id == *id)) {
            return Some(anchor);
        }
        let column_index = |column: &str| self.columns.iter().position(|c| c.id == column).unwrap_or(usize::MAX);
        notes.iter().copied().min_by_key(|n| (column_index(&n.column), n.created_at, n.id.as_str()))
    }

    /// The name every view gives each cluster (see [`Board::item_title`]), all in one pass.
    pub fn cluster_titles(&self) -> BTreeMap<&str, String> {
        let mut members: BTreeMap<&str, Vec<&Note>> = BTreeMap::new();
        for note in self.notes.values() {
            if let Some(cluster) = self.cluster_of(note) {
                members.entry(cluster.id.as_str()).or_default().push(note);
            }
        }
        self.clusters
            .values()
            .map(|c| {
                let title = if c.title.trim().is_empty() {
                    members.get(c.id.as_str()).and_then(|n| self.anchor_of(&c.id, n)).map(|n| n.text.clone())
                } else {
                    Some(c.title.clone())
                };
                (c.id.as_str(), title.unwrap_or_default())
            })
            .collect()
    }

    /// The cards of one column while grouping and voting, in the group's order: each lone note
    /// of the column, and each cluster whose anchor is in the column, at its anchor's place.
    /// Each card comes with the note whose place it takes.
    pub fn cards_in(&self, column: &str) -> Vec<(VoteItem, String)> {
        let mut members: BTreeMap<&str, Vec<&Note>> = BTreeMap::new();
        let mut cards: Vec<(VoteItem, &Note)> = Vec::new();
        for note in self.notes.values() {
            match self.cluster_of(note) {
                Some(cluster) => members.entry(cluster.id.as_str()).or_default().push(note),
                None if note.column == column => cards.push((VoteItem::Note(note.clone()), note)),
                None => {}
            }
        }
        for (id, mut notes) in members {
            let (Some(cluster), Some(anchor)) = (self.clusters.get(id), self.anchor_of(id, &notes)) else { continue };
            if anchor.column == column {
                notes.sort_by(|a, b| self.place(a).cmp(&self.place(b)));
                let item = VoteItem::Cluster(cluster.clone(), notes.into_iter().cloned().collect());
                cards.push((item, anchor));
            }
        }
        cards.sort_by(|(_, a), (_, b)| self.place(a).cmp(&self.place(b)));
        cards.into_iter().map(|(item, anchor)| (item, anchor.id.clone())).collect()
    }

    /// True when a column's notes are public: revealed by the facilitator, or the retro moved
    /// past revealing.
    pub fn is_revealed(&self, column: &str) -> bool {
        self.phase >= Phase::Group || (self.phase == Phase::Reveal && self.revealed.get(column) == Some(&true))
    }

    /// The cluster a note is in, if that cluster exists.
    /// A cluster whose id is also a note's is no cluster at all (the rules refuse to make one,
    /// but a note published later could take the id): an item id names one thing only.
    pub fn cluster_of(&self, note: &Note) -> Option<&Cluster> {
        note.cluster.as_ref().filter(|c| !self.notes.contains_key(*c)).and_then(|c| self.clusters.get(c))
    }

    /// The things one votes on: every cluster that holds notes, and every note in no cluster.
    pub fn vote_items(&self) -> Vec<VoteItem> {
        let mut clusters: BTreeMap<&str, Vec<&Note>> = BTreeMap::new();
        let mut items = Vec::new();
        for note in self.notes.values() {
            match self.cluster_of(note) {
                Some(cluster) => clusters.entry(cluster.id.as_str()).or_default().push(note),
                None => items.push(VoteItem::Note(note.clone())),
            }
        }
        for (id, notes) in clusters {
            if let Some(cluster) = self.clusters.get(id) {
                items.push(VoteItem::Cluster(cluster.clone(), notes.into_iter().cloned().collect()));
            }
        }
        items
    }

    /// True if `id` names something one can vote on now.
    pub fn is_vote_item(&self, id: &str) -> bool {
        self.notes.get(id).is_some_and(|n| self.cluster_of(n).is_none())
            || self.notes.values().any(|n| n.cluster.as_deref() == Some(id) && self.clusters.contains_key(id))
    }

    /// The notes whose places make the order of one column as it is shown: while revealing,
    /// every note; from grouping on, the note each card sits at (see [`Board::cards_in`]).
    pub fn places_in(&self, column: &str) -> Vec<String> {
        if self.phase >= Phase::Group {
            self.cards_in(column).into_iter().map(|(_, anchor)| anchor).collect()
        } else {
            self.notes_in(column).map(|n| n.id.clone()).collect()
        }
    }

    /// The action items by due date, then text: the order every export lists them in.
    pub fn actions_by_due(&self) -> Vec<&ActionItem> {
        let mut actions: Vec<_> = self.action_items.values().collect();
        actions.sort_by(|a, b| (&a.due, &a.text, &a.id).cmp(&(&b.due, &b.text, &b.id)));
        actions
    }

    /// A readable name for an item, the same everywhere (board, summary, exports): a
    /// cluster's title, or for an untitled cluster the text of its first note; a note's text.
    pub fn item_title(&self, id: &str) -> Option<String> {
        if let Some(note) = self.notes.get(id) {
            return Some(note.text.clone());
        }
        let cluster = self.clusters.get(id)?;
        if !cluster.title.trim().is_empty() {
            return Some(cluster.title.clone());
        }
        let notes: Vec<&Note> = self.notes.values().filter(|n| n.cluster.as_deref() == Some(id)).collect();
        self.anchor_of(id, &notes).map(|n| n.text.clone())
    }

    /// Items ordered for discussion: most votes first, then by title.
    pub fn ranked_items(&self) -> Vec<(VoteItem, i64)> {
        let mut ranked: Vec<(VoteItem, i64)> = self
            .vote_items()
            .into_iter()
            .map(|item| {
                let votes = self.vote_totals.get(item.id()).copied().unwrap_or(0);
                (item, votes)
            })
            .collect();
        ranked.sort_by(|(a, va), (b, vb)| vb.cmp(va).then_with(|| a.id().cmp(b.id())));
        ranked
    }
}

/// Something one can vote on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoteItem {
    /// A cluster and its notes.
    Cluster(Cluster, Vec<Note>),
    /// A note in no cluster.
    Note(Note),
}

impl VoteItem {
    pub fn id(&self) -> &str {
        match self {
            VoteItem::Cluster(cluster, _) => &cluster.id,
            VoteItem::Note(note) => &note.id,
        }
    }
}

impl Desk {
    pub fn read(doc: &impl ReadDoc) -> Result<Self, SchemaError> {
        Ok(autosurgeon::hydrate(doc)?)
    }

    /// How many dots the participant placed.
    pub fn votes_cast(&self) -> i64 {
        self.votes.values().sum()
    }
}

/// Builds the document of a new board: the root map with every object it will ever need.
pub fn new_board_document(
    actor: ActorId,
    title: &str,
    template: &Template,
    team: Option<(String, Vec<ReviewItem>)>,
) -> Result<automerge::Automerge, SchemaError> {
    let (team, review) = match team {
        Some((team, review)) => (Some(team), review.into_iter().map(|r| (r.id.clone(), r)).collect()),
        None => (None, BTreeMap::new()),
    };
    let board = Board {
        title: title.chars().take(MAX_TITLE_CHARS).collect(),
        template: template.id.to_owned(),
        phase: if review.is_empty() { Phase::Write } else { Phase::Review },
        incident: crate::incident::Incident { on: template.id == "incident-postmortem", ..Default::default() },
        team,
        review,
        columns: template
            .columns
            .iter()
            .map(|c| Column { id: c.id.to_owned(), title: c.title.to_owned(), prompt: c.prompt.to_owned() })
            .collect(),
        ..Board::default()
    };
    new_document(actor, &board)
}

/// Builds the document of a new, empty desk.
pub fn new_desk_document(actor: ActorId) -> Result<automerge::Automerge, SchemaError> {
    new_document(actor, &Desk::default())
}

fn new_document(actor: ActorId, value: &impl Reconcile) -> Result<automerge::Automerge, SchemaError> {
    let mut doc = automerge::Automerge::new().with_actor(actor);
    let mut tx = doc.transaction();
    autosurgeon::reconcile(&mut tx, value)?;
    tx.commit_with(automerge::transaction::CommitOptions::default().with_time(0));
    Ok(doc)
}

/// The id of a map at the root of a document.
pub fn root_map(doc: &impl ReadDoc, name: &'static str) -> Result<automerge::ObjId, SchemaError> {
    match doc.get(&ROOT, name)? {
        Some((automerge::Value::Object(ObjType::Map), id)) => Ok(id),
        _ => Err(SchemaError::MissingRoot(name)),
    }
}

/// One entry of a map at the root of a document (a note, a cluster, a draft), or `None` if the
/// map has no such key.
pub fn read_entry<T: Hydrate>(doc: &impl ReadDoc, map: &'static str, key: &str) -> Result<Option<T>, SchemaError> {
    let parent = root_map(doc, map)?;
    if doc.get(&parent, key)?.is_none() {
        return Ok(None);
    }
    Ok(Some(autosurgeon::hydrate_prop(doc, &parent, key)?))
}

/// The fields of one map, read in one pass (`map_range`). The derived `Hydrate` looks each field
/// up with its own `get`, eight times slower on a board of 5,000 notes; notes and drafts, the
/// schema's only large collections, are read this way. The rules are the derived ones: a string
/// field holds a string, an integer an `Int`, an optional field may be missing or null.
pub(crate) struct Fields<'a> {
    /// Each key with its scalar, or `None` for an object (which no field of these holds).
    values: Vec<(std::borrow::Cow<'a, str>, Option<automerge::ScalarValueRef<'a>>)>,
}

impl<'a> Fields<'a> {
    pub(crate) fn read<D: ReadDoc>(doc: &'a D, obj: &automerge::ObjId) -> Self {
        let values = doc
            .map_range(obj, ..)
            .map(|item| match item.value {
                automerge::ValueRef::Scalar(value) => (item.key, Some(value)),
                automerge::ValueRef::Object(_) => (item.key, None),
            })
            .collect();
        Self { values }
    }

    /// `None` if the key is missing, `Some(None)` if it holds an object.
    fn get(&self, key: &str) -> Option<Option<&automerge::ScalarValueRef<'a>>> {
        self.values.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_ref())
    }

    pub(crate) fn string(&self, key: &str) -> Result<String, HydrateError> {
        match self.get(key) {
            Some(Some(automerge::ScalarValueRef::Str(s))) => Ok(s.to_string()),
            other => Err(HydrateError::unexpected(format!("a string at `{key}`"), format!("{other:?}"))),
        }
    }

    pub(crate) fn optional_string(&self, key: &str) -> Result<Option<String>, HydrateError> {
        match self.get(key) {
            None | Some(Some(automerge::ScalarValueRef::Null)) => Ok(None),
            Some(_) => self.string(key).map(Some),
        }
    }

    pub(crate) fn int(&self, key: &str) -> Result<i64, HydrateError> {
        match self.get(key) {
            Some(Some(automerge::ScalarValueRef::Int(i))) => Ok(*i),
            other => Err(HydrateError::unexpected(format!("an integer at `{key}`"), format!("{other:?}"))),
        }
    }

    pub(crate) fn optional_int(&self, key: &str) -> Result<Option<i64>, HydrateError> {
        match self.get(key) {
            None | Some(Some(automerge::ScalarValueRef::Null)) => Ok(None),
            Some(_) => self.int(key).map(Some),
        }
    }
}

impl Hydrate for Note {
    fn hydrate_map<D: ReadDoc>(doc: &D, obj: &automerge::ObjId) -> Result<Self, HydrateError> {
        let f = Fields::read(doc, obj);
        Ok(Self {
            id: f.string("id")?,
            column: f.string("column")?,
            text: f.string("text")?,
            created_at: f.int("created_at")?,
            cluster: f.optional_string("cluster")?,
            author: f.optional_string("author")?,
        })
    }
}

impl Hydrate for Draft {
    fn hydrate_map<D: ReadDoc>(doc: &D, obj: &automerge::ObjId) -> Result<Self, HydrateError> {
        let f = Fields::read(doc, obj);
        Ok(Self {
            id: f.string("id")?,
            column: f.string("column")?,
            text: f.string("text")?,
            created_at: f.int("created_at")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::templates;

    pub(crate) fn board_doc() -> automerge::Automerge {
        let template = templates::find("mad-sad-glad").expect("template exists");
        new_board_document(ActorId::random(), "Sprint 42", template, None).expect("new board")
    }

    #[test]
    fn notes_read_by_hand_follow_the_derived_rules() {
        use automerge::transaction::Transactable;
        let mut doc = board_doc();
        let mut tx = doc.transaction();
        let notes = tx.get(&ROOT, "notes").expect("get").expect("notes").1;
        let note = tx.put_object(&notes, "n", ObjType::Map).expect("note");
        for (key, value) in [("id", "n"), ("column", "mad"), ("text", "Slow builds")] {
            tx.put(&note, key, value).expect("put");
        }
        tx.put(&note, "created_at", 5i64).expect("put");
        tx.put(&note, "cluster", automerge::ScalarValue::Null).expect("put");
        tx.put(&note, "unknown", "ignored").expect("put");
        tx.commit();
        let read = Board::read(&doc).expect("readable").notes["n"].clone();
        let expected = Note {
            id: "n".into(),
            column: "mad".into(),
            text: "Slow builds".into(),
            created_at: 5,
            cluster: None,
            author: None,
        };
        assert_eq!(read, expected, "null and missing optional fields are None; unknown fields are skipped");

        let mut tx = doc.transaction();
        tx.put_object(&note, "text", ObjType::Map).expect("an object where text belongs");
        tx.commit();
        assert!(Board::read(&doc).is_err(), "a note whose text is not a string does not read");
    }

    #[test]
    fn a_new_board_has_its_template_columns_and_defaults() {
        let board = Board::read(&board_doc()).expect("readable");
        assert_eq!(board.title, "Sprint 42");
        assert_eq!(board.template, "mad-sad-glad");
        assert_eq!(board.phase, Phase::Write);
        let titles: Vec<_> = board.columns.iter().map(|c| c.title.as_str()).collect();
        assert_eq!(titles, ["Mad", "Sad", "Glad"]);
        assert!(board.notes.is_empty());
        assert_eq!(board.settings, Settings::default());
        assert!(board.settings.anonymous, "notes are anonymous by default");
    }

    #[test]
    fn a_new_desk_is_empty() {
        let desk = Desk::read(&new_desk_document(ActorId::random()).expect("desk")).expect("readable");
        assert_eq!(desk, Desk::default());
    }

    #[test]
    fn phases_step_forward_and_back() {
        assert_eq!(Phase::Write.next(), Some(Phase::Reveal));
        assert_eq!(Phase::Done.next(), None);
        assert_eq!(Phase::Write.previous(), None);
        assert_eq!(Phase::Review.previous(), None);
        assert_eq!(Phase::Review.next(), Some(Phase::Write));
        assert_eq!(Phase::Done.previous(), Some(Phase::Actions));
    }

    #[test]
    fn vote_items_are_clusters_with_notes_and_lone_notes() {
        let note = |id: &str, cluster: Option<&str>| Note {
            id: id.into(),
            column: "mad".into(),
            text: id.into(),
            created_at: 0,
            cluster: cluster.map(Into::into),
            author: None,
        };
        let mut board = Board::default();
        board.clusters.insert("c".into(), Cluster { id: "c".into(), title: "CI".into() });
        board.clusters.insert("empty".into(), Cluster { id: "empty".into(), title: "".into() });
        for n in [note("a", Some("c")), note("b", Some("c")), note("lone", None), note("dangling", Some("gone"))] {
            board.notes.insert(n.id.clone(), n);
        }
        let mut ids: Vec<_> = board.vote_items().iter().map(|i| i.id().to_owned()).collect();
        ids.sort();
        assert_eq!(ids, ["c", "dangling", "lone"]);
        assert!(board.is_vote_item("c") && board.is_vote_item("lone") && board.is_vote_item("dangling"));
        assert!(!board.is_vote_item("a") && !board.is_vote_item("empty") && !board.is_vote_item("nope"));
    }
}
