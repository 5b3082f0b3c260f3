/** How a sandboxed program is started: anvil-launch (cgroups, rlimits, uid,
 * clean environment, seccomp descriptor) in front of bubblewrap (namespaces,
 * read-only system, private job folder, no network, no capabilities). Without
 * bubblewrap nothing runs unless the operator asked for the weaker mode. */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { AnvilError } from './errors.js';
import type { JobCgroup } from './cgroup.js';
import type { Toolchain } from './toolchain.js';

export type SandboxMode = 'bwrap' | 'none';

export interface Bind {
  src: string;
  /** Where the program sees it, in the bwrap sandbox. */
  dest: string;
  writable?: boolean;
  /** A device node (a GPU's /dev/nvidia*), bound with --dev-bind. */
  device?: boolean;
}

export interface ProcessLimits {
  cpuSeconds: number;
  fileBytes: number;
  addressBytes: number;
  /** RLIMIT_NPROC: counts per uid, so it binds only when jobs run under their own uid. */
  nproc: number;
  nofile: number;
}

export interface LaunchSpec {
  toolchain: Toolchain;
  mode: SandboxMode;
  cgroup: JobCgroup | null;
  uid: number | null;
  limits: ProcessLimits;
  env: Record<string, string>;
  binds: Bind[];
  chdir: string;
  /** The command, naming paths as the sandbox sees them (bind destinations). */
  command: string[];
  /** GPU jobs: the filter variant that allows Unix sockets (the CUDA driver needs them). */
  gpu?: boolean;
  /** A size cap for the sandbox's /tmp (a tmpfs); none by default. */
  tmpBytes?: number;
}

/** bubblewrap's path; ANVIL_BWRAP names another (a carried copy, say), and a
 * path that does not exist makes Anvil behave as if bubblewrap were missing. */
export function findBwrap(): string | null {
  const chosen = process.env.ANVIL_BWRAP;
  if (chosen) return existsSync(chosen) ? chosen : null;
  for (const p of ['/usr/bin/bwrap', '/usr/local/bin/bwrap']) if (existsSync(p)) return p;
  try {
    return execFileSync('sh', ['-c', 'command -v bwrap']).toString().trim() || null;
  } catch {
    return null;
  }
}

/** Decides the sandbox mode; refuses to run unsandboxed unless told to. */
export function chooseMode(allowUnsandboxed: boolean): SandboxMode {
  if (findBwrap()) return 'bwrap';
  if (allowUnsandboxed) return 'none';
  throw new AnvilError(
    'sandbox_unavailable',
    'bubblewrap (bwrap) is not installed, so candidates cannot be isolated. Install it (apt-get install bubblewrap), ' +
      'or pass --unsandboxed to run without isolation; every result will then say sandbox "none".',
  );
}

/** This process's block of uids: each evaluator process on a host gets its own,
 * so that concurrent jobs never share a uid (RLIMIT_NPROC counts per uid). */
export function uidRange(): { first: number; count: number } {
  return { first: 2_000_000 + (process.pid % 1_000_000) * 1024, count: 1024 };
}

/** The uid a job's candidate or reference runs as when Anvil runs as root. */
export function jobUid(slot: number, role: 'candidate' | 'reference'): number | null {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return null;
  return uidRange().first + (slot % 512) * 2 + (role === 'reference' ? 1 : 0);
}

/** `command`, first saying on descriptor 3 that it started (run it with runCapped's
 * `started`). A run that never said so did not start: anvil-launch or bwrap failed,
 * whatever its stderr reads, while a program that did start fails as itself even
 * when its output reads like theirs (a compiler quoting the candidate's `#error`). */
export function startedCommand(command: string[]): string[] {
  return ['/bin/sh', '-c', 'printf started >&3 && exec 3>&- && exec "$@"', 'sh', ...command];
}

export function launchArgv(s: LaunchSpec): string[] {
  const argv = [s.toolchain.launch];
  for (const f of s.cgroup?.procsFiles() ?? []) argv.push('--procs', f);
  if (s.uid !== null) argv.push('--uid', String(s.uid), '--gid', String(s.uid));
  argv.push(
    '--cpu',
    String(s.limits.cpuSeconds),
    '--fsize',
    String(s.limits.fileBytes),
    '--as',
    String(s.limits.addressBytes),
  );
  argv.push('--nproc', String(s.limits.nproc), '--nofile', String(s.limits.nofile));
  for (const [k, v] of Object.entries(s.env)) argv.push('--env', `${k}=${v}`);
  if (s.mode === 'none') {
    // Same program, real paths, no isolation: the weaker mode the operator chose.
    // Paths may sit inside an argument (a shell script), so replace them wherever they start a word.
    const real = (arg: string) =>
      s.binds.reduce(
        (a, b) =>
          a.replace(
            new RegExp(`(^|[\\s=])${b.dest.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?=/|\\s|$)`, 'g'),
            `$1${b.src}`,
          ),
        arg,
      );
    argv.push('--chdir', real(s.chdir), '--');
    argv.push(...s.command.map(real));
    return argv;
  }
  argv.push('--seccomp', s.gpu ? s.toolchain.seccompFilterGpu : s.toolchain.seccompFilter, '--', findBwrap()!);
  // --as-pid-1: the program is the namespace's init. Without it bwrap adds an init
  // of its own that outlives its monitor and is left a zombie where the host's
  // init does not reap.
  argv.push('--unshare-all', '--as-pid-1', '--die-with-parent', '--new-session', '--cap-drop', 'ALL');
  argv.push('--ro-bind', '/usr', '/usr', '--symlink', 'usr/lib', '/lib', '--symlink', 'usr/lib64', '/lib64');
  argv.push('--symlink', 'usr/bin', '/bin', '--symlink', 'usr/sbin', '/sbin');
  if (existsSync('/etc/ld.so.cache')) argv.push('--ro-bind', '/etc/ld.so.cache', '/etc/ld.so.cache');
  argv.push(
    '--proc',
    '/proc',
    '--dev',
    '/dev',
    ...(s.tmpBytes ? ['--size', String(s.tmpBytes)] : []),
    '--tmpfs',
    '/tmp',
  );
  for (const b of s.binds) argv.push(b.device ? '--dev-bind' : b.writable ? '--bind' : '--ro-bind', b.src, b.dest);
  argv.push('--uid', '65534', '--gid', '65534', '--chdir', s.chdir, '--seccomp', '6', '--');
  argv.push(...s.command);
  return argv;
}
