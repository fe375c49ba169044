//! Newtype identifiers: documents (boards), peers, notes, columns, and the random source behind them.
//!
//! A [`DocumentId`] is the automerge-repo document id: 16 random bytes written as bs58check, so a
//! board link is both unguessable (128 bits) and openable by any automerge-repo implementation.
//!
//! Invariant: no secret in any log line: document ids are capabilities and appear in logs only as
//! [`DocumentId::tag`].

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// Fills a fixed-size array from the platform's secure random source.
///
/// On wasm32 this is the browser's `crypto.getRandomValues`, natively the OS generator. Failure
/// of the OS generator is not something a program can recover from, so it aborts loudly.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut bytes).expect("the platform's secure random source failed");
    bytes
}

/// A random token of `N` bytes written as plain base58: used for peer ids, note ids and secrets.
pub fn random_token<const N: usize>() -> String {
    bs58::encode(random_bytes::<N>()).into_string()
}

/// The id of an automerge-repo document. Every board is one document, and the board id is its
/// document id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DocumentId([u8; 16]);

impl DocumentId {
    /// A fresh, unguessable document id.
    pub fn random() -> Self {
        Self(random_bytes())
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// The `automerge:` URL that automerge-repo implementations accept in `find`.
    pub fn automerge_url(&self) -> String {
        format!("automerge:{self}")
    }

    /// A name for the document in logs. A document id is a capability (whoever holds a board's
    /// id may join it; whoever holds a desk's id *is* its owner), so logs carry a short hash of
    /// it instead: enough to follow one board through the log, useless to open it.
    pub fn tag(&self) -> LogTag {
        let digest = Sha256::new().chain_update(b"hindsight-log-tag").chain_update(self.0).finalize();
        let mut tag = [0u8; 6];
        tag.copy_from_slice(&digest[..6]);
        LogTag(tag)
    }
}

/// A document's name in logs: six bytes of a hash of its id, in hex ([`DocumentId::tag`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct LogTag([u8; 6]);

impl fmt::Display for LogTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for LogTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LogTag({self})")
    }
}

impl From<[u8; 16]> for DocumentId {
    fn from(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }
}

impl TryFrom<&[u8]> for DocumentId {
    type Error = ParseIdError;

    fn try_from(bytes: &[u8]) -> Result<Self, Self::Error> {
        <[u8; 16]>::try_from(bytes).map(Self).map_err(|_| ParseIdError::Length)
    }
}

impl fmt::Display for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&bs58::encode(self.0).with_check().into_string())
    }
}

impl fmt::Debug for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Ids are capabilities: a `{:?}` that reaches a log shows only the tag.
        write!(f, "DocumentId({})", self.tag())
    }
}

impl FromStr for DocumentId {
    type Err = ParseIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.strip_prefix("automerge:").unwrap_or(s);
        // 20 bytes of bs58 never take more than 28 characters; refuse long input before decoding.
        if s.is_empty() || s.len() > 28 {
            return Err(ParseIdError::Length);
        }
        // Room for the payload and its four check bytes; `with_check` verifies and drops them.
        let mut buf = [0u8; 20];
        let n = bs58::decode(s).with_check(None).onto(&mut buf).map_err(|e| match e {
            bs58::decode::Error::InvalidChecksum { .. } => ParseIdError::Checksum,
            bs58::decode::Error::BufferTooSmall | bs58::decode::Error::NoChecksum => ParseIdError::Length,
            _ => ParseIdError::Encoding,
        })?;
        Self::try_from(&buf[..n])
    }
}

/// A fresh actor for one change to a shared board: unlinkable to any other change (eight random
/// bytes), and sorted after every actor the document has, so that Automerge appends it to its
/// actor table instead of renumbering every operation of the document (which costs the whole
/// document, on the server and on every client, for every change).
///
/// The id is 16 bytes, as Automerge keeps inline: `ff ff`, then the change's first operation
/// counter in six bytes (the document's highest plus one, which the change carries anyway), then
/// eight random bytes: later changes sort later.
pub fn fresh_board_actor(doc: &automerge::Automerge) -> automerge::ActorId {
    let max_op = doc.get_heads().iter().filter_map(|head| doc.get_change_meta_by_hash(head)).map(|m| m.max_op).max();
    let start_op = max_op.unwrap_or(0).saturating_add(1).min((1 << 48) - 1);
    let mut id = [0u8; 16];
    id[..2].copy_from_slice(&[0xff, 0xff]);
    id[2..8].copy_from_slice(&start_op.to_be_bytes()[2..]);
    id[8..].copy_from_slice(&random_bytes::<8>());
    automerge::ActorId::from(id)
}

/// The id under which the server publishes a participant's draft on the board.
///
/// Derived from the desk's id, which only the participant and the server know, so the author
/// can recognise their own notes while nobody else can tell whose they are, and the same draft
/// always maps to the same note.
pub fn published_note_id(desk: &DocumentId, draft: &str) -> String {
    let digest =
        Sha256::new().chain_update(b"hindsight-note").chain_update(desk.0).chain_update(draft.as_bytes()).finalize();
    bs58::encode(&digest[..12]).into_string()
}

/// Why a string or byte slice is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseIdError {
    #[error("the id is not valid base58")]
    Encoding,
    #[error("the id has the wrong length")]
    Length,
    #[error("the id's checksum does not match")]
    Checksum,
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $bytes:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// A fresh random id.
            pub fn random() -> Self {
                Self(random_token::<$bytes>())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }

        impl FromStr for $name {
            type Err = std::convert::Infallible;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Ok(Self(s.to_owned()))
            }
        }
    };
}

string_id!(
    /// The id a peer announces in its `join` message. Chosen by the peer; unique per connection.
    PeerId,
    12
);

/// The longest peer id a server takes, in bytes.
pub const MAX_PEER_ID_BYTES: usize = 100;

impl PeerId {
    /// True for an id a server takes: 1 to [`MAX_PEER_ID_BYTES`] printable ASCII characters, no
    /// spaces (automerge-repo's and samod's ids are such). Nothing else can reach a log line or
    /// another peer.
    pub fn is_well_formed(&self) -> bool {
        (1..=MAX_PEER_ID_BYTES).contains(&self.0.len()) && self.0.bytes().all(|b| b.is_ascii_graphic())
    }
}
string_id!(
    /// The id of a sticky note, chosen at random by the browser that writes it.
    NoteId,
    9
);
string_id!(
    /// The id of a column, fixed by the board's template (`start`, `stop`, ...).
    ColumnId,
    6
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_id_round_trips_through_bs58check() {
        let id = DocumentId::random();
        let text = id.to_string();
        assert_eq!(text.parse::<DocumentId>(), Ok(id));
        assert_eq!(format!("automerge:{text}").parse::<DocumentId>(), Ok(id));
    }

    #[test]
    fn document_id_matches_automerge_repo_encoding() {
        // An id produced by automerge-repo's `generateAutomergeUrl` (bs58check of a v4 UUID).
        let id: DocumentId = "4NMNnkMhL8jXrdJ9jamS58PAVdXu".parse().expect("valid id");
        assert_eq!(id.to_string(), "4NMNnkMhL8jXrdJ9jamS58PAVdXu");
    }

    #[test]
    fn published_note_ids_are_stable_and_distinct() {
        let (a, b) = (DocumentId::random(), DocumentId::random());
        assert_eq!(published_note_id(&a, "n1"), published_note_id(&a, "n1"));
        assert_ne!(published_note_id(&a, "n1"), published_note_id(&a, "n2"));
        assert_ne!(published_note_id(&a, "n1"), published_note_id(&b, "n1"));
    }

    #[test]
    fn fresh_board_actors_are_distinct_and_sort_after_every_actor_of_the_document() {
        use automerge::transaction::Transactable;
        let mut doc = automerge::Automerge::new();
        for n in 0..20 {
            let actor = fresh_board_actor(&doc);
            assert!(
                actor.to_bytes() > automerge::ActorId::random().to_bytes() || actor.to_bytes()[..2] == [0xff, 0xff]
            );
            let previous =
                doc.get_heads().first().and_then(|h| doc.get_change_meta_by_hash(h)).map(|m| m.actor.into_owned());
            if let Some(previous) = previous {
                assert!(actor > previous, "each actor sorts after the last");
            }
            doc.set_actor(actor);
            let mut tx = doc.transaction();
            tx.put(automerge::ROOT, "n", n).expect("put");
            tx.commit();
        }
        assert_ne!(fresh_board_actor(&doc), fresh_board_actor(&doc), "unlinkable");
    }

    #[test]
    fn log_tags_are_short_stable_and_not_the_id() {
        let id = DocumentId::random();
        let tag = id.tag().to_string();
        assert_eq!(tag.len(), 12);
        assert_eq!(tag, id.tag().to_string());
        assert!(!id.to_string().contains(&tag));
        assert_ne!(tag, DocumentId::random().tag().to_string());
    }

    #[test]
    fn peer_ids_are_short_and_printable() {
        assert!(PeerId::random().is_well_formed());
        assert!(PeerId::from("peer-4f3a.samod_1").is_well_formed());
        for bad in ["", "a b", "line\nbreak", "\u{1b}[31mred", "\u{202e}evil"] {
            assert!(!PeerId::from(bad).is_well_formed(), "{bad:?}");
        }
        assert!(!PeerId::from("x".repeat(101)).is_well_formed());
    }

    #[test]
    fn document_id_errors_say_what_is_wrong() {
        // Sixteen bytes with a wrong check: a checksum error.
        let good = DocumentId::random().to_string();
        let mut with_check = bs58::decode(&good).into_vec().expect("bs58");
        assert_eq!(with_check.len(), 20);
        with_check[19] ^= 1;
        assert_eq!(bs58::encode(with_check).into_string().parse::<DocumentId>(), Err(ParseIdError::Checksum));
        // A well-checked id of the wrong size: a length error.
        let short = bs58::encode(random_bytes::<10>()).with_check().into_string();
        assert_eq!(short.parse::<DocumentId>(), Err(ParseIdError::Length));
        let long = bs58::encode(random_bytes::<19>()).with_check().into_string();
        assert_eq!(long.parse::<DocumentId>(), Err(ParseIdError::Length));
    }

    #[test]
    fn document_id_rejects_corruption() {
        let text = DocumentId::random().to_string();
        let mut corrupted: Vec<char> = text.chars().collect();
        corrupted[3] = if corrupted[3] == '2' { '3' } else { '2' };
        let corrupted: String = corrupted.into_iter().collect();
        assert!(corrupted.parse::<DocumentId>().is_err());
        assert_eq!("".parse::<DocumentId>(), Err(ParseIdError::Length));
        assert_eq!("0OIl".parse::<DocumentId>(), Err(ParseIdError::Encoding));
        assert!("x".repeat(500).parse::<DocumentId>().is_err());
    }
}
