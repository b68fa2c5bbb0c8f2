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
use leads_domain::dedup::ReturnTo;
use leads_domain::dedup::{self, DedupOutcome, KeyHolder, LinkDecision, LinkLead, LinkOutcome};
use leads_domain::directory::{Brand, Platform, Staff};
use leads_domain::lead::{
    CanonicalLead, CustomerKey, LeadRecord, LeadStatus, MilestoneKind, Touchpoint,
};
use leads_domain::ranking::LeadCounter;
use leads_domain::routing::Route;
use leads_domain::{status, wire_name, Phone};
use serde::{Deserialize, Serialize};

use super::item::{from_item, to_item, Item, Keys};

use crate::error::applied;
use crate::StoreError;

mod assign;
mod create;
mod dispatch;
mod erase;
mod events;
mod link;
mod returning;
mod sla;
pub use create::{Contended, CreateResult, IdentitySeen};
pub use events::{DueFollowUp, StatusResult};
pub use returning::{MergeTarget, Returning};
pub use sla::{Due, DueLead, ReassignResult};

/// What recording a delivery did.
#[derive(Debug, Clone, PartialEq)]
pub enum Recorded {
    Created(Box<LeadRecord>),
    Merged {
        lead: Box<LeadRecord>,
        /// The channel that knew the customer first (for overlap statistics).
        first_platform: Platform,
    },
    /// The customer's lead (`holder`, as stored) is closed or unrouted and
    /// takes no touch: the caller decides with `dedup::returning_to` (a new
    /// lead, or the lead that already continues it, `reopened_as`).
    NotMergeable {
        holder: Box<LeadRecord>,
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

mod keys;

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

/// The `by_due` partition of a brand's follow-up reminders (their own items,
/// `LEAD#<lead>/FOLLOWUP`): the sweeper reminds the assignee when one is due.
fn follow_up_partition(brand_id: &str) -> String {
    format!("FOLLOWUP#{brand_id}")
}

/// When the customer's data written at `now` expires: the brand's retention
/// after it (DynamoDB's TTL on `expires_at` deletes it then). Every write
/// that is activity on the lead (a delivery, a link, a status change) sets
/// it again on the items it touches.
fn expiry(brand: &Brand, now: DateTime<Utc>) -> AttributeValue {
    n((now + chrono::Duration::days(i64::from(brand.retention_days))).timestamp())
}

/// `item` with its expiry (see [`expiry`]).
fn expiring(mut item: Item, brand: &Brand, now: DateTime<Utc>) -> Item {
    item.insert("expires_at".into(), expiry(brand, now));
    item
}

/// The `SET` clause that appends a milestone (`:milestone`) to the lead,
/// and its values: pass both to the lead's update.
const APPEND_MILESTONE: &str =
    "milestones = list_append(if_not_exists(milestones, :no_milestones), :milestone)";

fn with_milestone(
    update: aws_sdk_dynamodb::types::builders::UpdateBuilder,
    kind: MilestoneKind,
    at: DateTime<Utc>,
) -> Result<aws_sdk_dynamodb::types::builders::UpdateBuilder, StoreError> {
    Ok(milestone_values(kind, at)?
        .into_iter()
        .fold(update, |u, (name, value)| {
            u.expression_attribute_values(name, value)
        }))
}

/// The values [`APPEND_MILESTONE`] names.
fn milestone_values(
    kind: MilestoneKind,
    at: DateTime<Utc>,
) -> Result<[(&'static str, AttributeValue); 2], StoreError> {
    let milestone = leads_domain::lead::Milestone { kind, at };
    Ok([
        (":no_milestones", AttributeValue::L(Vec::new())),
        (
            ":milestone",
            AttributeValue::L(vec![serde_dynamo::to_attribute_value(&milestone)?]),
        ),
    ])
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
    /// Car series the lead does not list yet (appended: interest accumulates).
    series: Vec<String>,
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
        lead.series_interest.extend(self.series);
    }
}

/// A lead as the link decision sees it.
fn view(lead: &LeadRecord) -> LinkLead<'_> {
    LinkLead {
        lead_id: &lead.lead_id,
        received_at: lead.received_at,
        status: lead.status,
        dealer_id: lead.dealer_id.as_deref(),
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

/// Whether item `at` of a cancelled transaction failed its condition (items
/// are named by position constants where the transaction is built).
fn failed(reasons: &[bool], at: usize) -> bool {
    reasons.get(at).copied().unwrap_or(false)
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

    /// The put of `event` into the audit table, for a transaction that must
    /// be audited as it happens (a hand-off, a follow-up, an erasure): an
    /// error when this store was built without its audit table.
    fn audit_put(
        &self,
        event: &leads_domain::audit::AuditEvent,
    ) -> Result<TransactWriteItem, StoreError> {
        let table = self.audit_table.as_ref().ok_or_else(|| {
            StoreError::Malformed(
                "an audited write needs the store's audit table (with_audit)".into(),
            )
        })?;
        let put = Put::builder()
            .table_name(table)
            .set_item(Some(crate::store::audit::audit_item(event)?))
            .build()
            .expect("table and item are set");
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn lead_item(&self, lead: &LeadRecord) -> Result<Item, StoreError> {
        to_item(&keys::lead(&lead.lead_id), lead)
    }

    /// Counts a created lead on the receiving dealer's day: a Douyin natural
    /// lead as its customer's marker (the ranking counts each customer
    /// once), any other on the counter of its kind (`ranking::LeadCounter`).
    fn count_lead(
        &self,
        dealer_id: &str,
        lead: &CanonicalLead,
        lead_id: &str,
    ) -> TransactWriteItem {
        let Some(field) = LeadCounter::of(lead.platform, lead.traffic).field() else {
            return self.natural_marker(dealer_id, dedup::china_day(lead.received_at), lead_id);
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

    /// The marker of a Douyin natural lead or merged touch of the customer
    /// whose lead is `lead_id`, on `dealer_id`'s account on `day`: the same
    /// key whenever it is written again (a redelivery, a second touch that
    /// day), so writing it is idempotent; the ranking counts distinct lead
    /// ids in its window. `natural_leads = 1` keeps a day's plain sum right
    /// for tools that add the day's items up.
    fn natural_marker(
        &self,
        dealer_id: &str,
        day: chrono::NaiveDate,
        lead_id: &str,
    ) -> TransactWriteItem {
        let update = Update::builder()
            .table_name(&self.stats_table)
            .set_key(Some(
                keys::natural_marker(dealer_id, day, lead_id).primary(),
            ))
            .update_expression("SET lead_id = :lead, natural_leads = :one")
            .expression_attribute_values(":lead", s(lead_id))
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
        let mut target = MergeTarget::default();
        for _attempt in 0..6 {
            // A hint, not the decision (the transactions' conditions decide):
            // a customer inside the window is merged, anyone else created.
            let known = self.customer(&customer_key).await?;
            let recorded = match known {
                Some(c) if c.window_until_s > now.timestamp() => {
                    target.reset_unless(&c.lead_id);
                    let holder_id = c.lead_id.clone();
                    match self
                        .merge_into(brand, lead, account_dealer, &customer_key, c, &target, now)
                        .await?
                    {
                        Some(Recorded::NotMergeable { holder }) => {
                            match (&holder.reopened_as, dedup::returning_to(holder.status)) {
                                (Some(next), _) => target.follow(&holder_id, next),
                                // This path routes after recording: an
                                // unrouted lead takes the touch and is
                                // routed from it.
                                (None, ReturnTo::NewLeadIfRoutable) => {
                                    target.accept_unrouted(&holder_id)
                                }
                                (None, ReturnTo::NewLead) => {
                                    let returning = Returning {
                                        identity_lead: &holder_id,
                                        holder: &holder,
                                    };
                                    if let Some(done) = self
                                        .try_create(
                                            brand,
                                            lead,
                                            account_dealer,
                                            &customer_key,
                                            None,
                                            Some(returning),
                                            now,
                                        )
                                        .await?
                                    {
                                        return Ok(done);
                                    }
                                }
                                (None, ReturnTo::Merge) => {}
                            }
                            None
                        }
                        other => other,
                    }
                }
                previous => {
                    self.try_create(
                        brand,
                        lead,
                        account_dealer,
                        &customer_key,
                        previous,
                        None,
                        now,
                    )
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

    #[allow(clippy::too_many_arguments)]
    async fn try_create(
        &self,
        brand: &Brand,
        lead: &CanonicalLead,
        account_dealer: Option<&str>,
        customer_key: &str,
        previous: Option<CustomerItem>,
        returning: Option<Returning<'_>>,
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
        if let Some(returning) = &returning {
            returning.continue_in(&mut record);
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
        // The transaction's items, by position (for its cancellation reasons).
        const IDENTITY: usize = 0;
        const MARKER: usize = 1;
        const LEAD: usize = 2;
        let mut items = vec![
            // IDENTITY: the customer is new, or their window has ended.
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(to_item(
                            &keys::customer(customer_key.to_string()),
                            &customer,
                        )?))
                        .condition_expression(match returning {
                            // Still the closed lead's, as read.
                            Some(_) => "lead_id = :holder",
                            None => "attribute_not_exists(pk) OR window_until_s <= :now",
                        })
                        .set_expression_attribute_values(Some(match &returning {
                            Some(r) => [(":holder".to_string(), s(r.identity_lead))].into(),
                            None => [(":now".to_string(), n(now.timestamp()))].into(),
                        }))
                        .build()
                        .expect("table and item are set"),
                )
                .build(),
            // MARKER: this delivery was not recorded before.
            self.put(
                to_item(
                    &keys::event(&brand.brand_id, &lead.source_event_id),
                    &marker,
                )?,
                Some("attribute_not_exists(pk)"),
            ),
            // LEAD, then its first touchpoint.
            self.put(self.lead_item(&record)?, Some("attribute_not_exists(pk)")),
            self.put(to_item(&keys::touchpoint(&lead_id, &touch), &touch)?, None),
        ];
        if let Some(returning) = &returning {
            // The closed lead points at this one (and only at this one).
            items.push(self.reopen_holder(returning.holder, &lead_id));
        }
        if let Some(dealer) = account_dealer {
            items.push(self.count_lead(dealer, lead, &lead_id));
        }
        let result = self.transact(items).await;
        match result {
            Ok(_) => Ok(Some(Recorded::Created(Box::new(record)))),
            Err(err) => match cancelled(&err) {
                Some(reasons) if failed(&reasons, MARKER) || failed(&reasons, LEAD) => self
                    .duplicate(&brand.brand_id, &lead.source_event_id)
                    .await
                    .map(Some),
                // The identity moved, or the closed lead was continued
                // meanwhile: decide again.
                Some(_) if returning.is_some() => Ok(None),
                Some(reasons) if failed(&reasons, IDENTITY) => Ok(None),
                _ => Err(transaction_failed(err)),
            },
        }
    }

    /// Merges a delivery into the customer's open lead (`customer` as read,
    /// `target` what the caller learnt of it, see `returning`):
    /// `None` when the identity changed meanwhile (decide again).
    /// `account_dealer`: the dealer whose account the delivery came in on; a
    /// Douyin natural touch counts for it (once per customer, see
    /// `natural_marker`).
    #[allow(clippy::too_many_arguments)]
    pub async fn merge_into(
        &self,
        brand: &Brand,
        lead: &CanonicalLead,
        account_dealer: Option<&str>,
        customer_key: &str,
        customer: CustomerItem,
        target: &MergeTarget,
        now: DateTime<Utc>,
    ) -> Result<Option<Recorded>, StoreError> {
        let lead_id = target.lead(&customer.lead_id).to_string();
        // Following a continuation: the identity names the new lead from now on.
        let repoint = if lead_id == customer.lead_id {
            "SET expires_at = :expires"
        } else {
            "SET expires_at = :expires, lead_id = :into"
        };
        // A closed lead takes no touch, nor an unrouted one unless accepted:
        // the cancellation returns it (see `Recorded::NotMergeable`).
        let refused = dedup::refusing_touches(target.takes_unrouted());
        let takes_touch = format!(
            "attribute_exists(pk) AND NOT (#status IN ({}))",
            refused
                .iter()
                .map(|st| format!(":{}", wire_name(st)))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let marker = EventMarker {
            lead_id: lead_id.clone(),
            outcome: DedupOutcome::Merged,
        };
        let touch = Touchpoint::from(lead);
        let day = dedup::china_day(lead.received_at);
        // The transaction's items, by position (for its cancellation reasons).
        const MARKER: usize = 1;
        const LEAD: usize = 3;
        let mut identity = Update::builder()
            .table_name(&self.table)
            .set_key(Some(keys::customer(customer_key.to_string()).primary()))
            .update_expression(repoint)
            .expression_attribute_values(":expires", expiry(brand, now))
            .condition_expression("lead_id = :lead AND window_until_s > :now")
            .expression_attribute_values(":lead", s(&customer.lead_id))
            .expression_attribute_values(":now", n(now.timestamp()));
        if lead_id != customer.lead_id {
            identity = identity.expression_attribute_values(":into", s(&lead_id));
        }
        let mut lead_update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(keys::lead(&lead_id).primary()))
            // The series this delivery asks about join the lead's
            // (a repeat is dropped when the lead is read).
            .update_expression(
                "ADD touchpoints :one SET expires_at = :expires, \
                 series_interest = list_append(if_not_exists(series_interest, :none), :series)",
            )
            .condition_expression(takes_touch)
            .expression_attribute_names("#status", "status")
            .return_values_on_condition_check_failure(
                aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
            )
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":expires", expiry(brand, now))
            .expression_attribute_values(":none", AttributeValue::L(Vec::new()))
            .expression_attribute_values(
                ":series",
                AttributeValue::L(lead.series_interest.iter().map(s).collect()),
            );
        for status in &refused {
            lead_update = lead_update.expression_attribute_values(
                format!(":{}", wire_name(status)),
                s(wire_name(status)),
            );
        }
        let items =
            vec![
            // 0: the identity still points at this lead (or the one it was
            // continued by), inside the window. Its data lives on: the
            // customer is active again.
            TransactWriteItem::builder()
                .update(identity.build().expect("table, key and condition are set"))
                .build(),
            // MARKER: this delivery was not recorded before (if it was, the
            // cancellation returns the marker: where it went).
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(expiring(
                            to_item(&keys::event(&brand.brand_id, &lead.source_event_id), &marker)?,
                            brand,
                            now,
                        )))
                        .condition_expression("attribute_not_exists(pk)")
                        .return_values_on_condition_check_failure(
                            aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
                        )
                        .build()
                        .expect("table and item are set"),
                )
                .build(),
            self.put(
                expiring(to_item(&keys::touchpoint(&lead_id, &touch), &touch)?, brand, now),
                None,
            ),
            // LEAD: open (see `takes_touch`).
            TransactWriteItem::builder()
                .update(lead_update.build().expect("table and key are set"))
                .build(),
            self.count_overlap(
                &brand.brand_id,
                day,
                dedup::overlap_pair(customer.first_platform, lead.platform),
            ),
        ];
        let mut items = items;
        // A merged Douyin natural touch still counts for the account's dealer.
        if let (Some(dealer), LeadCounter::DouyinNatural) =
            (account_dealer, LeadCounter::of(lead.platform, lead.traffic))
        {
            items.push(self.natural_marker(dealer, day, &lead_id));
        }
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
                Some(reasons) if failed(&reasons, MARKER) => {
                    match create::returned_item::<EventMarker>(&err, MARKER) {
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
                Some(reasons) if failed(&reasons, LEAD) => {
                    let holder = match create::returned_item::<LeadRecord>(&err, LEAD) {
                        Some(holder) => holder,
                        None => self.get(&lead_id).await?.ok_or_else(|| {
                            StoreError::Malformed(format!("lead {lead_id} missing"))
                        })?,
                    };
                    Ok(Some(Recorded::NotMergeable {
                        holder: Box::new(holder),
                    }))
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
        super::item::query_all(
            self.client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :tp)")
                .expression_attribute_values(":pk", s(format!("LEAD#{lead_id}")))
                .expression_attribute_values(":tp", s("TP#"))
                .consistent_read(true),
        )
        .await
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
        // Listed under its dealer from now on (`by_dealer`), or counted by
        // the brand's KPIs where it came in when nobody could take it.
        if let Some((pk, sk)) = leads_domain::lead_list::index_entry(&routed) {
            set.push("gsi3pk = :by_dealer_pk, gsi3sk = :by_dealer_sk");
            update = update
                .expression_attribute_values(":by_dealer_pk", s(pk))
                .expression_attribute_values(":by_dealer_sk", s(sk));
        }
        if let Some(proposed) = &lead.proposed_dealer {
            set.push("proposed_dealer = :proposed");
            update = update.expression_attribute_values(":proposed", s(proposed));
        }
        if routed.status == LeadStatus::Unroutable {
            set.push("#status = :unroutable");
            update = update
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":unroutable", s(wire_name(&LeadStatus::Unroutable)));
        }
        // The lead (still unrouted) is item LEAD; a remote-capacity slot may follow.
        const LEAD: usize = 0;
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
                Some(reasons) if failed(&reasons, LEAD) => Ok(RouteResult::AlreadyRouted),
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
}
/// The result of recording a route.
#[derive(Debug, Clone, PartialEq)]
pub enum RouteResult {
    Routed(Box<LeadRecord>),
    AlreadyRouted,
    /// The remote dealer's daily capacity was used up concurrently.
    CapacityTaken,
}

impl DynamoLeads {
    /// Every lead of one partition of the dealer index (a dealer's, or the
    /// brand's unroutable leads) received between `from` and `to` (sort
    /// keys, `ListQuery::bounds`): the cohort the service KPIs count. One
    /// Query per 1 MB page.
    pub async fn cohort(
        &self,
        partition: &str,
        (from, to): (&str, &str),
    ) -> Result<Vec<leads_domain::lead_list::LeadSummary>, StoreError> {
        super::item::query_all(
            self.client
                .query()
                .table_name(&self.table)
                .index_name("by_dealer")
                .key_condition_expression("gsi3pk = :pk AND gsi3sk BETWEEN :from AND :to")
                .expression_attribute_values(":pk", s(partition))
                .expression_attribute_values(":from", s(from))
                .expression_attribute_values(":to", s(to)),
        )
        .await
    }

    /// The brand's channel-overlap counters of one China day
    /// (`"douyin#autohome"` -> leads).
    pub async fn overlap_counts(
        &self,
        brand_id: &str,
        day: chrono::NaiveDate,
    ) -> Result<std::collections::BTreeMap<String, u64>, StoreError> {
        #[derive(Deserialize)]
        struct Counter {
            sk: String,
            #[serde(default)]
            leads: u64,
        }
        let pk = keys::overlap(brand_id, day, String::new()).pk;
        let counters: Vec<Counter> = super::item::query_all(
            self.client
                .query()
                .table_name(&self.stats_table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(pk)),
        )
        .await?;
        Ok(counters.into_iter().map(|c| (c.sk, c.leads)).collect())
    }

    /// One page of a dealer's leads, newest first (`by_dealer`; see
    /// `leads_domain::lead_list`), and where the next page starts. Each
    /// query asks for at most what is still missing, so a page never skips
    /// an item the filter would have kept.
    pub async fn dealer_leads(
        &self,
        q: &leads_domain::lead_list::ListQuery,
    ) -> Result<
        (
            Vec<leads_domain::lead_list::LeadSummary>,
            Option<leads_domain::lead_list::IndexKey>,
        ),
        StoreError,
    > {
        use leads_domain::lead_list::{Holder, IndexKey};
        let (from, to) = q.bounds();
        let pk = leads_domain::lead_list::index_partition(&q.dealer_id);
        let mut filters = Vec::new();
        let mut values = vec![(":pk", s(pk)), (":from", s(from)), (":to", s(to))];
        match &q.holder {
            Holder::Anyone => {}
            Holder::Pool => filters.push("attribute_not_exists(assignee)"),
            Holder::Staff(a) => {
                filters.push("assignee = :assignee");
                values.push((":assignee", s(a)));
            }
        }
        if let Some(status) = q.status {
            filters.push("#status = :status");
            values.push((":status", s(wire_name(&status))));
        }
        let mut start = q.after.as_ref().map(|k| {
            Item::from([
                ("pk".to_string(), s(&k.pk)),
                ("sk".to_string(), s(&k.sk)),
                ("gsi3pk".to_string(), s(&k.gsi3pk)),
                ("gsi3sk".to_string(), s(&k.gsi3sk)),
            ])
        });
        let mut leads = Vec::new();
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name("by_dealer")
                .key_condition_expression("gsi3pk = :pk AND gsi3sk BETWEEN :from AND :to")
                .scan_index_forward(false)
                .limit((q.limit as usize - leads.len()) as i32)
                .set_exclusive_start_key(start.take());
            for (name, value) in &values {
                query = query.expression_attribute_values(*name, value.clone());
            }
            if !filters.is_empty() {
                query = query.filter_expression(filters.join(" AND "));
            }
            if q.status.is_some() {
                query = query.expression_attribute_names("#status", "status");
            }
            let page = query.send().await.map_err(StoreError::dynamodb)?;
            for item in page.items.unwrap_or_default() {
                leads.push(from_item(item)?);
            }
            start = page.last_evaluated_key;
            if start.is_none() || leads.len() >= q.limit as usize {
                break;
            }
        }
        let next = start.map(|k| {
            let get = |name: &str| {
                k.get(name)
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_default()
            };
            IndexKey {
                pk: get("pk"),
                sk: get("sk"),
                gsi3pk: get("gsi3pk"),
                gsi3sk: get("gsi3sk"),
            }
        });
        Ok((leads, next))
    }
}

impl DynamoLeads {
    /// Every open lead `staff_id` holds at `dealer_id`, whenever received (a
    /// hand-off of all of them): the dealer index, filtered, every page.
    pub async fn open_leads_of(
        &self,
        dealer_id: &str,
        staff_id: &str,
    ) -> Result<Vec<String>, StoreError> {
        let pk = leads_domain::lead_list::index_partition(dealer_id);
        let open: Vec<AttributeValue> = [
            LeadStatus::Assigned,
            LeadStatus::Contacted,
            LeadStatus::Invited,
            LeadStatus::Visited,
        ]
        .iter()
        .filter(|s| status::is_open(**s))
        .map(|s| AttributeValue::S(wire_name(s)))
        .collect();
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("by_dealer")
            .key_condition_expression("gsi3pk = :pk")
            .filter_expression(format!(
                "assignee = :staff AND #status IN ({})",
                (0..open.len())
                    .map(|i| format!(":s{i}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":staff", s(staff_id));
        for (i, v) in open.into_iter().enumerate() {
            query = query.expression_attribute_values(format!(":s{i}"), v);
        }
        let items = super::item::query_all_items(query).await?;
        Ok(items
            .iter()
            .filter_map(|i| i.get("lead_id").and_then(|v| v.as_s().ok()).cloned())
            .collect())
    }
}
