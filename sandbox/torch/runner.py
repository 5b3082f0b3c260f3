"""A runner process: imports one module (the candidate's, or the task's
reference), builds its model, and calls it on the inputs the judge shares,
answering with where its outputs lie. The candidate's runner is untrusted: the
candidate can rewrite anything here, so the judge believes none of its words
that it cannot check (outputs are read from memory, never from the reply).

Requests and answers are JSON lines (wire.py). Operations:
  load     import the module (candidate: through the load_inline cache shim)
  model    build the model with the task's init inputs and a seed; take the
           reference's parameters where their names and shapes match
  alloc    (GPU) device buffers of its own for the inputs; their IPC handles
  map      (CPU) map the judge's input files
  call     run the model on the shared inputs; on a GPU, wait for the judge's
           gate event first and record the done event after
  profile  the share of time spent in the module's own kernels
"""

import json
import os
import signal
import socket
import sys
import traceback

import torch

import guard

import share
from wire import Channel

LOG_LIMIT = 4000


def tb_text(e):
    return "".join(traceback.format_exception(type(e), e, e.__traceback__))[-LOG_LIMIT:]


class Runner:
    def __init__(self, chan, device, ext_dir, role):
        self.chan = chan
        self.cuda = device == "cuda"
        self.dev = torch.device("cuda:0" if self.cuda else "cpu")
        import measure

        self.mdev = measure.Device(device)
        self.ext_dir = ext_dir
        self.role = role
        self.module = None
        self.models = {}
        self.buffers = []  # GPU: DeviceBuffer; CPU: uint8 tensors over the judge's files
        self.opened = share.OpenedHandles() if self.cuda else None
        self.keep = []  # the last call's outputs, alive until the next call
        self.launched = []
        self.build_errors = []
        self.gate = self.done = None

    def serve(self):
        while True:
            try:
                msg = self.chan.recv(10**6)
            except Exception:
                return
            op = msg.get("op")
            try:
                answer = (
                    getattr(self, f"op_{op}")(msg)
                    if op in OPS
                    else {"error": "protocol", "message": f"unknown op {op!r}"}
                )
            except share.ShareError as e:
                answer = {"error": "share", "message": str(e)[:400]}
            except BaseException as e:  # the module's own exception: the judge decides what it means
                text = str(e)
                answer = {
                    "error": "exception",
                    "type": type(e).__name__,
                    "message": text[:400],
                    "log": tb_text(e),
                    "oom": isinstance(e, getattr(torch.cuda, "OutOfMemoryError", MemoryError))
                    or isinstance(e, MemoryError),
                    "deviceSuspect": "CUDA" in text or "cuda" in text,
                }
            self.chan.send(answer)

    def op_hello(self, msg):
        if not self.cuda:
            return {"ok": True}
        self.done, done_handle = share.ipc_event()
        self.gate = share.open_event(msg["gate"])
        return {"ok": True, "done": done_handle}

    def op_load(self, msg):
        import measure

        os.environ["TORCH_EXTENSIONS_DIR"] = msg["buildDir"]
        if msg.get("torchCudaArchList"):
            os.environ["TORCH_CUDA_ARCH_LIST"] = msg["torchCudaArchList"]
        if self.role == "candidate" and msg.get("extensions"):
            # Only where the source names it: importing cpp_extension costs a quarter of a second.
            measure.install_load_inline_shim(self.build_errors, self.ext_dir)
            measure.install_triton_hook(self.launched)
        before = measure.watched_functions()
        try:
            mod = measure.load_module(msg["name"], msg.get("path"), msg.get("source"))
        except BaseException as e:
            return {
                "error": "import",
                "type": type(e).__name__,
                "message": str(e)[:300],
                "log": tb_text(e),
                "buildError": self.build_errors[-1] if self.build_errors else None,
                "syntax": isinstance(e, SyntaxError),
            }
        self.module = mod
        after = measure.watched_functions()
        return {
            "ok": True,
            "patched": sorted(k for k in before if after.get(k) is not before[k]),
            "hasModel": hasattr(mod, msg["cls"]),
        }

    def op_model(self, msg):
        cls = getattr(self.module, msg["cls"])
        torch.manual_seed(msg["seed"])
        model = cls(*msg["init"]).to(self.dev).eval()
        state = msg.get("state")
        mine = model.state_dict()
        loaded = False
        if state and sorted(mine) == sorted(s["name"] for s in state):
            tensors = {s["name"]: self.tensor(s["desc"]) for s in state}
            if all(tuple(mine[k].shape) == tuple(v.shape) for k, v in tensors.items()):
                with torch.no_grad():
                    model.load_state_dict(tensors)
                loaded = True
        self.models[msg["id"]] = model
        return {"ok": True, "loaded": loaded}

    def op_alloc(self, msg):
        handles = []
        for n in msg["nbytes"]:
            b = share.DeviceBuffer(n)
            self.buffers.append(b)
            handles.append(b.handle)
        return {"ok": True, "handles": handles, "first": len(self.buffers) - len(handles)}

    def op_map(self, msg):
        first = len(self.buffers)
        for path, n in zip(msg["paths"], msg["nbytes"]):
            self.buffers.append(share.file_tensor(path, n))
        return {"ok": True, "first": first}

    def tensor(self, desc):
        """A tensor the judge shares: one of this runner's buffers, an IPC handle of the judge's, or a file."""
        if "buf" in desc:
            b = self.buffers[desc["buf"]]
            return share.view(b.raw if self.cuda else b, desc)
        if self.cuda:
            return share.view(self.opened.raw(desc["handle"]), desc)
        return share.view(share.file_tensor(desc["path"], desc["nbytes"]), desc)

    def args(self, specs):
        return [self.tensor(s) if "value" not in s else s["value"] for s in specs]

    def op_call(self, msg):
        import measure

        model = self.models[msg["model"]]
        xs = self.args(msg["args"])
        self.keep = []
        if msg.get("poison"):
            measure.poison(self.mdev, xs)
        stream = torch.cuda.current_stream() if self.cuda else None
        if self.cuda and msg.get("gated"):
            stream.wait_event(self.gate)
        with torch.no_grad():
            out = model(*xs)
        if self.cuda:
            self.done.record(stream)
            if not msg.get("gated"):
                # Untimed calls end synchronized: a kernel's fault is this call's error, here,
                # not a done event that never comes.
                torch.cuda.synchronize()
        outs = list(out) if isinstance(out, (tuple, list)) else [out]
        self.keep = outs
        return {"ok": True, "outputs": [self.describe(o) for o in outs]}

    def describe(self, t):
        if not isinstance(t, torch.Tensor):
            return {"kind": "other", "type": f"{type(t).__module__}.{type(t).__qualname__}"}
        exact = type(t) is torch.Tensor
        base = t.as_subclass(torch.Tensor) if not exact else t
        item = base.element_size()
        if base.is_cuda:
            handle, byte_off = share.export_cuda(base)
            where = {"handle": handle, "offset": byte_off // item + base.storage_offset()}
        else:
            storage = base.untyped_storage() if hasattr(base, "untyped_storage") else base.storage()
            where = {"addr": storage.data_ptr(), "offset": base.storage_offset()}
        return {"kind": "tensor", **share.describe(base), **where, "exact": exact, "device": base.device.type}

    def op_profile(self, msg):
        import measure

        model = self.models[msg["model"]]
        xs = self.args(msg["args"])
        with torch.no_grad():
            prof = measure.profile(model, xs, self.mdev, self.launched, self.ext_dir)
        return {"ok": True, "profile": prof}


OPS = {"hello", "load", "model", "alloc", "map", "call", "profile"}


def redirect_stdio(log):
    """stdin from /dev/null, stdout and stderr to the log descriptor (which is closed); the file
    objects stay, their descriptors now lead to the log."""
    sys.stdout.flush()
    sys.stderr.flush()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    os.close(null)


def runner_main(rfd, wfd, device, ext_dir, role, log_path, work_dir):
    """The runner process's body: its stdout and stderr go to its log, never to a channel."""
    redirect_stdio(os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
    os.makedirs(work_dir, exist_ok=True)
    os.chdir(work_dir)
    os.environ.update(TMPDIR=work_dir, HOME=work_dir, TRITON_CACHE_DIR=os.path.join(work_dir, ".triton"))
    if device == "cuda":  # at once, while the judge and the other runner start theirs
        torch.cuda.init()
        torch.zeros(1, device="cuda")
    Runner(Channel(rfd, wfd), device, ext_dir, role).serve()


def spawner_main(sock):
    """A pristine process, forked by the harness before it read any job, that forks runner pairs on
    request and hands their pipes over the socket. Nothing of any job (seed, reference, shapes) is in
    its memory, so nothing of one is in a runner's: a runner forked from the judge would carry the
    judge's job in its copy of memory, where the candidate could read it."""
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the runners
    while True:
        data = sock.recv(1 << 16)
        if not data:
            os._exit(0)
        req = json.loads(data)
        fds, pids = [], []
        for role in ("candidate", "reference"):
            p2c_r, p2c_w = os.pipe()
            c2p_r, c2p_w = os.pipe()
            pid = os.fork()
            if pid == 0:
                _runner_child(role, req, p2c_r, c2p_w)
            os.close(p2c_r)
            os.close(c2p_w)
            fds += [c2p_r, p2c_w]
            pids.append(pid)
        socket.send_fds(sock, [json.dumps({"pids": pids}).encode()], fds)
        for fd in fds:
            os.close(fd)


def _runner_child(role, req, rfd, wfd):
    log_path = os.path.join(req["scratchDir"], f"{role}.log")
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the spawner's setting is not the runner's
    try:
        for fd in map(int, os.listdir("/proc/self/fd")):
            if fd > 2 and fd not in (rfd, wfd):
                try:
                    os.close(fd)
                except OSError:
                    pass
        if role == "candidate":
            guard.confine_candidate()
        else:
            os.setsid()
            guard.protect_judge()  # the candidate must not reach into the reference's memory either
        runner_main(rfd, wfd, req["device"], req["extDir"], role, log_path, os.path.join(req["scratchDir"], role))
    except BaseException as e:  # the runner could not start: say why in its log
        with open(log_path, "a") as f:
            f.write(tb_text(e))
    finally:
        os._exit(0)


class Spawner:
    """The harness's handle on the spawner process."""

    def __init__(self):
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.pid = os.fork()
        if self.pid == 0:
            self.sock.close()
            try:
                spawner_main(theirs)
            finally:
                os._exit(0)
        theirs.close()

    def spawn(self, device, ext_dir, scratch_dir):
        """(pids, fds): the candidate's and the reference runner's pids, and [cand_r, cand_w, ref_r, ref_w]."""
        self.sock.send(json.dumps({"device": device, "extDir": ext_dir, "scratchDir": scratch_dir}).encode())
        msg, fds, _, _ = socket.recv_fds(self.sock, 1 << 16, 4)
        if len(fds) != 4:
            raise RuntimeError("the runner spawner did not answer")
        return json.loads(msg)["pids"], fds
