//! What the SLA sweeper does with a lead whose deadline has come (docs/notifications.md).
//!
//! An open or offered lead is kept in a sparse index under its next deadline:
//!
//! - assigned, not yet contacted: `first_contact_due` (brand's N minutes);
//! - assigned after that check was handled, or contacted and on: `exclusive_until`;
//! - offered to a claim group: the claim fallback time;
//! - back in the dealer's pool after nobody could take it: the next retry.
//!
//! When the sweeper finds the deadline passed it asks [`check`] what it means;
//! the answer depends only on the lead as read now and the deadline the index
//! held, so two overlapping sweeper runs reach the same decision (and the
//! store's conditional writes let only one of them act on it).

use chrono::{DateTime, Duration, Utc};

use crate::directory::Brand;
use crate::lead::{LeadRecord, LeadStatus};
use crate::status;

/// How long a lead nobody could take waits in the pool before the sweeper
/// tries to assign it again (about one sweeper period).
pub const POOL_RETRY_MINUTES: i64 = 5;

/// The decision for one indexed lead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlaCheck {
    /// Nothing to do: keep the lead indexed at `next`, or drop it from the
    /// index (`None`: closed, or nothing left to watch).
    Wait { next: Option<DateTime<Utc>> },
    /// First contact is overdue: tell the managers (and reassign if the brand
    /// says so).
    FirstContactOverdue,
    /// A claim offer went unclaimed: fall back to round-robin.
    ClaimExpired,
    /// The exclusive follow-up right ended without progress: back to the
    /// dealer's pool and to someone else.
    ExclusivityExpired,
    /// In the dealer's pool because nobody could take it earlier: try again.
    PoolRetry,
}

impl SlaCheck {
    /// A stable name, for idempotency keys, logs and audit details.
    pub fn as_str(self) -> &'static str {
        match self {
            SlaCheck::Wait { .. } => "wait",
            SlaCheck::FirstContactOverdue => "first_contact_overdue",
            SlaCheck::ClaimExpired => "claim_expired",
            SlaCheck::ExclusivityExpired => "exclusivity_expired",
            SlaCheck::PoolRetry => "pool_retry",
        }
    }
}

/// What the sweeper decides for `lead`, indexed under `due`, at `now`.
pub fn check(lead: &LeadRecord, due: DateTime<Utc>, now: DateTime<Utc>) -> SlaCheck {
    if due > now {
        // The index ran ahead of the item (GSIs are eventually consistent).
        return SlaCheck::Wait { next: Some(due) };
    }
    match lead.status {
        LeadStatus::Offered => SlaCheck::ClaimExpired,
        LeadStatus::New if lead.dealer_id.is_some() => SlaCheck::PoolRetry,
        s if status::is_open(s) => {
            if lead.exclusive_until.is_some_and(|e| e <= now) {
                return SlaCheck::ExclusivityExpired;
            }
            // The first-contact check is pending while the index still holds
            // that deadline (once handled, the index moves to exclusive_until).
            let first_contact_pending =
                s == LeadStatus::Assigned && lead.first_contact_due.is_some_and(|d| due <= d);
            match lead.first_contact_due {
                Some(d) if first_contact_pending && d <= now => SlaCheck::FirstContactOverdue,
                Some(d) if first_contact_pending => SlaCheck::Wait { next: Some(d) },
                _ => SlaCheck::Wait {
                    next: lead.exclusive_until,
                },
            }
        }
        _ => SlaCheck::Wait { next: None },
    }
}

/// What to do about an overdue first contact, from the brand's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreachPlan {
    /// The dealer's managers always hear about it.
    pub warn_managers: bool,
    pub reassign: bool,
}

pub fn on_first_contact_overdue(brand: &Brand) -> BreachPlan {
    BreachPlan {
        warn_managers: true,
        reassign: brand.reassign_on_sla_breach,
    }
}

/// When a lead put back in the pool is tried again.
pub fn pool_retry_at(now: DateTime<Utc>) -> DateTime<Utc> {
    now + Duration::minutes(POOL_RETRY_MINUTES)
}

/// The occurrence part of a notification job id for an SLA event: the
/// deadline that fired, so every sweeper run that handles it names the same
/// job and the notifier delivers it once.
pub fn occurrence(check: SlaCheck, due: DateTime<Utc>) -> String {
    format!("{}-{}", check.as_str(), due.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::Platform;
    use crate::identity::PhoneHash;
    use crate::lead::{CustomerKey, Scene, Touchpoint, Traffic};
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn t(minutes: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 2, 0, 0).unwrap() + Duration::minutes(minutes)
    }

    fn lead(status: LeadStatus) -> LeadRecord {
        let assigned = status::is_open(status);
        LeadRecord {
            lead_id: "L1".into(),
            brand_id: "b".into(),
            status,
            customer: CustomerKey::Phone {
                hash: PhoneHash("h".into()),
            },
            linked_keys: vec![],
            merged_into: None,
            reopened_as: None,
            returned_from: None,
            phone: None,
            phone_masked: None,
            customer_name: None,
            customer_city: None,
            series_interest: vec![],
            first_touch: Touchpoint {
                platform: Platform::Douyin,
                account_id: "a".into(),
                scene: Scene::Live,
                traffic: Traffic::Natural,
                at: t(0),
                source_event_id: "e".into(),
                raw_payload_ref: None,
            },
            touchpoints: 1,
            account_dealer: Some("d".into()),
            dealer_id: Some("d".into()),
            route: None,
            assignee: assigned.then(|| "s1".into()),
            assigned_at: assigned.then(|| t(0)),
            first_contact_due: assigned.then(|| t(5)),
            exclusive_until: assigned.then(|| t(15 * 24 * 60)),
            contacted_at: None,
            offered_to: vec![],
            staff_hint: None,
            previous_dealer: None,
            previous_assignee: None,
            channel_tag: None,
            valid: None,
            close_reason: None,
            lost_request: None,
            proposed_dealer: None,
            tags: Vec::new(),
            intent: None,
            next_follow_up_at: None,
            follow_ups: 0,
            milestones: Vec::new(),
            raw_payload_ref: "r".into(),
            received_at: t(0),
        }
    }

    #[test]
    fn first_contact_overdue_once_the_due_time_passes() {
        let l = lead(LeadStatus::Assigned);
        assert_eq!(check(&l, t(5), t(4)), SlaCheck::Wait { next: Some(t(5)) });
        assert_eq!(check(&l, t(5), t(5)), SlaCheck::FirstContactOverdue);
        assert_eq!(check(&l, t(5), t(60)), SlaCheck::FirstContactOverdue);
    }

    #[test]
    fn a_handled_breach_waits_for_exclusivity() {
        // After the warning the index holds exclusive_until: no second warning.
        let l = lead(LeadStatus::Assigned);
        let excl = l.exclusive_until.unwrap();
        assert_eq!(
            check(&l, excl, excl - Duration::minutes(1)),
            SlaCheck::Wait { next: Some(excl) }
        );
        assert_eq!(check(&l, excl, excl), SlaCheck::ExclusivityExpired);
    }

    #[test]
    fn contacted_leads_only_watch_exclusivity() {
        let mut l = lead(LeadStatus::Contacted);
        l.contacted_at = Some(t(3));
        // A stale entry (the index still had the first-contact time): re-index.
        assert_eq!(
            check(&l, t(5), t(10)),
            SlaCheck::Wait {
                next: l.exclusive_until
            }
        );
        let excl = l.exclusive_until.unwrap();
        assert_eq!(
            check(&l, excl, excl + Duration::days(1)),
            SlaCheck::ExclusivityExpired
        );
    }

    #[test]
    fn exclusivity_wins_over_a_late_first_contact_check() {
        let l = lead(LeadStatus::Assigned);
        let late = l.exclusive_until.unwrap() + Duration::days(1);
        assert_eq!(check(&l, t(5), late), SlaCheck::ExclusivityExpired);
    }

    #[test]
    fn offers_pool_and_closed_leads() {
        assert_eq!(
            check(&lead(LeadStatus::Offered), t(10), t(10)),
            SlaCheck::ClaimExpired
        );
        assert_eq!(
            check(&lead(LeadStatus::New), t(10), t(11)),
            SlaCheck::PoolRetry
        );
        let mut unrouted = lead(LeadStatus::New);
        unrouted.dealer_id = None;
        assert_eq!(
            check(&unrouted, t(10), t(11)),
            SlaCheck::Wait { next: None }
        );
        for s in [
            LeadStatus::Won,
            LeadStatus::Lost,
            LeadStatus::Invalid,
            LeadStatus::Unroutable,
        ] {
            assert_eq!(
                check(&lead(s), t(5), t(6)),
                SlaCheck::Wait { next: None },
                "{s:?}"
            );
        }
    }

    #[test]
    fn an_early_index_entry_waits_for_the_first_contact_deadline() {
        // Swept before the deadline (entry due at 3, now 4, deadline 5): the
        // next look is the deadline, not the end of exclusivity (15 days on).
        let l = lead(LeadStatus::Assigned);
        assert_eq!(check(&l, t(3), t(4)), SlaCheck::Wait { next: Some(t(5)) });
    }

    #[test]
    fn a_closed_lead_is_never_overdue_whatever_its_dates() {
        for s in [LeadStatus::Won, LeadStatus::Lost, LeadStatus::Invalid] {
            let mut l = lead(LeadStatus::Assigned);
            l.status = s;
            let late = l.exclusive_until.unwrap() + Duration::days(1);
            assert_eq!(
                check(&l, t(5), t(6)),
                SlaCheck::Wait { next: None },
                "{s:?}"
            );
            assert_eq!(
                check(&l, t(5), late),
                SlaCheck::Wait { next: None },
                "{s:?}"
            );
        }
    }

    #[test]
    fn index_ahead_of_now_waits() {
        assert_eq!(
            check(&lead(LeadStatus::Offered), t(10), t(9)),
            SlaCheck::Wait { next: Some(t(10)) }
        );
    }

    #[test]
    fn brand_decides_reassignment_and_ids_are_stable() {
        let mut brand: Brand = serde_json::from_value(serde_json::json!({
            "brand_id": "b", "name": "B"
        }))
        .unwrap();
        assert!(!brand.reassign_on_sla_breach, "off by default");
        assert_eq!(
            on_first_contact_overdue(&brand),
            BreachPlan {
                warn_managers: true,
                reassign: false
            }
        );
        brand.reassign_on_sla_breach = true;
        assert!(on_first_contact_overdue(&brand).reassign);
        assert_eq!(
            occurrence(SlaCheck::FirstContactOverdue, t(5)),
            format!("first_contact_overdue-{}", t(5).timestamp())
        );
        assert_eq!(pool_retry_at(t(0)), t(5));
    }

    proptest! {
        /// Whatever the lead and the times, a decision that asks to wait
        /// never waits for a moment already past, so no lead is re-swept in
        /// a loop.
        #[test]
        fn waits_are_in_the_future(
            status in prop::sample::select(vec![
                LeadStatus::New, LeadStatus::Offered, LeadStatus::Assigned,
                LeadStatus::Contacted, LeadStatus::Invited, LeadStatus::Visited,
                LeadStatus::Won, LeadStatus::Lost, LeadStatus::Invalid, LeadStatus::Unroutable,
            ]),
            due in 0i64..40_000,
            now in 0i64..40_000,
            first in 0i64..100,
            excl in 0i64..40_000,
        ) {
            let mut l = lead(status);
            if l.assignee.is_some() {
                l.first_contact_due = Some(t(first));
                l.exclusive_until = Some(t(first + excl));
            }
            if let SlaCheck::Wait { next: Some(next) } = check(&l, t(due), t(now)) {
                prop_assert!(next > t(now), "{:?}: wait until {} at {}", status, next, t(now));
            }
        }
    }
}
