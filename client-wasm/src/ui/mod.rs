//! The Leptos components: the home page, the board page, the team page, and the pieces they share.

pub mod board;
pub mod chart;
pub mod home;
pub mod team;

use leptos::prelude::*;

/// The Hindsight wordmark, linking home.
#[component]
pub fn Brand() -> impl IntoView {
    view! {
        <a class="brand" href="/" aria-label="Hindsight home">
            <svg class="logo" viewBox="0 0 32 32" aria-hidden="true">
                <rect x="3" y="5" width="12" height="12" rx="3" class="logo-a"></rect>
                <rect x="17" y="5" width="12" height="12" rx="3" class="logo-b"></rect>
                <rect x="10" y="15" width="12" height="12" rx="3" class="logo-c"></rect>
            </svg>
            <span>"Hindsight"</span>
        </a>
    }
}
