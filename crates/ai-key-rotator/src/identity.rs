//! How a credential is named without revealing its key.
//!
//! A key is a secret that must only ever reach the request header it is written into. Everywhere
//! else (state, events, status, logs, errors, persisted or shared data) a credential is named by
//! its [`CredentialId`]: the label its owner gave it, and its [`Fingerprint`], a short hash of the
//! key that is stable across processes and restarts.
//!
//! A leaf: it depends on nothing else in the crate, so every layer (pool, events, stores,
//! status) can name credentials without depending on the rotator.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// A stable, non-reversible name for a key: the first 8 bytes of its SHA-256, shown as 16 hex
/// digits.
///
/// 64 bits make an accidental collision between two keys of one provider vanishingly unlikely
/// (the rotator still compares the full key where it matters), while revealing nothing useful
/// about a high-entropy API key.
///
/// ```
/// use ai_key_rotator::Fingerprint;
///
/// let fp = Fingerprint::of("sk-example");
/// assert_eq!(fp.to_string().len(), 16);
/// assert_eq!(fp.to_string().parse::<Fingerprint>().unwrap(), fp);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint([u8; 8]);

impl Fingerprint {
    /// The fingerprint as a number, for seeding per-key pseudo-randomness.
    pub(crate) fn as_u64(self) -> u64 {
        u64::from_le_bytes(self.0)
    }

    /// The fingerprint of `key`.
    pub fn of(key: &str) -> Self {
        let digest = Sha256::digest(key.as_bytes());
        let mut out = [0u8; 8];
        out.copy_from_slice(&digest[..8]);
        Fingerprint(out)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// The text is not 16 hexadecimal digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid fingerprint: expected 16 hexadecimal digits")]
pub struct InvalidFingerprint;

impl FromStr for Fingerprint {
    type Err = InvalidFingerprint;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = s.as_bytes();
        if bytes.len() != 16 {
            return Err(InvalidFingerprint);
        }
        let mut out = [0u8; 8];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            let hi = hex_value(pair[0]).ok_or(InvalidFingerprint)?;
            let lo = hex_value(pair[1]).ok_or(InvalidFingerprint)?;
            out[i] = hi << 4 | lo;
        }
        Ok(Fingerprint(out))
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl Serialize for Fingerprint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// How a credential is named in events, status, errors and logs: its label, if it has one, and
/// its fingerprint. Never the key.
///
/// `Display` shows the label when there is one, else the fingerprint.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CredentialId {
    /// The label given in the configuration.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub label: Option<Arc<str>>,
    /// The key's fingerprint.
    pub fingerprint: Fingerprint,
}

impl fmt::Display for CredentialId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.label {
            Some(label) => f.write_str(label),
            None => write!(f, "{}", self.fingerprint),
        }
    }
}

impl fmt::Debug for CredentialId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("CredentialId");
        if let Some(label) = &self.label {
            d.field("label", label);
        }
        d.field("fingerprint", &self.fingerprint).finish()
    }
}

/// A masked form of a key for people to recognise it by, like `sk-…wxyz`: at most the first
/// three and the last four characters, and less of a short key, so that most of the key is
/// always hidden.
pub(crate) fn mask(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    let n = chars.len();
    let (head, tail) = match n {
        0..=7 => (0, 0),
        8..=15 => (0, 2),
        _ => (3, 4),
    };
    let mut out: String = chars[..head].iter().collect();
    out.push('…');
    out.extend(&chars[n - tail..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_hides_most_of_the_key() {
        assert_eq!(mask("sk-proj-abcdefghijklmnopwxyz"), "sk-…wxyz");
        assert_eq!(mask("short-key-12"), "…12");
        assert_eq!(mask("tiny"), "…");
        assert_eq!(mask(""), "…");
    }

    #[test]
    fn fingerprint_round_trips_and_rejects_garbage() {
        let fp = Fingerprint::of("sk-test");
        assert_eq!(fp.to_string().parse::<Fingerprint>(), Ok(fp));
        assert_eq!("xyz".parse::<Fingerprint>(), Err(InvalidFingerprint));
        assert_eq!(
            "zzzzzzzzzzzzzzzz".parse::<Fingerprint>(),
            Err(InvalidFingerprint)
        );
        // Known SHA-256("abc") prefix, so the format never changes by accident: persisted and
        // shared state depend on it.
        assert_eq!(Fingerprint::of("abc").to_string(), "ba7816bf8f01cfea");
    }
}
