//! # chunkup-wasm — the npm package `chunkup`
//!
//! wasm-bindgen glue over [`chunkup::web`]: it maps a JavaScript options
//! object to [`chunkup::web::WebUploadOptions`] and each
//! [`chunkup::web::WebEvent`] to a plain JavaScript object handed to one
//! callback. The idiomatic surface (`Upload`, callbacks, Promises,
//! `UploadError`) is the thin `js/index.js` wrapper; every protocol, retry
//! and sizing decision is the core's.
//!
//! Event objects (`type` first) are [`chunkup::UploadEvent`]'s, with the
//! names of its generated TypeScript declaration
//! (`js/generated/api.d.ts`, from `crates/chunkup-api`): `discovered
//! {protocol, assumed, extensions, maxSize}`, `expires {at}` (unix ms),
//! `created {url}`, `resumed {offset}`, `chunk {offset}`, `progress
//! {bytesAcknowledged, bytesSent, bytesTotal, speed, etaMs}` (and
//! `etaSeconds`, its earlier name), `rewound {from, to}`, `retrying
//! {attempt, delayMs, reasonKind, status, reason}`, `paused`, `completed
//! {url}` (`url` may be `null`), `failed {kind, message, status, retryable,
//! error}`, `stopped`, `terminated`, `storeFailed {message}`; the web
//! driver's own `transport {name}`, `offline`, `online`; and last `finished
//! {url}` or `finished {error}`. An error is [`chunkup::UploadError`]'s
//! `{kind, message, status?, retryable}`.

#![cfg(target_arch = "wasm32")]

use std::str::FromStr;
use std::time::Duration;

use chunkup::core::{ChunkSizing, IetfVersion, Protocol, ResumeRecord};
use chunkup::web::{BrowserStore, TransportChoice, WebEvent, WebUpload, WebUploadOptions};
use chunkup::{UploadError, UploadEvent};
use js_sys::{Function, Object, Reflect};
use wasm_bindgen::prelude::*;
use web_sys::{AbortSignal, Blob, ReadableStream};

/// Reports panics on the console (they should not happen: errors are typed).
#[wasm_bindgen(start)]
fn init() {
    std::panic::set_hook(Box::new(|info| {
        web_sys::console::error_1(&format!("chunkup panicked: {info}").into());
    }));
}

/// One upload; the JavaScript `Upload` class wraps it.
#[wasm_bindgen(js_name = RawUpload)]
#[derive(Debug)]
pub struct RawUpload {
    upload: WebUpload,
}

#[wasm_bindgen(js_class = RawUpload)]
impl RawUpload {
    /// `options` as in `UploadOptions` (callbacks ignored); `sink` receives
    /// every event object. Throws `{kind: 'InvalidConfig', message}` for
    /// options that cannot work.
    #[wasm_bindgen(constructor)]
    pub fn new(file: Blob, options: JsValue, sink: Function) -> Result<RawUpload, JsValue> {
        let options = parse_options(&options)
            .map_err(|message| error_object("InvalidConfig", &message, None, false))?;
        let upload = WebUpload::new(file, options, move |event| {
            if let Some(object) = event_object(&event) {
                // A throwing callback is the wrapper's to report.
                let _ = sink.call1(&JsValue::NULL, &object);
            }
        });
        Ok(RawUpload { upload })
    }

    /// An upload of a `ReadableStream` of `Uint8Array`s whose length is
    /// learned at its end (deferred length; not for ranged or S3). Throws
    /// `{kind: 'Environment'}` for a stream that is already locked.
    #[wasm_bindgen(js_name = fromStream)]
    pub fn from_stream(
        stream: ReadableStream,
        options: JsValue,
        sink: Function,
    ) -> Result<RawUpload, JsValue> {
        let options = parse_options(&options)
            .map_err(|message| error_object("InvalidConfig", &message, None, false))?;
        let upload = WebUpload::from_stream(&stream, options, move |event| {
            if let Some(object) = event_object(&event) {
                let _ = sink.call1(&JsValue::NULL, &object);
            }
        })
        .map_err(|error| map_error(&error))?;
        Ok(RawUpload { upload })
    }

    /// Starts (or, after a reload, continues) the upload.
    pub fn start(&self) {
        self.upload.start();
    }

    /// Stops sending until `resume()`.
    pub fn pause(&self) {
        self.upload.pause();
    }

    /// Continues after `pause()`.
    pub fn resume(&self) {
        self.upload.resume();
    }

    /// Ends the upload, keeping it on the server and in the store.
    pub fn stop(&self) {
        self.upload.stop();
    }

    /// Ends the upload and removes it (server, where the protocol can, and
    /// store); before `start()`, applied at the start.
    pub fn terminate(&self) {
        self.upload.terminate();
    }

    /// The upload's URL once created or found, else `null`.
    #[wasm_bindgen(getter)]
    pub fn url(&self) -> Option<String> {
        self.upload.upload_url()
    }
}

/// The uploads remembered in this origin's store that may still be
/// continued, as `RememberedUpload` objects (oldest first); first, with
/// `forget`, the upload remembered under that key (and its parts' records)
/// is forgotten (it stays on the server).
#[wasm_bindgen(js_name = rememberedUploads)]
pub async fn remembered_uploads(forget: Option<String>) -> Result<JsValue, JsValue> {
    let store = BrowserStore::detect();
    let environment = |message: String| error_object("Environment", &message, None, false);
    if let Some(key) = forget {
        store.forget(&key).await.map_err(environment)?;
    }
    let records = store.list().await.map_err(environment)?;
    Ok(records
        .iter()
        .map(remembered_object)
        .collect::<js_sys::Array>()
        .into())
}

/// The key an upload of `file` with `options` is remembered under, or
/// `null` when it is not remembered (no identity, or `resume: false`).
#[wasm_bindgen(js_name = resumeKey)]
pub fn resume_key(file: Blob, options: JsValue) -> Result<Option<String>, JsValue> {
    let options = parse_options(&options)
        .map_err(|message| error_object("InvalidConfig", &message, None, false))?;
    Ok(chunkup::web::resume_key(&file, &options))
}

fn remembered_object(record: &ResumeRecord) -> JsValue {
    let object = Object::new();
    let optional = |value: Option<&str>| value.map_or(JsValue::NULL, JsValue::from_str);
    let metadata = Object::new();
    for (key, value) in &record.metadata {
        let _ = Reflect::set(
            &metadata,
            &JsValue::from_str(key),
            &JsValue::from_str(value),
        );
    }
    for (key, value) in [
        ("key", JsValue::from_str(&record.fingerprint)),
        ("url", JsValue::from_str(&record.upload_url)),
        ("protocol", record.protocol.as_str().into()),
        ("fileName", optional(record.file_name.as_deref())),
        ("size", num(record.total)),
        ("acknowledged", num(record.offset)),
        ("endpoint", optional(record.endpoint.as_deref())),
        ("createdMs", JsValue::from_f64(record.created_ms as f64)),
        ("updatedMs", JsValue::from_f64(record.updated_ms as f64)),
        (
            "expiresMs",
            record
                .expires_ms
                .map_or(JsValue::NULL, |ms| JsValue::from_f64(ms as f64)),
        ),
        ("metadata", metadata.into()),
    ] {
        let _ = Reflect::set(&object, &JsValue::from_str(key), &value);
    }
    object.into()
}

fn get(object: &JsValue, key: &str) -> Option<JsValue> {
    Reflect::get(object, &JsValue::from_str(key))
        .ok()
        .filter(|v| !v.is_undefined() && !v.is_null())
}

fn get_string(object: &JsValue, key: &str) -> Result<Option<String>, String> {
    match get(object, key) {
        None => Ok(None),
        Some(v) => v
            .as_string()
            .map(Some)
            .ok_or_else(|| format!("{key} must be a string")),
    }
}

fn get_bool(object: &JsValue, key: &str) -> Result<Option<bool>, String> {
    match get(object, key) {
        None => Ok(None),
        Some(v) => v
            .as_bool()
            .map(Some)
            .ok_or_else(|| format!("{key} must be a boolean")),
    }
}

fn get_number(object: &JsValue, key: &str) -> Result<Option<f64>, String> {
    match get(object, key) {
        None => Ok(None),
        Some(v) => match v.as_f64() {
            Some(n) if n.is_finite() && n >= 0.0 => Ok(Some(n)),
            _ => Err(format!("{key} must be a non-negative number")),
        },
    }
}

fn get_pairs(object: &JsValue, key: &str) -> Result<Vec<(String, String)>, String> {
    let Some(map) = get(object, key) else {
        return Ok(Vec::new());
    };
    let map: Object = map
        .dyn_into()
        .map_err(|_| format!("{key} must be an object of strings"))?;
    Object::entries(&map)
        .iter()
        .map(|entry| {
            let pair = js_sys::Array::from(&entry);
            match (pair.get(0).as_string(), pair.get(1).as_string()) {
                (Some(k), Some(v)) => Ok((k, v)),
                _ => Err(format!("{key} must be an object of strings")),
            }
        })
        .collect()
}

fn parse_options(js: &JsValue) -> Result<WebUploadOptions, String> {
    if !js.is_object() {
        return Err("options must be an object".into());
    }
    let endpoint = get_string(js, "endpoint")?;
    let upload_url = get_string(js, "uploadUrl")?;
    if endpoint.is_none() && upload_url.is_none() {
        return Err("options.endpoint (or options.uploadUrl) is required".into());
    }
    let mut options = WebUploadOptions::new(String::new());
    options.endpoint = endpoint;
    options.upload_url = upload_url;
    if let Some(protocol) = get_string(js, "protocol")? {
        options.protocol = Protocol::from_str(&protocol).map_err(|e| e.to_string())?;
    }
    match get(js, "chunkSize") {
        None => {}
        Some(v) if v.as_string().as_deref() == Some("auto") => {}
        Some(v) => match v.as_f64() {
            Some(n) if n >= 1.0 && n.fract() == 0.0 && n <= 9.0e15 => {
                options.chunking = ChunkSizing::Fixed(n as u64);
            }
            _ => return Err("chunkSize must be 'auto' or a positive whole number of bytes".into()),
        },
    }
    options.metadata = get_pairs(js, "metadata")?;
    options.headers = get_pairs(js, "headers")?;
    if let Some(resume) = get_bool(js, "resume")? {
        options.resume = resume;
    }
    if let Some(retries) = get_number(js, "retries")? {
        options.retry.max_attempts = retries.min(f64::from(u32::MAX)) as u32;
    }
    if let Some(delays) = get(js, "retryDelays") {
        let invalid = || "retryDelays must be an array of milliseconds (numbers >= 0)".to_string();
        let delays: js_sys::Array = delays.dyn_into().map_err(|_| invalid())?;
        options.retry.delays = (delays.iter())
            .map(|ms| match ms.as_f64() {
                Some(ms) if (0.0..=1.0e12).contains(&ms) => {
                    Ok(Duration::from_secs_f64(ms / 1000.0))
                }
                _ => Err(invalid()),
            })
            .collect::<Result<_, _>>()?;
    }
    if let Some(provider) = get(js, "getHeaders") {
        options.header_provider = Some(
            provider
                .dyn_into()
                .map_err(|_| "getHeaders must be a function")?,
        );
    }
    if let Some(hook) = get(js, "onShouldRetry") {
        options.should_retry = Some(
            hook.dyn_into()
                .map_err(|_| "onShouldRetry must be a function")?,
        );
    }
    if let Some(kind) = get_string(js, "transport")? {
        options.transport = match kind.as_str() {
            "auto" => TransportChoice::Auto,
            "xhr" => TransportChoice::Xhr,
            "fetch" => TransportChoice::Fetch,
            _ => return Err("transport must be 'auto', 'xhr' or 'fetch'".into()),
        };
    }
    if let Some(ms) = get_number(js, "stallTimeoutMs")? {
        options.retry.stall_timeout = Duration::from_secs_f64(ms / 1000.0);
    }
    if let Some(ms) = get_number(js, "deadlineMs")? {
        options.retry.deadline = Some(Duration::from_secs_f64(ms / 1000.0));
    }
    if let Some(ms) = get_number(js, "progressIntervalMs")? {
        options.progress_interval = Duration::from_secs_f64(ms / 1000.0);
    }
    match get_number(js, "ietfVersion")? {
        None => {}
        Some(6.0) => options.ietf_version = IetfVersion::Interop6,
        Some(8.0) => options.ietf_version = IetfVersion::Interop8,
        Some(_) => return Err("ietfVersion must be 6 or 8".into()),
    }
    options.content_type = get_string(js, "contentType")?;
    options.file_name = get_string(js, "fileName")?;
    options.fingerprint = get_string(js, "fingerprint")?;
    if let Some(parallel) = get_number(js, "parallel")? {
        if parallel < 1.0 || parallel.fract() != 0.0 || parallel > 64.0 {
            return Err("parallel must be a whole number from 1 to 64".into());
        }
        options.parallel = parallel as usize;
    }
    if let Some(sign) = get(js, "sign") {
        options.signer = Some(sign.dyn_into().map_err(|_| "sign must be a function")?);
    } else if options.protocol == Protocol::S3 {
        return Err(
            "protocol 's3' needs a sign function (your backend presigns each request)".into(),
        );
    }
    if let Some(signal) = get(js, "signal") {
        // By shape, like the DOM's own checks: any AbortSignal-like target.
        let shaped = Reflect::get(&signal, &"aborted".into()).is_ok_and(|v| v.as_bool().is_some())
            && get(&signal, "addEventListener").is_some_and(|f| f.is_function());
        if !shaped {
            return Err("signal must be an AbortSignal".into());
        }
        options.signal = Some(signal.unchecked_into::<AbortSignal>());
    }
    Ok(options)
}

/// `{type, ...fields}`.
fn object(kind: &str, fields: &[(&str, JsValue)]) -> JsValue {
    let object = Object::new();
    let _ = Reflect::set(&object, &"type".into(), &kind.into());
    for (key, value) in fields {
        let _ = Reflect::set(&object, &JsValue::from_str(key), value);
    }
    object.into()
}

fn error_object(kind: &str, message: &str, status: Option<u16>, retryable: bool) -> JsValue {
    let object = Object::new();
    let _ = Reflect::set(&object, &"kind".into(), &kind.into());
    let _ = Reflect::set(&object, &"message".into(), &message.into());
    if let Some(status) = status {
        let _ = Reflect::set(&object, &"status".into(), &status.into());
    }
    let _ = Reflect::set(&object, &"retryable".into(), &retryable.into());
    object.into()
}

/// The public error as `{kind, message, status?, retryable}`.
fn upload_error_object(error: &UploadError) -> JsValue {
    error_object(
        error.kind().as_str(),
        error.reason(),
        error.status(),
        error.retryable(),
    )
}

fn map_error(error: &chunkup::Error) -> JsValue {
    upload_error_object(&error.to_upload_error())
}

fn num(n: u64) -> JsValue {
    JsValue::from_f64(n as f64)
}

fn event_object(event: &WebEvent) -> Option<JsValue> {
    Some(match event {
        WebEvent::Transport(name) => object("transport", &[("name", (*name).into())]),
        WebEvent::Network { online: true } => object("online", &[]),
        WebEvent::Network { online: false } => object("offline", &[]),
        WebEvent::Finished(Ok(completion)) => object(
            "finished",
            &[("url", url_value(completion.upload_url.as_deref()))],
        ),
        WebEvent::Finished(Err(error)) => object("finished", &[("error", map_error(error))]),
        WebEvent::Engine(event) => engine_event(event),
        _ => return None,
    })
}

/// An engine event as the shared [`UploadEvent`], with the field names of
/// its TypeScript declaration.
fn engine_event(event: &chunkup::core::Event) -> JsValue {
    let event = UploadEvent::from(event);
    let kind = event.type_name();
    let optional_num = |n: Option<u64>| n.map_or(JsValue::NULL, num);
    let status = |status: Option<u16>| status.map_or(JsValue::NULL, JsValue::from);
    match &event {
        UploadEvent::Discovered {
            protocol,
            assumed,
            extensions,
            max_size,
        } => object(
            kind,
            &[
                (
                    "protocol",
                    chunkup::core::Protocol::from(*protocol).as_str().into(),
                ),
                ("assumed", (*assumed).into()),
                (
                    "extensions",
                    extensions
                        .iter()
                        .map(|e| JsValue::from_str(e))
                        .collect::<js_sys::Array>()
                        .into(),
                ),
                ("maxSize", optional_num(*max_size)),
            ],
        ),
        UploadEvent::Created { upload_url } => object(kind, &[("url", upload_url.as_str().into())]),
        UploadEvent::Resumed { offset } | UploadEvent::ChunkAcknowledged { offset } => {
            object(kind, &[("offset", num(*offset))])
        }
        UploadEvent::Progress { progress: p } => object(
            kind,
            &[
                ("bytesAcknowledged", num(p.acknowledged)),
                ("bytesSent", num(p.sent)),
                ("bytesTotal", num(p.total)),
                ("speed", JsValue::from_f64(p.bytes_per_second)),
                ("etaMs", optional_num(p.eta_ms)),
                (
                    "etaSeconds",
                    p.eta_ms
                        .map_or(JsValue::NULL, |ms| JsValue::from_f64(ms as f64 / 1000.0)),
                ),
            ],
        ),
        UploadEvent::Retrying {
            attempt,
            delay_ms,
            reason,
            status: code,
            message,
        } => object(
            kind,
            &[
                ("attempt", (*attempt).into()),
                ("delayMs", num(*delay_ms)),
                ("reasonKind", reason.as_str().into()),
                ("status", status(*code)),
                ("reason", message.as_str().into()),
            ],
        ),
        UploadEvent::ServerRewound { from, to } => {
            object(kind, &[("from", num(*from)), ("to", num(*to))])
        }
        UploadEvent::Expires { at_unix_ms } => {
            object(kind, &[("at", JsValue::from_f64(*at_unix_ms as f64))])
        }
        UploadEvent::StoreFailed { message } => {
            object(kind, &[("message", message.as_str().into())])
        }
        UploadEvent::Completed { upload_url } => {
            object(kind, &[("url", url_value(upload_url.as_deref()))])
        }
        UploadEvent::Failed {
            kind: error_kind,
            reason,
            status: code,
            retryable,
        } => {
            let error = UploadError::new(*error_kind, reason.as_str(), *code, *retryable);
            object(
                kind,
                &[
                    ("kind", error_kind.as_str().into()),
                    ("message", reason.as_str().into()),
                    ("status", status(*code)),
                    ("retryable", (*retryable).into()),
                    ("error", upload_error_object(&error)),
                ],
            )
        }
        UploadEvent::Paused | UploadEvent::Stopped | UploadEvent::Terminated => object(kind, &[]),
    }
}

/// A URL, or `null` when the server named none.
fn url_value(url: Option<&str>) -> JsValue {
    url.map_or(JsValue::NULL, JsValue::from_str)
}
