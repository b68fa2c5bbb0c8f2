//! Edges of the router and the lead store the other suites do not pin
//! (against the emulator): the dedup window to the second, the round-robin
//! order through the real router, the cap on every path that gives a lead to
//! a consultant, and the audit entries the README promises. Expected values
//! come from each test's own set-up (the brand's 30-day window, the staff
//! list and caps it seeds), never from what the system reports.

use std::collections::HashMap;

use api::Api;
use chrono::{DateTime, Duration, Utc};
use integration_tests::drain;
use integration_tests::world::{lead, phone, world, World};
use lambda_http::{Body, Request};
use leads_aws::store::{
    AssignResult, DirectoryStore, DynamoDirectory, ReassignResult, StatusResult,
};
use leads_domain::assignment::StaffLoad;
use leads_domain::audit::{Actor, AuditAction};
use leads_domain::auth::{self, Claims};
use leads_domain::dedup::DedupOutcome;
use leads_domain::directory::{AssignmentStrategy, Brand, Platform, StaffRole};
use leads_domain::lead::LeadStatus;
use leads_domain::status;
use sla_sweeper::Sweeper;

/// The world's brand has `protection_days: 30` (tests/src/world.rs).
const WINDOW: i64 = 30 * 86_400;

fn directory(w: &World) -> DynamoDirectory {
    DynamoDirectory::new(
        w.stack.clients.dynamodb.clone(),
        &w.stack.settings.tables.directory,
    )
}

async fn brand(w: &World) -> Brand {
    directory(w).brand(&w.brand).await.unwrap().unwrap()
}

fn staff_id(w: &World, short: &str) -> String {
    format!("{}-jn-{short}", w.brand)
}

/// Open leads each consultant holds, counted from the leads themselves.
async fn held(w: &World, lead_ids: &[String]) -> HashMap<String, u32> {
    let mut held = HashMap::new();
    for id in lead_ids {
        let l = w.leads.get(id).await.unwrap().unwrap();
        if let (Some(a), true) = (l.assignee, status::is_open(l.status)) {
            *held.entry(a).or_default() += 1;
        }
    }
    held
}

async fn trail(w: &World, lead_id: &str) -> Vec<(AuditAction, Actor)> {
    w.audit
        .trail(lead_id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.action, e.actor))
        .collect()
}

// ------------------------------------------------------------ dedup window

#[tokio::test]
async fn the_dedup_window_ends_exactly_30_days_after_the_first_contact() {
    let Some(w) = world(AssignmentStrategy::RoundRobin, &[50, 50]).await else {
        return;
    };
    // One customer per offset, each first seen at `first`.
    for (offset, expected) in [
        (WINDOW - 1, DedupOutcome::Merged),
        (WINDOW, DedupOutcome::Created),
        (WINDOW + 1, DedupOutcome::Created),
    ] {
        let number = phone();
        let original = lead(&w, Platform::Douyin, "dy-jn", &number, None);
        let first: DateTime<Utc> = original.received_at;
        let created = w.router.handle_lead(&original, first).await.unwrap();
        assert_eq!(created.outcome, Some(DedupOutcome::Created));

        let at = first + Duration::seconds(offset);
        let mut back = lead(&w, Platform::Autohome, "ah-jn", &number, None);
        back.received_at = at;
        let p = w.router.handle_lead(&back, at).await.unwrap();
        assert_eq!(
            p.outcome,
            Some(expected),
            "{offset} s after the first contact"
        );
        match expected {
            DedupOutcome::Merged => assert_eq!(p.lead_id, created.lead_id),
            _ => assert_ne!(p.lead_id, created.lead_id),
        }
    }
}

// ------------------------------------------------------- round-robin order

#[tokio::test]
async fn round_robin_hands_consecutive_leads_to_consecutive_consultants() {
    let caps = [50, 50, 50];
    let Some(w) = world(AssignmentStrategy::RoundRobin, &caps).await else {
        return;
    };
    // The rotation runs over the consultants in id order (s0, s1, s2).
    let order: Vec<String> = (0..caps.len())
        .map(|i| staff_id(&w, &format!("s{i}")))
        .collect();
    let mut assignees = Vec::new();
    for _ in 0..3 * caps.len() {
        let l = lead(&w, Platform::Douyin, "dy-jn", &phone(), None);
        let p = w.router.handle_lead(&l, Utc::now()).await.unwrap();
        assignees.push(p.assignee.expect("everyone is below cap"));
    }
    let start = order.iter().position(|s| *s == assignees[0]).unwrap();
    let expected: Vec<String> = (0..assignees.len())
        .map(|i| order[(start + i) % order.len()].clone())
        .collect();
    assert_eq!(assignees, expected);
}

// --------------------------------------------------------- caps everywhere

/// The load as read before a concurrent assignment landed: the consultant
/// looks free but is at their cap.
fn stale(w: &World, short: &str, cap: u32) -> StaffLoad {
    StaffLoad {
        staff_id: staff_id(w, short),
        role: StaffRole::Sales,
        on_duty: true,
        cap,
        open_leads: 0,
    }
}

#[tokio::test]
async fn assignment_from_a_stale_load_never_goes_over_cap() {
    // s0 takes one lead (cap 1); s1 stays free for the second.
    let Some(w) = world(AssignmentStrategy::Saturation, &[1, 1]).await else {
        return;
    };
    let first = w
        .router
        .handle_lead(
            &lead(&w, Platform::Douyin, "dy-jn", &phone(), None),
            Utc::now(),
        )
        .await
        .unwrap();
    let holder = first.assignee.clone().unwrap();
    let short = holder.rsplit('-').next().unwrap().to_string();
    // A second lead, left unassigned (the claim path and the router both use
    // this store call): it must not go to the consultant at cap.
    let second = lead(&w, Platform::Douyin, "dy-jn", &phone(), None);
    let brand = brand(&w).await;
    // Recorded and routed, not assigned: as a lead waiting for a claim.
    let record = match w
        .leads
        .record(
            &brand,
            &second,
            Some(&format!("{}-jn", w.brand)),
            Utc::now(),
        )
        .await
        .unwrap()
    {
        leads_aws::store::Recorded::Created(r) => *r,
        other => panic!("{other:?}"),
    };
    let local = leads_domain::routing::Route::Local {
        dealer_id: format!("{}-jn", w.brand),
    };
    let record = match w
        .leads
        .set_route(&record, &local, None, Utc::now())
        .await
        .unwrap()
    {
        leads_aws::store::RouteResult::Routed(r) => *r,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        w.leads
            .assign(&record, &stale(&w, &short, 1), &brand, Utc::now())
            .await
            .unwrap(),
        AssignResult::CapReached
    );
    let ids = [first.lead_id.unwrap(), record.lead_id.clone()];
    assert_eq!(held(&w, &ids).await.get(&holder), Some(&1));
    assert_eq!(
        w.leads
            .get(&record.lead_id)
            .await
            .unwrap()
            .unwrap()
            .assignee,
        None
    );
}

#[tokio::test]
async fn sla_reassignment_from_a_stale_load_never_goes_over_cap() {
    let Some(w) = world(AssignmentStrategy::RoundRobin, &[1, 1]).await else {
        return;
    };
    // Two leads 10 minutes ago: one each, both past first contact.
    let then = Utc::now() - Duration::minutes(10);
    let mut ids = Vec::new();
    for _ in 0..2 {
        let l = lead(&w, Platform::Douyin, "dy-jn", &phone(), None);
        ids.push(
            w.router
                .handle_lead(&l, then)
                .await
                .unwrap()
                .lead_id
                .unwrap(),
        );
    }
    let before = held(&w, &ids).await;
    assert_eq!(before.len(), 2, "{before:?}");
    let due = w.leads.due_lead(&ids[0]).await.unwrap().unwrap();
    let holder = due.lead.assignee.clone().unwrap();
    let other = if holder == staff_id(&w, "s0") {
        "s1"
    } else {
        "s0"
    };
    let result = w
        .leads
        .reassign(
            &due,
            due.due.as_ref().unwrap(),
            &stale(&w, other, 1),
            &brand(&w).await,
            None,
            Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(result, ReassignResult::CapReached);
    assert_eq!(held(&w, &ids).await, before);

    // And through the sweeper (reassignment on breach): nobody can take
    // either lead, so both stay where they are.
    let mut b = brand(&w).await;
    b.reassign_on_sla_breach = true;
    directory(&w)
        .save(&leads_domain::directory_file::Directory {
            brands: vec![b.clone()],
            dealers: vec![],
            staff: vec![],
            accounts: vec![],
            brand_ops: vec![],
        })
        .await
        .unwrap();
    let mut settings = w.stack.settings.clone();
    settings.queues.notification = w.notifications.clone();
    let sweeper = Sweeper::new(&settings, &w.stack.clients);
    let report = sweeper.sweep_brand(&b, Utc::now()).await.unwrap();
    assert_eq!((report.warned, report.reassigned), (2, 0), "{report:?}");
    assert_eq!(held(&w, &ids).await, before);
    drain(&w.stack.clients.sqs, &w.notifications).await;
}

#[tokio::test]
async fn a_pooled_lead_is_never_placed_with_a_consultant_at_cap() {
    // One consultant, cap 1: their lead's exclusivity lapses and it goes to
    // the pool; a new lead fills their slot; the pool retry must wait.
    let Some(w) = world(AssignmentStrategy::RoundRobin, &[1]).await else {
        return;
    };
    let now = Utc::now();
    let first = w
        .router
        .handle_lead(&lead(&w, Platform::Douyin, "dy-jn", &phone(), None), now)
        .await
        .unwrap()
        .lead_id
        .unwrap();
    let record = w.leads.get(&first).await.unwrap().unwrap();
    assert_eq!(
        w.leads
            .apply_status(
                &record,
                &leads_domain::status::Change {
                    next: LeadStatus::Contacted,
                    valid: None,
                    reason: None,
                    progress: true,
                    closes: false,
                },
                &brand(&w).await,
                now,
            )
            .await
            .unwrap(),
        StatusResult::Applied
    );
    let mut settings = w.stack.settings.clone();
    settings.queues.notification = w.notifications.clone();
    let sweeper = Sweeper::new(&settings, &w.stack.clients);
    let b = brand(&w).await;
    let later = now + Duration::days(16);
    assert_eq!(sweeper.sweep_brand(&b, later).await.unwrap().pooled, 1);
    let second = w
        .router
        .handle_lead(&lead(&w, Platform::Douyin, "dy-jn", &phone(), None), later)
        .await
        .unwrap();
    assert_eq!(second.assignee, Some(staff_id(&w, "s0")));
    let ids = [first.clone(), second.lead_id.unwrap()];
    // Placement from a stale load (read before the new lead landed).
    let pooled = w.leads.due_lead(&first).await.unwrap().unwrap();
    assert_eq!(
        w.leads
            .reassign(
                &pooled,
                pooled.due.as_ref().unwrap(),
                &stale(&w, "s0", 1),
                &b,
                None,
                later
            )
            .await
            .unwrap(),
        ReassignResult::CapReached
    );
    // And the sweeper's own retries, later on.
    for minutes in [6, 12] {
        sweeper
            .sweep_brand(&b, later + Duration::minutes(minutes))
            .await
            .unwrap();
    }
    let counts = held(&w, &ids).await;
    assert_eq!(counts.get(&staff_id(&w, "s0")), Some(&1), "{counts:?}");
    assert_eq!(w.leads.get(&first).await.unwrap().unwrap().assignee, None);
    drain(&w.stack.clients.sqs, &w.notifications).await;
}

// ------------------------------------------------------------- staff API

const SECRET: &[u8] = b"router-edges-secret";

fn api(w: &World) -> Api {
    let mut settings = w.stack.settings.clone();
    settings.queues.notification = w.notifications.clone();
    Api::new(&settings, &w.stack.clients, SECRET.to_vec())
}

fn token(w: &World, short: &str) -> String {
    auth::issue(
        SECRET,
        &Claims::staff(
            &staff_id(w, short),
            &format!("{}-jn", w.brand),
            &w.brand.clone(),
            StaffRole::Sales,
            Utc::now(),
            600,
        ),
    )
}

async fn post(api: &Api, path: &str, token: &str, body: &str) -> u16 {
    let request: Request = lambda_http::http::Request::builder()
        .method("POST")
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::from(body.to_string()))
        .unwrap();
    api.handle(request).await.status().as_u16()
}

#[tokio::test]
async fn concurrent_claims_never_push_a_consultant_over_cap_and_are_audited() {
    // Claim strategy, s0 with cap 1 and s1 with cap 5: s0 claims three
    // offered leads at once and gets exactly one.
    let Some(w) = world(AssignmentStrategy::Claim, &[1, 5]).await else {
        return;
    };
    let api = api(&w);
    let mut ids = Vec::new();
    for _ in 0..3 {
        let l = lead(&w, Platform::Douyin, "dy-jn", &phone(), None);
        let p = w.router.handle_lead(&l, Utc::now()).await.unwrap();
        assert_eq!(p.assignee, None, "offered first");
        ids.push(p.lead_id.unwrap());
    }
    let s0 = token(&w, "s0");
    let claim = r#"{"event":"claim"}"#;
    let paths: Vec<String> = ids.iter().map(|id| format!("/leads/{id}/events")).collect();
    let statuses = futures::future::join_all(paths.iter().map(|p| post(&api, p, &s0, claim))).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    let counts = held(&w, &ids).await;
    assert_eq!(counts.get(&staff_id(&w, "s0")), Some(&1), "{counts:?}");

    // The winner's lead carries one `claimed` entry by s0; the others none.
    for id in &ids {
        let claimed: Vec<Actor> = trail(&w, id)
            .await
            .into_iter()
            .filter(|(a, _)| *a == AuditAction::Claimed)
            .map(|(_, actor)| actor)
            .collect();
        let won = w.leads.get(id).await.unwrap().unwrap().assignee.is_some();
        let expected = if won {
            vec![Actor::Staff(staff_id(&w, "s0"))]
        } else {
            vec![]
        };
        assert_eq!(claimed, expected, "lead {id}");
    }
    // s1 claims the rest one by one: the offer is theirs too.
    let s1 = token(&w, "s1");
    for (id, path) in ids.iter().zip(&paths) {
        if w.leads.get(id).await.unwrap().unwrap().assignee.is_none() {
            assert_eq!(post(&api, path, &s1, claim).await, 200);
        }
    }
    let counts = held(&w, &ids).await;
    assert_eq!(counts.get(&staff_id(&w, "s1")), Some(&2), "{counts:?}");
    drain(&w.stack.clients.sqs, &w.notifications).await;
}

// ------------------------------------------------------------ audit trail

#[tokio::test]
async fn every_hand_off_the_readme_lists_is_on_the_trail() {
    let Some(w) = world(AssignmentStrategy::RoundRobin, &[5, 5]).await else {
        return;
    };
    let number = phone();
    let first = lead(&w, Platform::Douyin, "dy-jn", &number, None);
    let p = w.router.handle_lead(&first, Utc::now()).await.unwrap();
    let id = p.lead_id.clone().unwrap();
    let assignee = p.assignee.clone().unwrap();
    let back = lead(&w, Platform::Autohome, "ah-jn", &number, None);
    assert_eq!(
        w.router
            .handle_lead(&back, Utc::now())
            .await
            .unwrap()
            .outcome,
        Some(DedupOutcome::Merged)
    );
    let short = assignee.rsplit('-').next().unwrap().to_string();
    let api = api(&w);
    assert_eq!(
        post(
            &api,
            &format!("/leads/{id}/events"),
            &token(&w, &short),
            r#"{"event":"contacted"}"#
        )
        .await,
        200
    );
    let system = Actor::System("lead-router".into());
    let expected = [
        (AuditAction::Received, Actor::Platform("douyin".into())),
        (AuditAction::Deduped, system.clone()),
        (AuditAction::Routed, system.clone()),
        (AuditAction::Assigned, system),
        (AuditAction::Merged, Actor::Platform("autohome".into())),
        (AuditAction::StatusChanged, Actor::Staff(assignee)),
    ];
    let got = trail(&w, &id).await;
    for e in &expected {
        assert_eq!(
            got.iter().filter(|g| *g == e).count(),
            1,
            "{e:?} once in {got:?}"
        );
    }
    drain(&w.stack.clients.sqs, &w.notifications).await;
}

// ------------------------------------------------------ directory snapshot

#[tokio::test]
async fn a_consultant_set_off_duty_is_seen_within_the_snapshot_ttl() {
    let Some(w) = world(AssignmentStrategy::RoundRobin, &[50]).await else {
        return;
    };
    let mut settings = w.stack.settings.clone();
    settings.queues.notification = w.notifications.clone();
    settings.queues.crm = w.crm.clone();
    let cached = lead_router::Router::new(&settings, &w.stack.clients);
    let uncached = lead_router::Router::new(&settings, &w.stack.clients)
        .with_directory_ttl(std::time::Duration::ZERO);
    let s0 = staff_id(&w, "s0");
    for router in [&cached, &uncached] {
        let l = lead(&w, Platform::Douyin, "dy-jn", &phone(), None);
        let p = router.handle_lead(&l, Utc::now()).await.unwrap();
        assert_eq!(p.assignee.as_deref(), Some(s0.as_str()));
    }
    // The only consultant goes off duty.
    let mut staff = directory(&w)
        .staff_of(&format!("{}-jn", w.brand))
        .await
        .unwrap();
    staff.iter_mut().for_each(|s| s.on_duty = false);
    directory(&w)
        .save(&leads_domain::directory_file::Directory {
            brands: vec![],
            dealers: vec![],
            staff,
            accounts: vec![],
            brand_ops: vec![],
        })
        .await
        .unwrap();
    // Within the TTL (60 s) a running router still sees them on duty...
    let l = lead(&w, Platform::Douyin, "dy-jn", &phone(), None);
    let p = cached.handle_lead(&l, Utc::now()).await.unwrap();
    assert_eq!(p.assignee.as_deref(), Some(s0.as_str()), "stale by rule");
    // ... a router whose snapshot expired reads the change: nobody can take it.
    let l = lead(&w, Platform::Douyin, "dy-jn", &phone(), None);
    let p = uncached.handle_lead(&l, Utc::now()).await.unwrap();
    assert_eq!(p.assignee, None);
    drain(&w.stack.clients.sqs, &w.notifications).await;
}

/// The series a customer asks about accumulate over their deliveries, each
/// listed once, in the order first asked.
#[tokio::test]
async fn series_of_interest_accumulate_across_merged_deliveries() {
    let Some(w) = world(AssignmentStrategy::RoundRobin, &[50]).await else {
        return;
    };
    let number = phone();
    let first = lead(&w, Platform::Douyin, "dy-jn", &number, None);
    assert_eq!(first.series_interest, ["H5"]);
    let id = w
        .router
        .handle_lead(&first, Utc::now())
        .await
        .unwrap()
        .lead_id
        .unwrap();
    let mut again = lead(&w, Platform::Autohome, "ah-jn", &number, None);
    again.series_interest = vec!["H9".into(), "H5".into()];
    let p = w.router.handle_lead(&again, Utc::now()).await.unwrap();
    assert_eq!(
        (p.lead_id.as_deref(), p.outcome),
        (Some(id.as_str()), Some(DedupOutcome::Merged))
    );
    let record = w.leads.get(&id).await.unwrap().unwrap();
    assert_eq!(record.series_interest, ["H5", "H9"]);
    assert_eq!(record.touchpoints, 2);
}

/// A WeCom contact deletion lands on the customer's lead once: audited, its
/// owner and the managers told; a redelivery records and tells nothing new.
#[tokio::test]
async fn a_wecom_contact_deletion_is_recorded_once_and_told_to_owner_and_managers() {
    use aws_lambda_events::event::sqs::SqsMessage;
    use leads_domain::intake::{ContactDeleted, DeletedBy, IntakeMessage};
    use leads_domain::notification::{NotificationJob, NotificationKind};
    let Some(w) = world(AssignmentStrategy::RoundRobin, &[50]).await else {
        return;
    };
    let external = integration_tests::unique("wm");
    let p = w
        .router
        .handle_lead(
            &integration_tests::world::wecom_lead(&w, &external),
            Utc::now(),
        )
        .await
        .unwrap();
    let (lead_id, owner) = (p.lead_id.unwrap(), p.assignee.unwrap());
    drain(&w.stack.clients.sqs, &w.notifications).await;
    let message = IntakeMessage::ContactDeleted(ContactDeleted {
        source_event_id: integration_tests::unique("wxdel"),
        corp_id: format!("{}-wx", w.brand),
        external_userid: external,
        user_id: "wx-user-1".into(),
        by: DeletedBy::Customer,
        at: Utc::now(),
    });
    let mut sqs = SqsMessage::default();
    sqs.body = Some(serde_json::to_string(&message).unwrap());
    let mut job_ids = Vec::new();
    for round in 0..2 {
        let processed = w.router.handle_message(&sqs).await.unwrap();
        assert_eq!(processed.lead_id.as_deref(), Some(lead_id.as_str()));
        let jobs: Vec<NotificationJob> = drain(&w.stack.clients.sqs, &w.notifications)
            .await
            .iter()
            .map(|b| serde_json::from_str(b).unwrap())
            .filter(|j: &NotificationJob| j.kind == NotificationKind::ContactDeleted)
            .collect();
        let mut recipients: Vec<Vec<String>> = jobs.iter().map(|j| j.recipients.clone()).collect();
        recipients.sort();
        assert_eq!(
            recipients,
            [vec![], vec![owner.clone()]],
            "round {round}: owner and managers"
        );
        let mut ids: Vec<String> = jobs.iter().map(|j| j.job_id.clone()).collect();
        ids.sort();
        job_ids.push(ids);
    }
    assert_eq!(
        job_ids[0], job_ids[1],
        "a redelivery sends the same jobs (the notifier sends each once)"
    );
    let deletions: Vec<_> = trail(&w, &lead_id)
        .await
        .into_iter()
        .filter(|(a, _)| *a == AuditAction::ContactDeleted)
        .collect();
    assert_eq!(deletions.len(), 1, "recorded once");
    let detail = w
        .audit
        .trail(&lead_id)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.action == AuditAction::ContactDeleted)
        .unwrap()
        .detail;
    assert!(
        detail.contains("the customer removed consultant wx-user-1"),
        "{detail}"
    );
}
