//! Done: the read-only summary of the retro — the items by votes, and the action items.

use hindsight_shared::schema::VoteItem;
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
        </div>
    }
}
