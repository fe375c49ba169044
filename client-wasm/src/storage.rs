//! This browser's copy of the documents it syncs, in IndexedDB, so a board opens (and takes
//! edits) with no network, even after a reload.
//!
//! One object store, `docs`: key `<document id>` holds the document saved by Automerge, and key
//! `<document id>:acked` the heads the server last acknowledged (32 bytes per head), from which
//! the UI counts the local changes still waiting to sync.

use js_sys::{Promise, Uint8Array};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{IdbDatabase, IdbRequest, IdbTransactionMode};

const DB_NAME: &str = "hindsight";
const STORE: &str = "docs";

/// An open IndexedDB database.
#[derive(Clone)]
pub struct Storage(IdbDatabase);

/// Waits for an IndexedDB request to finish.
async fn finished(request: &IdbRequest) -> Result<JsValue, JsValue> {
    let promise = Promise::new(&mut |resolve, reject| {
        let ok = Closure::once_into_js(move |_: web_sys::Event| {
            let _ = resolve.call0(&JsValue::NULL);
        });
        let failed = Closure::once_into_js(move |_: web_sys::Event| {
            let _ = reject.call0(&JsValue::NULL);
        });
        request.set_onsuccess(Some(ok.unchecked_ref()));
        request.set_onerror(Some(failed.unchecked_ref()));
    });
    JsFuture::from(promise).await?;
    request.result()
}

impl Storage {
    /// Opens (creating on first use) the database. `None` where IndexedDB is unavailable, as in
    /// some private browsing modes: the app then works without an offline copy.
    pub async fn open() -> Option<Self> {
        let factory = web_sys::window()?.indexed_db().ok().flatten()?;
        let request = factory.open_with_u32(DB_NAME, 1).ok()?;
        let upgrade = Closure::<dyn FnMut(web_sys::Event)>::new(move |event: web_sys::Event| {
            let db = event
                .target()
                .and_then(|t| t.dyn_into::<IdbRequest>().ok())
                .and_then(|r| r.result().ok())
                .and_then(|r| r.dyn_into::<IdbDatabase>().ok());
            if let Some(db) = db
                && !db.object_store_names().contains(STORE)
            {
                let _ = db.create_object_store(STORE);
            }
        });
        request.set_onupgradeneeded(Some(upgrade.as_ref().unchecked_ref()));
        let result = finished(&request).await;
        request.set_onupgradeneeded(None);
        drop(upgrade);
        result.ok()?.dyn_into::<IdbDatabase>().ok().map(Self)
    }

    /// The bytes stored under `key`.
    pub async fn get(&self, key: &str) -> Option<Vec<u8>> {
        let tx = self.0.transaction_with_str(STORE).ok()?;
        let request = tx.object_store(STORE).ok()?.get(&JsValue::from_str(key)).ok()?;
        let value = finished(&request).await.ok()?;
        value.dyn_into::<Uint8Array>().ok().map(|a| a.to_vec())
    }

    /// Stores `bytes` under `key`; resolves once the write committed.
    pub async fn put(&self, key: &str, bytes: &[u8]) -> bool {
        let Ok(tx) = self.0.transaction_with_str_and_mode(STORE, IdbTransactionMode::Readwrite) else {
            return false;
        };
        let Ok(store) = tx.object_store(STORE) else { return false };
        let value = Uint8Array::from(bytes);
        match store.put_with_key(&value, &JsValue::from_str(key)) {
            Ok(request) => finished(&request).await.is_ok(),
            Err(_) => false,
        }
    }
}
