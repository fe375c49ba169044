//! Review: a team's retro begins with the team's open action items; the group says what became
//! of each (done, doing, dropped with a reason, or still open), and the ledger hears it.

use hindsight_shared::edit;
use hindsight_shared::ledger::{MAX_REASON_CHARS, Status};
use hindsight_shared::schema::ReviewItem;
use leptos::prelude::*;

use super::{Ctx, Keyed};

/// Every action under review, oldest carried first.
#[component]
pub fn Review() -> impl IntoView {
    let ctx = Ctx::get();
    let items = Keyed::new(move || {
        ctx.with_board(|b| {
            let mut items: Vec<&ReviewItem> = b.review.values().collect();
            items.sort_by(|a, b| (b.carried, &a.due, &a.text).cmp(&(a.carried, &b.due, &b.text)));
            items.into_iter().map(|r| (r.id.clone(), r.clone())).collect()
        })
        .unwrap_or_default()
    });
    view! {
        <section class="card review" aria-labelledby="review-title">
            <h2 id="review-title">"Last time's actions"</h2>
            <p class="muted">
                "What became of each? The team's page keeps what you say here. The facilitator moves on to Write when you are done."
            </p>
            <ul class="review-items">
                <For
                    each=move || items.order.get()
                    key=|id| id.clone()
                    children=move |id| {
                        let item = items.row(id.clone());
                        view! { <ReviewRow id item /> }
                    }
                />
            </ul>
        </section>
    }
}

#[component]
fn ReviewRow(id: String, item: Memo<Option<ReviewItem>>) -> impl IntoView {
    let ctx = Ctx::get();
    let field = move |read: fn(&ReviewItem) -> String| move || item.with(|i| i.as_ref().map(read).unwrap_or_default());
    let status = move || item.with(|i| i.as_ref().map(|i| i.status).unwrap_or_default());
    let carried = move || item.with(|i| i.as_ref().map_or(0, |i| i.carried));
    let set = {
        let id = id.clone();
        move |to: Status, reason: String| {
            let id = id.clone();
            ctx.edit_board(move |tx| edit::set_review(tx, &id, to, &reason));
        }
    };
    let group = format!("review-{id}");
    view! {
        <li class="review-item" data-action=id.clone() data-status=move || status().as_str()>
            <div class="review-text">
                <strong>{field(|i| i.text.clone())}</strong>
                <span class="muted">
                    {move || {
                        let owner = field(|i| i.owner.clone())();
                        let due = field(|i| i.due.clone())();
                        let mut parts = Vec::new();
                        if !owner.is_empty() {
                            parts.push(format!("owner {owner}"));
                        }
                        if !due.is_empty() {
                            parts.push(format!("due {due}"));
                        }
                        parts.join(" · ")
                    }}
                </span>
                <Show when=move || { carried() > 0 }>
                    <span class="chip carried">{move || carried_label(carried())}</span>
                </Show>
            </div>
            <div class="review-choices" role="radiogroup" aria-label=field(|i| format!("What became of: {}", i.text))>
                {Status::ALL
                    .into_iter()
                    .map(|choice| {
                        let set = set.clone();
                        let name = group.clone();
                        view! {
                            <label class="review-choice">
                                <input
                                    type="radio"
                                    name=name
                                    value=choice.as_str()
                                    prop:checked=move || status() == choice
                                    on:change=move |_| set(choice, item.with_untracked(|i| i.as_ref().map(|i| i.reason.clone()).unwrap_or_default()))
                                />
                                {if choice == Status::Open { "Still open" } else { choice.title() }}
                            </label>
                        }
                    })
                    .collect_view()}
            </div>
            <Show when=move || status() == Status::Dropped>
                {
                    let set = set.clone();
                    view! {
                        <input
                            class="review-reason"
                            type="text"
                            placeholder="Why was it dropped?"
                            aria-label="Why it was dropped"
                            maxlength=MAX_REASON_CHARS
                            prop:value=field(|i| i.reason.clone())
                            on:change=move |ev| set(Status::Dropped, event_target_value(&ev))
                        />
                    }
                }
            </Show>
        </li>
    }
}

/// "carried once", "carried 3 times".
pub fn carried_label(times: i64) -> String {
    match times {
        1 => "carried once".into(),
        n => format!("carried {n} times"),
    }
}
