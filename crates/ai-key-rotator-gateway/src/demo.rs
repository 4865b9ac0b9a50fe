//! `ai-key-rotator demo`: the gateway in front of the project's mock providers, in one
//! process, with scripted keys (two good ones, one rate limited, one invalid, one out of
//! credits) and a little traffic, so that a newcomer sees rotation, cooldowns with their
//! reasons and the dashboard move without a single real key.

use std::time::Duration;

use mock_upstream::{Behavior, Config as MockConfig, MockUpstream};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::{Gateway, GatewayConfig, GatewayError};

/// The client token the demo's gateway accepts.
pub const CLIENT_TOKEN: &str = "akr-demo-client-token-0000";
/// The demo's admin token (the dashboard's buttons).
pub const ADMIN_TOKEN: &str = "akr-demo-admin-token-00000";

/// The scripted keys: (key, label); what the mock answers for each is set in `start`.
const KEYS: [(&str, &str); 5] = [
    ("demo-key-good-1", "good-1"),
    ("demo-key-good-2", "good-2"),
    ("demo-key-rate-limited", "rate-limited"),
    ("demo-key-invalid", "invalid"),
    ("demo-key-no-credits", "no-credits"),
];

/// A running demo: the mock providers, the gateway, and the traffic driver.
#[derive(Debug)]
pub struct Demo {
    /// The gateway's base URL, e.g. `http://127.0.0.1:8787`.
    pub url: String,
    gateway: Gateway,
    mock: MockUpstream,
    stop: oneshot::Sender<()>,
    serving: JoinHandle<Result<(), GatewayError>>,
    traffic: Option<JoinHandle<()>>,
}

impl Demo {
    /// Starts the mock providers and a gateway on `listener`; with `traffic`, a request every
    /// second and a half so the dashboard moves.
    ///
    /// # Errors
    /// When the mock cannot listen or the gateway cannot be built.
    pub async fn start(listener: TcpListener, traffic: bool) -> Result<Demo, GatewayError> {
        let mock = MockUpstream::start(MockConfig::new()).await?;
        let script = mock.script();
        // Rate limited for 20 s at a time: it comes back, and is limited again.
        script.on_key(
            "demo-key-rate-limited",
            Behavior::rate_limited(Duration::from_secs(20)),
        );
        script.on_key("demo-key-invalid", Behavior::InvalidKey);
        script.on_key("demo-key-no-credits", Behavior::InsufficientQuota);
        let keys: Vec<String> = KEYS
            .iter()
            .map(|(k, l)| format!("{{ key = \"{k}\", label = \"{l}\" }}"))
            .collect();
        let text = format!(
            "client_tokens = [\"{CLIENT_TOKEN}\"]\n\
             admin_tokens = [{{ key = \"{ADMIN_TOKEN}\", label = \"demo-admin\" }}]\n\
             # Loopback only: the dashboard opens without entering a token.\n\
             allow_unauthenticated = true\n\
             store = {{ type = \"memory\" }}\n\
             [providers.openai]\nfamily = \"openai\"\nupstream = \"{}\"\n\
             strategy = \"round-robin\"\nkeys = [{}]\n\
             cooldown = {{ type = \"fixed\", duration_ms = 30000 }}\n",
            mock.base_url(),
            keys.join(", ")
        );
        let (config, _) = GatewayConfig::from_toml(&text, std::path::Path::new("."))
            .map_err(GatewayError::Config)?;
        let gateway = Gateway::open(config).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = oneshot::channel::<()>();
        let g = gateway.clone();
        let serving = tokio::spawn(async move {
            g.serve(listener, async {
                let _ = stopped.await;
            })
            .await
        });
        let traffic = traffic.then(|| tokio::spawn(drive(url.clone())));
        Ok(Demo {
            url,
            gateway,
            mock,
            stop,
            serving,
            traffic,
        })
    }

    /// The gateway.
    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    /// What to try, for a person at a terminal.
    pub fn banner(&self) -> String {
        let url = &self.url;
        format!(
            "ai-key-rotator demo: a gateway in front of mock providers, no real keys.\n\
             \n  dashboard   {url}/dashboard   (admin token for its buttons: {ADMIN_TOKEN})\n\
             \n  curl        curl {url}/openai/v1/chat/completions \\\n\
             \x20             -H 'authorization: Bearer {CLIENT_TOKEN}' -H 'content-type: application/json' \\\n\
             \x20             -d '{{\"model\":\"gpt-4o-mini\",\"messages\":[{{\"role\":\"user\",\"content\":\"hi\"}}]}}'\n\
             \n  python      from openai import OpenAI\n\
             \x20             client = OpenAI(base_url=\"{url}/openai/v1\", api_key=\"{CLIENT_TOKEN}\")\n\
             \x20             print(client.chat.completions.create(model=\"gpt-4o-mini\",\n\
             \x20                 messages=[{{\"role\": \"user\", \"content\": \"hi\"}}]).choices[0].message.content)\n\
             \nKeys: good-1, good-2 answer; rate-limited cools for 20 s at a time; invalid is \
             disabled; no-credits rests. A request every 1.5 s keeps the dashboard moving. \
             Ctrl-C stops.\n"
        )
    }

    /// Stops the traffic, the gateway (gracefully) and the mock.
    ///
    /// # Errors
    /// As [`Gateway::serve`].
    pub async fn stop(self) -> Result<(), GatewayError> {
        if let Some(t) = self.traffic {
            t.abort();
        }
        let _ = self.stop.send(());
        let served = self
            .serving
            .await
            .map_err(|e| GatewayError::Io(std::io::Error::other(e)))?;
        self.mock.shutdown().await;
        served
    }
}

/// A chat request every 1.5 s, as a client would send it.
async fn drive(url: String) {
    let client = reqwest::Client::builder().no_proxy().build();
    let Ok(client) = client else { return };
    let mut every = tokio::time::interval(Duration::from_millis(1500));
    loop {
        every.tick().await;
        let _ = client
            .post(format!("{url}/openai/v1/chat/completions"))
            .bearer_auth(CLIENT_TOKEN)
            .header("content-type", "application/json")
            .body(r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#)
            .send()
            .await;
    }
}
