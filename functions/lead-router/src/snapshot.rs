//! The directory as the router sees it: accounts, brands, dealers, served
//! cities, staff and tiers, read once and kept in memory across invocations
//! for [`DIRECTORY_TTL`]. A live group-buy brings thousands of leads for the
//! same dealer in minutes; re-reading the same few items for each would be
//! most of the router's requests.
//!
//! Staleness rule: a directory change (a consultant set off duty, a cap
//! lowered, a dealer's served cities) reaches the router within
//! `DIRECTORY_TTL` (60 s). Until then the old value decides, e.g. a
//! consultant set off duty a minute ago can still be given a lead. Caps are
//! still enforced exactly: the open-lead counters are read fresh and checked
//! in the transaction; only the cap's own value may be a minute old.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use leads_aws::store::{DirectoryStore, DynamoDirectory, DynamoStats};
use leads_aws::StoreError;
use leads_domain::directory::{Brand, Dealer, Platform, PlatformAccount, Staff};
use leads_domain::routing::Tier;
use leads_domain::CityCode;

/// How long a directory read is reused.
pub const DIRECTORY_TTL: Duration = Duration::from_secs(60);

type Cache<K, V> = Mutex<HashMap<K, (Instant, V)>>;

pub struct Snapshot {
    directory: DynamoDirectory,
    stats: DynamoStats,
    ttl: Duration,
    accounts: Cache<(Platform, String), Option<PlatformAccount>>,
    brands: Cache<String, Option<Brand>>,
    dealers: Cache<String, Option<Dealer>>,
    staff: Cache<String, Vec<Staff>>,
    wecom: Cache<(String, String), Option<Staff>>,
    serving: Cache<(String, CityCode), Vec<String>>,
    tiers: Cache<String, Option<Tier>>,
}

async fn cached<K, V, F>(
    cache: &Cache<K, V>,
    ttl: Duration,
    key: K,
    load: F,
) -> Result<V, StoreError>
where
    K: Eq + Hash,
    V: Clone,
    F: Future<Output = Result<V, StoreError>>,
{
    if let Some((at, v)) = cache.lock().expect("cache lock").get(&key) {
        if at.elapsed() < ttl {
            return Ok(v.clone());
        }
    }
    let value = load.await?;
    cache
        .lock()
        .expect("cache lock")
        .insert(key, (Instant::now(), value.clone()));
    Ok(value)
}

impl Snapshot {
    pub fn new(directory: DynamoDirectory, stats: DynamoStats, ttl: Duration) -> Self {
        Snapshot {
            directory,
            stats,
            ttl,
            accounts: Mutex::default(),
            brands: Mutex::default(),
            dealers: Mutex::default(),
            staff: Mutex::default(),
            wecom: Mutex::default(),
            serving: Mutex::default(),
            tiers: Mutex::default(),
        }
    }

    /// Reuse reads for `ttl` from now on (zero: read every time).
    pub fn set_ttl(&mut self, ttl: Duration) {
        self.ttl = ttl;
    }

    pub async fn account(
        &self,
        platform: Platform,
        account_id: &str,
    ) -> Result<Option<PlatformAccount>, StoreError> {
        cached(
            &self.accounts,
            self.ttl,
            (platform, account_id.to_string()),
            self.directory.account(platform, account_id),
        )
        .await
    }

    pub async fn brand(&self, brand_id: &str) -> Result<Option<Brand>, StoreError> {
        cached(
            &self.brands,
            self.ttl,
            brand_id.to_string(),
            self.directory.brand(brand_id),
        )
        .await
    }

    pub async fn dealer(&self, dealer_id: &str) -> Result<Option<Dealer>, StoreError> {
        cached(
            &self.dealers,
            self.ttl,
            dealer_id.to_string(),
            self.directory.dealer(dealer_id),
        )
        .await
    }

    /// The dealer's staff as of now: a consultant inside a leave window is
    /// off duty (the window is cached with the roster, the clock is not).
    pub async fn staff_of(&self, dealer_id: &str) -> Result<Vec<Staff>, StoreError> {
        let staff = cached(
            &self.staff,
            self.ttl,
            dealer_id.to_string(),
            self.directory.staff_of(dealer_id),
        )
        .await?;
        let now = chrono::Utc::now();
        Ok(staff.into_iter().map(|s| s.as_of(now)).collect())
    }

    pub async fn staff_by_wecom_userid(
        &self,
        brand_id: &str,
        userid: &str,
    ) -> Result<Option<Staff>, StoreError> {
        cached(
            &self.wecom,
            self.ttl,
            (brand_id.to_string(), userid.to_string()),
            self.directory.staff_by_wecom_userid(brand_id, userid),
        )
        .await
    }

    pub async fn dealers_serving(
        &self,
        brand_id: &str,
        city: CityCode,
    ) -> Result<Vec<String>, StoreError> {
        cached(
            &self.serving,
            self.ttl,
            (brand_id.to_string(), city),
            self.directory.dealers_serving(brand_id, city),
        )
        .await
    }

    /// The tier from the latest ranking (changes nightly).
    pub async fn tier(&self, dealer_id: &str) -> Result<Option<Tier>, StoreError> {
        cached(
            &self.tiers,
            self.ttl,
            dealer_id.to_string(),
            self.stats.latest_tier(dealer_id),
        )
        .await
    }
}
