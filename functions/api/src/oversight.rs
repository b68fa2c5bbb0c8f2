//! The brand's and the dealer manager's view: lead lists (and their CSV
//! export) and the service KPIs (`leads_domain::kpi`, and their export).
//!
//! Who sees what: a consultant lists their own leads and the pool; a dealer
//! manager all of their dealer's leads and its KPIs; brand operations
//! (`brand_ops` in the directory) the leads and KPIs of the dealers they
//! oversee, phones masked. Another brand's data is refused (403), never an
//! empty answer.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::Utc;
use futures::{StreamExt, TryStreamExt};
use lambda_http::{Body, Response};
use leads_aws::store::DirectoryStore;
use leads_domain::auth::Claims;
use leads_domain::dedup;
use leads_domain::directory::{BrandOps, Dealer, StaffRole};
use leads_domain::kpi::{self, GroupBy, MetricsQuery};
use leads_domain::lead_list::{self, LeadSummary, ListError, ListQuery, Viewer};

use super::{not_on_staff, Api, ApiError};

/// Rows one export response holds at most; `x-next-cursor` continues it.
/// About 250 bytes a row: ~1.3 MB, well inside Lambda's 6 MB response.
pub const EXPORT_ROWS: u32 = 5_000;
/// Dealer partitions read at once for a brand's KPIs.
const PARALLEL_READS: usize = 8;

/// Excel opens a UTF-8 CSV with Chinese text correctly only after a BOM.
const BOM: &str = "\u{feff}";

/// What the caller may see of a brand's dealers.
struct Scope {
    /// The brand's dealers the caller sees.
    dealers: Vec<Dealer>,
    /// Every dealer of the brand (remote-out counts need all partitions).
    all: Vec<Dealer>,
    /// The caller oversees the whole brand (brand-level figures: overlap,
    /// unroutable leads of brand accounts).
    whole_brand: bool,
}

/// The KPIs of a brand for one query (see `Api::kpis`).
struct KpiAnswer {
    q: MetricsQuery,
    rows: BTreeMap<String, kpi::Kpis>,
    total: kpi::Kpis,
    /// Brand-level figures, for whole-brand operations only.
    overlap: Option<Vec<kpi::Overlap>>,
    /// The brand's dealers' names, by id.
    names: HashMap<String, String>,
}

/// A query string as plain, once-given parameters (nothing listed needs
/// escaping: an escaped value is refused, not guessed).
pub(crate) fn params_of(query: Option<&str>) -> Result<HashMap<String, String>, ApiError> {
    let mut params = HashMap::new();
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if value.contains(['%', '+'])
            || params.insert(name.to_string(), value.to_string()).is_some()
        {
            return Err(ApiError(
                400,
                "bad_parameter",
                "parameters are plain and given once".into(),
            ));
        }
    }
    Ok(params)
}

fn refused(e: ListError) -> ApiError {
    let (status, code) = match e {
        ListError::Malformed(_) => (400, "bad_parameter"),
        ListError::NotYours => (403, "forbidden"),
        ListError::Range => (422, "bad_range"),
        ListError::Cursor => (400, "bad_cursor"),
    };
    ApiError(status, code, e.to_string())
}

impl Api {
    /// The caller as brand operations (None for dealer staff), from the
    /// directory (cached like rosters).
    pub(crate) async fn brand_ops(&self, claims: &Claims) -> Result<Option<BrandOps>, ApiError> {
        let key = format!("{}#{}", claims.brand_id, claims.staff_id);
        if let Some(v) = super::fresh(&self.ops, &key, self.directory_ttl) {
            return Ok(v);
        }
        let v = self
            .directory
            .brand_ops(&claims.brand_id, &claims.staff_id)
            .await?;
        super::keep(&self.ops, &key, v.clone());
        Ok(v)
    }

    /// The lead, if brand operations oversee its dealer (the same 404 as a
    /// dealer's staff get for another dealer's lead otherwise).
    pub(crate) async fn overseen_lead(
        &self,
        claims: &Claims,
        lead_id: &str,
    ) -> Result<leads_domain::lead::LeadRecord, ApiError> {
        let ops = self.brand_ops(claims).await?.ok_or_else(not_on_staff)?;
        let lead = self.leads.get(lead_id).await?;
        let dealer = match lead.as_ref().and_then(|l| l.dealer_id.clone()) {
            Some(d) => self.dealer(&d).await?,
            None => None,
        };
        match (lead, dealer) {
            (Some(lead), Some(d)) if ops.oversees(&d) => Ok(lead),
            // No dealer took it: the brand's own team places it, so brand-wide
            // operations read it (with the full phone, see `Api::lead`).
            (Some(lead), None)
                if lead.dealer_id.is_none()
                    && lead.brand_id == ops.brand_id
                    && ops.oversees_whole_brand() =>
            {
                Ok(lead)
            }
            _ => Err(super::unknown_lead(claims, lead_id)),
        }
    }

    /// The lead list's viewer: the staff member, or brand operations on the
    /// dealer they name (which they must oversee).
    async fn viewer(
        &self,
        claims: &Claims,
        params: &HashMap<String, String>,
    ) -> Result<Viewer, ApiError> {
        if claims.role != StaffRole::BrandOps {
            return Ok(Viewer::from(&self.caller(claims).await?));
        }
        let ops = self.brand_ops(claims).await?.ok_or_else(not_on_staff)?;
        let Some(dealer_id) = params.get("dealer") else {
            return Err(ApiError(
                400,
                "bad_parameter",
                "brand operations name the dealer (dealer=...)".into(),
            ));
        };
        match self.dealer(dealer_id).await? {
            None => Err(ApiError(
                404,
                "unknown_dealer",
                format!("no dealer {dealer_id}"),
            )),
            Some(d) if d.brand_id != ops.brand_id => Err(ApiError(
                403,
                "forbidden",
                "that dealer belongs to another brand".into(),
            )),
            Some(d) if !ops.oversees(&d) => Err(ApiError(
                403,
                "forbidden",
                "you do not oversee that dealer".into(),
            )),
            Some(d) => Ok(Viewer {
                staff_id: claims.staff_id.clone(),
                dealer_id: d.dealer_id,
                sees_whole_dealer: true,
            }),
        }
    }

    async fn list_query(
        &self,
        claims: &Claims,
        query: Option<&str>,
    ) -> Result<ListQuery, ApiError> {
        let params = params_of(query)?;
        let viewer = self.viewer(claims, &params).await?;
        ListQuery::parse(&params, &viewer, dedup::china_day(Utc::now())).map_err(refused)
    }

    /// `GET /leads?dealer&status&assignee&pool&from&to&limit&cursor`: a page
    /// of a dealer's leads (`leads_domain::lead_list` says whose).
    pub(crate) async fn list(
        &self,
        claims: &Claims,
        query: Option<&str>,
    ) -> Result<serde_json::Value, ApiError> {
        let q = self.list_query(claims, query).await?;
        let (leads, next) = self.leads.dealer_leads(&q).await?;
        Ok(serde_json::json!({
            "dealer_id": q.dealer_id,
            "from": q.from,
            "to": q.to,
            "leads": leads,
            "next_cursor": next.map(|k| q.cursor(&k)),
        }))
    }

    /// `GET /leads/export.csv?...`: the same list as CSV, [`EXPORT_ROWS`]
    /// at most per response; `x-next-cursor` (as `cursor=`) gives the rest.
    /// Phones masked, names left out: the list never holds either.
    pub(crate) async fn export_leads(
        &self,
        claims: &Claims,
        query: Option<&str>,
    ) -> Result<Response<Body>, ApiError> {
        let mut q = self.list_query(claims, query).await?;
        q.limit = EXPORT_ROWS;
        let (leads, next) = self.leads.dealer_leads(&q).await?;
        let mut csv = csv::Writer::from_writer(BOM.as_bytes().to_vec());
        let row = |l: &LeadSummary| {
            let at = |t: Option<chrono::DateTime<Utc>>| t.map(china_time).unwrap_or_default();
            vec![
                l.lead_id.clone(),
                china_time(l.received_at),
                leads_domain::wire_name(&l.status),
                l.assignee.clone().unwrap_or_default(),
                l.phone_masked.clone().unwrap_or_default(),
                l.customer_city
                    .and_then(leads_domain::city::by_code)
                    .map(|c| c.name.to_string())
                    .unwrap_or_default(),
                l.series_interest.join(" / "),
                l.first_touch.platform.to_string(),
                leads_domain::wire_name(&l.first_touch.traffic),
                at(l.first_contact_due),
                at(l.contacted_at),
                l.valid.map(|v| v.to_string()).unwrap_or_default(),
                l.close_reason.clone().unwrap_or_default(),
                l.intent
                    .map(|i| leads_domain::wire_name(&i))
                    .unwrap_or_default(),
            ]
        };
        let header = [
            "线索 (lead_id)",
            "收到时间 (received_at)",
            "状态 (status)",
            "顾问 (assignee)",
            "电话 (phone_masked)",
            "城市 (customer_city)",
            "意向车系 (series_interest)",
            "渠道 (platform)",
            "流量 (traffic)",
            "首次联系截止 (first_contact_due)",
            "首次联系 (contacted_at)",
            "有效 (valid)",
            "原因 (close_reason)",
            "意向 (intent)",
        ];
        csv_write(&mut csv, header.iter().map(|h| h.to_string()).collect())?;
        for l in &leads {
            csv_write(&mut csv, row(l))?;
        }
        tracing::info!(staff_id = %claims.staff_id, dealer_id = %q.dealer_id, rows = leads.len(), "lead list exported");
        let name = format!("leads-{}-{}-{}.csv", q.dealer_id, q.from, q.to);
        csv_response(csv, &name, next.map(|k| q.cursor(&k)))
    }

    /// Which of `brand_id`'s dealers the caller sees: all or some (brand
    /// operations), their own (a manager). A consultant sees no KPIs.
    async fn scope(&self, claims: &Claims, brand_id: &str) -> Result<Scope, ApiError> {
        if self.directory.brand(brand_id).await?.is_none() {
            return Err(ApiError(
                404,
                "unknown_brand",
                format!("no brand {brand_id}"),
            ));
        }
        if claims.brand_id != brand_id {
            return Err(ApiError(
                403,
                "forbidden",
                "you may only see your own brand's figures".into(),
            ));
        }
        let all = self.directory.dealers_of(brand_id).await?;
        match claims.role {
            StaffRole::BrandOps => {
                let ops = self.brand_ops(claims).await?.ok_or_else(not_on_staff)?;
                let dealers = all.iter().filter(|d| ops.oversees(d)).cloned().collect();
                let whole_brand = ops.oversees_whole_brand();
                Ok(Scope {
                    dealers,
                    all,
                    whole_brand,
                })
            }
            StaffRole::Manager => Ok(Scope {
                dealers: all
                    .iter()
                    .filter(|d| d.dealer_id == claims.dealer_id)
                    .cloned()
                    .collect(),
                all,
                whole_brand: false,
            }),
            StaffRole::Sales | StaffRole::Dcc => Err(ApiError(
                403,
                "forbidden",
                "service figures are for managers and brand operations".into(),
            )),
        }
    }

    /// The KPIs of `brand_id`'s dealers the caller sees, over the query's
    /// period: rows by the query's grouping, the total, and (for a caller
    /// who oversees the whole brand) the channel overlap.
    async fn kpis(
        &self,
        claims: &Claims,
        brand_id: &str,
        query: Option<&str>,
    ) -> Result<KpiAnswer, ApiError> {
        let params = params_of(query)?;
        let q = MetricsQuery::parse(&params, dedup::china_day(Utc::now())).map_err(refused)?;
        let scope = self.scope(claims, brand_id).await?;
        let (from, to) = lead_list::day_bounds(q.from, q.to);
        let (from, to) = (from.as_str(), to.as_str());
        // Every dealer's partition: a lead received on a dealer's account may
        // have gone to any other (remote-out), or to nobody (unroutable).
        let mut partitions: Vec<String> = scope
            .all
            .iter()
            .map(|d| lead_list::index_partition(&d.dealer_id))
            .collect();
        partitions.push(lead_list::unrouted_partition(brand_id));
        let cohort: Vec<LeadSummary> = futures::stream::iter(partitions)
            .map(|p| async move { self.leads.cohort(&p, (from, to)).await })
            .buffer_unordered(PARALLEL_READS)
            .try_concat()
            .await?;
        let seen: HashSet<&str> = scope.dealers.iter().map(|d| d.dealer_id.as_str()).collect();
        let whole = scope.whole_brand;
        let in_scope = |d: Option<&str>| match d {
            Some(d) => seen.contains(d),
            None => whole,
        };
        let (rows, total) = kpi::compute(&cohort, q.group_by, Utc::now(), &in_scope);
        let overlap = match whole {
            false => None,
            true => {
                let days: Vec<_> = q.from.iter_days().take_while(|d| *d <= q.to).collect();
                let counts: Vec<BTreeMap<String, u64>> = futures::stream::iter(days)
                    .map(|day| async move { self.leads.overlap_counts(brand_id, day).await })
                    .buffer_unordered(PARALLEL_READS)
                    .try_collect()
                    .await?;
                let mut sum = BTreeMap::new();
                for (pair, n) in counts.into_iter().flatten() {
                    *sum.entry(pair).or_insert(0) += n;
                }
                Some(kpi::overlaps(&sum, &cohort))
            }
        };
        tracing::info!(staff_id = %claims.staff_id, brand_id, leads = cohort.len(), "kpis computed");
        let names = scope
            .all
            .into_iter()
            .map(|d| (d.dealer_id, d.name))
            .collect();
        Ok(KpiAnswer {
            q,
            rows,
            total,
            overlap,
            names,
        })
    }

    /// `GET /brands/{b}/metrics?from&to&group_by=dealer|consultant|channel|day`.
    pub(crate) async fn metrics(
        &self,
        claims: &Claims,
        brand_id: &str,
        query: Option<&str>,
    ) -> Result<serde_json::Value, ApiError> {
        let KpiAnswer {
            q,
            rows,
            total,
            overlap,
            names,
        } = self.kpis(claims, brand_id, query).await?;
        let rows: Vec<serde_json::Value> = rows
            .into_iter()
            .map(|(key, k)| {
                let mut row = serde_json::to_value(k).unwrap_or_default();
                // Grouped by dealer: the dealer's name beside its id.
                if q.group_by == GroupBy::Dealer {
                    if let Some(name) = names.get(&key) {
                        row["name"] = name.clone().into();
                    }
                }
                row["key"] = key.into();
                row
            })
            .collect();
        let mut answer = serde_json::json!({
            "brand_id": brand_id,
            "from": q.from,
            "to": q.to,
            "group_by": group_name(q.group_by),
            "rows": rows,
            "total": total,
        });
        if let Some(overlap) = overlap {
            answer["overlap"] = serde_json::to_value(overlap).unwrap_or_default();
        }
        Ok(answer)
    }

    /// `GET /brands/{b}/metrics/export.csv?...`: the rows and the total as CSV.
    pub(crate) async fn export_metrics(
        &self,
        claims: &Claims,
        brand_id: &str,
        query: Option<&str>,
    ) -> Result<Response<Body>, ApiError> {
        let KpiAnswer { q, rows, total, .. } = self.kpis(claims, brand_id, query).await?;
        let mut csv = csv::Writer::from_writer(BOM.as_bytes().to_vec());
        let label = match q.group_by {
            GroupBy::Dealer => "经销商 (dealer)",
            GroupBy::Consultant => "顾问 (consultant)",
            GroupBy::Channel => "渠道 (channel)",
            GroupBy::Day => "日期 (day)",
        };
        csv_write(&mut csv, kpi::csv_header(label))?;
        for (key, k) in &rows {
            csv_write(&mut csv, kpi::csv_cells(key, k))?;
        }
        csv_write(&mut csv, kpi::csv_cells("合计 (total)", &total))?;
        let name = format!(
            "kpis-{brand_id}-{}-{}-{}.csv",
            group_name(q.group_by),
            q.from,
            q.to
        );
        csv_response(csv, &name, None)
    }
}

fn group_name(g: GroupBy) -> &'static str {
    match g {
        GroupBy::Dealer => "dealer",
        GroupBy::Consultant => "consultant",
        GroupBy::Channel => "channel",
        GroupBy::Day => "day",
    }
}

/// China time, as people there read it: `2026-12-01 10:00:00`.
fn china_time(t: chrono::DateTime<Utc>) -> String {
    (t + chrono::Duration::hours(8))
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// One row; every cell made safe for a spreadsheet (`lead_list::spreadsheet_cell`).
fn csv_write(csv: &mut csv::Writer<Vec<u8>>, cells: Vec<String>) -> Result<(), ApiError> {
    let cells = cells.into_iter().map(lead_list::spreadsheet_cell);
    csv.write_record(cells).map_err(|e| {
        tracing::error!(error = %e, "csv write failed");
        ApiError(500, "internal", "temporary failure; please retry".into())
    })
}

fn csv_response(
    csv: csv::Writer<Vec<u8>>,
    name: &str,
    next_cursor: Option<String>,
) -> Result<Response<Body>, ApiError> {
    let bytes = csv.into_inner().map_err(|e| {
        tracing::error!(error = %e, "csv flush failed");
        ApiError(500, "internal", "temporary failure; please retry".into())
    })?;
    let text = String::from_utf8(bytes).expect("csv of strings is UTF-8");
    let mut response = Response::builder()
        .status(200)
        .header("content-type", "text/csv; charset=utf-8")
        .header(
            "content-disposition",
            format!("attachment; filename=\"{name}\""),
        )
        .header("cache-control", "no-store");
    if let Some(cursor) = next_cursor {
        response = response.header("x-next-cursor", cursor);
    }
    Ok(response
        .body(Body::Text(text))
        .expect("static response parts are valid"))
}

/// The brand dashboard's files (no token needed to load them; the page's
/// API calls carry one): `GET <api>/brands/dashboard` and what it loads.
pub(crate) fn dashboard_file(path: &str) -> Option<Response<Body>> {
    const PAGE: &str = include_str!("dashboard/index.html");
    const SCRIPT: &str = include_str!("dashboard/app.js");
    const STYLE: &str = include_str!("dashboard/app.css");
    const CHARTS: &str = include_str!("dashboard/vendor/chart.umd.min.js");
    let path = path.trim_end_matches('/');
    let (body, kind) = if path.ends_with("/brands/dashboard") {
        (PAGE, "text/html; charset=utf-8")
    } else if !path.contains("/brands/dashboard/") {
        return None;
    } else if path.ends_with("/app.js") {
        (SCRIPT, "text/javascript; charset=utf-8")
    } else if path.ends_with("/app.css") {
        (STYLE, "text/css; charset=utf-8")
    } else if path.ends_with("/chart.umd.min.js") {
        (CHARTS, "text/javascript; charset=utf-8")
    } else {
        return None;
    };
    Some(
        Response::builder()
            .status(200)
            .header("content-type", kind)
            // Scripts and styles from this function only: no inline script.
            .header(
                "content-security-policy",
                "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                 img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            )
            .header("referrer-policy", "no-referrer")
            .header("x-content-type-options", "nosniff")
            .header("cache-control", "no-cache")
            .body(Body::Text(body.to_string()))
            .expect("static response parts are valid"),
    )
}
