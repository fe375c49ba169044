//! Hindsight's sans-IO core, shared by the server and the browser client: no sockets, no tasks, no clocks.
//!
//! # Layout
//! - [`ids`]: newtype ids ([`DocumentId`](ids::DocumentId) is the board id) and the random source.
//! - [`protocol`]: the automerge-repo wire messages and their CBOR encoding.
//! - [`schema`]: the board document over Automerge, read with autosurgeon, written with typed calls.
//! - [`templates`]: the boards a facilitator can start from.
//!
//! Everything here builds for `wasm32-unknown-unknown` as well as natively.

pub mod ids;
pub mod protocol;
pub mod schema;
pub mod templates;

pub use automerge;
pub use autosurgeon;
