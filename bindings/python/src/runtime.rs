//! The one tokio runtime of the process, for the futures of the core that need a timer
//! (`execute`'s waits and backoff) or I/O (`save`/`load`).

use std::sync::OnceLock;

use tokio::runtime::Runtime;

/// The runtime: one worker thread is enough, since the work it drives is waiting; the Python
/// callers' own threads run the blocking `block_on`s.
pub(crate) fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("ai-key-rotator")
            .enable_time()
            .build()
            .expect("the ai-key-rotator runtime starts")
    })
}
