//! Group, Vote and Discuss: every cluster and every lone note as a card.
//!
//! Grouping works by drag and drop, and without a mouse too: "Group…" picks a note (or
//! "Merge…" a cluster), then "Put here" on another card drops it there.

use hindsight_shared::edit;
use hindsight_shared::ids::NoteId;
use hindsight_shared::rules;
use hindsight_shared::schema::{Board, MAX_CLUSTER_TITLE_CHARS, Note, Phase, VoteItem};
use leptos::prelude::*;
use web_sys::DragEvent;

use super::actions::ActionList;
use super::shared_input::SharedInput;
use super::{Ctx, Keyed};

/// How long an item is discussed by default once focused.
const ITEM_TIMEBOX_MS: i64 = 5 * 60_000;

/// What the participant picked up to move.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pick {
    Note(String),
    Cluster(String),
}

/// The state of this view that its cards share.
#[derive(Clone, Copy)]
struct ItemsCtx {
    picking: RwSignal<Option<Pick>>,
}

/// Items in the order the phase wants: by votes when discussing, else clusters (biggest first)
/// then lone notes by column.
fn ordered(board: &Board) -> Vec<(VoteItem, i64)> {
    if board.phase >= Phase::Discuss {
        return board.ranked_items();
    }
    let column_index = |column: &str| board.columns.iter().position(|c| c.id == column).unwrap_or(usize::MAX);
    let mut items: Vec<(VoteItem, i64)> = board.vote_items().into_iter().map(|i| (i, 0)).collect();
    items.sort_by_key(|(item, _)| match item {
        VoteItem::Cluster(cluster, notes) => (0, usize::MAX - notes.len(), 0, cluster.id.clone()),
        VoteItem::Note(note) => (1, 0, column_index(&note.column), note.id.clone()),
    });
    items
}

/// Drops what was picked (or dragged) onto the card of item `target`.
fn drop_on(ctx: Ctx, pick: Pick, target: String) {
    let Some(board) = ctx.view.board.get_untracked() else { return };
    match pick {
        Pick::Note(note) => ctx.edit_board(|tx| edit::group(tx, &board, &note, &target, NoteId::random().as_str())),
        Pick::Cluster(cluster) if board.clusters.contains_key(&target) => {
            ctx.edit_board(|tx| edit::merge_clusters(tx, &board, &cluster, &target))
        }
        // A cluster dropped on a lone note takes the note in.
        Pick::Cluster(cluster) => ctx.edit_board(|tx| edit::group(tx, &board, &target, &cluster, "")),
    }
}

#[component]
pub fn Items() -> impl IntoView {
    let ctx = Ctx::get();
    let items_ctx = ItemsCtx { picking: RwSignal::new(None) };
    provide_context(items_ctx);
    let items = Keyed::new(move || {
        ctx.with_board(|b| ordered(b).into_iter().map(|(item, votes)| (item.id().to_owned(), (item, votes))).collect())
            .unwrap_or_default()
    });
    view! {
        <div class="items-phase">
            {move || match ctx.phase() {
                Phase::Group => view! { <GroupHeader /> }.into_any(),
                Phase::Vote => view! { <VoteHeader /> }.into_any(),
                _ => view! { <Focused /> }.into_any(),
            }}
            <Show when=move || items.is_empty()>
                <p class="empty">"No notes were revealed on this board."</p>
            </Show>
            <main class="items">
                <For
                    each=move || items.order.get()
                    key=|id| id.clone()
                    children=move |id| {
                        let row = items.row(id.clone());
                        view! { <ItemCard id row /> }
                    }
                />
            </main>
        </div>
    }
}

#[component]
fn GroupHeader() -> impl IntoView {
    let picking = expect_context::<ItemsCtx>().picking;
    view! {
        <div class="phase-tools">
            {move || match picking.get() {
                None => {
                    view! {
                        <p>"Drag a note onto another note or group — or use “Group…” and then “Put here”."</p>
                    }
                        .into_any()
                }
                Some(_) => {
                    view! {
                        <p class="picking">
                            "Choose where it goes: “Put here” on another card. "
                            <button id="cancel-pick" class="secondary" on:click=move |_| picking.set(None)>
                                "Cancel"
                            </button>
                        </p>
                    }
                        .into_any()
                }
            }}
        </div>
    }
}

#[component]
fn VoteHeader() -> impl IntoView {
    let ctx = Ctx::get();
    let budget = ctx.part(|b| b.settings.vote_budget);
    let per_item = ctx.part(|b| b.settings.max_votes_per_item);
    let used = ctx.desk_part(|d| d.votes_cast());
    let abstain = ctx.desk_part(|d| d.abstain);
    let (budget, per_item, used) = (move || budget.get(), move || per_item.get(), move || used.get());
    view! {
        <div class="phase-tools vote-tools">
            <p>
                <strong id="dots-left" data-left=move || budget() - used()>
                    {move || format!("{} of {} dots left", budget() - used(), budget())}
                </strong>
                {move || format!(" · at most {} per item · your votes stay private until voting closes", per_item())}
            </p>
            <label class="abstain">
                <input
                    id="abstain"
                    type="checkbox"
                    prop:checked=move || abstain.get()
                    disabled=move || { used() > 0 }
                    on:change=move |ev| {
                        let on = event_target_checked(&ev);
                        ctx.edit_desk(|tx| edit::set_abstain(tx, on))
                    }
                />
                " I abstain"
            </label>
        </div>
    }
}

/// Discuss: the item in focus, its actions, and the facilitator's tools.
#[component]
fn Focused() -> impl IntoView {
    let ctx = Ctx::get();
    let focus = ctx.part(|b| b.focus.clone());
    let title = ctx.part(move |b| b.focus.as_ref().and_then(|id| b.item_title(id)).unwrap_or_default());
    let votes = ctx.part(|b| b.focus.as_ref().and_then(|id| b.vote_totals.get(id).copied()).unwrap_or(0));
    view! {
        <section class="focused" id="focused" class:empty=move || focus.with(Option::is_none)>
            {move || match focus.get() {
                None => {
                    view! {
                        <p class="muted">
                            {move || if ctx.is_facilitator() {
                                "Pick an item below to discuss it with everyone: “Discuss this”."
                            } else {
                                "The facilitator will pick the item to discuss."
                            }}
                        </p>
                    }
                        .into_any()
                }
                Some(id) => {
                    view! {
                        <div class="focused-head">
                            <span class="label">"Now discussing"</span>
                            <h2 id="focused-title">{move || title.get()}</h2>
                            <span class="votes-badge">{move || format!("{} dots", votes.get())}</span>
                        </div>
                        <ActionList for_item=Some(id) />
                    }
                        .into_any()
                }
            }}
        </section>
    }
}

/// A card: a cluster with its notes, or a lone note. Built once per item, then updated in place.
#[component]
fn ItemCard(id: String, row: Memo<Option<(VoteItem, i64)>>) -> impl IntoView {
    let ctx = Ctx::get();
    let picking = expect_context::<ItemsCtx>().picking;
    let is_cluster = row.with_untracked(|r| matches!(r, Some((VoteItem::Cluster(..), _))));
    let votes = Memo::new(move |_| row.with(|r| r.as_ref().map_or(0, |(_, v)| *v)));
    let over = RwSignal::new(false);
    let focused = {
        let id = id.clone();
        ctx.part(move |b| b.focus.as_deref() == Some(id.as_str()))
    };
    let target = id.clone();
    let on_drop = move |ev: DragEvent| {
        ev.prevent_default();
        over.set(false);
        let data = ev.data_transfer().and_then(|d| d.get_data("text/plain").ok()).unwrap_or_default();
        let pick = match data.split_once(':') {
            Some(("note", id)) => Pick::Note(id.to_owned()),
            Some(("cluster", id)) => Pick::Cluster(id.to_owned()),
            _ => return,
        };
        drop_on(ctx, pick, target.clone());
    };
    let grouping = move || ctx.phase() == Phase::Group;
    let pick_target = {
        let id = id.clone();
        move || match picking.get() {
            Some(Pick::Note(n)) => n != id,
            Some(Pick::Cluster(c)) => c != id,
            None => false,
        }
    };
    let body = if is_cluster {
        view! { <ClusterBody id=id.clone() row /> }.into_any()
    } else {
        let note = Memo::new(move |_| match row.get() {
            Some((VoteItem::Note(note), _)) => Some(note),
            _ => None,
        });
        view! { <NoteLine note in_cluster=false /> }.into_any()
    };
    view! {
        <article
            class="item"
            class:cluster=is_cluster
            class:lone=!is_cluster
            class:drop-over=move || over.get()
            class:pick-target=pick_target
            class:focused=move || focused.get()
            data-item=id.clone()
            on:dragover=move |ev: DragEvent| {
                if grouping() {
                    ev.prevent_default();
                    over.set(true);
                }
            }
            on:dragleave=move |_| over.set(false)
            on:drop=on_drop
        >
            {body}
            <footer class="item-footer">
                {
                    let id = id.clone();
                    move || match ctx.phase() {
                        Phase::Group => view! { <GroupTools id=id.clone() is_cluster /> }.into_any(),
                        Phase::Vote => view! { <Dots id=id.clone() /> }.into_any(),
                        _ => view! { <DiscussTools id=id.clone() votes /> }.into_any(),
                    }
                }
            </footer>
        </article>
    }
}

/// A cluster's name (a field while grouping) and its notes.
#[component]
fn ClusterBody(id: String, row: Memo<Option<(VoteItem, i64)>>) -> impl IntoView {
    let ctx = Ctx::get();
    let title = Memo::new(move |_| match row.with(|r| r.as_ref().map(|(item, _)| item.clone())) {
        Some(VoteItem::Cluster(cluster, _)) => cluster.title,
        _ => String::new(),
    });
    let notes = Keyed::new(move || match row.with(|r| r.as_ref().map(|(item, _)| item.clone())) {
        Some(VoteItem::Cluster(_, notes)) => notes.into_iter().map(|n| (n.id.clone(), n)).collect(),
        _ => Vec::new(),
    });
    let save = Callback::new(move |text: String| {
        ctx.edit_board(|tx| edit::set_cluster_title(tx, &id, &text));
    });
    view! {
        <header class="cluster-header" data-title=move || title.get()>
            {move || {
                if ctx.phase() == Phase::Group {
                    view! {
                        <SharedInput
                            value=title.into()
                            save
                            class="cluster-title"
                            placeholder="Name the root cause"
                            label="Root cause"
                            maxlength=MAX_CLUSTER_TITLE_CHARS
                        />
                    }
                        .into_any()
                } else {
                    view! {
                        <h3 class="cluster-name">
                            {move || title.with(|t| if t.trim().is_empty() { "Untitled group".to_owned() } else { t.clone() })}
                        </h3>
                    }
                        .into_any()
                }
            }}
            <span class="count" title="Notes in this group">{move || notes.len()}</span>
        </header>
        <ul class="cluster-notes">
            <For
                each=move || notes.order.get()
                key=|id| id.clone()
                children=move |id| {
                    let note = notes.row(id);
                    view! {
                        <li>
                            <NoteLine note in_cluster=true />
                        </li>
                    }
                }
            />
        </ul>
    }
}

/// Grouping: pick this card up ("Group…" / "Merge…"), or drop what is picked here.
#[component]
fn GroupTools(id: String, is_cluster: bool) -> impl IntoView {
    let ctx = Ctx::get();
    let picking = expect_context::<ItemsCtx>().picking;
    let target = {
        let id = id.clone();
        Memo::new(move |_| match picking.get() {
            Some(Pick::Note(n)) => n != id,
            Some(Pick::Cluster(c)) => c != id,
            None => false,
        })
    };
    let pick = {
        let id = id.clone();
        move |_| picking.set(Some(if is_cluster { Pick::Cluster(id.clone()) } else { Pick::Note(id.clone()) }))
    };
    let put = move |_| {
        if let Some(pick) = picking.get_untracked() {
            picking.set(None);
            drop_on(ctx, pick, id.clone());
        }
    };
    view! {
        <button
            class=if is_cluster { "merge-cluster chip-button" } else { "group-note chip-button" }
            hidden=move || target.get()
            on:click=pick
        >
            {if is_cluster { "Merge…" } else { "Group…" }}
        </button>
        <button class="put-here primary" hidden=move || !target.get() on:click=put>
            "Put here"
        </button>
    }
}

/// A note's text with its column, draggable while grouping, with "Ungroup" inside a cluster.
#[component]
fn NoteLine(note: Memo<Option<Note>>, in_cluster: bool) -> impl IntoView {
    let ctx = Ctx::get();
    let id = note.with_untracked(|n| n.as_ref().map(|n| n.id.clone()).unwrap_or_default());
    let column_id = Memo::new(move |_| note.with(|n| n.as_ref().map(|n| n.column.clone()).unwrap_or_default()));
    let column = ctx.part(move |b| {
        column_id.with(|c| b.columns.iter().position(|col| &col.id == c).map(|i| (i, b.columns[i].title.clone())))
    });
    let text = move || note.with(|n| n.as_ref().map(|n| n.text.clone()).unwrap_or_default());
    let author = move || note.with(|n| n.as_ref().and_then(|n| n.author.clone()));
    let drag_id = id.clone();
    let ungroup_id = id.clone();
    view! {
        <div
            class="note"
            data-note=id
            style=move || format!("--accent: var(--accent-{})", column.with(|c| c.as_ref().map_or(0, |(i, _)| i % 6)))
            draggable=move || (ctx.phase() == Phase::Group).to_string()
            on:dragstart=move |ev: DragEvent| {
                if let Some(data) = ev.data_transfer() {
                    let _ = data.set_data("text/plain", &format!("note:{drag_id}"));
                }
            }
        >
            <p class="note-text">{text}</p>
            <div class="note-meta">
                <span class="tag column-tag">{move || column.with(|c| c.as_ref().map(|(_, t)| t.clone()))}</span>
                {move || author().map(|a| view! { <span class="tag author">{a}</span> })}
                <Show when=move || in_cluster && ctx.phase() == Phase::Group>
                    {
                        let ungroup_id = ungroup_id.clone();
                        view! {
                            <button
                                class="ungroup-note chip-button"
                                on:click=move |_| {
                                    let id = ungroup_id.clone();
                                    ctx.edit_board(move |tx| edit::ungroup(tx, &id))
                                }
                            >
                                "Ungroup"
                            </button>
                        }
                    }
                </Show>
            </div>
        </div>
    }
}

/// This participant's dots on one item.
#[component]
fn Dots(id: String) -> impl IntoView {
    let ctx = Ctx::get();
    let mine = {
        let id = id.clone();
        ctx.desk_part(move |d| d.votes.get(&id).copied().unwrap_or(0))
    };
    let budget = ctx.part(|b| b.settings.vote_budget);
    let cast = ctx.desk_part(|d| d.votes_cast());
    let left = Memo::new(move |_| budget.get() - cast.get());
    let max = ctx.part(|b| b.settings.max_votes_per_item);
    let abstain = ctx.desk_part(|d| d.abstain);
    let set = move |dots: i64| {
        let id = id.clone();
        ctx.edit_desk(move |tx| edit::set_votes(tx, &id, dots))
    };
    let down = set.clone();
    view! {
        <div class="dots">
            <button
                class="vote-down icon"
                aria-label="Take a dot back"
                disabled=move || mine.get() == 0
                on:click=move |_| down(mine.get_untracked() - 1)
            >
                "−"
            </button>
            <span class="my-dots" data-dots=move || mine.get()>
                {move || (0..max.get()).map(|i| if i < mine.get() { "●" } else { "○" }).collect::<String>()}
            </span>
            <button
                class="vote-up icon"
                aria-label="Give a dot"
                disabled=move || {
                    mine.get() >= max.get() || left.get() <= 0 || abstain.get() || !rules::can_vote(ctx.phase())
                }
                on:click=move |_| set(mine.get_untracked() + 1)
            >
                "+"
            </button>
        </div>
    }
}

/// Discuss: the item's total, and the facilitator's "Discuss this".
#[component]
fn DiscussTools(id: String, votes: Memo<i64>) -> impl IntoView {
    let ctx = Ctx::get();
    let can_focus = move || ctx.is_facilitator() && rules::can_edit_actions(ctx.phase());
    view! {
        <span class="votes" data-votes=move || votes.get() title="Dots">
            {move || format!("● {}", votes.get())}
        </span>
        <Show when=can_focus>
            {
                let id = id.clone();
                view! {
                    <button
                        class="focus-item chip-button"
                        title="Focus this item for everyone, with a 5-minute timebox"
                        on:click=move |_| {
                            let id = id.clone();
                            let now = js_sys::Date::now() as i64 + ctx.view.clock_offset.get_untracked();
                            ctx.edit_board(move |tx| {
                                edit::set_focus(tx, Some(&id))?;
                                edit::start_timer(tx, ITEM_TIMEBOX_MS, now)
                            })
                        }
                    >
                        "Discuss this"
                    </button>
                }
            }
        </Show>
    }
}
