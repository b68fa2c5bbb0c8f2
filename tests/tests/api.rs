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
        call(&api, "POST", &path, Some(&me), r#"{"event":"lost"}"#)
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
