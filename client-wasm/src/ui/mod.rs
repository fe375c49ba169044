//! The Leptos components: the home page, the board page, the team page, and the pieces they share.

pub mod board;
pub mod chart;
pub mod home;
pub mod team;

use leptos::prelude::*;

/// Opens what was just made, its key in the link's fragment (which never reaches a server), or
/// says why it was not made and lets the form be sent again.
pub fn open_made(made: Result<(String, String), String>, error: RwSignal<Option<String>>, busy: RwSignal<bool>) {
    match made {
        Ok((page, key)) => {
            let _ = window().location().assign(&format!("{page}#key={key}"));
        }
        Err(message) => {
            error.set(Some(message));
            busy.set(false);
        }
    }
}

/// A form's error, said as soon as it is shown.
#[component]
pub fn FormError(error: RwSignal<Option<String>>) -> impl IntoView {
    view! {
        <Show when=move || error.get().is_some()>
            <p class="error" role="alert">
                {move || error.get()}
            </p>
        </Show>
    }
}

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
