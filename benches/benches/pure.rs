//! Pure compute, no I/O (`cargo bench -p leads-benches --bench pure`):
//!
//! - `intake/<source>`: authenticate + parse + normalise one webhook (the
//!   domain's `intake::handle`), over the accepted webhooks of a generated day
//!   of each source; throughput is events/s on one core;
//! - `decision/per_lead`: the router's pure decisions for one lead: dedup keys
//!   (customer key, lead id, window check), routing (local / weighted
//!   rendezvous over the serving dealers / unroutable) and assignment by the
//!   dealer's strategy, with the directory lookups done beforehand (in the
//!   function they are DynamoDB reads, counted by `bench-emulator`);
//! - `ranking/34000_dealers_x_30_days`: aggregate 30 daily stats per dealer,
//!   score and rank 34,000 dealers in one brand (every Douyin car dealer).

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use chrono::Utc;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use leads_benches::{accepted_webhooks, bench_secrets, generated_directory};
use leads_domain::assignment::{self, Preferred, StaffLoad};
use leads_domain::dedup;
use leads_domain::directory::{AccountOwner, Brand, Dealer};
use leads_domain::identity::PhoneHasher;
use leads_domain::intake::{self, IntakeMessage, IntakeRequest, Method, Normaliser, Outcome};
use leads_domain::lead::CanonicalLead;
use leads_domain::ranking::{
    self, AccountDay, DealerInput, LeadCounts, StatsItem, TierCutoffs, WindowTotals,
};
use leads_domain::routing::{self, RemoteCandidate, Tier};
use leads_domain::CityCode;

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
}

fn intake_per_source(c: &mut Criterion) {
    let secrets = bench_secrets();
    let directory = generated_directory(300, 7);
    let now = Utc::now();
    let hooks = accepted_webhooks(&directory, &secrets, 1_500, 7, now);
    let normaliser = Normaliser::new(PhoneHasher::new(secrets.phone_hash_key.as_bytes().to_vec()));
    let mut group = c.benchmark_group("intake");
    let mut sources: Vec<_> = hooks.keys().copied().collect();
    sources.sort_by_key(|s| s.as_str());
    for source in sources {
        let batch = &hooks[&source];
        // Every one must be accepted, or the bench would time the error path.
        for hook in batch {
            let req = request(hook, now);
            assert!(
                matches!(
                    intake::handle(&req, &secrets, &normaliser),
                    Ok(Outcome::Accepted { .. } | Outcome::Ignored { .. })
                ),
                "{source} webhook not accepted"
            );
        }
        group.throughput(Throughput::Elements(batch.len() as u64));
        group.bench_function(source.as_str(), |b| {
            b.iter(|| {
                for hook in batch {
                    let req = request(hook, now);
                    black_box(intake::handle(black_box(&req), &secrets, &normaliser).ok());
                }
            })
        });
    }
    group.finish();
}

fn request(hook: &leads_benches::RawWebhook, now: chrono::DateTime<Utc>) -> IntakeRequest<'_> {
    IntakeRequest {
        source: hook.source,
        method: Method::Post,
        headers: &hook.headers,
        query: &hook.query,
        body: &hook.body,
        now,
    }
}

/// What the router has fetched for one lead before deciding.
struct Fetched {
    lead: CanonicalLead,
    brand: Brand,
    owner: Option<Dealer>,
    candidates: Vec<RemoteCandidate>,
    /// Staff of every dealer the lead may end at.
    staff: HashMap<String, (Dealer, Vec<StaffLoad>)>,
}

fn decision_per_lead(c: &mut Criterion) {
    let secrets = bench_secrets();
    let directory = generated_directory(300, 11);
    let now = Utc::now();
    let hooks = accepted_webhooks(&directory, &secrets, 1_000, 11, now);
    let normaliser = Normaliser::new(PhoneHasher::new(secrets.phone_hash_key.as_bytes().to_vec()));
    let dealers: HashMap<&str, &Dealer> = directory
        .dealers
        .iter()
        .map(|d| (d.dealer_id.as_str(), d))
        .collect();
    let tiers = [Tier::S, Tier::A, Tier::B, Tier::C];
    let staff_of = |d: &Dealer| -> Vec<StaffLoad> {
        directory
            .staff
            .iter()
            .filter(|s| s.dealer_id == d.dealer_id)
            .enumerate()
            .map(|(i, s)| StaffLoad::new(s, (i as u32 * 3) % s.cap.max(1)))
            .collect()
    };
    let mut inputs: Vec<Fetched> = Vec::new();
    for hook in hooks.values().flatten() {
        let req = request(hook, now);
        let Ok(Outcome::Accepted { messages, .. }) = intake::handle(&req, &secrets, &normaliser)
        else {
            continue;
        };
        for message in messages {
            let IntakeMessage::Lead(lead) = message else {
                continue;
            };
            let Some(account) = directory
                .accounts
                .iter()
                .find(|a| a.platform == lead.platform && a.account_id == lead.account_id)
            else {
                continue;
            };
            let brand = directory
                .brands
                .iter()
                .find(|b| b.brand_id == account.brand_id)
                .expect("brand of the account")
                .clone();
            let owner = match &account.owner {
                AccountOwner::Dealer { dealer_id } => dealers.get(dealer_id.as_str()).copied(),
                AccountOwner::Brand => None,
            };
            let city: Option<CityCode> = lead.customer_city();
            let serving: Vec<&Dealer> = city
                .map(|c| {
                    directory
                        .dealers
                        .iter()
                        .filter(|d| d.brand_id == brand.brand_id && d.serves(c))
                        .collect()
                })
                .unwrap_or_default();
            let candidates = serving
                .iter()
                .enumerate()
                .map(|(i, d)| RemoteCandidate {
                    dealer_id: d.dealer_id.clone(),
                    tier: Some(tiers[i % 4]),
                    remaining_capacity: d.daily_remote_capacity.saturating_sub(i as u32),
                    received_today: i as u32,
                })
                .collect();
            let staff = owner
                .into_iter()
                .chain(serving.iter().copied())
                .map(|d| (d.dealer_id.clone(), (d.clone(), staff_of(d))))
                .collect();
            inputs.push(Fetched {
                lead: *lead,
                brand,
                owner: owner.cloned(),
                candidates,
                staff,
            });
        }
    }
    let mut group = c.benchmark_group("decision");
    group.throughput(Throughput::Elements(inputs.len() as u64));
    group.bench_function("per_lead", |b| {
        b.iter(|| {
            for (ticket, f) in inputs.iter().enumerate() {
                black_box(decide(f, ticket as u64, now));
            }
        })
    });
    group.finish();
}

/// The router's pure steps for one lead, in order.
fn decide(f: &Fetched, ticket: u64, now: chrono::DateTime<Utc>) -> Option<assignment::Assignment> {
    let customer = dedup::customer_key(&f.brand.brand_id, &f.lead.customer);
    let lead_id = dedup::lead_id(&f.brand.brand_id, &f.lead.source_event_id);
    let until = dedup::window_until(&f.brand, f.lead.received_at);
    black_box((&customer, dedup::within_window(until, now)));
    let route = routing::route(
        f.owner.as_ref(),
        f.lead.customer_city(),
        &f.candidates,
        &lead_id,
    );
    let dealer_id = match &route {
        routing::Route::Local { dealer_id } | routing::Route::Remote { dealer_id, .. } => dealer_id,
        routing::Route::Unroutable { .. } => return None,
    };
    let (dealer, staff) = f.staff.get(dealer_id)?;
    let hint: Vec<Preferred<'_>> = f
        .lead
        .staff_hint
        .as_deref()
        .map(Preferred::StaffHint)
        .into_iter()
        .collect();
    Some(assignment::assign_preferring(
        dealer.strategy,
        staff,
        ticket,
        &hint,
    ))
}

fn ranking_34000_dealers(c: &mut Criterion) {
    const DEALERS: usize = 34_000;
    const DAYS: usize = 30;
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |m: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % m
    };
    // Per dealer-day: one account's stats, a counter shard, 0-1 natural markers.
    let first = chrono::NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
    let raw: Vec<Vec<StatsItem>> = (0..DEALERS)
        .map(|_| {
            (0..DAYS)
                .flat_map(|i| {
                    let day = first + chrono::Days::new(i as u64);
                    let plays = next(20_000);
                    let mut items = vec![
                        StatsItem::Account {
                            day,
                            account: String::new(),
                            stats: AccountDay {
                                videos: next(3),
                                live_sessions: next(3),
                                live_minutes: next(300),
                                plays,
                                likes: plays * next(40) / 1_000,
                                comments: plays * next(6) / 1_000,
                                shares: plays * next(6) / 1_000,
                                completed_plays: plays * next(40) / 100,
                                ..AccountDay::default()
                            },
                        },
                        StatsItem::Counter {
                            day,
                            counts: LeadCounts {
                                paid_leads: next(3),
                                ..LeadCounts::default()
                            },
                        },
                    ];
                    if next(2) == 1 {
                        items.push(StatsItem::Natural {
                            day,
                            lead_id: format!("L{i}"),
                        });
                    }
                    items
                })
                .collect()
        })
        .collect();
    let invalid = std::collections::HashSet::new();
    let settings = ranking::RankingSettings::default();
    let ids: Vec<String> = (0..DEALERS).map(|i| format!("dealer-{i:05}")).collect();
    let previous: HashMap<String, u32> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.clone(), (DEALERS - i) as u32))
        .collect();
    let mut group = c.benchmark_group("ranking");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(DEALERS as u64));
    group.bench_function("34000_dealers_x_30_days", |b| {
        b.iter_batched(
            || ids.clone(),
            |ids| {
                let inputs: Vec<DealerInput> = ids
                    .into_iter()
                    .zip(&raw)
                    .map(|(dealer_id, days)| DealerInput {
                        dealer_id,
                        name: String::new(),
                        totals: WindowTotals::of_items(days, &invalid, &settings),
                    })
                    .collect();
                let basis =
                    ranking::basis_for(&inputs, None, None, TierCutoffs::default(), DAYS as u32);
                black_box(ranking::rank_brand(&inputs, &basis, &previous))
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = intake_per_source, decision_per_lead, ranking_34000_dealers
}
criterion_main!(benches);
