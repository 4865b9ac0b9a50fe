//! A criterion measurement of the calling thread's CPU time.
//!
//! The development machine has two cores shared with other engineers' builds; with a load of
//! 8 or more, wall time per call doubles or triples from one minute to the next, and a 10 %
//! change is invisible. The thread's CPU time leaves out the time the thread waits for a core,
//! so figures (and their ratio to a clock read measured the same way) hold still. Cache
//! pollution by the other processes still shows, so compare ratios within one run.

use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};

/// CPU time of the thread that runs the benchmark.
pub struct ThreadCpu;

static FORMATTER: WallTime = WallTime;

/// The calling thread's CPU time in nanoseconds.
pub fn thread_cpu_nanos() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_THREAD_CPUTIME_ID is supported on
    // Linux, and on failure `ts` stays zero (the figures would then say so plainly).
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl Measurement for ThreadCpu {
    type Intermediate = u64;
    type Value = Duration;

    fn start(&self) -> u64 {
        thread_cpu_nanos()
    }
    fn end(&self, start: u64) -> Duration {
        Duration::from_nanos(thread_cpu_nanos() - start)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, v: &Duration) -> f64 {
        v.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        FORMATTER.formatter()
    }
}
