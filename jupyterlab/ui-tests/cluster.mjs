// The panel's Kubeflow actions against a stand-in cluster (scripts/check-jupyterlab
// starts it when the fakes are installed): kmock as the Kubernetes API server, and
// tests/katib_e2e/katib_controller.py playing Katib's controller and a KFP API server
// whose runs kfp.local executes. From the page: "Run on Kubeflow Pipelines" uploads
// the pipeline and starts a run (its link shown); "Tune on Katib" creates the
// Experiment and follows it to Katib's best trial.
//
// Environment: as e2e.mjs (KALE_E2E_URL, KALE_E2E_TOKEN, KALE_E2E_RESULT), and the
// notebook cluster.ipynb under the server's root.

import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';

const base = process.env.KALE_E2E_URL.replace(/\/$/, '');
const token = process.env.KALE_E2E_TOKEN;
const t0 = Date.now();
const say = msg => console.error(`cluster [${((Date.now() - t0) / 1000).toFixed(1)}s]: ${msg}`);

const browser = await chromium.launch({
  executablePath: process.env.KALE_TEST_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--disable-dev-shm-usage']
});
const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
const errors = [];
page.on('pageerror', e => errors.push(`uncaught: ${e.message}`));
page.on('console', m => m.type() === 'error' && errors.push(`console.error: ${m.text()}`));
await page.goto(`${base}/lab/tree/cluster.ipynb?token=${token}&reset`, { waitUntil: 'domcontentloaded' });
await page.locator('.lm-TabBar-tab[data-id="kale-panel"]').click({ timeout: 120_000 });
const panel = page.locator('#kale-panel');
await panel.locator('.kale-status[data-kale-validation="ok"]').waitFor({ timeout: 120_000 });
const kubeflow = panel.locator('.kale-kubeflow');
await kubeflow.locator('header').click();
assert.match(await kubeflow.innerText(), /cluster found \(kubeconfig/);

/** The section's result: a link (or a success line) or kale's error, whichever comes. */
async function outcome(ok) {
  const failed = kubeflow.locator('.kale-problem-error');
  await Promise.race([ok.waitFor({ timeout: 600_000 }), failed.waitFor({ timeout: 600_000 })]);
  if (await failed.count()) {
    throw new Error(`the Kubeflow section says:\n${await kubeflow.innerText()}`);
  }
}

await kubeflow.getByRole('button', { name: 'Run on Kubeflow Pipelines' }).click();
const submitted = kubeflow.locator('.kale-ok a[href*="/#/runs/details/"]');
await outcome(submitted);
const result = { run_link: await submitted.getAttribute('href') };
say(`submitted: ${result.run_link}`);

await kubeflow.getByRole('button', { name: 'Tune on Katib' }).click();
const done = kubeflow.locator('.kale-ok', { hasText: /experiment \S+ succeeded/ });
await outcome(done);
result.katib = await done.innerText();
assert.match(result.katib, /best: trial \d+ \(\S+\) score=/);
// The links the section shows are URLs, not the text around them.
for (const href of await kubeflow.locator('.kale-ok a').evaluateAll(as => as.map(a => a.getAttribute('href')))) {
  assert.match(href, /^http:\/\/127\.0\.0\.1:\d+(\/[^\s)]*)?$/, href);
}
say('Katib experiment succeeded');
result.console_errors = errors;
writeFileSync(process.env.KALE_E2E_RESULT, JSON.stringify(result, null, 2));
await browser.close();
assert.deepEqual(errors, [], 'no errors in the browser console');
