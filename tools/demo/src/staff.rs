//! The consultants' side of the day, through the real staff API: most call
//! their new leads back in time (`contacted`), the rest let the first-contact
//! deadline pass, which the SLA sweep then catches; leads on offer to a
//! claim group are raced for by two consultants at once, and exactly one may
//! win. A consultant whose WeCom contact gave a phone in the chat records it,
//! which links the contact to the customer's phone. Who races is decided by
//! the seed; who calls back is the generator's schedule (each customer's
//! `call_back_draw` below the contact rate), so the SLA breaches it expects
//! come from the generator, not from what the API answered.

use std::collections::HashMap;

use chrono::Utc;
use futures::stream::{self, StreamExt};
use leads_domain::auth::{self, Claims, Keyring};
use leads_domain::directory_file::Directory;
use leads_domain::lead::{CustomerKey, LeadRecord, LeadStatus};
use reqwest::Method;
use serde_json::json;

use crate::dataset::Rng;
use crate::functions::{DemoResult, Functions};

/// What the consultants did, as the API answered it.
#[derive(Debug, Default, Clone)]
pub struct FollowUp {
    /// Leads with a consultant once the claims were settled.
    pub assigned: usize,
    /// Of those, called back before the deadline.
    pub contacted: usize,
    /// Of those, the ones the generator's schedule leaves uncalled.
    pub scheduled_uncalled: usize,
    /// Claim races run (two consultants at once) and races won.
    pub claim_races: usize,
    pub claims_won: usize,
    /// Phones recorded for WeCom contacts, and how many the API linked.
    pub phones_recorded: usize,
    pub phones_linked: usize,
    /// Answers other than the expected ones.
    pub surprises: Vec<String>,
}

impl FollowUp {
    /// Leads whose first contact will be overdue at the sweep: assigned, and
    /// not called back by the generator's schedule.
    pub fn expected_breaches(&self) -> usize {
        self.scheduled_uncalled
    }
}

/// The generator's call-back schedule: a customer (by key) is called back in
/// time iff their draw is below `rate`.
#[derive(Clone, Copy)]
pub struct CallBacks<'a> {
    pub draws: &'a HashMap<String, f64>,
    pub rate: f64,
}

/// What one lead's consultants did.
#[derive(Default)]
struct Outcome {
    assigned: bool,
    contacted: bool,
    uncalled: bool,
    raced: bool,
    won: bool,
    surprises: Vec<String>,
}

pub async fn follow_up(
    functions: &Functions,
    directory: &Directory,
    leads: &[LeadRecord],
    keyring: &Keyring,
    wecom_phones: &HashMap<String, String>,
    call_backs: CallBacks<'_>,
    seed: u64,
) -> DemoResult<FollowUp> {
    let token = |staff_id: &str| token(directory, keyring, staff_id);
    let outcomes: Vec<DemoResult<Outcome>> = stream::iter(leads)
        .map(|lead| {
            let mut rng = Rng::new(seed ^ fnv1a(&lead.lead_id));
            let token = &token;
            async move {
                let mut out = Outcome::default();
                let mut assignee = lead.assignee.clone();
                if lead.status == LeadStatus::Offered && rng.chance(0.6) {
                    out.raced = true;
                    let racers: Vec<&String> = lead.offered_to.iter().take(2).collect();
                    let answers = futures::future::join_all(racers.iter().map(|s| {
                        let path = format!("/leads/{}/events", lead.lead_id);
                        let t = token(s).unwrap_or_default();
                        async move {
                            functions
                                .api(Method::POST, &path, &t, Some(json!({"event": "claim"})))
                                .await
                        }
                    }))
                    .await;
                    let mut winners = 0;
                    for (racer, answer) in racers.iter().zip(answers) {
                        match answer?.0 {
                            200 => {
                                winners += 1;
                                assignee = Some((*racer).clone());
                            }
                            409 => {}
                            s => out.surprises.push(format!("claim answered {s}")),
                        }
                    }
                    out.won = winners == 1;
                    if winners != 1 {
                        out.surprises
                            .push(format!("a claim race had {winners} winners, expected 1"));
                    }
                }
                let open = matches!(lead.status, LeadStatus::Assigned | LeadStatus::Offered);
                let customer = serde_json::to_string(&lead.customer).unwrap_or_default();
                // A customer the generator did not send is never called (the report flags it).
                let calls_back = call_backs
                    .draws
                    .get(&customer)
                    .is_some_and(|draw| *draw < call_backs.rate);
                if let (Some(staff), true) = (&assignee, open) {
                    out.assigned = true;
                    out.uncalled = !calls_back;
                    if calls_back {
                        let path = format!("/leads/{}/events", lead.lead_id);
                        let t = token(staff).unwrap_or_default();
                        let (status, body) = functions
                            .api(Method::POST, &path, &t, Some(json!({"event": "contacted"})))
                            .await?;
                        if status == 200 {
                            out.contacted = true;
                        } else {
                            out.surprises
                                .push(format!("contacted answered {status}: {body}"));
                        }
                    }
                }
                Ok(out)
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let mut follow_up = FollowUp::default();
    // WeCom contacts whose consultant got the phone in the chat.
    for lead in leads {
        let (
            CustomerKey::Wecom {
                external_userid, ..
            },
            Some(staff),
        ) = (&lead.customer, &lead.assignee)
        else {
            continue;
        };
        let Some(phone) = wecom_phones.get(external_userid) else {
            continue;
        };
        let path = format!("/leads/{}/events", lead.lead_id);
        let body = json!({"event": "phone", "phone": phone});
        let t = token(staff).unwrap_or_default();
        let (status, answer) = functions.api(Method::POST, &path, &t, Some(body)).await?;
        follow_up.phones_recorded += 1;
        match (status, answer["outcome"].as_str()) {
            (200, Some("linked")) => follow_up.phones_linked += 1,
            (s, o) => follow_up
                .surprises
                .push(format!("recording a phone answered {s} {o:?}")),
        }
    }
    for outcome in outcomes {
        let o = outcome?;
        follow_up.assigned += usize::from(o.assigned);
        follow_up.contacted += usize::from(o.contacted);
        follow_up.scheduled_uncalled += usize::from(o.uncalled);
        follow_up.claim_races += usize::from(o.raced);
        follow_up.claims_won += usize::from(o.won);
        follow_up.surprises.extend(o.surprises);
    }
    Ok(follow_up)
}

/// A staff API token for a member of the directory, with their own role.
pub fn token(directory: &Directory, keyring: &Keyring, staff_id: &str) -> Option<String> {
    let staff = directory.staff.iter().find(|s| s.staff_id == staff_id)?;
    let dealer = directory
        .dealers
        .iter()
        .find(|d| d.dealer_id == staff.dealer_id)?;
    Some(keyring.issue(&Claims::staff(
        &staff.staff_id,
        &dealer.dealer_id,
        &dealer.brand_id,
        staff.role,
        Utc::now(),
        auth::MAX_LIFETIME_S,
    )))
}

/// FNV-1a, to give every lead its own stream of the seeded generator.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
