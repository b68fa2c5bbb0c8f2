//! Nightly ranking snapshots (layout on `RankingsTable` in template.yaml) and
//! the daily stats window they are computed from (`StatsTable`).
//!
//! Items of one brand's snapshot for a date:
//!
//! | item | key |
//! |---|---|
//! | a ranked row (brand top N)   | `pk=RANKING#<brand>#<date>`, `sk=RANK#<000001>` |
//! | the snapshot's meta (written last: it marks the snapshot complete) | `pk=RANKING#<brand>#<date>`, `sk=META` |
//! | one dealer's position        | `pk=DEALER#<dealer>`, `sk=DATE#<date>` |
//! | a dealer's latest tier (read by the router) | `pk=DEALER#<dealer>`, `sk=LATEST` |
//! | the brand's latest ranked date | `pk=RANKING#<brand>`, `sk=LATEST` |
//!
//! Writing the same snapshot again puts the same items (no timestamps), so a
//! re-run of a date is idempotent.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, PutRequest, WriteRequest};
use chrono::NaiveDate;
use leads_domain::ranking::{
    AccountDay, LeadCounts, RankedDealer, RankingBasis, RankingSettings, Score, StatsItem,
    WindowTotals,
};
use leads_domain::routing::Tier;
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use super::item::{from_item, query_all, query_all_items, to_item, write_chunk, Item, Keys};
use crate::error::applied;
use crate::StoreError;

/// How far back the previous snapshot (for rank change) is looked for, so one
/// failed night does not blank every dealer's change.
pub const PREVIOUS_LOOK_BACK_DAYS: u64 = 7;

/// Highest rank the zero-padded sort key holds.
const MAX_RANK: u32 = 999_999;

/// A brand's ranking for one date, as computed (domain data plus where it came from).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub brand_id: String,
    pub date: NaiveDate,
    pub window_from: NaiveDate,
    pub window_to: NaiveDate,
    pub basis: RankingBasis,
    /// The snapshot rank changes are measured against, if any.
    pub previous_date: Option<NaiveDate>,
    pub dealers: Vec<RankedDealer>,
}

/// The snapshot's header (`sk=META`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    pub brand_id: String,
    pub date: NaiveDate,
    pub window_from: NaiveDate,
    pub window_to: NaiveDate,
    pub basis: RankingBasis,
    pub previous_date: Option<NaiveDate>,
    /// Dealers ranked.
    pub dealers: u32,
}

/// One row of a brand's ranking: what any staff member of the brand may see.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankRow {
    pub rank: u32,
    pub dealer_id: String,
    pub name: String,
    pub tier: Tier,
    pub score: Score,
    /// The natural leads scored (Douyin's; plus the brand's opt-ins).
    pub natural_leads: u64,
    /// Shown beside them, scored only where the brand opts in.
    #[serde(default)]
    pub wecom_leads: u64,
    #[serde(default)]
    pub vertical_leads: u64,
    pub previous_rank: Option<u32>,
    pub rank_change: Option<i64>,
}

/// One dealer's position with its components (`pk=DEALER#<d>, sk=DATE#<date>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DealerPosition {
    pub brand_id: String,
    pub date: NaiveDate,
    /// Dealers ranked in the brand that day.
    pub dealers: u32,
    pub dealer: RankedDealer,
}

/// The dealer's latest ranking (`sk=LATEST`); the router reads `tier`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct LatestItem {
    brand_id: String,
    date: NaiveDate,
    tier: Tier,
    rank: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct BrandLatest {
    date: NaiveDate,
}

/// What writing a snapshot did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub items: usize,
    /// Rows of an earlier run of this date beyond today's dealer count, removed.
    pub stale_rows_deleted: usize,
    /// Whether `date` is the brand's newest, so dealers' LATEST tiers moved to it.
    pub latest_updated: bool,
    pub batch_requests: usize,
}

mod keys {
    use super::*;

    pub fn partition(brand_id: &str, date: NaiveDate) -> String {
        format!("RANKING#{brand_id}#{date}")
    }
    pub fn rank_sk(rank: u32) -> String {
        format!("RANK#{rank:06}")
    }
    pub fn row(brand_id: &str, date: NaiveDate, rank: u32) -> Keys {
        Keys::new(partition(brand_id, date), rank_sk(rank))
    }
    pub fn meta(brand_id: &str, date: NaiveDate) -> Keys {
        Keys::new(partition(brand_id, date), "META")
    }
    pub fn position(dealer_id: &str, date: NaiveDate) -> Keys {
        Keys::new(format!("DEALER#{dealer_id}"), format!("DATE#{date}"))
    }
    pub fn latest(dealer_id: &str) -> Keys {
        Keys::new(format!("DEALER#{dealer_id}"), "LATEST")
    }
    pub fn brand_latest(brand_id: &str) -> Keys {
        Keys::new(format!("RANKING#{brand_id}"), "LATEST")
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

#[derive(Clone)]
pub struct DynamoRankings {
    client: aws_sdk_dynamodb::Client,
    stats_table: String,
    rankings_table: String,
}

impl DynamoRankings {
    pub fn new(
        client: aws_sdk_dynamodb::Client,
        stats_table: impl Into<String>,
        rankings_table: impl Into<String>,
    ) -> Self {
        DynamoRankings {
            client,
            stats_table: stats_table.into(),
            rankings_table: rankings_table.into(),
        }
    }

    /// A dealer's stats items from `from` to `to` (both included): its
    /// accounts' content stats, lead-counter shards and natural-lead markers,
    /// in one Query (paginated past 1 MB).
    pub async fn dealer_days(
        &self,
        dealer_id: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<StatsItem>, StoreError> {
        dealer_days(&self.client, &self.stats_table, dealer_id, from, to).await
    }

    /// Lead ids of the brand's leads marked invalid that were received from
    /// `from` to `to` (one Query, paginated).
    pub async fn invalid_leads(
        &self,
        brand_id: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<HashSet<String>, StoreError> {
        let items = query_all_items(
            self.client
                .query()
                .table_name(&self.stats_table)
                .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
                .expression_attribute_values(":pk", s(format!("INVALID#{brand_id}")))
                .expression_attribute_values(":from", s(from.to_string()))
                .expression_attribute_values(":to", s(format!("{to}#~")))
                .projection_expression("lead_id"),
        )
        .await?;
        Ok(items
            .into_iter()
            .filter_map(|i| i.get("lead_id")?.as_s().ok().cloned())
            .collect())
    }

    /// Window totals of each dealer (same order as `dealer_ids`), with up to
    /// `concurrency` Queries in flight; `invalid` are the brand's leads
    /// marked invalid (subtracted).
    pub async fn window_totals(
        &self,
        dealer_ids: &[String],
        (from, to): (NaiveDate, NaiveDate),
        invalid: Arc<HashSet<String>>,
        settings: RankingSettings,
        concurrency: usize,
    ) -> Result<Vec<WindowTotals>, StoreError> {
        let mut totals = vec![WindowTotals::default(); dealer_ids.len()];
        let mut tasks = JoinSet::new();
        let mut next = 0;
        loop {
            while next < dealer_ids.len() && tasks.len() < concurrency.max(1) {
                let (client, table, id) = (
                    self.client.clone(),
                    self.stats_table.clone(),
                    dealer_ids[next].clone(),
                );
                let index = next;
                let invalid = invalid.clone();
                tasks.spawn(async move {
                    let items = dealer_days(&client, &table, &id, from, to).await?;
                    let totals = WindowTotals::of_items(&items, &invalid, &settings);
                    Ok::<_, StoreError>((index, totals))
                });
                next += 1;
            }
            match tasks.join_next().await {
                // An error drops `tasks`, which aborts the queries still running.
                Some(joined) => {
                    let (index, t) = joined.map_err(join_error)??;
                    totals[index] = t;
                }
                None => return Ok(totals),
            }
        }
    }

    /// The snapshot header of a brand and date, if that snapshot is complete.
    pub async fn meta(
        &self,
        brand_id: &str,
        date: NaiveDate,
    ) -> Result<Option<SnapshotMeta>, StoreError> {
        self.get(keys::meta(brand_id, date)).await
    }

    /// The latest complete snapshot within [`PREVIOUS_LOOK_BACK_DAYS`] before
    /// `date`, as dealer id -> rank.
    pub async fn previous_ranks(
        &self,
        brand_id: &str,
        date: NaiveDate,
    ) -> Result<Option<(NaiveDate, HashMap<String, u32>)>, StoreError> {
        for back in 1..=PREVIOUS_LOOK_BACK_DAYS {
            let day = date - chrono::Days::new(back);
            if let Some(meta) = self.meta(brand_id, day).await? {
                let rows = self.rows(brand_id, day, meta.dealers.min(MAX_RANK)).await?;
                let ranks = rows.into_iter().map(|r| (r.dealer_id, r.rank)).collect();
                return Ok(Some((day, ranks)));
            }
        }
        Ok(None)
    }

    /// Ranks 1..=`top` of a brand's snapshot (fewer if fewer were ranked).
    pub async fn rows(
        &self,
        brand_id: &str,
        date: NaiveDate,
        top: u32,
    ) -> Result<Vec<RankRow>, StoreError> {
        if top == 0 {
            return Ok(Vec::new());
        }
        query_all(
            self.client
                .query()
                .table_name(&self.rankings_table)
                .key_condition_expression("pk = :pk AND sk BETWEEN :first AND :last")
                .expression_attribute_values(":pk", s(keys::partition(brand_id, date)))
                .expression_attribute_values(":first", s(keys::rank_sk(1)))
                .expression_attribute_values(":last", s(keys::rank_sk(top.min(MAX_RANK)))),
        )
        .await
    }

    /// One dealer's position on a date.
    pub async fn position(
        &self,
        dealer_id: &str,
        date: NaiveDate,
    ) -> Result<Option<DealerPosition>, StoreError> {
        self.get(keys::position(dealer_id, date)).await
    }

    /// The newest date a brand was ranked for.
    pub async fn latest_date(&self, brand_id: &str) -> Result<Option<NaiveDate>, StoreError> {
        Ok(self
            .get::<BrandLatest>(keys::brand_latest(brand_id))
            .await?
            .map(|l| l.date))
    }

    /// Writes a brand's snapshot: rows and positions, then removes rows an
    /// earlier run of the same date left beyond today's count, then the meta
    /// (which marks it complete), then - only if `date` is the brand's newest -
    /// every dealer's LATEST and the brand's latest date. `concurrency`
    /// BatchWriteItem calls are in flight at once.
    pub async fn write_snapshot(
        &self,
        snapshot: &Snapshot,
        concurrency: usize,
    ) -> Result<Written, StoreError> {
        let (brand, date) = (snapshot.brand_id.as_str(), snapshot.date);
        let ranked = u32::try_from(snapshot.dealers.len())
            .ok()
            .filter(|n| *n <= MAX_RANK)
            .ok_or_else(|| {
                StoreError::Malformed(format!("{brand}: more dealers than ranks fit in a key"))
            })?;
        let mut puts = Vec::with_capacity(snapshot.dealers.len() * 2);
        for d in &snapshot.dealers {
            let row = RankRow {
                rank: d.rank,
                dealer_id: d.dealer_id.clone(),
                name: d.name.clone(),
                tier: d.tier,
                score: d.score,
                natural_leads: d.natural_leads,
                wecom_leads: d.totals.wecom_leads,
                vertical_leads: d.totals.vertical_leads,
                previous_rank: d.previous_rank,
                rank_change: d.rank_change,
            };
            puts.push(to_item(&keys::row(brand, date, d.rank), &row)?);
            let position = DealerPosition {
                brand_id: brand.to_string(),
                date,
                dealers: ranked,
                dealer: d.clone(),
            };
            puts.push(to_item(&keys::position(&d.dealer_id, date), &position)?);
        }
        let items = puts.len();
        let mut batch_requests = self
            .batch_write(puts.into_iter().map(put), concurrency)
            .await?;

        let stale = self.stale_rows(brand, date, ranked).await?;
        let stale_rows_deleted = stale.len();
        batch_requests += self
            .batch_write(stale.into_iter().map(delete), concurrency)
            .await?;

        let meta = SnapshotMeta {
            brand_id: brand.to_string(),
            date,
            window_from: snapshot.window_from,
            window_to: snapshot.window_to,
            basis: snapshot.basis.clone(),
            previous_date: snapshot.previous_date,
            dealers: ranked,
        };
        self.put(to_item(&keys::meta(brand, date), &meta)?).await?;

        let latest_updated = self.latest_date(brand).await?.is_none_or(|l| l <= date);
        if latest_updated {
            let latest = snapshot
                .dealers
                .iter()
                .map(|d| {
                    let item = LatestItem {
                        brand_id: brand.to_string(),
                        date,
                        tier: d.tier,
                        rank: d.rank,
                    };
                    to_item(&keys::latest(&d.dealer_id), &item).map(put)
                })
                .collect::<Result<Vec<_>, _>>()?;
            batch_requests += self.batch_write(latest, concurrency).await?;
            self.advance_brand_latest(brand, date).await?;
        }
        Ok(Written {
            items: items
                + 1
                + if latest_updated {
                    snapshot.dealers.len()
                } else {
                    0
                },
            stale_rows_deleted,
            latest_updated,
            batch_requests,
        })
    }

    /// Keys of rows ranked below `ranked` (left by an earlier, larger run).
    async fn stale_rows(
        &self,
        brand_id: &str,
        date: NaiveDate,
        ranked: u32,
    ) -> Result<Vec<Item>, StoreError> {
        if ranked >= MAX_RANK {
            return Ok(Vec::new());
        }
        self.client
            .query()
            .table_name(&self.rankings_table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :first AND :last")
            .expression_attribute_values(":pk", s(keys::partition(brand_id, date)))
            .expression_attribute_values(":first", s(keys::rank_sk(ranked + 1)))
            .expression_attribute_values(":last", s(keys::rank_sk(MAX_RANK)))
            .projection_expression("pk, sk")
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(StoreError::dynamodb)
    }

    /// Moves the brand's latest date forward (never back: a re-run of an
    /// older date must not win over a newer one).
    async fn advance_brand_latest(
        &self,
        brand_id: &str,
        date: NaiveDate,
    ) -> Result<(), StoreError> {
        let item = to_item(&keys::brand_latest(brand_id), &BrandLatest { date })?;
        let result = self
            .client
            .put_item()
            .table_name(&self.rankings_table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR #date <= :date")
            .expression_attribute_names("#date", "date")
            .expression_attribute_values(":date", s(date.to_string()))
            .send()
            .await;
        // A failed condition: a newer date was ranked meanwhile and keeps LATEST.
        applied(result).map(|_| ())
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        keys: Keys,
    ) -> Result<Option<T>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.rankings_table)
            .set_key(Some(keys.primary()))
            .send()
            .await
            .map_err(StoreError::dynamodb)?;
        out.item.map(from_item).transpose()
    }

    async fn put(&self, item: Item) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.rankings_table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(StoreError::dynamodb)?;
        Ok(())
    }

    /// BatchWriteItem in chunks of 25, `concurrency` chunks in flight, each
    /// retrying what DynamoDB leaves unprocessed. Returns the requests made.
    async fn batch_write(
        &self,
        requests: impl IntoIterator<Item = WriteRequest>,
        concurrency: usize,
    ) -> Result<usize, StoreError> {
        let requests: Vec<WriteRequest> = requests.into_iter().collect();
        let mut chunks = requests.chunks(25).map(<[WriteRequest]>::to_vec);
        let mut tasks = JoinSet::new();
        let mut made = 0;
        loop {
            while tasks.len() < concurrency.max(1) {
                let Some(chunk) = chunks.next() else { break };
                let (client, table) = (self.client.clone(), self.rankings_table.clone());
                tasks.spawn(async move { write_chunk(&client, &table, chunk).await });
            }
            match tasks.join_next().await {
                Some(joined) => made += joined.map_err(join_error)??,
                None => return Ok(made),
            }
        }
    }
}

fn put(item: Item) -> WriteRequest {
    let put = PutRequest::builder()
        .set_item(Some(item))
        .build()
        .expect("item is set");
    WriteRequest::builder().put_request(put).build()
}

fn delete(key: Item) -> WriteRequest {
    let delete = DeleteRequest::builder()
        .set_key(Some(key))
        .build()
        .expect("key is set");
    WriteRequest::builder().delete_request(delete).build()
}

fn join_error(e: tokio::task::JoinError) -> StoreError {
    StoreError::Service {
        service: "dynamodb",
        message: format!("request task failed: {e}"),
    }
}

async fn dealer_days(
    client: &aws_sdk_dynamodb::Client,
    stats_table: &str,
    dealer_id: &str,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<StatsItem>, StoreError> {
    let items = query_all_items(
        client
            .query()
            .table_name(stats_table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
            .expression_attribute_values(":pk", s(format!("DEALER#{dealer_id}")))
            .expression_attribute_values(":from", s(format!("DAY#{from}")))
            // The day's own item and its lead-counter shards (`DAY#<day>#L<n>`).
            .expression_attribute_values(":to", s(format!("DAY#{to}#~"))),
    )
    .await?;
    items.into_iter().filter_map(stats_item).collect()
}

/// One item of a dealer's stats partition by its sort key:
/// `DAY#<day>#A#<account>` an account's content stats, `DAY#<day>#L<n>` a
/// lead-counter shard, `DAY#<day>#N#<lead>` a natural-lead marker, and
/// `DAY#<day>` the content stats of the layout before per-account items
/// (read as one unnamed account). Anything else is skipped.
fn stats_item(item: Item) -> Option<Result<StatsItem, StoreError>> {
    let sk = item
        .get("sk")?
        .as_s()
        .ok()?
        .strip_prefix("DAY#")?
        .to_string();
    let (day, rest) = sk.split_at_checked(10)?;
    let day: NaiveDate = day.parse().ok()?;
    let parsed = if rest.is_empty() {
        from_item::<AccountDay>(item).map(|stats| StatsItem::Account {
            day,
            account: String::new(),
            stats,
        })
    } else if let Some(account) = rest.strip_prefix("#A#") {
        let account = account.to_string();
        from_item::<AccountDay>(item).map(|stats| StatsItem::Account {
            day,
            account,
            stats,
        })
    } else if let Some(lead_id) = rest.strip_prefix("#N#") {
        Ok(StatsItem::Natural {
            day,
            lead_id: lead_id.to_string(),
        })
    } else if rest.starts_with("#L") {
        from_item::<LeadCounts>(item).map(|counts| StatsItem::Counter { day, counts })
    } else {
        return None;
    };
    Some(parsed)
}
