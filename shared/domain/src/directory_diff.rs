//! What applying a directory file changes in the live directory
//! (`leadctl directory apply`), including what it removes: a file is the whole
//! truth for each brand it names. Pure: both sides are [`Directory`] values,
//! the live one read with each dealer's served cities as stored (the index
//! items the router queries, not the dealer record's own list).
//!
//! Brands the file does not name are left alone (a file may cover some
//! brands only); a brand itself is never removed.

use std::collections::{BTreeMap, BTreeSet};

use crate::city::CityCode;
use crate::directory::{Platform, PlatformAccount};
use crate::directory_file::Directory;

/// One record the file no longer has.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Removal {
    /// A dealer (with its served cities and staff, listed on their own too).
    Dealer {
        dealer_id: String,
    },
    /// A city a dealer no longer serves: it stops receiving that city's remote leads.
    ServedCity {
        dealer_id: String,
        city: CityCode,
    },
    Staff {
        dealer_id: String,
        staff_id: String,
    },
    Account {
        platform: Platform,
        account_id: String,
    },
    BrandOps {
        brand_id: String,
        staff_id: String,
    },
}

impl std::fmt::Display for Removal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Removal::Dealer { dealer_id } => write!(f, "dealer {dealer_id}"),
            Removal::ServedCity { dealer_id, city } => {
                let name = crate::city::by_code(*city).map_or("?", |c| c.name);
                write!(f, "served city {name} ({city}) of dealer {dealer_id}")
            }
            Removal::Staff {
                dealer_id,
                staff_id,
            } => write!(f, "staff {staff_id} of dealer {dealer_id}"),
            Removal::Account {
                platform,
                account_id,
            } => write!(f, "account {platform}:{account_id}"),
            Removal::BrandOps { brand_id, staff_id } => {
                write!(f, "brand operations {staff_id} of brand {brand_id}")
            }
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DirectoryDiff {
    /// Records the live directory lacks ("brand b1", "staff s1 of dealer d1", ...).
    pub added: Vec<String>,
    /// Records whose stored value differs from the file's.
    pub changed: Vec<String>,
    pub removed: Vec<Removal>,
}

impl DirectoryDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }

    /// One line per change: `+` added, `~` changed, `-` removed.
    pub fn lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self.added.iter().map(|a| format!("+ {a}")).collect();
        lines.extend(self.changed.iter().map(|c| format!("~ {c}")));
        lines.extend(self.removed.iter().map(|r| format!("- {r}")));
        lines
    }
}

fn account_key(a: &PlatformAccount) -> (Platform, String) {
    (a.platform, a.account_id.clone())
}

/// Compares two values by their stored form (the records carry floats, so
/// no `Eq`; the JSON form is what is written).
fn same<T: serde::Serialize>(a: &T, b: &T) -> bool {
    serde_json::to_value(a).ok() == serde_json::to_value(b).ok()
}

/// What applying `file` to `live` adds, changes and removes, within the
/// brands `file` names.
pub fn diff(live: &Directory, file: &Directory) -> DirectoryDiff {
    let brands: BTreeSet<&str> = file.brands.iter().map(|b| b.brand_id.as_str()).collect();
    let mut out = DirectoryDiff::default();

    let live_brands: BTreeMap<&str, _> = live
        .brands
        .iter()
        .map(|b| (b.brand_id.as_str(), b))
        .collect();
    for b in &file.brands {
        match live_brands.get(b.brand_id.as_str()) {
            None => out.added.push(format!("brand {}", b.brand_id)),
            Some(l) if !same(*l, b) => out.changed.push(format!("brand {}", b.brand_id)),
            _ => {}
        }
    }

    // Dealers and their served cities.
    let live_dealers: BTreeMap<&str, _> = live
        .dealers
        .iter()
        .filter(|d| brands.contains(d.brand_id.as_str()))
        .map(|d| (d.dealer_id.as_str(), d))
        .collect();
    let file_dealers: BTreeMap<&str, _> = file
        .dealers
        .iter()
        .map(|d| (d.dealer_id.as_str(), d))
        .collect();
    for (id, d) in &file_dealers {
        let live_cities: BTreeSet<CityCode> = live_dealers
            .get(id)
            .map(|l| l.served_cities.iter().copied().collect())
            .unwrap_or_default();
        match live_dealers.get(id) {
            None => out.added.push(format!("dealer {id}")),
            Some(l) => {
                // The served cities are compared as sets below.
                let mut l = (*l).clone();
                l.served_cities = d.served_cities.clone();
                if !same(&l, *d) {
                    out.changed.push(format!("dealer {id}"));
                }
            }
        }
        let file_cities: BTreeSet<CityCode> = d.served_cities.iter().copied().collect();
        for city in file_cities.difference(&live_cities) {
            let name = crate::city::by_code(*city).map_or("?", |c| c.name);
            out.added
                .push(format!("served city {name} ({city}) of dealer {id}"));
        }
        for city in live_cities.difference(&file_cities) {
            out.removed.push(Removal::ServedCity {
                dealer_id: id.to_string(),
                city: *city,
            });
        }
    }
    for (id, d) in &live_dealers {
        if !file_dealers.contains_key(id) {
            out.removed.push(Removal::Dealer {
                dealer_id: id.to_string(),
            });
            for city in &d.served_cities {
                out.removed.push(Removal::ServedCity {
                    dealer_id: id.to_string(),
                    city: *city,
                });
            }
        }
    }

    // Staff of the brands' dealers (live or in the file).
    let in_scope =
        |dealer: &str| live_dealers.contains_key(dealer) || file_dealers.contains_key(dealer);
    let live_staff: BTreeMap<(&str, &str), _> = live
        .staff
        .iter()
        .filter(|s| in_scope(&s.dealer_id))
        .map(|s| ((s.dealer_id.as_str(), s.staff_id.as_str()), s))
        .collect();
    let file_staff: BTreeMap<(&str, &str), _> = file
        .staff
        .iter()
        .map(|s| ((s.dealer_id.as_str(), s.staff_id.as_str()), s))
        .collect();
    for ((dealer, id), s) in &file_staff {
        match live_staff.get(&(*dealer, *id)) {
            None => out.added.push(format!("staff {id} of dealer {dealer}")),
            Some(l) if !same(*l, *s) => out.changed.push(format!("staff {id} of dealer {dealer}")),
            _ => {}
        }
    }
    for (dealer, id) in live_staff.keys() {
        if !file_staff.contains_key(&(*dealer, *id)) {
            out.removed.push(Removal::Staff {
                dealer_id: dealer.to_string(),
                staff_id: id.to_string(),
            });
        }
    }

    // Platform accounts of the brands.
    let live_accounts: BTreeMap<(Platform, String), _> = live
        .accounts
        .iter()
        .filter(|a| brands.contains(a.brand_id.as_str()))
        .map(|a| (account_key(a), a))
        .collect();
    let file_accounts: BTreeMap<(Platform, String), _> =
        file.accounts.iter().map(|a| (account_key(a), a)).collect();
    for (key, a) in &file_accounts {
        match live_accounts.get(key) {
            None => out.added.push(format!("account {}:{}", key.0, key.1)),
            Some(l) if !same(*l, *a) => out.changed.push(format!("account {}:{}", key.0, key.1)),
            _ => {}
        }
    }
    for (platform, account_id) in live_accounts.keys() {
        if !file_accounts.contains_key(&(*platform, account_id.clone())) {
            out.removed.push(Removal::Account {
                platform: *platform,
                account_id: account_id.clone(),
            });
        }
    }
    // Brand operations staff of the brands.
    let live_ops: BTreeMap<(&str, &str), _> = live
        .brand_ops
        .iter()
        .filter(|o| brands.contains(o.brand_id.as_str()))
        .map(|o| ((o.brand_id.as_str(), o.staff_id.as_str()), o))
        .collect();
    let file_ops: BTreeMap<(&str, &str), _> = file
        .brand_ops
        .iter()
        .map(|o| ((o.brand_id.as_str(), o.staff_id.as_str()), o))
        .collect();
    for ((brand, id), o) in &file_ops {
        match live_ops.get(&(*brand, *id)) {
            None => out
                .added
                .push(format!("brand operations {id} of brand {brand}")),
            Some(l) if !same(*l, *o) => out
                .changed
                .push(format!("brand operations {id} of brand {brand}")),
            _ => {}
        }
    }
    for (brand, id) in live_ops.keys() {
        if !file_ops.contains_key(&(*brand, *id)) {
            out.removed.push(Removal::BrandOps {
                brand_id: brand.to_string(),
                staff_id: id.to_string(),
            });
        }
    }
    out.removed.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory_file::DirectoryFile;

    fn directory(v: serde_json::Value) -> Directory {
        serde_json::from_value::<DirectoryFile>(v)
            .unwrap()
            .validate()
            .unwrap()
    }

    fn base(served: &[&str], staff: &[&str], accounts: &[&str]) -> Directory {
        directory(serde_json::json!({
            "brands": [{"brand_id": "b1", "name": "品牌"}],
            "dealers": [{"dealer_id": "d1", "brand_id": "b1", "name": "济南店", "city": "济南", "served_cities": served, "strategy": "round_robin"}],
            "staff": staff.iter().map(|s| serde_json::json!({"staff_id": s, "dealer_id": "d1", "name": s, "role": "sales", "on_duty": true, "cap": 5})).collect::<Vec<_>>(),
            "accounts": accounts.iter().map(|a| serde_json::json!({"platform": "douyin", "account_id": a, "brand_id": "b1", "owner": "dealer", "dealer_id": "d1"})).collect::<Vec<_>>(),
        }))
    }

    #[test]
    fn the_same_directory_changes_nothing() {
        let d = base(&["泰安"], &["s1"], &["a1"]);
        assert!(diff(&d, &d).is_empty());
    }

    #[test]
    fn removals_of_a_city_a_consultant_and_an_account() {
        let live = base(&["泰安", "德州"], &["s1", "s2"], &["a1", "a2"]);
        let file = base(&["泰安"], &["s1"], &["a1"]);
        let d = diff(&live, &file);
        // 德州 is 371400 (GB/T 2260), written out here, not looked up.
        assert_eq!(
            d.removed,
            vec![
                Removal::ServedCity {
                    dealer_id: "d1".into(),
                    city: CityCode(371400)
                },
                Removal::Staff {
                    dealer_id: "d1".into(),
                    staff_id: "s2".into()
                },
                Removal::Account {
                    platform: Platform::Douyin,
                    account_id: "a2".into()
                },
            ]
        );
        assert!(d.added.is_empty() && d.changed.is_empty(), "{d:?}");
        assert_eq!(
            d.lines(),
            [
                "- served city 德州市 (371400) of dealer d1",
                "- staff s2 of dealer d1",
                "- account douyin:a2"
            ]
        );
        // The other way round: the same records added.
        let back = diff(&file, &live);
        assert!(back.removed.is_empty());
        assert_eq!(back.added.len(), 3, "{back:?}");
    }

    #[test]
    fn a_dealer_gone_from_the_file_is_removed_with_its_cities_and_staff() {
        let live = base(&["泰安"], &["s1"], &[]);
        let file = directory(serde_json::json!({
            "brands": [{"brand_id": "b1", "name": "品牌"}], "dealers": [], "staff": [], "accounts": []
        }));
        let d = diff(&live, &file);
        assert_eq!(
            d.removed,
            vec![
                Removal::Dealer {
                    dealer_id: "d1".into()
                },
                // Its own city (济南, 370100) is served too, then 泰安 (370900).
                Removal::ServedCity {
                    dealer_id: "d1".into(),
                    city: CityCode(370100)
                },
                Removal::ServedCity {
                    dealer_id: "d1".into(),
                    city: CityCode(370900)
                },
                Removal::Staff {
                    dealer_id: "d1".into(),
                    staff_id: "s1".into()
                },
            ]
        );
    }

    #[test]
    fn other_brands_are_left_alone_and_changes_are_named() {
        let mut live = base(&["泰安"], &["s1"], &["a1"]);
        let other = directory(serde_json::json!({
            "brands": [{"brand_id": "b2", "name": "别的"}],
            "dealers": [{"dealer_id": "d9", "brand_id": "b2", "name": "青岛店", "city": "青岛", "strategy": "round_robin"}],
            "staff": [], "accounts": []
        }));
        live.brands.extend(other.brands);
        live.dealers.extend(other.dealers);
        let mut file = base(&["泰安"], &["s1"], &["a1"]);
        file.staff[0].cap = 9;
        let d = diff(&live, &file);
        assert!(d.removed.is_empty(), "{d:?}");
        assert_eq!(d.changed, ["staff s1 of dealer d1"]);
    }
}

#[cfg(test)]
mod brand_ops_tests {
    use super::*;
    use crate::directory_file::DirectoryFile;

    fn file(ops: serde_json::Value) -> Result<Directory, Vec<crate::directory_file::RowError>> {
        serde_json::from_value::<DirectoryFile>(serde_json::json!({
            "brands": [{"brand_id": "b1", "name": "品牌"}, {"brand_id": "b2", "name": "别的品牌"}],
            "dealers": [
                {"dealer_id": "d1", "brand_id": "b1", "name": "济南店", "city": "济南", "strategy": "round_robin"},
                {"dealer_id": "d2", "brand_id": "b1", "name": "青岛店", "city": "青岛", "strategy": "round_robin"},
                {"dealer_id": "x1", "brand_id": "b2", "name": "别的店", "city": "济南", "strategy": "round_robin"}
            ],
            "brand_ops": ops,
        }))
        .unwrap()
        .validate()
    }

    #[test]
    fn brand_operations_oversee_their_dealers_or_regions_of_their_brand_only() {
        let d = file(serde_json::json!([
            {"staff_id": "o1", "brand_id": "b1", "name": "运营"},
            {"staff_id": "o2", "brand_id": "b1", "name": "运营", "regions": ["青岛"]},
            {"staff_id": "o3", "brand_id": "b1", "name": "运营", "dealers": ["d1"]}
        ]))
        .unwrap();
        let sees = |ops: usize| -> Vec<&str> {
            d.dealers
                .iter()
                .filter(|x| d.brand_ops[ops].oversees(x))
                .map(|x| x.dealer_id.as_str())
                .collect()
        };
        assert_eq!(sees(0), ["d1", "d2"]);
        assert_eq!(sees(1), ["d2"]);
        assert_eq!(sees(2), ["d1"]);
        // Another brand's dealer in a named list, an unknown region or dealer.
        let errors = file(serde_json::json!([
            {"staff_id": "o1", "brand_id": "b1", "name": "运营", "dealers": ["x1", "nope"], "regions": ["火星"]}
        ]))
        .unwrap_err();
        let problems: Vec<&str> = errors.iter().map(|e| e.problem.as_str()).collect();
        assert_eq!(
            problems,
            [
                "dealer \"x1\" belongs to brand \"b2\"",
                "unknown dealer \"nope\"",
                "unknown region \"火星\""
            ]
        );
    }

    #[test]
    fn a_brand_operations_row_dropped_from_the_file_is_removed() {
        let live = file(serde_json::json!([
            {"staff_id": "o1", "brand_id": "b1", "name": "运营"},
            {"staff_id": "o2", "brand_id": "b1", "name": "运营"}
        ]))
        .unwrap();
        let next = file(serde_json::json!([
            {"staff_id": "o1", "brand_id": "b1", "name": "运营", "regions": ["济南"]}
        ]))
        .unwrap();
        let d = diff(&live, &next);
        assert_eq!(d.changed, ["brand operations o1 of brand b1"]);
        assert_eq!(
            d.removed,
            [Removal::BrandOps {
                brand_id: "b1".into(),
                staff_id: "o2".into()
            }]
        );
    }
}
