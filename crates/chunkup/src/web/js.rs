//! The few globals the driver needs, bound through `globalThis` so that they
//! resolve in a window, in a worker and in Node (where `window()` is absent).

use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::prelude::*;
use web_sys::RequestInit;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(handler: &Function, ms: f64) -> JsValue;

    #[wasm_bindgen(js_name = clearTimeout)]
    fn clear_timeout(id: &JsValue);

    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    fn performance_now() -> f64;

    /// The global `fetch` (window, worker or Node 20).
    #[wasm_bindgen(js_name = fetch)]
    pub(crate) fn fetch(url: &str, init: &RequestInit) -> Promise;
}

/// A monotonic clock in milliseconds.
pub(crate) fn now_ms() -> f64 {
    performance_now()
}

/// Wall-clock milliseconds since the Unix epoch.
pub(crate) fn wall_ms() -> i64 {
    js_sys::Date::now() as i64
}

/// A timer armed with `setTimeout`; dropping it disarms it.
pub(crate) struct Timer {
    id: JsValue,
    _handler: Closure<dyn FnMut()>,
}

impl Timer {
    pub(crate) fn after(ms: f64, handler: impl FnMut() + 'static) -> Timer {
        let handler = Closure::<dyn FnMut()>::new(handler);
        let id = set_timeout(handler.as_ref().unchecked_ref(), ms.max(0.0));
        Timer {
            id,
            _handler: handler,
        }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        clear_timeout(&self.id);
    }
}

impl std::fmt::Debug for Timer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Timer")
    }
}

/// `globalThis[name]`, when present and not `undefined`/`null`. Reading some
/// globals throws (`localStorage` in an opaque origin): that reads as absent.
pub(crate) fn global(name: &str) -> Option<JsValue> {
    Reflect::get(&js_sys::global(), &JsValue::from_str(name))
        .ok()
        .filter(|v| !v.is_undefined() && !v.is_null())
}

/// Whether the platform believes it is online (`navigator.onLine`; true
/// where there is no such thing).
pub(crate) fn online() -> bool {
    global("navigator")
        .and_then(|n| Reflect::get(&n, &JsValue::from_str("onLine")).ok())
        .and_then(|v| v.as_bool())
        .unwrap_or(true)
}

/// Whether a request to `url` leaves the origin of this page or worker
/// (`false` where there is no `location`, as in Node: no CORS there).
pub(crate) fn is_cross_origin(url: &str) -> bool {
    let origin = |value: &JsValue| {
        Reflect::get(value, &JsValue::from_str("origin"))
            .ok()
            .and_then(|o| o.as_string())
    };
    let Some(here) = global("location").and_then(|l| origin(&l)) else {
        return false;
    };
    let Some(parse) = global("URL").and_then(|c| c.dyn_into::<Function>().ok()) else {
        return false;
    };
    let target = Reflect::construct(&parse, &js_sys::Array::of1(&JsValue::from_str(url)))
        .ok()
        .and_then(|u| origin(&u));
    target.is_some_and(|there| there != here)
}

/// Whether this is Node.js (`process.versions.node`).
pub(crate) fn is_node() -> bool {
    global("process")
        .and_then(|p| Reflect::get(&p, &JsValue::from_str("versions")).ok())
        .and_then(|v| Reflect::get(&v, &JsValue::from_str("node")).ok())
        .is_some_and(|n| n.is_string())
}

/// A readable message for a thrown JavaScript value.
pub(crate) fn describe(value: &JsValue) -> String {
    if let Some(error) = value.dyn_ref::<js_sys::Error>() {
        let name = String::from(error.name());
        let message = String::from(error.message());
        return if message.is_empty() {
            name
        } else {
            format!("{name}: {message}")
        };
    }
    if let Some(text) = value.as_string() {
        return text;
    }
    // DOMException is not an Error subclass in every engine.
    let field = |key: &str| {
        Reflect::get(value, &JsValue::from_str(key))
            .ok()
            .and_then(|v| v.as_string())
    };
    match (field("name"), field("message")) {
        (Some(name), Some(message)) => format!("{name}: {message}"),
        (Some(name), None) => name,
        (None, Some(message)) => message,
        (None, None) => "unknown JavaScript error".into(),
    }
}
