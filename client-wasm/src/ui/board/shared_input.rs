//! [`SharedInput`]: a one-line input bound to a text on the shared board (a cluster's name), that
//! saves what its user types and never lets someone else's edit take it from under their fingers.

use std::time::Duration;

use leptos::prelude::*;
use web_sys::KeyboardEvent;

/// How long a pause in typing saves what was typed so far.
const SAVE_AFTER_PAUSE: Duration = Duration::from_millis(600);

/// An input showing the shared text `value`, saving through `save`.
///
/// - What is typed is saved at each pause in typing, on Enter and when the field loses the
///   focus, so a name is never lost because its author clicked away or was never done.
/// - While its user types (from the first keystroke until the field loses the focus), a change
///   of `value` made by someone else does not replace the text, the caret or the selection; the
///   field shows the shared text again once its user leaves it.
/// - Escape shows the shared text (what was last saved, by anyone) and leaves the field.
#[component]
pub fn SharedInput(
    value: Signal<String>,
    save: Callback<String>,
    #[prop(into)] class: String,
    #[prop(into)] placeholder: String,
    #[prop(into)] label: Signal<String>,
    maxlength: usize,
) -> impl IntoView {
    let shown = RwSignal::new(value.get_untracked());
    let typing = RwSignal::new(false);
    // Bumped by every keystroke: a scheduled save runs only if no keystroke came after it.
    let keystrokes = StoredValue::new(0_u64);
    Effect::new(move |_| {
        let shared = value.get();
        if !typing.get_untracked() {
            shown.set(shared);
        }
    });
    let commit = move || {
        let text = shown.get_untracked();
        if text.trim() != value.get_untracked().trim() {
            save.run(text.trim().to_owned());
        }
    };
    let on_input = move |ev| {
        shown.set(event_target_value(&ev));
        typing.set(true);
        keystrokes.update_value(|n| *n += 1);
        let at = keystrokes.get_value();
        set_timeout(
            move || {
                if keystrokes.try_get_value() == Some(at) && typing.get_untracked() {
                    commit();
                }
            },
            SAVE_AFTER_PAUSE,
        );
    };
    let leave = move || {
        if typing.get_untracked() {
            commit();
            typing.set(false);
        }
        shown.set(value.get_untracked());
    };
    let on_keydown = move |ev: KeyboardEvent| match ev.key().as_str() {
        "Enter" => {
            ev.prevent_default();
            commit();
        }
        "Escape" => {
            typing.set(false);
            shown.set(value.get_untracked());
            let _ = event_target::<web_sys::HtmlElement>(&ev).blur();
        }
        _ => {}
    };
    view! {
        <input
            class=class
            type="text"
            placeholder=placeholder
            maxlength=maxlength
            aria-label=label
            prop:value=move || shown.get()
            on:input=on_input
            on:keydown=on_keydown
            on:blur=move |_| leave()
        />
    }
}
