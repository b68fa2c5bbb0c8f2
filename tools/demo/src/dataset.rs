//! A deterministic, realistic batch of platform webhooks for the sample
//! directory, in each platform's wire format with real signatures, plus what
//! the generator knows it sent (so the report can be checked against it).
//!
//! Shapes from the brief: ~30% of Douyin customers also reach the dealer through
//! another network, ~5% through vertical media; some customers ask about two
//! series; some live in another city (remote) or a city nobody serves; a live
//! group-buy burst; platform redeliveries; a few forged, stale or malformed calls.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use chrono::{DateTime, Duration, Utc};
use leads_domain::directory::{AccountOwner, Dealer, Platform};
use leads_domain::directory_file::Directory;
use leads_domain::identity::PhoneHasher;
use leads_domain::intake::secrets::IntakeSecrets;
use leads_domain::intake::{douyin, hmac_sources, wecom, Source};
use leads_domain::lead::CustomerKey;
use leads_domain::{CityCode, Phone};

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
    /// Natural (not paid) traffic, by each platform's wire rule as sent.
    pub natural: bool,
    /// How the platform signs it when it sends it (see [`Webhook::signed_at`]).
    pub signing: Signing,
}

/// A platform signs a delivery when it sends it: the HMAC sources and WeCom
/// put the time in the signature, and the intake refuses one older than its
/// freshness window. So the replay signs each webhook as it posts it; a
/// region-scale replay takes longer than that window.
#[derive(Clone)]
pub enum Signing {
    /// Signed once, with no time in it (Douyin), or deliberately broken.
    Fixed,
    /// `X-Timestamp` + HMAC over timestamp and body, `skew` from the send time
    /// (negative: a stale call replayed later).
    Hmac { secret: String, skew: Duration },
    /// WeCom's encrypted callback: the query's timestamp and signature.
    Wecom {
        corp: Box<leads_domain::intake::secrets::WecomCorp>,
        inner_xml: String,
        nonce: String,
        random: [u8; 16],
    },
}

impl std::fmt::Debug for Signing {
    // No secret in a debug print.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Signing::Fixed => "Fixed",
            Signing::Hmac { .. } => "Hmac",
            Signing::Wecom { .. } => "Wecom",
        })
    }
}

impl Webhook {
    /// The webhook as its platform sends it at `now`: signed at that time.
    pub fn signed_at(&self, now: DateTime<Utc>) -> Webhook {
        let mut hook = self.clone();
        match &self.signing {
            Signing::Fixed => {}
            Signing::Hmac { secret, skew } => {
                let ts = (now + *skew).timestamp().to_string();
                let signature = hmac_sources::signature(secret, &ts, hook.body.as_bytes());
                for (k, v) in &mut hook.headers {
                    if k == hmac_sources::TIMESTAMP_HEADER {
                        v.clone_from(&ts);
                    } else if k == hmac_sources::SIGNATURE_HEADER {
                        v.clone_from(&signature);
                    }
                }
            }
            Signing::Wecom {
                corp,
                inner_xml,
                nonce,
                random,
            } => {
                let (query, body) =
                    wecom::signed_callback(corp, inner_xml, now.timestamp(), nonce, *random);
                hook.query = query.into_iter().collect();
                hook.body = body;
            }
        }
        hook
    }
}

/// Where the rules must send a lead, by the generator's own reading of the
/// directory (the dealer's served cities, the brand's other dealers).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum RouteTruth {
    Local(String),
    Remote(String),
    Unroutable,
}

impl RouteTruth {
    pub fn class(&self) -> &'static str {
        match self {
            RouteTruth::Local(_) => "local",
            RouteTruth::Remote(_) => "remote (异地)",
            RouteTruth::Unroutable => "unroutable -> brand CRM",
        }
    }
}

/// One accepted delivery of a customer (redelivered copies excluded).
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeliveryTruth {
    pub platform: Platform,
    /// The dealer whose natural/paid counter a lead created by this delivery
    /// counts on: the account's dealer, the WeCom consultant's dealer, none
    /// for a brand-level account.
    pub counted_on: Option<String>,
    pub natural: bool,
    /// Every route the rules allow when this delivery creates the lead (a
    /// remote lead may go to any dealer of the brand serving the city).
    pub routes: Vec<RouteTruth>,
}

/// What the rules must make of one customer, whichever of their deliveries
/// the router happens to process first (that one creates the lead).
#[derive(Debug, Clone, serde::Serialize)]
pub struct CustomerTruth {
    /// The customer key intake derives (JSON of `CustomerKey`).
    pub key: String,
    pub brand_id: String,
    pub deliveries: Vec<DeliveryTruth>,
    /// A draw in [0, 1): the consultant calls this customer back in time iff
    /// it is below the run's contact rate (the generator's own schedule).
    pub call_back_draw: f64,
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
    /// Messages the lead queue must carry: one per accepted webhook, none for
    /// a redelivery.
    pub lead_queue_messages: usize,
}

pub struct Dataset {
    pub webhooks: Vec<Webhook>,
    pub expected: Expected,
    /// The phone each WeCom contact (by external user id) gives the consultant
    /// in the chat: the event does not carry it.
    pub wecom_phones: HashMap<String, String>,
    /// Per customer with an accepted delivery, what the rules must produce.
    pub customers: Vec<CustomerTruth>,
}

/// Mobile prefixes (7 digits) per place name, from the public libphonenumber
/// geocoding data the intake also ships: the generator gives a customer a
/// number from their own city, so every delivery (with or without a declared
/// city) points to the same city. Only prefixes no longer entry refines.
fn phone_book() -> &'static HashMap<String, Vec<String>> {
    static BOOK: OnceLock<HashMap<String, Vec<String>>> = OnceLock::new();
    BOOK.get_or_init(|| {
        let data = include_str!("../../../shared/domain/data/libphonenumber/geocoding-zh-86.txt");
        let entries: BTreeMap<&str, &str> = data
            .lines()
            .filter_map(|l| l.split_once('|'))
            .filter_map(|(k, v)| Some((k.strip_prefix("86")?, v)))
            .filter(|(k, _)| k.starts_with('1'))
            .collect();
        let mut book: HashMap<String, Vec<String>> = HashMap::new();
        for (prefix, place) in &entries {
            let refined = entries
                .range::<str, _>((
                    std::ops::Bound::Excluded(*prefix),
                    std::ops::Bound::Unbounded,
                ))
                .next()
                .is_some_and(|(next, _)| next.starts_with(prefix));
            if prefix.len() == 7 && !refined {
                book.entry(place.to_string())
                    .or_default()
                    .push(prefix.to_string());
            }
        }
        book
    })
}

/// A mobile number from `city` (a short name such as 济南), or a 199 number
/// (no prefix attribution: city unknown) when the data has none.
fn phone_in(rng: &mut Rng, city: Option<&str>) -> (String, bool) {
    let prefixes = city.and_then(|c| {
        let suffixed = format!("{c}市");
        let mut places: Vec<_> = phone_book()
            .iter()
            .filter(|(place, _)| place.ends_with(c) || place.ends_with(&suffixed))
            .collect();
        places.sort(); // HashMap order is random; a run must be repeatable
        places.first().map(|(_, p)| *p)
    });
    match prefixes {
        Some(p) => (
            format!("{}{:04}", rng.pick(p), rng.next_u64() % 10_000),
            true,
        ),
        None => (format!("199{:08}", rng.next_u64() % 100_000_000), false),
    }
}

/// The routes the rules allow for a lead that arrives on `owner`'s account
/// (none: a brand-level account) for a customer in `city`.
fn routes(
    directory: &Directory,
    brand_id: &str,
    owner: Option<&Dealer>,
    city: Option<CityCode>,
) -> Vec<RouteTruth> {
    let serves = |d: &Dealer, c: CityCode| d.city == c || d.served_cities.contains(&c);
    if let Some(o) = owner {
        if city.is_none_or(|c| serves(o, c)) {
            return vec![RouteTruth::Local(o.dealer_id.to_string())];
        }
    }
    let Some(city) = city else {
        return vec![RouteTruth::Unroutable];
    };
    let remote: Vec<RouteTruth> = directory
        .dealers
        .iter()
        .filter(|d| d.brand_id.as_str() == brand_id && serves(d, city))
        .filter(|d| owner.is_none_or(|o| o.dealer_id != d.dealer_id))
        .map(|d| RouteTruth::Remote(d.dealer_id.to_string()))
        .collect();
    if remote.is_empty() {
        vec![RouteTruth::Unroutable]
    } else {
        remote
    }
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
    /// The phone's prefix gives the customer's city (else it is a 199
    /// number, and only deliveries declaring the city carry it).
    phone_gives_city: bool,
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
    let mut truths: Vec<CustomerTruth> = Vec::new();
    let hasher = PhoneHasher::new(secrets.phone_hash_key.as_bytes().to_vec());
    let dealer_by_id: HashMap<&str, &Dealer> = directory
        .dealers
        .iter()
        .map(|d| (d.dealer_id.as_str(), d))
        .collect();
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
    let cities_of: HashMap<&str, Vec<(String, CityCode)>> = directory
        .dealers
        .iter()
        .map(|d| {
            let names = d
                .served_cities
                .iter()
                .filter_map(|c| {
                    leads_domain::city::by_code(*c).map(|c| (c.name.to_string(), c.code))
                })
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
        let city: Option<(String, CityCode)> = if roll < 78 {
            Some(rng.pick(&cities_of[dealer.dealer_id.as_str()]).clone())
        } else if roll < 93 && !same_brand.is_empty() {
            let other = rng.pick(&same_brand);
            Some(rng.pick(&cities_of[other.dealer_id.as_str()]).clone())
        } else if roll < 96 {
            let name = rng.pick(&UNSERVED);
            leads_domain::city::normalise(name).map(|c| (name.to_string(), c.code))
        } else {
            None // unknown: a 199 number (no prefix attribution), stays local
        };
        let (phone, phone_gives_city) = phone_in(&mut rng, city.as_ref().map(|c| c.0.as_str()));
        let mut series = vec![rng.pick(&SERIES).to_string()];
        if rng.chance(0.2) {
            series.push(rng.pick(&SERIES).to_string());
            series.dedup();
        }
        let customer = Customer {
            phone: Some(phone),
            phone_gives_city,
            name: format!(
                "{}{}",
                rng.pick(&SURNAMES),
                if rng.chance(0.5) { "先生" } else { "女士" }
            ),
            city: city.as_ref().map(|c| c.0.clone()),
            series,
        };
        let city_code = city.as_ref().map(|c| c.1);

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
        let key = |phone: &Option<String>| {
            let phone = Phone::parse(phone.as_deref()?).ok()?;
            serde_json::to_string(&CustomerKey::Phone {
                hash: hasher.hash(&phone),
            })
            .ok()
        };
        let mut truth = CustomerTruth {
            key: key(&customer.phone).unwrap_or_default(),
            brand_id: dealer.brand_id.to_string(),
            deliveries: Vec::new(),
            call_back_draw: 0.0,
        };
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
            let mut owner = match platform {
                Platform::OemCrm | Platform::Wecom => None,
                _ => Some(&dealer),
            };
            let hook = match platform {
                Platform::Douyin => {
                    douyin_lead(&mut rng, secrets, &account, &customer, next_id("dy"), now)
                }
                Platform::Wecom => {
                    let id = next_id("ww");
                    if let Some(phone) = &chat_phone {
                        wecom_phones.insert(format!("wm{id}"), phone.clone());
                    }
                    let contact = wecom_contact(
                        &mut rng,
                        secrets,
                        &account,
                        &dealer.dealer_id,
                        id.clone(),
                        now,
                    );
                    if let Some((_, corp, userid)) = &contact {
                        // The contact belongs to the dealer of the consultant who added it.
                        owner = directory
                            .staff
                            .iter()
                            .find(|s| s.wecom_userid.as_deref() == Some(userid.as_str()))
                            .and_then(|s| dealer_by_id.get(s.dealer_id.as_str()).copied());
                        truth.key = serde_json::to_string(&CustomerKey::Wecom {
                            corp_id: corp.clone(),
                            external_userid: format!("wm{id}"),
                        })
                        .unwrap_or_default();
                    }
                    contact.map(|(hook, _, _)| hook)
                }
                p => hmac_lead(
                    &mut rng,
                    secrets,
                    p,
                    &account,
                    &customer,
                    next_id("h"),
                    (now, Duration::zero()),
                ),
            };
            let Some(hook) = hook else { continue };
            truth.deliveries.push(DeliveryTruth {
                platform,
                counted_on: owner.map(|d| d.dealer_id.to_string()),
                natural: hook.natural,
                // A WeCom contact carries neither phone nor city.
                routes: routes(
                    directory,
                    &dealer.brand_id,
                    owner,
                    city_code.filter(|_| platform != Platform::Wecom),
                ),
            });
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
            // A stream of its own, so the schedule does not shift the day.
            truth.call_back_draw = Rng::new(seed ^ (i as u64).wrapping_mul(0x9E37_79B9)).next_u64()
                as f64
                / (u64::MAX as f64 + 1.0);
            truths.push(truth);
        }
    }
    // A dealer that could get more remote leads than its daily capacity may
    // run out: then "unroutable" is allowed for the leads that could go there.
    let mut could_receive: HashMap<String, usize> = HashMap::new();
    for t in &truths {
        let mut dealers: Vec<&String> = t
            .deliveries
            .iter()
            .flat_map(|d| &d.routes)
            .filter_map(|r| match r {
                RouteTruth::Remote(d) => Some(d),
                _ => None,
            })
            .collect();
        dealers.sort();
        dealers.dedup();
        for d in dealers {
            *could_receive.entry(d.clone()).or_default() += 1;
        }
    }
    for t in &mut truths {
        for d in &mut t.deliveries {
            let may_fill = d.routes.iter().any(|r| match r {
                RouteTruth::Remote(id) => dealer_by_id
                    .get(id.as_str())
                    .is_some_and(|x| could_receive[id] > x.daily_remote_capacity as usize),
                _ => false,
            });
            if may_fill {
                d.routes.push(RouteTruth::Unroutable);
            }
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
            phone_gives_city: true,
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
                phone_gives_city: true,
            };
            if let Some(mut hook) = hmac_lead(
                &mut rng,
                secrets,
                Platform::Autohome,
                &account,
                &c,
                next_id("stale"),
                (now, -Duration::minutes(10)),
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
    // One lead or stats message per accepted webhook; redeliveries add none.
    expected.lead_queue_messages = expected.accepted;
    Dataset {
        webhooks: out,
        expected,
        wecom_phones,
        customers: truths,
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
    // A private message carries no city: only for a customer whose phone gives it.
    let roll = rng.below(10);
    let roll = if c.city.is_some() && !c.phone_gives_city && roll <= 1 {
        2
    } else {
        roll
    };
    let (event, content) = match roll {
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
    // Natural unless the content names an ad (no flow_type is sent).
    let paid = rng.chance(0.25);
    if paid {
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
        natural: !paid,
        signing: Signing::Fixed,
    })
}

fn hmac_lead(
    rng: &mut Rng,
    secrets: &IntakeSecrets,
    platform: Platform,
    account: &str,
    c: &Customer,
    event_id: String,
    // When the generator stamps it, and how far before its send time the
    // platform signs it (negative: a stale replay).
    (now, skew): (DateTime<Utc>, Duration),
) -> Option<Webhook> {
    let at = now + skew;
    let source = Source::parse(platform.as_str())?;
    let secret = secrets.hmac.get(&source)?.secrets.first()?.clone();
    let phone = c.phone.as_deref()?;
    // Paid unless said otherwise: Ocean Engine's flow_type 1 is natural; the
    // others are sent without a traffic field.
    let mut natural = false;
    let body = match platform {
        // Ocean Engine clue push; flow_type 1 = natural traffic.
        Platform::Feiyu => {
            let flow_type = *rng.pick(&[1, 1, 2, 3, 4]);
            natural = flow_type == 1;
            serde_json::json!({
                "id": event_id, "advertiser_id": account, "name": c.name, "telphone": phone, "weixin": "",
                "province_name": "", "city_name": c.city, "create_time": at.timestamp(), "clue_type": 0,
                "clue_source": *rng.pick(&[5, 8]), "flow_type": flow_type, "series": c.series
            })
        }
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
        natural,
        signing: Signing::Hmac { secret, skew },
    })
}

fn wecom_contact(
    rng: &mut Rng,
    secrets: &IntakeSecrets,
    corp_account: &str,
    dealer_id: &str,
    id: String,
    now: DateTime<Utc>,
) -> Option<(Webhook, String, String)> {
    let corp = secrets
        .wecom
        .iter()
        // A brand whose corp the intake has no keys for gets no WeCom contacts
        // (another brand's corp would make them that brand's customers).
        .find(|c| c.corp_id == corp_account)?;
    let userid = format!("{dealer_id}-s{}", 1 + rng.below(2));
    let inner = format!(
        "<xml><ToUserName><![CDATA[{corp}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>\
         <CreateTime>{t}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_external_contact]]></Event>\
         <ChangeType><![CDATA[add_external_contact]]></ChangeType><UserID><![CDATA[{userid}]]></UserID>\
         <ExternalUserID><![CDATA[wm{id}]]></ExternalUserID><State><![CDATA[live-qr-{q}]]></State>\
         <WelcomeCode><![CDATA[W]]></WelcomeCode></xml>",
        corp = corp.corp_id,
        t = now.timestamp(),
        q = rng.below(5),
    );
    let mut random = [0u8; 16];
    random.iter_mut().for_each(|b| *b = rng.next_u64() as u8);
    let nonce = format!("n{}", rng.below(1 << 30));
    let (query, body) = wecom::signed_callback(corp, &inner, now.timestamp(), &nonce, random);
    let hook = Webhook {
        source: Source::Wecom,
        query: query.into_iter().collect(),
        headers: vec![("content-type".into(), "text/xml".into())],
        body,
        expect: Expect::Accepted,
        natural: true, // a WeCom contact is natural traffic
        signing: Signing::Wecom {
            corp: Box::new(corp.clone()),
            inner_xml: inner,
            nonce,
            random,
        },
    };
    Some((hook, corp.corp_id.clone(), userid))
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
        natural: false,
        signing: Signing::Fixed,
    }
}
