//! What the server tells a board's peers outside the document, in `ephemeral` messages: the
//! presence roster, and the refusal of a change. The payload is a CBOR map, as automerge-repo
//! expects of ephemeral data.
//!
//! Presence says who is online, how many notes each person is writing (during Write), who has
//! voted (never what) and who is ready. It never says who wrote which note. A connection gets the
//! whole roster once (`full`), then only the entries that changed: a client keeps the roster by
//! id and replaces the entries each update carries ([`merge_roster`]).

use minicbor::data::Type;
use minicbor::{Decoder, Encoder};

/// One person on the roster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PresenceEntry {
    /// The participant's public id (never written on notes).
    pub id: String,
    /// The display name they chose; may be empty.
    pub name: String,
    pub facilitator: bool,
    pub online: bool,
    /// How many notes they have written, during the Write phase; none otherwise.
    pub notes: Option<u32>,
    /// They placed dots or abstained (during Vote).
    pub voted: bool,
    pub ready: bool,
}

/// A message from the server about a board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// The roster, whole or what changed in it.
    Presence {
        /// The server's clock, so clients can show the shared timer without clock skew.
        now_ms: i64,
        /// The receiving participant's own id, if they joined.
        you: Option<String>,
        /// Every participant (`full`), or those whose entry changed since the last update.
        participants: Vec<PresenceEntry>,
        full: bool,
    },
    /// Changes the server refused. The client drops them and resyncs.
    Refused { reason: String, changes: Vec<[u8; 32]> },
}

/// Why a notice could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a Hindsight notice: {0}")]
pub struct NoticeError(String);

impl From<minicbor::decode::Error> for NoticeError {
    fn from(e: minicbor::decode::Error) -> Self {
        Self(e.to_string())
    }
}

type EncodeResult = Result<(), minicbor::encode::Error<std::convert::Infallible>>;

impl Notice {
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new(Vec::new());
        // Writing into a Vec cannot fail.
        let _ = self.write(&mut e);
        e.into_writer()
    }

    fn write(&self, e: &mut Encoder<Vec<u8>>) -> EncodeResult {
        match self {
            Notice::Presence { now_ms, you, participants, full } => {
                e.map(5)?;
                e.str("full")?.bool(*full)?;
                e.str("type")?.str("presence")?;
                e.str("now")?.i64(*now_ms)?;
                e.str("you")?;
                match you {
                    Some(you) => e.str(you)?,
                    None => e.null()?,
                };
                e.str("participants")?.array(participants.len() as u64)?;
                for p in participants {
                    e.map(7)?;
                    e.str("id")?.str(&p.id)?;
                    e.str("name")?.str(&p.name)?;
                    e.str("facilitator")?.bool(p.facilitator)?;
                    e.str("online")?.bool(p.online)?;
                    e.str("notes")?;
                    match p.notes {
                        Some(n) => e.u32(n)?,
                        None => e.null()?,
                    };
                    e.str("voted")?.bool(p.voted)?;
                    e.str("ready")?.bool(p.ready)?;
                }
            }
            Notice::Refused { reason, changes } => {
                e.map(3)?;
                e.str("type")?.str("refused")?;
                e.str("reason")?.str(reason)?;
                e.str("changes")?.array(changes.len() as u64)?;
                for hash in changes {
                    e.bytes(hash)?;
                }
            }
        }
        Ok(())
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, NoticeError> {
        let mut d = Decoder::new(bytes);
        let len = map_len(&mut d)?;
        let (mut kind, mut now, mut you, mut participants, mut reason, mut changes) =
            (None, 0, None, Vec::new(), String::new(), Vec::new());
        // A roster without the flag is whole, as the first servers sent it.
        let mut full = true;
        for _ in 0..len {
            match d.str()? {
                "type" => kind = Some(d.str()?.to_owned()),
                "now" => now = d.i64()?,
                "full" => full = d.bool()?,
                "you" => you = optional_str(&mut d)?,
                "reason" => reason = d.str()?.to_owned(),
                "participants" => {
                    let n = d.array()?.ok_or_else(|| NoticeError("indefinite array".into()))?;
                    for _ in 0..n {
                        participants.push(entry(&mut d)?);
                    }
                }
                "changes" => {
                    let n = d.array()?.ok_or_else(|| NoticeError("indefinite array".into()))?;
                    for _ in 0..n {
                        let hash = <[u8; 32]>::try_from(d.bytes()?).map_err(|_| NoticeError("bad hash".into()))?;
                        changes.push(hash);
                    }
                }
                _ => d.skip()?,
            }
        }
        match kind.as_deref() {
            Some("presence") => Ok(Notice::Presence { now_ms: now, you, participants, full }),
            Some("refused") => Ok(Notice::Refused { reason, changes }),
            other => Err(NoticeError(format!("unknown notice type {other:?}"))),
        }
    }
}

/// Applies a roster update to the roster a client keeps: a full roster replaces it, an update
/// replaces the entries it carries. Returns the roster in display order: online first, then by
/// name.
pub fn merge_roster(roster: &mut Vec<PresenceEntry>, update: Vec<PresenceEntry>, full: bool) {
    if full {
        roster.clear();
    }
    for entry in update {
        match roster.iter_mut().find(|e| e.id == entry.id) {
            Some(existing) => *existing = entry,
            None => roster.push(entry),
        }
    }
    roster.sort_by_cached_key(|p| (!p.online, p.name.to_lowercase(), p.id.clone()));
}

fn map_len(d: &mut Decoder<'_>) -> Result<u64, NoticeError> {
    d.map()?.ok_or_else(|| NoticeError("indefinite map".into()))
}

fn optional_str(d: &mut Decoder<'_>) -> Result<Option<String>, NoticeError> {
    if d.datatype()? == Type::Null {
        d.null()?;
        return Ok(None);
    }
    Ok(Some(d.str()?.to_owned()))
}

fn entry(d: &mut Decoder<'_>) -> Result<PresenceEntry, NoticeError> {
    let mut p = PresenceEntry::default();
    for _ in 0..map_len(d)? {
        match d.str()? {
            "id" => p.id = d.str()?.to_owned(),
            "name" => p.name = d.str()?.to_owned(),
            "facilitator" => p.facilitator = d.bool()?,
            "online" => p.online = d.bool()?,
            "notes" => {
                p.notes = if d.datatype()? == Type::Null {
                    d.null()?;
                    None
                } else {
                    Some(d.u32()?)
                }
            }
            "voted" => p.voted = d.bool()?,
            "ready" => p.ready = d.bool()?,
            _ => d.skip()?,
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_round_trip() {
        let presence = Notice::Presence {
            now_ms: 1_700_000_000_000,
            you: Some("p1".into()),
            full: true,
            participants: vec![
                PresenceEntry {
                    id: "p1".into(),
                    name: "Ada".into(),
                    facilitator: true,
                    online: true,
                    ..Default::default()
                },
                PresenceEntry { id: "p2".into(), notes: Some(3), voted: true, ready: true, ..Default::default() },
            ],
        };
        assert_eq!(Notice::decode(&presence.encode()), Ok(presence));
        let refused = Notice::Refused { reason: "no".into(), changes: vec![[7; 32]] };
        assert_eq!(Notice::decode(&refused.encode()), Ok(refused));
        assert!(Notice::decode(&[0xa0]).is_err());
        assert!(Notice::decode(b"garbage").is_err());
    }

    #[test]
    fn a_roster_update_replaces_the_entries_it_carries() {
        let entry = |id: &str, online| PresenceEntry { id: id.into(), name: id.into(), online, ..Default::default() };
        let mut roster = Vec::new();
        merge_roster(&mut roster, vec![entry("b", false), entry("a", true)], true);
        merge_roster(&mut roster, vec![entry("b", true)], false);
        assert_eq!(roster, [entry("a", true), entry("b", true)]);
        merge_roster(&mut roster, vec![entry("c", false)], true);
        assert_eq!(roster, [entry("c", false)]);
    }
}
