//! Hindsight's end-to-end tests: one binary, one module per topic, all driving real servers over
//! real sockets through the harness in `hindsight_tests`.
//!
//! - [`sync`]: peers converge through the server; edits and deletes travel.
//! - [`restart`]: accepted changes survive a graceful restart of the server process.
//! - [`bad_input`]: malformed and hostile input gets an error and a close, never a panic, and
//!   never disturbs other connections.
//! - [`http_api`]: the JSON API, the pages and the health check.
//! - [`browser`]: the WASM client in headless Chromium: two browsers on one board, the home page,
//!   offline edits, unknown boards.
//! - [`compat`]: samod, an automerge-repo implementation we did not write, syncs a board with us.

mod bad_input;
mod browser;
mod compat;
mod http_api;
mod restart;
mod sync;
