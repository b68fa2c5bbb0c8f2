//! The router against the emulator: dedup outcomes, concurrency, routing,
//! assignment caps, partial batch failures and redelivery.

use std::collections::HashMap;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use chrono::{Duration, Utc};
use integration_tests::drain;
use integration_tests::world::{
    lead, overlap, phone, phone_key, wecom_key, wecom_lead, world, World,
};
use leads_domain::audit::AuditAction;
use leads_domain::dedup::{DedupOutcome, LinkOutcome};
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
async fn a_contact_on_the_brands_wecom_corp_goes_to_the_consultant_who_added_it() {
    let Some(w) = world(AssignmentStrategy::RoundRobin, &[5, 5]).await else {
        return;
    };
    // Added by the Qingdao consultant on the brand-level corp: local to Qingdao.
    let mut added = wecom_lead(&w, &format!("{}-ext-1", w.brand));
    added.account_id = format!("{}-wxcorp", w.brand);
    added.staff_hint = Some(format!("{}-qd-s0-wx", w.brand));
    let p = w.router.handle_lead(&added, Utc::now()).await.unwrap();
    assert_eq!(
        p.route,
        Some(Route::Local {
            dealer_id: format!("{}-qd", w.brand)
        })
    );
    assert_eq!(p.assignee, Some(format!("{}-qd-s0", w.brand)));

    // A UserID nobody in the brand has: no dealer, no city, so the brand CRM.
    let mut stranger = wecom_lead(&w, &format!("{}-ext-2", w.brand));
    stranger.account_id = format!("{}-wxcorp", w.brand);
    stranger.staff_hint = Some("not-our-consultant".into());
    let p = w.router.handle_lead(&stranger, Utc::now()).await.unwrap();
    assert_eq!(
        p.route,
        Some(Route::Unroutable {
            reason: UnroutableReason::CityUnknown
        })
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
    // The second copy of the good message was a duplicate: one assignment,
    // one job (the batch sends each job id once, in one SendMessageBatch).
    let kinds: Vec<NotificationKind> = jobs(&w).await.iter().map(|j| j.kind).collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == NotificationKind::NewAssignment)
            .count(),
        1
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

// ------------------------------------------------ linking a WeCom contact's phone

/// The brand CRM pushes a lead with the phone and the WeCom external user id.
fn crm_lead_with_wecom(w: &World, number: &str, external: &str) -> CanonicalLead {
    let mut l = lead(w, Platform::OemCrm, "crm", number, None);
    l.scene = leads_domain::lead::Scene::CrmDispatch;
    l.linked_customer = Some(wecom_key(w, external));
    l
}

async fn open_leads(w: &World, staff_id: &str) -> u32 {
    use leads_aws::store::{DirectoryStore, DynamoDirectory};
    let dealer = format!("{}-jn", w.brand);
    let directory = DynamoDirectory::new(
        w.stack.clients.dynamodb.clone(),
        &w.stack.settings.tables.directory,
    );
    let mut staff = directory.staff_of(&dealer).await.unwrap();
    staff.retain(|s| s.staff_id == staff_id);
    w.leads.staff_loads(&dealer, &staff).await.unwrap()[0].open_leads
}

#[tokio::test]
async fn crm_push_with_both_keys_merges_into_the_earlier_wecom_lead() {
    let Some(w) = world(AssignmentStrategy::RoundRobin, &[5, 5]).await else {
        return;
    };
    let external = integration_tests::unique("wm");
    let contact = w
        .router
        .handle_lead(&wecom_lead(&w, &external), Utc::now())
        .await
        .unwrap();
    assert_eq!(contact.outcome, Some(DedupOutcome::Created));
    let wecom_id = contact.lead_id.clone().unwrap();
    let consultant = contact.assignee.clone().unwrap();
    jobs(&w).await;

    // The CRM knows the customer's phone and WeCom id: its lead is created,
    // then folded into the WeCom lead (earlier), never routed or assigned.
    let number = phone();
    let push = crm_lead_with_wecom(&w, &number, &external);
    let p = w.router.handle_lead(&push, Utc::now()).await.unwrap();
    assert_eq!(p.outcome, Some(DedupOutcome::Merged), "{p:?}");
    assert_eq!(p.lead_id.as_deref(), Some(wecom_id.as_str()));
    let survivor = w.leads.get(&wecom_id).await.unwrap().unwrap();
    assert_eq!(survivor.touchpoints, 2);
    assert_eq!(w.leads.touchpoints(&wecom_id).await.unwrap().len(), 2);
    assert_eq!(
        survivor.phone.as_ref().map(|p| p.e164().to_string()),
        Some(format!("+86{number}"))
    );
    assert!(survivor.linked_keys.contains(&phone_key(&number)));
    let crm_id = leads_domain::dedup::lead_id(&w.brand, &push.source_event_id);
    let absorbed = w.leads.get(&crm_id).await.unwrap().unwrap();
    assert_eq!(absorbed.status, LeadStatus::Merged);
    assert_eq!(absorbed.merged_into.as_deref(), Some(wecom_id.as_str()));
    assert_eq!(absorbed.assignee, None);
    assert_eq!(overlap(&w, "wecom#oem_crm").await, 1);
    let sent = jobs(&w).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        sent[0].job_id,
        format!("{wecom_id}#customer_returned#merge-{crm_id}")
    );
    assert_eq!(sent[0].recipients, vec![consultant.clone()]);
    assert!(!serde_json::to_string(&sent[0]).unwrap().contains(&number));
    let actions: Vec<AuditAction> = w
        .audit
        .trail(&crm_id)
        .await
        .unwrap()
        .iter()
        .map(|e| e.action)
        .collect();
    assert!(actions.contains(&AuditAction::Merged), "{actions:?}");

    // Redelivery: a duplicate, nothing counted twice.
    let again = w.router.handle_lead(&push, Utc::now()).await.unwrap();
    assert_eq!(again.outcome, Some(DedupOutcome::Duplicate));
    assert_eq!(again.lead_id.as_deref(), Some(wecom_id.as_str()));
    assert_eq!(overlap(&w, "wecom#oem_crm").await, 1);
    assert_eq!(
        w.leads.get(&wecom_id).await.unwrap().unwrap().touchpoints,
        2
    );

    // From now on the phone is this customer: a Douyin lead merges in.
    let douyin = w
        .router
        .handle_lead(
            &lead(&w, Platform::Douyin, "dy-jn", &number, None),
            Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(douyin.outcome, Some(DedupOutcome::Merged));
    assert_eq!(douyin.lead_id.as_deref(), Some(wecom_id.as_str()));
    assert_eq!(
        w.leads.get(&wecom_id).await.unwrap().unwrap().touchpoints,
        3
    );
    assert_eq!(open_leads(&w, &consultant).await, 1);
}

#[tokio::test]
async fn crm_push_with_both_keys_links_a_new_wecom_id_and_the_contact_merges_later() {
    let Some(w) = world(AssignmentStrategy::RoundRobin, &[5]).await else {
        return;
    };
    let external = integration_tests::unique("wm");
    let number = phone();
    let p = w
        .router
        .handle_lead(&crm_lead_with_wecom(&w, &number, &external), Utc::now())
        .await
        .unwrap();
    assert_eq!(p.outcome, Some(DedupOutcome::Created));
    assert!(p.assignee.is_some());
    let lead_id = p.lead_id.unwrap();
    let stored = w.leads.get(&lead_id).await.unwrap().unwrap();
    assert_eq!(stored.linked_keys, vec![wecom_key(&w, &external)]);
    // The WeCom id remembers the consultant too (a return after the window).
    let identity = w
        .stack
        .clients
        .dynamodb
        .get_item()
        .table_name(&w.stack.settings.tables.leads)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(leads_domain::dedup::customer_key(
                &w.brand,
                &wecom_key(&w, &external),
            )),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("IDENTITY".into()),
        )
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(
        identity["last_assignee"].as_s().ok(),
        stored.assignee.as_ref()
    );
    let actions: Vec<AuditAction> = w
        .audit
        .trail(&lead_id)
        .await
        .unwrap()
        .iter()
        .map(|e| e.action)
        .collect();
    assert!(actions.contains(&AuditAction::Linked), "{actions:?}");

    // The consultant adds the customer on WeCom: the same lead.
    let contact = w
        .router
        .handle_lead(&wecom_lead(&w, &external), Utc::now())
        .await
        .unwrap();
    assert_eq!(contact.outcome, Some(DedupOutcome::Merged));
    assert_eq!(contact.lead_id.as_deref(), Some(lead_id.as_str()));
    assert_eq!(overlap(&w, "oem_crm#wecom").await, 1);
}

#[tokio::test]
async fn concurrent_links_of_one_phone_merge_exactly_once() {
    let Some(w) = world(AssignmentStrategy::RoundRobin, &[50, 50]).await else {
        return;
    };
    let brand = leads_aws::store::DirectoryStore::brand(
        &leads_aws::store::DynamoDirectory::new(
            w.stack.clients.dynamodb.clone(),
            &w.stack.settings.tables.directory,
        ),
        &w.brand,
    )
    .await
    .unwrap()
    .unwrap();
    for customer in 0..3u64 {
        // Douyin first, then the WeCom contact (a separate lead until linked).
        let number = phone();
        let douyin = w
            .router
            .handle_lead(
                &lead(&w, Platform::Douyin, "dy-jn", &number, None),
                Utc::now(),
            )
            .await
            .unwrap();
        let external = integration_tests::unique("wm");
        let contact = w
            .router
            .handle_lead(&wecom_lead(&w, &external), Utc::now())
            .await
            .unwrap();
        let wecom_id = contact.lead_id.clone().unwrap();
        let wecom_consultant = contact.assignee.clone().unwrap();
        let before = open_leads(&w, &wecom_consultant).await;
        let key = phone_key(&number);
        let parsed = leads_domain::Phone::parse(&number).unwrap();
        let now = Utc::now();
        let wecom = w.leads.get(&wecom_id).await.unwrap().unwrap();
        let results = futures::future::join_all(
            (0..3).map(|_| w.leads.link(&brand, &wecom, &key, Some(&parsed), now)),
        )
        .await;
        let merges = results
            .iter()
            .filter(|r| matches!(r, Ok(LinkOutcome::Merged { .. })))
            .count();
        assert_eq!(merges, 1, "{results:?}");
        for r in &results {
            let outcome = r.as_ref().unwrap();
            assert_eq!(Some(&outcome.lead().lead_id), douyin.lead_id.as_ref());
        }
        let survivor = w
            .leads
            .get(douyin.lead_id.as_ref().unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(survivor.touchpoints, 2);
        assert!(survivor.linked_keys.contains(&wecom_key(&w, &external)));
        assert_eq!(
            w.leads.get(&wecom_id).await.unwrap().unwrap().status,
            LeadStatus::Merged
        );
        assert_eq!(open_leads(&w, &wecom_consultant).await, before - 1);
        // The merge counted the pair once (two earlier customers counted 2 each).
        assert_eq!(overlap(&w, "douyin#wecom").await, 2 * customer + 1);
        // A repeat later: already linked, via the merged lead.
        let repeat = w
            .leads
            .link(&brand, &wecom, &key, Some(&parsed), Utc::now())
            .await
            .unwrap();
        assert!(
            matches!(&repeat, LinkOutcome::AlreadyLinked { via: Some(v), .. } if *v == wecom_id),
            "{repeat:?}"
        );
        // The WeCom contact's next event merges into the survivor.
        let again = w
            .router
            .handle_lead(&wecom_lead(&w, &external), Utc::now())
            .await
            .unwrap();
        assert_eq!(again.outcome, Some(DedupOutcome::Merged));
        assert_eq!(again.lead_id, douyin.lead_id);
        // ... and that touchpoint counts as WeCom bringing the customer back.
        assert_eq!(overlap(&w, "douyin#wecom").await, 2 * customer + 2);
    }
}

// ------------------------------------------------ a customer coming back to a closed lead

/// Closes a lead the way a consultant's status change does.
async fn close(w: &World, lead_id: &str, next: LeadStatus) {
    let brand = w.brand_settings().await;
    let lead = w.leads.get(lead_id).await.unwrap().unwrap();
    let change = leads_domain::status::Change {
        next,
        valid: None,
        reason: None,
        progress: false,
        closes: true,
    };
    assert_eq!(
        w.leads
            .apply_status(&lead, &change, &brand, Utc::now())
            .await
            .unwrap(),
        leads_aws::store::StatusResult::Applied
    );
}

#[tokio::test]
async fn a_customer_back_inside_the_window_after_a_lost_lead_gets_a_new_lead() {
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
    let old_id = first.lead_id.clone().unwrap();
    let consultant = first.assignee.clone().unwrap();
    close(&w, &old_id, LeadStatus::Lost).await;
    jobs(&w).await;

    // Two days later, well inside the 30-day window, the customer asks again
    // on another platform: a lost lead takes no more touches, so the
    // customer gets a new lead, with their consultant, and a fresh SLA.
    let p = w
        .router
        .handle_lead(
            &lead(&w, Platform::Autohome, "ah-jn", &number, None),
            Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(p.outcome, Some(DedupOutcome::Created), "{p:?}");
    let new_id = p.lead_id.clone().unwrap();
    assert_ne!(new_id, old_id);
    assert_eq!(p.assignee.as_deref(), Some(consultant.as_str()));
    let new = w.leads.get(&new_id).await.unwrap().unwrap();
    assert_eq!(new.returned_from.as_deref(), Some(old_id.as_str()));
    assert_eq!(new.status, LeadStatus::Assigned);
    assert!(new.first_contact_due.is_some(), "a fresh callback SLA");
    let old = w.leads.get(&old_id).await.unwrap().unwrap();
    assert_eq!(old.status, LeadStatus::Lost, "the lost lead stays lost");
    assert_eq!(old.reopened_as.as_deref(), Some(new_id.as_str()));
    assert_eq!(old.touchpoints, 1);
    let sent: Vec<(NotificationKind, String)> = jobs(&w)
        .await
        .iter()
        .map(|j| (j.kind, j.lead_id.clone()))
        .collect();
    assert!(
        sent.contains(&(NotificationKind::NewAssignment, new_id.clone())),
        "{sent:?}"
    );
    let trail: Vec<AuditAction> = w
        .audit
        .trail(&old_id)
        .await
        .unwrap()
        .iter()
        .map(|e| e.action)
        .collect();
    assert!(trail.contains(&AuditAction::Reopened), "{trail:?}");

    // The next touch, under the phone key the old lead held, joins the new one.
    let third = w
        .router
        .handle_lead(
            &lead(&w, Platform::Douyin, "dy-jn", &number, None),
            Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(third.outcome, Some(DedupOutcome::Merged), "{third:?}");
    assert_eq!(third.lead_id.as_deref(), Some(new_id.as_str()));
    assert_eq!(w.leads.get(&new_id).await.unwrap().unwrap().touchpoints, 2);
    assert_eq!(w.leads.get(&old_id).await.unwrap().unwrap().touchpoints, 1);
}

#[tokio::test]
async fn a_returning_customer_supersedes_an_unrouted_lead_when_routable() {
    let Some(w) = world(AssignmentStrategy::RoundRobin, &[50, 50]).await else {
        return;
    };
    let number = phone();
    // The brand's own account, no city: nobody to route it to.
    let unrouted = w
        .router
        .handle_lead(
            &lead(&w, Platform::Douyin, "dy-brand", &number, None),
            Utc::now(),
        )
        .await
        .unwrap();
    assert!(matches!(unrouted.route, Some(Route::Unroutable { .. })));
    let old_id = unrouted.lead_id.clone().unwrap();

    // Unroutable again: the touch joins the unrouted lead, as before.
    let again = w
        .router
        .handle_lead(
            &lead(&w, Platform::Douyin, "dy-brand", &number, None),
            Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(again.outcome, Some(DedupOutcome::Merged), "{again:?}");
    assert_eq!(again.lead_id.as_deref(), Some(old_id.as_str()));

    let handed: Vec<leads_domain::crm::CrmEvent> = drain(&w.stack.clients.sqs, &w.crm)
        .await
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    assert_eq!(
        handed.len(),
        1,
        "the unrouted lead, handed to the brand CRM once"
    );

    // Now the customer writes to the Jinan dealer's account: a lead someone
    // can work, which takes over from the unrouted one.
    let routable = lead(&w, Platform::Autohome, "ah-jn", &number, None);
    let p = w.router.handle_lead(&routable, Utc::now()).await.unwrap();
    assert_eq!(p.outcome, Some(DedupOutcome::Created), "{p:?}");
    let new_id = p.lead_id.clone().unwrap();
    assert_ne!(new_id, old_id);
    assert_eq!(
        p.route,
        Some(Route::Local {
            dealer_id: format!("{}-jn", w.brand)
        })
    );
    assert!(p.assignee.is_some());
    let old = w.leads.get(&old_id).await.unwrap().unwrap();
    assert_eq!(old.status, LeadStatus::Merged);
    assert_eq!(old.merged_into.as_deref(), Some(new_id.as_str()));
    assert_eq!(old.touchpoints, 2);
    let new = w.leads.get(&new_id).await.unwrap().unwrap();
    assert_eq!(new.returned_from.as_deref(), Some(old_id.as_str()));
    // The brand CRM hears it need not place the old lead: once per lead,
    // however often the delivery comes (the redelivery sends the same id).
    let redelivered = w.router.handle_lead(&routable, Utc::now()).await.unwrap();
    assert_eq!(redelivered.outcome, Some(DedupOutcome::Duplicate));
    let told: Vec<leads_domain::crm::CrmEvent> = drain(&w.stack.clients.sqs, &w.crm)
        .await
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    assert_eq!(told.len(), 2, "{told:?}");
    for event in &told {
        assert_eq!(event.kind, leads_domain::crm::CrmEventKind::Superseded);
        assert_eq!(event.event_id, format!("{old_id}#superseded"));
        assert_eq!(event.lead_id.as_deref(), Some(old_id.as_str()));
        assert_eq!(event.superseded_by.as_deref(), Some(new_id.as_str()));
        assert_eq!(event.dealer_id, Some(format!("{}-jn", w.brand)));
        assert_eq!(event.assignee, p.assignee);
    }

    // And the brand account's next touch joins the routed lead.
    let later = w
        .router
        .handle_lead(
            &lead(&w, Platform::Douyin, "dy-brand", &number, None),
            Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(later.outcome, Some(DedupOutcome::Merged), "{later:?}");
    assert_eq!(later.lead_id.as_deref(), Some(new_id.as_str()));
}

/// Two deliveries that both read the lost lead before either wrote: the
/// second continuation is refused (the identity names the first's lead
/// now), and so is one that read the new identity but the old lead as it
/// was (the lost lead is continued once).
#[tokio::test]
async fn a_lost_lead_is_continued_once_by_stale_readers() {
    use leads_aws::store::{Contended, CreateResult, IdentitySeen, Returning};
    let Some(w) = world(AssignmentStrategy::RoundRobin, &[50, 50]).await else {
        return;
    };
    let number = phone();
    let first = lead(&w, Platform::Douyin, "dy-jn", &number, None);
    let old_id = w
        .router
        .handle_lead(&first, Utc::now())
        .await
        .unwrap()
        .lead_id
        .unwrap();
    close(&w, &old_id, LeadStatus::Lost).await;
    let holder = w.leads.get(&old_id).await.unwrap().unwrap();
    let brand = w.brand_settings().await;
    let key = leads_domain::dedup::customer_key(&w.brand, &first.customer);
    let now = Utc::now();
    let write = |delivery: CanonicalLead, identity_lead: String| {
        let (brand, key, holder, w) = (&brand, &key, &holder, &w);
        async move {
            let id = leads_domain::dedup::lead_id(&w.brand, &delivery.source_event_id);
            let record = leads_domain::lead::LeadRecord::new(id.clone(), &w.brand, &delivery, None);
            let route = Route::Unroutable {
                reason: UnroutableReason::CityUnknown,
            };
            let plan = leads_domain::decision::new_lead(record, &route, None, brand, now);
            let seen = IdentitySeen::Returning(Returning {
                identity_lead: &identity_lead,
                holder,
            });
            let result = w
                .leads
                .create_decided(
                    brand,
                    &delivery,
                    key,
                    seen,
                    &plan,
                    &Contended::default(),
                    now,
                )
                .await
                .unwrap();
            (id, result)
        }
    };
    let (winner, result) = write(
        lead(&w, Platform::Autohome, "ah-jn", &number, None),
        old_id.clone(),
    )
    .await;
    assert_eq!(result, CreateResult::Created);
    let (_, late) = write(
        lead(&w, Platform::Douyin, "dy-jn", &number, None),
        old_id.clone(),
    )
    .await;
    match late {
        CreateResult::IdentityTaken { current: Some(c) } => assert_eq!(c.lead_id, winner),
        other => panic!("the identity names {winner} now: {other:?}"),
    }
    let (_, stale_holder) = write(
        lead(&w, Platform::Douyin, "dy-jn", &number, None),
        winner.clone(),
    )
    .await;
    assert_eq!(stale_holder, CreateResult::IdentityTaken { current: None });
    let old = w.leads.get(&old_id).await.unwrap().unwrap();
    assert_eq!(old.reopened_as.as_deref(), Some(winner.as_str()));
}

/// `remote_mode: crm_review`: a remote lead is held for the brand CRM,
/// with the dealer routing picked as the proposal and no remote slot taken;
/// the CRM's dispatch sends it on, assigned and notified. A local lead is
/// not held.
#[tokio::test]
async fn a_brand_reviewing_remote_leads_gets_them_with_a_proposal_and_dispatches_them() {
    let Some(w) = world(AssignmentStrategy::RoundRobin, &[50, 50]).await else {
        return;
    };
    w.change_brand(|b| b.remote_mode = leads_domain::routing::RemoteMode::CrmReview)
        .await;
    let router = w.fresh_router();
    let qingdao = format!("{}-qd", w.brand);
    // Yantai is Qingdao's: routing would send it there.
    let remote = lead(&w, Platform::Douyin, "dy-jn", &phone(), Some("烟台"));
    let held = router.handle_lead(&remote, Utc::now()).await.unwrap();
    assert_eq!(
        held.route,
        Some(Route::Unroutable {
            reason: UnroutableReason::CrmReview
        })
    );
    assert_eq!(held.assignee, None);
    let lead_id = held.lead_id.unwrap();
    let stored = w.leads.get(&lead_id).await.unwrap().unwrap();
    assert_eq!(stored.status, LeadStatus::Unroutable);
    assert_eq!(stored.proposed_dealer.as_deref(), Some(qingdao.as_str()));
    assert_eq!(
        w.leads
            .remote_received_today(&qingdao, Utc::now())
            .await
            .unwrap(),
        0,
        "no remote slot taken while held"
    );
    let handed: Vec<leads_domain::crm::CrmEvent> = drain(&w.stack.clients.sqs, &w.crm)
        .await
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    assert_eq!(handed.len(), 1);
    let unrouted = handed[0].unrouted.as_ref().unwrap();
    assert_eq!(unrouted.reason, "crm_review");
    assert_eq!(unrouted.proposed_dealer.as_deref(), Some(qingdao.as_str()));

    // A local lead is the dealer's own: not held.
    let local = router
        .handle_lead(
            &lead(&w, Platform::Douyin, "dy-jn", &phone(), None),
            Utc::now(),
        )
        .await
        .unwrap();
    assert!(local.assignee.is_some(), "{local:?}");
    jobs(&w).await;

    // The CRM confirms the proposal.
    let dispatch = leads_domain::intake::CrmDispatch {
        source_event_id: integration_tests::unique("dispatch"),
        brand_id: w.brand.clone(),
        lead_id: lead_id.clone(),
        dealer_id: qingdao.clone(),
        at: Utc::now(),
    };
    assert_eq!(
        router.handle_crm_dispatch(&dispatch).await.unwrap(),
        lead_router::crm_status::Dispatched::Placed
    );
    let placed = w.leads.get(&lead_id).await.unwrap().unwrap();
    assert_eq!(placed.status, LeadStatus::Assigned);
    assert_eq!(placed.assignee, Some(format!("{qingdao}-s0")));
    assert_eq!(
        placed.route,
        Some(Route::Remote {
            dealer_id: qingdao.clone(),
            referrer: Some(format!("{}-jn", w.brand)),
        })
    );
    let sent: Vec<(NotificationKind, String)> = jobs(&w)
        .await
        .iter()
        .map(|j| (j.kind, j.lead_id.clone()))
        .collect();
    assert!(
        sent.contains(&(NotificationKind::NewAssignment, lead_id.clone())),
        "{sent:?}"
    );
}
