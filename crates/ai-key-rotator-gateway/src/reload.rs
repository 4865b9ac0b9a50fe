//! Configuration reload (SIGHUP): change the live rotator's membership instead of rebuilding
//! it, so every running cooldown survives.

use std::collections::HashSet;
use std::sync::Arc;

use secrecy::ExposeSecret;

use crate::GatewayError;
use crate::config::GatewayConfig;
use crate::proxy::{Routes, Shared};
use crate::upstream;

pub(crate) fn apply(shared: &Shared, config: GatewayConfig) -> Result<(), GatewayError> {
    let client = upstream::client(&config).map_err(GatewayError::Client)?;
    let old = shared.routes.load_full();
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
        if before.rotator.cooldown != p.rotator.cooldown {
            tracing::warn!(provider = %p.name,
                "a changed cooldown policy applies after a restart; keeping the current one");
        }
        // The live rotator has no way to swap these yet; say so rather than pretend.
        if before.rotator.strategy != p.rotator.strategy
            || before.rotator.budget != p.rotator.budget
            || before.rotator.scope_budgets != p.rotator.scope_budgets
        {
            tracing::warn!(provider = %p.name,
                "a changed strategy or budget applies after a restart; keeping the current one");
        }
        let changed_key = p.rotator.credentials.iter().any(|c| {
            before.rotator.credentials.iter().any(|b| {
                b.key.expose_secret() == c.key.expose_secret()
                    && (b.scope != c.scope || b.weight != c.weight)
            })
        });
        if changed_key {
            tracing::warn!(provider = %p.name,
                "a kept key's changed scope or weight applies after a restart");
        }
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
    tracing::info!("configuration reloaded");
    Ok(())
}

fn sync_credentials(
    shared: &Shared,
    provider: &str,
    before: &[ai_key_rotator::CredentialConfig],
    after: &[ai_key_rotator::CredentialConfig],
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
