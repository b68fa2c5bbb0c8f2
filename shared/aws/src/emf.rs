//! Business metrics in CloudWatch's embedded metric format (EMF): one JSON
//! object per line on stdout, with an `_aws` key that tells CloudWatch Logs
//! which members are metrics; CloudWatch turns them into metrics without a
//! `PutMetricData` call (no request, no IAM, works in every partition).
//!
//! One small module rather than a crate: the maintained Rust emitter
//! (`metrics_cloudwatch_embedded`) needs the global `metrics` recorder and a
//! flush layer around every invocation, for a handful of counters.
//!
//! Namespace: `METRICS_NAMESPACE` (the template sets `Leads/<stack>`; default
//! `Leads`). Every metric is a `Count`.

use std::io::Write;

use serde_json::{json, Map, Value};

/// The metrics the functions emit (the template's alarms and dashboard name
/// the same strings).
pub mod names {
    pub const LEADS_CREATED: &str = "LeadsCreated";
    pub const LEADS_MERGED: &str = "LeadsMerged";
    pub const LEADS_REMOTE: &str = "LeadsRemote";
    pub const LEADS_UNROUTABLE: &str = "LeadsUnroutable";
    pub const CONFLICTS_RETRIED: &str = "ConflictsRetried";
    pub const SLA_BREACHES: &str = "SlaBreaches";
    pub const NOTIFICATIONS_FAILED: &str = "NotificationsFailed";
    pub const NOTIFICATIONS_DEAD_LETTERED: &str = "NotificationsDeadLettered";
    pub const RANKING_BRANDS_COMPLETED: &str = "RankingBrandsCompleted";
    pub const MAINLAND_MOBILES_REFUSED: &str = "MainlandMobilesRefused";
    pub const WECOM_CONTACTS_DELETED: &str = "WecomContactsDeleted";
    /// Status events of a brand with no CRM endpoint (not sent, by design).
    pub const CRM_EVENTS_SKIPPED: &str = "CrmEventsSkipped";
    /// Status changes saved whose CRM event the API could not queue.
    pub const CRM_EVENTS_UNSENT: &str = "CrmEventsUnsent";
}

/// The namespace metrics go to.
pub fn namespace() -> String {
    crate::config::optional("METRICS_NAMESPACE").unwrap_or_else(|| "Leads".to_string())
}

/// One EMF record: counts under `namespace`, each published once without
/// dimensions (what the alarms watch) and, when `dimension` is given, once
/// more per that dimension's value (e.g. per channel).
pub fn record(
    namespace: &str,
    dimension: Option<(&str, &str)>,
    counts: &[(&str, u64)],
    timestamp_ms: i64,
) -> Value {
    let mut root = Map::new();
    let dimensions = match dimension {
        Some((name, value)) => {
            root.insert(name.to_string(), Value::String(value.to_string()));
            json!([[], [name]])
        }
        None => json!([[]]),
    };
    let metrics: Vec<Value> = counts
        .iter()
        .map(|(name, _)| json!({ "Name": name, "Unit": "Count" }))
        .collect();
    for (name, value) in counts {
        root.insert(name.to_string(), json!(value));
    }
    root.insert(
        "_aws".to_string(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": dimensions,
                "Metrics": metrics,
            }],
        }),
    );
    Value::Object(root)
}

/// Writes one record as a line on stdout (where Lambda's log agent reads it);
/// counts of zero are left out, and nothing is written if all are zero.
pub fn emit(dimension: Option<(&str, &str)>, counts: &[(&str, u64)]) {
    let counts: Vec<(&str, u64)> = counts.iter().copied().filter(|(_, v)| *v > 0).collect();
    if counts.is_empty() {
        return;
    }
    let line = record(
        &namespace(),
        dimension,
        &counts,
        chrono::Utc::now().timestamp_millis(),
    );
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
}

/// One count without dimensions.
pub fn count(name: &str, value: u64) {
    emit(None, &[(name, value)]);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rules of the EMF specification a CloudWatch Logs agent checks: a root
    /// object with `_aws.Timestamp` (epoch ms) and `_aws.CloudWatchMetrics`, each
    /// directive with a namespace, dimension sets naming only root members (at most
    /// 30), metrics whose names are root members holding numbers.
    fn assert_valid_emf(v: &Value) {
        let root = v.as_object().expect("an object");
        let aws = root["_aws"].as_object().expect("_aws is an object");
        assert!(aws["Timestamp"].as_i64().expect("Timestamp is an integer") > 1_600_000_000_000);
        let directives = aws["CloudWatchMetrics"].as_array().expect("an array");
        assert!(!directives.is_empty());
        for d in directives {
            let ns = d["Namespace"].as_str().expect("a namespace");
            assert!(!ns.is_empty() && ns.len() <= 255);
            for set in d["Dimensions"].as_array().expect("dimension sets") {
                let set = set.as_array().expect("a dimension set is an array");
                assert!(set.len() <= 30);
                for name in set {
                    let name = name.as_str().expect("a dimension name");
                    assert!(root[name].is_string(), "dimension {name} is a root string");
                }
            }
            let metrics = d["Metrics"].as_array().expect("metrics");
            assert!(!metrics.is_empty() && metrics.len() <= 100);
            for m in metrics {
                let name = m["Name"].as_str().expect("a metric name");
                assert!(root[name].is_number(), "metric {name} is a root number");
                assert_eq!(m["Unit"], "Count");
            }
        }
    }

    #[test]
    fn a_record_is_valid_emf() {
        let v = record(
            "Leads/test",
            Some(("Channel", "wecom")),
            &[(names::NOTIFICATIONS_FAILED, 2)],
            1_767_225_600_000,
        );
        assert_valid_emf(&v);
        // Independent truth: the record written out by hand from the specification.
        let expected: Value = serde_json::from_str(
            r#"{"Channel":"wecom","NotificationsFailed":2,
                "_aws":{"Timestamp":1767225600000,"CloudWatchMetrics":[{
                  "Namespace":"Leads/test","Dimensions":[[],["Channel"]],
                  "Metrics":[{"Name":"NotificationsFailed","Unit":"Count"}]}]}}"#,
        )
        .unwrap();
        assert_eq!(v, expected);
    }

    #[test]
    fn several_counts_without_dimension() {
        let v = record(
            "Leads",
            None,
            &[(names::LEADS_CREATED, 3), (names::LEADS_MERGED, 1)],
            1_767_225_600_000,
        );
        assert_valid_emf(&v);
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([[]]));
        assert_eq!(v["LeadsCreated"], 3);
        assert_eq!(v["LeadsMerged"], 1);
        // One line: a log line holds exactly one record.
        assert!(!v.to_string().contains('\n'));
    }
}
