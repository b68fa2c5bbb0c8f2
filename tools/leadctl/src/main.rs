//! `leadctl`: the operations team's command line.
//!
//!   leadctl seed FILE.json   validate a directory file and load it into the directory table
//!   leadctl show             print the brands, dealers, staff and accounts stored
//!   leadctl token ...        issue a bearer token for the staff API (--invoke-event: signed
//!                            by the stack's API function, no key on this machine)
//!   leadctl redrive QUEUE    move a queue's dead letters back to it (lead, notification, crm, ranking)
//!   leadctl directory apply FILE [--dry-run]
//!                            make the directory of the file's brands exactly the file:
//!                            prints the diff (+ added, ~ changed, - removed), then applies it
//!
//!   leadctl erase --brand B (--phone P | --lead ID) --request REF
//!                            erase one customer's personal data (PIPL): README, "Personal data"
//!
//!   leadctl stack-env --stack NAME
//!                            print `export` lines of a stack's table and queue names
//!                            (its CloudFormation outputs) and retention parameters
//!
//! Talks to whatever `AWS_ENDPOINT_URL`/`DIRECTORY_TABLE` point at (the local
//! stack's `.local/env`, or a deployed stack).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use leads_aws::store::{DirectoryStore, DynamoDirectory};
use leads_aws::{config, AwsClients};
use leads_domain::city;
use leads_domain::directory::AccountOwner;
use leads_domain::directory_file::DirectoryFile;

#[derive(Parser)]
#[command(version, about = "Operations CLI for the lead back end")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a directory JSON file and load it (re-runnable: records are upserted).
    Seed {
        file: std::path::PathBuf,
        /// Only validate; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print what the directory holds, per brand.
    Show,
    /// Print `export VAR=value` lines for the stack's tables and queues (from its
    /// CloudFormation outputs) and retention parameters: `eval "$(leadctl
    /// stack-env --stack leads-prod)"` before the other commands.
    StackEnv {
        #[arg(long)]
        stack: String,
    },
    /// Erase one customer's personal data (PIPL) across the stack: their
    /// leads, identities, touchpoints, raw bodies and dead letters; each lead's
    /// audit trail records the erasure (README, "Personal data").
    Erase {
        #[arg(long)]
        brand: String,
        /// The customer's phone (hashed with the stack's phone-hash key).
        #[arg(long, conflicts_with = "lead", required_unless_present = "lead")]
        phone: Option<String>,
        /// One of the customer's leads.
        #[arg(long)]
        lead: Option<String>,
        /// The erasure request's reference (ticket), recorded in the audit.
        #[arg(long)]
        request: String,
    },
    /// The directory as a whole (`seed` only adds and updates).
    Directory {
        #[command(subcommand)]
        action: DirectoryAction,
    },
    /// Issue a bearer token for the staff API: signed here with API_TOKEN_SECRET
    /// (local stack), or, with --invoke-event, print the event for a direct
    /// invoke of the stack's API function, which signs it with its run-time
    /// secret (no signing key on the operator's machine; the role is the
    /// directory's): docs/operations.md, "Issue a staff token".
    Token {
        #[arg(long)]
        staff: String,
        /// The staff member's dealer; omitted for brand operations.
        #[arg(long, default_value = "")]
        dealer: String,
        #[arg(long)]
        brand: String,
        #[arg(long, value_enum, default_value_t = Role::Sales)]
        role: Role,
        /// Validity in hours (1 to 12).
        #[arg(long, default_value_t = 12)]
        hours: i64,
        /// A token for the ranking page link: it can only read rankings.
        #[arg(long)]
        rankings_page: bool,
        /// Print the Lambda invoke event instead of signing.
        #[arg(long)]
        invoke_event: bool,
    },
    /// Move a queue's dead letters back to it (where SQS's managed redrive is not
    /// available). Messages first sent before the idempotency retention
    /// (IDEMPOTENCY_RETENTION_HOURS) stay, since their consumers could no longer
    /// tell them from new work; --force moves them too.
    Redrive {
        #[arg(value_enum)]
        queue: QueueName,
        /// At most this many messages.
        #[arg(long, default_value_t = 1000)]
        max: usize,
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum DirectoryAction {
    /// Make the stored directory of each brand in FILE exactly FILE: adds and
    /// updates what it lists, removes what it no longer lists (a dealer's
    /// served city, a dealer, a consultant, a platform account). Brands FILE
    /// does not name are untouched. Prints the diff first.
    Apply {
        file: std::path::PathBuf,
        /// Print the diff; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum QueueName {
    Lead,
    Notification,
    Crm,
    Ranking,
}

impl QueueName {
    /// The variable the template (and the local stack) names the queue's URL by.
    fn url_variable(self) -> &'static str {
        match self {
            QueueName::Lead => "LEAD_QUEUE_URL",
            QueueName::Notification => "NOTIFICATION_QUEUE_URL",
            QueueName::Crm => "CRM_QUEUE_URL",
            QueueName::Ranking => "RANKING_QUEUE_URL",
        }
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Role {
    Sales,
    Manager,
    Dcc,
    /// The brand's operations (`brand_ops` in the directory; no --dealer).
    BrandOps,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Seed { file, dry_run } => seed(&file, dry_run).await,
        Command::Show => show().await,
        Command::StackEnv { stack } => stack_env(&stack).await,
        Command::Directory {
            action: DirectoryAction::Apply { file, dry_run },
        } => apply(&file, dry_run).await,
        Command::Redrive { queue, max, force } => redrive(queue, max, force).await,
        Command::Erase {
            brand,
            phone,
            lead,
            request,
        } => erase(&brand, phone.as_deref(), lead, &request).await,
        Command::Token {
            staff,
            dealer,
            brand,
            role,
            hours,
            invoke_event: true,
            ..
        } => {
            let _ = role; // the directory's role is used
            println!("{}", token_invoke_event(&staff, &dealer, &brand, hours));
            Ok(())
        }
        Command::Token {
            staff,
            dealer,
            brand,
            role,
            hours,
            invoke_event: false,
            rankings_page,
        } => {
            // The stack's signing keys, from its Secrets Manager (the local
            // stack's; in AWS use --invoke-event, so no operator holds them).
            let clients = AwsClients::from_env().await;
            let keyring = leads_aws::secrets::staff_token_keys(&clients.secrets)
                .await
                .map_err(|e| e.to_string())?
                .get()
                .await;
            if !(1..=12).contains(&hours) {
                return Err("--hours must be 1 to 12 (tokens live at most 12 hours)".into());
            }
            let role = match role {
                Role::Sales => leads_domain::directory::StaffRole::Sales,
                Role::Manager => leads_domain::directory::StaffRole::Manager,
                Role::Dcc => leads_domain::directory::StaffRole::Dcc,
                Role::BrandOps => leads_domain::directory::StaffRole::BrandOps,
            };
            let claims = leads_domain::auth::Claims::staff(
                &staff,
                &dealer,
                &brand,
                role,
                chrono::Utc::now(),
                hours * 3600,
            );
            let claims = if rankings_page {
                claims.for_rankings()
            } else {
                claims
            };
            println!("{}", keyring.issue(&claims));
            Ok(())
        }
    }
}

/// `DirectoryTable` -> `DIRECTORY_TABLE`, `LeadQueueUrl` -> `LEAD_QUEUE_URL`.
fn env_name(key: &str) -> String {
    let mut out = String::new();
    for (i, c) in key.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// Single-quoted for a POSIX shell.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}

/// The stack's parameters the operator commands read, by variable.
const STACK_PARAMETERS: [(&str, &str); 3] = [
    ("Stage", "STAGE"),
    ("IdempotencyRetentionHours", "IDEMPOTENCY_RETENTION_HOURS"),
    ("RawPayloadRetentionDays", "RAW_PAYLOAD_RETENTION_DAYS"),
];

async fn stack_env(stack: &str) -> Result<(), String> {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let cfn = aws_sdk_cloudformation::Client::new(&config);
    let out = cfn
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .map_err(|e| {
            format!(
                "cannot describe stack {stack}: {}",
                aws_sdk_cloudformation::error::DisplayErrorContext(e)
            )
        })?;
    let found = out
        .stacks()
        .first()
        .ok_or_else(|| format!("no stack {stack}"))?;
    let mut lines = Vec::new();
    for o in found.outputs() {
        let (Some(key), Some(value)) = (o.output_key(), o.output_value()) else {
            continue;
        };
        if key.ends_with("Table") || key.ends_with("QueueUrl") || key.ends_with("Function") {
            lines.push(format!("export {}={}", env_name(key), shell_quote(value)));
        }
    }
    if lines.is_empty() {
        return Err(format!("stack {stack} has no table or queue outputs"));
    }
    for p in found.parameters() {
        let name = p.parameter_key().unwrap_or_default();
        if let Some((_, var)) = STACK_PARAMETERS.iter().find(|(k, _)| *k == name) {
            if let Some(value) = p.parameter_value() {
                lines.push(format!("export {var}={}", shell_quote(value)));
            }
        }
    }
    lines.sort();
    for line in lines {
        println!("{line}");
    }
    Ok(())
}

/// The API Gateway (HTTP API, payload 2.0) event of `POST /admin/tokens` that
/// the API function answers only when invoked directly (its request context
/// names `leadctl-direct-invoke`, which no HTTP API request carries).
fn token_invoke_event(staff: &str, dealer: &str, brand: &str, hours: i64) -> serde_json::Value {
    let now = chrono::Utc::now();
    let body = serde_json::json!({
        "staff_id": staff, "dealer_id": dealer, "brand_id": brand, "hours": hours,
    });
    serde_json::json!({
        "version": "2.0",
        "routeKey": "POST /admin/tokens",
        "rawPath": "/admin/tokens",
        "rawQueryString": "",
        "headers": { "content-type": "application/json" },
        "requestContext": {
            "accountId": "direct-invoke",
            "apiId": "leadctl-direct-invoke",
            "domainName": "direct-invoke",
            "domainPrefix": "direct-invoke",
            "http": {
                "method": "POST",
                "path": "/admin/tokens",
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "leadctl"
            },
            "requestId": format!("leadctl-{}", now.timestamp_millis()),
            "routeKey": "POST /admin/tokens",
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S +0000").to_string(),
            "timeEpoch": now.timestamp_millis()
        },
        "body": body.to_string(),
        "isBase64Encoded": false
    })
}

async fn redrive(queue: QueueName, max: usize, force: bool) -> Result<(), String> {
    use leads_aws::store::redrive;
    let source = config::required(queue.url_variable()).map_err(|e| e.to_string())?;
    let retention_hours =
        config::number("IDEMPOTENCY_RETENTION_HOURS", 72).map_err(|e| e.to_string())?;
    let max_age = (!force).then(|| std::time::Duration::from_secs(retention_hours * 3600));
    let sqs = AwsClients::from_env().await.sqs;
    let dlq = redrive::dead_letter_queue_of(&sqs, &source)
        .await
        .map_err(|e| e.to_string())?;
    let report = redrive::redrive(&sqs, &dlq, &source, max, max_age)
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "moved {} message(s) back to {source}; {} left in {dlq} (first sent more than {retention_hours} h ago: re-run with --force to move them anyway)",
        report.moved, report.too_old
    );
    Ok(())
}

async fn erase(
    brand: &str,
    phone: Option<&str>,
    lead: Option<String>,
    request: &str,
) -> Result<(), String> {
    use leads_aws::store::{redrive, DynamoErasure, Subject};
    let settings = leads_aws::Settings::from_env().map_err(|e| e.to_string())?;
    let clients = AwsClients::from_env().await;
    let subject = match (phone, lead) {
        (Some(phone), _) => {
            // Never echoed: a bad number is refused without quoting it.
            let phone = leads_domain::Phone::parse(phone)
                .map_err(|_| "--phone is not a mobile number".to_string())?;
            let key = leads_aws::secrets::phone_hash_key(&clients.secrets)
                .await
                .map_err(|e| e.to_string())?;
            let hash = leads_domain::identity::PhoneHasher::new(key).hash(&phone);
            Subject::CustomerKey(leads_domain::dedup::customer_key(
                brand,
                &leads_domain::lead::CustomerKey::Phone { hash },
            ))
        }
        (None, Some(lead)) => Subject::Lead(lead),
        (None, None) => return Err("give --phone or --lead".into()),
    };
    let dead_letters = |queue: String| {
        let sqs = clients.sqs.clone();
        async move { redrive::dead_letter_queue_of(&sqs, &queue).await }
    };
    let lead_dlq = dead_letters(settings.queues.lead.clone())
        .await
        .map_err(|e| e.to_string())?;
    let notification_dlq = dead_letters(settings.queues.notification.clone())
        .await
        .map_err(|e| e.to_string())?;
    let report = DynamoErasure::new(
        clients.dynamodb.clone(),
        clients.sqs.clone(),
        &settings.tables,
    )
    .with_dead_letter_queues(lead_dlq, notification_dlq)
    .erase(brand, &subject, request, chrono::Utc::now())
    .await
    .map_err(|e| e.to_string())?;
    println!(
        "erased {} lead(s) {:?}: {} identities, {} touchpoints, {} raw bodies, {} dead letters",
        report.leads.len(),
        report.leads,
        report.identities,
        report.touchpoints,
        report.raw_payloads,
        report.dead_letters
    );
    Ok(())
}

async fn directory_store() -> Result<DynamoDirectory, String> {
    let table = config::required("DIRECTORY_TABLE").map_err(|e| e.to_string())?;
    let clients = AwsClients::from_env().await;
    Ok(DynamoDirectory::new(clients.dynamodb, table))
}

/// Reads and validates a directory file (nothing is written if it is bad).
fn read_directory(
    path: &std::path::Path,
) -> Result<leads_domain::directory_file::Directory, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let file: DirectoryFile = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a valid directory file: {e}", path.display()))?;
    file.validate().map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(|e| format!("  {e}")).collect();
        format!(
            "{} has {} bad row(s), nothing was written:\n{}",
            path.display(),
            errors.len(),
            lines.join("\n")
        )
    })
}

async fn apply(path: &std::path::Path, dry_run: bool) -> Result<(), String> {
    let directory = read_directory(path)?;
    let store = directory_store().await?;
    let brands: Vec<String> = directory
        .brands
        .iter()
        .map(|b| b.brand_id.clone())
        .collect();
    let live = store.live(&brands).await.map_err(|e| e.to_string())?;
    let diff = leads_domain::directory_diff::diff(&live, &directory);
    for line in diff.lines() {
        println!("{line}");
    }
    let summary = format!(
        "{} added, {} changed, {} removed",
        diff.added.len(),
        diff.changed.len(),
        diff.removed.len()
    );
    if dry_run {
        println!("dry run: {summary}; nothing written");
        return Ok(());
    }
    // Upserts first, removals after: a crash in between leaves extra records
    // (as `seed` would), never a brand without its dealers; re-run to finish.
    let written = store.save(&directory).await.map_err(|e| e.to_string())?;
    let deleted = store
        .remove(&diff.removed)
        .await
        .map_err(|e| e.to_string())?;
    println!("applied: {summary} ({written} items written, {deleted} deleted)");
    Ok(())
}

async fn seed(path: &std::path::Path, dry_run: bool) -> Result<(), String> {
    let directory = read_directory(path)?;
    let summary = format!(
        "{} brands, {} dealers, {} staff, {} accounts",
        directory.brands.len(),
        directory.dealers.len(),
        directory.staff.len(),
        directory.accounts.len()
    );
    if dry_run {
        println!("valid: {summary}");
        return Ok(());
    }
    let written = directory_store()
        .await?
        .save(&directory)
        .await
        .map_err(|e| e.to_string())?;
    println!("seeded {summary} ({written} items)");
    Ok(())
}

async fn show() -> Result<(), String> {
    let store = directory_store().await?;
    let city_name = |c| city::by_code(c).map(|c| c.name).unwrap_or("?");
    for brand in store.brands().await.map_err(|e| e.to_string())? {
        let dealers = store
            .dealers_of(&brand.brand_id)
            .await
            .map_err(|e| e.to_string())?;
        let accounts = store
            .accounts_of(&brand.brand_id)
            .await
            .map_err(|e| e.to_string())?;
        println!(
            "brand {} ({}): {} dealers, {} platform accounts; dedup window {} d, exclusivity {} d, first contact {} min",
            brand.brand_id,
            brand.name,
            dealers.len(),
            accounts.len(),
            brand.protection_days,
            brand.exclusivity_days,
            brand.first_contact_minutes
        );
        for d in dealers {
            let staff = store
                .staff_of(&d.dealer_id)
                .await
                .map_err(|e| e.to_string())?;
            let on_duty = staff.iter().filter(|s| s.on_duty).count();
            let served: Vec<&str> = d.served_cities.iter().map(|&c| city_name(c)).collect();
            println!(
                "  {} {} [{}] {:?}; serves {}; staff {} ({} on duty)",
                d.dealer_id,
                d.name,
                city_name(d.city),
                d.strategy,
                served.join("/"),
                staff.len(),
                on_duty
            );
        }
        let mut per_platform = std::collections::BTreeMap::new();
        for a in &accounts {
            *per_platform.entry(a.platform.as_str()).or_insert(0) += 1;
            if a.owner == AccountOwner::Brand {
                println!(
                    "  brand-level account {}:{} (routes by the customer's city)",
                    a.platform, a.account_id
                );
            }
        }
        let counts: Vec<String> = per_platform
            .iter()
            .map(|(p, n)| format!("{p} {n}"))
            .collect();
        println!("  platform accounts: {}", counts.join(", "));
    }
    Ok(())
}
