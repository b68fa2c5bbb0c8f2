//! Leads, customer identities and touchpoints in DynamoDB (layout documented on
//! `LeadsTable` in template.yaml), plus the per-dealer assignment state.
//!
//! Every decision that two concurrent deliveries could race on is one
//! conditional write or one transaction: creating a lead, merging into it,
//! reserving a remote dealer's capacity, assigning a consultant below cap.

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Put, ReturnValue, TransactWriteItem, Update,
};
use chrono::{DateTime, Utc};
use leads_domain::assignment::StaffLoad;
use leads_domain::dedup::{self, DedupOutcome, KeyHolder, LinkDecision, LinkLead, LinkOutcome};
use leads_domain::directory::{Brand, Platform, Staff};
use leads_domain::lead::{CanonicalLead, CustomerKey, LeadRecord, LeadStatus, Touchpoint, Traffic};
use leads_domain::routing::Route;
use leads_domain::{status, wire_name, Phone};
use serde::{Deserialize, Serialize};

use super::item::{from_item, to_item, Item, Keys};

mod create;
use crate::error::applied;
use crate::StoreError;
pub use create::{Contended, CreateResult, IdentitySeen};

/// What recording a delivery did.
#[derive(Debug, Clone, PartialEq)]
pub enum Recorded {
    Created(Box<LeadRecord>),
    Merged {
        lead: Box<LeadRecord>,
        /// The channel that knew the customer first (for overlap statistics).
        first_platform: Platform,
    },
    /// This delivery was recorded before; `lead_id` is the lead it went to.
    Duplicate {
        lead_id: String,
        outcome: DedupOutcome,
    },
}

/// The result of trying to assign a consultant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssignResult {
    Assigned,
    /// The consultant reached their cap concurrently: choose again.
    CapReached,
    /// The lead already has an assignee (redelivery or a concurrent batch).
    AlreadyAssigned,
}

/// The identity item: which lead a customer is, within the brand.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerItem {
    pub lead_id: String,
    pub first_platform: Platform,
    pub first_seen: DateTime<Utc>,
    pub window_until_s: i64,
    /// Who had the customer last (set at assignment), so that a customer who
    /// returns after the window goes back to the same consultant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_dealer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_assignee: Option<String>,
}

/// Marks a delivery as recorded, so a redelivery is a `Duplicate`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct EventMarker {
    lead_id: String,
    outcome: DedupOutcome,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StaffCounter {
    #[serde(default)]
    open: u32,
}

pub struct DynamoLeads {
    client: aws_sdk_dynamodb::Client,
    table: String,
    stats_table: String,
    /// Where audit entries written inside the store's transactions go (the
    /// router's); without it the caller appends them.
    audit_table: Option<String>,
}

mod keys {
    use super::*;

    pub fn lead(lead_id: &str) -> Keys {
        Keys::new(format!("LEAD#{lead_id}"), "LEAD")
    }
    pub fn touchpoint(lead_id: &str, t: &Touchpoint) -> Keys {
        Keys::new(
            format!("LEAD#{lead_id}"),
            format!("TP#{}#{}", t.at.to_rfc3339(), t.source_event_id),
        )
    }
    pub fn event(brand_id: &str, source_event_id: &str) -> Keys {
        Keys::new(format!("EVENT#{brand_id}#{source_event_id}"), "EVENT")
    }
    pub fn customer(customer_key: String) -> Keys {
        Keys::new(customer_key, "IDENTITY")
    }
    pub fn staff_counter(dealer_id: &str, staff_id: &str) -> Keys {
        Keys::new(format!("ASSIGN#{dealer_id}"), format!("STAFF#{staff_id}"))
    }
    pub fn ticket(dealer_id: &str) -> Keys {
        Keys::new(format!("ASSIGN#{dealer_id}"), "TICKET")
    }
    /// One of a dealer-day's lead-counter shards (see [`LEAD_COUNTER_SHARDS`]):
    /// a live group-buy's leads for one dealer do not all write one item.
    /// The ranking sums every item of the day (`DAY#<day>` and its shards).
    pub fn dealer_day_shard(dealer_id: &str, day: chrono::NaiveDate, delivery: &str) -> Keys {
        let shard = delivery
            .bytes()
            .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
            % LEAD_COUNTER_SHARDS;
        Keys::new(format!("DEALER#{dealer_id}"), format!("DAY#{day}#L{shard}"))
    }
    /// A dealer's remote leads received on a day (its own item: the remote
    /// capacity check does not contend with the lead counters or content stats).
    pub fn remote_day(dealer_id: &str, day: chrono::NaiveDate) -> Keys {
        Keys::new(format!("DEALER#{dealer_id}"), format!("REMOTE#{day}"))
    }
    #[allow(dead_code)]
    pub fn dealer_day(dealer_id: &str, day: chrono::NaiveDate) -> Keys {
        Keys::new(format!("DEALER#{dealer_id}"), format!("DAY#{day}"))
    }
    pub fn overlap(brand_id: &str, day: chrono::NaiveDate, pair: String) -> Keys {
        Keys::new(format!("OVERLAP#{brand_id}#{day}"), pair)
    }
}

/// Shards of a dealer-day's natural/paid lead counters. Each created lead
/// counts on one shard (chosen by its id) inside its creating transaction,
/// so the count stays exact (a redelivery is recognised by the same
/// transaction and counts nothing).
pub const LEAD_COUNTER_SHARDS: u32 = 8;

/// The SLA index partition of a brand's leads (`by_due`, sparse): the
/// sweeper queries one partition per brand.
fn due_partition(brand_id: &str) -> String {
    format!("DUE#{brand_id}")
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}
fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// At most this many of an absorbed lead's touchpoints are copied to the
/// survivor in the merge transaction (all are counted); keeps it well under
/// DynamoDB's 100 items per transaction.
const MAX_COPIED_TOUCHPOINTS: usize = 50;

/// What a lead that takes a customer over fills in where it has nothing.
#[derive(Debug, Default)]
struct Fill {
    phone: Option<Phone>,
    name: Option<String>,
    city: Option<leads_domain::CityCode>,
}

impl Fill {
    /// The same on the in-memory record (the update uses `if_not_exists`).
    fn apply(self, lead: &mut LeadRecord) {
        if let (None, Some(p)) = (&lead.phone, self.phone) {
            lead.phone_masked = Some(p.masked());
            lead.phone = Some(p);
        }
        lead.customer_name = lead.customer_name.take().or(self.name);
        lead.customer_city = lead.customer_city.or(self.city);
    }
}

/// A lead as the link decision sees it.
fn view(lead: &LeadRecord) -> LinkLead<'_> {
    LinkLead {
        lead_id: &lead.lead_id,
        received_at: lead.received_at,
        status: lead.status,
    }
}

fn at_seconds(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Per-item reasons of a cancelled transaction: true where a condition
/// failed. `None` when no condition failed (a conflict with a concurrent
/// transaction, or another error): see [`transaction_failed`].
fn cancelled(
    err: &aws_sdk_dynamodb::error::SdkError<TransactWriteItemsError, impl std::fmt::Debug>,
) -> Option<Vec<bool>> {
    match err.as_service_error()? {
        TransactWriteItemsError::TransactionCanceledException(e) => {
            let failed: Vec<bool> = e
                .cancellation_reasons()
                .iter()
                .map(|r| r.code() == Some("ConditionalCheckFailed"))
                .collect();
            failed.contains(&true).then_some(failed)
        }
        _ => None,
    }
}

/// The error of a transaction that was not cancelled by a condition: a
/// conflict with a concurrent transaction (`TransactionConflict` among the
/// reasons, or `TransactionInProgressException`) is [`StoreError::Conflict`],
/// retried by the caller; anything else a service error.
fn transaction_failed(
    err: aws_sdk_dynamodb::error::SdkError<
        TransactWriteItemsError,
        aws_smithy_runtime_api::http::Response,
    >,
) -> StoreError {
    let conflict = match err.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(e)) => e
            .cancellation_reasons()
            .iter()
            .any(|r| r.code() == Some("TransactionConflict")),
        Some(TransactWriteItemsError::TransactionInProgressException(_)) => true,
        _ => false,
    };
    if conflict {
        StoreError::Conflict {
            operation: "TransactWriteItems",
        }
    } else {
        StoreError::dynamodb(err)
    }
}

impl DynamoLeads {
    pub fn new(
        client: aws_sdk_dynamodb::Client,
        table: impl Into<String>,
        stats_table: impl Into<String>,
    ) -> Self {
        DynamoLeads {
            client,
            table: table.into(),
            stats_table: stats_table.into(),
            audit_table: None,
        }
    }

    /// Audit entries go into the transactions they describe, in `table`.
    pub fn with_audit(mut self, table: impl Into<String>) -> Self {
        self.audit_table = Some(table.into());
        self
    }

    /// One all-or-nothing write; callers read the outcome with `applied`.
    async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsOutput,
        aws_sdk_dynamodb::error::SdkError<
            TransactWriteItemsError,
            aws_smithy_runtime_api::http::Response,
        >,
    > {
        self.client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
    }

    /// One more lead for the (brand, China day, first channel, later channel)
    /// overlap counter.
    fn count_overlap(
        &self,
        brand_id: &str,
        day: chrono::NaiveDate,
        pair: String,
    ) -> TransactWriteItem {
        let update = Update::builder()
            .table_name(&self.stats_table)
            .set_key(Some(keys::overlap(brand_id, day, pair).primary()))
            .update_expression("ADD leads :one")
            .expression_attribute_values(":one", n(1))
            .build()
            .expect("table and key are set");
        TransactWriteItem::builder().update(update).build()
    }

    fn put(&self, item: Item, condition: Option<&str>) -> TransactWriteItem {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .set_condition_expression(condition.map(str::to_string))
            .build()
            .expect("table and item are set");
        TransactWriteItem::builder().put(put).build()
    }

    fn lead_item(&self, lead: &LeadRecord) -> Result<Item, StoreError> {
        to_item(&keys::lead(&lead.lead_id), lead)
    }

    /// Counts a created lead on the receiving dealer's day (natural or paid).
    fn count_lead(&self, dealer_id: &str, lead: &CanonicalLead) -> TransactWriteItem {
        let field = match lead.traffic {
            Traffic::Natural => "natural_leads",
            Traffic::Paid => "paid_leads",
        };
        let update = Update::builder()
            .table_name(&self.stats_table)
            .set_key(Some(
                keys::dealer_day_shard(
                    dealer_id,
                    dedup::china_day(lead.received_at),
                    &lead.source_event_id,
                )
                .primary(),
            ))
            .update_expression(format!("ADD {field} :one"))
            .expression_attribute_values(":one", n(1))
            .build()
            .expect("table and key are set");
        TransactWriteItem::builder().update(update).build()
    }

    /// Records one delivery: creates a lead, merges into the customer's open
    /// lead, or recognises a redelivery. Never read-then-write: the outcome is
    /// decided by which conditions hold when the transaction commits.
    pub async fn record(
        &self,
        brand: &Brand,
        lead: &CanonicalLead,
        account_dealer: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Recorded, StoreError> {
        let customer_key = dedup::customer_key(&brand.brand_id, &lead.customer);
        for _attempt in 0..4 {
            // A hint, not the decision (the transactions' conditions decide):
            // a customer inside the window is merged, anyone else created.
            let known = self.customer(&customer_key).await?;
            let recorded = match known {
                Some(c) if c.window_until_s > now.timestamp() => {
                    self.try_merge(brand, lead, &customer_key, c, now).await?
                }
                previous => {
                    self.try_create(brand, lead, account_dealer, &customer_key, previous, now)
                        .await?
                }
            };
            if let Some(recorded) = recorded {
                return Ok(recorded);
            }
            // The identity changed meanwhile (a concurrent create, or the
            // window just ended): decide again.
        }
        // Contention: the caller retries from a fresh read.
        Err(StoreError::Conflict { operation: "dedup" })
    }

    async fn try_create(
        &self,
        brand: &Brand,
        lead: &CanonicalLead,
        account_dealer: Option<&str>,
        customer_key: &str,
        previous: Option<CustomerItem>,
        now: DateTime<Utc>,
    ) -> Result<Option<Recorded>, StoreError> {
        // A customer whose window ended: who had them last comes along.
        let lead_id = dedup::lead_id(&brand.brand_id, &lead.source_event_id);
        let mut record = LeadRecord::new(
            lead_id.clone(),
            &brand.brand_id,
            lead,
            account_dealer.map(str::to_string),
        );
        if let Some(previous) = &previous {
            record.previous_dealer = previous.last_dealer.clone();
            record.previous_assignee = previous.last_assignee.clone();
        }
        let customer = CustomerItem {
            lead_id: lead_id.clone(),
            first_platform: lead.platform,
            first_seen: lead.received_at,
            window_until_s: dedup::window_until(brand, lead.received_at).timestamp(),
            last_dealer: None,
            last_assignee: None,
        };
        let marker = EventMarker {
            lead_id: lead_id.clone(),
            outcome: DedupOutcome::Created,
        };
        let touch = Touchpoint::from(lead);
        let mut items = vec![
            // 0: the customer is new, or their window has ended.
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(to_item(
                            &keys::customer(customer_key.to_string()),
                            &customer,
                        )?))
                        .condition_expression("attribute_not_exists(pk) OR window_until_s <= :now")
                        .expression_attribute_values(":now", n(now.timestamp()))
                        .build()
                        .expect("table and item are set"),
                )
                .build(),
            // 1: this delivery was not recorded before.
            self.put(
                to_item(
                    &keys::event(&brand.brand_id, &lead.source_event_id),
                    &marker,
                )?,
                Some("attribute_not_exists(pk)"),
            ),
            // 2, 3: the lead and its first touchpoint.
            self.put(self.lead_item(&record)?, Some("attribute_not_exists(pk)")),
            self.put(to_item(&keys::touchpoint(&lead_id, &touch), &touch)?, None),
        ];
        if let Some(dealer) = account_dealer {
            items.push(self.count_lead(dealer, lead));
        }
        let result = self.transact(items).await;
        match result {
            Ok(_) => Ok(Some(Recorded::Created(Box::new(record)))),
            Err(err) => match cancelled(&err) {
                Some(reasons) if reasons.get(1) == Some(&true) || reasons.get(2) == Some(&true) => {
                    self.duplicate(&brand.brand_id, &lead.source_event_id)
                        .await
                        .map(Some)
                }
                Some(reasons) if reasons.first() == Some(&true) => Ok(None),
                _ => Err(transaction_failed(err)),
            },
        }
    }

    /// Merges a delivery into the customer's open lead (`customer` as read):
    /// `None` when the identity changed meanwhile (decide again).
    pub async fn merge_into(
        &self,
        brand: &Brand,
        lead: &CanonicalLead,
        customer_key: &str,
        customer: CustomerItem,
        now: DateTime<Utc>,
    ) -> Result<Option<Recorded>, StoreError> {
        self.try_merge(brand, lead, customer_key, customer, now)
            .await
    }

    async fn try_merge(
        &self,
        brand: &Brand,
        lead: &CanonicalLead,
        customer_key: &str,
        customer: CustomerItem,
        now: DateTime<Utc>,
    ) -> Result<Option<Recorded>, StoreError> {
        let lead_id = customer.lead_id.clone();
        let marker = EventMarker {
            lead_id: lead_id.clone(),
            outcome: DedupOutcome::Merged,
        };
        let touch = Touchpoint::from(lead);
        let day = dedup::china_day(lead.received_at);
        let items = vec![
            // 0: the identity still points at this lead, inside the window.
            TransactWriteItem::builder()
                .condition_check(
                    ConditionCheck::builder()
                        .table_name(&self.table)
                        .set_key(Some(keys::customer(customer_key.to_string()).primary()))
                        .condition_expression("lead_id = :lead AND window_until_s > :now")
                        .expression_attribute_values(":lead", s(&lead_id))
                        .expression_attribute_values(":now", n(now.timestamp()))
                        .build()
                        .expect("table, key and condition are set"),
                )
                .build(),
            // 1: this delivery was not recorded before (if it was, the
            // cancellation returns the marker: where it went).
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(to_item(
                            &keys::event(&brand.brand_id, &lead.source_event_id),
                            &marker,
                        )?))
                        .condition_expression("attribute_not_exists(pk)")
                        .return_values_on_condition_check_failure(
                            aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
                        )
                        .build()
                        .expect("table and item are set"),
                )
                .build(),
            self.put(to_item(&keys::touchpoint(&lead_id, &touch), &touch)?, None),
            TransactWriteItem::builder()
                .update(
                    Update::builder()
                        .table_name(&self.table)
                        .set_key(Some(keys::lead(&lead_id).primary()))
                        .update_expression("ADD touchpoints :one")
                        .condition_expression("attribute_exists(pk)")
                        .expression_attribute_values(":one", n(1))
                        .build()
                        .expect("table and key are set"),
                )
                .build(),
            self.count_overlap(
                &brand.brand_id,
                day,
                dedup::overlap_pair(customer.first_platform, lead.platform),
            ),
        ];
        let mut items = items;
        // The audit entry of the merge, in the merge.
        if let Some(audit_table) = &self.audit_table {
            let event =
                leads_domain::decision::merged_audit(&lead_id, lead, customer.first_platform, now);
            items.push(
                TransactWriteItem::builder()
                    .put(
                        Put::builder()
                            .table_name(audit_table)
                            .set_item(Some(crate::store::audit::audit_item(&event)?))
                            .build()
                            .expect("table and item are set"),
                    )
                    .build(),
            );
        }
        let result = self.transact(items).await;
        match result {
            Ok(_) => {
                let record = self.get(&lead_id).await?.ok_or_else(|| {
                    StoreError::Malformed(format!("lead {lead_id} vanished after a merge"))
                })?;
                Ok(Some(Recorded::Merged {
                    lead: Box::new(record),
                    first_platform: customer.first_platform,
                }))
            }
            Err(err) => match cancelled(&err) {
                Some(reasons) if reasons.get(1) == Some(&true) => {
                    match create::returned_item::<EventMarker>(&err, 1) {
                        Some(marker) => Ok(Some(Recorded::Duplicate {
                            lead_id: marker.lead_id,
                            outcome: marker.outcome,
                        })),
                        None => self
                            .duplicate(&brand.brand_id, &lead.source_event_id)
                            .await
                            .map(Some),
                    }
                }
                Some(_) => Ok(None),
                None => Err(transaction_failed(err)),
            },
        }
    }

    async fn duplicate(
        &self,
        brand_id: &str,
        source_event_id: &str,
    ) -> Result<Recorded, StoreError> {
        let marker: EventMarker = self
            .get_item(keys::event(brand_id, source_event_id))
            .await?
            .ok_or_else(|| StoreError::Malformed("event marker missing after a conflict".into()))?;
        Ok(Recorded::Duplicate {
            lead_id: marker.lead_id,
            outcome: marker.outcome,
        })
    }

    async fn customer(&self, customer_key: &str) -> Result<Option<CustomerItem>, StoreError> {
        self.get_item(keys::customer(customer_key.to_string()))
            .await
    }

    async fn get_item<T: serde::de::DeserializeOwned>(
        &self,
        keys: Keys,
    ) -> Result<Option<T>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(keys.primary()))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::dynamodb)?;
        out.item.map(from_item).transpose()
    }

    pub async fn get(&self, lead_id: &str) -> Result<Option<LeadRecord>, StoreError> {
        self.get_item(keys::lead(lead_id)).await
    }

    /// A lead's touchpoints, oldest first.
    pub async fn touchpoints(&self, lead_id: &str) -> Result<Vec<Touchpoint>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :tp)")
            .expression_attribute_values(":pk", s(format!("LEAD#{lead_id}")))
            .expression_attribute_values(":tp", s("TP#"))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::dynamodb)?;
        out.items
            .unwrap_or_default()
            .into_iter()
            .map(from_item)
            .collect()
    }

    /// Records where the lead went. For a remote lead, the receiving dealer's
    /// daily capacity is reserved in the same transaction. Returns false if the
    /// lead was routed before (redelivery) or the capacity was just used up.
    pub async fn set_route(
        &self,
        lead: &LeadRecord,
        route: &Route,
        remote_capacity: Option<u32>,
        now: DateTime<Utc>,
    ) -> Result<RouteResult, StoreError> {
        let mut routed = lead.clone();
        routed.route = Some(route.clone());
        routed.dealer_id = match route {
            Route::Local { dealer_id } | Route::Remote { dealer_id, .. } => Some(dealer_id.clone()),
            Route::Unroutable { .. } => None,
        };
        if matches!(route, Route::Unroutable { .. }) {
            routed.status = LeadStatus::Unroutable;
        }
        // An update, not a put of the whole lead: a link or merge that touched
        // the lead since it was read (linked keys, phone, touchpoints) stays.
        let mut set = match &routed.dealer_id {
            Some(_) => vec!["dealer_id = :dealer"],
            None => Vec::new(),
        };
        set.push("#route = :route");
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(keys::lead(&lead.lead_id).primary()))
            .condition_expression(
                "attribute_exists(pk) AND attribute_not_exists(#route) \
                 AND attribute_not_exists(merged_into)",
            )
            .expression_attribute_names("#route", "route")
            .expression_attribute_values(":route", serde_dynamo::to_attribute_value(route)?);
        if let Some(dealer) = &routed.dealer_id {
            update = update.expression_attribute_values(":dealer", s(dealer));
        }
        if routed.status == LeadStatus::Unroutable {
            set.push("#status = :unroutable");
            update = update
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":unroutable", s(wire_name(&LeadStatus::Unroutable)));
        }
        let mut items = vec![TransactWriteItem::builder()
            .update(
                update
                    .update_expression(format!("SET {}", set.join(", ")))
                    .build()
                    .expect("table and key are set"),
            )
            .build()];
        if let (Route::Remote { dealer_id, .. }, Some(cap)) = (route, remote_capacity) {
            items.push(
                TransactWriteItem::builder()
                    .update(
                        Update::builder()
                            .table_name(&self.stats_table)
                            .set_key(Some(
                                keys::remote_day(dealer_id, dedup::china_day(now)).primary(),
                            ))
                            .update_expression("ADD remote_received :one")
                            .condition_expression(
                                "attribute_not_exists(remote_received) OR remote_received < :cap",
                            )
                            .expression_attribute_values(":one", n(1))
                            .expression_attribute_values(":cap", n(cap))
                            .build()
                            .expect("table and key are set"),
                    )
                    .build(),
            );
        }
        let result = self.transact(items).await;
        match result {
            Ok(_) => Ok(RouteResult::Routed(Box::new(routed))),
            Err(err) => match cancelled(&err) {
                Some(reasons) if reasons.first() == Some(&true) => Ok(RouteResult::AlreadyRouted),
                Some(_) => Ok(RouteResult::CapacityTaken),
                None => Err(transaction_failed(err)),
            },
        }
    }

    /// Remote leads a dealer has received today.
    pub async fn remote_received_today(
        &self,
        dealer_id: &str,
        now: DateTime<Utc>,
    ) -> Result<u32, StoreError> {
        #[derive(Deserialize)]
        struct Day {
            #[serde(default)]
            remote_received: u32,
        }
        let out = self
            .client
            .get_item()
            .table_name(&self.stats_table)
            .set_key(Some(
                keys::remote_day(dealer_id, dedup::china_day(now)).primary(),
            ))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::dynamodb)?;
        Ok(out
            .item
            .map(from_item::<Day>)
            .transpose()?
            .map_or(0, |d| d.remote_received))
    }

    /// The dealer's next round-robin ticket (atomic counter).
    pub async fn next_ticket(&self, dealer_id: &str) -> Result<u64, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::ticket(dealer_id).primary()))
            .update_expression("ADD seq :one")
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(StoreError::dynamodb)?;
        let seq = out
            .attributes
            .and_then(|a| {
                a.get("seq")
                    .and_then(|v| v.as_n().ok())
                    .and_then(|v| v.parse().ok())
            })
            .unwrap_or(1u64);
        Ok(seq - 1)
    }

    /// Each staff member's current open leads, for the assignment rules.
    pub async fn staff_loads(
        &self,
        dealer_id: &str,
        staff: &[Staff],
    ) -> Result<Vec<StaffLoad>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :staff)")
            .expression_attribute_values(":pk", s(format!("ASSIGN#{dealer_id}")))
            .expression_attribute_values(":staff", s("STAFF#"))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::dynamodb)?;
        let mut open = std::collections::HashMap::new();
        for item in out.items.unwrap_or_default() {
            let sk = item
                .get("sk")
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default();
            let counter: StaffCounter = from_item(item)?;
            open.insert(sk.trim_start_matches("STAFF#").to_string(), counter.open);
        }
        Ok(staff
            .iter()
            .map(|s| StaffLoad {
                staff_id: s.staff_id.clone(),
                role: s.role,
                on_duty: s.on_duty,
                cap: s.cap,
                open_leads: open.get(&s.staff_id).copied().unwrap_or(0),
            })
            .collect())
    }

    /// Gives the lead to a consultant: their open count goes up only while below
    /// cap, and the lead only if it has no assignee yet, in one transaction.
    pub async fn assign(
        &self,
        lead: &LeadRecord,
        staff: &StaffLoad,
        brand: &Brand,
        now: DateTime<Utc>,
    ) -> Result<AssignResult, StoreError> {
        let dealer_id = lead.dealer_id.as_deref().unwrap_or_default();
        let due = now + chrono::Duration::minutes(i64::from(brand.first_contact_minutes));
        let exclusive = now + chrono::Duration::days(i64::from(brand.exclusivity_days));
        let items = vec![
            TransactWriteItem::builder()
                .update(
                    Update::builder()
                        .table_name(&self.table)
                        .set_key(Some(
                            keys::staff_counter(dealer_id, &staff.staff_id).primary(),
                        ))
                        .update_expression("ADD #open :one")
                        .condition_expression("attribute_not_exists(#open) OR #open < :cap")
                        .expression_attribute_names("#open", "open")
                        .expression_attribute_values(":one", n(1))
                        .expression_attribute_values(":cap", n(staff.cap))
                        .build()
                        .expect("table and key are set"),
                )
                .build(),
            TransactWriteItem::builder()
                .update(
                    Update::builder()
                        .table_name(&self.table)
                        .set_key(Some(keys::lead(&lead.lead_id).primary()))
                        .update_expression(
                            "SET assignee = :staff, #status = :assigned, assigned_at = :now, \
                             first_contact_due = :due, exclusive_until = :excl, \
                             gsi2pk = :due_pk, gsi2sk = :due",
                        )
                        // A lead merged into another one is nobody's to take.
                        .condition_expression(
                            "attribute_exists(pk) AND attribute_not_exists(assignee) \
                             AND attribute_not_exists(merged_into)",
                        )
                        .expression_attribute_names("#status", "status")
                        .expression_attribute_values(":staff", s(&staff.staff_id))
                        .expression_attribute_values(":assigned", s("assigned"))
                        .expression_attribute_values(":now", s(now.to_rfc3339()))
                        .expression_attribute_values(":due", s(due.to_rfc3339()))
                        .expression_attribute_values(":excl", s(exclusive.to_rfc3339()))
                        // Sparse SLA index, sharded by brand so the sweeper can fan out.
                        .expression_attribute_values(":due_pk", s(due_partition(&lead.brand_id)))
                        .build()
                        .expect("table and key are set"),
                )
                .build(),
            // 2: the customer's identity remembers who has them.
            TransactWriteItem::builder()
                .update(
                    Update::builder()
                        .table_name(&self.table)
                        .set_key(Some(
                            keys::customer(dedup::customer_key(&lead.brand_id, &lead.customer))
                                .primary(),
                        ))
                        .update_expression("SET last_dealer = :dealer, last_assignee = :staff")
                        .condition_expression("attribute_exists(pk)")
                        .expression_attribute_values(":dealer", s(dealer_id))
                        .expression_attribute_values(":staff", s(&staff.staff_id))
                        .build()
                        .expect("table and key are set"),
                )
                .build(),
        ];
        let result = self.transact(items).await;
        match result {
            Ok(_) => Ok(AssignResult::Assigned),
            Err(err) => match cancelled(&err) {
                Some(reasons) if reasons.get(1) == Some(&true) => Ok(AssignResult::AlreadyAssigned),
                Some(_) => Ok(AssignResult::CapReached),
                None => Err(transaction_failed(err)),
            },
        }
    }

    /// The customer's linked keys remember who has them (as `assign` does for
    /// the lead's own key), so that a return after the window through any key
    /// goes back to that consultant. Each only while it still points at the
    /// lead; a key that moved on is left alone.
    pub async fn remember_assignee(
        &self,
        lead: &LeadRecord,
        dealer_id: &str,
        staff_id: &str,
    ) -> Result<(), StoreError> {
        for key in &lead.linked_keys {
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(
                    keys::customer(dedup::customer_key(&lead.brand_id, key)).primary(),
                ))
                .update_expression("SET last_dealer = :dealer, last_assignee = :staff")
                .condition_expression("lead_id = :lead")
                .expression_attribute_values(":lead", s(&lead.lead_id))
                .expression_attribute_values(":dealer", s(dealer_id))
                .expression_attribute_values(":staff", s(staff_id))
                .send()
                .await;
            applied(result)?;
        }
        Ok(())
    }

    /// Claim strategy: offers the lead to a group; only a new, unassigned lead.
    pub async fn offer(
        &self,
        lead: &LeadRecord,
        staff_ids: &[String],
        now: DateTime<Utc>,
        fallback_minutes: u32,
    ) -> Result<bool, StoreError> {
        let until = now + chrono::Duration::minutes(i64::from(fallback_minutes));
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::lead(&lead.lead_id).primary()))
            .update_expression(
                "SET #status = :offered, offered_to = :ids, gsi2pk = :due_pk, gsi2sk = :until",
            )
            .condition_expression(
                "attribute_exists(pk) AND #status = :new AND attribute_not_exists(assignee)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":offered", s("offered"))
            .expression_attribute_values(":new", s("new"))
            .expression_attribute_values(
                ":ids",
                AttributeValue::L(staff_ids.iter().map(s).collect()),
            )
            .expression_attribute_values(":due_pk", s(due_partition(&lead.brand_id)))
            .expression_attribute_values(":until", s(until.to_rfc3339()))
            .send()
            .await;
        applied(result)
    }
    /// Applies a consultant's status change, only if the lead still has the
    /// status and the assignee it was read with (optimistic concurrency).
    /// Progress renews the exclusivity and moves the lead's SLA index entry
    /// to that new deadline (the first-contact check no longer applies);
    /// closing the lead takes it out of the index and frees a slot under the
    /// consultant's cap, in the same transaction.
    #[allow(clippy::too_many_arguments)]
    pub async fn apply_status(
        &self,
        lead: &LeadRecord,
        next: LeadStatus,
        valid: Option<bool>,
        progress: bool,
        closes: bool,
        exclusivity_days: u32,
        now: DateTime<Utc>,
    ) -> Result<StatusResult, StoreError> {
        let current = wire_name(&lead.status);
        let next_s = wire_name(&next);
        let mut set = vec!["#status = :next"];
        let mut remove = Vec::new();
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(keys::lead(&lead.lead_id).primary()))
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":current", s(current))
            .expression_attribute_values(":next", s(next_s));
        // Same assignee too: the SLA sweeper may have given the lead to someone
        // else (status still assigned) since it was read.
        update = match &lead.assignee {
            Some(assignee) => update
                .condition_expression("#status = :current AND assignee = :assignee")
                .expression_attribute_values(":assignee", s(assignee)),
            None => update.condition_expression("#status = :current"),
        };
        if progress {
            set.push("exclusive_until = :excl");
            update = update.expression_attribute_values(
                ":excl",
                s((now + chrono::Duration::days(i64::from(exclusivity_days))).to_rfc3339()),
            );
        }
        if !status::is_open(next) {
            // Closed: nothing left for the sweeper to watch.
            remove.extend(["gsi2pk", "gsi2sk"]);
        } else if progress {
            // Still open: the sweeper next looks at it when exclusivity ends.
            set.extend(["gsi2pk = :due_pk", "gsi2sk = :excl"]);
            update =
                update.expression_attribute_values(":due_pk", s(due_partition(&lead.brand_id)));
        }
        if next == LeadStatus::Contacted && lead.contacted_at.is_none() {
            set.push("contacted_at = :now");
            update = update.expression_attribute_values(":now", s(now.to_rfc3339()));
        }
        if let Some(valid) = valid {
            set.push("valid = :valid");
            update = update.expression_attribute_values(":valid", AttributeValue::Bool(valid));
        }
        let mut expression = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        let mut items = vec![TransactWriteItem::builder()
            .update(
                update
                    .update_expression(expression)
                    .build()
                    .expect("table and key are set"),
            )
            .build()];
        if let (true, Some(dealer), Some(staff)) = (closes, &lead.dealer_id, &lead.assignee) {
            items.push(
                TransactWriteItem::builder()
                    .update(
                        Update::builder()
                            .table_name(&self.table)
                            .set_key(Some(keys::staff_counter(dealer, staff).primary()))
                            .update_expression("ADD #open :minus")
                            .condition_expression("#open > :zero")
                            .expression_attribute_names("#open", "open")
                            .expression_attribute_values(":minus", n(-1))
                            .expression_attribute_values(":zero", n(0))
                            .build()
                            .expect("table and key are set"),
                    )
                    .build(),
            );
        }
        let result = self.transact(items).await;
        match result {
            Ok(_) => Ok(StatusResult::Applied),
            Err(err) => match cancelled(&err) {
                Some(_) => Ok(StatusResult::Conflict),
                None => Err(transaction_failed(err)),
            },
        }
    }

    // ------------------------------------------------------------------ links
    //
    // A customer's other key (the phone of a WeCom contact, the WeCom id a
    // source sent with a phone) is linked to their lead. The decision is
    // `dedup::decide_link`; what was read is only a hint, every write is
    // conditioned on it and the whole link is one transaction, retried from a
    // fresh read when a condition fails. A repeat finds the key linked (or
    // the lead merged) and changes nothing.

    /// Links `key` to the customer of `lead` (followed to the lead it was
    /// merged into, if it was). `phone` is recorded on the lead that ends up
    /// with the customer if it has none. `lead` as the caller read it saves a
    /// read; a retry reads it again.
    pub async fn link(
        &self,
        brand: &Brand,
        lead: &LeadRecord,
        key: &CustomerKey,
        phone: Option<&Phone>,
        now: DateTime<Utc>,
    ) -> Result<LinkOutcome, StoreError> {
        let lead_id = lead.lead_id.as_str();
        let key_pk = dedup::customer_key(&brand.brand_id, key);
        for attempt in 0..5 {
            let asked = match attempt {
                0 => lead.clone(),
                _ => self.get(lead_id).await?.ok_or_else(|| {
                    StoreError::Malformed(format!("lead {lead_id} vanished during a link"))
                })?,
            };
            let anchor = self.follow_merges(asked).await?;
            let via = (anchor.lead_id != lead_id).then(|| lead_id.to_string());
            let identity = self.customer(&key_pk).await?;
            let holder_lead = match &identity {
                Some(c) if c.lead_id != anchor.lead_id => self.get(&c.lead_id).await?,
                _ => None,
            };
            let decision = {
                let holder = match (&identity, &holder_lead) {
                    (Some(c), _) if c.lead_id == anchor.lead_id => Some(KeyHolder {
                        lead: view(&anchor),
                        window_until: at_seconds(c.window_until_s),
                    }),
                    (Some(c), Some(h)) => Some(KeyHolder {
                        lead: view(h),
                        window_until: at_seconds(c.window_until_s),
                    }),
                    // Never seen, or pointing at a lead that does not exist.
                    _ => None,
                };
                dedup::decide_link(&view(&anchor), holder.as_ref(), now)
            };
            let done = match decision {
                LinkDecision::AlreadyLinked => Some(LinkOutcome::AlreadyLinked {
                    lead: Box::new(anchor),
                    via,
                }),
                LinkDecision::KeepApart => Some(LinkOutcome::KeptApart {
                    lead: Box::new(anchor),
                    holder_lead_id: identity.map(|c| c.lead_id).unwrap_or_default(),
                }),
                LinkDecision::Link => {
                    self.try_link(brand, anchor, key, &key_pk, identity.as_ref(), phone, now)
                        .await?
                }
                LinkDecision::Merge { anchor_survives } => {
                    let holder_lead = holder_lead.ok_or_else(|| {
                        StoreError::Malformed("a merge without the other lead".into())
                    })?;
                    let (survivor, absorbed) = if anchor_survives {
                        (anchor, holder_lead)
                    } else {
                        (holder_lead, anchor)
                    };
                    let seen = identity.as_ref().map(|c| c.lead_id.as_str());
                    self.try_merge_leads(brand, survivor, absorbed, key, &key_pk, seen, phone, now)
                        .await?
                }
            };
            if let Some(outcome) = done {
                return Ok(outcome);
            }
            // A condition failed (a concurrent link, merge, status change or
            // delivery): read again and decide again.
        }
        // Contention: the caller retries from a fresh read.
        Err(StoreError::Conflict { operation: "link" })
    }

    /// The lead a merged lead lives on in (the lead itself if not merged).
    async fn follow_merges(&self, mut lead: LeadRecord) -> Result<LeadRecord, StoreError> {
        for _hop in 0..8 {
            let Some(next) = lead.merged_into.clone() else {
                return Ok(lead);
            };
            lead = self.get(&next).await?.ok_or_else(|| {
                StoreError::Malformed(format!("lead {} merged into a missing lead", lead.lead_id))
            })?;
        }
        Err(StoreError::Malformed(format!(
            "lead {} is at the end of a merge chain longer than 8",
            lead.lead_id
        )))
    }

    /// The key is free: point its identity at `anchor` (the window of the
    /// anchor's customer) and record the key (and the phone) on the lead.
    #[allow(clippy::too_many_arguments)]
    async fn try_link(
        &self,
        brand: &Brand,
        mut anchor: LeadRecord,
        key: &CustomerKey,
        key_pk: &str,
        seen: Option<&CustomerItem>,
        phone: Option<&Phone>,
        now: DateTime<Utc>,
    ) -> Result<Option<LinkOutcome>, StoreError> {
        let identity = CustomerItem {
            lead_id: anchor.lead_id.clone(),
            first_platform: anchor.first_touch.platform,
            first_seen: anchor.received_at,
            window_until_s: dedup::window_until(brand, anchor.received_at).timestamp(),
            last_dealer: anchor
                .dealer_id
                .clone()
                .or_else(|| seen.and_then(|c| c.last_dealer.clone())),
            last_assignee: anchor
                .assignee
                .clone()
                .or_else(|| seen.and_then(|c| c.last_assignee.clone())),
        };
        let mut put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(to_item(
                &keys::customer(key_pk.to_string()),
                &identity,
            )?));
        put = match seen {
            // Still free as read: absent, or its window over.
            None => put
                .condition_expression("attribute_not_exists(pk) OR window_until_s <= :now")
                .expression_attribute_values(":now", n(now.timestamp())),
            // Still exactly as read (expired, or its lead closed).
            Some(c) => put
                .condition_expression("lead_id = :seen AND window_until_s = :seen_until")
                .expression_attribute_values(":seen", s(&c.lead_id))
                .expression_attribute_values(":seen_until", n(c.window_until_s)),
        };
        let new_key = !anchor.keys().any(|k| k == key);
        let fill = Fill {
            phone: phone.filter(|_| anchor.phone.is_none()).cloned(),
            ..Fill::default()
        };
        let lead_item = self.absorb_update(
            &anchor,
            if new_key {
                std::slice::from_ref(key)
            } else {
                &[]
            },
            &fill,
            0,
        )?;
        let items = vec![
            TransactWriteItem::builder()
                .put(put.build().expect("table and item are set"))
                .build(),
            lead_item,
        ];
        let result = self.transact(items).await;
        match result {
            Ok(_) => {
                if new_key {
                    anchor.linked_keys.push(key.clone());
                }
                fill.apply(&mut anchor);
                Ok(Some(LinkOutcome::Linked {
                    lead: Box::new(anchor),
                }))
            }
            Err(err) => match cancelled(&err) {
                Some(_) => Ok(None),
                None => Err(transaction_failed(err)),
            },
        }
    }

    /// The update of a lead that takes on a customer's keys (appended to
    /// `linked_keys`), what it lacks of `fill`, and `touchpoints` more
    /// touchpoints; only while it is not merged and still in the status it
    /// was read in.
    fn absorb_update(
        &self,
        lead: &LeadRecord,
        new_keys: &[CustomerKey],
        fill: &Fill,
        touchpoints: u32,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut set = Vec::new();
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(keys::lead(&lead.lead_id).primary()))
            .condition_expression(
                "attribute_exists(pk) AND attribute_not_exists(merged_into) AND #status = :seen_status",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":seen_status", s(wire_name(&lead.status)));
        if !new_keys.is_empty() {
            set.push("linked_keys = list_append(if_not_exists(linked_keys, :empty), :keys)");
            let keys = new_keys
                .iter()
                .map(serde_dynamo::to_attribute_value)
                .collect::<Result<Vec<AttributeValue>, _>>()?;
            update = update
                .expression_attribute_values(":empty", AttributeValue::L(Vec::new()))
                .expression_attribute_values(":keys", AttributeValue::L(keys));
        }
        if let Some(p) = &fill.phone {
            set.push("phone = if_not_exists(phone, :phone)");
            set.push("phone_masked = if_not_exists(phone_masked, :masked)");
            update = update
                .expression_attribute_values(":phone", serde_dynamo::to_attribute_value(p)?)
                .expression_attribute_values(":masked", s(p.masked()));
        }
        if let Some(name) = &fill.name {
            set.push("customer_name = if_not_exists(customer_name, :name)");
            update = update.expression_attribute_values(":name", s(name));
        }
        if let Some(city) = fill.city {
            set.push("customer_city = if_not_exists(customer_city, :city)");
            update = update
                .expression_attribute_values(":city", serde_dynamo::to_attribute_value(city)?);
        }
        let mut expression = String::new();
        if !set.is_empty() {
            expression = format!("SET {}", set.join(", "));
        }
        if touchpoints > 0 {
            expression.push_str(" ADD touchpoints :touches");
            update = update.expression_attribute_values(":touches", n(touchpoints));
        }
        if expression.is_empty() {
            // Nothing to change: only check the lead is still as read.
            let check = ConditionCheck::builder()
                .table_name(&self.table)
                .set_key(Some(keys::lead(&lead.lead_id).primary()))
                .condition_expression(
                    "attribute_exists(pk) AND attribute_not_exists(merged_into) AND #status = :seen_status",
                )
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":seen_status", s(wire_name(&lead.status)))
                .build()
                .expect("table, key and condition are set");
            return Ok(TransactWriteItem::builder().condition_check(check).build());
        }
        Ok(TransactWriteItem::builder()
            .update(
                update
                    .update_expression(expression.trim())
                    .build()
                    .expect("table and key are set"),
            )
            .build())
    }

    /// One customer, two live leads: `absorbed` (the later one) is merged
    /// into `survivor`, in one transaction: the absorbed lead is marked
    /// merged (out of the SLA index, its consultant's slot freed), every
    /// identity that pointed at it points at the survivor, the survivor takes
    /// its keys, touchpoints (copied and counted) and phone, and the overlap
    /// counter (first channel, later channel) counts the pair once. The
    /// absorbed lead's condition (not merged, as read) makes it happen once.
    #[allow(clippy::too_many_arguments)]
    async fn try_merge_leads(
        &self,
        brand: &Brand,
        mut survivor: LeadRecord,
        absorbed: LeadRecord,
        key: &CustomerKey,
        key_pk: &str,
        key_holder: Option<&str>,
        phone: Option<&Phone>,
        now: DateTime<Utc>,
    ) -> Result<Option<LinkOutcome>, StoreError> {
        // The identities that point at the absorbed lead move; others (a key
        // whose window ended and that now belongs to a newer lead) stay.
        let mut candidates: Vec<&CustomerKey> = absorbed.keys().collect();
        if !candidates.contains(&key) {
            candidates.push(key);
        }
        let mut repoint = Vec::new();
        let mut new_keys: Vec<CustomerKey> = Vec::new();
        for k in candidates {
            let pk = dedup::customer_key(&brand.brand_id, k);
            let holder = if pk == key_pk {
                key_holder.map(str::to_string)
            } else {
                self.customer(&pk).await?.map(|c| c.lead_id)
            };
            let moves = holder.as_deref() == Some(absorbed.lead_id.as_str());
            if moves {
                repoint.push(pk);
            }
            if (moves || k == key) && !survivor.keys().any(|have| have == k) {
                new_keys.push(k.clone());
            }
        }
        let touches = self.touchpoints(&absorbed.lead_id).await?;
        // What the survivor lacks, the absorbed lead (or the linked phone) gives.
        let fill = Fill {
            phone: phone
                .or(absorbed.phone.as_ref())
                .filter(|_| survivor.phone.is_none())
                .cloned(),
            name: absorbed
                .customer_name
                .clone()
                .filter(|_| survivor.customer_name.is_none()),
            city: absorbed
                .customer_city
                .filter(|_| survivor.customer_city.is_none()),
        };

        let mut release = status::is_open(absorbed.status)
            .then(|| absorbed.dealer_id.clone().zip(absorbed.assignee.clone()))
            .flatten();
        for _attempt in 0..2 {
            // 0: the absorbed lead, unchanged since read, becomes merged.
            let mut merged = Update::builder()
                .table_name(&self.table)
                .set_key(Some(keys::lead(&absorbed.lead_id).primary()))
                .update_expression(
                    "SET #status = :merged, merged_into = :survivor REMOVE gsi2pk, gsi2sk",
                )
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":merged", s(wire_name(&LeadStatus::Merged)))
                .expression_attribute_values(":survivor", s(&survivor.lead_id))
                .expression_attribute_values(":seen_status", s(wire_name(&absorbed.status)))
                .expression_attribute_values(":seen_touches", n(absorbed.touchpoints));
            // Same assignee, and the same linked keys: a key linked to it
            // concurrently would otherwise keep pointing at a merged lead.
            let assignee_seen = match &absorbed.assignee {
                Some(a) => {
                    merged = merged.expression_attribute_values(":seen_assignee", s(a));
                    "assignee = :seen_assignee"
                }
                None => "attribute_not_exists(assignee)",
            };
            let keys_seen = match absorbed.linked_keys.len() {
                0 => "attribute_not_exists(linked_keys)",
                count => {
                    merged = merged.expression_attribute_values(":seen_keys", n(count));
                    "size(linked_keys) = :seen_keys"
                }
            };
            merged = merged.condition_expression(format!(
                "attribute_exists(pk) AND attribute_not_exists(merged_into) \
                 AND #status = :seen_status AND touchpoints = :seen_touches \
                 AND {assignee_seen} AND {keys_seen}"
            ));
            let mut items = vec![
                TransactWriteItem::builder()
                    .update(merged.build().expect("table and key are set"))
                    .build(),
                // 1: the survivor takes the customer over.
                self.absorb_update(&survivor, &new_keys, &fill, absorbed.touchpoints)?,
            ];
            // The identities move to the survivor's window.
            for pk in &repoint {
                let mut set = vec![
                    "lead_id = :survivor",
                    "first_platform = :platform",
                    "first_seen = :seen",
                    "window_until_s = :until",
                ];
                let mut update = Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(keys::customer(pk.clone()).primary()))
                    .condition_expression("lead_id = :absorbed")
                    .expression_attribute_values(":absorbed", s(&absorbed.lead_id))
                    .expression_attribute_values(":survivor", s(&survivor.lead_id))
                    .expression_attribute_values(
                        ":platform",
                        serde_dynamo::to_attribute_value(survivor.first_touch.platform)?,
                    )
                    .expression_attribute_values(
                        ":seen",
                        serde_dynamo::to_attribute_value(survivor.received_at)?,
                    )
                    .expression_attribute_values(
                        ":until",
                        n(dedup::window_until(brand, survivor.received_at).timestamp()),
                    );
                if let (Some(dealer), Some(staff)) = (&survivor.dealer_id, &survivor.assignee) {
                    set.extend(["last_dealer = :dealer", "last_assignee = :staff"]);
                    update = update
                        .expression_attribute_values(":dealer", s(dealer))
                        .expression_attribute_values(":staff", s(staff));
                }
                items.push(
                    TransactWriteItem::builder()
                        .update(
                            update
                                .update_expression(format!("SET {}", set.join(", ")))
                                .build()
                                .expect("table and key are set"),
                        )
                        .build(),
                );
            }
            // The linked key stays with the survivor it pointed at.
            if !repoint.iter().any(|pk| pk == key_pk) {
                items.push(
                    TransactWriteItem::builder()
                        .condition_check(
                            ConditionCheck::builder()
                                .table_name(&self.table)
                                .set_key(Some(keys::customer(key_pk.to_string()).primary()))
                                .condition_expression("lead_id = :survivor")
                                .expression_attribute_values(":survivor", s(&survivor.lead_id))
                                .build()
                                .expect("table, key and condition are set"),
                        )
                        .build(),
                );
            }
            let release_at = release.as_ref().map(|(dealer, staff)| {
                items.push(self.release_slot(dealer, staff));
                items.len() - 1
            });
            items.push(self.count_overlap(
                &brand.brand_id,
                dedup::china_day(now),
                dedup::overlap_pair(survivor.first_touch.platform, absorbed.first_touch.platform),
            ));
            // The absorbed lead's touchpoints, listed on the survivor too.
            for t in touches.iter().take(MAX_COPIED_TOUCHPOINTS) {
                items.push(self.put(to_item(&keys::touchpoint(&survivor.lead_id, t), t)?, None));
            }
            let result = self.transact(items).await;
            match result {
                Ok(_) => {
                    survivor.touchpoints += absorbed.touchpoints;
                    survivor.linked_keys.extend(new_keys);
                    fill.apply(&mut survivor);
                    return Ok(Some(LinkOutcome::Merged {
                        survivor: Box::new(survivor),
                        absorbed: Box::new(absorbed),
                    }));
                }
                Err(err) => match cancelled(&err) {
                    Some(reasons)
                        if release_at.is_some_and(|i| reasons.get(i) == Some(&true))
                            && reasons.iter().filter(|r| **r).count() == 1 =>
                    {
                        // The consultant's open counter is already 0 (drift):
                        // merge without decrementing it.
                        tracing::warn!(lead_id = %absorbed.lead_id, "absorbed lead's consultant has an open count of 0; not decremented");
                        release = None;
                    }
                    Some(_) => return Ok(None),
                    None => return Err(transaction_failed(err)),
                },
            }
        }
        Ok(None)
    }

    // ------------------------------------------------------------ SLA sweeper
    //
    // Every write below is conditional on the lead still being indexed under
    // the deadline the sweeper read (`gsi2sk`), in the status it read: a
    // consultant's event, a claim or an overlapping sweeper run that changed
    // the lead first makes the write a no-op (`Changed`), never a double move.

    /// Ids of a brand's leads whose SLA deadline is at or before `now`, oldest
    /// first, at most `limit` (the rest wait for the next run). The index is
    /// eventually consistent: read each lead with [`Self::due_lead`].
    pub async fn due_lead_ids(
        &self,
        brand_id: &str,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let mut ids = Vec::new();
        let mut start = None;
        while ids.len() < limit {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .index_name("by_due")
                .key_condition_expression("gsi2pk = :pk AND gsi2sk <= :now")
                .expression_attribute_values(":pk", s(due_partition(brand_id)))
                .expression_attribute_values(":now", s(now.to_rfc3339()))
                .limit(
                    i32::try_from(limit - ids.len())
                        .unwrap_or(i32::MAX)
                        .min(500),
                )
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(StoreError::dynamodb)?;
            for item in page.items.unwrap_or_default() {
                let pk = item.get("pk").and_then(|v| v.as_s().ok());
                if let Some(id) = pk.and_then(|pk| pk.strip_prefix("LEAD#")) {
                    ids.push(id.to_string());
                }
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        ids.truncate(limit);
        Ok(ids)
    }

    /// The lead and the deadline it is indexed under, read consistently.
    pub async fn due_lead(&self, lead_id: &str) -> Result<Option<DueLead>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(keys::lead(lead_id).primary()))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::dynamodb)?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let due = match item.get("gsi2sk").and_then(|v| v.as_s().ok()) {
            Some(raw) => Some(Due {
                at: DateTime::parse_from_rfc3339(raw)
                    .map_err(|e| StoreError::Malformed(format!("gsi2sk of {lead_id}: {e}")))?
                    .with_timezone(&Utc),
                raw: raw.clone(),
            }),
            None => None,
        };
        let pool_excluded = item
            .get("pool_excluded")
            .and_then(|v| v.as_s().ok())
            .cloned();
        Ok(Some(DueLead {
            lead: from_item(item)?,
            due,
            pool_excluded,
        }))
    }

    /// Puts an unassigned lead in the SLA index for a pool retry at `retry_at`
    /// (nobody could take it), so the sweeper tries again; only if it still has
    /// no assignee and is not indexed yet.
    pub async fn wait_in_pool(
        &self,
        lead: &LeadRecord,
        retry_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::lead(&lead.lead_id).primary()))
            .update_expression("SET gsi2pk = :due_pk, gsi2sk = :at")
            .condition_expression(
                "attribute_exists(pk) AND attribute_not_exists(assignee) \
                 AND attribute_not_exists(gsi2pk) AND attribute_not_exists(merged_into)",
            )
            .expression_attribute_values(":due_pk", s(due_partition(&lead.brand_id)))
            .expression_attribute_values(":at", s(retry_at.to_rfc3339()))
            .send()
            .await;
        applied(result)
    }

    /// Moves the lead's index entry to `next` (or out of the index), if it is
    /// still under `due`. Returns false if the lead changed meanwhile.
    pub async fn reschedule(
        &self,
        lead: &DueLead,
        due: &Due,
        next: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::lead(&lead.lead.lead_id).primary()))
            .condition_expression("gsi2sk = :due")
            .expression_attribute_values(":due", s(&due.raw));
        update = match next {
            Some(next) => update
                .update_expression("SET gsi2pk = :due_pk, gsi2sk = :next")
                .expression_attribute_values(":due_pk", s(due_partition(&lead.lead.brand_id)))
                .expression_attribute_values(":next", s(next.to_rfc3339())),
            None => update.update_expression("REMOVE gsi2pk, gsi2sk"),
        };
        applied(update.send().await)
    }

    /// Gives the lead to `to` (another consultant, or a first one after an
    /// expired claim offer or a pool retry), in one transaction: `to`'s open
    /// count goes up only below their cap, the previous assignee's (if any)
    /// goes down, and the lead only moves if it is unchanged since it was read
    /// under `due`. The new assignee gets a fresh first-contact deadline and
    /// exclusivity, and the index holds the first-contact deadline.
    pub async fn reassign(
        &self,
        lead: &DueLead,
        due: &Due,
        to: &StaffLoad,
        brand: &Brand,
        now: DateTime<Utc>,
    ) -> Result<ReassignResult, StoreError> {
        let record = &lead.lead;
        let dealer_id = record.dealer_id.as_deref().unwrap_or_default();
        let first_contact = now + chrono::Duration::minutes(i64::from(brand.first_contact_minutes));
        let exclusive = now + chrono::Duration::days(i64::from(brand.exclusivity_days));
        let mut release_previous = record.assignee.is_some();
        for _attempt in 0..2 {
            let mut lead_update = Update::builder()
                .table_name(&self.table)
                .set_key(Some(keys::lead(&record.lead_id).primary()))
                .update_expression(
                    "SET assignee = :to, #status = :assigned, assigned_at = :now, \
                     first_contact_due = :first, exclusive_until = :excl, \
                     gsi2pk = :due_pk, gsi2sk = :first REMOVE offered_to, pool_excluded",
                )
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":to", s(&to.staff_id))
                .expression_attribute_values(":assigned", s(wire_name(&LeadStatus::Assigned)))
                .expression_attribute_values(":now", s(now.to_rfc3339()))
                .expression_attribute_values(":first", s(first_contact.to_rfc3339()))
                .expression_attribute_values(":excl", s(exclusive.to_rfc3339()))
                .expression_attribute_values(":due_pk", s(due_partition(&record.brand_id)));
            lead_update = unchanged_since(lead_update, record, due);
            let mut items = vec![
                TransactWriteItem::builder()
                    .update(
                        Update::builder()
                            .table_name(&self.table)
                            .set_key(Some(keys::staff_counter(dealer_id, &to.staff_id).primary()))
                            .update_expression("ADD #open :one")
                            .condition_expression("attribute_not_exists(#open) OR #open < :cap")
                            .expression_attribute_names("#open", "open")
                            .expression_attribute_values(":one", n(1))
                            .expression_attribute_values(":cap", n(to.cap))
                            .build()
                            .expect("table and key are set"),
                    )
                    .build(),
                TransactWriteItem::builder()
                    .update(lead_update.build().expect("table and key are set"))
                    .build(),
            ];
            if let (true, Some(previous)) = (release_previous, &record.assignee) {
                items.push(self.release_slot(dealer_id, previous));
            }
            let result = self.transact(items).await;
            match result {
                Ok(_) => return Ok(ReassignResult::Reassigned),
                Err(err) => match cancelled(&err) {
                    Some(reasons) if reasons.get(1) == Some(&true) => {
                        return Ok(ReassignResult::Changed)
                    }
                    Some(reasons) if reasons.first() == Some(&true) => {
                        return Ok(ReassignResult::CapReached)
                    }
                    Some(reasons) if reasons.get(2) == Some(&true) => {
                        // The previous assignee's counter is already 0 (drift
                        // from before counters existed): move the lead anyway.
                        tracing::warn!(lead_id = %record.lead_id, "previous assignee's open counter is 0; not decremented");
                        release_previous = false;
                    }
                    _ => return Err(transaction_failed(err)),
                },
            }
        }
        Err(StoreError::Service {
            service: "dynamodb",
            message: format!("reassigning {} did not settle", record.lead_id),
        })
    }

    /// Nobody can take the lead: back to the dealer's pool (status new, no
    /// assignee, the previous assignee's slot freed), indexed for another try
    /// at `retry_at`; `exclude` (whose exclusivity lapsed) is not given it
    /// back by those tries. Returns false if the lead changed since it was read.
    pub async fn return_to_pool(
        &self,
        lead: &DueLead,
        due: &Due,
        retry_at: DateTime<Utc>,
        exclude: Option<&str>,
    ) -> Result<bool, StoreError> {
        let record = &lead.lead;
        let dealer_id = record.dealer_id.as_deref().unwrap_or_default();
        let mut release_previous = record.assignee.is_some();
        for _attempt in 0..2 {
            let (set_excluded, remove_excluded) = match exclude {
                Some(_) => (", pool_excluded = :excluded", ""),
                None => ("", ", pool_excluded"),
            };
            let mut lead_update = Update::builder()
                .table_name(&self.table)
                .set_key(Some(keys::lead(&record.lead_id).primary()))
                .update_expression(format!(
                    "SET #status = :new, gsi2pk = :due_pk, gsi2sk = :retry{set_excluded} \
                     REMOVE assignee, assigned_at, first_contact_due, exclusive_until, \
                     offered_to{remove_excluded}"
                ))
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":new", s(wire_name(&LeadStatus::New)))
                .expression_attribute_values(":due_pk", s(due_partition(&record.brand_id)))
                .expression_attribute_values(":retry", s(retry_at.to_rfc3339()));
            if let Some(excluded) = exclude {
                lead_update = lead_update.expression_attribute_values(":excluded", s(excluded));
            }
            lead_update = unchanged_since(lead_update, record, due);
            let mut items = vec![TransactWriteItem::builder()
                .update(lead_update.build().expect("table and key are set"))
                .build()];
            if let (true, Some(previous)) = (release_previous, &record.assignee) {
                items.push(self.release_slot(dealer_id, previous));
            }
            let result = self.transact(items).await;
            match result {
                Ok(_) => return Ok(true),
                Err(err) => match cancelled(&err) {
                    Some(reasons) if reasons.first() == Some(&true) => return Ok(false),
                    Some(reasons) if reasons.get(1) == Some(&true) => {
                        tracing::warn!(lead_id = %record.lead_id, "previous assignee's open counter is 0; not decremented");
                        release_previous = false;
                    }
                    _ => return Err(transaction_failed(err)),
                },
            }
        }
        Err(StoreError::Service {
            service: "dynamodb",
            message: format!("returning {} to the pool did not settle", record.lead_id),
        })
    }

    /// Frees one slot under a consultant's cap (never below zero).
    fn release_slot(&self, dealer_id: &str, staff_id: &str) -> TransactWriteItem {
        TransactWriteItem::builder()
            .update(
                Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(keys::staff_counter(dealer_id, staff_id).primary()))
                    .update_expression("ADD #open :minus")
                    .condition_expression("#open > :zero")
                    .expression_attribute_names("#open", "open")
                    .expression_attribute_values(":minus", n(-1))
                    .expression_attribute_values(":zero", n(0))
                    .build()
                    .expect("table and key are set"),
            )
            .build()
    }
}

/// Conditions an update of `record` on it being as the sweeper read it:
/// same status, same assignee (or still none), still indexed under `due`.
fn unchanged_since(
    update: aws_sdk_dynamodb::types::builders::UpdateBuilder,
    record: &LeadRecord,
    due: &Due,
) -> aws_sdk_dynamodb::types::builders::UpdateBuilder {
    let update = update
        .expression_attribute_values(":seen_status", s(wire_name(&record.status)))
        .expression_attribute_values(":seen_due", s(&due.raw));
    match &record.assignee {
        Some(previous) => update
            .condition_expression(
                "#status = :seen_status AND gsi2sk = :seen_due AND assignee = :previous",
            )
            .expression_attribute_values(":previous", s(previous)),
        None => update.condition_expression(
            "#status = :seen_status AND gsi2sk = :seen_due AND attribute_not_exists(assignee)",
        ),
    }
}

/// A deadline in the SLA index: the time and the stored string (conditions
/// compare the exact string the item holds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    pub at: DateTime<Utc>,
    pub raw: String,
}

/// A lead as read for the SLA sweeper, with the deadline it is indexed under
/// (`None`: not in the index any more).
#[derive(Debug, Clone, PartialEq)]
pub struct DueLead {
    pub lead: LeadRecord,
    pub due: Option<Due>,
    /// In the pool after this consultant's exclusivity lapsed: not them again.
    pub pool_excluded: Option<String>,
}

/// The result of a sweeper's reassignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReassignResult {
    Reassigned,
    /// The chosen consultant reached their cap concurrently: choose again.
    CapReached,
    /// The lead changed since it was read (contacted, claimed, or another
    /// sweeper run acted first): nothing to do.
    Changed,
}

/// The result of a consultant's status event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusResult {
    Applied,
    /// The lead changed since it was read (another event won): read and retry.
    Conflict,
}

/// The result of recording a route.
#[derive(Debug, Clone, PartialEq)]
pub enum RouteResult {
    Routed(Box<LeadRecord>),
    AlreadyRouted,
    /// The remote dealer's daily capacity was used up concurrently.
    CapacityTaken,
}
