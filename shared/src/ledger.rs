//! The team ledger: one Automerge document per team, the team's memory across its retros: every
//! retro it ran (with its ROTI, writers and notes), every action item those retros agreed on and
//! what became of it, the clusters (causes) each retro named, and the confirmed recurrences.
//!
//! The server creates the ledger and writes almost all of it: it records a retro when the
//! retro reaches Done ([`Finished`], [`record`]), copies the review of a team's next retro in,
//! and stamps `done_at`. Anyone holding the team link may change an action's `status` and
//! `reason`, and nothing else (see `rules::check_ledger_writes`), following [`Status::may_become`].
//!
//! The root map: `name`, `retros` (board id → [`Retro`]), `actions` (id → [`LedgerAction`]),
//! `causes` (id → [`Cause`]), `links` (new cause id → [`Link`]), `removed` (board id → true).
//!
//! Invariant: the ledger holds no participant's id, name or rating, and nothing that ties a
//! note to its author: only what the retro's board already showed everyone, without authors
//! (action items, the published ROTI histogram, and for its 30 clusters with the most dots the
//! title and the first 1,000 characters of their notes, to recognise a cause when it comes
//! back) and counts. Team link holders read it, and it outlives the board's retention.

use std::collections::BTreeMap;

use automerge::{ActorId, ROOT};
use autosurgeon::{Doc, Hydrate, ReadDoc, Reconcile};
use serde::Serialize;

use crate::edit::put_entry as put;
use crate::recurrence::{self, CauseText};
use crate::schema::{self, Board, MAX_ACTION_CHARS, MAX_NAME_CHARS, Recurrence, ReviewItem, SchemaError, root_map};

/// The longest team name, in characters.
pub const MAX_TEAM_NAME_CHARS: usize = 80;
/// The longest reason given for an action's status (why it was dropped), in characters.
pub const MAX_REASON_CHARS: usize = 200;
/// The most open actions a new retro reviews: the most carried first, then the oldest. The rest
/// wait on the team page (a review of hundreds would be no review at all).
pub const MAX_REVIEW_ITEMS: usize = 30;
/// The most causes one retro leaves in the ledger: its clusters with the most dots.
pub const MAX_CAUSES_PER_RETRO: usize = 30;
/// The most characters of a cluster's text (its title and its notes) a ledger keeps to compare
/// later clusters with.
pub const MAX_CAUSE_TEXT_CHARS: usize = 1_000;

/// Where an action item stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Reconcile, Hydrate, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    #[autosurgeon(rename = "open")]
    Open,
    #[autosurgeon(rename = "doing")]
    Doing,
    #[autosurgeon(rename = "done")]
    Done,
    #[autosurgeon(rename = "dropped")]
    Dropped,
}

impl Status {
    pub const ALL: [Status; 4] = [Status::Open, Status::Doing, Status::Done, Status::Dropped];

    /// The word the documents store.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Doing => "doing",
            Status::Done => "done",
            Status::Dropped => "dropped",
        }
    }

    pub fn parse(word: &str) -> Option<Status> {
        Self::ALL.into_iter().find(|s| s.as_str() == word)
    }

    /// What the UI shows.
    pub fn title(self) -> &'static str {
        match self {
            Status::Open => "Open",
            Status::Doing => "Doing",
            Status::Done => "Done",
            Status::Dropped => "Dropped",
        }
    }

    /// Still to do: an open action, or one under way.
    pub fn is_open(self) -> bool {
        matches!(self, Status::Open | Status::Doing)
    }

    /// The moves a status may make: open ⇄ doing, either to done or dropped, and a done or
    /// dropped action back to open (reopened). Done and dropped do not swap without reopening:
    /// that would rewrite what happened.
    pub fn may_become(self, to: Status) -> bool {
        self == to || self.is_open() || to == Status::Open
    }
}

/// The whole ledger, as read from its document.
#[derive(Debug, Clone, PartialEq, Default, Reconcile, Hydrate, Serialize)]
pub struct Ledger {
    pub name: String,
    /// The team's retros, by board id.
    pub retros: BTreeMap<String, Retro>,
    pub actions: BTreeMap<String, LedgerAction>,
    pub causes: BTreeMap<String, Cause>,
    /// Confirmed recurrences, by the id of the newer cause.
    pub links: BTreeMap<String, Link>,
    /// Boards taken out of the team, by board id: what they send later is ignored.
    pub removed: BTreeMap<String, bool>,
}

/// One retro of the team.
#[derive(Debug, Clone, PartialEq, Default, Reconcile, Hydrate, Serialize)]
pub struct Retro {
    pub id: String,
    pub title: String,
    pub template: String,
    pub created_at: i64,
    /// When the retro reached Done, or `None` while it runs.
    pub done_at: Option<i64>,
    /// How many people wrote notes, and how many notes were published.
    pub writers: i64,
    pub notes: i64,
    /// The published ROTI histogram (rating → count); empty when too few rated.
    pub roti: BTreeMap<String, i64>,
    /// Action items the ledger had no room for.
    pub left_out: i64,
}

impl Retro {
    /// How many rated and the mean rating, if the ROTI was published.
    pub fn roti_mean(&self) -> Option<(i64, f64)> {
        let (raters, sum) = schema::ROTI_RATINGS.fold((0, 0), |(raters, sum), rating| {
            let count = self.roti.get(&rating.to_string()).copied().unwrap_or(0);
            (raters + count, sum + count * rating)
        });
        (raters > 0).then(|| (raters, sum as f64 / raters as f64))
    }
}

/// An action item, as the team follows it up. Read by hand, in one pass (a ledger holds
/// thousands; see `schema::Fields`).
#[derive(Debug, Clone, PartialEq, Default, Reconcile, Serialize)]
pub struct LedgerAction {
    pub id: String,
    pub text: String,
    pub owner: String,
    /// An ISO date, or empty.
    pub due: String,
    /// The board it was agreed on.
    pub board: String,
    /// What it addresses on that board: a cluster's title or a note's text (shortened), or empty.
    pub origin: String,
    /// The cause (cluster) it addresses, if it addresses a cluster.
    pub cause: Option<String>,
    /// When its retro reached Done.
    pub created_at: i64,
    pub status: Status,
    /// Why it was dropped (or any note on its status).
    pub reason: String,
    /// When it was marked done (stamped by the server), else `None`.
    pub done_at: Option<i64>,
    /// How many retros reviewed it and left it open.
    pub carried: i64,
}

impl Hydrate for LedgerAction {
    fn hydrate_map<D: ReadDoc>(doc: &D, obj: &automerge::ObjId) -> Result<Self, autosurgeon::HydrateError> {
        let f = schema::Fields::read(doc, obj);
        let status = f.string("status")?;
        Ok(Self {
            id: f.string("id")?,
            text: f.string("text")?,
            owner: f.string("owner")?,
            due: f.string("due")?,
            board: f.string("board")?,
            origin: f.string("origin")?,
            cause: f.optional_string("cause")?,
            created_at: f.int("created_at")?,
            status: Status::parse(&status)
                .ok_or_else(|| autosurgeon::HydrateError::unexpected("a status", format!("`{status}`")))?,
            reason: f.string("reason")?,
            done_at: f.optional_int("done_at")?,
            carried: f.int("carried")?,
        })
    }
}

impl LedgerAction {
    /// Past its due date (an ISO date compares as text) and still open, as of `today` (ISO).
    pub fn is_overdue(&self, today: &str) -> bool {
        self.status.is_open() && !self.due.is_empty() && self.due.as_str() < today
    }

    /// Done by its due date (or done, with no due date).
    pub fn done_on_time(&self) -> bool {
        match (self.status, self.done_at) {
            (Status::Done, Some(at)) => self.due.is_empty() || iso_day(at).as_str() <= self.due.as_str(),
            _ => false,
        }
    }
}

/// A cluster a retro named: a cause, kept to recognise it when it comes back.
#[derive(Debug, Clone, PartialEq, Default, Reconcile, Hydrate, Serialize)]
pub struct Cause {
    pub id: String,
    pub board: String,
    pub title: String,
    /// The title and its notes' text, shortened to [`MAX_CAUSE_TEXT_CHARS`].
    pub text: String,
    pub seen_at: i64,
}

/// A confirmed recurrence: a newer cause is the same as an older one.
#[derive(Debug, Clone, PartialEq, Default, Reconcile, Hydrate, Serialize)]
pub struct Link {
    /// The newer cause.
    pub id: String,
    pub past: String,
    /// Every action of the past cause was done when it came back.
    pub after_fix: bool,
    pub at: i64,
}

impl Ledger {
    pub fn read(doc: &impl ReadDoc) -> Result<Self, SchemaError> {
        Ok(autosurgeon::hydrate(doc)?)
    }

    /// The actions still to do, as a new retro reviews them: at most [`MAX_REVIEW_ITEMS`], the
    /// most carried first, then the oldest.
    pub fn open_actions(&self) -> Vec<ReviewItem> {
        let mut open: Vec<&LedgerAction> = self.actions.values().filter(|a| a.status.is_open()).collect();
        open.sort_by(|a, b| (b.carried, a.created_at, &a.id).cmp(&(a.carried, b.created_at, &b.id)));
        open.into_iter()
            .take(MAX_REVIEW_ITEMS)
            .map(|a| ReviewItem {
                id: a.id.clone(),
                text: a.text.clone(),
                owner: a.owner.clone(),
                due: a.due.clone(),
                origin: a.origin.clone(),
                carried: a.carried,
                status: a.status,
                reason: String::new(),
                was: a.status,
            })
            .collect()
    }

    /// True if the cause had actions and every one of them is done: it was fixed.
    pub fn is_fixed(&self, cause: &str) -> bool {
        let mut actions = self.actions.values().filter(|a| a.cause.as_deref() == Some(cause)).peekable();
        actions.peek().is_some() && actions.all(|a| a.status == Status::Done)
    }

    /// The past causes a finished retro's clusters are like (see [`crate::recurrence`]): at most
    /// three per cluster, from the team's other retros, best first.
    pub fn suggestions(&self, finished: &Finished) -> Vec<Recurrence> {
        let new: Vec<CauseText<'_>> = finished
            .causes
            .iter()
            .map(|c| CauseText { id: c.id.as_str(), title: c.title.as_str(), text: c.text.as_str() })
            .collect();
        let past: Vec<&Cause> = self.causes.values().filter(|c| c.board != finished.board).collect();
        let past_text: Vec<CauseText<'_>> = past
            .iter()
            .map(|c| CauseText { id: c.id.as_str(), title: c.title.as_str(), text: c.text.as_str() })
            .collect();
        recurrence::matches(&new, &past_text, 3)
            .into_iter()
            .filter_map(|m| {
                let cause = self.causes.get(&m.past)?;
                Some(Recurrence {
                    cluster: m.new,
                    past: cause.id.clone(),
                    title: cause.title.clone(),
                    retro: self.retros.get(&cause.board).map(|r| r.title.clone()).unwrap_or_default(),
                    score: (m.score * 100.0).round() as i64,
                    after_fix: self.is_fixed(&cause.id),
                    confirmed: false,
                })
            })
            .collect()
    }

    /// The cause a cause is a recurrence of, followed back to the first time it was seen.
    pub fn root_cause<'a>(&'a self, cause: &'a str) -> &'a str {
        let mut at = cause;
        for _ in 0..self.links.len() {
            match self.links.get(at) {
                Some(link) => at = &link.past,
                None => break,
            }
        }
        at
    }

    /// The causes that came back, most often first: each root cause with every cause linked to
    /// it (the root first), the retros it was seen in, and when it was last seen.
    pub fn recurring(&self) -> Vec<Recurring<'_>> {
        let mut by_root: BTreeMap<&str, Vec<&Cause>> = BTreeMap::new();
        for link in self.links.values() {
            for id in [link.id.as_str(), link.past.as_str()] {
                if let Some(cause) = self.causes.get(id) {
                    let seen = by_root.entry(self.root_cause(id)).or_default();
                    if !seen.iter().any(|c| c.id == cause.id) {
                        seen.push(cause);
                    }
                }
            }
        }
        let mut recurring: Vec<Recurring<'_>> = by_root
            .into_iter()
            .filter_map(|(root, mut causes)| {
                causes.sort_by_key(|c| (c.seen_at, c.id.as_str()));
                let first = self.causes.get(root)?;
                let last_seen = causes.iter().map(|c| c.seen_at).max().unwrap_or(first.seen_at);
                let after_fix = self.links.values().any(|l| l.after_fix && self.root_cause(&l.id) == root);
                Some(Recurring { title: first.title.as_str(), causes, last_seen, after_fix })
            })
            .collect();
        recurring.sort_by(|a, b| b.causes.len().cmp(&a.causes.len()).then(b.last_seen.cmp(&a.last_seen)));
        recurring
    }
}

/// One finished retro's figures, as the team page charts them.
#[derive(Debug, Clone, PartialEq)]
pub struct RetroFigures {
    pub id: String,
    pub title: String,
    pub done_at: i64,
    /// The mean ROTI, if it was published.
    pub roti: Option<f64>,
    /// The action items it agreed on, and the share of them done, and done by their due date.
    pub actions: i64,
    pub completion: Option<f64>,
    pub on_time: Option<f64>,
    pub writers: i64,
    pub notes: i64,
}

impl Ledger {
    /// Each finished retro's figures, oldest first.
    pub fn figures(&self) -> Vec<RetroFigures> {
        let mut per_board: BTreeMap<&str, (i64, i64, i64)> = BTreeMap::new();
        for action in self.actions.values() {
            let entry = per_board.entry(action.board.as_str()).or_default();
            entry.0 += 1;
            entry.1 += i64::from(action.status == Status::Done);
            entry.2 += i64::from(action.done_on_time());
        }
        let mut figures: Vec<RetroFigures> = self
            .retros
            .values()
            .filter_map(|retro| {
                let done_at = retro.done_at?;
                let (actions, done, on_time) = per_board.get(retro.id.as_str()).copied().unwrap_or_default();
                let share = |n: i64| (actions > 0).then(|| n as f64 / actions as f64);
                Some(RetroFigures {
                    id: retro.id.clone(),
                    title: retro.title.clone(),
                    done_at,
                    roti: retro.roti_mean().map(|(_, mean)| mean),
                    actions,
                    completion: share(done),
                    on_time: share(on_time),
                    writers: retro.writers,
                    notes: retro.notes,
                })
            })
            .collect();
        figures.sort_by(|a, b| (a.done_at, &a.id).cmp(&(b.done_at, &b.id)));
        figures
    }
}

/// A cause that came back (see [`Ledger::recurring`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Recurring<'a> {
    pub title: &'a str,
    pub causes: Vec<&'a Cause>,
    pub last_seen: i64,
    /// It came back after its actions were done.
    pub after_fix: bool,
}

/// What a board tells its team's ledger when it reaches Done. Built from the board alone
/// ([`Finished::of`]), so the ledger never reads another actor's document.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    pub board: String,
    pub title: String,
    pub done_at: i64,
    /// How many people wrote notes, when the board counted them (`None` when it could not: a
    /// board loaded again re-sends what it sent before).
    pub writers: Option<i64>,
    pub notes: i64,
    pub roti: BTreeMap<String, i64>,
    pub actions: Vec<FinishedAction>,
    /// The review of the team's open actions this retro began with.
    pub reviewed: Vec<ReviewItem>,
    pub causes: Vec<Cause>,
}

/// An action item of a finished retro.
#[derive(Debug, Clone, PartialEq)]
pub struct FinishedAction {
    pub id: String,
    pub text: String,
    pub owner: String,
    pub due: String,
    pub origin: String,
    /// The cluster it addresses, if it addresses one.
    pub cluster: Option<String>,
}

/// The id a board's cluster or action item has in its team's ledger: unique across the team's
/// boards, without naming the board (a board id is a capability).
pub fn ledger_key(board: &str, id: &str) -> String {
    let tag = board.parse::<crate::ids::DocumentId>().map(|b| b.tag().to_string()).unwrap_or_default();
    format!("{tag}-{id}")
}

impl Finished {
    /// What a board at Done tells its team.
    pub fn of(board_id: &str, board: &Board, done_at: i64, writers: Option<i64>) -> Self {
        let titles = board.cluster_titles();
        let shorten = |text: &str, max: usize| text.chars().take(max).collect::<String>();
        let actions = board
            .action_items
            .values()
            .map(|a| {
                let cluster = a.cluster.as_ref().filter(|c| board.clusters.contains_key(*c)).cloned();
                let origin = a.cluster.as_deref().and_then(|c| board.item_title(c)).unwrap_or_default();
                FinishedAction {
                    id: a.id.clone(),
                    text: a.text.clone(),
                    owner: a.owner.clone(),
                    due: a.due.clone(),
                    origin: shorten(&origin, schema::MAX_CLUSTER_TITLE_CHARS),
                    cluster,
                }
            })
            .collect();
        let causes = board
            .ranked_items()
            .into_iter()
            .filter_map(|(item, _)| match item {
                schema::VoteItem::Cluster(cluster, notes) => {
                    let title = titles.get(cluster.id.as_str()).cloned().unwrap_or_default();
                    let text = std::iter::once(title.as_str())
                        .chain(notes.iter().map(|n| n.text.as_str()))
                        .collect::<Vec<_>>()
                        .join("\n");
                    Some(Cause {
                        id: cluster.id,
                        board: board_id.to_owned(),
                        title: shorten(&title, schema::MAX_CLUSTER_TITLE_CHARS),
                        text: shorten(&text, MAX_CAUSE_TEXT_CHARS),
                        seen_at: done_at,
                    })
                }
                schema::VoteItem::Note(_) => None,
            })
            .take(MAX_CAUSES_PER_RETRO)
            .collect();
        Self {
            board: board_id.to_owned(),
            title: board.title.clone(),
            done_at,
            writers,
            notes: board.notes.len() as i64,
            roti: board.roti.clone(),
            actions,
            reviewed: board.review.values().cloned().collect(),
            causes,
        }
    }
}

/// The day (ISO, UTC) of a time in milliseconds since the epoch.
pub fn iso_day(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

// ---- Writes ------------------------------------------------------------------------------------

/// Builds the document of a new team's ledger. Only the server makes one.
pub fn new_ledger_document(actor: ActorId, name: &str) -> Result<automerge::Automerge, SchemaError> {
    let ledger = Ledger { name: name.chars().take(MAX_TEAM_NAME_CHARS).collect(), ..Ledger::default() };
    let mut doc = automerge::Automerge::new().with_actor(actor);
    let mut tx = doc.transaction();
    autosurgeon::reconcile(&mut tx, &ledger)?;
    tx.commit_with(automerge::transaction::CommitOptions::default().with_time(0));
    Ok(doc)
}

fn action_obj(doc: &impl ReadDoc, id: &str) -> Result<automerge::ObjId, SchemaError> {
    let actions = root_map(doc, "actions")?;
    match doc.get(&actions, id)? {
        Some((automerge::Value::Object(automerge::ObjType::Map), obj)) => Ok(obj),
        _ => Err(SchemaError::Invalid(format!("there is no action `{id}`"))),
    }
}

/// Renames the team (the server, for a team key holder).
pub fn rename(doc: &mut impl Doc, name: &str) -> Result<(), SchemaError> {
    if name.chars().count() > MAX_TEAM_NAME_CHARS {
        return Err(SchemaError::Invalid(format!("a team name has at most {MAX_TEAM_NAME_CHARS} characters")));
    }
    autosurgeon::reconcile_prop(doc, ROOT, "name", name)?;
    Ok(())
}

/// Lists a retro the team just started.
pub fn add_retro(doc: &mut impl Doc, retro: &Retro) -> Result<(), SchemaError> {
    put(doc, "retros", &retro.id, retro)
}

/// Takes a board out of the team: its retro, its actions and its causes go, and what it sends
/// later is ignored.
pub fn remove_retro(doc: &mut impl Doc, ledger: &Ledger, board: &str) -> Result<(), SchemaError> {
    for (map, ids) in [
        ("actions", ledger.actions.values().filter(|a| a.board == board).map(|a| a.id.clone()).collect::<Vec<_>>()),
        ("causes", ledger.causes.values().filter(|c| c.board == board).map(|c| c.id.clone()).collect()),
        (
            "links",
            ledger
                .links
                .values()
                .filter(|l| ledger.causes.get(&l.id).is_some_and(|c| c.board == board))
                .map(|l| l.id.clone())
                .collect(),
        ),
    ] {
        let parent = root_map(doc, map)?;
        for id in ids {
            doc.delete(&parent, id.as_str())?;
        }
    }
    let retros = root_map(doc, "retros")?;
    if ledger.retros.contains_key(board) {
        doc.delete(&retros, board)?;
    }
    put(doc, "removed", board, &true)
}

/// Sets an action's status and reason. The server stamps `done_at` (see [`stamp_done`]).
pub fn set_status(doc: &mut impl Doc, id: &str, status: Status, reason: &str) -> Result<(), SchemaError> {
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(SchemaError::Invalid(format!("a reason has at most {MAX_REASON_CHARS} characters")));
    }
    let obj = action_obj(doc, id)?;
    autosurgeon::reconcile_prop(doc, &obj, "status", status)?;
    autosurgeon::reconcile_prop(doc, &obj, "reason", reason)?;
    Ok(())
}

/// Brings an action's `done_at` in line with its status: stamped when it is done, cleared when
/// it is not. Returns whether it wrote anything.
pub fn stamp_done(doc: &mut impl Doc, action: &LedgerAction, now_ms: i64) -> Result<bool, SchemaError> {
    let done_at = match (action.status, action.done_at) {
        (Status::Done, None) => Some(now_ms),
        (Status::Done, Some(_)) | (_, None) => return Ok(false),
        (_, Some(_)) => None,
    };
    let obj = action_obj(doc, &action.id)?;
    autosurgeon::reconcile_prop(doc, &obj, "done_at", done_at)?;
    Ok(true)
}

/// Writes the review a retro made of the team's open actions: each status the group chose (for
/// actions nobody changed on the team page meanwhile, along the moves a status may make), and
/// when `carry`, one more "carried" for each action still open (the retro is done with it).
pub fn apply_review(
    doc: &mut impl Doc,
    ledger: &Ledger,
    reviewed: &[ReviewItem],
    carry: bool,
) -> Result<(), SchemaError> {
    for item in reviewed {
        let Some(action) = ledger.actions.get(&item.id) else { continue };
        // The group's word counts only if nobody changed the action on the team page since the
        // retro began (and only once: after it, the ledger no longer holds what the board saw).
        let untouched = action.status == item.was;
        let mut status = action.status;
        if untouched
            && (item.status != action.status || item.reason != action.reason)
            && action.status.may_become(item.status)
        {
            set_status(doc, &item.id, item.status, &item.reason)?;
            status = item.status;
        }
        if carry && status.is_open() {
            let obj = action_obj(doc, &item.id)?;
            autosurgeon::reconcile_prop(doc, &obj, "carried", action.carried + 1)?;
        }
    }
    Ok(())
}

/// Records a finished retro: its figures, its action items (new ones open; ones recorded
/// before keep their status), its causes, and its review of the older actions. Recording the
/// same retro again (a board that reopened and finished again, or re-sent after a restart)
/// updates it without counting its review twice. Action items beyond `max_actions` in the
/// ledger are left out, and counted on the retro.
pub fn record(doc: &mut impl Doc, ledger: &Ledger, finished: &Finished, max_actions: usize) -> Result<(), SchemaError> {
    let before = ledger.retros.get(&finished.board);
    let first_time = before.is_none_or(|r| r.done_at.is_none());
    // A board re-sending what it sent before a restart does not know when it finished (0).
    let done_at = before.and_then(|r| r.done_at).unwrap_or(finished.done_at.max(before.map_or(0, |r| r.created_at)));
    let mut room = max_actions.saturating_sub(ledger.actions.len());
    let mut left_out = 0;
    for action in &finished.actions {
        let id = ledger_key(&finished.board, &action.id);
        let known = ledger.actions.get(&id);
        if known.is_none() && room == 0 {
            left_out += 1;
            continue;
        }
        room = room.saturating_sub(usize::from(known.is_none()));
        let entry = LedgerAction {
            id: id.clone(),
            text: action.text.chars().take(MAX_ACTION_CHARS).collect(),
            owner: action.owner.chars().take(MAX_NAME_CHARS).collect(),
            due: action.due.clone(),
            board: finished.board.clone(),
            origin: action.origin.clone(),
            cause: action.cluster.as_deref().map(|c| ledger_key(&finished.board, c)),
            created_at: known.map_or(done_at, |k| k.created_at),
            status: known.map_or(Status::Open, |k| k.status),
            reason: known.map(|k| k.reason.clone()).unwrap_or_default(),
            done_at: known.and_then(|k| k.done_at),
            carried: known.map_or(0, |k| k.carried),
        };
        put(doc, "actions", &id, &entry)?;
    }
    for cause in &finished.causes {
        let cause = Cause { id: ledger_key(&finished.board, &cause.id), seen_at: done_at, ..cause.clone() };
        put(doc, "causes", &cause.id.clone(), &cause)?;
    }
    let retro = Retro {
        id: finished.board.clone(),
        title: finished.title.clone(),
        template: before.map(|r| r.template.clone()).unwrap_or_default(),
        created_at: before.map_or(done_at, |r| r.created_at),
        done_at: Some(done_at),
        writers: finished.writers.or(before.map(|r| r.writers)).unwrap_or(0),
        notes: finished.notes,
        roti: finished.roti.clone(),
        left_out,
    };
    put(doc, "retros", &retro.id.clone(), &retro)?;
    if first_time {
        apply_review(doc, ledger, &finished.reviewed, true)?;
    }
    Ok(())
}

/// Stores a confirmed recurrence.
pub fn link(doc: &mut impl Doc, link: &Link) -> Result<(), SchemaError> {
    put(doc, "links", &link.id, link)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_action_reads_back_as_it_was_written() {
        let mut doc = new_ledger_document(ActorId::random(), "Team").unwrap();
        let action = LedgerAction {
            id: "t-a".into(),
            text: "Fix it".into(),
            owner: "Ada".into(),
            due: "2026-12-01".into(),
            board: "b".into(),
            origin: "Deploys".into(),
            cause: Some("t-c".into()),
            created_at: 5,
            status: Status::Doing,
            reason: "under way".into(),
            done_at: None,
            carried: 2,
        };
        let mut tx = doc.transaction();
        put(&mut tx, "actions", "t-a", &action).unwrap();
        tx.commit();
        assert_eq!(Ledger::read(&doc).unwrap().actions.get("t-a"), Some(&action));
        let mut tx = doc.transaction();
        let obj = action_obj(&tx, "t-a").unwrap();
        autosurgeon::reconcile_prop(&mut tx, &obj, "status", "finished").unwrap();
        tx.commit();
        assert!(Ledger::read(&doc).is_err(), "an unknown status does not read");
    }

    /// A ledger with one open action `t-a`, as a new retro's review would take it.
    fn ledger_with_one_action() -> automerge::Automerge {
        let mut doc = new_ledger_document(ActorId::random(), "Team").unwrap();
        let action =
            LedgerAction { id: "t-a".into(), text: "Fix it".into(), board: "b0".into(), ..LedgerAction::default() };
        let mut tx = doc.transaction();
        put(&mut tx, "actions", "t-a", &action).unwrap();
        add_retro(&mut tx, &Retro { id: "b1".into(), title: "Sprint".into(), ..Retro::default() }).unwrap();
        tx.commit();
        doc
    }

    fn record_at(doc: &mut automerge::Automerge, finished: &Finished) {
        let ledger = Ledger::read(&*doc).unwrap();
        let mut tx = doc.transaction();
        record(&mut tx, &ledger, finished, 10_000).unwrap();
        tx.commit();
    }

    #[test]
    fn a_retro_recorded_again_changes_no_status_and_carries_nothing_twice() {
        let mut doc = ledger_with_one_action();
        let review = Ledger::read(&doc).unwrap().open_actions();
        assert_eq!(review[0].was, Status::Open);
        let finished = Finished {
            board: "b1".into(),
            title: "Sprint".into(),
            done_at: 1_000,
            writers: Some(3),
            notes: 4,
            roti: BTreeMap::new(),
            actions: Vec::new(),
            reviewed: vec![ReviewItem { status: Status::Doing, ..review[0].clone() }],
            causes: Vec::new(),
        };
        record_at(&mut doc, &finished);
        let ledger = Ledger::read(&doc).unwrap();
        assert_eq!((ledger.actions["t-a"].status, ledger.actions["t-a"].carried), (Status::Doing, 1));
        // The team page marks it done; the board says again what it said (it reloaded).
        let mut tx = doc.transaction();
        set_status(&mut tx, "t-a", Status::Done, "").unwrap();
        tx.commit();
        record_at(&mut doc, &Finished { writers: None, done_at: 0, ..finished });
        let ledger = Ledger::read(&doc).unwrap();
        assert_eq!((ledger.actions["t-a"].status, ledger.actions["t-a"].carried), (Status::Done, 1));
        assert_eq!((ledger.retros["b1"].done_at, ledger.retros["b1"].writers), (Some(1_000), 3), "kept from the first");
    }

    #[test]
    fn a_review_does_not_overrule_the_team_page() {
        let mut doc = ledger_with_one_action();
        let review = Ledger::read(&doc).unwrap().open_actions();
        // Marked done on the team page while the retro reviewed it as dropped.
        let mut tx = doc.transaction();
        set_status(&mut tx, "t-a", Status::Done, "").unwrap();
        tx.commit();
        let ledger = Ledger::read(&doc).unwrap();
        let mut tx = doc.transaction();
        apply_review(&mut tx, &ledger, &[ReviewItem { status: Status::Dropped, ..review[0].clone() }], true).unwrap();
        tx.commit();
        let after = Ledger::read(&doc).unwrap();
        assert_eq!((after.actions["t-a"].status, after.actions["t-a"].carried), (Status::Done, 0));
    }

    #[test]
    fn days_are_iso_dates() {
        assert_eq!(iso_day(0), "1970-01-01");
        assert_eq!(iso_day(1_796_083_200_000), "2026-12-01");
        assert_eq!(iso_day(951_782_400_000), "2000-02-29");
    }

    #[test]
    fn figures_count_each_retro_s_own_actions() {
        let mut ledger = Ledger::default();
        for (id, done_at) in [("b1", Some(1_000)), ("b2", Some(2_000)), ("b3", None)] {
            let retro = Retro { id: id.into(), title: id.into(), done_at, writers: 4, notes: 9, ..Retro::default() };
            ledger.retros.insert(id.into(), retro);
        }
        ledger.retros.get_mut("b1").unwrap().roti = [("4".to_owned(), 2), ("5".to_owned(), 1)].into_iter().collect();
        let day = 86_400_000;
        for (n, (status, due, done_at)) in [
            (Status::Done, "1970-01-03", Some(day)),
            (Status::Done, "1970-01-01", Some(5 * day)),
            (Status::Open, "", None),
            (Status::Dropped, "", None),
        ]
        .into_iter()
        .enumerate()
        {
            let id = format!("a{n}");
            let action = LedgerAction {
                id: id.clone(),
                board: "b1".into(),
                status,
                due: due.into(),
                done_at,
                ..LedgerAction::default()
            };
            ledger.actions.insert(id, action);
        }
        let figures = ledger.figures();
        assert_eq!(figures.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(), ["b1", "b2"], "finished ones, in order");
        let first = &figures[0];
        assert_eq!((first.actions, first.completion, first.on_time), (4, Some(0.5), Some(0.25)));
        assert!((first.roti.unwrap() - 13.0 / 3.0).abs() < 1e-9);
        assert_eq!((figures[1].actions, figures[1].completion, figures[1].roti), (0, None, None));
    }

    #[test]
    fn statuses_move_only_forward_or_back_to_open() {
        use Status::*;
        assert!(Open.may_become(Doing) && Open.may_become(Done) && Open.may_become(Dropped));
        assert!(Doing.may_become(Open) && Doing.may_become(Done) && Doing.may_become(Dropped));
        assert!(Done.may_become(Open) && Dropped.may_become(Open));
        assert!(!Done.may_become(Dropped) && !Dropped.may_become(Done) && !Done.may_become(Doing));
    }
}
