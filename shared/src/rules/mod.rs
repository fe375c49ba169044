//! The rules of a retrospective: what each role may change in each phase, and what a valid board
//! or desk looks like. The server checks every incoming change against them before it accepts or
//! relays it; the client asks the same functions what to offer.
//!
//! A change is checked in two steps, and most of the work happens before it touches a document:
//!
//! 1. **Before it is applied** ([`place`], then [`check_board_writes`] / [`check_desk_writes`]):
//!    every operation is placed at its path in the document as it stands, and matched against
//!    the table of who may write where in which phase, with the value it writes (its type, its
//!    length, what it refers to). Objects the change creates must be complete. A forbidden write
//!    is refused here even when it would lose a conflict and change nothing visible, and nothing
//!    was applied, so nothing has to be undone.
//! 2. **After it is applied** ([`settle_board`] / [`settle_desk`]): only the parts the change
//!    touched are read back into the typed copy, and the few rules that depend on the merged
//!    state (a vote budget spread over several keys, settings that must agree with each other)
//!    are checked there. A change refused here is rolled back by the caller.
//!
//! The cost of checking a change is therefore the cost of its own operations and of the parts
//! it touched, never the cost of the whole board.

mod board;
mod desk;
mod ledger;
mod place;
#[cfg(test)]
mod tests;

pub use board::{BoardPart, check_board_writes, settle_board};
pub use desk::{DeskPart, check_desk_writes, settle_desk};
pub use ledger::{check_ledger_writes, settle_ledger};
pub use place::{PlacedOp, Seg, Write, place};

use crate::schema::Phase;

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

pub(crate) fn refuse<T>(reason: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal(reason.into()))
}

/// What a viewer is told when it tries to write.
pub const VIEWERS_DO_NOT_WRITE: &str = "join the board to make changes";

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

/// The group arranges the revealed notes and clusters (drag to reorder, sort) until the
/// discussion ends.
pub fn can_arrange(phase: Phase) -> bool {
    matches!(phase, Phase::Reveal | Phase::Group | Phase::Vote | Phase::Discuss)
}

/// Contributing factors are worked out from grouping until the actions are agreed.
pub fn can_edit_factors(phase: Phase) -> bool {
    matches!(phase, Phase::Group | Phase::Vote | Phase::Discuss | Phase::Actions)
}

pub fn can_edit_actions(phase: Phase) -> bool {
    matches!(phase, Phase::Discuss | Phase::Actions)
}

/// Vote settings and anonymity are settled before anyone votes.
pub fn can_change_settings(phase: Phase) -> bool {
    phase <= Phase::Group
}

// ---- Values ------------------------------------------------------------------------------------

/// What a value must be, for the refusal's sentence and the check.
pub(crate) mod value {
    use automerge::ScalarValue;

    use super::{Refusal, refuse};

    /// Hindsight's strings are scalar strings. Automerge 3's JavaScript API writes a string as
    /// a collaborative text object unless it is wrapped in `ImmutableString`; such text objects
    /// are refused with this sentence (see README, "Stock automerge-repo clients").
    pub const TEXT_OBJECTS: &str = "strings are plain strings here: write them as scalar strings (Automerge 3 JS: \
                                    `new ImmutableString(...)`), not as text objects";

    /// A string of at most `max` characters, which `blank_ok` says may be blank.
    pub fn string<'a>(v: &'a ScalarValue, what: &str, max: usize, blank_ok: bool) -> Result<&'a str, Refusal> {
        let ScalarValue::Str(s) = v else { return refuse(format!("{what} is a string")) };
        if s.chars().count() > max {
            return refuse(format!("{what} has at most {max} characters"));
        }
        if !blank_ok && s.trim().is_empty() {
            return refuse(format!("{what} needs some text"));
        }
        Ok(s.as_str())
    }

    /// A one-line string (a title, a name): a [`string`] without control characters or the
    /// characters that reorder or hide text.
    pub fn line<'a>(v: &'a ScalarValue, what: &str, max: usize, blank_ok: bool) -> Result<&'a str, Refusal> {
        let s = string(v, what, max, blank_ok)?;
        if s.chars().any(crate::schema::is_hidden_or_control) {
            return refuse(format!("{what} may not hold control or text-direction characters"));
        }
        Ok(s)
    }

    /// A string, or null.
    pub fn optional_string<'a>(v: &'a ScalarValue, what: &str, max: usize) -> Result<Option<&'a str>, Refusal> {
        match v {
            ScalarValue::Null => Ok(None),
            v => string(v, what, max, true).map(Some),
        }
    }

    /// An integer in `range`.
    pub fn int(v: &ScalarValue, what: &str, range: std::ops::RangeInclusive<i64>) -> Result<i64, Refusal> {
        match v {
            ScalarValue::Int(i) if range.contains(i) => Ok(*i),
            _ => refuse(format!("{what} is a whole number from {} to {}", range.start(), range.end())),
        }
    }

    pub fn boolean(v: &ScalarValue, what: &str) -> Result<bool, Refusal> {
        match v {
            ScalarValue::Boolean(b) => Ok(*b),
            _ => refuse(format!("{what} is true or false")),
        }
    }
}

/// Keeps the fields written into each object a change made, to check it made them whole.
#[derive(Debug, Default)]
pub(crate) struct Made<'a> {
    /// The made object (the index of the op that made it), what it is, and its fields.
    objects: Vec<(usize, &'static str, Vec<&'a str>)>,
}

impl<'a> Made<'a> {
    pub(crate) fn object(&mut self, op: usize, what: &'static str) {
        self.objects.push((op, what, Vec::new()));
    }

    pub(crate) fn field(&mut self, op: usize, field: &'a str) {
        if let Some((_, _, fields)) = self.objects.iter_mut().find(|(made, _, _)| *made == op) {
            fields.push(field);
        }
    }

    /// Every object made must have been given `required(what)`'s fields.
    pub(crate) fn check(&self, required: impl Fn(&str) -> &'static [&'static str]) -> Result<(), Refusal> {
        for (_, what, fields) in &self.objects {
            if let Some(missing) = required(what).iter().find(|f| !fields.contains(f)) {
                return refuse(format!("a new {what} needs its `{missing}`"));
            }
        }
        Ok(())
    }
}
