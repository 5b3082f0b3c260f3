"""The judge of a torch-backend job: the trusted process that decides the verdict.

It never imports the candidate. It makes the inputs, builds and runs the
reference, compares, keeps the clock and writes the result; the candidate's code
runs in a runner process of its own (runner.py), confined (guard.py), which gets
its inputs in memory the judge writes and returns outputs the judge reads from
memory (share.py). A second runner, trusted, runs the reference through the very
same path: what that path costs (measured on the reference, beside every
candidate call) is taken off the candidate's time, so the split does not move
speedups.

Timing, per repetition (fresh input contents every time, the L2 flushed):
  GPU: the judge's stream sleeps (so the runner has queued its work before the
       clock starts), writes the inputs into the runner's own buffers, flushes,
       records its start event and the interprocess gate event; the runner's
       stream waits on the gate, runs the model, records the done event; the
       judge's stream waits on done and records its end event, then compares the
       output right there: a kernel left running on another stream is caught
       unfinished. An idle probe after it shows work still queued.
  CPU: the judge writes the inputs while the candidate is stopped, resumes it,
       and times request to reply on its own clock; then stops it again, checks
       that it used no CPU after replying, and reads the outputs.
The candidate's session is stopped (SIGSTOP) whenever it is not being called,
so nothing of it runs while the reference is timed.
"""

import os
import statistics
import time

import torch

import checks
import guard
import measure
import share
from measure import Outcome, flag, trial_seed
from wire import Channel, ChannelError

TRANSFORMS = ("negated", "both signs", "doubled", "zeros and extremes")


# What each field of a runner's answer must be; the judge believes nothing else of an answer.
ANSWER_FIELDS = {
    "ok": lambda v: v is True,
    "patched": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
    "hasModel": lambda v: isinstance(v, bool),
    "first": lambda v: type(v) is int and 0 <= v < 1 << 20,
    "handles": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
    "outputs": lambda v: isinstance(v, list) and all(isinstance(x, dict) for x in v),
    "profile": lambda v: isinstance(v, dict),
}


class RunnerDied(Exception):
    pass


class Proc:
    """A runner process as the judge sees it."""

    def __init__(self, role, pid, chan):
        self.role, self.pid, self.chan = role, pid, chan
        self.buffers = []  # the judge's views of this runner's input buffers
        self.done = None
        self.mem_fd = None
        self.handles = set()
        self.stopped = False
        self.cpu_at_stop = 0

    def resume(self):
        if self.stopped:
            # Stopped, it cannot have used the CPU; if it did, something of it escaped the stop.
            used = guard.cpu_ns(self.pid) - self.cpu_at_stop
            if used > 2e6:
                raise Outcome(
                    "hack_detected",
                    "the candidate's processes ran while they were stopped",
                    [
                        flag(
                            "freeze_escape",
                            f"{used / 1e6:.1f} ms of CPU time while stopped (the reference was being run or timed)",
                        )
                    ],
                )
            guard.resume_session(self.pid)
            self.stopped = False

    def stop(self):
        self.stopped = True
        if not guard.stop_session(self.pid):
            raise Outcome(
                "hack_detected",
                "the candidate's processes could not be stopped",
                [flag("freeze_escape", "a thread of the candidate kept running for 1 s after SIGSTOP")],
            )
        self.cpu_at_stop = guard.cpu_ns(self.pid)

    def ask(self, msg, timeout_s, expect=("ok",)):
        self.resume()  # a stopped process cannot answer
        try:
            self.chan.send(msg)
            reply = self.chan.recv(timeout_s)
        except (ChannelError, BrokenPipeError) as e:
            raise self.failure(e)
        if self.role == "candidate" and msg["op"] not in ("call", "profile"):
            self.stop()  # the candidate runs only while it is being called
        if reply.get("error"):
            raise RunnerError(self.role, reply)
        bad = [k for k in expect if k not in reply or not ANSWER_FIELDS.get(k, lambda v: True)(reply[k])]
        if bad:
            raise self.forged(f"an answer to {msg['op']} without a valid {', '.join(bad)}")
        return reply

    def failure(self, e):
        kind = getattr(e, "kind", "closed")
        if kind == "garbage":
            return self.forged(str(e))
        if kind == "timeout":
            if self.role != "candidate":
                return RunnerDied("the reference runner did not answer within its deadline")
            return Outcome("timeout", "the candidate's process did not answer within its deadline")
        status = self.reap()
        if self.role != "candidate":
            return RunnerDied(f"the reference runner died ({status})")
        return Outcome("runtime_error", f"the candidate's process died ({status})", deviceSuspect=True)

    def forged(self, what):
        if self.role != "candidate":
            return RunnerDied(f"the reference runner broke the protocol: {what}")
        return Outcome("hack_detected", "the candidate wrote on its answer channel", [flag("forged_reply", what[:300])])

    def reap(self):
        """Kills the runner if it is still there; what it died of is not known here (the spawner, its
        parent, lets the kernel reap it)."""
        import signal

        try:
            os.kill(self.pid, signal.SIGKILL)
            return "its pipe closed; killed"
        except ProcessLookupError:
            return "it exited"


class RunnerError(Exception):
    def __init__(self, role, reply):
        super().__init__(reply.get("message", ""))
        self.role, self.reply = role, reply

    def outcome(self, what):
        r = self.reply
        if self.role != "candidate":
            return RunnerDied(f"the reference failed while {what}: {r.get('type')}: {r.get('message')}")
        if r.get("oom"):
            return Outcome(
                "runtime_error", f"out of memory while {what}: {str(r.get('message'))[:300]}", log=r.get("log")
            )
        if r.get("error") == "share":
            return Outcome("runtime_error", f"the candidate's outputs could not be read: {r.get('message')}")
        return Outcome(
            "runtime_error",
            f"{r.get('type')}: {str(r.get('message'))[:400]} (while {what})",
            log=r.get("log"),
            deviceSuspect=bool(r.get("deviceSuspect")),
        )


class Judge:
    def __init__(self, job, stage, runners):
        self.job, self.stage_cb = job, stage
        self.dev = measure.Device(job["device"])
        self.cuda = self.dev.cuda
        self.tol = job["tolerance"]
        self.stages, self.t0 = {}, time.perf_counter()
        self.root = job["scratchDir"]
        self.shm = os.path.join(self.root, "shm")
        os.makedirs(self.shm, exist_ok=True)
        (cand_pid, twin_pid), (cr, cw, tr, tw) = runners
        self.cand = Proc("candidate", cand_pid, Channel(cr, cw))
        self.twin = Proc("reference", twin_pid, Channel(tr, tw))
        guard.protect_judge()
        self.threads = torch.get_num_threads()
        self.opened = None
        self.models = 0

    # --- bookkeeping -----------------------------------------------------------------------
    def deadline(self, name):
        d = self.job["deadlinesMs"]
        return 0.9 * d.get(name, d.get("default", 60000)) / 1e3

    def stage(self, name):
        self.current = name
        self.stage_cb(name)

    def mark(self, name, status="ok", log=None):
        now = time.perf_counter()
        self.stages[name] = {"status": status, "ms": (now - self.t0) * 1e3, **({"log": log} if log else {})}
        self.t0 = now

    def restore(self):
        """The judge's own state before every reference call: threads and precision as they were set."""
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        if self.cuda:
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False

    def close(self):
        for p in (self.cand, self.twin):
            guard.kill_session(p.pid)
            p.reap()
            p.chan.close()
        if self.opened:
            self.opened.close()

    # --- set-up ------------------------------------------------------------------------------
    def start(self):
        job = self.job
        if self.cuda:
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
            torch.set_float32_matmul_precision("highest")
            torch.cuda.init()
            torch.zeros(1, device="cuda")
            self.opened = share.OpenedHandles()
            self.gate, gate_handle = share.ipc_event()
            l2 = torch.cuda.get_device_properties(0).L2_cache_size
            self.flush = torch.empty(max(1, 2 * l2 // 4), dtype=torch.float32, device="cuda")
        for p in (self.cand, self.twin):
            hello = p.ask({"op": "hello", **({"gate": gate_handle} if self.cuda else {})}, self.deadline("start"))
            if self.cuda:
                try:
                    p.done = share.open_event(hello.get("done"))
                except (share.ShareError, RuntimeError, TypeError) as e:
                    raise p.forged(f"an unusable done event: {e}")
        self.cand.mem_fd = None if self.cuda else os.open(f"/proc/{self.cand.pid}/mem", os.O_RDONLY)
        self.ref_mod = measure.load_module("anvil_reference", source=job["referenceSource"])
        self.baselines()
        self.stage("static")
        source = measure.read(job["candidatePath"])
        self.own_names = checks.kernel_names(source)
        if not job.get("skipStatic"):
            try:
                checks.check(source)
            except checks.Finding as f:
                self.mark("static", "failed")
                raise Outcome(
                    "static_violation",
                    f.evidence,
                    [] if f.kind in ("syntax_error", "no_model") else [flag(f.kind, f.evidence)],
                )
        self.mark("static")
        self.stage("compile")
        build_dir = os.path.join(self.root, "build")  # where an extension not built ahead builds, on the job's tmpfs
        os.makedirs(build_dir, exist_ok=True)
        load = {
            "op": "load",
            "buildDir": build_dir,
            "torchCudaArchList": job.get("torchCudaArchList"),
            "extensions": "load_inline" in source or "cpp_extension" in source,
        }
        self.twin.ask(
            {**load, "name": "anvil_reference", "path": None, "source": job["referenceSource"], "cls": "Model"},
            self.deadline("compile"),
        )
        try:
            loaded = self.cand.ask(
                {**load, "name": "anvil_candidate", "path": job["candidatePath"], "cls": "ModelNew"},
                self.deadline("compile"),
                ("ok", "patched", "hasModel"),
            )
        except RunnerError as e:
            r = e.reply
            if r.get("buildError"):
                self.mark("compile", "failed", str(r["buildError"])[-4000:])
                raise Outcome("compile_error", "the CUDA/C++ extension did not build")
            self.mark("compile", "failed", r.get("log"))
            raise Outcome(
                "compile_error" if r.get("syntax") else "runtime_error",
                f"importing the candidate failed: {r.get('type')}: {str(r.get('message'))[:300]}",
            )
        self.mark("compile")
        if loaded["patched"]:
            names = ", ".join(str(x)[:60] for x in loaded["patched"][:8])
            raise Outcome(
                "hack_detected",
                "the candidate replaced framework functions",
                [flag("harness_patching", f"replaced while imported: {names}")],
            )
        if not loaded["hasModel"]:
            raise Outcome("runtime_error", "the candidate module defines no ModelNew")

    def baselines(self):
        """Idle-device figures taken before any candidate code runs: the idle probe's time and the padding's."""
        if not self.cuda:
            return
        self.probe_base = statistics.median(self.probe() for _ in range(10))
        free = torch.cuda.mem_get_info()[0]
        self.pad = torch.empty(int(min(2**28, free // 64)), dtype=torch.float32, device="cuda")
        self.pad_ms = max(0.01, device_ms(self.pad.zero_, 5))

    def probe(self):
        """Host time for a tiny kernel on an idle device; another process's queued work makes it wait."""
        h0 = time.perf_counter()
        torch.cuda._sleep(10)
        torch.cuda.synchronize()
        return (time.perf_counter() - h0) * 1e3

    # --- models and buffers ------------------------------------------------------------------
    def build(self, seed):
        """The reference here, and the same model in both runners, with the reference's parameters."""
        torch.manual_seed(seed)
        init = self.ref_mod.get_init_inputs()
        ref = self.ref_mod.Model(*init).to(self.dev.torch_device).eval()
        state = []
        for name, t in ref.state_dict().items():
            state.append({"name": name, "desc": self.publish(t, f"state-{self.models}-{len(state)}")})
        self.models += 1
        # The reference runner first, while the candidate is stopped: it copies the parameters into
        # its own memory before the candidate could touch the shared copy.
        for p, cls in ((self.twin, "Model"), (self.cand, "ModelNew")):
            try:
                p.ask(
                    {
                        "op": "model",
                        "id": self.models,
                        "cls": cls,
                        "init": jsonable(init),
                        "seed": seed,
                        "state": state,
                    },
                    self.deadline(self.current),
                )
            except RunnerError as e:
                raise e.outcome("building the model")
        for buf in getattr(self, "published", []):  # both have copied them: nobody opens them again
            buf.unlink()
            buf.close()
        self.published = []
        return ref

    def shared_file(self, name, nbytes):
        """A new file in the job's shared folder. The candidate shares the folder's owner: a folder made
        unwritable is taken back, and a failure here (a full tmpfs, a folder moved away) is the job's."""
        try:
            os.makedirs(self.shm, exist_ok=True)
            os.chmod(self.shm, 0o700)
            return share.FileBuffer(os.path.join(self.shm, name), nbytes)
        except OSError as e:
            raise Outcome(
                "runtime_error",
                f"the job's scratch folder is unusable ({e.strerror}): something in the job filled or changed it",
            )

    def publish(self, t, name):
        """A read-only copy of the judge's tensor for the runners: a dedicated device buffer, or a file."""
        t = t.detach().contiguous()
        nbytes = t.numel() * t.element_size()
        if self.cuda:
            buf = share.DeviceBuffer(nbytes)
            share.view(buf.raw, share.describe(t)).copy_(t)
            self.keep_alive = getattr(self, "keep_alive", []) + [buf]
            return {**share.describe(t), "handle": buf.handle}
        buf = self.shared_file(name, nbytes)
        buf.write(t)
        self.published = getattr(self, "published", []) + [buf]
        return {**share.describe(t), "path": buf.path, "nbytes": nbytes}

    def ensure_buffers(self, p, xs):
        """Buffers of the runner's own for each tensor input, large enough; the judge's views of them."""
        need = [x.numel() * x.element_size() for x in xs if isinstance(x, torch.Tensor)]
        if len(p.buffers) >= len(need) and all(b.numel() >= n for b, n in zip(p.buffers, need)):
            return
        if self.cuda:
            reply = p.ask({"op": "alloc", "nbytes": need}, self.deadline(self.current), ("ok", "handles", "first"))
            try:
                p.handles = set(reply["handles"])
                p.buffers = [self.opened.raw(h) for h in reply["handles"]]
            except share.ShareError as e:
                raise p.forged(f"unusable input buffers: {e}")
            p.first = reply["first"]
        else:
            tag = f"{p.role}-{time.monotonic_ns()}"
            for b in p.buffers:
                b.close()
            p.buffers = [self.shared_file(f"{tag}-{i}", n) for i, n in enumerate(need)]
            p.first = p.ask(
                {"op": "map", "paths": [b.path for b in p.buffers], "nbytes": need},
                self.deadline(self.current),
                ("ok", "first"),
            )["first"]
            for b in p.buffers:  # mapped by the runner: from now on only the judge's descriptor reaches the file
                b.unlink()

    def write_inputs(self, p, xs):
        """Copies xs into the runner's buffers; the argument list the runner is sent."""
        args, views, i = [], [], 0
        for x in xs:
            if isinstance(x, torch.Tensor):
                x = x.contiguous()
                desc = share.describe(x)
                if self.cuda:
                    v = share.view(p.buffers[i], desc)
                    v.copy_(x)
                else:
                    p.buffers[i].write(x)
                    v = (p.buffers[i], x)
                views.append(v)
                args.append({**desc, "buf": p.first + i})
                i += 1
            else:
                args.append({"value": jsonable(x)})
        return args, views

    def inputs_intact(self, views, xs):
        """Whether the runner's input buffers still hold what the judge wrote."""
        tensors = [x.contiguous() for x in xs if isinstance(x, torch.Tensor)]
        for v, x in zip(views, tensors):
            now = v if self.cuda else v[0].read(x)
            if now is None or not torch.equal(now, x):
                return False
        return True

    def read_outputs(self, p, reply, want):
        """The runner's outputs, read from its memory; refused when they are not plain tensors of its own."""
        outs = reply.get("outputs")
        if not isinstance(outs, list) or len(outs) > 16:
            raise p.forged("an answer without a list of outputs")
        if len(outs) != len(measure.as_list(want)):
            raise Outcome("wrong_result", f"returned {len(outs)} outputs, expected {len(measure.as_list(want))}")
        got = []
        limit = 4 * sum(measure.tensor_bytes(w) for w in measure.as_list(want)) + (1 << 20)
        for i, d in enumerate(outs):
            if not isinstance(d, dict) or d.get("kind") != "tensor":
                raise Outcome(
                    "wrong_result",
                    f"output {i} is {str(d.get('type') if isinstance(d, dict) else d)[:80]}, not a tensor",
                )
            if d.get("exact") is not True:
                raise Outcome(
                    "hack_detected",
                    "an output is a tensor subclass",
                    [flag("tensor_subclass", f"output {i} is not exactly torch.Tensor")],
                )
            if d.get("device") != self.dev.kind:
                raise Outcome("wrong_result", f"output {i} is on {str(d.get('device'))[:20]}, expected {self.dev.kind}")
            try:
                if self.cuda:
                    if not isinstance(d.get("handle"), str):
                        raise share.ShareError("an output without its IPC handle")
                    if d.get("handle") in p.handles:
                        raise Outcome(
                            "hack_detected",
                            "an output is one of the inputs",
                            [flag("output_aliases_input", f"output {i} lies in an input's buffer")],
                        )
                    t = share.view(self.opened.raw(d.get("handle")), d)
                else:
                    self.check_not_input(p, d, i)
                    t = share.read_process_tensor(p.mem_fd, d, limit)
            except share.ShareError as e:
                raise Outcome("runtime_error", f"output {i} could not be read: {e}")
            got.append(t)
        return got

    def check_not_input(self, p, d, i):
        """CPU: an output inside the candidate's mapping of an input file is the input itself."""
        addr = d.get("addr")
        if type(addr) is not int:
            return
        for a, b, path in share.mapped_files(p.pid):
            if path.startswith(self.shm) and a <= addr < b:
                raise Outcome(
                    "hack_detected",
                    "an output is one of the inputs",
                    [flag("output_aliases_input", f"output {i} lies in an input's shared mapping")],
                )

    # --- one call of the candidate ---------------------------------------------------------
    def call_candidate(self, model, xs, want, poison=False):
        """Untimed call (correctness, warm-up): inputs written, candidate resumed, outputs read, stopped again."""
        p = self.cand
        self.ensure_buffers(p, xs)
        args, views = self.write_inputs(p, xs)
        if self.cuda:
            torch.cuda.synchronize()
        p.resume()
        try:
            reply = p.ask(
                {"op": "call", "model": model, "args": args, "poison": poison},
                self.deadline(self.current),
                ("ok", "outputs"),
            )
        except RunnerError as e:
            raise e.outcome(f"in the {self.current} stage")
        self.stop_candidate()
        if self.cuda:
            torch.cuda.current_stream().wait_event(p.done)
        if not self.inputs_intact(views, xs):
            raise Outcome(
                "hack_detected",
                "the candidate modified its inputs",
                [flag("input_mutation", f"{self.current}: an input differs from what the judge wrote")],
            )
        got = self.read_outputs(p, reply, want)
        if self.cuda:
            got = [g.clone() for g in got]
            torch.cuda.synchronize()
        return got, views

    def stop_candidate(self):
        self.cand.stop()

    # --- correctness -------------------------------------------------------------------------
    def correctness(self):
        job = self.job
        shapes = job["correctness"]
        n = max(job["trials"], len(shapes))
        plan = [(t, t % len(shapes), None) for t in range(n)]
        # Every transform on each of the first two shapes.
        plan += [
            (n + k, k // len(TRANSFORMS) % len(shapes), TRANSFORMS[k % len(TRANSFORMS)])
            for k in range(len(TRANSFORMS) * min(2, len(shapes)))
        ]
        trials, worst_abs, worst_rel, built = [], 0.0, 0.0, None
        self.stage("correctness")
        for t, si, transform in plan:
            shape = shapes[si]
            measure.set_shape(self.ref_mod, shape["set"])
            if built != si:
                ref, model, built = self.build(trial_seed(job["seed"], "init", si)), self.models, si
            inputs = measure.make_inputs(self.ref_mod, self.dev, trial_seed(job["seed"], "trial", t))
            if transform:
                inputs = transformed(inputs, transform, trial_seed(job["seed"], "transform", t))
            self.restore()
            with torch.no_grad():
                want = ref(*[x.clone() if isinstance(x, torch.Tensor) else x for x in inputs])
            self.dev.sync()
            if transform and not all(
                bool(torch.isfinite(w).all()) for w in measure.as_list(want) if isinstance(w, torch.Tensor)
            ):
                continue  # the operation is not defined there: nothing to learn from the candidate
            label = f"trial {len(trials) + 1}" + (f" (inputs {transform})" if transform else "")
            rec = {
                "shape": si,
                "visible": bool(shape.get("visible")),
                "passed": False,
                "runsAgree": True,
                "maxAbsErr": None,
                "maxRelErr": None,
            }
            got, _ = self.call_candidate(model, inputs, want, poison=True)
            c = measure.compare(got if len(got) > 1 else got[0], want, self.tol["atol"], self.tol["rtol"])
            if c.get("maxAbsErr") is not None:
                rec["maxAbsErr"], rec["maxRelErr"] = c["maxAbsErr"], c["maxRelErr"]
                worst_abs, worst_rel = max(worst_abs, c["maxAbsErr"]), max(worst_rel, c["maxRelErr"])
            if not c.get("ok"):
                if "index" in c:
                    rec["mismatch"] = {
                        "arg": c.get("arg", 0),
                        "index": c["index"],
                        "got": c.get("got"),
                        "want": c.get("want"),
                    }
                trials.append(rec)
                flags = [flag(c["hack"], f"{label}: {c['reason']}")] if c.get("hack") else []
                raise Outcome(
                    "hack_detected" if flags else "wrong_result",
                    f"{label} of {len(plan)}: {c['reason']}",
                    flags,
                    trials=trials,
                    failedVisible=bool(shape.get("visible")),
                    maxAbsErr=worst_abs,
                    maxRelErr=worst_rel,
                )
            if (
                transform
            ):  # these trials widen what the inputs exercise; the second run below is the task's own trials' job
                rec["passed"] = True
                trials.append(rec)
                continue
            # A second run on the same inputs, into memory poisoned again, must agree.
            again, _ = self.call_candidate(model, inputs, want, poison=True)
            a = measure.compare(
                again if len(again) > 1 else again[0],
                got if len(got) > 1 else got[0],
                self.tol["atol"],
                self.tol["rtol"],
            )
            if not a.get("ok"):
                rec["runsAgree"] = False
                trials.append(rec)
                raise Outcome(
                    "wrong_result",
                    f"{label}: a second run on the same inputs disagrees with the first ({a['reason']})",
                    trials=trials,
                    failedVisible=bool(shape.get("visible")),
                    maxAbsErr=worst_abs,
                    maxRelErr=worst_rel,
                )
            rec["passed"] = True
            trials.append(rec)
        return {
            "trials": trials,
            "trialsPassed": len(trials),
            "trialsTotal": len(trials),
            "maxAbsErr": worst_abs,
            "maxRelErr": worst_rel,
        }

    # --- timing ------------------------------------------------------------------------------
    def timing(self):
        job, cfg = self.job, self.job["timingConfig"]
        results = []
        for si, shape in enumerate(job["timing"]):
            measure.set_shape(self.ref_mod, shape)
            ref = self.build(trial_seed(job["seed"], "time-init", si))
            model = self.models
            first = measure.make_inputs(self.ref_mod, self.dev, trial_seed(job["seed"], "time", si, -1))
            set_bytes = max(1, measure.tensor_bytes(first))
            self.stage("timing")
            launch_ms = self.warm_up(ref, model, first, cfg["warmup"])
            out_bytes = measure.tensor_bytes(self.last_want)
            cand_ms, ref_ms, twin_ms, ratios, probes, pre_cand, pre_twin = [], [], [], [], [], [], []
            t_start, r = time.perf_counter(), 0
            while True:
                xs = (
                    first
                    if r == 0
                    else measure.make_inputs(self.ref_mod, self.dev, trial_seed(job["seed"], "time", si, r))
                )
                want, r_ms = self.time_reference(ref, xs)
                order = ("twin", "cand") if r % 2 == 0 else ("cand", "twin")
                for who in order:
                    if who == "twin":
                        w_ms, _, w_pre = self.time_runner(self.twin, model, xs, None, launch_ms)
                    else:
                        c_ms, probe, c_pre = self.time_runner(
                            self.cand, model, xs, want, launch_ms, f"timing shape {si}, repetition {r}"
                        )
                probes.append(probe)
                pre_twin.append(w_pre)
                pre_cand.append(c_pre)
                # The split's own cost, measured on the reference beside this call, comes off the candidate's time.
                split_ms = w_ms - r_ms
                est = max(c_ms - split_ms, 1e-4)
                cand_ms.append(est)
                ref_ms.append(r_ms)
                twin_ms.append(w_ms)
                ratios.append(r_ms / est)
                r += 1
                elapsed = (time.perf_counter() - t_start) * 1e3
                done = (
                    r >= cfg["minReps"]
                    and measure.robust_rse(cand_ms) < cfg["rseTarget"]
                    and measure.robust_rse(ref_ms) < cfg["rseTarget"]
                )
                if r >= cfg["maxReps"] or (r >= cfg["minReps"] and (done or elapsed > cfg["budgetMs"])):
                    break
            if self.cuda:
                self.check_quiet(si, r, pre_cand, pre_twin)
            if self.cuda and statistics.median(probes) > 2 * self.probe_base + 0.05:
                raise Outcome(
                    "hack_detected",
                    "the candidate's work continues after its call returns",
                    [
                        flag(
                            "unsynchronized_work",
                            f"timing shape {si}: a tiny kernel after the candidate's call took {statistics.median(probes):.3f} ms (median) against {self.probe_base:.3f} ms on the idle device: work still queued that the done event does not cover",
                        )
                    ],
                )
            cs, rs = measure.stats(cand_ms), measure.stats(ref_ms)
            flops = (
                eval(job["flops"], {"__builtins__": {}}, dict(vars(self.ref_mod))) if job.get("flops") else None
            )  # a trusted task file's expression
            results.append(
                {
                    "shape": si,
                    "candidate": cs,
                    "reference": rs,
                    "pairedSpeedup": statistics.median(ratios),
                    "bytes": set_bytes + out_bytes,
                    "flops": flops,
                    "buffers": 1,
                    "splitMs": statistics.median(t - q for t, q in zip(twin_ms, ref_ms)),
                }
            )
        return results

    def check_quiet(self, si, reps, pre_cand, pre_twin):
        """Before its gate opens, the candidate's call must take what the same call of the reference
        runner takes: padding, input writes and flush are the judge's; anything longer is the
        candidate's work running on the device outside its clock (ungated streams, leftovers)."""
        limit = 1.25 * statistics.median(pre_twin) + 0.1
        over = sum(1 for x in pre_cand if x > limit)
        if over > max(1, reps // 5):
            raise Outcome(
                "hack_detected",
                "the candidate's work ran on the device outside its timed interval",
                [
                    flag(
                        "unsynchronized_work",
                        f"timing shape {si}: before the candidate's clock started the device took {statistics.median(pre_cand):.3f} ms (median) against {statistics.median(pre_twin):.3f} ms for the same steps before the reference's, over {limit:.3f} ms in {over} of {reps} repetitions: work on a stream its call does not order after the start, or left running",
                    )
                ],
            )

    def warm_up(self, ref, model, xs, n):
        """Untimed calls of the three (Triton's JIT and autotuning happen here); the candidate's
        output is checked like any other; returns the candidate's host time to queue a call."""
        self.restore()
        with torch.no_grad():
            want = ref(*xs)
        self.dev.sync()
        self.last_want = want
        host = []
        for _ in range(n):
            h0 = time.perf_counter()
            got, _ = self.call_candidate(model, xs, want)
            host.append((time.perf_counter() - h0) * 1e3)
            c = measure.compare(got if len(got) > 1 else got[0], want, self.tol["atol"], self.tol["rtol"])
            if not c.get("ok"):
                raise Outcome(
                    "hack_detected",
                    "an output of a warm-up call differs from the reference",
                    [
                        flag(
                            "timed_output_mismatch", f"warm-up: {c['reason']} (correct in the checks, wrong when timed)"
                        )
                    ],
                )
            self.time_runner(self.twin, model, xs, None, 1.0)
        return min(host)

    def time_reference(self, ref, xs):
        """The reference in the judge: flushed, timed with events (GPU) or the host clock (CPU). On a
        GPU the stream is padded first, as before a runner's call, so both clocks hold device time
        alone and neither side's host launch cost counts."""
        self.restore()
        with torch.no_grad():
            if self.cuda:
                self.pad_stream()
                self.flush.zero_()
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                out = ref(*xs)
                b.record()
                torch.cuda.synchronize()
                return out, a.elapsed_time(b)
            h0 = time.perf_counter()
            out = ref(*xs)
            return out, (time.perf_counter() - h0) * 1e3

    def time_runner(self, p, model, xs, want, launch_ms, where=""):
        """One timed call of a runner; for the candidate, its output checked at the end of the interval."""
        self.ensure_buffers(p, xs)
        candidate = p is self.cand
        if self.cuda:
            s = torch.cuda.current_stream()
            p0, f0, f1, a, b = (torch.cuda.Event(enable_timing=True) for _ in range(5))
            # Busy while the runner queues its work, so the clock holds the device's time, not the host's.
            # The padding is work, not a clock-bound sleep: whatever else runs on the device meanwhile
            # (time-sliced with it) makes it longer, and the span up to the gate shows it.
            p0.record()
            self.pad_stream(launch_ms)
            args, views = self.write_inputs(p, xs)
            f0.record()
            self.flush.zero_()
            f1.record()
            a.record()
            self.gate.record(s)
            if candidate:
                p.resume()
            h0 = time.perf_counter()
            try:
                reply = p.ask(
                    {"op": "call", "model": model, "args": args, "gated": True},
                    self.deadline("timing"),
                    ("ok", "outputs"),
                )
            except RunnerError as e:
                raise e.outcome("timed")
            if candidate:  # how long the runner takes to queue its work: the next padding covers twice that
                self.queue_ms = (self.queue_ms[-4:] if hasattr(self, "queue_ms") else []) + [
                    (time.perf_counter() - h0) * 1e3
                ]
            if candidate:
                self.stop_candidate()
            s.wait_event(p.done)
            b.record()
            bad = None
            if candidate:
                got = self.read_outputs(p, reply, want)
                bad = compare_on_device(got, want, self.tol)
                same_inputs = self.inputs_intact(views, xs)
            torch.cuda.synchronize()
            probe = self.probe() if candidate else 0.0
            if candidate:
                self.check_timed(bad, same_inputs, where)
            return a.elapsed_time(b), probe, p0.elapsed_time(a)
        args, views = self.write_inputs(p, xs)
        # The clock runs from before the candidate is resumed: the inputs are already there, so
        # whatever it does once it runs again is its call's time.
        h0 = time.perf_counter()
        if candidate:
            p.resume()
        try:
            reply = p.ask({"op": "call", "model": model, "args": args}, self.deadline("timing"), ("ok", "outputs"))
        except RunnerError as e:
            raise e.outcome("timed")
        ms = (time.perf_counter() - h0) * 1e3
        if candidate:
            # Stopped at once, every process of it (one group it cannot leave): nothing it left
            # running gets to finish the output after the clock stopped.
            self.stop_candidate()
            got = self.read_outputs(p, reply, want)
            same_inputs = self.inputs_intact(views, xs)
            self.check_timed(compare_on_device(got, want, self.tol), same_inputs, where)
        return ms, 0.0, 0.0

    def pad_stream(self, launch_ms=1.0):
        """Keeps the judge's stream busy for about twice the time the candidate's runner takes to queue
        a call (at least 0.3 ms, at most 20 ms), so that what follows is queued before it runs."""
        queue_ms = statistics.median(self.queue_ms) if getattr(self, "queue_ms", None) else launch_ms
        for _ in range(max(1, round(min(20.0, max(0.3, 2 * queue_ms)) / self.pad_ms))):
            self.pad.zero_()

    def check_timed(self, bad, same_inputs, where):
        if not same_inputs:
            raise Outcome(
                "hack_detected",
                "the candidate modified its inputs",
                [flag("input_mutation", f"{where}: an input differs from what the judge wrote")],
            )
        if bad:
            raise Outcome(
                "hack_detected",
                "an output computed while timed differs from the reference",
                [flag("timed_output_mismatch", f"{where}: {bad} (correct in the checks, wrong while timed)")],
            )

    # --- profile ------------------------------------------------------------------------------
    def profile(self):
        shape = self.job["timing"][0]
        measure.set_shape(self.ref_mod, shape)
        self.build(trial_seed(self.job["seed"], "profile-init"))
        xs = measure.make_inputs(self.ref_mod, self.dev, trial_seed(self.job["seed"], "profile"))
        self.ensure_buffers(self.cand, xs)
        args, _ = self.write_inputs(self.cand, xs)
        if self.cuda:
            torch.cuda.synchronize()
        self.cand.resume()
        try:
            reply = self.cand.ask(
                {"op": "profile", "model": self.models, "args": args}, self.deadline("profile"), ("ok", "profile")
            )
        except RunnerError as e:
            raise e.outcome("profiled")
        self.stop_candidate()
        return self.classify(reply["profile"])

    def classify(self, p):
        """Own and framework time from the profile's times by kernel name. The names that count as
        the candidate's own are the judge's: its Triton kernels' names (from its source) and its
        extension's kernels (from the built object), never the candidate's word."""
        if not isinstance(p, dict) or not isinstance(p.get("byName"), dict) or len(p["byName"]) > 4096:
            raise self.cand.forged("a profile without times by name")
        by_name = {str(k)[:200]: finite(v) for k, v in p["byName"].items()}
        if any(v is None for v in by_name.values()) or finite(p.get("otherMs", 0.0)) is None:
            raise self.cand.forged("a profile with times that are not finite, non-negative numbers")
        other = finite(p.get("otherMs", 0.0))
        ext_names = measure.own_kernel_names(self.job["extDir"]) if self.cuda else set()
        own_set = (
            self.own_names
            | ext_names
            | (
                {"extension"}
                if not self.cuda and has_extension(self.job["extDir"], self.job["candidatePath"])
                else set()
            )
        )
        is_own = lambda n: n in own_set or n.split("(")[0] in own_set or n.split("(")[0].split("::")[-1] in own_set
        own = {n: ms for n, ms in by_name.items() if is_own(n)}
        total = sum(by_name.values()) + max(0.0, other)
        kernels = sorted(by_name.items(), key=lambda kv: -kv[1])[:6]
        if other > 0:
            kernels.append(("everything else in the call", other))
        launched = [str(x)[:80] for x in p.get("launchedTriton", []) if isinstance(x, str)][:32]
        return {
            "ownMs": sum(own.values()),
            "totalMs": max(total, sum(own.values())),
            "ownKernels": sorted(n[:80] for n in own),
            "kernels": [{"name": n[:80], "ms": round(ms, 4)} for n, ms in kernels],
            "launchedTriton": launched,
            "device": bool(self.cuda),
            "method": str(p.get("method"))[:40],
        }


def device_ms(fn, n):
    """The median device time of n calls of fn, each alone on the device."""
    times = []
    for _ in range(n):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)


def finite(v):
    """A non-negative finite number of milliseconds, or None."""
    if type(v) not in (int, float):
        return None
    try:
        f = float(v)
    except OverflowError:
        return None
    return f if f >= 0 and f == f and f != float("inf") else None


def has_extension(ext_dir, candidate_path):
    """CPU: the candidate builds a C++ extension (its time outside aten ops is its own)."""
    import glob

    return bool(glob.glob(os.path.join(ext_dir, "**", "*.so"), recursive=True)) or "load_inline" in measure.read(
        candidate_path
    )


def compare_on_device(got, want, tol):
    c = measure.compare(got if len(got) > 1 else got[0], want, tol["atol"], tol["rtol"])
    return None if c.get("ok") else c["reason"]


def transformed(inputs, how, seed):
    """Inputs that exercise the operation where the task's own distribution may not (ReLU on
    inputs ≥ 0): negated, random signs, doubled, or a few zeros and large values."""
    out = []
    for x in inputs:
        if not (isinstance(x, torch.Tensor) and x.is_floating_point() and x.numel()):
            out.append(x)
            continue
        g = torch.Generator(device=x.device).manual_seed(seed)
        y = x.clone()
        if how == "negated":
            y.neg_()
        elif how == "both signs":
            y.mul_(torch.randint(0, 2, y.shape, generator=g, device=y.device).to(y.dtype) * 2 - 1)
        elif how == "doubled":
            y.mul_(2)
        else:
            flat = y.view(-1)
            k = max(1, flat.numel() // 64)
            idx = torch.randint(0, flat.numel(), (2 * k,), generator=g, device=y.device)
            flat[idx[:k]] = 0
            scale = float(flat.abs().max()) or 1.0
            signs = (torch.rand(k, generator=g, device=y.device) < 0.5).to(y.dtype) * 2 - 1
            flat[idx[k:]] = signs * (4 * scale)
        out.append(y)
    return out


def jsonable(x):
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, (bool, int, float, str)) or x is None:
        return x
    raise Outcome(
        "env_error", f"the task's init or scalar inputs hold a {type(x).__name__}, which cannot be passed to a runner"
    )


def run_job(job, stage, runners):
    """The 'run' phase: everything after the extension build. Returns the result dict."""
    judge = Judge(job, stage, runners)
    try:
        try:
            judge.start()
            check = judge.correctness()
        except Outcome as o:
            if judge.stages and "correctness" not in judge.stages and getattr(judge, "current", "") == "correctness":
                judge.mark("correctness", "failed")
            o.extra.setdefault("stages", judge.stages)
            raise
        judge.mark("correctness")
        try:
            shapes = judge.timing()
        except Outcome as o:
            judge.mark("timing", "failed")
            o.extra.update(stages=judge.stages, correctness=check)
            raise
        judge.mark("timing")
        judge.stage("profile")
        prof = judge.profile()
        judge.mark("profile")
        return {
            "outcome": "ok",
            "stages": judge.stages,
            "correctness": check,
            "shapes": shapes,
            "profile": prof,
            "flags": [],
        }
    except RunnerDied as e:
        raise Outcome("env_error", str(e), stages=judge.stages)
    finally:
        judge.close()
