//! Benchmarks for issue #8. The inputs come from the demo's generator
//! (`lead_demo`): realistic, signed webhooks from every source for a directory.
//!
//! - `benches/pure.rs` (criterion): webhook verify + parse + normalise per
//!   source, the dedup/routing/assignment decision per lead, ranking 34,000
//!   dealers × 30 days;
//! - `bench-emulator` (binary): AWS requests per accepted webhook, new lead,
//!   merge and notification, counted by the SDK interceptor; end-to-end
//!   webhook → notification latency next to the emulator round trips inside it;
//!   DynamoDB capacity units estimated from the real request/response bodies;
//!   the cost model;
//! - `hello` (binary): the cold-start baseline.
//!
//! `infra/bench.sh` runs everything and regenerates the README table.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use lead_demo::dataset::{self, Expect};
use leads_domain::directory_file::{Directory, DirectoryFile};
use leads_domain::intake::{IntakeSecrets, Source};

pub mod capacity;

/// Fixed secrets in the deployed secret's shape (README "Configuration"), with
/// the WeCom corps of the sample and the generated directories.
pub fn bench_secrets() -> IntakeSecrets {
    let corps = ["ww-hongtu-corp", "ww-xinglan-corp", "ww-yunhai-corp"];
    let wecom: Vec<serde_json::Value> = corps
        .iter()
        .enumerate()
        .map(|(i, corp)| {
            // 43 characters; the last one's low bits are zero (strict base64).
            let last = ["A", "E", "I"][i];
            serde_json::json!({"corp_id": corp, "token": format!("token{i}"),
                "encoding_aes_key": format!("abcdefghijklmnopqrstuvwxyz0123456789ABCDEF{last}")})
        })
        .collect();
    let hmac: serde_json::Map<String, serde_json::Value> =
        ["feiyu", "dongchedi", "autohome", "yiche", "oem_crm"]
            .iter()
            .map(|s| {
                (
                    s.to_string(),
                    serde_json::json!({"secrets": [format!("{s}-secret-0123456789")]}),
                )
            })
            .collect();
    let value = serde_json::json!({
        "phone_hash_key": "bench-phone-hash-key-0123456789",
        "douyin": {"awx-demo-app": "douyin-app-secret-0123456789"},
        "hmac": hmac,
        "wecom": wecom,
    });
    IntakeSecrets::from_json(&value.to_string()).expect("bench secrets are valid")
}

/// The repository's sample directory (2 brands, 9 dealers).
pub fn sample_directory() -> Directory {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/sample-directory.json");
    let text = std::fs::read_to_string(&path).expect("data/sample-directory.json");
    let file: DirectoryFile = serde_json::from_str(&text).expect("sample directory parses");
    file.validate().expect("sample directory is valid")
}

/// A generated regional directory of about `dealers` dealers (3 brands).
pub fn generated_directory(dealers: usize, seed: u64) -> Directory {
    lead_demo::directory::generate(dealers, seed)
        .validate()
        .expect("generated directory is valid")
}

/// One webhook as the intake's pure core receives it.
#[derive(Debug, Clone)]
pub struct RawWebhook {
    pub source: Source,
    pub headers: HashMap<String, String>,
    pub query: HashMap<String, String>,
    pub body: Vec<u8>,
}

/// The accepted (first-delivery) webhooks of a generated day, per source.
pub fn accepted_webhooks(
    directory: &Directory,
    secrets: &IntakeSecrets,
    customers: usize,
    seed: u64,
    now: DateTime<Utc>,
) -> HashMap<Source, Vec<RawWebhook>> {
    let data = dataset::generate(directory, secrets, customers, seed, now);
    let mut out: HashMap<Source, Vec<RawWebhook>> = HashMap::new();
    for hook in data.webhooks {
        if hook.expect != Expect::Accepted {
            continue;
        }
        out.entry(hook.source).or_default().push(RawWebhook {
            source: hook.source,
            headers: hook
                .headers
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
            query: hook.query.into_iter().collect(),
            body: hook.body.into_bytes(),
        });
    }
    out
}

/// Nearest-rank percentile of sorted values (`p` in 0..=100).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
