// The readiness report's HTML page (tests/e2e/report.rs makes it): its
// verdict and charts read through the DOM, a screenshot, and axe-core.

import { run } from './harness.mjs';

await run(async (page, context) => {
  await page.goto(context.base, { waitUntil: 'load' });
  const verdict = page.locator('#verdict');
  await verdict.waitFor();
  const dom = await page.evaluate(() => {
    const verdict = document.getElementById('verdict');
    const charts = {};
    for (const chart of document.querySelectorAll('[id^="chart-"]')) {
      charts[chart.id] = Array.from(chart.querySelectorAll('[data-label]'), (bar) => ({
        label: bar.dataset.label,
        value: bar.dataset.value,
      }));
    }
    return {
      title: document.title,
      lang: document.documentElement.lang,
      verdict: verdict.dataset.verdict,
      verdict_text: verdict.textContent.replace(/\s+/g, ' ').trim(),
      charts,
      case_links: Array.from(document.querySelectorAll('a[href^="#case-"]'), (a) => a.getAttribute('href')),
    };
  });
  // Following a case link lands on that case's section.
  if (dom.case_links.length > 0) {
    await page.click(`a[href="${dom.case_links[0]}"]`);
    dom.followed = await page.evaluate(() => window.location.hash);
  }
  await context.screenshot('readiness');
  dom.violations = await context.axe();
  return dom;
});
