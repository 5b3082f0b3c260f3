/** One cgroup per sandboxed job, for memory and process-count limits, for
 * freezing a candidate between the judge's calls, and for killing a whole job
 * at once. cgroup v1 (memory, pids and freezer hierarchies) and v2 (one unified
 * hierarchy, controllers as delegated; every v2 group has cgroup.freeze) are
 * both supported. */
import {
  accessSync,
  constants,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';

export type CgroupVersion = 'v1' | 'v2' | 'none';

interface Layout {
  version: CgroupVersion;
  /** Parent folders under which job groups are made (v1: one per controller). */
  parents: string[];
  memory: boolean;
  pids: boolean;
  /** The freezer: v1's hierarchy, or v2's cgroup.freeze. */
  freezer: boolean;
}

let layout: Layout | null = null;

function writable(dir: string): boolean {
  try {
    accessSync(dir, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

function tryMkdir(dir: string): boolean {
  try {
    mkdirSync(dir, { recursive: true });
    return true;
  } catch {
    return false;
  }
}

/** Finds what this host offers, once; the parents go when the process exits. */
export function cgroupLayout(): Layout {
  if (layout) return layout;
  layout = findLayout();
  const parents = layout.parents;
  process.once('exit', () => {
    for (const p of parents) {
      try {
        rmdirSync(p);
      } catch {
        /* a job group still inside, or already gone */
      }
    }
  });
  return layout;
}

function findLayout(): Layout {
  const base = '/sys/fs/cgroup';
  const tag = `anvil-${process.pid}`;
  const mem = path.join(base, 'memory'),
    pids = path.join(base, 'pids'),
    freezer = path.join(base, 'freezer');
  if (existsSync(path.join(mem, 'memory.limit_in_bytes')) && writable(mem) && tryMkdir(path.join(mem, tag))) {
    const hasPids = existsSync(path.join(pids, 'pids.max')) || existsSync(path.join(pids, 'cgroup.procs'));
    const parents = [path.join(mem, tag)];
    const withPids = hasPids && tryMkdir(path.join(pids, tag));
    if (withPids) parents.push(path.join(pids, tag));
    const withFreezer =
      existsSync(path.join(freezer, 'cgroup.procs')) && writable(freezer) && tryMkdir(path.join(freezer, tag));
    if (withFreezer) parents.push(path.join(freezer, tag));
    return { version: 'v1', parents, memory: true, pids: withPids, freezer: withFreezer };
  }
  if (existsSync(path.join(base, 'cgroup.controllers'))) {
    // v2: work below our own group. A group with processes cannot hand
    // controllers to children, so this process first moves into a leaf.
    const own = readFileSync('/proc/self/cgroup', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('0::'));
    const ownDir = path.join(base, (own ?? '0::/').slice(3));
    const leaf = path.join(ownDir, `${tag}-server`);
    const jobs = path.join(ownDir, `${tag}-jobs`);
    try {
      mkdirSync(leaf, { recursive: true });
      writeFileSync(path.join(leaf, 'cgroup.procs'), String(process.pid));
      const available = readFileSync(path.join(ownDir, 'cgroup.controllers'), 'utf8').split(/\s+/);
      const want = ['memory', 'pids'].filter((c) => available.includes(c));
      for (const c of want) {
        try {
          writeFileSync(path.join(ownDir, 'cgroup.subtree_control'), `+${c}`);
        } catch {
          /* not delegated to us: go without it */
        }
      }
      mkdirSync(jobs, { recursive: true });
      const enabled = readFileSync(path.join(ownDir, 'cgroup.subtree_control'), 'utf8').split(/\s+/);
      for (const c of enabled.filter((c) => want.includes(c)))
        writeFileSync(path.join(jobs, 'cgroup.subtree_control'), `+${c}`);
      return {
        version: 'v2',
        parents: [jobs],
        memory: enabled.includes('memory'),
        pids: enabled.includes('pids'),
        freezer: true,
      };
    } catch {
      /* fall through: no usable v2 delegation */
    }
  }
  return { version: 'none', parents: [], memory: false, pids: false, freezer: false };
}

function startTime(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
  } catch {
    return Infinity;
  }
}

export interface CgroupLimits {
  memoryBytes: number;
  pids: number;
}

export class JobCgroup {
  readonly dirs: string[];
  private constructor(dirs: string[]) {
    this.dirs = dirs;
  }

  /** Kills every process of every group whose name starts with `prefix` (a job id):
   * how a cancellation reaches a job that runs in a pool worker. */
  static async killMatching(prefix: string): Promise<void> {
    const l = cgroupLayout();
    const names = new Set<string>();
    for (const p of l.parents) {
      try {
        for (const e of readdirSync(p)) if (e.startsWith(prefix)) names.add(e);
      } catch {
        /* parent gone */
      }
    }
    await Promise.all(
      [...names].map((n) =>
        new JobCgroup(l.parents.map((p) => path.join(p, n)).filter((d) => existsSync(d))).killAll(),
      ),
    );
  }

  /** Makes the job's group(s) with its limits; null where the host has no cgroups. */
  static create(name: string, limits: CgroupLimits): JobCgroup | null {
    const l = cgroupLayout();
    if (l.version === 'none') return null;
    const dirs = l.parents.map((p) => path.join(p, name));
    for (const d of dirs) mkdirSync(d, { recursive: true });
    const set = (file: string, value: string) => {
      for (const d of dirs) if (existsSync(path.join(d, file))) writeFileSync(path.join(d, file), value);
    };
    if (l.version === 'v1') {
      set('memory.limit_in_bytes', String(limits.memoryBytes));
      set('memory.swappiness', '0');
      set('pids.max', String(limits.pids));
    } else {
      set('memory.max', String(limits.memoryBytes));
      set('memory.swap.max', '0');
      set('pids.max', String(limits.pids));
    }
    return new JobCgroup(dirs);
  }

  /** The `cgroup.procs` files a process writes itself into to join. */
  procsFiles(): string[] {
    return this.dirs.map((d) => path.join(d, 'cgroup.procs'));
  }

  /** The file the judge writes to freeze and thaw the group (v1 freezer.state,
   * v2 cgroup.freeze); null where the host has no freezer. */
  freezeFile(): string | null {
    for (const d of this.dirs) {
      for (const f of ['freezer.state', 'cgroup.freeze']) if (existsSync(path.join(d, f))) return path.join(d, f);
    }
    return null;
  }

  /** Thaws the group: a v1 frozen task does not die of SIGKILL until it is thawed. */
  thaw(): void {
    const f = this.freezeFile();
    if (!f) return;
    try {
      writeFileSync(f, f.endsWith('freezer.state') ? 'THAWED' : '0');
    } catch {
      /* gone */
    }
  }

  pids(): number[] {
    const seen = new Set<number>();
    for (const f of this.procsFiles()) {
      try {
        for (const p of readFileSync(f, 'utf8').split('\n')) if (p) seen.add(Number(p));
      } catch {
        /* already gone */
      }
    }
    return [...seen];
  }

  /** True when the kernel killed something here for want of memory. */
  oomKilled(): boolean {
    for (const d of this.dirs) {
      for (const file of ['memory.oom_control', 'memory.events']) {
        try {
          const m = /oom_kill (\d+)/.exec(readFileSync(path.join(d, file), 'utf8'));
          if (m && Number(m[1]) > 0) return true;
        } catch {
          /* not this version's file */
        }
      }
    }
    return false;
  }

  /** Kills every process in the group, and waits until it is empty. The oldest
   * process (bubblewrap's monitor, whose parent reaps it) goes last, so that its
   * children are reaped by it rather than orphaned to the host's init. */
  async killAll(): Promise<void> {
    for (let round = 0; round < 200; round++) {
      const pids = this.pids();
      if (pids.length === 0) return;
      this.thaw();
      const oldest = pids.reduce((a, b) => (startTime(a) <= startTime(b) ? a : b));
      const spareOldest = round < 20 && pids.length > 1;
      if (round === 20) this.killByCgroup();
      for (const p of pids) {
        if (spareOldest && p === oldest) continue;
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  /** cgroup v2's atomic kill: the fallback when signals one by one fall behind (a fork bomb). */
  private killByCgroup(): void {
    for (const d of this.dirs) {
      const kill = path.join(d, 'cgroup.kill');
      if (!existsSync(kill)) continue;
      try {
        writeFileSync(kill, '1');
      } catch {
        /* signals go on */
      }
    }
  }

  async destroy(): Promise<void> {
    await this.killAll();
    for (const d of this.dirs) {
      for (let i = 0; i < 100; i++) {
        try {
          rmdirSync(d);
          break;
        } catch {
          await new Promise((r) => setTimeout(r, 10));
        }
      }
    }
  }
}
