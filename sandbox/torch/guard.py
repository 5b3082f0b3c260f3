"""The walls between the judge and the candidate's process, which share a
sandbox (CUDA IPC needs one PID namespace) and a uid.

- The judge makes itself non-dumpable: no process of its uid can then open its
  /proc/PID/mem, fd, environ or maps (ptrace and process_vm_* are refused by the
  sandbox's seccomp filter already).
- The candidate's process starts a session of its own (every process it starts
  stays in it, since setsid is refused to them), asks the OOM killer to take it
  first, and adds a seccomp filter: signals only to itself, no new sessions or
  process groups (so one killpg reaches every process it has), no pidfds. An
  extension is built ahead in a sandbox of its own; a build in the job itself
  (with ninja, which makes process groups) fails.
- The judge stops the candidate's session (SIGSTOP) whenever it is not being
  called, and reads its CPU time from /proc (schedstat, in nanoseconds): work
  done while it should be stopped, or after it replied, is seen there.
"""

import ctypes
import os
import signal
import struct
import time

_libc = ctypes.CDLL(None, use_errno=True)

PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 4, 38, 22, 2
AUDIT_ARCH_X86_64 = 0xC000003E
RET_ALLOW, RET_EPERM = 0x7FFF0000, 0x00050001
# x86_64 numbers. Signals that name a target are allowed only at the process itself.
SIGNAL_SYSCALLS = {"kill": 62, "tgkill": 234, "rt_sigqueueinfo": 129, "rt_tgsigqueueinfo": 297}
DENIED_SYSCALLS = {
    "tkill": 200,
    "setsid": 112,
    "setpgid": 109,
    "ptrace": 101,
    "process_vm_readv": 310,
    "process_vm_writev": 311,
    "kcmp": 312,
    "pidfd_open": 434,
    "pidfd_send_signal": 424,
    "pidfd_getfd": 438,
}


def protect_judge():
    if _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")


def _filter(own_pid):
    """A classic-BPF seccomp program, as bytes (struct sock_filter[])."""
    ld = lambda off: (0x20, 0, 0, off)
    prog = [ld(4), ("jeq", AUDIT_ARCH_X86_64, None, "allow"), ld(0)]
    for nr in SIGNAL_SYSCALLS.values():
        prog.append(("jeq", nr, "target", None))
    for nr in DENIED_SYSCALLS.values():
        prog.append(("jeq", nr, "deny", None))
    labels = {}
    prog += [
        ("label", "allow"),
        (0x06, 0, 0, RET_ALLOW),
        ("label", "target"),
        ld(16),
        ("jeq", own_pid, None, "deny"),
        ld(20),
        ("jeq", 0, None, "deny"),
        (0x06, 0, 0, RET_ALLOW),
        ("label", "deny"),
        (0x06, 0, 0, RET_EPERM),
    ]  # BPF jumps only forward: each block ends in its own return
    out = []
    for ins in prog:
        if ins[0] == "label":
            labels[ins[1]] = len(out)
        else:
            out.append(ins)
    code = b""
    # A jump's offset counts the instructions it skips, from the one after instruction `at`.
    rel = lambda target, at: 0 if target is None else labels[target] - at - 1
    for i, ins in enumerate(out):
        if ins[0] == "jeq":
            _, k, jt, jf = ins
            code += struct.pack("HBBI", 0x15, rel(jt, i), rel(jf, i), k)
        else:
            code += struct.pack("HBBI", *ins)
    return code, len(out)


class _Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def confine_candidate():
    """In the candidate's process, before any of its code runs."""
    os.setsid()
    # Dumpable (its parent was not): the judge reads its outputs from /proc/PID/mem.
    _libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        pass
    if os.uname().machine != "x86_64":
        return
    code, n = _filter(os.getpid())
    buf = ctypes.create_string_buffer(code, len(code))
    prog = _Fprog(n, ctypes.cast(buf, ctypes.c_void_p))
    if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    if _libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP) failed")


def _stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return rest[0], int(rest[3])  # state, session


def session_pids(sid):
    """Every live process of the candidate's session (it cannot leave it)."""
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                state, session = _stat(int(name))
            except (OSError, IndexError, ValueError):
                continue
            if session == sid and state not in ("Z", "X"):
                pids.append(int(name))
    return pids


def cpu_ns(sid):
    """CPU time of every thread of the session, in nanoseconds."""
    total = 0
    for pid in session_pids(sid):
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total


def signal_session(sid, sig):
    for pid in session_pids(sid):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def stop_session(sid, timeout_s=1.0):
    """Stops every process of the session; True once no thread of it is running."""
    deadline = time.monotonic() + timeout_s
    try:  # one signal to the whole group first: its processes cannot leave it
        os.killpg(sid, signal.SIGSTOP)
    except (ProcessLookupError, PermissionError):
        pass
    while True:
        signal_session(sid, signal.SIGSTOP)
        running = False
        for pid in session_pids(sid):
            try:
                for tid in os.listdir(f"/proc/{pid}/task"):
                    with open(f"/proc/{pid}/task/{tid}/stat") as f:
                        if f.read().rsplit(")", 1)[1].split()[0] == "R":
                            running = True
            except OSError:
                continue
        if not running:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.0002)


def resume_session(sid):
    """One signal to the group: no scan of /proc, whose length the candidate could stretch (with
    thousands of zombies) into time to work before a clock starts."""
    try:
        os.killpg(sid, signal.SIGCONT)
    except (ProcessLookupError, PermissionError):
        pass


def kill_session(sid):
    try:
        os.killpg(sid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    signal_session(sid, signal.SIGKILL)
