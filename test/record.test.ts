/** The per-turn record's contract: the writer refuses what is not a turn record,
 * and every reader (export, report, the CLI) reports a line that does not parse,
 * with its file and line, and still reads what earlier versions wrote. */
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TurnRecordSchema, type TurnRecord } from '../contracts/record.js';
import { TurnLog, TurnRecordError } from '../env/log.js';
import { exportDataset } from '../records/export.js';
import { eachTurnLog } from '../records/logs.js';
import { writeReport } from '../records/report.js';
import { episodeView } from '../records/stats.js';
import { PACKAGE_ROOT } from '../tasks/paths.js';
import { turnRecord } from './helpers.js';

const logText = (dir: string) =>
  readdirSync(dir)
    .map((f) => readFileSync(path.join(dir, f), 'utf8'))
    .join('');

t.test(
  'the writer refuses a record missing a field, or with a field of the wrong type, and writes nothing of it',
  async (t) => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'anvil-record-'));
    const log = new TurnLog(dir, 1024 ** 2);
    t.teardown(() => log.close());
    log.append(turnRecord(0));
    const before = logText(dir);
    t.same(JSON.parse(before), turnRecord(0), 'a whole record is written as given');
    const { feedback: _, ...noFeedback } = turnRecord(1);
    t.throws(
      () => log.append(noFeedback as TurnRecord),
      new TurnRecordError('feedback: Invalid input: expected string, received undefined'),
    );
    t.throws(() => log.append({ ...turnRecord(1), reward: Number.NaN }), TurnRecordError, 'NaN is not a reward');
    t.throws(() => log.append({ ...turnRecord(1), reason: 'bored' as TurnRecord['reason'] }), /reason/);
    t.throws(
      () => log.append({ ...turnRecord(1), extra: 1 } as TurnRecord),
      /Unrecognized key/,
      'a field the schema does not know',
    );
    t.equal(logText(dir), before, 'nothing of the refused records reached the file');
    t.ok(TurnRecordSchema.safeParse(JSON.parse(before)).success);
  },
);

/** Two log files: a good line, one without a reward, one with a bad stage list; then an
 * earlier version's line, a good line and a line that is not JSON. */
function writeLogsWithBadLines(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'anvil-record-logs-'));
  const { reward: _, ...noReward } = turnRecord(1);
  const badStages = { ...turnRecord(2), eval: { ...turnRecord(2).eval!, stages: 'fast' } };
  // An earlier version's line: no feedback, no token data, no policy version.
  const { feedback: _f, completionIds: _c, logprobs: _l, policyVersion: _p, ...old } = turnRecord(3, { turn: 2 });
  const lines = [turnRecord(0), noReward, badStages, old, turnRecord(1)].map((r) => JSON.stringify(r));
  writeFileSync(path.join(dir, 'turns-a-0001.jsonl'), lines.slice(0, 3).join('\n') + '\n');
  writeFileSync(path.join(dir, 'turns-a-0002.jsonl'), lines.slice(3).join('\n') + '\nnot json\n');
  return dir;
}

/** The lines of writeLogsWithBadLines that every reader must skip, with why. */
const expectedSkips = [
  { file: 'turns-a-0001.jsonl', line: 2, reason: /^not a turn record: reward: Invalid input/ },
  { file: 'turns-a-0001.jsonl', line: 3, reason: /^not a turn record: eval\.stages: Invalid input/ },
  { file: 'turns-a-0002.jsonl', line: 3, reason: /JSON/ },
];

async function exportSkipsBadLines(t: Test, dir: string, outDir: string): Promise<void> {
  const out = path.join(outDir, 'out.jsonl');
  const ex = await exportDataset({
    logs: dir,
    out,
    format: 'jsonl',
    gamma: 1,
    prsTau: 0.3,
    prsF: 0.1,
    filters: [],
    episodes: false,
  });
  t.match(ex.skipped, expectedSkips, 'export');
  t.same([ex.records, ex.rows], [3, 3]);
  const rows = readFileSync(out, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  t.same(
    rows.map((r) => [r.turn, r.policyVersion, r.completionIds]),
    [
      [0, null, null],
      [1, null, null],
      [2, null, null],
    ],
    "the old line's missing fields read as null",
  );
}

function cliReportSkipsBadLines(t: Test, dir: string, outDir: string): void {
  const cli = spawnSync(
    process.execPath,
    [
      path.join(PACKAGE_ROOT, 'dist', 'scripts', 'anvil.js'),
      'report',
      '--logs',
      dir,
      '--out',
      path.join(outDir, 'r.html'),
    ],
    { encoding: 'utf8' },
  );
  t.equal(cli.status, 0, cli.stderr);
  t.match(cli.stderr, /skipped turns-a-0001\.jsonl line 2: not a turn record: reward/);
  t.match(cli.stderr, /skipped turns-a-0001\.jsonl line 3: not a turn record: eval\.stages/);
}

t.test('a malformed line is reported with its file and line by every reader; the other lines are read', async (t) => {
  const dir = writeLogsWithBadLines();

  const read = await eachTurnLog(dir, () => undefined);
  t.equal(read.records, 3);
  t.match(read.skipped, expectedSkips);
  t.equal(read.skipped.length, 3);

  const outDir = mkdtempSync(path.join(os.tmpdir(), 'anvil-record-out-'));
  await exportSkipsBadLines(t, dir, outDir);

  const rep = await writeReport({ logs: dir, out: path.join(outDir, 'report.html') });
  t.match(rep.skipped, expectedSkips, 'report');
  t.equal(rep.records, 3);

  cliReportSkipsBadLines(t, dir, outDir);
});

t.test(
  "the episode view reads an earlier version's records: the feedback is the next turn's observation",
  async (t) => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'anvil-record-old-'));
    const old = [0, 1].map((turn) => {
      const { feedback: _, ...r } = turnRecord(turn);
      return r;
    });
    writeFileSync(path.join(dir, 'turns-old-0001.jsonl'), old.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const records: Parameters<typeof episodeView>[0][number][] = [];
    const read = await eachTurnLog(dir, (r) => records.push(r));
    t.same(read.skipped, []);
    const view = episodeView(records, 'ep1')!;
    t.same(
      view.turns.map((x) => x.feedback),
      ['FEEDBACK0', ''],
      'turn 0 from turn 1, the last turn has none',
    );
    t.equal(view.prompt, '[user]\nPROMPT');
  },
);
