//! The staff API against the emulator: authentication, dealer scoping, status
//! transitions, claims, and the audit trail they leave.

use api::Api;
use chrono::Utc;
use integration_tests::drain;
use integration_tests::world::{lead, overlap, phone, wecom_lead, world, World};
use lambda_http::{Body, Request};
use leads_aws::store::{DirectoryStore, DynamoDirectory};
use leads_domain::auth::{self, Claims};
use leads_domain::dedup::DedupOutcome;
use leads_domain::directory::{AssignmentStrategy, Platform, StaffRole};
use leads_domain::identity::PhoneHasher;
use leads_domain::lead::LeadStatus;
use leads_domain::notification::{NotificationJob, NotificationKind};

const SECRET: &[u8] = b"api-test-secret";

/// The API with the world's phone hash key (`k`, as its leads) and its
/// scratch notification queue.
fn api(w: &World) -> Api {
    let mut settings = w.stack.settings.clone();
    settings.queues.notification = w.notifications.clone();
    settings.queues.crm = w.crm.clone();
    Api::new(&settings, &w.stack.clients, SECRET.to_vec())
        .with_phone_hasher(PhoneHasher::new(b"k".to_vec()))
}

fn token(w: &World, staff: &str, dealer: &str, role: StaffRole) -> String {
    staff_token(w, &format!("{}-{staff}", w.brand), dealer, role)
}

/// A token for a staff id as stored (e.g. a lead's assignee).
fn staff_token(w: &World, staff_id: &str, dealer: &str, role: StaffRole) -> String {
    auth::issue(
        SECRET,
        &Claims::staff(
            staff_id,
            &format!("{}-{dealer}", w.brand),
            &w.brand,
            role,
            Utc::now(),
            600,
        ),
    )
}

async fn call(
    api: &Api,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, serde_json::Value) {
    let mut b = lambda_http::http::Request::builder()
        .method(method)
        .uri(path);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    let request: Request = b.body(Body::from(body.to_string())).unwrap();
    let response = api.handle(request).await;
    let status = response.status().as_u16();
    let text = match response.body() {
        Body::Text(t) => t.clone(),
        _ => String::new(),
    };
    (status, serde_json::from_str(&text).unwrap())
}

#[tokio::test]
async fn assignee_moves_the_lead_through_the_funnel_and_others_cannot() {
    let Some(w) = world(AssignmentStrategy::RoundRobin, &[5]).await else {
        return;
    };
    let api = api(&w);
    let p = w
        .router
        .handle_lead(
            &lead(&w, Platform::Douyin, "dy-jn", &phone(), None),
            Utc::now(),
        )
        .await
        .unwrap();
    let id = p.lead_id.unwrap();
    let me = token(&w, "jn-s0", "jn", StaffRole::Sales);
    let path = format!("/leads/{id}/events");

    // No token, forged token, another dealer's staff.
    assert_eq!(
        call(&api, "GET", &format!("/leads/{id}"), None, "").await.0,
        401
    );
    assert_eq!(
        call(&api, "GET", &format!("/leads/{id}"), Some("x.00"), "")
            .await
            .0,
        401
    );
    let other = token(&w, "qd-s0", "qd", StaffRole::Sales);
    assert_eq!(
        call(&api, "GET", &format!("/leads/{id}"), Some(&other), "")
            .await
            .0,
        404
    );
    assert_eq!(
        call(
            &api,
            "POST",
            &path,
            Some(&other),
            r#"{"event":"contacted"}"#
        )
        .await
        .0,
        404
    );

    // The assignee sees the full phone; the manager too.
    let (status, body) = call(&api, "GET", &format!("/leads/{id}"), Some(&me), "").await;
    assert_eq!(status, 200);
    assert!(body["lead"]["phone"].as_str().unwrap().starts_with("+86"));

    // Funnel: skipping a stage is refused; each step is recorded once.
    assert_eq!(
        call(&api, "POST", &path, Some(&me), r#"{"event":"won"}"#)
            .await
            .0,
        409
    );
    for event in [
        "contacted",
        "contacted",
        "invited",
        "visited",
        "marked_valid",
        "won",
    ] {
        let (status, body) = call(
            &api,
            "POST",
            &path,
            Some(&me),
            &format!(r#"{{"event":"{event}"}}"#),
        )
        .await;
        assert_eq!(status, 200, "{event}: {body}");
    }
    assert_eq!(
        call(
            &api,
            "POST",
            &path,
            Some(&me),
            r#"{"event":"lost","reason":"price"}"#
        )
        .await
        .0,
        409
    );
    assert_eq!(
        call(&api, "POST", &path, Some(&me), r#"{"event":"teleport"}"#)
            .await
            .0,
        400
    );

    let (_, body) = call(&api, "GET", &format!("/leads/{id}"), Some(&me), "").await;
    assert_eq!(body["lead"]["status"], "won");
    assert_eq!(body["lead"]["valid"], true);
    assert!(body["lead"]["contacted_at"].is_string());

    let (_, trail) = call(&api, "GET", &format!("/leads/{id}/audit"), Some(&me), "").await;
    let changes = trail["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "status_changed")
        .count();
    assert_eq!(
        changes, 5,
        "contacted once (the repeat changed nothing), invited, visited, valid, won"
    );

    // Winning closed the lead: the consultant's open count is back to zero.
    let dealer = format!("{}-jn", w.brand);
    let directory = DynamoDirectory::new(
        w.stack.clients.dynamodb.clone(),
        &w.stack.settings.tables.directory,
    );
    let mut staff = directory.staff_of(&dealer).await.unwrap();
    staff.retain(|s| s.staff_id == format!("{}-jn-s0", w.brand));
    let loads = w.leads.staff_loads(&dealer, &staff).await.unwrap();
    assert_eq!(loads[0].open_leads, 0);
}

#[tokio::test]
async fn first_claim_wins() {
    let Some(w) = world(AssignmentStrategy::Claim, &[5, 5]).await else {
        return;
    };
    let api = api(&w);
    let p = w
        .router
        .handle_lead(
            &lead(&w, Platform::Douyin, "dy-jn", &phone(), None),
            Utc::now(),
        )
        .await
        .unwrap();
    let id = p.lead_id.unwrap();
    assert_eq!(p.assignee, None, "claim strategy offers first");
    let a = token(&w, "jn-s0", "jn", StaffRole::Sales);
    let b = token(&w, "jn-s1", "jn", StaffRole::Sales);
    let path = format!("/leads/{id}/events");
    let claim = r#"{"event":"claim"}"#;
    let (ra, rb) = tokio::join!(
        call(&api, "POST", &path, Some(&a), claim),
        call(&api, "POST", &path, Some(&b), claim)
    );
    let mut statuses = [ra.0, rb.0];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "{ra:?} {rb:?}");
    let (_, body) = call(&api, "GET", &format!("/leads/{id}"), Some(&a), "").await;
    assert_eq!(body["lead"]["status"], "assigned");
}

// -------------------------------------------- the phone of a WeCom contact

async fn jobs(w: &World) -> Vec<NotificationJob> {
    drain(&w.stack.clients.sqs, &w.notifications)
        .await
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect()
}

fn phone_event(number: &str) -> String {
    format!(r#"{{"event":"phone","phone":"{number}"}}"#)
}

#[tokio::test]
async fn phone_recorded_for_a_wecom_contact_links_it_and_a_later_douyin_lead_merges() {
    let Some(w) = world(AssignmentStrategy::RoundRobin, &[5]).await else {
        return;
    };
    let api = api(&w);
    let contact = w
        .router
        .handle_lead(
            &wecom_lead(&w, &integration_tests::unique("wm")),
            Utc::now(),
        )
        .await
        .unwrap();
    let id = contact.lead_id.unwrap();
    let me = token(&w, "jn-s0", "jn", StaffRole::Sales);
    let path = format!("/leads/{id}/events");
    let number = phone();

    // Another dealer's staff: 404 as for any event. A bad phone: 422, and the
    // answer never repeats what was sent.
    let other = token(&w, "qd-s0", "qd", StaffRole::Sales);
    assert_eq!(
        call(&api, "POST", &path, Some(&other), &phone_event(&number))
            .await
            .0,
        404
    );
    for bad in [
        phone_event("1381234567"),
        phone_event("23812345678999"),
        r#"{"event":"phone","phone":13812345678}"#.to_string(),
        r#"{"event":"phone"}"#.to_string(),
    ] {
        let (status, body) = call(&api, "POST", &path, Some(&me), &bad).await;
        assert_eq!(status, 422, "{bad}: {body}");
        assert_eq!(body["code"], "invalid_phone");
        let message = body["message"].as_str().unwrap();
        assert!(!message.contains("1381234567"), "{message}");
        assert!(!message.contains("2381234567"), "{message}");
    }
    assert_eq!(
        call(
            &api,
            "POST",
            &path,
            Some(&me),
            &format!(r#"{{"event":"contacted","phone":"{number}"}}"#)
        )
        .await
        .0,
        400
    );
    // Neither a phone typed as the event name nor a phone of the wrong type
    // comes back in the error.
    for body in [
        format!(r#"{{"event":"{number}"}}"#),
        format!(r#"{{"event":{number}}}"#),
    ] {
        let (status, answer) = call(&api, "POST", &path, Some(&me), &body).await;
        assert_eq!(status, 400, "{answer}");
        assert!(!answer.to_string().contains(&number[3..]), "{answer}");
    }

    // Recorded: the phone now points at the WeCom lead.
    let (status, body) = call(&api, "POST", &path, Some(&me), &phone_event(&number)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outcome"], "linked");
    assert_eq!(body["customer_lead_id"], id.as_str());
    assert!(!body.to_string().contains(&number[3..]), "{body}");
    let (status, body) = call(&api, "POST", &path, Some(&me), &phone_event(&number)).await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (200, Some("already_linked"))
    );
    let (_, body) = call(&api, "GET", &format!("/leads/{id}"), Some(&me), "").await;
    assert_eq!(body["lead"]["phone"], format!("+86{number}"));
    let (_, trail) = call(&api, "GET", &format!("/leads/{id}/audit"), Some(&me), "").await;
    let linked: Vec<_> = trail["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "linked")
        .collect();
    assert_eq!(linked.len(), 1, "{trail}");
    assert!(!linked[0].to_string().contains(&number[3..]));

    // The customer leaves the phone on Douyin: the same lead, one lead.
    let douyin = w
        .router
        .handle_lead(
            &lead(&w, Platform::Douyin, "dy-jn", &number, None),
            Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(douyin.outcome, Some(DedupOutcome::Merged));
    assert_eq!(douyin.lead_id.as_deref(), Some(id.as_str()));
    let (_, body) = call(&api, "GET", &format!("/leads/{id}"), Some(&me), "").await;
    assert_eq!(body["lead"]["touchpoints"], 2);
    assert_eq!(overlap(&w, "wecom#douyin").await, 1);
}

#[tokio::test]
async fn douyin_first_then_wecom_then_phone_merges_the_wecom_lead_once() {
    let Some(w) = world(AssignmentStrategy::RoundRobin, &[5, 5]).await else {
        return;
    };
    let api = api(&w);
    let number = phone();
    let douyin = w
        .router
        .handle_lead(
            &lead(&w, Platform::Douyin, "dy-jn", &number, None),
            Utc::now(),
        )
        .await
        .unwrap();
    let douyin_id = douyin.lead_id.clone().unwrap();
    let external = integration_tests::unique("wm");
    let contact = w
        .router
        .handle_lead(&wecom_lead(&w, &external), Utc::now())
        .await
        .unwrap();
    let wecom_id = contact.lead_id.clone().unwrap();
    let wecom_consultant = contact.assignee.clone().unwrap();
    assert_ne!(douyin_id, wecom_id, "two leads until the phone is known");
    jobs(&w).await;

    // The WeCom consultant records the phone twice at once (a double tap).
    let me = staff_token(&w, &wecom_consultant, "jn", StaffRole::Sales);
    let path = format!("/leads/{wecom_id}/events");
    let event = phone_event(&number);
    let ((sa, a), (sb, b)) = tokio::join!(
        call(&api, "POST", &path, Some(&me), &event),
        call(&api, "POST", &path, Some(&me), &event)
    );
    assert_eq!((sa, sb), (200, 200), "{a} {b}");
    let mut outcomes = [
        a["outcome"].as_str().unwrap().to_string(),
        b["outcome"].as_str().unwrap().to_string(),
    ];
    outcomes.sort();
    assert_eq!(outcomes, ["already_linked", "merged"], "{a} {b}");
    for body in [&a, &b] {
        assert_eq!(body["customer_lead_id"], douyin_id.as_str());
    }
    // And again later: nothing more happens.
    let (status, again) = call(&api, "POST", &path, Some(&me), &phone_event(&number)).await;
    assert_eq!(
        (status, again["outcome"].as_str()),
        (200, Some("already_linked"))
    );

    // One customer: the WeCom lead lives on in the Douyin lead.
    let survivor = w.leads.get(&douyin_id).await.unwrap().unwrap();
    assert_eq!(survivor.touchpoints, 2);
    assert_eq!(w.leads.touchpoints(&douyin_id).await.unwrap().len(), 2);
    let absorbed = w.leads.get(&wecom_id).await.unwrap().unwrap();
    assert_eq!(absorbed.status, LeadStatus::Merged);
    assert_eq!(absorbed.merged_into.as_deref(), Some(douyin_id.as_str()));
    assert_eq!(overlap(&w, "douyin#wecom").await, 1, "counted once");
    // The merged lead freed its consultant's slot and accepts no more events.
    let dealer = format!("{}-jn", w.brand);
    let directory = DynamoDirectory::new(
        w.stack.clients.dynamodb.clone(),
        &w.stack.settings.tables.directory,
    );
    let mut staff = directory.staff_of(&dealer).await.unwrap();
    staff.retain(|s| s.staff_id == wecom_consultant);
    let loads = w.leads.staff_loads(&dealer, &staff).await.unwrap();
    let expected_open = u32::from(survivor.assignee.as_deref() == Some(wecom_consultant.as_str()));
    assert_eq!(loads[0].open_leads, expected_open);
    assert_eq!(
        call(&api, "POST", &path, Some(&me), r#"{"event":"contacted"}"#)
            .await
            .0,
        409
    );
    // Audit on both leads; one job (same id however often it is sent) for
    // the survivor's assignee, with the masked phone only.
    for lead_id in [&douyin_id, &wecom_id] {
        let trail = w.audit.trail(lead_id).await.unwrap();
        let merged = trail
            .iter()
            .filter(|e| e.action == leads_domain::audit::AuditAction::Merged)
            .count();
        assert_eq!(merged, 1, "{lead_id}: {trail:?}");
    }
    let sent = jobs(&w).await;
    let ids: std::collections::BTreeSet<_> = sent.iter().map(|j| j.job_id.clone()).collect();
    assert_eq!(
        ids.into_iter().collect::<Vec<_>>(),
        vec![format!("{douyin_id}#customer_returned#merge-{wecom_id}")]
    );
    assert_eq!(sent[0].kind, NotificationKind::CustomerReturned);
    assert_eq!(sent[0].recipients, vec![survivor.assignee.clone().unwrap()]);
    assert!(!serde_json::to_string(&sent).unwrap().contains(&number[3..]));

    // The WeCom contact writes again: merged into the Douyin lead too.
    let next = w
        .router
        .handle_lead(&wecom_lead(&w, &external), Utc::now())
        .await
        .unwrap();
    assert_eq!(next.outcome, Some(DedupOutcome::Merged));
    assert_eq!(next.lead_id.as_deref(), Some(douyin_id.as_str()));
}

#[tokio::test]
async fn wecom_first_then_douyin_then_phone_merges_the_douyin_lead_into_the_wecom_lead() {
    let Some(w) = world(AssignmentStrategy::RoundRobin, &[5, 5]).await else {
        return;
    };
    let api = api(&w);
    let contact = w
        .router
        .handle_lead(
            &wecom_lead(&w, &integration_tests::unique("wm")),
            Utc::now(),
        )
        .await
        .unwrap();
    let wecom_id = contact.lead_id.clone().unwrap();
    // The phone reaches Douyin before the consultant records it: a lead of its own.
    let number = phone();
    let douyin = w
        .router
        .handle_lead(
            &lead(&w, Platform::Douyin, "dy-jn", &number, Some("济南")),
            Utc::now(),
        )
        .await
        .unwrap();
    let douyin_id = douyin.lead_id.clone().unwrap();
    assert_eq!(douyin.outcome, Some(DedupOutcome::Created));

    let manager = token(&w, "jn-mgr", "jn", StaffRole::Manager);
    let (status, body) = call(
        &api,
        "POST",
        &format!("/leads/{wecom_id}/events"),
        Some(&manager),
        &phone_event(&number),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outcome"], "merged");
    assert_eq!(body["merged"]["survivor"], wecom_id.as_str());
    assert_eq!(body["merged"]["absorbed"], douyin_id.as_str());

    // The WeCom lead (earlier) has the customer now: phone, city, both touchpoints.
    let (_, body) = call(
        &api,
        "GET",
        &format!("/leads/{wecom_id}"),
        Some(&manager),
        "",
    )
    .await;
    assert_eq!(body["lead"]["phone"], format!("+86{number}"));
    assert!(!body["lead"]["customer_city"].is_null(), "{body}");
    assert_eq!(body["lead"]["touchpoints"], 2);
    assert_eq!(body["touchpoints"].as_array().unwrap().len(), 2);
    let (_, body) = call(
        &api,
        "GET",
        &format!("/leads/{douyin_id}"),
        Some(&manager),
        "",
    )
    .await;
    assert_eq!(body["lead"]["status"], "merged");
    assert_eq!(overlap(&w, "wecom#douyin").await, 1);

    // The phone's identity moved: the next Douyin lead merges into the WeCom lead.
    let again = w
        .router
        .handle_lead(
            &lead(&w, Platform::Douyin, "dy-jn", &number, None),
            Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(again.outcome, Some(DedupOutcome::Merged));
    assert_eq!(again.lead_id.as_deref(), Some(wecom_id.as_str()));
    assert_eq!(overlap(&w, "wecom#douyin").await, 2);
}

/// Open leads per consultant of the Jinan dealer, from their cap counters.
async fn open_counts(w: &World) -> std::collections::HashMap<String, u32> {
    let dealer = format!("{}-jn", w.brand);
    let roster = DynamoDirectory::new(
        w.stack.clients.dynamodb.clone(),
        &w.stack.settings.tables.directory,
    )
    .staff_of(&dealer)
    .await
    .unwrap();
    w.leads
        .loads(&dealer, &roster)
        .await
        .unwrap()
        .into_iter()
        .map(|l| (l.staff_id, l.open_leads))
        .collect()
}

#[tokio::test]
async fn a_manager_transfers_a_lead_and_puts_a_consultant_off_duty_and_no_one_else_can() {
    let Some(w) = world(AssignmentStrategy::RoundRobin, &[5, 5]).await else {
        return;
    };
    let api = api(&w);
    let id = |short: &str| format!("{}-jn-{short}", w.brand);
    let lead_id = w
        .router
        .handle_lead(
            &lead(&w, Platform::Douyin, "dy-jn", &phone(), None),
            Utc::now(),
        )
        .await
        .unwrap()
        .lead_id
        .unwrap();
    let holder = w
        .leads
        .get(&lead_id)
        .await
        .unwrap()
        .unwrap()
        .assignee
        .unwrap();
    let other = if holder == id("s0") {
        id("s1")
    } else {
        id("s0")
    };
    let (holder_short, other_short) = (&holder[holder.len() - 2..], &other[other.len() - 2..]);
    let manager = token(&w, "jn-mgr", "jn", StaffRole::Manager);
    let transfer = |to: &str| format!(r#"{{"to":"{to}"}}"#);
    let path = format!("/leads/{lead_id}/transfer");
    let before = open_counts(&w).await;

    // The consultant who has it, and another dealer's consultant, cannot.
    let holder_token = token(&w, &format!("jn-{holder_short}"), "jn", StaffRole::Sales);
    let (status, body) = call(&api, "POST", &path, Some(&holder_token), &transfer(&other)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
    let qd = token(&w, "qd-s0", "qd", StaffRole::Sales);
    let (status, _) = call(&api, "POST", &path, Some(&qd), &transfer(&other)).await;
    assert_eq!(status, 404, "another dealer's lead is not even there");
    // Bad targets and bodies: each its answer, nothing moved, nothing echoed.
    for (to, expected) in [
        ("nobody".to_string(), (404, "unknown_consultant")),
        (holder.clone(), (409, "same_consultant")),
        (id("mgr"), (409, "cannot_take")),
        (format!("{}-qd-s0", w.brand), (404, "unknown_consultant")),
    ] {
        let (status, body) = call(&api, "POST", &path, Some(&manager), &transfer(&to)).await;
        assert_eq!(
            (status, body["code"].as_str().unwrap()),
            expected,
            "{to}: {body}"
        );
    }
    let (status, body) = call(&api, "POST", &path, Some(&manager), r#"{"to":13812345678}"#).await;
    assert_eq!(status, 400);
    assert!(!body.to_string().contains("13812345678"), "{body}");
    assert_eq!(open_counts(&w).await, before);

    // The manager moves it: one slot each way, the audit names all three.
    let (status, body) = call(&api, "POST", &path, Some(&manager), &transfer(&other)).await;
    assert_eq!(status, 200, "{body}");
    let moved = w.leads.get(&lead_id).await.unwrap().unwrap();
    assert_eq!(moved.assignee.as_deref(), Some(other.as_str()));
    assert_eq!(moved.status, LeadStatus::Assigned);
    let after = open_counts(&w).await;
    assert_eq!(after[&holder], before[&holder] - 1);
    assert_eq!(after[&other], before[&other] + 1);
    let trail = w.audit.trail(&lead_id).await.unwrap();
    let handoff = trail
        .iter()
        .find(|e| e.action == leads_domain::audit::AuditAction::Reassigned)
        .expect("a reassigned entry");
    assert_eq!(handoff.actor, leads_domain::audit::Actor::Staff(id("mgr")));
    assert!(handoff.detail.contains(&holder) && handoff.detail.contains(&other));
    let jobs: Vec<NotificationJob> = drain(&w.stack.clients.sqs, &w.notifications)
        .await
        .iter()
        .filter_map(|b| serde_json::from_str(b).ok())
        .collect();
    assert!(
        jobs.iter()
            .any(|j| j.kind == NotificationKind::Reassigned && j.recipients == [other.clone()]),
        "{jobs:?}"
    );
    // The previous holder can no longer move it on.
    let (status, _) = call(
        &api,
        "POST",
        &format!("/leads/{lead_id}/events"),
        Some(&holder_token),
        r#"{"event":"contacted"}"#,
    )
    .await;
    assert_eq!(status, 403);

    // Duty: only the manager, only their own dealer's staff.
    let duty = |on: bool| format!(r#"{{"on_duty":{on}}}"#);
    let other_token = token(&w, &format!("jn-{other_short}"), "jn", StaffRole::Sales);
    let (status, _) = call(
        &api,
        "PUT",
        &format!("/staff/{holder}/duty"),
        Some(&other_token),
        &duty(false),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = call(
        &api,
        "PUT",
        &format!("/staff/{}-qd-s0/duty", w.brand),
        Some(&manager),
        &duty(false),
    )
    .await;
    assert_eq!(status, 404);
    let (status, body) = call(
        &api,
        "PUT",
        &format!("/staff/{other}/duty"),
        Some(&manager),
        &duty(false),
    )
    .await;
    assert_eq!(
        (status, body["on_duty"].as_bool()),
        (200, Some(false)),
        "{body}"
    );
    // The router honours it (a fresh snapshot): new leads go to the one on duty.
    let router = w.fresh_router();
    for _ in 0..2 {
        let p = router
            .handle_lead(
                &lead(&w, Platform::Douyin, "dy-jn", &phone(), None),
                Utc::now(),
            )
            .await
            .unwrap();
        assert_eq!(p.assignee.as_deref(), Some(holder.as_str()));
    }
    // And a transfer to someone off duty is refused.
    let (status, body) = call(&api, "POST", &path, Some(&manager), &transfer(&holder)).await;
    assert_eq!(status, 200, "back to the one on duty: {body}");
    let (status, body) = call(&api, "POST", &path, Some(&manager), &transfer(&other)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("cannot_take")),
        "{body}"
    );
    let (status, _) = call(
        &api,
        "PUT",
        &format!("/staff/{other}/duty"),
        Some(&manager),
        &duty(true),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn lost_and_invalid_take_a_reason_code_of_the_brand_and_keep_it() {
    let Some(w) = world(AssignmentStrategy::RoundRobin, &[5]).await else {
        return;
    };
    let api = api(&w);
    let id = w
        .router
        .handle_lead(
            &lead(&w, Platform::Douyin, "dy-jn", &phone(), None),
            Utc::now(),
        )
        .await
        .unwrap()
        .lead_id
        .unwrap();
    let me = token(&w, "jn-s0", "jn", StaffRole::Sales);
    let path = format!("/leads/{id}/events");
    for (body, expected) in [
        (r#"{"event":"lost"}"#, "reason_required"),
        (
            r#"{"event":"lost","reason":"13812345678"}"#,
            "unknown_reason",
        ),
        (
            r#"{"event":"marked_invalid","reason":"price"}"#,
            "unknown_reason",
        ),
        (
            r#"{"event":"contacted","reason":"price"}"#,
            "unexpected_reason",
        ),
    ] {
        let (status, answer) = call(&api, "POST", &path, Some(&me), body).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (422, Some(expected)),
            "{body}: {answer}"
        );
        assert!(!answer.to_string().contains("13812345678"), "{answer}");
    }
    let untouched = w.leads.get(&id).await.unwrap().unwrap();
    assert_eq!(
        (untouched.status, untouched.close_reason),
        (LeadStatus::Assigned, None)
    );

    let (status, answer) = call(
        &api,
        "POST",
        &path,
        Some(&me),
        r#"{"event":"lost","reason":"bought_other_brand"}"#,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let (_, body) = call(&api, "GET", &format!("/leads/{id}"), Some(&me), "").await;
    assert_eq!(body["lead"]["status"], "lost");
    assert_eq!(body["lead"]["close_reason"], "bought_other_brand");
    let trail = w.audit.trail(&id).await.unwrap();
    assert!(
        trail.iter().any(
            |e| e.action == leads_domain::audit::AuditAction::StatusChanged
                && e.detail.contains("bought_other_brand")
        ),
        "{trail:?}"
    );
}

#[tokio::test]
async fn lead_lists_page_through_the_dealer_index_within_each_role() {
    let Some(w) = world(AssignmentStrategy::RoundRobin, &[50, 50]).await else {
        return;
    };
    let api = api(&w);
    // Seven leads at Jinan (round robin: s0 and s1 alternate), one at Qingdao.
    let mut created = Vec::new();
    for _ in 0..7 {
        let p = w
            .router
            .handle_lead(
                &lead(&w, Platform::Douyin, "dy-jn", &phone(), None),
                Utc::now(),
            )
            .await
            .unwrap();
        created.push((p.lead_id.unwrap(), p.assignee.unwrap()));
    }
    w.router
        .handle_lead(
            &lead(&w, Platform::Douyin, "dy-jn", &phone(), Some("青岛")),
            Utc::now(),
        )
        .await
        .unwrap();
    let s0 = format!("{}-jn-s0", w.brand);
    let mine: Vec<&String> = created
        .iter()
        .filter(|(_, a)| *a == s0)
        .map(|(l, _)| l)
        .collect();
    let manager = token(&w, "jn-mgr", "jn", StaffRole::Manager);
    let sales = token(&w, "jn-s0", "jn", StaffRole::Sales);
    let ids = |body: &serde_json::Value| -> Vec<String> {
        body["leads"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["lead_id"].as_str().unwrap().to_string())
            .collect()
    };

    // The manager pages through all seven, three at a time, newest first,
    // each exactly once; no phone in full.
    let mut seen = Vec::new();
    let mut path = "/leads?limit=3".to_string();
    loop {
        let (status, body) = call(&api, "GET", &path, Some(&manager), "").await;
        assert_eq!(status, 200, "{body}");
        assert!(ids(&body).len() <= 3);
        assert!(!body.to_string().contains("\"phone\""), "{body}");
        seen.extend(ids(&body));
        match body["next_cursor"].as_str() {
            Some(c) => path = format!("/leads?limit=3&cursor={c}"),
            None => break,
        }
    }
    let mut expected: Vec<String> = created.iter().map(|(l, _)| l.clone()).collect();
    expected.reverse();
    assert_eq!(seen, expected, "newest first, each once, Jinan only");

    // A consultant: their own by default, never a colleague's.
    let (status, body) = call(&api, "GET", "/leads", Some(&sales), "").await;
    assert_eq!(status, 200);
    let mut own = ids(&body);
    own.sort();
    let mut want: Vec<String> = mine.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(own, want);
    let (status, _) = call(
        &api,
        "GET",
        &format!("/leads?assignee={}-jn-s1", w.brand),
        Some(&sales),
        "",
    )
    .await;
    assert_eq!(status, 403);
    // The manager filters by consultant and status.
    let (_, body) = call(
        &api,
        "GET",
        &format!("/leads?assignee={s0}&status=assigned"),
        Some(&manager),
        "",
    )
    .await;
    assert_eq!(ids(&body).len(), mine.len());
    let (_, body) = call(&api, "GET", "/leads?status=won", Some(&manager), "").await;
    assert!(ids(&body).is_empty());

    // Bad input: each its answer.
    let (_, first_page) = call(&api, "GET", "/leads?limit=3", Some(&manager), "").await;
    let cursor = first_page["next_cursor"].as_str().unwrap().to_string();
    for (path, expected) in [
        (
            format!("/leads?limit=3&status=won&cursor={cursor}"),
            (400, "bad_cursor"),
        ),
        (
            "/leads?from=2026-01-01&to=2026-12-01".to_string(),
            (422, "bad_range"),
        ),
        (
            "/leads?status=teleported".to_string(),
            (400, "bad_parameter"),
        ),
        (
            "/leads?phone=13812345678".to_string(),
            (400, "bad_parameter"),
        ),
    ] {
        let (status, body) = call(&api, "GET", &path, Some(&manager), "").await;
        assert_eq!(
            (status, body["code"].as_str().unwrap()),
            expected,
            "{path}: {body}"
        );
        assert!(!body.to_string().contains("13812345678"));
    }
}

#[tokio::test]
async fn a_manager_hands_over_all_open_leads_of_a_consultant_within_caps() {
    let Some(w) = world(AssignmentStrategy::RoundRobin, &[5, 5, 5]).await else {
        return;
    };
    let api = api(&w);
    let id = |short: &str| format!("{}-jn-{short}", w.brand);
    for _ in 0..6 {
        w.router
            .handle_lead(
                &lead(&w, Platform::Douyin, "dy-jn", &phone(), None),
                Utc::now(),
            )
            .await
            .unwrap();
    }
    let before = open_counts(&w).await;
    assert_eq!(
        [before[&id("s0")], before[&id("s1")], before[&id("s2")]],
        [2, 2, 2]
    );
    let manager = token(&w, "jn-mgr", "jn", StaffRole::Manager);
    let sales = token(&w, "jn-s1", "jn", StaffRole::Sales);
    let (status, _) = call(
        &api,
        "POST",
        &format!("/staff/{}/handover", id("s0")),
        Some(&sales),
        "{}",
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = call(&api, "POST", "/staff/nobody/handover", Some(&manager), "{}").await;
    assert_eq!(status, 404);

    // s0 leaves: each lead to the freest colleague (s1 and s2 tie at 3 free:
    // s1 first, then s2 has more).
    let (status, body) = call(
        &api,
        "POST",
        &format!("/staff/{}/handover", id("s0")),
        Some(&manager),
        "{}",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["moved"].as_array().unwrap().len(), 2, "{body}");
    assert!(body["kept"].as_array().unwrap().is_empty());
    let counts = open_counts(&w).await;
    assert_eq!(
        [counts[&id("s0")], counts[&id("s1")], counts[&id("s2")]],
        [0, 3, 3]
    );

    // s1's three to s2, who has room for two: one stays, with why.
    let (status, body) = call(
        &api,
        "POST",
        &format!("/staff/{}/handover", id("s1")),
        Some(&manager),
        &format!(r#"{{"to":"{}"}}"#, id("s2")),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["moved"].as_array().unwrap().len(), 2, "{body}");
    assert_eq!(body["kept"][0]["reason"], "cannot_take", "{body}");
    let counts = open_counts(&w).await;
    assert_eq!(
        [counts[&id("s0")], counts[&id("s1")], counts[&id("s2")]],
        [0, 1, 5]
    );
    // Every move is in its lead's audit trail, by the manager.
    let moved = body["moved"][0]["lead_id"].as_str().unwrap();
    let trail = w.audit.trail(moved).await.unwrap();
    assert!(trail
        .iter()
        .any(|e| e.action == leads_domain::audit::AuditAction::Reassigned
            && e.actor == leads_domain::audit::Actor::Staff(id("mgr"))
            && e.detail.starts_with("handed over")));
}

#[tokio::test]
async fn follow_ups_set_intent_and_next_call_and_show_on_the_timeline() {
    let Some(w) = world(AssignmentStrategy::RoundRobin, &[5, 5]).await else {
        return;
    };
    let api = api(&w);
    let p = w
        .router
        .handle_lead(
            &lead(&w, Platform::Douyin, "dy-jn", &phone(), None),
            Utc::now(),
        )
        .await
        .unwrap();
    let (id, holder) = (p.lead_id.unwrap(), p.assignee.unwrap());
    let short = |s: &str| s[s.len() - 2..].to_string();
    let other = if short(&holder) == "s0" { "s1" } else { "s0" };
    let me = token(
        &w,
        &format!("jn-{}", short(&holder)),
        "jn",
        StaffRole::Sales,
    );
    let colleague = token(&w, &format!("jn-{other}"), "jn", StaffRole::Sales);
    let path = format!("/leads/{id}/events");

    let (status, _) = call(
        &api,
        "POST",
        &path,
        Some(&colleague),
        r#"{"event":"follow_up","note":"hi","intent":"H"}"#,
    )
    .await;
    assert_eq!(status, 403);
    let past = (Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    for (body, expected) in [
        (
            r#"{"event":"follow_up","note":"hi"}"#.to_string(),
            (422, "follow_up_incomplete"),
        ),
        (
            format!(r#"{{"event":"follow_up","note":"hi","intent":"A","next_at":"{past}"}}"#),
            (422, "bad_next_at"),
        ),
        (
            r#"{"event":"follow_up","note":"hi","intent":"A","next_at":"tomorrow"}"#.to_string(),
            (422, "bad_next_at"),
        ),
        (
            r#"{"event":"contacted","note":"hi"}"#.to_string(),
            (400, "malformed"),
        ),
    ] {
        let (status, answer) = call(&api, "POST", &path, Some(&me), &body).await;
        assert_eq!(
            (status, answer["code"].as_str().unwrap()),
            expected,
            "{body}: {answer}"
        );
    }
    assert_eq!(
        w.leads.get(&id).await.unwrap().unwrap().follow_ups,
        0,
        "nothing recorded"
    );

    // Hot (H): the next call defaults to the brand's cadence, 24 h.
    let before = Utc::now();
    let (status, answer) = call(
        &api,
        "POST",
        &path,
        Some(&me),
        r#"{"event":"follow_up","note":"想周末试驾, 备用电话 13812345678","intent":"H"}"#,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let after = Utc::now();
    let record = w.leads.get(&id).await.unwrap().unwrap();
    assert_eq!(record.intent, Some(leads_domain::followup::Intent::H));
    assert_eq!(record.follow_ups, 1);
    let next = record.next_follow_up_at.unwrap();
    assert!(
        next >= before + chrono::Duration::hours(24) && next <= after + chrono::Duration::hours(24)
    );
    // An explicit next call.
    let at =
        (Utc::now() + chrono::Duration::days(3)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (status, _) = call(
        &api,
        "POST",
        &path,
        Some(&me),
        &format!(r#"{{"event":"follow_up","note":"周六来","intent":"A","next_at":"{at}"}}"#),
    )
    .await;
    assert_eq!(status, 200);
    let record = w.leads.get(&id).await.unwrap().unwrap();
    assert_eq!(
        (record.intent, record.follow_ups),
        (Some(leads_domain::followup::Intent::A), 2)
    );
    assert_eq!(
        record
            .next_follow_up_at
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        at
    );

    // The timeline: the touchpoint first, then the follow-ups with their
    // notes, the phone in a note masked.
    let (status, timeline) =
        call(&api, "GET", &format!("/leads/{id}/timeline"), Some(&me), "").await;
    assert_eq!(status, 200);
    let entries = timeline["entries"].as_array().unwrap();
    assert_eq!(entries[0]["kind"], "touchpoint", "{timeline}");
    let notes: Vec<&str> = entries
        .iter()
        .filter(|e| e["kind"] == "followed_up")
        .map(|e| e["detail"].as_str().unwrap())
        .collect();
    assert_eq!(notes.len(), 2, "{timeline}");
    assert!(notes[0].contains("想周末试驾") && notes[1].contains("周六来"));
    assert!(!timeline.to_string().contains("13812345678"), "{timeline}");
    // Another dealer's consultant sees no timeline and records no follow-up.
    let qd = token(&w, "qd-s0", "qd", StaffRole::Sales);
    let (status, _) = call(&api, "GET", &format!("/leads/{id}/timeline"), Some(&qd), "").await;
    assert_eq!(status, 404);
    let (status, _) = call(
        &api,
        "POST",
        &path,
        Some(&qd),
        r#"{"event":"follow_up","note":"hi","intent":"H"}"#,
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(w.leads.get(&id).await.unwrap().unwrap().follow_ups, 2);

    // A closed lead takes no follow-up.
    let (status, _) = call(
        &api,
        "POST",
        &path,
        Some(&me),
        r#"{"event":"lost","reason":"price"}"#,
    )
    .await;
    assert_eq!(status, 200);
    let (status, answer) = call(
        &api,
        "POST",
        &path,
        Some(&me),
        r#"{"event":"follow_up","note":"hi","intent":"N"}"#,
    )
    .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (409, Some("not_open")),
        "{answer}"
    );
}

/// The raw answer (an export is CSV, not JSON): status, headers, body.
async fn call_raw(
    api: &Api,
    path: &str,
    token: &str,
) -> (u16, lambda_http::http::HeaderMap, String) {
    let request: Request = lambda_http::http::Request::builder()
        .method("GET")
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::Empty)
        .unwrap();
    let response = api.handle(request).await;
    let text = match response.body() {
        Body::Text(t) => t.clone(),
        _ => String::new(),
    };
    (response.status().as_u16(), response.headers().clone(), text)
}

fn ops_token(brand: &str, staff_id: &str) -> String {
    auth::issue(
        SECRET,
        &Claims::staff(staff_id, "", brand, StaffRole::BrandOps, Utc::now(), 600),
    )
}

/// The brand's service KPIs through the API, against what the test did
/// (not what the system says): five leads, each one's fate chosen here.
///
/// - A, B, C: Jinan (local), round robin s0, s1, s0. A is contacted,
///   invited, marked valid, then lost; B is marked lost (reason); C is
///   left alone.
/// - D: received on Jinan's account from a Qingdao customer: remote to
///   Qingdao (Jinan's remote-out, Qingdao's remote-in).
/// - E: on the brand's own account with no city: unroutable, under
///   "(brand)", which only whole-brand operations see.
///
/// Jinan: leads 3, remote_out 1, assigned 3, first_call 1/3 (A), marking
/// 1/3 (A valid), valid 1/1, invite 1/1, visit 0/1. Qingdao: leads 1,
/// remote_in 1, assigned 1, first_call 0/1.
#[tokio::test]
async fn brand_kpis_and_exports_within_each_role() {
    let Some(w) = world(AssignmentStrategy::RoundRobin, &[50, 50]).await else {
        return;
    };
    let api = api(&w);
    let (jn, qd) = (format!("{}-jn", w.brand), format!("{}-qd", w.brand));
    let ops = |id: &str, dealers: &[&String]| serde_json::json!({"staff_id": id, "brand_id": w.brand, "name": "品牌运营", "dealers": dealers});
    w.add_brand_ops(&[ops("ops-all", &[]), ops("ops-qd", &[&qd])])
        .await;
    let phones: Vec<String> = (0..5).map(|_| phone()).collect();
    let mut jinan = Vec::new();
    for ph in &phones[..3] {
        let p = w
            .router
            .handle_lead(&lead(&w, Platform::Douyin, "dy-jn", ph, None), Utc::now())
            .await
            .unwrap();
        jinan.push((p.lead_id.unwrap(), p.assignee.unwrap()));
    }
    let remote = w
        .router
        .handle_lead(
            &lead(&w, Platform::Douyin, "dy-jn", &phones[3], Some("青岛")),
            Utc::now(),
        )
        .await
        .unwrap();
    assert!(
        matches!(&remote.route, Some(leads_domain::routing::Route::Remote { dealer_id, .. }) if *dealer_id == qd),
        "{:?}",
        remote.route
    );
    let unroutable = w
        .router
        .handle_lead(
            &lead(&w, Platform::Douyin, "dy-brand", &phones[4], None),
            Utc::now(),
        )
        .await
        .unwrap();
    assert!(
        matches!(
            unroutable.route,
            Some(leads_domain::routing::Route::Unroutable { .. })
        ),
        "{:?}",
        unroutable.route
    );
    let as_assignee = |i: usize| staff_token(&w, &jinan[i].1, "jn", StaffRole::Sales);
    let (a, b) = (&jinan[0].0, &jinan[1].0);
    for event in [
        r#"{"event": "contacted"}"#,
        r#"{"event": "invited"}"#,
        r#"{"event": "marked_valid"}"#,
        // Lost after the invitation: only the invitation's milestone says
        // it was invited.
        r#"{"event": "lost", "reason": "price"}"#,
    ] {
        let (status, body) = call(
            &api,
            "POST",
            &format!("/leads/{a}/events"),
            Some(&as_assignee(0)),
            event,
        )
        .await;
        assert_eq!(status, 200, "{event}: {body}");
    }
    let (status, body) = call(
        &api,
        "POST",
        &format!("/leads/{b}/events"),
        Some(&as_assignee(1)),
        r#"{"event": "lost", "reason": "price"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let metrics = format!("/brands/{}/metrics", w.brand);
    let row = |body: &serde_json::Value, key: &str| {
        body["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["key"] == key)
            .cloned()
    };
    let ratio = |r: &serde_json::Value, name: &str| {
        (
            r[name]["numerator"].as_u64().unwrap(),
            r[name]["denominator"].as_u64().unwrap(),
        )
    };
    // Whole-brand operations: both dealers and the brand account's row.
    let (status, body) = call(
        &api,
        "GET",
        &metrics,
        Some(&ops_token(&w.brand, "ops-all")),
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let j = row(&body, &jn).expect("Jinan's row");
    assert_eq!(j["name"], "济南店");
    assert_eq!(
        (
            j["leads"].as_u64(),
            j["remote_out"].as_u64(),
            j["assigned"].as_u64()
        ),
        (Some(3), Some(1), Some(3)),
        "{j}"
    );
    assert_eq!(ratio(&j, "first_call"), (1, 3));
    assert_eq!(ratio(&j, "marking"), (1, 3));
    assert_eq!(ratio(&j, "valid"), (1, 1));
    assert_eq!(ratio(&j, "invite"), (1, 1));
    assert_eq!(ratio(&j, "visit"), (0, 1));
    let q = row(&body, &qd).expect("Qingdao's row");
    assert_eq!(
        (q["leads"].as_u64(), q["remote_in"].as_u64()),
        (Some(3 - 2), Some(1))
    );
    assert_eq!(ratio(&q, "first_call"), (0, 1));
    let brand_row = row(&body, leads_domain::kpi::BRAND_ACCOUNT).expect("the brand account's row");
    assert_eq!(brand_row["unroutable"].as_u64(), Some(1));
    assert_eq!(
        (
            body["total"]["leads"].as_u64(),
            body["total"]["unroutable"].as_u64()
        ),
        (Some(4), Some(1))
    );
    assert!(body["overlap"].is_array(), "{body}");

    // By consultant: s0 has A and C, s1 has B.
    let (_, by_staff) = call(
        &api,
        "GET",
        &format!("{metrics}?group_by=consultant"),
        Some(&ops_token(&w.brand, "ops-all")),
        "",
    )
    .await;
    let s0 = row(&by_staff, &format!("{}-jn-s0", w.brand)).unwrap();
    assert_eq!(
        (s0["leads"].as_u64(), ratio(&s0, "first_call")),
        (Some(2), (1, 2))
    );

    // Jinan's manager: Jinan only, no brand-wide overlap.
    let manager = token(&w, "jn-mgr", "jn", StaffRole::Manager);
    let (status, body) = call(&api, "GET", &metrics, Some(&manager), "").await;
    assert_eq!(status, 200, "{body}");
    let keys: Vec<&str> = body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, [jn.as_str()]);
    assert_eq!(body["total"]["unroutable"].as_u64(), Some(0));
    assert!(body.get("overlap").is_none());

    // Operations for Qingdao only: Qingdao's figures and leads, not Jinan's.
    let ops_qd = ops_token(&w.brand, "ops-qd");
    let (_, body) = call(&api, "GET", &metrics, Some(&ops_qd), "").await;
    assert_eq!(body["rows"].as_array().unwrap().len(), 1, "{body}");
    assert!(row(&body, &qd).is_some());
    let (status, body) = call(
        &api,
        "GET",
        &format!("/leads?dealer={qd}"),
        Some(&ops_qd),
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["leads"].as_array().unwrap().len(), 1);
    let (status, _) = call(
        &api,
        "GET",
        &format!("/leads?dealer={jn}"),
        Some(&ops_qd),
        "",
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = call(&api, "GET", "/leads", Some(&ops_qd), "").await;
    assert_eq!(status, 400, "brand operations name the dealer");
    // A lead of an overseen dealer reads masked; another dealer's is 404.
    let remote_id = remote.lead_id.clone().unwrap();
    let (status, body) = call(
        &api,
        "GET",
        &format!("/leads/{remote_id}"),
        Some(&ops_qd),
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["lead"]["phone"].is_null(), "{body}");
    assert!(body["lead"]["phone_masked"]
        .as_str()
        .unwrap()
        .contains("****"));
    assert!(!body.to_string().contains(phones[3].as_str()));
    for view in ["audit", "timeline"] {
        let path = format!("/leads/{remote_id}/{view}");
        let (status, body) = call(&api, "GET", &path, Some(&ops_qd), "").await;
        assert_eq!(status, 200, "{view}: {body}");
        assert!(!body.to_string().contains(phones[3].as_str()));
    }
    for path in [
        format!("/leads/{a}"),
        format!("/leads/{a}/audit"),
        format!("/leads/{a}/timeline"),
    ] {
        let (status, _) = call(&api, "GET", &path, Some(&ops_qd), "").await;
        assert_eq!(
            status, 404,
            "Jinan's lead is not Qingdao operations' to read: {path}"
        );
    }
    // Brand operations read; they change no lead.
    let (status, _) = call(
        &api,
        "POST",
        &format!("/leads/{}/events", remote.lead_id.as_ref().unwrap()),
        Some(&ops_qd),
        r#"{"event": "contacted"}"#,
    )
    .await;
    assert_eq!(status, 403);

    // The boundaries: a consultant, someone not in the directory, another
    // brand's operations (403, never an empty 200), an unknown brand (404),
    // a range over 92 days (422), an unknown grouping (400).
    let sales = token(&w, "jn-s0", "jn", StaffRole::Sales);
    for (who, path, want) in [
        (sales.clone(), metrics.clone(), 403),
        (ops_token(&w.brand, "ops-nobody"), metrics.clone(), 403),
        (ops_token("another-brand", "ops-all"), metrics.clone(), 403),
        (
            ops_token(&w.brand, "ops-all"),
            "/brands/no-such-brand/metrics".into(),
            404,
        ),
        (
            ops_token(&w.brand, "ops-all"),
            format!("{metrics}?from=2026-01-01&to=2026-06-01"),
            422,
        ),
        (
            ops_token(&w.brand, "ops-all"),
            format!("{metrics}?group_by=city"),
            400,
        ),
        (sales.clone(), format!("/leads?dealer={qd}"), 403),
    ] {
        let (status, body) = call(&api, "GET", &path, Some(&who), "").await;
        assert_eq!(status, want, "{path}: {body}");
    }

    // Exports: UTF-8 with a BOM, Chinese headers, phones masked.
    let (status, headers, csv) = call_raw(
        &api,
        &format!("{metrics}/export.csv"),
        &ops_token(&w.brand, "ops-all"),
    )
    .await;
    assert_eq!(status, 200, "{csv}");
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    assert!(csv.starts_with('\u{feff}'));
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].contains("线索数 (leads)"), "{}", lines[0]);
    // Header, Jinan, Qingdao, the brand account, the total.
    assert_eq!(lines.len(), 5, "{csv}");
    assert!(lines[4].starts_with("合计"));
    let (status, _, csv) = call_raw(&api, "/leads/export.csv", &manager).await;
    assert_eq!(status, 200);
    assert_eq!(csv.lines().count(), 1 + 3, "{csv}");
    assert!(csv.contains("****"), "{csv}");
    for ph in &phones {
        assert!(!csv.contains(ph.as_str()), "no phone in full: {csv}");
    }
}

/// A leave window set by the manager: inside it the consultant gets no new
/// lead from the router and no transfer; cleared, they are back. Only the
/// dealer's manager sets it, and a window that ended or runs backwards is
/// refused.
#[tokio::test]
async fn a_consultant_on_leave_gets_no_leads_until_the_manager_clears_it() {
    let Some(w) = world(AssignmentStrategy::RoundRobin, &[50, 50]).await else {
        return;
    };
    let api = api(&w);
    let (s0, s1) = (format!("{}-jn-s0", w.brand), format!("{}-jn-s1", w.brand));
    let manager = token(&w, "jn-mgr", "jn", StaffRole::Manager);
    let sales = token(&w, "jn-s1", "jn", StaffRole::Sales);
    let now = Utc::now();
    let window = |from: chrono::DateTime<Utc>, to: chrono::DateTime<Utc>| {
        format!(
            r#"{{"from":"{}","to":"{}"}}"#,
            from.to_rfc3339(),
            to.to_rfc3339()
        )
    };
    let leave_path = format!("/staff/{s0}/leave");
    let this_week = window(
        now - chrono::Duration::hours(1),
        now + chrono::Duration::days(7),
    );
    for (who, body, want) in [
        (&sales, this_week.as_str(), 403),
        (
            &manager,
            &window(
                now - chrono::Duration::days(2),
                now - chrono::Duration::days(1),
            ),
            422,
        ),
        (
            &manager,
            &window(
                now + chrono::Duration::days(2),
                now + chrono::Duration::days(1),
            ),
            422,
        ),
        (&manager, r#"{"from":"2026-12-01T00:00:00Z"}"#, 400),
    ] {
        let (status, answer) = call(&api, "PUT", &leave_path, Some(who), body).await;
        assert_eq!(status, want, "{body}: {answer}");
    }
    let (status, answer) = call(&api, "PUT", &leave_path, Some(&manager), &this_week).await;
    assert_eq!(status, 200, "{answer}");

    // A fresh router (its directory snapshot is a minute old otherwise).
    let on_leave = w.fresh_router();
    let mut lead_ids = Vec::new();
    for _ in 0..3 {
        let p = on_leave
            .handle_lead(
                &lead(&w, Platform::Douyin, "dy-jn", &phone(), None),
                Utc::now(),
            )
            .await
            .unwrap();
        assert_eq!(p.assignee.as_deref(), Some(s1.as_str()), "s0 is on leave");
        lead_ids.push(p.lead_id.unwrap());
    }
    let (status, answer) = call(
        &api,
        "POST",
        &format!("/leads/{}/transfer", lead_ids[0]),
        Some(&manager),
        &format!(r#"{{"to":"{s0}"}}"#),
    )
    .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (409, Some("cannot_take")),
        "{answer}"
    );

    // Cleared: round robin reaches s0 again within two leads.
    let (status, _) = call(
        &api,
        "PUT",
        &leave_path,
        Some(&manager),
        r#"{"leave":null}"#,
    )
    .await;
    assert_eq!(status, 200);
    let back = w.fresh_router();
    let mut assignees = Vec::new();
    for _ in 0..2 {
        let p = back
            .handle_lead(
                &lead(&w, Platform::Douyin, "dy-jn", &phone(), None),
                Utc::now(),
            )
            .await
            .unwrap();
        assignees.push(p.assignee.unwrap());
    }
    assert!(assignees.contains(&s0), "{assignees:?}");
}

/// A dealer with DCC screening: a new lead goes to its DCC agent, who
/// screens it and hands it to a sales consultant; the agent's slot is freed,
/// the consultant's taken, the audit entry names both. Nobody else hands it
/// off, and only to sales.
#[tokio::test]
async fn a_dcc_agent_screens_a_lead_and_hands_it_to_sales() {
    let Some(w) = world(AssignmentStrategy::RoundRobin, &[50, 50]).await else {
        return;
    };
    let api = api(&w);
    let jn = format!("{}-jn", w.brand);
    let directory = DynamoDirectory::new(
        w.stack.clients.dynamodb.clone(),
        &w.stack.settings.tables.directory,
    );
    let mut dealer = directory.dealer(&jn).await.unwrap().unwrap();
    dealer.dcc_screening = true;
    let dcc_id = format!("{jn}-dcc1");
    directory
        .save(&leads_domain::directory_file::Directory {
            brands: vec![],
            dealers: vec![dealer],
            staff: vec![serde_json::from_value(serde_json::json!({
                "staff_id": dcc_id, "dealer_id": jn, "name": "邀约专员", "role": "dcc",
                "on_duty": true, "cap": 50
            }))
            .unwrap()],
            accounts: vec![],
            brand_ops: vec![],
        })
        .await
        .unwrap();
    let router = w.fresh_router();
    let p = router
        .handle_lead(
            &lead(&w, Platform::Douyin, "dy-jn", &phone(), None),
            Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(
        p.assignee.as_deref(),
        Some(dcc_id.as_str()),
        "the DCC agent screens first"
    );
    let lead_id = p.lead_id.unwrap();
    let dcc = staff_token(&w, &dcc_id, "jn", StaffRole::Dcc);
    let (status, body) = call(
        &api,
        "POST",
        &format!("/leads/{lead_id}/events"),
        Some(&dcc),
        r#"{"event":"contacted"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let s0 = format!("{jn}-s0");
    let path = format!("/leads/{lead_id}/handoff");
    let to = |who: &str| format!(r#"{{"to":"{who}"}}"#);
    // A consultant cannot take it for themselves; the agent only to sales.
    let (status, _) = call(
        &api,
        "POST",
        &path,
        Some(&token(&w, "jn-s0", "jn", StaffRole::Sales)),
        &to(&s0),
    )
    .await;
    assert_eq!(status, 403);
    let (status, body) = call(&api, "POST", &path, Some(&dcc), &to(&format!("{jn}-mgr"))).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("cannot_take")),
        "{body}"
    );
    let before = open_counts(&w).await;
    let (status, body) = call(&api, "POST", &path, Some(&dcc), &to(&s0)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["assignee"], s0.as_str());
    let after = open_counts(&w).await;
    assert_eq!(
        after[&dcc_id] + 1,
        before[&dcc_id],
        "the agent's slot is freed"
    );
    assert_eq!(after[&s0], before[&s0] + 1, "the consultant's is taken");
    let (_, trail) = call(
        &api,
        "GET",
        &format!("/leads/{lead_id}/audit"),
        Some(&token(&w, "jn-mgr", "jn", StaffRole::Manager)),
        "",
    )
    .await;
    let handed = trail["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| {
            e["detail"]
                .as_str()
                .unwrap_or("")
                .contains("handed to sales by DCC")
        })
        .expect("the hand-off is audited");
    assert_eq!(handed["actor"]["id"], dcc_id.as_str(), "{handed}");
    assert!(handed["detail"].as_str().unwrap().contains(&s0));
    // It is the consultant's now: the agent cannot hand it again.
    let (status, _) = call(&api, "POST", &path, Some(&dcc), &to(&format!("{jn}-s1"))).await;
    assert_eq!(status, 403);
}

/// A manager hands over a consultant who left: the job that tells the new
/// consultant carries the WeCom transfer of the customer (a WeCom contact),
/// from the old member to the new one, by WeCom's resigned-member transfer.
#[tokio::test]
async fn a_handover_moves_a_wecom_contact_to_the_new_consultant_in_wecom() {
    let Some(w) = world(AssignmentStrategy::RoundRobin, &[50, 50]).await else {
        return;
    };
    let api = api(&w);
    let jn = format!("{}-jn", w.brand);
    let member = |i: u32| {
        serde_json::from_value::<leads_domain::directory::Staff>(serde_json::json!({
            "staff_id": format!("{jn}-s{i}"), "dealer_id": jn, "name": format!("顾问{i}"),
            "role": "sales", "on_duty": true, "cap": 50, "wecom_userid": format!("wx-s{i}")
        }))
        .unwrap()
    };
    DynamoDirectory::new(
        w.stack.clients.dynamodb.clone(),
        &w.stack.settings.tables.directory,
    )
    .save(&leads_domain::directory_file::Directory {
        brands: vec![],
        dealers: vec![],
        staff: vec![member(0), member(1)],
        accounts: vec![],
        brand_ops: vec![],
    })
    .await
    .unwrap();
    let external = integration_tests::unique("wm");
    let p = w
        .fresh_router()
        .handle_lead(&wecom_lead(&w, &external), Utc::now())
        .await
        .unwrap();
    let holder = p.assignee.unwrap();
    let other = if holder.ends_with("-s0") {
        format!("{jn}-s1")
    } else {
        format!("{jn}-s0")
    };
    jobs(&w).await; // the assignment's
    let manager = token(&w, "jn-mgr", "jn", StaffRole::Manager);
    let (status, body) = call(
        &api,
        "POST",
        &format!("/staff/{holder}/handover"),
        Some(&manager),
        &format!(r#"{{"to":"{other}","left":true}}"#),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["moved"].as_array().unwrap().len(), 1, "{body}");
    let sent = jobs(&w).await;
    let job = sent
        .iter()
        .find(|j| j.kind == NotificationKind::Reassigned)
        .expect("the new consultant is told");
    let wx = |id: &str| format!("wx-{}", id.rsplit('-').next().unwrap());
    assert_eq!(
        job.wecom_transfer,
        Some(leads_domain::notification::WecomTransfer {
            corp_id: format!("{}-wx", w.brand),
            external_userid: external.clone(),
            handover_userid: wx(&holder),
            takeover_userid: wx(&other),
            resigned: true,
        })
    );
}

/// A series name a platform sent as a spreadsheet formula is exported as
/// text (CSV injection): the cell starts with `'`.
#[tokio::test]
async fn an_export_never_hands_excel_a_formula() {
    let Some(w) = world(AssignmentStrategy::RoundRobin, &[50]).await else {
        return;
    };
    let api = api(&w);
    let mut hostile = lead(&w, Platform::Douyin, "dy-jn", &phone(), None);
    hostile.series_interest = vec![r#"=HYPERLINK("http://evil.example","H6")"#.into()];
    w.router.handle_lead(&hostile, Utc::now()).await.unwrap();
    let manager = token(&w, "jn-mgr", "jn", StaffRole::Manager);
    let (status, _, csv) = call_raw(&api, "/leads/export.csv", &manager).await;
    assert_eq!(status, 200);
    assert!(
        csv.contains(r#""'=HYPERLINK(""http://evil.example"",""H6"")""#),
        "{csv}"
    );
    assert!(
        !csv.contains(",=HYPERLINK") && !csv.contains(",\"=HYPERLINK"),
        "{csv}"
    );
}

/// An unrouted lead (no dealer took it) is the brand's to place: brand-wide
/// operations read it with the full phone, audited; operations of one
/// dealer, and a dealer's manager, do not see it at all.
#[tokio::test]
async fn brand_wide_operations_read_an_unrouted_leads_phone_and_are_audited() {
    let Some(w) = world(AssignmentStrategy::RoundRobin, &[5]).await else {
        return;
    };
    let api = api(&w);
    let qd = format!("{}-qd", w.brand);
    let ops = |id: &str, dealers: &[&String]| serde_json::json!({"staff_id": id, "brand_id": w.brand, "name": "品牌运营", "dealers": dealers});
    w.add_brand_ops(&[ops("ops-all", &[]), ops("ops-qd", &[&qd])])
        .await;
    let number = phone();
    let p = w
        .router
        .handle_lead(
            &lead(&w, Platform::Douyin, "dy-brand", &number, None),
            Utc::now(),
        )
        .await
        .unwrap();
    let id = p.lead_id.unwrap();
    let path = format!("/leads/{id}");

    let all = ops_token(&w.brand, "ops-all");
    let (status, body) = call(&api, "GET", &path, Some(&all), "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["lead"]["phone"], format!("+86{number}"), "{body}");
    let trail = w.audit.trail(&id).await.unwrap();
    let shown: Vec<_> = trail
        .iter()
        .filter(|e| e.action == leads_domain::audit::AuditAction::PhoneShown)
        .collect();
    assert_eq!(shown.len(), 1, "{trail:?}");
    assert_eq!(
        shown[0].actor,
        leads_domain::audit::Actor::Staff("ops-all".into())
    );

    let one_dealer = ops_token(&w.brand, "ops-qd");
    assert_eq!(call(&api, "GET", &path, Some(&one_dealer), "").await.0, 404);
    let manager = token(&w, "jn-mgr", "jn", StaffRole::Manager);
    assert_eq!(call(&api, "GET", &path, Some(&manager), "").await.0, 404);
    // Another brand's operations: as if it did not exist.
    let stranger = ops_token("another-brand", "ops-all");
    let (status, _) = call(&api, "GET", &path, Some(&stranger), "").await;
    assert_ne!(status, 200);
}

/// 战败审核 (`lost_approval`): a consultant's `lost` waits for a manager,
/// who is told; the lead stays open with its consultant meanwhile. A
/// rejection drops the request; an approval closes the lead with the
/// requested reason (freeing the consultant's slot) and tells the CRM. A
/// consultant cannot approve their own request, and a manager's own `lost`
/// needs nobody.
#[tokio::test]
async fn a_consultants_lost_waits_for_a_managers_approval_where_the_brand_audits_them() {
    let Some(w) = world(AssignmentStrategy::RoundRobin, &[5]).await else {
        return;
    };
    w.change_brand(|b| b.lost_approval = true).await;
    let api = api(&w);
    let new_lead = || async {
        w.router
            .handle_lead(
                &lead(&w, Platform::Douyin, "dy-jn", &phone(), None),
                Utc::now(),
            )
            .await
            .unwrap()
            .lead_id
            .unwrap()
    };
    let sales = token(&w, "jn-s0", "jn", StaffRole::Sales);
    let manager = token(&w, "jn-mgr", "jn", StaffRole::Manager);
    let event = |id: &str, body: &'static str, who: &str| {
        let (api, path, who) = (&api, format!("/leads/{id}/events"), who.to_string());
        async move { call(api, "POST", &path, Some(&who), body).await }
    };
    let lost = r#"{"event":"lost","reason":"bought_other_brand"}"#;

    let id = new_lead().await;
    jobs(&w).await;
    // The consultant asks; a bad reason is still 422, before any request.
    let (status, answer) = event(&id, r#"{"event":"lost","reason":"nope"}"#, &sales).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (422, Some("unknown_reason"))
    );
    let (status, answer) = event(&id, lost, &sales).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["lost_request"], "pending");
    assert_eq!(answer["status"], "assigned");
    let pending = w.leads.get(&id).await.unwrap().unwrap();
    assert_eq!(pending.status, LeadStatus::Assigned, "still open");
    let request = pending.lost_request.clone().expect("a pending request");
    assert_eq!(request.reason, "bought_other_brand");
    assert_eq!(request.by, format!("{}-jn-s0", w.brand));
    assert_eq!(open_counts(&w).await[&format!("{}-jn-s0", w.brand)], 1);
    // Asking again changes nothing; the managers were told once.
    let (status, answer) = event(&id, lost, &sales).await;
    assert_eq!(
        (status, &answer["lost_request"]),
        (200, &serde_json::json!("pending"))
    );
    let told: Vec<NotificationJob> = jobs(&w)
        .await
        .into_iter()
        .filter(|j| j.kind == NotificationKind::LostRequested)
        .collect();
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(
        told[0].recipients.is_empty(),
        "empty: the dealer's managers"
    );
    assert_eq!(told[0].lead_id, id);
    // The consultant cannot decide their own request.
    let (status, _) = event(&id, r#"{"event":"approve_lost"}"#, &sales).await;
    assert_eq!(status, 403);

    // Rejected: the request is gone, the consultant goes on.
    let (status, answer) = event(&id, r#"{"event":"reject_lost"}"#, &manager).await;
    assert_eq!(
        (status, &answer["lost_request"]),
        (200, &serde_json::json!("rejected"))
    );
    let rejected = w.leads.get(&id).await.unwrap().unwrap();
    assert_eq!(
        (rejected.status, rejected.lost_request),
        (LeadStatus::Assigned, None)
    );
    let (status, answer) = event(&id, r#"{"event":"reject_lost"}"#, &manager).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (409, Some("no_lost_request"))
    );
    let (status, _) = event(&id, r#"{"event":"contacted"}"#, &sales).await;
    assert_eq!(status, 200);

    // Asked again, approved: lost with the consultant's reason, the slot freed.
    let (status, _) = event(&id, lost, &sales).await;
    assert_eq!(status, 200);
    drain(&w.stack.clients.sqs, &w.crm).await;
    let (status, answer) = event(&id, r#"{"event":"approve_lost"}"#, &manager).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "lost");
    let closed = w.leads.get(&id).await.unwrap().unwrap();
    assert_eq!(closed.status, LeadStatus::Lost);
    assert_eq!(closed.close_reason.as_deref(), Some("bought_other_brand"));
    assert_eq!(closed.lost_request, None);
    assert_eq!(open_counts(&w).await[&format!("{}-jn-s0", w.brand)], 0);
    let crm: Vec<leads_domain::crm::CrmEvent> = drain(&w.stack.clients.sqs, &w.crm)
        .await
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    assert_eq!(crm.len(), 1, "{crm:?}");
    let change = crm[0].status.as_ref().unwrap();
    assert_eq!(
        (change.to, change.reason.as_deref(), change.by.as_str()),
        (
            LeadStatus::Lost,
            Some("bought_other_brand"),
            format!("{}-jn-mgr", w.brand).as_str()
        )
    );
    let trail = w.audit.trail(&id).await.unwrap();
    let details: Vec<&str> = trail.iter().map(|e| e.detail.as_str()).collect();
    assert!(
        details.iter().any(|d| d.contains("lost requested")),
        "{details:?}"
    );
    assert!(
        details.iter().any(|d| d.contains("rejected")),
        "{details:?}"
    );
    assert!(
        details.iter().any(|d| d.contains("approved")),
        "{details:?}"
    );

    // A manager's own lost needs nobody's approval.
    let other = new_lead().await;
    let (status, answer) = event(&other, lost, &manager).await;
    assert_eq!(
        (status, &answer["status"]),
        (200, &serde_json::json!("lost"))
    );
}

/// Tags (标签): automatic ones read off the lead on every read; manual ones
/// by the assignee or a manager, checked (no phone, no `:`, at most 20),
/// audited, never by another consultant.
#[tokio::test]
async fn a_lead_shows_automatic_tags_and_keeps_the_manual_ones_its_people_set() {
    let Some(w) = world(AssignmentStrategy::RoundRobin, &[5, 5]).await else {
        return;
    };
    let api = api(&w);
    let number = phone();
    let p = w
        .router
        .handle_lead(
            &lead(&w, Platform::Douyin, "dy-jn", &number, None),
            Utc::now(),
        )
        .await
        .unwrap();
    let id = p.lead_id.unwrap();
    let assignee = p.assignee.unwrap();
    // The customer comes back on Autohome: its channel joins the tags.
    w.router
        .handle_lead(
            &lead(&w, Platform::Autohome, "ah-jn", &number, None),
            Utc::now(),
        )
        .await
        .unwrap();
    let me = staff_token(&w, &assignee, "jn", StaffRole::Sales);
    let other = ["jn-s0", "jn-s1"]
        .map(|s| format!("{}-{s}", w.brand))
        .into_iter()
        .find(|s| *s != assignee)
        .unwrap();
    let colleague = staff_token(&w, &other, "jn", StaffRole::Sales);
    let manager = token(&w, "jn-mgr", "jn", StaffRole::Manager);
    let path = format!("/leads/{id}/tags");

    let (status, body) = call(&api, "GET", &format!("/leads/{id}"), Some(&me), "").await;
    assert_eq!(status, 200);
    let auto: Vec<&str> = body["auto_tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    for expected in [
        "channel:autohome",
        "channel:douyin",
        "route:local",
        "series:H5",
        "scene:private_message",
    ] {
        assert!(auto.contains(&expected), "{expected} in {auto:?}");
    }

    let (status, body) = call(
        &api,
        "POST",
        &path,
        Some(&me),
        r#"{"add":["VIP","周末试驾"]}"#,
    )
    .await;
    assert_eq!(
        (status, &body["tags"]),
        (200, &serde_json::json!(["VIP", "周末试驾"]))
    );
    let (status, body) = call(
        &api,
        "POST",
        &path,
        Some(&manager),
        r#"{"remove":["VIP"],"add":["二手置换"]}"#,
    )
    .await;
    assert_eq!(
        (status, &body["tags"]),
        (200, &serde_json::json!(["周末试驾", "二手置换"]))
    );
    for (tag_body, code) in [
        (r#"{"add":["call 13812345678"]}"#, "tag_holds_phone"),
        (r#"{"add":["series:H9"]}"#, "bad_tag"),
        (r#"{"add":[""]}"#, "bad_tag"),
    ] {
        let (status, body) = call(&api, "POST", &path, Some(&me), tag_body).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (422, Some(code)),
            "{tag_body}"
        );
        assert!(!body.to_string().contains("13812345678"), "{body}");
    }
    let many: Vec<String> = (0..20).map(|i| format!("t{i}")).collect();
    let (status, body) = call(
        &api,
        "POST",
        &path,
        Some(&me),
        &serde_json::json!({ "add": many }).to_string(),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("too_many_tags"))
    );
    let (status, _) = call(
        &api,
        "POST",
        &path,
        Some(&colleague),
        r#"{"add":["mine now"]}"#,
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = call(&api, "POST", &path, Some(&me), r#"{"tags":["x"]}"#).await;
    assert_eq!(status, 400);

    let stored = w.leads.get(&id).await.unwrap().unwrap();
    assert_eq!(stored.tags, ["周末试驾", "二手置换"]);
    let tagged = w
        .audit
        .trail(&id)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == leads_domain::audit::AuditAction::Tagged)
        .count();
    assert_eq!(tagged, 2);
}
