/** The sandbox itself, probed from inside by a real program: no network, no
 * host files, no secrets, no root, bounded processes and memory; and the
 * allow-list a runner locks itself under once its setup is done. */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, chmodSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { JobCgroup } from '../sandbox/cgroup.js';
import { launchArgv, jobUid, startedCommand, type LaunchSpec } from '../sandbox/isolation.js';
import { runCapped } from '../sandbox/process.js';
import { ensureToolchain } from '../sandbox/toolchain.js';
import { PACKAGE_ROOT } from '../tasks/paths.js';

/** A sandboxed command as Anvil starts candidates: bwrap, the limits of a small job, a bare PATH. */
function sandboxed(command: string[], spec: Partial<LaunchSpec>): string[] {
  return launchArgv({
    toolchain: ensureToolchain(),
    mode: 'bwrap',
    cgroup: null,
    uid: null,
    limits: { cpuSeconds: 20, fileBytes: 1 << 20, addressBytes: 16 * 1024 ** 3, nproc: 64, nofile: 64 },
    env: { PATH: '/usr/bin' },
    binds: [],
    chdir: '/tmp',
    command,
    ...spec,
  });
}

t.test('a program in the sandbox reaches nothing it should not', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'anvil-probe-'));
  chmodSync(dir, 0o755);
  execFileSync('gcc', ['-O1', '-o', path.join(dir, 'probe'), path.join(PACKAGE_ROOT, 'test', 'sandbox', 'probe.c')]);
  const cg = JobCgroup.create(`probe-${process.pid}`, { memoryBytes: 256 * 1024 ** 2, pids: 64 });
  t.ok(cg, 'this host offers cgroups');
  process.env.ANVIL_SECRET = 'hunter2';
  const argv = sandboxed(['/job/probe', path.join(PACKAGE_ROOT, 'package.json')], {
    cgroup: cg,
    uid: jobUid(200, 'candidate'),
    binds: [{ src: dir, dest: '/job' }],
    chdir: '/job',
  });
  const r = await runCapped(argv, { timeoutMs: 20_000, onTimeout: () => cg?.killAll() });
  delete process.env.ANVIL_SECRET;
  await cg?.destroy();
  const seen = Object.fromEntries(
    r.stdout
      .split('\n')
      .filter((l) => / (allowed|denied)$/.test(l))
      .map((l) => l.split(' ')),
  );
  t.same(
    seen,
    {
      read_host_file: 'denied',
      read_etc_passwd: 'denied',
      write_usr: 'denied',
      write_tmp: 'allowed',
      socket: 'denied',
      unix_socket: 'denied',
      secret_env: 'denied',
      root: 'denied',
      see_host_processes: 'denied',
      fork_500: 'denied',
    },
    r.stdout,
  );
  // The memory limit ends it: killed (SIGKILL, exit 137 through bwrap) well before 4 GiB.
  const mb = Math.max(0, ...[...r.stdout.matchAll(/^mb (\d+)$/gm)].map((m) => Number(m[1])));
  t.ok(mb < 512, `allocated ${mb} MiB under a 256 MiB limit`);
  t.notOk(r.stdout.includes('allocate_4g allowed'));
  t.ok(r.code === 137 || r.signal === 'SIGKILL', `exit ${r.code} ${r.signal}`);
});

t.test(
  'the GPU filter allows Unix sockets (the CUDA driver needs them) and still refuses every other family',
  async (t) => {
    const script = [
      'import socket',
      'for name, fam in (("unix", socket.AF_UNIX), ("inet", socket.AF_INET), ("inet6", socket.AF_INET6), ("netlink", socket.AF_NETLINK)):',
      '    try:',
      '        socket.socket(fam, socket.SOCK_STREAM if fam != socket.AF_NETLINK else socket.SOCK_RAW).close()',
      '        print(name, "allowed")',
      '    except OSError:',
      '        print(name, "denied")',
      'try:',
      '    a, b = socket.socketpair(); a.send(b"x"); print("socketpair", "allowed" if b.recv(1) == b"x" else "broken")',
      'except OSError:',
      '    print("socketpair denied")',
    ].join('\n');
    const run = async (gpu: boolean) => {
      const argv = sandboxed(['/usr/bin/python3', '-c', script], { uid: jobUid(201, 'candidate'), gpu });
      const r = await runCapped(argv, { timeoutMs: 20_000 });
      return Object.fromEntries(
        r.stdout
          .trim()
          .split('\n')
          .map((l) => l.split(' ')),
      );
    };
    t.same(await run(true), {
      unix: 'allowed',
      inet: 'denied',
      inet6: 'denied',
      netlink: 'denied',
      socketpair: 'allowed',
    });
    t.same(await run(false), {
      unix: 'denied',
      inet: 'denied',
      inet6: 'denied',
      netlink: 'denied',
      socketpair: 'denied',
    });
  },
);

t.test(
  'the runner allow-list leaves a call loop, malloc and threads, and refuses files, processes and executable memory',
  async (t) => {
    const tc = ensureToolchain();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'anvil-allowlist-'));
    execFileSync('gcc', [
      '-O1',
      '-pthread',
      '-I',
      tc.dir,
      '-o',
      path.join(dir, 'probe'),
      path.join(PACKAGE_ROOT, 'test', 'sandbox', 'allowlist_probe.c'),
    ]);
    const r = await runCapped([path.join(dir, 'probe')], { timeoutMs: 20_000 });
    t.equal(r.code, 0, r.stderr);
    const seen = Object.fromEntries(
      r.stdout
        .trim()
        .split('\n')
        .map((l) => l.split(' ')),
    );
    t.same(seen, {
      open: 'denied',
      open_proc_self_mem: 'denied',
      fork: 'denied',
      kill: 'denied',
      mmap_exec: 'denied',
      mmap_data: 'allowed',
      mprotect_exec: 'denied',
      madvise_remove: 'denied',
      madvise_dontneed: 'allowed',
      malloc_64m: 'allowed',
      thread: 'allowed',
      write_log: 'allowed',
      read_stdin: 'denied',
      write_stdin: 'denied',
      socket: 'denied',
    });
  },
);

t.test('a sandbox that did not start is told by the started signal, never by what stderr reads', async (t) => {
  const run = (argv: string[]) => runCapped(argv, { timeoutMs: 20_000, started: true });
  const fine = await run(sandboxed(startedCommand(['/bin/sh', '-c', 'exit 0']), {}));
  t.same([fine.code, fine.started], [0, true], fine.stderr);
  // bwrap fails: a bind whose source does not exist.
  const bwrap = await run(
    sandboxed(startedCommand(['/bin/true']), { binds: [{ src: '/nonexistent-anvil-bind', dest: '/job' }] }),
  );
  t.equal(bwrap.started, false, 'bwrap failed before the command started');
  t.not(bwrap.code, 0);
  t.match(bwrap.stderr, /^bwrap: /m, 'bwrap says why');
  // anvil-launch fails: the folder to start in does not exist (unsandboxed, anvil-launch changes into it itself).
  const launch = await run(sandboxed(startedCommand(['/bin/true']), { mode: 'none', chdir: '/nonexistent-anvil-dir' }));
  t.equal(launch.started, false, 'anvil-launch failed before the command started');
  t.equal(launch.code, 127);
  t.match(launch.stderr, /^anvil-launch: /m);
  // A command that started and fails as theirs do is still the command's failure.
  const mimic = await run(
    sandboxed(
      startedCommand([
        '/bin/sh',
        '-c',
        'echo "bwrap: Can\'t find source path" >&2; echo "anvil-launch: x: y" >&2; exit 1',
      ]),
      {},
    ),
  );
  t.same([mimic.code, mimic.started], [1, true], mimic.stderr);
  t.equal(
    (await runCapped(sandboxed(['/bin/true'], {}), { timeoutMs: 20_000 })).started,
    undefined,
    'asked only where wanted',
  );
});
