/** The dashboard of a live server and the offline report, in headless Chromium
 * (Debian's, driven by playwright-core). UPDATE_SCREENSHOTS=1 writes the
 * screenshots under docs/. */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { PACKAGE_ROOT } from '../tasks/paths.js';
import { GOOD_VECTOR_ADD, startServer, Wire } from './wire.js';

const shots = process.env.UPDATE_SCREENSHOTS
  ? path.join(PACKAGE_ROOT, 'docs')
  : mkdtempSync(path.join(os.tmpdir(), 'anvil-shots-'));
const HACK =
  '```c\n#include "anvil_lib.h"\nvoid solve(const float *A, const float *B, const float *bias, float *C, int M, int N, int K) {\n  lib_sgemm(A, B, C, M, N, K);\n  lib_add_bias(C, bias, M, N);\n  lib_relu(C, M * N);\n}\n```';
const BETTER = GOOD_VECTOR_ADD.replace('for (int i', '#pragma omp parallel for simd\n  for (int i');

let browser: Browser;
t.before(async () => {
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
});
t.teardown(() => browser?.close());

async function page(url: string): Promise<{ p: Page; errors: string[] }> {
  const p = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  const errors: string[] = [];
  p.on('pageerror', (e) => errors.push(e.message));
  await p.goto(url);
  return { p, errors };
}

const { server, url, logDir } = await startServer({ token: 'dash' });
t.teardown(() => server.close());
const http = url.replace('ws://', 'http://').replace('/v1/ws', '');

t.test('the live dashboard shows charts, workers, and an episode turn by turn', async (t) => {
  const w = await Wire.open(url);
  t.teardown(() => w.close());
  await w.call({ id: 1, op: 'hello', protocol: 1, token: 'dash' });
  const [a] = (await w.call({ id: 2, op: 'reset', task: 'vector_add', seed: 3 })).episodes;
  const [h] = (await w.call({ id: 3, op: 'reset', task: 'gemm_bias_relu', seed: 3 })).episodes;
  await w.call({ id: 4, op: 'step', episode: a.episode, action: 'Let me think about it.' });
  await w.call({ id: 5, op: 'step', episode: a.episode, action: GOOD_VECTOR_ADD });
  await w.call({ id: 6, op: 'step', episode: a.episode, action: BETTER });
  await w.call({ id: 7, op: 'step', episode: h.episode, action: HACK });

  const denied = await fetch(`${http}/`);
  t.equal(denied.status, 401, 'behind the token');
  const { p, errors } = await page(`${http}/?token=dash`);
  await p.waitForSelector('#recent tr.click');
  t.ok((await p.locator('#timeline svg .bar').count()) > 0, 'outcome mix over time has bars');
  t.ok((await p.locator('#rewards svg .bar').count()) > 0, 'reward distribution has bars');
  t.ok((await p.locator('#speedups svg .bar').count()) > 0, 'speedup distribution has bars');
  t.match(await p.locator('#flags').innerText(), /library_offload/);
  t.match(await p.locator('#workers').innerText(), /timing device/);
  t.match(await p.locator('#status').innerText(), /open episodes/);
  t.match(await p.locator('#stages').innerText(), /timing/);
  await p.screenshot({ path: path.join(shots, 'dashboard.png'), fullPage: true });
  // Live: a new step appears without a reload.
  const before = await p.locator('#status').innerText();
  await w.call({ id: 8, op: 'step', episode: h.episode, action: 'no code' });
  await p.waitForFunction((b) => document.getElementById('status')!.innerText !== b, before, { timeout: 10_000 });
  t.pass('updated in place');
  await p.locator(`#recent tr.click[data-episode="${a.episode}"]`).click();
  await p.waitForSelector('#episode.open .turn');
  t.equal(await p.locator('#episode .turn').count(), 3);
  t.match(await p.locator('#episode pre.code').nth(1).innerText(), /void solve/);
  t.ok((await p.locator('#episode pre.code .kw').count()) > 0, 'code highlighted');
  t.ok((await p.locator('#episode .turn').nth(2).locator('.add').count()) > 0, 'changes from the previous turn marked');
  t.match(await p.locator('#episode pre.feedback').nth(1).innerText(), /Result: no code found/);
  await p.screenshot({ path: path.join(shots, 'dashboard-episode.png') });
  t.same(errors, []);
});

t.test('the offline report of the run opens without a network and shows its charts', async (t) => {
  const out = path.join(mkdtempSync(path.join(os.tmpdir(), 'anvil-report-')), 'report.html');
  const r = spawnSync(
    process.execPath,
    [path.join(PACKAGE_ROOT, 'dist', 'scripts', 'anvil.js'), 'report', '--logs', logDir, '--out', out],
    { encoding: 'utf8' },
  );
  t.equal(r.status, 0, r.stderr);
  const { p, errors } = await page(`file://${out}`);
  const requests: string[] = [];
  p.on('request', (q) => requests.push(q.url()));
  await p.reload();
  await p.waitForSelector('#recent tr.click');
  t.same(
    requests.filter((u) => !u.startsWith('file://')),
    [],
    'nothing fetched from a network',
  );
  t.ok((await p.locator('#timeline svg .bar').count()) > 0);
  t.ok((await p.locator('#perturn svg .bar').count()) > 0);
  t.match(await p.locator('#fastp').innerText(), /builtin-c/);
  t.match(await p.locator('#best').innerText(), /vector_add/);
  t.match(await p.locator('#flags').innerText(), /library_offload/);
  t.match(await p.locator('#slowest').innerText(), /timing|compile/);
  await p.screenshot({ path: path.join(shots, 'report.png'), fullPage: true });
  await p.locator('#best a[data-episode]').first().click();
  await p.waitForSelector('#episode.open .turn');
  t.match(await p.locator('#episode').innerText(), /void solve/);
  t.same(errors, []);
});
