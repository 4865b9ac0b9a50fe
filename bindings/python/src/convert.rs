//! Python values to the core's types and back. Configuration goes through serde
//! (`pythonize`), so the dicts take exactly the shape (and the camelCase aliases) of the
//! core's `RotatorConfig`.

use ai_key_rotator::{CredentialConfig, ProviderConfig};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};
use serde::Serialize;

use crate::errors::raise;

/// A provider's configuration from a dict; errors name the provider.
pub(crate) fn provider_config(
    py: Python<'_>,
    name: &str,
    value: &Bound<'_, PyAny>,
) -> PyResult<ProviderConfig> {
    let value = with_key_dicts(value)?;
    pythonize::depythonize::<ProviderConfig>(&value).map_err(|e| {
        raise(
            py,
            "ConfigError",
            format!("provider `{name}` has an invalid configuration: {e}"),
        )
    })
}

/// The provider dict with bare-key credentials (`"sk-…"`) written as `{"key": "sk-…"}`, the
/// one shape serde knows.
fn with_key_dicts<'py>(value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = value.py();
    let Ok(dict) = value.cast::<PyDict>() else {
        return Ok(value.clone());
    };
    let Some(credentials) = dict.get_item("credentials")? else {
        return Ok(value.clone());
    };
    let Ok(list) = credentials.cast::<pyo3::types::PyList>() else {
        return Ok(value.clone());
    };
    if !list.iter().any(|c| c.is_instance_of::<PyString>()) {
        return Ok(value.clone());
    }
    let items = PyList::empty(py);
    for c in list.iter() {
        if c.is_instance_of::<PyString>() {
            let d = PyDict::new(py);
            d.set_item("key", c)?;
            items.append(d)?;
        } else {
            items.append(c)?;
        }
    }
    let copy = dict.copy()?;
    copy.set_item("credentials", items)?;
    Ok(copy.into_any())
}

/// A credential from a dict (`{"key": …, "label": …}`) or a bare key string.
pub(crate) fn credential_config(
    py: Python<'_>,
    provider: &str,
    value: &Bound<'_, PyAny>,
) -> PyResult<CredentialConfig> {
    if let Ok(s) = value.cast::<PyString>() {
        return Ok(CredentialConfig::new(s.to_cow()?.into_owned()));
    }
    pythonize::depythonize::<CredentialConfig>(value).map_err(|e| {
        raise(
            py,
            "ConfigError",
            format!("a credential of provider `{provider}` is invalid: {e}"),
        )
    })
}

/// Every provider of a `{name: config}` dict, in the dict's order.
pub(crate) fn providers(
    py: Python<'_>,
    providers: &Bound<'_, PyDict>,
) -> PyResult<Vec<(String, ProviderConfig)>> {
    let mut out = Vec::with_capacity(providers.len());
    for (name, config) in providers.iter() {
        let name: String = name
            .extract()
            .map_err(|_| raise(py, "ConfigError", "provider names must be strings".into()))?;
        let config = provider_config(py, &name, &config)?;
        out.push((name, config));
    }
    Ok(out)
}

/// Any serializable value of the core (status, events, verdicts) as plain Python data.
pub(crate) fn to_py<'py, T: Serialize>(py: Python<'py>, value: &T) -> PyResult<Bound<'py, PyAny>> {
    pythonize::pythonize(py, value).map_err(|e| raise(py, "RotatorError", e.to_string()))
}

/// Response headers from a mapping with `items()` (dict, `httpx.Headers`) or a sequence of
/// pairs; names and values as `str` or `bytes`.
pub(crate) fn headers(value: &Bound<'_, PyAny>) -> PyResult<Vec<(Vec<u8>, Vec<u8>)>> {
    if value.is_none() {
        return Ok(Vec::new());
    }
    let items = if value.hasattr("items")? {
        value.call_method0("items")?
    } else {
        value.clone()
    };
    let mut out = Vec::new();
    for item in items.try_iter()? {
        let (name, val): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item?.extract()?;
        out.push((bytes_of(&name)?, bytes_of(&val)?));
    }
    Ok(out)
}

/// The bytes of a `str` (UTF-8) or `bytes`-like value.
pub(crate) fn bytes_of(value: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(s) = value.cast::<PyString>() {
        return Ok(s.to_cow()?.as_bytes().to_vec());
    }
    if let Ok(b) = value.cast::<PyBytes>() {
        return Ok(b.as_bytes().to_vec());
    }
    value.extract::<Vec<u8>>()
}
