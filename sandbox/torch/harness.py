"""The warm process of the torch backend: one per GPU (or per CPU compile
worker), started sandboxed by the TypeScript pool. It imports torch once (CUDA
is not initialized here) and forks a fresh judge per job (judge.py), which forks
the candidate's runner and a reference runner before it starts CUDA. This
process never runs candidate code; a candidate that crashes, hangs or corrupts
its CUDA context never touches the next job.

Protocol: one JSON request per line on stdin, one JSON answer per line on
stdout. The judge reports on a pipe of its own, every message prefixed with a
nonce; anything else on it is evidence of a forged verdict (the candidate has no
descriptor of it, so this is defence in depth). Logs go to files on the job's
scratch folder, never to the answer channel.

Each job gets a scratch folder on the sandbox's /tmp (a tmpfs with a size cap);
after the job every process but this one is killed and /tmp and /dev/shm are
emptied, so the next job sees nothing the last one wrote.

Per-stage deadlines are kept here, outside the judge: a kernel that never ends
blocks a process inside CUDA, where no signal handler of its own would run.
"""

import json
import math
import os
import secrets
import select
import shutil
import signal
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import torch  # noqa: E402  (imported once, before any fork)

try:  # Triton's import leaves CUDA alone (checked on an H100 host); children inherit it.
    import triton  # noqa: F401
    import triton.language  # noqa: F401
except ImportError:
    pass
# Not torch.utils.cpp_extension: importing it here initializes the CUDA driver,
# after which a forked child cannot use CUDA. Children import it themselves.

import guard  # noqa: E402
import judge  # noqa: E402
import measure  # noqa: E402
import runner as runner_mod  # noqa: E402

LOG_LIMIT = 4000
OOM = getattr(torch.cuda, "OutOfMemoryError", MemoryError)


def clean(x):
    """JSON without NaN/Inf (they become null)."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [clean(v) for v in x]
    return x


def child_main(job, nonce, wfd, log, runners):
    """In the forked child: run the job and write the verdict on the pipe."""
    runner_mod.redirect_stdio(log)
    sys.stdout.reconfigure(line_buffering=True)
    send = lambda msg: os.write(wfd, (nonce + json.dumps(clean(msg), allow_nan=False) + "\n").encode())
    current = [None]

    def stage(name):
        if current[0] != name:
            current[0] = name
            send({"stage": name})

    job_fn = {
        "run": lambda j, st: judge.run_job(j, st, runners),
        "compile": measure.compile_job,
        "health": measure.health_job,
    }[job["phase"]]
    try:
        result = job_fn(job, stage)
    except measure.Outcome as o:
        result = {"outcome": o.outcome, "message": o.message, "flags": o.flags, **o.extra}
    except OOM as e:
        result = {"outcome": "runtime_error", "message": f"out of memory: {str(e)[:300]}", "log": measure.tb_text(e)}
    except BaseException as e:
        text = str(e)
        # The judge never runs candidate code: its own failure is the environment's, never the model's.
        # (The build and device-check phases do run the candidate's import or the device, as before.)
        outcome = "env_error" if job["phase"] == "run" else "runtime_error"
        result = {
            "outcome": outcome,
            "message": f"{type(e).__name__}: {text[:400]}",
            "log": measure.tb_text(e),
            "deviceSuspect": "CUDA" in text or "cuda" in text,
        }
    try:
        send({"result": result})
    except Exception as e:  # an unserializable result is the harness's fault: say what it was
        send(
            {
                "result": {
                    "outcome": "runtime_error",
                    "message": f"harness could not send the result: {e}",
                    "log": measure.tb_text(e),
                }
            }
        )
    os._exit(0)


def kill_others():
    """Kills every process of this sandbox but this one (we are its init) and the spawner, and reaps them."""
    me = os.getpid()
    spare = (me, SPAWNER and SPAWNER.pid)
    mine = os.getpgid(0)
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) not in spare:
            try:
                group = os.getpgid(int(name))
                # A whole group at once: a chain of processes that keeps changing pid is never all
                # in one listing, but it cannot leave its group (the candidate's filter refuses setpgid).
                if group != mine:
                    os.killpg(group, signal.SIGKILL)
                os.kill(int(name), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.01)
            if not any(
                n.isdigit() and int(n) not in (me, SPAWNER and SPAWNER.pid) and _is_child(int(n))
                for n in os.listdir("/proc")
            ):
                return


def _is_child(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1]) == os.getpid()
    except OSError:
        return False


def read_log(path):
    try:
        with open(path, "rb") as f:
            return read_log_fd(f.fileno())
    except OSError:
        return ""


def read_log_fd(fd):
    size = os.fstat(fd).st_size
    return os.pread(fd, LOG_LIMIT, max(0, size - LOG_LIMIT)).decode("utf8", "replace")


def wipe(folder):
    """Empties a folder the sandbox owns (its /tmp, its /dev/shm)."""
    try:
        entries = os.listdir(folder)
    except OSError:
        return
    for name in entries:
        path = os.path.join(folder, name)
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)
        except OSError:
            pass


def run_one(job, in_sandbox):
    """Forks the judge, keeps its per-stage deadlines, returns its verdict."""
    nonce = secrets.token_hex(16)
    rfd, wfd = os.pipe()
    scratch = job.setdefault("scratchDir", os.path.join(job.get("scratchRoot", "/tmp"), f"job-{job['id']}"))
    os.makedirs(scratch, exist_ok=True)
    # The judge's log has no name: the candidate shares the sandbox's files, not this descriptor.
    log_path = os.path.join(scratch, f"judge-{secrets.token_hex(8)}.log")
    log = os.open(log_path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    os.unlink(log_path)
    t0 = time.monotonic()
    runners = (
        SPAWNER.spawn(job["device"], job.get("extDir", "/nonexistent"), scratch) if job["phase"] == "run" else None
    )
    pid = os.fork()
    if pid == 0:
        os.close(rfd)
        try:
            child_main(job, nonce, wfd, log, runners)
        finally:
            os._exit(70)
    os.close(wfd)
    for fd in runners[1] if runners else []:
        os.close(fd)
    deadlines = job["deadlinesMs"]
    stage, stage_start = "start", time.monotonic()
    stages_seen, result, forged, buf = [], None, [], b""
    timed_out = False
    while result is None:
        limit = deadlines.get(stage, deadlines.get("default", 60000)) / 1e3
        wait = stage_start + limit - time.monotonic()
        if wait <= 0:
            timed_out = True
            break
        ready, _, _ = select.select([rfd], [], [], min(wait, 1.0))
        if not ready:
            continue
        chunk = os.read(rfd, 1 << 16)
        if not chunk:
            break
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            text = line.decode("utf8", "replace")
            if not text.startswith(nonce):
                forged.append(text[:200])
                continue
            msg = json.loads(text[len(nonce) :])
            if "stage" in msg:
                stage, stage_start = msg["stage"], time.monotonic()
                stages_seen.append([stage, (time.monotonic() - t0) * 1e3])
            elif "result" in msg:
                result = msg["result"]
                break
    if timed_out:
        os.kill(pid, signal.SIGKILL)
    status = None
    if result is not None or timed_out:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    os.close(rfd)
    if in_sandbox:
        kill_others()
    text = (read_log_fd(log) + read_log(os.path.join(scratch, "candidate.log")))[-LOG_LIMIT:]
    os.close(log)
    if in_sandbox:
        wipe("/tmp")
        wipe("/dev/shm")
    else:
        shutil.rmtree(scratch, ignore_errors=True)
    answer = {"id": job["id"], "stagesSeen": stages_seen, "log": text, "ms": (time.monotonic() - t0) * 1e3}
    if forged:
        answer["forged"] = forged[:3]
    if timed_out:
        answer["death"] = {"kind": "timeout", "stage": stage, "limitMs": deadlines.get(stage, deadlines.get("default"))}
    elif result is None:
        sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        answer["death"] = {
            "kind": "signal" if sig else "exit",
            "signal": sig,
            "signalName": signal.Signals(sig).name if sig else None,
            "code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
            "stage": stage,
        }
    else:
        answer["result"] = result
    return answer


SPAWNER = None


def main():
    global SPAWNER
    in_sandbox = os.getpid() == 1
    # Nothing of this process may be reached from a job's processes, which share its uid: not its
    # memory (/proc/1/mem), nor its descriptors (/proc/1/fd: the judge's result pipe). Inherited by
    # the judge and the spawner; the candidate's runner sets itself dumpable again.
    guard.protect_judge()
    out = sys.stdout
    if sys.argv[1:] == ["once"]:
        # A fresh process for one job (compile jobs, which need a sandbox of their own, and run no runners).
        job = json.loads(sys.stdin.readline())
        out.write(json.dumps(clean(run_one(job, in_sandbox)), allow_nan=False) + "\n")
        return
    # Before any job is read: the runners it forks must carry nothing of any job.
    SPAWNER = runner_mod.Spawner()
    out.write(json.dumps({"ready": True, "pid": os.getpid(), "torch": torch.__version__}) + "\n")
    out.flush()
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            job = json.loads(line)
            answer = run_one(job, in_sandbox)
        except Exception as e:  # a harness fault, never the candidate's: reported as such
            answer = {
                "id": job.get("id") if isinstance(job, dict) else None,
                "harnessError": "".join(traceback.format_exception(type(e), e, e.__traceback__))[-LOG_LIMIT:],
            }
        out.write(json.dumps(clean(answer), allow_nan=False) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
