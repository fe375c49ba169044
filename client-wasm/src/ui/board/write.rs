//! Write and Reveal: the template's columns, with this participant's private drafts and, once a
//! column is revealed, everyone's notes.

use std::collections::HashMap;

use hindsight_shared::edit;
use hindsight_shared::ids::{NoteId, published_note_id};
use hindsight_shared::rules;
use hindsight_shared::schema::{self, Draft, MAX_NOTE_CHARS, Phase};
use leptos::prelude::*;
use web_sys::{DragEvent, KeyboardEvent};

use super::arrange::{BoardTools, Dragged, Zone, matches_filter, move_card, nudge, zone};
use super::lanes::{LaneHeader, Lanes};
use super::{Ctx, Keyed, NoteText, Undo};

#[component]
pub fn Columns() -> impl IntoView {
    let ctx = Ctx::get();
    view! {
        <Show when=move || ctx.phase() == Phase::Write>
            <p class="banner" id="privacy-banner">
                "Your notes are private: others see only how many you have written, until the facilitator reveals them."
            </p>
        </Show>
        <Show when=move || ctx.phase() == Phase::Reveal>
            <BoardTools />
        </Show>
        <Lanes lane=move |id, column, _| view! { <ColumnView id column /> } />
    }
}

/// A card on a column: a published note, or one of this participant's drafts.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Card {
    text: String,
    author: Option<String>,
    /// The draft behind the card, if it is this participant's.
    draft: Option<String>,
    /// Not published yet: only this browser sees it.
    private: bool,
}

/// The cards of one column, keyed by the id the note has (or will have) on the board: a draft
/// keeps its card, and so its open editor, when it is published.
fn column_cards(ctx: Ctx, column: &str) -> Vec<(String, Card)> {
    let mut mine: HashMap<String, Draft> = ctx.view.desk.with(|d| {
        d.drafts
            .values()
            .filter(|draft| draft.column == column)
            .map(|draft| (published_note_id(&ctx.desk_id, &draft.id), draft.clone()))
            .collect()
    });
    let mut cards: Vec<(String, Card)> = ctx
        .with_board(|b| {
            b.notes_in(column)
                .map(|note| {
                    let draft = mine.remove(&note.id).map(|d| d.id);
                    let card = Card { text: note.text.clone(), author: note.author.clone(), draft, private: false };
                    (note.id.clone(), card)
                })
                .collect()
        })
        .unwrap_or_default();
    let mut drafts: Vec<(String, Draft)> = mine.into_iter().collect();
    drafts.sort_by(|(a, x), (b, y)| (x.created_at, a).cmp(&(y.created_at, b)));
    cards.extend(
        drafts
            .into_iter()
            .map(|(id, draft)| (id, Card { text: draft.text, author: None, draft: Some(draft.id), private: true })),
    );
    cards
}

#[component]
fn ColumnView(id: String, column: Memo<Option<schema::Column>>) -> impl IntoView {
    let ctx = Ctx::get();
    let cards = {
        let id = id.clone();
        Keyed::new(move || column_cards(ctx, &id))
    };
    let title = move || column.with(|c| c.as_ref().map(|c| c.title.clone()).unwrap_or_default());
    let prompt = move || column.with(|c| c.as_ref().map(|c| c.prompt.clone()).unwrap_or_default());
    let revealed = {
        let id = id.clone();
        ctx.part(move |b| b.is_revealed(&id))
    };
    let can_reveal = move || ctx.is_facilitator() && ctx.phase() == Phase::Reveal && !revealed.get();
    let reveal = {
        let id = id.clone();
        move |_| {
            ctx.edit_board(|tx| edit::reveal(tx, &id));
            ctx.announce(&format!("The column {} is revealed.", title()));
        }
    };
    let (button_id, composer_id, cards_column) = (id.clone(), id.clone(), id.clone());
    view! {
        <LaneHeader id column count=Signal::derive(move || cards.count()) counted="Notes you can see" />
        <Show when=can_reveal>
            <button class="reveal-column secondary" data-column=button_id.clone() on:click=reveal.clone()>
                "Reveal this column"
            </button>
        </Show>
        <Show when=move || ctx.phase() == Phase::Reveal && revealed.get()>
            <span class="revealed-chip">"Revealed"</span>
        </Show>
        <Show when=move || rules::can_write_notes(ctx.phase())>
            <Composer column=composer_id.clone() prompt=Signal::derive(prompt) title=Signal::derive(title) />
        </Show>
        <div class="notes">
            <For
                each=move || cards.order.get()
                key=|id| id.clone()
                children=move |id| {
                    let card = cards.row(id.clone());
                    view! { <NoteCard id card column=cards_column.clone() /> }
                }
            />
        </div>
    }
}

/// The box at the top of a column where one writes a note.
#[component]
fn Composer(column: String, prompt: Signal<String>, title: Signal<String>) -> impl IntoView {
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
                aria-label=move || format!("New note in {}", title.get())
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

/// A note on a column. Built once per note: its text, tags and tools follow the note, and an
/// open editor stays open (with what is typed in it) whatever else changes. Revealed notes can
/// be dragged (or moved with Alt+↑ / Alt+↓) within their column, for everyone.
#[component]
fn NoteCard(id: String, card: Memo<Option<Card>>, column: String) -> impl IntoView {
    let ctx = Ctx::get();
    let editing = RwSignal::new(false);
    let text = RwSignal::new(String::new());
    let drop_at = RwSignal::new(None::<Zone>);
    let field = move |read: fn(&Card) -> bool| move || card.with(|c| c.as_ref().is_some_and(read));
    let private = field(|c| c.private);
    let mine = field(|c| c.draft.is_some());
    let draft_id = move || card.with(|c| c.as_ref().and_then(|c| c.draft.clone()));
    let shown = Signal::derive(move || card.with(|c| c.as_ref().map(|c| c.text.clone()).unwrap_or_default()));
    let author = move || card.with(|c| c.as_ref().and_then(|c| c.author.clone()));
    let editable = move || mine() && rules::can_edit_notes(ctx.phase());
    let movable = move || !private() && rules::can_arrange(ctx.phase());
    let visible = move || matches_filter(ctx, &shown.get());
    let open_editor = move |_| {
        text.set(shown.get_untracked());
        editing.set(true);
    };
    let save = move || {
        let Some(id) = draft_id() else { return };
        let new_text = text.get_untracked().trim().to_owned();
        if new_text.is_empty() {
            return;
        }
        ctx.edit_desk(|tx| edit::set_draft_text(tx, &id, &new_text));
        editing.set(false);
    };
    let delete = move |_| {
        let Some(id) = draft_id() else { return };
        let Some(draft) = ctx.view.desk.with_untracked(|d| d.drafts.get(&id).cloned()) else { return };
        ctx.edit_desk(|tx| edit::delete_draft(tx, &id));
        ctx.offer_undo(Undo::Note(draft));
    };
    // The editor closes when the note can no longer be edited (the phase moved on).
    Effect::new(move |_| {
        if !editable() && editing.get_untracked() {
            editing.set(false);
        }
    });
    let save_on_enter = move |ev: KeyboardEvent| {
        if ev.key() == "Enter" && !ev.shift_key() {
            ev.prevent_default();
            save();
        } else if ev.key() == "Escape" {
            editing.set(false);
        }
    };
    let (drag_id, drop_column, key_column) = (id.clone(), column.clone(), column.clone());
    let (drop_id, key_id) = (id.clone(), id.clone());
    view! {
        <article
            class="note"
            data-note=id
            class:private=private
            class:mine=mine
            class:drop-before=move || drop_at.get() == Some(Zone::Before)
            class:drop-after=move || drop_at.get() == Some(Zone::After)
            hidden=move || !visible()
            draggable=move || (movable() && !editing.get()).to_string()
            tabindex=move || if movable() { "0" } else { "-1" }
            data-focus-home=""
            aria-keyshortcuts=move || movable().then_some("Alt+ArrowUp Alt+ArrowDown")
            on:keydown=move |ev: KeyboardEvent| {
                if !editing.get_untracked() {
                    nudge(ctx, &ev, &key_column, &key_id);
                }
            }
            on:dragstart=move |ev: DragEvent| {
                Dragged { cluster: false, id: drag_id.clone(), place: drag_id.clone(), column: column.clone() }.put(&ev);
            }
            on:dragover=move |ev: DragEvent| {
                if movable() {
                    ev.prevent_default();
                    drop_at.set(Some(zone(&ev, false)));
                }
            }
            on:dragleave=move |_| drop_at.set(None)
            on:drop=move |ev: DragEvent| {
                ev.prevent_default();
                let at = drop_at.get_untracked();
                drop_at.set(None);
                if let (Some(dragged), Some(at)) = (Dragged::take(&ev), at)
                    && dragged.column == drop_column
                {
                    move_card(ctx, &drop_column, &dragged.place, &drop_id, at == Zone::After);
                }
            }
        >
            <Show when=move || editing.get() fallback=move || view! { <NoteText text=shown /> }>
                <textarea
                    class="note-editor"
                    rows="3"
                    maxlength=MAX_NOTE_CHARS
                    autofocus
                    aria-label="Edit note"
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
            </Show>
            <footer class="note-footer">
                <Show when=private>
                    <span class="tag private-tag" title="Only you can see this">"private"</span>
                </Show>
                <Show when=move || !private() && mine()>
                    <span class="tag">"yours"</span>
                </Show>
                {move || author().map(|author| view! { <span class="tag author">{author}</span> })}
                <span class="spacer"></span>
                <Show when=editable>
                    <button class="edit-note icon" title="Edit" aria-label="Edit note" on:click=open_editor>
                        "✎"
                    </button>
                    <button class="delete-note icon" title="Delete" aria-label="Delete note" on:click=delete>
                        "✕"
                    </button>
                </Show>
            </footer>
        </article>
    }
}
