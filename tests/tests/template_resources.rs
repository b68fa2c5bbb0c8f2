//! Every table and queue the template declares exists in the emulator, and can be
//! written and read (tables) or sent to and received from (queues).

use aws_sdk_dynamodb::types::{AttributeValue, KeyType, TimeToLiveStatus};
use integration_tests::{stack, unique};

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
