//! The README's demo figures are generated, not typed: the abridged report in
//! the README (between the `demo-report` markers) must be lines of the
//! committed report of a real run (`docs/demo/report.txt`, written with its
//! `--summary-json` twin `docs/demo/summary.json` by
//! `infra/demo.sh --summary-json docs/demo/summary.json | tee docs/demo/report.txt`),
//! and that report must agree with the summary. No emulator needed.

use integration_tests::repo_path;
use serde_json::Value;

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_path(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The number after `label` on the report line that starts with `prefix`.
fn figure(report: &str, prefix: &str, label: &str) -> u64 {
    let line = report
        .lines()
        .find(|l| l.trim_start().starts_with(prefix))
        .unwrap_or_else(|| panic!("no report line starting with {prefix:?}"));
    line.split(label)
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no figure after {label:?} in {line:?}"))
}

#[test]
fn the_readme_demo_figures_are_lines_of_the_committed_report() {
    let readme = read("README.md");
    let report = read("docs/demo/report.txt");
    let block = readme
        .split("<!-- demo-report:begin -->")
        .nth(1)
        .and_then(|rest| rest.split("<!-- demo-report:end -->").next())
        .expect("the README marks its demo report");
    let lines: Vec<&str> = block
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty() && !l.starts_with("```"))
        .collect();
    assert!(lines.len() > 10, "the README shows the report");
    let report_lines: std::collections::HashSet<&str> = report.lines().map(str::trim_end).collect();
    for line in lines {
        assert!(
            report_lines.contains(line),
            "README line not in docs/demo/report.txt (regenerate both): {line:?}"
        );
    }

    let summary: Value = serde_json::from_str(&read("docs/demo/summary.json")).unwrap();
    let n = |path: &str| summary.pointer(path).and_then(Value::as_u64).unwrap();
    assert_eq!(figure(&report, "created", "created"), n("/leads_created"));
    assert_eq!(figure(&report, "merged", "merged"), n("/merges"));
    assert_eq!(figure(&report, "posted", "posted"), n("/posted"));
    assert_eq!(
        figure(&report, "lead-queue messages", "messages"),
        n("/truth/lead_queue_messages")
    );
    assert!(report.contains("== report matches what was sent"));
    assert_eq!(summary["problems"], serde_json::json!([]));
}
