// The dealer ranking page end to end: headless Debian Chromium (playwright-core)
// loads GET /rankings/page from the API function (served by `cargo lambda watch`
// against the local stack) and checks what a dealer sees against the API itself.
//
// Env: BASE_URL (where /rankings/... is served), SEED (JSON printed by the
// ranking_demo_seed example, after the date was ranked), SCREENSHOT (png path).
// Run through tests/e2e/run.sh, which sets all three up.

import assert from "node:assert/strict";
import { check, checksPassed, environment, launch } from "./harness.mjs";

const { BASE_URL, seed, SCREENSHOT } = environment();
const started = Date.now();

async function apiTop(token, top) {
  const res = await fetch(`${BASE_URL}/rankings/${seed.brand_id}/latest?top=${top}`, {
    headers: { Authorization: `Bearer ${token}` },
  });
  assert.equal(res.status, 200);
  return res.json();
}

async function apiMine(who) {
  const res = await fetch(
    `${BASE_URL}/rankings/${seed.brand_id}/${seed.date}/dealers/${who.dealer_id}`,
    { headers: { Authorization: `Bearer ${who.token}` } },
  );
  assert.equal(res.status, 200);
  return (await res.json()).dealer;
}

// What the page shows: one entry per table row.
const tableRows = (page) =>
  page.$$eval("#rows tr", (trs) =>
    trs.map((tr) => ({
      gap: tr.classList.contains("gap"),
      me: tr.classList.contains("me"),
      dealer: tr.dataset.dealer || null,
      rank: Number(tr.cells[0].textContent),
      tier: tr.cells[2]?.textContent ?? null,
      total: tr.cells[3]?.textContent ?? null,
    })),
  );

async function open(browser, who, top) {
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 }, locale: "zh-CN" });
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`${BASE_URL}/rankings/page#token=${who.token}&top=${top}`);
  await page.waitForSelector("body[data-loaded]", { timeout: 20_000 });
  await check(`page loads for ${who.dealer_id} (top ${top})`, () => {
    assert.deepEqual(errors, []);
  });
  return page;
}

const browser = await launch();
try {
  // A dealer inside the top 10: its own row is highlighted in place.
  {
    const who = seed.in_top;
    const page = await open(browser, who, 10);
    const [api, mine] = [await apiTop(who.token, 10), await apiMine(who)];
    const rows = await tableRows(page);
    await check("the table is the API's top 10, in order", () => {
      assert.deepEqual(rows.map((r) => r.dealer), api.top.map((r) => r.dealer_id));
      assert.deepEqual(rows.map((r) => r.rank), api.top.map((r) => r.rank));
      assert.deepEqual(rows.map((r) => r.total), api.top.map((r) => r.score.total.toFixed(2)));
    });
    await check("exactly the caller's row is highlighted", () => {
      assert.deepEqual(rows.filter((r) => r.me).map((r) => r.dealer), [who.dealer_id]);
      assert.ok(!rows.some((r) => r.gap));
    });
    const card = await page.textContent("#mine");
    await check("the caller's card shows rank, tier and change", async () => {
      assert.ok(await page.isVisible("#mine"));
      assert.ok(card.includes(`${mine.rank} / ${api.dealers}`), card);
      assert.ok(card.includes(mine.score.total.toFixed(2)), card);
      assert.ok(card.includes(mine.tier), card);
      if (mine.rank_change > 0) assert.ok(card.includes(`▲${mine.rank_change}`), card);
    });
    await check("the token is not left in the address bar", () => {
      assert.ok(!page.url().includes("token="), page.url());
    });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    console.log(`screenshot: ${SCREENSHOT}`);
    await page.close();
  }

  // A dealer below the top 5: the top 5, a gap, then its own row highlighted.
  {
    const who = seed.below_top;
    const page = await open(browser, who, 5);
    const mine = await apiMine(who);
    const rows = await tableRows(page);
    await check("a dealer outside the top N sees its own row after a gap", () => {
      assert.ok(mine.rank > 5, `fixture: ${who.dealer_id} ranks ${mine.rank}`);
      assert.equal(rows.length, 7);
      assert.deepEqual(rows.slice(0, 5).map((r) => r.rank), [1, 2, 3, 4, 5]);
      assert.ok(rows[5].gap);
      assert.deepEqual([rows[6].dealer, rows[6].rank, rows[6].me], [who.dealer_id, mine.rank, true]);
    });
    await page.close();
  }

  // A forged token: the page says so instead of showing anything.
  {
    const page = await browser.newPage();
    const forged = seed.in_top.token.replace(/.$/, (c) => (c === "0" ? "1" : "0"));
    await page.goto(`${BASE_URL}/rankings/page#token=${forged}`);
    await page.waitForSelector("body[data-loaded]", { timeout: 20_000 });
    const error = await page.textContent("[data-testid=error]");
    await check("a bad token shows an error and no rows", async () => {
      assert.ok(await page.isVisible("[data-testid=error]"));
      assert.ok(/signature/.test(error), error);
      assert.equal((await tableRows(page)).length, 0);
    });
    await page.close();
  }
} finally {
  await browser.close();
}
console.log(`\n${checksPassed()} passed, 0 failed (${((Date.now() - started) / 1000).toFixed(1)} s in the browser)`);
