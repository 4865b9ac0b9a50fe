//! What `execute` tells a caller while it runs.

use super::AttemptRecord;
use crate::clock::Timestamp;
use crate::rotator::ReportOutcome;

/// Hears what [`KeyRotator::execute_observed`](crate::KeyRotator::execute_observed) does, as it
/// does it: for metrics and logs, never to change the loop's course. Every method has an empty
/// default; `()` observes nothing.
pub trait Observer {
    /// An attempt's verdict was reported against its key, and this is what changed.
    fn reported(&mut self, record: &AttemptRecord, outcome: &ReportOutcome) {
        let _ = (record, outcome);
    }

    /// The loop waits until `until` (a server error's or transport failure's backoff, or the
    /// provider's own `retry-after`) before its next attempt.
    fn backing_off(&mut self, until: Timestamp) {
        let _ = until;
    }
}

impl Observer for () {}
