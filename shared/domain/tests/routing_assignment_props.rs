//! Properties of remote routing and consultant assignment, through the public API.

use std::collections::{BTreeMap, HashSet};

use leads_domain::assignment::{
    assign, fallback_after_claim_timeout, AssignReason, Assignment, StaffLoad,
};
use leads_domain::directory::{AssignmentStrategy, Dealer, StaffRole};
use leads_domain::routing::{pick_remote, route, RemoteCandidate, Route, Tier, UnroutableReason};
use leads_domain::CityCode;
use proptest::prelude::*;

// ---------------------------------------------------------------- routing

/// A handful of cities so that served / not served both come up often.
fn any_city() -> impl Strategy<Value = CityCode> {
    prop::sample::select(vec![
        CityCode(370_100),
        CityCode(370_200),
        CityCode(370_300),
        CityCode(110_000),
        CityCode(310_000),
    ])
}

fn any_tier() -> impl Strategy<Value = Option<Tier>> {
    prop::option::of(prop::sample::select(vec![
        Tier::S,
        Tier::A,
        Tier::B,
        Tier::C,
    ]))
}

/// Candidates with distinct ids `d-0`, `d-1`, ...; some without capacity.
fn any_candidates() -> impl Strategy<Value = Vec<RemoteCandidate>> {
    prop::collection::vec((any_tier(), 0u32..6, 0u32..10), 0..8).prop_map(|rows| {
        rows.into_iter()
            .enumerate()
            .map(|(i, (tier, remaining, received))| RemoteCandidate {
                dealer_id: format!("d-{i}"),
                tier,
                remaining_capacity: remaining,
                received_today: received,
            })
            .collect()
    })
}

/// An owning dealer, whose id may collide with a candidate's (`d-0`..`d-2`).
fn any_dealer() -> impl Strategy<Value = Dealer> {
    (
        prop::sample::select(vec!["d-0", "d-1", "d-2", "d-owner"]),
        any_city(),
        prop::collection::vec(any_city(), 0..3),
    )
        .prop_map(|(id, city, mut served)| {
            served.push(city);
            Dealer {
                dealer_id: id.into(),
                brand_id: "brand-1".into(),
                name: id.into(),
                city,
                served_cities: served,
                strategy: AssignmentStrategy::RoundRobin,
                claim_fallback_minutes: 10,
                daily_remote_capacity: 50,
                dcc_screening: false,
            }
        })
}

proptest! {
    #[test]
    fn remote_goes_to_a_candidate_with_capacity_other_than_the_owner(
        owner in prop::option::of(any_dealer()),
        city in prop::option::of(any_city()),
        candidates in any_candidates(),
        key in "[a-z0-9-]{1,24}",
    ) {
        match route(owner.as_ref(), city, &candidates, &key) {
            Route::Remote { dealer_id, referrer } => {
                let picked = candidates.iter().find(|c| c.dealer_id == dealer_id);
                prop_assert!(picked.is_some_and(|c| c.remaining_capacity > 0), "{}", dealer_id);
                prop_assert_eq!(referrer.as_deref(), owner.as_ref().map(|d| d.dealer_id.as_str()));
                prop_assert_ne!(Some(dealer_id), referrer);
            }
            Route::Local { dealer_id } => {
                let owner = owner.as_ref().expect("local needs an owning dealer");
                prop_assert_eq!(&dealer_id, &owner.dealer_id);
                prop_assert!(city.is_none_or(|c| owner.serves(c)));
            }
            Route::Unroutable { reason } => {
                let others: Vec<_> = candidates
                    .iter()
                    .filter(|c| owner.as_ref().is_none_or(|o| o.dealer_id != c.dealer_id))
                    .collect();
                let expected = if city.is_none() {
                    UnroutableReason::CityUnknown
                } else if others.is_empty() {
                    UnroutableReason::NoDealerServesCity
                } else {
                    UnroutableReason::CapacityExhausted
                };
                prop_assert_eq!(reason, expected);
                prop_assert!(others.iter().all(|c| c.remaining_capacity == 0) || city.is_none());
            }
        }
    }

    #[test]
    fn local_when_the_dealer_serves_the_city_or_it_is_unknown(
        owner in any_dealer(),
        city in prop::option::of(any_city()),
        candidates in any_candidates(),
        key in "[a-z0-9-]{1,24}",
    ) {
        let routed = route(Some(&owner), city, &candidates, &key);
        let serves = city.is_none_or(|c| owner.serves(c));
        prop_assert_eq!(
            matches!(&routed, Route::Local { dealer_id } if *dealer_id == owner.dealer_id),
            serves,
            "{:?}", routed
        );
    }

    #[test]
    fn pick_is_deterministic_and_ignores_candidate_order(
        candidates in any_candidates(),
        key in "[a-z0-9-]{1,24}",
        rotate in 0usize..8,
    ) {
        let pick = pick_remote(&candidates, &key).map(|c| c.dealer_id.clone());
        prop_assert_eq!(&pick, &pick_remote(&candidates, &key).map(|c| c.dealer_id.clone()));
        let mut shuffled = candidates.clone();
        if !shuffled.is_empty() {
            let n = rotate % shuffled.len();
            shuffled.rotate_left(n);
        }
        prop_assert_eq!(&pick, &pick_remote(&shuffled, &key).map(|c| c.dealer_id.clone()));
        // None exactly when nobody has capacity.
        prop_assert_eq!(pick.is_none(), candidates.iter().all(|c| c.remaining_capacity == 0));
    }
}

/// Counts picks over a fixed set of lead keys and checks each dealer's share
/// against weight / total weight. Deterministic (fixed keys), so not flaky.
fn assert_shares_follow_weights(candidates: &[RemoteCandidate], leads: usize) {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for i in 0..leads {
        let picked = pick_remote(candidates, &format!("lead-{i:06}")).unwrap();
        *counts.entry(picked.dealer_id.as_str()).or_default() += 1;
    }
    let total: f64 = candidates.iter().map(RemoteCandidate::weight).sum();
    for c in candidates {
        let expected = leads as f64 * c.weight() / total;
        let got = *counts.get(c.dealer_id.as_str()).unwrap_or(&0) as f64;
        // ±25% relative, or 4 standard deviations for small expected counts.
        let sigma = (expected * (1.0 - c.weight() / total)).sqrt();
        let tolerance = (0.25 * expected).max(4.0 * sigma);
        assert!(
            (got - expected).abs() <= tolerance,
            "{}: got {got}, expected {expected:.1} ± {tolerance:.1} ({counts:?})",
            c.dealer_id
        );
    }
}

fn remote(id: &str, tier: Option<Tier>, remaining: u32, received: u32) -> RemoteCandidate {
    RemoteCandidate {
        dealer_id: id.into(),
        tier,
        remaining_capacity: remaining,
        received_today: received,
    }
}

#[test]
fn shares_are_proportional_to_weights() {
    // Weights 40, 15, 20, 2 (unranked counts as B).
    assert_shares_follow_weights(
        &[
            remote("d-s", Some(Tier::S), 10, 0),
            remote("d-a", Some(Tier::A), 10, 1),
            remote("d-new", None, 10, 0),
            remote("d-c", Some(Tier::C), 4, 1),
        ],
        4000,
    );
    // Equal weights: an even split.
    assert_shares_follow_weights(
        &(0..5)
            .map(|i| remote(&format!("dealer-{i}"), Some(Tier::B), 10, 0))
            .collect::<Vec<_>>(),
        4000,
    );
    // Received-today pulls a dealer down: weights 4×10/11 vs 4×10/1.
    assert_shares_follow_weights(
        &[
            remote("busy", Some(Tier::S), 10, 10),
            remote("idle", Some(Tier::S), 10, 0),
        ],
        4000,
    );
}

#[test]
fn removing_a_dealer_only_moves_its_own_leads() {
    let all = [
        remote("d-1", Some(Tier::S), 10, 0),
        remote("d-2", Some(Tier::B), 10, 0),
        remote("d-3", Some(Tier::C), 10, 0),
    ];
    let without_d2 = [all[0].clone(), all[2].clone()];
    for i in 0..2000 {
        let key = format!("lead-{i}");
        let before = &pick_remote(&all, &key).unwrap().dealer_id;
        let after = &pick_remote(&without_d2, &key).unwrap().dealer_id;
        if before != "d-2" {
            assert_eq!(before, after, "{key}");
        }
    }
}

// ------------------------------------------------------------- assignment

fn any_staff() -> impl Strategy<Value = Vec<StaffLoad>> {
    let role = prop::sample::select(vec![StaffRole::Sales, StaffRole::Manager, StaffRole::Dcc]);
    prop::collection::vec((role, any::<bool>(), 0u32..6, 0u32..8), 0..8).prop_map(|rows| {
        rows.into_iter()
            .enumerate()
            .map(|(i, (role, on_duty, cap, open))| StaffLoad {
                staff_id: format!("s-{i}"),
                role,
                on_duty,
                cap,
                open_leads: open,
            })
            .collect()
    })
}

fn any_strategy() -> impl Strategy<Value = AssignmentStrategy> {
    prop::sample::select(vec![
        AssignmentStrategy::RoundRobin,
        AssignmentStrategy::Saturation,
        AssignmentStrategy::Claim,
    ])
}

fn can_take(staff: &[StaffLoad], id: &str) -> bool {
    staff.iter().any(|s| s.staff_id == id && s.can_take())
}

/// Who ends up with the lead: the assignee, or for an offer its first consultant (the first to claim).
fn assignee(assignment: &Assignment) -> Option<&str> {
    match assignment {
        Assignment::Staff { staff_id, .. } => Some(staff_id),
        Assignment::Offer { staff_ids } => staff_ids.first().map(String::as_str),
        Assignment::NoOneAvailable => None,
    }
}

fn take(staff: &mut [StaffLoad], id: &str) {
    staff
        .iter_mut()
        .find(|s| s.staff_id == id)
        .unwrap()
        .open_leads += 1;
}

proptest! {
    #[test]
    fn only_sales_on_duty_below_cap_get_leads(
        staff in any_staff(),
        strategy in any_strategy(),
        ticket in any::<u64>(),
        previous in prop::option::of(prop::sample::select(vec!["s-0", "s-1", "s-2", "gone"])),
    ) {
        let anyone = staff.iter().any(StaffLoad::can_take);
        for assignment in [
            assign(strategy, &staff, ticket, previous),
            fallback_after_claim_timeout(&staff, ticket),
        ] {
            match &assignment {
                Assignment::Staff { staff_id, .. } => prop_assert!(can_take(&staff, staff_id)),
                Assignment::Offer { staff_ids } => {
                    prop_assert!(!staff_ids.is_empty());
                    prop_assert!(staff_ids.windows(2).all(|w| w[0] < w[1]), "sorted, unique");
                    let offered: HashSet<&str> = staff_ids.iter().map(String::as_str).collect();
                    let eligible: HashSet<&str> = staff
                        .iter()
                        .filter(|s| s.can_take())
                        .map(|s| s.staff_id.as_str())
                        .collect();
                    prop_assert_eq!(offered, eligible);
                }
                Assignment::NoOneAvailable => prop_assert!(!anyone),
            }
            prop_assert_eq!(assignment == Assignment::NoOneAvailable, !anyone);
        }
    }

    #[test]
    fn returning_customer_is_honoured_when_they_can_take_it(
        staff in any_staff(),
        strategy in any_strategy(),
        ticket in any::<u64>(),
        who in 0usize..8,
    ) {
        prop_assume!(!staff.is_empty());
        let previous = &staff[who % staff.len()];
        let assignment = assign(strategy, &staff, ticket, Some(&previous.staff_id));
        let returned = assignment
            == Assignment::Staff {
                staff_id: previous.staff_id.clone(),
                reason: AssignReason::ReturningCustomer,
            };
        prop_assert_eq!(returned, previous.can_take(), "{:?}", assignment);
    }

    #[test]
    fn round_robin_spreads_evenly(
        mut staff in any_staff(),
        leads in 0u64..200,
    ) {
        // Large caps so nobody fills up; duty and role as generated.
        for s in &mut staff {
            s.cap = 10_000;
            s.open_leads = 0;
        }
        let mut got: BTreeMap<String, u64> = BTreeMap::new();
        for ticket in 0..leads {
            match assign(AssignmentStrategy::RoundRobin, &staff, ticket, None) {
                Assignment::Staff { staff_id, reason } => {
                    prop_assert_eq!(reason, AssignReason::RoundRobin);
                    take(&mut staff, &staff_id);
                    *got.entry(staff_id).or_default() += 1;
                }
                other => {
                    prop_assert_eq!(other, Assignment::NoOneAvailable);
                    prop_assert!(!staff.iter().any(StaffLoad::can_take));
                }
            }
        }
        let eligible = staff.iter().filter(|s| s.can_take());
        let counts: Vec<u64> = eligible.map(|s| *got.get(&s.staff_id).unwrap_or(&0)).collect();
        if let (Some(max), Some(min)) = (counts.iter().max(), counts.iter().min()) {
            prop_assert!(max - min <= 1, "{:?}", got);
        }
        prop_assert_eq!(got.values().sum::<u64>(), if counts.is_empty() { 0 } else { leads });
    }

    #[test]
    fn saturation_fills_everyone_to_cap_and_no_further(mut staff in any_staff()) {
        let room: u32 = staff
            .iter()
            .filter(|s| s.role == StaffRole::Sales && s.on_duty)
            .map(|s| s.cap.saturating_sub(s.open_leads))
            .sum();
        let start = staff.clone();
        let mut assigned = 0;
        while let Assignment::Staff { staff_id, reason } =
            assign(AssignmentStrategy::Saturation, &staff, 0, None)
        {
            prop_assert_eq!(reason, AssignReason::Saturation);
            prop_assert!(can_take(&staff, &staff_id));
            take(&mut staff, &staff_id);
            assigned += 1;
            prop_assert!(assigned <= room, "assigned more than the room there was");
        }
        // Stopped exactly when every sales consultant on duty is full.
        prop_assert_eq!(assigned, room);
        prop_assert!(!staff.iter().any(StaffLoad::can_take));
        for (before, after) in start.iter().zip(&staff) {
            prop_assert!(after.open_leads <= before.open_leads.max(before.cap));
        }
    }

    #[test]
    fn claims_never_overfill(mut staff in any_staff(), ticket in any::<u64>()) {
        // The first consultant in each offer claims it, until nobody can.
        let start = staff.clone();
        for _ in 0..64 {
            let offer = assign(AssignmentStrategy::Claim, &staff, ticket, None);
            let Some(id) = assignee(&offer).map(str::to_owned) else { break };
            take(&mut staff, &id);
        }
        for (before, after) in start.iter().zip(&staff) {
            prop_assert!(after.open_leads <= before.open_leads.max(before.cap));
        }
    }
}
