// The brand dashboard end to end: headless Debian Chromium loads
// GET /brands/dashboard from the API function (served by `cargo lambda watch`
// against the local stack) as the brand's operations, and checks every figure
// it shows against the API and the API's against what the seed did.
//
// Env: BASE_URL (where /brands/... is served), SEED (JSON printed by the
// dashboard_demo_seed example), SCREENSHOT (png path). Run through
// tests/e2e/run.sh, which sets all three up.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { check, checksPassed, environment, launch } from "./harness.mjs";

const { BASE_URL, seed, SCREENSHOT } = environment();
const started = Date.now();

async function api(path) {
  const res = await fetch(`${BASE_URL}${path}`, { headers: { Authorization: `Bearer ${seed.token}` } });
  assert.equal(res.status, 200, path);
  return res.json();
}

await check("the served chart library is the pinned npm package's file", async () => {
  // The package's exports hide dist/; read it where npm ci put it.
  const pinned = readFileSync(new URL("node_modules/chart.js/dist/chart.umd.min.js", import.meta.url));
  const res = await fetch(`${BASE_URL}/brands/dashboard/chart.umd.min.js`);
  assert.equal(res.status, 200);
  assert.ok(Buffer.from(await res.arrayBuffer()).equals(pinned));
});

const metrics = await api(`/brands/${seed.brand_id}/metrics`);
const byDay = await api(`/brands/${seed.brand_id}/metrics?group_by=day`);
const funnelOf = (k) => ({
  leads: k.leads,
  contacted: k.first_call.numerator,
  invited: k.invite.numerator,
  visited: k.visit.numerator,
  won: k.deal.numerator,
});

await check("the API's figures are what the seed did", () => {
  const rows = new Map(metrics.rows.map((r) => [r.key, r]));
  for (const [dealer, want] of Object.entries(seed.expected.dealers)) {
    const r = rows.get(dealer);
    assert.ok(r, `a row for ${dealer}`);
    assert.deepEqual(funnelOf(r), want.funnel, dealer);
    assert.equal(r.remote_out, want.remote_out, `${dealer} remote_out`);
    assert.equal(r.remote_in, want.remote_in, `${dealer} remote_in`);
  }
  assert.equal(rows.get("(brand)").unroutable, seed.expected.brand_unroutable);
  assert.equal(metrics.total.leads, seed.expected.leads);
  const o = metrics.overlap.find((x) => `${x.first}#${x.then}` === seed.expected.overlap.pair);
  assert.ok(o, "the seeded overlap pair");
  assert.equal(o.overlap.numerator, seed.expected.overlap.overlap);
  assert.equal(o.overlap.denominator, seed.expected.overlap.first_seen);
});

const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1240, height: 1500 }, locale: "zh-CN" });
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });
  page.on("response", (r) => {
    if (r.status() >= 400) errors.push(`${r.status()} ${r.url().replace(/#.*/, "")}`);
  });
  await page.goto(`${BASE_URL}/brands/dashboard#token=${seed.token}&brand=${seed.brand_id}`);
  await page.waitForSelector("body[data-loaded]", { timeout: 20_000 });

  await check("the page loads with no error and no CSP violation", async () => {
    assert.deepEqual(errors, []);
    assert.equal(await page.$("body[data-error]"), null);
    assert.equal(await page.$$eval("script:not([src])", (s) => s.length), 0, "no inline script");
    assert.ok(!page.url().includes("token="), "the token left the address bar");
  });

  const table = await page.$$eval("#dealers tr", (trs) =>
    trs.map((tr) => ({
      key: tr.dataset.dealer,
      cells: Object.fromEntries(
        [...tr.querySelectorAll("td[data-field]")].map((td) => [td.dataset.field, JSON.parse(td.dataset.value)]),
      ),
    })),
  );
  await check("one table row per API row, in the API's order", () => {
    assert.deepEqual(
      table.map((r) => r.key),
      metrics.rows.map((r) => r.key),
    );
  });
  await check("every cell is the API's figure", () => {
    for (const [i, r] of metrics.rows.entries()) {
      const shown = table[i].cells;
      assert.deepEqual(
        { leads: shown.leads, contacted: shown.contacted, invited: shown.invited, visited: shown.visited, won: shown.won },
        funnelOf(r),
        r.key,
      );
      for (const field of ["first_contact_in_sla", "first_contact_p50_s", "first_contact_p90_s", "sla_breaches", "remote_in", "remote_out", "unroutable"]) {
        assert.deepEqual(shown[field], r[field], `${r.key} ${field}`);
      }
    }
  });
  await check("the totals are the API's", async () => {
    const totals = await page.$$eval("[data-total]", (els) =>
      Object.fromEntries(els.map((e) => [e.dataset.total, JSON.parse(e.dataset.value)])),
    );
    for (const [field, value] of Object.entries(totals)) assert.deepEqual(value, metrics.total[field], field);
  });
  await check("the funnel chart draws the table's funnel", async () => {
    const drawn = await page.evaluate(() => {
      const chart = Chart.getChart(document.getElementById("funnel-chart"));
      return { labels: chart.data.labels, data: chart.data.datasets.map((d) => d.data) };
    });
    const dealers = metrics.rows.filter((r) => r.key !== "(brand)");
    assert.deepEqual(drawn.labels, dealers.map((r) => r.name));
    const stages = ["leads", "contacted", "invited", "visited", "won"];
    assert.deepEqual(drawn.data, stages.map((s) => dealers.map((r) => funnelOf(r)[s])));
  });
  await check("the trend chart has one point per day of the period, the API's leads", async () => {
    const drawn = await page.evaluate(() => {
      const chart = Chart.getChart(document.getElementById("trend-chart"));
      return { labels: chart.data.labels, leads: chart.data.datasets[0].data };
    });
    assert.equal(drawn.labels.length, 7);
    const want = new Map(byDay.rows.map((r) => [r.key, r.leads]));
    assert.deepEqual(drawn.leads, drawn.labels.map((d) => want.get(d) ?? 0));
    assert.equal(drawn.leads.reduce((a, b) => a + b, 0), seed.expected.leads);
  });
  await check("the overlap table is the API's", async () => {
    const rows = await page.$$eval("#overlap tr", (trs) =>
      trs.map((tr) => ({
        pair: tr.dataset.pair,
        overlap: JSON.parse(tr.querySelector("[data-field=overlap]").dataset.value),
        first_seen: JSON.parse(tr.querySelector("[data-field=first_seen]").dataset.value),
      })),
    );
    assert.deepEqual(
      rows,
      metrics.overlap.map((o) => ({ pair: `${o.first}#${o.then}`, overlap: o.overlap.numerator, first_seen: o.overlap.denominator })),
    );
  });
  await page.screenshot({ path: SCREENSHOT, fullPage: true });
  console.log(`screenshot: ${SCREENSHOT}`);
} finally {
  await browser.close();
}
console.log(`dashboard: ${checksPassed()} checks passed in ${Date.now() - started} ms`);
