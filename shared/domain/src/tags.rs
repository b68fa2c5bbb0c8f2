//! Tags on a lead (标签): the automatic ones are read off the lead and its
//! touchpoints whenever it is shown (channel, scene, traffic, the WeCom
//! `State` channel tag, local/remote, series, intent), so they never go
//! stale; the manual ones are the consultants' and managers' words, kept on
//! the lead. An automatic tag is `kind:value`; a manual one may not contain
//! `:`, so the two never collide.

use std::collections::BTreeSet;

use crate::lead::{LeadRecord, Touchpoint, Traffic};
use crate::routing::Route;

/// Manual tags a lead holds at most.
pub const MAX_MANUAL: usize = 20;
/// Characters a manual tag has at most.
pub const MAX_CHARS: usize = 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    /// The messages never repeat the tag (it is the caller's input).
    #[error("a tag is 1 to {MAX_CHARS} characters, without ':' or control characters")]
    Malformed,
    #[error("a tag may not hold a phone number")]
    HoldsPhone,
    #[error("a lead holds at most {MAX_MANUAL} manual tags")]
    TooMany,
}

/// The automatic tags of `lead`, sorted (`touchpoints`: every touch it has;
/// its first touch is used when none are given).
pub fn automatic(lead: &LeadRecord, touchpoints: &[Touchpoint]) -> Vec<String> {
    let touches: Vec<&Touchpoint> = if touchpoints.is_empty() {
        vec![&lead.first_touch]
    } else {
        touchpoints.iter().collect()
    };
    let mut tags = BTreeSet::new();
    for t in touches {
        tags.insert(format!("channel:{}", crate::wire_name(&t.platform)));
        tags.insert(format!("scene:{}", crate::wire_name(&t.scene)));
        tags.insert(
            match t.traffic {
                Traffic::Natural => "traffic:natural",
                Traffic::Paid => "traffic:paid",
            }
            .to_string(),
        );
    }
    if let Some(state) = &lead.channel_tag {
        tags.insert(format!("wecom_state:{state}"));
    }
    match &lead.route {
        Some(Route::Local { .. }) => tags.insert("route:local".to_string()),
        Some(Route::Remote { .. }) => tags.insert("route:remote".to_string()),
        Some(Route::Unroutable { .. }) => tags.insert("route:unroutable".to_string()),
        None => false,
    };
    for series in &lead.series_interest {
        tags.insert(format!("series:{series}"));
    }
    if let Some(intent) = lead.intent {
        tags.insert(format!("intent:{}", crate::wire_name(&intent)));
    }
    tags.into_iter().collect()
}

/// A manual tag as kept: trimmed, checked.
pub fn manual(tag: &str) -> Result<String, TagError> {
    let tag = tag.trim();
    let chars = tag.chars().count();
    if chars == 0 || chars > MAX_CHARS || tag.contains(':') || tag.chars().any(char::is_control) {
        return Err(TagError::Malformed);
    }
    if crate::phone::contains_phone(tag) {
        return Err(TagError::HoldsPhone);
    }
    Ok(tag.to_string())
}

/// The manual tags after adding `add` and removing `remove` (each checked),
/// or why not.
pub fn edit(
    current: &[String],
    add: &[String],
    remove: &[String],
) -> Result<Vec<String>, TagError> {
    let add: Vec<String> = add.iter().map(|t| manual(t)).collect::<Result<_, _>>()?;
    let remove: Vec<String> = remove.iter().map(|t| manual(t)).collect::<Result<_, _>>()?;
    let mut tags: Vec<String> = Vec::new();
    for tag in current.iter().cloned().chain(add) {
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    tags.retain(|t| !remove.contains(t));
    if tags.len() > MAX_MANUAL {
        return Err(TagError::TooMany);
    }
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lead() -> LeadRecord {
        serde_json::from_value(serde_json::json!({
            "lead_id": "L1", "brand_id": "b", "status": "assigned",
            "customer": {"kind": "phone", "hash": "h"},
            "first_touch": {"platform": "douyin", "account_id": "dy-1", "scene": "live",
                "traffic": "natural", "at": "2026-12-01T02:00:00Z", "source_event_id": "ev-1"},
            "touchpoints": 1, "series_interest": ["H5", "H9"], "channel_tag": "spring-fair",
            "route": {"route": "remote", "dealer_id": "d2", "referrer": "d1"}, "intent": "H",
            "raw_payload_ref": "raw/1", "received_at": "2026-12-01T02:00:00Z"
        }))
        .unwrap()
    }

    #[test]
    fn automatic_tags_read_the_lead_and_every_touch() {
        let l = lead();
        let mut later = l.first_touch.clone();
        later.platform = crate::directory::Platform::Autohome;
        later.scene = crate::lead::Scene::AdForm;
        later.traffic = Traffic::Paid;
        let tags = automatic(&l, &[l.first_touch.clone(), later]);
        assert_eq!(
            tags,
            [
                "channel:autohome",
                "channel:douyin",
                "intent:H",
                "route:remote",
                "scene:ad_form",
                "scene:live",
                "series:H5",
                "series:H9",
                "traffic:natural",
                "traffic:paid",
                "wecom_state:spring-fair",
            ]
        );
        // No touchpoints read: the first touch stands in.
        assert!(automatic(&l, &[]).contains(&"channel:douyin".to_string()));
    }

    #[test]
    fn manual_tags_are_checked_and_never_quote_the_input() {
        assert_eq!(manual("  试驾意向强 "), Ok("试驾意向强".to_string()));
        for bad in [
            "",
            "   ",
            "series:H5",
            "a\u{7}b",
            "这是一个超过二十个字符的非常非常非常长的标签",
        ] {
            assert_eq!(manual(bad), Err(TagError::Malformed), "{bad:?}");
        }
        let e = manual("回电138 1234 5678").unwrap_err();
        assert_eq!(e, TagError::HoldsPhone);
        assert!(!e.to_string().contains("138"));
    }

    #[test]
    fn edits_add_once_remove_and_stop_at_the_limit() {
        let now = edit(&[], &["VIP".into(), "VIP".into(), "二手置换".into()], &[]).unwrap();
        assert_eq!(now, ["VIP", "二手置换"]);
        assert_eq!(edit(&now, &[], &["VIP".into()]).unwrap(), ["二手置换"]);
        let full: Vec<String> = (0..MAX_MANUAL).map(|i| format!("t{i}")).collect();
        assert_eq!(
            edit(&full, &["one more".into()], &[]),
            Err(TagError::TooMany)
        );
        // Removing one makes room in the same edit.
        assert!(edit(&full, &["one more".into()], &["t0".into()]).is_ok());
    }

    proptest! {
        #[test]
        fn an_edit_never_exceeds_the_limit_nor_keeps_a_removed_tag(
            current in proptest::collection::vec("[a-z]{1,5}", 0..MAX_MANUAL),
            add in proptest::collection::vec("[a-z]{1,5}", 0..8),
            remove in proptest::collection::vec("[a-z]{1,5}", 0..8),
        ) {
            if let Ok(tags) = edit(&current, &add, &remove) {
                prop_assert!(tags.len() <= MAX_MANUAL);
                prop_assert!(tags.iter().all(|t| !remove.contains(t)));
                let distinct: BTreeSet<&String> = tags.iter().collect();
                prop_assert_eq!(distinct.len(), tags.len());
            }
        }
    }
}
