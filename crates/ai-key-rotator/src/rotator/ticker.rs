//! The background ticker: emits `Reset` events for cooldowns that ended while nobody asked.
//!
//! Keys never wait for it (`get_key` revives an ended cooldown itself); it only makes sure that
//! subscribers hear about every ended cooldown within one interval. It is a plain thread rather
//! than an async task so that the core needs no runtime, and it holds only a weak reference so
//! that dropping the rotator ends it.

use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::Inner;

pub(super) struct Ticker {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    pub(super) fn spawn(inner: Weak<Inner>, interval: Duration) -> Self {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("ai-key-rotator-ticker".into())
            .spawn(move || run(inner, interval, &signal))
            .ok();
        if thread.is_none() {
            tracing::warn!(
                "could not start the reset ticker thread; reset events will arrive only when keys are requested"
            );
        }
        Ticker { stop, thread }
    }

    /// Tells the thread to stop, without waiting.
    pub(super) fn stop(&self) {
        let (flag, cv) = &*self.stop;
        *flag.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cv.notify_all();
    }

    pub(super) fn stop_and_join(mut self) {
        self.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(inner: Weak<Inner>, interval: Duration, stop: &(Mutex<bool>, Condvar)) {
    let (flag, cv) = stop;
    let mut next = Instant::now() + interval;
    loop {
        let mut stopped = flag.lock().unwrap_or_else(|e| e.into_inner());
        // Wait out the interval; the condvar wakes early for `stop`, and the loop absorbs
        // spurious wake-ups.
        while !*stopped {
            let now = Instant::now();
            if now >= next {
                break;
            }
            stopped = cv
                .wait_timeout(stopped, next - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        if *stopped {
            return;
        }
        drop(stopped);
        next += interval;
        match inner.upgrade() {
            Some(inner) => {
                inner.reset_expired();
            }
            None => return,
        }
    }
}
