//! Insiders and platforms against the local stack: one test per finding of
//! issue #14 that is fixed, each asserting the attack fails and that nothing
//! was written or revealed. The expected values are the attack's own inputs
//! (the other dealer's lead as the router created it, the phone typed), never
//! read back from the code under test.

use api::Api;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;
use integration_tests::world::{lead, phone, wecom_lead, world, World};
use integration_tests::{put_secret, scratch_secret, unique};
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

/// A rotation, as an operator does it: `put-secret-value` on the staff-token
/// secret, no redeploy. The retiring key's tokens verify while both keys are
/// live and are refused after the overlap; the new key's tokens throughout.
/// The API reads the secret through Secrets Manager (the emulator's) with a
/// short TTL, so each step is seen once the TTL has passed.
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
    const TTL: std::time::Duration = std::time::Duration::from_millis(300);
    let secret_id = scratch_secret(&w.stack.clients, &expected[0].0).await;
    let keys = leads_aws::secrets::staff_token_keys_at(&w.stack.clients.secrets, &secret_id, TTL)
        .await
        .unwrap();
    let api = api(&w).with_keyring_secret(keys);
    for (i, (keys, old_status, new_status)) in expected.iter().enumerate() {
        if i > 0 {
            put_secret(&w.stack.clients, &secret_id, keys).await;
            tokio::time::sleep(TTL + std::time::Duration::from_millis(100)).await;
            // The first call after the TTL starts the re-read and uses it.
        }
        assert_eq!(
            call(&api, "GET", &path, &old_token, "").await.0,
            *old_status,
            "{keys}"
        );
        assert_eq!(
            call(&api, "GET", &path, &new_token, "").await.0,
            *new_status,
            "{keys}"
        );
    }
    // Secrets Manager unreachable for the secret (deleted here): the API keeps
    // the keys it read last rather than refusing everyone.
    w.stack
        .clients
        .secrets
        .delete_secret()
        .secret_id(&secret_id)
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
    tokio::time::sleep(TTL + std::time::Duration::from_millis(100)).await;
    assert_eq!(call(&api, "GET", &path, &new_token, "").await.0, 200);
    assert_eq!(call(&api, "GET", &path, &old_token, "").await.0, 401);
}

// ------------------------------------------------------- webhooks (2, 6, 8)

mod webhooks {
    use std::collections::HashMap;

    use aws_sdk_dynamodb::types::AttributeValue;
    use integration_tests::{
        drain, put_secret, scratch_queue_like, scratch_secret, stack, unique, Stack,
    };
    use lambda_http::{Body, Request};
    use leads_domain::intake::secrets::HmacSecrets;
    use leads_domain::intake::{body_hash, douyin, hmac_sources, IntakeSecrets, Source};
    use webhook_intake::Intake;

    const APP: &str = "awx-insider";
    const APP_SECRET: &str = "douyin-insider-secret";
    const ACCOUNT_SECRET: &str = "autohome-account-a-secret";

    fn secrets() -> IntakeSecrets {
        let mut s = IntakeSecrets {
            phone_hash_key: "insider-phone-hash-key".into(),
            ..Default::default()
        };
        s.douyin.insert(APP.into(), APP_SECRET.into());
        s.douyin_accounts
            .insert(APP.into(), vec!["dy-insider-a".into()]);
        s.hmac.insert(
            Source::Autohome,
            HmacSecrets {
                secrets: vec![],
                accounts: HashMap::from([(
                    "ah-insider-a".to_string(),
                    vec![ACCOUNT_SECRET.into()],
                )]),
            },
        );
        s
    }

    async fn intake(stack: &Stack) -> (Intake, String) {
        let mut settings = stack.settings.clone();
        settings.queues.lead = scratch_queue_like(&stack.clients.sqs, &settings.queues.lead).await;
        let queue = settings.queues.lead.clone();
        (Intake::new(&settings, &stack.clients, secrets()), queue)
    }

    async fn send(intake: &Intake, request: Request) -> (u16, String) {
        let response = intake.handle(request).await;
        let status = response.status().as_u16();
        let body = match response.body() {
            Body::Text(t) => t.clone(),
            _ => String::new(),
        };
        (status, body)
    }

    fn douyin_request(body: &str, msg_id: &str, path: &str) -> Request {
        lambda_http::http::Request::builder()
            .method("POST")
            .uri(path)
            .header(
                douyin::SIGNATURE_HEADER,
                douyin::signature(APP_SECRET, body.as_bytes()),
            )
            .header(douyin::MSG_ID_HEADER, msg_id)
            .body(Body::from(body.to_string()))
            .unwrap()
    }

    fn autohome_request(body: &str, account: &str) -> Request {
        signed_autohome(body, ACCOUNT_SECRET, Some(account))
    }

    /// An autohome delivery signed with `secret`, for `account` if given
    /// (else with the source-wide secrets).
    fn signed_autohome(body: &str, secret: &str, account: Option<&str>) -> Request {
        let ts = chrono::Utc::now().timestamp().to_string();
        let mut request = lambda_http::http::Request::builder()
            .method("POST")
            .uri("/webhooks/autohome")
            .header(hmac_sources::TIMESTAMP_HEADER, &ts)
            .header(
                hmac_sources::SIGNATURE_HEADER,
                hmac_sources::signature(secret, &ts, body.as_bytes()),
            )
            .header(hmac_sources::EVENT_ID_HEADER, unique("ev"));
        if let Some(account) = account {
            request = request.header(hmac_sources::ACCOUNT_HEADER, account);
        }
        request.body(Body::from(body.to_string())).unwrap()
    }

    async fn raw_exists(stack: &Stack, key: &str) -> bool {
        stack
            .clients
            .dynamodb
            .get_item()
            .table_name(&stack.settings.tables.raw_payload)
            .key("pk", AttributeValue::S(key.into()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
            .is_some()
    }

    /// Finding 2: one account's secret cannot post for another account, and
    /// a Douyin app cannot post leads or stats for an account it is not bound to.
    #[tokio::test]
    async fn f2_a_secret_speaks_only_for_its_own_accounts() {
        let stack = stack().await.unwrap();
        let (intake, queue) = intake(&stack).await;
        let n = unique("n");
        // Account A's secret, A in the header, B in the body.
        let body = format!(
            r#"{{"lead_id":"{n}","dealer_id":"ah-insider-b","phone":"13705319999","traffic":"natural"}}"#
        );
        let (status, reply) = send(&intake, autohome_request(&body, "ah-insider-a")).await;
        assert_eq!(status, 401, "{reply}");
        assert!(
            !raw_exists(
                &stack,
                &format!("RAW#autohome#{}", body_hash(body.as_bytes()))
            )
            .await
        );
        // The same secret for its own account is accepted (the refusal is the binding).
        let own = body.replace("ah-insider-b", "ah-insider-a");
        assert_eq!(
            send(&intake, autohome_request(&own, "ah-insider-a"))
                .await
                .0,
            200
        );

        // A Douyin app bound to dy-insider-a: a lead and a stats push for another account.
        let lead = serde_json::json!({
            "event": "personal_tab_contact", "client_key": APP, "from_user_id": "v",
            "to_user_id": "dy-insider-b", "log_id": unique("log"),
            "content": {"phone": "13905318888", "name": "客户"}
        })
        .to_string();
        let stats = serde_json::json!({
            "event": "daily_stats", "client_key": APP, "to_user_id": "dy-insider-b", "log_id": unique("log"),
            "content": {"date": "2026-11-30", "videos": 4_000_000_000u32, "plays": 1}
        })
        .to_string();
        for (body, path) in [
            (&lead, "/webhooks/douyin"),
            (&stats, "/webhooks/douyin_stats"),
        ] {
            let (status, reply) = send(&intake, douyin_request(body, &unique("m"), path)).await;
            assert_eq!(status, 401, "{path}: {reply}");
        }
        let queued = drain(&stack.clients.sqs, &queue).await;
        assert_eq!(queued.len(), 1, "only the own-account lead: {queued:?}");
        assert!(queued[0].contains("ah-insider-a"));
    }

    /// Finding 6: replaying one signed body with new unsigned ids is one delivery.
    #[tokio::test]
    async fn f6_replays_with_new_unsigned_ids_are_one_delivery() {
        let stack = stack().await.unwrap();
        let (intake, queue) = intake(&stack).await;
        let body = serde_json::json!({
            "event": "personal_tab_contact", "client_key": APP, "from_user_id": "v",
            "to_user_id": "dy-insider-a", "log_id": unique("log"),
            "content": {"phone": "13905317777", "name": "客户"}
        })
        .to_string();
        for _ in 0..3 {
            let (status, _) = send(
                &intake,
                douyin_request(&body, &unique("replay"), "/webhooks/douyin"),
            )
            .await;
            assert_eq!(status, 200);
        }
        // HMAC sources: the X-Event-Id header changes on every replay too.
        let own = format!(
            r#"{{"lead_id":"{}","dealer_id":"ah-insider-a","phone":"13705316666"}}"#,
            unique("r")
        );
        for _ in 0..3 {
            assert_eq!(
                send(&intake, autohome_request(&own, "ah-insider-a"))
                    .await
                    .0,
                200
            );
        }
        // One delivery key per signed body (the router's delivery marker makes
        // one touchpoint of each key). A replay during the first attempt's
        // lease sends once more (an unconfirmed lease is taken over), so a key
        // has one or two messages, never one per replay.
        let queued = drain(&stack.clients.sqs, &queue).await;
        let mut per_key = std::collections::BTreeMap::<String, usize>::new();
        for body in &queued {
            let message: serde_json::Value = serde_json::from_str(body).unwrap();
            let key = message["source_event_id"].as_str().unwrap().to_string();
            *per_key.entry(key).or_default() += 1;
        }
        assert_eq!(
            per_key.len(),
            2,
            "one delivery key per signed body: {per_key:?}"
        );
        assert!(per_key.values().all(|n| (1..=2).contains(n)), "{per_key:?}");
    }

    /// Finding 8: nothing of the request is quoted in a reply.
    #[tokio::test]
    async fn f8_replies_quote_no_input() {
        let stack = stack().await.unwrap();
        let (intake, queue) = intake(&stack).await;
        let secret_number = "13812345678";
        // An unknown source path.
        let request = lambda_http::http::Request::builder()
            .method("POST")
            .uri(format!("/webhooks/{secret_number}"))
            .body(Body::from("{}"))
            .unwrap();
        let (status, reply) = send(&intake, request).await;
        assert_eq!(status, 404);
        assert!(!reply.contains(secret_number), "{reply}");
        // A bad traffic value, authenticated.
        let body = format!(
            r#"{{"lead_id":"{}","dealer_id":"ah-insider-a","phone":"13705315555","traffic":"{secret_number}"}}"#,
            unique("t")
        );
        let (status, reply) = send(&intake, autohome_request(&body, "ah-insider-a")).await;
        assert_eq!(status, 422, "{reply}");
        assert!(
            !reply.contains(secret_number) && !reply.contains("13705315555"),
            "{reply}"
        );
        // A WeCom XML entity, before any signature check.
        let request = lambda_http::http::Request::builder()
            .method("POST")
            .uri("/webhooks/wecom?msg_signature=x&timestamp=1&nonce=1")
            .body(Body::from(format!(
                "<xml><Encrypt>&{secret_number};</Encrypt></xml>"
            )))
            .unwrap();
        let (status, reply) = send(&intake, request).await;
        assert!(status >= 400, "{status}");
        assert!(!reply.contains(secret_number), "{reply}");
        // A malformed secret JSON at start-up quotes no secret.
        let err = IntakeSecrets::from_json(
            r#"{"phone_hash_key": "s3cr3t-key-0123456789", "douyin": ["s3cr3t-app"]}"#,
        )
        .unwrap_err();
        assert!(!err.contains("s3cr3t"), "{err}");
        assert!(drain(&stack.clients.sqs, &queue).await.is_empty());
    }

    /// Finding 3: the webhook secret is read at run time. An operator rotates
    /// a platform's secret with `put-secret-value` (old -> both -> new) and the
    /// running intake follows within the TTL, without a redeploy.
    #[tokio::test]
    async fn a_rotated_webhook_secret_takes_effect_without_a_redeploy() {
        const TTL: std::time::Duration = std::time::Duration::from_millis(300);
        const OLD: &str = "autohome-rotation-old-secret";
        const NEW: &str = "autohome-rotation-new-secret";
        let stack = stack().await.unwrap();
        let webhooks = |secrets: &[&str]| {
            serde_json::json!({"hmac": {"autohome": {"secrets": secrets}}}).to_string()
        };
        let clients = &stack.clients;
        let phone_id = scratch_secret(clients, "insider-phone-hash-key").await;
        let webhook_id = scratch_secret(clients, &webhooks(&[OLD])).await;
        let mut settings = stack.settings.clone();
        settings.queues.lead = scratch_queue_like(&clients.sqs, &settings.queues.lead).await;
        let secrets =
            leads_aws::secrets::intake_secrets_at(&clients.secrets, &phone_id, &webhook_id, TTL)
                .await
                .unwrap();
        let intake = Intake::with_secrets(&settings, clients, secrets).await;
        let signed_with = |secret: &str| {
            let body = format!(
                r#"{{"lead_id":"{}","dealer_id":"ah-insider-a","phone":"13705316666","traffic":"natural"}}"#,
                unique("rot")
            );
            signed_autohome(&body, secret, None)
        };
        let steps: [(&[&str], u16, u16); 3] = [
            (&[OLD], 200, 401),
            (&[NEW, OLD], 200, 200),
            (&[NEW], 401, 200),
        ];
        for (i, (live, old_status, new_status)) in steps.iter().enumerate() {
            if i > 0 {
                put_secret(clients, &webhook_id, &webhooks(live)).await;
                tokio::time::sleep(TTL + std::time::Duration::from_millis(100)).await;
            }
            assert_eq!(
                send(&intake, signed_with(OLD)).await.0,
                *old_status,
                "{live:?}"
            );
            assert_eq!(
                send(&intake, signed_with(NEW)).await.0,
                *new_status,
                "{live:?}"
            );
        }
        // Accepted 1 + 2 + 1: each enqueued once, the refused ones not at all.
        assert_eq!(drain(&clients.sqs, &settings.queues.lead).await.len(), 4);
    }
}

// ---------------------------------------------------------------- finding 7

/// Finding 7: a name that is a phone, in any form, is masked for
/// non-assignees (the masking forms themselves are property-tested in
/// `leads-domain` `phone::text_tests`).
#[tokio::test]
async fn f7_a_phone_as_the_customer_name_is_masked_for_others() {
    let w = world(AssignmentStrategy::RoundRobin, &[50, 50])
        .await
        .unwrap();
    let api = api(&w);
    for name in ["138_1234_5678", "一三八一二三四五六七八", "(138)12345678"] {
        let mut l = lead(&w, Platform::Douyin, "dy-jn", &phone(), None);
        l.customer_name = Some(name.into());
        let routed = w.router.handle_lead(&l, Utc::now()).await.unwrap();
        let assignee = routed.assignee.unwrap();
        let other = if assignee.ends_with("s0") {
            "jn-s1"
        } else {
            "jn-s0"
        };
        let (status, body) = call(
            &api,
            "GET",
            &format!("/leads/{}", routed.lead_id.unwrap()),
            &token(&w, other, "jn", StaffRole::Sales),
            "",
        )
        .await;
        assert_eq!(status, 200);
        assert!(!body.contains(name), "{name}: {body}");
        let shown: serde_json::Value = serde_json::from_str(&body).unwrap();
        let shown = shown["lead"]["customer_name"].as_str().unwrap();
        assert!(shown.contains("138****5678"), "{name}: {shown}");
        assert!(
            !leads_domain::phone::contains_phone(shown),
            "{name}: {shown}"
        );
    }
}

/// Finding 2, the brand CRM: a push signed with one brand's `oem_crm`
/// secret creates no lead for another brand's account (and counts nothing).
#[tokio::test]
async fn f2_a_brand_crm_secret_creates_leads_only_for_its_brand() {
    use integration_tests::{drain, scratch_queue_like};
    use leads_domain::intake::{hmac_sources, IntakeMessage, IntakeSecrets};
    let w = world(AssignmentStrategy::RoundRobin, &[50]).await.unwrap();
    let mut secrets = IntakeSecrets {
        phone_hash_key: "insider-phone-hash-key".into(),
        ..Default::default()
    };
    secrets
        .oem_crm_brands
        .insert("other-brand".into(), vec!["other-brand-crm-secret".into()]);
    secrets
        .oem_crm_brands
        .insert(w.brand.clone(), vec!["own-brand-crm-secret".into()]);
    let mut settings = w.stack.settings.clone();
    settings.queues.lead = scratch_queue_like(&w.stack.clients.sqs, &settings.queues.lead).await;
    let intake = webhook_intake::Intake::new(&settings, &w.stack.clients, secrets);
    let push = |brand: &str, secret: &str, number: &str| {
        let body = format!(
            r#"{{"lead_id":"{}","dealer_id":"{}-crm","phone":"{number}","traffic":"natural"}}"#,
            unique("crm"),
            w.brand
        );
        let ts = Utc::now().timestamp().to_string();
        lambda_http::http::Request::builder()
            .method("POST")
            .uri("/webhooks/oem_crm")
            .header(hmac_sources::TIMESTAMP_HEADER, &ts)
            .header(
                hmac_sources::SIGNATURE_HEADER,
                hmac_sources::signature(secret, &ts, body.as_bytes()),
            )
            .header(hmac_sources::BRAND_HEADER, brand)
            .body(Body::from(body))
            .unwrap()
    };
    let (theirs, mine) = (phone(), phone());
    for (brand, secret, number) in [
        ("other-brand", "other-brand-crm-secret", &theirs),
        (w.brand.as_str(), "own-brand-crm-secret", &mine),
    ] {
        assert_eq!(
            intake.handle(push(brand, secret, number)).await.status(),
            200
        );
    }
    let mut created = Vec::new();
    for body in drain(&w.stack.clients.sqs, &settings.queues.lead).await {
        let IntakeMessage::Lead(mut lead) = serde_json::from_str(&body).unwrap() else {
            panic!("{body}")
        };
        leads_domain::seal::ContactSeal::from_phone_hash_key(b"insider-phone-hash-key")
            .open(&mut lead)
            .unwrap();
        let processed = w.router.handle_lead(&lead, Utc::now()).await.unwrap();
        created.push((lead.phone.clone().unwrap(), processed.lead_id));
    }
    created.sort_by_key(|(p, _)| p.national() != theirs.as_str());
    assert_eq!(created.len(), 2);
    assert_eq!(created[0].0.national(), theirs.as_str());
    assert_eq!(created[0].1, None, "another brand's CRM created no lead");
    assert_eq!(created[1].0.national(), mine.as_str());
    assert!(created[1].1.is_some(), "the brand's own CRM did");
    // Nothing of the refused push is known: its phone has no identity (the
    // accepted one's has: the key is right).
    let identity = |number: String| {
        let key = leads_domain::dedup::customer_key(
            &w.brand,
            // The intake's hash key, as the lead's customer key was made.
            &leads_domain::lead::CustomerKey::Phone {
                hash: PhoneHasher::new(b"insider-phone-hash-key".to_vec())
                    .hash(&leads_domain::Phone::parse(&number).unwrap()),
            },
        );
        w.stack
            .clients
            .dynamodb
            .get_item()
            .table_name(&w.stack.settings.tables.leads)
            .key("pk", AttributeValue::S(key))
            .key("sk", AttributeValue::S("IDENTITY".into()))
            .consistent_read(true)
            .send()
    };
    assert!(identity(theirs.clone()).await.unwrap().item.is_none());
    assert!(identity(mine.clone()).await.unwrap().item.is_some());
}

/// The intake with three CRM secrets: another brand's, the world's brand's
/// own, and the shared one; and the scratch lead queue it sends to.
async fn crm_intake(w: &World) -> (webhook_intake::Intake, String) {
    use integration_tests::scratch_queue_like;
    use leads_domain::intake::IntakeSecrets;
    let mut secrets = IntakeSecrets {
        phone_hash_key: "insider-phone-hash-key".into(),
        ..Default::default()
    };
    secrets
        .oem_crm_brands
        .insert("other-brand".into(), vec!["other-brand-crm-secret".into()]);
    secrets
        .oem_crm_brands
        .insert(w.brand.clone(), vec!["own-brand-crm-secret".into()]);
    secrets.hmac.insert(
        leads_domain::intake::Source::OemCrm,
        serde_json::from_value(serde_json::json!({"secrets": ["shared-crm-secret"]})).unwrap(),
    );
    let mut settings = w.stack.settings.clone();
    settings.queues.lead = scratch_queue_like(&w.stack.clients.sqs, &settings.queues.lead).await;
    let intake = webhook_intake::Intake::new(&settings, &w.stack.clients, secrets);
    (intake, settings.queues.lead)
}

/// A CRM message signed with `secret` (as `brand`, if given).
fn signed_crm(body: String, brand: Option<&str>, secret: &str) -> Request {
    use leads_domain::intake::hmac_sources;
    let ts = Utc::now().timestamp().to_string();
    let mut b = lambda_http::http::Request::builder()
        .method("POST")
        .uri("/webhooks/oem_crm")
        .header(hmac_sources::TIMESTAMP_HEADER, &ts)
        .header(
            hmac_sources::SIGNATURE_HEADER,
            hmac_sources::signature(secret, &ts, body.as_bytes()),
        );
    if let Some(brand) = brand {
        b = b.header(hmac_sources::BRAND_HEADER, brand);
    }
    b.body(Body::from(body)).unwrap()
}

/// Hands what the intake queued to the world's router, as SQS would.
async fn route_queued(w: &World, queue: &str) {
    for body in integration_tests::drain(&w.stack.clients.sqs, queue).await {
        let mut m = aws_lambda_events::event::sqs::SqsMessage::default();
        m.body = Some(body);
        w.router.handle_message(&m).await.unwrap();
    }
}

/// The brand CRM's `status_sync` (issue #16): only the brand whose own CRM
/// secret signs it moves its leads, by the consultants' transition rules,
/// audited with the CRM as actor. Another brand's CRM learns nothing and
/// changes nothing; the shared CRM secret may not move leads at all.
#[tokio::test]
async fn f16_only_the_brands_own_crm_syncs_its_leads_status_by_the_rules() {
    let w = world(AssignmentStrategy::RoundRobin, &[50]).await.unwrap();
    let (intake, lead_queue) = crm_intake(&w).await;
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
    let sync = |brand: Option<&str>, secret: &str, status: &str| {
        signed_crm(
            format!(
                r#"{{"type":"status_sync","lead_id":"{lead_id}","status":"{status}","n":"{}"}}"#,
                unique("s")
            ),
            brand,
            secret,
        )
    };
    let route_all = || route_queued(&w, &lead_queue);
    let status_now = || async { w.leads.get(&lead_id).await.unwrap().unwrap().status };

    // Another brand's CRM: accepted at the door (it is authentic), but it
    // names no lead of its brand: nothing changes, nothing is audited.
    let resp = intake
        .handle(sync(
            Some("other-brand"),
            "other-brand-crm-secret",
            "contacted",
        ))
        .await;
    assert_eq!(resp.status(), 200);
    route_all().await;
    assert_eq!(status_now().await, LeadStatus::Assigned);
    // The shared CRM secret speaks for no brand: refused at the door.
    let resp = intake
        .handle(sync(None, "shared-crm-secret", "contacted"))
        .await;
    assert_eq!(resp.status(), 401);
    // A status that is not one: 400, not echoed.
    let resp = intake
        .handle(sync(Some(&w.brand), "own-brand-crm-secret", "teleported"))
        .await;
    assert_eq!(resp.status(), 400);
    let text = match resp.body() {
        Body::Text(t) => t.clone(),
        Body::Binary(b) => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
    };
    assert!(!text.contains("teleported"), "{text}");
    let trail_before = w.audit.trail(&lead_id).await.unwrap().len();

    // The brand's own CRM: contacted applies; won from contacted is refused
    // by the rules (audited); lost needs a reason code of the brand.
    for status in ["contacted", "won", "lost"] {
        let resp = intake
            .handle(sync(Some(&w.brand), "own-brand-crm-secret", status))
            .await;
        assert_eq!(resp.status(), 200, "{status}");
    }
    route_all().await;
    assert_eq!(status_now().await, LeadStatus::Contacted);
    let trail = w.audit.trail(&lead_id).await.unwrap();
    let by_crm: Vec<&str> = trail[trail_before..]
        .iter()
        .filter(|e| e.actor == leads_domain::audit::Actor::Platform(format!("oem_crm:{}", w.brand)))
        .map(|e| e.detail.as_str())
        .collect();
    assert_eq!(by_crm.len(), 3, "{by_crm:?}");
    assert!(
        by_crm
            .iter()
            .any(|d| d.contains("Contacted: Assigned -> Contacted")),
        "{by_crm:?}"
    );
    assert_eq!(
        by_crm.iter().filter(|d| d.contains("refused")).count(),
        2,
        "{by_crm:?}"
    );
    assert_eq!(
        trail[trail_before..].len(),
        3,
        "the other brand's sync left nothing on the lead"
    );
}

/// The brand CRM's `dispatch` (issue #16): the brand's team places an
/// unrouted lead with one of the brand's dealers, which assigns and notifies
/// it by its rules. Another brand's CRM learns nothing and moves nothing; a
/// dealer of another brand, or a lead that is no longer unrouted, is refused
/// (audited); a repeat assigns nothing twice.
#[tokio::test]
async fn f16_only_the_brands_own_crm_places_its_unrouted_leads() {
    use leads_domain::notification::{NotificationJob, NotificationKind};
    use leads_domain::routing::Route;
    let w = world(AssignmentStrategy::RoundRobin, &[50]).await.unwrap();
    let elsewhere = world(AssignmentStrategy::RoundRobin, &[50]).await.unwrap();
    let (intake, lead_queue) = crm_intake(&w).await;
    // The brand's own account, no city: nobody to route it to.
    let unrouted = w
        .router
        .handle_lead(
            &lead(&w, Platform::Douyin, "dy-brand", &phone(), None),
            Utc::now(),
        )
        .await
        .unwrap();
    assert!(matches!(unrouted.route, Some(Route::Unroutable { .. })));
    let lead_id = unrouted.lead_id.unwrap();
    integration_tests::drain(&w.stack.clients.sqs, &w.notifications).await;
    let dispatch = |brand: Option<&str>, secret: &str, dealer: &str| {
        signed_crm(
            format!(
                r#"{{"type":"dispatch","lead_id":"{lead_id}","dealer_id":"{dealer}","n":"{}"}}"#,
                unique("d")
            ),
            brand,
            secret,
        )
    };
    let now_lead = || async { w.leads.get(&lead_id).await.unwrap().unwrap() };
    let qingdao = format!("{}-qd", w.brand);
    let trail_len = || async { w.audit.trail(&lead_id).await.unwrap().len() };
    let before = trail_len().await;

    // Another brand's CRM: authentic, so accepted, but no lead of its brand.
    let resp = intake
        .handle(dispatch(
            Some("other-brand"),
            "other-brand-crm-secret",
            &qingdao,
        ))
        .await;
    assert_eq!(resp.status(), 200);
    // The shared secret speaks for no brand; a dispatch without a dealer is
    // malformed.
    let resp = intake
        .handle(dispatch(None, "shared-crm-secret", &qingdao))
        .await;
    assert_eq!(resp.status(), 401);
    let resp = intake
        .handle(signed_crm(
            format!(r#"{{"type":"dispatch","lead_id":"{lead_id}"}}"#),
            Some(&w.brand),
            "own-brand-crm-secret",
        ))
        .await;
    assert_eq!(resp.status(), 400);
    // The brand's own CRM, naming another brand's dealer.
    let theirs = format!("{}-jn", elsewhere.brand);
    let resp = intake
        .handle(dispatch(Some(&w.brand), "own-brand-crm-secret", &theirs))
        .await;
    assert_eq!(resp.status(), 200);
    route_queued(&w, &lead_queue).await;
    let still = now_lead().await;
    assert_eq!(still.status, LeadStatus::Unroutable);
    assert_eq!(still.dealer_id, None);
    let trail = w.audit.trail(&lead_id).await.unwrap();
    assert_eq!(
        trail.len(),
        before + 1,
        "one refusal; the other brand left nothing"
    );
    assert!(
        trail[before].detail.contains("refused"),
        "{:?}",
        trail[before]
    );

    // The brand's own CRM, to its Qingdao dealer: routed there, assigned to
    // its consultant, who is told; then the same dispatch again.
    for _ in 0..2 {
        let resp = intake
            .handle(dispatch(Some(&w.brand), "own-brand-crm-secret", &qingdao))
            .await;
        assert_eq!(resp.status(), 200);
    }
    route_queued(&w, &lead_queue).await;
    let placed = now_lead().await;
    assert_eq!(placed.status, LeadStatus::Assigned);
    assert_eq!(placed.dealer_id.as_deref(), Some(qingdao.as_str()));
    assert_eq!(
        placed.route,
        Some(Route::Remote {
            dealer_id: qingdao.clone(),
            referrer: None
        })
    );
    assert_eq!(placed.assignee, Some(format!("{qingdao}-s0")));
    assert!(placed.first_contact_due.is_some());
    let jobs: Vec<NotificationJob> =
        integration_tests::drain(&w.stack.clients.sqs, &w.notifications)
            .await
            .iter()
            .map(|b| serde_json::from_str(b).unwrap())
            .collect();
    let assignments: Vec<&NotificationJob> = jobs
        .iter()
        .filter(|j| j.kind == NotificationKind::NewAssignment)
        .collect();
    // The repeat re-sends the same job (the notifier sends each id once).
    assert!(!assignments.is_empty(), "{jobs:?}");
    assert!(assignments
        .iter()
        .all(|j| j.job_id == assignments[0].job_id));
    assert_eq!(assignments[0].recipients, vec![format!("{qingdao}-s0")]);
    let trail = w.audit.trail(&lead_id).await.unwrap();
    assert!(
        trail
            .iter()
            .any(|e| e.detail.contains("dispatched by the brand CRM")
                && e.actor == leads_domain::audit::Actor::Platform(format!("oem_crm:{}", w.brand))),
        "{trail:?}"
    );
    assert_eq!(
        trail
            .iter()
            .filter(|e| e.action == AuditAction::Assigned)
            .count(),
        1,
        "assigned once: {trail:?}"
    );

    // Placed now: a dispatch elsewhere is refused, and the lead stays.
    let resp = intake
        .handle(dispatch(
            Some(&w.brand),
            "own-brand-crm-secret",
            &format!("{}-jn", w.brand),
        ))
        .await;
    assert_eq!(resp.status(), 200);
    route_queued(&w, &lead_queue).await;
    assert_eq!(
        now_lead().await.dealer_id.as_deref(),
        Some(qingdao.as_str())
    );
    let last = w.audit.trail(&lead_id).await.unwrap();
    assert!(
        last.last().unwrap().detail.contains("not unroutable"),
        "{:?}",
        last.last()
    );
}
