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

/// The text between `<!-- name:begin -->` and `<!-- name:end -->`.
fn marked<'t>(text: &'t str, name: &str) -> &'t str {
    text.split(&format!("<!-- {name}:begin -->"))
        .nth(1)
        .and_then(|rest| rest.split(&format!("<!-- {name}:end -->")).next())
        .unwrap_or_else(|| panic!("the README marks its {name} passage"))
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
    let lines: Vec<&str> = marked(&readme, "demo-report")
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

/// The numbers of a marked README passage, thousands separators dropped,
/// decimals kept.
fn readme_numbers(readme: &str, name: &str) -> Vec<String> {
    let text = marked(readme, name).replace(',', "");
    text.split(|c: char| !c.is_ascii_digit() && c != '.')
        .map(|w| w.trim_matches('.'))
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn the_readme_region_run_figures_are_those_of_the_committed_report() {
    let readme = read("README.md");
    let report = read("docs/demo/region-report.txt");
    let summary: Value = serde_json::from_str(&read("docs/demo/region-summary.json")).unwrap();
    // Whole seconds in the README, tenths in the report.
    let seconds = |label: &str| -> String {
        let line = report
            .lines()
            .nth(2)
            .expect("the report's webhooks heading");
        let s: f64 = line
            .split(label)
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {label:?} in {line:?}"));
        format!("{}", s.round())
    };
    let expected = vec![
        figure(&report, "posted", "posted").to_string(),
        summary["leads_created"].as_u64().unwrap().to_string(),
        figure(&report, "notifier:", "invocations,").to_string(),
        seconds("replay "),
        seconds("whole run "),
    ];
    assert_eq!(
        readme_numbers(&readme, "region-run"),
        expected,
        "README region-run passage vs docs/demo/region-report.txt and region-summary.json"
    );
    assert!(report.contains("== report matches what was sent"));
    assert_eq!(summary["problems"], serde_json::json!([]));
}

/// The benchmark section is `benches/render.py`'s rendering of the committed
/// results in `docs/benchmarks/`: rendered again here into a scratch copy, it
/// must come out the same (a hand edit of a figure, or results committed
/// without re-rendering, fails).
#[test]
fn the_readme_benchmark_section_is_the_rendering_of_the_committed_results() {
    let scratch = std::env::temp_dir().join(format!("bench-render-{}", std::process::id()));
    let results = scratch.join("benchmarks");
    std::fs::create_dir_all(&results).unwrap();
    for entry in std::fs::read_dir(repo_path("docs/benchmarks")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, results.join(path.file_name().unwrap())).unwrap();
    }
    let readme = scratch.join("README.md");
    std::fs::copy(repo_path("README.md"), &readme).unwrap();
    let venv = repo_path(".venv/bin/python");
    let python = if venv.exists() {
        venv
    } else {
        "python3".into()
    };
    let out = std::process::Command::new(python)
        .arg(repo_path("benches/render.py"))
        .arg(&results)
        .arg(&readme)
        .output()
        .expect("python runs benches/render.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rendered = std::fs::read_to_string(&readme).unwrap();
    let committed = read("README.md");
    let (committed, rendered) = (
        marked(&committed, "benchmarks"),
        marked(&rendered, "benchmarks"),
    );
    let differs = committed
        .lines()
        .zip(rendered.lines())
        .find(|(c, r)| c != r);
    assert!(
        differs.is_none() && committed.lines().count() == rendered.lines().count(),
        "README benchmark section vs benches/render.py over docs/benchmarks (run infra/bench.sh --render); first difference (README, rendered): {differs:?}"
    );
    assert_eq!(
        read("docs/benchmarks/README.md"),
        std::fs::read_to_string(results.join("README.md")).unwrap(),
        "docs/benchmarks/README.md is stale"
    );
    let _ = std::fs::remove_dir_all(&scratch);
}
