//! The board's columns as lanes: side by side on a laptop (up to eight fit at 1280 px, more
//! scroll sideways behind a visible edge), and one at a time on a phone, picked from a row of
//! buttons above them.

use hindsight_shared::schema::Column;
use leptos::prelude::*;

use super::{Ctx, Keyed};

/// The lanes of the board. `lane` fills one column's section, given the column's id, the column
/// (as a memo) and its position.
#[component]
pub fn Lanes<F, V>(lane: F) -> impl IntoView
where
    F: Fn(String, Memo<Option<Column>>, usize) -> V + Clone + Send + Sync + 'static,
    V: IntoView + 'static,
{
    let ctx = Ctx::get();
    let columns = Keyed::new(move || {
        ctx.with_board(|b| b.columns.iter().map(|c| (c.id.clone(), c.clone())).collect()).unwrap_or_default()
    });
    // The lane a phone shows: the one picked, else the first.
    let picked = RwSignal::new(None::<String>);
    let current = Memo::new(move |_| {
        let order = columns.order.get();
        picked.get().filter(|id| order.contains(id)).or_else(|| order.first().cloned())
    });
    view! {
        <div class="lanes" style=move || format!("--lanes: {}", columns.count())>
            <div class="lane-picker" aria-label="Column to show">
                <For
                    each=move || columns.order.get()
                    key=|id| id.clone()
                    children=move |id| {
                        let column = columns.row(id.clone());
                        let is_current = {
                            let id = id.clone();
                            move || current.get().as_deref() == Some(id.as_str())
                        };
                        view! {
                            <button
                                class="lane-pick"
                                data-column=id.clone()
                                aria-pressed=move || is_current().to_string()
                                on:click=move |_| picked.set(Some(id.clone()))
                            >
                                {move || column.with(|c| c.as_ref().map(|c| c.title.clone()))}
                            </button>
                        }
                    }
                />
            </div>
            <div class="lanes-row">
                <For
                    each=move || columns.order.get().into_iter().enumerate()
                    key=|(_, id)| id.clone()
                    children=move |(index, id)| {
                        let column = columns.row(id.clone());
                        let is_current = {
                            let id = id.clone();
                            move || current.get().as_deref() == Some(id.as_str())
                        };
                        let heading = format!("column-{id}");
                        let lane_id = id.clone();
                        view! {
                            <section
                                class="column"
                                data-column=id.clone()
                                class:current=is_current
                                aria-labelledby=heading
                                data-focus-home=""
                                tabindex="-1"
                                style=format!("--accent: var(--accent-{})", index % 6)
                            >
                                {lane.clone()(lane_id, column, index)}
                            </section>
                        }
                    }
                />
            </div>
        </div>
    }
}

/// A column's header: its title (the lane's heading, which its section is labelled by) and a
/// count.
#[component]
pub fn LaneHeader(
    id: String,
    column: Memo<Option<Column>>,
    count: Signal<usize>,
    #[prop(into)] counted: String,
) -> impl IntoView {
    view! {
        <header class="column-header">
            <h2 class="column-title" id=format!("column-{id}")>
                {move || column.with(|c| c.as_ref().map(|c| c.title.clone()))}
            </h2>
            <span class="count" title=counted>
                {move || count.get()}
            </span>
        </header>
    }
}
