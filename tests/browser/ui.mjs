#!/usr/bin/env node
// Browser test of the `curate serve` web UI: drives Debian's chromium with playwright-core
// against a running server and checks what a person would see.
//
//   bash scripts/browser-env.sh      # once: chromium + playwright-core
//   node tests/browser/ui.mjs --url http://127.0.0.1:8080 --token TOKEN --run 12 \
//        --dataset web --record REC_ID [--start PIPELINE] [--screenshot DIR] [--timeout 60]
//
// --start PIPELINE also presses that pipeline's Run button (this creates a real run) and watches
// the new run's page update live, without a reload, until it finishes.
// Exit 0 when every check passes; otherwise 1 with the failing check and why.
// Develop against the mock: python3 tests/browser/mock-server.py 8787 secret
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';

const USAGE = 'usage: node tests/browser/ui.mjs --url URL --token TOKEN --run RUN_ID --dataset NAME --record RECORD_ID [--start PIPELINE] [--screenshot DIR] [--timeout SECONDS] [--chromium PATH]';
const args = {};
{
  const a = process.argv.slice(2);
  for (let i = 0; i < a.length; i++) {
    if (!a[i].startsWith('--')) die(`unexpected argument ${a[i]}\n${USAGE}`);
    const [k, v] = a[i].includes('=') ? a[i].slice(2).split(/=(.*)/s) : [a[i].slice(2), a[++i]];
    if (v === undefined) die(`--${k} needs a value\n${USAGE}`);
    args[k] = v;
  }
  for (const k of ['url', 'token', 'run', 'dataset', 'record']) if (!args[k]) die(`missing --${k}\n${USAGE}`);
}
function die(msg) { console.error(msg); process.exit(2); }

const BASE = args.url.replace(/\/+$/, '');
const TOKEN = args.token;
const SHOTS = args.screenshot || null;
const TOTAL_MS = Number(args.timeout || 60) * 1000;
const CHROMIUM = args.chromium || '/usr/bin/chromium';
const WAIT = 10_000;
if (SHOTS) fs.mkdirSync(SHOTS, { recursive: true });

let passed = 0, failed = 0, current = 'start', browser = null, page = null, shotN = 0;
const started = Date.now();
const deadline = setTimeout(async () => {
  console.error(`FAIL - ${current}: the whole test ran past ${TOTAL_MS / 1000} s`);
  await shot('timeout').catch(() => {});
  await finish(1);
}, TOTAL_MS);

async function finish(code) {
  clearTimeout(deadline);
  if (code) failed++;
  console.log(`ui: ${passed} passed, ${failed} failed (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  try { if (browser) await browser.close(); } catch { /* already gone */ }
  process.exit(code);
}
async function shot(name) {
  if (!SHOTS || !page) return;
  shotN++;
  await page.screenshot({ path: path.join(SHOTS, `${String(shotN).padStart(2, '0')}-${name}.png`), fullPage: true });
}
async function check(name, fn) {
  current = name;
  try {
    await fn();
    passed++;
    console.log(`ok - ${name}`);
  } catch (e) {
    console.error(`FAIL - ${name}: ${e && e.message ? e.message.split('\n')[0] : e}`);
    if (e && e.stack && process.env.UI_TEST_DEBUG) console.error(e.stack);
    await shot('failure-' + name.replace(/[^a-z0-9]+/gi, '-').toLowerCase()).catch(() => {});
    await finish(1);
  }
}
function assert(cond, msg) { if (!cond) throw new Error(msg); }
// Polls fn until it returns a truthy value; throws msg() when time is up.
async function until(fn, msg, ms = WAIT) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    try { last = await fn(); if (last) return last; } catch (e) { last = e; }
    if (Date.now() > end) throw new Error(typeof msg === 'function' ? await msg(last) : msg);
    await new Promise((r) => setTimeout(r, 150));
  }
}
async function api(p) {
  const res = await fetch(BASE + p, { headers: { Authorization: `Bearer ${TOKEN}`, Accept: 'application/json' } });
  if (!res.ok) throw new Error(`GET ${p} answered ${res.status}: ${(await res.text()).slice(0, 200)}`);
  return res.json();
}
// The diff answer in either shape: {added: N, added_ids} or {added: [ids], added_count}.
function diffCounts(d) {
  const list = (k) => Array.isArray(d[k + '_ids']) ? d[k + '_ids'] : (Array.isArray(d[k]) ? d[k] : []);
  const count = (k) => typeof d[k + '_count'] === 'number' ? d[k + '_count'] : (typeof d[k] === 'number' ? d[k] : list(k).length);
  return { added: count('added'), removed: count('removed') };
}
// Where the explain answer says the record came from: {source: {id, file}} or {occurrences: [{source_id, source_file}]}.
function explainSource(ex) {
  if (ex.source && typeof ex.source === 'object') return { id: ex.source.id, file: ex.source.file };
  const o = Array.isArray(ex.occurrences) ? ex.occurrences[0] : null;
  return o ? { id: o.source_id, file: o.source_file } : null;
}
const tid = (id, extra = '') => `[data-testid="${id}"]${extra}`;
const digits = (s) => Number(String(s).replace(/[^0-9-]/g, ''));
const seg = (s) => encodeURIComponent(String(s)).replace(/%40/g, '@');
async function visible(sel, ms = WAIT) { const l = page.locator(sel).first(); await l.waitFor({ state: 'visible', timeout: ms }); return l; }
async function go(hash) { await page.evaluate((h) => { location.hash = h; }, hash); }
async function text(sel) { return (await page.locator(sel).first().innerText()).trim(); }

const external = [];
const pageErrors = [];

try {
  await check('launch chromium and open the UI', async () => {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 860 }, colorScheme: 'light' });
    page = await ctx.newPage();
    page.setDefaultTimeout(WAIT);
    page.on('request', (r) => {
      const u = r.url();
      if (!u.startsWith(BASE + '/') && u !== BASE && !u.startsWith('data:') && !u.startsWith('blob:')) external.push(u);
    });
    page.on('pageerror', (e) => pageErrors.push(String(e && e.message || e)));
    const res = await page.goto(BASE + '/#/runs', { waitUntil: 'domcontentloaded' });
    assert(res && res.ok(), `GET / answered ${res && res.status()}`);
    assert(/text\/html/.test(res.headers()['content-type'] || ''), `GET / is ${res.headers()['content-type']}, not text/html`);
    await page.evaluate(() => localStorage.clear());
    await page.reload({ waitUntil: 'domcontentloaded' });
    await visible(tid('token-form'));
    await shot('token');
  });

  await check('a wrong token shows the auth error', async () => {
    await page.fill(tid('token-input'), TOKEN + '-wrong');
    await page.click(tid('token-save'));
    const banner = await visible(tid('error-banner', '[data-kind="auth"]'));
    const t = await banner.innerText();
    assert(/token/i.test(t) && /wrong|invalid|rejected/i.test(t), `auth banner does not say the token is wrong: ${JSON.stringify(t)}`);
    assert(/401/.test(t), `auth banner does not name the 401: ${JSON.stringify(t)}`);
    await shot('wrong-token');
  });

  await check('the right token clears the error and is kept in localStorage', async () => {
    if (!(await page.locator('#token-pop').isVisible())) await page.click(tid('token-button'));
    await page.fill(tid('token-pop-input'), TOKEN);
    await page.click(tid('token-pop-save'));
    await until(async () => !(await page.locator(tid('error-banner')).isVisible()), async () => `error banner still shown: ${await text(tid('error-banner'))}`);
    const kept = await page.evaluate(() => localStorage.getItem('curate.token'));
    assert(kept === TOKEN, 'token not stored in localStorage under curate.token');
  });

  let apiRun;
  await check(`runs list shows run ${args.run} as succeeded`, async () => {
    apiRun = await api(`/v1/runs/${seg(args.run)}`);
    await visible(tid('runs-table'));
    const row = `${tid('run-row')}[data-run-id="${args.run}"]`;
    for (let i = 0; i < 20; i++) {
      if (await page.locator(row).count()) break;
      const more = page.locator(tid('runs-more'));
      if (await more.isVisible()) { await more.click(); await page.waitForTimeout(300); continue; }
      await page.waitForTimeout(300);
    }
    await visible(row);
    const state = await until(async () => {
      const s = await text(`${row} ${tid('run-state')}`);
      return s === 'succeeded' ? s : null;
    }, async () => `run ${args.run} shows state ${JSON.stringify(await text(`${row} ${tid('run-state')}`))}, want succeeded`);
    assert(state === 'succeeded', 'state');
    await shot('runs');
  });

  await check('runs list refreshes by itself every 2 s', async () => {
    const req = await page.waitForRequest((r) => new URL(r.url()).pathname === '/v1/runs' && r.method() === 'GET', { timeout: 5000 });
    assert(req, 'no refresh of /v1/runs within 5 s');
  });

  await check(`run ${args.run} detail shows counters, steps and version`, async () => {
    await page.click(`${tid('run-row')}[data-run-id="${args.run}"] ${tid('run-link')}`);
    await until(async () => (await page.evaluate(() => location.hash)) === `#/runs/${seg(args.run)}`, 'the run link did not open #/runs/ID');
    await until(async () => (await text(tid('counter-records-in'))) !== '—' || apiRun.records_in == null, 'counters did not load');
    const stateText = await text(tid("run-state"));
    assert(stateText === apiRun.state, `detail state ${stateText} != API ${apiRun.state}`);
    for (const [k, id] of [['records_in', 'counter-records-in'], ['records_out', 'counter-records-out'], ['records_rejected', 'counter-records-rejected']]) {
      const shown = await text(tid(id));
      if (apiRun[k] == null) assert(shown === '—', `${id} shows ${shown} for a null ${k}`);
      else assert(digits(shown) === apiRun[k], `${id} shows ${shown}, API says ${k}=${apiRun[k]}`);
    }
    const ver = await text(tid('run-version'));
    assert(apiRun.version ? ver === apiRun.version : ver === '—', `version shows ${JSON.stringify(ver)}, API says ${apiRun.version}`);
    const steps = Array.isArray(apiRun.steps) ? apiRun.steps : [];
    const rows = await page.locator(tid('step-row')).count();
    assert(rows === steps.length, `steps table has ${rows} rows, API has ${steps.length} steps`);
    if (steps.length) {
      const first = page.locator(`${tid('step-row')}`).first();
      const cells = await first.locator('td').allInnerTexts();
      assert(cells[0].trim() === String(steps[0].step), `first step shows ${cells[0]}, API ${steps[0].step}`);
      assert(digits(cells[1]) === steps[0].input && digits(cells[2]) === steps[0].kept, `first step counters ${cells.slice(1, 3)} != API input ${steps[0].input} kept ${steps[0].kept}`);
    }
    const p = apiRun.progress || {};
    if (p.tasks_total) {
      const pt = await text(tid('run-progress-text'));
      assert(pt.includes(`${p.tasks_done} / ${p.tasks_total}`), `progress shows ${JSON.stringify(pt)}, API ${p.tasks_done}/${p.tasks_total}`);
    }
    await shot('run-detail');
  });

  if (args.start) {
    await check(`Run button of pipeline ${args.start} starts a run whose page updates live`, async () => {
      await go('#/pipelines');
      const btn = await visible(`${tid('pipeline-row')}[data-pipeline="${args.start}"] ${tid('pipeline-run')}`);
      await page.evaluate(() => { window.__curateNoReload = true; });
      await btn.click();
      const hash = await until(async () => { const h = await page.evaluate(() => location.hash); return /^#\/runs\/[^/]+$/.test(h) ? h : null; }, 'Run did not open the new run\'s page');
      await visible(tid('run-state'));
      const first = { state: await text(tid('run-state')), done: await page.getAttribute(tid('run-progress-text'), 'data-done') };
      if (['succeeded', 'failed', 'cancelled'].includes(first.state)) {
        console.log(`   note: ${hash} had already finished (${first.state}) when its page opened; live updates not observed`);
      } else {
        await shot('live-start');
        let sawLive = false, sawProgress = false;
        await until(async () => {
          if ((await page.getAttribute(tid('live-status'), 'data-live')) === 'live') sawLive = true;
          const done = await page.getAttribute(tid('run-progress-text'), 'data-done');
          if (done !== first.done) sawProgress = true;
          const s = await text(tid('run-state'));
          return ['succeeded', 'failed', 'cancelled'].includes(s);
        }, async () => `the run stayed ${await text(tid('run-state'))} (progress ${await text(tid('run-progress-text'))}, stream ${await page.getAttribute(tid('live-status'), 'data-live')})`, 40_000);
        assert(sawLive, 'the event stream never showed as live');
        assert(sawProgress, 'the progress bar never moved');
        const events = await page.locator(`${tid('event-log')} li`).count();
        assert(events > 0, 'no event in the event log');
        assert(await page.evaluate(() => window.__curateNoReload === true), 'the page reloaded while the run was going');
        const id = hash.split('/').pop();
        const fin = await api(`/v1/runs/${id}`);
        await until(async () => digits(await text(tid('counter-records-in'))) === fin.records_in,
          async () => `records in shows ${await text(tid('counter-records-in'))}, API ${fin.records_in}`);
        await shot('live-end');
      }
    });
  }

  await check('pipelines page lists pipelines and shows a spec', async () => {
    const apiP = (await api('/v1/pipelines')).pipelines || [];
    assert(apiP.length >= 1, 'the server has no pipeline (need at least one)');
    await go('#/pipelines');
    await visible(tid('pipeline-row'));
    const n = await page.locator(tid('pipeline-row')).count();
    assert(n === apiP.length, `pipelines table has ${n} rows, API ${apiP.length}`);
    const name = apiP[0].name;
    await page.click(`${tid('pipeline-row')}[data-pipeline="${name}"] ${tid('pipeline-link')}`);
    const spec = await visible(tid('pipeline-spec'));
    const want = typeof apiP[0].spec === 'string' ? apiP[0].spec.trim().split('\n')[0] : '';
    const got = await spec.innerText();
    assert(got.trim().length > 0, 'pipeline spec is empty');
    if (want) assert(got.includes(want), `spec does not show ${JSON.stringify(want)}`);
    await shot('pipelines');
  });

  await check(`datasets page lists ${args.dataset}, its versions and a diff`, async () => {
    await go('#/datasets');
    const row = `${tid('dataset-row')}[data-dataset="${args.dataset}"]`;
    await visible(row);
    await shot('datasets');
    await page.click(`${row} ${tid('dataset-link')}`);
    const d = await api(`/v1/datasets/${seg(args.dataset)}`);
    const vers = (d.versions || []).map((v) => v.version);
    assert(vers.length >= 1, `dataset ${args.dataset} has no versions`);
    await visible(tid('version-row'));
    const shown = await page.locator(tid('version-row')).evaluateAll((els) => els.map((e) => e.dataset.version));
    assert(shown.length === vers.length && vers.every((v) => shown.includes(v)), `versions table shows ${shown}, API ${vers}`);
    if (vers.length >= 2) {
      await page.check(`${tid('diff-from')}[data-version="${vers[0]}"]`);
      await page.check(`${tid('diff-to')}[data-version="${vers[1]}"]`);
      await page.click(tid('diff-submit'));
      const diff = diffCounts(await api(`/v1/diff?from=${seg(vers[0])}&to=${seg(vers[1])}&limit=50`));
      await visible(`${tid('diff-result')}[data-from="${vers[0]}"][data-to="${vers[1]}"]`);
      const add = Number(await page.getAttribute(tid('diff-added'), 'data-count'));
      const rem = Number(await page.getAttribute(tid('diff-removed'), 'data-count'));
      assert(add === diff.added && rem === diff.removed, `diff shows +${add} -${rem}, API +${diff.added} -${diff.removed}`);
    } else {
      console.log(`   note: ${args.dataset} has one version; no diff to check`);
    }
    // The page samples the newest version's records.
    const newest = [...vers].sort((a, b) => Number(a.split('@').pop()) - Number(b.split('@').pop())).pop();
    const recs = (await api(`/v1/datasets/${seg(newest.includes('@') ? newest : args.dataset + '@' + newest)}/records?limit=20`)).records || [];
    await visible(`${tid('records-sample')} ${tid('records-table')}`);
    const n = await page.locator(`${tid('records-sample')} ${tid('record-row')}`).count();
    assert(n === recs.length, `records sample has ${n} rows, API ${recs.length}`);
    await page.locator(tid('diff-panel')).scrollIntoViewIfNeeded();
    await shot('dataset-detail');
  });

  await check(`explain of ${args.record} shows its source`, async () => {
    const ex = await api(`/v1/records/${seg(args.record)}`);
    const want = explainSource(ex);
    assert(want, `API explain of ${args.record} names no source: ${JSON.stringify(ex).slice(0, 200)}`);
    await go('#/explain');
    await page.fill(tid('explain-input'), args.record);
    await page.click(tid('explain-submit'));
    const src = await visible(tid('explain-source'));
    const t = await src.innerText();
    for (const k of ['file', 'id']) {
      if (want[k] != null && typeof want[k] !== 'object') assert(t.includes(String(want[k])), `source panel lacks ${k} ${want[k]}: ${JSON.stringify(t)}`);
    }
    const h = await page.evaluate(() => location.hash);
    assert(h === `#/explain/${seg(args.record)}`, `explain did not land on #/explain/ID (hash ${h})`);
    await shot('explain');
  });

  await check('explain of an unknown record shows the API error in the banner', async () => {
    const bogus = `no-such-record-${Date.now()}`;
    await page.fill(tid('explain-input'), bogus);
    await page.click(tid('explain-submit'));
    const banner = await visible(tid('error-banner'));
    const st = await banner.getAttribute('data-status');
    assert(st === '404', `banner status ${st}, want 404: ${await banner.innerText()}`);
  });

  await check('queue page shows slots, held slots and queued runs', async () => {
    await go('#/queue');
    await visible(tid('queue-slots'));
    await visible(tid('held-table'));
    await visible(tid('queued-table'));
    await until(async () => {
      const q = await api('/v1/queue');
      const t = await text(tid('queue-slots'));
      return t === `${q.slots.used} / ${q.slots.total}` && (await page.locator(tid('held-row')).count()) === (q.held || []).length;
    }, async () => `queue shows ${await text(tid('queue-slots'))} and ${await page.locator(tid('held-row')).count()} held rows; API disagrees`);
    await shot('queue');
  });

  await check('workers page lists the workers', async () => {
    await go('#/workers');
    await visible(tid('workers-table'));
    const w = (await api('/v1/workers')).workers || [];
    await until(async () => (await page.locator(tid('worker-row')).count()) === w.length, async () => `workers table has ${await page.locator(tid('worker-row')).count()} rows, API ${w.length}`);
    await shot('workers');
  });

  await check('watches page renders (or shows the API error)', async () => {
    await go('#/watches');
    const res = await fetch(`${BASE}/v1/watches`, { headers: { Authorization: `Bearer ${TOKEN}` } });
    if (!res.ok) {
      // A server without watches: the page must say so in the banner, not stay blank.
      const banner = await visible(tid('error-banner'));
      const st = await banner.getAttribute('data-status');
      assert(st === String(res.status), `GET /v1/watches is ${res.status} but the banner says ${st}`);
      console.log(`   note: GET /v1/watches answered ${res.status}; checked that the page shows the error`);
      return;
    }
    await visible(tid('watches-table'));
    const w = (await res.json()).watches || [];
    await until(async () => (await page.locator(tid('watch-row')).count()) === w.length, async () => `watches table has ${await page.locator(tid('watch-row')).count()} rows, API ${w.length}`);
    await shot('watches');
  });

  await check('operators page renders', async () => {
    await go('#/ops');
    await visible(tid('ops-table'));
    const o = (await api('/v1/ops')).ops || [];
    await until(async () => (await page.locator(tid('op-row')).count()) === o.length, async () => `operators table has ${await page.locator(tid('op-row')).count()} rows, API ${o.length}`);
    await shot('ops');
  });

  await check('no script error and no request outside the server', async () => {
    assert(pageErrors.length === 0, `uncaught errors in the page: ${pageErrors.slice(0, 3).join(' | ')}`);
    assert(external.length === 0, `the page fetched outside ${BASE}: ${external.slice(0, 3).join(', ')}`);
  });
  await finish(0);
} catch (e) {
  console.error(`FAIL - ${current}: ${e && e.message || e}`);
  await finish(1);
}
