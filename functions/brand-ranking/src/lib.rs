//! Nightly brand ranking (docs/ranking.md): each brand's dealers' daily stats
//! over the last 30 days -> scores -> rank and tier -> snapshot.
//!
//! Invocations:
//! - the schedule (02:00 China time, `cron(0 18 * * ? *)`): ranks yesterday
//!   (China time) for every brand by sending one job per brand to the ranking
//!   queue; the same function consumes that queue, one brand per invocation,
//!   so each brand gets its own 15 minutes, retries and dead-letter queue.
//!   Without a queue configured (local runs) it ranks every brand in-process.
//! - `{"date": "YYYY-MM-DD", "brand_id": "..."}` invoked directly: re-ranks
//!   that brand and date now (both optional: yesterday; every brand).
//! - SQS records whose bodies are `{"date", "brand_id"}` jobs.
//!
//! Re-running a date writes the identical snapshot: inputs are the stored
//! daily items, the brand's leads marked invalid and the previous snapshot,
//! the computation has no clock. A re-run after a lead was marked invalid
//! gives the corrected snapshot.
//!
//! After writing a brand's newest snapshot it sends each ranked dealer's
//! managers a `RankingPublished` notice (rank, tier, change, the metric that
//! would gain most points) through the notification queue; its job id is
//! fixed per brand, dealer and date, so a re-run is not delivered twice.

use std::sync::Arc;
use std::time::Instant;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use chrono::{DateTime, Days, NaiveDate, Utc};
use leads_aws::store::{
    DirectoryStore, DynamoDirectory, DynamoRankings, MessageQueue, Snapshot, SqsQueue,
};
use leads_aws::{config, AwsClients, Settings, StoreError};
use leads_domain::dedup::china_day;
use leads_domain::notification::{Notice, RankingNotice};
use leads_domain::ranking::{self, DealerInput, TierCutoffs, WINDOW_DAYS};
use leads_domain::routing::Tier;
use serde::{Deserialize, Serialize};

/// Stats Queries in flight per brand.
const READ_CONCURRENCY: usize = 32;
/// BatchWriteItem calls in flight per brand.
const WRITE_CONCURRENCY: usize = 8;

/// One brand's ranking for one date: the fan-out message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RankJob {
    pub date: NaiveDate,
    pub brand_id: String,
}

/// What an invocation asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Invocation {
    /// One job per SQS record (the fan-out).
    Jobs(SqsEvent),
    /// One brand now (a manual re-run).
    Brand(RankJob),
    /// Every brand (the schedule, or a manual re-run of a whole date).
    AllBrands { date: NaiveDate },
}

#[derive(Debug, thiserror::Error)]
pub enum RankingError {
    #[error("bad input: {0}")]
    BadInput(String),
    #[error("unknown brand {0}")]
    UnknownBrand(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{failed} of {brands} brands failed: {first}")]
    Brands {
        failed: usize,
        brands: usize,
        first: String,
    },
}

/// The day a run at `now` ranks by default: yesterday, China time.
pub fn default_date(now: DateTime<Utc>) -> NaiveDate {
    china_day(now) - Days::new(1)
}

/// Reads an invocation's payload. The schedule's own `time` (not the clock)
/// picks the date, so a retried scheduled event ranks the same day.
pub fn parse_invocation(
    event: serde_json::Value,
    now: DateTime<Utc>,
) -> Result<Invocation, RankingError> {
    let bad = |e: serde_json::Error| RankingError::BadInput(e.to_string());
    if event.get("Records").is_some() {
        return serde_json::from_value(event)
            .map(Invocation::Jobs)
            .map_err(bad);
    }
    if event.get("detail-type").and_then(|v| v.as_str()) == Some("Scheduled Event") {
        let at = event
            .get("time")
            .and_then(|v| v.as_str())
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map_or(now, |t| t.with_timezone(&Utc));
        return Ok(Invocation::AllBrands {
            date: default_date(at),
        });
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Manual {
        date: Option<NaiveDate>,
        brand_id: Option<String>,
    }
    let manual: Manual = serde_json::from_value(event).map_err(bad)?;
    let date = manual.date.unwrap_or_else(|| default_date(now));
    if date > china_day(now) {
        return Err(RankingError::BadInput(format!(
            "{date} is in the future (China time)"
        )));
    }
    Ok(match manual.brand_id {
        Some(brand_id) => Invocation::Brand(RankJob { date, brand_id }),
        None => Invocation::AllBrands { date },
    })
}

/// Tier counts in a summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TierCounts {
    #[serde(rename = "S")]
    pub s: usize,
    #[serde(rename = "A")]
    pub a: usize,
    #[serde(rename = "B")]
    pub b: usize,
    #[serde(rename = "C")]
    pub c: usize,
}

/// What ranking one brand did (logged and returned; not stored).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BrandSummary {
    pub brand_id: String,
    pub date: NaiveDate,
    pub dealers: usize,
    pub tiers: TierCounts,
    pub previous_date: Option<NaiveDate>,
    /// DynamoDB calls: stats Queries (one per dealer) and BatchWriteItems.
    pub stats_queries: usize,
    pub batch_writes: usize,
    pub latest_updated: bool,
    /// `RankingPublished` notices sent (one per ranked dealer; none when
    /// `date` is not the brand's newest ranking).
    pub notices_sent: usize,
    /// Leads of the brand marked invalid that the window subtracted from.
    pub invalid_leads: usize,
    pub read_ms: u64,
    pub compute_ms: u64,
    pub write_ms: u64,
}

pub struct BrandRanking {
    directory: DynamoDirectory,
    rankings: DynamoRankings,
    /// Where the nightly run sends one job per brand; `None`: rank every
    /// brand in this invocation.
    jobs: Option<SqsQueue>,
    /// Where the `RankingPublished` notices go (the notifier's queue).
    notices: SqsQueue,
    cutoffs: TierCutoffs,
}

impl BrandRanking {
    /// From the function's environment: the shared settings, plus
    /// `RANKING_QUEUE_URL` (fan-out; optional) and `RANKING_TIER_CUTOFFS`
    /// ("S,A,B" percentages; default 10,20,40).
    pub async fn from_env() -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let settings = Settings::from_env()?;
        let cutoffs = match config::optional("RANKING_TIER_CUTOFFS") {
            Some(text) => {
                TierCutoffs::parse(&text).map_err(|reason| config::ConfigError::Invalid {
                    name: "RANKING_TIER_CUTOFFS",
                    reason,
                })?
            }
            None => TierCutoffs::default(),
        };
        Ok(Self::new(
            &settings,
            &AwsClients::from_env().await,
            config::optional("RANKING_QUEUE_URL"),
            cutoffs,
        ))
    }

    pub fn new(
        settings: &Settings,
        clients: &AwsClients,
        job_queue_url: Option<String>,
        cutoffs: TierCutoffs,
    ) -> Self {
        let t = &settings.tables;
        BrandRanking {
            directory: DynamoDirectory::new(clients.dynamodb.clone(), &t.directory),
            rankings: DynamoRankings::new(clients.dynamodb.clone(), &t.stats, &t.rankings),
            jobs: job_queue_url.map(|url| SqsQueue::new(clients.sqs.clone(), url)),
            notices: SqsQueue::new(clients.sqs.clone(), &settings.queues.notification),
            cutoffs,
        }
    }

    /// One invocation: whatever `event` asks for (see the module docs).
    pub async fn handle(
        &self,
        event: serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<serde_json::Value, RankingError> {
        match parse_invocation(event, now)? {
            Invocation::Jobs(event) => Ok(to_json(&self.handle_jobs(event).await)),
            Invocation::Brand(job) => Ok(to_json(&self.rank(&job.brand_id, job.date).await?)),
            Invocation::AllBrands { date } => self.all_brands(date).await,
        }
    }

    /// Every brand for `date`: one job each on the queue, or ranked here.
    pub async fn all_brands(&self, date: NaiveDate) -> Result<serde_json::Value, RankingError> {
        let mut brands: Vec<String> = self
            .directory
            .brands()
            .await?
            .into_iter()
            .map(|b| b.brand_id)
            .collect();
        brands.sort();
        if let Some(queue) = &self.jobs {
            let jobs: Vec<RankJob> = brands
                .iter()
                .map(|brand_id| RankJob {
                    date,
                    brand_id: brand_id.clone(),
                })
                .collect();
            queue.send_all(&jobs).await?;
            tracing::info!(%date, brands = jobs.len(), "ranking jobs sent");
            return Ok(serde_json::json!({ "date": date, "jobs_sent": jobs.len() }));
        }
        let mut summaries = Vec::new();
        let mut failures = Vec::new();
        for brand_id in &brands {
            // One brand failing must not stop the others.
            match self.rank(brand_id, date).await {
                Ok(summary) => summaries.push(summary),
                Err(e) => failures.push(format!("{brand_id}: {e}")),
            }
        }
        match failures.first() {
            None => Ok(serde_json::json!({ "date": date, "brands": summaries })),
            Some(first) => Err(RankingError::Brands {
                failed: failures.len(),
                brands: brands.len(),
                first: first.clone(),
            }),
        }
    }

    /// Fan-out jobs from the queue; a failed job is reported for redelivery
    /// (and lands in the dead-letter queue after the redrive limit).
    pub async fn handle_jobs(&self, event: SqsEvent) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        for record in event.records {
            let id = record.message_id.clone().unwrap_or_default();
            let result = match serde_json::from_str::<RankJob>(record.body.as_deref().unwrap_or(""))
            {
                Ok(job) => self.rank(&job.brand_id, job.date).await.map(|_| ()),
                Err(e) => Err(RankingError::BadInput(e.to_string())),
            };
            if let Err(e) = result {
                tracing::error!(message_id = %id, error = %e, "ranking job failed");
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                response.batch_item_failures.push(failure);
            }
        }
        response
    }

    /// Ranks one brand for `date` and writes the snapshot.
    pub async fn rank(
        &self,
        brand_id: &str,
        date: NaiveDate,
    ) -> Result<BrandSummary, RankingError> {
        let started = Instant::now();
        let brand = self
            .directory
            .brand(brand_id)
            .await?
            .ok_or_else(|| RankingError::UnknownBrand(brand_id.to_string()))?;
        let mut dealers = self.directory.dealers_of(brand_id).await?;
        dealers.sort_by(|a, b| a.dealer_id.cmp(&b.dealer_id));
        let ids: Vec<String> = dealers.iter().map(|d| d.dealer_id.clone()).collect();
        let (from, to) = ranking::window(date, WINDOW_DAYS);
        let settings = brand.ranking.unwrap_or_default().sanitised();
        // A natural-lead marker in the window belongs to a lead received at
        // most the brand's dedup window earlier.
        let invalid = self
            .rankings
            .invalid_leads(
                brand_id,
                from - Days::new(u64::from(brand.protection_days) + 1),
                to,
            )
            .await?;
        let invalid_leads = invalid.len();
        let totals = self
            .rankings
            .window_totals(
                &ids,
                (from, to),
                Arc::new(invalid),
                settings,
                READ_CONCURRENCY,
            )
            .await?;
        let previous = self.rankings.previous_ranks(brand_id, date).await?;
        let read_ms = elapsed_ms(started);

        let computing = Instant::now();
        let inputs: Vec<DealerInput> = dealers
            .into_iter()
            .zip(totals)
            .map(|(d, totals)| DealerInput {
                dealer_id: d.dealer_id,
                name: d.name,
                totals,
            })
            .collect();
        if let Some(Err(e)) = brand.score_weights.as_ref().map(|w| w.validate()) {
            tracing::warn!(brand_id, error = %e, "brand score weights invalid; using the defaults");
        }
        let basis = ranking::basis_for(
            &inputs,
            brand.score_weights.as_ref(),
            Some(&settings),
            self.cutoffs,
            WINDOW_DAYS,
        );
        let (previous_date, previous_ranks) = previous.unzip();
        let ranked = ranking::rank_brand(&inputs, &basis, &previous_ranks.unwrap_or_default());
        let compute_ms = elapsed_ms(computing);

        let writing = Instant::now();
        let mut tiers = TierCounts::default();
        for d in &ranked {
            match d.tier {
                Tier::S => tiers.s += 1,
                Tier::A => tiers.a += 1,
                Tier::B => tiers.b += 1,
                Tier::C => tiers.c += 1,
            }
        }
        let snapshot = Snapshot {
            brand_id: brand_id.to_string(),
            date,
            window_from: from,
            window_to: to,
            basis,
            previous_date,
            dealers: ranked,
        };
        let written = self
            .rankings
            .write_snapshot(&snapshot, WRITE_CONCURRENCY)
            .await?;
        // The newest ranking only: a re-run of an older date corrects its
        // snapshot without telling managers about a past night.
        let notices_sent = if written.latest_updated {
            let ranked = u32::try_from(snapshot.dealers.len()).unwrap_or(u32::MAX);
            let created_at = Utc::now();
            let notices: Vec<Notice> = snapshot
                .dealers
                .iter()
                .map(|d| {
                    Notice::Ranking(RankingNotice::for_dealer(
                        brand_id, date, ranked, d, created_at,
                    ))
                })
                .collect();
            self.notices.send_all(&notices).await?;
            notices.len()
        } else {
            0
        };
        let summary = BrandSummary {
            notices_sent,
            invalid_leads,
            brand_id: brand_id.to_string(),
            date,
            dealers: snapshot.dealers.len(),
            tiers,
            previous_date,
            stats_queries: ids.len(),
            batch_writes: written.batch_requests,
            latest_updated: written.latest_updated,
            read_ms,
            compute_ms,
            write_ms: elapsed_ms(writing),
        };
        tracing::info!(
            brand_id,
            %date,
            dealers = summary.dealers,
            ?previous_date,
            stale_rows_deleted = written.stale_rows_deleted,
            latest_updated = written.latest_updated,
            notices_sent,
            invalid_leads,
            read_ms,
            compute_ms,
            write_ms = summary.write_ms,
            "brand ranked"
        );
        // The late-ranking alarm watches this: one per brand ranked.
        leads_aws::emf::count(leads_aws::emf::names::RANKING_BRANDS_COMPLETED, 1);
        Ok(summary)
    }
}

fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn to_json<T: Serialize>(value: &T) -> serde_json::Value {
    // Plain structs of strings and numbers: serialising cannot fail.
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
    }

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn the_schedule_ranks_yesterday_china_time_from_the_event_time() {
        // 18:00 UTC on the 23rd is 02:00 on the 24th in China: rank the 23rd,
        // whenever the (possibly retried) invocation actually runs.
        let event = serde_json::json!({
            "version": "0", "id": "x", "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "1", "time": "2026-11-23T18:00:00Z", "region": "cn-north-1",
            "resources": [], "detail": {}
        });
        assert_eq!(
            parse_invocation(event, at(2026, 11, 24, 3)).unwrap(),
            Invocation::AllBrands {
                date: day("2026-11-23")
            }
        );
    }

    #[test]
    fn manual_input_picks_a_brand_and_date_or_defaults() {
        let now = at(2026, 11, 23, 18);
        assert_eq!(
            parse_invocation(
                serde_json::json!({"date": "2026-11-01", "brand_id": "b1"}),
                now
            )
            .unwrap(),
            Invocation::Brand(RankJob {
                date: day("2026-11-01"),
                brand_id: "b1".into()
            })
        );
        assert_eq!(
            parse_invocation(serde_json::json!({}), now).unwrap(),
            Invocation::AllBrands {
                date: day("2026-11-23")
            }
        );
        for bad in [
            serde_json::json!({"date": "2026-13-01"}),
            serde_json::json!({"date": "2026-11-30"}),
            serde_json::json!({"brand": "typo"}),
        ] {
            assert!(
                matches!(
                    parse_invocation(bad.clone(), now),
                    Err(RankingError::BadInput(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn sqs_records_are_jobs() {
        let event = serde_json::json!({"Records": [{
            "messageId": "m1", "body": "{\"date\":\"2026-11-23\",\"brand_id\":\"b1\"}",
            "eventSource": "aws:sqs"
        }]});
        let Invocation::Jobs(jobs) = parse_invocation(event, Utc::now()).unwrap() else {
            panic!("not jobs")
        };
        let job: RankJob = serde_json::from_str(jobs.records[0].body.as_deref().unwrap()).unwrap();
        assert_eq!(job.brand_id, "b1");
    }
}
