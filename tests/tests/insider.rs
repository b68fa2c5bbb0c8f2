//! Insiders and platforms against the local stack: one test per finding of
//! issue #14 that is fixed, each asserting the attack fails and that nothing
//! was written or revealed. The expected values are the attack's own inputs
//! (the other dealer's lead as the router created it, the phone typed), never
//! read back from the code under test.

use api::Api;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;
use integration_tests::unique;
use integration_tests::world::{lead, phone, wecom_lead, world, World};
use lambda_http::{Body, Request};
use leads_domain::audit::AuditAction;
use leads_domain::auth::{self, Claims, Keyring};
use leads_domain::directory::{AssignmentStrategy, Platform, StaffRole};
use leads_domain::identity::PhoneHasher;
use leads_domain::lead::LeadStatus;

const SECRET: &[u8] = b"insider-test-secret-16";

fn api(w: &World) -> Api {
    let mut settings = w.stack.settings.clone();
    settings.queues.notification = w.notifications.clone();
    Api::new(&settings, &w.stack.clients, SECRET.to_vec())
        .with_phone_hasher(PhoneHasher::new(b"k".to_vec()))
        // Directory changes are seen at once (the deployed TTL is 60 s).
        .with_directory_ttl(std::time::Duration::ZERO)
}

fn token(w: &World, staff: &str, dealer: &str, role: StaffRole) -> String {
    auth::issue(
        SECRET,
        &Claims::staff(
            &format!("{}-{staff}", w.brand),
            &format!("{}-{dealer}", w.brand),
            &w.brand,
            role,
            Utc::now(),
            600,
        ),
    )
}

async fn call(api: &Api, method: &str, path: &str, token: &str, body: &str) -> (u16, String) {
    let request: Request = lambda_http::http::Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = api.handle(request).await;
    let status = response.status().as_u16();
    let text = match response.body() {
        Body::Text(t) => t.clone(),
        _ => String::new(),
    };
    (status, text)
}

fn phone_event(number: &str) -> String {
    format!(r#"{{"event":"phone","phone":"{number}"}}"#)
}

// ---------------------------------------------------------------- finding 1

#[tokio::test]
async fn f1_phone_event_cannot_steal_or_probe_another_dealers_lead() {
    let w = world(AssignmentStrategy::RoundRobin, &[50]).await.unwrap();
    let api = api(&w);
    // The victim: a Qingdao customer on the brand's Douyin account, routed
    // to the Qingdao dealer, with a name.
    let number = phone();
    let mut theirs = lead(&w, Platform::Douyin, "dy-brand", &number, Some("青岛"));
    theirs.customer_name = Some("王先生".into());
    let victim = w.router.handle_lead(&theirs, Utc::now()).await.unwrap();
    let victim_id = victim.lead_id.clone().unwrap();
    let before = w.leads.get(&victim_id).await.unwrap().unwrap();
    assert_eq!(
        before.dealer_id.as_deref(),
        Some(format!("{}-qd", w.brand).as_str())
    );
    let victim_touchpoints = w.leads.touchpoints(&victim_id).await.unwrap();

    // The attacker: a Jinan consultant with a WeCom contact of their own.
    let contact = w
        .router
        .handle_lead(&wecom_lead(&w, &unique("wm")), Utc::now())
        .await
        .unwrap();
    let mine_id = contact.lead_id.clone().unwrap();
    let me = auth::issue(
        SECRET,
        &Claims::staff(
            contact.assignee.as_deref().unwrap(),
            &format!("{}-jn", w.brand),
            &w.brand,
            StaffRole::Sales,
            Utc::now(),
            600,
        ),
    );
    let mine_before = w.leads.get(&mine_id).await.unwrap().unwrap();
    let path = format!("/leads/{mine_id}/events");
    let (status, body) = call(&api, "POST", &path, &me, &phone_event(&number)).await;
    assert_eq!(status, 409, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["code"], "phone_unavailable");
    for secret in [
        victim_id.as_str(),
        "王先生",
        "青岛",
        "qd",
        &number,
        &number[7..],
    ] {
        assert!(!body.contains(secret), "{secret:?} revealed in {body}");
    }
    // Nothing changed on either lead.
    let after = w.leads.get(&victim_id).await.unwrap().unwrap();
    assert_eq!(after.status, before.status);
    assert_eq!(after.merged_into, None);
    assert_eq!(after.touchpoints, 1);
    assert_eq!(
        w.leads.touchpoints(&victim_id).await.unwrap(),
        victim_touchpoints
    );
    let mine = w.leads.get(&mine_id).await.unwrap().unwrap();
    assert_eq!(mine.phone, None);
    assert_eq!(mine.customer_name, None);
    assert_eq!(mine.customer_city, None);
    assert_eq!(mine.linked_keys, mine_before.linked_keys);
    assert_eq!(mine.touchpoints, 1);
    // The victim's consultant still works their lead.
    let theirs_token = auth::issue(
        SECRET,
        &Claims::staff(
            victim.assignee.as_deref().unwrap(),
            &format!("{}-qd", w.brand),
            &w.brand,
            StaffRole::Sales,
            Utc::now(),
            600,
        ),
    );
    let (status, _) = call(
        &api,
        "POST",
        &format!("/leads/{victim_id}/events"),
        &theirs_token,
        r#"{"event":"contacted"}"#,
    )
    .await;
    assert_eq!(status, 200);
    // Audited on both trails, without the phone or the other lead's id.
    for (id, other) in [(&mine_id, &victim_id), (&victim_id, &mine_id)] {
        let trail = w.audit.trail(id).await.unwrap();
        let refused: Vec<_> = trail
            .iter()
            .filter(|e| e.action == AuditAction::LinkRefused)
            .collect();
        assert_eq!(refused.len(), 1, "{trail:?}");
        assert!(
            !refused[0].detail.contains(other.as_str())
                && !refused[0].detail.contains(&number[3..])
        );
    }

    // The phone event on an ordinary phone lead (not a WeCom contact): 409,
    // nothing linked.
    let own = w
        .router
        .handle_lead(
            &lead(&w, Platform::Douyin, "dy-jn", &phone(), None),
            Utc::now(),
        )
        .await
        .unwrap();
    let own_id = own.lead_id.unwrap();
    let owner = auth::issue(
        SECRET,
        &Claims::staff(
            own.assignee.as_deref().unwrap(),
            &format!("{}-jn", w.brand),
            &w.brand,
            StaffRole::Sales,
            Utc::now(),
            600,
        ),
    );
    let (status, body) = call(
        &api,
        "POST",
        &format!("/leads/{own_id}/events"),
        &owner,
        &phone_event(&number),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("not_a_wecom_contact"));
    assert!(w
        .leads
        .get(&own_id)
        .await
        .unwrap()
        .unwrap()
        .linked_keys
        .is_empty());
    assert_eq!(
        w.leads.get(&victim_id).await.unwrap().unwrap().merged_into,
        None
    );
}

// ---------------------------------------------------------------- finding 3

#[tokio::test]
async fn f3_tokens_without_kid_aud_iat_or_living_too_long_are_refused() {
    let w = world(AssignmentStrategy::RoundRobin, &[50]).await.unwrap();
    let api = api(&w);
    let contact = w
        .router
        .handle_lead(
            &lead(&w, Platform::Douyin, "dy-jn", &phone(), None),
            Utc::now(),
        )
        .await
        .unwrap();
    let path = format!("/leads/{}", contact.lead_id.unwrap());
    let now = Utc::now();
    let b64 = |json: &str| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    };
    let mac = |payload: &str| {
        use hmac::Mac;
        let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET).unwrap();
        m.update(payload.as_bytes());
        hex::encode(m.finalize().into_bytes())
    };
    // The old format, correctly signed: a 10-year manager token, no kid/aud/iat.
    let old = b64(&format!(
        r#"{{"staff_id":"{b}-jn-mgr","dealer_id":"{b}-jn","brand_id":"{b}","role":"manager","exp":{}}}"#,
        now.timestamp() + 10 * 365 * 86_400,
        b = w.brand
    ));
    let old = format!("{old}.{}", mac(&old));
    // The new format, valid until 2099.
    let mut forever = Claims::staff(
        &format!("{}-jn-mgr", w.brand),
        &format!("{}-jn", w.brand),
        &w.brand,
        StaffRole::Manager,
        now,
        0,
    );
    forever.exp = 4_102_444_800;
    let forever = auth::issue(SECRET, &forever);
    // 12 h and one second.
    let long = auth::issue(
        SECRET,
        &Claims::staff(
            &format!("{}-jn-mgr", w.brand),
            &format!("{}-jn", w.brand),
            &w.brand,
            StaffRole::Manager,
            now,
            auth::MAX_LIFETIME_S + 1,
        ),
    );
    // A key id that is not live.
    let other_kid = Keyring::single("k9", SECRET).issue(&Claims::staff(
        &format!("{}-jn-mgr", w.brand),
        &format!("{}-jn", w.brand),
        &w.brand,
        StaffRole::Manager,
        now,
        600,
    ));
    for (what, t) in [
        ("old", &old),
        ("2099", &forever),
        ("13h", &long),
        ("kid", &other_kid),
    ] {
        let (status, body) = call(&api, "GET", &path, t, "").await;
        assert_eq!(status, 401, "{what}: {body}");
        assert!(!body.contains("+86"), "{what}");
    }
    // A manager token for a staff id the directory does not have.
    let ghost = token(&w, "jn-ghost", "jn", StaffRole::Manager);
    let (status, body) = call(&api, "GET", &path, &ghost, "").await;
    assert_eq!(status, 403, "{body}");
    assert!(!body.contains("+86"));
    // The same token as a real manager's reads the phone: the refusal above
    // is the directory's, not a broken path.
    let manager = token(&w, "jn-mgr", "jn", StaffRole::Manager);
    let (status, body) = call(&api, "GET", &path, &manager, "").await;
    assert_eq!(status, 200);
    assert!(body.contains("+86"));
    // The ranking page's token reads rankings only.
    let page = auth::issue(
        SECRET,
        &Claims::staff(
            &format!("{}-jn-mgr", w.brand),
            &format!("{}-jn", w.brand),
            &w.brand,
            StaffRole::Manager,
            now,
            600,
        )
        .for_rankings(),
    );
    let (status, body) = call(&api, "GET", &path, &page, "").await;
    assert_eq!(status, 403, "{body}");
    assert!(!body.contains("+86"));
    let (status, _) = call(
        &api,
        "POST",
        &format!("{path}/events"),
        &page,
        r#"{"event":"contacted"}"#,
    )
    .await;
    assert_eq!(status, 403);
    let (status, body) = call(
        &api,
        "GET",
        &format!("/rankings/{}/latest", w.brand),
        &page,
        "",
    )
    .await;
    // Not ranked yet: the read itself was allowed.
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("no_ranking"));
}

// ---------------------------------------------------------------- finding 5

async fn set_staff(w: &World, dealer: &str, staff: &str, role: Option<&str>) {
    let t = &w.stack.settings.tables.directory;
    let pk = AttributeValue::S(format!("DEALER#{}-{dealer}", w.brand));
    let sk = AttributeValue::S(format!("STAFF#{}-{staff}", w.brand));
    let ddb = &w.stack.clients.dynamodb;
    match role {
        None => {
            ddb.delete_item()
                .table_name(t)
                .key("pk", pk)
                .key("sk", sk)
                .send()
                .await
                .unwrap();
        }
        Some(role) => {
            ddb.update_item()
                .table_name(t)
                .key("pk", pk)
                .key("sk", sk)
                .update_expression("SET #r = :r")
                .expression_attribute_names("#r", "role")
                .expression_attribute_values(":r", AttributeValue::S(role.into()))
                .condition_expression("attribute_exists(pk)")
                .send()
                .await
                .unwrap();
        }
    }
}

#[tokio::test]
async fn f5_removed_consultants_and_demoted_managers_lose_access_at_once() {
    let w = world(AssignmentStrategy::RoundRobin, &[50]).await.unwrap();
    let api = api(&w);
    let number = phone();
    let routed = w
        .router
        .handle_lead(
            &lead(&w, Platform::Douyin, "dy-jn", &number, None),
            Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(
        routed.assignee.as_deref(),
        Some(format!("{}-jn-s0", w.brand).as_str())
    );
    let path = format!("/leads/{}", routed.lead_id.unwrap());
    let consultant = token(&w, "jn-s0", "jn", StaffRole::Sales);
    let manager = token(&w, "jn-mgr", "jn", StaffRole::Manager);
    for t in [&consultant, &manager] {
        let (status, body) = call(&api, "GET", &path, t, "").await;
        assert_eq!(status, 200);
        assert!(
            body.contains(&number),
            "before the change, both read the phone"
        );
    }
    // The manager is demoted: the token still says manager.
    set_staff(&w, "jn", "jn-mgr", Some("sales")).await;
    let (status, body) = call(&api, "GET", &path, &manager, "").await;
    assert_eq!(status, 200);
    assert!(
        !body.contains(&number),
        "a demoted manager no longer sees the phone"
    );
    let (status, _) = call(
        &api,
        "POST",
        &format!("{path}/events"),
        &manager,
        r#"{"event":"contacted"}"#,
    )
    .await;
    assert_eq!(status, 403, "nor updates another's lead");
    // The consultant leaves the dealer.
    set_staff(&w, "jn", "jn-s0", None).await;
    let (status, body) = call(&api, "GET", &path, &consultant, "").await;
    assert_eq!(status, 403, "{body}");
    assert!(!body.contains(&number) && !body.contains("+86"));
    let (status, _) = call(
        &api,
        "POST",
        &format!("{path}/events"),
        &consultant,
        r#"{"event":"contacted"}"#,
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(
        w.leads
            .get(path.trim_start_matches("/leads/"))
            .await
            .unwrap()
            .unwrap()
            .status,
        LeadStatus::Assigned,
        "nothing was written"
    );
}

/// A rotation: the retiring key's tokens verify while both keys are live,
/// and are refused after the overlap; the new key's tokens throughout.
#[tokio::test]
async fn rotation_retired_kid_is_refused_after_the_overlap() {
    let w = world(AssignmentStrategy::RoundRobin, &[50]).await.unwrap();
    let routed = w
        .router
        .handle_lead(
            &lead(&w, Platform::Douyin, "dy-jn", &phone(), None),
            Utc::now(),
        )
        .await
        .unwrap();
    let path = format!("/leads/{}", routed.lead_id.unwrap());
    let claims = Claims::staff(
        &format!("{}-jn-s0", w.brand),
        &format!("{}-jn", w.brand),
        &w.brand,
        StaffRole::Sales,
        Utc::now(),
        600,
    );
    let k1 = r#"{"kid":"k1","secret":"rotation-old-key-0001"}"#;
    let k2 = r#"{"kid":"k2","secret":"rotation-new-key-0002"}"#;
    let ring = |json: String| Keyring::parse(&json).unwrap();
    let old_token = ring(format!("[{k1}]")).issue(&claims);
    let new_token = ring(format!("[{k2},{k1}]")).issue(&claims);
    let expected = [
        (format!("[{k1}]"), 200, 401),
        (format!("[{k2},{k1}]"), 200, 200),
        (format!("[{k2}]"), 401, 200),
    ];
    for (keys, old_status, new_status) in expected {
        let api = api(&w).with_keyring(ring(keys.clone()));
        assert_eq!(
            call(&api, "GET", &path, &old_token, "").await.0,
            old_status,
            "{keys}"
        );
        assert_eq!(
            call(&api, "GET", &path, &new_token, "").await.0,
            new_status,
            "{keys}"
        );
    }
}
