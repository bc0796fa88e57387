//! Requests in the browser: `XMLHttpRequest` (byte-level upload progress)
//! where it exists, the global `fetch` elsewhere (Node 20, workers). Both send
//! a `Blob.slice` as the body, so the platform streams the bytes from the
//! file and memory does not grow with the chunk, let alone the file; a
//! body that is not the file (the XML that completes an S3 upload) goes as
//! a small `Blob` of its own.
//!
//! A request the core wants signed (S3 through presigned URLs) is first
//! given to the application's signer ([`sign`]) and sent to the URL, with
//! the headers, it answers.
//!
//! A request that fails without any answer is reported as
//! [`TransportErrorKind::Blocked`] only when that is what it was: a
//! cross-origin request, while the browser is online, to a server that a
//! `no-cors` probe shows is reachable — the browser refused it (CORS). A
//! server that cannot be reached is [`TransportErrorKind::Connect`].

use std::cell::Cell;
use std::rc::Rc;

use chunkup_core::session::SessionInput;
use chunkup_core::{
    MAX_RESPONSE_BODY, RequestId, RequestSpec, Response, TransportError, TransportErrorKind,
};
use js_sys::{Function, Object, Reflect};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    AbortController, Blob, Headers, ProgressEvent, ReadableStreamDefaultReader, RequestInit,
    XmlHttpRequest,
};

use super::js;

/// Feeds an outcome back to the driver.
pub(crate) type Deliver = Rc<dyn Fn(SessionInput)>;

/// Which HTTP stack to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TransportChoice {
    /// `XMLHttpRequest` when the platform has it, else `fetch`.
    #[default]
    Auto,
    /// Always `XMLHttpRequest` (byte-level upload progress).
    Xhr,
    /// Always `fetch` (no upload progress: a chunk reports its bytes when
    /// its response arrives).
    Fetch,
}

/// The stack chosen for this platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stack {
    Xhr,
    Fetch,
}

impl Stack {
    /// The stack for `choice`, or `None` when the platform has neither.
    pub(crate) fn pick(choice: TransportChoice) -> Option<Stack> {
        let xhr = js::global("XMLHttpRequest").is_some();
        let fetch = js::global("fetch").is_some();
        match choice {
            TransportChoice::Auto if xhr => Some(Stack::Xhr),
            TransportChoice::Auto | TransportChoice::Fetch if fetch => Some(Stack::Fetch),
            TransportChoice::Xhr if xhr => Some(Stack::Xhr),
            _ => None,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Stack::Xhr => "xhr",
            Stack::Fetch => "fetch",
        }
    }
}

/// A request on its way; dropping it abandons the request (its outcome is
/// never delivered).
pub(crate) struct InFlight {
    id: RequestId,
    /// Set when dropped: nothing more is delivered.
    abandoned: Rc<Cell<bool>>,
    handle: Handle,
}

enum Handle {
    /// Waiting for the application's header provider or signer; nothing
    /// sent yet.
    Preparing,
    Xhr {
        xhr: XmlHttpRequest,
        _on_progress: Closure<dyn FnMut(ProgressEvent)>,
        _on_download: Closure<dyn FnMut(ProgressEvent)>,
        _on_load: Closure<dyn FnMut()>,
        _on_error: Closure<dyn FnMut()>,
    },
    Fetch {
        controller: AbortController,
        _counter: Option<Transform>,
    },
}

impl InFlight {
    /// A request whose headers or URL the application is still making.
    pub(crate) fn preparing(id: RequestId) -> InFlight {
        InFlight {
            id,
            abandoned: Rc::new(Cell::new(false)),
            handle: Handle::Preparing,
        }
    }

    pub(crate) fn id(&self) -> RequestId {
        self.id
    }

    pub(crate) fn is_preparing(&self) -> bool {
        matches!(self.handle, Handle::Preparing)
    }
}

impl std::fmt::Debug for InFlight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InFlight").field("id", &self.id).finish()
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.abandoned.set(true);
        match &self.handle {
            Handle::Preparing => {}
            Handle::Xhr { xhr, .. } => {
                // Handlers first: `abort()` dispatches events synchronously.
                xhr.set_onload(None);
                xhr.set_onprogress(None);
                xhr.set_onerror(None);
                xhr.set_ontimeout(None);
                if let Ok(upload) = xhr.upload() {
                    upload.set_onprogress(None);
                }
                let _ = xhr.abort();
            }
            Handle::Fetch { controller, .. } => controller.abort(),
        }
    }
}

/// Starts `spec` on `stack` with its body from `body_of`; its outcome
/// goes to `deliver` unless the request is dropped first. A request that
/// cannot even start is reported as the `Err`.
pub(crate) fn start(
    stack: Stack,
    spec: &RequestSpec,
    body_of: &dyn Fn(chunkup_core::ByteRange) -> Result<Blob, JsValue>,
    deliver: Deliver,
) -> Result<InFlight, TransportError> {
    let abandoned = Rc::new(Cell::new(false));
    let deliver: Deliver = {
        let abandoned = abandoned.clone();
        Rc::new(move |input| {
            if !abandoned.get() {
                deliver(input);
            }
        })
    };
    let body = match (spec.body, &spec.payload) {
        (Some(range), _) => Some(body_of(range)),
        (None, Some(bytes)) => Some(Blob::new_with_u8_array_sequence(&js_sys::Array::of1(
            &js_sys::Uint8Array::from(bytes.as_slice()),
        ))),
        (None, None) => None,
    }
    .transpose()
    .map_err(|e| TransportError::new(TransportErrorKind::Body, js::describe(&e)))?;
    let handle = match stack {
        Stack::Xhr => start_xhr(spec, body.as_ref(), deliver),
        Stack::Fetch => start_fetch(spec, body.as_ref(), deliver),
    }
    .map_err(|e| TransportError::new(TransportErrorKind::Other, js::describe(&e)))?;
    Ok(InFlight {
        id: spec.id,
        abandoned,
        handle,
    })
}

/// `spec` signed by the application's `signer`: called with `{method, url,
/// action, uploadId, partNumber}` (the unsigned URL; `uploadId` and
/// `partNumber` `null` where the action has none), it answers, at once or
/// through a Promise, `{url, headers?}`: the URL to send to and headers to
/// send (they replace the request's own of the same name).
///
/// A signer that throws, rejects or answers without a `url` fails this
/// request like a broken connection: the core retries it within its budget
/// (the application's backend may be down for a moment), and the last
/// message names the signer.
pub(crate) async fn sign(
    signer: &Function,
    mut spec: RequestSpec,
) -> Result<RequestSpec, TransportError> {
    let failed = |message: String| {
        TransportError::new(
            TransportErrorKind::Other,
            format!("the signer failed: {message}"),
        )
    };
    let Some(signing) = &spec.signing else {
        return Ok(spec);
    };
    let request = Object::new();
    for (key, value) in [
        ("method", JsValue::from_str(spec.method.as_str())),
        ("url", JsValue::from_str(&spec.url)),
        ("action", JsValue::from_str(signing.action.as_str())),
        (
            "uploadId",
            signing
                .upload_id
                .as_deref()
                .map_or(JsValue::NULL, JsValue::from_str),
        ),
        (
            "partNumber",
            signing.part_number.map_or(JsValue::NULL, JsValue::from),
        ),
    ] {
        let _ = Reflect::set(&request, &JsValue::from_str(key), &value);
    }
    let answer = signer
        .call1(&JsValue::NULL, &request)
        .map_err(|e| failed(js::describe(&e)))?;
    let answer = JsFuture::from(js_sys::Promise::resolve(&answer))
        .await
        .map_err(|e| failed(js::describe(&e)))?;
    let field = |key: &str| Reflect::get(&answer, &JsValue::from_str(key)).ok();
    spec.url = field("url")
        .and_then(|url| url.as_string())
        .ok_or_else(|| failed("its answer has no `url` string".into()))?;
    if let Some(headers) = field("headers").filter(|h| !h.is_undefined() && !h.is_null()) {
        merge_headers(&mut spec, &headers).map_err(failed)?;
    }
    Ok(spec)
}

/// `spec` with the headers of the application's header `provider`: called
/// before every request with `{url, method, refresh}` (`refresh`: the
/// server refused the credentials just sent; get fresh ones), it answers,
/// at once or through a Promise, an object of header names and values that
/// replace the request's own of the same name.
///
/// A provider that throws, rejects or answers something else fails this
/// request like a broken connection (retried within the budget).
pub(crate) async fn provide_headers(
    provider: &Function,
    mut spec: RequestSpec,
) -> Result<RequestSpec, TransportError> {
    let failed = |message: String| {
        TransportError::new(
            TransportErrorKind::Other,
            format!("the header provider failed: {message}"),
        )
    };
    let request = Object::new();
    for (key, value) in [
        ("url", JsValue::from_str(&spec.url)),
        ("method", JsValue::from_str(spec.method.as_str())),
        ("refresh", JsValue::from_bool(spec.refresh_credentials)),
    ] {
        let _ = Reflect::set(&request, &JsValue::from_str(key), &value);
    }
    let answer = provider
        .call1(&JsValue::NULL, &request)
        .map_err(|e| failed(js::describe(&e)))?;
    let answer = JsFuture::from(js_sys::Promise::resolve(&answer))
        .await
        .map_err(|e| failed(js::describe(&e)))?;
    merge_headers(&mut spec, &answer).map_err(failed)?;
    Ok(spec)
}

/// Sets the headers of a JS object of strings on `spec`, each replacing
/// the request's own of the same name.
fn merge_headers(spec: &mut RequestSpec, headers: &JsValue) -> Result<(), String> {
    let invalid = || "its headers must be an object of strings".to_string();
    let headers: &Object = headers.dyn_ref().ok_or_else(invalid)?;
    for entry in Object::entries(headers).iter() {
        let pair = js_sys::Array::from(&entry);
        let (Some(name), Some(value)) = (pair.get(0).as_string(), pair.get(1).as_string()) else {
            return Err(invalid());
        };
        spec.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
        spec.headers.push((name, value));
    }
    Ok(())
}

/// Reports that request `id` to `url` failed without any answer: blocked by
/// the browser when that is what it was (see the module documentation),
/// else a broken connection.
fn failed(id: RequestId, url: String, message: String, deliver: Deliver) {
    let report = move |kind| {
        let error = TransportError::new(kind, message);
        deliver(SessionInput::TransportFailed { id, error });
    };
    if !(js::online() && js::is_cross_origin(&url)) {
        return report(TransportErrorKind::Reset);
    }
    wasm_bindgen_futures::spawn_local(async move {
        report(if reachable(&url).await {
            TransportErrorKind::Blocked
        } else {
            TransportErrorKind::Connect
        });
    });
}

/// Whether the server at `url` answers at all: a `no-cors` `HEAD` gets an
/// opaque answer from any server that is up, whatever its CORS says.
async fn reachable(url: &str) -> bool {
    let init = RequestInit::new();
    init.set_method("HEAD");
    let mode = js_sys::Reflect::set(&init, &"mode".into(), &"no-cors".into());
    mode.is_ok() && JsFuture::from(js::fetch(url, &init)).await.is_ok()
}

fn start_xhr(spec: &RequestSpec, body: Option<&Blob>, deliver: Deliver) -> Result<Handle, JsValue> {
    let id = spec.id;
    let xhr = XmlHttpRequest::new()?;
    xhr.open_with_async(spec.method.as_str(), &spec.url, true)?;
    for (name, value) in &spec.headers {
        // The browser refuses headers it owns (it sets them itself).
        let _ = xhr.set_request_header(name, value);
    }
    let progress = {
        let deliver = deliver.clone();
        Closure::<dyn FnMut(ProgressEvent)>::new(move |event: ProgressEvent| {
            deliver(SessionInput::BodySent {
                id,
                bytes: event.loaded() as u64,
            });
        })
    };
    // A response body past the limit (a hostile or broken server) is cut
    // short: what arrived so far is the response.
    let download = {
        let deliver = deliver.clone();
        let xhr = xhr.clone();
        Closure::<dyn FnMut(ProgressEvent)>::new(move |event: ProgressEvent| {
            if event.loaded() > MAX_RESPONSE_BODY as f64 {
                let response = xhr_response(&xhr);
                deliver(SessionInput::Response { id, response });
            }
        })
    };
    let load = {
        let deliver = deliver.clone();
        let xhr = xhr.clone();
        Closure::<dyn FnMut()>::new(move || {
            let response = xhr_response(&xhr);
            deliver(SessionInput::Response { id, response });
        })
    };
    let url = spec.url.clone();
    let error = Closure::<dyn FnMut()>::new(move || {
        let message = "the request failed without an answer (XMLHttpRequest network error)";
        failed(id, url.clone(), message.into(), deliver.clone());
    });
    xhr.upload()?
        .set_onprogress(Some(progress.as_ref().unchecked_ref()));
    xhr.set_onprogress(Some(download.as_ref().unchecked_ref()));
    xhr.set_onload(Some(load.as_ref().unchecked_ref()));
    xhr.set_onerror(Some(error.as_ref().unchecked_ref()));
    xhr.set_ontimeout(Some(error.as_ref().unchecked_ref()));
    match body {
        Some(blob) => xhr.send_with_opt_blob(Some(blob))?,
        None => xhr.send()?,
    }
    Ok(Handle::Xhr {
        xhr,
        _on_progress: progress,
        _on_download: download,
        _on_load: load,
        _on_error: error,
    })
}

fn xhr_response(xhr: &XmlHttpRequest) -> Response {
    let status = xhr.status().unwrap_or(0);
    let headers = xhr
        .get_all_response_headers()
        .unwrap_or_default()
        .split("\r\n")
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            Some((name.trim().to_string(), value.trim().to_string()))
        })
        .collect();
    let mut body = xhr
        .response_text()
        .ok()
        .flatten()
        .unwrap_or_default()
        .into_bytes();
    body.truncate(MAX_RESPONSE_BODY);
    Response {
        status,
        headers,
        body,
    }
}

fn start_fetch(
    spec: &RequestSpec,
    body: Option<&Blob>,
    deliver: Deliver,
) -> Result<Handle, JsValue> {
    let id = spec.id;
    let controller = AbortController::new()?;
    let headers = Headers::new()?;
    for (name, value) in &spec.headers {
        let _ = headers.append(name, value);
    }
    let init = RequestInit::new();
    init.set_method(spec.method.as_str());
    init.set_headers(&headers);
    init.set_signal(Some(&controller.signal()));
    let mut counter = None;
    if let Some(blob) = body {
        if js::is_node() {
            // Node's fetch streams a body it is given as a stream: counting
            // what it pulls gives upload progress (and stall detection).
            // Browsers only stream request bodies over HTTP/2, so they get
            // the Blob.
            let (stream, transform) = counted(blob, id, deliver.clone())?;
            init.set_body(&stream);
            js_sys::Reflect::set(&init, &"duplex".into(), &"half".into())?;
            counter = Some(transform);
        } else {
            init.set_body(blob);
        }
    }
    let promise = js::fetch(&spec.url, &init);
    let sent = body.map(|b| b.size() as u64);
    let url = spec.url.clone();
    wasm_bindgen_futures::spawn_local(async move {
        match fetch_response(promise).await {
            Ok(response) => {
                if let Some(bytes) = sent {
                    // fetch cannot report upload progress: the whole body
                    // was handed over once a response arrived.
                    deliver(SessionInput::BodySent { id, bytes });
                }
                deliver(SessionInput::Response { id, response });
            }
            Err(error) => failed(id, url, js::describe(&error), deliver),
        }
    });
    Ok(Handle::Fetch {
        controller,
        _counter: counter,
    })
}

/// A `TransformStream`'s `transform(chunk, controller)`.
type Transform = Closure<dyn FnMut(JsValue, JsValue) -> Result<(), JsValue>>;

/// `blob` as a stream that reports, as `BodySent`, how much of it the
/// platform has pulled.
fn counted(
    blob: &Blob,
    id: RequestId,
    deliver: Deliver,
) -> Result<(web_sys::ReadableStream, Transform), JsValue> {
    let mut sent = 0u64;
    let transform = Transform::new(move |chunk: JsValue, controller: JsValue| {
        let length = js_sys::Reflect::get(&chunk, &"byteLength".into())?
            .as_f64()
            .unwrap_or(0.0);
        let enqueue: Function = js_sys::Reflect::get(&controller, &"enqueue".into())?.dyn_into()?;
        enqueue.call1(&controller, &chunk)?;
        sent += length as u64;
        deliver(SessionInput::BodySent { id, bytes: sent });
        Ok(())
    });
    let transformer = js_sys::Object::new();
    js_sys::Reflect::set(&transformer, &"transform".into(), transform.as_ref())?;
    let pair = web_sys::TransformStream::new_with_transformer(&transformer)?;
    let stream = blob
        .stream()
        .pipe_through(pair.unchecked_ref::<web_sys::ReadableWritablePair>());
    Ok((stream, transform))
}

async fn fetch_response(promise: js_sys::Promise) -> Result<Response, JsValue> {
    let response: web_sys::Response = JsFuture::from(promise).await?.dyn_into()?;
    let mut headers = Vec::new();
    if let Ok(Some(entries)) = js_sys::try_iter(&response.headers()) {
        for entry in entries.flatten() {
            let pair = js_sys::Array::from(&entry);
            if let (Some(name), Some(value)) = (pair.get(0).as_string(), pair.get(1).as_string()) {
                headers.push((name, value));
            }
        }
    }
    let status = response.status();
    let body = read_limited(&response).await;
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// At most [`MAX_RESPONSE_BODY`] bytes of the body; the rest is cancelled
/// unread, so an endless body cannot fill memory.
async fn read_limited(response: &web_sys::Response) -> Vec<u8> {
    let mut body = Vec::new();
    let Some(stream) = response.body() else {
        return body;
    };
    let reader: ReadableStreamDefaultReader = stream.get_reader().unchecked_into();
    let field = |object: &JsValue, key: &str| js_sys::Reflect::get(object, &JsValue::from_str(key));
    loop {
        let Ok(step) = JsFuture::from(reader.read()).await else {
            break;
        };
        if field(&step, "done")
            .ok()
            .and_then(|d| d.as_bool())
            .unwrap_or(true)
        {
            break;
        }
        let Ok(value) = field(&step, "value") else {
            break;
        };
        let bytes = js_sys::Uint8Array::new(&value);
        let room = MAX_RESPONSE_BODY - body.len();
        let take = (bytes.length() as usize).min(room);
        body.extend(bytes.subarray(0, take as u32).to_vec());
        if body.len() >= MAX_RESPONSE_BODY {
            let _ = reader.cancel();
            break;
        }
    }
    body
}
