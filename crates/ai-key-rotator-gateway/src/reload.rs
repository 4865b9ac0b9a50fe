//! Configuration reload (SIGHUP): change the live rotator's membership instead of rebuilding
//! it, so every running cooldown survives; and say what changed, as data ([`diff`]).

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use ai_key_rotator::{CredentialConfig, CredentialId, Fingerprint};
use secrecy::ExposeSecret;

use crate::GatewayError;
use crate::config::GatewayConfig;
use crate::proxy::{Routes, Shared};
use crate::upstream;

/// One difference between the running configuration and a reloaded one. Keys are named by
/// label and fingerprint, never by value.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReloadChange {
    /// A provider is now routed.
    ProviderAdded {
        /// Its name.
        provider: String,
    },
    /// A provider is no longer routed (the rotator keeps its state should it come back).
    ProviderRemoved {
        /// Its name.
        provider: String,
    },
    /// A key joined a provider.
    KeyAdded {
        /// The provider.
        provider: String,
        /// The key's label and fingerprint.
        key: CredentialId,
    },
    /// A key left a provider.
    KeyRemoved {
        /// The provider.
        provider: String,
        /// The key's label and fingerprint.
        key: CredentialId,
    },
    /// A kept key has a new label. The rotator cannot rename a live key without forgetting
    /// its state, so `/status` and logs show the new label after a restart.
    KeyRelabeled {
        /// The provider.
        provider: String,
        /// The key's fingerprint.
        fingerprint: Fingerprint,
        /// The label it had.
        from: Option<String>,
        /// The label it is given.
        to: Option<String>,
    },
    /// A setting that the reload applied.
    Applied {
        /// The provider it belongs to, or `None` for a top-level setting.
        provider: Option<String>,
        /// The setting's name in the configuration file.
        setting: &'static str,
    },
    /// A setting whose new value takes effect only after a restart; the old one stays.
    NeedsRestart {
        /// The provider it belongs to, or `None` for a top-level setting.
        provider: Option<String>,
        /// The setting's name in the configuration file.
        setting: &'static str,
    },
}

impl fmt::Display for ReloadChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = |p: &Option<String>| p.as_ref().map_or(String::new(), |p| format!("`{p}` "));
        match self {
            ReloadChange::ProviderAdded { provider } => write!(f, "provider `{provider}` added"),
            ReloadChange::ProviderRemoved { provider } => {
                write!(f, "provider `{provider}` removed")
            }
            ReloadChange::KeyAdded { provider, key } => {
                write!(f, "provider `{provider}`: key {} added", describe(key))
            }
            ReloadChange::KeyRemoved { provider, key } => {
                write!(f, "provider `{provider}`: key {} removed", describe(key))
            }
            ReloadChange::KeyRelabeled {
                provider,
                fingerprint,
                from,
                to,
            } => write!(
                f,
                "provider `{provider}`: key {fingerprint} relabeled from {} to {} \
                 (shown after a restart)",
                from.as_deref().unwrap_or("-"),
                to.as_deref().unwrap_or("-")
            ),
            ReloadChange::Applied { provider, setting } => {
                write!(f, "{}`{setting}` changed", at(provider))
            }
            ReloadChange::NeedsRestart { provider, setting } => write!(
                f,
                "{}`{setting}` changed: applies after a restart; keeping the running value",
                at(provider)
            ),
        }
    }
}

fn describe(id: &CredentialId) -> String {
    match &id.label {
        Some(l) => format!("{l} ({})", id.fingerprint),
        None => id.fingerprint.to_string(),
    }
}

fn id_of(c: &CredentialConfig) -> CredentialId {
    CredentialId {
        label: c.label.as_deref().map(Arc::from),
        fingerprint: Fingerprint::of(c.key.expose_secret()),
    }
}

/// What reloading `new` over the running `old` changes, in the order of the configuration.
pub fn diff(old: &GatewayConfig, new: &GatewayConfig) -> Vec<ReloadChange> {
    use ReloadChange::*;
    let mut out = Vec::new();
    let top = |out: &mut Vec<ReloadChange>, changed: bool, setting, restart: bool| {
        if changed {
            out.push(if restart {
                NeedsRestart {
                    provider: None,
                    setting,
                }
            } else {
                Applied {
                    provider: None,
                    setting,
                }
            });
        }
    };
    // The listener, its connection limits and the store are set up once, at start.
    top(&mut out, old.listen != new.listen, "listen", true);
    top(&mut out, old.store != new.store, "store", true);
    top(
        &mut out,
        old.max_connections != new.max_connections,
        "max_connections",
        true,
    );
    top(
        &mut out,
        old.header_limit != new.header_limit,
        "header_limit",
        true,
    );
    let tokens = |c: &GatewayConfig| -> Vec<String> {
        c.client_tokens
            .iter()
            .map(|t| t.expose_secret().to_owned())
            .collect()
    };
    top(&mut out, tokens(old) != tokens(new), "client_tokens", false);
    top(
        &mut out,
        old.allow_unauthenticated != new.allow_unauthenticated,
        "allow_unauthenticated",
        false,
    );
    top(
        &mut out,
        old.body_limit != new.body_limit,
        "body_limit",
        false,
    );
    top(
        &mut out,
        old.body_read_timeout != new.body_read_timeout,
        "body_read_timeout_ms",
        false,
    );
    top(
        &mut out,
        old.max_attempts != new.max_attempts,
        "max_attempts",
        false,
    );
    top(
        &mut out,
        old.connect_timeout != new.connect_timeout,
        "connect_timeout_ms",
        false,
    );
    top(
        &mut out,
        old.read_timeout != new.read_timeout,
        "read_timeout_ms",
        false,
    );
    top(
        &mut out,
        old.shutdown_grace != new.shutdown_grace,
        "shutdown_grace_ms",
        false,
    );
    top(
        &mut out,
        old.access_log != new.access_log,
        "access_log",
        false,
    );
    top(
        &mut out,
        old.retry != new.retry,
        "retry_backoff_base_ms, retry_backoff_max_ms, retry_deadline_ms",
        false,
    );
    top(
        &mut out,
        old.preamble != new.preamble,
        "stream_preamble_bytes, stream_preamble_ms",
        false,
    );

    for p in &new.providers {
        let Some(before) = old.providers.iter().find(|q| q.name == p.name) else {
            out.push(ProviderAdded {
                provider: p.name.clone(),
            });
            for c in &p.rotator.credentials {
                out.push(KeyAdded {
                    provider: p.name.clone(),
                    key: id_of(c),
                });
            }
            continue;
        };
        let setting = |changed: bool, setting, restart: bool| {
            changed.then(|| {
                let provider = Some(p.name.clone());
                if restart {
                    NeedsRestart { provider, setting }
                } else {
                    Applied { provider, setting }
                }
            })
        };
        let (b, a) = (&before.rotator, &p.rotator);
        out.extend(
            [
                setting(before.upstream != p.upstream, "upstream", false),
                setting(before.route != p.route, "route", false),
                setting(before.fallback != p.fallback, "fallback", false),
                // The proxy reads it from its routes, which a reload rebuilds.
                setting(
                    b.cache_affinity != a.cache_affinity,
                    "cache_affinity",
                    false,
                ),
                // The live rotator has no way to swap these yet; say so rather than pretend.
                setting(b.family != a.family, "family", true),
                setting(b.cooldown != a.cooldown, "cooldown", true),
                setting(b.strategy != a.strategy, "strategy", true),
                setting(b.budget != a.budget, "budget", true),
                setting(b.scope_budgets != a.scope_budgets, "scope_budgets", true),
            ]
            .into_iter()
            .flatten(),
        );
        for c in &a.credentials {
            let key = c.key.expose_secret();
            match b.credentials.iter().find(|o| o.key.expose_secret() == key) {
                None => out.push(KeyAdded {
                    provider: p.name.clone(),
                    key: id_of(c),
                }),
                Some(o) => {
                    if o.label != c.label {
                        out.push(KeyRelabeled {
                            provider: p.name.clone(),
                            fingerprint: Fingerprint::of(key),
                            from: o.label.clone(),
                            to: c.label.clone(),
                        });
                    }
                    if o.scope != c.scope || o.weight != c.weight {
                        out.push(NeedsRestart {
                            provider: Some(p.name.clone()),
                            setting: "keys (a kept key's scope or weight)",
                        });
                    }
                }
            }
        }
        for o in &b.credentials {
            let key = o.key.expose_secret();
            if !a.credentials.iter().any(|c| c.key.expose_secret() == key) {
                out.push(KeyRemoved {
                    provider: p.name.clone(),
                    key: id_of(o),
                });
            }
        }
    }
    for p in &old.providers {
        if !new.providers.iter().any(|q| q.name == p.name) {
            out.push(ProviderRemoved {
                provider: p.name.clone(),
            });
        }
    }
    out
}

pub(crate) fn apply(
    shared: &Shared,
    config: GatewayConfig,
) -> Result<Vec<ReloadChange>, GatewayError> {
    let client = upstream::client(&config).map_err(GatewayError::Client)?;
    let old = shared.routes.load_full();
    let changes = diff(&old.config, &config);
    let rotator = &shared.rotator;
    for p in &config.providers {
        let Some(before) = old.config.providers.iter().find(|q| q.name == p.name) else {
            if rotator.providers().contains(&p.name) {
                // A provider removed by an earlier reload and now back: its credentials are
                // still in the rotator; bring the set in line below.
                sync_credentials(shared, &p.name, &[], &p.rotator.credentials)?;
            } else {
                rotator
                    .add_provider(&p.name, p.rotator.clone())
                    .map_err(|e| GatewayError::Config(e.into()))?;
            }
            continue;
        };
        sync_credentials(
            shared,
            &p.name,
            &before.rotator.credentials,
            &p.rotator.credentials,
        )?;
    }
    // Providers dropped from the configuration stop being routed; the rotator keeps their
    // state (it has no provider removal), which is harmless and keeps their cooldowns should
    // they come back.
    shared
        .routes
        .store(Arc::new(Routes::new(config, client, &shared.metrics)));
    Ok(changes)
}

fn sync_credentials(
    shared: &Shared,
    provider: &str,
    before: &[CredentialConfig],
    after: &[CredentialConfig],
) -> Result<(), GatewayError> {
    let rotator = &shared.rotator;
    let new_keys: HashSet<&str> = after.iter().map(|c| c.key.expose_secret()).collect();
    let old_keys: HashSet<&str> = before.iter().map(|c| c.key.expose_secret()).collect();
    for c in after {
        if !old_keys.contains(c.key.expose_secret()) {
            match rotator.add_credential(provider, c.clone()) {
                Ok(()) => {}
                // Still there from before (a provider that comes back): nothing to add.
                Err(ai_key_rotator::ConfigError::DuplicateKey { .. }) => {}
                Err(e) => return Err(GatewayError::Config(e.into())),
            }
        }
    }
    for c in before {
        if !new_keys.contains(c.key.expose_secret()) {
            rotator.remove_credential(provider, c.key.expose_secret());
        }
    }
    Ok(())
}
