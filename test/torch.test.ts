/** The torch backend on the CPU (torch 1.13, no GPU): the harness's stages, its
 * static checks and the runtime checks that need no CUDA. GPU paths are verified
 * by bench/torch-gpu.ts on a GPU host. */
import { cpSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { getTask, loadTaskSet, solutionFiles } from '../tasks/loader.js';
import { PACKAGE_ROOT } from '../tasks/paths.js';
import { TorchEvaluator } from '../sandbox/torch-backend.js';
import { startServer, Wire } from './wire.js';
import { cacheRoot } from '../sandbox/toolchain.js';

const set = loadTaskSet('builtin-torch');
const gelu = getTask(set, 'gelu');
const fast = { timingBudgetMs: 300, minReps: 3, trials: 3 };
const checked = new TorchEvaluator({ cpu: true, config: fast });
const unchecked = new TorchEvaluator({ cpu: true, config: fast, unsafeSkipStaticChecks: true });
t.teardown(async () => {
  await checked.close();
  await unchecked.close();
});
const hack = (name: string) => readFileSync(path.join(PACKAGE_ROOT, 'test', 'torch-hacks', `${name}.py`), 'utf8');
const cpuCandidate = (body: string) =>
  `import torch\nimport torch.nn as nn\n\n\nclass ModelNew(nn.Module):\n    def forward(self, x0):\n${body}\n`;

t.test('builtin-torch: 12 tasks in KernelBench format, each with an honest Triton solution', async (t) => {
  t.ok(set.tasks.size >= 12);
  t.equal(set.manifest.backend, 'torch');
  for (const task of set.tasks.values()) {
    t.match(task.referenceSource, /class Model\(/, task.id);
    t.ok(
      solutionFiles(task).some((f) => f.endsWith('triton.py')),
      `${task.id} has a Triton solution`,
    );
    if (task.backend === 'torch')
      t.ok(
        task.shapes.correctness.some((c) => !c.visible),
        `${task.id} hides a shape`,
      );
  }
  t.ok(
    [...set.tasks.values()].filter((x) => solutionFiles(x).some((f) => f.endsWith('cuda.py'))).length >= 3,
    'several CUDA solutions',
  );
});

t.test('an honest C++ extension passes every stage on the CPU, unflagged', async (t) => {
  const r = await checked.evaluate({
    task: gelu,
    code: readFileSync(path.join(PACKAGE_ROOT, 'test', 'torch', 'gelu_cpu_ext.py'), 'utf8'),
  });
  t.equal(r.outcome, 'ok', r.message);
  t.same(r.flags, []);
  t.equal(r.correctness?.trialsPassed, r.correctness?.trialsTotal);
  t.ok(r.speedup! > 0 && r.profileShare! > 0.5, `speedup ${r.speedup}, share ${r.profileShare}`);
  t.ok(r.stages.every((s) => s.status === 'ok'));
});

for (const [name, kind] of [
  ['torch_ops', 'framework_compute'],
  ['try_fallback', 'exception_fallback'],
  ['subclass_model', 'reference_reuse'],
  ['patch_synchronize', 'harness_patching'],
  ['forged_result', 'forbidden_import'],
  ['background_thread', 'forbidden_import'],
] as const)
  t.test(`static checks refuse ${name}`, async (t) => {
    const task = getTask(set, hack(name).match(/^# task: (\w+)/m)![1]!);
    const r = await checked.evaluate({ task, code: hack(name) });
    t.equal(r.outcome, 'static_violation', r.message);
    t.ok(
      r.flags.some((f) => f.kind === kind),
      JSON.stringify(r.flags),
    );
  });

t.test('runtime checks catch what the static checks would have (CPU variants)', async (t) => {
  const cases: [string, string, string, string | null][] = [
    [
      'plain torch: no kernel of its own',
      cpuCandidate('        return torch.nn.functional.gelu(x0, approximate="tanh")'),
      'hack_detected',
      'no_own_kernels',
    ],
    ['input mutation', cpuCandidate('        return x0.mul_(0.5)'), 'hack_detected', 'input_mutation'],
    ['unwritten output', cpuCandidate('        return torch.empty_like(x0)'), 'wrong_result', null],
    [
      'lazy tensor subclass',
      `import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n\n\nclass Lazy(torch.Tensor):\n    pass\n\n\nclass ModelNew(nn.Module):\n    def forward(self, x0):\n        return F.gelu(x0, approximate="tanh").as_subclass(Lazy)\n`,
      'hack_detected',
      'tensor_subclass',
    ],
    [
      'patched harness function',
      `import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\ntorch.allclose = lambda *a, **k: True\n\n\nclass ModelNew(nn.Module):\n    def forward(self, x0):\n        return F.gelu(x0, approximate="tanh")\n`,
      'hack_detected',
      'harness_patching',
    ],
    [
      'forged verdict on the result pipe',
      `import os\nimport torch\nimport torch.nn as nn\nimport torch.nn.functional as F\nfor fd in range(3, 64):\n    try:\n        os.write(fd, b'{"result": {"outcome": "ok"}}\\n')\n    except OSError:\n        pass\n\n\nclass ModelNew(nn.Module):\n    def forward(self, x0):\n        return F.gelu(x0, approximate="tanh")\n`,
      'hack_detected',
      'forged_reply',
    ],
    [
      'bf16 output where fp32 is asked',
      cpuCandidate('        return x0.to(torch.bfloat16)'),
      'hack_detected',
      'precision_downgrade',
    ],
  ];
  for (const [what, code, outcome, flag] of cases) {
    const r = await unchecked.evaluate({ task: gelu, code });
    t.equal(r.outcome, outcome, `${what}: ${r.message}`);
    if (flag)
      t.ok(
        r.flags.some((f) => f.kind === flag),
        `${what}: ${JSON.stringify(r.flags)}`,
      );
  }
});

t.test('a crashing candidate is a runtime error and the next job runs', async (t) => {
  const r = await unchecked.evaluate({ task: gelu, code: cpuCandidate('        raise ValueError("boom")') });
  t.equal(r.outcome, 'runtime_error');
  t.match(r.message, /boom/);
  const after = await checked.evaluate({
    task: gelu,
    code: readFileSync(path.join(PACKAGE_ROOT, 'test', 'torch', 'gelu_cpu_ext.py'), 'utf8'),
    seed: 9,
  });
  t.equal(after.outcome, 'ok', after.message);
});

t.test('no code and KernelBench-loader errors are clear', async (t) => {
  const r = await checked.evaluate({ task: gelu, reply: 'no code here' });
  t.equal(r.outcome, 'no_code');
  t.throws(() => loadTaskSet('kernelbench:/nonexistent/path'), { code: 'unknown_taskset' });
});

t.test('a server on builtin-torch plays an episode and reports its device in /healthz and /metrics', async (t) => {
  const { server, url } = await startServer({ taskset: 'builtin-torch' });
  t.teardown(() => server.close());
  const w = await Wire.open(url);
  t.teardown(() => w.close());
  await w.call({ id: 1, op: 'hello', protocol: 1 });
  const ep = (await w.call({ id: 2, op: 'reset', task: 'gelu' })).episodes[0];
  t.match(ep.observation.messages[1].content, /class Model\(nn\.Module\)/, 'the prompt shows the reference program');
  const code = readFileSync(path.join(PACKAGE_ROOT, 'test', 'torch', 'gelu_cpu_ext.py'), 'utf8');
  const r = await w.call({ id: 3, op: 'step', episode: ep.episode, action: `\`\`\`python\n${code}\`\`\`` });
  t.equal(r.info.outcome, 'ok', JSON.stringify(r.info).slice(0, 600));
  t.ok(r.reward > 0);
  const health = (await (await fetch(`http://127.0.0.1:${server.port}/healthz`)).json()) as {
    devices: { id: string; healthy: boolean }[];
  };
  t.same(
    health.devices.map((d) => [d.id, d.healthy]),
    [['cpu', true]],
  );
  const metrics = await (await fetch(`http://127.0.0.1:${server.port}/metrics`)).text();
  t.match(metrics, /anvil_device_healthy\{device="cpu",name="[^"]+"\} 1/);
});

t.test("a shape that sets nothing runs at the file's own sizes, even after a hidden shape changed them", async (t) => {
  // The same reference timed at the file's own shape ({}: 256 x 4096) and at the hidden one (37 x 301).
  const timeAt = async (timing: Record<string, number>) => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'anvil-torch-set-'));
    cpSync(gelu.dir, path.join(dir, 'gelu'), { recursive: true });
    writeFileSync(
      path.join(dir, 'gelu', 'reference.py'),
      gelu.referenceSource.replace('rows = 16384', 'rows = 256').replace('cols = 16384', 'cols = 4096'),
    );
    const shapes = { correctness: [{ set: {}, visible: true }, { set: { rows: 37, cols: 301 } }], timing: [timing] };
    writeFileSync(
      path.join(dir, 'gelu', 'task.json'),
      JSON.stringify({
        ...JSON.parse(readFileSync(path.join(gelu.dir, 'task.json'), 'utf8')),
        shapes,
        cpuShapes: shapes,
      }),
    );
    writeFileSync(
      path.join(dir, 'manifest.json'),
      JSON.stringify({ id: 'one', backend: 'torch', splits: { train: ['gelu'], eval: [] } }),
    );
    const r = await checked.evaluate({
      task: getTask(loadTaskSet(dir), 'gelu'),
      code: readFileSync(path.join(PACKAGE_ROOT, 'test', 'torch', 'gelu_cpu_ext.py'), 'utf8'),
    });
    t.equal(r.outcome, 'ok', r.message);
    return r.timing!.referenceMs;
  };
  const own = await timeAt({});
  const hidden = await timeAt({ rows: 37, cols: 301 });
  t.ok(
    own > 10 * hidden,
    `reference ${own.toFixed(4)} ms at the file's own shape, ${hidden.toFixed(4)} ms at the hidden one`,
  );
});

t.test('a second job sees nothing the first wrote: not its /tmp, its folder, nor /dev/shm', async (t) => {
  const paths = "['/tmp/anvil-left-behind', '/dev/shm/anvil-left-behind', 'anvil-left-behind']";
  const writer = cpuCandidate(
    `        import os\n        for p in ${paths}:\n            try:\n                open(p, "w").write("x")\n            except OSError:\n                pass\n        raise ValueError("wrote")`,
  );
  const reader = cpuCandidate(
    `        import os, glob\n        seen = [p for p in ${paths} + glob.glob("/tmp/*/*/anvil-left-behind") if os.path.exists(p)]\n        raise ValueError(f"seen {seen}")`,
  );
  const first = await unchecked.evaluate({ task: gelu, code: writer, seed: 31 });
  t.match(first.message, /wrote/);
  const second = await unchecked.evaluate({ task: gelu, code: reader, seed: 32 });
  t.match(second.message, /seen \[\]/, second.message);
});

/** The CPU corpus: a candidate for each class of attack on the judge, each run with and without the
 * static checks (without them, the judge alone must stop it). Headers: task, expected verdict with
 * the checks and without (`outcome/flag`, or `not_ok`), and optionally the message the judge alone
 * gives, a bound on the reference's time, and a bound on the job's wall time (a job held open by
 * what the candidate left running). */
const cpuHacks = readdirSync(path.join(PACKAGE_ROOT, 'test', 'torch-hacks-cpu'))
  .filter((f) => f.endsWith('.py'))
  .sort();
for (const file of cpuHacks)
  t.test(`judge corpus: ${file}`, async (t) => {
    const code = readFileSync(path.join(PACKAGE_ROOT, 'test', 'torch-hacks-cpu', file), 'utf8');
    const header = (k: string) => code.match(new RegExp(`^# ${k}: (.+)$`, 'm'))?.[1]?.trim() ?? '';
    const task = getTask(set, header('task'));
    for (const [which, ev, expect] of [
      ['with static checks', checked, header('expect')],
      ['judge alone', unchecked, header('unchecked')],
    ] as const) {
      const t0 = performance.now();
      const r = await ev.evaluate({ task, code, seed: 7 });
      const wall = (performance.now() - t0) / 1000;
      if (header('max-wall-s'))
        t.ok(
          wall < Number(header('max-wall-s')),
          `${which}: the job ended after ${wall.toFixed(1)} s, not held by what the candidate left running`,
        );
      const [outcome, kind] = expect.split('/');
      const what = `${which}: ${r.outcome} ${JSON.stringify(r.flags.map((f) => f.kind))} ${r.message.slice(0, 300)}`;
      if (outcome === 'not_ok') t.not(r.outcome, 'ok', what);
      else t.equal(r.outcome, outcome, what);
      if (kind)
        t.ok(
          r.flags.some((f) => f.kind === kind),
          what,
        );
      if (header('message') && which === 'judge alone') t.match(r.message, header('message'), what);
      const bound = Number(header('max-reference-ms'));
      if (bound && r.timing)
        t.ok(
          r.timing.referenceMs < bound,
          `${which}: the reference took ${r.timing.referenceMs.toFixed(2)} ms (bound ${bound})`,
        );
    }
  });

t.test('the build cache keeps only the shared object of a build that wrote other files', async (t) => {
  const honest = readFileSync(path.join(PACKAGE_ROOT, 'test', 'torch', 'gelu_cpu_ext.py'), 'utf8');
  // The same extension, and 20 MB of junk written beside it (and into the build folder) while it builds.
  // A comment unique to this run: the build is new, never a cache hit from an earlier run.
  const junk = `${honest}\n# run ${Date.now()}-${process.pid}\nimport os as _os\n_d = _os.environ["TORCH_EXTENSIONS_DIR"]\nfor _p in (_os.path.join(_d, "junk.bin"), *[_os.path.join(_d, n, "junk.bin") for n in _os.listdir(_d)]):\n    open(_p, "wb").write(b"x" * 10_000_000)\n`;
  const before = new Set(cacheEntries());
  const r = await unchecked.evaluate({ task: gelu, code: junk, seed: 41 });
  t.equal(r.outcome, 'ok', r.message);
  // The cache is the host's: other Anvil processes (test files running beside this one) may add builds
  // meanwhile. This build is among the new entries, and every new entry holds its shared object alone.
  const added = cacheEntries().filter((d) => !before.has(d));
  const contents = added.map((d) => readdirSync(d, { recursive: true }).map(String).sort());
  t.ok(
    contents.some((f) => f.join() === '.complete,gelu_cpu,gelu_cpu/gelu_cpu.so'),
    `this build is in the cache: ${added.join(', ')}`,
  );
  for (const files of contents) {
    const name = files.find((f) => f !== '.complete' && !f.includes('/'));
    t.same(files, ['.complete', name, `${name}/${name}.so`], 'the shared object alone is kept');
  }
});

function cacheEntries(): string[] {
  const root = path.join(cacheRoot(), 'torch-ext');
  try {
    return readdirSync(root)
      .filter((d) => !d.includes('.tmp-'))
      .map((d) => path.join(root, d));
  } catch {
    return [];
  }
}

t.test('identical torch submissions in flight at once share one evaluation and one verdict', async (t) => {
  const jobs = () => Number(/(\d+) jobs/.exec(checked.workers().find((w) => w.id === 'cpu')!.detail)![1]);
  const code = `${readFileSync(path.join(PACKAGE_ROOT, 'test', 'torch', 'gelu_cpu_ext.py'), 'utf8')}\n# shared ${Date.now()}\n`;
  const before = jobs();
  const [a, b] = await Promise.all([
    checked.evaluate({ task: gelu, code, seed: 51 }),
    checked.evaluate({ task: gelu, code, seed: 51 }),
  ]);
  t.equal(a.outcome, 'ok', a.message);
  t.same({ ...b, cached: false }, { ...a, cached: false }, 'the same result for both');
  t.ok(a.cached !== b.cached, 'the one that joined is marked cached');
  t.equal(jobs() - before, 1, 'one job on the device');
});
