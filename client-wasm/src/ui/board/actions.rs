//! Action items: what the team will do, who owns it, by when, and what it addresses.

use hindsight_shared::edit;
use hindsight_shared::ids::NoteId;
use hindsight_shared::rules;
use hindsight_shared::schema::{ActionItem, MAX_ACTION_CHARS, MAX_NAME_CHARS};
use leptos::prelude::*;

use super::{Ctx, Keyed, Undo};

/// The Actions phase: the top items for reference, and every action item.
#[component]
pub fn ActionsPhase() -> impl IntoView {
    let ctx = Ctx::get();
    let top = move || {
        ctx.with_board(|b| {
            b.ranked_items()
                .into_iter()
                .take(5)
                .map(|(item, votes)| (item.id().to_owned(), b.item_title(item.id()).unwrap_or_default(), votes))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
    };
    view! {
        <div class="actions-phase">
            <section class="card top-items">
                <h2>"Top items"</h2>
                <ol>
                    <For
                        each=top
                        key=|item| item.clone()
                        children=|(_, title, votes)| {
                            view! {
                                <li>
                                    <span>{title}</span>
                                    <span class="votes">{format!("● {votes}")}</span>
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

/// The action items and a form to add one: all of them, or (`for_focus`) those addressing the
/// item under discussion. The list and the form stay when the focus moves to another item, so a
/// half-typed action is not lost; what it is added to is the focus when it is added.
#[component]
pub fn ActionList(#[prop(optional)] for_focus: bool) -> impl IntoView {
    let ctx = Ctx::get();
    let actions = Keyed::new(move || {
        ctx.with_board(|b| {
            let scope = b.focus.as_ref().filter(|_| for_focus);
            let mut items: Vec<&ActionItem> = b
                .action_items
                .values()
                .filter(|a| !for_focus || (scope.is_some() && a.cluster.as_ref() == scope))
                .collect();
            items.sort_by(|a, b| (&a.due, &a.text, &a.id).cmp(&(&b.due, &b.text, &b.id)));
            items.into_iter().map(|a| (a.id.clone(), a.clone())).collect()
        })
        .unwrap_or_default()
    });
    let editable = move || rules::can_edit_actions(ctx.phase());
    view! {
        <ul class="action-items">
            <For
                each=move || actions.order.get()
                key=|id| id.clone()
                children=move |id| {
                    let action = actions.row(id.clone());
                    view! { <ActionRow id action editable=Signal::derive(editable) /> }
                }
            />
        </ul>
        <Show when=editable>
            <ActionForm for_focus />
        </Show>
    }
}

/// One action item: what, who, by when, and what it addresses.
#[component]
fn ActionRow(id: String, action: Memo<Option<ActionItem>>, editable: Signal<bool>) -> impl IntoView {
    let ctx = Ctx::get();
    let field =
        move |read: fn(&ActionItem) -> String| move || action.with(|a| a.as_ref().map(read).unwrap_or_default());
    let text = field(|a| a.text.clone());
    let owner = field(|a| if a.owner.is_empty() { "no owner".to_owned() } else { format!("Owner: {}", a.owner) });
    let due = field(|a| if a.due.is_empty() { String::new() } else { format!("Due {}", a.due) });
    let addresses = Memo::new(move |_| action.with(|a| a.as_ref().and_then(|a| a.cluster.clone())));
    let target = ctx.part(move |b| addresses.with(|c| c.as_ref().and_then(|c| b.item_title(c))));
    let delete_id = id.clone();
    view! {
        <li class="action-item" data-action=id>
            <span class="action-text">{text}</span>
            <span class="action-owner">{owner}</span>
            <span class="action-due">{due}</span>
            {move || target.get().map(|t| view! { <span class="tag">{t}</span> })}
            <ActionFactor id=id.clone() editable />
            <Show when=move || editable.get()>
                {
                    let id = delete_id.clone();
                    view! {
                        <button
                            class="delete-action icon"
                            aria-label="Delete action item"
                            on:click=move |_| {
                                if let Some(item) = action.get_untracked() {
                                    ctx.edit_board(|tx| edit::delete_action(tx, &id));
                                    ctx.offer_undo(Undo::Action(item));
                                }
                            }
                        >
                            "✕"
                        </button>
                    }
                }
            </Show>
        </li>
    }
}

/// On a postmortem board: the factor an action item addresses and what it does about it
/// (prevent, mitigate, process).
#[component]
fn ActionFactor(id: String, editable: Signal<bool>) -> impl IntoView {
    let ctx = Ctx::get();
    let key = id.clone();
    let state = ctx.part(move |b| {
        let factors: Vec<(String, String)> = b.factors.values().map(|f| (f.id.clone(), f.text.clone())).collect();
        (b.incident.on, factors, b.addresses.get(&key).cloned(), b.action_kinds.get(&key).cloned())
    });
    move || {
        let (on, factors, addressed, kind) = state.get();
        if !on {
            return None;
        }
        let (factor_id, kind_id) = (id.clone(), id.clone());
        Some(view! {
            <select
                class="action-factor"
                aria-label="The factor it addresses"
                disabled=move || !editable.get()
                on:change=move |ev| {
                    let chosen = event_target_value(&ev);
                    let id = factor_id.clone();
                    ctx.edit_board(move |tx| edit::address_factor(tx, &id, (!chosen.is_empty()).then_some(chosen.as_str())));
                }
            >
                <option value="" selected=addressed.is_none()>"no factor"</option>
                {factors
                    .into_iter()
                    .map(|(fid, text)| {
                        let selected = addressed.as_deref() == Some(fid.as_str());
                        view! { <option value=fid selected=selected>{text.chars().take(40).collect::<String>()}</option> }
                    })
                    .collect_view()}
            </select>
            <select
                class="action-kind"
                aria-label="What it does"
                disabled=move || !editable.get()
                on:change=move |ev| {
                    let chosen = event_target_value(&ev);
                    let id = kind_id.clone();
                    ctx.edit_board(move |tx| edit::set_action_kind(tx, &id, (!chosen.is_empty()).then_some(chosen.as_str())));
                }
            >
                <option value="" selected=kind.is_none()>"type"</option>
                {hindsight_shared::factors::ACTION_KINDS
                    .iter()
                    .map(|k| view! { <option value=*k selected=kind.as_deref() == Some(*k)>{*k}</option> })
                    .collect_view()}
            </select>
        })
    }
}

/// Adds an action item: text, owner, due date, and (outside a focused item) what it addresses.
#[component]
fn ActionForm(for_focus: bool) -> impl IntoView {
    let ctx = Ctx::get();
    let text = RwSignal::new(String::new());
    let owner = RwSignal::new(String::new());
    let due = RwSignal::new(String::new());
    let target = RwSignal::new(String::new());
    let choose_target = !for_focus;
    let targets = Keyed::new(move || {
        ctx.with_board(|b| {
            b.ranked_items()
                .into_iter()
                .map(|(item, _)| (item.id().to_owned(), b.item_title(item.id()).unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default()
    });
    let people = ctx.view.people;
    let names = Memo::new(move |_| {
        people.with(|p| p.iter().filter(|p| !p.name.is_empty()).map(|p| p.name.clone()).collect::<Vec<_>>())
    });
    let text_field = NodeRef::<leptos::html::Input>::new();
    let due_field = NodeRef::<leptos::html::Input>::new();
    let problem = RwSignal::new(None::<&'static str>);
    let add = move || {
        // A date typed halfway reads as empty: say so rather than add it without the date.
        if due_field.get_untracked().is_some_and(|input| input.validity().bad_input()) {
            problem.set(Some("Finish the due date, or clear it."));
            return;
        }
        problem.set(None);
        let item = ActionItem {
            id: NoteId::random().to_string(),
            text: text.get_untracked().trim().to_owned(),
            owner: owner.get_untracked().trim().to_owned(),
            due: due.get_untracked(),
            cluster: if for_focus {
                ctx.view.board.with_untracked(|b| b.as_ref().and_then(|b| b.focus.clone()))
            } else {
                Some(target.get_untracked()).filter(|t| !t.is_empty())
            },
        };
        if item.text.is_empty() {
            return;
        }
        ctx.edit_board(|tx| edit::put_action(tx, &item));
        ctx.announce(&format!("Action item added: {}", item.text));
        text.set(String::new());
        owner.set(String::new());
        due.set(String::new());
        if let Some(input) = due_field.get_untracked() {
            input.set_value("");
        }
        // Ready for the next one: the focus goes back to the first field.
        if let Some(input) = text_field.get_untracked() {
            let _ = input.focus();
        }
    };
    view! {
        <form
            class="action-form"
            novalidate
            on:submit=move |ev| {
                ev.prevent_default();
                add();
            }
        >
            <input
                id="action-text"
                node_ref=text_field
                aria-label="Action item"
                type="text"
                placeholder="What will we do?"
                maxlength=MAX_ACTION_CHARS
                prop:value=move || text.get()
                on:input=move |ev| text.set(event_target_value(&ev))
            />
            <input
                id="action-owner"
                aria-label="Owner"
                type="text"
                placeholder="Owner"
                list="people-names"
                maxlength=MAX_NAME_CHARS
                prop:value=move || owner.get()
                on:input=move |ev| owner.set(event_target_value(&ev))
            />
            <datalist id="people-names">
                <For each=move || names.get() key=|n| n.clone() children=|name| view! { <option value=name></option> } />
            </datalist>
            <input
                id="action-due"
                node_ref=due_field
                type="date"
                aria-label="Due date"
                prop:value=move || due.get()
                on:input=move |ev| due.set(event_target_value(&ev))
            />
            <Show when=move || choose_target>
                <select
                    id="action-target"
                    aria-label="Addresses"
                    prop:value=move || target.get()
                    on:change=move |ev| target.set(event_target_value(&ev))
                >
                    <option value="">"(no item)"</option>
                    <For
                        each=move || targets.order.get()
                        key=|id| id.clone()
                        children=move |id| {
                            let title = targets.row(id.clone());
                            view! { <option value=id>{move || title.get().unwrap_or_default()}</option> }
                        }
                    />
                </select>
            </Show>
            <button id="add-action" type="submit" class="primary" aria-disabled=move || text.with(|t| t.trim().is_empty()).to_string()>
                "Add action"
            </button>
            <Show when=move || problem.get().is_some()>
                <p class="error" id="action-problem" role="alert">
                    {move || problem.get()}
                </p>
            </Show>
        </form>
    }
}
