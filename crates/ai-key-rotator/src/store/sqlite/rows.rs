//! Reading one stored row, column by column, so that a malformed row is named and skipped
//! instead of failing the whole load or every later poll.

use rusqlite::types::ValueRef;

use crate::identity::Fingerprint;
use crate::store::StoreFault;

/// The columns [`read_row`] expects, in order.
pub(super) const COLUMNS: &str = "provider, fingerprint, label, state, until_ms, \
     times_exhausted, last_exhausted_at, reason, times_used, consecutive_failures, model_cooldowns";

/// One readable row.
#[derive(Debug)]
pub(super) struct StoredRow {
    pub(super) provider: String,
    /// The fingerprint as stored (the text the row is keyed by).
    pub(super) fp_text: String,
    pub(super) fingerprint: Fingerprint,
    pub(super) label: Option<String>,
    /// `available`, `cooling` (with `until`) or `disabled`.
    pub(super) state: String,
    pub(super) until: Option<i64>,
    pub(super) times_exhausted: i64,
    pub(super) last_exhausted_at: Option<i64>,
    pub(super) reason: Option<String>,
    pub(super) times_used: i64,
    pub(super) consecutive_failures: i64,
    /// JSON of the running per-model rests, as written.
    pub(super) model_cooldowns: Option<String>,
}

/// Reads a row selected with [`COLUMNS`], or says which column of which row is unreadable.
///
/// The fault names the row by provider and fingerprint only when those read as what they
/// should be: a fingerprint column holding anything else is not echoed, since it could hold
/// anything (even a key someone wrote there by hand).
pub(super) fn read_row(r: &rusqlite::Row<'_>) -> Result<StoredRow, StoreFault> {
    let text = |i: usize| match r.get_ref(i) {
        Ok(ValueRef::Text(t)) => std::str::from_utf8(t).ok().map(str::to_owned),
        _ => None,
    };
    let provider = text(0);
    let fp_text = text(1);
    let fingerprint = fp_text
        .as_deref()
        .and_then(|t| t.parse::<Fingerprint>().ok());
    let bad = |field: &'static str| StoreFault::MalformedRow {
        provider: provider.clone().unwrap_or_else(|| "<unreadable>".into()),
        fingerprint: fingerprint.map_or_else(|| "<unreadable>".into(), |f| f.to_string()),
        field,
    };
    let (Some(provider_name), Some(fp)) = (provider.clone(), fingerprint) else {
        return Err(bad(if provider.is_none() {
            "provider"
        } else {
            "fingerprint"
        }));
    };
    let label: Option<String> = r.get(2).map_err(|_| bad("label"))?;
    let state: String = r.get(3).map_err(|_| bad("state"))?;
    let until: Option<i64> = r.get(4).map_err(|_| bad("until_ms"))?;
    match (state.as_str(), until) {
        ("cooling", None) => return Err(bad("until_ms")),
        ("available" | "cooling" | "disabled", _) => {}
        _ => return Err(bad("state")),
    }
    Ok(StoredRow {
        provider: provider_name,
        fp_text: fp_text.unwrap_or_default(),
        fingerprint: fp,
        label,
        state,
        until,
        times_exhausted: r.get(5).map_err(|_| bad("times_exhausted"))?,
        last_exhausted_at: r.get(6).map_err(|_| bad("last_exhausted_at"))?,
        reason: r.get(7).map_err(|_| bad("reason"))?,
        times_used: r.get(8).map_err(|_| bad("times_used"))?,
        consecutive_failures: r.get(9).map_err(|_| bad("consecutive_failures"))?,
        model_cooldowns: r.get(10).map_err(|_| bad("model_cooldowns"))?,
    })
}
