//! SQS behind a small trait: send JSON messages, one at a time or in batches of 10.

use serde::Serialize;

use crate::StoreError;

#[allow(async_fn_in_trait)]
pub trait MessageQueue {
    /// Sends one message; returns the SQS message id.
    async fn send<T: Serialize + Sync>(&self, message: &T) -> Result<String, StoreError>;
    /// Sends all messages (batches of 10), retrying entries SQS refused;
    /// fails if any message could not be sent.
    async fn send_all<T: Serialize + Sync>(&self, messages: &[T]) -> Result<(), StoreError>;
}

#[derive(Clone)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl SqsQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        SqsQueue {
            client,
            url: url.into(),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn client(&self) -> &aws_sdk_sqs::Client {
        &self.client
    }

    /// Sends `body` as it is, with string message attributes (e.g. why a job
    /// was dead-lettered).
    pub async fn send_raw(
        &self,
        body: &str,
        attributes: &[(&str, &str)],
    ) -> Result<String, StoreError> {
        use aws_sdk_sqs::types::MessageAttributeValue;
        let mut send = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(body);
        for (name, value) in attributes {
            let value = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(*value)
                .build()
                .map_err(|e| StoreError::Malformed(e.to_string()))?;
            send = send.message_attributes(*name, value);
        }
        let out = send.send().await.map_err(StoreError::sqs)?;
        Ok(out.message_id.unwrap_or_default())
    }

    /// Sends one message that becomes visible after `delay` (SQS allows up to 15 min).
    pub async fn send_delayed<T: Serialize + Sync>(
        &self,
        message: &T,
        delay: std::time::Duration,
    ) -> Result<String, StoreError> {
        let body =
            serde_json::to_string(message).map_err(|e| StoreError::Malformed(e.to_string()))?;
        let out = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .delay_seconds(delay.as_secs().min(900) as i32)
            .send()
            .await
            .map_err(StoreError::sqs)?;
        Ok(out.message_id.unwrap_or_default())
    }
}

impl MessageQueue for SqsQueue {
    async fn send<T: Serialize + Sync>(&self, message: &T) -> Result<String, StoreError> {
        let body =
            serde_json::to_string(message).map_err(|e| StoreError::Malformed(e.to_string()))?;
        let out = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .send()
            .await
            .map_err(StoreError::sqs)?;
        Ok(out.message_id.unwrap_or_default())
    }

    async fn send_all<T: Serialize + Sync>(&self, messages: &[T]) -> Result<(), StoreError> {
        use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
        for chunk in messages.chunks(10) {
            let mut entries = Vec::with_capacity(chunk.len());
            for (i, m) in chunk.iter().enumerate() {
                let body =
                    serde_json::to_string(m).map_err(|e| StoreError::Malformed(e.to_string()))?;
                entries.push(
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(body)
                        .build()
                        .map_err(|e| StoreError::Malformed(e.to_string()))?,
                );
            }
            for attempt in 0..4u32 {
                let out = self
                    .client
                    .send_message_batch()
                    .queue_url(&self.url)
                    .set_entries(Some(entries.clone()))
                    .send()
                    .await
                    .map_err(StoreError::sqs)?;
                let failed: Vec<String> = out.failed.iter().map(|f| f.id.clone()).collect();
                if failed.is_empty() {
                    break;
                }
                if attempt == 3 {
                    return Err(StoreError::Service {
                        service: "sqs",
                        message: format!("{} messages refused after retries", failed.len()),
                    });
                }
                entries.retain(|e| failed.contains(&e.id));
                tokio::time::sleep(std::time::Duration::from_millis(50 << attempt)).await;
            }
        }
        Ok(())
    }
}
