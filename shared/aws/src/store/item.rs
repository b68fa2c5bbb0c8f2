//! Items are domain records plus their key attributes, converted by `serde_dynamo`
//! (no hand-built attribute maps).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::StoreError;

pub type Item = HashMap<String, AttributeValue>;

/// Key attributes of a single-table item; GSI keys are optional (sparse indexes).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Keys {
    pub pk: String,
    pub sk: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gsi1pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gsi1sk: Option<String>,
}

impl Keys {
    pub fn new(pk: impl Into<String>, sk: impl Into<String>) -> Self {
        Keys {
            pk: pk.into(),
            sk: sk.into(),
            ..Keys::default()
        }
    }

    pub fn with_gsi1(mut self, pk: impl Into<String>, sk: impl Into<String>) -> Self {
        self.gsi1pk = Some(pk.into());
        self.gsi1sk = Some(sk.into());
        self
    }

    /// Just the primary key, for GetItem/DeleteItem.
    pub fn primary(&self) -> Item {
        HashMap::from([
            ("pk".to_string(), AttributeValue::S(self.pk.clone())),
            ("sk".to_string(), AttributeValue::S(self.sk.clone())),
        ])
    }
}

#[derive(Serialize)]
struct Keyed<'a, T> {
    #[serde(flatten)]
    keys: &'a Keys,
    #[serde(flatten)]
    record: &'a T,
}

/// A record with its keys, as a DynamoDB item.
pub fn to_item<T: Serialize>(keys: &Keys, record: &T) -> Result<Item, StoreError> {
    Ok(serde_dynamo::to_item(Keyed { keys, record })?)
}

/// A record from an item; key attributes are ignored.
pub fn from_item<T: DeserializeOwned>(item: Item) -> Result<T, StoreError> {
    Ok(serde_dynamo::from_item(item)?)
}

/// Writes items in batches of 25, retrying what DynamoDB leaves unprocessed
/// (with backoff); fails if some are still unprocessed after 8 attempts.
pub async fn batch_put(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    items: Vec<Item>,
) -> Result<(), StoreError> {
    use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
    for chunk in items.chunks(25) {
        let mut pending: Vec<WriteRequest> = chunk
            .iter()
            .map(|item| {
                let put = PutRequest::builder()
                    .set_item(Some(item.clone()))
                    .build()
                    .expect("item is set");
                WriteRequest::builder().put_request(put).build()
            })
            .collect();
        for attempt in 0..8u32 {
            let out = client
                .batch_write_item()
                .request_items(table, pending)
                .send()
                .await
                .map_err(StoreError::dynamodb)?;
            pending = out
                .unprocessed_items
                .and_then(|mut m| m.remove(table))
                .unwrap_or_default();
            if pending.is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25 << attempt)).await;
        }
        if !pending.is_empty() {
            return Err(StoreError::Service {
                service: "dynamodb",
                message: format!("{} items left unprocessed after 8 attempts", pending.len()),
            });
        }
    }
    Ok(())
}
