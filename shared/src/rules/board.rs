//! The board's rules: who may write which path in which phase, with which values, and what the
//! touched parts must satisfy once the change is merged.

use std::collections::HashSet;

use automerge::{Automerge, ScalarValue};

use super::value::{boolean, int, line, optional_string, string};
use super::{
    Made, PlacedOp, Refusal, Role, VIEWERS_DO_NOT_WRITE, Write, can_arrange, can_change_settings, can_edit_actions,
    can_edit_factors, can_group, refuse,
};
use crate::edit::is_iso_date;
use crate::factors::{ACTION_KINDS, FACTOR_KINDS, MAX_FACTOR_CHARS, MAX_FACTORS, MAX_LINKS};
use crate::ledger::{MAX_REASON_CHARS, Status};
use crate::schema::{
    self, ActionItem, Board, Cluster, MAX_ACTION_CHARS, MAX_CLUSTER_TITLE_CHARS, MAX_ITEMS_PER_BOARD, MAX_NAME_CHARS,
    MAX_RANK, MAX_TITLE_CHARS, MAX_VOTE_BUDGET, Note, Phase, SchemaError, Settings, Timer,
};
use crate::timeline::MAX_EVENTS_PER_BOARD;

/// A part of the board one change may touch, to read back once it is merged.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BoardPart {
    Title,
    Phase,
    Facilitator,
    CoFacilitator(String),
    Settings,
    Timer,
    Revealed(String),
    Focus,
    /// A published note (participants write only its `cluster`).
    Note(String),
    Cluster(String),
    ActionItem(String),
    Rank(String),
    Anchor(String),
    RotiShown,
    /// One of the team's actions under review.
    Review(String),
    /// A cause offered as come back, confirmed.
    Recurrence(String),
    /// The incident's facts and milestones.
    Incident,
    /// A timeline event (its star).
    Event(String),
    Factor(String),
    /// The "led to" links, read back whole to look for a cycle.
    Causal,
    Address(String),
    ActionKind(String),
    /// An event the facilitator took off the timeline for good.
    RemovedEvent(String),
}

/// The longest a timer may run: a day, in milliseconds.
const MAX_TIMER_MS: i64 = 24 * 3_600_000;

/// Checks every write of one change to the board before it is applied: the path against the
/// role and the phase, the value against what belongs there, and every object the change makes
/// for completeness. Returns the parts of the board the change touches.
///
/// `is_participant` says whether an id belongs to someone who joined.
pub fn check_board_writes(
    role: Role,
    board: &Board,
    ops: &[PlacedOp],
    is_participant: impl Fn(&str) -> bool,
) -> Result<Vec<BoardPart>, Refusal> {
    if role == Role::Viewer && !ops.is_empty() {
        return refuse(VIEWERS_DO_NOT_WRITE);
    }
    let phase = board.phase;
    let facilitator = role == Role::Facilitator;
    let only_facilitator = |what: &str| -> Result<(), Refusal> {
        if facilitator { Ok(()) } else { refuse(format!("only the facilitator changes {what}")) }
    };
    let in_phase = |allowed: bool, what: &str| -> Result<(), Refusal> {
        if allowed { Ok(()) } else { refuse(format!("{what} is not possible in the {} phase", phase.as_str())) }
    };
    let mut parts: Vec<BoardPart> = Vec::new();
    let mut made = Made::default();
    let mut new_clusters: HashSet<&str> = HashSet::new();
    let mut new_actions: HashSet<&str> = HashSet::new();
    let mut new_factors: HashSet<&str> = HashSet::new();
    let mut new_events: HashSet<&str> = HashSet::new();
    // The settings as this change leaves them, if nothing concurrent interferes.
    let mut settings = board.settings.clone();
    for op in ops {
        let keys = op.keys();
        if phase == Phase::Done
            && !matches!(keys.as_slice(), [Some("phase" | "roti_shown")] | [Some("recurrences"), _, Some("confirmed")])
        {
            return refuse("the retro is done: the board is read-only");
        }
        // The value a put writes; a settling delete keeps a value that was checked before.
        let put = match &op.write {
            Write::Put(v) => Some(Some(v)),
            Write::Settle => Some(None),
            _ => None,
        };
        // For the maps whose entries may also be deleted: the value written, `None` to delete.
        let entry = match &op.write {
            Write::Put(v) => Some(Some(v)),
            Write::Settle | Write::Delete => Some(None),
            _ => None,
        };
        let part = match (keys.as_slice(), put) {
            ([Some("title")], Some(v)) => {
                only_facilitator("the title")?;
                if let Some(v) = v {
                    line(v, "a title", MAX_TITLE_CHARS, false)?;
                }
                BoardPart::Title
            }
            ([Some("phase")], Some(v)) => {
                only_facilitator("the phase")?;
                if let Some(v) = v {
                    let name = string(v, "the phase", 16, false)?;
                    if !Phase::ALL.iter().any(|p| p.as_str() == name) {
                        return refuse(format!("there is no phase `{name}`"));
                    }
                    if name == Phase::Review.as_str() && phase != Phase::Review {
                        return refuse("a retro reviews its team's actions only as it begins");
                    }
                }
                BoardPart::Phase
            }
            ([Some("facilitator")], Some(v)) => {
                only_facilitator("who facilitates")?;
                if let Some(v) = v
                    && !matches!(v, ScalarValue::Str(id) if is_participant(id))
                {
                    return refuse("the facilitator role goes to someone who joined the board");
                }
                BoardPart::Facilitator
            }
            ([Some("co_facilitators"), Some(id)], _) if entry.is_some() => {
                only_facilitator("who facilitates")?;
                if let Some(Some(v)) = entry {
                    if !matches!(v, ScalarValue::Boolean(true)) {
                        return refuse("a co-facilitator is marked `true`; remove one by deleting the entry");
                    }
                    if !is_participant(id) {
                        return refuse("the facilitator role goes to someone who joined the board");
                    }
                }
                BoardPart::CoFacilitator((*id).to_owned())
            }
            ([Some("ranks"), Some(note)], _) if entry.is_some() => {
                in_phase(can_arrange(phase), "arranging notes")?;
                if let Some(Some(v)) = entry {
                    int(v, "a note's rank", -MAX_RANK..=MAX_RANK)?;
                    if !board.notes.contains_key(*note) {
                        return refuse(format!("there is no note `{note}` to arrange"));
                    }
                }
                BoardPart::Rank((*note).to_owned())
            }
            ([Some("anchors"), Some(cluster)], _) if entry.is_some() => {
                in_phase(can_group(phase), "grouping")?;
                if let Some(Some(v)) = entry {
                    let note = string(v, "a cluster's place", usize::MAX, false)?;
                    if !board.notes.contains_key(note) {
                        return refuse(format!("there is no note `{note}` for a cluster to sit at"));
                    }
                    if !board.clusters.contains_key(*cluster) && !new_clusters.contains(cluster) {
                        return refuse(format!("there is no cluster `{cluster}`"));
                    }
                }
                BoardPart::Anchor((*cluster).to_owned())
            }
            ([Some("settings"), Some(field @ ("anonymous" | "vote_budget" | "max_votes_per_item"))], Some(v)) => {
                only_facilitator("the settings")?;
                in_phase(can_change_settings(phase), "changing the settings")?;
                if let Some(v) = v {
                    match *field {
                        "anonymous" => settings.anonymous = boolean(v, "anonymity")?,
                        "vote_budget" => settings.vote_budget = int(v, "the vote budget", 1..=MAX_VOTE_BUDGET)?,
                        _ => settings.max_votes_per_item = int(v, "the most dots per item", 1..=MAX_VOTE_BUDGET)?,
                    }
                }
                BoardPart::Settings
            }
            ([Some("timer"), Some(field @ ("ends_at" | "duration_ms"))], Some(v)) => {
                only_facilitator("the timer")?;
                if let Some(v) = v {
                    match (*field, v) {
                        ("ends_at", ScalarValue::Null) => {}
                        ("ends_at", v) => drop(int(v, "a timer's end", 0..=i64::MAX)?),
                        (_, v) => drop(int(v, "a timer's length", 0..=MAX_TIMER_MS)?),
                    }
                }
                BoardPart::Timer
            }
            ([Some("revealed"), Some(column)], Some(v)) => {
                only_facilitator("what is revealed")?;
                in_phase(phase == Phase::Reveal, "revealing")?;
                if v.is_some_and(|v| !matches!(v, ScalarValue::Boolean(true))) {
                    return refuse("revealed notes cannot be hidden again");
                }
                if !board.columns.iter().any(|c| c.id == *column) {
                    return refuse(format!("there is no column `{column}` to reveal"));
                }
                BoardPart::Revealed((*column).to_owned())
            }
            ([Some("focus")], Some(v)) => {
                only_facilitator("the focus")?;
                in_phase(can_edit_actions(phase), "focusing an item")?;
                if let Some(v) = v
                    && let Some(item) = optional_string(v, "the focus", usize::MAX)?
                    && !board.is_vote_item(item)
                {
                    return refuse("only a cluster or a lone note can be focused");
                }
                BoardPart::Focus
            }
            ([Some("notes"), Some(note), Some("cluster")], Some(v)) if op.made_in.is_none() => {
                in_phase(can_group(phase), "grouping")?;
                if let Some(v) = v
                    && let Some(cluster) = optional_string(v, "a note's cluster", usize::MAX)?
                    && !board.clusters.contains_key(cluster)
                    && !new_clusters.contains(cluster)
                {
                    return refuse(format!("there is no cluster `{cluster}`"));
                }
                BoardPart::Note((*note).to_owned())
            }
            ([Some("clusters"), Some(key)], None) if op.write == Write::MakeMap => {
                in_phase(can_group(phase), "grouping")?;
                if board.notes.contains_key(*key) {
                    return refuse("a cluster's id may not be a note's");
                }
                made.object(op.index, "cluster");
                if !board.clusters.contains_key(*key) && new_clusters.insert(key) {
                    check_room(board.clusters.len() + new_clusters.len())?;
                }
                BoardPart::Cluster((*key).to_owned())
            }
            ([Some("clusters"), Some(key), Some(field @ ("id" | "title"))], Some(v)) => {
                in_phase(can_group(phase), "grouping")?;
                if let Some(v) = v {
                    if *field == "id" {
                        same_id(v, key, "a cluster's")?;
                    } else {
                        line(v, "a cluster title", MAX_CLUSTER_TITLE_CHARS, true)?;
                    }
                }
                if let Some(object) = op.made_in {
                    made.field(object, field);
                }
                BoardPart::Cluster((*key).to_owned())
            }
            ([Some("action_items"), Some(key)], None) if matches!(op.write, Write::MakeMap | Write::Delete) => {
                in_phase(can_edit_actions(phase), "editing action items")?;
                if op.write == Write::MakeMap {
                    made.object(op.index, "action item");
                    if !board.action_items.contains_key(*key) && new_actions.insert(key) {
                        check_room(board.action_items.len() + new_actions.len())?;
                    }
                }
                BoardPart::ActionItem((*key).to_owned())
            }
            (
                [Some("action_items"), Some(key), Some(field @ ("id" | "text" | "owner" | "due" | "cluster"))],
                Some(v),
            ) => {
                in_phase(can_edit_actions(phase), "editing action items")?;
                if let Some(v) = v {
                    check_action_field(board, &new_clusters, key, field, v)?;
                }
                if let Some(object) = op.made_in {
                    made.field(object, field);
                }
                BoardPart::ActionItem((*key).to_owned())
            }
            ([Some("roti_shown")], Some(v)) => {
                only_facilitator("whether the ROTI results show")?;
                in_phase(phase == Phase::Done, "showing the ROTI results")?;
                if v.is_some_and(|v| !matches!(v, ScalarValue::Boolean(true))) {
                    return refuse("the ROTI results cannot be hidden again");
                }
                BoardPart::RotiShown
            }
            ([Some("review"), Some(key), Some(field @ ("status" | "reason"))], Some(v)) => {
                in_phase(phase == Phase::Review, "reviewing the team's actions")?;
                if !board.review.contains_key(*key) {
                    return refuse("there is no such action to review");
                }
                match (field, v) {
                    (_, None) => {}
                    (&"status", Some(v)) => {
                        let status = string(v, "a status", 16, false)?;
                        if Status::parse(status).is_none() {
                            return refuse(format!("there is no status `{status}`: open, doing, done or dropped"));
                        }
                    }
                    (_, Some(v)) => drop(line(v, "a reason", MAX_REASON_CHARS, true)?),
                }
                BoardPart::Review((*key).to_owned())
            }
            ([Some("review"), ..], _) => return refuse("only the server adds the team's actions to review"),
            ([Some("recurrences"), Some(key), Some("confirmed")], Some(v)) => {
                only_facilitator("which causes came back")?;
                match board.recurrences.get(*key) {
                    None => return refuse("there is no such cause to confirm"),
                    Some(offer) if offer.confirmed => return refuse("this cause is confirmed already"),
                    Some(_) => {}
                }
                if v.is_some_and(|v| !matches!(v, ScalarValue::Boolean(true))) {
                    return refuse("a confirmed cause stays confirmed");
                }
                BoardPart::Recurrence((*key).to_owned())
            }
            ([Some("recurrences"), ..], _) => return refuse("only the server offers causes that came back"),
            ([Some("incident"), Some(field)], Some(v)) => {
                if *field == "on" {
                    only_facilitator("whether the incident's facts show")?;
                    if let Some(v) = v {
                        boolean(v, "whether the incident's facts show")?;
                    }
                } else {
                    if !board.incident.on {
                        return refuse("this board keeps no incident facts: the facilitator turns them on");
                    }
                    if let Some(v) = v {
                        check_incident_field(field, v)?;
                    }
                }
                BoardPart::Incident
            }
            ([Some("incident"), ..], _) => return refuse("the incident's facts are plain fields of `incident`"),
            ([Some("timeline"), Some(id), Some("starred")], Some(v)) => {
                if !board.timeline.contains_key(*id) && op.made_in.is_none() {
                    return refuse("there is no such event on the timeline");
                }
                if let Some(v) = v {
                    boolean(v, "a star")?;
                }
                BoardPart::Event((*id).to_owned())
            }
            ([Some("factors"), Some(key)], None) if matches!(op.write, Write::MakeMap | Write::Delete) => {
                in_phase(can_edit_factors(phase), "working on the factors")?;
                if op.write == Write::MakeMap {
                    made.object(op.index, "factor");
                    if !board.factors.contains_key(*key)
                        && new_factors.insert(key)
                        && board.factors.len() + new_factors.len() > MAX_FACTORS
                    {
                        return refuse(format!("a board holds at most {MAX_FACTORS} factors"));
                    }
                }
                BoardPart::Factor((*key).to_owned())
            }
            (
                [Some("factors"), Some(key), Some(field @ ("id" | "text" | "kind" | "cluster" | "event" | "accepted"))],
                Some(v),
            ) => {
                in_phase(can_edit_factors(phase), "working on the factors")?;
                if let Some(v) = v {
                    check_factor_field(board, &new_clusters, key, field, v)?;
                }
                if let Some(object) = op.made_in {
                    made.field(object, field);
                }
                BoardPart::Factor((*key).to_owned())
            }
            ([Some("causal"), Some(key)], _) if entry.is_some() => {
                in_phase(can_edit_factors(phase), "linking factors")?;
                let Some((from, to)) = crate::factors::parse_link(key) else {
                    return refuse("a link is keyed `<factor>><factor>`");
                };
                if let Some(Some(v)) = entry {
                    if !matches!(v, ScalarValue::Boolean(true)) {
                        return refuse("a link is `true`; remove one by deleting it");
                    }
                    let known = |id: &str| board.factors.contains_key(id) || new_factors.contains(id);
                    if !known(from) || !known(to) {
                        return refuse("a link joins two factors of this board");
                    }
                    if from == to {
                        return refuse("a factor does not lead to itself");
                    }
                    if !board.causal.contains_key(*key) && board.causal.len() >= MAX_LINKS {
                        return refuse(format!("a board holds at most {MAX_LINKS} links between factors"));
                    }
                }
                BoardPart::Causal
            }
            ([Some("addresses"), Some(action)], _) if entry.is_some() => {
                in_phase(can_edit_actions(phase), "editing action items")?;
                if let Some(Some(v)) = entry {
                    let factor = string(v, "a factor", 64, false)?;
                    if !board.factors.contains_key(factor) {
                        return refuse("an action item addresses a factor of this board");
                    }
                    if !board.action_items.contains_key(*action) && !new_actions.contains(action) {
                        return refuse("only an action item of this board addresses a factor");
                    }
                }
                BoardPart::Address((*action).to_owned())
            }
            ([Some("action_kinds"), Some(action)], _) if entry.is_some() => {
                in_phase(can_edit_actions(phase), "editing action items")?;
                if let Some(Some(v)) = entry {
                    let kind = string(v, "an action's type", 16, false)?;
                    if !ACTION_KINDS.contains(&kind) {
                        return refuse(format!("an action item's type is one of: {}", ACTION_KINDS.join(", ")));
                    }
                }
                BoardPart::ActionKind((*action).to_owned())
            }
            // The facilitator may add an event straight to the board (under their role, not
            // anonymously: everyone's own events go through their desks) and remove any event,
            // a noisy alert say. An event of the board is not edited in place: the server keeps
            // those from desks in line with their authors' desks.
            ([Some("timeline"), Some(id)], None) if matches!(op.write, Write::MakeMap | Write::Delete) => {
                only_facilitator("the board's own timeline events")?;
                in_phase(phase < Phase::Done, "changing the timeline")?;
                if op.write == Write::MakeMap {
                    if board.timeline.contains_key(*id) {
                        return refuse("that event is on the timeline already");
                    }
                    made.object(op.index, "event");
                    if new_events.insert(id) && board.timeline.len() + new_events.len() > MAX_EVENTS_PER_BOARD {
                        return refuse(format!("a timeline holds at most {MAX_EVENTS_PER_BOARD} events"));
                    }
                }
                BoardPart::Event((*id).to_owned())
            }
            ([Some("timeline"), Some(id), Some(field @ ("id" | "at" | "text" | "kind" | "source"))], Some(v))
                if op.made_in.is_some() =>
            {
                only_facilitator("the board's own timeline events")?;
                if let Some(v) = v {
                    super::desk::check_event_field(id, field, v)?;
                }
                if let Some(object) = op.made_in {
                    made.field(object, field);
                }
                BoardPart::Event((*id).to_owned())
            }
            ([Some("timeline"), ..], _) => {
                return refuse("the server publishes the timeline: write what you saw on your desk");
            }
            ([Some("removed_events"), Some(id)], Some(v)) => {
                only_facilitator("which events stay off the timeline")?;
                in_phase(phase < Phase::Done, "changing the timeline")?;
                if !v.is_some_and(|v| matches!(v, ScalarValue::Boolean(true))) {
                    return refuse("an event taken off the timeline stays off");
                }
                BoardPart::RemovedEvent((*id).to_owned())
            }
            ([Some("team"), ..], _) => {
                return refuse("a board's team is set when the board is made, and never changes");
            }
            ([Some("roti"), ..], _) => return refuse("only the server publishes the ROTI results"),
            ([Some("notes"), ..], _) => return refuse("notes are published by the server; write them on your desk"),
            ([Some("vote_totals"), ..], _) => return refuse("only the server counts votes"),
            _ => return refuse(format!("this change writes where no one may write ({})", describe(&keys))),
        };
        if !parts.contains(&part) {
            parts.push(part);
        }
    }
    made.check(|what| match what {
        "cluster" => &["id", "title"],
        "factor" => &["id", "text", "kind"],
        "event" => &["id", "at", "text", "kind"],
        _ => &["id", "text", "owner", "due", "cluster"],
    })?;
    check_settings(&board.settings, &settings, board)?;
    Ok(parts)
}

/// Settings must agree with each other, and anonymity is fixed once notes are out.
fn check_settings(before: &Settings, after: &Settings, board: &Board) -> Result<(), Refusal> {
    if after == before {
        return Ok(());
    }
    if !(1..=after.vote_budget).contains(&after.max_votes_per_item) {
        return refuse("the most dots per item is 1 to the vote budget");
    }
    if after.anonymous != before.anonymous && !board.notes.is_empty() {
        return refuse("anonymity cannot change once notes are revealed");
    }
    Ok(())
}

fn check_room(count: usize) -> Result<(), Refusal> {
    if count > MAX_ITEMS_PER_BOARD {
        return refuse(format!("a board holds at most {MAX_ITEMS_PER_BOARD} clusters and action items"));
    }
    Ok(())
}

fn same_id(v: &ScalarValue, key: &str, what: &str) -> Result<(), Refusal> {
    match v {
        ScalarValue::Str(id) if id.as_str() == key => Ok(()),
        _ => refuse(format!("{what} id is its key")),
    }
}

fn check_action_field(
    board: &Board,
    new_clusters: &HashSet<&str>,
    key: &str,
    field: &str,
    v: &ScalarValue,
) -> Result<(), Refusal> {
    match field {
        "id" => same_id(v, key, "an action item's"),
        "text" => string(v, "an action item", MAX_ACTION_CHARS, false).map(drop),
        "owner" => line(v, "an owner's name", MAX_NAME_CHARS, true).map(drop),
        "due" => {
            let due = string(v, "a due date", 10, true)?;
            if !due.is_empty() && !is_iso_date(due) {
                return refuse("a due date is written YYYY-MM-DD");
            }
            Ok(())
        }
        _ => match optional_string(v, "what an action addresses", usize::MAX)? {
            Some(target)
                if !board.clusters.contains_key(target)
                    && !new_clusters.contains(target)
                    && !board.notes.contains_key(target) =>
            {
                refuse("an action item addresses a cluster or a note of this board")
            }
            _ => Ok(()),
        },
    }
}

/// One field of a contributing factor.
fn check_factor_field(
    board: &Board,
    new_clusters: &HashSet<&str>,
    key: &str,
    field: &str,
    v: &ScalarValue,
) -> Result<(), Refusal> {
    match field {
        "id" => same_id(v, key, "a factor's"),
        "text" => string(v, "a factor", MAX_FACTOR_CHARS, false).map(drop),
        "kind" => {
            let kind = string(v, "a factor's kind", 16, false)?;
            if FACTOR_KINDS.contains(&kind) {
                Ok(())
            } else {
                refuse(format!("a factor is one of: {}", FACTOR_KINDS.join(", ")))
            }
        }
        "cluster" => match optional_string(v, "a factor's cluster", 64)? {
            Some(c) if !board.clusters.contains_key(c) && !new_clusters.contains(c) => {
                refuse("a factor points at a cluster of this board")
            }
            _ => Ok(()),
        },
        "event" => match optional_string(v, "a factor's event", 64)? {
            Some(e) if !board.timeline.contains_key(e) => refuse("a factor points at an event of the timeline"),
            _ => Ok(()),
        },
        _ => boolean(v, "an accepted risk").map(drop),
    }
}

/// One of the incident's fields, as a client may write it.
fn check_incident_field(field: &str, v: &ScalarValue) -> Result<(), Refusal> {
    use crate::incident::{
        self, MAX_IMPACT_CHARS, MAX_LINKS_CHARS, MAX_LIST_CHARS, MAX_SEVERITY_CHARS, MAX_ZONE_CHARS, Milestone,
    };
    match field {
        "severity" => line(v, "a severity", MAX_SEVERITY_CHARS, true).map(drop),
        "impact" => string(v, "an impact summary", MAX_IMPACT_CHARS, true).map(drop),
        "services" => line(v, "the affected services", MAX_LIST_CHARS, true).map(drop),
        "tags" => line(v, "the tags", MAX_LIST_CHARS, true).map(drop),
        "links" => {
            let links = string(v, "the links", MAX_LINKS_CHARS, true)?;
            match links
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with("https://") && !l.starts_with("http://"))
            {
                Some(bad) => refuse(format!(
                    "a link is an http:// or https:// address, one per line (not `{}`)",
                    bad.chars().take(40).collect::<String>()
                )),
                None => Ok(()),
            }
        }
        "zone" => {
            let zone = line(v, "a time zone", MAX_ZONE_CHARS, true)?;
            if zone.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '+')) {
                Ok(())
            } else {
                refuse("a time zone is an IANA name, like Europe/Berlin")
            }
        }
        field => match Milestone::parse(field) {
            Some(milestone) => {
                let time = string(v, "a milestone", 40, true)?;
                if time.is_empty() || incident::parse_time(time).is_some() {
                    Ok(())
                } else {
                    refuse(format!(
                        "{} is an RFC 3339 time with its offset, like 2026-11-30T14:02:00+01:00",
                        milestone.title().to_lowercase()
                    ))
                }
            }
            None => refuse(format!("an incident has no `{field}`")),
        },
    }
}

fn describe(keys: &[Option<&str>]) -> String {
    let parts: Vec<&str> = keys.iter().map(|k| k.unwrap_or("[]")).collect();
    parts.join("/")
}

/// Reads back the parts a change touched, once it is applied to `doc`, and checks what depends
/// on the merged state: settings that must agree with each other and with the notes already out.
/// On success `board` holds them; on refusal it is unchanged (and the caller rolls `doc` back).
pub fn settle_board(doc: &Automerge, board: &mut Board, parts: &[BoardPart]) -> Result<(), Refusal> {
    let malformed = |e: SchemaError| Refusal(format!("the board would be malformed: {e}"));
    let mut read = Vec::with_capacity(parts.len());
    for part in parts {
        read.push(read_part(doc, part).map_err(malformed)?);
    }
    for value in &read {
        if let Read::Settings(after) = value {
            check_settings(&board.settings, after, board)?;
        }
        if let Read::Causal(after) = value {
            // The factors as the change leaves them, those it makes included.
            let mut factors = board.factors.clone();
            for made in &read {
                if let Read::Factor(id, Some(factor)) = made {
                    factors.insert(id.clone(), factor.clone());
                }
            }
            let mut merged = Board { factors, ..Board::default() };
            merged.causal = after.clone();
            let links = crate::factors::links(&merged);
            if let Some(cycle) = crate::factors::find_cycle(&links) {
                let names: Vec<String> = cycle
                    .iter()
                    .map(|id| board.factors.get(*id).map_or((*id).to_owned(), |f| f.text.chars().take(40).collect()))
                    .collect();
                return refuse(format!("factors may not lead in a circle: {}", names.join(" → ")));
            }
        }
        // Checked on the merged state: two people setting two milestones at once can disorder
        // them together.
        if let Read::Incident(after) = value
            && let Some(why) = after.misordered()
        {
            return refuse(format!("the milestones are out of order: {why}"));
        }
    }
    for value in read {
        value.store(board);
    }
    Ok(())
}

/// A part as read back from the document.
enum Read {
    Title(String),
    Phase(Phase),
    Facilitator(Option<String>),
    CoFacilitator(String, Option<bool>),
    Settings(Settings),
    Timer(Timer),
    Revealed(String, Option<bool>),
    Focus(Option<String>),
    Note(String, Option<Note>),
    Cluster(String, Option<Cluster>),
    ActionItem(String, Option<ActionItem>),
    Rank(String, Option<i64>),
    Anchor(String, Option<String>),
    RotiShown(bool),
    Review(String, Option<schema::ReviewItem>),
    Recurrence(String, Option<schema::Recurrence>),
    Incident(crate::incident::Incident),
    Event(String, Option<crate::timeline::Event>),
    Factor(String, Option<crate::factors::Factor>),
    Causal(std::collections::BTreeMap<String, bool>),
    Address(String, Option<String>),
    ActionKind(String, Option<String>),
    RemovedEvent(String, Option<bool>),
}

impl Read {
    fn store(self, board: &mut Board) {
        fn put<T>(map: &mut std::collections::BTreeMap<String, T>, key: String, value: Option<T>) {
            match value {
                Some(value) => map.insert(key, value),
                None => map.remove(&key),
            };
        }
        match self {
            Read::Title(title) => board.title = title,
            Read::Phase(phase) => board.phase = phase,
            Read::Facilitator(id) => board.facilitator = id,
            Read::CoFacilitator(id, on) => put(&mut board.co_facilitators, id, on),
            Read::Settings(settings) => board.settings = settings,
            Read::Timer(timer) => board.timer = timer,
            Read::Revealed(column, revealed) => put(&mut board.revealed, column, revealed),
            Read::Focus(focus) => board.focus = focus,
            Read::Note(id, note) => put(&mut board.notes, id, note),
            Read::Cluster(id, cluster) => put(&mut board.clusters, id, cluster),
            Read::ActionItem(id, item) => put(&mut board.action_items, id, item),
            Read::Rank(id, rank) => put(&mut board.ranks, id, rank),
            Read::Anchor(id, note) => put(&mut board.anchors, id, note),
            Read::RotiShown(shown) => board.roti_shown = shown,
            Read::Review(id, item) => put(&mut board.review, id, item),
            Read::Recurrence(id, item) => put(&mut board.recurrences, id, item),
            Read::Incident(incident) => board.incident = incident,
            Read::Event(id, event) => put(&mut board.timeline, id, event),
            Read::Factor(id, factor) => put(&mut board.factors, id, factor),
            Read::Causal(links) => board.causal = links,
            Read::Address(id, factor) => put(&mut board.addresses, id, factor),
            Read::ActionKind(id, kind) => put(&mut board.action_kinds, id, kind),
            Read::RemovedEvent(id, removed) => put(&mut board.removed_events, id, removed),
        }
    }
}

fn read_part(doc: &Automerge, part: &BoardPart) -> Result<Read, SchemaError> {
    use autosurgeon::hydrate_prop;
    let root = automerge::ROOT;
    Ok(match part {
        BoardPart::Title => Read::Title(hydrate_prop(doc, root, "title")?),
        BoardPart::Phase => Read::Phase(hydrate_prop(doc, root, "phase")?),
        BoardPart::Facilitator => Read::Facilitator(hydrate_prop(doc, root, "facilitator")?),
        BoardPart::CoFacilitator(id) => {
            Read::CoFacilitator(id.clone(), schema::read_entry(doc, "co_facilitators", id)?)
        }
        BoardPart::Settings => Read::Settings(hydrate_prop(doc, root, "settings")?),
        BoardPart::Timer => Read::Timer(hydrate_prop(doc, root, "timer")?),
        BoardPart::Revealed(column) => Read::Revealed(column.clone(), schema::read_entry(doc, "revealed", column)?),
        BoardPart::Focus => Read::Focus(hydrate_prop(doc, root, "focus")?),
        BoardPart::Note(id) => Read::Note(id.clone(), schema::read_entry(doc, "notes", id)?),
        BoardPart::Cluster(id) => Read::Cluster(id.clone(), schema::read_entry(doc, "clusters", id)?),
        BoardPart::ActionItem(id) => Read::ActionItem(id.clone(), schema::read_entry(doc, "action_items", id)?),
        BoardPart::Rank(id) => Read::Rank(id.clone(), schema::read_entry(doc, "ranks", id)?),
        BoardPart::Anchor(id) => Read::Anchor(id.clone(), schema::read_entry(doc, "anchors", id)?),
        BoardPart::Review(id) => Read::Review(id.clone(), schema::read_entry(doc, "review", id)?),
        BoardPart::Recurrence(id) => Read::Recurrence(id.clone(), schema::read_entry(doc, "recurrences", id)?),
        BoardPart::Incident => Read::Incident(hydrate_prop(doc, root, "incident")?),
        BoardPart::Event(id) => Read::Event(id.clone(), schema::read_entry(doc, "timeline", id)?),
        BoardPart::Factor(id) => Read::Factor(id.clone(), schema::read_entry(doc, "factors", id)?),
        BoardPart::Causal => Read::Causal(hydrate_prop(doc, root, "causal")?),
        BoardPart::Address(id) => Read::Address(id.clone(), schema::read_entry(doc, "addresses", id)?),
        BoardPart::ActionKind(id) => Read::ActionKind(id.clone(), schema::read_entry(doc, "action_kinds", id)?),
        BoardPart::RemovedEvent(id) => Read::RemovedEvent(id.clone(), schema::read_entry(doc, "removed_events", id)?),
        BoardPart::RotiShown => {
            Read::RotiShown(hydrate_prop::<_, Option<bool>, _, _>(doc, root, "roti_shown")?.unwrap_or(false))
        }
    })
}
