//! A brand of its own per test, seeded into the directory, with the router
//! wired to scratch notification/CRM queues.

use chrono::Utc;
use lead_router::Router;
use leads_aws::store::{DirectoryStore, DynamoAudit, DynamoDirectory, DynamoLeads};
use leads_domain::directory::{AssignmentStrategy, Brand, Platform};
use leads_domain::directory_file::DirectoryFile;
use leads_domain::identity::PhoneHasher;
use leads_domain::lead::{CanonicalLead, CustomerKey, Scene, Traffic};
use leads_domain::{city, Phone};

use crate::{scratch_queue_like, stack, unique, Stack};

pub struct World {
    pub brand: String,
    pub router: Router,
    pub leads: DynamoLeads,
    pub audit: DynamoAudit,
    pub notifications: String,
    pub crm: String,
    pub stack: Stack,
}

impl World {
    /// A router of its own, with the world's scratch queues: its directory
    /// snapshot is fresh, so it sees what a test changed in the directory
    /// (the world's router may have cached the old records for a minute).
    pub fn fresh_router(&self) -> Router {
        let mut settings = self.stack.settings.clone();
        settings.queues.notification = self.notifications.clone();
        settings.queues.crm = self.crm.clone();
        Router::new(&settings, &self.stack.clients)
    }

    fn directory(&self) -> DynamoDirectory {
        DynamoDirectory::new(
            self.stack.clients.dynamodb.clone(),
            &self.stack.settings.tables.directory,
        )
    }

    /// Adds the brand's operations staff (`brand_ops` rows of the directory
    /// file, as JSON) to the world's directory.
    pub async fn add_brand_ops(&self, rows: &[serde_json::Value]) {
        let directory = leads_domain::directory_file::Directory {
            brands: vec![],
            dealers: vec![],
            staff: vec![],
            accounts: vec![],
            brand_ops: rows
                .iter()
                .map(|r| serde_json::from_value(r.clone()).expect("a brand_ops row"))
                .collect(),
        };
        self.directory()
            .save(&directory)
            .await
            .expect("the directory takes the rows");
    }

    /// The world's brand, as the directory has it.
    pub async fn brand_settings(&self) -> Brand {
        self.directory()
            .brand(&self.brand)
            .await
            .expect("the directory answers")
            .expect("the world's brand")
    }

    /// Changes the world's brand settings in the directory (a router or API
    /// built afterwards sees them).
    pub async fn change_brand(&self, change: impl FnOnce(&mut Brand)) {
        let mut brand = self.brand_settings().await;
        change(&mut brand);
        let directory = leads_domain::directory_file::Directory {
            brands: vec![brand],
            dealers: vec![],
            staff: vec![],
            accounts: vec![],
            brand_ops: vec![],
        };
        self.directory()
            .save(&directory)
            .await
            .expect("the directory takes the brand");
    }
}

/// A brand of its own (so parallel tests never share counters): a Jinan dealer
/// serving Tai'an, a Qingdao dealer, staff with the given caps and strategy.
pub async fn world(strategy: AssignmentStrategy, caps: &[u32]) -> Option<World> {
    let stack = stack().await?;
    let brand = unique("brand");
    let staff: Vec<serde_json::Value> = caps
        .iter()
        .enumerate()
        .map(|(i, cap)| {
            serde_json::json!({"staff_id": format!("{brand}-jn-s{i}"), "dealer_id": format!("{brand}-jn"),
                "name": format!("顾问{i}"), "role": "sales", "on_duty": true, "cap": cap})
        })
        .chain([
            serde_json::json!({"staff_id": format!("{brand}-jn-mgr"), "dealer_id": format!("{brand}-jn"), "name": "店总", "role": "manager", "on_duty": true, "cap": 0}),
            serde_json::json!({"staff_id": format!("{brand}-qd-s0"), "dealer_id": format!("{brand}-qd"), "name": "青岛顾问", "role": "sales", "on_duty": true, "cap": 50,
                "wecom_userid": format!("{brand}-qd-s0-wx")}),
        ])
        .collect();
    let file: DirectoryFile = serde_json::from_value(serde_json::json!({
        "brands": [{"brand_id": brand, "name": "测试品牌", "protection_days": 30}],
        "dealers": [
            {"dealer_id": format!("{brand}-jn"), "brand_id": brand, "name": "济南店", "city": "济南", "served_cities": ["泰安"], "strategy": strategy},
            {"dealer_id": format!("{brand}-qd"), "brand_id": brand, "name": "青岛店", "city": "青岛", "served_cities": ["烟台"], "strategy": "round_robin"}
        ],
        "staff": staff,
        "accounts": [
            {"platform": "douyin", "account_id": format!("{brand}-dy-jn"), "brand_id": brand, "owner": "dealer", "dealer_id": format!("{brand}-jn")},
            {"platform": "autohome", "account_id": format!("{brand}-ah-jn"), "brand_id": brand, "owner": "dealer", "dealer_id": format!("{brand}-jn")},
            {"platform": "douyin", "account_id": format!("{brand}-dy-brand"), "brand_id": brand, "owner": "brand"},
            {"platform": "wecom", "account_id": format!("{brand}-wx"), "brand_id": brand, "owner": "dealer", "dealer_id": format!("{brand}-jn")},
            // The brand's own WeCom corp, holding every dealer's consultants.
            {"platform": "wecom", "account_id": format!("{brand}-wxcorp"), "brand_id": brand, "owner": "brand"},
            {"platform": "oem_crm", "account_id": format!("{brand}-crm"), "brand_id": brand, "owner": "dealer", "dealer_id": format!("{brand}-jn")}
        ]
    }))
    .unwrap();
    let directory = file.validate().unwrap();
    let t = &stack.settings.tables;
    DynamoDirectory::new(stack.clients.dynamodb.clone(), &t.directory)
        .save(&directory)
        .await
        .unwrap();
    let mut settings = stack.settings.clone();
    settings.queues.notification =
        scratch_queue_like(&stack.clients.sqs, &settings.queues.notification).await;
    settings.queues.crm = scratch_queue_like(&stack.clients.sqs, &settings.queues.crm).await;
    Some(World {
        router: Router::new(&settings, &stack.clients),
        leads: DynamoLeads::new(stack.clients.dynamodb.clone(), &t.leads, &t.stats),
        audit: DynamoAudit::new(stack.clients.dynamodb.clone(), &t.audit),
        notifications: settings.queues.notification,
        crm: settings.queues.crm,
        brand,
        stack,
    })
}

pub fn lead(
    w: &World,
    platform: Platform,
    account: &str,
    phone: &str,
    city_name: Option<&str>,
) -> CanonicalLead {
    let phone = Phone::parse(phone).unwrap();
    CanonicalLead {
        source_event_id: unique("evt"),
        platform,
        account_id: format!("{}-{account}", w.brand),
        scene: Scene::PrivateMessage,
        traffic: Traffic::Natural,
        customer: CustomerKey::Phone {
            hash: PhoneHasher::new(b"k".to_vec()).hash(&phone),
        },
        linked_customer: None,
        phone: Some(phone),
        customer_name: None,
        declared_city: city_name.map(|c| city::normalise(c).unwrap().code),
        attributed_city: None,
        series_interest: vec!["H5".into()],
        staff_hint: None,
        channel_tag: None,
        received_at: Utc::now(),
        raw_payload_ref: "RAW#test".into(),
        signer_brand: None,
        sealed_contact: None,
    }
}

/// A WeCom contact added at the Jinan dealer (`{brand}-wx` is the corp id):
/// no phone, keyed by its external user id.
pub fn wecom_lead(w: &World, external_userid: &str) -> CanonicalLead {
    CanonicalLead {
        source_event_id: unique("wx"),
        platform: Platform::Wecom,
        account_id: format!("{}-wx", w.brand),
        scene: Scene::WecomContact,
        traffic: Traffic::Natural,
        customer: wecom_key(w, external_userid),
        linked_customer: None,
        phone: None,
        customer_name: None,
        declared_city: None,
        attributed_city: None,
        series_interest: vec![],
        staff_hint: None,
        channel_tag: None,
        received_at: Utc::now(),
        raw_payload_ref: "RAW#test".into(),
        signer_brand: None,
        sealed_contact: None,
    }
}

/// The key of a WeCom contact of the world's corp.
pub fn wecom_key(w: &World, external_userid: &str) -> CustomerKey {
    CustomerKey::Wecom {
        corp_id: format!("{}-wx", w.brand),
        external_userid: external_userid.to_string(),
    }
}

/// The dedup key of a phone, as the world's leads compute it (hash key `k`).
pub fn phone_key(phone: &str) -> CustomerKey {
    CustomerKey::Phone {
        hash: PhoneHasher::new(b"k".to_vec()).hash(&Phone::parse(phone).unwrap()),
    }
}

/// A random-looking but valid mobile number per test, so customers never collide.
pub fn phone() -> String {
    let n = unique("p");
    let digits: String = n.chars().filter(|c| c.is_ascii_digit()).collect();
    format!(
        "139{}",
        &format!("{:0>8}", &digits[digits.len().saturating_sub(8)..])
    )
}

/// Today's channel-overlap counter of the world's brand for `pair`
/// (`"douyin#wecom"`): how often the later channel brought back a customer
/// the first one knew. 0 when never counted.
pub async fn overlap(w: &World, pair: &str) -> u64 {
    use aws_sdk_dynamodb::types::AttributeValue;
    let day = leads_domain::dedup::china_day(Utc::now());
    let item = w
        .stack
        .clients
        .dynamodb
        .get_item()
        .table_name(&w.stack.settings.tables.stats)
        .key(
            "pk",
            AttributeValue::S(format!("OVERLAP#{}#{day}", w.brand)),
        )
        .key("sk", AttributeValue::S(pair.to_string()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item;
    item.and_then(|i| i.get("leads").and_then(|v| v.as_n().ok()?.parse().ok()))
        .unwrap_or(0)
}
