//! Why the server closes a WebSocket: a close code and a short reason, one per cause, so a
//! client (and a person reading its console) can tell them apart.

/// A WebSocket close code and its reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseReason {
    pub code: u16,
    pub reason: &'static str,
}

impl CloseReason {
    pub const NORMAL: Self = Self { code: 1000, reason: "bye" };
    pub const GOING_AWAY: Self = Self { code: 1001, reason: "the server is shutting down" };
    pub const IDLE: Self = Self { code: 1001, reason: "idle" };
    pub const PROTOCOL: Self = Self { code: 1002, reason: "protocol error" };
    pub const UNSUPPORTED: Self = Self { code: 1003, reason: "Hindsight speaks binary frames" };
    pub const NO_JOIN: Self = Self { code: 1008, reason: "no join message" };
    pub const OUTBOX_BYTES: Self = Self { code: 1008, reason: "too slow: too many bytes waiting to be read" };
    pub const OUTBOX_FRAMES: Self = Self { code: 1008, reason: "too slow: too many messages waiting to be read" };
    pub const WRITE_STALLED: Self = Self { code: 1008, reason: "too slow: a write waited too long" };
    pub const TOO_MANY_MESSAGES: Self = Self { code: 1008, reason: "too many messages" };
    pub const TOO_MANY_BYTES: Self = Self { code: 1008, reason: "too many bytes" };
    pub const TOO_MUCH_WORK: Self = Self { code: 1008, reason: "too much work asked of the server" };
    pub const TOO_MANY_DOCUMENTS: Self = Self { code: 1008, reason: "too many documents" };
    pub const TOO_MANY_REFUSALS: Self = Self { code: 1008, reason: "too many refused changes" };
    pub const BOARD_FULL: Self = Self { code: 1008, reason: "this board is full" };
    pub const TOO_BIG: Self = Self { code: 1009, reason: "message too big" };
    pub const INTERNAL: Self = Self { code: 1011, reason: "the board could not be stored" };
    /// Cluster mode: this node lost the board's lease (another node owns it now).
    pub const MOVED: Self = Self { code: 1012, reason: "the board moved to another server; connect again" };
    /// The socket failed under a write: nothing can be sent any more, so this is only recorded.
    pub const LOST: Self = Self { code: 1006, reason: "the connection was lost" };

    /// Every reason, for the table in ARCHITECTURE.md and its test.
    pub const ALL: [Self; 19] = [
        Self::NORMAL,
        Self::GOING_AWAY,
        Self::IDLE,
        Self::PROTOCOL,
        Self::UNSUPPORTED,
        Self::NO_JOIN,
        Self::OUTBOX_BYTES,
        Self::OUTBOX_FRAMES,
        Self::WRITE_STALLED,
        Self::TOO_MANY_MESSAGES,
        Self::TOO_MANY_BYTES,
        Self::TOO_MUCH_WORK,
        Self::TOO_MANY_DOCUMENTS,
        Self::TOO_MANY_REFUSALS,
        Self::BOARD_FULL,
        Self::TOO_BIG,
        Self::INTERNAL,
        Self::MOVED,
        Self::LOST,
    ];
}
