//! Hindsight's browser client: a Leptos (client-side rendered) app compiled to WebAssembly.
//!
//! # Layout
//! - [`session`]: the local Automerge copy of a board, synced over a reconnecting WebSocket.
//! - [`storage`]: the offline copies of those documents, in IndexedDB.
//! - [`api`]: the JSON API (creating and joining boards).
//! - [`focus`]: keeps the focus and caret of a text field its row's move would take.
//! - [`recent`]: the boards this browser opened, for the home page's list.
//! - [`ui`]: the pages and components.
//!
//! The page path picks the page: `/` is the home page, `/b/{board_id}` a board, `/t/{team_id}`
//! a team.

pub mod api;
pub mod focus;
pub mod recent;
pub mod session;
pub mod storage;
pub mod ui;

use hindsight_shared::ids::DocumentId;
use leptos::prelude::*;
use wasm_bindgen::prelude::wasm_bindgen;

/// Entry point, called by the page's loader once the module is instantiated.
#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
    // The service worker keeps the app shell, so a board reopens without a network.
    let _ = window().navigator().service_worker().register("/sw.js");
    let path = window().location().pathname().unwrap_or_default();
    match path.strip_prefix("/b/") {
        Some(id) => {
            let id = id.trim_end_matches('/').parse::<DocumentId>().ok();
            mount_to_body(move || match id {
                Some(id) => view! { <ui::board::BoardPage id /> }.into_any(),
                None => view! { <NotFound /> }.into_any(),
            });
        }
        None => match path.strip_prefix("/t/").map(|id| id.trim_end_matches('/').parse::<DocumentId>()) {
            Some(Ok(id)) => mount_to_body(move || view! { <ui::team::TeamPage id /> }),
            Some(Err(_)) => mount_to_body(NotFound),
            None => mount_to_body(ui::home::Home),
        },
    }
}

#[component]
fn NotFound() -> impl IntoView {
    view! {
        <div class="page">
            <header class="topbar">
                <ui::Brand />
            </header>
            <main id="not-found" class="message">
                <h2>"This board does not exist"</h2>
                <p>"Check the link, or start a new board."</p>
                <a class="primary" href="/">
                    "New board"
                </a>
            </main>
        </div>
    }
}
