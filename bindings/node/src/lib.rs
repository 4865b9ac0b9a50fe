//! Node.js bindings for `ai-key-rotator`, built with napi-rs.
//!
//! This crate is the thin native layer under the npm package in this folder: it exposes the
//! core's [`KeyRotator`] to JavaScript and converts values, nothing more. The JavaScript layer
//! (`index.js`) gives it the original library's API: an `EventEmitter`, Promises, the
//! persistence adapter and the `fetch` adapter. All rotation logic stays in the core.
#![warn(missing_debug_implementations)]

mod config;
mod convert;
mod error;
mod events;
mod execute;
mod hot;
mod lease;
mod registry;
mod store;

use std::time::Duration;

use ai_key_rotator::classify::Response;
use ai_key_rotator::{FakeClock, KeyRotator, Timestamp};
use napi::bindgen_prelude::Function;
use napi_derive::napi;
use serde_json::Value;

use crate::error::{Result, config_error, destroyed, js_error, state_error};

/// The native rotator behind the JavaScript `AIKeyRotator`.
#[napi]
pub struct NativeRotator {
    /// `None` once destroyed; every method then throws.
    rotator: Option<KeyRotator>,
    /// The clock, when the configuration asked for a fake one (tests move it forward).
    fake_clock: Option<FakeClock>,
    /// This rotator's entry in the `getKey` table (see `hot`).
    slot: u32,
    /// The events JavaScript drains, once it listens.
    events: Option<ai_key_rotator::Subscription>,
}

impl std::fmt::Debug for NativeRotator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeRotator")
            .field("rotator", &self.rotator)
            .finish_non_exhaustive()
    }
}

#[napi]
impl NativeRotator {
    /// `options`: `{ providers: [[name, config], …], resetIntervalMs?, store?, clock? }` as JSON.
    /// Providers come as a list so that their order is the user's.
    #[napi(constructor)]
    pub fn new(options: String) -> Result<Self> {
        let Value::Object(mut options) = config::parse_json(&options, "the configuration")? else {
            return Err(js_error(
                "ERR_INVALID_CONFIG",
                "the configuration must be an object",
            ));
        };
        let mut builder = KeyRotator::builder();
        if let Some(providers) = options.remove("providers") {
            let Value::Array(providers) = providers else {
                return Err(js_error(
                    "ERR_INVALID_CONFIG",
                    "`providers` must be an object",
                ));
            };
            for entry in providers {
                let Ok((name, provider)) = serde_json::from_value::<(String, Value)>(entry) else {
                    return Err(js_error(
                        "ERR_INVALID_CONFIG",
                        "`providers` must be an object",
                    ));
                };
                let provider = config::provider_config(&name, provider)?;
                builder = builder.provider(name, provider);
            }
        }
        if let Some(ms) = options.remove("resetIntervalMs") {
            let ms = ms.as_u64().ok_or_else(|| {
                js_error(
                    "ERR_INVALID_CONFIG",
                    "`resetIntervalMs` must be a non-negative integer",
                )
            })?;
            builder = builder.reset_interval(Duration::from_millis(ms));
        }
        if let Some(store) = options.remove("store")
            && let Some(store) = store::open(config::snake_keys(store))?
        {
            builder = builder.shared_store(store);
        }
        let mut fake_clock = None;
        if let Some(clock) = options.remove("clock") {
            let start = clock.get("fake").and_then(Value::as_u64).ok_or_else(|| {
                js_error(
                    "ERR_INVALID_CONFIG",
                    "`clock` must be { fake: <start, Unix milliseconds> }",
                )
            })?;
            let clock = FakeClock::new(Timestamp::from_millis(start));
            builder = builder.clock(clock.clone());
            fake_clock = Some(clock);
        }
        if let Some(unknown) = options.keys().next() {
            return Err(js_error(
                "ERR_INVALID_CONFIG",
                format!("unknown option `{unknown}`"),
            ));
        }
        let rotator = builder.build().map_err(config_error)?;
        let slot = hot::insert(rotator.clone());
        Ok(NativeRotator {
            rotator: Some(rotator),
            fake_clock,
            slot,
            events: None,
        })
    }

    fn rotator(&self) -> Result<&KeyRotator> {
        self.rotator.as_ref().ok_or_else(destroyed)
    }

    /// The slot `getKeyAt` takes.
    #[napi]
    pub fn slot(&self) -> u32 {
        self.slot
    }

    /// A small number for a provider name that `getKeyAt` takes instead of the name, or -1
    /// for an unknown provider. Saves converting the name's string on every `getKey`.
    #[napi]
    pub fn provider_index(&self, name: String) -> Result<i32> {
        if self.rotator()?.family(&name).is_none() {
            return Ok(-1);
        }
        Ok(hot::with(self.slot, |h| h.registry.provider_index(name)).unwrap_or(-1))
    }

    /// `{ key, label, meta, provider, fingerprint }` of a handle from `getKeyAt`.
    #[napi]
    pub fn credential_at(&self, handle: u32) -> Result<Value> {
        self.rotator()?;
        hot::with(self.slot, |h| h.registry.credential_object(handle))
            .flatten()
            .ok_or_else(|| js_error("ERR_INVALID_ARG", "unknown credential handle"))
    }

    #[napi]
    pub fn mark_exhausted(&self, provider: String, key: Option<String>) -> Result<bool> {
        Ok(self.rotator()?.mark_exhausted(&provider, key.as_deref()))
    }

    /// Marks the credential of a handle exhausted, whichever is current now.
    #[napi]
    pub fn mark_handle_exhausted(&self, handle: u32) -> Result<bool> {
        self.rotator()?;
        Ok(hot::with(self.slot, |h| {
            h.registry
                .credential(handle)
                .is_some_and(|c| h.rotator.mark_credential_exhausted(c))
        })
        .unwrap_or(false))
    }

    #[napi]
    pub fn rotate_next(&self, provider: String) -> Result<bool> {
        Ok(self.rotator()?.rotate_next(&provider))
    }

    #[napi]
    pub fn has_available(&self, provider: String) -> Result<bool> {
        Ok(self.rotator()?.has_available(&provider))
    }

    /// Every provider's status by name, or one provider's (`null` if unknown).
    #[napi]
    pub fn status(&self, provider: Option<String>) -> Result<Value> {
        let rotator = self.rotator()?;
        Ok(match provider {
            Some(p) => rotator
                .provider_status(&p)
                .map_or(Value::Null, |s| convert::provider_status(&s)),
            None => convert::rotator_status(&rotator.status()),
        })
    }

    #[napi]
    pub fn providers(&self) -> Result<Vec<String>> {
        Ok(self.rotator()?.providers())
    }

    /// `credential` is `{ key, label?, meta?, scope?, weight? }` as JSON.
    #[napi]
    pub fn add_credential(&self, provider: String, credential: String) -> Result<()> {
        let value = config::parse_json(&credential, "the credential")?;
        let credential = config::credential_config(&provider, value)?;
        self.rotator()?
            .add_credential(&provider, credential)
            .map_err(config_error)
    }

    #[napi]
    pub fn remove_credential(&mut self, provider: String, key: String) -> Result<bool> {
        let rotator = self.rotator.as_ref().ok_or_else(destroyed)?;
        let removed = rotator.remove_credential(&provider, &key);
        if removed {
            // A credential added again later with the same key gets a fresh handle, with its
            // new label and metadata.
            hot::with(self.slot, |h| h.registry.forget(&provider, &key));
        }
        Ok(removed)
    }

    #[napi]
    pub fn add_provider(&self, name: String, config: String) -> Result<()> {
        let value = config::parse_json(&config, "the provider configuration")?;
        let provider = config::provider_config(&name, value)?;
        self.rotator()?
            .add_provider(&name, provider)
            .map_err(config_error)
    }

    #[napi]
    pub fn reset_all(&self, provider: Option<String>) -> Result<u32> {
        let n = self.rotator()?.reset_all(provider.as_deref());
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    #[napi]
    pub fn disable(&self, provider: String, key: String) -> Result<bool> {
        Ok(self.rotator()?.disable(&provider, &key))
    }

    #[napi]
    pub fn enable(&self, provider: String, key: String) -> Result<bool> {
        Ok(self.rotator()?.enable(&provider, &key))
    }

    /// The state as the versioned JSON text `save()` hands to the persistence adapter. It
    /// names credentials by fingerprint only.
    #[napi]
    pub fn export_state(&self) -> Result<String> {
        Ok(self.rotator()?.export_state())
    }

    #[napi]
    pub fn import_state(&self, state: String) -> Result<()> {
        self.rotator()?.import_state(&state).map_err(state_error)
    }

    /// Why the store's state could not be loaded when the rotator was built, if it could not.
    #[napi]
    pub fn store_error(&self) -> Result<Option<String>> {
        Ok(self.rotator()?.store_error().map(ToString::to_string))
    }

    /// Waits until the store has written every change (blocks briefly: for checkpoints).
    #[napi]
    pub fn flush_store(&self) -> Result<()> {
        self.rotator()?.flush_store();
        Ok(())
    }

    /// Classifies a provider response to a request made with the credential of `handle`,
    /// applies it, and returns the verdict.
    #[napi]
    pub fn report_response(
        &self,
        handle: u32,
        status: u32,
        headers: Vec<String>,
        body: Option<String>,
    ) -> Result<Value> {
        self.rotator()?;
        let status = http_status(status)?;
        let headers = pairs(headers);
        let body = body.unwrap_or_default();
        let response = Response::new(status, &headers, body.as_bytes());
        hot::with(self.slot, |h| {
            let credential = h.registry.credential(handle)?;
            Some(convert::camel(
                &h.rotator.report_response(credential, &response),
            ))
        })
        .flatten()
        .ok_or_else(|| js_error("ERR_INVALID_ARG", "unknown credential"))
    }

    /// The family name whose responses `provider` sends (`openai`, `anthropic`, …).
    #[napi]
    pub fn family(&self, provider: String) -> Result<Option<String>> {
        Ok(self
            .rotator()?
            .family(&provider)
            .map(|f| f.as_str().to_owned()))
    }

    /// The rotator's current time, Unix milliseconds.
    #[napi]
    pub fn now(&self) -> Result<f64> {
        Ok(self.rotator()?.now().as_millis() as f64)
    }

    /// Moves a fake clock forward.
    #[napi]
    pub fn advance_clock(&self, ms: u32) -> Result<()> {
        let clock = self.fake_clock.as_ref().ok_or_else(|| {
            js_error(
                "ERR_NO_FAKE_CLOCK",
                "advanceClock needs a rotator built with `clock: { fake: <start> }`",
            )
        })?;
        clock.advance(Duration::from_millis(u64::from(ms)));
        Ok(())
    }

    /// Starts queueing events for `drainEvents`, and calls `doorbell` (on the JavaScript
    /// thread, without keeping the process alive) when events arrive from other threads.
    #[napi(ts_args_type = "doorbell: () => void")]
    pub fn subscribe(&mut self, doorbell: Function<'_, Value, ()>) -> Result<()> {
        let rotator = self.rotator.as_ref().ok_or_else(destroyed)?;
        if self.events.is_some() {
            return Ok(());
        }
        let doorbell: events::Doorbell = doorbell
            .build_threadsafe_function::<Value>()
            .callee_handled::<false>()
            .weak::<true>()
            .build()
            .map_err(|e| js_error("ERR_INTERNAL", e.to_string()))?;
        self.events = Some(rotator.subscribe());
        events::spawn_doorbell(rotator.subscribe(), doorbell).map_err(|e| {
            js_error(
                "ERR_INTERNAL",
                format!("cannot start the event thread: {e}"),
            )
        })
    }

    /// The events queued since the last call, oldest first.
    #[napi]
    pub fn drain_events(&mut self) -> Value {
        match &mut self.events {
            Some(events) => events::drain(events),
            None => Value::Array(Vec::new()),
        }
    }

    /// Stops the background check and releases the rotator; later calls throw.
    #[napi]
    pub fn destroy(&mut self) {
        if let Some(rotator) = self.rotator.take() {
            hot::remove(self.slot);
            rotator.shutdown();
        }
        self.events = None;
    }
}

impl Drop for NativeRotator {
    fn drop(&mut self) {
        if self.rotator.is_some() {
            hot::remove(self.slot);
        }
    }
}

/// Headers as JavaScript sends them, flat (`[name, value, name, value, …]`: one array of
/// strings converts much faster than an array of pairs), as pairs.
pub(crate) fn pairs(headers: Vec<String>) -> Vec<(String, String)> {
    let mut pairs = Vec::with_capacity(headers.len() / 2);
    let mut it = headers.into_iter();
    while let (Some(name), Some(value)) = (it.next(), it.next()) {
        pairs.push((name, value));
    }
    pairs
}

pub(crate) fn http_status(status: u32) -> Result<u16> {
    u16::try_from(status)
        .ok()
        .filter(|s| (100..=599).contains(s))
        .ok_or_else(|| js_error("ERR_INVALID_ARG", format!("invalid HTTP status {status}")))
}
