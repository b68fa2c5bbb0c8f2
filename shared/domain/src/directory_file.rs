//! The directory as an operations team writes it (JSON, city names as people
//! write them), validated into domain records with one clear error per bad row.

use std::collections::HashSet;

use serde::Deserialize;

use crate::directory::{
    defaults, AccountOwner, AssignmentStrategy, Brand, BrandOps, Dealer, PlatformAccount, Staff,
    StaffRole,
};
use crate::{city, CityCode};

/// A city written as a 6-digit administrative code or as a name.
fn resolve_city(text: &str) -> Option<CityCode> {
    let text = text.trim();
    if text.len() == 6 && text.bytes().all(|b| b.is_ascii_digit()) {
        let code = CityCode(text.parse().ok()?);
        return city::by_code(code).map(|c| c.code);
    }
    city::normalise(text).map(|c| c.code)
}

/// A dealer row: cities by name ("济南", "山东省济南市") or 6-digit code ("370100").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DealerRow {
    pub dealer_id: String,
    pub brand_id: String,
    pub name: String,
    pub city: String,
    #[serde(default)]
    pub served_cities: Vec<String>,
    pub strategy: AssignmentStrategy,
    #[serde(default)]
    pub claim_fallback_minutes: Option<u32>,
    #[serde(default)]
    pub daily_remote_capacity: Option<u32>,
    #[serde(default)]
    pub dcc_screening: bool,
}

/// A brand operations row: regions as city names or codes, like a dealer's.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrandOpsRow {
    pub staff_id: String,
    pub brand_id: String,
    pub name: String,
    #[serde(default)]
    pub dealers: Vec<String>,
    #[serde(default)]
    pub regions: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryFile {
    pub brands: Vec<Brand>,
    pub dealers: Vec<DealerRow>,
    #[serde(default)]
    pub staff: Vec<Staff>,
    #[serde(default)]
    pub accounts: Vec<PlatformAccount>,
    #[serde(default)]
    pub brand_ops: Vec<BrandOpsRow>,
}

/// The validated directory, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct Directory {
    pub brands: Vec<Brand>,
    pub dealers: Vec<Dealer>,
    pub staff: Vec<Staff>,
    pub accounts: Vec<PlatformAccount>,
    pub brand_ops: Vec<BrandOps>,
}

/// One bad row: which section, which row (0-based) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{section}[{index}] ({id}): {problem}")]
pub struct RowError {
    pub section: &'static str,
    pub index: usize,
    pub id: String,
    pub problem: String,
}

impl DirectoryFile {
    /// Validates every row and reports every problem, not just the first.
    pub fn validate(self) -> Result<Directory, Vec<RowError>> {
        let mut errors = Vec::new();
        let mut err = |section, index, id: &str, problem: String| {
            errors.push(RowError {
                section,
                index,
                id: id.to_string(),
                problem,
            })
        };

        let mut brand_ids = HashSet::new();
        for (i, b) in self.brands.iter().enumerate() {
            if b.brand_id.trim().is_empty() {
                err("brands", i, &b.brand_id, "empty brand_id".into());
            } else if !brand_ids.insert(b.brand_id.as_str()) {
                err("brands", i, &b.brand_id, "duplicate brand_id".into());
            }
            if b.protection_days == 0 || b.exclusivity_days == 0 || b.first_contact_minutes == 0 {
                err(
                    "brands",
                    i,
                    &b.brand_id,
                    "windows must be at least 1".into(),
                );
            }
        }

        let mut dealer_ids = HashSet::new();
        let mut dealers = Vec::with_capacity(self.dealers.len());
        for (i, row) in self.dealers.iter().enumerate() {
            let id = row.dealer_id.as_str();
            if id.trim().is_empty() {
                err("dealers", i, id, "empty dealer_id".into());
            } else if !dealer_ids.insert(id) {
                err("dealers", i, id, "duplicate dealer_id".into());
            }
            if !brand_ids.contains(row.brand_id.as_str()) {
                err(
                    "dealers",
                    i,
                    id,
                    format!("unknown brand {:?}", row.brand_id),
                );
            }
            let home = resolve_city(&row.city);
            if home.is_none() {
                err("dealers", i, id, format!("unknown city {:?}", row.city));
            }
            let mut served = Vec::new();
            for name in &row.served_cities {
                match resolve_city(name) {
                    Some(code) if !served.contains(&code) => served.push(code),
                    Some(_) => {}
                    None => err("dealers", i, id, format!("unknown served city {name:?}")),
                }
            }
            if let Some(home) = home {
                if !served.contains(&home) {
                    served.insert(0, home);
                }
                dealers.push(Dealer {
                    dealer_id: row.dealer_id.clone(),
                    brand_id: row.brand_id.clone(),
                    name: row.name.clone(),
                    city: home,
                    served_cities: served,
                    strategy: row.strategy,
                    claim_fallback_minutes: row
                        .claim_fallback_minutes
                        .unwrap_or_else(defaults::claim_fallback_minutes),
                    daily_remote_capacity: row
                        .daily_remote_capacity
                        .unwrap_or_else(defaults::daily_remote_capacity),
                    dcc_screening: row.dcc_screening,
                });
            }
        }

        let mut staff_ids = HashSet::new();
        for (i, s) in self.staff.iter().enumerate() {
            if s.staff_id.trim().is_empty() {
                err("staff", i, &s.staff_id, "empty staff_id".into());
            } else if !staff_ids.insert(s.staff_id.as_str()) {
                err("staff", i, &s.staff_id, "duplicate staff_id".into());
            }
            if !dealer_ids.contains(s.dealer_id.as_str()) {
                err(
                    "staff",
                    i,
                    &s.staff_id,
                    format!("unknown dealer {:?}", s.dealer_id),
                );
            }
            if s.role == StaffRole::BrandOps {
                err(
                    "staff",
                    i,
                    &s.staff_id,
                    "brand operations staff go in brand_ops, not on a dealer's roster".into(),
                );
            }
        }

        let mut ops_ids = HashSet::new();
        let mut brand_ops = Vec::with_capacity(self.brand_ops.len());
        for (i, row) in self.brand_ops.iter().enumerate() {
            let id = row.staff_id.as_str();
            if id.trim().is_empty() {
                err("brand_ops", i, id, "empty staff_id".into());
            } else if !ops_ids.insert((row.brand_id.as_str(), id)) {
                err("brand_ops", i, id, "duplicate staff_id".into());
            }
            if !brand_ids.contains(row.brand_id.as_str()) {
                err(
                    "brand_ops",
                    i,
                    id,
                    format!("unknown brand {:?}", row.brand_id),
                );
            }
            for dealer in &row.dealers {
                match self.dealers.iter().find(|d| &d.dealer_id == dealer) {
                    None => err("brand_ops", i, id, format!("unknown dealer {dealer:?}")),
                    Some(d) if d.brand_id != row.brand_id => err(
                        "brand_ops",
                        i,
                        id,
                        format!("dealer {dealer:?} belongs to brand {:?}", d.brand_id),
                    ),
                    Some(_) => {}
                }
            }
            let mut regions = Vec::new();
            for name in &row.regions {
                match resolve_city(name) {
                    Some(code) if !regions.contains(&code) => regions.push(code),
                    Some(_) => {}
                    None => err("brand_ops", i, id, format!("unknown region {name:?}")),
                }
            }
            brand_ops.push(BrandOps {
                staff_id: row.staff_id.clone(),
                brand_id: row.brand_id.clone(),
                name: row.name.clone(),
                dealers: row.dealers.clone(),
                regions,
            });
        }

        let mut account_keys = HashSet::new();
        for (i, a) in self.accounts.iter().enumerate() {
            let id = format!("{}:{}", a.platform, a.account_id);
            if a.account_id.trim().is_empty() {
                err("accounts", i, &id, "empty account_id".into());
            } else if !account_keys.insert(id.clone()) {
                err("accounts", i, &id, "duplicate account".into());
            }
            if !brand_ids.contains(a.brand_id.as_str()) {
                err(
                    "accounts",
                    i,
                    &id,
                    format!("unknown brand {:?}", a.brand_id),
                );
            }
            if let AccountOwner::Dealer { dealer_id } = &a.owner {
                match self.dealers.iter().find(|d| &d.dealer_id == dealer_id) {
                    None => err("accounts", i, &id, format!("unknown dealer {dealer_id:?}")),
                    Some(d) if d.brand_id != a.brand_id => err(
                        "accounts",
                        i,
                        &id,
                        format!("dealer {dealer_id:?} belongs to brand {:?}", d.brand_id),
                    ),
                    Some(_) => {}
                }
            }
        }

        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Directory {
            brands: self.brands,
            dealers,
            staff: self.staff,
            accounts: self.accounts,
            brand_ops,
        })
    }
}
