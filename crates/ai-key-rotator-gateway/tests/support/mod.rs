//! Shared helpers: configs pointing at a mock upstream, the gateway as a real process or in
//! process, and raw HTTP.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ai_key_rotator_gateway::{Gateway, GatewayConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// The client token every test config accepts.
pub const TOKEN: &str = "akr-test-client-token-0123456789";

/// One provider of a test config.
pub struct Provider {
    pub name: String,
    pub family: &'static str,
    pub keys: Vec<String>,
    pub extra: String,
}

pub fn provider(name: &str, family: &'static str, keys: &[&str]) -> Provider {
    Provider {
        name: name.into(),
        family,
        keys: keys.iter().map(|k| k.to_string()).collect(),
        extra: String::new(),
    }
}

impl Provider {
    pub fn with(mut self, line: &str) -> Self {
        self.extra.push_str(line);
        self.extra.push('\n');
        self
    }
}

/// A config whose providers all point at `upstream`.
pub fn config_text(upstream: &str, top: &str, providers: &[Provider]) -> String {
    let mut s = format!("client_tokens = [\"{TOKEN}\"]\n{top}\n");
    for p in providers {
        let keys: Vec<String> = p
            .keys
            .iter()
            .enumerate()
            .map(|(i, k)| format!("{{ key = \"{k}\", label = \"{}-{}\" }}", p.name, i + 1))
            .collect();
        s.push_str(&format!(
            "[providers.{}]\nfamily = \"{}\"\nupstream = \"{upstream}\"\nkeys = [{}]\n\
             cooldown = {{ type = \"fixed\", duration_ms = 30000 }}\n{}\n",
            p.name,
            p.family,
            keys.join(", "),
            p.extra
        ));
    }
    s
}

/// The gateway binary, started on a free loopback port.
pub struct GatewayProcess {
    pub child: Child,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub stderr: PathBuf,
}

impl GatewayProcess {
    pub fn start(config: &str) -> GatewayProcess {
        Self::start_in(tempfile::tempdir().unwrap(), config)
    }

    /// Stops the process with SIGTERM (a graceful shutdown) and hands back its folder, which
    /// holds its configuration and state.
    pub fn stop(mut self) -> tempfile::TempDir {
        self.signal("TERM");
        let _ = self.child.wait();
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, dir)
    }

    pub fn start_in(dir: tempfile::TempDir, config: &str) -> GatewayProcess {
        let path = dir.path().join("rotator.toml");
        std::fs::write(&path, config).unwrap();
        set_private(&path);
        let stderr = dir.path().join("stderr.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_ai-key-rotator"))
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&path)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                panic!(
                    "gateway did not start: {line:?}\n{}",
                    std::fs::read_to_string(&stderr).unwrap_or_default()
                )
            })
            .parse()
            .unwrap();
        GatewayProcess {
            child,
            addr,
            dir,
            stderr,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("rotator.toml")
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Stops the process with SIGTERM, waits for it to exit, and returns everything it logged.
    pub fn stop_and_read_logs(mut self) -> String {
        self.signal("TERM");
        let _ = self.child.wait();
        self.logs()
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(unix)]
fn set_private(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// The gateway in this process; stops when dropped.
pub struct InProcess {
    pub addr: SocketAddr,
    pub gateway: Gateway,
    stop: Option<oneshot::Sender<()>>,
    pub task: Option<tokio::task::JoinHandle<()>>,
}

impl InProcess {
    pub async fn start(config: &str) -> InProcess {
        let (config, _) = GatewayConfig::from_toml(config, std::path::Path::new(".")).unwrap();
        let gateway = Gateway::new(config).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let g = gateway.clone();
        let task = tokio::spawn(async move {
            g.serve(listener, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        InProcess {
            addr,
            gateway,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Starts the graceful shutdown; await `task` to see it end.
    pub fn begin_shutdown(&mut self) {
        drop(self.stop.take());
    }
}

/// Sends raw bytes on a fresh connection and reads the whole answer (the request should say
/// `connection: close`).
pub async fn raw(addr: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// A client with no retries and no proxy, for tests.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// OpenAI chat body.
pub const CHAT: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;
pub const CHAT_STREAM: &str =
    r#"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;

/// `GET url` with the test token, parsed as JSON.
pub async fn get_json(url: &str) -> serde_json::Value {
    let r = client().get(url).bearer_auth(TOKEN).send().await.unwrap();
    serde_json::from_slice(&r.bytes().await.unwrap()).unwrap()
}

/// Waits until `condition` holds, checking every 20 ms, for at most a minute: tests wait for
/// the event they need instead of sleeping a guessed time. The bound only turns a hang into a
/// failure; it is far above any wait a loaded machine makes.
pub async fn wait_until<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !condition().await {
        assert!(
            std::time::Instant::now() < deadline,
            "gave up waiting: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
