//! Every table and queue the template declares exists in the local stack, and can be
//! written and read (tables) or sent to and received from (queues); every table has
//! the template's keys, indexes and TTL on whichever DynamoDB engine runs
//! (`LOCAL_DYNAMODB`); and the stack's contention mode conflicts as DynamoDB does.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::{AttributeValue, KeyType, TimeToLiveStatus};
use integration_tests::{contention_endpoint, repo_path, stack, unique};
use serde_yaml::Value;

/// `[(attribute, HASH|RANGE)]` of a template or DescribeTable key schema.
type Keys = Vec<(String, String)>;

fn template_keys(schema: &Value) -> Keys {
    schema
        .as_sequence()
        .unwrap()
        .iter()
        .map(|k| {
            let attr = k["AttributeName"].as_str().unwrap().to_string();
            (attr, k["KeyType"].as_str().unwrap().to_string())
        })
        .collect()
}

fn described_keys(schema: &[aws_sdk_dynamodb::types::KeySchemaElement]) -> Keys {
    schema
        .iter()
        .map(|k| (k.attribute_name.clone(), k.key_type.as_str().to_string()))
        .collect()
}

/// What the template declares per table, by the environment variable that names it:
/// (key schema, {index: (key schema, projection type)}, TTL attribute).
type Declared = BTreeMap<String, (Keys, BTreeMap<String, (Keys, String)>, Option<String>)>;

fn declared_tables() -> Declared {
    let text = std::fs::read_to_string(repo_path("template.yaml")).unwrap();
    let template: Value = serde_yaml::from_str(&text).unwrap();
    // The env var each table reaches the functions by (Globals: NAME: !Ref LogicalId).
    let globals = &template["Globals"]["Function"]["Environment"]["Variables"];
    let mut var_of = BTreeMap::new();
    for (var, value) in globals.as_mapping().unwrap() {
        if let Value::Tagged(tagged) = value {
            if let Some(logical) = tagged.value.as_str() {
                var_of.insert(logical.to_string(), var.as_str().unwrap().to_string());
            }
        }
    }
    let mut declared = Declared::new();
    for (logical, resource) in template["Resources"].as_mapping().unwrap() {
        if resource["Type"].as_str() != Some("AWS::DynamoDB::Table") {
            continue;
        }
        let logical = logical.as_str().unwrap();
        let props = &resource["Properties"];
        let mut indexes = BTreeMap::new();
        for kind in ["GlobalSecondaryIndexes", "LocalSecondaryIndexes"] {
            for index in props[kind].as_sequence().into_iter().flatten() {
                indexes.insert(
                    index["IndexName"].as_str().unwrap().to_string(),
                    (
                        template_keys(&index["KeySchema"]),
                        index["Projection"]["ProjectionType"]
                            .as_str()
                            .unwrap()
                            .to_string(),
                    ),
                );
            }
        }
        let ttl = props["TimeToLiveSpecification"]["AttributeName"]
            .as_str()
            .map(str::to_string);
        let var = var_of
            .get(logical)
            .unwrap_or_else(|| panic!("{logical}: no Globals variable names it"));
        declared.insert(
            var.clone(),
            (template_keys(&props["KeySchema"]), indexes, ttl),
        );
    }
    declared
}

#[tokio::test]
async fn every_table_has_the_templates_keys_indexes_and_ttl() {
    let Some(stack) = stack().await else { return };
    let db = &stack.clients.dynamodb;
    let declared = declared_tables();
    assert_eq!(declared.len(), 7, "the template's tables: {declared:?}");
    for (var, (keys, indexes, ttl)) in declared {
        let table = std::env::var(&var).unwrap_or_else(|_| panic!("{var} is not exported"));
        let described = db
            .describe_table()
            .table_name(&table)
            .send()
            .await
            .unwrap()
            .table
            .unwrap();
        assert_eq!(described_keys(described.key_schema()), keys, "{table}");
        let mut found = BTreeMap::new();
        for index in described.global_secondary_indexes() {
            let projection = index.projection().unwrap().projection_type().unwrap();
            found.insert(
                index.index_name().unwrap().to_string(),
                (
                    described_keys(index.key_schema()),
                    projection.as_str().to_string(),
                ),
            );
        }
        for index in described.local_secondary_indexes() {
            let projection = index.projection().unwrap().projection_type().unwrap();
            found.insert(
                index.index_name().unwrap().to_string(),
                (
                    described_keys(index.key_schema()),
                    projection.as_str().to_string(),
                ),
            );
        }
        assert_eq!(found, indexes, "{table}: indexes");
        let described_ttl = db
            .describe_time_to_live()
            .table_name(&table)
            .send()
            .await
            .unwrap()
            .time_to_live_description
            .unwrap();
        match ttl {
            Some(attribute) => {
                assert_eq!(
                    described_ttl.time_to_live_status,
                    Some(TimeToLiveStatus::Enabled),
                    "{table}"
                );
                assert_eq!(described_ttl.attribute_name, Some(attribute), "{table}");
            }
            None => assert_ne!(
                described_ttl.time_to_live_status,
                Some(TimeToLiveStatus::Enabled),
                "{table}: TTL on, but the template has none"
            ),
        }
    }
}

/// Contention mode: while one transaction holds an item, a second transaction
/// naming it is cancelled with `TransactionConflict` for that item (and `None`
/// for the others), and a plain write to it gets `TransactionConflictException`,
/// as DynamoDB does. Without the proxy both would simply succeed one after the
/// other (the engines serialise).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn contention_mode_conflicts_as_dynamodb_does() {
    use aws_sdk_dynamodb::error::ProvideErrorMetadata;
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};

    let Some(stack) = stack().await else { return };
    let table = stack.settings.tables.stats.clone();
    let contended = leads_aws::AwsClients::with_dynamodb_endpoint(&contention_endpoint()).await;
    let hot = unique("HOT");
    let key = |pk: &str| {
        [
            ("pk".to_string(), AttributeValue::S(pk.to_string())),
            ("sk".to_string(), AttributeValue::S("DAY".to_string())),
        ]
        .into_iter()
        .collect::<std::collections::HashMap<_, _>>()
    };
    let transaction = |other: String| {
        let db = contended.dynamodb.clone();
        let (table, hot) = (table.clone(), hot.clone());
        async move {
            db.transact_write_items()
                .transact_items(
                    TransactWriteItem::builder()
                        .put(
                            Put::builder()
                                .table_name(&table)
                                .set_item(Some(key(&other)))
                                .build()
                                .unwrap(),
                        )
                        .build(),
                )
                .transact_items(
                    TransactWriteItem::builder()
                        .update(
                            Update::builder()
                                .table_name(&table)
                                .set_key(Some(key(&hot)))
                                .update_expression("ADD n :one")
                                .expression_attribute_values(":one", AttributeValue::N("1".into()))
                                .build()
                                .unwrap(),
                        )
                        .build(),
                )
                .send()
                .await
        }
    };
    // Eight transactions at once on one hot item: the proxy holds each for
    // LOCAL_DDB_CONFLICT_MS, so at least one overlaps another and is cancelled.
    let outcomes =
        futures::future::join_all((0..8).map(|i| transaction(format!("{hot}-other-{i}")))).await;
    let mut committed = 0;
    let mut conflicted = 0;
    for outcome in outcomes {
        match outcome {
            Ok(_) => committed += 1,
            Err(e) => match e.into_service_error() {
                TransactWriteItemsError::TransactionCanceledException(c) => {
                    let codes: Vec<_> = c
                        .cancellation_reasons()
                        .iter()
                        .map(|r| r.code().unwrap_or_default().to_string())
                        .collect();
                    assert_eq!(codes, ["None", "TransactionConflict"]);
                    conflicted += 1;
                }
                other => panic!("unexpected error: {other:?}"),
            },
        }
    }
    assert!(committed >= 1, "no transaction committed");
    assert!(
        conflicted >= 1,
        "no transaction met a conflict: contention mode is off"
    );
    // The item counts exactly the committed transactions: a cancelled one wrote nothing.
    let item = stack
        .clients
        .dynamodb
        .get_item()
        .table_name(&table)
        .set_key(Some(key(&hot)))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(item["n"], AttributeValue::N(committed.to_string()));

    // A plain write to an item a transaction holds: once the proxy says a holder
    // is in its window, write (the window may close first on a busy machine, so
    // a few rounds).
    let mut plain_conflict = None;
    for round in 0..20 {
        let holder = tokio::spawn(transaction(format!("{hot}-holder-{round}")));
        while !holder.is_finished() && held_items().await == 0 {}
        let plain = contended
            .dynamodb
            .put_item()
            .table_name(&table)
            .set_item(Some(key(&hot)))
            .send()
            .await;
        let _ = holder.await.unwrap();
        if let Err(e) = plain {
            plain_conflict = Some(e.code().map(str::to_string));
            break;
        }
    }
    assert_eq!(
        plain_conflict,
        Some(Some("TransactionConflictException".to_string())),
        "a plain write to a held item must conflict"
    );
}

/// How many items the contention proxy's transactions hold right now.
async fn held_items() -> u64 {
    integration_tests::contention_stats().await["held_items"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn every_table_from_the_template_can_be_written_and_read() {
    let Some(stack) = stack().await else { return };
    let t = &stack.settings.tables;
    let db = &stack.clients.dynamodb;
    for table in [
        &t.directory,
        &t.leads,
        &t.idempotency,
        &t.raw_payload,
        &t.audit,
        &t.stats,
        &t.rankings,
    ] {
        let described = db.describe_table().table_name(table).send().await.unwrap();
        let schema = described.table.unwrap().key_schema.unwrap();
        let mut key = std::collections::HashMap::new();
        for k in &schema {
            let value = match k.key_type {
                KeyType::Hash => unique("probe"),
                _ => "PROBE".to_string(),
            };
            key.insert(k.attribute_name.clone(), AttributeValue::S(value));
        }
        let mut item = key.clone();
        item.insert("payload".into(), AttributeValue::S("hello".into()));
        db.put_item()
            .table_name(table)
            .set_item(Some(item))
            .send()
            .await
            .unwrap_or_else(|e| panic!("put into {table}: {e:?}"));
        let got = db
            .get_item()
            .table_name(table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
            .unwrap_or_else(|| panic!("{table}: item not read back"));
        assert_eq!(got["payload"], AttributeValue::S("hello".into()));
    }
}

#[tokio::test]
async fn expiring_tables_have_ttl_enabled() {
    let Some(stack) = stack().await else { return };
    let t = &stack.settings.tables;
    for table in [&t.idempotency, &t.raw_payload, &t.audit] {
        let ttl = stack
            .clients
            .dynamodb
            .describe_time_to_live()
            .table_name(table)
            .send()
            .await
            .unwrap()
            .time_to_live_description
            .unwrap();
        assert_eq!(
            ttl.time_to_live_status,
            Some(TimeToLiveStatus::Enabled),
            "{table}"
        );
        assert_eq!(ttl.attribute_name.as_deref(), Some("expires_at"), "{table}");
    }
}

#[tokio::test]
async fn every_queue_from_the_template_delivers_and_has_a_dead_letter_queue() {
    let Some(stack) = stack().await else { return };
    let q = &stack.settings.queues;
    let sqs = &stack.clients.sqs;
    // The ranking fan-out queue is brand-ranking's own variable, not a Global.
    let ranking =
        std::env::var("RANKING_QUEUE_URL").expect("RANKING_QUEUE_URL from the local stack");
    for url in [&q.lead, &q.notification, &q.crm, &ranking] {
        let body = unique("probe");
        sqs.send_message()
            .queue_url(url)
            .message_body(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("send to {url}: {e:?}"));
        // Other tests share the queue: receive until our probe shows up.
        let mut found = false;
        for _ in 0..20 {
            let out = sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .unwrap();
            for m in out.messages.unwrap_or_default() {
                if m.body.as_deref() == Some(body.as_str()) {
                    found = true;
                    sqs.delete_message()
                        .queue_url(url)
                        .receipt_handle(m.receipt_handle.unwrap())
                        .send()
                        .await
                        .unwrap();
                }
            }
            if found {
                break;
            }
        }
        assert!(found, "{url}: probe not received");

        let attrs = sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap_or_default();
        let redrive = attrs
            .get(&aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy)
            .unwrap_or_else(|| panic!("{url}: no redrive policy"));
        let redrive: serde_json::Value = serde_json::from_str(redrive).unwrap();
        assert!(redrive["deadLetterTargetArn"]
            .as_str()
            .unwrap()
            .contains("DeadLetter"));
    }
}

/// `leadctl redrive`'s core: dead letters go back to their source queue once,
/// a second run moves nothing, and letters older than the idempotency retention
/// stay in the DLQ.
#[tokio::test]
async fn redrive_moves_dead_letters_back_once_and_keeps_the_old_ones() {
    use aws_sdk_sqs::types::MessageAttributeValue;
    use leads_aws::store::redrive::{dead_letter_queue_of, redrive, RedriveReport};
    use std::time::Duration;

    let Some(stack) = stack().await else { return };
    let sqs = &stack.clients.sqs;
    // The template's own wiring: the lead queue's DLQ is found from its policy.
    let lead_dlq = dead_letter_queue_of(sqs, &stack.settings.queues.lead)
        .await
        .unwrap();
    assert!(lead_dlq.contains("LeadDeadLetterQueue"), "{lead_dlq}");

    // A scratch pair, so nobody else's messages are moved.
    let (source, dlq) =
        integration_tests::scratch_queue_with_dlq(sqs, "redrive-source", None, 5).await;
    assert_eq!(dead_letter_queue_of(sqs, &source).await.unwrap(), dlq);
    let sent: Vec<String> = (0..3).map(|i| format!("dead letter {i}")).collect();
    for body in &sent {
        sqs.send_message()
            .queue_url(&dlq)
            .message_body(body)
            .message_attributes(
                "kind",
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value("job")
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    }
    let day = Some(Duration::from_secs(86_400));
    let first = redrive(sqs, &dlq, &source, 2, day).await.unwrap();
    assert_eq!(
        first,
        RedriveReport {
            moved: 2,
            too_old: 0
        }
    );
    let second = redrive(sqs, &dlq, &source, 10, day).await.unwrap();
    assert_eq!(
        second,
        RedriveReport {
            moved: 1,
            too_old: 0
        }
    );
    let third = redrive(sqs, &dlq, &source, 10, day).await.unwrap();
    assert_eq!(third, RedriveReport::default(), "nothing left to move");

    let mut received = Vec::new();
    for _ in 0..5 {
        let out = sqs
            .receive_message()
            .queue_url(&source)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        for m in out.messages.unwrap_or_default() {
            let kind = m.message_attributes.as_ref().and_then(|a| a.get("kind"));
            assert_eq!(
                kind.and_then(|k| k.string_value()),
                Some("job"),
                "attributes kept"
            );
            received.push(m.body.unwrap());
        }
        if received.len() >= sent.len() {
            break;
        }
    }
    received.sort();
    assert_eq!(received, sent, "each dead letter back exactly once");

    // Older than the retention: left where it is.
    sqs.send_message()
        .queue_url(&dlq)
        .message_body("too old")
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let old = redrive(sqs, &dlq, &source, 10, Some(Duration::from_secs(1)))
        .await
        .unwrap();
    assert_eq!(
        old,
        RedriveReport {
            moved: 0,
            too_old: 1
        }
    );
    let forced = redrive(sqs, &dlq, &source, 10, None).await;
    // Invisible for a minute after the first look: the forced run finds nothing yet.
    assert_eq!(forced.unwrap().moved, 0);
}

/// The dealer index projects exactly what a lead list shows
/// (`leads_domain::lead_list::PROJECTED`): a field added to one and not the
/// other would be silently missing from every list.
#[test]
fn the_dealer_index_projects_the_lead_summary() {
    let text = std::fs::read_to_string(repo_path("template.yaml")).unwrap();
    let template: Value = serde_yaml::from_str(&text).unwrap();
    let index = template["Resources"]["LeadsTable"]["Properties"]["GlobalSecondaryIndexes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|i| i["IndexName"].as_str() == Some("by_dealer"))
        .expect("by_dealer is declared");
    let mut projected: Vec<&str> = index["Projection"]["NonKeyAttributes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    projected.sort();
    let mut summary = leads_domain::lead_list::PROJECTED.to_vec();
    summary.sort();
    assert_eq!(projected, summary);
    // And the summary type has those fields and no other.
    let example = serde_json::to_value(leads_domain::lead_list::LeadSummary {
        lead_id: "L".into(),
        status: leads_domain::lead::LeadStatus::Assigned,
        assignee: Some("s".into()),
        phone_masked: Some("138****5678".into()),
        customer_city: None,
        series_interest: vec![],
        first_touch: serde_json::from_value(serde_json::json!({"platform": "douyin",
            "account_id": "a", "scene": "live", "traffic": "natural",
            "at": "2026-12-01T00:00:00Z", "source_event_id": "e"}))
        .unwrap(),
        touchpoints: 1,
        received_at: chrono::Utc::now(),
        first_contact_due: Some(chrono::Utc::now()),
        contacted_at: Some(chrono::Utc::now()),
        valid: Some(true),
        close_reason: Some("price".into()),
        intent: Some(leads_domain::followup::Intent::H),
        next_follow_up_at: Some(chrono::Utc::now()),
        route: Some(leads_domain::routing::Route::Local {
            dealer_id: "d".into(),
        }),
        account_dealer: Some("d".into()),
        milestones: vec![leads_domain::lead::Milestone {
            kind: leads_domain::lead::MilestoneKind::Invited,
            at: chrono::Utc::now(),
        }],
    })
    .unwrap();
    let mut fields: Vec<&str> = example
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .filter(|f| *f != "customer_city")
        .collect();
    fields.push("customer_city");
    fields.sort();
    assert_eq!(fields, summary);
}

/// Every route the API function serves is routed to it by the HTTP API
/// (`{proxy+}` matches one or more segments, not the bare path: `GET /leads`
/// needs its own event). A route the API gains must be added to both.
#[test]
fn the_http_api_routes_every_api_path_to_the_function() {
    let text = std::fs::read_to_string(repo_path("template.yaml")).unwrap();
    let template: Value = serde_yaml::from_str(&text).unwrap();
    let events = template["Resources"]["ApiFunction"]["Properties"]["Events"]
        .as_mapping()
        .expect("the api function has events");
    let routes: Vec<(String, String)> = events
        .values()
        .map(|e| {
            (
                e["Properties"]["Method"].as_str().unwrap().to_uppercase(),
                e["Properties"]["Path"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let routed = |method: &str, path: &str| {
        routes.iter().any(|(m, p)| {
            let method_ok = m == "ANY" || m == method;
            let path_ok = match p.strip_suffix("/{proxy+}") {
                Some(prefix) => path
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.len() > 1 && rest.starts_with('/')),
                None => p == path,
            };
            method_ok && path_ok
        })
    };
    for (method, path) in [
        ("GET", "/leads"),
        ("GET", "/leads/export.csv"),
        ("GET", "/leads/L1"),
        ("GET", "/leads/L1/audit"),
        ("GET", "/leads/L1/timeline"),
        ("POST", "/leads/L1/events"),
        ("POST", "/leads/L1/transfer"),
        ("POST", "/leads/L1/handoff"),
        ("POST", "/staff/s1/handover"),
        ("PUT", "/staff/s1/duty"),
        ("PUT", "/staff/s1/leave"),
        ("GET", "/brands/b1/metrics"),
        ("GET", "/brands/b1/metrics/export.csv"),
        ("GET", "/rankings/b1/latest"),
        ("GET", "/rankings/b1/latest/dealers/d1"),
        ("GET", "/rankings/page"),
    ] {
        assert!(
            routed(method, path),
            "{method} {path} is not routed to the api function"
        );
    }
    // And nothing routes /admin (tokens are issued by direct invoke only).
    assert!(!routed("POST", "/admin/tokens"));
}
