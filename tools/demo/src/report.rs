//! The demo's report: what the tables and queues hold after the replay, next
//! to what the generator knows it sent.

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use leads_aws::{AwsClients, Settings};
use leads_domain::directory::{AssignmentStrategy, Platform, StaffRole};
use leads_domain::directory_file::Directory;
use leads_domain::lead::LeadRecord;
use leads_domain::routing::Route;

use crate::dataset::{CustomerTruth, DeliveryTruth, Expected, RouteTruth};
use crate::Run;
use leads_domain::lead::Traffic;

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

/// Everything on a queue (bodies), received and deleted.
pub async fn drain_jobs(
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

/// This run's leads (a reused local stack may hold earlier runs).
pub async fn leads_since(
    clients: &AwsClients,
    settings: &Settings,
    started_at: DateTime<Utc>,
) -> Result<Vec<LeadRecord>, Box<dyn std::error::Error>> {
    Ok(scan(clients, &settings.tables.leads, "LEAD#")
        .await?
        .into_iter()
        .filter(|i| i.get("sk") == Some(&AttributeValue::S("LEAD".into())))
        .map(serde_dynamo::from_item)
        .collect::<Result<Vec<LeadRecord>, _>>()?
        .into_iter()
        .filter(|l| l.received_at >= started_at)
        .collect())
}

/// Every lead against what the generator recorded for its customer.
#[derive(Serialize, Default, Debug)]
pub struct TruthCheck {
    /// Per route class: leads routed so, and how many the generator expects
    /// there for sure ("either" counts customers whose first delivery allows
    /// two classes, e.g. a brand CRM push racing a dealer's own webhook).
    pub routed: BTreeMap<String, usize>,
    pub expected_routes: BTreeMap<String, usize>,
    /// Leads whose route is not one the rules allow for their customer.
    pub routing_mismatches: usize,
    /// Customers with other than exactly one lead, leads of no generated customer.
    pub customers_without_one_lead: usize,
    pub leads_of_no_customer: usize,
    /// First touch recorded natural/paid against what the platform sent.
    pub traffic_mismatches: usize,
    /// Dealer -> [natural, paid] counted by the router, and expected.
    pub counters: BTreeMap<String, [u64; 2]>,
    pub expected_counters: BTreeMap<String, [u64; 2]>,
    /// Ranking rows whose natural leads differ from the generator's count.
    pub ranking_input_mismatches: usize,
    /// Brands whose ranking does not hold every one of their dealers.
    pub ranking_dealer_mismatches: usize,
    /// Assignees or offers outside the lead's dealer's on-duty sales group,
    /// or a strategy not followed (offers at a non-claim dealer, direct
    /// assignment at a claim dealer without a returning or WeCom consultant).
    pub group_mismatches: usize,
    /// Lead-queue messages the router got, expected one per accepted webhook.
    pub lead_queue_messages: usize,
    pub examples: Vec<String>,
}

/// The report's figures, as printed (and written as JSON for the demo test).
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub expected: Expected,
    pub posted: usize,
    pub accepted: usize,
    pub redeliveries: usize,
    pub rejected: BTreeMap<u16, usize>,
    pub surprises: Vec<String>,
    pub leads_created: usize,
    pub merges: usize,
    pub overlap: BTreeMap<String, u64>,
    pub routes: BTreeMap<String, usize>,
    pub assigned: usize,
    pub waiting: usize,
    /// Consultants holding more open leads than their cap (must be 0).
    pub over_cap: usize,
    pub round_robin_spread: usize,
    /// Round-robin dealers whose spread in turns exceeds 1 + the number of
    /// their consultants who reached the cap + their leads that went to the
    /// customer's own consultant (each shifts the rotation by one turn).
    pub round_robin_unfair: Vec<String>,
    pub router_failures: usize,
    /// The generator's record, checked lead by lead (see `check_truth`).
    pub truth: TruthCheck,
    pub contacted: usize,
    pub claim_races: usize,
    pub claims_won: usize,
    pub phones_recorded: usize,
    pub phones_linked: usize,
    pub expected_sla_breaches: usize,
    pub sla: serde_json::Value,
    pub notification_jobs: BTreeMap<String, usize>,
    pub notifier_failures: usize,
    pub deliveries: BTreeMap<String, usize>,
    pub deliveries_with_full_phone: usize,
    pub crm_handoffs: usize,
    pub ranking_jobs: usize,
    /// Brand name -> dealers ranked.
    pub ranked: BTreeMap<String, u64>,
    /// `RankingPublished`: the ranked dealers that have a manager (the
    /// directory's truth), those whose managers got the card, and cards
    /// beyond one per (dealer, manager).
    pub ranking_notice_dealers_expected: usize,
    pub ranking_notice_dealers: usize,
    pub ranking_notice_extra: usize,
    pub log_lines: usize,
    pub log_lines_with_full_phone: usize,
    /// Everything that differs from what was sent or promised; empty = pass.
    pub problems: Vec<String>,
}

impl Summary {
    /// A count of the SLA sweep's report (`SweepReport`), 0 if absent.
    fn swept(&self, field: &str) -> usize {
        self.sla.get(field).and_then(|v| v.as_u64()).unwrap_or(0) as usize
    }
}

pub async fn print(
    clients: &AwsClients,
    settings: &Settings,
    directory: &Directory,
    run: &Run,
) -> Result<Summary, Box<dyn std::error::Error>> {
    let expected = &run.expected;
    let sent = &run.sent;
    let mut s = Summary {
        expected: expected.clone(),
        posted: sent.posted,
        accepted: sent.accepted,
        redeliveries: sent.redeliveries,
        rejected: sent.rejected.clone(),
        surprises: sent.surprises.clone(),
        router_failures: run.router.failures,
        ..Summary::default()
    };
    let leads = leads_since(clients, settings, run.started_at).await?;
    s.leads_created = leads.len();
    s.merges = leads
        .iter()
        .map(|l| l.touchpoints.saturating_sub(1) as usize)
        .sum();

    println!(
        "\n== webhooks (replay {:.1} s, whole run {:.1} s)",
        run.replay_time.as_secs_f64(),
        run.total_time.as_secs_f64()
    );
    println!(
        "  posted {}  accepted {} (expected {})  redeliveries acknowledged {} (expected {})  rejected {:?} (expected {})",
        sent.posted,
        sent.accepted,
        expected.accepted,
        sent.redeliveries,
        expected.redeliveries,
        sent.rejected,
        expected.rejected
    );
    println!(
        "  lead-router: {} invocations, {} messages, {} reported failed",
        run.router.invocations, run.router.messages, run.router.failures
    );
    for surprise in &sent.surprises {
        println!("  UNEXPECTED: {surprise}");
    }

    println!("\n== leads (dedup)");
    println!(
        "  created {:>4}   expected {}",
        s.leads_created, expected.leads
    );
    println!("  merged  {:>4}   expected {}", s.merges, expected.merges);
    println!("  content-stats days posted: {}", expected.stats);

    println!(
        "\n== channel overlap today (first channel -> channel that brought the customer back)"
    );
    for item in scan(clients, &settings.tables.stats, "OVERLAP#").await? {
        if let (Some(AttributeValue::S(pair)), Some(AttributeValue::N(n))) =
            (item.get("sk"), item.get("leads"))
        {
            *s.overlap.entry(pair.replace('#', " -> ")).or_default() +=
                n.parse::<u64>().unwrap_or(0);
        }
    }
    for (pair, n) in &s.overlap {
        println!("  {pair:<24} {n}");
    }

    println!("\n== routing");
    for l in &leads {
        let key = match &l.route {
            Some(Route::Local { .. }) => "local",
            Some(Route::Remote { .. }) => "remote (异地)",
            Some(Route::Unroutable { .. }) => "unroutable -> brand CRM",
            None => "not routed",
        };
        *s.routes.entry(key.to_string()).or_default() += 1;
    }
    for (k, n) in &s.routes {
        println!("  {k:<24} {n}");
    }

    print_assignment(directory, &run.routed, &leads, &mut s);

    let f = &run.follow_up;
    s.contacted = f.contacted;
    s.claim_races = f.claim_races;
    s.claims_won = f.claims_won;
    s.expected_sla_breaches = f.expected_breaches();
    println!("\n== consultants (staff API)");
    println!(
        "  claim races (two consultants at once) {}  won by exactly one {}",
        f.claim_races, f.claims_won
    );
    println!(
        "  leads with a consultant {}  called back in time {}  left uncalled {}",
        f.assigned,
        f.contacted,
        f.expected_breaches()
    );
    println!(
        "  phones recorded for WeCom contacts {}  linked to the customer {}",
        f.phones_recorded, f.phones_linked
    );
    s.phones_recorded = f.phones_recorded;
    s.phones_linked = f.phones_linked;
    for surprise in &f.surprises {
        println!("  UNEXPECTED: {surprise}");
    }

    s.sla = run.sweep.clone();
    let swept = |k: &str| run.sweep.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
    println!("\n== SLA sweep (as of later in the day)");
    println!(
        "  due {}  first-contact breaches warned {} (expected {})  reassigned {}  assigned from pool/offers {}  still pooled {}",
        swept("due"),
        swept("warned"),
        s.expected_sla_breaches,
        swept("reassigned"),
        swept("assigned"),
        swept("pooled")
    );

    println!("\n== notifications");
    s.notification_jobs = run.jobs_by_kind.clone();
    s.notifier_failures = run.notifier.failures;
    for (kind, n) in &s.notification_jobs {
        println!("  job {kind:<22} {n}");
    }
    println!(
        "  notifier: {} invocations, {} jobs, {} reported failed",
        run.notifier.invocations, run.notifier.messages, run.notifier.failures
    );
    for d in &run.deliveries {
        let channel = match d.path.as_str() {
            "/cgi-bin/message/send" => "wecom app message",
            "/cgi-bin/gettoken" => "wecom access token",
            "/sms" => "sms",
            "/crm" => "crm webhook",
            _ => "other",
        };
        *s.deliveries.entry(channel.to_string()).or_default() += 1;
        s.deliveries_with_full_phone += usize::from(has_full_phone(&d.body));
    }
    for (channel, n) in &s.deliveries {
        println!("  sent {channel:<22} {n}");
    }
    println!(
        "  deliveries carrying a full phone number: {}",
        s.deliveries_with_full_phone
    );
    // A hand-off is idempotent for the CRM (it names the lead); a redelivery
    // of an unroutable lead's webhook sends it again, so leads are counted once.
    // The CRM queue also carries every status change (for the brands' own
    // CRMs, which the demo has none of): only the unroutable leads count here.
    let events = drain_jobs(clients, &settings.queues.crm).await?;
    let handoffs: Vec<&String> = events
        .iter()
        .filter(|body| {
            matches!(
                leads_domain::crm::CrmEvent::from_queue(body),
                Some(Ok(e)) if e.kind == leads_domain::crm::CrmEventKind::Unroutable
            )
        })
        .collect();
    let handed_leads: std::collections::HashSet<String> = handoffs
        .iter()
        .map(|body| {
            let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
            v["lead_id"]
                .as_str()
                .map_or_else(|| body.to_string(), str::to_owned)
        })
        .collect();
    s.crm_handoffs = handed_leads.len();
    println!(
        "  unroutable leads handed to the brand CRM queue: {} ({} messages)",
        s.crm_handoffs,
        handoffs.len()
    );

    print_ranking(run, directory, &mut s);
    print_brand_view(run);

    s.log_lines = run.log_lines;
    s.log_lines_with_full_phone = run.log_lines_with_phone;
    println!(
        "\n== privacy: {} of {} function log lines contain a full phone number",
        run.log_lines_with_phone, run.log_lines
    );

    let stats = scan(clients, &settings.tables.stats, "DEALER#").await?;
    let mut problems = problems(&s, run);
    problems.extend(check_truth(directory, run, &leads, &stats, &mut s));
    s.problems = problems;
    if s.problems.is_empty() {
        println!("\n== report matches what was sent");
    } else {
        println!("\n== MISMATCH between the report and what was sent or promised:");
        for p in &s.problems {
            println!("  - {p}");
        }
    }
    Ok(s)
}

/// Assignment per dealer strategy as the router left it (`routed`, read right
/// after the replay), and the cap check on the day's end state (`leads`).
fn print_assignment(
    directory: &Directory,
    routed: &[LeadRecord],
    leads: &[LeadRecord],
    s: &mut Summary,
) {
    println!("\n== assignment by the router (per dealer strategy)");
    let mut per_staff: HashMap<&str, usize> = HashMap::new();
    for l in leads {
        if let Some(staff) = &l.assignee {
            *per_staff.entry(staff.as_str()).or_default() += 1;
        }
    }
    let leads = routed;
    s.over_cap = directory
        .staff
        .iter()
        .filter(|st| per_staff.get(st.staff_id.as_str()).copied().unwrap_or(0) > st.cap as usize)
        .count();
    s.assigned = leads.iter().filter(|l| l.assignee.is_some()).count();
    s.waiting = leads.len() - s.assigned;
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
            let staff: Vec<_> = directory
                .staff
                .iter()
                .filter(|st| {
                    st.dealer_id == d.dealer_id && st.on_duty && st.role == StaffRole::Sales
                })
                .collect();
            // Turns only: a returning customer or a WeCom contact goes to
            // their own consultant, outside the rotation.
            let by_turn = |st: &str| {
                mine.iter()
                    .filter(|l| l.assignee.as_deref() == Some(st))
                    .filter(|l| l.staff_hint.is_none() && l.previous_assignee.is_none())
                    .count()
            };
            // Among consultants who never reached their cap (the rotation
            // skips a full one; during the live burst some fill up).
            let open = |st: &str| {
                mine.iter()
                    .filter(|l| l.assignee.as_deref() == Some(st))
                    .count()
            };
            let counts: Vec<usize> = staff
                .iter()
                .filter(|st| open(&st.staff_id) < st.cap as usize)
                .map(|st| by_turn(&st.staff_id))
                .collect();
            if let (Some(max), Some(min)) = (counts.iter().max(), counts.iter().min()) {
                spread = spread.max(max - min);
                // Each change of who can take a lead shifts the rotation by one
                // turn, and so does a lead that goes to its own consultant (a
                // returning customer, a WeCom contact): it draws a ticket too.
                let reached_cap = staff.len() - counts.len();
                let own_consultant = mine
                    .iter()
                    .filter(|l| l.staff_hint.is_some() || l.previous_assignee.is_some())
                    .count();
                if strategy == AssignmentStrategy::RoundRobin
                    && max - min > 1 + reached_cap + own_consultant
                {
                    s.round_robin_unfair.push(format!(
                        "{}: spread {} with {reached_cap} consultants at cap and {own_consultant} leads to their own consultant",
                        d.dealer_id,
                        max - min
                    ));
                }
            }
            for st in &staff {
                let n = per_staff.get(st.staff_id.as_str()).copied().unwrap_or(0);
                load = load.max(n as f64 / f64::from(st.cap.max(1)));
            }
        }
        let detail = match strategy {
            AssignmentStrategy::RoundRobin => {
                s.round_robin_spread = spread;
                format!("largest spread in turns between consultants of one dealer: {spread}")
            }
            AssignmentStrategy::Saturation => format!("highest open/cap: {load:.2}"),
            AssignmentStrategy::Claim => {
                "offered to the group (claims and fallback below)".to_string()
            }
        };
        println!(
            "  {:<12} {:>3} dealers  assigned {assigned:>4}  waiting {waiting:>4}  {detail}",
            leads_domain::wire_name(&strategy),
            dealers.len()
        );
    }
    println!("  consultants above their cap: {}", s.over_cap);
}

fn print_ranking(run: &Run, directory: &Directory, s: &mut Summary) {
    s.ranking_jobs = run.ranking_jobs;
    println!(
        "\n== brand ranking for {} ({} brand jobs fanned out, {} played, {} failed)",
        run.ranking_date
            .map(|d| d.to_string())
            .unwrap_or_else(|| "-".into()),
        run.ranking_jobs,
        run.ranking_played.messages,
        run.ranking_played.failures
    );
    // RankingPublished: one card per manager of every ranked dealer, once.
    let ranked_brands: std::collections::HashSet<&str> = run
        .top10
        .iter()
        .filter_map(|(name, _)| directory.brands.iter().find(|b| &b.name == name))
        .map(|b| b.brand_id.as_str())
        .collect();
    let managers: HashMap<&str, &str> = directory
        .staff
        .iter()
        .filter(|st| st.role == StaffRole::Manager)
        .filter_map(|st| Some((st.wecom_userid.as_deref()?, st.dealer_id.as_str())))
        .collect();
    let expected: std::collections::BTreeSet<&str> = directory
        .dealers
        .iter()
        .filter(|d| ranked_brands.contains(d.brand_id.as_str()))
        .filter(|d| managers.values().any(|m| *m == d.dealer_id.as_str()))
        .map(|d| d.dealer_id.as_str())
        .collect();
    let mut cards: BTreeMap<(&str, String), usize> = BTreeMap::new();
    for d in &run.deliveries {
        let Ok(card) = serde_json::from_str::<serde_json::Value>(&d.body) else {
            continue;
        };
        let title = card["textcard"]["title"].as_str().unwrap_or_default();
        let to = card["touser"].as_str().unwrap_or_default().to_string();
        if d.path == "/cgi-bin/message/send" && title.starts_with("经营排名已发布") {
            if let Some(dealer) = managers.get(to.as_str()) {
                *cards.entry((dealer, to)).or_default() += 1;
            }
        }
    }
    let reached: std::collections::BTreeSet<&str> = cards.keys().map(|(d, _)| *d).collect();
    s.ranking_notice_dealers_expected = expected.len();
    s.ranking_notice_dealers = reached.intersection(&expected).count();
    s.ranking_notice_extra =
        cards.values().map(|n| n - 1).sum::<usize>() + reached.difference(&expected).count();
    println!(
        "  ranking_published: {} jobs; cards reached the managers of {} of the {} ranked dealers with a manager, {} extra",
        s.notification_jobs
            .get("ranking_published")
            .copied()
            .unwrap_or(0),
        s.ranking_notice_dealers,
        s.ranking_notice_dealers_expected,
        s.ranking_notice_extra
    );
    for (brand, answer) in &run.top10 {
        let dealers = answer["dealers"].as_u64().unwrap_or(0);
        s.ranked.insert(brand.clone(), dealers);
        println!("  {brand} ({dealers} dealers ranked), top 10:");
        println!("    rank  score   base  natural  tier  natural leads  dealer");
        for row in answer["top"].as_array().into_iter().flatten() {
            println!(
                "    {:>4}  {:>5.1}  {:>5.1}  {:>7.1}  {:>4}  {:>13}  {}",
                row["rank"].as_u64().unwrap_or(0),
                row["score"]["total"].as_f64().unwrap_or(0.0),
                row["score"]["base"].as_f64().unwrap_or(0.0),
                row["score"]["natural"].as_f64().unwrap_or(0.0),
                row["tier"].as_str().unwrap_or("-"),
                row["natural_leads"].as_u64().unwrap_or(0),
                row["name"].as_str().unwrap_or("-"),
            );
        }
    }
}

/// The brand view: each brand's KPI table per dealer for the day, as the API
/// gave it to the brand's operations (checked in `problems`).
fn print_brand_view(run: &Run) {
    println!("\n== brand view: today's service KPIs per dealer (GET /brands/{{b}}/metrics, as brand operations)");
    let ratio = |r: &serde_json::Value| {
        format!(
            "{}/{}",
            r["numerator"].as_u64().unwrap_or(0),
            r["denominator"].as_u64().unwrap_or(0)
        )
    };
    for (brand, answer) in &run.brand_view {
        println!("  {brand}:");
        println!(
            "    leads  assigned  first call  in SLA   breaches  remote in/out  unroutable  dealer"
        );
        let rows = answer["rows"].as_array().into_iter().flatten();
        for row in rows.chain(std::iter::once(&answer["total"])) {
            println!(
                "    {:>5}  {:>8}  {:>10}  {:>7}  {:>8}  {:>6}/{:<6}  {:>10}  {}",
                row["leads"].as_u64().unwrap_or(0),
                row["assigned"].as_u64().unwrap_or(0),
                ratio(&row["first_call"]),
                ratio(&row["first_contact_in_sla"]),
                row["sla_breaches"].as_u64().unwrap_or(0),
                row["remote_in"].as_u64().unwrap_or(0),
                row["remote_out"].as_u64().unwrap_or(0),
                row["unroutable"].as_u64().unwrap_or(0),
                row["key"].as_str().unwrap_or("(total)"),
            );
        }
    }
}

/// The brand view's totals summed over the brands: (leads + unroutable +
/// merged, contacted within the SLA, SLA breaches, assigned).
fn brand_view_sums(run: &Run) -> (u64, u64, u64, u64) {
    let mut sums = (0, 0, 0, 0);
    for (_, answer) in &run.brand_view {
        let t = &answer["total"];
        let n = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
        sums.0 += n(&t["leads"]) + n(&t["unroutable"]) + n(&t["merged"]);
        sums.1 += n(&t["first_contact_in_sla"]["numerator"]);
        sums.2 += n(&t["sla_breaches"]);
        sums.3 += n(&t["assigned"]);
    }
    sums
}

fn route_truth(route: &Option<Route>) -> Option<RouteTruth> {
    Some(match route.as_ref()? {
        Route::Local { dealer_id } => RouteTruth::Local(dealer_id.clone()),
        Route::Remote { dealer_id, .. } => RouteTruth::Remote(dealer_id.clone()),
        Route::Unroutable { .. } => RouteTruth::Unroutable,
    })
}

/// Each lead against the generator's record of its customer: one lead per
/// customer, the route (class and dealer), natural/paid of the first touch,
/// the dealers' natural/paid counters and the ranking's natural leads, the
/// consultant group per strategy. Prints the comparison; returns problems.
fn check_truth(
    directory: &Directory,
    run: &Run,
    leads: &[LeadRecord],
    stats: &[Item],
    s: &mut Summary,
) -> Vec<String> {
    let mut t = TruthCheck::default();
    let mut problems = Vec::new();
    let by_key: HashMap<&str, &CustomerTruth> =
        run.customers.iter().map(|c| (c.key.as_str(), c)).collect();
    let mut leads_per_customer: HashMap<&str, usize> = HashMap::new();
    let mut expected_counters: BTreeMap<String, [u64; 2]> = directory
        .dealers
        .iter()
        .map(|d| (d.dealer_id.to_string(), [0, 0]))
        .collect();
    let example = |t: &mut TruthCheck, what: String| {
        if t.examples.len() < 8 {
            t.examples.push(what);
        }
    };
    for l in leads {
        let key = serde_json::to_string(&l.customer).unwrap_or_default();
        let Some((key, truth)) = by_key.get_key_value(key.as_str()) else {
            t.leads_of_no_customer += 1;
            example(
                &mut t,
                format!("lead {} is of no customer the generator sent", l.lead_id),
            );
            continue;
        };
        *leads_per_customer.entry(key).or_default() += 1;
        let first: Option<&DeliveryTruth> = truth
            .deliveries
            .iter()
            .find(|d| d.platform == l.first_touch.platform);
        let Some(first) = first else {
            t.routing_mismatches += 1;
            example(
                &mut t,
                format!(
                    "lead {}: first touch on {} was never sent for its customer",
                    l.lead_id, l.first_touch.platform
                ),
            );
            continue;
        };
        let actual = route_truth(&l.route);
        let class = actual.as_ref().map_or("not routed", RouteTruth::class);
        *t.routed.entry(class.to_string()).or_default() += 1;
        let classes: std::collections::BTreeSet<&str> =
            first.routes.iter().map(RouteTruth::class).collect();
        let expected_class = match classes.len() {
            1 => classes.into_iter().next().unwrap_or_default().to_string(),
            _ => "either (capacity or a race)".to_string(),
        };
        *t.expected_routes.entry(expected_class).or_default() += 1;
        if !actual.as_ref().is_some_and(|a| first.routes.contains(a)) {
            t.routing_mismatches += 1;
            example(
                &mut t,
                format!(
                    "lead {} ({}): routed {actual:?}, the generator allows {:?}",
                    l.lead_id, first.platform, first.routes
                ),
            );
        }
        if (l.first_touch.traffic == Traffic::Natural) != first.natural {
            t.traffic_mismatches += 1;
            example(
                &mut t,
                format!(
                    "lead {}: first touch {:?}, the platform sent {}",
                    l.lead_id,
                    l.first_touch.traffic,
                    if first.natural { "natural" } else { "paid" }
                ),
            );
        }
        // Paid: the lead's creating delivery, on its account's dealer.
        // Natural (the ranking's): each dealer whose Douyin or Ocean Engine
        // account got a natural delivery of this customer, once, whichever
        // delivery created the lead (merged touches count).
        if let (Some(dealer), false) = (&first.counted_on, first.natural) {
            expected_counters.entry(dealer.clone()).or_default()[1] += 1;
        }
        let natural_on: std::collections::BTreeSet<&String> = truth
            .deliveries
            .iter()
            .filter(|d| d.natural && matches!(d.platform, Platform::Douyin | Platform::Feiyu))
            .filter_map(|d| d.counted_on.as_ref())
            .collect();
        for dealer in natural_on {
            expected_counters.entry(dealer.clone()).or_default()[0] += 1;
        }
    }
    t.customers_without_one_lead = run
        .customers
        .iter()
        .filter(|c| leads_per_customer.get(c.key.as_str()).copied().unwrap_or(0) != 1)
        .count();

    // What the router counted per dealer (the ranking's natural-lead input).
    let mut counters: BTreeMap<String, [u64; 2]> = directory
        .dealers
        .iter()
        .map(|d| (d.dealer_id.to_string(), [0, 0]))
        .collect();
    for item in stats {
        let (Some(AttributeValue::S(pk)), Some(AttributeValue::S(sk))) =
            (item.get("pk"), item.get("sk"))
        else {
            continue;
        };
        let (Some(dealer), true) = (pk.strip_prefix("DEALER#"), sk.starts_with("DAY#")) else {
            continue;
        };
        let n = |field: &str| match item.get(field) {
            Some(AttributeValue::N(n)) => n.parse::<u64>().unwrap_or(0),
            _ => 0,
        };
        let c = counters.entry(dealer.to_string()).or_default();
        c[0] += n("natural_leads");
        c[1] += n("paid_leads");
    }
    let counter_diffs: Vec<String> = expected_counters
        .iter()
        .filter(|(d, e)| counters.get(*d) != Some(*e))
        .map(|(d, e)| {
            format!(
                "{d} {:?} (expected {e:?})",
                counters.get(d).copied().unwrap_or_default()
            )
        })
        .collect();

    // The ranking's inputs: natural leads per dealer, every dealer ranked.
    for (brand_name, answer) in &run.top10 {
        for row in answer["top"].as_array().into_iter().flatten() {
            let dealer = row["dealer_id"].as_str().unwrap_or_default();
            let natural = row["natural_leads"].as_u64().unwrap_or(u64::MAX);
            let expected = expected_counters.get(dealer).map_or(0, |c| c[0]);
            if natural != expected {
                t.ranking_input_mismatches += 1;
                example(&mut t, format!("ranking of {brand_name}: {dealer} has {natural} natural leads, expected {expected}"));
            }
        }
        let brand_dealers = directory
            .brands
            .iter()
            .find(|b| &b.name == brand_name)
            .map_or(0, |b| {
                directory
                    .dealers
                    .iter()
                    .filter(|d| d.brand_id == b.brand_id)
                    .count()
            });
        if answer["dealers"].as_u64() != Some(brand_dealers as u64) {
            t.ranking_dealer_mismatches += 1;
        }
    }

    // The consultant group per strategy, as the router left the leads.
    for l in &run.routed {
        let Some(dealer) = directory
            .dealers
            .iter()
            .find(|d| Some(d.dealer_id.as_str()) == l.dealer_id.as_deref())
        else {
            continue;
        };
        let in_group = |staff_id: &str| {
            directory.staff.iter().any(|st| {
                st.staff_id == staff_id
                    && st.dealer_id == dealer.dealer_id
                    && st.role == StaffRole::Sales
                    && st.on_duty
            })
        };
        let own_consultant = l.staff_hint.is_some() || l.previous_assignee.is_some();
        let wrong = l.assignee.as_deref().is_some_and(|a| !in_group(a))
            || l.offered_to.iter().any(|o| !in_group(o))
            || match dealer.strategy {
                AssignmentStrategy::Claim => l.assignee.is_some() && !own_consultant,
                _ => !l.offered_to.is_empty(),
            };
        if wrong {
            t.group_mismatches += 1;
            example(
                &mut t,
                format!(
                    "lead {} at {} ({}): assignee {:?}, offered to {:?}",
                    l.lead_id,
                    dealer.dealer_id,
                    leads_domain::wire_name(&dealer.strategy),
                    l.assignee,
                    l.offered_to
                ),
            );
        }
    }
    t.lead_queue_messages = run.router.messages;

    println!(
        "
== against the generator's record ({} customers)",
        run.customers.len()
    );
    println!("  routing        routed  expected (for sure)");
    let classes: std::collections::BTreeSet<&String> =
        t.routed.keys().chain(t.expected_routes.keys()).collect();
    for class in classes {
        println!(
            "  {class:<28} {:>4}  {:>4}",
            t.routed.get(class).copied().unwrap_or(0),
            t.expected_routes.get(class).copied().unwrap_or(0)
        );
    }
    println!(
        "  leads routed outside the rules' choice: {}  customers without exactly one lead: {}  leads of no customer: {}",
        t.routing_mismatches, t.customers_without_one_lead, t.leads_of_no_customer
    );
    let total =
        |m: &BTreeMap<String, [u64; 2]>| m.values().fold([0, 0], |a, c| [a[0] + c[0], a[1] + c[1]]);
    println!(
        "  natural/paid counted on dealers {:?} (expected {:?}), dealers differing: {}; first touches natural/paid wrong: {}",
        total(&counters),
        total(&expected_counters),
        counter_diffs.len(),
        t.traffic_mismatches
    );
    for d in counter_diffs.iter().take(5) {
        println!("    {d}");
    }
    println!(
        "  ranking rows with other natural leads than sent: {}  brands missing dealers: {}",
        t.ranking_input_mismatches, t.ranking_dealer_mismatches
    );
    println!(
        "  assignments outside the dealer's group or strategy: {}  round-robin dealers unfair beyond the cap shifts: {}",
        t.group_mismatches,
        s.round_robin_unfair.len()
    );
    println!(
        "  lead-queue messages {} (expected {} to {}: one per accepted webhook; a redelivery arriving after the intake's unconfirmed claim lease is sent once more)",
        t.lead_queue_messages,
        run.expected.lead_queue_messages,
        run.expected.lead_queue_messages + run.expected.redeliveries
    );
    for e in &t.examples {
        println!("    e.g. {e}");
    }

    let mut check = |ok: bool, what: String| {
        if !ok {
            problems.push(what);
        }
    };
    check(
        t.routing_mismatches == 0,
        format!(
            "{} leads routed where the rules do not send them",
            t.routing_mismatches
        ),
    );
    check(
        t.customers_without_one_lead == 0 && t.leads_of_no_customer == 0,
        format!(
            "{} customers without exactly one lead, {} leads of no customer",
            t.customers_without_one_lead, t.leads_of_no_customer
        ),
    );
    check(
        t.traffic_mismatches == 0,
        format!(
            "{} leads with natural/paid other than sent",
            t.traffic_mismatches
        ),
    );
    check(
        counter_diffs.is_empty(),
        format!(
            "natural/paid counters differ on {} dealers",
            counter_diffs.len()
        ),
    );
    check(
        t.ranking_input_mismatches == 0 && t.ranking_dealer_mismatches == 0,
        format!(
            "ranking: {} rows with other natural leads than sent, {} brands missing dealers",
            t.ranking_input_mismatches, t.ranking_dealer_mismatches
        ),
    );
    check(
        t.group_mismatches == 0,
        format!(
            "{} assignments outside the dealer's group or strategy",
            t.group_mismatches
        ),
    );
    check(
        s.round_robin_unfair.is_empty(),
        format!("round robin unfair at {:?}", s.round_robin_unfair),
    );
    // At least one message per accepted webhook (none lost); at most one more
    // per redelivery: the intake re-sends a delivery whose first attempt did not
    // confirm within its claim lease, and the router's delivery marker makes the
    // copy a duplicate (README, "Delivery protocol").
    check(
        (run.expected.lead_queue_messages
            ..=run.expected.lead_queue_messages + run.expected.redeliveries)
            .contains(&t.lead_queue_messages),
        format!(
            "{} lead-queue messages, expected {} to {}",
            t.lead_queue_messages,
            run.expected.lead_queue_messages,
            run.expected.lead_queue_messages + run.expected.redeliveries
        ),
    );
    // Jobs by kind: one assignment, offer or "nobody available" per lead
    // routed to a dealer, plus one per lead the sweep assigned; one warning
    // per expected breach; one per reassignment.
    let job = |k: &str| s.notification_jobs.get(k).copied().unwrap_or(0);
    let to_dealer = t.routed.get("local").copied().unwrap_or(0)
        + t.routed.get("remote (异地)").copied().unwrap_or(0);
    let first_jobs = job("new_assignment") + job("claim_offer") + job("no_one_available");
    check(
        first_jobs == to_dealer + s.swept("assigned"),
        format!(
            "{first_jobs} assignment/offer/nobody-available jobs, expected {to_dealer} leads at a dealer + {} assigned by the sweep",
            s.swept("assigned")
        ),
    );
    check(
        job("sla_warning") == s.expected_sla_breaches,
        format!(
            "{} sla_warning jobs, expected {}",
            job("sla_warning"),
            s.expected_sla_breaches
        ),
    );
    check(
        job("reassigned") == s.swept("reassigned"),
        format!(
            "{} reassigned jobs, the sweep reassigned {}",
            job("reassigned"),
            s.swept("reassigned")
        ),
    );
    let unroutable = t
        .routed
        .get("unroutable -> brand CRM")
        .copied()
        .unwrap_or(0);
    check(
        s.crm_handoffs == unroutable,
        format!(
            "{} CRM hand-offs for {unroutable} unroutable leads",
            s.crm_handoffs
        ),
    );
    t.counters = counters;
    t.expected_counters = expected_counters;
    s.truth = t;
    problems
}

/// What differs from what the generator sent or the system promises.
fn problems(s: &Summary, run: &Run) -> Vec<String> {
    let e = &s.expected;
    let mut out = Vec::new();
    let mut check = |ok: bool, what: String| {
        if !ok {
            out.push(what);
        }
    };
    check(
        s.surprises.is_empty(),
        format!("{} unexpected intake answers", s.surprises.len()),
    );
    check(
        s.accepted == e.accepted && s.redeliveries == e.redeliveries,
        format!(
            "accepted/redeliveries {}/{} , expected {}/{}",
            s.accepted, s.redeliveries, e.accepted, e.redeliveries
        ),
    );
    check(
        s.leads_created == e.leads,
        format!("{} leads created, expected {}", s.leads_created, e.leads),
    );
    check(
        s.merges == e.merges,
        format!("{} merges, expected {}", s.merges, e.merges),
    );
    check(
        s.router_failures == 0,
        format!("{} router failures", s.router_failures),
    );
    check(
        s.over_cap == 0,
        format!("{} consultants above cap", s.over_cap),
    );
    check(
        run.follow_up.surprises.is_empty(),
        format!(
            "{} unexpected staff API answers",
            run.follow_up.surprises.len()
        ),
    );
    // The brand view against the generator: every lead it expected counted
    // once; called back in time (its schedule) = first contact within SLA;
    // left uncalled = an SLA breach.
    let (counted, in_sla, breaches, assigned) = brand_view_sums(run);
    let f = &run.follow_up;
    check(
        !run.brand_view.is_empty(),
        "no brand view (no brand operations in the directory)".into(),
    );
    check(
        counted as usize == e.leads,
        format!(
            "the brand view counts {counted} leads, expected {}",
            e.leads
        ),
    );
    // Assigned: those the consultants had after the claims, and those the
    // sweep gave a first consultant (expired offers, pool retries).
    let swept_first = s.swept("assigned");
    check(
        assigned as usize == f.assigned + swept_first,
        format!(
            "the brand view counts {assigned} assigned leads, the consultants had {} and the sweep assigned {swept_first}",
            f.assigned
        ),
    );
    check(
        in_sla as usize == f.assigned - f.scheduled_uncalled,
        format!(
            "the brand view has {in_sla} first contacts within SLA, the schedule called back {}",
            f.assigned - f.scheduled_uncalled
        ),
    );
    check(
        breaches as usize == s.expected_sla_breaches,
        format!(
            "the brand view has {breaches} SLA breaches, expected {}",
            s.expected_sla_breaches
        ),
    );
    let warned = s.swept("warned");
    check(
        warned == s.expected_sla_breaches,
        format!(
            "{warned} SLA breaches warned, expected {}",
            s.expected_sla_breaches
        ),
    );
    check(
        s.notifier_failures == 0,
        format!("{} notification jobs failed", s.notifier_failures),
    );
    check(
        s.deliveries_with_full_phone == 0,
        format!(
            "{} notifications carry a full phone",
            s.deliveries_with_full_phone
        ),
    );
    check(
        run.ranking_played.failures == 0 && s.ranked.len() == run.ranking_jobs,
        format!("{} of {} brands ranked", s.ranked.len(), run.ranking_jobs),
    );
    let ranked_dealers: u64 = s.ranked.values().sum();
    let ranking_jobs = s
        .notification_jobs
        .get("ranking_published")
        .copied()
        .unwrap_or(0);
    check(
        ranking_jobs as u64 == ranked_dealers
            && s.ranking_notice_dealers == s.ranking_notice_dealers_expected
            && s.ranking_notice_extra == 0,
        format!(
            "ranking_published: {ranking_jobs} jobs for {ranked_dealers} ranked dealers; managers of {} of {} dealers reached, {} extra",
            s.ranking_notice_dealers, s.ranking_notice_dealers_expected, s.ranking_notice_extra
        ),
    );
    check(
        s.log_lines_with_full_phone == 0,
        format!(
            "{} log lines carry a full phone",
            s.log_lines_with_full_phone
        ),
    );
    out
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
