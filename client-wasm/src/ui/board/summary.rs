//! Done: the read-only summary of the retro — the items by votes, the action items — and the
//! ROTI, each participant's private rating of the time the retro took, shown as a histogram.

use std::collections::BTreeMap;

use hindsight_shared::edit;
use hindsight_shared::schema::{MIN_ROTI_RATERS, ROTI_RATINGS, VoteItem};
use hindsight_shared::text;
use leptos::prelude::*;

use super::Ctx;
use super::actions::ActionList;

#[component]
pub fn Summary() -> impl IntoView {
    let ctx = Ctx::get();
    let ranked = move || {
        ctx.with_board(|b| {
            b.ranked_items()
                .into_iter()
                .map(|(item, votes)| {
                    let notes: Vec<String> = match &item {
                        VoteItem::Cluster(_, notes) => notes.iter().map(|n| n.text.clone()).collect(),
                        VoteItem::Note(_) => Vec::new(),
                    };
                    (item.id().to_owned(), b.item_title(item.id()).unwrap_or_default(), votes, notes)
                })
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
    };
    let counts = move || {
        ctx.with_board(|b| (b.notes.len(), b.action_items.len(), ctx.view.people.with(|p| p.len()))).unwrap_or_default()
    };
    view! {
        <div class="summary" id="summary">
            <section class="card summary-head">
                <h2>"Summary"</h2>
                <p class="muted">
                    {move || {
                        let (notes, actions, people) = counts();
                        format!(
                            "{} · {} · {}",
                            text::count(people as i64, "person", "people"),
                            text::count(notes as i64, "note", "notes"),
                            text::count(actions as i64, "action item", "action items"),
                        )
                    }}
                </p>
            </section>
            <section class="card">
                <h2>"What we talked about"</h2>
                <ol class="ranked">
                    <For
                        each=ranked
                        key=|item| item.clone()
                        children=|(_, title, votes, notes)| {
                            view! {
                                <li class="ranked-item">
                                    <div class="ranked-head">
                                        <span class="ranked-title">{title}</span>
                                        <span class="votes">{format!("● {votes}")}</span>
                                    </div>
                                    <ul class="ranked-notes">
                                        {notes.into_iter().map(|n| view! { <li>{n}</li> }).collect_view()}
                                    </ul>
                                </li>
                            }
                        }
                    />
                </ol>
            </section>
            <section class="card">
                <h2>"Action items"</h2>
                <ActionList />
            </section>
            <CameBack />
            <Roti />
        </div>
    }
}

/// "Same cause as …": the team's past causes this retro's clusters are like, offered by the
/// server; the facilitator confirms those that are, and a cause that came back after its
/// actions were all done is flagged.
#[component]
fn CameBack() -> impl IntoView {
    let ctx = Ctx::get();
    let offers = ctx.part(|b| {
        b.recurrences.values().map(|r| (r.clone(), b.item_title(&r.cluster).unwrap_or_default())).collect::<Vec<_>>()
    });
    view! {
        <Show when=move || offers.with(|o| !o.is_empty())>
            <section class="card came-back" id="came-back" aria-labelledby="came-back-title">
                <h2 id="came-back-title">"Causes that came back"</h2>
                <ul class="came-back-list">
                    <For
                        each=move || offers.get()
                        key=|(r, title)| (r.clone(), title.clone())
                        children=move |(offer, title)| {
                            let cluster = offer.cluster.clone();
                            view! {
                                <li class="came-back-item" data-cluster=offer.cluster.clone() data-confirmed=offer.confirmed.to_string()>
                                    <div class="review-text">
                                        <strong>{title}</strong>
                                        <span class="muted">
                                            {format!("same cause as “{}” in {} ({}% alike)", offer.title, offer.retro, offer.score)}
                                        </span>
                                        {offer
                                            .after_fix
                                            .then(|| view! { <span class="chip overdue after-fix">"this came back after its actions were done"</span> })}
                                    </div>
                                    {if offer.confirmed {
                                        view! { <span class="chip">"confirmed"</span> }.into_any()
                                    } else {
                                        view! {
                                            <Show when=move || ctx.is_facilitator()>
                                                {
                                                    let cluster = cluster.clone();
                                                    view! {
                                                        <button
                                                            type="button"
                                                            class="secondary confirm-recurrence"
                                                            on:click=move |_| {
                                                                let cluster = cluster.clone();
                                                                ctx.edit_board(move |tx| edit::confirm_recurrence(tx, &cluster));
                                                            }
                                                        >
                                                            "Same cause"
                                                        </button>
                                                    }
                                                }
                                            </Show>
                                        }
                                            .into_any()
                                    }}
                                </li>
                            }
                        }
                    />
                </ul>
            </section>
        </Show>
    }
}

/// What each rating means, from 1 to 5.
const ROTI_LABELS: [&str; 5] = ["A waste of time", "Not worth it", "Break-even", "Worth it", "Worth every minute"];

/// The ROTI: while ratings are open, five choices on one's own desk (private) and, for the
/// facilitator, "Show the results"; then the histogram the server published, or why there is
/// none.
#[component]
fn Roti() -> impl IntoView {
    let ctx = Ctx::get();
    let shown = ctx.part(|b| b.roti_shown);
    let results = ctx.part(|b| b.roti.clone());
    let mine = ctx.desk_part(|d| d.roti);
    view! {
        <section class="card roti" id="roti" aria-labelledby="roti-title">
            <h2 id="roti-title">"Return on time invested"</h2>
            <Show
                when=move || shown.get()
                fallback=move || {
                    view! {
                        <p class="muted">
                            {format!(
                                "How well did this retro use our time? Your rating stays on your desk: the group sees only how many gave each rating, and only if enough people rated (at least {MIN_ROTI_RATERS})."
                            )}
                        </p>
                        <div class="roti-choices" role="radiogroup" aria-label="Your rating">
                            {ROTI_RATINGS
                                .map(|rating| {
                                    let label = ROTI_LABELS[(rating - 1) as usize];
                                    view! {
                                        <button
                                            class="roti-choice"
                                            data-rating=rating
                                            role="radio"
                                            aria-checked=move || (mine.get() == Some(rating)).to_string()
                                            aria-label=format!("{rating}: {label}")
                                            on:click=move |_| {
                                                let rating = (mine.get_untracked() != Some(rating)).then_some(rating);
                                                ctx.edit_desk(|tx| edit::set_roti(tx, rating));
                                            }
                                        >
                                            <span class="roti-number">{rating}</span>
                                            <span class="roti-label">{label}</span>
                                        </button>
                                    }
                                })
                                .collect_view()}
                        </div>
                        <Show when=move || ctx.is_facilitator()>
                            <button
                                id="show-roti"
                                class="primary"
                                on:click=move |_| ctx.edit_board(|tx| edit::show_roti(tx))
                            >
                                "Close the ratings and show the results"
                            </button>
                        </Show>
                    }
                }
            >
                <RotiResults results=results />
            </Show>
        </section>
    }
}

/// The published histogram as bars, with the mean; or, when the server published none, why.
#[component]
fn RotiResults(results: Memo<BTreeMap<String, i64>>) -> impl IntoView {
    const WIDTH: i64 = 300;
    const HEIGHT: i64 = 120;
    const BAR: i64 = 44;
    /// Room above the tallest bar for its count.
    const TOP: i64 = 20;
    let counts =
        move || results.with(|r| ROTI_RATINGS.map(|n| r.get(&n.to_string()).copied().unwrap_or(0)).collect::<Vec<_>>());
    let mean = Ctx::get().part(|b| b.roti_mean());
    let summary = move || {
        let (raters, mean) = mean.get().unwrap_or_default();
        format!("Mean {mean:.1} out of 5, from {}", text::count(raters, "rating", "ratings"))
    };
    view! {
        <Show
            when=move || mean.get().is_some()
            fallback=|| {
                view! {
                    <p class="roti-hidden" id="roti-hidden">
                        "Too few people rated, so the results stay hidden: with so few, each could tell the others' ratings apart."
                    </p>
                }
            }
        >
            <p class="roti-mean" id="roti-mean">{summary}</p>
            <svg
                class="roti-chart"
                id="roti-chart"
                viewBox=format!("0 0 {WIDTH} {}", TOP + HEIGHT + 30)
                role="img"
                aria-label=move || {
                    let parts: Vec<String> = counts().iter().zip(ROTI_RATINGS).map(|(c, r)| format!("{r}: {c}")).collect();
                    format!("Ratings: {}", parts.join(", "))
                }
            >
                {move || {
                    let counts = counts();
                    let most = counts.iter().copied().max().unwrap_or(1).max(1);
                    counts
                        .into_iter()
                        .enumerate()
                        .map(|(i, count)| {
                            let x = 10 + i as i64 * (BAR + 14);
                            let height = (count * HEIGHT / most).max(if count > 0 { 4 } else { 1 });
                            let y = TOP + HEIGHT - height;
                            view! {
                                <g class="roti-bar" data-rating=i + 1 data-count=count>
                                    <rect x=x y=y width=BAR height=height rx=4 />
                                    <text class="roti-count" x=x + BAR / 2 y=y - 3 text-anchor="middle">{count}</text>
                                    <text class="roti-axis" x=x + BAR / 2 y=TOP + HEIGHT + 20 text-anchor="middle">{i + 1}</text>
                                </g>
                            }
                        })
                        .collect_view()
                }}
            </svg>
        </Show>
    }
}
