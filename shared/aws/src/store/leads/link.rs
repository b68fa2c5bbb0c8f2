//! Links: a customer's other key joined to their lead, or two leads of one customer merged.

use super::*;

impl DynamoLeads {
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
        self.link_as(brand, lead, key, phone, now, false).await
    }

    /// A link a staff member asked for (`dedup::decide_staff_link`): as
    /// [`Self::link`], but a key held by another dealer's live lead is
    /// `Refused` and nothing is written.
    pub async fn link_for_staff(
        &self,
        brand: &Brand,
        lead: &LeadRecord,
        key: &CustomerKey,
        phone: Option<&Phone>,
        now: DateTime<Utc>,
    ) -> Result<LinkOutcome, StoreError> {
        self.link_as(brand, lead, key, phone, now, true).await
    }

    async fn link_as(
        &self,
        brand: &Brand,
        lead: &LeadRecord,
        key: &CustomerKey,
        phone: Option<&Phone>,
        now: DateTime<Utc>,
        staff: bool,
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
            if staff && anchor.dealer_id != lead.dealer_id {
                // Merged into another dealer's lead: not the caller's to touch.
                return Ok(LinkOutcome::Refused {
                    lead: Box::new(lead.clone()),
                    holder_lead_id: anchor.lead_id,
                });
            }
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
                if staff {
                    dedup::decide_staff_link(&view(&anchor), holder.as_ref(), now)
                } else {
                    dedup::decide_link(&view(&anchor), holder.as_ref(), now)
                }
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
                LinkDecision::HeldByOtherDealer => Some(LinkOutcome::Refused {
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
    pub(super) async fn follow_merges(
        &self,
        mut lead: LeadRecord,
    ) -> Result<LeadRecord, StoreError> {
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
    pub(super) async fn try_link(
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
            .set_item(Some(expiring(
                to_item(&keys::customer(key_pk.to_string()), &identity)?,
                brand,
                now,
            )));
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
            None,
            expiry(brand, now),
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
    pub(super) fn absorb_update(
        &self,
        lead: &LeadRecord,
        new_keys: &[CustomerKey],
        fill: &Fill,
        touchpoints: u32,
        absorbed: Option<&str>,
        expires: AttributeValue,
    ) -> Result<TransactWriteItem, StoreError> {
        // Its data lives on: the customer is active again.
        let mut set = vec!["expires_at = :expires"];
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(keys::lead(&lead.lead_id).primary()))
            .condition_expression(
                "attribute_exists(pk) AND attribute_not_exists(merged_into) AND #status = :seen_status",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":seen_status", s(wire_name(&lead.status)))
            .expression_attribute_values(":expires", expires);
        if let Some(absorbed) = absorbed {
            // An erasure finds the leads merged into this one here.
            set.push(
                "absorbed_leads = list_append(if_not_exists(absorbed_leads, :none), :absorbed)",
            );
            update = update
                .expression_attribute_values(":none", AttributeValue::L(Vec::new()))
                .expression_attribute_values(":absorbed", AttributeValue::L(vec![s(absorbed)]));
        }
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
        if !fill.series.is_empty() {
            set.push("series_interest = list_append(if_not_exists(series_interest, :no_series), :series)");
            update = update
                .expression_attribute_values(":no_series", AttributeValue::L(Vec::new()))
                .expression_attribute_values(
                    ":series",
                    AttributeValue::L(fill.series.iter().map(s).collect()),
                );
        }
        if let Some(city) = fill.city {
            set.push("customer_city = if_not_exists(customer_city, :city)");
            update = update
                .expression_attribute_values(":city", serde_dynamo::to_attribute_value(city)?);
        }
        let mut expression = format!("SET {}", set.join(", "));
        if touchpoints > 0 {
            expression.push_str(" ADD touchpoints :touches");
            update = update.expression_attribute_values(":touches", n(touchpoints));
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
    pub(super) async fn try_merge_leads(
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
            series: absorbed
                .series_interest
                .iter()
                .filter(|s| !survivor.series_interest.contains(s))
                .cloned()
                .collect(),
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
                self.absorb_update(
                    &survivor,
                    &new_keys,
                    &fill,
                    absorbed.touchpoints,
                    Some(&absorbed.lead_id),
                    expiry(brand, now),
                )?,
            ];
            // The identities move to the survivor's window.
            for pk in &repoint {
                let mut set = vec![
                    "lead_id = :survivor",
                    "first_platform = :platform",
                    "first_seen = :seen",
                    "window_until_s = :until",
                    "expires_at = :expires",
                ];
                let mut update = Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(keys::customer(pk.clone()).primary()))
                    .condition_expression("lead_id = :absorbed")
                    .expression_attribute_values(":absorbed", s(&absorbed.lead_id))
                    .expression_attribute_values(":survivor", s(&survivor.lead_id))
                    .expression_attribute_values(":expires", expiry(brand, now))
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
                items.push(self.put(
                    expiring(
                        to_item(&keys::touchpoint(&survivor.lead_id, t), t)?,
                        brand,
                        now,
                    ),
                    None,
                ));
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
                        if release_at.is_some_and(|i| failed(&reasons, i))
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
}
