//! Staff tokens without the signing key on an operator's machine: `leadctl
//! token --invoke-event` writes the event of a direct invoke of the API
//! function, which signs with its own (run-time) secret and takes the role
//! from the directory. The same route through the HTTP API (any other request
//! context) does not exist.

use api::Api;
use integration_tests::leadctl;
use integration_tests::world::world;
use lambda_http::Body;
use leads_domain::auth;
use leads_domain::directory::{AssignmentStrategy, StaffRole};

const SECRET: &[u8] = b"token-test-secret";

async fn answer(api: &Api, event: &str) -> (u16, serde_json::Value) {
    let request = lambda_http::request::from_str(event).expect("an API Gateway event");
    let response = api.handle(request).await;
    let body = match response.body() {
        Body::Text(t) => t.clone(),
        _ => String::new(),
    };
    (
        response.status().as_u16(),
        serde_json::from_str(&body).unwrap(),
    )
}

fn event(staff: &str, dealer: &str, brand: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "token",
        "--staff",
        staff,
        "--dealer",
        dealer,
        "--brand",
        brand,
        "--invoke-event",
    ];
    args.extend_from_slice(extra);
    // No signing key in leadctl's environment: it must not need one.
    let (ok, out, err) = leadctl(&args, &[("STAFF_TOKEN_SECRET_ID", "")]);
    assert!(ok, "{out}{err}");
    out
}

#[tokio::test]
async fn a_token_issued_by_direct_invoke_carries_the_directorys_role() {
    let Some(w) = world(AssignmentStrategy::RoundRobin, &[5]).await else {
        return;
    };
    let api = Api::new(&w.stack.settings, &w.stack.clients, SECRET.to_vec());
    let (brand, dealer) = (w.brand.clone(), format!("{}-jn", w.brand));
    let manager = format!("{dealer}-mgr");

    // Asked for "sales": the directory says manager.
    let (status, body) = answer(
        &api,
        &event(
            &manager,
            &dealer,
            &brand,
            &["--role", "sales", "--hours", "2"],
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let claims = auth::Keyring::single("k1", SECRET)
        .verify(
            body["token"].as_str().unwrap(),
            auth::AUD_STAFF,
            chrono::Utc::now(),
        )
        .expect("signed with the function's secret");
    assert_eq!(
        (
            claims.staff_id.as_str(),
            claims.dealer_id.as_str(),
            claims.brand_id.as_str()
        ),
        (manager.as_str(), dealer.as_str(), brand.as_str())
    );
    assert_eq!(claims.role, StaffRole::Manager);
    let left = claims.exp - chrono::Utc::now().timestamp();
    assert!((7100..=7200).contains(&left), "{left}");

    // The token works on the staff API: an unknown lead is 404, not 401.
    let get = lambda_http::http::Request::builder()
        .method("GET")
        .uri("/leads/L-none")
        .header(
            "authorization",
            format!("Bearer {}", body["token"].as_str().unwrap()),
        )
        .body(Body::Empty)
        .unwrap();
    assert_eq!(api.handle(get).await.status().as_u16(), 404);

    // Nobody of that name at that dealer, or the dealer of another brand.
    let (status, body) = answer(&api, &event("ghost", &dealer, &brand, &[])).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("unknown_staff"))
    );
    let (status, _) = answer(&api, &event(&manager, &dealer, "other-brand", &[])).await;
    assert_eq!(status, 404);
    let (status, _) = answer(&api, &event(&manager, &dealer, &brand, &["--hours", "200"])).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn the_route_is_not_reachable_through_the_http_api() {
    let Some(w) = world(AssignmentStrategy::RoundRobin, &[5]).await else {
        return;
    };
    let api = Api::new(&w.stack.settings, &w.stack.clients, SECRET.to_vec());
    let dealer = format!("{}-jn", w.brand);
    let mut e: serde_json::Value =
        serde_json::from_str(&event(&format!("{dealer}-mgr"), &dealer, &w.brand, &[])).unwrap();
    // What the HTTP API would send: its own id in the request context.
    e["requestContext"]["apiId"] = "a1b2c3d4e5".into();
    let (status, body) = answer(&api, &e.to_string()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    assert!(body.get("token").is_none());

    // And the template routes no /admin path to the function at all.
    let template = std::fs::read_to_string(integration_tests::repo_path("template.yaml")).unwrap();
    let template: serde_yaml::Value = serde_yaml::from_str(&template).unwrap();
    let events = template["Resources"]["ApiFunction"]["Properties"]["Events"]
        .as_mapping()
        .unwrap();
    for (name, e) in events {
        let path = e["Properties"]["Path"].as_str().unwrap_or_default();
        assert!(
            ["/leads", "/rankings/", "/staff/", "/brands/"]
                .iter()
                .any(|p| path.starts_with(p))
                && !path.contains("admin"),
            "{name:?}: {path}"
        );
    }
}

/// Brand operations get a token without a dealer, from the brand's list;
/// someone not on it, or on another brand's, gets none.
#[tokio::test]
async fn brand_operations_get_a_token_from_the_brands_list_only() {
    let Some(w) = world(AssignmentStrategy::RoundRobin, &[5]).await else {
        return;
    };
    w.add_brand_ops(&[serde_json::json!({
        "staff_id": "ops-1", "brand_id": w.brand, "name": "品牌运营"
    })])
    .await;
    let api = Api::new(&w.stack.settings, &w.stack.clients, SECRET.to_vec());
    let (status, body) = answer(&api, &event("ops-1", "", &w.brand, &[])).await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap().to_string();
    let claims = auth::Keyring::single("k1", SECRET)
        .verify(&token, auth::AUD_STAFF, chrono::Utc::now())
        .unwrap();
    assert_eq!(
        (claims.role, claims.dealer_id.as_str()),
        (StaffRole::BrandOps, "")
    );
    let get = |path: String| {
        lambda_http::http::Request::builder()
            .method("GET")
            .uri(path)
            .header("authorization", format!("Bearer {token}"))
            .body(Body::Empty)
            .unwrap()
    };
    let metrics = get(format!("/brands/{}/metrics", w.brand));
    assert_eq!(api.handle(metrics).await.status().as_u16(), 200);
    // Not a dealer's staff: no lead writes, no hand-offs.
    let duty = lambda_http::http::Request::builder()
        .method("PUT")
        .uri(format!("/staff/{}-jn-s0/duty", w.brand))
        .header("authorization", format!("Bearer {token}"))
        .body(Body::from(r#"{"on_duty": false}"#))
        .unwrap();
    assert_eq!(api.handle(duty).await.status().as_u16(), 403);
    for (staff, brand) in [("ops-ghost", w.brand.as_str()), ("ops-1", "another-brand")] {
        let (status, body) = answer(&api, &event(staff, "", brand, &[])).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (404, Some("unknown_staff")),
            "{staff}@{brand}"
        );
    }
}
