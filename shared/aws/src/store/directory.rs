//! The directory in DynamoDB (layout documented on `DirectoryTable` in template.yaml).

use aws_sdk_dynamodb::types::AttributeValue;
use leads_domain::directory::{Brand, BrandOps, Dealer, Platform, PlatformAccount, Staff};
use leads_domain::directory_file::Directory;
use leads_domain::CityCode;

use super::item::{batch_put, from_item, query_all, to_item, Keys};
use crate::StoreError;

/// What the functions need from the directory.
#[allow(async_fn_in_trait)]
pub trait DirectoryStore {
    async fn save(&self, directory: &Directory) -> Result<usize, StoreError>;
    async fn brands(&self) -> Result<Vec<Brand>, StoreError>;
    async fn brand(&self, brand_id: &str) -> Result<Option<Brand>, StoreError>;
    async fn dealer(&self, dealer_id: &str) -> Result<Option<Dealer>, StoreError>;
    async fn account(
        &self,
        platform: Platform,
        account_id: &str,
    ) -> Result<Option<PlatformAccount>, StoreError>;
    async fn staff_of(&self, dealer_id: &str) -> Result<Vec<Staff>, StoreError>;
    /// The brand's staff member with this WeCom `UserID` (the brand's WeCom
    /// corp holds every dealer's consultants).
    async fn staff_by_wecom_userid(
        &self,
        brand_id: &str,
        userid: &str,
    ) -> Result<Option<Staff>, StoreError>;
    async fn dealers_of(&self, brand_id: &str) -> Result<Vec<Dealer>, StoreError>;
    async fn accounts_of(&self, brand_id: &str) -> Result<Vec<PlatformAccount>, StoreError>;
    /// Dealers of `brand_id` that serve `city`, by dealer id.
    async fn dealers_serving(
        &self,
        brand_id: &str,
        city: CityCode,
    ) -> Result<Vec<String>, StoreError>;
}

pub struct DynamoDirectory {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

pub mod keys {
    use super::*;

    pub fn brand(id: &str) -> Keys {
        Keys::new(format!("BRAND#{id}"), "BRAND").with_gsi1("BRANDS", format!("BRAND#{id}"))
    }
    pub fn dealer(d: &Dealer) -> Keys {
        dealer_id(&d.dealer_id).with_gsi1(
            format!("BRAND#{}", d.brand_id),
            format!("DEALER#{}", d.dealer_id),
        )
    }
    pub fn dealer_id(id: &str) -> Keys {
        Keys::new(format!("DEALER#{id}"), "DEALER")
    }
    /// A staff member's item.
    pub fn staff_id(dealer_id: &str, staff_id: &str) -> Keys {
        Keys::new(format!("DEALER#{dealer_id}"), format!("STAFF#{staff_id}"))
    }
    /// A staff member, findable by WeCom `UserID` within the brand.
    pub fn staff(s: &Staff, brand_id: &str) -> Keys {
        let keys = staff_id(&s.dealer_id, &s.staff_id);
        match &s.wecom_userid {
            Some(userid) => keys.with_gsi1(
                wecom_userid(brand_id, userid),
                format!("STAFF#{}", s.staff_id),
            ),
            None => keys,
        }
    }
    pub fn wecom_userid(brand_id: &str, userid: &str) -> String {
        format!("WECOM#{brand_id}#{userid}")
    }
    pub fn serves(d: &Dealer, city: CityCode) -> Keys {
        Keys::new(
            format!("DEALER#{}", d.dealer_id),
            format!("SERVES#{}", city.0),
        )
        .with_gsi1(
            format!("BRAND#{}#CITY#{}", d.brand_id, city.0),
            format!("DEALER#{}", d.dealer_id),
        )
    }
    pub fn account(a: &PlatformAccount) -> Keys {
        Keys::new(
            format!("ACCOUNT#{}#{}", a.platform, a.account_id),
            "ACCOUNT",
        )
        .with_gsi1(
            format!("BRAND#{}", a.brand_id),
            format!("ACCOUNT#{}#{}", a.platform, a.account_id),
        )
    }
    /// Brand operations staff live in their brand's partition.
    pub fn brand_ops(brand_id: &str, staff_id: &str) -> Keys {
        Keys::new(format!("BRAND#{brand_id}"), format!("OPS#{staff_id}"))
    }
    pub fn account_id(platform: Platform, id: &str) -> Keys {
        Keys::new(format!("ACCOUNT#{platform}#{id}"), "ACCOUNT")
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ServedCity {
    dealer_id: String,
    city: CityCode,
}

impl DynamoDirectory {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoDirectory {
            client,
            table: table.into(),
        }
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        keys: Keys,
    ) -> Result<Option<T>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(keys.primary()))
            // Callers cache what they read (the router for a minute): read the latest.
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::dynamodb)?;
        out.item.map(from_item).transpose()
    }

    /// All items of one partition (or one GSI partition) whose sort key starts with `prefix`.
    async fn query<T: serde::de::DeserializeOwned>(
        &self,
        index: Option<&str>,
        pk: String,
        prefix: &str,
    ) -> Result<Vec<T>, StoreError> {
        let (pk_name, sk_name) = match index {
            Some(_) => ("gsi1pk", "gsi1sk"),
            None => ("pk", "sk"),
        };
        query_all(
            self.client
                .query()
                .table_name(&self.table)
                .set_index_name(index.map(str::to_string))
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                .expression_attribute_names("#pk", pk_name)
                .expression_attribute_names("#sk", sk_name)
                .expression_attribute_values(":pk", AttributeValue::S(pk))
                .expression_attribute_values(":prefix", AttributeValue::S(prefix.to_string()))
                // Only the base table can be read consistently.
                .set_consistent_read(index.is_none().then_some(true)),
        )
        .await
    }
}

impl DynamoDirectory {
    /// A manager puts a consultant on or off duty (leave, a day off): one
    /// conditional update of the staff item; false if there is no such staff
    /// member. The router and the API see it when their snapshots refresh.
    pub async fn set_on_duty(
        &self,
        dealer_id: &str,
        staff_id: &str,
        on_duty: bool,
    ) -> Result<bool, StoreError> {
        crate::error::applied(
            self.update_staff(dealer_id, staff_id)
                .update_expression("SET on_duty = :on")
                .expression_attribute_values(":on", AttributeValue::Bool(on_duty))
                .send()
                .await,
        )
    }

    /// Sets (or with None removes) a staff member's leave window; false if
    /// they are not on that dealer's staff.
    pub async fn set_leave(
        &self,
        dealer_id: &str,
        staff_id: &str,
        leave: Option<&leads_domain::directory::Leave>,
    ) -> Result<bool, StoreError> {
        let update = self
            .update_staff(dealer_id, staff_id)
            .expression_attribute_names("#leave", "leave");
        let update = match leave {
            Some(l) => update
                .update_expression("SET #leave = :leave")
                .expression_attribute_values(":leave", serde_dynamo::to_attribute_value(l)?),
            None => update.update_expression("REMOVE #leave"),
        };
        crate::error::applied(update.send().await)
    }

    /// An update of one staff item that exists (a manager's change).
    fn update_staff(
        &self,
        dealer_id: &str,
        staff_id: &str,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::staff_id(dealer_id, staff_id).primary()))
            .condition_expression("attribute_exists(pk)")
    }
}

/// For `leadctl directory apply`: the live side of a diff, and removals.
impl DynamoDirectory {
    /// The cities a dealer's index items say it serves (what the router
    /// queries), whatever its own record lists.
    pub async fn served_cities_of(&self, dealer_id: &str) -> Result<Vec<CityCode>, StoreError> {
        let served: Vec<ServedCity> = self
            .query(None, format!("DEALER#{dealer_id}"), "SERVES#")
            .await?;
        Ok(served.into_iter().map(|s| s.city).collect())
    }

    /// What is stored for `brand_ids`: brands, their dealers (served cities
    /// from the index items), the dealers' staff, the brands' accounts.
    pub async fn live(
        &self,
        brand_ids: &[String],
    ) -> Result<leads_domain::directory_file::Directory, StoreError> {
        let mut live = leads_domain::directory_file::Directory {
            brands: vec![],
            dealers: vec![],
            staff: vec![],
            accounts: vec![],
            brand_ops: vec![],
        };
        for brand_id in brand_ids {
            if let Some(brand) = self.brand(brand_id).await? {
                live.brands.push(brand);
            }
            for mut dealer in self.dealers_of(brand_id).await? {
                dealer.served_cities = self.served_cities_of(&dealer.dealer_id).await?;
                live.staff.extend(self.staff_of(&dealer.dealer_id).await?);
                live.dealers.push(dealer);
            }
            live.accounts.extend(self.accounts_of(brand_id).await?);
            live.brand_ops.extend(self.brand_ops_of(brand_id).await?);
        }
        Ok(live)
    }

    /// The brand's operations staff.
    pub async fn brand_ops_of(&self, brand_id: &str) -> Result<Vec<BrandOps>, StoreError> {
        self.query(None, format!("BRAND#{brand_id}"), "OPS#").await
    }

    /// One of the brand's operations staff, if they are in the directory.
    pub async fn brand_ops(
        &self,
        brand_id: &str,
        staff_id: &str,
    ) -> Result<Option<BrandOps>, StoreError> {
        self.get(keys::brand_ops(brand_id, staff_id)).await
    }

    /// Deletes the removed records' items; returns how many.
    pub async fn remove(
        &self,
        removals: &[leads_domain::directory_diff::Removal],
    ) -> Result<usize, StoreError> {
        use aws_sdk_dynamodb::types::{DeleteRequest, WriteRequest};
        use leads_domain::directory_diff::Removal;
        let keys: Vec<Keys> = removals
            .iter()
            .map(|r| match r {
                Removal::Dealer { dealer_id } => keys::dealer_id(dealer_id),
                Removal::ServedCity { dealer_id, city } => {
                    Keys::new(format!("DEALER#{dealer_id}"), format!("SERVES#{}", city.0))
                }
                Removal::Staff {
                    dealer_id,
                    staff_id,
                } => keys::staff_id(dealer_id, staff_id),
                Removal::Account {
                    platform,
                    account_id,
                } => keys::account_id(*platform, account_id),
                Removal::BrandOps { brand_id, staff_id } => keys::brand_ops(brand_id, staff_id),
            })
            .collect();
        for chunk in keys.chunks(25) {
            let requests = chunk
                .iter()
                .map(|k| {
                    let delete = DeleteRequest::builder()
                        .set_key(Some(k.primary()))
                        .build()
                        .expect("key is set");
                    WriteRequest::builder().delete_request(delete).build()
                })
                .collect();
            super::item::write_chunk(&self.client, &self.table, requests).await?;
        }
        Ok(keys.len())
    }
}

impl DirectoryStore for DynamoDirectory {
    /// Upserts every record (seeding is re-runnable); returns the number of items written.
    async fn save(&self, directory: &Directory) -> Result<usize, StoreError> {
        let mut items = Vec::new();
        for b in &directory.brands {
            items.push(to_item(&keys::brand(&b.brand_id), b)?);
        }
        for d in &directory.dealers {
            items.push(to_item(&keys::dealer(d), d)?);
            for &city in &d.served_cities {
                let served = ServedCity {
                    dealer_id: d.dealer_id.clone(),
                    city,
                };
                items.push(to_item(&keys::serves(d, city), &served)?);
            }
        }
        for s in &directory.staff {
            // Validation guarantees every staff member's dealer is listed.
            let brand_id = directory
                .dealers
                .iter()
                .find(|d| d.dealer_id == s.dealer_id)
                .map(|d| d.brand_id.as_str())
                .unwrap_or_default();
            items.push(to_item(&keys::staff(s, brand_id), s)?);
        }
        for a in &directory.accounts {
            items.push(to_item(&keys::account(a), a)?);
        }
        for o in &directory.brand_ops {
            items.push(to_item(&keys::brand_ops(&o.brand_id, &o.staff_id), o)?);
        }
        let count = items.len();
        batch_put(&self.client, &self.table, items).await?;
        Ok(count)
    }

    async fn brands(&self) -> Result<Vec<Brand>, StoreError> {
        self.query(Some("by_brand"), "BRANDS".into(), "BRAND#")
            .await
    }

    async fn brand(&self, brand_id: &str) -> Result<Option<Brand>, StoreError> {
        self.get(keys::brand(brand_id)).await
    }

    async fn dealer(&self, dealer_id: &str) -> Result<Option<Dealer>, StoreError> {
        self.get(keys::dealer_id(dealer_id)).await
    }

    async fn account(
        &self,
        platform: Platform,
        account_id: &str,
    ) -> Result<Option<PlatformAccount>, StoreError> {
        self.get(keys::account_id(platform, account_id)).await
    }

    async fn staff_of(&self, dealer_id: &str) -> Result<Vec<Staff>, StoreError> {
        self.query(None, format!("DEALER#{dealer_id}"), "STAFF#")
            .await
    }

    async fn dealers_of(&self, brand_id: &str) -> Result<Vec<Dealer>, StoreError> {
        self.query(Some("by_brand"), format!("BRAND#{brand_id}"), "DEALER#")
            .await
    }

    async fn staff_by_wecom_userid(
        &self,
        brand_id: &str,
        userid: &str,
    ) -> Result<Option<Staff>, StoreError> {
        let found: Vec<Staff> = self
            .query(
                Some("by_brand"),
                keys::wecom_userid(brand_id, userid),
                "STAFF#",
            )
            .await?;
        Ok(found.into_iter().next())
    }

    async fn accounts_of(&self, brand_id: &str) -> Result<Vec<PlatformAccount>, StoreError> {
        self.query(Some("by_brand"), format!("BRAND#{brand_id}"), "ACCOUNT#")
            .await
    }

    async fn dealers_serving(
        &self,
        brand_id: &str,
        city: CityCode,
    ) -> Result<Vec<String>, StoreError> {
        let served: Vec<ServedCity> = self
            .query(
                Some("by_brand"),
                format!("BRAND#{brand_id}#CITY#{}", city.0),
                "DEALER#",
            )
            .await?;
        Ok(served.into_iter().map(|s| s.dealer_id).collect())
    }
}
