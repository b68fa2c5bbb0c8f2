// The brand dashboard: the service KPIs of GET /brands/{b}/metrics, drawn.
// Opened as <api>/brands/dashboard#token=...&brand=...[&from=YYYY-MM-DD&to=...];
// the token stays in the fragment (never sent to a server, dropped from the
// address bar once read). Every figure shown is the API's, unchanged; each
// cell also carries the raw value (data-value) for the browser test.
"use strict";

const apiBase = location.pathname.replace(/\/brands\/dashboard\/?$/, "");
const fragment = new URLSearchParams(location.hash.slice(1));
const token = fragment.get("token") || sessionStorage.getItem("dashboard-token");
const brand = fragment.get("brand") || sessionStorage.getItem("dashboard-brand");
if (fragment.has("token")) {
  sessionStorage.setItem("dashboard-token", fragment.get("token"));
  sessionStorage.setItem("dashboard-brand", brand || "");
  history.replaceState(null, "", location.pathname + location.search);
}
const $ = (id) => document.getElementById(id);
const charts = [];

async function api(path) {
  const res = await fetch(apiBase + path, { headers: { Authorization: "Bearer " + token } });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(`${res.status} ${body.code || ""}: ${body.message || ""}`);
  return body;
}

const pct = (r) =>
  r.rate === null ? "—" : `${(r.rate * 100).toFixed(1)}% (${r.numerator}/${r.denominator})`;
function duration(s) {
  if (s === null || s === undefined) return "—";
  if (s < 60) return `${s}秒`;
  if (s < 3600) return `${Math.floor(s / 60)}分${s % 60}秒`;
  return `${Math.floor(s / 3600)}时${Math.floor((s % 3600) / 60)}分`;
}

// The funnel's stages are the numerators of the chain's rates.
const funnel = (k) => ({
  leads: k.leads,
  contacted: k.first_call.numerator,
  invited: k.invite.numerator,
  visited: k.visit.numerator,
  won: k.deal.numerator,
});

function cell(tr, text, field, value) {
  const td = tr.insertCell();
  td.textContent = text;
  if (field) {
    td.dataset.field = field;
    td.dataset.value = JSON.stringify(value);
  }
  return td;
}

const label = (row) => (row.key === "(brand)" ? "品牌账号 (brand)" : row.name || row.key);

function showTotals(total) {
  for (const el of document.querySelectorAll("[data-total]")) {
    const v = total[el.dataset.total];
    el.textContent = typeof v === "object" && v !== null ? pct(v) : el.dataset.total.endsWith("_s") ? duration(v) : String(v);
    el.dataset.value = JSON.stringify(v);
  }
}

function showDealers(rows) {
  const body = $("dealers");
  body.replaceChildren();
  for (const r of rows) {
    const tr = body.insertRow();
    tr.dataset.dealer = r.key;
    const f = funnel(r);
    cell(tr, label(r));
    for (const stage of ["leads", "contacted", "invited", "visited", "won"]) cell(tr, String(f[stage]), stage, f[stage]);
    cell(tr, pct(r.first_contact_in_sla), "first_contact_in_sla", r.first_contact_in_sla);
    cell(tr, duration(r.first_contact_p50_s), "first_contact_p50_s", r.first_contact_p50_s);
    cell(tr, duration(r.first_contact_p90_s), "first_contact_p90_s", r.first_contact_p90_s);
    for (const field of ["sla_breaches", "remote_in", "remote_out", "unroutable"]) cell(tr, String(r[field]), field, r[field]);
  }
  const dealers = rows.filter((r) => r.key !== "(brand)");
  const stages = [
    ["leads", "线索", "#8fb3f5"],
    ["contacted", "已联系", "#5b8def"],
    ["invited", "已邀约", "#2f6bd8"],
    ["visited", "已到店", "#1d4fa8"],
    ["won", "已成交", "#c7851a"],
  ];
  charts.push(
    new Chart($("funnel-chart"), {
      type: "bar",
      data: {
        labels: dealers.map(label),
        datasets: stages.map(([stage, name, color]) => ({
          label: name,
          data: dealers.map((r) => funnel(r)[stage]),
          backgroundColor: color,
        })),
      },
      options: { maintainAspectRatio: false, animation: false, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
    }),
  );
}

function showTrend(rows, from, to) {
  const byDay = new Map(rows.map((r) => [r.key, r]));
  const days = [];
  for (let d = new Date(from + "T00:00:00Z"); d <= new Date(to + "T00:00:00Z"); d.setUTCDate(d.getUTCDate() + 1)) {
    days.push(d.toISOString().slice(0, 10));
  }
  charts.push(
    new Chart($("trend-chart"), {
      type: "line",
      data: {
        labels: days,
        datasets: [
          { label: "线索", data: days.map((d) => byDay.get(d)?.leads ?? 0), borderColor: "#1f6feb", yAxisID: "y" },
          {
            label: "及时率 %",
            data: days.map((d) => {
              const r = byDay.get(d)?.first_contact_in_sla;
              return r && r.rate !== null ? Math.round(r.rate * 1000) / 10 : null;
            }),
            borderColor: "#c7851a",
            yAxisID: "rate",
          },
        ],
      },
      options: {
        maintainAspectRatio: false,
        animation: false,
        scales: {
          y: { beginAtZero: true, ticks: { precision: 0 } },
          rate: { position: "right", min: 0, max: 100, grid: { drawOnChartArea: false } },
        },
      },
    }),
  );
}

function showOverlap(overlap) {
  const body = $("overlap");
  body.replaceChildren();
  $("overlap-note").hidden = overlap !== undefined;
  for (const o of overlap || []) {
    const tr = body.insertRow();
    tr.dataset.pair = `${o.first}#${o.then}`;
    cell(tr, o.first);
    cell(tr, o.then);
    cell(tr, String(o.overlap.numerator), "overlap", o.overlap.numerator);
    cell(tr, String(o.overlap.denominator), "first_seen", o.overlap.denominator);
    cell(tr, o.overlap.rate === null ? "—" : `${(o.overlap.rate * 100).toFixed(1)}%`);
  }
}

async function load(from, to) {
  charts.splice(0).forEach((c) => c.destroy());
  const range = from && to ? `from=${from}&to=${to}` : "";
  const [dealers, trend] = await Promise.all([
    api(`/brands/${encodeURIComponent(brand)}/metrics?${range}`),
    api(`/brands/${encodeURIComponent(brand)}/metrics?group_by=day${range ? "&" + range : ""}`),
  ]);
  $("period").textContent = `${dealers.brand_id} · ${dealers.from} 至 ${dealers.to}（按线索收到日，中国时间）`;
  $("from").value = dealers.from;
  $("to").value = dealers.to;
  showTotals(dealers.total);
  showDealers(dealers.rows);
  showTrend(trend.rows, dealers.from, dealers.to);
  showOverlap(dealers.overlap);
}

async function start(from, to) {
  $("error").hidden = true;
  try {
    if (!token || !brand) throw new Error("打开链接需带 #token=...&brand=...");
    await load(from, to);
  } catch (e) {
    $("error").textContent = "无法加载：" + e.message;
    $("error").hidden = false;
    document.body.dataset.error = "1";
  }
  document.body.dataset.loaded = "1";
}

$("range").addEventListener("submit", (e) => {
  e.preventDefault();
  delete document.body.dataset.loaded;
  start($("from").value, $("to").value);
});
start(fragment.get("from"), fragment.get("to"));
