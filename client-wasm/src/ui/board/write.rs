//! Write and Reveal: the template's columns, with this participant's private drafts and, once a
//! column is revealed, everyone's notes.

use std::collections::HashMap;

use hindsight_shared::edit;
use hindsight_shared::ids::{NoteId, published_note_id};
use hindsight_shared::rules;
use hindsight_shared::schema::{self, Draft, MAX_NOTE_CHARS, Phase};
use leptos::prelude::*;
use web_sys::KeyboardEvent;

use super::Ctx;

#[component]
pub fn Columns() -> impl IntoView {
    let ctx = Ctx::get();
    let columns = move || ctx.with_board(|b| b.columns.clone()).unwrap_or_default();
    view! {
        <Show when=move || ctx.phase() == Phase::Write>
            <p class="banner" id="privacy-banner">
                "Your notes are private: others see only how many you have written, until the facilitator reveals them."
            </p>
        </Show>
        <main class="columns">
            <For
                each=move || columns().into_iter().enumerate()
                key=|(_, column)| column.id.clone()
                children=move |(index, column)| view! { <ColumnView column index /> }
            />
        </main>
    }
}

/// A card on a column: a published note, or one of this participant's drafts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Card {
    key: String,
    text: String,
    author: Option<String>,
    /// The draft behind the card, if it is this participant's.
    draft: Option<String>,
    /// Not published yet: only this browser sees it.
    private: bool,
    created_at: i64,
}

#[component]
fn ColumnView(column: schema::Column, index: usize) -> impl IntoView {
    let ctx = Ctx::get();
    let column_id = column.id.clone();
    let cards = {
        let column_id = column_id.clone();
        move || {
            let mine: HashMap<String, Draft> = ctx.view.desk.with(|d| {
                d.drafts
                    .values()
                    .filter(|draft| draft.column == column_id)
                    .map(|draft| (published_note_id(&ctx.desk_id, &draft.id), draft.clone()))
                    .collect()
            });
            let mut cards: Vec<Card> = ctx
                .with_board(|b| {
                    b.notes_in(&column_id)
                        .map(|note| Card {
                            key: note.id.clone(),
                            text: note.text.clone(),
                            author: note.author.clone(),
                            draft: mine.get(&note.id).map(|d| d.id.clone()),
                            private: false,
                            created_at: note.created_at,
                        })
                        .collect()
                })
                .unwrap_or_default();
            let published: Vec<String> = cards.iter().map(|c| c.key.clone()).collect();
            let mut drafts: Vec<Card> = mine
                .into_iter()
                .filter(|(id, _)| !published.contains(id))
                .map(|(id, draft)| Card {
                    key: id,
                    text: draft.text,
                    author: None,
                    draft: Some(draft.id),
                    private: true,
                    created_at: draft.created_at,
                })
                .collect();
            drafts.sort_by_key(|c| (c.created_at, c.key.clone()));
            cards.extend(drafts);
            cards
        }
    };
    let count = {
        let cards = cards.clone();
        move || cards().len()
    };
    let revealed = {
        let column_id = column_id.clone();
        move || ctx.with_board(|b| b.is_revealed(&column_id)).unwrap_or(false)
    };
    let can_reveal = {
        let revealed = revealed.clone();
        move || ctx.is_facilitator() && ctx.phase() == Phase::Reveal && !revealed()
    };
    let reveal = {
        let column_id = column_id.clone();
        move |_| {
            let column_id = column_id.clone();
            ctx.edit_board(move |tx| edit::reveal(tx, &column_id))
        }
    };
    let section_id = column_id.clone();
    let button_id = column_id.clone();
    let composer = {
        let column_id = column_id.clone();
        let (prompt, title) = (column.prompt.clone(), column.title.clone());
        move || {
            view! { <Composer column=column_id.clone() prompt=prompt.clone() title=title.clone() /> }
        }
    };
    view! {
        <section class="column" data-column=section_id style=format!("--accent: var(--accent-{})", index % 6)>
            <header class="column-header">
                <h2 class="column-title">{column.title.clone()}</h2>
                <span class="count" title="Notes you can see">
                    {count}
                </span>
            </header>
            <Show when=can_reveal.clone()>
                <button class="reveal-column secondary" data-column=button_id.clone() on:click=reveal.clone()>
                    "Reveal this column"
                </button>
            </Show>
            <Show when=move || ctx.phase() == Phase::Reveal && revealed()>
                <span class="revealed-chip">"Revealed"</span>
            </Show>
            <Show when=move || rules::can_write_notes(ctx.phase())>{composer.clone()}</Show>
            <div class="notes">
                <For each=cards key=|card| card.clone() children=move |card| view! { <NoteCard card /> } />
            </div>
        </section>
    }
}

/// The box at the top of a column where one writes a note.
#[component]
fn Composer(column: String, prompt: String, title: String) -> impl IntoView {
    let ctx = Ctx::get();
    let draft = RwSignal::new(String::new());
    let add = move || {
        let text = draft.get_untracked().trim().to_owned();
        if text.is_empty() {
            return;
        }
        let note = Draft {
            id: NoteId::random().to_string(),
            column: column.clone(),
            text,
            created_at: js_sys::Date::now() as i64,
        };
        ctx.edit_desk(|tx| edit::add_draft(tx, &note));
        draft.set(String::new());
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
        <div class="composer">
            <textarea
                class="new-note"
                rows="2"
                maxlength=MAX_NOTE_CHARS
                placeholder=prompt
                aria-label=format!("New note in {title}")
                prop:value=move || draft.get()
                on:input=move |ev| draft.set(event_target_value(&ev))
                on:keydown=add_on_enter
            ></textarea>
            <button
                class="add-note primary"
                on:click=move |_| add()
                disabled=move || draft.with(|d| d.trim().is_empty())
            >
                "Add"
            </button>
        </div>
    }
}

#[component]
fn NoteCard(card: Card) -> impl IntoView {
    let ctx = Ctx::get();
    let editing = RwSignal::new(false);
    let text = RwSignal::new(card.text.clone());
    let draft_id = card.draft.clone();
    let editable = {
        let mine = draft_id.is_some();
        move || mine && rules::can_edit_notes(ctx.phase())
    };
    let save = {
        let draft_id = draft_id.clone();
        move || {
            let Some(id) = draft_id.clone() else { return };
            let new_text = text.get_untracked().trim().to_owned();
            if new_text.is_empty() {
                return;
            }
            ctx.edit_desk(|tx| edit::set_draft_text(tx, &id, &new_text));
            editing.set(false);
        }
    };
    let delete = {
        let draft_id = draft_id.clone();
        move |_| {
            if let Some(id) = draft_id.clone() {
                ctx.edit_desk(|tx| edit::delete_draft(tx, &id));
            }
        }
    };
    let shown = card.text.clone();
    view! {
        <article class="note" data-note=card.key.clone() class:private=card.private class:mine=card.draft.is_some()>
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
                            prop:value=move || text.get()
                            on:input=move |ev| text.set(event_target_value(&ev))
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
                    view! { <p class="note-text">{shown.clone()}</p> }.into_any()
                }
            }}
            <footer class="note-footer">
                {card.private.then_some(view! { <span class="tag private-tag" title="Only you can see this">"private"</span> })}
                {(!card.private && card.draft.is_some()).then_some(view! { <span class="tag">"yours"</span> })}
                {card.author.clone().map(|author| view! { <span class="tag author">{author}</span> })}
                <span class="spacer"></span>
                <Show when=editable>
                    <button class="edit-note icon" title="Edit" aria-label="Edit note" on:click=move |_| editing.set(true)>
                        "✎"
                    </button>
                    <button class="delete-note icon" title="Delete" aria-label="Delete note" on:click=delete.clone()>
                        "✕"
                    </button>
                </Show>
            </footer>
        </article>
    }
}
