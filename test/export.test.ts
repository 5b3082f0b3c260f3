/** `anvil export` on logs with groups, masked turns, a crash's torn last line:
 * the rows, the TRLOO values, the conversation, filters, Parquet, determinism. */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parquetMetadata, parquetReadObjects } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { exportDataset, type ExportOptions } from '../records/export.js';
import { PACKAGE_ROOT } from '../tasks/paths.js';

const sys = { role: 'system', content: 'SYS' };
const prompt = { role: 'user', content: 'PROMPT' };
let clock = 0;
function rec(
  group: string,
  episode: string,
  turn: number,
  reward: number,
  o: { mask?: boolean; outcome?: string; share?: number; feedbackBefore?: string } = {},
) {
  const outcome = o.outcome ?? (reward > 0 ? 'ok' : 'wrong_result');
  return {
    run: 'r',
    time: new Date(1_800_000_000_000 + clock++ * 1000).toISOString(),
    episode,
    group,
    index: episode.charCodeAt(episode.length - 1) % 4,
    task: 'sgemm',
    taskVersion: 1,
    seed: 42,
    turn,
    observation: {
      messages: turn === 0 ? [sys, prompt] : [{ role: 'user', content: o.feedbackBefore ?? `FEEDBACK${turn - 1}` }],
    },
    action: `ACTION ${episode} ${turn}${o.mask ? ' (masked)' : ''}`,
    meta: { tokens: [turn] },
    eval: o.mask
      ? null
      : { outcome, correct: outcome === 'ok', speedup: outcome === 'ok' ? reward : null, profileShare: o.share ?? 1 },
    reward,
    components: o.mask ? {} : { correct: reward > 0 ? 0.5 : 0 },
    terminated: false,
    truncated: false,
    reason: o.mask ? 'env_error' : null,
    mask: o.mask ?? false,
  };
}

function logs(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'anvil-export-'));
  // Group g: a has two turns (0 then 2), b one turn with a masked attempt first, c a failure.
  const one = [rec('g', 'a', 0, 0), rec('g', 'b', 0, 9, { mask: true }), rec('g', 'b', 0, 1), rec('g', 'c', 0, 0)];
  const two = [rec('g', 'a', 1, 2), rec('h', 'z', 0, 3)];
  writeFileSync(path.join(dir, 'turns-1-0001.jsonl'), one.map((r) => JSON.stringify(r)).join('\n') + '\n');
  writeFileSync(path.join(dir, 'turns-2-0001.jsonl'), two.map((r) => JSON.stringify(r)).join('\n') + '\n');
  appendFileSync(path.join(dir, 'turns-2-0001.jsonl'), JSON.stringify(rec('h', 'z', 1, 1)).slice(0, 50)); // killed mid-write
  return dir;
}

const opts = (dir: string, out: string, more: Partial<ExportOptions> = {}): ExportOptions => ({
  logs: dir,
  out,
  format: 'jsonl',
  gamma: 1,
  prsTau: 0.3,
  prsF: 0.1,
  filters: [],
  episodes: false,
  ...more,
});
const readJsonl = (f: string) =>
  readFileSync(f, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));

t.test('turn rows: fields, returns, advantages, masks, conversations; a torn line skipped and reported', async (t) => {
  const dir = logs();
  const out = path.join(mkdtempSync(path.join(os.tmpdir(), 'anvil-export-out-')), 'out.jsonl');
  const report = await exportDataset(opts(dir, out, { episodes: true }));
  t.equal(report.skipped.length, 1);
  t.equal(report.skipped[0]!.file, 'turns-2-0001.jsonl');
  const rows = readJsonl(out);
  t.equal(rows.length, 6);
  t.same(Object.keys(rows[0]), [
    'task',
    'taskVersion',
    'seed',
    'group',
    'index',
    'episode',
    'turn',
    'messages',
    'action',
    'reward',
    'components',
    'return',
    'advantage',
    'mask',
    'keep',
    'meta',
    'outcome',
    'speedup',
    'policyVersion',
    'completionIds',
    'logprobs',
  ]);
  t.same([rows[0].taskVersion, rows[0].seed], [1, 42]);
  t.equal(report.singletonGroups, 1, 'group h holds one episode');
  const by = (ep: string, turn: number, masked = false) =>
    rows.find((r) => r.episode === ep && r.turn === turn && r.mask === masked)!;
  // Group g, turn 0: G(a) = 0 + 2 = 2, G(b) = 1, G(c) = 0 → A(a) = 2 − 0.5, A(b) = 1 − 1, A(c) = 0 − 1.5
  t.equal(by('a', 0).return, 2);
  t.equal(by('a', 0).advantage, 1.5);
  t.equal(by('b', 0).advantage, 0);
  t.equal(by('c', 0).advantage, -1.5);
  t.equal(by('a', 1).advantage, 2, 'alone at turn 1: A = G');
  t.equal(by('z', 0).advantage, 3, 'a group of one');
  const masked = by('b', 0, true);
  t.same([masked.return, masked.advantage, masked.keep], [null, null, false]);
  t.same(by('a', 1).messages, [
    sys,
    prompt,
    { role: 'assistant', content: 'ACTION a 0' },
    { role: 'user', content: 'FEEDBACK0' },
  ]);
  t.same(JSON.parse(by('a', 1).meta), { tokens: [1] }, 'JSON columns are JSON text, as in Parquet');
  const eps = readJsonl(out.replace('.jsonl', '.episodes.jsonl'));
  t.equal(eps.length, 4);
  t.equal(eps.find((e) => e.episode === 'a').messages.length, 5);
});

t.test('filters: correct turns, the best turn per episode, improving episodes', async (t) => {
  const dir = logs();
  const outDir = mkdtempSync(path.join(os.tmpdir(), 'anvil-export-out-'));
  const run = async (filters: ExportOptions['filters']) => {
    const out = path.join(outDir, `f-${filters.join('-')}.jsonl`);
    await exportDataset(opts(dir, out, { filters }));
    return readJsonl(out).map((r) => `${r.episode}${r.turn}`);
  };
  t.same(await run(['correct']), ['a1', 'b0', 'z0']);
  t.same(await run(['best']), ['a1', 'b0', 'c0', 'z0']);
  t.same(await run(['improved']), ['a0', 'a1']);
});

t.test('Parquet that an independent reader loads as it is; the same logs give the same bytes', async (t) => {
  const dir = logs();
  const outDir = mkdtempSync(path.join(os.tmpdir(), 'anvil-export-out-'));
  const a = path.join(outDir, 'a.parquet');
  const b = path.join(outDir, 'b.parquet');
  await exportDataset(opts(dir, a, { format: 'parquet' }));
  await exportDataset(opts(dir, b, { format: 'parquet' }));
  t.same(readFileSync(a), readFileSync(b));
  const buf = readFileSync(a);
  const rows = await parquetReadObjects({
    file: buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length),
    compressors,
  });
  t.equal(rows.length, 6);
  const a1 = rows.find((r) => r.episode === 'a' && r.turn === 1)!;
  t.equal(a1.advantage, 2);
  t.same(a1.messages[3], { role: 'user', content: 'FEEDBACK0' });
  t.same(JSON.parse(a1.meta as string), { tokens: [1] });
  const j1 = path.join(outDir, 'j1.jsonl');
  const j2 = path.join(outDir, 'j2.jsonl');
  await exportDataset(opts(dir, j1));
  await exportDataset(opts(dir, j2));
  t.equal(readFileSync(j1, 'utf8'), readFileSync(j2, 'utf8'));
});

t.test('the CLI: a clear error for a folder with no logs, a report otherwise', async (t) => {
  const cli = path.join(PACKAGE_ROOT, 'dist', 'scripts', 'anvil.js');
  const empty = mkdtempSync(path.join(os.tmpdir(), 'anvil-empty-'));
  const r = spawnSync(process.execPath, [cli, 'export', '--logs', empty, '--out', path.join(empty, 'x.jsonl')], {
    encoding: 'utf8',
  });
  t.equal(r.status, 1);
  t.match(r.stderr, /holds no per-turn logs/);
  const dir = logs();
  const ok = spawnSync(
    process.execPath,
    [cli, 'export', '--logs', dir, '--out', path.join(dir, 'x.parquet'), '--gamma', '0.9'],
    { encoding: 'utf8' },
  );
  t.equal(ok.status, 0, ok.stderr);
  t.match(ok.stderr, /skipped turns-2-0001\.jsonl line 3/);
  t.match(ok.stderr, /warning: 1 of 2 groups hold one episode/);
  t.match(ok.stdout, /read 6 turn records from 2 files \(1 lines skipped\); 2 groups, 4 episodes; wrote 6 rows/);
  const bad = spawnSync(process.execPath, [cli, 'export', '--logs', dir, '--out', 'x.jsonl', '--filter', 'shiny'], {
    encoding: 'utf8',
  });
  t.equal(bad.status, 2);
});

t.test(
  'streamed in partitions: the same bytes whatever the partition size; many row groups read back whole',
  async (t) => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'anvil-export-big-'));
    const lines: string[] = [];
    // 9,000 turns: 1,000 groups of 3 episodes of 3 turns, interleaved in time as a server writes them.
    for (let turn = 0; turn < 3; turn++)
      for (let g = 0; g < 1000; g++)
        for (let e = 0; e < 3; e++)
          lines.push(
            JSON.stringify(
              rec(`g${g}`, `g${g}e${e}`, turn, (g + e + turn) % 4, { mask: (g + e) % 50 === 0 && turn === 1 }),
            ),
          );
    writeFileSync(path.join(dir, 'turns-1-0001.jsonl'), lines.join('\n') + '\n');
    const outDir = mkdtempSync(path.join(os.tmpdir(), 'anvil-export-out-'));
    for (const format of ['jsonl', 'parquet'] as const) {
      const one = path.join(outDir, `one.${format}`);
      const many = path.join(outDir, `many.${format}`);
      const a = await exportDataset(opts(dir, one, { format, episodes: true }));
      const b = await exportDataset(opts(dir, many, { format, episodes: true, partitionBytes: 64 * 1024 }));
      t.same(
        b,
        { ...a, written: [many, many.replace(`.${format}`, `.episodes.${format}`)] },
        `${format}: the same counts`,
      );
      t.same(
        readFileSync(many),
        readFileSync(one),
        `${format}: the same bytes with ${Math.ceil(lines.join('\n').length / 65536)} partitions`,
      );
      t.same(
        readFileSync(many.replace(`.${format}`, `.episodes.${format}`)),
        readFileSync(one.replace(`.${format}`, `.episodes.${format}`)),
        `${format}: episodes too`,
      );
    }
    const buf = readFileSync(path.join(outDir, 'many.parquet'));
    const rows = await parquetReadObjects({
      file: buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length),
      compressors,
    });
    t.equal(rows.length, 9000, 'two row groups (8,192 rows each at most), every row');
    const keys = rows.map((r) => `${r.group} ${r.episode} ${r.turn}`);
    t.same(
      keys,
      [...keys].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0)),
      'in (group, episode, turn) order',
    );
    const masked = rows.filter((r) => r.mask);
    t.ok(masked.length > 0 && masked.every((r) => r.advantage === null), 'masked rows carry no advantage');
  },
);

t.test('JSON Lines and Parquet hold the same values with the same types; Parquet is zstd', async (t) => {
  const dir = logs();
  const outDir = mkdtempSync(path.join(os.tmpdir(), 'anvil-export-out-'));
  const tokens = (r: ReturnType<typeof rec>) => ({
    ...r,
    completionIds: [r.turn, 7],
    logprobs: [-0.5, -0.25],
    policyVersion: 'step-3',
  });
  writeFileSync(
    path.join(dir, 'turns-3-0001.jsonl'),
    [rec('k', 'k1', 0, 1), rec('k', 'k2', 0, 0)].map((r) => JSON.stringify(tokens(r))).join('\n') + '\n',
  );
  for (const more of [{}, { layout: 'trl' as const, perToken: true }]) {
    const j = path.join(outDir, 'x.jsonl');
    const p = path.join(outDir, 'x.parquet');
    await exportDataset(opts(dir, j, more));
    await exportDataset(opts(dir, p, { ...more, format: 'parquet' }));
    const buf = readFileSync(p);
    const file = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length);
    const fromParquet = await parquetReadObjects({ file, compressors });
    const fromJsonl = readJsonl(j);
    t.equal(fromParquet.length, fromJsonl.length);
    for (const [i, row] of fromJsonl.entries()) {
      const q = fromParquet[i]!;
      t.same(Object.keys(q), Object.keys(row), 'the same columns in the same order');
      for (const k of Object.keys(row)) t.same(q[k], row[k], `${k}: the same value and type`);
    }
    const meta = parquetMetadata(file);
    t.ok(
      meta.row_groups[0]!.columns.every((c) => c.meta_data?.codec === 'ZSTD'),
      'every column chunk is zstd',
    );
    const k1 = fromJsonl.find((r) => r.episode === 'k1')!;
    t.same(
      [k1.completionIds, k1.logprobs, k1.policyVersion],
      [[0, 7], [-0.5, -0.25], 'step-3'],
      'token data and the policy version are exported',
    );
    if (more.layout === 'trl') {
      t.notOk('messages' in k1 || 'action' in k1);
      t.same(k1.prompt, [sys, prompt]);
      t.same(k1.completion, [{ role: 'assistant', content: 'ACTION k1 0' }]);
      t.same(k1.tokenMask, [1, 1]);
      t.same(k1.tokenAdvantages, [1, 1], 'the turn advantage on each of its tokens');
      t.equal(fromJsonl.find((r) => r.episode === 'a')!.tokenMask, null, 'no tokens logged: no per-token values');
    }
  }
});

t.test('the ended-episode baseline: excluded by default, or counted as a return of 0', async (t) => {
  // Group s: e1 is solved at turn 0 and stops; e2 and e3 play two turns.
  const dir = mkdtempSync(path.join(os.tmpdir(), 'anvil-export-ended-'));
  const rs = [
    rec('s', 'e1', 0, 4),
    rec('s', 'e2', 0, 0),
    rec('s', 'e3', 0, 0),
    rec('s', 'e2', 1, 2),
    rec('s', 'e3', 1, 0),
  ];
  writeFileSync(path.join(dir, 'turns-1-0001.jsonl'), rs.map((r) => JSON.stringify(r)).join('\n') + '\n');
  const outDir = mkdtempSync(path.join(os.tmpdir(), 'anvil-export-out-'));
  const adv = async (endedBaseline?: 'zero' | 'exclude') => {
    const out = path.join(outDir, `${endedBaseline}.jsonl`);
    await exportDataset(opts(dir, out, { endedBaseline }));
    return Object.fromEntries(readJsonl(out).map((r) => [`${r.episode}/${r.turn}`, r.advantage]));
  };
  const exclude = await adv();
  t.same(exclude, await adv('exclude'));
  t.equal(exclude['e2/1'], 2, 'turn 1 without e1: baseline mean(e3) = 0');
  const zero = await adv('zero');
  t.equal(zero['e2/1'], 2 - (0 + 0) / 2, 'turn 1 with e1 ended (0) and e3 (0)');
  t.equal(zero['e3/1'], 0 - (2 + 0) / 2, 'e3 at turn 1: baseline over e2 (2) and the ended e1 (0)');
  t.equal(zero['e1/0'], exclude['e1/0'], 'turn 0 is the same: every episode played it');
});
