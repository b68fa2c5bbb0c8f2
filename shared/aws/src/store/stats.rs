//! Daily per-dealer stats (the nightly ranking reads one small item per
//! dealer-day) and the tier the latest ranking gave a dealer.

use aws_sdk_dynamodb::types::AttributeValue;
use leads_domain::intake::ContentStats;
use leads_domain::routing::Tier;
use serde::Deserialize;

use super::item::from_item;
use crate::StoreError;

/// The sort key of one account's content stats for a day.
pub fn account_day_sk(date: chrono::NaiveDate, account: &str) -> String {
    format!("DAY#{date}#A#{account}")
}

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

    /// Stores one account's content stats for a day, on its own item
    /// (`DAY#<day>#A#<account>`): a dealer's several Douyin accounts each
    /// keep theirs (the ranking sums them), and the platform sends day
    /// totals, so this SETs every field: a redelivered or corrected report
    /// of the same account and day replaces the earlier one.
    pub async fn put_content_stats(
        &self,
        dealer_id: &str,
        stats: &ContentStats,
    ) -> Result<(), StoreError> {
        let n = |v: u64| AttributeValue::N(v.to_string());
        let sessions = stats
            .live_session_minutes
            .iter()
            .map(|m| n((*m).into()))
            .collect();
        self.client
            .update_item()
            .table_name(&self.stats_table)
            .key("pk", AttributeValue::S(format!("DEALER#{dealer_id}")))
            .key(
                "sk",
                AttributeValue::S(account_day_sk(stats.date, &stats.platform_account)),
            )
            .update_expression(
                "SET videos = :videos, live_sessions = :live_sessions, live_minutes = :live_minutes, \
                 live_session_minutes = :session_minutes, live_viewers = :live_viewers, \
                 live_follows = :live_follows, live_comments = :live_comments, live_shares = :live_shares, \
                 plays = :plays, likes = :likes, comments = :comments, shares = :shares, \
                 completed_plays = :completed_plays, stats_account = :account",
            )
            .expression_attribute_values(":videos", n(stats.videos.into()))
            .expression_attribute_values(":live_sessions", n(stats.live_sessions.into()))
            .expression_attribute_values(":live_minutes", n(stats.live_minutes.into()))
            .expression_attribute_values(":session_minutes", AttributeValue::L(sessions))
            .expression_attribute_values(":live_viewers", n(stats.live_viewers))
            .expression_attribute_values(":live_follows", n(stats.live_follows))
            .expression_attribute_values(":live_comments", n(stats.live_comments))
            .expression_attribute_values(":live_shares", n(stats.live_shares))
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
