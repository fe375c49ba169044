//! Arranging the cards of a column, shared live with everyone: drag a card above or below
//! another (or press Alt+↑ / Alt+↓ on it), sort every column by text or by dots, and find a
//! note on a big board (a filter of one's own, shared with nobody).

use hindsight_shared::edit::{self, SortBy};
use hindsight_shared::rules;
use leptos::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{DragEvent, KeyboardEvent};

use super::Ctx;

/// What a dragged card carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dragged {
    /// A lone note (`false`) or a cluster (`true`).
    pub cluster: bool,
    /// The note's or the cluster's id.
    pub id: String,
    /// The note whose place the card takes in its column (a cluster's anchor).
    pub place: String,
    pub column: String,
}

impl Dragged {
    const TYPE: &'static str = "text/plain";

    pub fn put(&self, ev: &DragEvent) {
        if let Some(data) = ev.data_transfer() {
            let kind = if self.cluster { "cluster" } else { "note" };
            let _ = data.set_data(Self::TYPE, &format!("{kind}\n{}\n{}\n{}", self.id, self.place, self.column));
            data.set_effect_allowed("move");
        }
    }

    pub fn take(ev: &DragEvent) -> Option<Self> {
        let text = ev.data_transfer()?.get_data(Self::TYPE).ok()?;
        let mut parts = text.split('\n');
        let cluster = match parts.next()? {
            "note" => false,
            "cluster" => true,
            _ => return None,
        };
        let (id, place, column) = (parts.next()?, parts.next()?, parts.next()?);
        Some(Self { cluster, id: id.to_owned(), place: place.to_owned(), column: column.to_owned() })
    }
}

/// Where over a card something is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    Before,
    After,
    /// Onto the card itself: grouping.
    Onto,
}

/// The zone under the pointer: the top and bottom quarters of a card put the dragged card
/// before or after it; the middle groups, where grouping is possible (else the halves decide).
pub fn zone(ev: &DragEvent, groupable: bool) -> Zone {
    let Some(card) = ev.current_target().and_then(|t| t.dyn_into::<web_sys::Element>().ok()) else {
        return Zone::Onto;
    };
    let rect = card.get_bounding_client_rect();
    let at = (f64::from(ev.client_y()) - rect.top()) / rect.height().max(1.0);
    match (groupable, at) {
        (true, at) if at < 0.25 => Zone::Before,
        (true, at) if at > 0.75 => Zone::After,
        (true, _) => Zone::Onto,
        (false, at) if at < 0.5 => Zone::Before,
        (false, _) => Zone::After,
    }
}

/// Moves the card sitting at note `moved` of `column` before (or, with `after`, after) the card
/// sitting at note `target`.
pub fn move_card(ctx: Ctx, column: &str, moved: &str, target: &str, after: bool) {
    let Some(board) = ctx.view.board.get_untracked() else { return };
    let order = board.places_in(column);
    let before =
        if after { order.iter().skip_while(|p| *p != target).nth(1).map(String::as_str) } else { Some(target) };
    if before == Some(moved) || !order.iter().any(|p| p == moved) {
        return;
    }
    let refs: Vec<&str> = order.iter().map(String::as_str).collect();
    ctx.edit_board(|tx| edit::move_note(tx, &board, &refs, moved, before));
}

/// Alt+↑ and Alt+↓ on a card move it up or down its column, for those who do not drag. True if
/// the key was one of those.
pub fn nudge(ctx: Ctx, ev: &KeyboardEvent, column: &str, place: &str) -> bool {
    if !ev.alt_key() || !matches!(ev.key().as_str(), "ArrowUp" | "ArrowDown") {
        return false;
    }
    ev.prevent_default();
    if !rules::can_arrange(ctx.phase()) {
        return true;
    }
    let Some(order) = ctx.with_board(|b| b.places_in(column)) else { return true };
    let Some(at) = order.iter().position(|p| p == place) else { return true };
    if ev.key() == "ArrowUp" {
        if let Some(target) = at.checked_sub(1).and_then(|i| order.get(i)) {
            move_card(ctx, column, place, target, false);
        }
    } else if let Some(target) = order.get(at + 1) {
        move_card(ctx, column, place, target, true);
    }
    true
}

/// The board's tools above the lanes: find a note, and sort every column for everyone.
#[component]
pub fn BoardTools() -> impl IntoView {
    let ctx = Ctx::get();
    let filter = ctx.filter;
    let counted = ctx.part(|b| !b.vote_totals.is_empty());
    let total = ctx.part(move |b| b.notes.len());
    let shown = move || {
        let needle = filter.get().to_lowercase();
        ctx.with_board(|b| b.notes.values().filter(|n| n.text.to_lowercase().contains(&needle)).count()).unwrap_or(0)
    };
    let sort = move |by: SortBy| {
        let Some(board) = ctx.view.board.get_untracked() else { return };
        ctx.edit_board(|tx| edit::sort(tx, &board, by));
        ctx.announce(match by {
            SortBy::Text => "Every column is sorted by text.",
            SortBy::Votes => "Every column is sorted by dots.",
        });
    };
    view! {
        <div class="board-tools" role="search">
            <input
                id="filter"
                type="search"
                placeholder="Find a note"
                aria-label="Find a note"
                prop:value=move || filter.get()
                on:input=move |ev| filter.set(event_target_value(&ev))
            />
            <Show when=move || !filter.with(String::is_empty)>
                <span class="muted small" id="filter-count" aria-live="polite">
                    {move || format!("{} of {} notes", shown(), total.get())}
                </span>
            </Show>
            <Show when=move || rules::can_arrange(ctx.phase())>
                <span class="sort" role="group" aria-label="Sort every column, for everyone">
                    <button id="sort-text" class="chip-button" on:click=move |_| sort(SortBy::Text)>
                        "Sort A–Z"
                    </button>
                    <Show when=move || counted.get()>
                        <button id="sort-votes" class="chip-button" on:click=move |_| sort(SortBy::Votes)>
                            "Sort by dots"
                        </button>
                    </Show>
                </span>
            </Show>
        </div>
    }
}

/// True if `text` matches this person's filter (case-insensitive); everything does without one.
pub fn matches_filter(ctx: Ctx, text: &str) -> bool {
    ctx.filter.with(|f| f.is_empty() || text.to_lowercase().contains(&f.to_lowercase()))
}
