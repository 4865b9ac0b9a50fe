//! Blocking work stays off the async runtime's threads: opening the gateway waits for its
//! state store on a blocking thread while the runtime keeps running other tasks.

mod support;

use ai_key_rotator_gateway::{Gateway, GatewayConfig};
use support::provider;
use tokio::net::TcpListener;

// One runtime thread: if opening the gateway blocked it, nothing else could run meanwhile.
#[tokio::test(flavor = "current_thread")]
async fn opening_waits_for_the_store_without_blocking_the_runtime() {
    // A "Redis server" that accepts and never answers: the store waits for it (up to its own
    // timeout) while the gateway opens.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let text = support::config_text(
        "http://127.0.0.1:9",
        &format!(
            "store = {{ type = \"redis\", url = \"redis://{}/\" }}",
            silent.local_addr().unwrap()
        ),
        &[provider("openai", "openai", &["sk-a"])],
    );
    let (config, _) = GatewayConfig::from_toml(&text, std::path::Path::new(".")).unwrap();
    let open = tokio::spawn(Gateway::open(config));
    // Accepting needs this runtime's only thread. Had opening blocked it, the accept could only
    // run once opening had given up on the store; here it runs while opening still waits.
    let (held, _) = silent.accept().await.unwrap();
    assert!(
        !open.is_finished(),
        "the gateway was opened before the runtime could run anything else"
    );
    drop(held);
    let gateway = open.await.unwrap().unwrap();
    // Nothing answered, so the gateway starts from a fresh state, and says so.
    assert!(gateway.rotator().store_error().is_some());
}
