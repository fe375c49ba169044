//! Group, Vote and Discuss: every cluster and every lone note as a card, in the lane of its
//! column (a cluster sits where the note it was made on sat), and in Discuss the agenda by dots.
//!
//! Grouping works by drag and drop, and without a mouse too: "Group…" picks a note (or
//! "Merge…" a cluster), then "Put here" on another card drops it there.

use hindsight_shared::edit;
use hindsight_shared::ids::NoteId;
use hindsight_shared::rules;
use hindsight_shared::schema::{MAX_CLUSTER_TITLE_CHARS, Note, Phase, VoteItem};
use leptos::prelude::*;
use web_sys::DragEvent;

use hindsight_shared::text;

use super::actions::ActionList;
use super::arrange::{BoardTools, Dragged, Zone, matches_filter, move_card, nudge, zone};
use super::lanes::{LaneHeader, Lanes};
use super::shared_input::SharedInput;
use super::{Ctx, Keyed, NoteText};

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

/// A card's data: the item, its dots (once counted), and the note whose place it takes.
type Row = (VoteItem, i64, String);

/// An item's key in a keyed list: its kind and its id, so that a cluster and a note can never
/// share a row, whatever ids a client chose.
fn item_key(item: &VoteItem) -> String {
    match item {
        VoteItem::Cluster(cluster, _) => format!("c:{}", cluster.id),
        VoteItem::Note(note) => format!("n:{}", note.id),
    }
}

/// True while something other than item `id` is picked up: `id` is where it can go.
fn is_pick_target(picking: RwSignal<Option<Pick>>, id: String) -> Memo<bool> {
    Memo::new(move |_| match picking.get() {
        Some(Pick::Note(n)) => n != id,
        Some(Pick::Cluster(c)) => c != id,
        None => false,
    })
}

/// Drops what was picked (or dragged) onto the card of item `target`, and returns the card the
/// two end up in (a cluster's id).
fn drop_on(ctx: Ctx, pick: Pick, target: String) -> Option<String> {
    let board = ctx.view.board.get_untracked()?;
    let into = match pick {
        Pick::Note(note) => {
            let target_note = board.notes.get(&target);
            let joined = board
                .clusters
                .contains_key(&target)
                .then(|| target.clone())
                .or_else(|| target_note.and_then(|n| board.cluster_of(n)).map(|c| c.id.clone()));
            let cluster = joined.unwrap_or_else(|| NoteId::random().to_string());
            ctx.edit_board(|tx| edit::group(tx, &board, &note, &target, &cluster));
            cluster
        }
        Pick::Cluster(cluster) if board.clusters.contains_key(&target) => {
            ctx.edit_board(|tx| edit::merge_clusters(tx, &board, &cluster, &target));
            target
        }
        // A cluster dropped on a lone note takes the note in.
        Pick::Cluster(cluster) => {
            ctx.edit_board(|tx| edit::group(tx, &board, &target, &cluster, ""));
            cluster
        }
    };
    ctx.announce("Grouped.");
    Some(into)
}

#[component]
pub fn Items() -> impl IntoView {
    let ctx = Ctx::get();
    let items_ctx = ItemsCtx { picking: RwSignal::new(None) };
    provide_context(items_ctx);
    let empty = ctx.part(|b| b.notes.is_empty());
    view! {
        <div class="items-phase">
            {move || match ctx.phase() {
                Phase::Group => view! { <GroupHeader /> }.into_any(),
                Phase::Vote => view! { <VoteHeader /> }.into_any(),
                _ => view! { <Focused /> <Agenda /> }.into_any(),
            }}
            <BoardTools />
            <Show when=move || empty.get()>
                <p class="empty">"No notes were revealed on this board."</p>
            </Show>
            <Lanes lane=move |id, column, _| view! { <ItemLane id column /> } />
        </div>
    }
}

/// One column's cards: its lone notes and the clusters that sit in it, in the group's order.
#[component]
fn ItemLane(id: String, column: Memo<Option<hindsight_shared::schema::Column>>) -> impl IntoView {
    let ctx = Ctx::get();
    let cards = {
        let id = id.clone();
        Keyed::new(move || {
            ctx.with_board(|b| {
                b.cards_in(&id)
                    .into_iter()
                    .map(|(item, place)| {
                        let votes = b.vote_totals.get(item.id()).copied().unwrap_or(0);
                        (item_key(&item), (item, votes, place))
                    })
                    .collect()
            })
            .unwrap_or_default()
        })
    };
    let lane = id.clone();
    view! {
        <LaneHeader id column count=Signal::derive(move || cards.count()) counted="Cards in this column" />
        <div class="notes">
            <For
                each=move || cards.order.get()
                key=|id| id.clone()
                children=move |key| {
                    let row = cards.row(key.clone());
                    let id = key.split_once(':').map(|(_, id)| id.to_owned()).unwrap_or(key);
                    view! { <ItemCard id row column=lane.clone() /> }
                }
            />
        </div>
    }
}

/// Discuss: the items by dots, where the facilitator picks the next one to discuss.
#[component]
fn Agenda() -> impl IntoView {
    let ctx = Ctx::get();
    let ranked = Keyed::new(move || {
        ctx.with_board(|b| {
            b.ranked_items()
                .into_iter()
                .map(|(item, votes)| (item_key(&item), (b.item_title(item.id()).unwrap_or_default(), votes)))
                .collect()
        })
        .unwrap_or_default()
    });
    view! {
        <section class="card agenda" aria-labelledby="agenda-title">
            <h2 id="agenda-title">"Agenda, by dots"</h2>
            <ol id="agenda">
                <For
                    each=move || ranked.order.get()
                    key=|id| id.clone()
                    children=move |key| {
                        let row = ranked.row(key.clone());
                        let id = key.split_once(':').map(|(_, id)| id.to_owned()).unwrap_or(key);
                        let title = move || row.with(|r| r.as_ref().map(|(t, _)| t.clone()).unwrap_or_default());
                        let votes = Memo::new(move |_| row.with(|r| r.as_ref().map_or(0, |(_, v)| *v)));
                        view! {
                            <li data-item=id.clone()>
                                <span class="agenda-title">{title}</span>
                                <DiscussTools id=id.clone() votes title=Signal::derive(title) />
                            </li>
                        }
                    }
                />
            </ol>
        </section>
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
            <Show
                when=move || focus.with(Option::is_some)
                fallback=move || {
                    view! {
                        <p class="muted">
                            {move || if ctx.is_facilitator() {
                                "Pick an item below to discuss it with everyone: “Discuss this”."
                            } else {
                                "The facilitator will pick the item to discuss."
                            }}
                        </p>
                    }
                }
            >
                <div class="focused-head">
                    <span class="label">"Now discussing"</span>
                    <h2 id="focused-title">{move || title.get()}</h2>
                    <span class="votes-badge">{move || text::count(votes.get(), "dot", "dots")}</span>
                </div>
                <ActionList for_focus=true />
            </Show>
        </section>
    }
}

/// The title every view gives a card: a cluster's name, or (untitled) the text of the note it
/// sits at; a lone note's text.
fn row_title(row: &Row) -> String {
    match row {
        (VoteItem::Cluster(cluster, notes), _, place) if cluster.title.trim().is_empty() => {
            notes.iter().find(|n| n.id == *place).or(notes.first()).map(|n| n.text.clone()).unwrap_or_default()
        }
        (VoteItem::Cluster(cluster, _), _, _) => cluster.title.clone(),
        (VoteItem::Note(note), _, _) => note.text.clone(),
    }
}

/// A card in a lane: a cluster with its notes, or a lone note. Built once per item, then
/// updated in place. Dropped on its middle, a dragged note or cluster is grouped with it (while
/// grouping); dropped on its top or bottom edge, the dragged card moves before or after it.
#[component]
fn ItemCard(id: String, row: Memo<Option<Row>>, column: String) -> impl IntoView {
    let ctx = Ctx::get();
    let picking = expect_context::<ItemsCtx>().picking;
    let is_cluster = row.with_untracked(|r| matches!(r, Some((VoteItem::Cluster(..), _, _))));
    let votes = Memo::new(move |_| row.with(|r| r.as_ref().map_or(0, |(_, v, _)| *v)));
    let place = Memo::new(move |_| row.with(|r| r.as_ref().map(|(_, _, p)| p.clone()).unwrap_or_default()));
    let title = Memo::new(move |_| row.with(|r| r.as_ref().map(row_title).unwrap_or_default()));
    let visible = move || {
        row.with(|r| match r {
            Some((VoteItem::Cluster(cluster, notes), _, _)) => {
                matches_filter(ctx, &cluster.title) || notes.iter().any(|n| matches_filter(ctx, &n.text))
            }
            Some((VoteItem::Note(note), _, _)) => matches_filter(ctx, &note.text),
            None => false,
        })
    };
    let drop_at = RwSignal::new(None::<Zone>);
    let focused = {
        let id = id.clone();
        ctx.part(move |b| b.focus.as_deref() == Some(id.as_str()))
    };
    let grouping = move || ctx.phase() == Phase::Group;
    let (target, drop_column, key_column) = (id.clone(), column.clone(), column.clone());
    let on_drop = move |ev: DragEvent| {
        ev.prevent_default();
        let at = drop_at.get_untracked();
        drop_at.set(None);
        let (Some(dragged), Some(at)) = (Dragged::take(&ev), at) else { return };
        match at {
            Zone::Onto if dragged.id != target => {
                let pick = if dragged.cluster { Pick::Cluster(dragged.id) } else { Pick::Note(dragged.id) };
                drop_on(ctx, pick, target.clone());
            }
            Zone::Onto => {}
            Zone::Before | Zone::After if dragged.column == drop_column => {
                move_card(ctx, &drop_column, &dragged.place, &place.get_untracked(), at == Zone::After);
            }
            Zone::Before | Zone::After => {}
        }
    };
    let pick_target = is_pick_target(picking, id.clone());
    let body = if is_cluster {
        view! { <ClusterBody id=id.clone() row shown=title column=column.clone() /> }.into_any()
    } else {
        let note = Memo::new(move |_| match row.get() {
            Some((VoteItem::Note(note), _, _)) => Some(note),
            _ => None,
        });
        view! { <NoteLine note in_cluster=false column=column.clone() /> }.into_any()
    };
    let drag_id = id.clone();
    view! {
        <article
            class="item"
            class:cluster=is_cluster
            class:lone=!is_cluster
            class:drop-over=move || drop_at.get() == Some(Zone::Onto)
            class:drop-before=move || drop_at.get() == Some(Zone::Before)
            class:drop-after=move || drop_at.get() == Some(Zone::After)
            class:pick-target=move || pick_target.get()
            class:focused=move || focused.get()
            hidden=move || !visible()
            data-item=id.clone()
            tabindex="0"
            data-focus-home=""
            aria-label=move || title.get()
            aria-keyshortcuts=move || rules::can_arrange(ctx.phase()).then_some("Alt+ArrowUp Alt+ArrowDown")
            draggable=move || (is_cluster && rules::can_arrange(ctx.phase())).to_string()
            on:dragstart=move |ev: DragEvent| {
                // A note inside sets its own data first; the card's is for dragging the cluster.
                if is_cluster
                    && ev.target().and_then(|t| wasm_bindgen::JsCast::dyn_into::<web_sys::Element>(t).ok())
                        .is_some_and(|t| t.class_list().contains("item"))
                {
                    Dragged { cluster: true, id: drag_id.clone(), place: place.get_untracked(), column: column.clone() }
                        .put(&ev);
                }
            }
            on:keydown=move |ev: web_sys::KeyboardEvent| {
                nudge(ctx, &ev, &key_column, &place.get_untracked());
            }
            on:dragover=move |ev: DragEvent| {
                if rules::can_arrange(ctx.phase()) {
                    ev.prevent_default();
                    drop_at.set(Some(zone(&ev, grouping())));
                }
            }
            on:dragleave=move |_| drop_at.set(None)
            on:drop=on_drop
        >
            {body}
            <footer class="item-footer">
                {
                    let id = id.clone();
                    move || match ctx.phase() {
                        Phase::Group => view! { <GroupTools id=id.clone() is_cluster /> }.into_any(),
                        Phase::Vote => view! { <Dots id=id.clone() title=title.into() /> }.into_any(),
                        _ => view! { <DiscussTools id=id.clone() votes title=title.into() /> }.into_any(),
                    }
                }
            </footer>
        </article>
    }
}

/// A cluster's name (a field while grouping) and its notes. `shown` is the name every view
/// shows (an untitled cluster's is its first note's text).
#[component]
fn ClusterBody(id: String, row: Memo<Option<Row>>, shown: Memo<String>, column: String) -> impl IntoView {
    let ctx = Ctx::get();
    // The name as given, empty while untitled: what the field edits.
    let title = Memo::new(move |_| match row.with(|r| r.as_ref().map(|(item, _, _)| item.clone())) {
        Some(VoteItem::Cluster(cluster, _)) => cluster.title,
        _ => String::new(),
    });
    let notes = Keyed::new(move || match row.with(|r| r.as_ref().map(|(item, _, _)| item.clone())) {
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
                        <h3 class="cluster-name" class:untitled=move || title.with(|t| t.trim().is_empty())>
                            {move || shown.get()}
                        </h3>
                    }
                        .into_any()
                }
            }}
            <span class="count" title="Notes in this group">{move || notes.count()}</span>
        </header>
        <ul class="cluster-notes">
            <For
                each=move || notes.order.get()
                key=|id| id.clone()
                children=move |id| {
                    let note = notes.row(id);
                    view! {
                        <li>
                            <NoteLine note in_cluster=true column=column.clone() />
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
    let target = is_pick_target(picking, id.clone());
    let pick = {
        let id = id.clone();
        move |_| picking.set(Some(if is_cluster { Pick::Cluster(id.clone()) } else { Pick::Note(id.clone()) }))
    };
    let put = move |_| {
        if let Some(pick) = picking.get_untracked() {
            picking.set(None);
            // The focus follows to the card where the two now are.
            if let Some(into) = drop_on(ctx, pick, id.clone()) {
                request_animation_frame(move || {
                    let card = document().query_selector(&format!("article.item[data-item='{into}']")).ok().flatten();
                    if let Some(card) =
                        card.and_then(|c| wasm_bindgen::JsCast::dyn_into::<web_sys::HtmlElement>(c).ok())
                    {
                        let _ = card.focus();
                    }
                });
            }
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
fn NoteLine(note: Memo<Option<Note>>, in_cluster: bool, column: String) -> impl IntoView {
    let ctx = Ctx::get();
    let id = note.with_untracked(|n| n.as_ref().map(|n| n.id.clone()).unwrap_or_default());
    let column_id = Memo::new(move |_| note.with(|n| n.as_ref().map(|n| n.column.clone()).unwrap_or_default()));
    let column_info = ctx.part(move |b| {
        column_id.with(|c| b.columns.iter().position(|col| &col.id == c).map(|i| (i, b.columns[i].title.clone())))
    });
    let text = Signal::derive(move || note.with(|n| n.as_ref().map(|n| n.text.clone()).unwrap_or_default()));
    // A note shows its column only in a cluster that sits in another column's lane.
    let lane = column.clone();
    let author = move || note.with(|n| n.as_ref().and_then(|n| n.author.clone()));
    let drag_id = id.clone();
    let ungroup_id = id.clone();
    view! {
        <div
            class="note"
            data-note=id
            style=move || format!("--accent: var(--accent-{})", column_info.with(|c| c.as_ref().map_or(0, |(i, _)| i % 6)))
            draggable=move || (rules::can_arrange(ctx.phase()) && (!in_cluster || ctx.phase() == Phase::Group)).to_string()
            on:dragstart=move |ev: DragEvent| {
                let note_column = column_id.get_untracked();
                // A note dragged out of a cluster carries its own column: it can only be put back
                // in its own lane.
                let column = if in_cluster { note_column } else { column.clone() };
                Dragged { cluster: false, id: drag_id.clone(), place: drag_id.clone(), column }.put(&ev);
            }
        >
            <NoteText text />
            <div class="note-meta">
                <Show when={
                    let lane = lane.clone();
                    move || column_id.with(|c| *c != lane)
                }>
                    <span class="tag column-tag">{move || column_info.with(|c| c.as_ref().map(|(_, t)| t.clone()))}</span>
                </Show>
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
fn Dots(id: String, title: Signal<String>) -> impl IntoView {
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
    // Unavailable buttons stay focusable (`aria-disabled`): the third dot does not throw a
    // keyboard user's focus away.
    let can_give = move || mine.get() < max.get() && left.get() > 0 && !abstain.get() && rules::can_vote(ctx.phase());
    let can_take = move || mine.get() > 0;
    view! {
        <div class="dots">
            <button
                class="vote-down icon"
                aria-label=move || format!("Take a dot back from “{}”", title.get())
                aria-disabled=move || (!can_take()).to_string()
                on:click=move |_| {
                    if can_take() {
                        down(mine.get_untracked() - 1)
                    }
                }
            >
                "−"
            </button>
            <span
                class="my-dots"
                data-dots=move || mine.get()
                role="img"
                aria-label=move || format!("{} of yours", text::count(mine.get(), "dot", "dots"))
            >
                {move || (0..max.get()).map(|i| if i < mine.get() { "●" } else { "○" }).collect::<String>()}
            </span>
            <button
                class="vote-up icon"
                aria-label=move || format!("Give a dot to “{}”", title.get())
                aria-disabled=move || (!can_give()).to_string()
                on:click=move |_| {
                    if can_give() {
                        set(mine.get_untracked() + 1)
                    }
                }
            >
                "+"
            </button>
        </div>
    }
}

/// Discuss: the item's total, and the facilitator's "Discuss this".
#[component]
fn DiscussTools(id: String, votes: Memo<i64>, title: Signal<String>) -> impl IntoView {
    let ctx = Ctx::get();
    let can_focus = move || ctx.is_facilitator() && rules::can_edit_actions(ctx.phase());
    view! {
        <span class="votes" data-votes=move || votes.get() aria-label=move || text::count(votes.get(), "dot", "dots")>
            {move || format!("● {}", votes.get())}
        </span>
        <Show when=can_focus>
            {
                let id = id.clone();
                view! {
                    <button
                        class="focus-item chip-button"
                        title="Focus this item for everyone, with a 5-minute timebox"
                        aria-label=move || format!("Discuss this: {}", title.get())
                        on:click=move |_| {
                            let id = id.clone();
                            let now = js_sys::Date::now() as i64 + ctx.view.clock_offset.get_untracked();
                            ctx.edit_board(move |tx| {
                                edit::set_focus(tx, Some(&id))?;
                                edit::start_timer(tx, ITEM_TIMEBOX_MS, now)
                            });
                            ctx.announce(&format!("Now discussing “{}”.", title.get_untracked()));
                        }
                    >
                        "Discuss this"
                    </button>
                }
            }
        </Show>
    }
}
