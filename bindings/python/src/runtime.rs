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

/// Runs `future` to completion on this thread, or, when this thread is already inside the
/// runtime (a callback of the sync transport's loop calling `save()`), on a scoped thread:
/// tokio refuses to block inside itself.
pub(crate) fn block_on<F>(future: F) -> F::Output
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::scope(|s| {
            s.spawn(|| runtime().block_on(future))
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    } else {
        runtime().block_on(future)
    }
}
