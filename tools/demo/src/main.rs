//! `lead-demo`: the system's main job, run locally against the real functions.
//!
//! 1. generates a deterministic day of signed webhooks for the seeded directory;
//! 2. posts them over HTTP to `webhook-intake` running under `cargo lambda watch`;
//! 3. plays the SQS event-source mapping for `lead-router`: receive from the lead
//!    queue, invoke the function with an SQS event, delete all but the reported
//!    `batchItemFailures` (there is no SQS trigger emulation locally);
//! 4. reports what the tables and queues hold, next to what it sent.
//!
//! Run by `infra/demo.sh`, which starts the emulator and the functions first.


use std::io::Write;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use clap::Parser;
use lead_demo::dataset::{self, Expect};
use lead_demo::{directory, report, Sent};
use leads_aws::store::{DirectoryStore, DynamoDirectory};
use leads_aws::{config, AwsClients, Settings};
use leads_domain::directory_file::DirectoryFile;
use leads_domain::intake::IntakeSecrets;

#[derive(Parser)]
#[command(about = "Replay a realistic day of webhooks through the local functions and report")]
struct Cli {
    /// cargo-lambda's local endpoint, e.g. http://127.0.0.1:9000
    #[arg(long)]
    endpoint: String,
    /// The directory file that was seeded (ignored with --dealers).
    #[arg(long, default_value = "data/sample-directory.json")]
    directory: std::path::PathBuf,
    /// Generate and seed a regional directory of about this many dealers instead.
    #[arg(long)]
    dealers: Option<usize>,
    /// How many customers to simulate.
    #[arg(long, default_value_t = 240)]
    customers: usize,
    #[arg(long, default_value_t = 20261124)]
    seed: u64,
    /// Webhooks in flight at once (platforms push concurrently).
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// The functions' log, scanned for full phone numbers after the run.
    #[arg(long)]
    functions_log: Option<std::path::PathBuf>,
}


#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cli = Cli::parse();
    let settings = Settings::from_env()?;
    let clients = AwsClients::from_env().await;
    let secrets = IntakeSecrets::from_json(&config::required("INTAKE_SECRETS")?)?;
    let file: DirectoryFile = match cli.dealers {
        Some(n) => directory::generate(n, cli.seed),
        None => serde_json::from_str(&std::fs::read_to_string(&cli.directory)?)?,
    };
    let directory = file.validate().map_err(|e| format!("{e:?}"))?;
    {
        let store = DynamoDirectory::new(clients.dynamodb.clone(), &settings.tables.directory);
        let items = store.save(&directory).await?;
        println!(
            "seeded the directory: {} brands, {} dealers in {} cities, {} staff, {} accounts ({items} items)",
            directory.brands.len(),
            directory.dealers.len(),
            directory.dealers.iter().map(|d| d.city).collect::<std::collections::HashSet<_>>().len(),
            directory.staff.len(),
            directory.accounts.len()
        );
    }
    let now = chrono::Utc::now();
    let data = dataset::generate(&directory, &secrets, cli.customers, cli.seed, now);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let started = Instant::now();

    // Post webhooks (a few at a time), and play the SQS trigger in between.
    let mut sent = Sent::default();
    let total = data.webhooks.len();
    for (i, chunk) in data.webhooks.chunks(cli.concurrency).enumerate() {
        let answers =
            futures::future::join_all(chunk.iter().map(|w| post(&http, &cli.endpoint, w))).await;
        for (hook, answer) in chunk.iter().zip(answers) {
            sent.posted += 1;
            let status = answer?;
            match (status, hook.expect) {
                (200, Expect::Accepted) => sent.accepted += 1,
                (200, Expect::Redelivery) => sent.redeliveries += 1,
                (s, Expect::Rejected(e)) if s == e => *sent.rejected.entry(s).or_default() += 1,
                (s, e) => {
                    *sent.rejected.entry(s).or_default() += 1;
                    sent.surprises
                        .push(format!("{} answered {s}, expected {e:?}", hook.source));
                }
            }
        }
        progress(sent.posted, total, started);
        if i % 4 == 3 {
            drain_lead_queue(&http, &cli.endpoint, &clients, &settings, &mut sent, false).await?;
        }
    }
    eprintln!();
    drain_lead_queue(&http, &cli.endpoint, &clients, &settings, &mut sent, true).await?;
    let elapsed = started.elapsed();

    report::print(
        &clients,
        &settings,
        &directory,
        &data.expected,
        &sent,
        now,
        elapsed,
    )
    .await?;
    if let Some(path) = &cli.functions_log {
        let log = std::fs::read_to_string(path)?;
        let leaking = log.lines().filter(|l| report::has_full_phone(l)).count();
        println!(
            "== privacy: {leaking} of {} function log lines contain a full phone number",
            log.lines().count()
        );
        if leaking > 0 {
            return Err("a full phone number reached the logs".into());
        }
    }
    if !sent.surprises.is_empty() || sent.router_failures > 0 {
        return Err("the demo saw unexpected answers (listed above)".into());
    }
    Ok(())
}

async fn post(
    http: &reqwest::Client,
    endpoint: &str,
    hook: &dataset::Webhook,
) -> Result<u16, String> {
    let url = format!(
        "{endpoint}/lambda-url/webhook-intake/webhooks/{}",
        hook.source
    );
    let mut request = http.post(url).query(&hook.query).body(hook.body.clone());
    for (k, v) in &hook.headers {
        request = request.header(k, v);
    }
    let response = request
        .send()
        .await
        .map_err(|e| format!("webhook-intake unreachable: {e}"))?;
    Ok(response.status().as_u16())
}

/// The SQS event-source mapping, played by hand: receive, invoke, delete all but
/// the failures. With `until_empty`, keeps going until the queue stays empty.
async fn drain_lead_queue(
    http: &reqwest::Client,
    endpoint: &str,
    clients: &AwsClients,
    settings: &Settings,
    sent: &mut Sent,
    until_empty: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let queue = &settings.queues.lead;
    let mut empty_polls = 0;
    loop {
        let received = clients
            .sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .wait_time_seconds(if until_empty { 1 } else { 0 })
            .send()
            .await?;
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            empty_polls += 1;
            if !until_empty || empty_polls >= 2 {
                return Ok(());
            }
            continue;
        }
        empty_polls = 0;
        let mut event = SqsEvent::default();
        event.records = messages
            .iter()
            .map(|m| {
                let mut record = SqsMessage::default();
                record.message_id = m.message_id.clone();
                record.receipt_handle = m.receipt_handle.clone();
                record.body = m.body.clone();
                record.event_source = Some("aws:sqs".into());
                record.event_source_arn =
                    Some("arn:aws:sqs:us-east-1:123456789012:LeadQueue".into());
                record
            })
            .collect();
        let url = format!("{endpoint}/2015-03-31/functions/lead-router/invocations");
        let response: SqsBatchResponse = http.post(url).json(&event).send().await?.json().await?;
        sent.router_invocations += 1;
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        sent.router_failures += failed.len();
        for m in &messages {
            if failed.contains(&m.message_id.as_deref().unwrap_or_default()) {
                continue; // SQS makes it visible again after the timeout
            }
            if let Some(handle) = &m.receipt_handle {
                clients
                    .sqs
                    .delete_message()
                    .queue_url(queue)
                    .receipt_handle(handle)
                    .send()
                    .await?;
            }
        }
    }
}

fn progress(done: usize, total: usize, started: Instant) {
    let width = 40;
    let filled = width * done / total.max(1);
    eprint!(
        "\r  webhooks [{}{}] {done}/{total} {:.1}s",
        "#".repeat(filled),
        "-".repeat(width - filled),
        started.elapsed().as_secs_f64()
    );
    let _ = std::io::stderr().flush();
}
