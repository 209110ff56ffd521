// The panel end to end, as a user: a real JupyterLab (started by scripts/check-jupyterlab
// from a fresh venv with kale's wheel) driven in headless Chromium with Playwright.
//
// From an untagged copy of examples/digits.ipynb: annotate every cell through the cell
// bars, see kale's error on the right cell and line (a step without its `prev:`), fix
// it, run the pipeline and read the metric, tune 4 trials and read the best trial, then
// check the saved notebook carries exactly the tags and katib_metadata of the
// hand-tagged example. Also: no console errors in the light and dark themes, the API
// refuses what it must, Notebook 7 shows the cell bars.
//
// Environment: KALE_E2E_URL (server base URL), KALE_E2E_TOKEN, KALE_E2E_DIR (the
// server's root, holding digits.ipynb), KALE_E2E_SCREENS (where screenshots go),
// KALE_E2E_RESULT (a JSON file this writes for the shell script's own checks),
// KALE_TEST_CHROMIUM (the browser).

import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

const base = process.env.KALE_E2E_URL.replace(/\/$/, '');
const token = process.env.KALE_E2E_TOKEN;
const dir = process.env.KALE_E2E_DIR;
const screens = process.env.KALE_E2E_SCREENS;
const resultFile = process.env.KALE_E2E_RESULT;
mkdirSync(screens, { recursive: true });

const t0 = Date.now();
const say = msg => console.error(`e2e [${((Date.now() - t0) / 1000).toFixed(1)}s]: ${msg}`);
const result = {};

const browser = await chromium.launch({
  executablePath: process.env.KALE_TEST_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--disable-dev-shm-usage'
  ]
});

/**
 * Console errors and uncaught exceptions of a page, kept for the end. With `ours`, only
 * those raised from kale's extension (its code in their stack or location) count.
 */
function watch(page, label, { ours = false, others = [] } = {}) {
  const errors = [];
  const mine = where => where.includes('labextensions/kale-jupyterlab');
  page.on('console', m => {
    if (m.type() === 'error') {
      const text = `${label}: console.error: ${m.text()}`;
      (!ours || mine(m.location()?.url ?? '') ? errors : others).push(text);
    }
  });
  page.on('pageerror', e => {
    const text = `${label}: uncaught: ${e.message}`;
    (!ours || mine(e.stack ?? '') ? errors : others).push(text);
  });
  return errors;
}

async function openLab(page, path) {
  await page.goto(`${base}/lab/tree/${path}?token=${token}&reset`, { waitUntil: 'domcontentloaded' });
  await page.locator('.jp-Notebook .jp-Cell').first().waitFor({ timeout: 120_000 });
  // The panel's tab in the left sidebar.
  await page.locator('.lm-TabBar-tab[data-id="kale-panel"]').waitFor({ timeout: 60_000 });
}

async function openPanel(page) {
  const panel = page.locator('#kale-panel');
  if (!(await panel.isVisible())) {
    await page.locator('.lm-TabBar-tab[data-id="kale-panel"]').click();
  }
  await panel.locator('.kale-notebook-name').waitFor();
  // Wider than JupyterLab's default sidebar, as a user would drag it to read the graph.
  const box = await panel.boundingBox();
  if (box && box.width < 380) {
    const handle = page.locator('#jp-main-split-panel > .lm-SplitPanel-handle').first();
    const h = await handle.boundingBox();
    if (h) {
      await page.mouse.move(h.x + h.width / 2, h.y + h.height / 2);
      await page.mouse.down();
      await page.mouse.move(h.x + h.width / 2 + (400 - box.width), h.y + h.height / 2, { steps: 5 });
      await page.mouse.up();
    }
  }
  return panel;
}

const cells = page => page.locator('.jp-Notebook .jp-Cell');

/** The bar of cell `n` (1-based, as kale counts cells), editor open. */
async function editCell(page, n) {
  const cell = cells(page).nth(n - 1);
  await cell.scrollIntoViewIfNeeded();
  const bar = cell.locator('.kale-cellbar');
  await bar.waitFor();
  if ((await bar.locator('.kale-editor').count()) === 0) {
    await bar.locator('.kale-cellbar-edit').click();
  }
  await bar.locator('.kale-editor').waitFor();
  return bar;
}

async function closeEditor(bar) {
  if ((await bar.locator('.kale-editor').count()) > 0) {
    await bar.locator('.kale-cellbar-edit').click();
  }
}

async function annotate(page, n, kind, { name, prev = [], typeFirst } = {}) {
  const bar = await editCell(page, n);
  await bar.locator('select.kale-kind').selectOption(kind);
  if (kind === 'step') {
    const input = bar.locator('input.kale-step-name');
    if (typeFirst) {
      // A name Kale would refuse: checked as it is typed, not written, a fix offered.
      await input.fill(typeFirst.typed);
      await bar.locator('.kale-name-check').filter({ hasText: typeFirst.says }).waitFor();
      assert.deepEqual(await tagsOf(page, n), [], `a refused step name is not written (cell ${n})`);
      await bar.locator('.kale-use-suggestion').click();
    } else {
      await input.fill(name);
    }
    await page.waitForFunction(
      ([i, want]) => {
        const c = document.querySelectorAll('.jp-Notebook .jp-Cell')[i];
        return c && c.querySelector('.kale-chip')?.textContent === want;
      },
      [n - 1, name]
    );
    for (const p of prev) {
      await bar.locator(`.kale-prev input[value="${p}"]`).check();
    }
  }
  return bar;
}

/** The tags of cell `n` as the page's notebook model holds them (through the UI). */
async function tagsOf(page, n) {
  return page.evaluate(i => {
    const c = document.querySelectorAll('.jp-Notebook .jp-Cell')[i];
    const bar = c.querySelector('.kale-cellbar-inner');
    return bar && bar.dataset.tags ? JSON.parse(bar.dataset.tags) : [];
  }, n - 1);
}

/** A run other than `previous` ended with `status`. */
async function waitRun(panel, previous, status) {
  await panel
    .locator(`.kale-steps[data-kale-run="${status}"]:not([data-run-id="${previous}"]):not([data-run-id=""])`)
    .waitFor({ timeout: 180_000 });
}

async function waitValid(panel) {
  await panel.locator('.kale-status[data-kale-validation="ok"]').waitFor({ timeout: 60_000 });
}

// ---------------------------------------------------------------------------------
const page = await browser.newPage({ viewport: { width: 1500, height: 1150 } });
const lightErrors = watch(page, 'light');
await openLab(page, 'digits.ipynb');
say('JupyterLab loaded');
const panel = await openPanel(page);

// Annotate every cell (1-based numbers, markdown cells in between).
await annotate(page, 2, 'imports');
await annotate(page, 4, 'pipeline-parameters');
const first = await annotate(page, 6, 'step', {
  name: 'load_data',
  typeFirst: { typed: 'load-data', says: 'cannot contain `-`' }
});
await closeEditor(first);
await closeEditor(await annotate(page, 8, 'step', { name: 'scale', prev: ['load_data'] }));
// `train` without its `prev:scale`: kale must say so on cell 10, line 2.
const train = await annotate(page, 10, 'step', { name: 'train' });
await closeEditor(await annotate(page, 12, 'step', { name: 'evaluate', prev: ['train'] }));
await closeEditor(await annotate(page, 14, 'pipeline-metrics'));
say('annotated every cell');

const trainCell = cells(page).nth(9);
await trainCell.scrollIntoViewIfNeeded();
const problem = trainCell
  .locator('.kale-problem-error')
  .filter({ hasText: /reads `X_train_scaled`, which step `scale` defines/ });
await problem.waitFor({ timeout: 60_000 });
assert.match(await problem.innerText(), /line 2/);
assert.match(await problem.innerText(), /prev:scale/);
// Marked on the line itself, in the cell's editor.
await trainCell.locator('.cm-line.kale-line-error[data-kale-line="2"]').waitFor();
// And listed in the panel; a click goes to the cell.
const listed = panel.locator('.kale-problem-list li[data-kale-cell="10"]').first();
await listed.waitFor();
assert.match(await listed.innerText(), /cell 10, line 2/);
assert.equal(await panel.locator('.kale-status').getAttribute('data-kale-validation'), 'errors');
await listed.click();
await page.waitForFunction(() => {
  const all = [...document.querySelectorAll('.jp-Notebook .jp-Cell')];
  return all.findIndex(c => c.classList.contains('jp-mod-active')) === 9;
});
result.validation_error = await problem.innerText();
say('the missing dependency is reported on cell 10, line 2');
await trainCell.screenshot({ path: join(screens, 'cell.png') });
await page.screenshot({ path: join(screens, 'annotate.png') });

// Fix it through the depends-on picker.
await train.locator('.kale-prev input[value="scale"]').check();
await waitValid(panel);
await closeEditor(train);
say('fixed: the notebook is valid');

// Pipeline settings, as on Kale's panel.
const settings = panel.locator('.kale-settings');
await settings.locator('header').click();
await settings.locator('input.kale-setting-pipeline_name').fill('digits-svc');
await settings.locator('input.kale-setting-experiment_name').fill('digits');
await settings
  .locator('input.kale-setting-pipeline_description')
  .fill('Classify handwritten digits with an SVC');
await settings.locator('input.kale-setting-base_image').fill('python:3.11');
await waitValid(panel);

// The pipeline kale sees: four steps, the variables on the edges.
await panel.locator('.kale-dag-node[data-step="evaluate"]').waitFor();
const edge = await panel.locator('.kale-dag-edge[data-from="scale"][data-to="train"] text').textContent();
assert.match(edge, /X_train_scaled/);

// Run.
await panel.locator('.kale-run-button').click();
await panel.locator('.kale-steps[data-kale-run="succeeded"]').waitFor({ timeout: 180_000 });
const accuracy = await panel.locator('.kale-run-metrics tr[data-metric="accuracy"] .kale-metric-value').innerText();
result.run_accuracy = Number(accuracy);
assert.ok(result.run_accuracy > 0.5, `accuracy ${accuracy}`);
for (const s of ['load_data', 'scale', 'train', 'evaluate']) {
  assert.match(await panel.locator(`.kale-step[data-step="${s}"]`).innerText(), /succeeded|cached/);
}
say(`run succeeded: accuracy ${accuracy}`);
await page.screenshot({ path: join(screens, 'panel.png') });

// Tune: the dialog, filled in as the example's katib_metadata, 4 trials.
await panel.locator('.kale-tune-button').click();
const dialog = page.locator('.kale-modal');
await dialog.waitFor();
const param = name => dialog.locator(`tr[data-param="${name}"]`);
for (const [name, min, max] of [
  ['C', '0.1', '100'],
  ['gamma', '0.0001', '0.1']
]) {
  await param(name).locator('input.kale-tuned').check();
  await param(name).locator('select.kale-mode').selectOption('range');
  await param(name).locator('input.kale-min').fill(min);
  await param(name).locator('input.kale-max').fill(max);
  await param(name).locator('input.kale-log').check();
}
assert.equal(await param('kernel').locator('input.kale-tuned').isChecked(), false);
await dialog.locator('select.kale-objective').first().selectOption('accuracy');
await dialog.locator('select.kale-direction').first().selectOption('maximize');
await dialog.locator('select.kale-algorithm').selectOption('tpe');
await dialog.locator('.kale-add-setting').click();
await dialog.locator('input.kale-setting-name').fill('random_state');
await dialog.locator('input.kale-setting-value').fill('7');
await dialog.locator('input.kale-max-trials').fill('4');
await dialog.locator('input.kale-parallel').fill('2');
await dialog.locator('input.kale-max-failed').fill('3');
// A bad value is refused on its field and blocks saving.
await param('C').locator('input.kale-min').fill('0');
await dialog.locator('.kale-name-check[data-field="params.C.min"]').waitFor();
assert.equal(await dialog.locator('.kale-save-and-tune').isDisabled(), true);
await param('C').locator('input.kale-min').fill('0.1');
await dialog.locator('.kale-modal-content').screenshot({ path: join(screens, 'tune-dialog.png') });
// A second objective makes it a Pareto search (no goal; a multi-objective algorithm),
// a constraint is offered on the metrics; both taken back before tuning.
await dialog.locator('.kale-add-objective').click();
assert.equal(await dialog.locator('.kale-objective-row').count(), 2);
assert.equal(await dialog.locator('select.kale-algorithm').inputValue(), 'nsga2');
assert.equal(await dialog.locator('input.kale-goal').count(), 0);
assert.equal(await dialog.locator('.kale-objective-row').nth(1).locator('select.kale-objective').inputValue(), 'f1');
await dialog.locator('.kale-add-constraint').click();
await dialog.locator('.kale-constraint-row input').fill('0.9');
assert.equal(await dialog.locator('.kale-save-and-tune').isDisabled(), false);
await dialog.locator('.kale-constraint-row').getByText('remove').click();
await dialog.locator('.kale-objective-row').nth(1).getByText('remove').click();
await dialog.locator('.kale-name-check[data-field="algorithm"]').waitFor();
await dialog.locator('select.kale-algorithm').selectOption('tpe');
assert.equal(await dialog.locator('.kale-name-check').count(), 0);
await dialog.locator('.kale-save-and-tune').click();
say('tuning');

const live = page.locator('.kale-live-body');
await live.waitFor();
await page.locator('.kale-live-body[data-kale-tune="succeeded"]').waitFor({ timeout: 300_000 });
const bestBox = live.locator('.kale-best-box');
result.live_best_trial = Number(await bestBox.getAttribute('data-kale-best'));
result.live_best_text = await bestBox.innerText();
result.experiment = (await live.locator('h2').innerText()).split(' ')[0];
assert.equal(await live.locator('tr[data-trial]').count(), 4);
await live.locator('.kale-history-point').first().waitFor();
assert.equal(await live.locator('.kale-history-point').count(), 4);
say(`tuned: ${result.live_best_text}`);
await page.waitForTimeout(500); // the progress bar's transition
await page.screenshot({ path: join(screens, 'live.png') });

// The best trial's parameters, run again from the live view: the same accuracy.
const bestAccuracy = Number(
  await live.locator(`tr[data-trial="${result.live_best_trial}"] td`).nth(4).innerText()
);
const firstRun = await panel.locator('.kale-steps').getAttribute('data-run-id');
await live.locator('.kale-run-best').click();
await waitRun(panel, firstRun, 'succeeded');
const rerun = Number(await panel.locator('.kale-run-metrics tr[data-metric="accuracy"] .kale-metric-value').innerText());
assert.ok(Math.abs(rerun - bestAccuracy) < 1e-6, `rerun ${rerun} vs best ${bestAccuracy}`);
say(`the best trial's parameters rerun: accuracy ${rerun}`);

// A failing run: the step, its cell and line, and the step opened as a notebook.
await panel.locator('.kale-run input[data-param="kernel"]').fill('no_such_kernel');
const secondRun = await panel.locator('.kale-steps').getAttribute('data-run-id');
await panel.locator('.kale-run-button').click();
await waitRun(panel, secondRun, 'failed');
const runError = panel.locator('.kale-run-error');
assert.match(await runError.innerText(), /step train failed at cell 10, line \d/);
await runError.locator('.kale-link-button').first().click();
await page.waitForFunction(() =>
  [...document.querySelectorAll('.jp-Notebook .jp-Cell')].findIndex(c => c.classList.contains('jp-mod-active')) === 9
);
await runError.locator('.kale-debug-button').click();
const debugTab = page.locator('.lm-DockPanel-tabBar .lm-TabBar-tab', { hasText: 'kale-debug-train' });
await debugTab.waitFor({ timeout: 60_000 });
result.debug_tab = await debugTab.innerText();
say(`the failed step opened as ${result.debug_tab}`);
// (Left open: closing a notebook while JupyterLab starts its kernel and saves it logs
// JupyterLab's own errors.)
await page.locator('.lm-DockPanel-tabBar .lm-TabBar-tab', { hasText: /^digits\.ipynb$/ }).first().click();
await panel.locator('.kale-run input[data-param="kernel"]').fill('');

// A second tune, with the example's 20 trials: stopped, resumed, stopped.
await panel.locator('.kale-tune-button').click();
await dialog.waitFor();
assert.equal(await param('C').locator('input.kale-min').inputValue(), '0.1', 'the dialog reads back the saved space');
await dialog.locator('input.kale-max-trials').fill('20');
await dialog.locator('.kale-save-and-tune').click();
const rows = () => live.locator('tr[data-trial]').count();
await page.waitForFunction(() => document.querySelector('.kale-live-body h2')?.textContent?.startsWith('digits-svc-2'));
await page.waitForFunction(() => document.querySelectorAll('.kale-live-body tr[data-trial]').length >= 2, null, { timeout: 120_000 });
await live.locator('.kale-stop-tune').click();
await page.locator('.kale-live-body[data-kale-tune="interrupted"]').waitFor({ timeout: 60_000 });
const stoppedAt = await rows();
assert.ok(stoppedAt < 20, `stopped after ${stoppedAt} trials`);
say(`stopped after ${stoppedAt} trials`);
await live.locator('.kale-resume').click();
await page.waitForFunction(
  n => document.querySelectorAll('.kale-live-body tr[data-trial]').length > n,
  stoppedAt,
  { timeout: 120_000 }
);
if (await live.locator('.kale-stop-tune').count()) {
  await live.locator('.kale-stop-tune').click();
}
await page.waitForFunction(() => /interrupted|succeeded/.test(document.querySelector('.kale-live-body')?.dataset.kaleTune ?? ''), null, { timeout: 120_000 });
result.resumed_trials = await rows();
say(`resumed: ${result.resumed_trials} trials kept`);

// Experiments: both listed in the panel, compared side by side.
const list = panel.locator('.kale-experiment-list');
await list.getByText(result.experiment, { exact: true }).waitFor();
await list.getByText('digits-svc-2', { exact: true }).waitFor();
for (const name of [result.experiment, 'digits-svc-2']) {
  await list.locator('li', { hasText: name }).locator('input[type="checkbox"]').check();
}
await panel.locator('.kale-compare-button').click();
const comparison = page.locator('.kale-comparison');
await comparison.waitFor({ timeout: 60_000 });
assert.match(await comparison.innerText(), /digits-svc-2/);
await page.locator('.kale-experiments-main img.kale-plot').waitFor();
say('experiments compared');

// Compiling to files beside the notebook, which works with or without a cluster (the
// stand-in cluster, when scripts/check-jupyterlab starts one, is found: cluster.mjs
// drives its actions).
const kubeflow = panel.locator('.kale-kubeflow');
await kubeflow.locator('header').click();
assert.match(
  await kubeflow.innerText(),
  process.env.KALE_E2E_CLUSTER ? /cluster found \(kubeconfig/ : /no cluster found/
);
for (const [button, file] of [
  ['.kale-compile-kfp', 'digits.pipeline.yaml'],
  ['.kale-compile-katib', 'digits.katib.yaml']
]) {
  await kubeflow.locator(button).click();
  await kubeflow.locator('.kale-ok', { hasText: `wrote ${file}` }).waitFor({ timeout: 60_000 });
}
result.compiled = ['digits.pipeline.yaml', 'digits.katib.yaml'];
say('compiled to digits.pipeline.yaml and digits.katib.yaml');

// Save without tuning: the dialog writes what it shows, and closes.
await panel.locator('.kale-tune-button').click();
await dialog.waitFor();
await dialog.locator('.kale-save').click();
await dialog.waitFor({ state: 'detached' });

await cells(page).nth(0).click();
await page.keyboard.press('Control+s');
await page.waitForFunction(() => !document.querySelector('.jp-mod-dirty'));
say('saved');

// Dark theme: the panel and the bars read, and nothing errs.
const dark = await browser.newPage({ viewport: { width: 1500, height: 1000 } });
const darkErrors = watch(dark, 'dark');
await openLab(dark, 'digits.ipynb');
// Settings > Theme > JupyterLab Dark, through the menu.
await dark.locator('.lm-MenuBar-itemLabel', { hasText: 'Settings' }).click();
await dark.locator('.lm-Menu-itemLabel', { hasText: 'Theme' }).first().hover();
await dark.locator('.lm-Menu-itemLabel').getByText('JupyterLab Dark', { exact: true }).click();
await dark.waitForFunction(() => document.body.dataset.jpThemeLight === 'false', null, { timeout: 60_000 });
const darkPanel = await openPanel(dark);
await waitValid(darkPanel);
await dark.locator('.kale-chip[data-kale-step="train"]').first().waitFor();
await dark.waitForTimeout(500);
await dark.screenshot({ path: join(screens, 'dark.png') });
// Back to light for whoever opens it next.
await dark.locator('.lm-MenuBar-itemLabel', { hasText: 'Settings' }).click();
await dark.locator('.lm-Menu-itemLabel', { hasText: 'Theme' }).first().hover();
await dark.locator('.lm-Menu-itemLabel').getByText('JupyterLab Light', { exact: true }).click();
await dark.waitForFunction(() => document.body.dataset.jpThemeLight === 'true');
say('dark theme checked');

// The API: Jupyter's authentication and XSRF check, the root directory.
const api = path => `${base}/kale/${path}`;
let r = await fetch(api('info'));
assert.ok([401, 403].includes(r.status), `no token: ${r.status}`);
r = await fetch(api('info'), { headers: { Authorization: `token ${token}` } });
assert.equal(r.status, 200);
r = await fetch(api('validate'), {
  method: 'POST',
  headers: { Authorization: `token ${token}` },
  body: JSON.stringify({ path: '../outside.ipynb', notebook: { cells: [] } })
});
assert.equal(r.status, 403, 'a notebook outside the root is refused');
r = await fetch(api('jobs'), {
  method: 'POST',
  headers: { Authorization: `token ${token}` },
  body: JSON.stringify({ kind: 'run', path: 'digits.ipynb', params: { 'C; rm -rf /': '1' } })
});
assert.equal(r.status, 400, 'a parameter name that is not one is refused');
// From the page (its login cookie): a POST without the XSRF header is refused, the same
// POST with it gets through to the handler (which refuses the unknown job kind). The
// browser logs both refusals; they are the point of this check, not console errors.
const before = lightErrors.length;
const statuses = await page.evaluate(async url => {
  const xsrf = decodeURIComponent((document.cookie.match(/(?:^|; )_xsrf=([^;]*)/) || [])[1] || '');
  const post = headers =>
    fetch(url, { method: 'POST', body: '{"kind": "nothing"}', credentials: 'same-origin', headers }).then(r => r.status);
  return [await post({}), await post({ 'X-XSRFToken': xsrf })];
}, api('jobs'));
lightErrors.splice(before);
assert.deepEqual(statuses, [403, 400], 'cookie-authenticated POSTs need the XSRF header');
say('API refuses unauthenticated, outside-root, bad names and XSRF-less requests');

// Notebook 7, when installed: the bars and the panel are there too.
const nb7 = await browser.newPage({ viewport: { width: 1300, height: 900 } });
// Notebook 7.6 logs errors of its own on this page (seen without kale's extension too:
// "Cannot read properties of undefined (reading 'schema')"): only ours count there.
result.notebook7_own_errors = [];
const nb7Errors = watch(nb7, 'notebook7', { ours: true, others: result.notebook7_own_errors });
const res7 = await nb7.goto(`${base}/notebooks/digits.ipynb?token=${token}`, { waitUntil: 'domcontentloaded' });
if (res7 && res7.status() === 200) {
  await nb7.locator('.kale-chip[data-kale-step="evaluate"]').first().waitFor({ timeout: 120_000 });
  result.notebook7 = await nb7.locator('.kale-cellbar').count();
  say(`Notebook 7: ${result.notebook7} cell bars`);
} else {
  result.notebook7 = null;
  nb7Errors.length = 0;
}

const errors = [...lightErrors, ...darkErrors, ...nb7Errors];
result.console_errors = errors;
writeFileSync(resultFile, JSON.stringify(result, null, 2));
await browser.close();
assert.deepEqual(errors, [], 'no errors in the browser console');
say('ok');
