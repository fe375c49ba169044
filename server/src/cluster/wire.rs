//! What nodes say to each other over NATS: the subjects, and the envelopes that carry a
//! client's frames to a board's owner and the owner's frames back, documented variant by variant.
//!
//! Subjects (one subscription each per node; NATS delivers a publisher's messages on one subject
//! in order, which is all the ordering a connection needs):
//!
//! - `hindsight.node.<node>`: to the owner, about a forwarded connection ([`ToOwner`]).
//! - `hindsight.conn.<node>`: to the node that holds the client's socket ([`ToOrigin`]).
//! - `hindsight.http.<node>`: a forwarded HTTP request (request/reply; see `cluster/http.rs`).
//! - `hindsight.ping.<node>`: request/reply; no responders means the node is gone.
//!
//! The metadata travels in NATS headers, the payload (a client's document message, a frame) as
//! the body. A body larger than the server's `max_payload` goes in parts: every part carries
//! `Hs-Part`, the body's id (unique in the cluster), every part but the last `Hs-More`, and the
//! receiver joins them by sender and id (see [`join`]).

use async_nats::HeaderMap;
use bytes::Bytes;
use hindsight_shared::ids::{DocumentId, PeerId};

use crate::board::FrameKind;
use crate::board::core::DocMessage;
use crate::board::replica::ConnId;
use crate::closing::CloseReason;

pub fn node_subject(node: &str) -> String {
    format!("hindsight.node.{node}")
}

pub fn conn_subject(node: &str) -> String {
    format!("hindsight.conn.{node}")
}

pub fn http_subject(node: &str) -> String {
    format!("hindsight.http.{node}")
}

pub fn ping_subject(node: &str) -> String {
    format!("hindsight.ping.{node}")
}

/// Splits the credentials out of a NATS URL (`nats://user:password@host`, `nats://token@host`),
/// so that the client, which logs the address it connects to, never holds them.
pub fn split_credentials(url: &str) -> (String, Option<(String, Option<String>)>) {
    let Some((scheme, rest)) = url.split_once("://") else { return (url.to_owned(), None) };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else { return (url.to_owned(), None) };
    let (credentials, host) = (&rest[..at], &rest[at + 1..]);
    let credentials = match credentials.split_once(':') {
        Some((user, password)) => (user.to_owned(), Some(password.to_owned())),
        None => (credentials.to_owned(), None),
    };
    (format!("{scheme}://{host}"), Some(credentials))
}

/// A node id is a subject token: letters, digits, `-` and `_`, at most 64.
pub fn valid_node_id(node: &str) -> bool {
    !node.is_empty() && node.len() <= 64 && node.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// From a node holding a client's socket to the board's owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToOwner {
    /// A document message the client sent about `doc`, a document of `board` (`request`, `sync`
    /// or `ephemeral`; or `resume` when the client had it open through the board's previous
    /// owner), written by [`write_message`]. The origin already checked its sender and target and
    /// its rates.
    Frame { origin: String, conn: ConnId, peer: PeerId, board: DocumentId, doc: DocumentId },
    /// The client's connection closed.
    Left { origin: String, conn: ConnId },
}

/// From a board's owner to the node holding the client's socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToOrigin {
    /// A frame for the client (the body), from the board's owner `from`.
    Frame { conn: ConnId, kind: FrameKind, from: String },
    /// The board closed the client's connection (after an `error` frame, if it said why).
    Close { conn: ConnId, code: u16, reason: String, from: String },
    /// `from` does not own `board` (any more): find its owner and resume there.
    Moved { conn: ConnId, board: DocumentId, from: String },
}

const KIND: &str = "Hs-Kind";
const ORIGIN: &str = "Hs-Origin";
const CONN: &str = "Hs-Conn";
const PEER: &str = "Hs-Peer";
const BOARD: &str = "Hs-Board";
const DOC: &str = "Hs-Doc";
const CODE: &str = "Hs-Code";
const REASON: &str = "Hs-Reason";
const MESSAGE: &str = "Hs-Message";
const SESSION: &str = "Hs-Session-Length";
const COUNT: &str = "Hs-Count";
pub const MORE: &str = "Hs-More";
/// The id of a body sent in parts, unique in the cluster (the sender's node id and a count).
pub const PART: &str = "Hs-Part";

/// Why an envelope could not be read (a bug or a foreign publisher: logged, dropped).
#[derive(Debug, thiserror::Error)]
#[error("malformed cluster envelope: {0}")]
pub struct Malformed(&'static str);

fn get<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, Malformed> {
    headers.get(name).map(|v| v.as_str()).ok_or(Malformed(name))
}

fn parse<T: std::str::FromStr>(headers: &HeaderMap, name: &'static str) -> Result<T, Malformed> {
    get(headers, name)?.parse().map_err(|_| Malformed(name))
}

impl ToOwner {
    pub fn headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        match self {
            Self::Frame { origin, conn, peer, board, doc } => {
                h.insert(KIND, "frame");
                h.insert(ORIGIN, origin.as_str());
                h.insert(CONN, conn.to_string().as_str());
                h.insert(PEER, peer.as_str());
                h.insert(BOARD, board.to_string().as_str());
                h.insert(DOC, doc.to_string().as_str());
            }
            Self::Left { origin, conn } => {
                h.insert(KIND, "left");
                h.insert(ORIGIN, origin.as_str());
                h.insert(CONN, conn.to_string().as_str());
            }
        }
        h
    }

    pub fn read(h: &HeaderMap) -> Result<Self, Malformed> {
        let origin = get(h, ORIGIN)?.to_owned();
        let conn = parse(h, CONN)?;
        let kind = get(h, KIND)?;
        if kind == "left" {
            return Ok(Self::Left { origin, conn });
        }
        let peer = PeerId::from(get(h, PEER)?.to_owned());
        let (board, doc) = (parse(h, BOARD)?, parse(h, DOC)?);
        match kind {
            "frame" => Ok(Self::Frame { origin, conn, peer, board, doc }),
            _ => Err(Malformed(KIND)),
        }
    }
}

impl ToOrigin {
    pub fn headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        match self {
            Self::Frame { conn, kind, from } => {
                let kind = match kind {
                    FrameKind::Sync => "sync",
                    FrameKind::Error => "error",
                    FrameKind::Other => "other",
                };
                h.insert(KIND, kind);
                h.insert(CONN, conn.to_string().as_str());
                h.insert(ORIGIN, from.as_str());
            }
            Self::Close { conn, code, reason, from } => {
                h.insert(KIND, "close");
                h.insert(CONN, conn.to_string().as_str());
                h.insert(CODE, code.to_string().as_str());
                h.insert(REASON, reason.as_str());
                h.insert(ORIGIN, from.as_str());
            }
            Self::Moved { conn, board, from } => {
                h.insert(KIND, "moved");
                h.insert(CONN, conn.to_string().as_str());
                h.insert(BOARD, board.to_string().as_str());
                h.insert(ORIGIN, from.as_str());
            }
        }
        h
    }

    pub fn read(h: &HeaderMap) -> Result<Self, Malformed> {
        let conn = parse(h, CONN)?;
        let from = get(h, ORIGIN)?.to_owned();
        let frame = |kind| Ok(Self::Frame { conn, kind, from: from.clone() });
        match get(h, KIND)? {
            "sync" => frame(FrameKind::Sync),
            "error" => frame(FrameKind::Error),
            "other" => frame(FrameKind::Other),
            "close" => Ok(Self::Close { conn, code: parse(h, CODE)?, reason: get(h, REASON)?.to_owned(), from }),
            "moved" => Ok(Self::Moved { conn, board: parse(h, BOARD)?, from }),
            _ => Err(Malformed(KIND)),
        }
    }
}

/// Writes a client's document message: its kind (and an ephemeral message's session and count)
/// in `headers`, its data as the body.
pub fn write_message(message: &DocMessage, headers: &mut HeaderMap) -> Bytes {
    match message {
        DocMessage::Request(data) => {
            headers.insert(MESSAGE, "request");
            Bytes::copy_from_slice(data)
        }
        DocMessage::Sync(data) => {
            headers.insert(MESSAGE, "sync");
            Bytes::copy_from_slice(data)
        }
        // The session id is the client's text: it goes in the body (a header value may not hold
        // every character, and has no room for a long one), its length in a header.
        DocMessage::Ephemeral { session_id, count, data } => {
            headers.insert(MESSAGE, "ephemeral");
            headers.insert(SESSION, session_id.len().to_string().as_str());
            headers.insert(COUNT, count.to_string().as_str());
            let mut body = Vec::with_capacity(session_id.len() + data.len());
            body.extend_from_slice(session_id.as_bytes());
            body.extend_from_slice(data);
            Bytes::from(body)
        }
        DocMessage::Resume => {
            headers.insert(MESSAGE, "resume");
            Bytes::new()
        }
    }
}

/// Reads what [`write_message`] wrote.
pub fn read_message(headers: &HeaderMap, body: Bytes) -> Result<DocMessage, Malformed> {
    match get(headers, MESSAGE)? {
        "request" => Ok(DocMessage::Request(body.to_vec())),
        "sync" => Ok(DocMessage::Sync(body.to_vec())),
        "ephemeral" => {
            let length: usize = parse(headers, SESSION)?;
            let session = body.get(..length).ok_or(Malformed(SESSION))?;
            let session_id = String::from_utf8(session.to_vec()).map_err(|_| Malformed(SESSION))?;
            Ok(DocMessage::Ephemeral { session_id, count: parse(headers, COUNT)?, data: body[length..].to_vec() })
        }
        "resume" => Ok(DocMessage::Resume),
        _ => Err(Malformed(MESSAGE)),
    }
}

/// The parts of bodies still coming, by sender and body: when the first part came, and what
/// came (`None` for a body being dropped: too large).
pub type Partial<K> = std::collections::HashMap<(K, String), (std::time::Instant, Option<bytes::BytesMut>)>;

/// How long the parts of a body may wait for the rest (its sender died, or a publish failed).
const PARTS_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Joins a body that came in parts (they carry [`PART`], the body's id, and all but the last
/// [`MORE`]): returns it whole with its last part, `None` before. A body that grows past `max`
/// bytes is dropped whole; one whose parts stop coming is dropped after a minute. A message
/// without [`PART`] is a whole body.
pub fn join<K: std::hash::Hash + Eq + Clone>(
    partial: &mut Partial<K>,
    key: K,
    headers: &HeaderMap,
    part: Bytes,
    max: usize,
) -> Option<Bytes> {
    let Some(id) = headers.get(PART).map(|v| v.as_str().to_owned()) else { return Some(part) };
    let more = headers.get(MORE).is_some();
    let key = (key, id);
    if !partial.contains_key(&key) {
        let now = std::time::Instant::now();
        partial.retain(|_, (since, _)| now.duration_since(*since) < PARTS_WAIT);
        partial.insert(key.clone(), (now, Some(bytes::BytesMut::new())));
    }
    let (_, buffer) = partial.get_mut(&key)?;
    if let Some(joined) = buffer.as_mut() {
        if joined.len() + part.len() > max {
            tracing::warn!(max, "dropped a frame from another node larger than the limit");
            *buffer = None;
        } else {
            joined.extend_from_slice(&part);
        }
    }
    if more {
        return None;
    }
    partial.remove(&key).and_then(|(_, joined)| joined).map(bytes::BytesMut::freeze)
}

/// The close reason a `close` envelope names, as this node knows it (an unknown one, from a
/// newer node, is taken as an internal error).
pub fn close_reason(code: u16, reason: &str) -> CloseReason {
    CloseReason::ALL.into_iter().find(|r| r.code == code && r.reason == reason).unwrap_or(CloseReason::INTERNAL)
}

/// Splits a body into parts of at most `max` bytes (at least one part, maybe empty).
pub fn parts(body: Bytes, max: usize) -> Vec<Bytes> {
    if body.len() <= max {
        return vec![body];
    }
    let mut parts = Vec::with_capacity(body.len().div_ceil(max));
    let mut at = 0;
    while at < body.len() {
        let end = (at + max).min(body.len());
        parts.push(body.slice(at..end));
        at = end;
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_read_back_as_written() {
        let (board, doc) = (DocumentId::random(), DocumentId::random());
        let to_owner = [
            ToOwner::Frame { origin: "a".into(), conn: 7, peer: PeerId::from("p"), board, doc },
            ToOwner::Left { origin: "a".into(), conn: 7 },
        ];
        for envelope in to_owner {
            assert_eq!(ToOwner::read(&envelope.headers()).expect("readable"), envelope);
        }
        let to_origin = [
            ToOrigin::Frame { conn: 9, kind: FrameKind::Sync, from: "b".into() },
            ToOrigin::Frame { conn: 9, kind: FrameKind::Error, from: "b".into() },
            ToOrigin::Close { conn: 9, code: 1008, reason: "too many messages".into(), from: "b".into() },
            ToOrigin::Moved { conn: 9, board, from: "b".into() },
        ];
        for envelope in to_origin {
            assert_eq!(ToOrigin::read(&envelope.headers()).expect("readable"), envelope);
        }
        assert!(ToOwner::read(&HeaderMap::new()).is_err());
    }

    #[test]
    fn bodies_split_into_parts_that_join_back() {
        let body = Bytes::from((0..2500u32).map(|i| i as u8).collect::<Vec<u8>>());
        let split = parts(body.clone(), 1000);
        assert_eq!(split.iter().map(Bytes::len).collect::<Vec<_>>(), vec![1000, 1000, 500]);
        assert_eq!(split.concat(), body.to_vec());
        assert_eq!(parts(Bytes::new(), 1000).len(), 1);
    }

    #[test]
    fn document_messages_read_back_as_written() {
        let messages = [
            DocMessage::Request(vec![1, 2]),
            DocMessage::Sync(vec![3]),
            DocMessage::Ephemeral { session_id: "s".into(), count: 4, data: vec![5] },
            // A client's session id may hold anything a header may not.
            DocMessage::Ephemeral { session_id: "a\r\nb: c".into(), count: 4, data: vec![] },
            DocMessage::Resume,
        ];
        for message in messages {
            let mut headers = HeaderMap::new();
            let body = write_message(&message, &mut headers);
            assert_eq!(read_message(&headers, body).expect("readable"), message);
        }
    }

    #[test]
    fn parts_join_by_body_and_a_whole_body_passes() {
        let part = |id: &str, more: bool| {
            let mut h = HeaderMap::new();
            h.insert(PART, id);
            if more {
                h.insert(MORE, "1");
            }
            h
        };
        let mut partial = Partial::new();
        let b = |s: &'static [u8]| Bytes::from_static(s);
        assert_eq!(join(&mut partial, 1, &part("n-1", true), b(b"ab"), 10), None);
        // Another body of the same sender, in between: kept apart.
        assert_eq!(join(&mut partial, 1, &part("n-2", true), b(b"xy"), 10), None);
        assert_eq!(join(&mut partial, 2, &HeaderMap::new(), b(b"whole"), 10), Some(b(b"whole")));
        assert_eq!(join(&mut partial, 1, &part("n-1", false), b(b"cd"), 10), Some(b(b"abcd")));
        assert_eq!(join(&mut partial, 1, &part("n-2", false), b(b"z"), 10), Some(b(b"xyz")));
        // Too large: dropped whole.
        assert_eq!(join(&mut partial, 1, &part("n-3", true), b(b"0123456789ab"), 10), None);
        assert_eq!(join(&mut partial, 1, &part("n-3", false), b(b"z"), 10), None);
        assert!(partial.is_empty());
    }

    #[test]
    fn credentials_leave_the_url() {
        let (url, credentials) = split_credentials("nats://ann:s3cret@nats.example:4222");
        assert_eq!(url, "nats://nats.example:4222");
        assert_eq!(credentials, Some(("ann".to_owned(), Some("s3cret".to_owned()))));
        let (url, credentials) = split_credentials("tls://t0ken@nats.example");
        assert_eq!((url.as_str(), credentials), ("tls://nats.example", Some(("t0ken".to_owned(), None))));
        assert_eq!(split_credentials("nats://nats.example:4222"), ("nats://nats.example:4222".to_owned(), None));
    }

    #[test]
    fn node_ids_are_subject_tokens() {
        assert!(valid_node_id("node-1_a"));
        assert!(!valid_node_id("a.b"));
        assert!(!valid_node_id("a b"));
        assert!(!valid_node_id(""));
        assert!(!valid_node_id("*"));
    }
}
