//! `POST /leads/{id}/tags` `{"add": [...], "remove": [...]}`: the manual
//! tags of a lead, by its assignee or a manager of its dealer
//! (`leads_domain::tags`). The automatic tags are derived when the lead is
//! read (`GET /leads/{id}`).

use chrono::Utc;
use leads_domain::audit::{Actor, AuditAction, AuditEvent};
use leads_domain::auth::Claims;
use leads_domain::tags::{self, TagError};
use serde::Deserialize;

use super::{may_act, Api, ApiError};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TagsBody {
    #[serde(default)]
    add: Vec<String>,
    #[serde(default)]
    remove: Vec<String>,
}

impl TagsBody {
    pub(super) const SHAPE: &'static str = "{\"add\": [\"<tag>\"], \"remove\": [\"<tag>\"]}";
}

impl Api {
    pub(super) async fn edit_tags(
        &self,
        claims: &Claims,
        lead_id: &str,
        body: TagsBody,
    ) -> Result<serde_json::Value, ApiError> {
        let me = self.caller(claims).await?;
        for _attempt in 0..3 {
            let lead = self.visible_lead(claims, lead_id).await?;
            may_act(&lead, claims, &me)?;
            let next = tags::edit(&lead.tags, &body.add, &body.remove).map_err(|e| {
                let code = match e {
                    TagError::Malformed => "bad_tag",
                    TagError::HoldsPhone => "tag_holds_phone",
                    TagError::TooMany => "too_many_tags",
                };
                ApiError(422, code, e.to_string())
            })?;
            if next == lead.tags {
                return Ok(
                    serde_json::json!({ "lead_id": lead_id, "tags": next, "changed": false }),
                );
            }
            if !self.leads.set_tags(&lead, &next).await? {
                continue;
            }
            let added: Vec<&String> = next.iter().filter(|t| !lead.tags.contains(t)).collect();
            let removed: Vec<&String> = lead.tags.iter().filter(|t| !next.contains(t)).collect();
            self.audit
                .append(&[AuditEvent {
                    lead_id: lead_id.to_string(),
                    action: AuditAction::Tagged,
                    actor: Actor::Staff(claims.staff_id.clone()),
                    at: Utc::now(),
                    detail: format!("tags added {added:?}, removed {removed:?}"),
                }])
                .await?;
            return Ok(serde_json::json!({ "lead_id": lead_id, "tags": next, "changed": true }));
        }
        Err(ApiError(
            409,
            "conflict",
            "the lead changed concurrently; retry".into(),
        ))
    }
}
