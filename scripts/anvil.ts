#!/usr/bin/env node
/** The `anvil` command line. */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { AnvilError } from '../sandbox/errors.js';
import { localService } from '../sandbox/service.js';
import type { EvalResult } from '../sandbox/result.js';
import { MAX_SOURCE_BYTES } from '../sandbox/static-check.js';
import { getTask, loadTaskSet } from '../tasks/loader.js';
import { LogFolderError } from '../records/logs.js';
import { checked, evaluationSettings, fail, readConfig, UsageError } from './cli-common.js';
import { formatResult } from './format.js';

/** Each command's usage, shown by `anvil CMD --help` and after a usage error. */
const USAGES: Record<string, string> = {
  tasks: `tasks [--taskset ID] [--json]
      list the tasks of a task set (default builtin-c; also builtin-torch, kernelbench:PATH)`,
  eval: `eval --task ID (--candidate FILE | --reply FILE) [--json] [--seed N] [--taskset ID] [--config FILE] [--unsandboxed]
      evaluate one candidate and print its EvalResult (--config FILE: as for serve; its evaluation
      settings, eval for C and torch for the torch backend, apply)`,
  serve: `serve [--host H] [--port P] [--taskset ID] [--token T] [--log-dir DIR] [--config FILE] [--unsandboxed]
        [--redis redis://HOST:PORT [--device-kind K]]
      run the WebSocket gym server (with --redis, evaluate through the queue; torch jobs go to
      the workers of device kind K, default gpu). --config FILE: a JSON object of the settings
      in env/config.ts (limits, quotas, grace periods, fsync policy, pool size, and each
      backend's evaluation settings: eval for C, torch for the torch backend)`,
  worker: `worker --redis URL [--backend c|torch] [--gpus 0,1,…] [--device-kind K] [--concurrency N]
         [--lock-ms MS --stalled-ms MS --max-stalled N] [--connect-timeout-ms MS] [--config FILE] [--unsandboxed]
      take evaluation jobs from the queue (torch: one at a time per GPU; --config FILE: as for
      serve, its evaluation settings apply); exits if Redis does not
      answer within --connect-timeout-ms (default 10000); SIGTERM lets running jobs finish within
      the lease, then exits`,
  demo: `demo [--port P] [--log-dir DIR]
      start a server and play scripted episodes against it`,
  export: `export --logs DIR --out FILE [--format jsonl|parquet] [--gamma G] [--prs-tau T --prs-f F]
         [--filter correct|best|improved]... [--episodes] [--layout anvil|trl] [--per-token]
         [--ended-baseline exclude|zero]
      per-turn logs to a dataset with returns, TRLOO advantages and keep flags (streamed);
      --layout trl writes prompt/completion (TRL's conversational layout) for messages/action;
      --per-token adds tokenMask and tokenAdvantages from the logged completion token ids;
      --ended-baseline zero counts episodes that ended earlier (solved) as a return of 0 in later
      turns' baselines instead of leaving them out`,
  'eval-model': `eval-model --base-url URL --model NAME [--taskset ID] [--split eval|train] [--tasks a,b]
             [-n EPISODES] [-k SAMPLES] [--max-turns T] [--p 1,1.5] [--temperature X] [--max-tokens N]
             [--concurrency C] [--api-key KEY] [--out DIR]
      play EPISODES episodes per task (in groups of SAMPLES on one seed) against an
      OpenAI-compatible chat endpoint (POST URL/chat/completions; the key also from
      OPENAI_API_KEY); print correctness and fast_p per task (fast_p@k with -k > 1); write the
      turn logs, eval.json and report.html to DIR (default eval-<time>)`,
  report: `report --logs DIR [--out report.html]
      one self-contained HTML report of a run`,
};

const USAGE = `usage: anvil <command> [options]    (anvil <command> --help for one command)

commands:
${Object.values(USAGES)
  .map((u) => `  ${u}`)
  .join('\n')}
  help
      this text`;

const usageOf = (cmd: string) => `usage: anvil ${USAGES[cmd]}`;

async function cmdTasks(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { taskset: { type: 'string', default: 'builtin-c' }, json: { type: 'boolean' } },
  });
  const set = loadTaskSet(values.taskset!);
  const rows = [...set.tasks.values()].sort((a, b) => a.split.localeCompare(b.split) || a.id.localeCompare(b.id));
  if (values.json) {
    console.log(
      JSON.stringify(
        rows.map((t) => ({
          id: t.id,
          title: t.title,
          split: t.split,
          tags: t.tags,
          backend: t.backend,
          ...(t.backend === 'c' ? { signature: t.signature, libOps: t.libOps } : {}),
        })),
      ),
    );
    return;
  }
  console.log(`task set ${set.manifest.id} (${set.manifest.backend}): ${rows.length} tasks`);
  for (const t of rows)
    console.log(
      `  ${t.split.padEnd(5)}  ${t.id.padEnd(16)} ${t.title}${t.backend === 'c' ? `\n         ${t.signature}` : ''}`,
    );
}

async function cmdEval(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      task: { type: 'string' },
      candidate: { type: 'string' },
      reply: { type: 'string' },
      taskset: { type: 'string', default: 'builtin-c' },
      seed: { type: 'string', default: '0' },
      json: { type: 'boolean', default: false },
      config: { type: 'string' },
      unsandboxed: { type: 'boolean', default: false },
    },
  });
  if (!values.task) fail('eval needs --task ID');
  if (!values.candidate === !values.reply) fail('eval needs exactly one of --candidate FILE or --reply FILE');
  const file = (values.candidate ?? values.reply)!;
  if (!existsSync(file) || !statSync(file).isFile()) throw new AnvilError('file_not_found', `no such file: ${file}`);
  if (statSync(file).size > MAX_SOURCE_BYTES * 4)
    throw new AnvilError(
      'code_too_large',
      `${file} is ${statSync(file).size} bytes; candidates are limited to ${MAX_SOURCE_BYTES} bytes of code`,
    );
  const text = readFileSync(file, 'utf8');
  if (values.candidate && Buffer.byteLength(text) > MAX_SOURCE_BYTES)
    throw new AnvilError(
      'code_too_large',
      `${file} is ${Buffer.byteLength(text)} bytes; the limit is ${MAX_SOURCE_BYTES}`,
    );
  const task = getTask(loadTaskSet(values.taskset!), values.task);
  const evaluator = localService(task.backend, {
    poolSize: 1,
    ...evaluationSettings(values.config, values.unsandboxed),
  });
  let result: EvalResult;
  try {
    const onProgress = values.json ? undefined : (stage: string) => process.stderr.write(`… ${stage}\n`);
    result = await evaluator.evaluate(
      { task, seed: values.seed, ...(values.candidate ? { code: text } : { reply: text }) },
      { onProgress },
    );
  } finally {
    await evaluator.close();
  }
  if (values.json) process.stdout.write(`${JSON.stringify(result)}\n`);
  else process.stdout.write(formatResult(result));
}

async function cmdServe(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      host: { type: 'string' },
      port: { type: 'string' },
      taskset: { type: 'string' },
      token: { type: 'string' },
      'log-dir': { type: 'string' },
      config: { type: 'string' },
      unsandboxed: { type: 'boolean' },
      redis: { type: 'string' },
      'device-kind': { type: 'string' },
    },
  });
  const fromFile = readConfig(values.config);
  const opts = {
    ...fromFile,
    ...(values.host ? { host: values.host } : {}),
    ...(values.port ? { port: Number(values.port) } : {}),
    ...(values.taskset ? { taskset: values.taskset } : {}),
    ...(values.token ? { token: values.token } : {}),
    ...(values['log-dir'] ? { logDir: values['log-dir'] } : {}),
    ...(values.unsandboxed ? { allowUnsandboxed: true } : {}),
    ...(values.redis ? { redis: values.redis } : {}),
    ...(values['device-kind'] ? { deviceKind: values['device-kind'] } : {}),
  };
  const { AnvilServer } = await import('../env/server.js');
  const server = checked(() => new AnvilServer(opts));
  const address = await server.listen();
  const via = server.config.redis
    ? `evaluating through the queue at ${server.config.redis}`
    : `sandbox ${server.evaluator.mode}`;
  console.log(
    `anvil serving ${server.config.taskset} at ${address.replace(/^http/, 'ws')}/v1/ws (${via}); logs in ${server.log.dir}`,
  );
  const stop = async () => {
    console.log('anvil: shutting down');
    await server.close();
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  await new Promise(() => undefined);
}

/** A progress bar on stderr when it is a terminal; nothing otherwise. */
function progressBar(): ((read: number, total: number) => void) | undefined {
  if (!process.stderr.isTTY) return undefined;
  return (read, total) => {
    const frac = total ? read / total : 1;
    const width = 30;
    process.stderr.write(
      `\rreading logs [${'#'.repeat(Math.round(frac * width)).padEnd(width)}] ${(100 * frac).toFixed(0)}% of ${(total / 1024 ** 2).toFixed(1)} MiB`,
    );
  };
}

/** Runs a command that reads a folder of logs: a progress bar on a terminal,
 * a missing or empty folder as a typed error, every skipped line reported. */
async function overLogs<R extends { skipped: Array<{ file: string; line: number; reason: string }> }>(
  command: string,
  run: (onProgress?: (read: number, total: number) => void) => Promise<R>,
): Promise<R> {
  const onProgress = progressBar();
  let r: R;
  try {
    r = await run(onProgress);
  } catch (e) {
    if (e instanceof LogFolderError) throw new AnvilError('file_not_found', e.message);
    throw e;
  }
  if (onProgress) process.stderr.write('\n');
  for (const s of r.skipped) console.error(`anvil ${command}: skipped ${s.file} line ${s.line}: ${s.reason}`);
  return r;
}

async function cmdReport(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { logs: { type: 'string' }, out: { type: 'string', default: 'report.html' } },
  });
  if (!values.logs) fail('report needs --logs DIR');
  const { writeReport } = await import('../records/report.js');
  const r = await overLogs('report', (onProgress) => writeReport({ logs: values.logs!, out: values.out!, onProgress }));
  console.log(
    `read ${r.records} turn records from ${r.files} files (${r.episodes} episodes); wrote ${values.out} (${(r.bytes / 1024).toFixed(0)} KiB, self-contained)`,
  );
}

async function cmdExport(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      logs: { type: 'string' },
      out: { type: 'string' },
      format: { type: 'string' },
      gamma: { type: 'string', default: '1' },
      'prs-tau': { type: 'string', default: '0.3' },
      'prs-f': { type: 'string', default: '0.1' },
      filter: { type: 'string', multiple: true, default: [] },
      episodes: { type: 'boolean', default: false },
      layout: { type: 'string', default: 'anvil' },
      'per-token': { type: 'boolean', default: false },
      'ended-baseline': { type: 'string', default: 'exclude' },
    },
  });
  if (!values.logs || !values.out) fail('export needs --logs DIR and --out FILE');
  if (values.layout !== 'anvil' && values.layout !== 'trl') fail(`--layout is anvil or trl, not ${values.layout}`);
  const endedBaseline = values['ended-baseline'];
  if (endedBaseline !== 'exclude' && endedBaseline !== 'zero')
    fail(`--ended-baseline is exclude or zero, not ${endedBaseline}`);
  // Loaded here, not at start-up: only export needs Arrow and Parquet.
  const { exportDataset, FILTERS } = await import('../records/export.js');
  const format = values.format ?? (values.out.endsWith('.parquet') ? 'parquet' : 'jsonl');
  if (format !== 'jsonl' && format !== 'parquet') fail(`--format is jsonl or parquet, not ${format}`);
  const num = (name: string, v: string, lo: number, hi: number) => {
    const x = Number(v);
    if (!Number.isFinite(x) || x < lo || x > hi) fail(`--${name} must be a number in [${lo}, ${hi}]`);
    return x;
  };
  const filters = values.filter!.map((f) => {
    if (!(FILTERS as readonly string[]).includes(f)) fail(`unknown --filter ${f}; known: ${FILTERS.join(', ')}`);
    return f as (typeof FILTERS)[number];
  });
  const options = {
    logs: values.logs,
    out: values.out,
    format,
    gamma: num('gamma', values.gamma!, 0, 1),
    prsTau: num('prs-tau', values['prs-tau']!, 0, 1),
    prsF: num('prs-f', values['prs-f']!, 1e-9, 1),
    filters,
    episodes: values.episodes!,
    layout: values.layout,
    perToken: values['per-token']!,
    endedBaseline,
  } as const;
  const report = await overLogs('export', (onProgress) => exportDataset({ ...options, onProgress }));
  console.log(
    `read ${report.records} turn records from ${report.files} files (${report.skipped.length} lines skipped); ` +
      `${report.groups} groups, ${report.episodes} episodes; wrote ${report.rows} rows to ${report.written.join(' and ')}`,
  );
  if (report.singletonGroups > 0)
    console.error(
      `anvil export: warning: ${report.singletonGroups} of ${report.groups} groups hold one episode: their advantage is the raw return (no baseline). ` +
        'Give the episodes of one prompt the same group (reset with group.size, or the same group id).',
    );
}

async function cmdDemo(argv: string[]): Promise<void> {
  const { runDemo } = await import('./demo.js');
  await runDemo(argv);
}

const COMMANDS: Record<string, (argv: string[]) => Promise<void>> = {
  tasks: cmdTasks,
  eval: cmdEval,
  demo: cmdDemo,
  serve: cmdServe,
  worker: async (argv) => (await import('./worker-command.js')).cmdWorker(argv),
  export: cmdExport,
  report: cmdReport,
  'eval-model': cmdEvalModel,
};

async function cmdEvalModel(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      'base-url': { type: 'string' },
      model: { type: 'string' },
      'api-key': { type: 'string' },
      taskset: { type: 'string', default: 'builtin-c' },
      split: { type: 'string', default: 'eval' },
      tasks: { type: 'string' },
      n: { type: 'string', short: 'n', default: '4' },
      k: { type: 'string', short: 'k', default: '1' },
      'max-turns': { type: 'string' },
      p: { type: 'string', default: '1' },
      temperature: { type: 'string', default: '0.7' },
      'max-tokens': { type: 'string', default: '4096' },
      concurrency: { type: 'string', default: '8' },
      out: { type: 'string' },
    },
  });
  if (!values['base-url'] || !values.model) fail('eval-model needs --base-url URL and --model NAME');
  if (values.split !== 'eval' && values.split !== 'train') fail(`--split is eval or train, not ${values.split}`);
  const int = (name: string, v: string | undefined) => {
    const x = Number(v);
    if (!Number.isInteger(x) || x < 1) fail(`--${name} takes a positive integer, not ${v}`);
    return x;
  };
  const p = values.p!.split(',').map(Number);
  if (p.some((x) => !Number.isFinite(x) || x < 0)) fail(`--p takes thresholds like 1,1.5, not ${values.p}`);
  const temperature = Number(values.temperature);
  if (!Number.isFinite(temperature) || temperature < 0)
    fail(`--temperature takes a number ≥ 0, not ${values.temperature}`);
  const { runEvalModel, formatScores } = await import('./eval-model.js');
  const samples = int('k', values.k);
  const r = await runEvalModel({
    baseUrl: values['base-url'],
    model: values.model,
    apiKey: values['api-key'] ?? process.env.OPENAI_API_KEY,
    taskset: values.taskset!,
    split: values.split,
    tasks: values.tasks ? values.tasks.split(',') : undefined,
    episodes: int('n', values.n),
    samples,
    maxTurns: values['max-turns'] === undefined ? undefined : int('max-turns', values['max-turns']),
    temperature,
    maxTokens: int('max-tokens', values['max-tokens']),
    p,
    concurrency: int('concurrency', values.concurrency),
    out: values.out ?? `eval-${new Date().toISOString().replace(/[:.]/g, '-')}`,
    requestTimeoutMs: 600_000,
  });
  console.log(formatScores(r.tasks, samples));
  console.log(`wrote ${r.written.join(', ')}`);
}

async function main(): Promise<number> {
  const [cmd, ...rest] = process.argv.slice(2);
  try {
    if (cmd === undefined || cmd === 'help' || cmd === '--help' || cmd === '-h') {
      console.log(USAGE);
      return cmd ? 0 : 2;
    }
    const run = COMMANDS[cmd];
    if (!run) fail(`unknown command "${cmd}"`);
    if (rest.includes('--help') || rest.includes('-h')) {
      console.log(usageOf(cmd));
      return 0;
    }
    await run(rest);
    return 0;
  } catch (e) {
    // Usage errors: one line, then the usage; never a stack trace.
    if (e instanceof UsageError || String((e as { code?: string }).code).startsWith('ERR_PARSE_ARGS')) {
      console.error(`anvil: ${(e as Error).message.split('\n')[0]}\n\n${cmd && USAGES[cmd] ? usageOf(cmd) : USAGE}`);
      return 2;
    }
    if (e instanceof AnvilError) {
      console.error(`anvil: error [${e.code}]: ${e.message}`);
      return 1;
    }
    console.error(
      `anvil: internal error: ${(e as Error).message ?? e}${process.env.ANVIL_DEBUG ? `\n${(e as Error).stack}` : ' (ANVIL_DEBUG=1 shows the stack)'}`,
    );
    return 1;
  }
}

process.exitCode = await main();
