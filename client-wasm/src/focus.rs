//! Keeps the keyboard focus where the person left it across an update of the page.
//!
//! Keyed lists update rows in place, but a row whose place changes (a note revealed into the
//! board's order, a card moved with the keyboard) is moved, and a browser takes the focus from
//! an element it moves; and an update can remove or hide the element that had the focus (the
//! "Reveal this column" button once the column is revealed, a phase's whole view when the phase
//! changes). The session wraps every update of the board and desk signals in [`keeping_focus`].

use leptos::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{Element, HtmlElement, HtmlInputElement, HtmlTextAreaElement};

/// Where the focus goes when nothing it was in is left: the main area of the board.
const LAST_RESORT: &str = "stage-main";

/// Runs `update`; if that took the focus away (to the page's body), gives it back before the
/// next frame is painted: to the same element if it is still shown, with the caret and selection
/// a text field had; else to the nearest enclosing element marked `data-focus-home` that is
/// still shown (a card, a column), else to the board's main area.
pub fn keeping_focus(update: impl FnOnce()) {
    let active = document().active_element().and_then(|e| e.dyn_into::<HtmlElement>().ok());
    let Some(active) = active.filter(|a| document().body().is_none_or(|body| *a != body)) else {
        update();
        return;
    };
    let selection = selection_of(&active);
    let homes = homes_of(&active);
    update();
    request_animation_frame(move || {
        let lost = match document().active_element() {
            None => true,
            Some(now) => document().body().is_some_and(|body| now == *body),
        };
        if !lost {
            return;
        }
        // The same element, if it can still take the focus (a control that became disabled
        // cannot), then the nearest place that can.
        if shown(&active) && takes_focus(&active) {
            if let Some((start, end)) = selection {
                restore_selection(&active, start, end);
            }
            return;
        }
        let last_resort = document().get_element_by_id(LAST_RESORT).and_then(|e| e.dyn_into::<HtmlElement>().ok());
        for home in homes.into_iter().filter(shown).chain(last_resort) {
            if takes_focus(&home) {
                return;
            }
        }
    });
}

/// The enclosing elements marked as places the focus can fall back to, nearest first.
fn homes_of(element: &HtmlElement) -> Vec<HtmlElement> {
    let mut homes = Vec::new();
    let mut at: Option<Element> = element.parent_element();
    while let Some(e) = at {
        if e.has_attribute("data-focus-home")
            && let Ok(home) = e.clone().dyn_into::<HtmlElement>()
        {
            homes.push(home);
        }
        at = e.parent_element();
    }
    homes
}

/// Gives `element` the focus; true if it took it.
fn takes_focus(element: &HtmlElement) -> bool {
    let _ = element.focus();
    document().active_element().is_some_and(|now| now == **element)
}

/// On the page and not hidden.
fn shown(element: &HtmlElement) -> bool {
    element.is_connected() && element.get_client_rects().length() > 0
}

/// The selection of a text field; `None` for an element that is not one.
fn selection_of(element: &HtmlElement) -> Option<(u32, u32)> {
    if let Some(input) = element.dyn_ref::<HtmlTextAreaElement>() {
        return Some((input.selection_start().ok()??, input.selection_end().ok()??));
    }
    let input = element.dyn_ref::<HtmlInputElement>()?;
    Some((input.selection_start().ok()??, input.selection_end().ok()??))
}

fn restore_selection(element: &HtmlElement, start: u32, end: u32) {
    if let Some(input) = element.dyn_ref::<HtmlTextAreaElement>() {
        let _ = input.set_selection_range(start, end);
    } else if let Some(input) = element.dyn_ref::<HtmlInputElement>() {
        let _ = input.set_selection_range(start, end);
    }
}
