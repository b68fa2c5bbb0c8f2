//! Mobile-number prefix (号段) attribution from libphonenumber's geocoding data.
//!
//! `data/libphonenumber/geocoding-zh-86.txt` (Apache-2.0, see the README and
//! LICENSE beside it) maps number prefixes to places, one `86<prefix>|<place>`
//! per line, e.g. `861300000|山东省济南市`; the longest matching prefix wins.
//! Places are resolved with [`crate::city::normalise`].
//!
//! The answer is `None`, never a guess, when:
//! - no prefix covers the number (the data has no 16x or 19x ranges);
//! - the longest prefix names a place that no longer exists as a city
//!   (安徽省巢湖市, abolished 2011 and split three ways) or does not resolve.
//!   Places renamed or merged whole (襄樊 -> 襄阳, 莱芜 -> 济南) resolve to the successor.
//!   A shorter prefix is not consulted then: it would be a different, wrong city.
//!
//! Former 地区 that became cities under the same name still resolve
//! ("西藏林芝地区" is now 林芝市), because [`crate::city::normalise`] compares
//! names without their administrative suffix.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::{city, CityCode, Phone};

/// Places renamed or merged whole into one successor city since the data was
/// written: the successor is a fact, not a guess. 巢湖 (split between three
/// cities in 2011) has no single successor and stays unresolved.
const SUCCESSORS: [(&str, &str); 2] = [
    ("湖北省襄樊市", "湖北省襄阳市"), // renamed 2010
    ("山东省莱芜市", "山东省济南市"), // merged whole into 济南 2019
];

/// A place name from the data, resolved to today's city if there is exactly one.
fn resolve_place(place: &str) -> Option<CityCode> {
    let current = SUCCESSORS
        .iter()
        .find(|(old, _)| *old == place)
        .map_or(place, |(_, new)| new);
    city::normalise(current).map(|c| c.code)
}

const GEOCODING_ZH: &str = include_str!("../data/libphonenumber/geocoding-zh-86.txt");

/// The city the number's prefix was allocated to, if the data knows it.
pub fn attribute(phone: &Phone) -> Option<CityCode> {
    table().lookup(phone.national())
}

/// Mobile prefixes as numbers ("1300000" -> 1_300_000), sorted for binary
/// search. All start with 1, so prefixes of different lengths never collide.
struct PrefixTable {
    /// (prefix, city code), with `UNRESOLVED` for places that did not
    /// resolve: those entries must still shadow shorter prefixes.
    entries: Vec<(u32, u32)>,
    shortest: usize,
    longest: usize,
}

const UNRESOLVED: u32 = 0;

/// Prefixes are at most this long, so that they fit a `u32`.
const MAX_PREFIX_DIGITS: usize = 9;

impl PrefixTable {
    fn lookup(&self, national: &str) -> Option<CityCode> {
        let longest = self.longest.min(national.len());
        (self.shortest..=longest)
            .rev()
            .find_map(|len| {
                let prefix: u32 = national[..len].parse().ok()?;
                let i = self.entries.binary_search_by_key(&prefix, |e| e.0).ok()?;
                Some(self.entries[i].1)
            })
            .filter(|&code| code != UNRESOLVED)
            .map(CityCode)
    }
}

fn table() -> &'static PrefixTable {
    static TABLE: OnceLock<PrefixTable> = OnceLock::new();
    TABLE.get_or_init(|| parse(GEOCODING_ZH))
}

fn parse(data: &str) -> PrefixTable {
    // About 340 distinct places for 130,000 prefixes: resolve each once.
    let mut resolved: HashMap<&str, u32> = HashMap::new();
    let mut entries = Vec::new();
    for line in data.lines() {
        let Some((key, place)) = line.split_once('|') else {
            continue; // comments and blank lines
        };
        let Some(prefix) = key.strip_prefix("86").filter(|p| is_mobile_prefix(p)) else {
            continue; // landline area codes such as 8610 (Beijing)
        };
        let code = *resolved
            .entry(place)
            .or_insert_with(|| resolve_place(place).map_or(UNRESOLVED, |c| c.0));
        let prefix: u32 = prefix.parse().expect("checked to be digits");
        entries.push((prefix, code));
    }
    entries.sort_unstable();
    entries.dedup_by_key(|e| e.0);

    let digits = |e: &(u32, u32)| e.0.ilog10() as usize + 1;
    PrefixTable {
        shortest: entries.iter().map(digits).min().unwrap_or(1),
        longest: entries.iter().map(digits).max().unwrap_or(0),
        entries,
    }
}

/// `1[3-9]` then more digits: a mobile range, not a landline area code.
fn is_mobile_prefix(prefix: &str) -> bool {
    let b = prefix.as_bytes();
    (2..=MAX_PREFIX_DIGITS).contains(&b.len())
        && b[0] == b'1'
        && (b'3'..=b'9').contains(&b[1])
        && b.iter().all(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn city_of(national: &str) -> Option<u32> {
        attribute(&Phone::parse(national).unwrap()).map(|c| c.0)
    }

    #[test]
    fn known_prefixes_map_to_their_city() {
        for (number, expected) in [
            ("13000001234", 370_100), // 861300000|山东省济南市
            ("13000011234", 320_400), // 861300001|江苏省常州市
            ("13000101234", 110_000), // 861300010|北京市
            ("13051991234", 110_000), // 8613051|北京市 (5-digit prefix)
            ("13052001234", 310_000), // 8613052|上海市
            ("13052601234", 211_300), // 861305260|辽宁省朝阳市, inside 8613052
            ("18000101234", 320_300), // 861800010|江苏省徐州市
            ("13009081234", 222_400), // 861300908|吉林省延边朝鲜族自治州
            ("13030451234", 152_500), // 861303045|内蒙古锡林郭勒盟
            ("13307221234", 429_004), // 861330722|湖北省仙桃市
            ("13228941234", 540_400), // 861322894|西藏林芝地区, now 林芝市
        ] {
            assert_eq!(city_of(number), Some(expected), "{number}");
        }
    }

    #[test]
    fn longest_prefix_wins() {
        assert_eq!(city_of("13153841234"), Some(370_900)); // 86131538|山东省泰安市
        assert_eq!(city_of("13153801234"), Some(371_500)); // 861315380|山东省聊城市
    }

    #[test]
    fn obsolete_cities_give_none_not_a_shorter_prefix() {
        // 861300002|安徽省巢湖市: abolished 2011 and split three ways.
        assert_eq!(city_of("13000021234"), None);
    }

    #[test]
    fn renamed_and_merged_cities_resolve_to_their_successor() {
        assert_eq!(city_of("13035201234"), Some(420_600)); // 湖北省襄樊市 -> 襄阳市
        assert_eq!(city_of("13042801234"), Some(420_600)); // 襄樊, inside a 武汉 prefix
        assert_eq!(city_of("13002761234"), Some(370_100)); // 山东省莱芜市 -> 济南市
        assert_eq!(city_of("13153831234"), Some(370_100)); // 莱芜, inside a 泰安 prefix
    }

    #[test]
    fn uncovered_ranges_give_none() {
        for number in ["16612345678", "16712345678", "19912345678", "19112345678"] {
            assert_eq!(city_of(number), None, "{number}");
        }
    }

    #[test]
    fn table_holds_only_mobile_prefixes() {
        let t = table();
        assert!(t.entries.len() > 120_000, "{}", t.entries.len());
        assert!((2..=MAX_PREFIX_DIGITS).contains(&t.shortest));
        assert!((t.shortest..=MAX_PREFIX_DIGITS).contains(&t.longest));
        assert!(t.entries.iter().all(|e| e.0.to_string().starts_with('1')));
        // 8610 is Beijing's landline code, not a mobile range.
        assert!(t.entries.binary_search_by_key(&10, |e| e.0).is_err());
        // Every resolved code is a city we know.
        for &(_, code) in &t.entries {
            assert!(code == UNRESOLVED || city::by_code(CityCode(code)).is_some());
        }
    }

    #[test]
    fn data_has_no_duplicate_prefixes() {
        let mut keys: Vec<&str> = GEOCODING_ZH
            .lines()
            .filter_map(|l| l.split_once('|').map(|(k, _)| k))
            .collect();
        let n = keys.len();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), n);
    }

    #[test]
    fn unresolved_places_are_only_the_known_obsolete_ones() {
        let mut unresolved: Vec<&str> = GEOCODING_ZH
            .lines()
            .filter_map(|l| l.split_once('|'))
            .filter(|(k, _)| k.strip_prefix("86").is_some_and(is_mobile_prefix))
            .map(|(_, place)| place)
            .filter(|place| resolve_place(place).is_none())
            .collect();
        unresolved.sort_unstable();
        unresolved.dedup();
        assert_eq!(unresolved, ["安徽省巢湖市"]);
    }

    proptest! {
        #[test]
        fn never_panics_and_gives_known_cities(n in "1[3-9][0-9]{9}") {
            if let Some(code) = attribute(&Phone::parse(&n).unwrap()) {
                prop_assert!(city::by_code(code).is_some());
            }
        }
    }
}
