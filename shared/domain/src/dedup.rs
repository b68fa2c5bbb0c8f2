//! Dedup: one customer seen on several channels within the brand's protection
//! window is one lead. The rules are here; the store enforces them with
//! conditional writes so two concurrent deliveries can never both create.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::directory::{Brand, Platform};
use crate::lead::CustomerKey;

/// The three outcomes an automotive CRM reports for an incoming lead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DedupOutcome {
    /// First time this customer is seen in the window: a new lead.
    Created,
    /// A known customer came back: a touchpoint on the open lead.
    Merged,
    /// The same delivery again (platform or queue redelivery): no effect.
    Duplicate,
}

/// Partition key of a customer's identity item, scoped to the brand.
/// The phone appears only as its keyed hash.
pub fn customer_key(brand_id: &str, key: &CustomerKey) -> String {
    match key {
        CustomerKey::Phone { hash } => format!("CUSTOMER#{brand_id}#P#{}", hash.0),
        CustomerKey::Wecom {
            corp_id,
            external_userid,
        } => format!("CUSTOMER#{brand_id}#W#{corp_id}#{external_userid}"),
    }
}

/// A lead's id, derived from the delivery that created it, so a redelivery
/// computes the same id and can never create a second lead.
pub fn lead_id(brand_id: &str, source_event_id: &str) -> String {
    let digest = Sha256::digest(format!("{brand_id}\u{1f}{source_event_id}").as_bytes());
    format!("L{}", &hex::encode(digest)[..24])
}

/// The end of the protection window that starts with a customer's first lead.
pub fn window_until(brand: &Brand, first_seen: DateTime<Utc>) -> DateTime<Utc> {
    first_seen + Duration::days(i64::from(brand.protection_days))
}

/// Whether a lead arriving at `now` merges into one first seen before: the
/// window is half-open, [first_seen, window_until).
pub fn within_window(window_until: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    now < window_until
}

/// The day bucket (China time) for daily counters.
pub fn china_day(at: DateTime<Utc>) -> chrono::NaiveDate {
    (at + Duration::hours(8)).date_naive()
}

/// Key of a channel-overlap counter: which channel knew the customer first,
/// which one brought them again.
pub fn overlap_pair(first: Platform, later: Platform) -> String {
    format!("{first}#{later}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn brand(days: u32) -> Brand {
        Brand {
            brand_id: "b".into(),
            name: "B".into(),
            protection_days: days,
            exclusivity_days: 15,
            first_contact_minutes: 5,
            reassign_on_sla_breach: false,
            score_weights: None,
        }
    }

    #[test]
    fn window_is_half_open() {
        let first = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        let until = window_until(&brand(30), first);
        assert!(within_window(until, first));
        assert!(within_window(until, until - Duration::seconds(1)));
        assert!(!within_window(until, until));
    }

    #[test]
    fn china_day_rolls_over_at_16_utc() {
        let before = Utc.with_ymd_and_hms(2026, 11, 23, 15, 59, 59).unwrap();
        let after = Utc.with_ymd_and_hms(2026, 11, 23, 16, 0, 0).unwrap();
        assert_eq!(china_day(before).to_string(), "2026-11-23");
        assert_eq!(china_day(after).to_string(), "2026-11-24");
    }

    proptest! {
        #[test]
        fn window_boundary_for_any_brand_setting(days in 1u32..400, offset in -5i64..5) {
            let first = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
            let until = window_until(&brand(days), first);
            let now = first + Duration::days(i64::from(days)) + Duration::seconds(offset);
            prop_assert_eq!(within_window(until, now), offset < 0);
        }

        #[test]
        fn lead_ids_are_stable_and_distinct(a in "[a-z0-9:]{1,30}", b in "[a-z0-9:]{1,30}") {
            prop_assert_eq!(lead_id("x", &a), lead_id("x", &a));
            if a != b {
                prop_assert_ne!(lead_id("x", &a), lead_id("x", &b));
            }
            prop_assert_ne!(lead_id("x", &a), lead_id("y", &a));
        }
    }
}
