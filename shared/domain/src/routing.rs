//! Routing: does a lead stay with the dealer whose account it arrived on
//! (local), go to another dealer of the brand serving the customer's city
//! (remote, 异地), or to the brand's CRM queue (unroutable)? See the README, "Dedup, routing and assignment".
//!
//! Remote leads are spread by weighted rendezvous hashing: each candidate's
//! chance is proportional to its weight, and the same lead key with the same
//! candidates always picks the same dealer, so a redelivered lead does not
//! land somewhere else.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::directory::Dealer;
use crate::CityCode;

/// A dealer's tier in last night's brand ranking (docs/ranking.md); S is best.
/// The derived order is best first (S < A < B < C).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Tier {
    S,
    A,
    B,
    C,
}

impl Tier {
    /// How strongly the tier pulls remote leads: S=4, A=3, B=2, C=1.
    pub fn weight(self) -> u32 {
        match self {
            Tier::S => 4,
            Tier::A => 3,
            Tier::B => 2,
            Tier::C => 1,
        }
    }
}

/// A dealer of the same brand that serves the customer's city, with today's
/// remote-lead figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteCandidate {
    pub dealer_id: String,
    /// `None`: not ranked yet (a new dealer), treated as B so it gets leads.
    pub tier: Option<Tier>,
    /// Remote leads it can still take today.
    pub remaining_capacity: u32,
    /// Remote leads it already got today.
    pub received_today: u32,
}

impl RemoteCandidate {
    /// tier weight × remaining capacity / (1 + received today): a better
    /// operating score, more room and fewer leads so far today each raise the
    /// dealer's chance. Zero when the dealer has no capacity left.
    pub fn weight(&self) -> f64 {
        let tier = self.tier.unwrap_or(Tier::B).weight();
        f64::from(tier) * f64::from(self.remaining_capacity)
            / (1.0 + f64::from(self.received_today))
    }
}

/// Why a lead could not be routed; stored with the lead in the brand's CRM queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnroutableReason {
    /// A brand-level account and no city for the customer: nowhere to send it.
    CityUnknown,
    /// No other dealer of the brand serves the customer's city.
    NoDealerServesCity,
    /// Dealers serve the city but all have used today's remote capacity.
    CapacityExhausted,
    /// A remote lead of a brand that reviews them (`RemoteMode::CrmReview`):
    /// the brand's CRM dispatches it, the dealer routing picked is proposed.
    CrmReview,
}

/// How a brand's remote (异地) leads reach a dealer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoteMode {
    /// The router sends them to the dealer it picks.
    #[default]
    Auto,
    /// The brand's CRM reviews each one first and dispatches it (the
    /// router's pick travels as the proposal).
    CrmReview,
}

/// The route a brand's remote mode makes of `route`, and the dealer
/// proposed to the CRM when it is held for review.
pub fn review(route: Route, mode: RemoteMode) -> (Route, Option<String>) {
    match (route, mode) {
        (Route::Remote { dealer_id, .. }, RemoteMode::CrmReview) => (
            Route::Unroutable {
                reason: UnroutableReason::CrmReview,
            },
            Some(dealer_id),
        ),
        (route, _) => (route, None),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "route", rename_all = "snake_case")]
pub enum Route {
    /// The account's own dealer keeps the lead.
    Local {
        dealer_id: String,
    },
    /// Another dealer takes it; `referrer` is the dealer whose account received
    /// it (`None` for brand-level accounts).
    Remote {
        dealer_id: String,
        referrer: Option<String>,
    },
    Unroutable {
        reason: UnroutableReason,
    },
}

/// Decides where a lead goes.
///
/// - `owner_dealer`: the dealer owning the platform account the lead came in
///   on; `None` for a brand-level account.
/// - `customer_city`: the customer's city, if known.
/// - `candidates`: the brand's dealers serving `customer_city`, as fetched by
///   the caller. The owner dealer is dropped from them: when we get that far it
///   does not serve the city, and a remote lead must go to someone else.
/// - `lead_key`: a stable id of the lead (same on redelivery) seeding the pick.
pub fn route(
    owner_dealer: Option<&Dealer>,
    customer_city: Option<CityCode>,
    candidates: &[RemoteCandidate],
    lead_key: &str,
) -> Route {
    // The test-only fault (feature `fault-ignore-city`): route as if no city were known.
    #[cfg(feature = "fault-ignore-city")]
    let customer_city: Option<CityCode> = {
        let _ = customer_city;
        None
    };
    // An unknown city gives a dealer account the benefit of the doubt.
    if let Some(dealer) = owner_dealer {
        if customer_city.is_none_or(|city| dealer.serves(city)) {
            return Route::Local {
                dealer_id: dealer.dealer_id.clone(),
            };
        }
    }
    if customer_city.is_none() {
        return Route::Unroutable {
            reason: UnroutableReason::CityUnknown,
        };
    }

    let owner_id = owner_dealer.map(|d| d.dealer_id.as_str());
    let others: Vec<RemoteCandidate> = candidates
        .iter()
        .filter(|c| Some(c.dealer_id.as_str()) != owner_id)
        .cloned()
        .collect();
    if others.is_empty() {
        return Route::Unroutable {
            reason: UnroutableReason::NoDealerServesCity,
        };
    }
    match pick_remote(&others, lead_key) {
        Some(picked) => Route::Remote {
            dealer_id: picked.dealer_id.clone(),
            referrer: owner_id.map(str::to_owned),
        },
        None => Route::Unroutable {
            reason: UnroutableReason::CapacityExhausted,
        },
    }
}

/// Picks the remote dealer for `lead_key`, or `None` when no candidate has a
/// positive weight (none, or all without capacity).
///
/// Weighted rendezvous hashing: each candidate draws u in (0,1) from
/// SHA-256(lead key, dealer id) and scores -ln(u)/weight; the lowest score
/// wins (ties: smallest dealer id). -ln(u) is exponentially distributed, and
/// the minimum of exponentials with rates w_i is i with probability
/// w_i / Σw, so over many leads each dealer's share follows its weight. A
/// dealer joining or leaving only moves the leads it wins or loses.
///
/// The same inputs always give the same pick; if the figures change between
/// deliveries (capacity, received today) the pick can change, so callers
/// should record the route decided the first time.
pub fn pick_remote<'a>(
    candidates: &'a [RemoteCandidate],
    lead_key: &str,
) -> Option<&'a RemoteCandidate> {
    candidates
        .iter()
        .filter_map(|c| {
            let weight = c.weight();
            // `> 0.0` also rejects NaN; weights are finite since inputs are u32.
            (weight > 0.0).then(|| (-unit_hash(lead_key, &c.dealer_id).ln() / weight, c))
        })
        .min_by(|(score_a, a), (score_b, b)| {
            score_a
                .total_cmp(score_b)
                .then_with(|| a.dealer_id.cmp(&b.dealer_id))
        })
        .map(|(_, c)| c)
}

/// A number strictly between 0 and 1, uniform over the hash, from the pair
/// (lead key, dealer id).
fn unit_hash(lead_key: &str, dealer_id: &str) -> f64 {
    let mut hasher = Sha256::new();
    // Length prefix: ("ab", "c") and ("a", "bc") must not hash alike.
    hasher.update((lead_key.len() as u64).to_be_bytes());
    hasher.update(lead_key.as_bytes());
    hasher.update(dealer_id.as_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    // 52 bits so that x + 0.5 is exact in an f64: u is never 0 (ln would be
    // -inf) nor 1 (score 0 for every weight).
    unit_from_bits(u64::from_be_bytes(first) >> 12)
}

/// The middle of the `x`-th of 2^52 equal slices of (0, 1).
fn unit_from_bits(x: u64) -> f64 {
    (x as f64 + 0.5) / (1u64 << 52) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::AssignmentStrategy;

    #[test]
    fn a_reviewing_brand_holds_remote_leads_only_and_proposes_the_pick() {
        let remote = Route::Remote {
            dealer_id: "qd".into(),
            referrer: Some("jn".into()),
        };
        let local = Route::Local {
            dealer_id: "jn".into(),
        };
        let held = Route::Unroutable {
            reason: UnroutableReason::CrmReview,
        };
        assert_eq!(
            review(remote.clone(), RemoteMode::CrmReview),
            (held, Some("qd".to_string()))
        );
        assert_eq!(review(remote.clone(), RemoteMode::Auto), (remote, None));
        assert_eq!(review(local.clone(), RemoteMode::CrmReview), (local, None));
        let none = Route::Unroutable {
            reason: UnroutableReason::NoDealerServesCity,
        };
        assert_eq!(review(none.clone(), RemoteMode::CrmReview), (none, None));
    }

    #[test]
    fn unit_stays_strictly_inside_zero_and_one_at_both_ends() {
        let lowest = unit_from_bits(0);
        let highest = unit_from_bits((1u64 << 52) - 1);
        assert!(lowest > 0.0 && lowest < 1e-15, "{lowest}");
        assert!(highest < 1.0 && highest > 1.0 - 1e-15, "{highest}");
        assert!(lowest.ln().is_finite());
    }

    const JINAN: CityCode = CityCode(370_100);
    const QINGDAO: CityCode = CityCode(370_200);
    const ZIBO: CityCode = CityCode(370_300);

    fn dealer(id: &str, city: CityCode, serves: &[CityCode]) -> Dealer {
        let mut served_cities = vec![city];
        served_cities.extend_from_slice(serves);
        Dealer {
            dealer_id: id.into(),
            brand_id: "brand-1".into(),
            name: id.into(),
            city,
            served_cities,
            strategy: AssignmentStrategy::RoundRobin,
            claim_fallback_minutes: 10,
            daily_remote_capacity: 50,
            dcc_screening: false,
        }
    }

    fn candidate(id: &str, tier: Option<Tier>, remaining: u32, received: u32) -> RemoteCandidate {
        RemoteCandidate {
            dealer_id: id.into(),
            tier,
            remaining_capacity: remaining,
            received_today: received,
        }
    }

    fn local(id: &str) -> Route {
        Route::Local {
            dealer_id: id.into(),
        }
    }

    fn unroutable(reason: UnroutableReason) -> Route {
        Route::Unroutable { reason }
    }

    #[test]
    fn tier_weights_and_serde() {
        let weights: Vec<u32> = [Tier::S, Tier::A, Tier::B, Tier::C]
            .map(Tier::weight)
            .to_vec();
        assert_eq!(weights, [4, 3, 2, 1]);
        assert_eq!(serde_json::to_string(&Tier::S).unwrap(), "\"S\"");
        assert_eq!(serde_json::from_str::<Tier>("\"C\"").unwrap(), Tier::C);
        assert!(Tier::S < Tier::C, "best first");
    }

    #[test]
    fn candidate_weight_formula() {
        assert_eq!(candidate("d", Some(Tier::S), 10, 0).weight(), 40.0);
        assert_eq!(candidate("d", Some(Tier::A), 10, 4).weight(), 6.0);
        assert_eq!(candidate("d", None, 3, 0).weight(), 6.0, "unranked = B");
        assert_eq!(candidate("d", Some(Tier::S), 0, 0).weight(), 0.0);
    }

    #[test]
    fn dealer_account_keeps_leads_from_cities_it_serves() {
        let owner = dealer("d-jinan", JINAN, &[ZIBO]);
        let others = [candidate("d-other", Some(Tier::S), 10, 0)];
        for city in [JINAN, ZIBO] {
            assert_eq!(
                route(Some(&owner), Some(city), &others, "k"),
                local("d-jinan")
            );
        }
    }

    #[test]
    fn dealer_account_keeps_leads_from_an_unknown_city() {
        let owner = dealer("d-jinan", JINAN, &[]);
        assert_eq!(route(Some(&owner), None, &[], "k"), local("d-jinan"));
    }

    #[test]
    fn brand_account_with_unknown_city_is_unroutable() {
        let others = [candidate("d-1", Some(Tier::S), 10, 0)];
        assert_eq!(
            route(None, None, &others, "k"),
            unroutable(UnroutableReason::CityUnknown)
        );
    }

    #[test]
    fn remote_lead_goes_to_a_candidate_with_the_owner_as_referrer() {
        let owner = dealer("d-jinan", JINAN, &[]);
        let others = [candidate("d-qingdao", Some(Tier::B), 5, 1)];
        assert_eq!(
            route(Some(&owner), Some(QINGDAO), &others, "k"),
            Route::Remote {
                dealer_id: "d-qingdao".into(),
                referrer: Some("d-jinan".into()),
            }
        );
    }

    #[test]
    fn brand_account_routes_by_city_without_referrer() {
        let others = [candidate("d-qingdao", None, 5, 0)];
        assert_eq!(
            route(None, Some(QINGDAO), &others, "k"),
            Route::Remote {
                dealer_id: "d-qingdao".into(),
                referrer: None,
            }
        );
    }

    #[test]
    fn no_candidates_means_no_dealer_serves_the_city() {
        let owner = dealer("d-jinan", JINAN, &[]);
        assert_eq!(
            route(Some(&owner), Some(QINGDAO), &[], "k"),
            unroutable(UnroutableReason::NoDealerServesCity)
        );
        assert_eq!(
            route(None, Some(QINGDAO), &[], "k"),
            unroutable(UnroutableReason::NoDealerServesCity)
        );
    }

    #[test]
    fn the_owner_is_never_its_own_remote_dealer() {
        // A stale candidate list naming the owner counts as no candidate.
        let owner = dealer("d-jinan", JINAN, &[]);
        let only_owner = [candidate("d-jinan", Some(Tier::S), 10, 0)];
        assert_eq!(
            route(Some(&owner), Some(QINGDAO), &only_owner, "k"),
            unroutable(UnroutableReason::NoDealerServesCity)
        );
    }

    #[test]
    fn all_candidates_full_means_capacity_exhausted() {
        let owner = dealer("d-jinan", JINAN, &[]);
        let full = [
            candidate("d-1", Some(Tier::S), 0, 50),
            candidate("d-2", None, 0, 0),
        ];
        assert_eq!(
            route(Some(&owner), Some(QINGDAO), &full, "k"),
            unroutable(UnroutableReason::CapacityExhausted)
        );
    }

    #[test]
    fn a_full_candidate_is_skipped() {
        let cands = [
            candidate("d-full", Some(Tier::S), 0, 0),
            candidate("d-room", Some(Tier::C), 1, 100),
        ];
        for i in 0..200 {
            let picked = pick_remote(&cands, &format!("lead-{i}")).unwrap();
            assert_eq!(picked.dealer_id, "d-room");
        }
    }

    #[test]
    fn pick_is_deterministic_and_independent_of_candidate_order() {
        let cands = [
            candidate("d-1", Some(Tier::S), 10, 3),
            candidate("d-2", Some(Tier::A), 20, 0),
            candidate("d-3", None, 5, 1),
        ];
        let mut reversed = cands.clone();
        reversed.reverse();
        for i in 0..200 {
            let key = format!("lead-{i}");
            let first = pick_remote(&cands, &key).map(|c| &c.dealer_id);
            assert_eq!(first, pick_remote(&cands, &key).map(|c| &c.dealer_id));
            assert_eq!(first, pick_remote(&reversed, &key).map(|c| &c.dealer_id));
        }
    }

    #[test]
    fn unit_hash_is_inside_the_open_interval_and_length_prefixed() {
        for i in 0..1000 {
            let u = unit_hash(&format!("lead-{i}"), "d");
            assert!(u > 0.0 && u < 1.0, "{u}");
        }
        assert_ne!(unit_hash("ab", "c"), unit_hash("a", "bc"));
    }

    #[test]
    fn route_serialises_with_a_tag() {
        let json = serde_json::to_value(Route::Remote {
            dealer_id: "d-2".into(),
            referrer: Some("d-1".into()),
        })
        .unwrap();
        assert_eq!(
            json,
            serde_json::json!({"route": "remote", "dealer_id": "d-2", "referrer": "d-1"})
        );
        let json = serde_json::to_value(unroutable(UnroutableReason::CapacityExhausted)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"route": "unroutable", "reason": "capacity_exhausted"})
        );
    }
}
