//! The limits of one cached data key, as pure arithmetic.
//!
//! Modelled on the ESDK caching materials manager, stricter in two ways: every limit is
//! checked **including the current request** (a request that would take a key past a limit
//! gets a fresh key instead, so no key ever protects more than the limits allow), and age is
//! expired at `age >= max_age` rather than only beyond it.
//!
//! Refresh-ahead: once a key has used `refresh_percent` of its age or of either budget, a
//! replacement is generated in the background, so in steady state no request waits on KMS.

use std::time::Duration;

use crate::config::KmsConfig;

/// What one data key has protected so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Messages encrypted (and data keys handed out) with it.
    pub messages: u64,
    /// Plaintext bytes encrypted with it.
    pub bytes: u64,
}

/// Why a cached key may not serve a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The key reached its max age.
    Expired,
    /// One more message would exceed the message limit.
    Messages,
    /// This request's bytes would exceed the byte limit.
    Bytes,
}

/// The limits of every cached data key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Age at which a key is no longer used.
    pub max_age: Duration,
    /// Messages one key may protect.
    pub max_messages: u64,
    /// Plaintext bytes one key may protect.
    pub max_bytes: u64,
    /// Share of any limit (percent) after which a replacement is generated ahead.
    pub refresh_percent: u8,
}

impl From<&KmsConfig> for Limits {
    fn from(c: &KmsConfig) -> Self {
        Limits {
            max_age: c.max_age,
            max_messages: c.max_messages,
            max_bytes: c.max_bytes,
            refresh_percent: c.refresh_percent,
        }
    }
}

impl Limits {
    /// Whether a key of age `age` that has protected `used` may protect one more message
    /// of `bytes` bytes; on success, the usage after this request.
    pub fn admit(&self, age: Duration, used: Usage, bytes: u64) -> Result<Usage, Refusal> {
        if age >= self.max_age {
            return Err(Refusal::Expired);
        }
        // Checked: a count that would overflow is past any limit.
        let messages = used
            .messages
            .checked_add(1)
            .filter(|m| *m <= self.max_messages)
            .ok_or(Refusal::Messages)?;
        let bytes = used
            .bytes
            .checked_add(bytes)
            .filter(|b| *b <= self.max_bytes)
            .ok_or(Refusal::Bytes)?;
        Ok(Usage { messages, bytes })
    }

    /// Whether a brand-new key could serve a request of `bytes` bytes at all. When it
    /// cannot, the request gets a key of its own that is never cached.
    pub fn fits_fresh(&self, bytes: u64) -> bool {
        self.admit(Duration::ZERO, Usage::default(), bytes).is_ok()
    }

    /// Whether a key of age `age` that has protected `used` should be replaced ahead of
    /// its expiry.
    pub fn refresh_due(&self, age: Duration, used: Usage) -> bool {
        let pct = u128::from(self.refresh_percent);
        let past = |v: u128, limit: u128| v * 100 >= limit * pct;
        past(age.as_nanos(), self.max_age.as_nanos())
            || past(used.messages.into(), self.max_messages.into())
            || past(used.bytes.into(), self.max_bytes.into())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn limits(messages: u64, bytes: u64) -> Limits {
        Limits {
            max_age: Duration::from_secs(300),
            max_messages: messages,
            max_bytes: bytes,
            refresh_percent: 80,
        }
    }

    fn used(messages: u64, bytes: u64) -> Usage {
        Usage { messages, bytes }
    }

    #[test]
    fn message_limit_counts_the_current_request() {
        let l = limits(3, 1000);
        let mut u = Usage::default();
        for _ in 0..3 {
            u = l.admit(Duration::ZERO, u, 1).unwrap();
        }
        assert_eq!(u, used(3, 3));
        // The fourth message would be the key's fourth: refused.
        assert_eq!(l.admit(Duration::ZERO, u, 1), Err(Refusal::Messages));
    }

    #[test]
    fn byte_limit_counts_the_current_request() {
        let l = limits(100, 10);
        // Exactly reaching the limit is allowed ...
        assert_eq!(l.admit(Duration::ZERO, used(1, 6), 4), Ok(used(2, 10)));
        // ... one byte beyond it is not, even though the key has room before this request.
        assert_eq!(l.admit(Duration::ZERO, used(1, 6), 5), Err(Refusal::Bytes));
        // A request larger than the whole budget never fits, not even a fresh key.
        assert!(l.fits_fresh(10));
        assert!(!l.fits_fresh(11));
        // Empty plaintexts still count as messages.
        assert_eq!(l.admit(Duration::ZERO, used(0, 10), 0), Ok(used(1, 10)));
    }

    #[test]
    fn age_expires_at_max_age() {
        let l = limits(100, 100);
        assert!(l
            .admit(Duration::from_millis(299_999), used(0, 0), 0)
            .is_ok());
        assert_eq!(
            l.admit(Duration::from_secs(300), used(0, 0), 0),
            Err(Refusal::Expired)
        );
    }

    #[test]
    fn overflowing_usage_is_refused() {
        let l = limits(u64::MAX, u64::MAX);
        assert_eq!(
            l.admit(Duration::ZERO, used(u64::MAX, 0), 0),
            Err(Refusal::Messages)
        );
        assert_eq!(
            l.admit(Duration::ZERO, used(0, u64::MAX), 1),
            Err(Refusal::Bytes)
        );
        assert!(!l.refresh_due(Duration::ZERO, used(0, 0)));
        assert!(l.refresh_due(Duration::ZERO, used(u64::MAX, 0)));
    }

    #[test]
    fn refresh_ahead_thresholds() {
        let l = limits(10, 1000);
        assert!(!l.refresh_due(Duration::from_secs(239), used(7, 799)));
        assert!(l.refresh_due(Duration::from_secs(240), used(0, 0)));
        assert!(l.refresh_due(Duration::ZERO, used(8, 0)));
        assert!(l.refresh_due(Duration::ZERO, used(0, 800)));
        let at_limit = Limits {
            refresh_percent: 100,
            ..l
        };
        assert!(!at_limit.refresh_due(Duration::ZERO, used(9, 999)));
        assert!(at_limit.refresh_due(Duration::ZERO, used(10, 0)));
    }
}
