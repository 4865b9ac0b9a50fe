//! What a reload says it changed: keys added and removed by label and fingerprint, a kept
//! key's new label, settings that wait for a restart; as data, and never a key.

mod support;

use std::path::Path;

use ai_key_rotator::Fingerprint;
use ai_key_rotator_gateway::{GatewayConfig, ReloadChange, reload};
use mock_upstream::{Config, MockUpstream};
use support::InProcess;

const CANARY: &str = "sk-CANARY-reload-0123456789abcdefghijklmnop";

fn config(text: &str) -> GatewayConfig {
    GatewayConfig::from_toml(text, Path::new(".")).unwrap().0
}

#[tokio::test]
async fn a_reload_describes_what_it_changed() {
    let upstream = MockUpstream::start(Config::new()).await.unwrap();
    let url = upstream.base_url();
    let before = format!(
        "client_tokens = [\"{}\"]\nmax_connections = 100\n\
         [providers.openai]\nfamily = \"openai\"\nupstream = \"{url}\"\n\
         keys = [{{ key = \"{CANARY}\", label = \"old\" }}, {{ key = \"sk-gone\", label = \"gone\" }}]\n",
        support::TOKEN
    );
    let after = format!(
        "client_tokens = [\"{}\"]\nmax_connections = 200\nmax_attempts = 2\n\
         [providers.openai]\nfamily = \"openai\"\nupstream = \"{url}\"\nstrategy = \"round-robin\"\n\
         cache_affinity = true\n\
         keys = [{{ key = \"{CANARY}\", label = \"renamed\" }}, \"sk-new\"]\n\
         [providers.anthropic]\nfamily = \"anthropic\"\nupstream = \"{url}\"\n\
         keys = [{{ key = \"ant-1\", label = \"a1\" }}]\n",
        support::TOKEN
    );
    let id = |label: Option<&str>, key: &str| ai_key_rotator::CredentialId {
        label: label.map(Into::into),
        fingerprint: Fingerprint::of(key),
    };
    let openai = || "openai".to_owned();
    let expected = vec![
        ReloadChange::NeedsRestart {
            provider: None,
            setting: "max_connections",
        },
        ReloadChange::Applied {
            provider: None,
            setting: "max_attempts",
        },
        // Providers in name order.
        ReloadChange::ProviderAdded {
            provider: "anthropic".into(),
        },
        ReloadChange::KeyAdded {
            provider: "anthropic".into(),
            key: id(Some("a1"), "ant-1"),
        },
        // Read by the proxy from its routes, which the reload rebuilds.
        ReloadChange::Applied {
            provider: Some(openai()),
            setting: "cache_affinity",
        },
        ReloadChange::NeedsRestart {
            provider: Some(openai()),
            setting: "strategy",
        },
        ReloadChange::KeyRelabeled {
            provider: openai(),
            fingerprint: Fingerprint::of(CANARY),
            from: Some("old".into()),
            to: Some("renamed".into()),
        },
        ReloadChange::KeyAdded {
            provider: openai(),
            key: id(None, "sk-new"),
        },
        ReloadChange::KeyRemoved {
            provider: openai(),
            key: id(Some("gone"), "sk-gone"),
        },
    ];
    assert_eq!(reload::diff(&config(&before), &config(&after)), expected);

    // The running gateway reports the same list when it applies the reload, and applies it.
    let gw = InProcess::start(&before).await;
    let changes = gw.gateway.reload(config(&after)).unwrap();
    assert_eq!(changes, expected);
    let status = gw.gateway.status_json().to_string();
    assert!(
        status.contains(&Fingerprint::of("sk-new").to_string()),
        "{status}"
    );
    assert!(!status.contains("\"gone\""), "{status}");

    // What the log prints names keys by label and fingerprint, never by value.
    for change in &changes {
        let text = format!("{change} / {change:?}");
        assert!(
            !text.contains(CANARY) && !text.contains(&CANARY[3..20]),
            "{text}"
        );
        assert!(
            !text.contains("sk-new") && !text.contains("sk-gone"),
            "{text}"
        );
    }
    let relabel = changes[6].to_string();
    assert!(
        relabel.contains("old") && relabel.contains("renamed"),
        "{relabel}"
    );
    // Nothing changed, nothing said.
    assert_eq!(reload::diff(&config(&after), &config(&after)), vec![]);
}
