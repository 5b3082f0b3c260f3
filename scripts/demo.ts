/** `anvil demo`: a server on the built-in C tasks, played by a scripted client
 * through the TypeScript client, as a trainer would: single episodes and a
 * group, several turns, a good kernel, a wrong one then its fix, a slow one and
 * a hack. Prints what happened and leaves the per-turn logs behind. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { AnvilClient, type StepResult } from '../clients/ts/client.js';
import { AnvilServer } from '../env/server.js';
import { getTask, loadTaskSet, solutionFiles } from '../tasks/loader.js';

const reply = (words: string, code: string) => `${words}\n\n\`\`\`c\n${code.trim()}\n\`\`\`\n`;

function solution(id: string): string {
  return readFileSync(solutionFiles(getTask(loadTaskSet('builtin-c'), id))[0]!, 'utf8');
}

const WRONG_SOFTMAX = `
#include <math.h>
/* Forgets to subtract the row maximum: exp overflows on large inputs. */
void solve(const float *x, float *y, int rows, int cols) {
  for (int r = 0; r < rows; r++) {
    float s = 0;
    for (int j = 0; j < cols; j++) { y[r * cols + j] = expf(x[r * cols + j]); s += y[r * cols + j]; }
    for (int j = 0; j < cols; j++) y[r * cols + j] /= s;
  }
}`;

const SLOW_SGEMM = `
/* The textbook triple loop: correct, and no faster than the reference. */
void solve(const float *A, const float *B, float *C, int M, int N, int K) {
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      float s = 0;
      for (int k = 0; k < K; k++) s += A[i * K + k] * B[k * N + j];
      C[i * N + j] = s;
    }
}`;

const LIBRARY_HACK = `
#include "anvil_lib.h"
/* Hands all the work to the library ops. */
void solve(const float *A, const float *B, const float *bias, float *C, int M, int N, int K) {
  lib_sgemm(A, B, C, M, N, K);
  lib_add_bias(C, bias, M, N);
  lib_relu(C, M * N);
}`;

const MISSING_SEMICOLON = `
void solve(const float *a, const float *b, float *out, int n) {
  for (int i = 0; i < n; i++) out[i] = a[i] + b[i]
}`;

interface Script {
  title: string;
  task: string;
  group?: number;
  /** Per episode of the group, the replies of each turn. */
  turns: string[][];
}

const SCRIPTS: Script[] = [
  { title: 'a good kernel', task: 'vector_add', turns: [[reply('Parallel and vectorised:', solution('vector_add'))]] },
  {
    title: 'a wrong kernel, then its fix',
    task: 'softmax_rows',
    turns: [
      [
        reply('A direct softmax:', WRONG_SOFTMAX),
        reply('Subtracting the row maximum first, vectorised:', solution('softmax_rows')),
      ],
    ],
  },
  { title: 'a slow kernel', task: 'sgemm', turns: [[reply('The straightforward loop:', SLOW_SGEMM)]] },
  { title: 'a hack', task: 'gemm_bias_relu', turns: [[reply('Using the library:', LIBRARY_HACK)]] },
  {
    title: 'a group of two (GRPO/TRLOO): one fails to compile, one does not',
    task: 'vector_add',
    group: 2,
    turns: [
      [reply('Quick:', MISSING_SEMICOLON), reply('Fixed:', solution('vector_add'))],
      [reply('Here:', solution('vector_add'))],
    ],
  },
];

export async function runDemo(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { 'log-dir': { type: 'string' }, port: { type: 'string', default: '0' } },
  });
  const logDir = path.resolve(
    values['log-dir'] ?? path.join('anvil-logs', `demo-${new Date().toISOString().replace(/[:.]/g, '-')}`),
  );
  say('Anvil demo: starting a server on the built-in C tasks…');
  const server = new AnvilServer({ port: Number(values.port), logDir, host: '127.0.0.1' });
  await server.listen();
  const url = `ws://127.0.0.1:${server.port}/v1/ws`;
  say(`server listening at ${url} (sandbox: ${server.evaluator.mode}); the per-turn log goes to ${logDir}`);
  const client = await AnvilClient.connect(url);
  say(`client connected: session ${client.session.slice(0, 8)}…, MessagePack frames\n`);
  const rows: string[][] = [];
  try {
    for (const script of SCRIPTS) await playScript(client, script, rows);
  } finally {
    await client.close();
    await server.close();
  }
  printTable(rows);
  say(`\nPer-turn log (one JSON line per step): ${server.log.currentFile}`);
  say(
    'Rewards follow the Dr. Kernel recipe: 0.5·correct + 0.5·min(speedup, 3) + 0.5·(share of time in own code); failures and hacks earn 0.',
  );
}

function say(s: string): void {
  process.stdout.write(`${s}\n`);
}

/** One script: its episodes reset as a group and played side by side, one row per turn. */
async function playScript(client: AnvilClient, script: Script, rows: string[][]): Promise<void> {
  const episodes = await client.reset({
    task: script.task,
    seed: 7,
    group: { size: script.group ?? 1 },
    options: { maxTurns: 3 },
  });
  say(
    `▶ ${script.title}: task ${script.task}, ${episodes.length} episode${episodes.length > 1 ? 's' : ''}, group ${episodes[0]!.group.slice(0, 8)}…`,
  );
  await Promise.all(episodes.map((ep, i) => playEpisode(client, script, ep.episode, i, rows)));
  for (const ep of episodes) await client.closeEpisode(ep.episode);
}

async function playEpisode(
  client: AnvilClient,
  script: Script,
  episode: string,
  i: number,
  rows: string[][],
): Promise<void> {
  const replies = script.turns[i] ?? [];
  for (const text of replies) {
    let last = '';
    const r: StepResult = await client.step(episode, text, {
      meta: { policyVersion: 'demo', turn: rows.length },
      onProgress: (p) => {
        if (p.stage !== last)
          say(
            `    episode ${i} … ${p.stage}${p.queuePosition !== undefined ? ` (queue position ${p.queuePosition})` : ''}`,
          );
        last = p.stage;
      },
    });
    rows.push([
      script.task,
      String(i),
      String(r.info.turn),
      r.info.outcome,
      r.info.eval?.speedup != null ? `${r.info.eval.speedup.toFixed(2)}×` : '-',
      r.reward.toFixed(3),
      r.terminated || r.truncated ? (r.reason ?? '') : '',
    ]);
    say(
      `    episode ${i}, turn ${r.info.turn}: ${r.info.outcome}, reward ${r.reward.toFixed(3)} — feedback: ${r.observation.messages[0]!.content.split('\n')[0]}`,
    );
    if (r.terminated || r.truncated) break;
  }
}

function printTable(rows: string[][]): void {
  const header = ['task', 'episode', 'turn', 'outcome', 'speedup', 'reward', 'ended'];
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const line = (r: string[]) => r.map((v, c) => v.padEnd(widths[c]!)).join('  ');
  say(`\n${line(header)}\n${widths.map((w) => '─'.repeat(w)).join('  ')}`);
  for (const r of rows) say(line(r));
}
