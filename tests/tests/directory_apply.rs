//! `leadctl directory apply` against the local stack, through the real router:
//! a city removed from a dealer in the file no longer brings that dealer remote
//! leads (`seed`, which only upserts, leaves it serving), and a removed
//! consultant and account are gone; `--dry-run` prints the same diff and
//! changes nothing.

use chrono::Utc;
use integration_tests::world::phone;
use integration_tests::{leadctl, stack, unique};
use lead_router::Router;
use leads_aws::store::{DirectoryStore, DynamoDirectory};
use leads_domain::city;
use leads_domain::directory::Platform;
use leads_domain::identity::PhoneHasher;
use leads_domain::lead::{CanonicalLead, CustomerKey, Scene, Traffic};
use leads_domain::routing::{Route, UnroutableReason};
use leads_domain::Phone;

/// A brand with a Jinan dealer serving 泰安 (or not) and a Qingdao dealer whose
/// Douyin account takes the leads.
fn file(brand: &str, jn_serves: &[&str], jn_staff: &[&str], accounts: &[&str]) -> String {
    let staff: Vec<serde_json::Value> = jn_staff
        .iter()
        .map(|s| serde_json::json!({"staff_id": format!("{brand}-{s}"), "dealer_id": format!("{brand}-jn"),
            "name": s, "role": "sales", "on_duty": true, "cap": 50}))
        .chain([serde_json::json!({"staff_id": format!("{brand}-qd-s0"), "dealer_id": format!("{brand}-qd"),
            "name": "青岛顾问", "role": "sales", "on_duty": true, "cap": 50})])
        .collect();
    let accounts: Vec<serde_json::Value> = accounts
        .iter()
        .map(|a| {
            serde_json::json!({"platform": "douyin", "account_id": format!("{brand}-{a}"),
            "brand_id": brand, "owner": "dealer", "dealer_id": format!("{brand}-qd")})
        })
        .collect();
    serde_json::json!({
        "brands": [{"brand_id": brand, "name": "测试品牌"}],
        "dealers": [
            {"dealer_id": format!("{brand}-jn"), "brand_id": brand, "name": "济南店", "city": "济南", "served_cities": jn_serves, "strategy": "round_robin"},
            {"dealer_id": format!("{brand}-qd"), "brand_id": brand, "name": "青岛店", "city": "青岛", "strategy": "round_robin"}
        ],
        "staff": staff,
        "accounts": accounts,
    })
    .to_string()
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// A lead from 泰安 on the Qingdao dealer's account.
fn taian_lead(brand: &str) -> CanonicalLead {
    let phone = Phone::parse(&phone()).unwrap();
    CanonicalLead {
        source_event_id: unique("evt"),
        platform: Platform::Douyin,
        account_id: format!("{brand}-dy-qd"),
        scene: Scene::PrivateMessage,
        traffic: Traffic::Natural,
        customer: CustomerKey::Phone {
            hash: PhoneHasher::new(b"k".to_vec()).hash(&phone),
        },
        linked_customer: None,
        phone: Some(phone),
        customer_name: None,
        declared_city: Some(city::normalise("泰安").unwrap().code),
        attributed_city: None,
        series_interest: vec![],
        staff_hint: None,
        channel_tag: None,
        received_at: Utc::now(),
        raw_payload_ref: "RAW#test".into(),
        signer_brand: None,
        sealed_contact: None,
    }
}

async fn route_of(stack: &integration_tests::Stack, brand: &str) -> Option<Route> {
    // A fresh router: no directory cached from before the change.
    let mut settings = stack.settings.clone();
    settings.queues.notification =
        integration_tests::scratch_queue_like(&stack.clients.sqs, &settings.queues.notification)
            .await;
    settings.queues.crm =
        integration_tests::scratch_queue_like(&stack.clients.sqs, &settings.queues.crm).await;
    let router = Router::new(&settings, &stack.clients);
    router
        .handle_lead(&taian_lead(brand), Utc::now())
        .await
        .unwrap()
        .route
}

#[tokio::test]
async fn apply_removes_a_served_city_a_consultant_and_an_account() {
    let Some(stack) = stack().await else { return };
    let brand = unique("apply");
    let dir = std::env::temp_dir().join(unique("apply-files"));
    std::fs::create_dir_all(&dir).unwrap();
    let before = write(
        &dir,
        "before.json",
        &file(&brand, &["泰安"], &["s0", "s1"], &["dy-qd", "dy-old"]),
    );
    let after = write(&dir, "after.json", &file(&brand, &[], &["s0"], &["dy-qd"]));

    let (ok, out, err) = leadctl(&["directory", "apply", &before], &[]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("applied: "), "{out}");
    assert_eq!(
        route_of(&stack, &brand).await,
        Some(Route::Remote {
            dealer_id: format!("{brand}-jn"),
            referrer: Some(format!("{brand}-qd")),
        })
    );

    // `seed` only upserts: the Jinan dealer keeps serving 泰安 (the bug `apply` fixes).
    let (ok, out, err) = leadctl(&["seed", &after], &[]);
    assert!(ok, "{out}{err}");
    assert!(matches!(
        route_of(&stack, &brand).await,
        Some(Route::Remote { .. })
    ));

    // The dry run names every removal (written out by hand) and changes nothing.
    let (ok, out, err) = leadctl(&["directory", "apply", &after, "--dry-run"], &[]);
    assert!(ok, "{out}{err}");
    let removed: Vec<&str> = out.lines().filter(|l| l.starts_with("- ")).collect();
    assert_eq!(
        removed,
        [
            format!("- served city 泰安市 (370900) of dealer {brand}-jn").as_str(),
            format!("- staff {brand}-s1 of dealer {brand}-jn").as_str(),
            format!("- account douyin:{brand}-dy-old").as_str(),
        ],
        "{out}"
    );
    assert!(out.contains("3 removed; nothing written"), "{out}");
    assert!(matches!(
        route_of(&stack, &brand).await,
        Some(Route::Remote { .. })
    ));

    let (ok, out, err) = leadctl(&["directory", "apply", &after], &[]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("3 removed (") && out.contains("3 deleted"),
        "{out}"
    );
    assert_eq!(
        route_of(&stack, &brand).await,
        Some(Route::Unroutable {
            reason: UnroutableReason::NoDealerServesCity
        })
    );
    let directory = DynamoDirectory::new(
        stack.clients.dynamodb.clone(),
        &stack.settings.tables.directory,
    );
    let staff: Vec<String> = directory
        .staff_of(&format!("{brand}-jn"))
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.staff_id)
        .collect();
    assert_eq!(staff, [format!("{brand}-s0")]);
    assert!(directory
        .account(Platform::Douyin, &format!("{brand}-dy-old"))
        .await
        .unwrap()
        .is_none());

    // Applied again: nothing left to change.
    let (ok, out, _) = leadctl(&["directory", "apply", &after, "--dry-run"], &[]);
    assert!(ok);
    assert!(out.contains("0 added, 0 changed, 0 removed"), "{out}");
}

#[tokio::test]
async fn a_bad_file_changes_nothing() {
    let Some(_stack) = stack().await else { return };
    let (ok, out, err) = leadctl(
        &["directory", "apply", "tests/fixtures/bad-directory.json"],
        &[],
    );
    assert!(!ok, "{out}");
    assert!(err.contains("nothing was written"), "{err}");
}
