//! Daily per-dealer stats (the nightly ranking reads one small item per
//! dealer-day) and the tier the latest ranking gave a dealer.

use aws_sdk_dynamodb::types::AttributeValue;
use leads_domain::intake::ContentStats;
use leads_domain::routing::Tier;
use serde::Deserialize;

use super::item::from_item;
use crate::StoreError;

pub struct DynamoStats {
    client: aws_sdk_dynamodb::Client,
    stats_table: String,
    rankings_table: String,
}

impl DynamoStats {
    pub fn new(
        client: aws_sdk_dynamodb::Client,
        stats_table: impl Into<String>,
        rankings_table: impl Into<String>,
    ) -> Self {
        DynamoStats {
            client,
            stats_table: stats_table.into(),
            rankings_table: rankings_table.into(),
        }
    }

    /// Stores a day's content stats for a dealer. The platform sends day totals,
    /// so this SETs (a redelivery writes the same values) and leaves the lead
    /// counters on the same item alone.
    pub async fn put_content_stats(
        &self,
        dealer_id: &str,
        stats: &ContentStats,
    ) -> Result<(), StoreError> {
        let n = |v: u64| AttributeValue::N(v.to_string());
        self.client
            .update_item()
            .table_name(&self.stats_table)
            .key("pk", AttributeValue::S(format!("DEALER#{dealer_id}")))
            .key("sk", AttributeValue::S(format!("DAY#{}", stats.date)))
            .update_expression(
                "SET videos = :videos, live_sessions = :live_sessions, live_minutes = :live_minutes, \
                 plays = :plays, likes = :likes, comments = :comments, shares = :shares, \
                 completed_plays = :completed_plays, stats_account = :account",
            )
            .expression_attribute_values(":videos", n(stats.videos.into()))
            .expression_attribute_values(":live_sessions", n(stats.live_sessions.into()))
            .expression_attribute_values(":live_minutes", n(stats.live_minutes.into()))
            .expression_attribute_values(":plays", n(stats.plays))
            .expression_attribute_values(":likes", n(stats.likes))
            .expression_attribute_values(":comments", n(stats.comments))
            .expression_attribute_values(":shares", n(stats.shares))
            .expression_attribute_values(":completed_plays", n(stats.completed_plays))
            .expression_attribute_values(":account", AttributeValue::S(stats.platform_account.clone()))
            .send()
            .await
            .map_err(StoreError::dynamodb)?;
        Ok(())
    }

    /// The tier from the dealer's latest ranking snapshot, if it was ranked.
    pub async fn latest_tier(&self, dealer_id: &str) -> Result<Option<Tier>, StoreError> {
        #[derive(Deserialize)]
        struct Latest {
            tier: Option<Tier>,
        }
        let out = self
            .client
            .get_item()
            .table_name(&self.rankings_table)
            .key("pk", AttributeValue::S(format!("DEALER#{dealer_id}")))
            .key("sk", AttributeValue::S("LATEST".into()))
            .send()
            .await
            .map_err(StoreError::dynamodb)?;
        Ok(out
            .item
            .map(from_item::<Latest>)
            .transpose()?
            .and_then(|l| l.tier))
    }
}
