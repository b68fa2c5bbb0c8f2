//! Moving messages from a dead-letter queue back to the queue it serves, for
//! operators (`leadctl redrive`), where SQS's managed DLQ redrive is not offered
//! (the China regions) or not wanted.
//!
//! Each message is sent to the source queue first and deleted from the DLQ
//! after: a crash in between leaves a copy in both, and the consumers'
//! idempotency (the router's delivery marker, the notifier's delivery records)
//! absorbs the second copy. That holds only while those records live: a
//! message first sent longer ago than `max_age` (the idempotency retention) is
//! left in the DLQ and reported, unless the operator forces it.

use std::collections::HashSet;
use std::time::Duration;

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};

use crate::StoreError;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RedriveReport {
    /// Sent back to the source queue and deleted from the DLQ.
    pub moved: usize,
    /// Left in the DLQ: first sent before the idempotency records' retention.
    pub too_old: usize,
}

/// The DLQ URL of a source queue, from its redrive policy.
pub async fn dead_letter_queue_of(
    sqs: &aws_sdk_sqs::Client,
    source_url: &str,
) -> Result<String, StoreError> {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(source_url)
        .attribute_names(QueueAttributeName::RedrivePolicy)
        .send()
        .await
        .map_err(StoreError::sqs)?
        .attributes
        .unwrap_or_default();
    let policy = attributes
        .get(&QueueAttributeName::RedrivePolicy)
        .ok_or_else(|| StoreError::Malformed(format!("{source_url} has no redrive policy")))?;
    let policy: serde_json::Value =
        serde_json::from_str(policy).map_err(|e| StoreError::Malformed(e.to_string()))?;
    let arn = policy["deadLetterTargetArn"]
        .as_str()
        .ok_or_else(|| StoreError::Malformed("redrive policy without a DLQ".into()))?;
    // arn:<partition>:sqs:<region>:<account>:<name>
    let mut parts = arn.rsplit(':');
    let name = parts.next().unwrap_or_default();
    let account = parts.next().unwrap_or_default();
    let out = sqs
        .get_queue_url()
        .queue_name(name)
        .queue_owner_aws_account_id(account)
        .send()
        .await
        .map_err(StoreError::sqs)?;
    out.queue_url
        .ok_or_else(|| StoreError::Malformed(format!("no URL for {name}")))
}

/// Moves up to `max` messages from `dlq_url` to `source_url`; a message first
/// sent more than `max_age` ago stays unless `max_age` is `None` (forced).
pub async fn redrive(
    sqs: &aws_sdk_sqs::Client,
    dlq_url: &str,
    source_url: &str,
    max: usize,
    max_age: Option<Duration>,
) -> Result<RedriveReport, StoreError> {
    let mut report = RedriveReport::default();
    let mut seen = HashSet::new();
    let now_ms = chrono::Utc::now().timestamp_millis();
    while report.moved < max {
        let out = sqs
            .receive_message()
            .queue_url(dlq_url)
            .max_number_of_messages(10.min((max - report.moved) as i32).max(1))
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .message_attribute_names("All")
            // Long enough to send and delete; a message left behind comes back after.
            .visibility_timeout(60)
            .wait_time_seconds(1)
            .send()
            .await
            .map_err(StoreError::sqs)?;
        let messages = out.messages.unwrap_or_default();
        let fresh: Vec<_> = messages
            .into_iter()
            .filter(|m| seen.insert(m.message_id.clone().unwrap_or_default()))
            .collect();
        if fresh.is_empty() {
            break;
        }
        for message in fresh {
            let sent_ms = message
                .attributes
                .as_ref()
                .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
                .and_then(|t| t.parse::<i64>().ok())
                .unwrap_or(now_ms);
            if max_age.is_some_and(|age| now_ms - sent_ms > age.as_millis() as i64) {
                report.too_old += 1;
                continue;
            }
            sqs.send_message()
                .queue_url(source_url)
                .message_body(message.body.clone().unwrap_or_default())
                .set_message_attributes(message.message_attributes.clone())
                .send()
                .await
                .map_err(StoreError::sqs)?;
            sqs.delete_message()
                .queue_url(dlq_url)
                .receipt_handle(message.receipt_handle.clone().unwrap_or_default())
                .send()
                .await
                .map_err(StoreError::sqs)?;
            report.moved += 1;
            if report.moved == max {
                break;
            }
        }
    }
    Ok(report)
}
