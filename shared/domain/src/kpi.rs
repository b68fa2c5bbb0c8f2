//! Service KPIs (服务指标) of a brand's dealers, the chain a dealer and its
//! brand review: how fast leads reach a consultant and a first call, how
//! many are marked, invited, visit and buy.
//!
//! Every figure is over a cohort: the leads **received** in the period
//! (China days), wherever they went. A rate is a [`Ratio`] with its
//! numerator and denominator, so a 100% over 1 lead reads as what it is.
//! Merged leads (the same customer folded into another lead) count only as
//! `merged`: the surviving lead carries the customer. Definitions:
//!
//! | figure | numerator | denominator |
//! |---|---|---|
//! | `leads` | leads a dealer of the group received (routed; not merged) | |
//! | `natural` / `paid` | of `leads`, by the first touch's traffic | |
//! | `remote_in` | of `leads`, routed to the dealer from elsewhere (异地) | |
//! | `remote_out` | leads received on the dealer's account that went to another dealer | |
//! | `unroutable` | leads no dealer could take (grouped by the receiving account's dealer) | |
//! | `merged` | leads folded into another lead of the same customer | |
//! | `assigned` | of `leads`, given to a consultant at some point | |
//! | `assignment_latency_p50_s` / `_p90_s` | receipt to first assignment, over `assigned` | |
//! | `first_call` (首次外呼率) | contacted | assigned |
//! | `first_contact_in_sla` (及时性) | contacted by the first-contact deadline, never breached | assigned leads contacted or past their deadline |
//! | `first_contact_p50_s` / `_p90_s` | receipt to first contact, over the contacted | |
//! | `marking` (标记率) | marked valid or invalid | leads |
//! | `valid` (有效率) | marked valid | marked |
//! | `invite` (邀约率) | invited (or further) | contacted |
//! | `visit` (邀约到店率) | visited (or further) | invited |
//! | `deal` (到店成交率) | won | visited |
//! | `sla_breaches` | first-contact deadlines missed (the sweeper's breaches) | |
//! | `reassignments` | moves from one consultant to another (SLA, transfer, handover) | |
//!
//! Percentiles are nearest-rank: the smallest value with at least p% of the
//! values at or below it. Grouped by consultant, a lead counts under its
//! current assignee (`(pool)`: nobody); by channel, under its first touch's
//! platform; by day, under the China day it was received.
//!
//! Channel overlap (渠道重合) is brand-wide: of the leads first seen on
//! channel A, how many came again from channel B ([`Overlap`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::directory::Platform;
use crate::lead::{LeadStatus, MilestoneKind, Traffic};
use crate::lead_list::LeadSummary;
use crate::routing::Route;

/// How the rows of a metrics answer are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Dealer,
    Consultant,
    Channel,
    Day,
}

impl GroupBy {
    pub fn parse(text: &str) -> Option<GroupBy> {
        match text {
            "dealer" => Some(GroupBy::Dealer),
            "consultant" => Some(GroupBy::Consultant),
            "channel" => Some(GroupBy::Channel),
            "day" => Some(GroupBy::Day),
            _ => None,
        }
    }
}

/// The row key of leads nobody holds, grouped by consultant.
pub const POOL: &str = "(pool)";
/// The row key of unroutable leads received on a brand-level account,
/// grouped by dealer.
pub const BRAND_ACCOUNT: &str = "(brand)";

/// A rate with what it is made of. `rate` is None when nothing was counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Ratio {
    pub numerator: u64,
    pub denominator: u64,
    pub rate: Option<f64>,
}

impl Ratio {
    fn of(numerator: u64, denominator: u64) -> Ratio {
        Ratio {
            numerator,
            denominator,
            rate: (denominator > 0)
                .then(|| (numerator as f64 / denominator as f64 * 10_000.0).round() / 10_000.0),
        }
    }
}

/// One row of figures (see the module's table).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Kpis {
    pub leads: u64,
    pub natural: u64,
    pub paid: u64,
    pub remote_in: u64,
    pub remote_out: u64,
    pub unroutable: u64,
    pub merged: u64,
    pub assigned: u64,
    pub assignment_latency_p50_s: Option<i64>,
    pub assignment_latency_p90_s: Option<i64>,
    pub first_call: Ratio,
    pub first_contact_in_sla: Ratio,
    pub first_contact_p50_s: Option<i64>,
    pub first_contact_p90_s: Option<i64>,
    pub marking: Ratio,
    pub valid: Ratio,
    pub invite: Ratio,
    pub visit: Ratio,
    pub deal: Ratio,
    pub sla_breaches: u64,
    pub reassignments: u64,
}

/// Counts of one group while leads are added; [`Tally::finish`] makes the row.
#[derive(Debug, Default)]
struct Tally {
    k: Kpis,
    assignment_latencies: Vec<i64>,
    first_contacts: Vec<i64>,
    contacted: u64,
    due: u64,
    in_sla: u64,
    marked: u64,
    valid: u64,
    invited: u64,
    visited: u64,
    won: u64,
}

impl Tally {
    fn add(&mut self, lead: &LeadSummary, now: DateTime<Utc>) {
        let k = &mut self.k;
        k.leads += 1;
        match lead.first_touch.traffic {
            Traffic::Natural => k.natural += 1,
            Traffic::Paid => k.paid += 1,
        }
        if matches!(lead.route, Some(Route::Remote { .. })) {
            k.remote_in += 1;
        }
        let reached = |kind| lead.milestones.iter().find(|m| m.kind == kind);
        let count = |kind| lead.milestones.iter().filter(|m| m.kind == kind).count() as u64;
        k.sla_breaches += count(MilestoneKind::SlaBreached);
        k.reassignments += count(MilestoneKind::Reassigned);
        if let Some(first) = reached(MilestoneKind::Assigned) {
            k.assigned += 1;
            self.assignment_latencies
                .push((first.at - lead.received_at).num_seconds());
            let breached = reached(MilestoneKind::SlaBreached).is_some();
            match (lead.contacted_at, lead.first_contact_due) {
                (Some(at), due) => {
                    self.contacted += 1;
                    self.due += 1;
                    self.first_contacts
                        .push((at - lead.received_at).num_seconds());
                    if !breached && due.is_some_and(|due| at <= due) {
                        self.in_sla += 1;
                    }
                }
                (None, Some(due)) if due < now || breached => self.due += 1,
                (None, _) if breached => self.due += 1,
                (None, _) => {}
            }
        }
        if let Some(valid) = lead.valid {
            self.marked += 1;
            self.valid += u64::from(valid);
        }
        // A lead that is further on passed the stage even if it was recorded
        // before milestones were kept.
        let at_least =
            |stages: &[LeadStatus], kind| stages.contains(&lead.status) || reached(kind).is_some();
        use LeadStatus::*;
        self.invited += u64::from(at_least(&[Invited, Visited, Won], MilestoneKind::Invited));
        self.visited += u64::from(at_least(&[Visited, Won], MilestoneKind::Visited));
        self.won += u64::from(at_least(&[Won], MilestoneKind::Won));
    }

    fn finish(mut self) -> Kpis {
        let mut k = self.k;
        (k.assignment_latency_p50_s, k.assignment_latency_p90_s) =
            p50_p90(&mut self.assignment_latencies);
        (k.first_contact_p50_s, k.first_contact_p90_s) = p50_p90(&mut self.first_contacts);
        k.first_call = Ratio::of(self.contacted, k.assigned);
        k.first_contact_in_sla = Ratio::of(self.in_sla, self.due);
        k.marking = Ratio::of(self.marked, k.leads);
        k.valid = Ratio::of(self.valid, self.marked);
        k.invite = Ratio::of(self.invited, self.contacted);
        k.visit = Ratio::of(self.visited, self.invited);
        k.deal = Ratio::of(self.won, self.visited);
        k
    }
}

/// Nearest-rank percentile of sorted values: the value at rank ceil(p·n).
pub fn percentile(sorted: &[i64], p: u32) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (sorted.len() * p as usize).div_ceil(100).max(1);
    Some(sorted[rank - 1])
}

fn p50_p90(values: &mut [i64]) -> (Option<i64>, Option<i64>) {
    values.sort_unstable();
    (percentile(values, 50), percentile(values, 90))
}

/// The dealer that received a lead on its own account, if any (a remote
/// lead names it as referrer; an unroutable one keeps `account_dealer`).
fn receiving_dealer(lead: &LeadSummary) -> Option<&str> {
    match &lead.route {
        Some(Route::Local { dealer_id }) => Some(dealer_id),
        Some(Route::Remote { referrer, .. }) => referrer.as_deref(),
        _ => lead.account_dealer.as_deref(),
    }
}

fn holder(lead: &LeadSummary) -> Option<&str> {
    match &lead.route {
        Some(Route::Local { dealer_id }) | Some(Route::Remote { dealer_id, .. }) => Some(dealer_id),
        _ => None,
    }
}

/// The figures of `leads` (a cohort), one row per group, and the total,
/// over the dealers `in_scope` says the caller may see (None: a brand-level
/// account). Grouped by dealer, a lead counts in its holder's row, and as
/// remote-out or unroutable in the row of the dealer whose account received
/// it; a lead counts only where its dealer is in scope.
pub fn compute(
    leads: &[LeadSummary],
    group_by: GroupBy,
    now: DateTime<Utc>,
    in_scope: &dyn Fn(Option<&str>) -> bool,
) -> (BTreeMap<String, Kpis>, Kpis) {
    let mut rows: BTreeMap<String, Tally> = BTreeMap::new();
    let mut total = Tally::default();
    for lead in leads {
        let (held_by, came_to) = (holder(lead), receiving_dealer(lead));
        let key = |dealer: Option<&str>| match group_by {
            GroupBy::Dealer => Some(dealer.unwrap_or(BRAND_ACCOUNT).to_string()),
            // An unroutable lead is no consultant's, not even the pool's.
            GroupBy::Consultant => {
                held_by.map(|_| lead.assignee.clone().unwrap_or_else(|| POOL.into()))
            }
            GroupBy::Channel => Some(lead.first_touch.platform.as_str().to_string()),
            GroupBy::Day => Some(crate::dedup::china_day(lead.received_at).to_string()),
        };
        let count = |total: &mut Tally,
                     rows: &mut BTreeMap<String, Tally>,
                     dealer: Option<&str>,
                     f: &dyn Fn(&mut Kpis)| {
            f(&mut total.k);
            if let Some(key) = key(dealer) {
                f(&mut rows.entry(key).or_default().k);
            }
        };
        if lead.status == LeadStatus::Merged {
            let dealer = held_by.or(came_to);
            if in_scope(dealer) {
                count(&mut total, &mut rows, dealer, &|k| k.merged += 1);
            }
            continue;
        }
        let Some(dealer) = held_by else {
            // Nobody took it: counted where it came in.
            if in_scope(came_to) {
                count(&mut total, &mut rows, came_to, &|k| k.unroutable += 1);
            }
            continue;
        };
        if in_scope(Some(dealer)) {
            total.add(lead, now);
            if let Some(key) = key(Some(dealer)) {
                rows.entry(key).or_default().add(lead, now);
            }
        }
        if let (GroupBy::Dealer, Some(from)) = (group_by, came_to) {
            if from != dealer && in_scope(Some(from)) {
                count(&mut total, &mut rows, Some(from), &|k| k.remote_out += 1);
            }
        }
    }
    let rows = rows.into_iter().map(|(k, t)| (k, t.finish())).collect();
    (rows, total.finish())
}

/// Every dealer (for a caller who oversees the whole brand).
pub fn whole_brand(_: Option<&str>) -> bool {
    true
}

/// `GET /brands/{b}/metrics?from&to&group_by`: the period (as lead lists,
/// at most 92 China days) and the grouping (default by dealer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsQuery {
    pub from: chrono::NaiveDate,
    pub to: chrono::NaiveDate,
    pub group_by: GroupBy,
}

impl MetricsQuery {
    pub fn parse(
        params: &std::collections::HashMap<String, String>,
        today: chrono::NaiveDate,
    ) -> Result<MetricsQuery, crate::lead_list::ListError> {
        use crate::lead_list::ListError;
        if params
            .keys()
            .any(|k| !["from", "to", "group_by"].contains(&k.as_str()))
        {
            return Err(ListError::Malformed("(unknown parameter)"));
        }
        let (from, to) = crate::lead_list::period(params, today)?;
        let group_by = match params.get("group_by") {
            None => GroupBy::Dealer,
            Some(g) => GroupBy::parse(g).ok_or(ListError::Malformed("group_by"))?,
        };
        Ok(MetricsQuery { from, to, group_by })
    }
}

/// The columns of a KPI export, Chinese label first (the brand's staff
/// read it in Excel), then the field's name; a ratio is three columns.
pub fn csv_header(group: &str) -> Vec<String> {
    let mut header = vec![group.to_string()];
    for (label, name, ratio) in COLUMNS {
        if *ratio {
            header.push(format!("{label} ({name}.numerator)"));
            header.push(format!("{label} ({name}.denominator)"));
            header.push(format!("{label} ({name}.rate)"));
        } else {
            header.push(format!("{label} ({name})"));
        }
    }
    header
}

/// A row's cells in [`csv_header`]'s order (an empty cell: no value).
pub fn csv_cells(key: &str, k: &Kpis) -> Vec<String> {
    let value = serde_json::to_value(k).unwrap_or_default();
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    };
    let mut cells = vec![key.to_string()];
    for (_, name, ratio) in COLUMNS {
        let v = &value[*name];
        if *ratio {
            cells.extend(["numerator", "denominator", "rate"].map(|p| text(&v[p])));
        } else {
            cells.push(text(v));
        }
    }
    cells
}

/// Every [`Kpis`] field: label, name, whether it is a [`Ratio`].
const COLUMNS: &[(&str, &str, bool)] = &[
    ("线索数", "leads", false),
    ("自然流量", "natural", false),
    ("付费流量", "paid", false),
    ("异地转入", "remote_in", false),
    ("异地转出", "remote_out", false),
    ("无法分配", "unroutable", false),
    ("合并", "merged", false),
    ("已分配", "assigned", false),
    ("分配时长P50秒", "assignment_latency_p50_s", false),
    ("分配时长P90秒", "assignment_latency_p90_s", false),
    ("首次外呼率", "first_call", true),
    ("及时率", "first_contact_in_sla", true),
    ("首次联系P50秒", "first_contact_p50_s", false),
    ("首次联系P90秒", "first_contact_p90_s", false),
    ("标记率", "marking", true),
    ("有效率", "valid", true),
    ("邀约率", "invite", true),
    ("到店率", "visit", true),
    ("成交率", "deal", true),
    ("超时", "sla_breaches", false),
    ("转派", "reassignments", false),
];

/// Channel overlap of one pair: of the leads first seen on `first` in the
/// period, how many came again from `then`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Overlap {
    pub first: Platform,
    pub then: Platform,
    pub overlap: Ratio,
}

/// The overlap of each counted pair: `counts` are the brand's overlap
/// counters over the period (`"douyin#autohome"` -> leads), `cohort` the
/// period's leads (their first touch is the channel that knew them first).
pub fn overlaps(counts: &BTreeMap<String, u64>, cohort: &[LeadSummary]) -> Vec<Overlap> {
    let mut first_seen: BTreeMap<Platform, u64> = BTreeMap::new();
    for lead in cohort {
        *first_seen.entry(lead.first_touch.platform).or_default() += 1;
    }
    counts
        .iter()
        .filter_map(|(pair, &n)| {
            let (a, b) = pair.split_once('#')?;
            let (first, then) = (Platform::parse(a)?, Platform::parse(b)?);
            Some(Overlap {
                first,
                then,
                overlap: Ratio::of(n, first_seen.get(&first).copied().unwrap_or(0)),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lead::Milestone;
    use chrono::TimeZone;

    /// 2026-12-01 10:00 China time plus `minutes`.
    fn t(minutes: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 2, 0, 0).unwrap() + chrono::Duration::minutes(minutes)
    }

    fn m(kind: MilestoneKind, minutes: i64) -> Milestone {
        Milestone {
            kind,
            at: t(minutes),
        }
    }

    struct L {
        id: &'static str,
        dealer: Option<&'static str>,
        from: Option<&'static str>,
        remote: bool,
        platform: &'static str,
        traffic: &'static str,
        status: LeadStatus,
        assignee: Option<&'static str>,
        received: i64,
        due: Option<i64>,
        contacted: Option<i64>,
        valid: Option<bool>,
        milestones: Vec<Milestone>,
    }

    fn lead(l: L) -> LeadSummary {
        let route = match (l.dealer, l.remote) {
            (Some(d), false) => serde_json::json!({"route": "local", "dealer_id": d}),
            (Some(d), true) => {
                serde_json::json!({"route": "remote", "dealer_id": d, "referrer": l.from})
            }
            (None, _) => {
                serde_json::json!({"route": "unroutable", "reason": "no_dealer_serves_city"})
            }
        };
        serde_json::from_value(serde_json::json!({
            "lead_id": l.id,
            "status": l.status,
            "assignee": l.assignee,
            "first_touch": {"platform": l.platform, "account_id": "a", "scene": "live",
                "traffic": l.traffic, "at": t(l.received), "source_event_id": l.id},
            "touchpoints": 1,
            "received_at": t(l.received),
            "first_contact_due": l.due.map(t),
            "contacted_at": l.contacted.map(t),
            "valid": l.valid,
            "route": route,
            "account_dealer": l.from,
            "milestones": l.milestones,
        }))
        .unwrap()
    }

    /// A hand-computed day for dealers d1 and d2 (SLA 5 minutes; now is
    /// 12:00, two hours after the first lead):
    ///
    /// - L1 d1 douyin natural, assigned at +1 min to s1, contacted +4 (due
    ///   +6: in SLA), marked valid, invited, visited, won.
    /// - L2 d1 douyin paid, assigned +2 to s1, contacted +20 (due +7; the
    ///   sweeper breached it at +7), marked invalid, lost.
    /// - L3 d1 autohome natural, assigned +1 to s2, never contacted, due +6:
    ///   breached at +6, reassigned to s1 at +7 (new deadline +12, not yet
    ///   passed, but the breach counts against the SLA).
    /// - L4 d2 douyin natural, remote from d1, assigned +3 to s3, contacted
    ///   +5 (due +8, in SLA), marked valid, invited, then lost.
    /// - L5 d2 autohome natural, offered, nobody has it: pool.
    /// - L6 unroutable, received on d1's account.
    /// - L7 merged into L1.
    ///
    /// d1: leads L1 L2 L3 = 3; natural 2 (L1 L3), paid 1; remote_out 1 (L4);
    /// unroutable 1 (L6); merged 1 (L7); assigned 3; latencies 60, 120, 60 s
    /// -> p50 60, p90 120; first_call 2/3 (L1 L2); in SLA: L1 only, due
    /// L1 L2 L3 -> 1/3; first contact 240 s (L1), 1200 s (L2) -> p50 240,
    /// p90 1200; marking 2/3; valid 1/2; invite 1/2 (L1 of L1 L2); visit
    /// 1/1; deal 1/1; breaches 2 (L2 L3); reassignments 1 (L3).
    ///
    /// d2: leads L4 L5 = 2; natural 2; remote_in 1; assigned 1 (L4); latency
    /// 180; first_call 1/1; in SLA 1/1; first contact 300; marking 1/2;
    /// valid 1/1; invite 1/1 (L4 lost after being invited); visit 0/1; deal
    /// 0/0 (no rate).
    fn day() -> Vec<LeadSummary> {
        use LeadStatus::{Assigned as Held, Lost, Merged, Offered, Unroutable, Won};
        use MilestoneKind::{Assigned, Invited, Reassigned, SlaBreached, Visited};
        let base = |id, dealer, platform, traffic, status| L {
            id,
            dealer,
            from: dealer,
            remote: false,
            platform,
            traffic,
            status,
            assignee: None,
            received: 0,
            due: None,
            contacted: None,
            valid: None,
            milestones: vec![],
        };
        vec![
            lead(L {
                assignee: Some("s1"),
                due: Some(6),
                contacted: Some(4),
                valid: Some(true),
                milestones: vec![
                    m(Assigned, 1),
                    m(Invited, 30),
                    m(Visited, 60),
                    m(MilestoneKind::Won, 90),
                ],
                ..base("L1", Some("d1"), "douyin", "natural", Won)
            }),
            lead(L {
                assignee: Some("s1"),
                due: Some(7),
                contacted: Some(20),
                valid: Some(false),
                milestones: vec![m(Assigned, 2), m(SlaBreached, 7)],
                ..base("L2", Some("d1"), "douyin", "paid", Lost)
            }),
            lead(L {
                assignee: Some("s1"),
                due: Some(12),
                milestones: vec![m(Assigned, 1), m(SlaBreached, 6), m(Reassigned, 7)],
                ..base("L3", Some("d1"), "autohome", "natural", Held)
            }),
            lead(L {
                from: Some("d1"),
                remote: true,
                assignee: Some("s3"),
                due: Some(8),
                contacted: Some(5),
                valid: Some(true),
                milestones: vec![m(Assigned, 3), m(Invited, 40)],
                ..base("L4", Some("d2"), "douyin", "natural", Lost)
            }),
            lead(base("L5", Some("d2"), "autohome", "natural", Offered)),
            lead(L {
                from: Some("d1"),
                ..base("L6", None, "douyin", "natural", Unroutable)
            }),
            lead(base("L7", Some("d1"), "douyin", "natural", Merged)),
        ]
    }

    fn r(n: u64, d: u64) -> Ratio {
        Ratio::of(n, d)
    }

    #[test]
    fn a_hand_computed_day_per_dealer() {
        let now = t(120);
        let (rows, total) = compute(&day(), GroupBy::Dealer, now, &whole_brand);
        assert_eq!(rows.keys().collect::<Vec<_>>(), ["d1", "d2"]);
        let d1 = &rows["d1"];
        let expected_d1 = Kpis {
            leads: 3,
            natural: 2,
            paid: 1,
            remote_in: 0,
            remote_out: 1,
            unroutable: 1,
            merged: 1,
            assigned: 3,
            assignment_latency_p50_s: Some(60),
            assignment_latency_p90_s: Some(120),
            first_call: r(2, 3),
            first_contact_in_sla: r(1, 3),
            first_contact_p50_s: Some(240),
            first_contact_p90_s: Some(1200),
            marking: r(2, 3),
            valid: r(1, 2),
            invite: r(1, 2),
            visit: r(1, 1),
            deal: r(1, 1),
            sla_breaches: 2,
            reassignments: 1,
        };
        assert_eq!(d1, &expected_d1);
        let expected_d2 = Kpis {
            leads: 2,
            natural: 2,
            remote_in: 1,
            assigned: 1,
            assignment_latency_p50_s: Some(180),
            assignment_latency_p90_s: Some(180),
            first_call: r(1, 1),
            first_contact_in_sla: r(1, 1),
            first_contact_p50_s: Some(300),
            first_contact_p90_s: Some(300),
            marking: r(1, 2),
            valid: r(1, 1),
            invite: r(1, 1),
            visit: r(0, 1),
            deal: r(0, 0),
            ..Kpis::default()
        };
        assert_eq!(rows["d2"], expected_d2);
        assert_eq!(rows["d2"].deal.rate, None);
        assert_eq!(d1.first_call.rate, Some(0.6667));
        // The total: 5 leads, 4 assigned; latencies 60 60 120 180 -> p50 60
        // (rank 2), p90 180 (rank 4); contacts 240 300 1200 -> p50 300.
        assert_eq!(
            (
                total.leads,
                total.assigned,
                total.remote_out,
                total.unroutable,
                total.merged
            ),
            (5, 4, 1, 1, 1)
        );
        assert_eq!(
            (
                total.assignment_latency_p50_s,
                total.assignment_latency_p90_s
            ),
            (Some(60), Some(180))
        );
        assert_eq!(total.first_contact_p50_s, Some(300));
        assert_eq!(total.first_contact_in_sla, r(2, 4));
    }

    #[test]
    fn the_same_day_by_consultant_channel_and_day() {
        let now = t(120);
        let (rows, _) = compute(&day(), GroupBy::Consultant, now, &whole_brand);
        // s1 holds L1 L2 L3, s3 L4, the pool L5; L6 L7 belong to nobody.
        assert_eq!(rows.keys().collect::<Vec<_>>(), [POOL, "s1", "s3"]);
        assert_eq!((rows["s1"].leads, rows["s1"].reassignments), (3, 1));
        assert_eq!((rows[POOL].leads, rows[POOL].assigned), (1, 0));
        let (rows, total) = compute(&day(), GroupBy::Channel, now, &whole_brand);
        // douyin: L1 L2 L4 (+ L6 unroutable, L7 merged); autohome: L3 L5.
        assert_eq!(
            (
                rows["douyin"].leads,
                rows["douyin"].unroutable,
                rows["douyin"].merged
            ),
            (3, 1, 1)
        );
        assert_eq!(rows["autohome"].leads, 2);
        assert_eq!(rows["douyin"].first_call, r(3, 3));
        let (rows, _) = compute(&day(), GroupBy::Day, now, &whole_brand);
        assert_eq!(rows.keys().collect::<Vec<_>>(), ["2026-12-01"]);
        assert_eq!(rows["2026-12-01"], total);
    }

    #[test]
    fn a_deadline_not_yet_passed_is_not_counted_against_the_sla() {
        use LeadStatus::*;
        let fresh = lead(L {
            id: "N",
            dealer: Some("d1"),
            from: Some("d1"),
            remote: false,
            platform: "douyin",
            traffic: "natural",
            status: Assigned,
            assignee: Some("s1"),
            received: 0,
            due: Some(5),
            contacted: None,
            valid: None,
            milestones: vec![m(MilestoneKind::Assigned, 0)],
        });
        let (_, before) = compute(
            std::slice::from_ref(&fresh),
            GroupBy::Dealer,
            t(4),
            &whole_brand,
        );
        assert_eq!(before.first_contact_in_sla, r(0, 0));
        let (_, after) = compute(&[fresh], GroupBy::Dealer, t(6), &whole_brand);
        assert_eq!(after.first_contact_in_sla, r(0, 1));
    }

    #[test]
    fn a_manager_of_d2_sees_only_d2() {
        let only_d2 = |d: Option<&str>| d == Some("d2");
        let (rows, total) = compute(&day(), GroupBy::Dealer, t(120), &only_d2);
        assert_eq!(rows.keys().collect::<Vec<_>>(), ["d2"]);
        // L4 came from d1's account: d1's remote-out is not d2's to see.
        assert_eq!((total.leads, total.remote_in, total.remote_out), (2, 1, 0));
        let (_, total) = compute(&day(), GroupBy::Consultant, t(120), &only_d2);
        assert_eq!((total.leads, total.unroutable, total.merged), (2, 0, 0));
        // d1's scope: its remote-out and unroutable, not d2's leads.
        let only_d1 = |d: Option<&str>| d == Some("d1");
        let (rows, total) = compute(&day(), GroupBy::Channel, t(120), &only_d1);
        assert_eq!((total.leads, total.unroutable, total.merged), (3, 1, 1));
        assert_eq!(rows["douyin"].leads, 2);
    }

    #[test]
    fn the_export_has_a_cell_under_every_column() {
        let (rows, _) = compute(&day(), GroupBy::Dealer, t(120), &whole_brand);
        let header = csv_header("经销商 (dealer)");
        let cells = csv_cells("d1", &rows["d1"]);
        assert_eq!(header.len(), cells.len());
        // Every field of Kpis is a column: a new field must be exported too.
        let fields = serde_json::to_value(&rows["d1"]).unwrap();
        assert_eq!(fields.as_object().unwrap().len(), COLUMNS.len());
        let at = |name: &str| header.iter().position(|h| h.contains(name)).unwrap();
        assert_eq!(cells[at("(first_call.numerator)")], "2");
        assert_eq!(cells[at("(first_call.rate)")], "0.6667");
        assert_eq!(csv_cells("d2", &rows["d2"])[at("(deal.rate)")], "");
    }

    #[test]
    fn metrics_queries() {
        use crate::lead_list::ListError;
        let today = chrono::NaiveDate::from_ymd_opt(2026, 12, 2).unwrap();
        let p = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<std::collections::HashMap<_, _>>()
        };
        let q = MetricsQuery::parse(&p(&[]), today).unwrap();
        assert_eq!(
            (q.group_by, q.to, (q.to - q.from).num_days()),
            (GroupBy::Dealer, today, 6)
        );
        assert_eq!(
            MetricsQuery::parse(&p(&[("group_by", "city")]), today),
            Err(ListError::Malformed("group_by"))
        );
        assert_eq!(
            MetricsQuery::parse(&p(&[("from", "2026-08-01")]), today),
            Err(ListError::Range)
        );
        assert_eq!(
            MetricsQuery::parse(&p(&[("dealer", "d1")]), today),
            Err(ListError::Malformed("(unknown parameter)"))
        );
    }

    #[test]
    fn nearest_rank_percentiles() {
        assert_eq!(percentile(&[], 50), None);
        assert_eq!(percentile(&[7], 90), Some(7));
        let ten: Vec<i64> = (1..=10).collect();
        assert_eq!(
            (percentile(&ten, 50), percentile(&ten, 90)),
            (Some(5), Some(9))
        );
        assert_eq!(percentile(&[1, 2, 3], 50), Some(2));
    }

    #[test]
    fn overlap_is_over_the_leads_first_seen_on_the_first_channel() {
        // Leads first seen: douyin 5 (L1 L2 L4 L6 L7), autohome 2.
        let counts = BTreeMap::from([
            ("douyin#autohome".to_string(), 2),
            ("wecom#douyin".to_string(), 1),
        ]);
        let o = overlaps(&counts, &day());
        assert_eq!(o[0].first, Platform::Douyin);
        assert_eq!(o[0].overlap, r(2, 5));
        // Nobody first seen on WeCom in the cohort: no rate, not a division by zero.
        assert_eq!(o[1].overlap, r(1, 0));
    }
}
