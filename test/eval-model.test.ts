/** `anvil eval-model` as a user runs it, against an OpenAI-compatible endpoint started here: a
 * scripted "model" that writes a correct vector_add and nothing useful for saxpy. */
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { PACKAGE_ROOT } from '../tasks/paths.js';
import { GOOD_VECTOR_ADD } from './wire.js';

const CLI = path.join(PACKAGE_ROOT, 'dist', 'scripts', 'anvil.js');

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    // Without tap's loader hooks (NODE_OPTIONS): under them, a child that loads ES modules lazily can
    // crash in node's require(esm) (a fatal IsGraphAsync error seen under load), which is not the CLI's doing.
    const env = { ...process.env };
    delete env.NODE_OPTIONS;
    const p = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const body = (req: IncomingMessage) =>
  new Promise<string>((r) => {
    let s = '';
    req.on('data', (d) => (s += d));
    req.on('end', () => r(s));
  });

type ModelRequest = { auth?: string; body: { model: string; messages: Array<{ role: string; content: string }> } };
interface ScriptedModel {
  port: number;
  requests: ModelRequest[];
  /** The next request is answered 500. */
  failNext(): void;
}

/** The scripted "model" behind an OpenAI-compatible chat-completions endpoint. */
async function scriptedModel(t: Test): Promise<ScriptedModel> {
  const requests: ModelRequest[] = [];
  let failNext = false;
  const endpoint = createServer(async (req, res) => {
    const b = JSON.parse(await body(req));
    requests.push({ auth: req.headers.authorization, body: b });
    if (req.url !== '/v1/chat/completions') return res.writeHead(404).end();
    if (failNext) {
      failNext = false;
      return res.writeHead(500).end('overloaded');
    }
    const task = b.messages.find((m: { role: string }) => m.role === 'user').content as string;
    const content = task.includes('`vector_add`') ? `Here it is:\n${GOOD_VECTOR_ADD}` : 'I am not sure how to do that.';
    res.writeHead(200, { 'content-type': 'application/json' }).end(
      JSON.stringify({
        id: 'x',
        object: 'chat.completion',
        choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
      }),
    );
  });
  await new Promise<void>((r) => endpoint.listen(0, '127.0.0.1', r));
  t.teardown(() => endpoint.close());
  return { port: (endpoint.address() as { port: number }).port, requests, failNext: () => (failNext = true) };
}

t.test('eval-model plays episodes against an OpenAI-compatible endpoint and scores each task', async (t) => {
  const model = await scriptedModel(t);
  const out = path.join(mkdtempSync(path.join(os.tmpdir(), 'anvil-eval-model-')), 'run');
  await playsAndScores(t, model, out);
  await endpointFailureIsLeftOut(t, model, out);

  const bad = await run(['eval-model', '--model', 'x']);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /needs --base-url/);
});

async function playsAndScores(t: Test, model: ScriptedModel, out: string): Promise<void> {
  const { port, requests } = model;
  const r = await run([
    'eval-model',
    '--base-url',
    `http://127.0.0.1:${port}/v1`,
    '--model',
    'scripted-1',
    '--api-key',
    'k3y',
    '--split',
    'train',
    '--tasks',
    'vector_add,saxpy',
    '-n',
    '4',
    '-k',
    '2',
    '--max-turns',
    '2',
    '--p',
    '0',
    '--out',
    out,
  ]);
  t.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  t.match(lines[0], /^task\s+episodes\s+errors\s+correct\s+fast_0\s+fast_0@2$/);
  t.match(r.stdout, /^vector_add\s+4\s+0\s+1\.00\s+1\.00\s+1\.00$/m);
  t.match(r.stdout, /^saxpy\s+4\s+0\s+0\.00\s+0\.00\s+0\.00$/m);
  t.ok(
    requests.every((q) => q.auth === 'Bearer k3y' && q.body.model === 'scripted-1'),
    'the model name and key reach the endpoint',
  );
  const second = requests.find((q) => q.body.messages.some((m) => m.role === 'assistant'));
  t.ok(second, 'a second turn is asked with the earlier reply');
  t.equal(second!.body.messages.at(-1)!.role, 'user', 'and the feedback after it');
  t.match(second!.body.messages.at(-1)!.content, /Result/);
  const summary = JSON.parse(readFileSync(path.join(out, 'eval.json'), 'utf8'));
  t.same(
    summary.tasks.map((s: { task: string; correct: number }) => [s.task, s.correct]),
    [
      ['vector_add', 1],
      ['saxpy', 0],
    ],
  );
  t.ok(existsSync(path.join(out, 'report.html')));
  const records = readdirSync(path.join(out, 'logs'))
    .flatMap((f) =>
      readFileSync(path.join(out, 'logs', f), 'utf8')
        .trim()
        .split('\n'),
    )
    .map((l) => JSON.parse(l));
  t.equal(records.length, 16, 'every episode played its two turns (builtin-c has no solved threshold)');
  t.same(new Set(records.map((x) => x.group)).size, 4, 'two groups of two per task');
}

/** An endpoint failure is not the model's: the episode is left out of the scores and counted apart. */
async function endpointFailureIsLeftOut(t: Test, model: ScriptedModel, out: string): Promise<void> {
  model.failNext();
  const r2 = await run([
    'eval-model',
    '--base-url',
    `http://127.0.0.1:${model.port}/v1`,
    '--model',
    'scripted-1',
    '--split',
    'train',
    '--tasks',
    'vector_add',
    '-n',
    '1',
    '--max-turns',
    '1',
    '--p',
    '0',
    '--out',
    `${out}-2`,
  ]);
  t.equal(r2.code, 0, r2.stderr);
  t.match(r2.stdout, /^vector_add\s+1\s+1\s+0\.00\s+0\.00$/m);
  t.match(r2.stdout, /no turn was played: no report/);
}
