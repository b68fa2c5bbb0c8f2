//! Notification texts (Chinese by default): a job in, a title, a body and a
//! link to the lead out. Pure, so every kind is tested without a channel.
//!
//! A full phone number never appears: jobs carry only the masked number, and
//! free text that people type (a customer "name" is sometimes the number
//! itself) goes through [`mask_phones`] before it is shown.

use crate::notification::{Notice, NotificationJob, NotificationKind, RankingNotice};

/// What a channel sends: WeCom shows title, body and a button to `url`; SMS
/// and the CRM webhook use the parts they need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub title: String,
    pub body: String,
    pub url: String,
    /// The WeCom text card's button.
    pub button: &'static str,
}

impl Message {
    /// One short line for SMS (a message over 70 characters is billed as several).
    pub fn sms_text(&self) -> String {
        format!("{}，详情：{}", self.title, self.url)
    }

    /// Title and body, for the leak check: the url is left out because it
    /// carries the lead id (hex, which can hold digit runs) and never a phone.
    pub fn text(&self) -> String {
        format!("{}\n{}", self.title, self.body)
    }
}

/// `{base}/leads/{id}`: the consultant opens the lead there to call.
pub fn lead_link(base: &str, lead_id: &str) -> String {
    format!("{}/leads/{lead_id}", base.trim_end_matches('/'))
}

pub fn render(notice: &Notice, link_base: &str) -> Message {
    match notice {
        Notice::Lead(job) => render_lead(job, link_base),
        Notice::Ranking(r) => render_ranking(r, link_base),
        Notice::PoolSummary(p) => render_pool_summary(p, link_base),
        // The CRM gets the event itself; this is only what logs may show.
        Notice::Crm(e) => Message {
            title: format!("CRM: {}", e.kind.as_str()),
            body: String::new(),
            url: e
                .lead_id
                .as_deref()
                .map_or_else(String::new, |id| lead_link(link_base, id)),
            button: "",
        },
    }
}

/// One message per window however many leads are waiting (China time shown).
fn render_pool_summary(p: &crate::pool_notice::PoolSummary, link_base: &str) -> Message {
    let china = chrono::FixedOffset::east_opt(8 * 3600).expect("UTC+8");
    let (from, to) = (
        p.window_start.with_timezone(&china).format("%H:%M"),
        p.window_end.with_timezone(&china).format("%H:%M"),
    );
    Message {
        title: format!("线索池提醒：{}条线索暂无人接收", p.leads),
        body: format!(
            "{from}-{to} 共有{}条新线索因没有在岗且未满额的销售顾问而进入店内线索池，请尽快安排跟进。",
            p.leads
        ),
        url: format!("{}/leads", link_base.trim_end_matches('/')),
        button: "查看线索池",
    }
}

fn render_lead(job: &NotificationJob, link_base: &str) -> Message {
    let name = job
        .customer_name
        .as_deref()
        .map(|n| mask_phones(n.trim()))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "客户".to_string());
    let phone = job
        .phone_masked
        .as_deref()
        .map(mask_phones)
        .unwrap_or_else(|| "未留手机号".to_string());
    let series = if job.series_interest.is_empty() {
        "未说明".to_string()
    } else {
        mask_phones(&job.series_interest.join("、"))
    };
    let details = format!("客户：{name}\n电话：{phone}\n意向车型：{series}");
    let (title, intro, button) = match job.kind {
        NotificationKind::NewAssignment => (
            format!("新线索：{name} {phone}"),
            "您有一条新分配的线索，请尽快首次联系客户。",
            "查看并联系",
        ),
        NotificationKind::CustomerReturned => (
            format!("客户再次咨询：{name} {phone}"),
            "您跟进中的客户通过其他渠道再次留资，请及时跟进。",
            "查看详情",
        ),
        NotificationKind::ClaimOffer => (
            "抢单：新线索待认领".to_string(),
            "有一条新线索开放抢单，先到先得。",
            "立即认领",
        ),
        NotificationKind::NoOneAvailable => (
            format!("线索暂无人接收：{phone}"),
            "当前没有在岗且未满额的销售顾问可接收这条线索，线索已进入店内线索池，请安排跟进。",
            "查看详情",
        ),
        NotificationKind::SlaWarning => (
            format!("首次联系超时：{phone}"),
            "这条线索已超过首次联系时限仍未联系客户，请督促跟进或改派。",
            "查看详情",
        ),
        NotificationKind::Reassigned => (
            format!("线索改派给您：{name} {phone}"),
            "一条线索已改派给您，请尽快联系客户。",
            "查看并联系",
        ),
        NotificationKind::FollowUpDue => (
            format!("回访提醒：{name} {phone}"),
            "约定的回访时间到了，请联系客户并记录跟进结果。",
            "查看并联系",
        ),
        NotificationKind::ContactDeleted => (
            format!("企业微信好友已删除：{name} {phone}"),
            "这位客户与顾问的企业微信好友关系已解除，请关注并跟进。",
            "查看详情",
        ),
        NotificationKind::LostRequested => (
            format!("战败申请待审核：{name} {phone}"),
            "销售顾问申请将这条线索标记为战败，请查看跟进记录后审核通过或驳回。",
            "去审核",
        ),
        // A ranking or CRM kind on a lead job is a producer bug; say what we can.
        NotificationKind::RankingPublished | NotificationKind::CrmUpdate => (
            "经营排名已发布".to_string(),
            "品牌经营排名已更新。",
            "查看详情",
        ),
    };
    Message {
        title,
        body: format!("{intro}\n{details}"),
        url: lead_link(link_base, &job.lead_id),
        button,
    }
}

fn render_ranking(r: &RankingNotice, link_base: &str) -> Message {
    let change = match r.previous_rank {
        None => "首次上榜".to_string(),
        Some(prev) if prev > r.rank => format!("较上期上升{}名", prev - r.rank),
        Some(prev) if prev < r.rank => format!("较上期下降{}名", r.rank - prev),
        Some(_) => "与上期持平".to_string(),
    };
    Message {
        title: format!("经营排名已发布（{}）", r.date),
        body: format!(
            "{} 品牌内排名：第{}名／共{}家，等级{}，{change}。{}{}",
            r.date,
            r.rank,
            r.dealers,
            r.tier,
            r.score
                .map(|s| format!("经营效果分{s:.2}。"))
                .unwrap_or_default(),
            r.best_gain
                .as_ref()
                .map(|g| format!(
                    "提分建议：{}达到下一档可加{:.2}分。",
                    metric_label(&g.metric),
                    g.points
                ))
                .unwrap_or_default()
        ),
        url: format!("{}/rankings/{}", link_base.trim_end_matches('/'), r.date),
        button: "查看排名",
    }
}

/// The ranking page's name of a base-score metric (`ranking::METRIC_NAMES`).
fn metric_label(metric: &str) -> &str {
    match metric {
        "videos" => "发稿频次",
        "live_sessions" => "有效直播频次",
        "live_hours" => "开播时长",
        "like_rate" => "点赞率",
        "comment_rate" => "评论率",
        "share_rate" => "转发率",
        "completion_rate" => "完播率",
        "live_follow_rate" => "直播关注率",
        "live_comment_rate" => "直播评论率",
        "live_share_rate" => "直播分享率",
        other => other,
    }
}

/// Masks phones in free text: see [`crate::phone::mask_phones`].
pub fn mask_phones(text: &str) -> String {
    crate::phone::mask_phones(text)
}

/// True if `text` holds a full mainland mobile number in any written form
/// (the notifier's leak guard): see [`crate::phone::contains_phone`].
pub fn contains_full_phone(text: &str) -> bool {
    crate::phone::contains_phone(text)
}

/// The longest prefix of `s` within `max` bytes, ending on a character
/// boundary, with "…" when cut (WeCom caps a text card's title at 128 bytes
/// and its description at 512).
pub fn truncate_bytes(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let ellipsis = "…";
    let mut cut = max.saturating_sub(ellipsis.len());
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{ellipsis}", &s[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, TimeZone, Utc};
    use proptest::prelude::*;

    fn job(kind: NotificationKind) -> NotificationJob {
        NotificationJob {
            job_id: format!("L1#{}#1", kind.as_str()),
            kind,
            lead_id: "Lab12".into(),
            brand_id: "b".into(),
            dealer_id: Some("d".into()),
            recipients: vec!["s1".into()],
            phone_masked: Some("138****5678".into()),
            customer_name: Some("张先生".into()),
            series_interest: vec!["H5".into(), "H9".into()],
            created_at: Utc.with_ymd_and_hms(2026, 11, 24, 1, 0, 0).unwrap(),
            wecom_transfer: None,
        }
    }

    fn ranking(previous_rank: Option<u32>) -> RankingNotice {
        RankingNotice {
            job_id: "RANK#d#2026-11-23".into(),
            kind: NotificationKind::RankingPublished,
            brand_id: "b".into(),
            dealer_id: "d".into(),
            recipients: vec![],
            date: NaiveDate::from_ymd_opt(2026, 11, 23).unwrap(),
            rank: 3,
            dealers: 40,
            tier: "A".into(),
            previous_rank,
            score: None,
            best_gain: None,
            created_at: Utc.with_ymd_and_hms(2026, 11, 24, 1, 0, 0).unwrap(),
        }
    }

    #[test]
    fn every_lead_kind_shows_the_masked_phone_and_links_the_lead() {
        for kind in NotificationKind::ALL {
            let m = render(&Notice::Lead(job(kind)), "https://leads.example.com/");
            assert_eq!(m.url, "https://leads.example.com/leads/Lab12", "{kind:?}");
            assert!(m.body.contains("138****5678"), "{kind:?}: {}", m.body);
            assert!(!m.title.is_empty() && !m.button.is_empty());
        }
    }

    #[test]
    fn texts_per_kind() {
        let text = |kind| render(&Notice::Lead(job(kind)), "https://x").text();
        assert!(text(NotificationKind::NewAssignment).starts_with("新线索：张先生 138****5678"));
        assert!(text(NotificationKind::CustomerReturned).contains("再次留资"));
        assert!(text(NotificationKind::ClaimOffer).contains("先到先得"));
        assert!(text(NotificationKind::NoOneAvailable).contains("线索池"));
        assert!(text(NotificationKind::SlaWarning).starts_with("首次联系超时"));
        assert!(text(NotificationKind::Reassigned).contains("改派给您"));
        assert!(text(NotificationKind::FollowUpDue).starts_with("回访提醒"));
        assert!(text(NotificationKind::ContactDeleted).starts_with("企业微信好友已删除"));
        assert!(text(NotificationKind::LostRequested).starts_with("战败申请待审核"));
        assert!(text(NotificationKind::NewAssignment).contains("意向车型：H5、H9"));
    }

    #[test]
    fn missing_fields_have_words_not_blanks() {
        let mut j = job(NotificationKind::NewAssignment);
        j.customer_name = Some("  ".into());
        j.phone_masked = None;
        j.series_interest.clear();
        let m = render(&Notice::Lead(j), "https://x");
        assert!(m.body.contains("客户：客户"));
        assert!(m.body.contains("电话：未留手机号"));
        assert!(m.body.contains("意向车型：未说明"));
    }

    #[test]
    fn ranking_texts() {
        let m = render(&Notice::Ranking(ranking(Some(5))), "https://x");
        assert_eq!(m.title, "经营排名已发布（2026-11-23）");
        assert!(
            m.body.contains("第3名／共40家，等级A，较上期上升2名"),
            "{}",
            m.body
        );
        assert_eq!(m.url, "https://x/rankings/2026-11-23");
        let body = |prev| render(&Notice::Ranking(ranking(prev)), "https://x").body;
        assert!(body(Some(1)).contains("较上期下降2名"));
        assert!(body(Some(3)).contains("与上期持平"));
        assert!(body(None).contains("首次上榜"));
        assert!(!body(None).contains("提分建议"));
        let with_gain = RankingNotice {
            score: Some(123.456),
            best_gain: Some(crate::ranking::BestGain {
                metric: "share_rate".into(),
                points: 4.5,
            }),
            ..ranking(Some(3))
        };
        let m = render(&Notice::Ranking(with_gain), "https://x");
        assert!(
            m.body
                .contains("经营效果分123.46。提分建议：转发率达到下一档可加4.50分。"),
            "{}",
            m.body
        );
    }

    #[test]
    fn a_phone_typed_as_the_name_is_masked() {
        let mut j = job(NotificationKind::NewAssignment);
        j.customer_name = Some("13812345678".into());
        j.series_interest = vec!["H5 call 139-1234-5678".into()];
        let m = render(&Notice::Lead(j), "https://x");
        assert!(!contains_full_phone(&m.text()), "{}", m.text());
        assert!(m.title.contains("138****5678"));
        assert!(m.body.contains("H5 call 139****5678"));
    }

    #[test]
    fn mask_phones_cases() {
        assert_eq!(mask_phones("13812345678"), "138****5678");
        assert_eq!(mask_phones("tel:+86 138 1234 5678!"), "tel:+138****5678!");
        assert_eq!(mask_phones("１３８１２３４５６７８"), "138****5678");
        assert_eq!(mask_phones("0531-8888 6666"), "053****6666");
        assert_eq!(mask_phones("H5 2025款"), "H5 2025款");
        assert_eq!(mask_phones("138****5678"), "138****5678");
        assert_eq!(mask_phones(""), "");
    }

    #[test]
    fn full_phone_detection_covers_every_written_form() {
        assert!(contains_full_phone("call 13812345678 now"));
        assert!(contains_full_phone("x19912345678"));
        assert!(!contains_full_phone("12812345678"), "12x is not mobile");
        assert!(!contains_full_phone("1381234567"), "10 digits");
        assert!(!contains_full_phone("138****5678"));
        // Issue #14: more than the regex `1[3-9]\\d{9}` would find.
        for form in [
            "１３８１２３４５６７８",
            "138_1234_5678",
            "一三八一二三四五六七八",
            "(138)12345678",
        ] {
            assert!(contains_full_phone(form), "{form}");
        }
    }

    #[test]
    fn truncation_keeps_utf8_whole() {
        assert_eq!(truncate_bytes("abc", 3), "abc");
        let t = truncate_bytes("线索线索线索", 10);
        assert!(t.len() <= 10, "{t}");
        assert_eq!(t, "线索…");
        assert_eq!(truncate_bytes("abcdef", 4), "a…");
    }

    fn kind() -> impl Strategy<Value = NotificationKind> {
        prop::sample::select(NotificationKind::ALL.to_vec())
    }

    /// Text with phone numbers mixed into arbitrary characters.
    fn noisy() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                "1[3-9][0-9]{9}",
                "\\+86 ?1[3-9][0-9] ?[0-9]{4} ?[0-9]{4}",
                "[0-9 .-]{0,20}",
                "\\PC{0,8}",
            ],
            0..6,
        )
        .prop_map(|parts| parts.concat())
    }

    proptest! {
        #[test]
        fn masking_leaves_no_full_phone(text in noisy()) {
            prop_assert!(!contains_full_phone(&mask_phones(&text)), "{}", mask_phones(&text));
        }

        #[test]
        fn rendered_text_never_holds_a_full_phone(
            kind in kind(),
            name in prop::option::of(noisy()),
            series in prop::collection::vec(noisy(), 0..3),
        ) {
            let mut j = job(kind);
            j.customer_name = name;
            j.series_interest = series;
            let m = render(&Notice::Lead(j), "https://leads.example.com");
            prop_assert!(!contains_full_phone(&m.text()), "{}", m.text());
            prop_assert!(!contains_full_phone(&m.sms_text().replace(&m.url, "")));
        }

        #[test]
        fn truncation_is_a_bounded_prefix(s in "\\PC{0,200}", max in 4usize..300) {
            let t = truncate_bytes(&s, max);
            prop_assert!(t.len() <= max);
            let kept = t.trim_end_matches('…');
            prop_assert!(s.starts_with(kept));
        }
    }
}
