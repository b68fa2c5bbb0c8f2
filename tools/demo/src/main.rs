//! `lead-demo`: the system's main job, run locally against the real functions
//! (all served by `cargo lambda watch`, which `infra/demo.sh` starts first).
//!
//! 1. seeds the directory and generates a deterministic day of signed webhooks;
//! 2. posts them over HTTP to `webhook-intake`, while playing the SQS trigger of
//!    `lead-router` (lead queue) and `notifier` (notification queue), which
//!    delivers to a local stand-in for WeCom, the SMS gateway and the CRM;
//! 3. lets the consultants work through the staff API (`api`): claim races on
//!    claim-group leads, most new leads called back in time;
//! 4. invokes `sla-sweeper` as of a later hour: overdue first contacts are
//!    warned (and reassigned where the brand says so), and notified;
//! 5. invokes `brand-ranking` for the day, plays its per-brand job queue and
//!    reads each brand's top 10 through the API;
//! 6. reports what the tables, queues and receiver hold, next to what the
//!    generator knows it sent, and fails if they differ.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use aws_lambda_events::event::cloudwatch_events::CloudWatchEvent;
use clap::Parser;
use lead_demo::dataset::{self, Expect, Webhook};
use lead_demo::functions::{DemoResult, Functions, Played};
use lead_demo::receiver::Receiver;
use lead_demo::{directory, report, staff, Run, Sent};
use leads_aws::store::{DirectoryStore, DynamoDirectory};
use leads_aws::{config, AwsClients, Settings};
use leads_domain::auth::Keyring;
use leads_domain::dedup::china_day;
use leads_domain::directory::StaffRole;
use leads_domain::directory_file::{Directory, DirectoryFile};
use leads_domain::notification::Notice;

#[derive(Parser)]
#[command(about = "Replay a realistic day through the local functions and report")]
struct Cli {
    /// cargo-lambda's local endpoint, e.g. http://127.0.0.1:9000
    #[arg(long)]
    endpoint: String,
    /// Port of the local WeCom/SMS/CRM stand-in the notifier is configured
    /// with (infra/demo.sh picks it); without it notifications are not played.
    #[arg(long)]
    receiver_port: Option<u16>,
    /// The directory file to seed (ignored with --dealers).
    #[arg(long, default_value = "data/sample-directory.json")]
    directory: PathBuf,
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
    /// Concurrent pollers per queue trigger (infra/demo.sh starts as many
    /// instances of the router and the notifier).
    #[arg(long, default_value_t = 1)]
    consumers: usize,
    /// Share of assigned leads the consultants call back before the deadline.
    #[arg(long, default_value_t = 0.75)]
    contact_rate: f64,
    /// The SLA sweep runs as of this many minutes after the replay.
    #[arg(long, default_value_t = 120)]
    sweep_after_minutes: i64,
    /// The functions' log, scanned for full phone numbers after the run.
    #[arg(long)]
    functions_log: Option<PathBuf>,
    /// Also write the report's figures as JSON here (the demo test reads it).
    #[arg(long)]
    summary_json: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> DemoResult<()> {
    let cli = Cli::parse();
    let settings = Settings::from_env()?;
    let clients = AwsClients::from_env().await;
    // The demo plays the platforms (which hold the webhook secrets) and signs
    // staff tokens as `leadctl token` would: both from the stack's Secrets
    // Manager, like the functions.
    let secrets = leads_aws::secrets::intake_secrets(&clients.secrets)
        .await?
        .get()
        .await;
    let keyring = leads_aws::secrets::staff_token_keys(&clients.secrets)
        .await?
        .get()
        .await;
    let functions = Functions::new(&cli.endpoint)?;
    let receiver = match cli.receiver_port {
        Some(port) => Some(Receiver::start(port).await?),
        None => None,
    };

    let directory = seed_directory(&cli, &clients, &settings).await?;
    let now = chrono::Utc::now();
    let data = dataset::generate(&directory, &secrets, cli.customers, cli.seed, now);
    let started = Instant::now();
    let mut run = Run::new(now, data.expected.clone(), data.customers.clone());
    let call_back_draws: std::collections::HashMap<String, f64> = data
        .customers
        .iter()
        .map(|c| (c.key.clone(), c.call_back_draw))
        .collect();

    step("replay: webhooks -> webhook-intake -> lead-router -> notifier");
    replay(
        &cli,
        &functions,
        &clients,
        &settings,
        &data.webhooks,
        &mut run,
    )
    .await?;
    play_router(&cli, &functions, &clients, &settings, &mut run, true).await?;
    play_notifier(&cli, &functions, &clients, &settings, &receiver, &mut run).await?;
    run.replay_time = started.elapsed();

    step("consultants at work: claims and call-backs through the staff API");
    run.routed = report::leads_since(&clients, &settings, now).await?;
    let leads = &run.routed;
    run.follow_up = staff::follow_up(
        &functions,
        &directory,
        leads,
        &keyring,
        &data.wecom_phones,
        staff::CallBacks {
            draws: &call_back_draws,
            rate: cli.contact_rate,
        },
        cli.seed,
    )
    .await?;

    let sweep_at = now + chrono::Duration::minutes(cli.sweep_after_minutes);
    step(&format!(
        "sla-sweeper as of {} min later, then the notifier",
        cli.sweep_after_minutes
    ));
    let mut schedule = CloudWatchEvent::<serde_json::Value>::default();
    schedule.detail_type = Some("Scheduled Event".into());
    schedule.source = Some("aws.events".into());
    schedule.time = sweep_at;
    run.sweep = functions.invoke("sla-sweeper", &schedule).await?;
    play_router(&cli, &functions, &clients, &settings, &mut run, false).await?;
    play_notifier(&cli, &functions, &clients, &settings, &receiver, &mut run).await?;

    step("brand-ranking for today: schedule fan-out, per-brand jobs, top 10 via the API");
    run.ranking_date = Some(china_day(now));
    let fan_out: serde_json::Value = functions
        .invoke(
            "brand-ranking",
            &serde_json::json!({ "date": china_day(now) }),
        )
        .await?;
    run.ranking_jobs = fan_out["jobs_sent"].as_u64().unwrap_or(0) as usize;
    if let Some(queue) = config::optional("RANKING_QUEUE_URL") {
        run.ranking_played = functions
            .play_queue(&clients, &queue, "brand-ranking", 1, true, &|_| {})
            .await?;
    }
    // The RankingPublished notices to each ranked dealer's managers.
    play_notifier(&cli, &functions, &clients, &settings, &receiver, &mut run).await?;
    run.top10 = top10(&functions, &directory, &keyring, &run).await?;

    step("brand view: today's service KPIs per dealer through the API, as brand operations");
    run.brand_view = brand_view(&functions, &directory, &keyring, china_day(now)).await?;
    run.total_time = started.elapsed();

    if let Some(receiver) = &receiver {
        run.deliveries = receiver.deliveries();
    }
    if let Some(path) = &cli.functions_log {
        let log = std::fs::read_to_string(path)?;
        run.log_lines = log.lines().count();
        run.log_lines_with_phone = log.lines().filter(|l| report::has_full_phone(l)).count();
    }
    let summary = report::print(&clients, &settings, &directory, &run).await?;
    if let Some(path) = &cli.summary_json {
        std::fs::write(path, serde_json::to_string_pretty(&summary)?)?;
    }
    if !summary.problems.is_empty() {
        return Err(format!("the demo found problems: {:?}", summary.problems).into());
    }
    Ok(())
}

fn step(what: &str) {
    eprintln!("\n-- {what}");
}

async fn seed_directory(
    cli: &Cli,
    clients: &AwsClients,
    settings: &Settings,
) -> DemoResult<Directory> {
    let file: DirectoryFile = match cli.dealers {
        Some(n) => directory::generate(n, cli.seed),
        None => serde_json::from_str(&std::fs::read_to_string(&cli.directory)?)?,
    };
    let directory = file.validate().map_err(|e| format!("{e:?}"))?;
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
    Ok(directory)
}

/// Posts the webhooks a few at a time (platforms push concurrently), each
/// signed as it is sent, while the router's trigger drains the lead queue
/// beside it, as SQS would.
async fn replay(
    cli: &Cli,
    functions: &Functions,
    clients: &AwsClients,
    settings: &Settings,
    webhooks: &[Webhook],
    run: &mut Run,
) -> DemoResult<()> {
    let started = Instant::now();
    let posted = std::sync::atomic::AtomicBool::new(false);
    let sent = &mut run.sent;
    let post = async {
        for chunk in webhooks.chunks(cli.concurrency) {
            let now = chrono::Utc::now();
            let answers = futures::future::join_all(
                chunk
                    .iter()
                    .map(|w| async move { functions.webhook(&w.signed_at(now)).await }),
            )
            .await;
            for (hook, answer) in chunk.iter().zip(answers) {
                record_answer(sent, hook, answer?);
            }
            progress(sent.posted, webhooks.len(), started);
        }
        posted.store(true, std::sync::atomic::Ordering::Relaxed);
        DemoResult::Ok(())
    };
    let route = async {
        let mut played = Played::default();
        while !posted.load(std::sync::atomic::Ordering::Relaxed) {
            let round = functions
                .play_queue(
                    clients,
                    &settings.queues.lead,
                    "lead-router",
                    cli.consumers,
                    false,
                    &|_| {},
                )
                .await?;
            played += round; // an empty round waited a second for messages
        }
        DemoResult::Ok(played)
    };
    let (posting, routing) = tokio::join!(post, route);
    posting?;
    run.router += routing?;
    eprintln!();
    Ok(())
}

fn record_answer(sent: &mut Sent, hook: &Webhook, status: u16) {
    sent.posted += 1;
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

async fn play_router(
    cli: &Cli,
    functions: &Functions,
    clients: &AwsClients,
    settings: &Settings,
    run: &mut Run,
    until_empty: bool,
) -> DemoResult<()> {
    run.router += functions
        .play_queue(
            clients,
            &settings.queues.lead,
            "lead-router",
            cli.consumers,
            until_empty,
            &|_| {},
        )
        .await?;
    Ok(())
}

/// Delivers the queued notification jobs (counting them by kind), or only
/// counts and drains them when no receiver is configured.
async fn play_notifier(
    cli: &Cli,
    functions: &Functions,
    clients: &AwsClients,
    settings: &Settings,
    receiver: &Option<Receiver>,
    run: &mut Run,
) -> DemoResult<()> {
    let counted = std::sync::Mutex::new((
        std::mem::take(&mut run.jobs_by_kind),
        std::mem::take(&mut run.job_ids),
    ));
    let count = |body: &str| {
        // Lead jobs and ranking notices (the managers' pool summaries are
        // the notifier's own, not counted).
        let (job_id, kind) = match Notice::from_json(body) {
            Ok(Notice::Lead(job)) => (job.job_id, job.kind),
            Ok(Notice::Ranking(r)) => (r.job_id, r.kind),
            _ => return,
        };
        let mut guard = counted.lock().unwrap_or_else(|p| p.into_inner());
        let (kinds, ids) = &mut *guard;
        if ids.insert(job_id) {
            *kinds.entry(leads_domain::wire_name(&kind)).or_default() += 1;
        }
    };
    let queue = &settings.queues.notification;
    let played: Played = if receiver.is_some() {
        functions
            .play_queue(clients, queue, "notifier", cli.consumers, true, &count)
            .await?
    } else {
        for body in report::drain_jobs(clients, queue).await? {
            count(&body);
        }
        Played::default()
    };
    (run.jobs_by_kind, run.job_ids) = counted.into_inner().unwrap_or_else(|p| p.into_inner());
    run.notifier += played;
    Ok(())
}

/// Each brand's top 10 for the ranking date, read through the staff API as
/// one of the brand's managers.
async fn top10(
    functions: &Functions,
    directory: &Directory,
    keyring: &Keyring,
    run: &Run,
) -> DemoResult<Vec<(String, serde_json::Value)>> {
    let Some(date) = run.ranking_date else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for brand in &directory.brands {
        let manager = directory.staff.iter().find(|s| {
            s.role == StaffRole::Manager
                && directory
                    .dealers
                    .iter()
                    .any(|d| d.dealer_id == s.dealer_id && d.brand_id == brand.brand_id)
        });
        let Some(manager) = manager else { continue };
        let token = staff::token(directory, keyring, &manager.staff_id).unwrap_or_default();
        let path = format!("/rankings/{}/{date}?top=10", brand.brand_id);
        let (status, body) = functions
            .api(reqwest::Method::GET, &path, &token, None)
            .await?;
        if status != 200 {
            return Err(format!("ranking of {} answered {status}: {body}", brand.brand_id).into());
        }
        out.push((brand.name.clone(), body));
    }
    Ok(out)
}

/// Each brand's KPIs for `day` by dealer, read through the staff API as the
/// brand's whole-brand operations (a brand without any is left out).
async fn brand_view(
    functions: &Functions,
    directory: &Directory,
    keyring: &Keyring,
    day: chrono::NaiveDate,
) -> DemoResult<Vec<(String, serde_json::Value)>> {
    let mut out = Vec::new();
    for brand in &directory.brands {
        let Some(ops) = directory
            .brand_ops
            .iter()
            .find(|o| o.brand_id == brand.brand_id && o.oversees_whole_brand())
        else {
            continue;
        };
        let claims = leads_domain::auth::Claims::staff(
            &ops.staff_id,
            "",
            &brand.brand_id,
            StaffRole::BrandOps,
            chrono::Utc::now(),
            3600,
        );
        let path = format!("/brands/{}/metrics?from={day}&to={day}", brand.brand_id);
        let (status, body) = functions
            .api(reqwest::Method::GET, &path, &keyring.issue(&claims), None)
            .await?;
        if status != 200 {
            return Err(format!("KPIs of {} answered {status}: {body}", brand.brand_id).into());
        }
        out.push((brand.name.clone(), body));
    }
    Ok(out)
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
