//! The staff API against the emulator: authentication, dealer scoping, status
//! transitions, claims, and the audit trail they leave.

use api::Api;
use chrono::Utc;
use integration_tests::world::{lead, phone, world, World};
use lambda_http::{Body, Request};
use leads_aws::store::{DirectoryStore, DynamoDirectory};
use leads_domain::auth::{self, Claims};
use leads_domain::directory::{AssignmentStrategy, Platform, StaffRole};

const SECRET: &[u8] = b"api-test-secret";

fn api(w: &World) -> Api {
    Api::new(&w.stack.settings, &w.stack.clients, SECRET.to_vec())
}

fn token(w: &World, staff: &str, dealer: &str, role: StaffRole) -> String {
    auth::issue(
        SECRET,
        &Claims {
            staff_id: format!("{}-{staff}", w.brand),
            dealer_id: format!("{}-{dealer}", w.brand),
            brand_id: w.brand.clone(),
            role,
            exp: Utc::now().timestamp() + 600,
        },
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
