//! Cities as administrative division codes (GB/T 2260), and resolution of the
//! many ways platforms write a city name.
//!
//! The table is `data/cities.tsv` (generated from china-division@2.7.0; see
//! `data/README.md`), embedded at compile time and indexed on first use.
//! It holds every prefecture-level city, the four municipalities as one city
//! each, and the county-level units that report directly to a province
//! (济源, 仙桃, 琼海, 石河子, ...) because those have no prefecture above them.

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

const CITIES_TSV: &str = include_str!("../data/cities.tsv");

/// A prefecture-level city's 6-digit administrative code, e.g. 370100 for 济南市.
/// Municipalities (北京, 上海, 天津, 重庆) use their province-level code (110000);
/// county-level units directly under a province use their own code (济源市 419001).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CityCode(pub u32);

impl fmt::Display for CityCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:06}", self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct City {
    pub code: CityCode,
    /// Full official name, e.g. "济南市", "延边朝鲜族自治州", "北京市".
    pub name: &'static str,
    /// Full province name, e.g. "山东省"; a municipality's own name for itself.
    pub province: &'static str,
}

impl City {
    /// The name people use in speech and ad platforms use in `location`
    /// fields: "济南" for 济南市, "延边" for 延边朝鲜族自治州.
    pub fn short_name(&self) -> &'static str {
        short_name(self.name)
    }

    /// 北京, 天津, 上海 and 重庆 are provinces and cities at once.
    pub fn is_municipality(&self) -> bool {
        // Their codes are the province's (110000); listed rather than tested
        // with `% 10_000` because clippy's `is_multiple_of` needs Rust 1.87.
        matches!(self.code.0, 110_000 | 120_000 | 310_000 | 500_000)
    }
}

/// Every city in the table, sorted by code.
pub fn all() -> &'static [City] {
    &index().cities
}

pub fn by_code(code: CityCode) -> Option<&'static City> {
    let cities = all();
    cities
        .binary_search_by_key(&code, |c| c.code)
        .ok()
        .map(|i| &cities[i])
}

/// Resolves a city name as people and platforms write it: "北京市", "北京",
/// "济南", "山东省济南市", "山东济南", "山东+济南" (Ocean Engine), "山东 济南",
/// "延边朝鲜族自治州" or "延边", "锡林郭勒", "林芝地区" (now 林芝市).
///
/// Returns `None` rather than guessing: for unknown names, for a province
/// that is not a municipality, and for a short name that is ambiguous on its
/// own ("吉林" is a province and a city; "海南" a province and 青海's
/// 海南藏族自治州), which needs the province in front to resolve.
pub fn normalise(input: &str) -> Option<&'static City> {
    let index = index();
    let joined: String = input.chars().filter(|&c| !is_separator(c)).collect();
    let name = joined.strip_prefix("中国").unwrap_or(&joined);
    if name.is_empty() {
        return None;
    }
    if let Some(city) = index.find_city(name, None) {
        return Some(city);
    }
    // Otherwise it may be a province followed by a city, or a municipality alone.
    for province in &index.provinces {
        for prefix in [province.name, province.short] {
            let Some(rest) = name.strip_prefix(prefix) else {
                continue;
            };
            let found = if rest.is_empty() {
                province.municipality.map(|i| &index.cities[i])
            } else {
                index.find_city(rest, Some(province.name))
            };
            if found.is_some() {
                return found;
            }
        }
    }
    None
}

/// Characters that separate a province from its city in platform data
/// ("山东+济南", "山东-济南", "山东 济南", "山东/济南", "山东·济南").
fn is_separator(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '+' | '-' | '_' | '/' | '|' | ',' | '·' | '＋' | '－' | '／' | '，' | '、' | '・'
        )
}

/// Administrative suffixes, tried in order. After an "自治" suffix the stem
/// still names the area's peoples, which are stripped as well.
const SUFFIXES: [&str; 9] = [
    "自治州",
    "自治县",
    "自治区",
    "地区",
    "林区",
    "盟",
    "省",
    "市",
    "县",
];

/// The 55 recognised minority peoples, as they appear inside the names of
/// autonomous areas ("延边朝鲜族自治州", "伊犁哈萨克自治州"), space-separated.
const ETHNIC_GROUPS: &str = concat!(
    "蒙古 回 藏 维吾尔 苗 彝 壮 布依 朝鲜 满 侗 瑶 白 土家 哈尼 哈萨克 傣 黎 傈僳 ",
    "佤 畲 高山 拉祜 水 东乡 纳西 景颇 柯尔克孜 土 达斡尔 仫佬 羌 布朗 撒拉 毛南 仡佬 锡伯 阿昌 ",
    "普米 塔吉克 怒 乌孜别克 俄罗斯 鄂温克 德昂 保安 裕固 京 塔塔尔 独龙 鄂伦春 赫哲 门巴 珞巴 基诺",
);

/// Strips the administrative suffix and, for autonomous areas, the peoples
/// named before it: "延边朝鲜族自治州" -> "延边", "锡林郭勒盟" -> "锡林郭勒",
/// "山东省" -> "山东", "新疆维吾尔自治区" -> "新疆". Never shortens below two
/// characters, so "忠县" stays "忠县".
fn short_name(name: &str) -> &str {
    for suffix in SUFFIXES {
        if let Some(stem) = name.strip_suffix(suffix) {
            let stem = if suffix.starts_with("自治") {
                strip_ethnic_groups(stem)
            } else {
                stem
            };
            if stem.chars().count() >= 2 {
                return stem;
            }
        }
    }
    name
}

/// "海西蒙古族藏族" -> "海西", "伊犁哈萨克" -> "伊犁". One-character peoples
/// are only stripped with their "族", so an ordinary place name ending in,
/// say, 白 or 水 is left alone.
fn strip_ethnic_groups(mut stem: &str) -> &str {
    loop {
        let shorter = ETHNIC_GROUPS
            .split(' ')
            .filter_map(|group| match stem.strip_suffix('族') {
                Some(s) => s.strip_suffix(group),
                None if group.chars().count() > 1 => stem.strip_suffix(group),
                None => None,
            })
            .filter(|rest| rest.chars().count() >= 2)
            .min_by_key(|rest| rest.len()); // the longest matching people

        match shorter {
            Some(rest) => stem = rest,
            None => return stem,
        }
    }
}

struct Province {
    name: &'static str,
    short: &'static str,
    /// For a municipality, its position in `cities`: the name alone resolves to it.
    municipality: Option<usize>,
}

struct Index {
    cities: Vec<City>,
    provinces: Vec<Province>,
    /// Full city name -> positions in `cities`.
    by_name: HashMap<&'static str, Vec<usize>>,
    /// Short city name -> positions in `cities`; may hold several.
    by_short: HashMap<&'static str, Vec<usize>>,
}

impl Index {
    /// Finds exactly one city called `name`, optionally within `province`.
    fn find_city(&self, name: &str, province: Option<&str>) -> Option<&City> {
        let unique = |positions: Option<&Vec<usize>>, autonomous_only: bool| {
            let mut matching = positions
                .into_iter()
                .flatten()
                .map(|&i| &self.cities[i])
                .filter(|c| province.is_none_or(|p| c.province == p))
                .filter(|c| !autonomous_only || c.name.ends_with("自治州"));
            match (matching.next(), matching.next()) {
                (Some(city), None) => Some(city),
                _ => None, // unknown, or ambiguous: do not guess
            }
        };
        if let Some(city) = unique(self.by_name.get(name), false) {
            return Some(city);
        }
        // A bare "吉林" or "海南省" names a province first; only a full city
        // name or a province in front makes it a city.
        let short = short_name(name);
        if province.is_none() && self.is_plain_province(name, short) {
            return None;
        }
        unique(self.by_short.get(short), false).or_else(|| {
            // Colloquial "延边州", "大理州" for autonomous prefectures.
            let stem = name.strip_suffix('州')?;
            unique(self.by_short.get(stem), true)
        })
    }

    fn is_plain_province(&self, name: &str, short: &str) -> bool {
        self.provinces.iter().any(|p| {
            p.municipality.is_none() && [name, short].iter().any(|n| *n == p.name || *n == p.short)
        })
    }
}

fn index() -> &'static Index {
    static INDEX: OnceLock<Index> = OnceLock::new();
    INDEX.get_or_init(build_index)
}

fn build_index() -> Index {
    let mut cities: Vec<City> = CITIES_TSV
        .lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(parse_row)
        .collect();
    cities.sort_by_key(|c| c.code);

    let mut by_name: HashMap<&'static str, Vec<usize>> = HashMap::new();
    let mut by_short: HashMap<&'static str, Vec<usize>> = HashMap::new();
    for (i, city) in cities.iter().enumerate() {
        by_name.entry(city.name).or_default().push(i);
        by_short.entry(city.short_name()).or_default().push(i);
    }

    let mut provinces: Vec<Province> = Vec::new();
    for city in &cities {
        if provinces.iter().all(|p| p.name != city.province) {
            provinces.push(Province {
                name: city.province,
                short: short_name(city.province),
                municipality: None,
            });
        }
    }
    for province in &mut provinces {
        province.municipality = cities
            .iter()
            .position(|c| c.is_municipality() && c.province == province.name);
    }

    Index {
        cities,
        provinces,
        by_name,
        by_short,
    }
}

/// Parses one `code\tprovince\tcity` row of the vendored, generated table.
fn parse_row(line: &'static str) -> City {
    let mut fields = line.split('\t');
    let (Some(code), Some(province), Some(name), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        panic!("data/cities.tsv: malformed row {line:?}");
    };
    let code = code
        .parse()
        .unwrap_or_else(|_| panic!("data/cities.tsv: bad code in {line:?}"));
    City {
        code: CityCode(code),
        name,
        province,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn code(input: &str) -> Option<u32> {
        normalise(input).map(|c| c.code.0)
    }

    #[test]
    fn table_is_sane() {
        let cities = all();
        assert!(cities.len() > 360, "{}", cities.len());
        assert!(
            cities.windows(2).all(|w| w[0].code < w[1].code),
            "sorted, unique codes"
        );
        for c in cities {
            assert!((110_000..=999_999).contains(&c.code.0), "{c:?}");
            assert!(
                !c.name.contains("市辖区") && !c.name.contains("直辖"),
                "{c:?}"
            );
            assert!(c.name != "县", "{c:?}");
        }
        let municipalities: Vec<_> = cities.iter().filter(|c| c.is_municipality()).collect();
        let names: Vec<_> = municipalities.iter().map(|c| c.name).collect();
        assert_eq!(names, ["北京市", "天津市", "上海市", "重庆市"]);
        assert_eq!(index().provinces.len(), 31);
    }

    #[test]
    fn short_names() {
        assert_eq!(ETHNIC_GROUPS.split(' ').count(), 55);
        for (full, short) in [
            ("济南市", "济南"),
            ("山东省", "山东"),
            ("内蒙古自治区", "内蒙古"),
            ("广西壮族自治区", "广西"),
            ("新疆维吾尔自治区", "新疆"),
            ("延边朝鲜族自治州", "延边"),
            ("海西蒙古族藏族自治州", "海西"),
            ("克孜勒苏柯尔克孜自治州", "克孜勒苏"),
            ("伊犁哈萨克自治州", "伊犁"),
            ("锡林郭勒盟", "锡林郭勒"),
            ("阿克苏地区", "阿克苏"),
            ("神农架林区", "神农架"),
            ("保亭黎族苗族自治县", "保亭"),
            ("忠县", "忠县"),
            ("济南", "济南"),
        ] {
            assert_eq!(short_name(full), short, "{full}");
        }
    }

    #[test]
    fn resolves_names_as_platforms_write_them() {
        for (input, expected) in [
            ("北京市", 110_000),
            ("北京", 110_000),
            ("上海", 310_000),
            ("天津市", 120_000),
            ("重庆", 500_000),
            ("北京市北京市", 110_000),
            ("上海+上海", 310_000),
            ("济南市", 370_100),
            ("济南", 370_100),
            ("山东省济南市", 370_100),
            ("山东济南", 370_100),
            ("山东省济南", 370_100),
            ("山东+济南", 370_100),
            ("山东-济南", 370_100),
            ("山东 济南", 370_100),
            ("山东省 / 济南市", 370_100),
            ("  济南\t", 370_100),
            ("中国山东济南", 370_100),
            ("广东+深圳", 440_300),
            ("内蒙古+呼和浩特", 150_100),
            ("广西南宁", 450_100),
            ("黑龙江省哈尔滨市", 230_100),
        ] {
            assert_eq!(code(input), Some(expected), "{input:?}");
        }
    }

    #[test]
    fn resolves_minority_region_and_region_suffixes() {
        for (input, expected) in [
            ("延边朝鲜族自治州", 222_400),
            ("延边", 222_400),
            ("延边州", 222_400),
            ("吉林+延边", 222_400),
            ("大理白族自治州", 532_900),
            ("大理", 532_900),
            ("云南大理", 532_900),
            ("锡林郭勒盟", 152_500),
            ("锡林郭勒", 152_500),
            ("内蒙古+锡林郭勒", 152_500),
            ("阿克苏地区", 652_900),
            ("阿克苏", 652_900),
            ("伊犁", 654_000),
            ("恩施", 422_800),
            // 地区 that became cities keep resolving under the old name.
            ("林芝地区", 540_400),
            ("西藏林芝地区", 540_400),
        ] {
            assert_eq!(code(input), Some(expected), "{input:?}");
        }
    }

    #[test]
    fn resolves_county_level_units_under_a_province() {
        for (input, expected) in [
            ("济源", 419_001),
            ("湖北仙桃", 429_004),
            ("神农架林区", 429_021),
            ("海南+琼海", 469_002),
            ("石河子市", 659_001),
        ] {
            assert_eq!(code(input), Some(expected), "{input:?}");
        }
    }

    #[test]
    fn does_not_guess() {
        for input in [
            "",
            "   ",
            "+",
            "不限",
            "火星",
            "济", // unknown or partial
            "山东",
            "山东省",
            "广东", // a province that is not a municipality
            "吉林",
            "海南",
            "海南省",    // province and city share the name
            "山东+广州", // a city in the wrong province
            "巢湖",
            "安徽省巢湖市",
            "莱芜",      // no longer prefecture-level cities
            "北京+朝阳", // districts are not in the table
        ] {
            assert_eq!(normalise(input), None, "{input:?}");
        }
        // With the province or the full name they resolve.
        assert_eq!(code("吉林市"), Some(220_200));
        assert_eq!(code("吉林吉林"), Some(220_200));
        assert_eq!(code("吉林省吉林市"), Some(220_200));
        assert_eq!(code("青海+海南"), Some(632_500));
        assert_eq!(code("海南藏族自治州"), Some(632_500));
        assert_eq!(code("朝阳"), Some(211_300)); // 辽宁省朝阳市
    }

    #[test]
    fn by_code_finds_cities() {
        assert_eq!(by_code(CityCode(370_100)).map(|c| c.name), Some("济南市"));
        assert_eq!(
            by_code(CityCode(370_100)).map(|c| c.province),
            Some("山东省")
        );
        assert_eq!(by_code(CityCode(110_000)).map(|c| c.name), Some("北京市"));
        assert_eq!(
            by_code(CityCode(110_100)),
            None,
            "municipalities use 110000"
        );
        assert_eq!(by_code(CityCode(370_000)), None, "a province is not a city");
        assert_eq!(by_code(CityCode(0)), None);
        assert_eq!(by_code(CityCode(999_999)), None);
    }

    #[test]
    fn city_code_formats_and_serialises_as_a_number() {
        assert_eq!(CityCode(370_100).to_string(), "370100");
        assert_eq!(serde_json::to_string(&CityCode(370_100)).unwrap(), "370100");
        assert_eq!(
            serde_json::from_str::<CityCode>("110000").unwrap(),
            CityCode(110_000)
        );
    }

    #[test]
    fn every_city_resolves_by_name_and_with_its_province() {
        for city in all() {
            let provinces = [city.province, short_name(city.province)];
            for province in provinces {
                for name in [city.name, city.short_name()] {
                    let input = format!("{province}+{name}");
                    assert_eq!(normalise(&input), Some(city), "{input}");
                }
            }
            assert_eq!(normalise(city.name), Some(city), "{}", city.name);
        }
    }

    fn any_city() -> impl Strategy<Value = &'static City> {
        (0..all().len()).prop_map(|i| &all()[i])
    }

    proptest! {
        #[test]
        fn every_full_name_resolves_to_its_city(city in any_city(), pad in "[ \t]{0,2}") {
            prop_assert_eq!(normalise(city.name), Some(city));
            prop_assert_eq!(normalise(&format!("{pad}{}{pad}", city.name)), Some(city));
            prop_assert_eq!(by_code(city.code), Some(city));
        }

        #[test]
        fn province_and_city_resolve_in_any_spelling(
            city in any_city(),
            short_province in any::<bool>(),
            short_city in any::<bool>(),
            separator in prop::sample::select(vec!["", "+", "-", " ", " + ", "/"]),
        ) {
            let province = if short_province { short_name(city.province) } else { city.province };
            let name = if short_city { city.short_name() } else { city.name };
            let input = format!("{province}{separator}{name}");
            prop_assert_eq!(normalise(&input), Some(city), "{}", input);
        }

        #[test]
        fn short_names_resolve_unless_they_are_also_a_province(city in any_city()) {
            let short = city.short_name();
            let province_named = index().is_plain_province(short, short);
            let expected = if province_named { None } else { Some(city) };
            prop_assert_eq!(normalise(short), expected, "{}", short);
        }

        #[test]
        fn random_input_never_panics(s in any::<String>()) {
            let _ = normalise(&s);
        }
    }
}
