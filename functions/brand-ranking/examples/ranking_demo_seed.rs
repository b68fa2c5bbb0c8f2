//! Seeds a demo brand for the ranking page's browser test (tests/e2e/run.sh):
//! 20 dealers, 31 days of daily stats through the real writers, the ranking of
//! the day before `date` (so the page shows rank changes), and bearer tokens
//! for two of its dealers. `date` itself is left for the caller to rank
//! through the Lambda binary. Prints one JSON object on stdout.
//!
//! Needs the local stack's environment (`.local/env`): it signs the page's
//! tokens with the stack's staff-token secret (`STAFF_TOKEN_SECRET_ID`).
//! Usage: cargo run -p brand-ranking --example ranking_demo_seed [YYYY-MM-DD]

use brand_ranking::{default_date, BrandRanking};
use chrono::{Days, NaiveDate, Utc};
use leads_aws::store::{DirectoryStore, DynamoDirectory, DynamoStats};
use leads_aws::{AwsClients, Settings};
use leads_domain::auth::Claims;
use leads_domain::directory::StaffRole;
use leads_domain::directory_file::DirectoryFile;
use leads_domain::intake::ContentStats;
use leads_domain::ranking::TierCutoffs;

const DEALERS: u64 = 20;

const NAMES: [&str; 20] = [
    "济南华通",
    "青岛海岸",
    "淄博鲁中",
    "烟台港城",
    "潍坊风筝",
    "临沂商城",
    "济宁孔孟",
    "泰安泰山",
    "威海海韵",
    "日照阳光",
    "德州运河",
    "聊城水城",
    "滨州黄河",
    "菏泽牡丹",
    "枣庄运河",
    "东营油城",
    "莱芜钢城",
    "青岛城阳",
    "济南历城",
    "烟台福山",
];

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let settings = Settings::from_env()?;
    let clients = AwsClients::from_env().await;
    let keyring = leads_aws::secrets::staff_token_keys(&clients.secrets)
        .await?
        .get()
        .await;
    let date: NaiveDate = match std::env::args().nth(1) {
        Some(d) => d.parse()?,
        None => default_date(Utc::now()),
    };
    let brand = format!("demo-{}", Utc::now().timestamp_millis());
    let dealer = |i: u64| format!("{brand}-{i:02}");
    let cities = ["济南", "青岛", "淄博", "烟台", "潍坊"];

    let file: DirectoryFile = serde_json::from_value(serde_json::json!({
        "brands": [{"brand_id": brand, "name": "演示品牌"}],
        "dealers": (0..DEALERS).map(|i| serde_json::json!({
            "dealer_id": dealer(i), "brand_id": brand, "name": format!("{}4S店", NAMES[i as usize]),
            "city": cities[i as usize % cities.len()], "served_cities": [], "strategy": "round_robin"
        })).collect::<Vec<_>>(),
        // The API checks every token against the roster: one consultant a dealer.
        "staff": (0..DEALERS).map(|i| serde_json::json!({
            "staff_id": format!("{}-s", dealer(i)), "dealer_id": dealer(i),
            "name": format!("顾问{i:02}"), "role": "sales", "on_duty": true, "cap": 10
        })).collect::<Vec<_>>(),
    }))?;
    DynamoDirectory::new(clients.dynamodb.clone(), &settings.tables.directory)
        .save(&file.validate().map_err(|e| format!("{e:?}"))?)
        .await?;

    let stats = DynamoStats::new(
        clients.dynamodb.clone(),
        &settings.tables.stats,
        &settings.tables.rankings,
    );
    // A deterministic spread: dealer i's activity grows with a mixed-up strength,
    // and dealer 7 has a strong last day (its rank moves up on `date`).
    for i in 0..DEALERS {
        let strength = (i * 7 + 3) % DEALERS + 1;
        for back in 0..31u64 {
            let day = date - Days::new(back);
            let boost = if i == 7 && back == 0 { 6 } else { 1 };
            let plays = 800 + 150 * strength * boost;
            stats
                .put_content_stats(
                    &dealer(i),
                    &ContentStats {
                        platform_account: format!("{brand}-dy-{i}"),
                        date: day,
                        videos: u32::from((back * 3 + i) % 7 < strength.min(14) / 2) * boost as u32,
                        live_sessions: u32::from(back % 4 < strength / 6) * boost as u32,
                        live_minutes: if back % 4 < strength / 6 {
                            (60 + 10 * strength) as u32
                        } else {
                            0
                        },
                        plays,
                        likes: plays * (5 + strength) / 800,
                        comments: plays * strength / 8_000,
                        shares: plays * (strength + 2) / 10_000,
                        completed_plays: plays * (6 + strength) / 100,
                        live_session_minutes: Vec::new(),
                        live_viewers: 0,
                        live_follows: 0,
                        live_comments: 0,
                        live_shares: 0,
                        received_at: Utc::now(),
                    },
                )
                .await?;
            let natural = (strength + back) % 4 + boost * 2 - 2 + u64::from(strength > 12);
            // Natural leads as the router records them: one marker per customer.
            for k in 0..natural {
                let lead = format!("{brand}-L{i}-{back}-{k}");
                clients
                    .dynamodb
                    .update_item()
                    .table_name(&settings.tables.stats)
                    .key(
                        "pk",
                        aws_sdk_dynamodb::types::AttributeValue::S(format!("DEALER#{}", dealer(i))),
                    )
                    .key(
                        "sk",
                        aws_sdk_dynamodb::types::AttributeValue::S(format!("DAY#{day}#N#{lead}")),
                    )
                    .update_expression("SET lead_id = :lead, natural_leads = :one")
                    .expression_attribute_values(
                        ":lead",
                        aws_sdk_dynamodb::types::AttributeValue::S(lead.clone()),
                    )
                    .expression_attribute_values(
                        ":one",
                        aws_sdk_dynamodb::types::AttributeValue::N("1".into()),
                    )
                    .send()
                    .await?;
            }
            clients
                .dynamodb
                .update_item()
                .table_name(&settings.tables.stats)
                .key(
                    "pk",
                    aws_sdk_dynamodb::types::AttributeValue::S(format!("DEALER#{}", dealer(i))),
                )
                .key(
                    "sk",
                    aws_sdk_dynamodb::types::AttributeValue::S(format!("DAY#{day}#L0")),
                )
                .update_expression("ADD paid_leads :p")
                .expression_attribute_values(
                    ":p",
                    aws_sdk_dynamodb::types::AttributeValue::N("1".into()),
                )
                .send()
                .await?;
        }
    }

    let ranking = BrandRanking::new(&settings, &clients, None, TierCutoffs::default());
    let previous = date - Days::new(1);
    ranking.rank(&brand, previous).await?;

    let token = |i: u64| {
        keyring.issue(&Claims::staff(
            &format!("{}-s", dealer(i)),
            &dealer(i),
            &brand.clone(),
            StaffRole::Sales,
            Utc::now(),
            3_600,
        ))
    };
    println!(
        "{}",
        serde_json::json!({
            "brand_id": brand,
            "date": date,
            "previous_date": previous,
            "in_top": {"dealer_id": dealer(7), "token": token(7)},
            "below_top": {"dealer_id": dealer(0), "token": token(0)},
        })
    );
    Ok(())
}
