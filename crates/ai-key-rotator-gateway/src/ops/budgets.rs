//! Budget use against limits, as `/status`, the dashboard and `/metrics` show it: one row per
//! limit of the provider's key budget (summed over its keys) and of each quota scope's budget,
//! from the core's read-only view ([`KeyRotator::budgets`](ai_key_rotator::KeyRotator::budgets)).

use ai_key_rotator::{LimitUse, ProviderBudgets, Timestamp};
use serde::Serialize;

/// One limit and its use now; `T` is how times are written (Unix ms for the dashboard, RFC 3339
/// for `/status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct BudgetRow<T> {
    /// `keys` (every key's own budget, summed over the keys) or `scope:<name>`.
    pub(crate) budget: String,
    /// The budget field: `requests_per_minute`, …, `max_in_flight`.
    pub(crate) kind: &'static str,
    /// `minute`, `day` or `now` (in flight).
    pub(crate) window: &'static str,
    pub(crate) used: u64,
    pub(crate) limit: u64,
    /// When the use is back to 0 if nothing more is spent (over summed keys, the latest).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) resets_at: Option<T>,
    /// The limit is fleet-wide (a Redis store shares it); `used` is this gateway's use.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) fleet: bool,
}

/// The rows of a provider's budgets: the keys' budget first (one row per limit, summed over
/// the keys), then each scope's, with times as `time` writes them.
pub(crate) fn rows<T>(b: &ProviderBudgets, time: impl Fn(Timestamp) -> T) -> Vec<BudgetRow<T>> {
    let mut out: Vec<BudgetRow<Timestamp>> = Vec::new();
    for k in &b.keys {
        add(&mut out, "keys", k.fleet, &k.limits);
    }
    for s in &b.scopes {
        add(&mut out, &format!("scope:{}", s.scope), s.fleet, &s.limits);
    }
    out.into_iter()
        .map(|r| BudgetRow {
            budget: r.budget,
            kind: r.kind,
            window: r.window,
            used: r.used,
            limit: r.limit,
            resets_at: r.resets_at.map(&time),
            fleet: r.fleet,
        })
        .collect()
}

fn add(out: &mut Vec<BudgetRow<Timestamp>>, budget: &str, fleet: bool, limits: &[LimitUse]) {
    for l in limits {
        let kind = l.kind.as_str();
        match out
            .iter_mut()
            .find(|r| r.budget == budget && r.kind == kind)
        {
            Some(r) => {
                r.used = r.used.saturating_add(l.used);
                r.limit = r.limit.saturating_add(l.limit);
                r.fleet |= fleet;
                r.resets_at = r.resets_at.max(l.resets_at);
            }
            None => out.push(BudgetRow {
                budget: budget.to_owned(),
                kind,
                window: l.kind.window(),
                used: l.used,
                limit: l.limit,
                resets_at: l.resets_at,
                fleet,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ai_key_rotator::{
        AcquireOptions, Budget, CredentialConfig, FakeClock, KeyRotator, ProviderConfig,
    };

    #[test]
    fn keys_are_summed_and_scopes_listed() {
        let clock = FakeClock::new(Timestamp::from_secs(1_795_599_000));
        let r = KeyRotator::builder()
            .provider(
                "p",
                ProviderConfig::new()
                    .credential(CredentialConfig::new("a").scope("org"))
                    .credential(CredentialConfig::new("b").scope("org"))
                    .budget(Budget {
                        requests_per_minute: Some(10),
                        tokens_per_day: Some(1_000),
                        ..Budget::default()
                    })
                    .scope_budget(
                        "org",
                        Budget {
                            requests_per_day: Some(50),
                            ..Budget::default()
                        },
                    ),
            )
            .clock(clock)
            .reset_interval(std::time::Duration::ZERO)
            .build()
            .unwrap();
        for _ in 0..3 {
            let lease = r
                .acquire_with("p", &AcquireOptions::default().tokens(7))
                .unwrap();
            lease.success(None);
        }
        let rows = rows(&r.budgets("p").unwrap(), |t| t.as_millis());
        let got: Vec<_> = rows
            .iter()
            .map(|r| (r.budget.as_str(), r.kind, r.window, r.used, r.limit))
            .collect();
        assert_eq!(
            got,
            [
                ("keys", "requests_per_minute", "minute", 3, 20),
                ("keys", "tokens_per_day", "day", 21, 2_000),
                ("scope:org", "requests_per_day", "day", 3, 50),
            ]
        );
        // The minute's bucket is empty 3 × 6 s after the burst.
        assert_eq!(rows[0].resets_at, Some(1_795_599_000_000 + 18_000));
    }
}
