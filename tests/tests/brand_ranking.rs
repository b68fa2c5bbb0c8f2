//! The nightly brand ranking against the emulator: snapshot layout, idempotent
//! re-runs, tiers, rank change, the router's view of the tier, the fan-out
//! jobs, and the staff API's ranking endpoints with their access rules.

use std::collections::BTreeMap;

use api::Api;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_dynamodb::types::AttributeValue;
use brand_ranking::{BrandRanking, RankJob};
use chrono::{Days, NaiveDate, Utc};
use integration_tests::world::{lead, phone, world};
use integration_tests::{drain, scratch_queue_like, stack, unique, Stack};
use lambda_http::{Body, Request};
use leads_aws::store::{DirectoryStore, DynamoDirectory, DynamoStats};
use leads_domain::auth::{self, Claims};
use leads_domain::directory::{AssignmentStrategy, Platform, StaffRole};
use leads_domain::directory_file::DirectoryFile;
use leads_domain::intake::ContentStats;
use leads_domain::ranking::TierCutoffs;
use leads_domain::routing::Tier;

const SECRET: &[u8] = b"ranking-test-secret";
const DEALERS: usize = 10;

fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// A brand of its own with `DEALERS` dealers (`<brand>-d00` ...), custom
/// score weights, and one sales consultant per dealer.
async fn seed_brand(stack: &Stack) -> String {
    let brand = unique("rank");
    let cities = ["济南", "青岛", "淄博", "烟台", "潍坊"];
    let dealers: Vec<serde_json::Value> = (0..DEALERS)
        .map(|i| {
            serde_json::json!({"dealer_id": format!("{brand}-d{i:02}"), "brand_id": brand,
                "name": format!("{}{i}号店", cities[i % cities.len()]), "city": cities[i % cities.len()],
                "served_cities": [], "strategy": "round_robin"})
        })
        .collect();
    let staff: Vec<serde_json::Value> = (0..DEALERS)
        .map(|i| {
            serde_json::json!({"staff_id": format!("{brand}-d{i:02}-s"), "dealer_id": format!("{brand}-d{i:02}"),
                "name": "顾问", "role": "sales", "on_duty": true, "cap": 10})
        })
        .collect();
    let file: DirectoryFile = serde_json::from_value(serde_json::json!({
        "brands": [{"brand_id": brand, "name": "排名测试品牌",
                    "score_weights": {"videos": 30, "live_hours": 0}}],
        "dealers": dealers,
        "staff": staff,
    }))
    .unwrap();
    DynamoDirectory::new(
        stack.clients.dynamodb.clone(),
        &stack.settings.tables.directory,
    )
    .save(&file.validate().unwrap())
    .await
    .unwrap();
    brand
}

fn dealer(brand: &str, i: usize) -> String {
    format!("{brand}-d{i:02}")
}

/// Daily items for `days` days ending on `last`: dealer i posts and streams
/// more the higher i is (so d09 ranks first), through the real writers'
/// attribute names (content stats SET, lead counters ADD).
async fn seed_stats(stack: &Stack, brand: &str, last: NaiveDate, days: u64, boost: Option<usize>) {
    let stats = DynamoStats::new(
        stack.clients.dynamodb.clone(),
        &stack.settings.tables.stats,
        &stack.settings.tables.rankings,
    );
    for i in 0..DEALERS {
        let strength = if boost == Some(i) { 20 } else { i as u64 };
        for back in 0..days {
            let date = last - Days::new(back);
            let plays = 1_000 + 100 * strength;
            stats
                .put_content_stats(
                    &dealer(brand, i),
                    &ContentStats {
                        platform_account: format!("{brand}-dy-{i}"),
                        date,
                        videos: u32::from(back % 10 < strength.min(10)),
                        live_sessions: u32::from(back % 3 == 0 && strength > 3),
                        live_minutes: if back % 3 == 0 && strength > 3 {
                            180
                        } else {
                            0
                        },
                        plays,
                        likes: plays * strength / 400,
                        comments: plays * strength / 4_000,
                        shares: plays * strength / 5_000,
                        completed_plays: plays * (5 + strength) / 100,
                        ..stats_of(&format!("{brand}-dy-{i}"), date)
                    },
                )
                .await
                .unwrap();
            if back % 5 == 0 {
                let markers: Vec<String> = (0..strength)
                    .map(|k| format!("{brand}-L{i}-{back}-{k}"))
                    .collect();
                natural_markers(stack, &dealer(brand, i), date, &markers).await;
                stack
                    .clients
                    .dynamodb
                    .update_item()
                    .table_name(&stack.settings.tables.stats)
                    .key(
                        "pk",
                        AttributeValue::S(format!("DEALER#{}", dealer(brand, i))),
                    )
                    .key("sk", AttributeValue::S(format!("DAY#{date}#L0")))
                    .update_expression("ADD paid_leads :p")
                    .expression_attribute_values(":p", AttributeValue::N("1".into()))
                    .send()
                    .await
                    .unwrap();
            }
        }
    }
}

/// An account's empty day report (fields filled in by the caller).
fn stats_of(account: &str, date: NaiveDate) -> ContentStats {
    ContentStats {
        platform_account: account.to_string(),
        date,
        videos: 0,
        live_sessions: 0,
        live_minutes: 0,
        plays: 0,
        likes: 0,
        comments: 0,
        shares: 0,
        completed_plays: 0,
        live_session_minutes: Vec::new(),
        live_viewers: 0,
        live_follows: 0,
        live_comments: 0,
        live_shares: 0,
        received_at: Utc::now(),
    }
}

/// Natural-lead markers of `lead_ids` on the dealer's `date`, in the
/// router's layout (`DAY#<day>#N#<lead>`), in batches of 25.
async fn natural_markers(stack: &Stack, dealer_id: &str, date: NaiveDate, lead_ids: &[String]) {
    use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
    for chunk in lead_ids.chunks(25) {
        let requests: Vec<WriteRequest> = chunk
            .iter()
            .map(|lead| {
                let item = std::collections::HashMap::from([
                    (
                        "pk".to_string(),
                        AttributeValue::S(format!("DEALER#{dealer_id}")),
                    ),
                    (
                        "sk".to_string(),
                        AttributeValue::S(format!("DAY#{date}#N#{lead}")),
                    ),
                    ("lead_id".to_string(), AttributeValue::S(lead.clone())),
                    ("natural_leads".to_string(), AttributeValue::N("1".into())),
                ]);
                let put = PutRequest::builder().set_item(Some(item)).build().unwrap();
                WriteRequest::builder().put_request(put).build()
            })
            .collect();
        let out = stack
            .clients
            .dynamodb
            .batch_write_item()
            .request_items(&stack.settings.tables.stats, requests)
            .send()
            .await
            .unwrap();
        assert!(out.unprocessed_items.unwrap_or_default().is_empty());
    }
}

fn ranking(stack: &Stack) -> BrandRanking {
    BrandRanking::new(
        &stack.settings,
        &stack.clients,
        None,
        TierCutoffs::default(),
    )
}

type Items = BTreeMap<String, BTreeMap<String, AttributeValue>>;

/// Every item a brand's snapshot for `date` consists of, keyed by pk|sk (the
/// brand partition, and each dealer's DATE# and LATEST items).
async fn snapshot_items(stack: &Stack, brand: &str, date: NaiveDate) -> Items {
    let db = &stack.clients.dynamodb;
    let table = &stack.settings.tables.rankings;
    let mut items = Items::new();
    let mut keep = |item: std::collections::HashMap<String, AttributeValue>| {
        let key = format!(
            "{}|{}",
            item["pk"].as_s().unwrap(),
            item["sk"].as_s().unwrap()
        );
        items.insert(key, item.into_iter().collect());
    };
    let rows: Vec<_> = db
        .query()
        .table_name(table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(format!("RANKING#{brand}#{date}")))
        .consistent_read(true)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .unwrap();
    rows.into_iter().for_each(&mut keep);
    for i in 0..DEALERS {
        for sk in [format!("DATE#{date}"), "LATEST".to_string()] {
            let out = db
                .get_item()
                .table_name(table)
                .key(
                    "pk",
                    AttributeValue::S(format!("DEALER#{}", dealer(brand, i))),
                )
                .key("sk", AttributeValue::S(sk))
                .consistent_read(true)
                .send()
                .await
                .unwrap();
            if let Some(item) = out.item {
                keep(item);
            }
        }
    }
    items
}

#[tokio::test]
async fn re_running_a_date_writes_the_identical_snapshot() {
    let Some(stack) = stack().await else { return };
    let brand = seed_brand(&stack).await;
    let date = day("2025-06-30");
    seed_stats(&stack, &brand, date, 30, None).await;
    let ranking = ranking(&stack);

    let first = ranking.rank(&brand, date).await.unwrap();
    assert_eq!(first.dealers, DEALERS);
    assert_eq!(first.stats_queries, DEALERS, "one Query per dealer");
    let before = snapshot_items(&stack, &brand, date).await;
    // 10 rows + meta + 10 positions + 10 LATEST.
    assert_eq!(before.len(), 3 * DEALERS + 1);

    // A row an earlier, larger run left behind must not survive a re-run.
    stack
        .clients
        .dynamodb
        .put_item()
        .table_name(&stack.settings.tables.rankings)
        .item("pk", AttributeValue::S(format!("RANKING#{brand}#{date}")))
        .item("sk", AttributeValue::S("RANK#000042".into()))
        .item("dealer_id", AttributeValue::S("gone".into()))
        .send()
        .await
        .unwrap();
    let again = ranking
        .handle(
            serde_json::json!({"date": date, "brand_id": brand}),
            Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(again["dealers"], DEALERS);
    let after = snapshot_items(&stack, &brand, date).await;
    assert_eq!(
        before, after,
        "re-running a date gives the identical snapshot"
    );

    // The brand's configured weights were used (and kept with the snapshot).
    let meta = &after[&format!("RANKING#{brand}#{date}|META")];
    let weights = meta["basis"].as_m().unwrap()["weights"].as_m().unwrap();
    assert_eq!(weights["videos"], AttributeValue::N("30".into()));
    assert_eq!(weights["live_hours"], AttributeValue::N("0".into()));
    assert_eq!(
        weights["like_rate"],
        AttributeValue::N("20".into()),
        "default"
    );
}

#[tokio::test]
async fn tiers_rank_change_and_the_routers_tier_follow_the_latest_date() {
    let Some(stack) = stack().await else { return };
    let brand = seed_brand(&stack).await;
    let ranking = ranking(&stack);
    let stats = DynamoStats::new(
        stack.clients.dynamodb.clone(),
        &stack.settings.tables.stats,
        &stack.settings.tables.rankings,
    );
    let first_day = day("2025-05-30");
    let second_day = day("2025-05-31");
    seed_stats(&stack, &brand, first_day, 30, None).await;

    let first = ranking.rank(&brand, first_day).await.unwrap();
    assert_eq!(first.previous_date, None);
    // 10 dealers, 10/20/40 %: S 1, A 2, B 4, C 3.
    assert_eq!(
        serde_json::to_value(first.tiers).unwrap(),
        serde_json::json!({"S": 1, "A": 2, "B": 4, "C": 3})
    );
    let top_dealer = dealer(&brand, DEALERS - 1);
    let weakest = dealer(&brand, 0);
    assert_eq!(stats.latest_tier(&top_dealer).await.unwrap(), Some(Tier::S));
    assert_eq!(stats.latest_tier(&weakest).await.unwrap(), Some(Tier::C));

    // The next day d00 has a great day: a lot of content on a second
    // account, and natural leads.
    seed_stats(&stack, &brand, second_day, 1, Some(0)).await;
    stats
        .put_content_stats(
            &weakest,
            &ContentStats {
                videos: 30,
                live_sessions: 40,
                live_minutes: 40 * 60,
                ..stats_of(&format!("{brand}-dy-second"), second_day)
            },
        )
        .await
        .unwrap();
    let markers: Vec<String> = (0..300).map(|k| format!("{brand}-great-{k}")).collect();
    natural_markers(&stack, &weakest, second_day, &markers).await;
    let second = ranking.rank(&brand, second_day).await.unwrap();
    assert_eq!(second.previous_date, Some(first_day));

    let api = Api::new(&stack.settings, &stack.clients, SECRET.to_vec());
    let own = token(&brand, &weakest);
    let (status, body) = call(
        &api,
        &format!("/rankings/{brand}/{second_day}/dealers/{weakest}"),
        Some(&own),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let me = &body["dealer"];
    assert_eq!(me["rank"], 1, "{me}");
    assert_eq!(me["previous_rank"], 10);
    assert_eq!(me["rank_change"], 9, "10th -> 1st is up nine");
    assert_eq!(me["tier"], "S");
    assert_eq!(stats.latest_tier(&weakest).await.unwrap(), Some(Tier::S));

    // Re-running the older date rewrites its snapshot but leaves LATEST on the newer one.
    let rerun = ranking.rank(&brand, first_day).await.unwrap();
    assert!(!rerun.latest_updated);
    assert_eq!(stats.latest_tier(&weakest).await.unwrap(), Some(Tier::S));
    let (_, latest) = call(&api, &format!("/rankings/{brand}/latest?top=1"), Some(&own)).await;
    assert_eq!(latest["date"], second_day.to_string());
    assert_eq!(latest["top"][0]["dealer_id"], weakest.as_str());
}

fn token(brand: &str, dealer: &str) -> String {
    auth::issue(
        SECRET,
        &Claims::staff(
            &format!("{dealer}-s"),
            dealer,
            brand,
            StaffRole::Sales,
            Utc::now(),
            600,
        ),
    )
}

async fn call(api: &Api, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
    let (status, _, text) = call_raw(api, path, token).await;
    (status, serde_json::from_str(&text).unwrap())
}

async fn call_raw(api: &Api, path: &str, token: Option<&str>) -> (u16, String, String) {
    let mut b = lambda_http::http::Request::builder()
        .method("GET")
        .uri(path);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    let request: Request = b.body(Body::Empty).unwrap();
    let response = api.handle(request).await;
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let text = match response.body() {
        Body::Text(t) => t.clone(),
        _ => String::new(),
    };
    (response.status().as_u16(), content_type, text)
}

#[tokio::test]
async fn the_api_shows_the_brand_top_n_and_only_the_callers_own_detail() {
    let Some(stack) = stack().await else { return };
    let brand = seed_brand(&stack).await;
    let other_brand = seed_brand(&stack).await;
    let date = day("2025-04-30");
    seed_stats(&stack, &brand, date, 30, None).await;
    ranking(&stack).rank(&brand, date).await.unwrap();
    let api = Api::new(&stack.settings, &stack.clients, SECRET.to_vec());
    let me = dealer(&brand, 3);
    let mine = token(&brand, &me);

    // Top N: ordered ranks 1..=N, the brand's totals and window.
    let (status, body) = call(
        &api,
        &format!("/rankings/{brand}/{date}?top=3"),
        Some(&mine),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let top = body["top"].as_array().unwrap();
    assert_eq!(
        top.iter()
            .map(|r| r["rank"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(top[0]["dealer_id"], dealer(&brand, DEALERS - 1).as_str());
    assert!(
        top[0]["score"]["total"].as_f64().unwrap() >= top[1]["score"]["total"].as_f64().unwrap()
    );
    assert!(
        top[0].get("components").is_none(),
        "other dealers' components stay private"
    );
    assert_eq!(body["dealers"], DEALERS);
    assert_eq!(body["window"]["from"], "2025-04-01");
    // Default N is 10; a stage prefix is fine.
    let (status, body) = call(&api, &format!("/prod/rankings/{brand}/{date}"), Some(&mine)).await;
    assert_eq!((status, body["top"].as_array().unwrap().len()), (200, 10));

    // Own detail: position, components, metrics.
    let (status, body) = call(
        &api,
        &format!("/rankings/{brand}/{date}/dealers/{me}"),
        Some(&mine),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["dealer"]["dealer_id"], me.as_str());
    assert_eq!(body["dealer"]["rank"], 7);
    assert!(body["dealer"]["components"]["videos"].is_number());
    assert!(body["dealer"]["metrics"]["like_rate"].is_number());
    assert_eq!(body["basis"]["weights"]["videos"], 30.0);

    // Someone else's detail, another brand's ranking: forbidden.
    let other_dealer = dealer(&brand, 4);
    for path in [
        format!("/rankings/{brand}/{date}/dealers/{other_dealer}"),
        format!("/rankings/{other_brand}/{date}"),
        format!("/rankings/{other_brand}/{date}/dealers/{me}"),
    ] {
        let (status, body) = call(&api, &path, Some(&mine)).await;
        assert_eq!(status, 403, "{path}: {body}");
    }
    let outsider = token(&other_brand, &dealer(&other_brand, 0));
    assert_eq!(
        call(
            &api,
            &format!("/rankings/{brand}/{date}?top=3"),
            Some(&outsider)
        )
        .await
        .0,
        403
    );

    // Bad input, no token, no snapshot.
    for (path, expected) in [
        (format!("/rankings/{brand}/2025-02-30"), 400),
        (format!("/rankings/{brand}/{date}?top=0"), 400),
        (format!("/rankings/{brand}/{date}?top=101"), 400),
        (format!("/rankings/{brand}/2025-01-01"), 404),
        (format!("/rankings/{brand}/2025-01-01/dealers/{me}"), 404),
    ] {
        assert_eq!(call(&api, &path, Some(&mine)).await.0, expected, "{path}");
    }
    assert_eq!(
        call(&api, &format!("/rankings/{brand}/{date}"), None)
            .await
            .0,
        401
    );
    let other_mine = token(&other_brand, &dealer(&other_brand, 0));
    assert_eq!(
        call(
            &api,
            &format!("/rankings/{other_brand}/latest"),
            Some(&other_mine)
        )
        .await
        .0,
        404,
        "never ranked"
    );

    // The page loads without a token (its API calls carry one).
    let (status, content_type, html) = call_raw(&api, "/dev/rankings/page", None).await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(html.contains("data-testid=\"ranking\""));
}

#[tokio::test]
async fn the_nightly_run_sends_one_job_per_brand_and_jobs_rank_their_brand() {
    let Some(stack) = stack().await else { return };
    let brand = seed_brand(&stack).await;
    let date = day("2025-03-31");
    seed_stats(&stack, &brand, date, 3, None).await;
    let queue = scratch_queue_like(&stack.clients.sqs, &stack.settings.queues.lead).await;
    let fan_out = BrandRanking::new(
        &stack.settings,
        &stack.clients,
        Some(queue.clone()),
        TierCutoffs::default(),
    );

    // The schedule's event: 18:00 UTC on 31 March = 02:00 on 1 April in China.
    let scheduled = serde_json::json!({
        "version": "0", "id": unique("evt"), "detail-type": "Scheduled Event",
        "source": "aws.events", "account": "123456789012", "time": "2025-03-31T18:00:00Z",
        "region": "us-east-1", "resources": [], "detail": {}
    });
    let out = fan_out.handle(scheduled, Utc::now()).await.unwrap();
    // The emulator holds every test's brands; ours is among them, once.
    let bodies = drain(&stack.clients.sqs, &queue).await;
    assert_eq!(out["jobs_sent"], bodies.len());
    let jobs: Vec<RankJob> = bodies
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .filter(|j: &RankJob| j.brand_id == brand)
        .collect();
    assert_eq!(
        jobs,
        [RankJob {
            date,
            brand_id: brand.clone()
        }]
    );

    // The queue's records reach the same function: a good job ranks, a bad one is reported.
    let record = |id: &str, body: String| {
        let mut m = SqsMessage::default();
        m.message_id = Some(id.to_string());
        m.body = Some(body);
        m
    };
    let mut event = SqsEvent::default();
    event.records = vec![
        record("good", serde_json::to_string(&jobs[0]).unwrap()),
        record("bad", r#"{"brand_id": 1}"#.to_string()),
        record(
            "unknown",
            serde_json::json!({"date": date, "brand_id": unique("nobody")}).to_string(),
        ),
    ];
    let response = fan_out
        .handle(serde_json::to_value(&event).unwrap(), Utc::now())
        .await
        .unwrap();
    let failed: Vec<&str> = response["batchItemFailures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["bad", "unknown"]);
    let stats = DynamoStats::new(
        stack.clients.dynamodb.clone(),
        &stack.settings.tables.stats,
        &stack.settings.tables.rankings,
    );
    assert_eq!(
        stats
            .latest_tier(&dealer(&brand, DEALERS - 1))
            .await
            .unwrap(),
        Some(Tier::S)
    );
}

#[tokio::test]
async fn natural_leads_counted_by_the_router_feed_the_natural_lead_score() {
    let Some(w) = world(AssignmentStrategy::RoundRobin, &[50]).await else {
        return;
    };
    // Two natural leads for the Jinan dealer through the real router.
    for _ in 0..2 {
        w.router
            .handle_lead(
                &lead(&w, Platform::Douyin, "dy-jn", &phone(), None),
                Utc::now(),
            )
            .await
            .unwrap();
    }
    let today = leads_domain::dedup::china_day(Utc::now());
    let summary = ranking(&w.stack).rank(&w.brand, today).await.unwrap();
    assert_eq!(summary.dealers, 2);
    let api = Api::new(&w.stack.settings, &w.stack.clients, SECRET.to_vec());
    let jinan = format!("{}-jn", w.brand);
    let (status, body) = call(
        &api,
        &format!("/rankings/{}/{today}/dealers/{jinan}", w.brand),
        // A consultant of the world's directory (the API checks it).
        Some(&auth::issue(
            SECRET,
            &Claims::staff(
                &format!("{jinan}-s0"),
                &jinan,
                &w.brand,
                StaffRole::Sales,
                Utc::now(),
                600,
            ),
        )),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["dealer"]["natural_leads"], 2);
    // k = median(2, 0) = 1 -> 100 · 2 / 3.
    assert_eq!(body["dealer"]["score"]["natural"], 66.67);
    assert_eq!(body["dealer"]["rank"], 1);
}

/// The ranking's inputs as the router, the stats writer and the API leave
/// them: each Douyin natural customer once (a merged Douyin touch counts,
/// a redelivered touch does not add), WeCom / vertical / paid apart, a
/// dealer's two accounts summed and a redelivered report replacing; then a
/// lead marked invalid through the API and the date re-run: the corrected
/// snapshot. Both runs send one RankingPublished per dealer, same job ids.
#[tokio::test]
async fn a_re_run_after_an_invalid_mark_gives_the_corrected_snapshot() {
    use integration_tests::world::wecom_lead;
    use leads_aws::store::DynamoRankings;
    use leads_domain::lead::Traffic;
    let Some(w) = world(AssignmentStrategy::RoundRobin, &[50]).await else {
        return;
    };
    let jinan = format!("{}-jn", w.brand);
    let now = Utc::now();
    let today = leads_domain::dedup::china_day(now);
    let route = |l: leads_domain::lead::CanonicalLead| {
        let router = &w.router;
        async move { router.handle_lead(&l, now).await.unwrap() }
    };
    let (a, b, c) = (phone(), phone(), phone());
    // A: a Douyin natural lead, and the same customer again (merged): one.
    route(lead(&w, Platform::Douyin, "dy-jn", &a, None)).await;
    route(lead(&w, Platform::Douyin, "dy-jn", &a, None)).await;
    // B: first on Autohome (a vertical-media lead), then a natural Douyin
    // touch merges into it: B counts as a natural customer.
    route(lead(&w, Platform::Autohome, "ah-jn", &b, None)).await;
    route(lead(&w, Platform::Douyin, "dy-jn", &b, None)).await;
    // C: natural, to be marked invalid.
    let lead_c = route(lead(&w, Platform::Douyin, "dy-jn", &c, None))
        .await
        .lead_id
        .unwrap();
    // Not natural: a WeCom contact and a paid Douyin lead.
    route(wecom_lead(&w, &unique("ext"))).await;
    let mut paid = lead(&w, Platform::Douyin, "dy-jn", &phone(), None);
    paid.traffic = Traffic::Paid;
    route(paid).await;
    // Two Douyin accounts report; the first one's report is redelivered corrected.
    let stats = DynamoStats::new(
        w.stack.clients.dynamodb.clone(),
        &w.stack.settings.tables.stats,
        &w.stack.settings.tables.rankings,
    );
    for (account, plays, likes) in [
        ("dy-jn", 1_000, 10),
        ("dy-jn", 2_000, 40),
        ("dy-jn-2", 1_000, 10),
    ] {
        let report = ContentStats {
            plays,
            likes,
            ..stats_of(&format!("{}-{account}", w.brand), today)
        };
        stats.put_content_stats(&jinan, &report).await.unwrap();
    }

    let mut settings = w.stack.settings.clone();
    settings.queues.notification = w.notifications.clone();
    let ranking = BrandRanking::new(&settings, &w.stack.clients, None, TierCutoffs::default());
    let rankings = DynamoRankings::new(
        w.stack.clients.dynamodb.clone(),
        &w.stack.settings.tables.stats,
        &w.stack.settings.tables.rankings,
    );
    let notices = || async {
        let mut ids: Vec<String> = drain(&w.stack.clients.sqs, &w.notifications)
            .await
            .iter()
            .map(|b| serde_json::from_str::<serde_json::Value>(b).unwrap())
            .filter(|n| n["kind"] == "ranking_published")
            .map(|n| n["job_id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    };
    let expected_notices = {
        let mut ids = vec![
            format!("RANK#{0}#{0}-jn#{today}", w.brand),
            format!("RANK#{0}#{0}-qd#{today}", w.brand),
        ];
        ids.sort();
        ids
    };

    let first = ranking.rank(&w.brand, today).await.unwrap();
    assert_eq!((first.dealers, first.invalid_leads), (2, 0));
    assert_eq!(first.notices_sent, 2);
    assert_eq!(notices().await, expected_notices, "one per ranked dealer");
    let position = rankings.position(&jinan, today).await.unwrap().unwrap();
    let t = position.dealer.totals;
    assert_eq!(position.dealer.natural_leads, 3, "A, B and C: {t:?}");
    assert_eq!((t.wecom_leads, t.vertical_leads, t.paid_leads), (1, 1, 1));
    assert_eq!(
        (t.plays, t.likes, t.accounts),
        (3_000, 50, 2),
        "2,000 replaced 1,000"
    );
    let meta = rankings.meta(&w.brand, today).await.unwrap().unwrap();
    assert_eq!(meta.basis.natural_lead_k, 1.5, "median of 3 and 0");

    // A manager marks C invalid; the re-run subtracts it.
    let mut api_settings = w.stack.settings.clone();
    api_settings.queues.notification = w.notifications.clone();
    let api = Api::new(&api_settings, &w.stack.clients, SECRET.to_vec());
    let manager = auth::issue(
        SECRET,
        &Claims::staff(
            &format!("{jinan}-mgr"),
            &jinan,
            &w.brand,
            StaffRole::Manager,
            Utc::now(),
            600,
        ),
    );
    let request: Request = lambda_http::http::Request::builder()
        .method("POST")
        .uri(format!("/leads/{lead_c}/events"))
        .header("authorization", format!("Bearer {manager}"))
        .body(Body::from(
            r#"{"event":"marked_invalid","reason":"not_a_buyer"}"#,
        ))
        .unwrap();
    let response = api.handle(request).await;
    assert_eq!(response.status().as_u16(), 200, "{:?}", response.body());

    let again = ranking.rank(&w.brand, today).await.unwrap();
    assert_eq!(again.invalid_leads, 1);
    let position = rankings.position(&jinan, today).await.unwrap().unwrap();
    assert_eq!(position.dealer.natural_leads, 2, "C subtracted");
    assert_eq!(position.dealer.totals.invalid_natural_leads, 1);
    let meta = rankings.meta(&w.brand, today).await.unwrap().unwrap();
    assert_eq!(meta.basis.natural_lead_k, 1.0, "median of 2 and 0");
    // The same job ids again: the notifier delivers each once.
    assert_eq!(notices().await, expected_notices);
}

/// Scale check against the emulator (ignored by default: it seeds
/// `RANKING_SCALE_DEALERS` x 30 daily items, 1,000 dealers unless set).
/// Prints the ranking's read/compute/write split; the emulator is
/// single-threaded (~500 requests/s), so this bounds the emulator, not the code.
/// Run: cargo test -p integration-tests --test brand_ranking -- --ignored --nocapture
#[tokio::test]
#[ignore]
async fn ranking_scale_against_the_emulator() {
    use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
    let Some(stack) = stack().await else { return };
    let dealers: usize = std::env::var("RANKING_SCALE_DEALERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    let brand = unique("scale");
    let date = day("2025-02-28");
    let file: DirectoryFile = serde_json::from_value(serde_json::json!({
        "brands": [{"brand_id": brand, "name": "规模"}],
        "dealers": (0..dealers).map(|i| serde_json::json!({
            "dealer_id": format!("{brand}-{i:05}"), "brand_id": brand, "name": format!("店{i}"),
            "city": "济南", "served_cities": [], "strategy": "round_robin"})).collect::<Vec<_>>(),
    }))
    .unwrap();
    let seeding = std::time::Instant::now();
    DynamoDirectory::new(
        stack.clients.dynamodb.clone(),
        &stack.settings.tables.directory,
    )
    .save(&file.validate().unwrap())
    .await
    .unwrap();
    let n = |v: u64| AttributeValue::N(v.to_string());
    let mut requests = Vec::new();
    for i in 0..dealers as u64 {
        for back in 0..30 {
            let item = std::collections::HashMap::from([
                (
                    "pk".to_string(),
                    AttributeValue::S(format!("DEALER#{brand}-{i:05}")),
                ),
                (
                    "sk".to_string(),
                    AttributeValue::S(format!("DAY#{}", date - Days::new(back))),
                ),
                ("videos".to_string(), n((i + back) % 2)),
                ("live_sessions".to_string(), n((i * back) % 3 / 2)),
                ("live_minutes".to_string(), n((i * back) % 3 / 2 * 150)),
                ("plays".to_string(), n(1_000 + i % 500)),
                ("likes".to_string(), n(i % 40)),
                ("comments".to_string(), n(i % 7)),
                ("shares".to_string(), n(i % 5)),
                ("completed_plays".to_string(), n(100 + i % 200)),
                ("natural_leads".to_string(), n((i + back) % 3)),
            ]);
            let put = PutRequest::builder().set_item(Some(item)).build().unwrap();
            requests.push(WriteRequest::builder().put_request(put).build());
        }
    }
    for chunk in requests.chunks(25) {
        let out = stack
            .clients
            .dynamodb
            .batch_write_item()
            .request_items(&stack.settings.tables.stats, chunk.to_vec())
            .send()
            .await
            .unwrap();
        assert!(out.unprocessed_items.unwrap_or_default().is_empty());
    }
    eprintln!(
        "scale: seeded {dealers} dealers x 30 days in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );
    let started = std::time::Instant::now();
    let summary = ranking(&stack).rank(&brand, date).await.unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    let calls = summary.stats_queries + summary.batch_writes;
    eprintln!(
        "scale: ranked {} dealers in {elapsed:.1} s (read {} ms, compute {} ms, write {} ms); \
         {} stats Queries + {} BatchWriteItems = {:.2} requests per dealer, {:.0} requests/s",
        summary.dealers,
        summary.read_ms,
        summary.compute_ms,
        summary.write_ms,
        summary.stats_queries,
        summary.batch_writes,
        calls as f64 / summary.dealers as f64,
        calls as f64 / elapsed
    );
    assert_eq!(summary.dealers, dealers);
}
