//! Hindsight's end-to-end tests: one binary, one module per topic, all driving real servers over
//! real sockets through the harness in `hindsight_tests` (participants who join over HTTP and sync
//! a desk and the board over one connection, viewers who sync the board alone, raw clients).
//!
//! - [`sync`]: participants converge through the server once notes are revealed; drafts' edits
//!   and deletions follow; every stored change is acknowledged; changes that arrive before their
//!   dependencies wait for them; the presence roster; client `ephemeral` messages are relayed,
//!   never stored.
//! - [`rules`]: every rule of a retro (issue 3): the forbidden change is refused, the board is
//!   unchanged and nobody else hears of it; and its allowed counterpart goes through. Every story
//!   also runs in a cluster, through nodes that do not own the board (issue 16).
//! - [`anonymity`]: an unrevealed note reaches nobody; after a whole retro the stored board links
//!   no note to anyone; named notes, when chosen, do carry names.
//! - [`voting`]: racing votes (two connections of one person among them) never break the budget
//!   or the per-item maximum, and the totals are the sum of the desks.
//! - [`grouping`]: racing grouping converges on a well-formed board; a note in conflict can still
//!   be moved.
//! - [`restart`]: drafts, published notes, participants and the facilitator role survive a
//!   graceful restart, a SIGKILL and an eviction from memory; participants come back with their
//!   desk id.
//! - [`bad_input`]: malformed and hostile input gets an error and a close, never a panic, and
//!   never disturbs other connections; a viewer's changes are refused; 50 refusals close a
//!   connection; one connection cannot be two participants.
//! - [`effectiveness`]: the ROTI, rated privately at Done and shown only as a histogram of at
//!   least three ratings; with fewer, nothing is published and no frame carries a rating.
//! - [`postmortem`]: the incident's facts and milestones on a board, and their rules.
//! - [`teams`]: a team's ledger across retros: actions reviewed and carried, the ledger's rules,
//!   retros finishing at once, offline status changes, `kill -9`, and the team API's errors.
//! - [`storage`]: the same storage tests against SQLite and a real Postgres (issue 16), and the
//!   server on Postgres through a `kill -9`.
//! - [`cluster`]: cluster mode (issue 16): three nodes on Postgres and NATS serve one board,
//!   its rules hold through every node; an owner killed, paused or restarted loses nothing.
//! - [`faults`]: what the server acknowledged survives `kill -9`, also while documents compact;
//!   clients whose connections are cut at random converge with nothing lost and nothing twice.
//! - [`fuzz`]: the wire decoder fed mutations of a corpus never panics and round-trips.
//! - [`limits`]: hostile clients cannot take the server down or grow its memory without bound,
//!   and every configured bound answers with a clear error.
//! - [`http_api`]: the JSON API (creating and joining boards), the pages and the health check.
//! - [`hardening`]: attacks a holder of a board link could make (issue 11), each refused before
//!   it costs the server: bombs, floods, forgeries, storms, slow and idle connections, secrets
//!   in logs.
//! - [`browser`]: the WASM client in headless Chromium.
//! - [`accessibility`]: in the browser, axe-core on every view, and a retro from the keyboard
//!   alone with the focus kept where each action happened.
//! - [`board_ui`]: in the browser, the board as a team uses it: arranging, sorting and finding
//!   cards, a postmortem on a laptop and a phone, the facilitator role across devices, timers,
//!   and the small things a first retro trips over.
//! - [`team_ui`]: in the browser, a team made from the home page runs two retros, the second
//!   reviewing the first's actions, and follows up on its page (charts, filters, statuses).
//! - [`typing`]: in the browser, what someone types survives whatever the others do meanwhile.
//! - [`tidy`]: the conventions that keep the code and ARCHITECTURE.md true to each other: doc
//!   lines, the code map, routes, close codes, the pinned protocol section, the absences.
//! - [`compat`]: samod, an automerge-repo implementation we did not write, reads a board as a
//!   viewer, and as a participant writes on its desk and sees the note published.

mod accessibility;
mod anonymity;
mod bad_input;
mod board_ui;
mod browser;
mod cluster;
mod compat;
mod effectiveness;
mod faults;
mod fuzz;
mod grouping;
mod hardening;
mod http_api;
mod limits;
mod postmortem;
mod restart;
mod rules;
mod storage;
mod sync;
mod team_ui;
mod teams;
mod tidy;
mod typing;
mod voting;
