//! The browser's resume store: `localStorage`, with IndexedDB as the fallback
//! when `localStorage` is missing (workers), forbidden (opaque origins) or
//! full. Records are the core's [`ResumeRecord`] JSON, the same as on native.
//!
//! Nothing here may fail an upload: a store that cannot be used only costs
//! the ability to resume after a reload, and is reported as such.

use chunkup_core::ResumeRecord;
use js_sys::{Array, Promise};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{IdbDatabase, IdbFactory, IdbOpenDbRequest, IdbRequest, IdbTransactionMode, Storage};

use super::js;

/// Key prefix of records in `localStorage`.
const PREFIX: &str = "chunkup:resume:";
const DB_NAME: &str = "chunkup";
const DB_STORE: &str = "resume";

/// Where resume records are kept in a browser.
#[derive(Debug, Clone)]
pub struct BrowserStore {
    local: Option<Storage>,
    idb: Option<IdbFactory>,
}

impl BrowserStore {
    /// The platform's stores: `localStorage` and `indexedDB` where they exist
    /// (in Node 20 neither does, and nothing is remembered).
    pub fn detect() -> Self {
        // Checked by shape rather than class, so that a page's (or a
        // test's) own implementation of the Web Storage API works too.
        let local = js::global("localStorage")
            .filter(|v| has_methods(v, &["getItem", "setItem", "removeItem", "key"]))
            .map(JsValue::unchecked_into::<Storage>);
        let idb = js::global("indexedDB")
            .filter(|v| has_methods(v, &["open"]))
            .map(JsValue::unchecked_into::<IdbFactory>);
        BrowserStore { local, idb }
    }

    /// A store that remembers nothing.
    pub fn none() -> Self {
        BrowserStore {
            local: None,
            idb: None,
        }
    }

    /// Whether any store is available.
    pub fn is_available(&self) -> bool {
        self.local.is_some() || self.idb.is_some()
    }

    /// The record kept under `fingerprint`, if any (whether it may continue
    /// an upload is the session's decision).
    pub async fn load(&self, fingerprint: &str) -> Result<Option<ResumeRecord>, String> {
        if let Some(local) = &self.local {
            let text = local
                .get_item(&key(fingerprint))
                .map_err(|e| js::describe(&e))?;
            if let Some(record) = text.and_then(|t| parse(&t, fingerprint)) {
                return Ok(Some(record));
            }
        }
        if self.idb.is_some() {
            let text = self.idb_get(fingerprint).await?;
            return Ok(text.and_then(|t| parse(&t, fingerprint)));
        }
        Ok(None)
    }

    /// Adds or replaces a record: in `localStorage`, or in IndexedDB when
    /// `localStorage` refuses (e.g. `QuotaExceededError`).
    pub async fn save(&self, record: &ResumeRecord) -> Result<(), String> {
        let json = serde_json::to_string(record).map_err(|e| e.to_string())?;
        let mut local_error = None;
        if let Some(local) = &self.local {
            match local.set_item(&key(&record.fingerprint), &json) {
                Ok(()) => return Ok(()),
                Err(e) => local_error = Some(js::describe(&e)),
            }
        }
        if self.idb.is_some() {
            return self
                .idb_put(&record.fingerprint, &json)
                .await
                .map_err(|e| match local_error {
                    Some(local) => format!("localStorage: {local}; IndexedDB: {e}"),
                    None => e,
                });
        }
        Err(local_error.unwrap_or_else(|| "no localStorage or IndexedDB here".into()))
    }

    /// Forgets a record in both stores (absent records are fine).
    pub async fn remove(&self, fingerprint: &str) -> Result<(), String> {
        if let Some(local) = &self.local {
            local
                .remove_item(&key(fingerprint))
                .map_err(|e| js::describe(&e))?;
        }
        if self.idb.is_some() {
            self.idb_delete(fingerprint).await?;
        }
        Ok(())
    }

    /// Removes every record that is stale ([`ResumeRecord::is_stale`]: past
    /// the server's expiry, or long unused) or unreadable; returns how many
    /// went. Housekeeping: a browser's store outlives its uploads.
    pub async fn sweep(&self) -> Result<usize, String> {
        let now = js::wall_ms();
        let mut stale = Vec::new();
        if let Some(local) = &self.local {
            let count = local.length().map_err(|e| js::describe(&e))?;
            for i in 0..count {
                let Ok(Some(name)) = local.key(i) else {
                    continue;
                };
                let Some(fingerprint) = name.strip_prefix(PREFIX) else {
                    continue;
                };
                let text = local.get_item(&name).ok().flatten().unwrap_or_default();
                if parse(&text, fingerprint).is_none_or(|r| r.is_stale(now)) {
                    stale.push(fingerprint.to_string());
                }
            }
        }
        if self.idb.is_some() {
            for (fingerprint, text) in self.idb_all().await? {
                if parse(&text, &fingerprint).is_none_or(|r| r.is_stale(now)) {
                    stale.push(fingerprint);
                }
            }
        }
        stale.sort();
        stale.dedup();
        for fingerprint in &stale {
            self.remove(fingerprint).await?;
        }
        Ok(stale.len())
    }

    /// Every remembered upload that may still be continued (not stale),
    /// from both stores, oldest first; the records of single parts of a
    /// file sent as parallel parts belong to their file and are left out.
    pub async fn list(&self) -> Result<Vec<ResumeRecord>, String> {
        let now = js::wall_ms();
        let mut records: Vec<ResumeRecord> = self.all().await?;
        records.retain(|r| r.part_of.is_none() && !r.is_stale(now));
        records.sort_by(|a, b| (a.created_ms, &a.fingerprint).cmp(&(b.created_ms, &b.fingerprint)));
        records.dedup_by(|a, b| a.fingerprint == b.fingerprint);
        Ok(records)
    }

    /// Forgets the upload remembered under `key` and the records of its
    /// parts (absent records are fine). The upload itself stays on the
    /// server.
    pub async fn forget(&self, key: &str) -> Result<(), String> {
        let parts = (self.all().await?.into_iter())
            .filter(|r| r.part_of.as_deref() == Some(key))
            .map(|r| r.fingerprint);
        for fingerprint in parts.collect::<Vec<_>>() {
            self.remove(&fingerprint).await?;
        }
        self.remove(key).await
    }

    /// Every readable record of both stores (`localStorage`'s first).
    async fn all(&self) -> Result<Vec<ResumeRecord>, String> {
        let mut records = Vec::new();
        if let Some(local) = &self.local {
            let count = local.length().map_err(|e| js::describe(&e))?;
            for i in 0..count {
                let Ok(Some(name)) = local.key(i) else {
                    continue;
                };
                let Some(fingerprint) = name.strip_prefix(PREFIX) else {
                    continue;
                };
                let text = local.get_item(&name).ok().flatten().unwrap_or_default();
                records.extend(parse(&text, fingerprint));
            }
        }
        if self.idb.is_some() {
            for (fingerprint, text) in self.idb_all().await? {
                records.extend(parse(&text, &fingerprint));
            }
        }
        Ok(records)
    }

    async fn db(&self) -> Result<IdbDatabase, String> {
        let factory = self.idb.as_ref().ok_or("no IndexedDB here")?;
        let open: IdbOpenDbRequest = factory
            .open_with_u32(DB_NAME, 1)
            .map_err(|e| js::describe(&e))?;
        let upgrade = {
            let open = open.clone();
            Closure::<dyn FnMut()>::new(move || {
                if let Ok(db) = open.result().map(JsValue::unchecked_into::<IdbDatabase>) {
                    if !db.object_store_names().contains(DB_STORE) {
                        let _ = db.create_object_store(DB_STORE);
                    }
                }
            })
        };
        open.set_onupgradeneeded(Some(upgrade.as_ref().unchecked_ref()));
        let result = request(&open).await;
        open.set_onupgradeneeded(None);
        drop(upgrade);
        // By shape, not class (see `detect`): `open` yields a database.
        result.map(JsValue::unchecked_into::<IdbDatabase>)
    }

    async fn with_store(
        &self,
        mode: IdbTransactionMode,
        op: impl FnOnce(&web_sys::IdbObjectStore) -> Result<IdbRequest, JsValue>,
    ) -> Result<JsValue, String> {
        let db = self.db().await?;
        let result = async {
            let tx = db
                .transaction_with_str_and_mode(DB_STORE, mode)
                .map_err(|e| js::describe(&e))?;
            let store = tx.object_store(DB_STORE).map_err(|e| js::describe(&e))?;
            let req = op(&store).map_err(|e| js::describe(&e))?;
            request(&req).await
        }
        .await;
        db.close();
        result
    }

    async fn idb_get(&self, fingerprint: &str) -> Result<Option<String>, String> {
        let value = self
            .with_store(IdbTransactionMode::Readonly, |s| {
                s.get(&JsValue::from_str(fingerprint))
            })
            .await?;
        Ok(value.as_string())
    }

    async fn idb_put(&self, fingerprint: &str, json: &str) -> Result<(), String> {
        self.with_store(IdbTransactionMode::Readwrite, |s| {
            s.put_with_key(&JsValue::from_str(json), &JsValue::from_str(fingerprint))
        })
        .await
        .map(drop)
    }

    async fn idb_delete(&self, fingerprint: &str) -> Result<(), String> {
        self.with_store(IdbTransactionMode::Readwrite, |s| {
            s.delete(&JsValue::from_str(fingerprint))
        })
        .await
        .map(drop)
    }

    async fn idb_all(&self) -> Result<Vec<(String, String)>, String> {
        let keys = self
            .with_store(IdbTransactionMode::Readonly, |s| s.get_all_keys())
            .await?;
        let values = self
            .with_store(IdbTransactionMode::Readonly, |s| s.get_all())
            .await?;
        let (keys, values) = (Array::from(&keys), Array::from(&values));
        Ok(keys
            .iter()
            .zip(values.iter())
            .filter_map(|(k, v)| Some((k.as_string()?, v.as_string()?)))
            .collect())
    }
}

fn has_methods(object: &JsValue, names: &[&str]) -> bool {
    names.iter().all(|name| {
        js_sys::Reflect::get(object, &JsValue::from_str(name)).is_ok_and(|f| f.is_function())
    })
}

fn key(fingerprint: &str) -> String {
    format!("{PREFIX}{fingerprint}")
}

/// A record only counts if it parses and names the fingerprint it is kept
/// under; anything else is forgotten.
fn parse(text: &str, fingerprint: &str) -> Option<ResumeRecord> {
    serde_json::from_str::<ResumeRecord>(text)
        .ok()
        .filter(|r| r.fingerprint == fingerprint)
}

/// Waits for an IndexedDB request's `success` (its result) or `error`.
async fn request(req: &IdbRequest) -> Result<JsValue, String> {
    let promise = Promise::new(&mut |resolve, reject| {
        req.set_onsuccess(Some(&resolve));
        req.set_onerror(Some(&reject));
    });
    let outcome = JsFuture::from(promise).await;
    req.set_onsuccess(None);
    req.set_onerror(None);
    match outcome {
        Ok(_) => req.result().map_err(|e| js::describe(&e)),
        Err(_) => Err(req
            .error()
            .ok()
            .flatten()
            .map_or_else(|| "IndexedDB request failed".into(), |e| js::describe(&e))),
    }
}
