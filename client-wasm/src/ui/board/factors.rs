//! Contributing factors on a postmortem board: the list (kind, what it is about, "led to"
//! links, accepted risks, the starred moment of the timeline it is about), the graph drawn as SVG in layers (what led to what, left to right),
//! five whys from any factor, and the coverage check: the triggers and contributing factors no
//! action item addresses and nobody accepted as a risk.

use hindsight_shared::edit;
use hindsight_shared::factors::{self, FACTOR_KINDS, Factor, MAX_FACTOR_CHARS};
use hindsight_shared::ids::random_token;
use hindsight_shared::rules;
use hindsight_shared::schema::Board;
use hindsight_shared::timeline;
use leptos::prelude::*;

use super::Ctx;

const NODE_W: f64 = 180.0;
const NODE_H: f64 = 44.0;
const GAP_X: f64 = 60.0;
const GAP_Y: f64 = 16.0;

/// Where each factor sits in the drawing: its layer is its column, in id order within it.
fn layout(board: &Board) -> Vec<(Factor, f64, f64)> {
    let layers = factors::layers(board);
    let mut rows: std::collections::BTreeMap<usize, usize> = std::collections::BTreeMap::new();
    board
        .factors
        .values()
        .map(|f| {
            let layer = layers.get(f.id.as_str()).copied().unwrap_or(0);
            let row = rows.entry(layer).or_insert(0);
            let at = (f.clone(), 10.0 + layer as f64 * (NODE_W + GAP_X), 10.0 + *row as f64 * (NODE_H + GAP_Y));
            *row += 1;
            at
        })
        .collect()
}

fn short(text: &str, max: usize) -> String {
    let mut short: String = text.chars().take(max).collect();
    if text.chars().count() > max {
        short.push('…');
    }
    short
}

#[component]
pub fn Factors() -> impl IntoView {
    let ctx = Ctx::get();
    let board = ctx
        .part(|b| (b.factors.clone(), b.causal.clone(), b.clusters.clone(), b.addresses.clone(), b.action_items.len()));
    let editable = move || rules::can_edit_factors(ctx.phase());
    let why_of = RwSignal::new(None::<String>);
    let snapshot = move || {
        board.with(|(factors, causal, _, addresses, _)| Board {
            factors: factors.clone(),
            causal: causal.clone(),
            addresses: addresses.clone(),
            action_items: ctx.with_board(|b| b.action_items.clone()).unwrap_or_default(),
            ..Board::default()
        })
    };
    view! {
        <section class="card factors" id="factors" aria-labelledby="factors-title">
            <h2 id="factors-title">"Contributing factors"</h2>
            <p class="muted">"What led to the incident, rather than one root cause: link what led to what; the board refuses a circle."</p>
            {move || {
                let board = snapshot();
                let placed = layout(&board);
                if placed.is_empty() {
                    return view! { <p class="muted empty">"No factors yet."</p> }.into_any();
                }
                let width = placed.iter().map(|(_, x, _)| x + NODE_W + 10.0).fold(0.0, f64::max);
                let height = placed.iter().map(|(_, _, y)| y + NODE_H + 10.0).fold(0.0, f64::max);
                let at = |id: &str| placed.iter().find(|(f, _, _)| f.id == id).map(|(_, x, y)| (*x, *y));
                let edges = factors::links(&board)
                    .into_iter()
                    .filter_map(|(a, b)| {
                        let ((ax, ay), (bx, by)) = (at(a)?, at(b)?);
                        let (x1, y1, x2, y2) = (ax + NODE_W, ay + NODE_H / 2.0, bx, by + NODE_H / 2.0);
                        let bend = (x2 - x1).abs() / 2.0;
                        Some(view! {
                            <path
                                class="factor-link"
                                d=format!("M{x1},{y1} C{},{y1} {},{y2} {x2},{y2}", x1 + bend, x2 - bend)
                                marker-end="url(#arrow)"
                            ></path>
                        })
                    })
                    .collect::<Vec<_>>();
                let nodes = placed
                    .iter()
                    .map(|(f, x, y)| {
                        view! {
                            <g class=format!("factor-node kind-{}", f.kind) data-factor=f.id.clone()>
                                <rect x=*x y=*y width=NODE_W height=NODE_H rx="8"></rect>
                                <text x=x + 8.0 y=y + 17.0 class="factor-kind">{f.kind.clone()}</text>
                                <text x=x + 8.0 y=y + 34.0>{short(&f.text, 24)}</text>
                                <title>{f.text.clone()}</title>
                            </g>
                        }
                    })
                    .collect::<Vec<_>>();
                let description = factors::links(&board)
                    .iter()
                    .map(|(a, b)| {
                        let name = |id: &str| board.factors.get(id).map_or(String::new(), |f| f.text.clone());
                        format!("{} led to {}", name(a), name(b))
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                view! {
                    <div class="factor-graph-wrap">
                        <svg
                            class="factor-graph"
                            id="factor-graph"
                            viewBox=format!("0 0 {width} {height}")
                            width=width
                            role="img"
                            aria-label=format!("The factors as a graph. {description}")
                        >
                            <defs>
                                <marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
                                    <path d="M 0 0 L 10 5 L 0 10 z"></path>
                                </marker>
                            </defs>
                            {edges}
                            {nodes}
                        </svg>
                    </div>
                }
                    .into_any()
            }}
            <ul class="factor-list">
                {move || {
                    let board = snapshot();
                    let clusters = ctx.with_board(|b| b.cluster_titles().into_iter().map(|(id, t)| (id.to_owned(), t)).collect::<Vec<_>>()).unwrap_or_default();
                    // A factor may point at a moment of the timeline: a starred one (what the
                    // postmortem keeps), which keeps the choice short on a long timeline.
                    let moments = ctx
                        .with_board(|b| {
                            timeline::ordered(b.timeline.values())
                                .into_iter()
                                .filter(|e| e.starred || board.factors.values().any(|f| f.event.as_deref() == Some(e.id.as_str())))
                                .map(|e| (e.id.clone(), format!("{} {}", e.at.get(11..16).unwrap_or(""), short(&e.text, 36))))
                                .collect::<Vec<_>>()
                        })
                        .unwrap_or_default();
                    board
                        .factors
                        .values()
                        .map(|f| {
                            let led_to: Vec<(String, String)> = factors::links(&board)
                                .into_iter()
                                .filter(|(a, _)| *a == f.id)
                                .map(|(_, b)| (b.to_owned(), board.factors.get(b).map(|x| x.text.clone()).unwrap_or_default()))
                                .collect();
                            let id = f.id.clone();
                            let (link_id, delete_id, why_id) = (id.clone(), id.clone(), id.clone());
                            let current = f.clone();
                            let (kind_f, cluster_f, accept_f, event_f) = (current.clone(), current.clone(), current.clone(), current.clone());
                            view! {
                                <li class="factor" data-factor=id.clone() data-kind=f.kind.clone()>
                                    <strong class="factor-text">{f.text.clone()}</strong>
                                    <select
                                        aria-label=format!("Kind of: {}", f.text)
                                        disabled=move || !editable()
                                        on:change=move |ev| {
                                            let factor = Factor { kind: event_target_value(&ev), ..kind_f.clone() };
                                            ctx.edit_board(move |tx| edit::put_factor(tx, &factor));
                                        }
                                    >
                                        {FACTOR_KINDS.iter().map(|k| view! { <option value=*k selected=f.kind == *k>{*k}</option> }).collect_view()}
                                    </select>
                                    <select
                                        aria-label=format!("Cluster of: {}", f.text)
                                        disabled=move || !editable()
                                        on:change=move |ev| {
                                            let chosen = event_target_value(&ev);
                                            let factor = Factor { cluster: (!chosen.is_empty()).then_some(chosen), ..cluster_f.clone() };
                                            ctx.edit_board(move |tx| edit::put_factor(tx, &factor));
                                        }
                                    >
                                        <option value="" selected=f.cluster.is_none()>"no cluster"</option>
                                        {clusters.iter().map(|(cid, title)| view! { <option value=cid.clone() selected=f.cluster.as_deref() == Some(cid.as_str())>{short(title, 40)}</option> }).collect_view()}
                                    </select>
                                    <select
                                        class="factor-event"
                                        aria-label=format!("Moment of the timeline of: {}", f.text)
                                        disabled=move || !editable()
                                        on:change=move |ev| {
                                            let chosen = event_target_value(&ev);
                                            let factor = Factor { event: (!chosen.is_empty()).then_some(chosen), ..event_f.clone() };
                                            ctx.edit_board(move |tx| edit::put_factor(tx, &factor));
                                        }
                                    >
                                        <option value="" selected=f.event.is_none()>"no moment"</option>
                                        {moments.iter().map(|(eid, label)| view! { <option value=eid.clone() selected=f.event.as_deref() == Some(eid.as_str())>{label.clone()}</option> }).collect_view()}
                                    </select>
                                    <label class="factor-accepted">
                                        <input
                                            type="checkbox"
                                            prop:checked=f.accepted
                                            disabled=move || !editable()
                                            on:change=move |ev| {
                                                let factor = Factor { accepted: event_target_checked(&ev), ..accept_f.clone() };
                                                ctx.edit_board(move |tx| edit::put_factor(tx, &factor));
                                            }
                                        />
                                        "accepted risk"
                                    </label>
                                    <span class="factor-led-to">
                                        {led_to
                                            .iter()
                                            .map(|(to, text)| {
                                                let (from, to) = (link_id.clone(), to.clone());
                                                view! {
                                                    <button
                                                        type="button"
                                                        class="chip-button"
                                                        aria-label=format!("Led to {text}: remove the link")
                                                        disabled=move || !editable()
                                                        on:click=move |_| {
                                                            let (from, to) = (from.clone(), to.clone());
                                                            ctx.edit_board(move |tx| edit::link_factors(tx, &from, &to, false));
                                                        }
                                                    >
                                                        {format!("→ {} ✕", short(text, 24))}
                                                    </button>
                                                }
                                            })
                                            .collect_view()}
                                    </span>
                                    <button type="button" class="chip-button why" on:click=move |_| why_of.set(Some(why_id.clone()))>
                                        "5 whys"
                                    </button>
                                    <Show when=editable>
                                        {
                                            let delete_id = delete_id.clone();
                                            view! {
                                                <button
                                                    type="button"
                                                    class="icon delete-factor"
                                                    aria-label="Delete factor"
                                                    on:click=move |_| {
                                                        let id = delete_id.clone();
                                                        let board = ctx.with_board(Clone::clone).unwrap_or_default();
                                                        ctx.edit_board(move |tx| edit::delete_factor(tx, &board, &id));
                                                    }
                                                >
                                                    "✕"
                                                </button>
                                            }
                                        }
                                    </Show>
                                </li>
                            }
                        })
                        .collect_view()
                }}
            </ul>
            {move || {
                why_of.get().map(|id| {
                    let board = snapshot();
                    let chain: Vec<String> = factors::whys(&board, &id)
                        .into_iter()
                        .filter_map(|f| board.factors.get(f).map(|f| f.text.clone()))
                        .collect();
                    view! {
                        <ol class="whys" id="whys" aria-label="Five whys">
                            {chain
                                .into_iter()
                                .enumerate()
                                .map(|(i, text)| view! { <li>{if i == 0 { text } else { format!("Why? {text}") }}</li> })
                                .collect_view()}
                        </ol>
                    }
                })
            }}
            <Show when=editable>
                <LinkForm />
                <FactorForm />
            </Show>
            <Coverage />
        </section>
    }
}

/// "This led to that": one form for every link (a select per factor would cost a factor's
/// count of options per factor).
#[component]
fn LinkForm() -> impl IntoView {
    let ctx = Ctx::get();
    let choices = ctx.part(|b| b.factors.values().map(|f| (f.id.clone(), short(&f.text, 40))).collect::<Vec<_>>());
    let from = RwSignal::new(String::new());
    let to = RwSignal::new(String::new());
    let options =
        move || choices.get().into_iter().map(|(id, text)| view! { <option value=id>{text}</option> }).collect_view();
    view! {
        <Show when=move || choices.with(|c| c.len() >= 2)>
            <form
                class="event-form"
                id="link-form"
                on:submit=move |ev| {
                    ev.prevent_default();
                    let (a, b) = (from.get_untracked(), to.get_untracked());
                    if !a.is_empty() && !b.is_empty() {
                        ctx.edit_board(move |tx| edit::link_factors(tx, &a, &b, true));
                    }
                }
            >
                <select id="link-from" aria-label="This factor" on:change=move |ev| from.set(event_target_value(&ev))>
                    <option value="" selected>"This factor…"</option>
                    {options}
                </select>
                <span>"led to"</span>
                <select id="link-to" aria-label="led to this factor" on:change=move |ev| to.set(event_target_value(&ev))>
                    <option value="" selected>"…this factor"</option>
                    {options}
                </select>
                <button type="submit" class="secondary" id="add-link">
                    "Link"
                </button>
            </form>
        </Show>
    }
}

/// Adds a factor.
#[component]
fn FactorForm() -> impl IntoView {
    let ctx = Ctx::get();
    let text = RwSignal::new(String::new());
    let kind = RwSignal::new("contributing".to_owned());
    view! {
        <form
            class="event-form"
            id="factor-form"
            on:submit=move |ev| {
                ev.prevent_default();
                let typed = text.get_untracked().trim().to_owned();
                if typed.is_empty() {
                    return;
                }
                let factor = Factor { id: random_token::<9>(), text: typed, kind: kind.get_untracked(), ..Factor::default() };
                ctx.edit_board(move |tx| edit::put_factor(tx, &factor));
                text.set(String::new());
            }
        >
            <input
                type="text"
                id="factor-text"
                aria-label="A factor"
                placeholder="What contributed: a missing check, a confusing dashboard…"
                maxlength=MAX_FACTOR_CHARS
                prop:value=move || text.get()
                on:input=move |ev| text.set(event_target_value(&ev))
            />
            <select id="factor-kind" aria-label="Its kind" on:change=move |ev| kind.set(event_target_value(&ev))>
                {FACTOR_KINDS.iter().map(|k| view! { <option value=*k selected=*k == "contributing">{*k}</option> }).collect_view()}
            </select>
            <button type="submit" class="secondary" id="add-factor">
                "Add factor"
            </button>
        </form>
    }
}

/// The triggers and contributing factors nothing addresses: each needs an action item or an
/// "accepted risk" mark before the postmortem is done.
#[component]
fn Coverage() -> impl IntoView {
    let ctx = Ctx::get();
    let uncovered = ctx.part(|b| factors::uncovered(b).into_iter().map(|f| f.text.clone()).collect::<Vec<_>>());
    view! {
        <Show when=move || uncovered.with(|u| !u.is_empty())>
            <div class="coverage" id="coverage" role="status">
                <strong>"Not covered yet: "</strong>
                {move || uncovered.get().join(" · ")}
                <span class="muted">" — give each an action item, or mark it an accepted risk."</span>
            </div>
        </Show>
    }
}
