//! Raw accepted webhook bodies, kept with a TTL so a lead can be traced back to
//! exactly what the platform sent.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::StoreError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawPayload {
    /// The lead's `raw_payload_ref`.
    pub pk: String,
    pub source: String,
    pub received_at: DateTime<Utc>,
    /// The body as received (UTF-8 checked by the caller; WeCom bodies are ciphertext).
    pub body: String,
    pub expires_at: i64,
}

#[allow(async_fn_in_trait)]
pub trait RawPayloadStore {
    async fn put(&self, payload: &RawPayload) -> Result<(), StoreError>;
    async fn get(&self, reference: &str) -> Result<Option<RawPayload>, StoreError>;
}

pub struct DynamoRawPayloads {
    client: aws_sdk_dynamodb::Client,
    table: String,
    pub retention: Duration,
}

impl DynamoRawPayloads {
    pub fn new(
        client: aws_sdk_dynamodb::Client,
        table: impl Into<String>,
        retention: Duration,
    ) -> Self {
        DynamoRawPayloads {
            client,
            table: table.into(),
            retention,
        }
    }

    pub fn payload(
        &self,
        reference: String,
        source: &str,
        body: String,
        received_at: DateTime<Utc>,
    ) -> RawPayload {
        RawPayload {
            pk: reference,
            source: source.to_string(),
            received_at,
            body,
            expires_at: received_at.timestamp() + self.retention.as_secs() as i64,
        }
    }
}

impl RawPayloadStore for DynamoRawPayloads {
    /// Overwrites: a retry stores the same body under the same reference.
    async fn put(&self, payload: &RawPayload) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(serde_dynamo::to_item(payload)?))
            .send()
            .await
            .map_err(StoreError::dynamodb)?;
        Ok(())
    }

    async fn get(&self, reference: &str) -> Result<Option<RawPayload>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(
                "pk",
                aws_sdk_dynamodb::types::AttributeValue::S(reference.to_string()),
            )
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::dynamodb)?;
        let payload: Option<RawPayload> = out.item.map(serde_dynamo::from_item).transpose()?;
        // TTL deletion lags (up to 48 h on AWS, never on the emulator): filter on read.
        Ok(payload.filter(|p| p.expires_at >= Utc::now().timestamp()))
    }
}
