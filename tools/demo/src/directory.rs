//! A generated regional directory for the demo: several brands, hundreds of
//! dealers in real cities (with neighbouring cities of the same province as
//! served cities), staff with caps and duty flags, platform accounts.

use leads_domain::city;
use leads_domain::directory_file::DirectoryFile;

use crate::dataset::Rng;

/// Large car markets first: dealers cluster where buyers are.
const CITIES: [&str; 60] = [
    "北京",
    "上海",
    "广州",
    "深圳",
    "成都",
    "杭州",
    "重庆",
    "武汉",
    "西安",
    "苏州",
    "天津",
    "南京",
    "长沙",
    "郑州",
    "东莞",
    "青岛",
    "沈阳",
    "宁波",
    "昆明",
    "合肥",
    "佛山",
    "福州",
    "哈尔滨",
    "济南",
    "温州",
    "长春",
    "石家庄",
    "常州",
    "泉州",
    "南宁",
    "贵阳",
    "南昌",
    "南通",
    "金华",
    "徐州",
    "太原",
    "嘉兴",
    "烟台",
    "惠州",
    "保定",
    "台州",
    "中山",
    "绍兴",
    "潍坊",
    "兰州",
    "珠海",
    "镇江",
    "扬州",
    "临沂",
    "洛阳",
    "唐山",
    "盐城",
    "汕头",
    "廊坊",
    "泰州",
    "济宁",
    "湖州",
    "江门",
    "淄博",
    "芜湖",
];

const BRANDS: [(&str, &str, &str); 3] = [
    ("hongtu", "鸿途汽车", "ht"),
    ("xinglan", "星澜汽车", "xl"),
    ("yunhai", "云海汽车", "yh"),
];

const STRATEGIES: [&str; 4] = ["round_robin", "saturation", "round_robin", "claim"];

/// About `dealers` dealers split over the brands, as a directory file.
pub fn generate(dealers: usize, seed: u64) -> DirectoryFile {
    let mut rng = Rng::new(seed ^ 0xD1EC);
    let mut brands = Vec::new();
    let mut dealer_rows = Vec::new();
    let mut staff = Vec::new();
    let mut accounts = Vec::new();
    for (b, (brand_id, name, short)) in BRANDS.iter().enumerate() {
        brands.push(serde_json::json!({
            "brand_id": brand_id, "name": name, "protection_days": 30 + 15 * b as u32,
            "exclusivity_days": 15, "first_contact_minutes": 5 + 5 * b as u32,
            // Half the brands move an uncalled lead to someone else.
            "reassign_on_sla_breach": b % 2 == 1
        }));
        let count = dealers / BRANDS.len() + usize::from(b < dealers % BRANDS.len());
        for i in 0..count {
            // Cities in market order, several dealers in the big ones.
            let home_name = CITIES[(i * 7 / 10) % CITIES.len()];
            let home = city::normalise(home_name).expect("demo cities are real");
            let neighbours: Vec<&str> = city::all()
                .iter()
                .filter(|c| c.province == home.province && c.code != home.code)
                .map(|c| c.name)
                .collect();
            let served: Vec<&str> = if neighbours.is_empty() {
                Vec::new()
            } else {
                (0..rng.below(3)).map(|_| *rng.pick(&neighbours)).collect()
            };
            let dealer_id = format!("{short}-{:03}", i + 1);
            dealer_rows.push(serde_json::json!({
                "dealer_id": dealer_id, "brand_id": brand_id,
                "name": format!("{name}{}{}号店", home.short_name(), i + 1),
                "city": home.name, "served_cities": served,
                "strategy": rng.pick(&STRATEGIES), "daily_remote_capacity": 20 + rng.below(40)
            }));
            staff.push(serde_json::json!({
                "staff_id": format!("{dealer_id}-mgr"), "dealer_id": dealer_id, "name": "店总",
                "role": "manager", "on_duty": true, "cap": 0, "wecom_userid": format!("{dealer_id}-mgr")
            }));
            for s in 1..=(3 + rng.below(5)) {
                staff.push(serde_json::json!({
                    "staff_id": format!("{dealer_id}-s{s}"), "dealer_id": dealer_id,
                    "name": format!("顾问{s}"), "role": "sales", "on_duty": !rng.chance(0.15),
                    "cap": 10 + rng.below(30), "wecom_userid": format!("{dealer_id}-s{s}")
                }));
            }
            for (platform, prefix) in [
                ("douyin", "dy"),
                ("feiyu", "fy"),
                ("autohome", "ah"),
                ("dongchedi", "dcd"),
            ] {
                accounts.push(serde_json::json!({
                    "platform": platform, "account_id": format!("{prefix}-{dealer_id}"),
                    "brand_id": brand_id, "owner": "dealer", "dealer_id": dealer_id
                }));
            }
        }
        for (platform, account) in [
            ("douyin", format!("dy-{brand_id}-official")),
            ("oem_crm", format!("crm-{brand_id}")),
            ("wecom", format!("ww-{brand_id}-corp")),
        ] {
            accounts.push(serde_json::json!({
                "platform": platform, "account_id": account, "brand_id": brand_id, "owner": "brand"
            }));
        }
    }
    // Each brand's operations, overseeing all its dealers (the demo's brand view).
    let brand_ops: Vec<serde_json::Value> = BRANDS
        .iter()
        .map(|(brand_id, _, short)| {
            serde_json::json!({"staff_id": format!("{short}-ops"), "brand_id": brand_id, "name": "品牌运营"})
        })
        .collect();
    serde_json::from_value(serde_json::json!({
        "brands": brands, "dealers": dealer_rows, "staff": staff, "accounts": accounts,
        "brand_ops": brand_ops
    }))
    .expect("generated directory matches the file format")
}
