//! The wire protocol: automerge-repo's network messages, CBOR-encoded, one per binary WebSocket frame.
//!
//! These are the messages `@automerge/automerge-repo-network-websocket` and `samod` exchange, so a
//! stock automerge-repo client can open a Hindsight board. Every message is a CBOR map with a
//! `type` field; fields we do not know are skipped, so newer peers can talk to us.
//!
//! A connection starts with the client's [`WireMessage::Join`] and the server's
//! [`WireMessage::Peer`]; after that either side sends document messages (`request`, `sync`,
//! `doc-unavailable`, `ephemeral`) about any number of documents. [`WireMessage::Error`] ends the
//! connection.
//!
//! Invariant: no input panics the decoder; every failure is an error for one peer.

use minicbor::data::Type;
use minicbor::{Decoder, Encoder};

use crate::ids::{DocumentId, PeerId};

/// The one protocol version automerge-repo speaks today.
pub const PROTOCOL_VERSION: &str = "1";

/// What a peer tells the other about itself in `join` and `peer`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerMetadata {
    /// An id for the peer's storage, if it keeps one; lets a peer resume sync state later.
    pub storage_id: Option<String>,
    /// True when the peer will not come back with the same storage (a browser tab without storage).
    pub is_ephemeral: bool,
}

/// One message of the automerge-repo network protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireMessage {
    /// Client -> server, first message on a connection: who the client is and which protocol
    /// versions it speaks.
    Join { sender_id: PeerId, supported_protocol_versions: Vec<String>, metadata: Option<PeerMetadata> },
    /// Server -> client, the answer to `join`: the server's peer id and the version it chose.
    Peer { sender_id: PeerId, target_id: PeerId, selected_protocol_version: String, metadata: Option<PeerMetadata> },
    /// Advisory: the sender is about to disconnect.
    Leave { sender_id: PeerId },
    /// The sender does not have the document yet and asks for it. `data` is an Automerge sync
    /// message generated from an empty document.
    Request { document_id: DocumentId, sender_id: PeerId, target_id: PeerId, data: Vec<u8> },
    /// An Automerge sync message about a document both sides are syncing.
    Sync { document_id: DocumentId, sender_id: PeerId, target_id: PeerId, data: Vec<u8> },
    /// The sender does not have the document and cannot get it: the answer to a `request` for an
    /// unknown board.
    DocUnavailable { document_id: DocumentId, sender_id: PeerId, target_id: PeerId },
    /// A message about a document that is relayed to its other peers but never stored: presence.
    /// `session_id` and `count` let receivers drop duplicates; `data` is CBOR chosen by the app.
    Ephemeral {
        document_id: DocumentId,
        sender_id: PeerId,
        target_id: PeerId,
        session_id: String,
        count: u64,
        data: Vec<u8>,
    },
    /// A protocol error. The sender closes the connection after sending it.
    Error { message: String },
    /// automerge-repo's subscription to other peers' heads. Accepted and ignored by Hindsight.
    RemoteSubscriptionChange { sender_id: PeerId, target_id: PeerId },
    /// automerge-repo's gossip about other peers' heads. Accepted and ignored by Hindsight.
    RemoteHeadsChanged { document_id: DocumentId, sender_id: PeerId, target_id: PeerId },
}

/// Why a frame is not a valid protocol message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("the frame is not valid CBOR: {0}")]
    Cbor(String),
    #[error("a message must be a CBOR map of known length")]
    NotAMap,
    #[error("the message has no `type` field")]
    MissingType,
    #[error("unknown message type `{0}`")]
    UnknownType(String),
    #[error("the `{0}` message lacks its `{1}` field")]
    MissingField(&'static str, &'static str),
    #[error("the `{0}` field has the wrong type")]
    WrongType(&'static str),
    #[error("`{0}` is not a valid document id")]
    InvalidDocumentId(String),
    #[error("the frame has {0} bytes after the message")]
    TrailingBytes(usize),
}

impl From<minicbor::decode::Error> for DecodeError {
    fn from(e: minicbor::decode::Error) -> Self {
        Self::Cbor(e.to_string())
    }
}

impl WireMessage {
    /// The message's `type` field, for logs and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Join { .. } => "join",
            Self::Peer { .. } => "peer",
            Self::Leave { .. } => "leave",
            Self::Request { .. } => "request",
            Self::Sync { .. } => "sync",
            Self::DocUnavailable { .. } => "doc-unavailable",
            Self::Ephemeral { .. } => "ephemeral",
            Self::Error { .. } => "error",
            Self::RemoteSubscriptionChange { .. } => "remote-subscription-change",
            Self::RemoteHeadsChanged { .. } => "remote-heads-changed",
        }
    }

    /// Decodes one frame. Never panics, whatever the bytes.
    pub fn decode(frame: &[u8]) -> Result<Self, DecodeError> {
        let mut d = Decoder::new(frame);
        let fields = Fields::read(&mut d)?;
        if d.position() != frame.len() {
            return Err(DecodeError::TrailingBytes(frame.len() - d.position()));
        }
        fields.into_message()
    }

    /// Encodes the message as one CBOR map.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new(Vec::new());
        // Writing into a Vec cannot fail, so the result of every write below is infallible.
        let _ = self.write(&mut e);
        e.into_writer()
    }

    fn write(&self, e: &mut Encoder<Vec<u8>>) -> Result<(), minicbor::encode::Error<std::convert::Infallible>> {
        match self {
            Self::Join { sender_id, supported_protocol_versions, metadata } => {
                e.map(3 + u64::from(metadata.is_some()))?;
                e.str("type")?.str("join")?;
                e.str("senderId")?.str(sender_id.as_str())?;
                e.str("supportedProtocolVersions")?.array(supported_protocol_versions.len() as u64)?;
                for version in supported_protocol_versions {
                    e.str(version)?;
                }
                if let Some(metadata) = metadata {
                    write_metadata(e, metadata)?;
                }
            }
            Self::Peer { sender_id, target_id, selected_protocol_version, metadata } => {
                e.map(4 + u64::from(metadata.is_some()))?;
                e.str("type")?.str("peer")?;
                e.str("senderId")?.str(sender_id.as_str())?;
                e.str("targetId")?.str(target_id.as_str())?;
                e.str("selectedProtocolVersion")?.str(selected_protocol_version)?;
                if let Some(metadata) = metadata {
                    write_metadata(e, metadata)?;
                }
            }
            Self::Leave { sender_id } => {
                e.map(2)?;
                e.str("type")?.str("leave")?;
                e.str("senderId")?.str(sender_id.as_str())?;
            }
            Self::Request { document_id, sender_id, target_id, data }
            | Self::Sync { document_id, sender_id, target_id, data } => {
                e.map(5)?;
                e.str("type")?.str(self.kind())?;
                e.str("documentId")?.str(&document_id.to_string())?;
                e.str("senderId")?.str(sender_id.as_str())?;
                e.str("targetId")?.str(target_id.as_str())?;
                e.str("data")?.bytes(data)?;
            }
            Self::DocUnavailable { document_id, sender_id, target_id } => {
                e.map(4)?;
                e.str("type")?.str("doc-unavailable")?;
                e.str("documentId")?.str(&document_id.to_string())?;
                e.str("senderId")?.str(sender_id.as_str())?;
                e.str("targetId")?.str(target_id.as_str())?;
            }
            Self::Ephemeral { document_id, sender_id, target_id, session_id, count, data } => {
                e.map(7)?;
                e.str("type")?.str("ephemeral")?;
                e.str("documentId")?.str(&document_id.to_string())?;
                e.str("senderId")?.str(sender_id.as_str())?;
                e.str("targetId")?.str(target_id.as_str())?;
                e.str("sessionId")?.str(session_id)?;
                e.str("count")?.u64(*count)?;
                e.str("data")?.bytes(data)?;
            }
            Self::Error { message } => {
                e.map(2)?;
                e.str("type")?.str("error")?;
                e.str("message")?.str(message)?;
            }
            Self::RemoteSubscriptionChange { sender_id, target_id } => {
                e.map(4)?;
                e.str("type")?.str("remote-subscription-change")?;
                e.str("senderId")?.str(sender_id.as_str())?;
                e.str("targetId")?.str(target_id.as_str())?;
                e.str("remove")?.array(0)?;
            }
            Self::RemoteHeadsChanged { document_id, sender_id, target_id } => {
                e.map(5)?;
                e.str("type")?.str("remote-heads-changed")?;
                e.str("documentId")?.str(&document_id.to_string())?;
                e.str("senderId")?.str(sender_id.as_str())?;
                e.str("targetId")?.str(target_id.as_str())?;
                e.str("newHeads")?.map(0)?;
            }
        }
        Ok(())
    }
}

fn write_metadata(
    e: &mut Encoder<Vec<u8>>,
    metadata: &PeerMetadata,
) -> Result<(), minicbor::encode::Error<std::convert::Infallible>> {
    e.str("peerMetadata")?.map(1 + u64::from(metadata.storage_id.is_some()))?;
    if let Some(storage_id) = &metadata.storage_id {
        e.str("storageId")?.str(storage_id)?;
    }
    e.str("isEphemeral")?.bool(metadata.is_ephemeral)?;
    Ok(())
}

/// The fields of a message map, read in any order before the message is assembled.
#[derive(Default)]
struct Fields {
    kind: Option<String>,
    sender_id: Option<String>,
    target_id: Option<String>,
    document_id: Option<String>,
    data: Option<Vec<u8>>,
    message: Option<String>,
    session_id: Option<String>,
    count: Option<u64>,
    selected_protocol_version: Option<String>,
    supported_protocol_versions: Option<Vec<String>>,
    metadata: Option<PeerMetadata>,
}

impl Fields {
    fn read(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        if d.datatype()? != Type::Map {
            return Err(DecodeError::NotAMap);
        }
        let len = d.map()?.ok_or(DecodeError::NotAMap)?;
        let mut f = Fields::default();
        for _ in 0..len {
            if d.datatype()? != Type::String {
                d.skip()?;
                d.skip()?;
                continue;
            }
            match d.str()? {
                "type" => f.kind = Some(string(d, "type")?),
                "senderId" => f.sender_id = Some(string(d, "senderId")?),
                "targetId" => f.target_id = Some(string(d, "targetId")?),
                "documentId" => f.document_id = Some(string(d, "documentId")?),
                "data" => f.data = Some(bytes(d, "data")?),
                "message" => f.message = Some(string(d, "message")?),
                "sessionId" => f.session_id = Some(string(d, "sessionId")?),
                "count" => f.count = Some(number(d, "count")?),
                "selectedProtocolVersion" => {
                    f.selected_protocol_version = Some(string(d, "selectedProtocolVersion")?);
                }
                "supportedProtocolVersions" => {
                    f.supported_protocol_versions = Some(strings(d, "supportedProtocolVersions")?);
                }
                "peerMetadata" => f.metadata = metadata(d)?,
                _ => d.skip()?,
            }
        }
        Ok(f)
    }

    fn into_message(self) -> Result<WireMessage, DecodeError> {
        let kind = self.kind.clone().ok_or(DecodeError::MissingType)?;
        let kind: &'static str = match kind.as_str() {
            "join" => "join",
            "peer" => "peer",
            "leave" => "leave",
            "request" => "request",
            "sync" => "sync",
            "doc-unavailable" => "doc-unavailable",
            "ephemeral" => "ephemeral",
            "error" => "error",
            "remote-subscription-change" => "remote-subscription-change",
            "remote-heads-changed" => "remote-heads-changed",
            _ => return Err(DecodeError::UnknownType(kind.chars().take(64).collect())),
        };
        let Fields {
            sender_id,
            target_id,
            document_id,
            data,
            message,
            session_id,
            count,
            selected_protocol_version,
            supported_protocol_versions,
            metadata,
            ..
        } = self;
        let need = |field: Option<String>, name: &'static str| field.ok_or(DecodeError::MissingField(kind, name));
        let sender = |field: Option<String>| need(field, "senderId").map(PeerId::from);
        let target = |field: Option<String>| need(field, "targetId").map(PeerId::from);
        let document = |field: Option<String>| {
            let text = need(field, "documentId")?;
            text.parse::<DocumentId>().map_err(|_| DecodeError::InvalidDocumentId(text.chars().take(64).collect()))
        };
        let payload = |field: Option<Vec<u8>>| field.ok_or(DecodeError::MissingField(kind, "data"));
        Ok(match kind {
            "join" => WireMessage::Join {
                sender_id: sender(sender_id)?,
                // automerge-repo treats a missing version list as "1".
                supported_protocol_versions: supported_protocol_versions
                    .unwrap_or_else(|| vec![PROTOCOL_VERSION.to_owned()]),
                metadata,
            },
            "peer" => WireMessage::Peer {
                sender_id: sender(sender_id)?,
                target_id: target(target_id)?,
                selected_protocol_version: need(selected_protocol_version, "selectedProtocolVersion")?,
                metadata,
            },
            "leave" => WireMessage::Leave { sender_id: sender(sender_id)? },
            "request" => WireMessage::Request {
                document_id: document(document_id)?,
                sender_id: sender(sender_id)?,
                target_id: target(target_id)?,
                data: payload(data)?,
            },
            "sync" => WireMessage::Sync {
                document_id: document(document_id)?,
                sender_id: sender(sender_id)?,
                target_id: target(target_id)?,
                data: payload(data)?,
            },
            "doc-unavailable" => WireMessage::DocUnavailable {
                document_id: document(document_id)?,
                sender_id: sender(sender_id)?,
                target_id: target(target_id)?,
            },
            "ephemeral" => WireMessage::Ephemeral {
                document_id: document(document_id)?,
                sender_id: sender(sender_id)?,
                target_id: target(target_id)?,
                session_id: need(session_id, "sessionId")?,
                count: count.ok_or(DecodeError::MissingField(kind, "count"))?,
                data: payload(data)?,
            },
            "error" => WireMessage::Error { message: message.unwrap_or_default() },
            "remote-subscription-change" => {
                WireMessage::RemoteSubscriptionChange { sender_id: sender(sender_id)?, target_id: target(target_id)? }
            }
            _ => WireMessage::RemoteHeadsChanged {
                document_id: document(document_id)?,
                sender_id: sender(sender_id)?,
                target_id: target(target_id)?,
            },
        })
    }
}

/// Skips CBOR tags in front of a value (cbor-x can tag typed arrays).
fn untag(d: &mut Decoder<'_>) -> Result<Type, DecodeError> {
    loop {
        match d.datatype()? {
            Type::Tag => {
                d.tag()?;
            }
            other => return Ok(other),
        }
    }
}

fn string(d: &mut Decoder<'_>, name: &'static str) -> Result<String, DecodeError> {
    match untag(d)? {
        Type::String => Ok(d.str()?.to_owned()),
        Type::StringIndef => {
            let mut out = String::new();
            for chunk in d.str_iter()? {
                out.push_str(chunk?);
            }
            Ok(out)
        }
        _ => Err(DecodeError::WrongType(name)),
    }
}

fn bytes(d: &mut Decoder<'_>, name: &'static str) -> Result<Vec<u8>, DecodeError> {
    match untag(d)? {
        Type::Bytes => Ok(d.bytes()?.to_vec()),
        Type::BytesIndef => {
            let mut out = Vec::new();
            for chunk in d.bytes_iter()? {
                out.extend_from_slice(chunk?);
            }
            Ok(out)
        }
        _ => Err(DecodeError::WrongType(name)),
    }
}

/// JavaScript numbers may arrive as CBOR integers or floats.
fn number(d: &mut Decoder<'_>, name: &'static str) -> Result<u64, DecodeError> {
    match untag(d)? {
        Type::U8 | Type::U16 | Type::U32 | Type::U64 => Ok(d.u64()?),
        Type::F16 | Type::F32 | Type::F64 => {
            let value = d.f64()?;
            if value.is_finite() && value >= 0.0 && value.fract() == 0.0 && value <= u64::MAX as f64 {
                Ok(value as u64)
            } else {
                Err(DecodeError::WrongType(name))
            }
        }
        _ => Err(DecodeError::WrongType(name)),
    }
}

fn strings(d: &mut Decoder<'_>, name: &'static str) -> Result<Vec<String>, DecodeError> {
    if untag(d)? != Type::Array {
        return Err(DecodeError::WrongType(name));
    }
    let len = d.array()?.ok_or(DecodeError::WrongType(name))?;
    let mut out = Vec::new();
    for _ in 0..len {
        out.push(string(d, name)?);
    }
    Ok(out)
}

/// Reads `peerMetadata`, tolerating `undefined`/`null` in place of the map or its fields.
fn metadata(d: &mut Decoder<'_>) -> Result<Option<PeerMetadata>, DecodeError> {
    match untag(d)? {
        Type::Map => {}
        Type::Null | Type::Undefined => {
            d.skip()?;
            return Ok(None);
        }
        _ => return Err(DecodeError::WrongType("peerMetadata")),
    }
    let len = d.map()?.ok_or(DecodeError::WrongType("peerMetadata"))?;
    let mut metadata = PeerMetadata::default();
    for _ in 0..len {
        if d.datatype()? != Type::String {
            d.skip()?;
            d.skip()?;
            continue;
        }
        match (d.str()?, d.datatype()?) {
            ("storageId", Type::String | Type::StringIndef) => {
                metadata.storage_id = Some(string(d, "storageId")?);
            }
            ("isEphemeral", Type::Bool) => metadata.is_ephemeral = d.bool()?,
            _ => d.skip()?,
        }
    }
    Ok(Some(metadata))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(message: WireMessage) {
        assert_eq!(WireMessage::decode(&message.encode()), Ok(message));
    }

    #[test]
    fn every_message_round_trips() {
        let doc = DocumentId::random();
        let a = PeerId::from("alice");
        let b = PeerId::from("server");
        round_trip(WireMessage::Join {
            sender_id: a.clone(),
            supported_protocol_versions: vec!["1".into()],
            metadata: Some(PeerMetadata { storage_id: Some("s".into()), is_ephemeral: true }),
        });
        round_trip(WireMessage::Peer {
            sender_id: b.clone(),
            target_id: a.clone(),
            selected_protocol_version: "1".into(),
            metadata: None,
        });
        round_trip(WireMessage::Leave { sender_id: a.clone() });
        round_trip(WireMessage::Request {
            document_id: doc,
            sender_id: a.clone(),
            target_id: b.clone(),
            data: vec![1],
        });
        round_trip(WireMessage::Sync {
            document_id: doc,
            sender_id: a.clone(),
            target_id: b.clone(),
            data: vec![2, 3],
        });
        round_trip(WireMessage::DocUnavailable { document_id: doc, sender_id: b.clone(), target_id: a.clone() });
        round_trip(WireMessage::Ephemeral {
            document_id: doc,
            sender_id: a.clone(),
            target_id: b.clone(),
            session_id: "x".into(),
            count: 7,
            data: vec![0xa0],
        });
        round_trip(WireMessage::Error { message: "nope".into() });
        round_trip(WireMessage::RemoteSubscriptionChange { sender_id: a.clone(), target_id: b.clone() });
        round_trip(WireMessage::RemoteHeadsChanged { document_id: doc, sender_id: a, target_id: b });
    }

    #[test]
    fn accepts_javascript_encodings() {
        // cbor-x writes numbers as floats and may leave metadata fields undefined.
        let mut e = Encoder::new(Vec::new());
        let doc = DocumentId::random().to_string();
        e.map(8).unwrap();
        e.str("type").unwrap().str("ephemeral").unwrap();
        e.str("senderId").unwrap().str("a").unwrap();
        e.str("targetId").unwrap().str("b").unwrap();
        e.str("documentId").unwrap().str(&doc).unwrap();
        e.str("sessionId").unwrap().str("s").unwrap();
        e.str("count").unwrap().f64(3.0).unwrap();
        e.str("data").unwrap().tag(minicbor::data::Tag::new(64)).unwrap().bytes(&[1]).unwrap();
        e.str("extra").unwrap().array(1).unwrap().null().unwrap();
        let message = WireMessage::decode(&e.into_writer()).unwrap();
        assert!(matches!(message, WireMessage::Ephemeral { count: 3, ref data, .. } if data == &[1]));
    }

    #[test]
    fn rejects_malformed_frames_with_a_reason() {
        assert!(matches!(WireMessage::decode(b""), Err(DecodeError::Cbor(_))));
        assert!(matches!(WireMessage::decode(&[0x82, 0x01, 0x02]), Err(DecodeError::NotAMap)));
        assert!(matches!(WireMessage::decode(&[0xa0]), Err(DecodeError::MissingType)));
        let mut e = Encoder::new(Vec::new());
        e.map(2).unwrap().str("type").unwrap().str("sync").unwrap().str("senderId").unwrap().str("a").unwrap();
        assert_eq!(WireMessage::decode(&e.into_writer()), Err(DecodeError::MissingField("sync", "documentId")));
        let mut frame = WireMessage::Leave { sender_id: "a".into() }.encode();
        frame.push(0);
        assert_eq!(WireMessage::decode(&frame), Err(DecodeError::TrailingBytes(1)));
    }
}
