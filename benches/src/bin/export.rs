//! `export`: one dealer's lead list exported as CSV (`GET /leads/export.csv`)
//! over a large range, measured against the emulator.
//!
//! Seeds `--leads N` lead items (default 50,000) for one dealer straight into
//! `LeadsTable` (the fields the dealer index projects, received over 30 days),
//! then pages through the export as the dealer's manager with the api
//! function's code in process, following `x-next-cursor`: per response its
//! rows, bytes and time, and the process's peak memory (what one function
//! instance needs: at most `api::oversight::EXPORT_ROWS` rows are held at
//! once). Checks every lead is exported exactly once.
//!
//! Needs the local stack's environment (`eval "$(infra/local/stack.sh up)"`).
//! Usage: cargo run --release -p leads-benches --bin export -- [--leads N] [--out FILE]

use std::collections::HashSet;
use std::time::Instant;

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use chrono::{Duration, Utc};
use lambda_http::{Body, Request};
use leads_aws::store::{DirectoryStore, DynamoDirectory};
use leads_aws::{AwsClients, Settings};
use leads_domain::auth::{self, Claims};
use leads_domain::directory::StaffRole;
use leads_domain::directory_file::DirectoryFile;

const SECRET: &[u8] = b"export-bench-secret";

/// Peak resident memory of this process, MiB (Linux `VmHWM`).
fn peak_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let leads: usize = arg("--leads").map_or(Ok(50_000), |n| n.parse())?;
    let settings = Settings::from_env()?;
    let clients = AwsClients::from_env().await;
    let stamp = Utc::now().timestamp_millis();
    let brand = format!("export-{stamp}");
    let dealer = format!("{brand}-d1");
    let file: DirectoryFile = serde_json::from_value(serde_json::json!({
        "brands": [{"brand_id": brand, "name": "导出测试"}],
        "dealers": [{"dealer_id": dealer, "brand_id": brand, "name": "济南店", "city": "济南", "strategy": "round_robin"}],
        "staff": [{"staff_id": format!("{dealer}-mgr"), "dealer_id": dealer, "name": "店总", "role": "manager", "on_duty": true, "cap": 0}]
    }))?;
    let directory = file.validate().map_err(|e| format!("{e:?}"))?;
    DynamoDirectory::new(clients.dynamodb.clone(), &settings.tables.directory)
        .save(&directory)
        .await?;

    // The leads, as the dealer index sees them, received over the last 30 days.
    let seeding = Instant::now();
    let now = Utc::now();
    let s = |v: String| AttributeValue::S(v);
    let items: Vec<WriteRequest> = (0..leads)
        .map(|i| {
            let id = format!("L{stamp}-{i:06}");
            let at = now - Duration::seconds((i as i64 * 30 * 86_400) / leads.max(1) as i64);
            let (gsi3pk, gsi3sk) = leads_domain::lead_list::index_keys(&dealer, at, &id);
            let touch = serde_dynamo::to_attribute_value(serde_json::json!({
                "platform": "douyin", "account_id": "dy", "scene": "live", "traffic": "natural",
                "at": at.to_rfc3339(), "source_event_id": format!("e-{id}")
            }))
            .expect("a touchpoint is an item value");
            let item = [
                ("pk", s(format!("LEAD#{id}"))),
                ("sk", s("LEAD".into())),
                ("gsi3pk", s(gsi3pk)),
                ("gsi3sk", s(gsi3sk)),
                ("lead_id", s(id.clone())),
                ("status", s("assigned".into())),
                ("assignee", s(format!("{dealer}-s{}", i % 7))),
                ("phone_masked", s(format!("139****{:04}", i % 10_000))),
                ("series_interest", AttributeValue::L(vec![s("H6".into())])),
                ("first_touch", touch),
                ("touchpoints", AttributeValue::N("1".into())),
                ("received_at", s(at.to_rfc3339())),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
            WriteRequest::builder()
                .put_request(
                    PutRequest::builder()
                        .set_item(Some(item))
                        .build()
                        .expect("item set"),
                )
                .build()
        })
        .collect();
    for chunk in items.chunks(25) {
        leads_aws::store::item::write_chunk(
            &clients.dynamodb,
            &settings.tables.leads,
            chunk.to_vec(),
        )
        .await?;
    }
    let seeded_s = seeding.elapsed().as_secs_f64();
    eprintln!("seeded {leads} leads in {seeded_s:.1} s");

    let api = api::Api::new(&settings, &clients, SECRET.to_vec());
    let token = auth::issue(
        SECRET,
        &Claims::staff(
            &format!("{dealer}-mgr"),
            &dealer,
            &brand,
            StaffRole::Manager,
            Utc::now(),
            3600,
        ),
    );
    let from = (now - Duration::days(31)).format("%Y-%m-%d").to_string();
    let to = (now + Duration::days(1)).format("%Y-%m-%d").to_string();
    let before = peak_mib();
    let started = Instant::now();
    let mut cursor: Option<String> = None;
    let mut seen = HashSet::new();
    let mut pages = Vec::new();
    loop {
        let mut uri = format!("/leads/export.csv?from={from}&to={to}");
        if let Some(c) = &cursor {
            uri.push_str(&format!("&cursor={c}"));
        }
        let request: Request = lambda_http::http::Request::builder()
            .uri(uri)
            .header("authorization", format!("Bearer {token}"))
            .body(Body::Empty)?;
        let page_started = Instant::now();
        let response = api.handle(request).await;
        let ms = page_started.elapsed().as_secs_f64() * 1000.0;
        if response.status() != 200 {
            return Err(format!("export answered {}", response.status()).into());
        }
        cursor = response
            .headers()
            .get("x-next-cursor")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let Body::Text(text) = response.body() else {
            return Err("the export is text".into());
        };
        let rows: Vec<&str> = text.lines().skip(1).collect();
        for row in &rows {
            let id = row.split(',').next().unwrap_or_default().to_string();
            if !seen.insert(id.clone()) {
                return Err(format!("{id} exported twice").into());
            }
        }
        eprintln!(
            "  response {}: {} rows, {} bytes, {ms:.0} ms",
            pages.len() + 1,
            rows.len(),
            text.len()
        );
        pages.push(serde_json::json!({"rows": rows.len(), "bytes": text.len(), "ms": ms.round()}));
        if cursor.is_none() {
            break;
        }
    }
    if seen.len() != leads {
        return Err(format!("{} of {leads} leads exported", seen.len()).into());
    }
    let total_s = started.elapsed().as_secs_f64();
    let largest = pages
        .iter()
        .filter_map(|p| p["bytes"].as_u64())
        .max()
        .unwrap_or(0);
    let report = serde_json::json!({
        "leads": leads,
        "responses": pages.len(),
        "rows_per_response": api::EXPORT_ROWS,
        "largest_response_bytes": largest,
        "export_s": (total_s * 10.0).round() / 10.0,
        "seed_s": (seeded_s * 10.0).round() / 10.0,
        "peak_rss_mib_before": (before * 10.0).round() / 10.0,
        "peak_rss_mib_after": (peak_mib() * 10.0).round() / 10.0,
        "pages": pages,
    });
    println!(
        "export of {leads} leads: {} responses of at most {} rows (largest {:.2} MB), {total_s:.1} s in all; peak memory {:.1} MiB (before the export {:.1} MiB)",
        pages.len(),
        api::EXPORT_ROWS,
        largest as f64 / 1e6,
        peak_mib(),
        before
    );
    if let Some(path) = arg("--out") {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")?;
    }
    Ok(())
}
