//! How a [`Cooldown`] is read: through a mirror whose field-less variant is a struct variant.
//!
//! serde reads a unit variant of an internally tagged enum (`MidnightUtc`) with a visitor that
//! ignores every other field, `deny_unknown_fields` or not, so `{ type = "midnight-utc",
//! time_zone = "America/Los_Angeles" }` read as plain midnight UTC. An empty struct variant
//! rejects them; the mirror keeps `Cooldown::MidnightUtc` a unit variant for code.

use serde::Deserialize;

use super::{Cooldown, first_day, midnight, two, utc, yes};

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub(super) enum CooldownDe {
    Fixed {
        #[serde(alias = "durationMs")]
        duration_ms: u64,
    },
    MidnightUtc {},
    DailyAt {
        #[serde(default = "midnight")]
        at: String,
        time_zone: String,
    },
    Monthly {
        #[serde(default = "first_day")]
        day: u8,
        #[serde(default = "midnight")]
        at: String,
        #[serde(default = "utc")]
        time_zone: String,
    },
    Exponential {
        base_ms: u64,
        #[serde(default = "two")]
        factor: f64,
        max_ms: u64,
        #[serde(default = "yes")]
        jitter: bool,
    },
    FromResponse {
        fallback: Box<Cooldown>,
        #[serde(default)]
        cap_ms: Option<u64>,
    },
}

impl From<CooldownDe> for Cooldown {
    fn from(c: CooldownDe) -> Cooldown {
        match c {
            CooldownDe::Fixed { duration_ms } => Cooldown::Fixed { duration_ms },
            CooldownDe::MidnightUtc {} => Cooldown::MidnightUtc,
            CooldownDe::DailyAt { at, time_zone } => Cooldown::DailyAt { at, time_zone },
            CooldownDe::Monthly { day, at, time_zone } => Cooldown::Monthly { day, at, time_zone },
            CooldownDe::Exponential {
                base_ms,
                factor,
                max_ms,
                jitter,
            } => Cooldown::Exponential {
                base_ms,
                factor,
                max_ms,
                jitter,
            },
            CooldownDe::FromResponse { fallback, cap_ms } => {
                Cooldown::FromResponse { fallback, cap_ms }
            }
        }
    }
}
