//! A deterministic, realistic batch of platform webhooks for the sample
//! directory, in each platform's wire format with real signatures, plus what
//! the generator knows it sent (so the report can be checked against it).
//!
//! Shapes from the brief: ~30% of Douyin customers also reach the dealer through
//! another network, ~5% through vertical media; some customers ask about two
//! series; some live in another city (remote) or a city nobody serves; a live
//! group-buy burst; platform redeliveries; a few forged, stale or malformed calls.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use leads_domain::directory::{AccountOwner, Platform};
use leads_domain::directory_file::Directory;
use leads_domain::intake::secrets::IntakeSecrets;
use leads_domain::intake::{douyin, hmac_sources, wecom, Source};

/// What the intake should answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Accepted,
    /// A copy of an accepted delivery (same platform event id).
    Redelivery,
    Rejected(u16),
}

#[derive(Debug, Clone)]
pub struct Webhook {
    pub source: Source,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub expect: Expect,
}

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Expected {
    /// Webhooks the intake must accept, acknowledge as redeliveries, reject.
    pub accepted: usize,
    pub redeliveries: usize,
    pub rejected: usize,
    /// Distinct customers with an accepted lead: each must become one lead.
    pub leads: usize,
    /// Accepted deliveries beyond a customer's first: each must merge.
    pub merges: usize,
    pub stats: usize,
}

pub struct Dataset {
    pub webhooks: Vec<Webhook>,
    pub expected: Expected,
    /// The phone each WeCom contact (by external user id) gives the consultant
    /// in the chat: the event does not carry it.
    pub wecom_phones: HashMap<String, String>,
}

/// SplitMix64: tiny, deterministic, good enough to shape test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const SURNAMES: [&str; 10] = ["王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴"];
const SERIES: [&str; 5] = ["H5", "S7", "E3", "X9", "M6"];
const UNSERVED: [&str; 3] = ["拉萨", "乌鲁木齐", "海口"];

struct Customer {
    phone: Option<String>,
    name: String,
    city: Option<String>,
    series: Vec<String>,
}

/// Builds the batch. `customers` sets the size; `now` stamps the signatures.
pub fn generate(
    directory: &Directory,
    secrets: &IntakeSecrets,
    customers: usize,
    seed: u64,
    now: DateTime<Utc>,
) -> Dataset {
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    let mut expected = Expected::default();
    let mut wecom_phones = HashMap::new();
    let accounts = |dealer: &str, platform: Platform| {
        directory
            .accounts
            .iter()
            .find(|a| {
                a.platform == platform
                    && a.owner
                        == AccountOwner::Dealer {
                            dealer_id: dealer.into(),
                        }
            })
            .map(|a| a.account_id.clone())
    };
    let mut event_seq = 0u64;
    let mut next_id = |prefix: &str| {
        event_seq += 1;
        format!("{prefix}-{seed}-{event_seq}")
    };
    let cities_of: HashMap<&str, Vec<String>> = directory
        .dealers
        .iter()
        .map(|d| {
            let names = d
                .served_cities
                .iter()
                .filter_map(|c| leads_domain::city::by_code(*c).map(|c| c.name.to_string()))
                .collect();
            (d.dealer_id.as_str(), names)
        })
        .collect();

    // A live group-buy: the last 15% of customers all leave their number on
    // one dealer's Douyin live stream, and arrive together (below).
    let live_dealer = directory
        .dealers
        .iter()
        .find(|d| accounts(&d.dealer_id, Platform::Douyin).is_some())
        .cloned();
    let live_from = customers - customers * 15 / 100;
    let mut burst: Vec<Webhook> = Vec::new();
    for i in 0..customers {
        let live = i >= live_from && live_dealer.is_some();
        let dealer = match (&live_dealer, live) {
            (Some(d), true) => d.clone(),
            _ => rng.pick(&directory.dealers).clone(),
        };
        let same_brand: Vec<_> = directory
            .dealers
            .iter()
            .filter(|d| d.brand_id == dealer.brand_id && d.dealer_id != dealer.dealer_id)
            .collect();
        // Where the customer lives: mostly local, some remote, a few unserved.
        let roll = rng.below(100);
        let city = if roll < 78 {
            Some(rng.pick(&cities_of[dealer.dealer_id.as_str()]).clone())
        } else if roll < 93 && !same_brand.is_empty() {
            let other = rng.pick(&same_brand);
            Some(rng.pick(&cities_of[other.dealer_id.as_str()]).clone())
        } else if roll < 96 {
            Some(rng.pick(&UNSERVED).to_string())
        } else {
            None // unknown: phone prefix decides, else stays local
        };
        let mut series = vec![rng.pick(&SERIES).to_string()];
        if rng.chance(0.2) {
            series.push(rng.pick(&SERIES).to_string());
            series.dedup();
        }
        let customer = Customer {
            // 19x numbers have no prefix attribution (unknown city).
            phone: Some(format!(
                "1{}{:08}",
                rng.pick(&["38", "39", "58", "86", "99", "37"]),
                rng.next_u64() % 100_000_000
            )),
            name: format!(
                "{}{}",
                rng.pick(&SURNAMES),
                if rng.chance(0.5) { "先生" } else { "女士" }
            ),
            city,
            series,
        };

        // The first channel, then the cross-channel overlap the brief measures.
        let first = match rng.below(100) {
            _ if live => Platform::Douyin,
            0..=59 => Platform::Douyin,
            60..=77 => Platform::Feiyu,
            78..=85 => Platform::Autohome,
            86..=91 => Platform::Dongchedi,
            92..=95 => Platform::OemCrm,
            _ => Platform::Wecom,
        };
        let mut channels = vec![first];
        if first == Platform::Douyin {
            if rng.chance(0.30) {
                channels.push(*rng.pick(&[Platform::Feiyu, Platform::OemCrm, Platform::Feiyu]));
            }
            if rng.chance(0.05) {
                channels.push(*rng.pick(&[Platform::Autohome, Platform::Dongchedi]));
            }
        }
        let chat_phone = customer.phone.clone();
        let customer = if first == Platform::Wecom {
            Customer {
                phone: None,
                ..customer
            }
        } else {
            customer
        };

        let mut accepted = 0;
        for platform in channels {
            let account = match platform {
                Platform::OemCrm | Platform::Wecom => directory
                    .accounts
                    .iter()
                    .find(|a| a.platform == platform && a.brand_id == dealer.brand_id)
                    .map(|a| a.account_id.clone()),
                p => accounts(&dealer.dealer_id, p),
            };
            let Some(account) = account else { continue };
            let hook = match platform {
                Platform::Douyin => {
                    douyin_lead(&mut rng, secrets, &account, &customer, next_id("dy"), now)
                }
                Platform::Wecom => {
                    let id = next_id("ww");
                    if let Some(phone) = &chat_phone {
                        wecom_phones.insert(format!("wm{id}"), phone.clone());
                    }
                    wecom_contact(&mut rng, secrets, &account, &dealer.dealer_id, id, now)
                }
                p => hmac_lead(&mut rng, secrets, p, &account, &customer, next_id("h"), now),
            };
            let Some(hook) = hook else { continue };
            let arrivals = if live { &mut burst } else { &mut out };
            // Platforms redeliver when our answer was slow or lost.
            if rng.chance(0.05) {
                let mut copy = hook.clone();
                copy.expect = Expect::Redelivery;
                arrivals.push(copy);
            }
            arrivals.push(hook);
            accepted += 1;
        }
        if accepted > 0 {
            expected.leads += 1;
            expected.merges += accepted - 1;
        }
    }

    // A few hostile or broken calls.
    let forged_count = (customers / 40).max(2);
    for i in 0..forged_count {
        let customer = Customer {
            phone: Some("13800138000".into()),
            name: "x".into(),
            city: None,
            series: vec![],
        };
        let account =
            accounts(&directory.dealers[0].dealer_id, Platform::Douyin).unwrap_or_default();
        if let Some(mut hook) = douyin_lead(
            &mut rng,
            secrets,
            &account,
            &customer,
            next_id("forged"),
            now,
        ) {
            match i % 3 {
                0 => {
                    hook.headers.retain(|(k, _)| k != douyin::SIGNATURE_HEADER);
                    hook.headers
                        .push((douyin::SIGNATURE_HEADER.into(), "0".repeat(40)));
                    hook.expect = Expect::Rejected(401);
                }
                1 => {
                    hook.body.push_str("}{");
                    let app_secret = secrets.douyin.values().next().cloned().unwrap_or_default();
                    hook.headers.retain(|(k, _)| k != douyin::SIGNATURE_HEADER);
                    hook.headers.push((
                        douyin::SIGNATURE_HEADER.into(),
                        douyin::signature(&app_secret, hook.body.as_bytes()),
                    ));
                    hook.expect = Expect::Rejected(400);
                }
                _ => {
                    hook.source = Source::Feiyu; // wrong source for the body and signature
                    hook.expect = Expect::Rejected(401);
                }
            }
            out.push(hook);
        }
        // A stale vertical-media call (replayed after 10 minutes).
        if let Some(account) = accounts(&directory.dealers[0].dealer_id, Platform::Autohome) {
            let c = Customer {
                phone: Some("13912345678".into()),
                name: "y".into(),
                city: None,
                series: vec![],
            };
            if let Some(mut hook) = hmac_lead(
                &mut rng,
                secrets,
                Platform::Autohome,
                &account,
                &c,
                next_id("stale"),
                now - Duration::minutes(10),
            ) {
                hook.expect = Expect::Rejected(401);
                out.push(hook);
            }
        }
    }

    // Yesterday's content stats per dealer Douyin account, for the ranking.
    for dealer in &directory.dealers {
        if let Some(account) = accounts(&dealer.dealer_id, Platform::Douyin) {
            out.push(stats(&mut rng, secrets, &account, now, next_id("stats")));
            expected.stats += 1;
        }
    }

    // Arrival order is not creation order, except the live group-buy: its
    // webhooks come in one block, somewhere in the day.
    for i in (1..out.len()).rev() {
        let j = rng.below(i + 1);
        out.swap(i, j);
    }
    let at = rng.below(out.len() + 1);
    out.splice(at..at, burst);
    for hook in &out {
        match hook.expect {
            Expect::Accepted => expected.accepted += 1,
            Expect::Redelivery => expected.redeliveries += 1,
            Expect::Rejected(_) => expected.rejected += 1,
        }
    }
    Dataset {
        webhooks: out,
        expected,
        wecom_phones,
    }
}

fn douyin_lead(
    rng: &mut Rng,
    secrets: &IntakeSecrets,
    account: &str,
    c: &Customer,
    msg_id: String,
    now: DateTime<Utc>,
) -> Option<Webhook> {
    let (client_key, secret) = secrets.douyin.iter().next()?;
    let phone = c.phone.as_deref()?;
    let (event, content) = match rng.below(10) {
        // A phone typed into a private message.
        0..=1 => (
            "im_receive_msg",
            serde_json::json!({"message_type": "text", "text": format!("你好，我想了解{}，电话{}", c.series.first().map_or("新车", String::as_str), phone)}),
        ),
        2..=5 => (
            "personal_tab_contact",
            serde_json::json!({"phone": phone, "name": c.name, "city": c.city, "series": c.series}),
        ),
        _ => (
            "website_contact",
            serde_json::json!({"telephone": phone, "name": c.name, "city_name": c.city, "series": c.series.join(","),
              "scene": if rng.chance(0.3) { "live" } else { "video" }}),
        ),
    };
    let mut content = content;
    if rng.chance(0.25) {
        content["ad_info"] = serde_json::json!({"ad_id": format!("ad-{}", rng.below(50))});
    }
    // `content` arrives as an object or as a JSON-encoded string: send both.
    let content = if rng.chance(0.5) {
        serde_json::Value::String(content.to_string())
    } else {
        content
    };
    let body = serde_json::json!({
        "event": event, "client_key": client_key, "from_user_id": format!("visitor-{}", rng.below(1_000_000)),
        "to_user_id": account, "content": content, "log_id": format!("log-{msg_id}")
    })
    .to_string();
    let _ = now;
    Some(Webhook {
        source: Source::Douyin,
        query: vec![],
        headers: vec![
            (
                douyin::SIGNATURE_HEADER.into(),
                douyin::signature(secret, body.as_bytes()),
            ),
            (douyin::MSG_ID_HEADER.into(), msg_id),
            ("content-type".into(), "application/json".into()),
        ],
        body,
        expect: Expect::Accepted,
    })
}

fn hmac_lead(
    rng: &mut Rng,
    secrets: &IntakeSecrets,
    platform: Platform,
    account: &str,
    c: &Customer,
    event_id: String,
    at: DateTime<Utc>,
) -> Option<Webhook> {
    let source = Source::parse(platform.as_str())?;
    let secret = secrets.hmac.get(&source)?.secrets.first()?.clone();
    let phone = c.phone.as_deref()?;
    let body = match platform {
        // Ocean Engine clue push; flow_type 1 = natural traffic.
        Platform::Feiyu => serde_json::json!({
            "id": event_id, "advertiser_id": account, "name": c.name, "telphone": phone, "weixin": "",
            "province_name": "", "city_name": c.city, "create_time": at.timestamp(), "clue_type": 0,
            "clue_source": *rng.pick(&[5, 8]), "flow_type": *rng.pick(&[1, 1, 2, 3, 4]), "series": c.series
        }),
        _ => serde_json::json!({
            "lead_id": event_id, "dealer_id": account, "mobile": phone, "name": c.name,
            "city": c.city, "series": c.series
        }),
    }
    .to_string();
    let ts = at.timestamp().to_string();
    Some(Webhook {
        source,
        query: vec![],
        headers: vec![
            (hmac_sources::TIMESTAMP_HEADER.into(), ts.clone()),
            (
                hmac_sources::SIGNATURE_HEADER.into(),
                hmac_sources::signature(&secret, &ts, body.as_bytes()),
            ),
            (hmac_sources::EVENT_ID_HEADER.into(), event_id),
            ("content-type".into(), "application/json".into()),
        ],
        body,
        expect: Expect::Accepted,
    })
}

fn wecom_contact(
    rng: &mut Rng,
    secrets: &IntakeSecrets,
    corp_account: &str,
    dealer_id: &str,
    id: String,
    now: DateTime<Utc>,
) -> Option<Webhook> {
    let corp = secrets
        .wecom
        .iter()
        .find(|c| c.corp_id == corp_account)
        .or(secrets.wecom.first())?;
    let inner = format!(
        "<xml><ToUserName><![CDATA[{corp}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>\
         <CreateTime>{t}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_external_contact]]></Event>\
         <ChangeType><![CDATA[add_external_contact]]></ChangeType><UserID><![CDATA[{dealer_id}-s{s}]]></UserID>\
         <ExternalUserID><![CDATA[wm{id}]]></ExternalUserID><State><![CDATA[live-qr-{q}]]></State>\
         <WelcomeCode><![CDATA[W]]></WelcomeCode></xml>",
        corp = corp.corp_id,
        t = now.timestamp(),
        s = 1 + rng.below(2),
        q = rng.below(5),
    );
    let mut random = [0u8; 16];
    random.iter_mut().for_each(|b| *b = rng.next_u64() as u8);
    let (query, body) = wecom::signed_callback(
        corp,
        &inner,
        now.timestamp(),
        &format!("n{}", rng.below(1 << 30)),
        random,
    );
    Some(Webhook {
        source: Source::Wecom,
        query: query.into_iter().collect(),
        headers: vec![("content-type".into(), "text/xml".into())],
        body,
        expect: Expect::Accepted,
    })
}

fn stats(
    rng: &mut Rng,
    secrets: &IntakeSecrets,
    account: &str,
    now: DateTime<Utc>,
    msg_id: String,
) -> Webhook {
    let (client_key, secret) = secrets
        .douyin
        .iter()
        .next()
        .expect("a Douyin app is configured");
    let plays = 2_000 + rng.below(40_000) as u64;
    let body = serde_json::json!({
        "event": "account_daily_stats", "client_key": client_key, "to_user_id": account,
        "content": {
            "date": (now - Duration::days(1)).date_naive(), "videos": rng.below(3),
            "live_sessions": rng.below(3), "live_minutes": rng.below(360),
            "plays": plays, "likes": plays * (5 + rng.below(30) as u64) / 1000,
            "comments": plays * rng.below(6) as u64 / 1000, "shares": plays * rng.below(6) as u64 / 1000,
            "completed_plays": plays * (5 + rng.below(30) as u64) / 100
        }
    })
    .to_string();
    Webhook {
        source: Source::DouyinStats,
        query: vec![],
        headers: vec![
            (
                douyin::SIGNATURE_HEADER.into(),
                douyin::signature(secret, body.as_bytes()),
            ),
            (douyin::MSG_ID_HEADER.into(), msg_id),
        ],
        body,
        expect: Expect::Accepted,
    }
}
