//! The directory: brands, their dealers, dealers' staff, and the platform accounts
//! that map an incoming lead to a dealer (or to the brand itself).

use serde::{Deserialize, Serialize};

use crate::{CityCode, Phone};

pub type BrandId = String;
pub type DealerId = String;
pub type StaffId = String;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Brand {
    pub brand_id: BrandId,
    pub name: String,
    /// Days during which a returning customer is the same lead (dedup window).
    #[serde(default = "defaults::protection_days")]
    pub protection_days: u32,
    /// Days a consultant keeps an exclusive right to follow a lead up.
    #[serde(default = "defaults::exclusivity_days")]
    pub exclusivity_days: u32,
    /// Minutes within which an assigned lead must be contacted.
    #[serde(default = "defaults::first_contact_minutes")]
    pub first_contact_minutes: u32,
    /// Whether a lead whose first contact is overdue goes to another
    /// consultant (the managers are told either way).
    #[serde(default)]
    pub reassign_on_sla_breach: bool,
    /// Weights of the nightly ranking's base score; `None`: the defaults
    /// (see `ranking::ScoreWeights`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_weights: Option<crate::ranking::ScoreWeights>,
    /// The ranking's period, minimum effective live session and natural-lead
    /// opt-ins; `None`: the defaults (see `ranking::RankingSettings`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranking: Option<crate::ranking::RankingSettings>,
    /// Days the customer's personal data (lead, identities, touchpoints) is
    /// kept after the lead's last activity (PIPL); then DynamoDB's TTL
    /// deletes it.
    #[serde(default = "defaults::retention_days")]
    pub retention_days: u32,
    /// The reason codes a consultant picks from to mark a lead lost (战败).
    #[serde(default = "defaults::lost_reasons")]
    pub lost_reasons: Vec<String>,
    /// The reason codes for marking a lead invalid (无效).
    #[serde(default = "defaults::invalid_reasons")]
    pub invalid_reasons: Vec<String>,
    /// Hours from a follow-up to the next call, per intent (`followup`).
    #[serde(default)]
    pub follow_up_cadence: crate::followup::Cadence,
    /// 战败审核: a consultant's `lost` waits for a manager of the dealer to
    /// approve it (`status::needs_approval`); a manager's own goes through.
    #[serde(default)]
    pub lost_approval: bool,
    /// `auto` (default): remote leads go to the dealer routing picks;
    /// `crm_review`: the brand's CRM reviews and dispatches each one.
    #[serde(default)]
    pub remote_mode: crate::routing::RemoteMode,
}

impl Brand {
    /// A brand with every setting at its default (one missing from the
    /// directory is treated so).
    pub fn with_defaults(brand_id: &str) -> Brand {
        Brand {
            brand_id: brand_id.to_string(),
            name: brand_id.to_string(),
            protection_days: defaults::protection_days(),
            exclusivity_days: defaults::exclusivity_days(),
            first_contact_minutes: defaults::first_contact_minutes(),
            reassign_on_sla_breach: false,
            score_weights: None,
            ranking: None,
            retention_days: defaults::retention_days(),
            lost_reasons: defaults::lost_reasons(),
            invalid_reasons: defaults::invalid_reasons(),
            follow_up_cadence: Default::default(),
            lost_approval: false,
            remote_mode: Default::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssignmentStrategy {
    /// 平均分配: consultants take turns.
    RoundRobin,
    /// 按饱和度: fewest open leads relative to each consultant's cap.
    Saturation,
    /// 抢单: the group is offered the lead, the first claim wins.
    Claim,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dealer {
    pub dealer_id: DealerId,
    pub brand_id: BrandId,
    pub name: String,
    /// Where the dealer is.
    pub city: CityCode,
    /// Cities whose customers this dealer serves; always includes `city`.
    pub served_cities: Vec<CityCode>,
    pub strategy: AssignmentStrategy,
    /// Minutes an unclaimed lead waits before falling back to round-robin (claim strategy).
    #[serde(default = "defaults::claim_fallback_minutes")]
    pub claim_fallback_minutes: u32,
    /// Remote leads the dealer takes per day from the brand pool.
    #[serde(default = "defaults::daily_remote_capacity")]
    pub daily_remote_capacity: u32,
    /// DCC screening (邀约中心): new leads go to the dealer's DCC agents
    /// first (by the dealer's strategy among them), who hand each to a
    /// sales consultant (`POST /leads/{id}/handoff`). With no DCC agent
    /// free, a lead goes straight to sales.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dcc_screening: bool,
}

impl Dealer {
    pub fn serves(&self, city: CityCode) -> bool {
        self.city == city || self.served_cities.contains(&city)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StaffRole {
    /// 销售顾问: receives leads.
    Sales,
    /// Dealer manager: told about SLA breaches.
    Manager,
    /// DCC/BDC agent: first contact on behalf of the dealer.
    Dcc,
    /// The brand's operations (`BrandOps`, the directory's `brand_ops`):
    /// never on a dealer's roster.
    BrandOps,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Staff {
    pub staff_id: StaffId,
    pub dealer_id: DealerId,
    pub name: String,
    pub role: StaffRole,
    pub on_duty: bool,
    /// Most open leads this person may hold at once.
    pub cap: u32,
    /// WeCom userid for app messages, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wecom_userid: Option<String>,
    /// Mobile for SMS notifications, if any (`Phone` prints masked, so a
    /// logged `Staff` never shows it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile: Option<Phone>,
    /// A planned absence (休假) set by the dealer's manager: inside it the
    /// consultant is off duty whatever `on_duty` says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leave: Option<Leave>,
}

/// A leave window: from `from` (inclusive) to `to` (exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leave {
    pub from: chrono::DateTime<chrono::Utc>,
    pub to: chrono::DateTime<chrono::Utc>,
}

/// The longest leave window a manager may set.
pub const MAX_LEAVE_DAYS: i64 = 92;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaveError {
    #[error("a leave must end after it starts, in the future, within {MAX_LEAVE_DAYS} days")]
    Window,
}

impl Leave {
    /// A window a manager may set at `now`: ends after it starts, has not
    /// ended, and lasts at most [`MAX_LEAVE_DAYS`].
    pub fn new(
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Leave, LeaveError> {
        if to <= from || to <= now || to - from > chrono::Duration::days(MAX_LEAVE_DAYS) {
            return Err(LeaveError::Window);
        }
        Ok(Leave { from, to })
    }

    pub fn covers(&self, at: chrono::DateTime<chrono::Utc>) -> bool {
        self.from <= at && at < self.to
    }
}

impl Staff {
    /// On duty at `at`: `on_duty`, and not inside a leave window.
    pub fn on_duty_at(&self, at: chrono::DateTime<chrono::Utc>) -> bool {
        self.on_duty && !self.leave.is_some_and(|l| l.covers(at))
    }

    /// This person as the rules see them at `at` (`on_duty` false on leave):
    /// what the router, the sweeper and the hand-offs assign by.
    pub fn as_of(mut self, at: chrono::DateTime<chrono::Utc>) -> Staff {
        self.on_duty = self.on_duty_at(at);
        self
    }
}

/// Brand operations staff (品牌运营): they read the brand's leads (masked
/// phones) and service KPIs, for every dealer of the brand or only those
/// listed in `dealers` or located in `regions`. They change no lead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BrandOps {
    pub staff_id: StaffId,
    pub brand_id: BrandId,
    pub name: String,
    /// Only these dealers (with `regions`: these and the regions' dealers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dealers: Vec<DealerId>,
    /// Only dealers located in these cities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<CityCode>,
}

impl BrandOps {
    /// Whether this person oversees every dealer of the brand (no list of
    /// dealers or regions): they also see brand-level figures.
    pub fn oversees_whole_brand(&self) -> bool {
        self.dealers.is_empty() && self.regions.is_empty()
    }

    /// Whether this person oversees `dealer` (always of their own brand).
    pub fn oversees(&self, dealer: &Dealer) -> bool {
        dealer.brand_id == self.brand_id
            && (self.oversees_whole_brand()
                || self.dealers.contains(&dealer.dealer_id)
                || self.regions.contains(&dealer.city))
    }
}

/// The platforms a lead can come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    Douyin,
    Feiyu,
    Dongchedi,
    Autohome,
    Yiche,
    Wecom,
    OemCrm,
}

impl Platform {
    pub const ALL: [Platform; 7] = [
        Platform::Douyin,
        Platform::Feiyu,
        Platform::Dongchedi,
        Platform::Autohome,
        Platform::Yiche,
        Platform::Wecom,
        Platform::OemCrm,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Douyin => "douyin",
            Platform::Feiyu => "feiyu",
            Platform::Dongchedi => "dongchedi",
            Platform::Autohome => "autohome",
            Platform::Yiche => "yiche",
            Platform::Wecom => "wecom",
            Platform::OemCrm => "oem_crm",
        }
    }

    pub fn parse(s: &str) -> Option<Platform> {
        Platform::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who owns a platform account: one dealer, or the brand itself (brand-level
/// accounts route every lead by the customer's city, like remote leads).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "owner", rename_all = "snake_case")]
pub enum AccountOwner {
    Dealer { dealer_id: DealerId },
    Brand,
}

/// A platform account (Douyin enterprise account, vertical-media dealer id,
/// WeCom corp, OEM CRM tenant) and whom its leads belong to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformAccount {
    pub platform: Platform,
    pub account_id: String,
    pub brand_id: BrandId,
    #[serde(flatten)]
    pub owner: AccountOwner,
}

/// Defaults for optional directory settings (the brief's figures).
pub mod defaults {
    pub fn protection_days() -> u32 {
        30
    }
    pub fn exclusivity_days() -> u32 {
        15
    }
    pub fn first_contact_minutes() -> u32 {
        5
    }
    pub fn claim_fallback_minutes() -> u32 {
        10
    }
    pub fn daily_remote_capacity() -> u32 {
        50
    }
    /// Two years after the last activity.
    pub fn retention_days() -> u32 {
        730
    }
    fn codes(codes: &[&str]) -> Vec<String> {
        codes.iter().map(|c| c.to_string()).collect()
    }
    pub fn lost_reasons() -> Vec<String> {
        codes(&[
            "bought_other_brand",
            "bought_elsewhere_same_brand",
            "price",
            "postponed",
            "unreachable",
            "other",
        ])
    }
    pub fn invalid_reasons() -> Vec<String> {
        codes(&["wrong_number", "not_a_buyer", "duplicate", "test", "other"])
    }
}

#[cfg(test)]
mod leave_tests {
    use super::*;
    use chrono::{Duration, TimeZone, Utc};

    #[test]
    fn a_consultant_on_leave_is_off_duty_inside_the_window_only() {
        let t = |h| Utc.with_ymd_and_hms(2026, 12, 3, 0, 0, 0).unwrap() + Duration::hours(h);
        let mut s: Staff = serde_json::from_value(serde_json::json!({
            "staff_id": "s1", "dealer_id": "d1", "name": "n", "role": "sales", "on_duty": true, "cap": 5
        }))
        .unwrap();
        s.leave = Some(Leave::new(t(10), t(20), t(0)).unwrap());
        assert!(s.on_duty_at(t(9)));
        assert!(!s.on_duty_at(t(10)));
        assert!(!s.clone().as_of(t(19)).on_duty);
        assert!(s.on_duty_at(t(20)), "the end is exclusive");
        s.on_duty = false;
        assert!(!s.on_duty_at(t(21)), "off duty stays off");
        for (from, to) in [
            (t(5), t(5)),
            (t(5), t(4)),
            (t(-10), t(-1)),
            (t(0), t(24 * 93)),
        ] {
            assert_eq!(Leave::new(from, to, t(0)), Err(LeaveError::Window));
        }
    }
}
