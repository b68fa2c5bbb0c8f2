//! The live group-buy under DynamoDB's real concurrency: 300 leads for one
//! dealer (plus redeliveries) through 16 concurrent router invocations whose
//! DynamoDB requests go through the local stack's contention proxy
//! (`LOCAL_DDB_CONTENTION_URL`: a transaction holds its items for
//! `LOCAL_DDB_CONFLICT_MS`, anyone touching a held item gets DynamoDB's
//! `TransactionConflict`). The SQS trigger is played in memory (batches of
//! 10, every `batchItemFailures` entry counted as a message given back).
//!
//! Expected from the set-up alone: 300 distinct customers, 10 consultants
//! with a cap of 25 (250 slots), so exactly 250 assigned and 50 pooled; the
//! dealer's natural-lead counter is 300; nothing given back to the queue.
//! `cargo test -p integration-tests --test router_contention -- --nocapture`
//! prints the figures.

use std::collections::HashMap;
use std::time::Instant;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use chrono::Utc;
use futures::StreamExt;
use integration_tests::world::{lead, phone, world};
use integration_tests::{contention_endpoint, contention_stats, drain, scratch_queue_like};
use lead_router::Router;
use leads_aws::AwsClients;
use leads_domain::audit::AuditAction;
use leads_domain::dedup;
use leads_domain::directory::{AssignmentStrategy, Platform};
use leads_domain::intake::IntakeMessage;
use leads_domain::lead::LeadStatus;

const LEADS: usize = 300;
const REDELIVERED: usize = 30;
const CONSULTANTS: usize = 10;
const CAP: u32 = 25;
const INVOCATIONS: usize = 16;
const BATCH: usize = 10;

/// The dealer's natural leads of `day`, as the nightly ranking reads them.
async fn natural_leads(
    w: &integration_tests::world::World,
    dealer: &str,
    day: chrono::NaiveDate,
) -> u64 {
    use aws_sdk_dynamodb::types::AttributeValue;
    // The day's item and its lead-counter shards, as the ranking queries them.
    let items = w
        .stack
        .clients
        .dynamodb
        .query()
        .table_name(&w.stack.settings.tables.stats)
        .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
        .expression_attribute_values(":pk", AttributeValue::S(format!("DEALER#{dealer}")))
        .expression_attribute_values(":from", AttributeValue::S(format!("DAY#{day}")))
        .expression_attribute_values(":to", AttributeValue::S(format!("DAY#{day}#~")))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    items
        .iter()
        .filter_map(|i| i.get("natural_leads")?.as_n().ok()?.parse::<u64>().ok())
        .sum()
}

/// The message bodies as SQS events of [`BATCH`] records (ids `{prefix}-{batch}-{i}`).
fn sqs_batches(bodies: &[String], prefix: &str) -> Vec<SqsEvent> {
    bodies
        .chunks(BATCH)
        .enumerate()
        .map(|(b, chunk)| {
            let mut event = SqsEvent::default();
            event.records = chunk
                .iter()
                .enumerate()
                .map(|(i, body)| {
                    let mut m = SqsMessage::default();
                    m.message_id = Some(format!("{prefix}-{b}-{i}"));
                    m.body = Some(body.clone());
                    m
                })
                .collect();
            event
        })
        .collect()
}

/// The SQS trigger in memory: each router takes the next batch until none is
/// left; the messages its invocations gave back (`batchItemFailures`).
async fn play(routers: &[Router], batches: Vec<SqsEvent>) -> usize {
    let next = std::sync::Mutex::new(batches.into_iter());
    let failures: Vec<usize> = futures::stream::iter(routers.iter())
        .map(|router| {
            let next = &next;
            async move {
                let mut failed = 0;
                loop {
                    let batch = next.lock().unwrap().next();
                    let Some(batch) = batch else { break };
                    failed += router.handle_batch(batch).await.batch_item_failures.len();
                }
                failed
            }
        })
        .buffer_unordered(routers.len())
        .collect()
        .await;
    failures.iter().sum()
}

#[tokio::test]
async fn a_live_group_buy_under_contention_loses_doubles_and_returns_nothing() {
    leads_aws::telemetry::init();
    let caps = [CAP; CONSULTANTS];
    let Some(w) = world(AssignmentStrategy::RoundRobin, &caps).await else {
        return;
    };
    let dealer = format!("{}-jn", w.brand);
    let now = Utc::now();
    let leads: Vec<_> = (0..LEADS)
        .map(|_| {
            let mut l = lead(&w, Platform::Douyin, "dy-jn", &phone(), None);
            l.received_at = now;
            l
        })
        .collect();
    let expected_ids: Vec<String> = leads
        .iter()
        .map(|l| dedup::lead_id(&w.brand, &l.source_event_id))
        .collect();
    // Every lead once, the first REDELIVERED twice more (spread over
    // other batches, so copies meet in concurrent invocations).
    let mut bodies: Vec<String> = leads
        .iter()
        .map(|l| serde_json::to_string(&IntakeMessage::Lead(Box::new(l.clone()))).unwrap())
        .collect();
    for i in 0..REDELIVERED {
        bodies.push(bodies[i].clone());
        bodies.insert((i * 7 + 3) % bodies.len(), bodies[i].clone());
    }
    let messages = bodies.len();
    let batches = sqs_batches(&bodies, "m");

    // 16 execution environments, each with its own router (and clients
    // that meet DynamoDB's transaction conflicts).
    let mut settings = w.stack.settings.clone();
    settings.queues.notification =
        scratch_queue_like(&w.stack.clients.sqs, &settings.queues.notification).await;
    let clients = AwsClients::with_dynamodb_endpoint(&contention_endpoint()).await;
    let routers: Vec<Router> = (0..INVOCATIONS)
        .map(|_| Router::new(&settings, &clients))
        .collect();
    let before = contention_stats().await;
    let started = Instant::now();
    let given_back = play(&routers, batches).await;
    let elapsed = started.elapsed();
    let retried: u64 = routers.iter().map(Router::conflicts_retried).sum();
    let after = contention_stats().await;
    let produced = |k: &str| after[k].as_u64().unwrap_or(0) - before[k].as_u64().unwrap_or(0);

    // From the tables: every lead once, assigned or pooled, nobody over cap.
    let mut assigned = 0;
    let mut pooled = 0;
    let mut lost = 0;
    let mut doubled = 0;
    let mut held: HashMap<String, u32> = HashMap::new();
    let mut assigned_audits_wrong = 0;
    for id in &expected_ids {
        let Some(l) = w.leads.get(id).await.unwrap() else {
            lost += 1;
            continue;
        };
        if l.touchpoints != 1 {
            doubled += 1;
        }
        match (l.status, &l.assignee) {
            (LeadStatus::Assigned, Some(a)) => {
                assigned += 1;
                *held.entry(a.clone()).or_default() += 1;
                let audits = w
                    .audit
                    .trail(id)
                    .await
                    .unwrap()
                    .iter()
                    .filter(|e| e.action == AuditAction::Assigned)
                    .count();
                if audits != 1 {
                    assigned_audits_wrong += 1;
                }
            }
            (LeadStatus::New, None) => {
                let due = w.leads.due_lead(id).await.unwrap().unwrap();
                assert!(due.due.is_some(), "pooled lead {id} is not retried");
                pooled += 1;
            }
            other => panic!("lead {id} neither assigned nor pooled: {other:?}"),
        }
    }
    let over_cap = held.values().filter(|n| **n > CAP).count();
    let directory = leads_aws::store::DynamoDirectory::new(
        w.stack.clients.dynamodb.clone(),
        &w.stack.settings.tables.directory,
    );
    let staff = leads_aws::store::DirectoryStore::staff_of(&directory, &dealer)
        .await
        .unwrap();
    let loads = w.leads.staff_loads(&dealer, &staff).await.unwrap();
    let counter_mismatches = loads
        .iter()
        .filter(|l| l.open_leads != held.get(&l.staff_id).copied().unwrap_or(0))
        .count();
    let natural = natural_leads(&w, &dealer, dedup::china_day(now)).await;
    drain(&w.stack.clients.sqs, &settings.queues.notification).await;

    println!(
        "== group-buy under contention ({LEADS} leads + {} redelivered copies = {messages} messages, \
         {INVOCATIONS} concurrent invocations, batches of {BATCH})\n  \
         time {:.1} s; conflicts produced by the proxy: {} in transactions, {} on plain writes; \
         conflicts retried by the routers: {retried}\n  \
         given back to the queue {given_back}; lost {lost}; doubled {doubled}; \
         assigned {assigned}; pooled {pooled}; over cap {over_cap}; counter mismatches {counter_mismatches}; \
         leads without exactly one Assigned audit entry {assigned_audits_wrong}; natural-lead counter {natural}",
        2 * REDELIVERED,
        elapsed.as_secs_f64(),
        produced("transaction_conflicts"),
        produced("write_conflicts"),
    );
    assert_eq!(given_back, 0, "messages given back to the queue");
    assert_eq!((lost, doubled, over_cap), (0, 0, 0));
    let slots = CONSULTANTS * CAP as usize;
    assert_eq!((assigned, pooled), (slots, LEADS - slots));
    assert_eq!(counter_mismatches, 0);
    assert_eq!(assigned_audits_wrong, 0);
    assert_eq!(
        natural, LEADS as u64,
        "the ranking's input counts each lead once"
    );
    assert!(
        retried > 0,
        "no conflict was retried: contention mode is off"
    );
}

/// Round-robin turns under contention: 300 new customers of one dealer with
/// 10 consultants whose caps never bind, through 16 concurrent routers. The
/// dealer's tickets are consecutive, so each consultant's turn comes 300 / 10
/// = 30 times, whatever conflicts the routers retried: a lead re-decided after
/// a conflict keeps the ticket it drew (a new one would skip a turn).
#[tokio::test]
async fn round_robin_turns_survive_write_conflicts() {
    const FAIR_LEADS: usize = 300;
    let caps = [100; CONSULTANTS];
    let Some(w) = world(AssignmentStrategy::RoundRobin, &caps).await else {
        return;
    };
    let now = Utc::now();
    let leads: Vec<_> = (0..FAIR_LEADS)
        .map(|_| {
            let mut l = lead(&w, Platform::Douyin, "dy-jn", &phone(), None);
            l.received_at = now;
            l
        })
        .collect();
    let bodies: Vec<String> = leads
        .iter()
        .map(|l| serde_json::to_string(&IntakeMessage::Lead(Box::new(l.clone()))).unwrap())
        .collect();
    let batches = sqs_batches(&bodies, "f");
    let mut settings = w.stack.settings.clone();
    settings.queues.notification =
        scratch_queue_like(&w.stack.clients.sqs, &settings.queues.notification).await;
    let clients = AwsClients::with_dynamodb_endpoint(&contention_endpoint()).await;
    let routers: Vec<Router> = (0..INVOCATIONS)
        .map(|_| Router::new(&settings, &clients))
        .collect();
    let given_back = play(&routers, batches).await;
    let retried: u64 = routers.iter().map(Router::conflicts_retried).sum();
    let mut turns: HashMap<String, usize> = HashMap::new();
    for l in &leads {
        let id = dedup::lead_id(&w.brand, &l.source_event_id);
        let lead = w.leads.get(&id).await.unwrap().expect("every lead written");
        *turns
            .entry(lead.assignee.expect("caps never bind"))
            .or_default() += 1;
    }
    drain(&w.stack.clients.sqs, &settings.queues.notification).await;
    println!("== round robin under contention: {retried} conflicts retried, turns {turns:?}");
    assert_eq!(given_back, 0);
    assert_eq!(turns.len(), CONSULTANTS, "{turns:?}");
    assert!(
        turns.values().all(|n| *n == FAIR_LEADS / CONSULTANTS),
        "turns {turns:?} after {retried} retried conflicts"
    );
}

/// Two consultants claim the same offered lead at the same moment through
/// the contention proxy: one wins, the other is told it is taken; a write
/// conflict is retried inside the API, never answered as a failure.
#[tokio::test]
async fn racing_claims_under_contention_answer_200_and_409_never_a_failure() {
    use lambda_http::{Body, Request};
    use leads_domain::auth::{self, Claims};
    use leads_domain::directory::StaffRole;
    let Some(w) = world(AssignmentStrategy::Claim, &[50, 50]).await else {
        return;
    };
    const SECRET: &[u8] = b"contention-claims";
    let mut settings = w.stack.settings.clone();
    settings.queues.notification =
        scratch_queue_like(&w.stack.clients.sqs, &settings.queues.notification).await;
    let clients = AwsClients::with_dynamodb_endpoint(&contention_endpoint()).await;
    let api = api::Api::new(&settings, &clients, SECRET.to_vec());
    let token = |short: &str| {
        auth::issue(
            SECRET,
            &Claims::staff(
                &format!("{}-jn-{short}", w.brand),
                &format!("{}-jn", w.brand),
                &w.brand.clone(),
                StaffRole::Sales,
                Utc::now(),
                600,
            ),
        )
    };
    let claim = |id: &str, who: &str| {
        let request: Request = lambda_http::http::Request::builder()
            .method("POST")
            .uri(format!("/leads/{id}/events"))
            .header("authorization", format!("Bearer {}", token(who)))
            .body(Body::from(r#"{"event":"claim"}"#))
            .unwrap();
        let api = &api;
        async move { api.handle(request).await.status().as_u16() }
    };
    for _ in 0..8 {
        let l = lead(&w, Platform::Douyin, "dy-jn", &phone(), None);
        let id = w
            .router
            .handle_lead(&l, Utc::now())
            .await
            .unwrap()
            .lead_id
            .unwrap();
        let (a, b) = tokio::join!(claim(&id, "s0"), claim(&id, "s1"));
        let mut statuses = [a, b];
        statuses.sort();
        assert_eq!(statuses, [200, 409], "lead {id}");
    }
    println!("API conflicts retried: {}", api.conflicts_retried());
    drain(&w.stack.clients.sqs, &settings.queues.notification).await;
}

/// A customer whose lead was lost writes on three platforms at once, under
/// contention: exactly one new lead continues the lost one, the other two
/// deliveries join it, and the lost lead stays lost with one touch.
#[tokio::test]
async fn a_returning_customer_racing_on_three_platforms_gets_one_new_lead() {
    use leads_aws::store::StatusResult;
    let Some(w) = world(AssignmentStrategy::RoundRobin, &[50, 50]).await else {
        return;
    };
    let mut settings = w.stack.settings.clone();
    settings.queues.notification = w.notifications.clone();
    settings.queues.crm = w.crm.clone();
    let clients = AwsClients::with_dynamodb_endpoint(&contention_endpoint()).await;
    let routers: Vec<Router> = (0..3).map(|_| Router::new(&settings, &clients)).collect();
    let brand = w.brand_settings().await;
    let lost = leads_domain::status::Change {
        next: LeadStatus::Lost,
        valid: None,
        reason: None,
        progress: false,
        closes: true,
    };
    let mut retried = 0;
    for _customer in 0..4 {
        let number = phone();
        let first = w
            .router
            .handle_lead(
                &lead(&w, Platform::Douyin, "dy-jn", &number, None),
                Utc::now(),
            )
            .await
            .unwrap();
        let old_id = first.lead_id.unwrap();
        let old = w.leads.get(&old_id).await.unwrap().unwrap();
        assert_eq!(
            w.leads
                .apply_status(&old, &lost, &brand, Utc::now())
                .await
                .unwrap(),
            StatusResult::Applied
        );
        let deliveries = [
            lead(&w, Platform::Douyin, "dy-jn", &number, None),
            lead(&w, Platform::Autohome, "ah-jn", &number, None),
            lead(&w, Platform::Douyin, "dy-brand", &number, Some("济南")),
        ];
        // Each delivery its own SQS batch, each batch its own invocation
        // (a conflict is retried inside it, as in production).
        let batches: Vec<SqsEvent> = deliveries
            .iter()
            .enumerate()
            .flat_map(|(i, l)| {
                let body =
                    serde_json::to_string(&IntakeMessage::Lead(Box::new(l.clone()))).unwrap();
                sqs_batches(&[body], &format!("back-{i}"))
            })
            .collect();
        let failed: Vec<usize> =
            futures::future::join_all(routers.iter().zip(batches).map(|(r, batch)| async move {
                r.handle_batch(batch).await.batch_item_failures.len()
            }))
            .await;
        assert_eq!(failed, [0, 0, 0]);
        retried += routers.iter().map(Router::conflicts_retried).sum::<u64>();
        // Exactly one delivery made a lead: the one the lost lead names.
        let mut made = Vec::new();
        for l in &deliveries {
            let id = dedup::lead_id(&w.brand, &l.source_event_id);
            if w.leads.get(&id).await.unwrap().is_some() {
                made.push(id);
            }
        }
        assert_eq!(made.len(), 1, "{made:?}");
        let new_id = made.remove(0);
        let old = w.leads.get(&old_id).await.unwrap().unwrap();
        assert_eq!(old.status, LeadStatus::Lost);
        assert_eq!(old.touchpoints, 1);
        assert_eq!(old.reopened_as.as_deref(), Some(new_id.as_str()));
        let new = w.leads.get(&new_id).await.unwrap().unwrap();
        assert_eq!(new.touchpoints, 3);
        assert_eq!(new.returned_from.as_deref(), Some(old_id.as_str()));
    }
    println!("write conflicts retried: {retried}");
    drain(&w.stack.clients.sqs, &w.notifications).await;
}
