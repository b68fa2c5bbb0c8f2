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
