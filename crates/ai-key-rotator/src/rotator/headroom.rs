//! What a provider's keys have left, from the rate-limit headers of their last successes.

use std::sync::atomic::Ordering;

use serde::Serialize;

use super::KeyRotator;
use crate::pool::SlotState;

/// The requests and tokens the available keys of one provider have left in their current
/// windows, summed from the rate-limit headers of each key's last success (OpenAI's
/// `x-ratelimit-remaining-*`, Anthropic's `anthropic-ratelimit-*-remaining`, …). A key that
/// never reported a figure adds nothing to it; a cooling or disabled key is left out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Headroom {
    /// Requests left, or `None` when no available key has reported any.
    pub requests: Option<u64>,
    /// Tokens left, or `None` when no available key has reported any.
    pub tokens: Option<u64>,
    /// The keys available now.
    pub available: usize,
}

impl KeyRotator {
    /// The provider's [`Headroom`]: one pass over its keys' atomics, no lock and no
    /// allocation, so a gateway can put it on every response. `None` for an unknown provider.
    ///
    /// ```
    /// use ai_key_rotator::classify::{Usage, Verdict};
    /// use ai_key_rotator::{KeyRotator, ProviderConfig};
    ///
    /// let rotator = KeyRotator::builder()
    ///     .provider("openai", ProviderConfig::new().credential("sk-a").credential("sk-b"))
    ///     .build()?;
    /// let key = rotator.get_key("openai").unwrap();
    /// let usage = Usage { remaining_requests: Some(99), remaining_tokens: Some(4_000), ..Usage::default() };
    /// rotator.report(&key, &Verdict::Ok(usage));
    /// let headroom = rotator.headroom("openai").unwrap();
    /// assert_eq!((headroom.requests, headroom.tokens, headroom.available), (Some(99), Some(4_000), 2));
    /// # Ok::<(), ai_key_rotator::ConfigError>(())
    /// ```
    pub fn headroom(&self, provider: &str) -> Option<Headroom> {
        let snapshot = self.inner.snapshot.load();
        let prov = snapshot.provider(provider)?;
        // The clock is read only if some key cools: the common case stays clock-free.
        let mut now = None;
        let mut out = Headroom::default();
        for slot in prov.slots.iter() {
            let available = match slot.state() {
                SlotState::Ready => true,
                SlotState::Cooling(t) => t <= *now.get_or_insert_with(|| self.now()),
                SlotState::Disabled | SlotState::Removed => false,
            };
            if !available {
                continue;
            }
            out.available += 1;
            let add = |sum: &mut Option<u64>, n: u64| {
                if n != u64::MAX {
                    *sum = Some(sum.unwrap_or(0).saturating_add(n));
                }
            };
            add(
                &mut out.requests,
                slot.remaining_requests.load(Ordering::Relaxed),
            );
            add(
                &mut out.tokens,
                slot.remaining_tokens.load(Ordering::Relaxed),
            );
        }
        Some(out)
    }
}
