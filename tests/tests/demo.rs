//! The README's first command, small: `infra/demo.sh` with 60 customers, run as
//! a user would (its own emulator, the real functions under `cargo lambda
//! watch`), then its report's figures checked against what the generator knows
//! it sent, the log scan for full phone numbers, and that nothing is left
//! running. Then the same demo, smaller, on functions built with a deliberate
//! routing bug (`--fault ignore-city`): its report must fail. Needs no shared
//! stack: the demo starts and stops its own.

use std::process::{Command, Output};
use std::sync::Mutex;

use integration_tests::repo_path;
use serde_json::Value;

const CUSTOMERS: u64 = 60;
/// The broken run only has to show a mismatch.
const BROKEN_CUSTOMERS: u64 = 30;

/// One demo at a time: both build the functions and serve them with `cargo
/// lambda watch` (which builds on first invoke) in the same target dir.
static ONE_DEMO_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs `infra/demo.sh ARGS` with its state in `.local/<state>`.
fn demo(state: &str, args: &[&str]) -> (Output, std::path::PathBuf) {
    let _one = ONE_DEMO_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let repo = repo_path("");
    let state = repo.join(".local").join(state);
    let summary_path = state.join("summary.json");
    let _ = std::fs::remove_file(&summary_path);
    std::fs::create_dir_all(&state).unwrap();
    let mut demo = Command::new("bash");
    // A user's shell, not cargo test's environment: the nested `cargo build`s
    // and `cargo lambda watch` must see what they would see from a terminal.
    demo.env_clear();
    for (key, value) in std::env::vars() {
        let keep = matches!(
            key.as_str(),
            "PATH" | "HOME" | "USER" | "LANG" | "TMPDIR" | "CI"
        ) || key.starts_with("RUSTUP_")
            || (key.starts_with("CARGO_") && (key == "CARGO_HOME" || key == "CARGO_TARGET_DIR"));
        if keep {
            demo.env(key, value);
        }
    }
    let output = demo
        .arg(repo.join("infra/demo.sh"))
        .args(args)
        .arg("--summary-json")
        .arg(&summary_path)
        .env("LEADS_DEMO_STATE", &state)
        .current_dir(&repo)
        .output()
        .expect("infra/demo.sh runs");
    (output, summary_path)
}

/// The emulator pids the demo's stack reported (`stack: started … pid N`).
fn emulator_pids(stderr: &str) -> Vec<u32> {
    stderr
        .lines()
        .filter(|l| l.starts_with("stack:") && l.contains("started"))
        .filter_map(|l| l.split("pid ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .collect()
}

#[test]
fn a_small_demo_reports_exactly_what_was_sent_and_leaves_nothing_running() {
    let (output, summary_path) = demo("demo-test", &["--customers", &CUSTOMERS.to_string()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the demo failed:\n{stdout}\n{stderr}"
    );
    println!("{stdout}");

    let s: Value = serde_json::from_str(&std::fs::read_to_string(&summary_path).unwrap()).unwrap();
    let n = |path: &str| -> u64 {
        s.pointer(path)
            .and_then(Value::as_u64)
            .unwrap_or_else(|| panic!("{path} missing in {s}"))
    };
    assert_eq!(s["problems"], serde_json::json!([]), "{s}");

    // Intake: every webhook answered as the generator meant it.
    assert_eq!(s["surprises"].as_array().unwrap().len(), 0);
    assert_eq!(n("/accepted"), n("/expected/accepted"));
    assert_eq!(n("/redeliveries"), n("/expected/redeliveries"));
    let rejected: u64 = s["rejected"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(rejected, n("/expected/rejected"));
    assert!(
        n("/expected/rejected") > 0,
        "the dataset includes forged requests"
    );
    assert_eq!(
        n("/posted"),
        n("/expected/accepted") + n("/expected/redeliveries") + n("/expected/rejected")
    );

    // Dedup: one lead per customer, one merge per later touch.
    assert_eq!(n("/leads_created"), n("/expected/leads"));
    assert_eq!(n("/expected/leads"), CUSTOMERS);
    assert_eq!(n("/merges"), n("/expected/merges"));
    let overlaps: u64 = s["overlap"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert!(overlaps <= n("/merges"));

    // Every lead routed where the generator's record allows (class and
    // dealer), natural/paid as sent and counted on the right dealer, the
    // consultant group per strategy: checked lead by lead in the report.
    assert!(
        s["routes"].get("not routed").is_none(),
        "every lead is routed: {s}"
    );
    assert_eq!(n("/truth/routing_mismatches"), 0);
    assert_eq!(n("/truth/customers_without_one_lead"), 0);
    assert_eq!(n("/truth/leads_of_no_customer"), 0);
    assert_eq!(n("/truth/traffic_mismatches"), 0);
    assert_eq!(s["truth"]["counters"], s["truth"]["expected_counters"]);
    assert_eq!(n("/truth/ranking_input_mismatches"), 0);
    assert_eq!(n("/truth/group_mismatches"), 0);
    // One message per accepted webhook, at most one more per redelivery (the
    // intake re-sends a delivery its first attempt did not confirm within the
    // claim lease; the router's delivery marker makes the copy a duplicate).
    let messages = n("/truth/lead_queue_messages");
    let accepted = n("/expected/lead_queue_messages");
    assert!(
        (accepted..=accepted + n("/expected/redeliveries")).contains(&messages),
        "{messages} lead-queue messages for {accepted} accepted webhooks"
    );
    // The day has local and remote leads (else the routing check proves little).
    for class in ["local", "remote (异地)"] {
        assert!(
            s["truth"]["routed"][class].as_u64().unwrap_or(0) > 0,
            "no {class} lead in the day: {s}"
        );
    }
    assert_eq!(n("/over_cap"), 0);
    assert_eq!(s["round_robin_unfair"], serde_json::json!([]));
    assert_eq!(n("/router_failures"), 0);
    assert_eq!(
        n("/crm_handoffs"),
        s["truth"]["routed"]["unroutable -> brand CRM"]
            .as_u64()
            .unwrap_or(0)
    );

    // Claim races have exactly one winner; the leads the generator's
    // schedule leaves uncalled are the breaches.
    assert_eq!(n("/claims_won"), n("/claim_races"));
    // Phones WeCom contacts gave in the chat link them to the customer.
    assert_eq!(n("/phones_linked"), n("/phones_recorded"));
    assert_eq!(n("/sla/warned"), n("/expected_sla_breaches"));
    assert!(n("/expected_sla_breaches") > 0, "the day has breaches");
    assert!(n("/sla/reassigned") <= n("/sla/warned"));

    // Every job delivered (WeCom app message per job, CRM copy), no phone in any.
    let jobs: u64 = s["notification_jobs"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert!(jobs >= n("/leads_created") - n("/crm_handoffs"));
    assert_eq!(n("/notifier_failures"), 0);
    assert_eq!(n("/deliveries/wecom app message"), jobs);
    assert_eq!(n("/deliveries_with_full_phone"), 0);
    assert!(n("/sla/warned") == 0 || n("/notification_jobs/sla_warning") == n("/sla/warned"));

    // The nightly ranking ranked every brand, and every dealer in it.
    assert_eq!(n("/ranking_jobs"), 2);
    assert_eq!(n("/ranked/鸿途汽车") + n("/ranked/星澜汽车"), 9);
    // One RankingPublished per ranked dealer, delivered to the managers of
    // every ranked dealer that has one (all nine in the sample directory), once.
    assert_eq!(n("/notification_jobs/ranking_published"), 9);
    assert_eq!(n("/ranking_notice_dealers_expected"), 9);
    assert_eq!(n("/ranking_notice_dealers"), 9);
    assert_eq!(n("/ranking_notice_extra"), 0);

    // Privacy: the functions' own log lines were scanned and hold no phone.
    assert!(n("/log_lines") > 100, "the log scan saw the functions' log");
    assert_eq!(n("/log_lines_with_full_phone"), 0);

    // Nothing left running: the emulator and cargo lambda watch are gone.
    // (The pid file is gone too, `stack.sh down` deletes it: the pid comes
    // from what the stack reported when it started.)
    let pids = emulator_pids(&stderr);
    assert!(
        !pids.is_empty(),
        "the demo reports its emulator's pid:\n{stderr}"
    );
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "the demo's emulator (pid {pid}) is still running"
        );
    }
    let port = stderr
        .lines()
        .find_map(|l| l.split("cargo lambda watch on 127.0.0.1:").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the demo names its functions' port");
    let watchers = Command::new("pgrep")
        .args(["-f", &format!("lambda watch .*-P {port}")])
        .output()
        .unwrap();
    assert!(
        watchers.stdout.is_empty(),
        "cargo lambda watch on port {port} is still running"
    );
}

/// The report must see a broken rule: routing that ignores the customer's
/// city (leads-domain feature `fault-ignore-city`) sends remote customers'
/// leads to the dealer they contacted, which the generator's record forbids.
#[test]
fn the_demo_fails_on_a_router_that_ignores_the_customers_city() {
    let (output, _) = demo(
        "demo-test-broken",
        &[
            "--fault",
            "ignore-city",
            "--customers",
            &BROKEN_CUSTOMERS.to_string(),
        ],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        !output.status.success(),
        "the demo passed on a broken router:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("== MISMATCH between the report and what was sent or promised")
            && stdout.contains("leads routed where the rules do not send them"),
        "the report names the routing mismatch:\n{stdout}\n{stderr}"
    );
    for pid in emulator_pids(&stderr) {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "the broken demo's emulator (pid {pid}) is still running"
        );
    }
}
