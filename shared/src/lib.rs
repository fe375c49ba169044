//! Hindsight's sans-IO core, shared by the server and the browser client: no sockets, no tasks, no clocks.
//!
//! # Layout
//! - [`alerts`]: Alertmanager and Grafana webhook payloads read into timeline events, and the
//!   board's alert token.
//! - [`api`]: the HTTP API's routes and JSON bodies, for the server, the browser and the tests.
//! - [`chunks`]: Automerge chunks measured without being loaded: changes, operations, inflated size.
//! - [`client`]: the client side of the sync protocol for one document: acknowledged heads, pending
//!   changes, refused changes dropped with what builds on them.
//! - [`ids`]: newtype ids ([`DocumentId`](ids::DocumentId) is the board id) and the random source.
//! - [`protocol`]: the automerge-repo wire messages and their CBOR encoding.
//! - [`schema`]: the board and desk documents over Automerge, read with autosurgeon.
//! - [`incident`]: an incident's facts and milestones on a postmortem board, and the durations
//!   they give (time to detect, acknowledge, mitigate, resolve).
//! - [`ledger`]: the team ledger document: a team's retros, actions, causes and recurrences.
//! - [`edit`]: typed writes to both documents.
//! - [`factors`]: contributing factors as a graph ("led to" links, no cycles), five whys, and
//!   the coverage check.
//! - [`export`]: Markdown, CSV, JSON and printable HTML renderings of a board.
//! - [`rules`]: who may change what in which phase, and what a valid board and desk look like.
//! - [`recurrence`]: which past clusters a new one is like, by deterministic text similarity.
//! - [`presence`]: the server's ephemeral messages: who is here, writing, voting, ready; refusals.
//! - [`templates`]: the boards a facilitator can start from.
//! - [`timeline`]: the incident's timeline (events written on desks, published without an
//!   author) and the paste parser.
//! - [`text`]: the web links in a note, and counts with their noun.
//!
//! Everything here builds for `wasm32-unknown-unknown` as well as natively.
//!
//! Invariant: nothing here does I/O (no sockets, tasks, files, threads or clocks; callers pass time
//! in), so the same code runs in the server and in the browser (tidy: shared-sans-io).

pub mod alerts;
pub mod api;
pub mod chunks;
pub mod client;
pub mod edit;
pub mod export;
pub mod factors;
pub mod ids;
pub mod incident;
pub mod ledger;
pub mod postmortem;
pub mod presence;
pub mod protocol;
pub mod recurrence;
pub mod rules;
pub mod schema;
pub mod templates;
pub mod text;
pub mod timeline;

pub use automerge;
pub use autosurgeon;
