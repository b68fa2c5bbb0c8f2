//! The router against the emulator: dedup outcomes, concurrency, routing,
//! assignment caps, partial batch failures and redelivery.

use std::collections::HashMap;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use chrono::{Duration, Utc};
use integration_tests::drain;
use integration_tests::world::{lead, phone, world, World};
use leads_domain::audit::AuditAction;
use leads_domain::dedup::DedupOutcome;
use leads_domain::directory::{AssignmentStrategy, Platform};
use leads_domain::intake::IntakeMessage;
use leads_domain::lead::{CanonicalLead, LeadStatus};
use leads_domain::notification::{NotificationJob, NotificationKind};
use leads_domain::routing::{Route, UnroutableReason};

async fn jobs(w: &World) -> Vec<NotificationJob> {
    drain(&w.stack.clients.sqs, &w.notifications)
        .await
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect()
}

#[tokio::test]
async fn new_local_lead_is_routed_assigned_notified_and_audited() {
    let Some(w) = world(AssignmentStrategy::RoundRobin, &[5, 5]).await else {
        return;
    };
    let l = lead(&w, Platform::Douyin, "dy-jn", &phone(), Some("济南"));
    let p = w.router.handle_lead(&l, Utc::now()).await.unwrap();
    assert_eq!(p.outcome, Some(DedupOutcome::Created));
    assert_eq!(
        p.route,
        Some(Route::Local {
            dealer_id: format!("{}-jn", w.brand)
        })
    );
    let lead_id = p.lead_id.unwrap();
    let stored = w.leads.get(&lead_id).await.unwrap().unwrap();
    assert_eq!(stored.status, LeadStatus::Assigned);
    assert!(stored.first_contact_due.unwrap() > Utc::now());
    assert!(stored.exclusive_until.unwrap() > Utc::now() + Duration::days(14));

    let jobs = jobs(&w).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].kind, NotificationKind::NewAssignment);
    assert_eq!(jobs[0].recipients, vec![stored.assignee.clone().unwrap()]);
    assert_eq!(
        jobs[0].phone_masked.as_deref(),
        Some(stored.phone.as_ref().unwrap().masked().as_str())
    );

    let actions: Vec<AuditAction> = w
        .audit
        .trail(&lead_id)
        .await
        .unwrap()
        .iter()
        .map(|e| e.action)
        .collect();
    for a in [
        AuditAction::Received,
        AuditAction::Deduped,
        AuditAction::Routed,
        AuditAction::Assigned,
    ] {
        assert!(actions.contains(&a), "{a:?} missing from {actions:?}");
    }
}

#[tokio::test]
async fn second_channel_merges_and_redelivery_is_a_duplicate() {
    let Some(w) = world(AssignmentStrategy::Saturation, &[5]).await else {
        return;
    };
    let number = phone();
    let first = lead(&w, Platform::Douyin, "dy-jn", &number, None);
    let created = w.router.handle_lead(&first, Utc::now()).await.unwrap();
    let again = w.router.handle_lead(&first, Utc::now()).await.unwrap();
    assert_eq!(again.outcome, Some(DedupOutcome::Duplicate));
    assert_eq!(again.lead_id, created.lead_id);

    let second = lead(&w, Platform::Autohome, "ah-jn", &number, None);
    let merged = w.router.handle_lead(&second, Utc::now()).await.unwrap();
    assert_eq!(merged.outcome, Some(DedupOutcome::Merged));
    assert_eq!(merged.lead_id, created.lead_id);
    let stored = w
        .leads
        .get(created.lead_id.as_ref().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.touchpoints, 2);
    assert_eq!(w.leads.touchpoints(&stored.lead_id).await.unwrap().len(), 2);

    let kinds: Vec<NotificationKind> = jobs(&w).await.iter().map(|j| j.kind).collect();
    assert!(
        kinds.contains(&NotificationKind::CustomerReturned),
        "{kinds:?}"
    );
    // The overlap counter knows Autohome brought back a Douyin customer.
    let day = leads_domain::dedup::china_day(Utc::now());
    let overlap = w
        .stack
        .clients
        .dynamodb
        .get_item()
        .table_name(&w.stack.settings.tables.stats)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("OVERLAP#{}#{day}", w.brand)),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("douyin#autohome".into()),
        )
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(
        overlap["leads"],
        aws_sdk_dynamodb::types::AttributeValue::N("1".into())
    );
}

#[tokio::test]
async fn concurrent_deliveries_of_one_customer_create_exactly_one_lead() {
    let Some(w) = world(AssignmentStrategy::RoundRobin, &[50, 50]).await else {
        return;
    };
    for _customer in 0..6 {
        let number = phone();
        let a = lead(&w, Platform::Douyin, "dy-jn", &number, None);
        let b = lead(&w, Platform::Autohome, "ah-jn", &number, None);
        let c = lead(&w, Platform::Douyin, "dy-brand", &number, Some("济南"));
        let now = Utc::now();
        let (ra, rb, rc) = tokio::join!(
            w.router.handle_lead(&a, now),
            w.router.handle_lead(&b, now),
            w.router.handle_lead(&c, now)
        );
        let results = [ra.unwrap(), rb.unwrap(), rc.unwrap()];
        let created = results
            .iter()
            .filter(|p| p.outcome == Some(DedupOutcome::Created))
            .count();
        let merged = results
            .iter()
            .filter(|p| p.outcome == Some(DedupOutcome::Merged))
            .count();
        assert_eq!((created, merged), (1, 2), "{results:?}");
        let ids: std::collections::HashSet<_> = results.iter().map(|p| p.lead_id.clone()).collect();
        assert_eq!(ids.len(), 1);
    }
}

#[tokio::test]
async fn remote_customer_goes_to_the_dealer_serving_their_city_and_unserved_to_crm() {
    let Some(w) = world(AssignmentStrategy::RoundRobin, &[5]).await else {
        return;
    };
    // A Jinan account, a customer in Yantai (served by the Qingdao dealer).
    let remote = w
        .router
        .handle_lead(
            &lead(&w, Platform::Douyin, "dy-jn", &phone(), Some("烟台")),
            Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(
        remote.route,
        Some(Route::Remote {
            dealer_id: format!("{}-qd", w.brand),
            referrer: Some(format!("{}-jn", w.brand))
        })
    );
    assert_eq!(remote.assignee, Some(format!("{}-qd-s0", w.brand)));

    // Tai'an is served by the Jinan dealer itself: local.
    let local = w
        .router
        .handle_lead(
            &lead(&w, Platform::Douyin, "dy-jn", &phone(), Some("泰安")),
            Utc::now(),
        )
        .await
        .unwrap();
    assert!(matches!(local.route, Some(Route::Local { .. })));

    // Nobody of this brand serves Lhasa: the brand's CRM queue, with the reason.
    let none = w
        .router
        .handle_lead(
            &lead(&w, Platform::Douyin, "dy-jn", &phone(), Some("拉萨")),
            Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(
        none.route,
        Some(Route::Unroutable {
            reason: UnroutableReason::NoDealerServesCity
        })
    );
    let crm = drain(&w.stack.clients.sqs, &w.crm).await;
    assert_eq!(crm.len(), 1);
    assert!(crm[0].contains("no_dealer_serves_city"));
    assert!(!crm[0].contains("+86"), "no phone in the CRM hand-off");
}

#[tokio::test]
async fn concurrent_batches_never_push_a_consultant_over_cap() {
    let Some(w) = world(AssignmentStrategy::Saturation, &[2, 1]).await else {
        return;
    };
    let leads: Vec<CanonicalLead> = (0..6)
        .map(|_| lead(&w, Platform::Douyin, "dy-jn", &phone(), None))
        .collect();
    let now = Utc::now();
    let results =
        futures::future::join_all(leads.iter().map(|l| w.router.handle_lead(l, now))).await;
    let mut per_staff: HashMap<String, u32> = HashMap::new();
    for r in results {
        if let Some(s) = r.unwrap().assignee {
            *per_staff.entry(s).or_default() += 1;
        }
    }
    assert_eq!(per_staff.get(&format!("{}-jn-s0", w.brand)), Some(&2));
    assert_eq!(per_staff.get(&format!("{}-jn-s1", w.brand)), Some(&1));
    let kinds: Vec<NotificationKind> = jobs(&w).await.iter().map(|j| j.kind).collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == NotificationKind::NewAssignment)
            .count(),
        3
    );
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == NotificationKind::NoOneAvailable)
            .count(),
        3
    );
}

#[tokio::test]
async fn a_bad_message_fails_alone_in_its_batch() {
    let Some(w) = world(AssignmentStrategy::RoundRobin, &[5]).await else {
        return;
    };
    let good = IntakeMessage::Lead(Box::new(lead(
        &w,
        Platform::Douyin,
        "dy-jn",
        &phone(),
        None,
    )));
    let message = |id: &str, body: String| {
        let mut m = SqsMessage::default();
        m.message_id = Some(id.into());
        m.body = Some(body);
        m
    };
    let mut event = SqsEvent::default();
    event.records = vec![
        message("ok-1", serde_json::to_string(&good).unwrap()),
        message("bad-1", "{\"type\":\"lead\",\"oops\":1}".into()),
        message("ok-2", serde_json::to_string(&good).unwrap()),
    ];
    let response = w.router.handle_batch(event).await;
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, vec!["bad-1"]);
    // The second copy of the good message was a duplicate: one assignment, one job.
    let kinds: Vec<NotificationKind> = jobs(&w).await.iter().map(|j| j.kind).collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == NotificationKind::NewAssignment)
            .count(),
        2,
        "re-sent for the redelivery; the notifier dedups by job id"
    );
}

#[tokio::test]
async fn a_customer_returning_after_the_window_goes_back_to_their_consultant() {
    let Some(w) = world(AssignmentStrategy::RoundRobin, &[50, 50]).await else {
        return;
    };
    let number = phone();
    let first = w
        .router
        .handle_lead(
            &lead(&w, Platform::Douyin, "dy-jn", &number, None),
            Utc::now(),
        )
        .await
        .unwrap();
    let consultant = first.assignee.clone().unwrap();
    // Round-robin would hand the next two leads to both consultants in turn;
    // the returning customer still gets the same one, twice.
    for months in [2, 4] {
        let later = Utc::now() + Duration::days(31 * months);
        let mut again = lead(&w, Platform::Autohome, "ah-jn", &number, None);
        again.received_at = later;
        let p = w.router.handle_lead(&again, later).await.unwrap();
        assert_eq!(
            p.outcome,
            Some(DedupOutcome::Created),
            "window ended: a new lead"
        );
        assert_ne!(p.lead_id, first.lead_id);
        assert_eq!(p.assignee.as_deref(), Some(consultant.as_str()));
        let other = w
            .router
            .handle_lead(&lead(&w, Platform::Douyin, "dy-jn", &phone(), None), later)
            .await
            .unwrap();
        assert!(other.assignee.is_some());
    }
}
