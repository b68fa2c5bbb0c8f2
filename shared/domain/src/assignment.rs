//! Assignment: which sales consultant of a dealer gets a lead (README, "Dedup, routing and assignment").
//!
//! The dealer's strategy decides: round-robin (平均分配), saturation (按饱和度)
//! or claim (抢单, the group is offered the lead). In every strategy only
//! consultants who can take a lead now are considered, and a returning
//! customer goes back to the consultant they had before.

use serde::{Deserialize, Serialize};

use crate::directory::{AssignmentStrategy, Staff, StaffRole};

/// One staff member of the dealer and how many open leads they hold now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffLoad {
    pub staff_id: String,
    pub role: StaffRole,
    pub on_duty: bool,
    /// Most open leads this person may hold at once.
    pub cap: u32,
    /// Leads assigned to them and not yet won, lost or invalid (see `status::is_open`).
    pub open_leads: u32,
}

/// Who takes a dealer's new leads: its sales consultants, or, at a dealer
/// with DCC screening, its DCC agents while any of them can take one
/// (presented as takers, so the dealer's strategy applies among them
/// exactly as among sales); else its sales consultants.
pub fn first_stage(dcc_screening: bool, loads: &[StaffLoad]) -> Vec<StaffLoad> {
    if dcc_screening {
        let agents: Vec<StaffLoad> = loads
            .iter()
            .filter(|l| l.role == StaffRole::Dcc)
            .map(|l| StaffLoad {
                role: StaffRole::Sales,
                ..l.clone()
            })
            .collect();
        if agents.iter().any(StaffLoad::can_take) {
            return agents;
        }
    }
    loads.to_vec()
}

impl StaffLoad {
    pub fn new(staff: &Staff, open_leads: u32) -> Self {
        StaffLoad {
            staff_id: staff.staff_id.clone(),
            role: staff.role,
            on_duty: staff.on_duty,
            cap: staff.cap,
            open_leads,
        }
    }

    /// A sales consultant on duty and below their cap.
    pub fn can_take(&self) -> bool {
        self.role == StaffRole::Sales && self.on_duty && self.open_leads < self.cap
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Assignment {
    /// The lead goes to this consultant.
    Staff {
        staff_id: String,
        reason: AssignReason,
    },
    /// Claim strategy: notify these consultants; the first to claim gets it.
    Offer { staff_ids: Vec<String> },
    /// Nobody can take it now (nobody on duty, or everyone at their cap).
    NoOneAvailable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssignReason {
    /// The consultant who had this customer before.
    ReturningCustomer,
    RoundRobin,
    Saturation,
    /// A claim offer expired unclaimed and fell back to round-robin.
    ClaimFallback,
    /// The platform says who already talks to the customer (WeCom: the
    /// consultant who added the contact).
    StaffHint,
}

/// A consultant the lead should go to if they can take it, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preferred<'a> {
    /// Had this customer before (a merged, returning lead).
    ReturningCustomer(&'a str),
    /// Named by the platform (`CanonicalLead::staff_hint`).
    StaffHint(&'a str),
}

impl Preferred<'_> {
    fn staff_id(&self) -> &str {
        match self {
            Preferred::ReturningCustomer(id) | Preferred::StaffHint(id) => id,
        }
    }

    fn reason(&self) -> AssignReason {
        match self {
            Preferred::ReturningCustomer(_) => AssignReason::ReturningCustomer,
            Preferred::StaffHint(_) => AssignReason::StaffHint,
        }
    }
}

/// Chooses who gets a lead.
///
/// - `ticket`: a per-dealer sequence number (an atomic counter) that makes
///   round-robin take turns across invocations.
/// - `previous`: the consultant who had this customer before; they get the
///   lead back whenever they can take it, whatever the strategy.
pub fn assign(
    strategy: AssignmentStrategy,
    staff: &[StaffLoad],
    ticket: u64,
    previous: Option<&str>,
) -> Assignment {
    let preferred: Vec<Preferred<'_>> = previous
        .into_iter()
        .map(Preferred::ReturningCustomer)
        .collect();
    assign_preferring(strategy, staff, ticket, &preferred)
}

/// Like [`assign`], with any number of preferred consultants: the first of
/// them who can take the lead gets it (with that preference's reason). Use it
/// to pass a WeCom staff hint, alone or after a returning customer's
/// consultant.
pub fn assign_preferring(
    strategy: AssignmentStrategy,
    staff: &[StaffLoad],
    ticket: u64,
    preferred: &[Preferred<'_>],
) -> Assignment {
    let eligible = eligible(staff);
    for p in preferred {
        if eligible.iter().any(|s| s.staff_id == p.staff_id()) {
            return Assignment::Staff {
                staff_id: p.staff_id().to_owned(),
                reason: p.reason(),
            };
        }
    }
    match strategy {
        AssignmentStrategy::RoundRobin => round_robin(&eligible, ticket, AssignReason::RoundRobin),
        AssignmentStrategy::Saturation => saturation(&eligible),
        AssignmentStrategy::Claim if eligible.is_empty() => Assignment::NoOneAvailable,
        AssignmentStrategy::Claim => Assignment::Offer {
            staff_ids: eligible.iter().map(|s| s.staff_id.clone()).collect(),
        },
    }
}

/// A claim offer went unclaimed for the dealer's `claim_fallback_minutes`:
/// round-robin among those who can take it now.
pub fn fallback_after_claim_timeout(staff: &[StaffLoad], ticket: u64) -> Assignment {
    round_robin(&eligible(staff), ticket, AssignReason::ClaimFallback)
}

/// Those who can take a lead, sorted by staff id, one entry per id (the
/// directory should not hold duplicates; if it does, the first one counts).
fn eligible(staff: &[StaffLoad]) -> Vec<&StaffLoad> {
    let mut eligible: Vec<&StaffLoad> = staff.iter().filter(|s| s.can_take()).collect();
    // Stable sort, so dedup keeps the first of equal ids.
    eligible.sort_by(|a, b| a.staff_id.cmp(&b.staff_id));
    eligible.dedup_by(|a, b| a.staff_id == b.staff_id);
    eligible
}

/// Takes turns by ticket over the sorted eligible list: consecutive tickets
/// go to consecutive consultants, so with a stable team counts differ by at
/// most one.
fn round_robin(eligible: &[&StaffLoad], ticket: u64, reason: AssignReason) -> Assignment {
    if eligible.is_empty() {
        return Assignment::NoOneAvailable;
    }
    let i = (ticket % eligible.len() as u64) as usize;
    Assignment::Staff {
        staff_id: eligible[i].staff_id.clone(),
        reason,
    }
}

/// The least loaded relative to their cap; then fewer open leads; then
/// staff id. Eligibility already excludes anyone at or over their cap.
fn saturation(eligible: &[&StaffLoad]) -> Assignment {
    let least = eligible.iter().min_by(|a, b| {
        // open_a / cap_a vs open_b / cap_b, cross-multiplied to stay exact.
        let load_a = u64::from(a.open_leads) * u64::from(b.cap);
        let load_b = u64::from(b.open_leads) * u64::from(a.cap);
        load_a
            .cmp(&load_b)
            .then(a.open_leads.cmp(&b.open_leads))
            .then_with(|| a.staff_id.cmp(&b.staff_id))
    });
    match least {
        Some(s) => Assignment::Staff {
            staff_id: s.staff_id.clone(),
            reason: AssignReason::Saturation,
        },
        None => Assignment::NoOneAvailable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AssignmentStrategy::{Claim, RoundRobin, Saturation};

    fn sales(id: &str, open: u32, cap: u32) -> StaffLoad {
        StaffLoad {
            staff_id: id.into(),
            role: StaffRole::Sales,
            on_duty: true,
            cap,
            open_leads: open,
        }
    }

    fn to(id: &str, reason: AssignReason) -> Assignment {
        Assignment::Staff {
            staff_id: id.into(),
            reason,
        }
    }

    #[test]
    fn can_take_needs_sales_on_duty_below_cap() {
        assert!(sales("a", 0, 1).can_take());
        assert!(!sales("a", 1, 1).can_take(), "at cap");
        assert!(!sales("a", 2, 1).can_take(), "over cap");
        assert!(!sales("a", 0, 0).can_take(), "cap 0");
        let off = StaffLoad {
            on_duty: false,
            ..sales("a", 0, 5)
        };
        assert!(!off.can_take());
        for role in [StaffRole::Manager, StaffRole::Dcc] {
            assert!(!StaffLoad {
                role,
                ..sales("a", 0, 5)
            }
            .can_take());
        }
    }

    #[test]
    fn a_dcc_dealer_gives_new_leads_to_its_free_dcc_agents_else_to_sales() {
        let dcc = |id: &str, open| StaffLoad {
            role: StaffRole::Dcc,
            ..sales(id, open, 2)
        };
        let team = [sales("s1", 0, 9), dcc("d1", 2), dcc("d2", 0)];
        let group = first_stage(true, &team);
        assert_eq!(
            group
                .iter()
                .map(|l| l.staff_id.as_str())
                .collect::<Vec<_>>(),
            ["d1", "d2"]
        );
        assert_eq!(
            assign(RoundRobin, &group, 0, None),
            to("d2", AssignReason::RoundRobin)
        );
        // Both agents at cap: sales takes it.
        let full = [sales("s1", 0, 9), dcc("d1", 2), dcc("d2", 2)];
        assert_eq!(first_stage(true, &full), full.to_vec());
        // No screening: DCC agents never take a lead.
        assert_eq!(
            assign(RoundRobin, &first_stage(false, &team), 1, None),
            to("s1", AssignReason::RoundRobin)
        );
    }

    #[test]
    fn staff_load_from_directory_staff() {
        let staff = Staff {
            staff_id: "s-1".into(),
            dealer_id: "d-1".into(),
            name: "王伟".into(),
            role: StaffRole::Sales,
            on_duty: true,
            cap: 20,
            wecom_userid: None,
            mobile: None,
            leave: None,
        };
        assert_eq!(StaffLoad::new(&staff, 3), sales("s-1", 3, 20));
    }

    #[test]
    fn round_robin_rotates_by_ticket_over_sorted_ids() {
        let team = [sales("c", 0, 9), sales("a", 0, 9), sales("b", 0, 9)];
        let picks: Vec<Assignment> = (0..4).map(|t| assign(RoundRobin, &team, t, None)).collect();
        let expected: Vec<Assignment> = ["a", "b", "c", "a"]
            .map(|id| to(id, AssignReason::RoundRobin))
            .to_vec();
        assert_eq!(picks, expected);
    }

    #[test]
    fn round_robin_skips_those_who_cannot_take() {
        let team = [
            sales("a", 9, 9),
            StaffLoad {
                role: StaffRole::Manager,
                ..sales("b", 0, 9)
            },
            sales("c", 0, 9),
        ];
        for t in 0..5 {
            assert_eq!(
                assign(RoundRobin, &team, t, None),
                to("c", AssignReason::RoundRobin)
            );
        }
    }

    #[test]
    fn saturation_picks_lowest_relative_load() {
        // a: 5/10 = 0.5, b: 3/4 = 0.75, c: 2/8 = 0.25.
        let team = [sales("a", 5, 10), sales("b", 3, 4), sales("c", 2, 8)];
        assert_eq!(
            assign(Saturation, &team, 0, None),
            to("c", AssignReason::Saturation)
        );
    }

    #[test]
    fn saturation_compares_open_over_cap_not_sums() {
        // a: 1/10 = 0.1 beats b: 3/20 = 0.15 (sums would say 1+20 > 3+10).
        let team = [sales("a", 1, 10), sales("b", 3, 20)];
        assert_eq!(
            assign(Saturation, &team, 0, None),
            to("a", AssignReason::Saturation)
        );
    }

    #[test]
    fn saturation_ties_go_to_fewer_open_then_staff_id() {
        // Both at half load; b has fewer open leads.
        let team = [sales("a", 4, 8), sales("b", 2, 4)];
        assert_eq!(
            assign(Saturation, &team, 0, None),
            to("b", AssignReason::Saturation)
        );
        let team = [sales("b", 1, 4), sales("a", 1, 4)];
        assert_eq!(
            assign(Saturation, &team, 0, None),
            to("a", AssignReason::Saturation)
        );
    }

    #[test]
    fn saturation_never_picks_someone_at_cap() {
        let team = [sales("a", 4, 4), sales("b", 9, 10)];
        assert_eq!(
            assign(Saturation, &team, 0, None),
            to("b", AssignReason::Saturation)
        );
        let full = [sales("a", 4, 4), sales("b", 10, 10)];
        assert_eq!(
            assign(Saturation, &full, 0, None),
            Assignment::NoOneAvailable
        );
    }

    #[test]
    fn claim_offers_everyone_eligible_sorted() {
        let team = [sales("c", 0, 9), sales("a", 9, 9), sales("b", 1, 9)];
        assert_eq!(
            assign(Claim, &team, 0, None),
            Assignment::Offer {
                staff_ids: vec!["b".into(), "c".into()]
            }
        );
        assert_eq!(
            assign(Claim, &[sales("a", 9, 9)], 0, None),
            Assignment::NoOneAvailable
        );
    }

    #[test]
    fn nobody_eligible_means_no_one_available() {
        for strategy in [RoundRobin, Saturation, Claim] {
            assert_eq!(assign(strategy, &[], 7, None), Assignment::NoOneAvailable);
            assert_eq!(
                assign(strategy, &[sales("a", 1, 1)], 7, Some("a")),
                Assignment::NoOneAvailable
            );
        }
        assert_eq!(
            fallback_after_claim_timeout(&[], 3),
            Assignment::NoOneAvailable
        );
    }

    #[test]
    fn returning_customer_goes_back_to_their_consultant_in_every_strategy() {
        let team = [sales("a", 0, 9), sales("b", 8, 9), sales("c", 0, 9)];
        for strategy in [RoundRobin, Saturation, Claim] {
            assert_eq!(
                assign(strategy, &team, 0, Some("b")),
                to("b", AssignReason::ReturningCustomer)
            );
        }
    }

    #[test]
    fn returning_customer_falls_back_to_the_strategy_when_unavailable() {
        let team = [sales("a", 0, 9), sales("b", 9, 9)];
        assert_eq!(
            assign(RoundRobin, &team, 0, Some("b")),
            to("a", AssignReason::RoundRobin)
        );
        assert_eq!(
            assign(RoundRobin, &team, 0, Some("gone")),
            to("a", AssignReason::RoundRobin)
        );
    }

    #[test]
    fn preferences_are_tried_in_order() {
        let team = [sales("a", 0, 9), sales("b", 0, 9), sales("c", 9, 9)];
        let hint_b = Preferred::StaffHint("b");
        assert_eq!(
            assign_preferring(RoundRobin, &team, 0, &[hint_b]),
            to("b", AssignReason::StaffHint)
        );
        assert_eq!(
            assign_preferring(
                RoundRobin,
                &team,
                0,
                &[Preferred::ReturningCustomer("c"), hint_b]
            ),
            to("b", AssignReason::StaffHint),
            "c is at cap"
        );
        assert_eq!(
            assign_preferring(
                RoundRobin,
                &team,
                0,
                &[Preferred::ReturningCustomer("a"), hint_b]
            ),
            to("a", AssignReason::ReturningCustomer)
        );
    }

    #[test]
    fn claim_fallback_is_round_robin() {
        let team = [sales("b", 0, 9), sales("a", 0, 9), sales("c", 9, 9)];
        assert_eq!(
            fallback_after_claim_timeout(&team, 0),
            to("a", AssignReason::ClaimFallback)
        );
        assert_eq!(
            fallback_after_claim_timeout(&team, 1),
            to("b", AssignReason::ClaimFallback)
        );
    }

    #[test]
    fn duplicate_staff_rows_count_once() {
        let team = [sales("a", 0, 9), sales("a", 0, 9), sales("b", 0, 9)];
        assert_eq!(
            assign(Claim, &team, 0, None),
            Assignment::Offer {
                staff_ids: vec!["a".into(), "b".into()]
            }
        );
        assert_eq!(
            assign(RoundRobin, &team, 1, None),
            to("b", AssignReason::RoundRobin)
        );
    }

    #[test]
    fn assignment_serialises_with_a_tag() {
        assert_eq!(
            serde_json::to_value(to("a", AssignReason::ClaimFallback)).unwrap(),
            serde_json::json!({"kind": "staff", "staff_id": "a", "reason": "claim_fallback"})
        );
        assert_eq!(
            serde_json::to_value(Assignment::NoOneAvailable).unwrap(),
            serde_json::json!({"kind": "no_one_available"})
        );
    }
}
