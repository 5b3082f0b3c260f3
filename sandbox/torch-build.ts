/** Extension builds for the torch backend: each candidate that calls load_inline
 * or cpp_extension is built first, off the device, in a fresh sandbox on the CPU
 * with CUDA hidden, a few at a time, into a cache keyed by the code, the device's
 * architecture and torch's version. The cache keeps only the built shared
 * objects, capped in size, least recently used evicted first. */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { JobCgroup } from './cgroup.js';
import type { Findings } from './common.js';
import { jobUid, launchArgv } from './isolation.js';
import { runCapped } from './process.js';
import type { StageName, StageRecord } from './result.js';
import { cacheRoot, ensureToolchain } from './toolchain.js';
import { CompileAnswerSchema, parseAnswer, stageRecords, type CompileAnswer, type Health } from './torch-answers.js';
import type { TorchConfig } from './torch-config.js';
import { baseBinds, HARNESS_TMP_BYTES, pythonEnv, type SandboxContext } from './torch-harness.js';

/** The extension build cache keeps shared objects only, up to this many bytes (least recently used go first). */
const BUILD_CACHE_BYTES = 2 * 1024 ** 3;
/** The uid slot of build sandboxes (devices' slots start at 400). */
const BUILD_SLOT = 399;

export class ExtensionBuilder {
  running = 0;
  private readonly waiters: (() => void)[] = [];

  constructor(
    private readonly ctx: SandboxContext,
    private readonly skipStatic: boolean,
    readonly slots: number,
  ) {}

  get waiting(): number {
    return this.waiters.length;
  }

  /** Builds the candidate's extensions, or finds them built; the folder to copy into the job, or why not. */
  async build(
    code: string,
    config: TorchConfig,
    stages: Map<StageName, StageRecord>,
    device: Health | null | undefined,
  ): Promise<{ dir: string; findings?: Findings }> {
    const arch = device?.capability ?? 'cpu';
    const h = createHash('sha256')
      .update(code)
      .update(arch)
      .update(device?.torch ?? '')
      .digest('hex')
      .slice(0, 24);
    const dir = path.join(cacheRoot(), 'torch-ext', h);
    if (existsSync(path.join(dir, '.complete'))) {
      const now = new Date();
      utimesSync(dir, now, now); // recently used: evicted last
      stages.set('static', { name: 'static', status: 'ok', ms: 0 });
      stages.set('compile', { name: 'compile', status: 'ok', ms: 0, log: 'extension build cached' });
      return { dir };
    }
    await this.acquire();
    const work = `${dir}.tmp-${process.pid}-${randomBytes(3).toString('hex')}`;
    const cg = JobCgroup.create(`torchcc-${process.pid}-${h.slice(0, 8)}`, { memoryBytes: 8 * 1024 ** 3, pids: 512 });
    try {
      const answer = await this.runBuild(code, config, arch, work, cg);
      for (const s of stageRecords(answer.result?.stages)) stages.set(s.name, s);
      const findings = buildFindings(answer, stages);
      if (findings) return { dir, findings };
      store(work, dir);
      return { dir };
    } finally {
      await cg?.destroy();
      rmSync(work, { recursive: true, force: true });
      this.release();
    }
  }

  /** One build in a fresh sandbox: the harness's `once` mode, on the CPU, with CUDA hidden. */
  private async runBuild(
    code: string,
    config: TorchConfig,
    arch: string,
    work: string,
    cg: JobCgroup | null,
  ): Promise<CompileAnswer> {
    mkdirSync(path.join(work, 'ext'), { recursive: true, mode: 0o777 });
    writeFileSync(path.join(work, 'candidate.py'), code);
    const uid = jobUid(BUILD_SLOT, 'candidate');
    if (uid !== null) execFileSync('chown', ['-R', `${uid}:${uid}`, work]);
    const job = {
      id: 'build',
      phase: 'compile',
      device: 'cpu',
      candidatePath: '/jobs/candidate.py',
      extDir: '/jobs/ext',
      workDir: '/jobs',
      skipStatic: this.skipStatic,
      torchCudaArchList: arch === 'cpu' ? null : arch,
      deadlinesMs: { start: 30_000, static: 10_000, compile: config.compileTimeoutMs, default: 30_000 },
    };
    const argv = launchArgv({
      toolchain: ensureToolchain(),
      mode: this.ctx.mode,
      cgroup: cg,
      uid,
      limits: { cpuSeconds: 3600, fileBytes: 1024 ** 3, addressBytes: 2 ** 64 - 1, nproc: 512, nofile: 1024 },
      env: pythonEnv(this.ctx, { CUDA_VISIBLE_DEVICES: '', MAX_JOBS: '4' }),
      binds: baseBinds(this.ctx, work, true),
      tmpBytes: HARNESS_TMP_BYTES,
      chdir: '/jobs',
      command: ['/bin/sh', '-c', `echo '${JSON.stringify(job)}' | ${this.ctx.python} /anvil/torch/harness.py once`],
    });
    const r = await runCapped(argv, { timeoutMs: config.compileTimeoutMs + 60_000, onTimeout: () => cg?.killAll() });
    if (!r.stdout.trim()) throw new Error(`the build sandbox failed: ${r.stderr.slice(-1000)}`);
    return parseAnswer(CompileAnswerSchema, r.stdout.trim().split('\n').pop()!);
  }

  private async acquire(): Promise<void> {
    if (this.running < this.slots) {
      this.running++;
      return;
    }
    await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  private release(): void {
    const next = this.waiters.shift();
    if (next) next();
    else this.running--;
  }
}

/** A build that failed: its outcome, and the compile stage marked failed when the process died. */
function buildFindings(answer: CompileAnswer, stages: Map<StageName, StageRecord>): Findings | null {
  const res = answer.result;
  if (answer.death) {
    const timeout = answer.death.kind === 'timeout';
    stages.set('compile', {
      name: 'compile',
      status: 'failed',
      ms: answer.ms,
      log: answer.log.slice(-4000) || undefined,
    });
    return {
      outcome: timeout ? 'timeout' : 'compile_error',
      message: timeout
        ? `the extension build did not finish within ${answer.death.limitMs} ms`
        : `the build process died (${answer.death.signalName ?? `exit ${answer.death.code}`})`,
      flags: [],
    };
  }
  if (res && res.outcome !== 'ok') return { outcome: res.outcome, message: res.message ?? '', flags: res.flags ?? [] };
  return null;
}

/** Keeps only the shared objects: nothing else the build (or the candidate's code in it) wrote. */
function store(work: string, dir: string): void {
  const kept = path.join(work, 'kept');
  keepSharedObjects(path.join(work, 'ext'), kept);
  writeFileSync(path.join(kept, '.complete'), '');
  try {
    renameSync(kept, dir);
  } catch {
    if (!existsSync(path.join(dir, '.complete'))) throw new Error(`cannot place the build in ${dir}`);
  }
  evictBuilds(path.dirname(dir), BUILD_CACHE_BYTES);
}

/** Copies `<name>/<name>.so` files (what load_inline imports) from a build folder, and nothing else. */
function keepSharedObjects(from: string, to: string): void {
  mkdirSync(to, { recursive: true, mode: 0o755 });
  for (const name of existsSync(from) ? readdirSync(from) : []) {
    const so = path.join(from, name, `${name}.so`);
    if (
      !/^[\w.-]+$/.test(name) ||
      !lstatSync(path.join(from, name)).isDirectory() ||
      !existsSync(so) ||
      !lstatSync(so).isFile()
    )
      continue;
    mkdirSync(path.join(to, name), { mode: 0o755 });
    copyFileSync(so, path.join(to, name, `${name}.so`));
  }
}

/** Removes the least recently used builds until the cache holds at most `cap` bytes. */
function evictBuilds(root: string, cap: number): void {
  const builds = readdirSync(root)
    .filter((d) => !d.includes('.tmp-'))
    .map((d) => {
      const dir = path.join(root, d);
      const bytes = readdirSync(dir, { recursive: true, withFileTypes: true })
        .filter((e) => e.isFile())
        .reduce((n, e) => n + statSync(path.join(e.parentPath ?? e.path, e.name)).size, 0);
      return { dir, bytes, used: statSync(dir).mtimeMs };
    })
    .sort((a, b) => b.used - a.used);
  let total = 0;
  for (const b of builds) {
    total += b.bytes;
    if (total > cap) rmSync(b.dir, { recursive: true, force: true });
  }
}
