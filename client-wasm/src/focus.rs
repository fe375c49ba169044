//! Keeps the focus, the caret and the selection where the person left them across an update of
//! the page that moves the element they are typing in.
//!
//! Keyed lists update rows in place, but a row whose place changes (a note revealed into the
//! board's order, say) is moved, and a browser takes the focus away from an element it moves.
//! The session wraps every update of the board and desk signals in [`keeping_focus`].

use leptos::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{HtmlElement, HtmlInputElement, HtmlTextAreaElement};

/// Runs `update`; if it took the focus from a text field that is still on the page, gives the
/// focus back, with the caret and selection it had, before the next frame is painted.
pub fn keeping_focus(update: impl FnOnce()) {
    let Some(active) = document().active_element().and_then(|e| e.dyn_into::<HtmlElement>().ok()) else {
        update();
        return;
    };
    let selection = selection_of(&active);
    update();
    let Some((start, end)) = selection else { return };
    request_animation_frame(move || {
        // The focus went to nowhere (the body), not to something the person chose.
        let lost = match document().active_element() {
            None => true,
            Some(now) => document().body().is_some_and(|body| now == *body),
        };
        if lost && active.is_connected() {
            let _ = active.focus();
            restore_selection(&active, start, end);
        }
    });
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
