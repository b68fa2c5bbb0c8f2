//! Seeds a brand for the dashboard's browser test (tests/e2e/run.sh): two
//! dealers, nine leads through the real router and each one's fate through
//! the real API, and a token for the brand's operations. Prints one JSON
//! object: the brand, the token, and what the seed did (the test's
//! independent truth: the page must show the API's figures, and those must
//! be these).
//!
//! - Jinan (A), its own Douyin account: L1 contacted, invited, visited, won;
//!   L2 contacted, invited, lost; L3 contacted; L4, L5 nothing. On its
//!   Autohome account: L6 contacted. L3's customer again on Autohome: one
//!   Douyin-then-Autohome overlap, no new lead.
//! - Two customers from Qingdao on Jinan's account: remote to Qingdao (B),
//!   L7 contacted there, L8 nothing.
//! - One lead on the brand's own account with no city: unroutable.
//!
//! Needs the local stack's environment (`eval "$(infra/local/stack.sh up)"`).
//! Usage: cargo run -p integration-tests --example dashboard_demo_seed

use api::Api;
use chrono::Utc;
use lambda_http::{Body, Request};
use lead_router::Router;
use leads_aws::store::{DirectoryStore, DynamoDirectory};
use leads_aws::{AwsClients, Settings};
use leads_domain::auth::Claims;
use leads_domain::directory::{Platform, StaffRole};
use leads_domain::directory_file::DirectoryFile;
use leads_domain::identity::PhoneHasher;
use leads_domain::lead::{CanonicalLead, CustomerKey, Scene, Traffic};
use leads_domain::{city, Phone};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let settings = Settings::from_env()?;
    let clients = AwsClients::from_env().await;
    let keyring = leads_aws::secrets::staff_token_keys(&clients.secrets)
        .await?
        .get()
        .await;
    let hasher = PhoneHasher::new(leads_aws::secrets::phone_hash_key(&clients.secrets).await?);
    let stamp = Utc::now().timestamp_millis();
    let brand = format!("dash-{stamp}");
    let (a, b) = (format!("{brand}-jn"), format!("{brand}-qd"));
    let file: DirectoryFile = serde_json::from_value(serde_json::json!({
        "brands": [{"brand_id": brand, "name": "看板演示品牌"}],
        "dealers": [
            {"dealer_id": a, "brand_id": brand, "name": "济南华通", "city": "济南", "served_cities": ["泰安"], "strategy": "round_robin"},
            {"dealer_id": b, "brand_id": brand, "name": "青岛海岸", "city": "青岛", "strategy": "round_robin"}
        ],
        "staff": [
            {"staff_id": format!("{a}-s1"), "dealer_id": a, "name": "王顾问", "role": "sales", "on_duty": true, "cap": 50},
            {"staff_id": format!("{a}-s2"), "dealer_id": a, "name": "李顾问", "role": "sales", "on_duty": true, "cap": 50},
            {"staff_id": format!("{b}-s1"), "dealer_id": b, "name": "赵顾问", "role": "sales", "on_duty": true, "cap": 50}
        ],
        "accounts": [
            {"platform": "douyin", "account_id": format!("{a}-dy"), "brand_id": brand, "owner": "dealer", "dealer_id": a},
            {"platform": "autohome", "account_id": format!("{a}-ah"), "brand_id": brand, "owner": "dealer", "dealer_id": a},
            {"platform": "douyin", "account_id": format!("{brand}-dy"), "brand_id": brand, "owner": "brand"}
        ],
        "brand_ops": [{"staff_id": "ops", "brand_id": brand, "name": "品牌运营"}]
    }))?;
    let directory = file
        .validate()
        .map_err(|e| format!("seed directory: {e:?}"))?;
    DynamoDirectory::new(clients.dynamodb.clone(), &settings.tables.directory)
        .save(&directory)
        .await?;

    let router = Router::new(&settings, &clients);
    let api = Api::from_env().await?;
    let mut n = 0u32;
    let mut lead = |platform: Platform, account: &str, phone: &str, city_name: Option<&str>| {
        n += 1;
        let phone = Phone::parse(phone).expect("a valid demo phone");
        CanonicalLead {
            source_event_id: format!("{brand}-e{n}"),
            platform,
            account_id: account.to_string(),
            scene: Scene::PrivateMessage,
            traffic: Traffic::Natural,
            customer: CustomerKey::Phone {
                hash: hasher.hash(&phone),
            },
            linked_customer: None,
            phone: Some(phone),
            customer_name: None,
            declared_city: city_name.and_then(city::normalise).map(|c| c.code),
            attributed_city: None,
            series_interest: vec!["H6".into()],
            staff_hint: None,
            channel_tag: None,
            received_at: Utc::now(),
            raw_payload_ref: format!("RAW#{brand}-{n}"),
            signer_brand: None,
            sealed_contact: None,
        }
    };
    let phone = |i: u32| format!("137{:08}", (stamp as u64 % 1_000_000) * 100 + u64::from(i));
    // (platform, account, city, events the assignee posts)
    let (dy_a, ah_a, dy_brand) = (format!("{a}-dy"), format!("{a}-ah"), format!("{brand}-dy"));
    let plan: Vec<(Platform, &str, Option<&str>, &[&str])> = vec![
        (
            Platform::Douyin,
            &dy_a,
            None,
            &["contacted", "invited", "visited", "won"],
        ),
        (
            Platform::Douyin,
            &dy_a,
            None,
            &["contacted", "invited", "lost"],
        ),
        (Platform::Douyin, &dy_a, None, &["contacted"]),
        (Platform::Douyin, &dy_a, None, &[]),
        (Platform::Douyin, &dy_a, None, &[]),
        (Platform::Autohome, &ah_a, None, &["contacted"]),
        (Platform::Douyin, &dy_a, Some("青岛"), &["contacted"]),
        (Platform::Douyin, &dy_a, Some("青岛"), &[]),
        (Platform::Douyin, &dy_brand, None, &[]),
    ];
    for (i, (platform, account, city_name, events)) in plan.iter().enumerate() {
        let done = router
            .handle_lead(
                &lead(*platform, account, &phone(i as u32), *city_name),
                Utc::now(),
            )
            .await?;
        let (Some(lead_id), Some(assignee)) = (done.lead_id, done.assignee) else {
            continue; // the unroutable one
        };
        let dealer = if city_name.is_some() { &b } else { &a };
        let claims = Claims::staff(&assignee, dealer, &brand, StaffRole::Sales, Utc::now(), 600);
        let token = keyring.issue(&claims);
        for event in *events {
            let body = match *event {
                "lost" => r#"{"event": "lost", "reason": "price"}"#.to_string(),
                e => format!(r#"{{"event": "{e}"}}"#),
            };
            let request: Request = lambda_http::http::Request::builder()
                .method("POST")
                .uri(format!("/leads/{lead_id}/events"))
                .header("authorization", format!("Bearer {token}"))
                .body(Body::from(body))?;
            let status = api.handle(request).await.status();
            if status != 200 {
                return Err(format!("{event} on {lead_id}: {status}").into());
            }
        }
    }
    // L3's customer again, on Autohome: an overlap, not a lead.
    router
        .handle_lead(
            &lead(Platform::Autohome, &ah_a, &phone(2), None),
            Utc::now(),
        )
        .await?;

    let ops = Claims::staff("ops", "", &brand, StaffRole::BrandOps, Utc::now(), 3600);
    let funnel = |leads, contacted, invited, visited, won| serde_json::json!({"leads": leads, "contacted": contacted, "invited": invited, "visited": visited, "won": won});
    println!(
        "{}",
        serde_json::json!({
            "brand_id": brand,
            "token": keyring.issue(&ops),
            "expected": {
                "dealers": {
                    (a.clone()): { "funnel": funnel(6, 4, 2, 1, 1), "remote_out": 2, "remote_in": 0 },
                    (b.clone()): { "funnel": funnel(2, 1, 0, 0, 0), "remote_out": 0, "remote_in": 2 },
                },
                "brand_unroutable": 1,
                "leads": 8,
                // First seen on Douyin: L1-L5, L7, L8 and the unroutable one.
                "overlap": { "pair": "douyin#autohome", "overlap": 1, "first_seen": 8 },
            }
        })
    );
    Ok(())
}
