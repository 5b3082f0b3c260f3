/** Builds Anvil's own native pieces (judge, launcher, runner, library ops,
 * seccomp filter, calibration) and each task's glue and reference runner, into
 * a cache keyed by the sources' hash. Builds land in a temporary folder and are
 * renamed into place, so concurrent processes never see half a build. */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
  chmodSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { AnvilError } from './errors.js';
import type { CTask as Task } from '../tasks/loader.js';
import { NATIVE_DIR, PACKAGE_ROOT } from '../tasks/paths.js';

export const CANDIDATE_CFLAGS = ['-std=gnu11', '-O3', '-march=native', '-fopenmp', '-Wall'];
/** The reference is built exactly as candidates are: resubmitting it earns 1×, not a compiler's gain. */
const REFERENCE_CFLAGS = CANDIDATE_CFLAGS;
const SOURCES = [
  'anvil_abi.h',
  'anvil_lib.h',
  'anvil_lib.c',
  'runner.c',
  'judge.c',
  'launch.c',
  'seccomp_filter.c',
  'calibrate.c',
];

export interface Toolchain {
  dir: string;
  judge: string;
  launch: string;
  seccompFilter: string;
  /** The filter for GPU jobs: Unix sockets allowed, which the CUDA driver needs. */
  seccompFilterGpu: string;
  calibrate: string;
  runnerObject: string;
  libObject: string;
  /** Holds anvil_abi.h and anvil_lib.h. */
  includeDir: string;
  /** Every name the runner's libraries (libc, libm, libgomp) define: a candidate
   * that defined one would interpose it for the runner itself. */
  librarySymbols: ReadonlySet<string>;
  gccVersion: string;
  hash: string;
}

/** Where builds go: ANVIL_CACHE, else `.anvil-cache` in the checkout — when
 * every folder above it lets other users through, since sandboxed programs run
 * under other uids and bubblewrap must reach the binds' sources as them. A
 * checkout in a private folder (root's home, a `mktemp -d` folder) gets a cache
 * of its own under /var/tmp instead. */
export function cacheRoot(): string {
  if (process.env.ANVIL_CACHE) return process.env.ANVIL_CACHE;
  if (traversableByAll(PACKAGE_ROOT)) return path.join(PACKAGE_ROOT, '.anvil-cache');
  return privateCache();
}

function traversableByAll(dir: string): boolean {
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    if ((statSync(d).mode & 0o001) === 0) return false;
    if (path.dirname(d) === d) return true;
  }
}

/** /var/tmp/anvil-cache-UID: made by this user, readable by all, writable only by
 * this user; anything else there (another user's folder, a link) is refused. */
function privateCache(): string {
  const base = existsSync('/var/tmp') ? '/var/tmp' : os.tmpdir();
  const uid = process.getuid?.() ?? 0;
  const dir = path.join(base, `anvil-cache-${uid}`);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const st = lstatSync(dir);
  if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o022) !== 0)
    throw new AnvilError(
      'toolchain_failed',
      `${dir} is not a folder of this user that only it can write; remove it or set ANVIL_CACHE to a folder every user can traverse`,
    );
  chmodSync(dir, 0o755);
  return dir;
}

/** A folder of the checkout as sandboxed programs can reach it: the folder itself
 * when every folder above lets others through, else a copy in the build cache,
 * keyed by its contents. */
export function sandboxReachable(dir: string): string {
  if (traversableByAll(dir)) return dir;
  const files = readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => e.name)
    .sort();
  const h = createHash('sha256');
  for (const f of files)
    h.update(f)
      .update('\0')
      .update(readFileSync(path.join(dir, f)));
  const copy = path.join(cacheRoot(), `${path.basename(dir)}-${h.digest('hex').slice(0, 16)}`);
  buildOnce(copy, (tmp) => {
    for (const f of files) writeFileSync(path.join(tmp, f), readFileSync(path.join(dir, f)));
  });
  return copy;
}

/** Everything of a build readable (and, where executable, runnable) by all, whatever the umask. */
function openUp(dir: string): void {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      chmodSync(p, 0o755);
      openUp(p);
    } else if (e.isFile()) chmodSync(p, statSync(p).mode & 0o100 ? 0o755 : 0o644);
  }
}

function gcc(args: string[], cwd: string): void {
  try {
    execFileSync('gcc', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { stderr?: Buffer; message: string };
    throw new AnvilError('toolchain_failed', `gcc ${args.join(' ')} failed: ${err.stderr?.toString() ?? err.message}`);
  }
}

/** Builds into `final` through a temporary sibling, unless it exists. */
function buildOnce(final: string, build: (dir: string) => void): void {
  if (existsSync(path.join(final, '.complete'))) return;
  const tmp = `${final}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  mkdirSync(path.dirname(final), { recursive: true, mode: 0o755 });
  mkdirSync(tmp, { recursive: true });
  try {
    build(tmp);
    writeFileSync(path.join(tmp, '.complete'), '');
    openUp(tmp);
    chmodSync(tmp, 0o755);
    try {
      renameSync(tmp, final);
    } catch {
      if (!existsSync(path.join(final, '.complete'))) throw new AnvilError('toolchain_failed', `cannot place ${final}`);
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

let cached: Toolchain | null = null;

export function ensureToolchain(): Toolchain {
  if (cached) return cached;
  const gccVersion = execFileSync('gcc', ['-dumpfullversion']).toString().trim();
  const h = createHash('sha256')
    .update(gccVersion)
    .update(os.cpus()[0]?.model ?? '');
  for (const f of SOURCES) h.update(f).update(readFileSync(path.join(NATIVE_DIR, f)));
  const hash = h.digest('hex').slice(0, 16);
  const dir = path.join(cacheRoot(), `toolchain-${hash}`);
  buildOnce(dir, (tmp) => {
    const src = (f: string) => path.join(NATIVE_DIR, f);
    gcc(['-O3', '-Wall', '-march=native', '-o', 'judge', src('judge.c'), '-lm'], tmp);
    gcc(['-O2', '-Wall', '-o', 'anvil-launch', src('launch.c')], tmp);
    gcc(['-O2', '-o', 'seccomp_filter', src('seccomp_filter.c'), '-lseccomp'], tmp);
    execFileSync(path.join(tmp, 'seccomp_filter'), [path.join(tmp, 'filter.bpf')]);
    execFileSync(path.join(tmp, 'seccomp_filter'), [path.join(tmp, 'filter-gpu.bpf'), '--unix-sockets']);
    execFileSync(path.join(tmp, 'seccomp_filter'), [path.join(tmp, 'runner-filter.bpf'), '--runner']);
    writeFileSync(path.join(tmp, 'runner_filter.h'), bpfHeader(readFileSync(path.join(tmp, 'runner-filter.bpf'))));
    gcc(['-O3', '-march=native', '-fopenmp', '-o', 'calibrate', src('calibrate.c')], tmp);
    gcc(['-O2', '-Wall', '-I', tmp, '-c', '-o', 'runner.o', src('runner.c')], tmp);
    gcc(['-O3', '-march=native', '-fopenmp', '-Wall', '-c', '-o', 'anvil_lib.o', src('anvil_lib.c')], tmp);
    mkdirSync(path.join(tmp, 'include'));
    for (const f of ['anvil_abi.h', 'anvil_lib.h']) writeFileSync(path.join(tmp, 'include', f), readFileSync(src(f)));
    writeFileSync(path.join(tmp, 'library-symbols.txt'), librarySymbols().join('\n'));
  });
  cached = {
    dir,
    judge: path.join(dir, 'judge'),
    launch: path.join(dir, 'anvil-launch'),
    seccompFilter: path.join(dir, 'filter.bpf'),
    seccompFilterGpu: path.join(dir, 'filter-gpu.bpf'),
    calibrate: path.join(dir, 'calibrate'),
    runnerObject: path.join(dir, 'runner.o'),
    libObject: path.join(dir, 'anvil_lib.o'),
    includeDir: path.join(dir, 'include'),
    librarySymbols: new Set(readFileSync(path.join(dir, 'library-symbols.txt'), 'utf8').split('\n')),
    gccVersion,
    hash,
  };
  return cached;
}

/** The runner's allow-list as a C array, compiled into runner.o. */
function bpfHeader(bpf: Buffer): string {
  const bytes = [...bpf].map((b) => `0x${b.toString(16).padStart(2, '0')}`);
  const rows: string[] = [];
  for (let i = 0; i < bytes.length; i += 16) rows.push(`  ${bytes.slice(i, i + 16).join(', ')},`);
  return `/* generated by sandbox/toolchain.ts from seccomp_filter --runner */\nstatic const unsigned char anvil_runner_bpf[] __attribute__((aligned(8))) = {\n${rows.join('\n')}\n};\n`;
}

/** The dynamic symbols libc, libm and libgomp define, as the linker resolves them for the runner. */
function librarySymbols(): string[] {
  const names = new Set<string>();
  for (const lib of ['libc.so.6', 'libm.so.6', 'libgomp.so.1']) {
    const file = execFileSync('gcc', ['-print-file-name=' + lib])
      .toString()
      .trim();
    if (!path.isAbsolute(file)) continue;
    const out = execFileSync('nm', ['-D', '--defined-only', '-P', file], { maxBuffer: 64 * 1024 * 1024 }).toString();
    for (const line of out.split('\n')) {
      const name = line.split(' ')[0]?.replace(/@.*$/, '');
      if (name) names.add(name);
    }
  }
  return [...names].sort();
}

export interface TaskBuild {
  dir: string;
  /** Declares `solve`; force-included into the candidate so a wrong signature fails to compile. */
  header: string;
  glueObject: string;
  /** Folder holding the reference runner, named `runner`. */
  referenceDir: string;
}

function glueSource(task: Task): string {
  const casts = task.args.map((a, i) => {
    switch (a.kind) {
      case 'in':
        return `(const float *)a[${i}].p`;
      case 'out':
        return `(float *)a[${i}].p`;
      case 'i32':
        return `a[${i}].i`;
      case 'f32':
        return `a[${i}].f`;
    }
  });
  return `#include "anvil_abi.h"\n#include "task.h"\nvoid anvil_call(const anvil_arg *a) { solve(${casts.join(', ')}); }\n`;
}

export function ensureTaskBuild(task: Task): TaskBuild {
  const tc = ensureToolchain();
  const dir = path.join(cacheRoot(), `task-${task.id}-${task.digest}-${tc.hash}`);
  buildOnce(dir, (tmp) => {
    writeFileSync(path.join(tmp, 'task.h'), `#ifndef ANVIL_TASK_H\n#define ANVIL_TASK_H\n${task.signature};\n#endif\n`);
    writeFileSync(path.join(tmp, 'glue.c'), glueSource(task));
    gcc(['-O2', '-Wall', '-I', tc.includeDir, '-c', '-o', 'glue.o', 'glue.c'], tmp);
    writeFileSync(path.join(tmp, 'reference.c'), task.referenceSource);
    mkdirSync(path.join(tmp, 'reference'));
    gcc(
      [...REFERENCE_CFLAGS, '-include', 'task.h', '-I', tc.includeDir, '-c', '-o', 'reference.o', 'reference.c'],
      tmp,
    );
    gcc(['-fopenmp', '-o', 'reference/runner', tc.runnerObject, 'glue.o', tc.libObject, 'reference.o', '-lm'], tmp);
  });
  return {
    dir,
    header: path.join(dir, 'task.h'),
    glueObject: path.join(dir, 'glue.o'),
    referenceDir: path.join(dir, 'reference'),
  };
}

/** Host peak rates for the speed-of-light bound, measured once per toolchain (sandbox/c/calibrate.c prints them). */
const PeakRatesSchema = z.object({ bytesPerSecond: z.number().positive(), flopsPerSecond: z.number().positive() });
export type PeakRates = z.infer<typeof PeakRatesSchema>;

export function peakRates(): PeakRates {
  const tc = ensureToolchain();
  const file = path.join(tc.dir, `peak-${os.hostname()}.json`);
  const cached = existsSync(file) ? PeakRatesSchema.safeParse(parseOrNull(readFileSync(file, 'utf8'))) : null;
  if (cached?.success) return cached.data;
  // Not measured yet, or a file that is not the rates: measure again.
  const out = execFileSync(tc.calibrate).toString();
  const measured = PeakRatesSchema.safeParse(parseOrNull(out));
  if (!measured.success) throw new Error(`the calibration program's answer is malformed: ${out.slice(0, 200)}`);
  const rates = measured.data;
  writeFileSync(`${file}.tmp${process.pid}`, JSON.stringify(rates));
  renameSync(`${file}.tmp${process.pid}`, file);
  return rates;
}

function parseOrNull(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
