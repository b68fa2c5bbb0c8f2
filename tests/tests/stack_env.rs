//! `leadctl stack-env --stack NAME` against the local stack, whose queues are a
//! CloudFormation stack in the emulator (with the template's outputs): the names
//! it prints are the ones the functions are configured with.

use integration_tests::{leadctl, stack};

#[tokio::test]
async fn stack_env_prints_the_stacks_tables_and_queues() {
    let Some(stack) = stack().await else { return };
    let name = std::env::var("LOCAL_STACK_NAME").unwrap_or_else(|_| "leads-local".into());
    let (ok, out, err) = leadctl(&["stack-env", "--stack", &name], &[]);
    assert!(ok, "{out}{err}");
    let printed: std::collections::BTreeMap<String, String> = out
        .lines()
        .map(|l| {
            let (k, v) = l.strip_prefix("export ").expect(l).split_once('=').unwrap();
            (k.to_string(), v.trim_matches('\'').to_string())
        })
        .collect();
    let s = &stack.settings;
    for (var, expected) in [
        ("DIRECTORY_TABLE", &s.tables.directory),
        ("LEADS_TABLE", &s.tables.leads),
        ("IDEMPOTENCY_TABLE", &s.tables.idempotency),
        ("RAW_PAYLOAD_TABLE", &s.tables.raw_payload),
        ("AUDIT_TABLE", &s.tables.audit),
        ("STATS_TABLE", &s.tables.stats),
        ("LEAD_QUEUE_URL", &s.queues.lead),
        ("NOTIFICATION_QUEUE_URL", &s.queues.notification),
        ("CRM_QUEUE_URL", &s.queues.crm),
    ] {
        // The queue URLs moto's CloudFormation reports point at AWS; the
        // queue's name (its last segment) is what must match.
        let got = printed
            .get(var)
            .unwrap_or_else(|| panic!("{var} missing: {out}"));
        let tail = |u: &str| u.rsplit('/').next().unwrap_or_default().to_string();
        assert_eq!(tail(got), tail(expected), "{var}");
    }
    assert!(printed.contains_key("RANKINGS_TABLE") && printed.contains_key("RANKING_QUEUE_URL"));

    let (ok, _, err) = leadctl(&["stack-env", "--stack", "no-such-stack"], &[]);
    assert!(!ok);
    assert!(err.contains("cannot describe stack no-such-stack"), "{err}");
}
