//! Least privilege in `template.yaml`: each function's policy lists exactly the
//! tables, queues and secrets it uses, with named actions only.
//!
//! What a function "uses" is a reviewed list below (`USES`), checked against
//! the code from both sides rather than derived from it alone, because a
//! source scan over-approximates: the SLA sweeper hands the stats table to
//! `DynamoLeads::new` but never calls a method that writes it, so granting it
//! would be wider than needed. So:
//!
//! 1. the policy's resources (statements, plus the queue of an SQS event source)
//!    equal the reviewed list, per function;
//! 2. every table, queue and secret on the list is named by the function's own
//!    code (`tables.X`, `t.X`, `queues.X`, or an env var such as
//!    `RANKING_QUEUE_URL`, quoted or through its constant in
//!    `shared/aws/src/secrets.rs`, e.g. `PHONE_HASH_SECRET_ID`; the settings field
//!    → env var → resource mapping is read from `shared/aws/src/config.rs` and the
//!    template's `Environment`), so no grant outlives the code that needed it;
//! 3. every table, queue or secret the code names is on the list or is a
//!    documented exception (`NAMED_BUT_UNUSED`), so new code cannot start using a
//!    table without this review (and the template) being updated;
//! 4. no action has a wildcard (`*`, `dynamodb:*`, `dynamodb:Get*`), no resource
//!    is `*`, DynamoDB actions only name tables, SQS actions only queues, and the
//!    one Secrets Manager action, `secretsmanager:GetSecretValue`, only secrets;
//! 5. besides the inline statements, the one policy a function may attach is the
//!    customer-managed key's `!If [HasKmsKey, !Ref KmsUsePolicy, !Ref AWS::NoValue]`.
//!
//! `customer_managed_key_covers_every_store_and_secret`: with `KmsKeyArn` set,
//! every table, queue and secret is encrypted with it and every function may use
//! it, only through those services. `no_secret_is_in_any_functions_environment`:
//! functions get the ids of their secrets, never a value.
//!
//! Also here, read from the same template: every queue has its alarms (a DLQ on
//! any message, a source queue on the age of its oldest message), every function
//! its error and throttle alarms, a log group with a retention and a gradual deploy
//! rolled back by its alarms, every stateful
//! table point-in-time recovery, deletion protection and `Retain`.
//!
//! No emulator needed.

use std::collections::{BTreeMap, BTreeSet};

use integration_tests::repo_path;
use serde_yaml::Value;

/// Reviewed: function (logical id) → the tables, queues and secrets it reads or
/// writes (secrets: read only, `secretsmanager:GetSecretValue`).
const USES: [(&str, &str, &[&str]); 6] = [
    (
        "WebhookIntakeFunction",
        "functions/webhook-intake",
        // raw bodies (each one the delivery's claim), the lead queue; the phone-hash
        // key (dedup keys) and the platforms' webhook secrets
        &[
            "RawPayloadTable",
            "LeadQueue",
            "PhoneHashSecret",
            "WebhookSecret",
        ],
    ),
    (
        "LeadRouterFunction",
        "functions/lead-router",
        // consumes LeadQueue; directory + tiers; leads + counters; audit; jobs and CRM hand-offs;
        // the phone-hash key opens the contacts the intake sealed
        &[
            "PhoneHashSecret",
            "LeadQueue",
            "DirectoryTable",
            "RankingsTable",
            "LeadsTable",
            "StatsTable",
            "AuditTable",
            "NotificationQueue",
            "CrmQueue",
        ],
    ),
    (
        "ApiFunction",
        "functions/api",
        // + the staff-token signing keys, and the phone-hash key (a phone recorded
        // by a consultant becomes the intake's dedup key)
        &[
            "DirectoryTable",
            "LeadsTable",
            "StatsTable",
            "AuditTable",
            "RankingsTable",
            "NotificationQueue",
            "CrmQueue",
            "StaffTokenSecret",
            "PhoneHashSecret",
        ],
    ),
    (
        "NotifierFunction",
        "functions/notifier",
        // + its DLQ: a job that cannot reach someone is sent there; the channels' keys;
        // the CRM queue's events to each brand's CRM, and its DLQ for those no CRM takes
        &[
            "NotificationQueue",
            "NotificationDeadLetterQueue",
            "CrmQueue",
            "CrmDeadLetterQueue",
            "DirectoryTable",
            "IdempotencyTable",
            "AuditTable",
            "NotifierSecret",
        ],
    ),
    (
        "SlaSweeperFunction",
        "functions/sla-sweeper",
        &[
            "DirectoryTable",
            "LeadsTable",
            "IdempotencyTable",
            "AuditTable",
            "NotificationQueue",
        ],
    ),
    (
        "BrandRankingFunction",
        "functions/brand-ranking",
        &[
            "DirectoryTable",
            "StatsTable",
            "RankingsTable",
            "RankingQueue",
            "NotificationQueue",
        ],
    ),
];

/// Named in a function's code, deliberately not granted (with the reason).
const NAMED_BUT_UNUSED: [(&str, &str, &str); 1] = [(
    "SlaSweeperFunction",
    "StatsTable",
    "passed to DynamoLeads::new; only the router's record/merge/route methods write it, the sweeper calls none of them",
)];

/// The logical id a CloudFormation reference points at: `!Ref X`,
/// `!GetAtt X.Arn`, `!Sub "${X.Arn}/index/…"` and their long forms.
fn referenced(v: &Value) -> Vec<String> {
    let strip = |s: &str| s.split('.').next().unwrap_or_default().to_string();
    match v {
        Value::Tagged(t) => match (t.tag.to_string().as_str(), &t.value) {
            ("!Ref", Value::String(s)) | ("!GetAtt", Value::String(s)) => vec![strip(s)],
            ("!Sub", Value::String(s)) => s
                .split("${")
                .skip(1)
                .filter_map(|p| p.split('}').next())
                .map(strip)
                .collect(),
            (_, inner) => referenced(inner),
        },
        Value::Mapping(m) => {
            if let Some(Value::String(s)) = m.get("Ref") {
                return vec![strip(s)];
            }
            if let Some(Value::Sequence(parts)) = m.get("Fn::GetAtt") {
                return parts
                    .first()
                    .and_then(Value::as_str)
                    .map(strip)
                    .into_iter()
                    .collect();
            }
            if let Some(Value::String(s)) = m.get("Fn::Sub") {
                return referenced(&Value::Tagged(Box::new(serde_yaml::value::TaggedValue {
                    tag: serde_yaml::value::Tag::new("!Sub"),
                    value: Value::String(s.clone()),
                })));
            }
            m.values().flat_map(referenced).collect()
        }
        Value::Sequence(items) => items.iter().flat_map(referenced).collect(),
        Value::String(s) if s == "*" => vec!["*".into()],
        _ => Vec::new(),
    }
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Sequence(items) => items.iter().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}

/// Settings field (`directory`, `lead`, …) → env var, from the one config loader.
fn settings_env_vars() -> BTreeMap<String, String> {
    let source = std::fs::read_to_string(repo_path("shared/aws/src/config.rs")).unwrap();
    let mut out = BTreeMap::new();
    for line in source.lines() {
        let line = line.trim();
        if let Some((field, rest)) = line.split_once(": required(\"") {
            if let Some(var) = rest.split('"').next() {
                out.insert(field.trim().to_string(), var.to_string());
            }
        }
    }
    assert!(
        out.len() >= 10,
        "config.rs reads the table and queue names: {out:?}"
    );
    out
}

/// Env var → the logical id it names, from `Environment.Variables` maps.
fn env_targets(variables: Option<&Value>, into: &mut BTreeMap<String, String>) {
    if let Some(Value::Mapping(vars)) = variables {
        for (k, v) in vars {
            if let (Some(k), [target]) = (k.as_str(), referenced(v).as_slice()) {
                into.insert(k.to_string(), target.clone());
            }
        }
    }
}

/// Constant → the env var it holds, from `shared/aws/src/secrets.rs`
/// (`pub const PHONE_HASH_SECRET_ID: &str = "PHONE_HASH_SECRET_ID";`): the code
/// names a secret's id by its constant.
fn secret_id_constants() -> BTreeMap<String, String> {
    let source = std::fs::read_to_string(repo_path("shared/aws/src/secrets.rs"))
        .expect("shared/aws/src/secrets.rs: the run-time secret reads");
    let mut out = BTreeMap::new();
    for line in source.lines() {
        let Some(rest) = line.trim().strip_prefix("pub const ") else {
            continue;
        };
        if let Some((name, value)) = rest.split_once(": &str = \"") {
            if let Some(value) = value.strip_suffix("\";") {
                out.insert(name.trim().to_string(), value.to_string());
            }
        }
    }
    for id in SECRET_ID_VARS {
        assert!(
            out.values().any(|v| v == id),
            "secrets.rs has no constant for {id}: {out:?}"
        );
    }
    out
}

/// The env vars that carry a secret's id (its ARN), one per secret.
const SECRET_ID_VARS: [&str; 4] = [
    "PHONE_HASH_SECRET_ID",
    "WEBHOOK_SECRET_ID",
    "STAFF_TOKEN_SECRET_ID",
    "NOTIFIER_SECRET_ID",
];

/// The `shared/aws/src/secrets.rs` helpers that read a secret by the id in
/// its env var: a call `secrets::NAME(` names those vars as surely as the
/// constant does.
const SECRET_HELPERS: [(&str, &[&str]); 3] = [
    (
        "intake_secrets",
        &["PHONE_HASH_SECRET_ID", "WEBHOOK_SECRET_ID"],
    ),
    ("staff_token_keys", &["STAFF_TOKEN_SECRET_ID"]),
    ("phone_hash_key", &["PHONE_HASH_SECRET_ID"]),
];

/// `word` in `text` with no identifier character either side.
fn has_word(text: &str, word: &str) -> bool {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices(word).any(|(i, _)| {
        !text[..i].chars().last().is_some_and(ident)
            && !text[i + word.len()..].chars().next().is_some_and(ident)
    })
}

/// The customer-managed key's policy, as every function attaches it.
fn is_kms_use_policy(policy: &Value) -> bool {
    if_has_kms_key(policy)
        .is_some_and(|then| referenced_id(then).as_deref() == Some("KmsUsePolicy"))
}

/// `!If [HasKmsKey, X, !Ref AWS::NoValue]` -> X.
fn if_has_kms_key(v: &Value) -> Option<&Value> {
    let Value::Tagged(t) = v else { return None };
    if t.tag != "!If" {
        return None;
    }
    match t.value.as_sequence()?.as_slice() {
        [cond, then, Value::Tagged(no)]
            if cond.as_str() == Some("HasKmsKey")
                && no.tag == "!Ref"
                && no.value.as_str() == Some("AWS::NoValue") =>
        {
            Some(then)
        }
        _ => None,
    }
}

/// Tables, queues and secrets a function's source names.
fn named_in_code(
    dir: &str,
    fields: &BTreeMap<String, String>,
    env: &BTreeMap<String, String>,
    constants: &BTreeMap<String, String>,
) -> BTreeSet<String> {
    let mut text = String::new();
    let mut stack = vec![repo_path(dir).join("src")];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "rs") {
                // Code only: a comment naming a table or secret is no use of it.
                for line in std::fs::read_to_string(path).unwrap().lines() {
                    if !line.trim_start().starts_with("//") {
                        text.push_str(line);
                        text.push('\n');
                    }
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    for (field, var) in fields {
        let patterns = [
            format!("tables.{field}"),
            format!("t.{field}"),
            format!("queues.{field}"),
            format!("q.{field}"),
        ];
        let named = patterns.iter().any(|p| {
            text.match_indices(p.as_str()).any(|(i, _)| {
                let before = text[..i].chars().last().unwrap_or(' ');
                let after = text[i + p.len()..].chars().next().unwrap_or(' ');
                let word = |c: char| c.is_alphanumeric() || c == '_';
                !word(before) && !word(after)
            })
        });
        if named {
            if let Some(target) = env.get(var) {
                out.insert(target.clone());
            }
        }
    }
    for (var, target) in env {
        let by_constant = constants
            .iter()
            .any(|(constant, v)| v == var && has_word(&text, constant));
        let by_helper = SECRET_HELPERS.iter().any(|(helper, vars)| {
            vars.contains(&var.as_str()) && text.contains(&format!("secrets::{helper}("))
        });
        if text.contains(&format!("\"{var}\"")) || by_constant || by_helper {
            out.insert(target.clone());
        }
    }
    out
}

#[test]
fn each_function_is_granted_exactly_the_tables_and_queues_it_uses() {
    let template = template();
    let resources = template["Resources"].as_mapping().unwrap();
    let kind = |id: &str| kind_of(resources, id);
    let mut env = BTreeMap::new();
    env_targets(
        template
            .get("Globals")
            .and_then(|g| g.get("Function"))
            .and_then(|f| f.get("Environment"))
            .and_then(|e| e.get("Variables")),
        &mut env,
    );
    let fields = settings_env_vars();
    let constants = secret_id_constants();

    let functions: BTreeSet<String> = resources
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::Serverless::Function"))
        .map(|(k, _)| k.as_str().unwrap().to_string())
        .collect();
    let reviewed: BTreeSet<String> = USES.iter().map(|(f, _, _)| f.to_string()).collect();
    assert_eq!(
        functions, reviewed,
        "every function of the template is reviewed here"
    );

    let mut problems = Vec::new();
    for (function, dir, uses) in USES {
        let props = &resources[function]["Properties"];
        let mut granted = BTreeSet::new();
        let Some(policies) = props["Policies"].as_sequence() else {
            problems.push(format!("{function}: no Policies"));
            continue;
        };
        let kms = policies.iter().filter(|p| is_kms_use_policy(p)).count();
        if kms > 1 {
            problems.push(format!("{function}: KmsUsePolicy attached {kms} times"));
        }
        for policy in policies {
            if is_kms_use_policy(policy) {
                // The one extra policy: the customer-managed key, only when there is
                // one, only through the stores (customer_managed_key_covers_… below).
                continue;
            }
            let Some(statements) = policy.get("Statement").and_then(Value::as_sequence) else {
                problems.push(format!(
                    "{function}: a policy that is not an inline Statement list (SAM policy templates grant more than the code needs): {policy:?}"
                ));
                continue;
            };
            for s in statements {
                if s["Effect"].as_str() != Some("Allow") {
                    continue;
                }
                let actions = strings(&s["Action"]);
                let targets = referenced(&s["Resource"]);
                for a in &actions {
                    if a.contains('*') {
                        problems.push(format!("{function}: wildcard action {a}"));
                    }
                }
                for t in &targets {
                    if t == "*" {
                        problems.push(format!("{function}: Resource \"*\""));
                        continue;
                    }
                    let k = kind(t);
                    for a in &actions {
                        let ok = match a.split(':').next() {
                            Some("dynamodb") => k == "AWS::DynamoDB::Table",
                            Some("sqs") => k == "AWS::SQS::Queue",
                            // Read only: no function writes, rotates or lists secrets.
                            Some("secretsmanager") => {
                                k == "AWS::SecretsManager::Secret"
                                    && a == "secretsmanager:GetSecretValue"
                            }
                            _ => false,
                        };
                        if !ok {
                            problems.push(format!("{function}: {a} on {t} ({k})"));
                        }
                    }
                    granted.insert(t.clone());
                }
            }
        }
        let mut fn_env = env.clone();
        env_targets(
            props.get("Environment").and_then(|e| e.get("Variables")),
            &mut fn_env,
        );
        let mut consumed = BTreeSet::new();
        if let Some(Value::Mapping(events)) = props.get("Events") {
            for e in events.values() {
                if e["Type"].as_str() == Some("SQS") {
                    consumed.extend(referenced(&e["Properties"]["Queue"]));
                }
            }
        }
        for q in &consumed {
            if !granted.contains(q) {
                problems.push(format!(
                    "{function}: consumes {q} without a statement for it"
                ));
            }
        }

        let declared: BTreeSet<String> = uses.iter().map(|s| s.to_string()).collect();
        if granted != declared {
            problems.push(format!(
                "{function}: policy grants {granted:?}, the reviewed uses are {declared:?}"
            ));
        }
        // Only tables, queues and secrets (not parameters such as LogLevel).
        fn_env.retain(|_, target| {
            matches!(
                kind(target).as_str(),
                "AWS::DynamoDB::Table" | "AWS::SQS::Queue" | "AWS::SecretsManager::Secret"
            )
        });
        let named = named_in_code(dir, &fields, &fn_env, &constants);
        for d in &declared {
            if !named.contains(d) && !consumed.contains(d) {
                problems.push(format!(
                    "{function}: {d} is granted but {dir} never names it (drop the grant?)"
                ));
            }
        }
        for n in &named {
            let excused = NAMED_BUT_UNUSED
                .iter()
                .any(|(f, t, _)| *f == function && t == n);
            if !declared.contains(n) && !excused {
                problems.push(format!(
                    "{function}: {dir} names {n}, which its policy does not grant"
                ));
            }
        }
        for (f, t, _) in NAMED_BUT_UNUSED {
            if f == function && !named.contains(t) {
                problems.push(format!("{function}: the exception for {t} is stale"));
            }
        }
        println!(
            "{function:<24} granted {:?}",
            granted.iter().collect::<Vec<_>>()
        );
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The template's resources of one type, by logical id.
fn of_type<'a>(resources: &'a serde_yaml::Mapping, kind: &str) -> BTreeMap<String, &'a Value> {
    resources
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some(kind))
        .map(|(k, r)| (k.as_str().unwrap().to_string(), r))
        .collect()
}

/// `!Ref X` or `!GetAtt X.Attr` -> X.
fn referenced_id(value: &Value) -> Option<String> {
    let Value::Tagged(tagged) = value else {
        return None;
    };
    let text = tagged.value.as_str()?;
    Some(text.split('.').next().unwrap().to_string())
}

#[test]
fn every_queue_function_and_table_is_operable() {
    let template: Value =
        serde_yaml::from_str(&std::fs::read_to_string(repo_path("template.yaml")).unwrap())
            .expect("template.yaml parses");
    let resources = template["Resources"].as_mapping().unwrap();
    let alarms = of_type(resources, "AWS::CloudWatch::Alarm");
    // (namespace, metric, the resource its dimension names) of every alarm that
    // notifies the alarm topic.
    let watched: BTreeSet<(String, String, String)> = alarms
        .values()
        .filter(|a| {
            a["Properties"]["AlarmActions"]
                .as_sequence()
                .is_some_and(|actions| {
                    actions
                        .iter()
                        .any(|x| referenced_id(x).as_deref() == Some("AlarmTopic"))
                })
        })
        // Metric-math alarms (the business ones) are checked below.
        .filter(|a| a["Properties"]["Namespace"].as_str().is_some())
        .flat_map(|a| {
            let p = &a["Properties"];
            let (ns, metric) = (
                p["Namespace"].as_str().unwrap(),
                p["MetricName"].as_str().unwrap(),
            );
            p["Dimensions"]
                .as_sequence()
                .into_iter()
                .flatten()
                .filter_map(|d| referenced_id(&d["Value"]))
                .map(|id| (ns.to_string(), metric.to_string(), id))
                .collect::<Vec<_>>()
        })
        .collect();
    let has = |ns: &str, metric: &str, id: &str| {
        watched.contains(&(ns.to_string(), metric.to_string(), id.to_string()))
    };

    let queues = of_type(resources, "AWS::SQS::Queue");
    let dlqs: BTreeSet<String> = queues
        .values()
        .filter_map(|q| referenced_id(&q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]))
        .collect();
    assert!(!dlqs.is_empty());
    for id in queues.keys() {
        if dlqs.contains(id) {
            assert!(
                has("AWS/SQS", "ApproximateNumberOfMessagesVisible", id),
                "{id}: no alarm on a message in the DLQ"
            );
        } else {
            assert!(
                queues[id]["Properties"]["RedrivePolicy"].is_mapping(),
                "{id}: a source queue without a DLQ"
            );
            assert!(
                has("AWS/SQS", "ApproximateAgeOfOldestMessage", id),
                "{id}: no alarm on its oldest message's age"
            );
        }
    }

    let functions = of_type(resources, "AWS::Serverless::Function");
    let log_groups = of_type(resources, "AWS::Logs::LogGroup");
    for (id, function) in &functions {
        assert!(has("AWS/Lambda", "Errors", id), "{id}: no error alarm");
        assert!(
            has("AWS/Lambda", "Throttles", id),
            "{id}: no throttle alarm"
        );
        let group = referenced_id(&function["Properties"]["LoggingConfig"]["LogGroup"])
            .unwrap_or_else(|| panic!("{id}: logs to Lambda's default group, which never expires"));
        assert!(
            log_groups.get(&group).is_some_and(|g| referenced_id(
                &g["Properties"]["RetentionInDays"]
            )
            .as_deref()
                == Some("LogRetentionDays")),
            "{id}: its log group {group} has no retention"
        );
    }
    for (id, rule) in [
        ("SlaSweeperFunction", "Every5Minutes"),
        ("BrandRankingFunction", "Nightly"),
    ] {
        assert_eq!(
            functions[id]["Properties"]["Events"][rule]["Type"].as_str(),
            Some("Schedule")
        );
        assert!(
            has("AWS/Events", "FailedInvocations", &format!("{id}{rule}")),
            "{id}: schedule not watched"
        );
    }

    // The business metrics the functions emit (EMF, Leads/<stack>): failed
    // deliveries, the SLA breach rate and the late ranking are alarmed on, and
    // every metric named in shared/aws/src/emf.rs is on the dashboard.
    let business: BTreeSet<String> = alarms
        .values()
        .filter(|a| {
            a["Properties"]["AlarmActions"]
                .as_sequence()
                .is_some_and(|actions| {
                    actions
                        .iter()
                        .any(|x| referenced_id(x).as_deref() == Some("AlarmTopic"))
                })
        })
        .flat_map(|a| {
            let p = &a["Properties"];
            let mut names: Vec<&Value> = vec![&p["MetricName"]];
            if let Some(metrics) = p["Metrics"].as_sequence() {
                names.extend(
                    metrics
                        .iter()
                        .map(|m| &m["MetricStat"]["Metric"]["MetricName"]),
                );
            }
            let emf = [&p["Namespace"]]
                .into_iter()
                .chain(
                    p["Metrics"]
                        .as_sequence()
                        .into_iter()
                        .flatten()
                        .map(|m| &m["MetricStat"]["Metric"]["Namespace"]),
                )
                .any(|ns| {
                    serde_yaml::to_string(ns)
                        .unwrap()
                        .contains("Leads/${AWS::StackName}")
                });
            names
                .into_iter()
                .filter(move |_| emf)
                .filter_map(|n| n.as_str().map(str::to_string))
                .collect::<Vec<_>>()
        })
        .collect();
    for metric in [
        "NotificationsFailed",
        "SlaBreaches",
        "LeadsCreated",
        "RankingBrandsCompleted",
    ] {
        assert!(
            business.contains(metric),
            "no alarm on {metric}: {business:?}"
        );
    }
    let emf_source = std::fs::read_to_string(repo_path("shared/aws/src/emf.rs")).unwrap();
    let emitted: Vec<&str> = emf_source
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub const "))
        .filter_map(|l| l.split('"').nth(1))
        .collect();
    assert!(emitted.len() >= 9, "{emitted:?}");
    let dashboards = of_type(resources, "AWS::CloudWatch::Dashboard");
    assert_eq!(dashboards.len(), 1);
    let body =
        serde_yaml::to_string(&dashboards.values().next().unwrap()["Properties"]["DashboardBody"])
            .unwrap();
    for metric in emitted {
        assert!(
            body.contains(&format!("\"{metric}\"")),
            "{metric} is not on the dashboard"
        );
    }
    for alarm in [
        "NotificationDeliveriesFailedAlarm",
        "SlaBreachRateAlarm",
        "RankingLateAlarm",
    ] {
        assert!(
            body.contains(&format!("${{{alarm}.Arn}}")),
            "{alarm} is not on the dashboard"
        );
    }

    // The secrets survive a stack deletion or a replacing update: every stored
    // dedup key derives from the phone-hash key.
    let secrets = of_type(resources, "AWS::SecretsManager::Secret");
    assert!(secrets.len() >= 4, "{:?}", secrets.keys());
    for (id, secret) in &secrets {
        assert_eq!(secret["DeletionPolicy"].as_str(), Some("Retain"), "{id}");
        assert_eq!(
            secret["UpdateReplacePolicy"].as_str(),
            Some("Retain"),
            "{id}"
        );
    }

    // Stateful tables survive a stack deletion or a replacing update and can be
    // restored; the expiring ones (idempotency, raw payloads) need not.
    for (id, table) in of_type(resources, "AWS::DynamoDB::Table") {
        if table["Properties"]["TimeToLiveSpecification"].is_mapping() && id != "AuditTable" {
            continue;
        }
        assert_eq!(table["DeletionPolicy"].as_str(), Some("Retain"), "{id}");
        assert_eq!(
            table["UpdateReplacePolicy"].as_str(),
            Some("Retain"),
            "{id}"
        );
        assert_eq!(
            table["Properties"]["DeletionProtectionEnabled"].as_bool(),
            Some(true),
            "{id}"
        );
        assert_eq!(
            table["Properties"]["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"]
                .as_bool(),
            Some(true),
            "{id}"
        );
    }
}

/// `!Ref <to>`.
fn is_ref(v: &Value, to: &str) -> bool {
    ref_target(v) == Some(to)
}

/// `!Ref X` -> X (not `!GetAtt`, not `!Sub`).
fn ref_target(v: &Value) -> Option<&str> {
    match v {
        Value::Tagged(t) if t.tag == "!Ref" => t.value.as_str(),
        _ => None,
    }
}

/// A resource's `Type` (`?` for an id the template does not have).
fn kind_of(resources: &serde_yaml::Mapping, id: &str) -> String {
    resources
        .get(id)
        .and_then(|r| r["Type"].as_str())
        .unwrap_or("?")
        .to_string()
}

fn template() -> Value {
    serde_yaml::from_str(&std::fs::read_to_string(repo_path("template.yaml")).unwrap())
        .expect("template.yaml parses")
}

/// With `KmsKeyArn` set (condition `HasKmsKey`), the customer-managed key encrypts
/// every table (`SSESpecification`), queue (`KmsMasterKeyId`) and secret
/// (`KmsKeyId`), and every function may use it, through those services only
/// (`KmsUsePolicy`, `kms:ViaService`); without it, nothing changes (AWS-owned or
/// managed keys). A resource type that holds data and is not covered here fails
/// the test until it is decided.
#[test]
fn customer_managed_key_covers_every_store_and_secret() {
    let template = template();
    let resources = template["Resources"].as_mapping().unwrap();
    let keyed = |v: &Value| if_has_kms_key(v).is_some_and(|then| is_ref(then, "KmsKeyArn"));

    let param = &template["Parameters"]["KmsKeyArn"];
    assert_eq!(param["Type"].as_str(), Some("String"));
    assert_eq!(
        param["Default"].as_str(),
        Some(""),
        "empty by default: AWS-managed keys"
    );
    // HasKmsKey: !Not [!Equals [!Ref KmsKeyArn, ""]]
    let has_kms_key = match &template["Conditions"]["HasKmsKey"] {
        Value::Tagged(not) if not.tag == "!Not" => {
            match not.value.as_sequence().map(Vec::as_slice) {
                Some([Value::Tagged(eq)]) if eq.tag == "!Equals" => {
                    matches!(eq.value.as_sequence().map(Vec::as_slice),
                    Some([r, Value::String(empty)]) if is_ref(r, "KmsKeyArn") && empty.is_empty())
                }
                _ => false,
            }
        }
        _ => false,
    };
    assert!(
        has_kms_key,
        "HasKmsKey is not !Not [!Equals [!Ref KmsKeyArn, \"\"]]"
    );

    let mut problems = Vec::new();
    // Types that hold data or configuration, and what covers them.
    let stores = [
        "AWS::DynamoDB::Table",
        "AWS::SQS::Queue",
        "AWS::SecretsManager::Secret",
    ];
    // Reviewed: no customer data here, or encrypted by the service without a key of ours.
    let not_keyed = [
        (
            "AWS::Serverless::Function",
            "no secret in the environment (no_secret_is_in_…)",
        ),
        ("AWS::Serverless::HttpApi", "holds nothing"),
        (
            "AWS::Logs::LogGroup",
            "CloudWatch Logs encrypts at rest; no phone is ever logged",
        ),
        ("AWS::SNS::Topic", "alarm notices only"),
        ("AWS::SNS::Subscription", "holds nothing"),
        ("AWS::CloudWatch::Alarm", "holds nothing"),
        ("AWS::CloudWatch::Dashboard", "holds nothing"),
        ("AWS::IAM::ManagedPolicy", "KmsUsePolicy itself"),
    ];
    let mut counts = BTreeMap::new();
    for (id, r) in resources {
        let id = id.as_str().unwrap();
        let kind = r["Type"].as_str().unwrap_or("?");
        let props = &r["Properties"];
        *counts.entry(kind).or_insert(0) += 1;
        match kind {
            "AWS::DynamoDB::Table" => {
                let sse = if_has_kms_key(&props["SSESpecification"]);
                let ok = sse.is_some_and(|s| {
                    s["SSEEnabled"].as_bool() == Some(true)
                        && s["SSEType"].as_str() == Some("KMS")
                        && is_ref(&s["KMSMasterKeyId"], "KmsKeyArn")
                });
                if !ok {
                    problems.push(format!(
                        "{id}: SSESpecification is not !If [HasKmsKey, {{SSEEnabled: true, SSEType: KMS, KMSMasterKeyId: !Ref KmsKeyArn}}, !Ref AWS::NoValue]"
                    ));
                }
            }
            "AWS::SQS::Queue" if !keyed(&props["KmsMasterKeyId"]) => problems.push(format!(
                "{id}: KmsMasterKeyId is not !If [HasKmsKey, !Ref KmsKeyArn, !Ref AWS::NoValue]"
            )),
            "AWS::SecretsManager::Secret" if !keyed(&props["KmsKeyId"]) => problems.push(format!(
                "{id}: KmsKeyId is not !If [HasKmsKey, !Ref KmsKeyArn, !Ref AWS::NoValue]"
            )),
            "AWS::Serverless::Function" => {
                let attached = props["Policies"]
                    .as_sequence()
                    .is_some_and(|p| p.iter().any(is_kms_use_policy));
                if !attached {
                    problems.push(format!(
                        "{id}: Policies lack !If [HasKmsKey, !Ref KmsUsePolicy, !Ref AWS::NoValue]"
                    ));
                }
            }
            k if stores.contains(&k) => {}
            k if not_keyed.iter().any(|(t, _)| *t == k) => {}
            k => problems.push(format!(
                "{id}: {k} is neither keyed nor reviewed as needing no key here"
            )),
        }
    }
    for kind in stores {
        assert!(
            counts.get(kind).copied().unwrap_or(0) > 0,
            "no {kind} at all?"
        );
    }

    // The key's use: decrypt and data keys, on that key, through the stores only.
    let policy = &template["Resources"]["KmsUsePolicy"];
    assert_eq!(policy["Type"].as_str(), Some("AWS::IAM::ManagedPolicy"));
    assert_eq!(policy["Condition"].as_str(), Some("HasKmsKey"));
    let statements = policy["Properties"]["PolicyDocument"]["Statement"]
        .as_sequence()
        .expect("KmsUsePolicy statements");
    assert_eq!(statements.len(), 1, "{statements:?}");
    let s = &statements[0];
    assert_eq!(s["Effect"].as_str(), Some("Allow"));
    let actions: BTreeSet<String> = strings(&s["Action"]).into_iter().collect();
    assert_eq!(
        actions,
        BTreeSet::from(["kms:Decrypt".to_string(), "kms:GenerateDataKey".to_string()])
    );
    assert!(is_ref(&s["Resource"], "KmsKeyArn"), "{:?}", s["Resource"]);
    let via = serde_yaml::to_string(&s["Condition"]["StringEquals"]["kms:ViaService"]).unwrap();
    for service in ["dynamodb", "sqs", "secretsmanager"] {
        assert!(
            via.contains(&format!("{service}.${{AWS::Region}}.${{AWS::URLSuffix}}")),
            "kms:ViaService lacks {service} in the stack's region: {via}"
        );
    }
    assert_eq!(
        via.matches("${AWS::Region}").count(),
        3,
        "only those three: {via}"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Reviewed: env var names that look secret by the rule below but hold none.
const NOT_SECRET: [(&str, &str); 1] = [(
    "SECRETS_TTL_SECONDS",
    "how long a read secret is reused, in seconds",
)];

/// Functions get their secrets' ids and read the values at run time
/// (`shared/aws/src/secrets.rs`); no secret value is in any function's
/// environment, where anyone with `lambda:GetFunctionConfiguration` reads it:
/// - no `{{resolve:` dynamic reference anywhere in the template, and no `NoEcho`
///   parameter (a secret passed in at deploy time);
/// - the rule for names: an env var (Globals or a function's own) one of whose
///   `_`-separated words is SECRET(S), KEY(S), TOKEN(S), PASSWORD, CREDENTIAL(S)
///   or APIKEY is either a secret's id — named `*_SECRET_ID`, its value exactly
///   `!Ref <an AWS::SecretsManager::Secret>` (the ARN), in the environment of a
///   function that reads it, not in Globals — or reviewed in `NOT_SECRET`;
/// - no other variable refers to a secret resource.
#[test]
fn no_secret_is_in_any_functions_environment() {
    let text = std::fs::read_to_string(repo_path("template.yaml")).unwrap();
    assert!(
        !text.contains("{{resolve:"),
        "a dynamic reference puts the resolved value into the template's resources"
    );
    let template = template();
    let resources = template["Resources"].as_mapping().unwrap();
    let kind = |id: &str| kind_of(resources, id);
    let mut problems = Vec::new();
    for (name, p) in template["Parameters"].as_mapping().unwrap() {
        if p["NoEcho"].as_bool() == Some(true) || p["NoEcho"].as_str() == Some("true") {
            problems.push(format!(
                "parameter {name:?} is NoEcho: a secret belongs in Secrets Manager"
            ));
        }
    }

    let secretish = |var: &str| {
        var.split('_').any(|w| {
            matches!(
                w,
                "SECRET"
                    | "SECRETS"
                    | "KEY"
                    | "KEYS"
                    | "TOKEN"
                    | "TOKENS"
                    | "PASSWORD"
                    | "CREDENTIAL"
                    | "CREDENTIALS"
                    | "APIKEY"
            )
        })
    };
    let mut environments: Vec<(String, &Value)> = vec![(
        "Globals".to_string(),
        &template["Globals"]["Function"]["Environment"]["Variables"],
    )];
    for (id, r) in resources {
        if r["Type"].as_str() == Some("AWS::Serverless::Function") {
            environments.push((
                id.as_str().unwrap().to_string(),
                &r["Properties"]["Environment"]["Variables"],
            ));
        }
    }
    let mut ids_seen = BTreeSet::new();
    for (owner, vars) in environments {
        let Some(vars) = vars.as_mapping() else {
            continue;
        };
        for (var, value) in vars {
            let var = var.as_str().unwrap();
            let targets = referenced(value);
            let names_secret = targets
                .iter()
                .any(|t| kind(t) == "AWS::SecretsManager::Secret");
            if var.ends_with("_SECRET_ID") {
                let is_secret_ref =
                    ref_target(value).is_some_and(|id| kind(id) == "AWS::SecretsManager::Secret");
                if !is_secret_ref {
                    problems.push(format!(
                        "{owner}: {var} is not !Ref of a secret (its ARN): {value:?}"
                    ));
                } else if owner == "Globals" {
                    problems.push(format!(
                        "Globals: {var}: a secret's id goes to the functions that read it only"
                    ));
                }
                if !SECRET_ID_VARS.contains(&var) {
                    problems.push(format!(
                        "{owner}: {var} is a secret id the code does not know (SECRET_ID_VARS)"
                    ));
                }
                ids_seen.insert(var.to_string());
                continue;
            }
            if names_secret {
                problems.push(format!(
                    "{owner}: {var} refers to a secret but is not a *_SECRET_ID id"
                ));
            }
            if secretish(var) && !NOT_SECRET.iter().any(|(n, _)| *n == var) {
                problems.push(format!(
                    "{owner}: {var} looks like a secret in the environment (read it at run time by id, or review it into NOT_SECRET)"
                ));
            }
        }
    }
    let expected: BTreeSet<String> = SECRET_ID_VARS.iter().map(|s| s.to_string()).collect();
    assert_eq!(ids_seen, expected, "every secret id reaches a function");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
