// The browser harness every journey script imports (tests/common/browser.rs
// runs the scripts). playwright-core drives Debian's Chromium headless; no
// browser is downloaded. The Rust side passes one JSON document in
// CUSTODY_BROWSER_INPUT:
//   tools        the npm prefix holding playwright-core and axe-core
//                (`cargo xtask test` installs them, pinned, under target/)
//   chromium     the Chromium executable
//   base_url     where the journey starts
//   screenshots  the directory screenshots are kept in (under target/)
//   result       the file the harness writes its JSON result to
//   params       anything else the journey needs
// The result is {ok, error, result, screenshots, console_errors}: `result`
// is what the journey returned; a journey that throws is `ok: false`, with
// a screenshot named `failure` of the page as it was.

import { createRequire } from 'node:module';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const input = JSON.parse(process.env.CUSTODY_BROWSER_INPUT ?? '{}');
const require = createRequire(join(input.tools, 'package.json'));
const { chromium } = require('playwright-core');
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

// Runs `journey(page, context)` in a fresh headless Chromium and writes the
// result file. `context` has `base` (the base URL), `params`,
// `screenshot(name, page?)`, `axe(page?, options?)`, and the playwright
// `browser` and `browserContext` for journeys with several principals.
export async function run(journey) {
  mkdirSync(input.screenshots, { recursive: true });
  const screenshots = [];
  const consoleErrors = [];
  const browser = await chromium.launch({
    executablePath: input.chromium,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
  const browserContext = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await browserContext.newPage();
  page.on('console', (message) => {
    if (message.type() === 'error') consoleErrors.push(message.text());
  });
  page.on('pageerror', (error) => consoleErrors.push(String(error)));
  const context = {
    base: input.base_url,
    params: input.params ?? {},
    browser,
    browserContext,
    async screenshot(name, target = page) {
      const path = join(input.screenshots, `${name}.png`);
      await target.screenshot({ path, fullPage: true });
      screenshots.push(path);
      return path;
    },
    axe: (target = page, options = {}) => axe(target, options),
  };
  let result = null;
  let error = null;
  try {
    result = (await journey(page, context)) ?? null;
  } catch (thrown) {
    error = String(thrown?.stack ?? thrown);
    try {
      await context.screenshot('failure');
    } catch {
      // The page may be gone; the error says why.
    }
  } finally {
    await browser.close();
  }
  writeFileSync(
    input.result,
    JSON.stringify({ ok: error === null, error, result, screenshots, console_errors: consoleErrors }),
  );
}

// Injects axe-core into `page` (through the DevTools protocol, so a strict
// CSP does not stop it) and runs it on the whole document. Returns the
// violations by impact: {critical, serious, moderate, minor}, each a list
// of {id, help, nodes}.
export async function axe(page, options = {}) {
  await page.evaluate(axeSource);
  const violations = await page.evaluate(async (options) => {
    const results = await window.axe.run(document, options);
    return results.violations.map((violation) => ({
      id: violation.id,
      impact: violation.impact ?? 'minor',
      help: violation.help,
      nodes: violation.nodes.map((node) => node.target.join(' ')),
    }));
  }, options);
  const byImpact = { critical: [], serious: [], moderate: [], minor: [] };
  for (const violation of violations) {
    (byImpact[violation.impact] ??= []).push(violation);
  }
  return byImpact;
}
