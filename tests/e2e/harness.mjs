// What both browser tests share: their environment (set by run.sh), a
// counted check, and Debian's headless Chromium.

import assert from "node:assert/strict";
import { chromium } from "playwright-core";

/// BASE_URL (where the API function is served), SEED (the seed's JSON),
/// SCREENSHOT (png path).
export function environment() {
  const { BASE_URL, SEED, SCREENSHOT } = process.env;
  assert.ok(BASE_URL && SEED && SCREENSHOT, "BASE_URL, SEED and SCREENSHOT must be set");
  return { BASE_URL, seed: JSON.parse(SEED), SCREENSHOT };
}

let passed = 0;
/// Runs one named check and prints `ok - <label>`; `checksPassed()` counts them.
export async function check(label, fn) {
  await fn();
  passed += 1;
  console.log(`ok - ${label}`);
}
export const checksPassed = () => passed;

export function launch() {
  return chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
    ],
  });
}
