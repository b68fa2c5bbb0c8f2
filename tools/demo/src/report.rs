//! The demo's report: what the tables and queues hold after the replay, next
//! to what the generator knows it sent.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use leads_aws::{AwsClients, Settings};
use leads_domain::directory::{AssignmentStrategy, StaffRole};
use leads_domain::directory_file::Directory;
use leads_domain::lead::LeadRecord;
use leads_domain::notification::NotificationJob;
use leads_domain::routing::Route;

use crate::dataset::Expected;
use crate::Sent;

type Item = HashMap<String, AttributeValue>;

async fn scan(
    clients: &AwsClients,
    table: &str,
    pk_prefix: &str,
) -> Result<Vec<Item>, Box<dyn std::error::Error>> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let out = clients
            .dynamodb
            .scan()
            .table_name(table)
            .filter_expression("begins_with(pk, :p)")
            .expression_attribute_values(":p", AttributeValue::S(pk_prefix.into()))
            .set_exclusive_start_key(start)
            .send()
            .await?;
        items.extend(out.items.unwrap_or_default());
        match out.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return Ok(items),
        }
    }
}

async fn drain_jobs(
    clients: &AwsClients,
    url: &str,
) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let mut bodies = Vec::new();
    loop {
        let out = clients
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .send()
            .await?;
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            return Ok(bodies);
        }
        for m in messages {
            bodies.push(m.body.unwrap_or_default());
            if let Some(h) = m.receipt_handle {
                clients
                    .sqs
                    .delete_message()
                    .queue_url(url)
                    .receipt_handle(h)
                    .send()
                    .await?;
            }
        }
    }
}

pub async fn print(
    clients: &AwsClients,
    settings: &Settings,
    directory: &Directory,
    expected: &Expected,
    sent: &Sent,
    started_at: chrono::DateTime<chrono::Utc>,
    elapsed: Duration,
) -> Result<(), Box<dyn std::error::Error>> {
    let t = &settings.tables;
    let leads: Vec<LeadRecord> = scan(clients, &t.leads, "LEAD#")
        .await?
        .into_iter()
        .filter(|i| i.get("sk") == Some(&AttributeValue::S("LEAD".into())))
        .map(serde_dynamo::from_item)
        .collect::<Result<Vec<LeadRecord>, _>>()?
        .into_iter()
        // A reused local stack may hold earlier runs: count this run's leads.
        .filter(|l| l.received_at >= started_at)
        .collect();
    let merges: u32 = leads.iter().map(|l| l.touchpoints.saturating_sub(1)).sum();

    println!("\n== webhooks ({:.1} s)", elapsed.as_secs_f64());
    println!(
        "  posted {}  accepted {}  redeliveries acknowledged {}  rejected {:?}",
        sent.posted, sent.accepted, sent.redeliveries, sent.rejected
    );
    println!(
        "  router invocations {}  failed messages {}",
        sent.router_invocations, sent.router_failures
    );
    for s in &sent.surprises {
        println!("  UNEXPECTED: {s}");
    }

    println!("\n== leads (dedup)");
    println!("  created {:>4}   expected {}", leads.len(), expected.leads);
    println!("  merged  {:>4}   expected {}", merges, expected.merges);
    println!("  content-stats days stored: expected {}", expected.stats);

    println!(
        "\n== channel overlap today (first channel -> channel that brought the customer back)"
    );
    let overlaps = scan(clients, &t.stats, "OVERLAP#").await?;
    let mut matrix: BTreeMap<String, u64> = BTreeMap::new();
    for item in overlaps {
        if let (Some(AttributeValue::S(pair)), Some(AttributeValue::N(n))) =
            (item.get("sk"), item.get("leads"))
        {
            *matrix.entry(pair.replace('#', " -> ")).or_default() += n.parse::<u64>().unwrap_or(0);
        }
    }
    for (pair, n) in &matrix {
        println!("  {pair:<24} {n}");
    }

    println!("\n== routing");
    let mut split: BTreeMap<&str, usize> = BTreeMap::new();
    for l in &leads {
        let key = match &l.route {
            Some(Route::Local { .. }) => "local",
            Some(Route::Remote { .. }) => "remote (异地)",
            Some(Route::Unroutable { .. }) => "unroutable -> brand CRM",
            None => "not routed",
        };
        *split.entry(key).or_default() += 1;
    }
    for (k, n) in &split {
        println!("  {k:<24} {n}");
    }

    println!("\n== assignment (per dealer strategy)");
    let mut per_staff: HashMap<&str, usize> = HashMap::new();
    for l in &leads {
        if let Some(s) = &l.assignee {
            *per_staff.entry(s.as_str()).or_default() += 1;
        }
    }
    let caps: HashMap<&str, u32> = directory
        .staff
        .iter()
        .map(|s| (s.staff_id.as_str(), s.cap))
        .collect();
    for strategy in [
        AssignmentStrategy::RoundRobin,
        AssignmentStrategy::Saturation,
        AssignmentStrategy::Claim,
    ] {
        let dealers: Vec<_> = directory
            .dealers
            .iter()
            .filter(|d| d.strategy == strategy)
            .collect();
        let (mut assigned, mut waiting, mut spread, mut load) = (0, 0, 0usize, 0f64);
        for d in &dealers {
            let mine: Vec<&LeadRecord> = leads
                .iter()
                .filter(|l| l.dealer_id.as_deref() == Some(&d.dealer_id))
                .collect();
            assigned += mine.iter().filter(|l| l.assignee.is_some()).count();
            waiting += mine.iter().filter(|l| l.assignee.is_none()).count();
            // Among consultants who could take leads all along: on duty, sales.
            let counts: Vec<usize> = directory
                .staff
                .iter()
                .filter(|s| s.dealer_id == d.dealer_id && s.on_duty && s.role == StaffRole::Sales)
                .map(|s| per_staff.get(s.staff_id.as_str()).copied().unwrap_or(0))
                .collect();
            if let (Some(max), Some(min)) = (counts.iter().max(), counts.iter().min()) {
                spread = spread.max(max - min);
            }
            for (staff, n) in &per_staff {
                if staff.starts_with(&format!("{}-", d.dealer_id)) {
                    load = load
                        .max(*n as f64 / f64::from(caps.get(staff).copied().unwrap_or(1).max(1)));
                }
            }
        }
        let detail = match strategy {
            AssignmentStrategy::RoundRobin => {
                format!("largest spread between consultants of one dealer: {spread}")
            }
            AssignmentStrategy::Saturation => format!("highest open/cap: {load:.2}"),
            AssignmentStrategy::Claim => "offered to the group, waiting for a claim".to_string(),
        };
        println!(
            "  {:<12} {:>3} dealers  assigned {assigned:>4}  waiting {waiting:>4}  {detail}",
            leads_domain::wire_name(&strategy),
            dealers.len()
        );
    }

    println!("\n== notification jobs queued for the notifier");
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for body in drain_jobs(clients, &settings.queues.notification).await? {
        if let Ok(job) = serde_json::from_str::<NotificationJob>(&body) {
            *kinds.entry(format!("{:?}", job.kind)).or_default() += 1;
        }
    }
    for (k, n) in &kinds {
        println!("  {k:<20} {n}");
    }
    let crm = drain_jobs(clients, &settings.queues.crm).await?;
    println!("  brand CRM hand-offs  {}", crm.len());

    let ok = leads.len() == expected.leads && merges as usize == expected.merges;
    println!(
        "\n== {}",
        if ok {
            "report matches what was sent"
        } else {
            "MISMATCH between report and what was sent"
        }
    );
    if !ok {
        return Err("lead counts differ from what the generator sent".into());
    }
    Ok(())
}

/// Whether a line holds a full mainland mobile number (11 digits 1[3-9]…, with
/// or without 86/+86), as a whole token: ids and hashes that merely contain
/// such digits do not count.
pub fn has_full_phone(line: &str) -> bool {
    line.split(|c: char| !c.is_ascii_alphanumeric())
        .any(|token| {
            let digits = token
                .strip_prefix("86")
                .filter(|t| t.len() == 11)
                .unwrap_or(token);
            digits.len() == 11
                && digits.bytes().all(|b| b.is_ascii_digit())
                && digits.starts_with('1')
                && (b'3'..=b'9').contains(&digits.as_bytes()[1])
        })
}

#[cfg(test)]
mod tests {
    use super::has_full_phone;

    #[test]
    fn finds_whole_phone_tokens_only() {
        assert!(has_full_phone(r#"{"phone":"13812345678"}"#));
        assert!(has_full_phone("call +8613812345678 now"));
        assert!(!has_full_phone("masked 138****5678"));
        assert!(!has_full_phone("Root=1-6b05359a-da05600433713080225195a4"));
        assert!(!has_full_phone("order 123456789012345"));
    }
}
