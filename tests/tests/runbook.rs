//! The runbook's local commands run in CI: every `leadctl` line of
//! `docs/operations.md`'s `sh` blocks, in order, in one shell against the local
//! stack (`STACK` = the local stack's name; the directory file, staff and brand
//! variables set to a brand of this test's own). A command renamed in the tool
//! but not in the runbook (or the reverse) fails here.

use integration_tests::{leadctl, repo_path, stack, unique};

/// The `sh` blocks' commands (continuation lines joined).
fn runbook_commands(text: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut in_sh = false;
    let mut pending = String::new();
    for line in text.lines() {
        if line.starts_with("```") {
            in_sh = !in_sh && line.trim() == "```sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        let line = line.trim();
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(line);
        let command = std::mem::take(&mut pending);
        if !command.is_empty() && !command.starts_with('#') {
            commands.push(command);
        }
    }
    commands
}

#[tokio::test]
async fn the_runbooks_leadctl_commands_run_against_the_local_stack() {
    let Some(_stack) = stack().await else { return };
    let text = std::fs::read_to_string(repo_path("docs/operations.md")).unwrap();
    let commands: Vec<String> = runbook_commands(&text)
        .into_iter()
        .filter(|c| c.contains("leadctl "))
        .collect();
    // stack-env (twice), apply (dry run and real), show, redrive (2), token.
    assert!(commands.len() >= 8, "{commands:#?}");
    for c in &commands {
        assert!(
            c.starts_with("leadctl ") || c.starts_with("eval \"$(leadctl "),
            "a runbook leadctl line this test cannot run alone: {c}"
        );
    }

    let brand = unique("runbook");
    let dir = std::env::temp_dir().join(unique("runbook"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("directory.json");
    std::fs::write(
        &file,
        serde_json::json!({
            "brands": [{"brand_id": brand, "name": "运维品牌"}],
            "dealers": [{"dealer_id": format!("{brand}-jn"), "brand_id": brand, "name": "济南店", "city": "济南", "strategy": "round_robin"}],
            "staff": [{"staff_id": format!("{brand}-m"), "dealer_id": format!("{brand}-jn"), "name": "店总", "role": "manager", "on_duty": true, "cap": 0}],
            "accounts": []
        })
        .to_string(),
    )
    .unwrap();

    // leadctl built, and first on PATH.
    let (ok, _, err) = leadctl(&["--version"], &[]);
    assert!(ok, "{err}");
    let bin = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| repo_path("target"))
        .join("debug");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let script = format!("set -euo pipefail\n{}\n", commands.join("\n"));
    let stack_name = std::env::var("LOCAL_STACK_NAME").unwrap_or_else(|_| "leads-local".into());
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(&dir)
        .env("PATH", path)
        .env("STACK", stack_name)
        .env("DIRECTORY_FILE", &file)
        .env("BRAND", &brand)
        .env("DEALER", format!("{brand}-jn"))
        .env("STAFF", format!("{brand}-m"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "script:\n{script}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("nothing written"), "{stdout}");
    assert!(stdout.contains("applied: "), "{stdout}");
    assert!(
        stdout.contains(&format!("brand {brand} (运维品牌)")),
        "{stdout}"
    );
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("moved ")).count(),
        2,
        "{stdout}"
    );
    let event: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("token-event.json")).unwrap())
            .unwrap();
    assert!(event["body"]
        .as_str()
        .unwrap()
        .contains(&format!("{brand}-m")));
}
