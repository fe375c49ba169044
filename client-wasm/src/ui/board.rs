//! The board page: the template's columns, their notes, the composer, and the connection indicator.

use hindsight_shared::ids::{DocumentId, NoteId};
use hindsight_shared::schema::{self, Column, MAX_NOTE_CHARS, Note};
use hindsight_shared::templates;
use leptos::prelude::*;
use web_sys::KeyboardEvent;

use crate::session::{BoardSession, Status};
use crate::ui::Brand;

type Session = StoredValue<BoardSession, LocalStorage>;

/// Takes the facilitator key out of the URL fragment (`#key=...`) into this browser's storage,
/// so the address bar shows the plain link to share. True if this browser holds the key.
fn remember_facilitator_key(board: DocumentId) -> bool {
    let storage_key = format!("hindsight:facilitator:{board}");
    let storage = window().local_storage().ok().flatten();
    let location = window().location();
    if let Some(key) = location.hash().ok().and_then(|h| h.strip_prefix("#key=").map(str::to_owned)) {
        if let Some(storage) = &storage {
            let _ = storage.set_item(&storage_key, &key);
        }
        if let Ok(history) = window().history() {
            let path = location.pathname().unwrap_or_default();
            let _ = history.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&path));
        }
        return true;
    }
    storage.and_then(|s| s.get_item(&storage_key).ok().flatten()).is_some()
}

fn now_ms() -> i64 {
    js_sys::Date::now() as i64
}

#[component]
pub fn BoardPage(id: DocumentId) -> impl IntoView {
    let facilitator = remember_facilitator_key(id);
    let session = BoardSession::start(id);
    let view = session.view;
    let session: Session = StoredValue::new_local(session);
    let board = view.board;

    let title = move || board.with(|b| b.as_ref().map(|b| b.title.clone()).unwrap_or_default());
    let template_name = move || {
        board.with(|b| b.as_ref().and_then(|b| templates::find(&b.template)).map(|t| t.name).unwrap_or_default())
    };
    Effect::new(move |_| {
        let t = title();
        if !t.is_empty() {
            document().set_title(&format!("{t} · Hindsight"));
        }
    });

    let copied = RwSignal::new(false);
    let copy_link = move |_| {
        let link = window().location().href().unwrap_or_default();
        let _ = window().navigator().clipboard().write_text(&link);
        copied.set(true);
        set_timeout(move || copied.set(false), std::time::Duration::from_secs(2));
    };

    view! {
        <div class="page board-page">
            <header class="topbar">
                <Brand />
                <div class="board-heading">
                    <h1 id="board-title">{title}</h1>
                    <span class="template-label">{template_name}</span>
                </div>
                <div class="topbar-actions">
                    <Show when=move || facilitator>
                        <span class="badge" title="This browser holds the facilitator key">
                            "Facilitator"
                        </span>
                    </Show>
                    <ConnectionIndicator status=view.status unsynced=view.unsynced />
                    <button id="share" class="secondary" on:click=copy_link>
                        {move || if copied.get() { "Link copied" } else { "Copy link" }}
                    </button>
                </div>
            </header>
            {move || {
                if view.unavailable.get() {
                    view! {
                        <main id="not-found" class="message">
                            <h2>"This board does not exist"</h2>
                            <p>"Check the link, or start a new board."</p>
                            <a class="primary" href="/">
                                "New board"
                            </a>
                        </main>
                    }
                        .into_any()
                } else if board.with(Option::is_none) {
                    view! {
                        <main class="message loading">
                            <p>"Loading the board…"</p>
                        </main>
                    }
                        .into_any()
                } else {
                    view! { <Columns session board /> }.into_any()
                }
            }}
        </div>
    }
}

/// Connected, reconnecting or offline, and whether local edits are waiting to sync.
#[component]
fn ConnectionIndicator(status: RwSignal<Status>, unsynced: RwSignal<bool>) -> impl IntoView {
    let label = move || match (status.get(), unsynced.get()) {
        (Status::Connecting, _) => "Connecting…",
        (Status::Connected, true) => "Saving…",
        (Status::Connected, false) => "Live",
        (Status::Reconnecting, _) => "Reconnecting…",
        (Status::Offline, _) => "Offline — edits are kept",
    };
    view! {
        <span
            id="connection"
            class="connection"
            data-state=move || status.get().as_str()
            data-unsynced=move || unsynced.get().to_string()
            role="status"
        >
            <span class="dot"></span>
            {label}
        </span>
    }
}

#[component]
fn Columns(session: Session, board: RwSignal<Option<schema::Board>>) -> impl IntoView {
    let columns = move || board.with(|b| b.as_ref().map(|b| b.columns.clone()).unwrap_or_default());
    view! {
        <main class="columns">
            <For
                each=move || columns().into_iter().enumerate()
                key=|(_, column)| column.id.clone()
                children=move |(index, column)| view! { <ColumnView session board column index /> }
            />
        </main>
    }
}

#[component]
fn ColumnView(session: Session, board: RwSignal<Option<schema::Board>>, column: Column, index: usize) -> impl IntoView {
    let column_id = column.id.clone();
    let notes = {
        let column_id = column_id.clone();
        move || {
            board.with(|b| b.as_ref().map(|b| b.notes_in(&column_id).cloned().collect::<Vec<_>>()).unwrap_or_default())
        }
    };
    let count = {
        let notes = notes.clone();
        move || notes().len()
    };
    let draft = RwSignal::new(String::new());
    let add = {
        let column_id = column_id.clone();
        move || {
            let text = draft.get_untracked().trim().to_owned();
            if text.is_empty() {
                return;
            }
            let note = Note {
                id: NoteId::random().to_string(),
                column: column_id.clone(),
                text,
                created_at: now_ms(),
                cluster: None,
            };
            let added = session.with_value(|s| s.change(|tx| schema::add_note(tx, &note)));
            match added {
                Ok(()) => draft.set(String::new()),
                Err(e) => leptos::logging::warn!("hindsight: could not add the note: {e}"),
            }
        }
    };
    let add_on_enter = {
        let add = add.clone();
        move |ev: KeyboardEvent| {
            if ev.key() == "Enter" && !ev.shift_key() {
                ev.prevent_default();
                add();
            }
        }
    };
    view! {
        <section class="column" data-column=column_id.clone() style=format!("--accent: var(--accent-{})", index % 6)>
            <header class="column-header">
                <h2 class="column-title">{column.title.clone()}</h2>
                <span class="count" title="Notes in this column">{count}</span>
            </header>
            <div class="composer">
                <textarea
                    class="new-note"
                    rows="2"
                    maxlength=MAX_NOTE_CHARS
                    placeholder=column.prompt.clone()
                    aria-label=format!("New note in {}", column.title)
                    prop:value=move || draft.get()
                    on:input=move |ev| draft.set(event_target_value(&ev))
                    on:keydown=add_on_enter
                ></textarea>
                <button class="add-note primary" on:click=move |_| add() disabled=move || draft.with(|d| d.trim().is_empty())>
                    "Add"
                </button>
            </div>
            <div class="notes">
                <For
                    each=notes
                    key=|note| (note.id.clone(), note.text.clone())
                    children=move |note| view! { <NoteCard session note /> }
                />
            </div>
        </section>
    }
}

#[component]
fn NoteCard(session: Session, note: Note) -> impl IntoView {
    let editing = RwSignal::new(false);
    let draft = RwSignal::new(note.text.clone());
    let id = NoteId::from(note.id.as_str());
    let save = {
        let id = id.clone();
        move || {
            let text = draft.get_untracked().trim().to_owned();
            if text.is_empty() {
                return;
            }
            let saved = session.with_value(|s| s.change(|tx| schema::set_note_text(tx, &id, &text)));
            match saved {
                Ok(()) => editing.set(false),
                Err(e) => leptos::logging::warn!("hindsight: could not save the note: {e}"),
            }
        }
    };
    let delete = {
        let id = id.clone();
        move |_| {
            if let Err(e) = session.with_value(|s| s.change(|tx| schema::delete_note(tx, &id))) {
                leptos::logging::warn!("hindsight: could not delete the note: {e}");
            }
        }
    };
    let text = note.text.clone();
    view! {
        <article class="note" data-note=note.id.clone()>
            {move || {
                if editing.get() {
                    let save_on_enter = {
                        let save = save.clone();
                        move |ev: KeyboardEvent| {
                            if ev.key() == "Enter" && !ev.shift_key() {
                                ev.prevent_default();
                                save();
                            } else if ev.key() == "Escape" {
                                editing.set(false);
                            }
                        }
                    };
                    let save = save.clone();
                    view! {
                        <textarea
                            class="note-editor"
                            rows="3"
                            maxlength=MAX_NOTE_CHARS
                            autofocus
                            prop:value=move || draft.get()
                            on:input=move |ev| draft.set(event_target_value(&ev))
                            on:keydown=save_on_enter
                        ></textarea>
                        <div class="note-actions">
                            <button class="cancel-edit secondary" on:click=move |_| editing.set(false)>
                                "Cancel"
                            </button>
                            <button class="save-note primary" on:click=move |_| save()>
                                "Save"
                            </button>
                        </div>
                    }
                        .into_any()
                } else {
                    view! { <p class="note-text">{text.clone()}</p> }.into_any()
                }
            }}
            <footer class="note-footer">
                <button class="edit-note icon" title="Edit" aria-label="Edit note" on:click=move |_| editing.set(true)>
                    "✎"
                </button>
                <button class="delete-note icon" title="Delete" aria-label="Delete note" on:click=delete>
                    "✕"
                </button>
            </footer>
        </article>
    }
}
