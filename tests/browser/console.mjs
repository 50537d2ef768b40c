// The web console in a real browser (tests/e2e/console_browser.rs): four
// people sign in through the OpenID provider (clicking "Sign in with
// single sign-on" and typing their account at the provider's form) and
// take one case from request to review; the requester's own approval is
// refused with its rule shown; the reviewer reads the timeline and has
// the browser verify the inclusion proofs. Each page is screenshotted and
// checked with axe-core.
//
// params: {people: {requester, approver, executor, reviewer} (accounts at
// the provider), request: {subject, entitlement, justification}}.

import { run } from './harness.mjs';

await run(async (page, context) => {
  let current = page;
  try {
    return await journey(context, (next) => { current = next; });
  } catch (error) {
    // The page the journey was on, for the failure's message and screenshot.
    await context.screenshot('failure-current', current).catch(() => {});
    const text = await current.locator('main').innerText().catch(() => '(no main)');
    throw new Error(`${error.message}\non ${current.url()}:\n${text}`);
  }
});

async function journey(context, using) {
  const { people, request } = context.params;
  const result = { violations: {}, signed_in: {}, page_errors: [] };

  // One browser context (its own cookies) per person.
  async function signIn(role) {
    const browserContext = await context.browser.newContext({ viewport: { width: 1280, height: 900 } });
    const own = await browserContext.newPage();
    using(own);
    own.on('pageerror', (error) => result.page_errors.push(`${role}: ${error}`));
    // Script errors only: a refusal answered 403 is logged by the browser as
    // a failed resource load, which it is meant to be.
    own.on('console', (message) => {
      if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) {
        result.page_errors.push(`${role}: ${message.text()}`);
      }
    });
    await own.goto(`${context.base}/`, { waitUntil: 'load' });
    // No session: the console sends the browser to its sign-in page.
    if (!new URL(own.url()).pathname.startsWith('/sign-in')) {
      throw new Error(`${role}: / without a session went to ${own.url()}`);
    }
    if (role === 'requester') {
      result.violations.sign_in = await context.axe(own);
      await context.screenshot('sign-in', own);
    }
    await own.click('#sso');
    // The provider's own sign-in form.
    await own.waitForSelector('#login');
    await own.fill('#login', people[role]);
    await Promise.all([own.waitForURL(`${context.base}/**`), own.click('#submit')]);
    await own.waitForLoadState('load');
    result.signed_in[role] = {
      path: new URL(own.url()).pathname,
      who: (await own.locator('header').innerText()).replace(/\s+/g, ' '),
    };
    return own;
  }

  // 1. The requester asks for the change.
  const requester = await signIn('requester');
  await requester.goto(`${context.base}/request`, { waitUntil: 'load' });
  result.violations.request = await context.axe(requester);
  await requester.fill('#subject-id', request.subject);
  await requester.fill('#entitlement', request.entitlement);
  await requester.fill('#justification', request.justification);
  await context.screenshot('request-form', requester);
  await Promise.all([requester.waitForURL('**/cases/**'), requester.click('#request-form button[type=submit]')]);
  const caseId = (await requester.locator('#case-id').innerText()).trim();
  result.case_id = caseId;

  // 2. Approving one's own request is refused, and the page says by which rule.
  await requester.fill('#approve-comment', 'my own approval');
  await requester.click('#approve-form button[type=submit]');
  await requester.waitForSelector('#refusal');
  result.refusal = {
    rule: (await requester.locator('#refusal-rule').innerText()).trim(),
    text: (await requester.locator('#refusal').innerText()).replace(/\s+/g, ' '),
  };
  await context.screenshot('self-approval-refused', requester);
  result.violations.refusal = await context.axe(requester);

  // 3. The approver finds it in the inbox and approves.
  const approver = await signIn('approver');
  result.violations.inbox = await context.axe(approver);
  await context.screenshot('approver-inbox', approver);
  result.inbox_links = await approver.locator(`a[href="/cases/${caseId}"]`).count();
  await approver.click(`a[href="/cases/${caseId}"]`);
  await approver.waitForSelector('#approve-form');
  await approver.fill('#approve-comment', 'approved for the rotation');
  await Promise.all([approver.waitForURL(`**/cases/${caseId}`), approver.click('#approve-form button[type=submit]')]);
  result.after_approval = (await approver.locator('#case-state').innerText()).trim();

  // 4. The executor records the execution.
  const executor = await signIn('executor');
  await executor.goto(`${context.base}/cases/${caseId}`, { waitUntil: 'load' });
  await executor.fill('#execute-comment', 'added to the group');
  await Promise.all([executor.waitForURL(`**/cases/${caseId}`), executor.click('#execute-form button[type=submit]')]);
  result.after_execution = (await executor.locator('#case-state').innerText()).trim();

  // 5. The reviewer confirms.
  const reviewer = await signIn('reviewer');
  await reviewer.goto(`${context.base}/cases/${caseId}`, { waitUntil: 'load' });
  await reviewer.selectOption('#review-outcome', 'confirmed');
  await reviewer.fill('#review-comment', 'matches the request');
  await Promise.all([reviewer.waitForURL(`**/cases/${caseId}`), reviewer.click('#review-form button[type=submit]')]);
  await reviewer.waitForLoadState('load');
  result.after_review = (await reviewer.locator('#case-state').innerText()).trim();

  // 6. The timeline, read through the DOM.
  result.timeline = await reviewer.evaluate(() => Array.from(
    document.querySelectorAll('#timeline tbody tr'),
    (row) => ({
      kind: row.dataset.kind,
      via: row.dataset.via,
      principal: row.cells[2].innerText.trim().split(/\s+/)[0],
      authentication: row.cells[7].innerText.trim(),
    }),
  ));
  // 7. The inclusion proofs, verified by this browser (plain JS).
  result.server_verdict = (await reviewer.locator('#server-verdict').innerText()).trim();
  await reviewer.click('#verify-in-browser');
  await reviewer.waitForSelector('#browser-verdict[data-result]');
  result.browser_verdict = await reviewer.evaluate(() => {
    const verdict = document.getElementById('browser-verdict');
    return {
      result: verdict.dataset.result,
      text: verdict.textContent,
      rows: Array.from(document.querySelectorAll('#proofs td.browser'), (cell) => cell.textContent),
    };
  });
  await context.screenshot('case-reviewed', reviewer);
  result.violations.case = await context.axe(reviewer);

  // 8. On a fresh page the keyboard reaches the skip link first.
  await reviewer.goto(`${context.base}/cases/${caseId}`, { waitUntil: 'load' });
  await reviewer.keyboard.press('Tab');
  result.first_focus = await reviewer.evaluate(() => ({
    text: document.activeElement.textContent.trim(),
    href: document.activeElement.getAttribute('href'),
  }));
  return result;
}
