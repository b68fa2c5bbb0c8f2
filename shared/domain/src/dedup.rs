//! Dedup: one customer seen on several channels within the brand's protection
//! window is one lead. The rules are here; the store enforces them with
//! conditional writes so two concurrent deliveries can never both create.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::audit::{Actor, AuditAction, AuditEvent};
use crate::directory::{Brand, Platform};
use crate::lead::{CustomerKey, LeadRecord, LeadStatus};
use crate::notification::{NotificationJob, NotificationKind};
use crate::status;

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

// ------------------------------------------------------------------ linking
//
// A WeCom contact arrives without a phone and is keyed by its external user
// id. When the phone arrives (the consultant records it, or a source sends
// both keys), the phone's identity is linked to the lead; if the phone already
// has its own lead inside the window, the two leads are one customer and the
// later one is merged into the earlier one.

/// A lead as the link decision sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkLead<'a> {
    pub lead_id: &'a str,
    pub received_at: DateTime<Utc>,
    pub status: LeadStatus,
    /// The dealer that has the lead (None: not routed to one).
    pub dealer_id: Option<&'a str>,
}

impl LinkLead<'_> {
    /// Still the customer's lead: not closed, not merged away.
    pub fn alive(&self) -> bool {
        !status::is_terminal(self.status)
    }

    /// Created first (ties broken by id, so both sides agree).
    fn earlier_than(&self, other: &LinkLead<'_>) -> bool {
        (self.received_at, self.lead_id) < (other.received_at, other.lead_id)
    }

    /// Which of two live leads of one customer survives their merge: a lead
    /// with a dealer over an unrouted one (the customer is being served
    /// there), else the earlier. The same rule as a returning delivery's
    /// ([`returning_to`]): an unrouted lead gives way to a routed one.
    fn survives_over(&self, other: &LinkLead<'_>) -> bool {
        let unrouted = |l: &LinkLead<'_>| l.status == LeadStatus::Unroutable;
        match (unrouted(self), unrouted(other)) {
            (false, true) => true,
            (true, false) => false,
            _ => self.earlier_than(other),
        }
    }
}

/// What a delivery does when the customer's identity, inside its window,
/// points at a lead with status `holder`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnTo {
    /// The lead is live and routed: the delivery is a touchpoint on it.
    Merge,
    /// The lead is closed (won, lost, invalid, merged away): the customer is
    /// back, so a new lead, linked to the old one (`returned_from`), takes
    /// the identity over with a new window, and is routed, assigned and
    /// timed like any new lead.
    NewLead,
    /// The lead was never routed: a new lead as [`ReturnTo::NewLead`] that
    /// supersedes it (the old one is merged into it) when the new delivery
    /// can be routed; when it cannot either, a touchpoint on the old one.
    NewLeadIfRoutable,
}

/// The rule for a returning customer, the same as [`decide_link`]'s: a
/// closed lead never takes a new touch (its key is free), an unrouted lead
/// gives way to a routed one.
pub fn returning_to(holder: LeadStatus) -> ReturnTo {
    match holder {
        s if status::is_terminal(s) => ReturnTo::NewLead,
        LeadStatus::Unroutable => ReturnTo::NewLeadIfRoutable,
        _ => ReturnTo::Merge,
    }
}

/// The statuses of a lead that a merge may not touch (the store's condition):
/// closed ones, and unrouted ones unless the delivery is unroutable too.
pub fn refusing_touches(accept_unrouted: bool) -> Vec<LeadStatus> {
    LeadStatus::ALL
        .into_iter()
        .filter(|s| match returning_to(*s) {
            ReturnTo::Merge => false,
            ReturnTo::NewLead => true,
            ReturnTo::NewLeadIfRoutable => !accept_unrouted,
        })
        .collect()
}

/// Which lead a key's identity item points at now, until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyHolder<'a> {
    pub lead: LinkLead<'a>,
    pub window_until: DateTime<Utc>,
}

/// What linking a key to a lead (the anchor) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkDecision {
    /// The key is free (never seen, window over, or its lead is closed): point
    /// it at the anchor.
    Link,
    /// The key already points at the anchor: nothing to do.
    AlreadyLinked,
    /// The key has another live lead inside its window: one customer, two
    /// leads. The later-created one is merged into the earlier one.
    Merge {
        /// True when the anchor is the earlier lead and survives.
        anchor_survives: bool,
    },
    /// The anchor is closed and the key belongs to a live lead: leave both
    /// alone (a closed lead never absorbs or is absorbed).
    KeepApart,
    /// A staff member's link ([`decide_staff_link`]): the key belongs to a
    /// live lead of another dealer. Nothing is linked, merged or copied.
    HeldByOtherDealer,
}

/// Decides a link of a key to `anchor`, given what the key's identity says.
pub fn decide_link(
    anchor: &LinkLead<'_>,
    holder: Option<&KeyHolder<'_>>,
    now: DateTime<Utc>,
) -> LinkDecision {
    let Some(holder) = holder else {
        return LinkDecision::Link;
    };
    if holder.lead.lead_id == anchor.lead_id {
        return LinkDecision::AlreadyLinked;
    }
    if !within_window(holder.window_until, now) || !holder.lead.alive() {
        return LinkDecision::Link;
    }
    if !anchor.alive() {
        return LinkDecision::KeepApart;
    }
    LinkDecision::Merge {
        anchor_survives: anchor.survives_over(&holder.lead),
    }
}

/// Decides a link a staff member asked for (the `phone` event): as
/// [`decide_link`], except that a key held by a live lead of another dealer
/// inside its window is refused. A consultant can neither merge another
/// dealer's lead (into theirs or theirs into it) nor learn anything of it.
pub fn decide_staff_link(
    anchor: &LinkLead<'_>,
    holder: Option<&KeyHolder<'_>>,
    now: DateTime<Utc>,
) -> LinkDecision {
    let decision = decide_link(anchor, holder, now);
    match (decision, holder) {
        (LinkDecision::Merge { .. } | LinkDecision::KeepApart, Some(h))
            if h.lead.dealer_id.is_none() || h.lead.dealer_id != anchor.dealer_id =>
        {
            LinkDecision::HeldByOtherDealer
        }
        _ => decision,
    }
}

/// What a link did, as the store reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkOutcome {
    /// The key now points at `lead` (as updated).
    Linked { lead: Box<LeadRecord> },
    /// Nothing to do: the key already pointed at `lead`. `via` is the lead the
    /// link was asked for when that one had been merged into `lead` before
    /// (a repeat after a merge; its notification is sent again, same job id).
    AlreadyLinked {
        lead: Box<LeadRecord>,
        via: Option<String>,
    },
    /// `absorbed` (as it was before) was merged into `survivor` (as updated).
    Merged {
        survivor: Box<LeadRecord>,
        absorbed: Box<LeadRecord>,
    },
    /// The anchor is closed; the key stays with its own live lead.
    KeptApart {
        lead: Box<LeadRecord>,
        holder_lead_id: String,
    },
    /// A staff link refused: the key belongs to a live lead of another
    /// dealer (`holder_lead_id`, for the audit only; never in an answer).
    Refused {
        lead: Box<LeadRecord>,
        holder_lead_id: String,
    },
}

impl LinkOutcome {
    /// The customer's lead after the link.
    pub fn lead(&self) -> &LeadRecord {
        match self {
            LinkOutcome::Linked { lead }
            | LinkOutcome::AlreadyLinked { lead, .. }
            | LinkOutcome::KeptApart { lead, .. }
            | LinkOutcome::Refused { lead, .. } => lead,
            LinkOutcome::Merged { survivor, .. } => survivor,
        }
    }

    /// A stable name for logs and API answers.
    pub fn as_str(&self) -> &'static str {
        match self {
            LinkOutcome::Linked { .. } => "linked",
            LinkOutcome::AlreadyLinked { .. } => "already_linked",
            LinkOutcome::Merged { .. } => "merged",
            LinkOutcome::KeptApart { .. } => "kept_apart",
            LinkOutcome::Refused { .. } => "refused",
        }
    }
}

/// A short name of a key for audit details: the kind, never the phone or its hash.
fn key_kind(key: &CustomerKey) -> &'static str {
    match key {
        CustomerKey::Phone { .. } => "phone",
        CustomerKey::Wecom { .. } => "WeCom contact",
    }
}

/// The audit events a link leaves: "linked" on the lead, or "merged" on both
/// leads of a merge. None for a no-op.
pub fn link_audit(
    outcome: &LinkOutcome,
    key: &CustomerKey,
    actor: &Actor,
    at: DateTime<Utc>,
) -> Vec<AuditEvent> {
    let event = |lead_id: &str, action, detail: String| AuditEvent {
        lead_id: lead_id.to_string(),
        action,
        actor: actor.clone(),
        at,
        detail,
    };
    match outcome {
        LinkOutcome::Linked { lead } => vec![event(
            &lead.lead_id,
            AuditAction::Linked,
            format!("{} linked to this lead", key_kind(key)),
        )],
        LinkOutcome::Merged { survivor, absorbed } => vec![
            event(
                &survivor.lead_id,
                AuditAction::Merged,
                format!(
                    "lead {} ({}) merged into this one: same customer ({} linked)",
                    absorbed.lead_id,
                    absorbed.first_touch.platform,
                    key_kind(key)
                ),
            ),
            event(
                &absorbed.lead_id,
                AuditAction::Merged,
                format!(
                    "merged into lead {} ({}): same customer ({} linked)",
                    survivor.lead_id,
                    survivor.first_touch.platform,
                    key_kind(key)
                ),
            ),
        ],
        // Both dealers' trails record the attempt; neither names the other
        // lead, its dealer or the key.
        LinkOutcome::Refused {
            lead,
            holder_lead_id,
        } => vec![
            event(
                &lead.lead_id,
                AuditAction::LinkRefused,
                format!(
                    "{} refused: it belongs to a live lead of another dealer",
                    key_kind(key)
                ),
            ),
            event(
                holder_lead_id,
                AuditAction::LinkRefused,
                format!(
                    "another dealer's staff recorded this customer's {} on their lead: refused",
                    key_kind(key)
                ),
            ),
        ],
        LinkOutcome::AlreadyLinked { .. } | LinkOutcome::KeptApart { .. } => Vec::new(),
    }
}

/// The notification a merge sends the survivor's assignee (none if it has no
/// assignee or nothing was merged). The id names the absorbed lead, so every
/// repeat of the merge makes the same job and the notifier delivers it once.
pub fn link_notification(outcome: &LinkOutcome, at: DateTime<Utc>) -> Option<NotificationJob> {
    let (survivor, absorbed_id) = match outcome {
        LinkOutcome::Merged { survivor, absorbed } => (survivor, absorbed.lead_id.as_str()),
        LinkOutcome::AlreadyLinked {
            lead,
            via: Some(via),
        } => (lead, via.as_str()),
        _ => return None,
    };
    let assignee = survivor.assignee.clone()?;
    Some(NotificationJob::for_lead(
        survivor,
        NotificationKind::CustomerReturned,
        vec![assignee],
        format!("merge-{absorbed_id}"),
        at,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    #[test]
    fn storage_keys_are_scoped_by_brand_and_kind_and_hold_only_the_hash() {
        let phone = CustomerKey::Phone {
            hash: crate::identity::PhoneHash("0123abcd".into()),
        };
        let wecom = CustomerKey::Wecom {
            corp_id: "ww1".into(),
            external_userid: "wmA".into(),
        };
        assert_eq!(customer_key("hongtu", &phone), "CUSTOMER#hongtu#P#0123abcd");
        assert_eq!(customer_key("hongtu", &wecom), "CUSTOMER#hongtu#W#ww1#wmA");
        assert_ne!(
            customer_key("xinglan", &phone),
            customer_key("hongtu", &phone)
        );
        // The report and the ranking read the pair back as "first#later".
        assert_eq!(
            overlap_pair(Platform::Douyin, Platform::Feiyu),
            "douyin#feiyu"
        );
        assert_eq!(key_kind(&phone), "phone");
        assert_eq!(key_kind(&wecom), "WeCom contact");
    }

    #[test]
    fn a_lead_is_not_earlier_than_itself() {
        let at = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
        let a = LinkLead {
            lead_id: "L1",
            received_at: at,
            status: LeadStatus::Assigned,
            dealer_id: Some("d1"),
        };
        let b = LinkLead { lead_id: "L2", ..a };
        assert!(!a.earlier_than(&a));
        assert!(a.earlier_than(&b) && !b.earlier_than(&a), "ties by id");
    }

    fn brand(days: u32) -> Brand {
        Brand {
            brand_id: "b".into(),
            name: "B".into(),
            protection_days: days,
            exclusivity_days: 15,
            first_contact_minutes: 5,
            reassign_on_sla_breach: false,
            score_weights: None,
            ranking: None,
            retention_days: 730,
            lost_reasons: vec![],
            invalid_reasons: vec![],
            follow_up_cadence: Default::default(),
            lost_approval: false,
            remote_mode: Default::default(),
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

    const STATUSES: [LeadStatus; 11] = LeadStatus::ALL;

    fn at(minutes: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap() + Duration::minutes(minutes)
    }

    fn side(id: &str, minutes: i64, status: LeadStatus) -> LinkLead<'_> {
        LinkLead {
            lead_id: id,
            received_at: at(minutes),
            status,
            dealer_id: Some("d1"),
        }
    }

    #[test]
    fn a_staff_link_never_touches_another_dealers_live_lead() {
        let mine = side("W", 10, LeadStatus::Assigned);
        let now = at(60);
        let theirs = |status, dealer| KeyHolder {
            lead: LinkLead {
                dealer_id: dealer,
                ..side("D", 0, status)
            },
            window_until: at(10_000),
        };
        for status in [LeadStatus::New, LeadStatus::Assigned, LeadStatus::Contacted] {
            for dealer in [Some("d2"), None] {
                let h = theirs(status, dealer);
                assert_eq!(
                    decide_staff_link(&mine, Some(&h), now),
                    LinkDecision::HeldByOtherDealer
                );
                // The router's link (a source's two keys) still merges.
                assert!(matches!(
                    decide_link(&mine, Some(&h), now),
                    LinkDecision::Merge { .. }
                ));
            }
            // Same dealer: merged as before.
            let h = theirs(status, Some("d1"));
            assert!(matches!(
                decide_staff_link(&mine, Some(&h), now),
                LinkDecision::Merge { .. }
            ));
        }
        // Another dealer's closed lead, or its window over: the key is free.
        let closed = theirs(LeadStatus::Won, Some("d2"));
        assert_eq!(
            decide_staff_link(&mine, Some(&closed), now),
            LinkDecision::Link
        );
        let old = KeyHolder {
            window_until: at(30),
            ..theirs(LeadStatus::Assigned, Some("d2"))
        };
        assert_eq!(
            decide_staff_link(&mine, Some(&old), now),
            LinkDecision::Link
        );
    }

    #[test]
    fn a_returning_customer_never_merges_into_a_closed_or_unrouted_lead() {
        use LeadStatus::*;
        for status in [Won, Lost, Invalid, Merged] {
            assert_eq!(returning_to(status), ReturnTo::NewLead, "{status:?}");
        }
        assert_eq!(returning_to(Unroutable), ReturnTo::NewLeadIfRoutable);
        for status in [New, Offered, Assigned, Contacted, Invited, Visited] {
            assert_eq!(returning_to(status), ReturnTo::Merge, "{status:?}");
        }
        // The link path agrees: an earlier unrouted lead is merged into a
        // later routed one, from either side.
        let unrouted = LinkLead {
            dealer_id: None,
            ..side("U", 0, Unroutable)
        };
        let routed = side("R", 30, Assigned);
        let now = at(60);
        let holds = |lead| KeyHolder {
            lead,
            window_until: at(100_000),
        };
        assert_eq!(
            decide_link(&routed, Some(&holds(unrouted)), now),
            LinkDecision::Merge {
                anchor_survives: true
            }
        );
        assert_eq!(
            decide_link(&unrouted, Some(&holds(routed)), now),
            LinkDecision::Merge {
                anchor_survives: false
            }
        );
    }

    #[test]
    fn link_cases_from_the_issue() {
        let wecom = side("W", 10, LeadStatus::Assigned);
        let now = at(60);
        // Phone never seen: link it to the WeCom lead.
        assert_eq!(decide_link(&wecom, None, now), LinkDecision::Link);
        // Phone seen before, window over: link it (a new window starts).
        let old = KeyHolder {
            lead: side("D", -100_000, LeadStatus::Assigned),
            window_until: at(-50_000),
        };
        assert_eq!(decide_link(&wecom, Some(&old), now), LinkDecision::Link);
        // Already linked (repeat, redelivery).
        let same = KeyHolder {
            lead: wecom,
            window_until: at(100_000),
        };
        assert_eq!(
            decide_link(&wecom, Some(&same), now),
            LinkDecision::AlreadyLinked
        );
        // Douyin lead first, WeCom later: the WeCom lead is merged into it.
        let douyin_first = KeyHolder {
            lead: side("D", 0, LeadStatus::Contacted),
            window_until: at(100_000),
        };
        assert_eq!(
            decide_link(&wecom, Some(&douyin_first), now),
            LinkDecision::Merge {
                anchor_survives: false
            }
        );
        // WeCom first, a Douyin lead came before the phone was recorded: the
        // Douyin lead is merged into the WeCom lead.
        let douyin_later = KeyHolder {
            lead: side("D", 30, LeadStatus::Assigned),
            window_until: at(100_000),
        };
        assert_eq!(
            decide_link(&wecom, Some(&douyin_later), now),
            LinkDecision::Merge {
                anchor_survives: true
            }
        );
        // The phone's lead is closed: the key moves to the live WeCom lead.
        let closed = KeyHolder {
            lead: side("D", 0, LeadStatus::Won),
            window_until: at(100_000),
        };
        assert_eq!(decide_link(&wecom, Some(&closed), now), LinkDecision::Link);
        // The WeCom lead is closed, the phone's lead is live: leave both alone.
        let won = side("W", 10, LeadStatus::Lost);
        assert_eq!(
            decide_link(&won, Some(&douyin_first), now),
            LinkDecision::KeepApart
        );
    }

    fn record(id: &str, platform: Platform, assignee: Option<&str>) -> LeadRecord {
        use crate::lead::{CanonicalLead, Scene, Traffic};
        let phone = crate::Phone::parse("13812345678").unwrap();
        let lead = CanonicalLead {
            source_event_id: format!("e-{id}"),
            platform,
            account_id: "a".into(),
            scene: Scene::Other,
            traffic: Traffic::Natural,
            customer: CustomerKey::Phone {
                hash: crate::identity::PhoneHash("0123abcd".into()),
            },
            linked_customer: None,
            phone: Some(phone),
            customer_name: None,
            declared_city: None,
            attributed_city: None,
            series_interest: vec![],
            staff_hint: None,
            channel_tag: None,
            received_at: at(0),
            raw_payload_ref: "RAW#x".into(),
            signer_brand: None,
            sealed_contact: None,
        };
        let mut r = LeadRecord::new(id.into(), "b", &lead, None);
        r.assignee = assignee.map(str::to_string);
        r
    }

    #[test]
    fn link_audit_and_notification_name_leads_never_the_phone() {
        let key = CustomerKey::Phone {
            hash: crate::identity::PhoneHash("0123abcd".into()),
        };
        let actor = Actor::Staff("s1".into());
        let merged = LinkOutcome::Merged {
            survivor: Box::new(record("D", Platform::Douyin, Some("s1"))),
            absorbed: Box::new(record("W", Platform::Wecom, Some("s2"))),
        };
        let events = link_audit(&merged, &key, &actor, at(5));
        assert_eq!(
            events
                .iter()
                .map(|e| e.lead_id.as_str())
                .collect::<Vec<_>>(),
            ["D", "W"]
        );
        for e in &events {
            assert_eq!(e.action, AuditAction::Merged);
            assert!(!e.detail.contains("13812345678") && !e.detail.contains("0123abcd"));
        }
        let job = link_notification(&merged, at(5)).unwrap();
        assert_eq!(job.job_id, "D#customer_returned#merge-W");
        assert_eq!(job.recipients, ["s1"]);
        assert_eq!(job.phone_masked.as_deref(), Some("138****5678"));
        // A repeat through the merged lead names the same job.
        let repeat = LinkOutcome::AlreadyLinked {
            lead: Box::new(record("D", Platform::Douyin, Some("s1"))),
            via: Some("W".into()),
        };
        assert_eq!(
            link_notification(&repeat, at(9)).unwrap().job_id,
            job.job_id
        );
        assert!(link_audit(&repeat, &key, &actor, at(9)).is_empty());
        // A plain link: an audit event, no notification; no assignee, no job.
        let linked = LinkOutcome::Linked {
            lead: Box::new(record("W", Platform::Wecom, None)),
        };
        assert_eq!(
            link_audit(&linked, &key, &actor, at(5))[0].action,
            AuditAction::Linked
        );
        assert_eq!(link_notification(&linked, at(5)), None);
        let unassigned = LinkOutcome::Merged {
            survivor: Box::new(record("D", Platform::Douyin, None)),
            absorbed: Box::new(record("W", Platform::Wecom, Some("s2"))),
        };
        assert_eq!(link_notification(&unassigned, at(5)), None);
    }

    proptest! {
        #[test]
        fn link_decision_properties(
            a_min in -1000i64..1000, b_min in -1000i64..1000,
            a_status in prop::sample::select(STATUSES.to_vec()),
            b_status in prop::sample::select(STATUSES.to_vec()),
            window_left in -100i64..100,
            same_id in any::<bool>(),
        ) {
            let now = at(1000);
            let anchor = side("A", a_min, a_status);
            let other = side(if same_id { "A" } else { "B" }, b_min, b_status);
            let holder = KeyHolder { lead: other, window_until: now + Duration::minutes(window_left) };
            let decision = decide_link(&anchor, Some(&holder), now);
            // No holder: always link.
            prop_assert_eq!(decide_link(&anchor, None, now), LinkDecision::Link);
            if same_id {
                prop_assert_eq!(decision, LinkDecision::AlreadyLinked);
                return Ok(());
            }
            match decision {
                LinkDecision::Merge { anchor_survives } => {
                    // Only two live leads inside the window merge ...
                    prop_assert!(window_left > 0 && anchor.alive() && other.alive());
                    // ... into the routed one, else the earlier one,
                    // whichever side asked.
                    let (survivor, absorbed) = if anchor_survives { (anchor, other) } else { (other, anchor) };
                    let unrouted = |l: &LinkLead<'_>| l.status == LeadStatus::Unroutable;
                    if unrouted(&survivor) == unrouted(&absorbed) {
                        prop_assert!(survivor.received_at <= absorbed.received_at);
                    } else {
                        prop_assert!(unrouted(&absorbed));
                    }
                    // The returning-delivery rule agrees: a delivery for
                    // the absorbed lead's customer would not merge into it
                    // when the survivor is routed.
                    if unrouted(&absorbed) && !unrouted(&survivor) {
                        prop_assert_eq!(returning_to(absorbed.status), ReturnTo::NewLeadIfRoutable);
                    }
                    let reverse = decide_link(&other, Some(&KeyHolder { lead: anchor, window_until: holder.window_until }), now);
                    prop_assert_eq!(reverse, LinkDecision::Merge { anchor_survives: !anchor_survives });
                }
                LinkDecision::Link => {
                    prop_assert!(window_left <= 0 || !other.alive());
                    // A closed holder is free to both paths: a delivery for
                    // its customer makes a new lead rather than merge.
                    if window_left > 0 {
                        prop_assert_eq!(returning_to(other.status), ReturnTo::NewLead);
                    }
                }
                LinkDecision::KeepApart => {
                    prop_assert!(window_left > 0 && other.alive() && !anchor.alive());
                }
                LinkDecision::AlreadyLinked | LinkDecision::HeldByOtherDealer => {
                    prop_assert!(false, "different ids; the router's link never refuses")
                }
            }
            // A staff link: the router's decision, except that another
            // dealer's live lead inside its window is refused, never merged.
            let theirs = KeyHolder { lead: LinkLead { dealer_id: Some("d2"), ..other }, ..holder };
            let staff = decide_staff_link(&anchor, Some(&theirs), now);
            match decide_link(&anchor, Some(&theirs), now) {
                LinkDecision::Merge { .. } | LinkDecision::KeepApart => {
                    prop_assert_eq!(staff, LinkDecision::HeldByOtherDealer)
                }
                d => prop_assert_eq!(staff, d),
            }
            prop_assert_eq!(decide_staff_link(&anchor, Some(&holder), now), decision);
        }

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
