"""One torch-backend job, run in a fresh child of the warm harness process:
load the reference and the candidate, check correctness, time both interleaved,
profile the candidate (DESIGN sections 6 and 7). Returns plain data; the
harness sends it on the result pipe.

Works on CUDA (torch 2.x, Triton 3.x) and, for everything that needs no GPU, on
CPU with torch 1.13: there the candidate's own code is a C++ extension and the
profile counts time outside framework ops.
"""
import builtins
import glob
import hashlib
import importlib.util
import json
import math
import os
import statistics
import subprocess
import sys
import threading
import time
import traceback

import torch

import checks

LOG_LIMIT = 4000
CHUNK = 1 << 24
POISON_SPARE = 1 << 30
OOM_ERRORS = (MemoryError, getattr(torch.cuda, "OutOfMemoryError", MemoryError))


class Outcome(Exception):
    """Ends the job with a candidate outcome (or env_error)."""

    def __init__(self, outcome, message, flags=None, **extra):
        super().__init__(message)
        self.outcome = outcome
        self.message = message
        self.flags = flags or []
        self.extra = extra


def flag(kind, evidence):
    return {"kind": kind, "evidence": evidence}


def trial_seed(seed, *parts):
    h = hashlib.sha256(("/".join([str(seed), *map(str, parts)])).encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)


def load_module(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


# What the candidate must not replace: checked by identity after every phase.
def harness_identity():
    ids = {
        "time.perf_counter": time.perf_counter,
        "torch.allclose": torch.allclose,
        "torch.equal": torch.equal,
        "torch.isfinite": torch.isfinite,
        "torch.manual_seed": torch.manual_seed,
        "torch.Tensor.clone": torch.Tensor.clone,
        "torch.Tensor.__eq__": torch.Tensor.__eq__,
        "torch.Tensor.copy_": torch.Tensor.copy_,
        "builtins.type": builtins.type,
        "builtins.isinstance": builtins.isinstance,
        "json.dumps": json.dumps,
        "os.write": os.write,
        "measure.compare": compare,
        "measure.run_job": run_job,
    }
    if torch.cuda.is_available():
        ids.update({
            "torch.cuda.synchronize": torch.cuda.synchronize,
            "torch.cuda.Event": torch.cuda.Event,
            "torch.cuda.Event.record": torch.cuda.Event.record,
            "torch.cuda.Event.elapsed_time": torch.cuda.Event.elapsed_time,
        })
    return ids


def precision_state():
    s = {"float32_matmul_precision": torch.get_float32_matmul_precision() if hasattr(torch, "get_float32_matmul_precision") else "n/a"}
    s["cuda.matmul.allow_tf32"] = torch.backends.cuda.matmul.allow_tf32
    s["cudnn.allow_tf32"] = torch.backends.cudnn.allow_tf32
    return s


def check_integrity(identity, precision, when):
    changed = [k for k, v in harness_identity().items() if v is not identity.get(k)]
    if changed:
        raise Outcome("hack_detected", f"harness functions were replaced {when}", [flag("harness_patching", f"replaced {when}: {', '.join(changed)}")])
    now = precision_state()
    if now != precision:
        diff = ", ".join(f"{k}: {precision[k]} → {now[k]}" for k in now if now[k] != precision.get(k))
        raise Outcome("hack_detected", f"precision settings changed {when}", [flag("precision_change", f"changed {when}: {diff}")])


class Device:
    def __init__(self, kind):
        self.kind = kind
        self.cuda = kind == "cuda"
        self.torch_device = torch.device("cuda:0" if self.cuda else "cpu")

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def free_bytes(self):
        if self.cuda:
            return torch.cuda.mem_get_info()[0]
        return 4 * 1024 ** 3


_file_values = {}


def set_shape(module, shape):
    """Sets a shape's names on the reference module; names it does not set keep the file's own values."""
    saved = _file_values.setdefault(id(module), {})
    for k, v in saved.items():
        setattr(module, k, v)
    for k, v in shape.items():
        if k not in saved:
            saved[k] = getattr(module, k)
        setattr(module, k, v)


def make_inputs(ref_mod, dev, seed):
    """The task's get_inputs() with a seed, made on the device directly where torch allows it."""
    torch.manual_seed(seed)
    if dev.cuda:
        with torch.device(dev.torch_device):
            xs = ref_mod.get_inputs()
    else:
        xs = ref_mod.get_inputs()
    return [x.to(dev.torch_device) if isinstance(x, torch.Tensor) else x for x in xs]


def build_models(ref_mod, cand_mod, dev, seed):
    init = ref_mod.get_init_inputs()
    torch.manual_seed(seed)
    ref = ref_mod.Model(*init).to(dev.torch_device).eval()
    torch.manual_seed(seed)
    cand = cand_mod.ModelNew(*init).to(dev.torch_device).eval()
    # Where the candidate holds the same parameters as the reference, it gets the reference's values.
    ref_state, cand_state = ref.state_dict(), cand.state_dict()
    if ref_state and ref_state.keys() == cand_state.keys() and all(ref_state[k].shape == cand_state[k].shape for k in ref_state):
        cand.load_state_dict(ref_state)
    return ref, cand


def poison(dev, inputs):
    """Fills memory the candidate's outputs may be given with NaN, so unwritten elements fail:
    blocks the size of the inputs, and up to POISON_SPARE of the allocator's cached free memory."""
    sizes = [x.numel() for x in inputs if isinstance(x, torch.Tensor) and x.is_floating_point()]
    if dev.cuda:
        spare = min(torch.cuda.memory_reserved() - torch.cuda.memory_allocated(), POISON_SPARE)
        if spare > 1 << 20:
            sizes.append(spare // 4 - (1 << 18))
    blocks = []
    for n in sizes[:5]:
        try:
            blocks.append(torch.full((n,), float("nan"), device=dev.torch_device))
        except OOM_ERRORS:  # poisoning is best effort, never a verdict
            break
    del blocks


def as_list(out):
    return list(out) if isinstance(out, (tuple, list)) else [out]


def compare(got, want, atol, rtol):
    """None when every output matches; else a description of the first mismatch."""
    got_l, want_l = as_list(got), as_list(want)
    if len(got_l) != len(want_l):
        return {"reason": f"returned {len(got_l)} outputs, expected {len(want_l)}"}
    worst = {"maxAbsErr": 0.0, "maxRelErr": 0.0}
    for i, (g, w) in enumerate(zip(got_l, want_l)):
        if type(g) is not torch.Tensor:
            return {"reason": f"output {i} is a {type(g).__module__}.{type(g).__qualname__}, not exactly torch.Tensor", "hack": "tensor_subclass" if isinstance(g, torch.Tensor) else None}
        if g.shape != w.shape or g.dtype != w.dtype or g.device != w.device:
            lower = g.dtype in (torch.float16, torch.bfloat16) and w.dtype == torch.float32
            return {"reason": f"output {i}: got {tuple(g.shape)} {g.dtype} on {g.device}, expected {tuple(w.shape)} {w.dtype} on {w.device}", "hack": "precision_downgrade" if lower else None}
        gf, wf = g.reshape(-1), w.reshape(-1)
        # In chunks, in double: exact errors without tripling the memory of a 6 GB output.
        for start in range(0, gf.numel(), CHUNK):
            gc, wc = gf[start:start + CHUNK], wf[start:start + CHUNK]
            finite = torch.isfinite(gc)
            if not bool(finite.all()):
                bad = start + int((~finite).nonzero()[0][0])
                return {"reason": f"output {i} holds NaN or Inf (first at flat index {bad})", "arg": i, "index": bad, "got": float(gf[bad]), "want": float(wf[bad]), **worst}
            gd, wd = gc.double(), wc.double()
            diff = (gd - wd).abs()
            worst["maxAbsErr"] = max(worst["maxAbsErr"], float(diff.max()) if diff.numel() else 0.0)
            worst["maxRelErr"] = max(worst["maxRelErr"], float((diff / wd.abs().clamp_min(1e-12)).max()) if diff.numel() else 0.0)
            over = diff > (atol + rtol * wd.abs())
            if bool(over.any()):
                idx = start + int(over.nonzero()[0][0])
                return {"reason": f"output {i} differs from the reference", "arg": i, "index": idx,
                        "got": float(gf[idx]), "want": float(wf[idx]), **worst}
    return {"ok": True, **worst}


def clone_all(xs):
    return [x.clone() if isinstance(x, torch.Tensor) else x for x in xs]


def inputs_equal(a, b):
    return all(not isinstance(x, torch.Tensor) or torch.equal(x, y) for x, y in zip(a, b))


def correctness(job, ref_mod, cand_mod, dev, stage):
    shapes = job["correctness"]
    tol = job["tolerance"]
    trials = []
    worst_abs, worst_rel = 0.0, 0.0
    models = {}
    n = max(job["trials"], len(shapes))
    for t in range(n):
        si = t % len(shapes)
        shape = shapes[si]
        set_shape(ref_mod, shape["set"])
        if si not in models:
            models.clear()
            models[si] = build_models(ref_mod, cand_mod, dev, trial_seed(job["seed"], "init", si))
        ref, cand = models[si]
        inputs = make_inputs(ref_mod, dev, trial_seed(job["seed"], "trial", t))
        saved = clone_all(inputs)
        poison(dev, inputs)
        with torch.no_grad():
            stage("correctness")
            out_c = cand(*inputs)
            dev.sync()
        if not inputs_equal(inputs, saved):
            raise Outcome("hack_detected", "the candidate modified its inputs", [flag("input_mutation", f"trial {t}: an input differs from its saved copy after the candidate ran")])
        with torch.no_grad():
            out_r = ref(*saved)
            dev.sync()
        rec = {"shape": si, "visible": shape["visible"], "passed": False, "runsAgree": True, "maxAbsErr": None, "maxRelErr": None}
        c = compare(out_c, out_r, tol["atol"], tol["rtol"])
        if c.get("maxAbsErr") is not None:
            rec["maxAbsErr"], rec["maxRelErr"] = c["maxAbsErr"], c["maxRelErr"]
            worst_abs, worst_rel = max(worst_abs, c["maxAbsErr"]), max(worst_rel, c["maxRelErr"])
        if not c.get("ok"):
            if "index" in c:
                rec["mismatch"] = {"arg": c.get("arg", 0), "index": c["index"], "got": c.get("got"), "want": c.get("want")}
            trials.append(rec)
            flags = [flag(c["hack"], f"trial {t}: {c['reason']}")] if c.get("hack") else []
            raise Outcome("hack_detected" if flags else "wrong_result", f"trial {t + 1} of {n}: {c['reason']}", flags,
                          trials=trials, failedVisible=shape["visible"], maxAbsErr=worst_abs, maxRelErr=worst_rel)
        # A second run on the same inputs, into memory poisoned again, must agree.
        del out_r
        poison(dev, inputs)
        with torch.no_grad():
            out_c2 = cand(*inputs)
            dev.sync()
        again = compare(out_c2, out_c, tol["atol"], tol["rtol"])
        if not again.get("ok"):
            rec["runsAgree"] = False
            trials.append(rec)
            raise Outcome("wrong_result", f"trial {t + 1}: a second run on the same inputs disagrees with the first ({again['reason']})",
                          trials=trials, failedVisible=shape["visible"], maxAbsErr=worst_abs, maxRelErr=worst_rel)
        rec["passed"] = True
        trials.append(rec)
        del out_c, out_c2, inputs, saved
    return {"trials": trials, "trialsPassed": len(trials), "trialsTotal": n, "maxAbsErr": worst_abs, "maxRelErr": worst_rel}


def robust_rse(xs):
    if len(xs) < 2:
        return float("inf")
    med = statistics.median(xs)
    mad = statistics.median([abs(x - med) for x in xs])
    return 1.4826 * mad / math.sqrt(len(xs)) / med if med > 0 else float("inf")


def stats(xs):
    s = sorted(xs)
    q = lambda p: s[min(len(s) - 1, int(p * (len(s) - 1) + 0.5))]
    return {"medianMs": statistics.median(s), "p10Ms": q(0.1), "p90Ms": q(0.9), "minMs": s[0], "maxMs": s[-1],
            "meanMs": sum(s) / len(s), "rse": robust_rse(s), "reps": len(s)}


def tensor_bytes(xs):
    return sum(x.numel() * x.element_size() for x in as_list(xs) if isinstance(x, torch.Tensor))


class Timer:
    """Times one call: device events on the current stream, plus the host's clock
    around the call and a device-wide synchronize (work the events miss shows there)."""

    def __init__(self, dev, l2_bytes):
        self.dev = dev
        self.flush = torch.empty(max(1, 2 * l2_bytes // 4), dtype=torch.float32, device=dev.torch_device) if dev.cuda else None

    def __call__(self, fn, inputs):
        dev = self.dev
        if dev.cuda:
            self.flush.zero_()
            torch.cuda.synchronize()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            h0 = time.perf_counter()
            start.record()
            out = fn(*inputs)
            end.record()
            torch.cuda.synchronize()
            host = (time.perf_counter() - h0) * 1e3
            return out, start.elapsed_time(end), host
        h0 = time.perf_counter()
        out = fn(*inputs)
        host = (time.perf_counter() - h0) * 1e3
        return out, host, host


def timing(job, ref_mod, cand_mod, dev, stage, l2_bytes):
    cfg = job["timingConfig"]
    tol = job["tolerance"]
    timer = Timer(dev, l2_bytes)
    results = []
    threads_before = set(threading.enumerate())
    for si, shape in enumerate(job["timing"]):
        set_shape(ref_mod, shape)
        ref, cand = build_models(ref_mod, cand_mod, dev, trial_seed(job["seed"], "time-init", si))
        first = make_inputs(ref_mod, dev, trial_seed(job["seed"], "time", si, -1))
        set_bytes = max(1, tensor_bytes(first))
        with torch.no_grad():
            for _ in range(cfg["warmup"]):
                out_probe = ref(*first)
                cand(*first)
            dev.sync()
        out_bytes = tensor_bytes(out_probe)
        del out_probe
        # Rotating input sets: as many as fit in a third of the free memory, at most 4.
        k = int(max(1, min(4, dev.free_bytes() // 3 // set_bytes)))
        sets = [first] + [None] * (k - 1)
        cand_ms, ref_ms, ratios, host_gap = [], [], [], []
        t_start = time.perf_counter()
        stage("timing")
        r = 0
        while True:
            slot = r % k
            if r > 0 or sets[slot] is None:
                sets[slot] = None
                sets[slot] = make_inputs(ref_mod, dev, trial_seed(job["seed"], "time", si, r))
            xs = sets[slot]
            order = [("ref", ref), ("cand", cand)] if r % 2 == 0 else [("cand", cand), ("ref", ref)]
            got = {}
            with torch.no_grad():
                for name, m in order:
                    got[name] = timer(m, xs)
            _, c_ms, c_host = got["cand"]
            _, r_ms, _ = got["ref"]
            c = compare(got["cand"][0], got["ref"][0], tol["atol"], tol["rtol"])
            if not c.get("ok"):
                flags = [flag("timed_output_mismatch", f"timing shape {si}, repetition {r}: {c['reason']} (correct in the checks, wrong while timed)")]
                raise Outcome("hack_detected", "an output computed while timed differs from the reference", flags)
            del got
            cand_ms.append(c_ms)
            ref_ms.append(r_ms)
            ratios.append(r_ms / c_ms if c_ms > 0 else float("inf"))
            host_gap.append(c_host - c_ms)
            r += 1
            elapsed = (time.perf_counter() - t_start) * 1e3
            done = r >= cfg["minReps"] and robust_rse(cand_ms) < cfg["rseTarget"] and robust_rse(ref_ms) < cfg["rseTarget"]
            if r >= cfg["maxReps"] or (r >= cfg["minReps"] and (done or elapsed > cfg["budgetMs"])):
                break
        sets = None
        cs, rs = stats(cand_ms), stats(ref_ms)
        gap = statistics.median(host_gap)
        if dev.cuda and gap > max(0.2, 1.0 * cs["medianMs"]):
            raise Outcome("hack_detected", "the candidate's work continues after its call returns",
                          [flag("unsynchronized_work", f"timing shape {si}: the device was busy {gap:.3f} ms (median) after the timed stream's end event, beside a measured {cs['medianMs']:.3f} ms: work on another stream or thread that the timer does not see")])
        flops = eval(job["flops"], {"__builtins__": {}}, dict(vars(ref_mod))) if job.get("flops") else None  # a trusted task file's expression
        results.append({"shape": si, "candidate": cs, "reference": rs, "pairedSpeedup": statistics.median(ratios),
                        "bytes": set_bytes + out_bytes, "flops": flops, "buffers": k})
    extra = [t for t in threading.enumerate() if t not in threads_before]
    if extra:
        raise Outcome("hack_detected", "the candidate left threads running", [flag("background_thread", f"threads started during timing: {', '.join(t.name for t in extra)}")])
    return results


def own_kernel_names(ext_dir):
    """Kernel names of the candidate's built extensions, as the profiler shows them."""
    names = set()
    for so in glob.glob(os.path.join(ext_dir, "**", "*.so"), recursive=True):
        try:
            out = subprocess.run(["cuobjdump", "-symbols", so], capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.TimeoutExpired):
            continue
        mangled = [l.split()[-1] for l in out.splitlines() if "STO_ENTRY" in l]
        if mangled:
            dem = subprocess.run(["c++filt"], input="\n".join(mangled), capture_output=True, text=True).stdout.splitlines()
            names.update(dem)
    return names


def profile(job, ref_mod, cand_mod, dev, launched, ext_dir):
    """The share of the candidate's device time spent in its own kernels.

    Triton-only candidates on a GPU are measured with events around each launch
    (the launch hooks), which costs milliseconds; the CUDA profiler (CUPTI) costs
    about 4 s to start in every fresh process, so it runs only where the events
    cannot answer: a built extension (its kernels are known by name only), or no
    Triton launch seen at all (a kernel never launched, or replayed from a graph)."""
    shape = job["timing"][0]
    set_shape(ref_mod, shape)
    _, cand = build_models(ref_mod, cand_mod, dev, trial_seed(job["seed"], "profile-init"))
    xs = make_inputs(ref_mod, dev, trial_seed(job["seed"], "profile"))
    has_ext = bool(glob.glob(os.path.join(ext_dir, "**", "*.so"), recursive=True))
    with torch.no_grad():
        cand(*xs)
        dev.sync()
        if dev.cuda and not has_ext:
            fast = profile_by_launch_events(cand, xs)
            if fast and fast["ownKernels"]:
                return fast
        return profile_with_profiler(cand, xs, dev, launched, ext_dir, has_ext)


def profile_by_launch_events(cand, xs):
    """Events around every Triton launch, and around each whole call. The device is
    first kept busy (torch.cuda._sleep) while the call is queued, so the call's span
    holds its kernels back to back, without the host's launch gaps."""
    try:
        import triton.knobs as knobs
    except ImportError:
        return None
    spans = []

    def enter(metadata):
        start = torch.cuda.Event(enable_timing=True)
        start.record()
        spans.append([launch_name(metadata), start, None])

    def leave(_metadata):
        if spans and spans[-1][2] is None:
            end = torch.cuda.Event(enable_timing=True)
            end.record()
            spans[-1][2] = end

    h0 = time.perf_counter()
    cand(*xs)
    torch.cuda.synchronize()
    host_ms = (time.perf_counter() - h0) * 1e3
    cycles_per_ms = sleep_cycles_per_ms()
    saved = (knobs.runtime.launch_enter_hook, knobs.runtime.launch_exit_hook)
    knobs.runtime.launch_enter_hook, knobs.runtime.launch_exit_hook = enter, leave
    calls = []
    try:
        for _ in range(3):
            torch.cuda._sleep(int(cycles_per_ms * max(2.0, 3 * host_ms)))
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            cand(*xs)
            end.record()
            calls.append((start, end))
        torch.cuda.synchronize()
    finally:
        knobs.runtime.launch_enter_hook, knobs.runtime.launch_exit_hook = saved
    if any(end is None for _, _, end in spans):
        return None
    total = sum(s.elapsed_time(e) for s, e in calls)
    by_name = {}
    for name, s, e in spans:
        by_name[name] = by_name.get(name, 0.0) + s.elapsed_time(e)
    own = sum(by_name.values())
    kernels = sorted(by_name.items(), key=lambda kv: -kv[1])[:6]
    if total > own:
        kernels.append(("everything else in the call", total - own))
    return {"ownMs": own, "totalMs": max(total, own), "ownKernels": sorted(by_name), "method": "launch events",
            "kernels": [{"name": n[:80], "ms": round(ms, 4)} for n, ms in kernels], "launchedTriton": sorted(by_name), "device": True}


_cycles_per_ms = []


def sleep_cycles_per_ms():
    """How many torch.cuda._sleep cycles make a millisecond on this device."""
    if not _cycles_per_ms:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        torch.cuda._sleep(1_000_000)
        end.record()
        torch.cuda.synchronize()
        _cycles_per_ms.append(1_000_000 / max(start.elapsed_time(end), 1e-3))
    return _cycles_per_ms[0]


def profile_with_profiler(cand, xs, dev, launched, ext_dir, has_ext):
    from torch.profiler import ProfilerActivity, profile as torch_profile
    # On a GPU only device activity is recorded: it is what the share counts, and CPU tracing costs seconds.
    acts = [ProfilerActivity.CUDA] if dev.cuda else [ProfilerActivity.CPU]
    launched.clear()
    h0 = time.perf_counter()
    with torch_profile(activities=acts) as prof:
        for _ in range(3):
            cand(*xs)
        dev.sync()
    wall_ms = (time.perf_counter() - h0) * 1e3
    events = prof.events()
    if dev.cuda:
        own_names = set(launched) | own_kernel_names(ext_dir)
        kernels = [e for e in events if e.device_type.name == "CUDA"]
        t = lambda e: getattr(e, "device_time_total", None) or e.cuda_time_total
        total = sum(t(e) for e in kernels) / 1e3
        own = [e for e in kernels if e.name in own_names or e.name.split("(")[0] in own_names]
        own_ms = sum(t(e) for e in own) / 1e3
        by_name = {}
        for e in kernels:
            by_name[e.name[:80]] = by_name.get(e.name[:80], 0) + t(e) / 1e3
        top = sorted(by_name.items(), key=lambda kv: -kv[1])[:6]
        return {"ownMs": own_ms, "totalMs": total, "ownKernels": sorted({e.name[:80] for e in own}), "method": "profiler",
                "kernels": [{"name": n, "ms": round(ms, 4)} for n, ms in top], "launchedTriton": sorted(set(launched)), "device": True}
    # CPU: the candidate's own code is its extension; framework time is the top-level aten ops.
    fw = sum(e.cpu_time_total for e in events if e.cpu_parent is None and e.name.startswith("aten::")) / 1e3
    own_ms = max(0.0, wall_ms - fw) if has_ext else 0.0
    return {"ownMs": own_ms, "totalMs": wall_ms, "ownKernels": ["extension"] if has_ext and own_ms > 0 else [], "method": "profiler",
            "kernels": [{"name": "framework ops", "ms": round(fw, 4)}], "launchedTriton": [], "device": False}


def install_load_inline_recorder(build_errors):
    """Records extension build failures, so a compile error is told apart from other import errors."""
    import torch.utils.cpp_extension as ce
    real = ce.load_inline

    def load_inline(*args, **kwargs):
        kwargs.setdefault("verbose", False)
        try:
            return real(*args, **kwargs)
        except Exception as e:  # the build's log is in the exception's text
            build_errors.append(str(e)[-LOG_LIMIT:])
            raise
    ce.load_inline = load_inline


def launch_name(metadata):
    """The kernel's name from a Triton launch hook's argument (a LazyDict)."""
    return metadata.data.get("name") if hasattr(metadata, "data") else metadata.get().get("name")


def install_triton_hook(launched):
    try:
        import triton.knobs as knobs
    except ImportError:
        return
    def hook(metadata):
        name = launch_name(metadata)
        if name:
            launched.append(name)
    knobs.runtime.launch_enter_hook = hook


def job_environment(job):
    os.environ["TORCH_EXTENSIONS_DIR"] = job["extDir"]
    if job.get("torchCudaArchList"):
        os.environ["TORCH_CUDA_ARCH_LIST"] = job["torchCudaArchList"]


def run_job(job, stage):
    """The 'run' phase: everything after compilation. Returns the result dict."""
    job_environment(job)
    dev = Device(job["device"])
    stages = {}
    t0 = time.perf_counter()
    def mark(name, status="ok", log=None):
        nonlocal t0
        now = time.perf_counter()
        stages[name] = {"status": status, "ms": (now - t0) * 1e3, **({"log": log} if log else {})}
        t0 = now

    if dev.cuda:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.set_float32_matmul_precision("highest")
        torch.cuda.init()
    build_errors, launched = [], []
    install_load_inline_recorder(build_errors)
    install_triton_hook(launched)
    stage("static")
    if not job.get("skipStatic"):
        try:
            checks.check(read(job["candidatePath"]))
        except checks.Finding as f:
            mark("static", "failed")
            raise Outcome("static_violation", f.evidence, [] if f.kind in ("syntax_error", "no_model") else [flag(f.kind, f.evidence)], stages=stages)
    mark("static")
    ref_mod = load_module("anvil_reference", job["referencePath"])
    identity, precision = harness_identity(), precision_state()
    stage("compile")
    try:
        cand_mod = load_module("anvil_candidate", job["candidatePath"])
    except Exception as e:
        if build_errors:
            mark("compile", "failed", build_errors[-1])
            raise Outcome("compile_error", "the CUDA/C++ extension did not build", stages=stages)
        mark("compile", "failed", tb_text(e))
        raise Outcome("compile_error" if isinstance(e, SyntaxError) else "runtime_error", f"importing the candidate failed: {type(e).__name__}: {str(e)[:300]}", stages=stages)
    mark("compile")
    check_integrity(identity, precision, "while the candidate was imported")
    if not hasattr(cand_mod, "ModelNew"):
        raise Outcome("runtime_error", "the candidate module defines no ModelNew", stages=stages)
    if isinstance(cand_mod.ModelNew, type) and issubclass(cand_mod.ModelNew, ref_mod.Model):
        raise Outcome("hack_detected", "ModelNew subclasses the reference", [flag("reference_reuse", "ModelNew is a subclass of the reference Model")], stages=stages)
    try:
        check = correctness(job, ref_mod, cand_mod, dev, stage)
    except Outcome as o:
        mark("correctness", "failed")
        o.extra.setdefault("stages", stages)
        raise
    mark("correctness")
    check_integrity(identity, precision, "during the correctness checks")
    l2 = torch.cuda.get_device_properties(0).L2_cache_size if dev.cuda else 0
    try:
        shapes = timing(job, ref_mod, cand_mod, dev, stage, l2)
    except Outcome as o:
        mark("timing", "failed")
        o.extra.update(stages=stages, correctness=check)
        raise
    mark("timing")
    check_integrity(identity, precision, "while timed")
    stage("profile")
    prof = profile(job, ref_mod, cand_mod, dev, launched, job["extDir"])
    mark("profile")
    return {"outcome": "ok", "stages": stages, "correctness": check, "shapes": shapes, "profile": prof, "flags": []}


def read(path):
    with open(path, encoding="utf8") as f:
        return f.read()


def tb_text(e):
    return "".join(traceback.format_exception(type(e), e, e.__traceback__))[-LOG_LIMIT:]


def compile_job(job, stage):
    """The 'compile' phase, on a CPU worker: static checks, then build the candidate's extensions into the cache."""
    job_environment(job)
    stages = {}
    t0 = time.perf_counter()
    stage("static")
    if not job.get("skipStatic"):
        try:
            checks.check(read(job["candidatePath"]))
        except checks.Finding as f:
            stages["static"] = {"status": "failed", "ms": (time.perf_counter() - t0) * 1e3}
            raise Outcome("static_violation", f.evidence, [] if f.kind in ("syntax_error", "no_model") else [flag(f.kind, f.evidence)], stages=stages)
    stages["static"] = {"status": "ok", "ms": (time.perf_counter() - t0) * 1e3}
    t1 = time.perf_counter()
    stage("compile")
    build_errors = []
    install_load_inline_recorder(build_errors)
    try:
        load_module("anvil_candidate", job["candidatePath"])
    except Exception as e:
        # Import errors other than a failed build are left to the GPU phase, where the code really runs.
        if build_errors:
            stages["compile"] = {"status": "failed", "ms": (time.perf_counter() - t1) * 1e3, "log": build_errors[-1]}
            raise Outcome("compile_error", "the CUDA/C++ extension did not build", stages=stages)
        if isinstance(e, SyntaxError):
            stages["compile"] = {"status": "failed", "ms": (time.perf_counter() - t1) * 1e3, "log": tb_text(e)}
            raise Outcome("compile_error", f"the candidate does not parse: {e}", stages=stages)
    stages["compile"] = {"status": "ok", "ms": (time.perf_counter() - t1) * 1e3}
    return {"outcome": "ok", "stages": stages, "flags": []}


def health_job(job, stage):
    """Is the device usable? A small computation checked against the CPU, and its free memory."""
    dev = Device(job["device"])
    info = {"torch": torch.__version__}
    if not dev.cuda:
        return {"outcome": "ok", "health": {"ok": True, **info}}
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.cuda.init()
    a = torch.randn(512, 512)
    want = a @ a
    got = (a.cuda() @ a.cuda()).cpu()
    torch.cuda.synchronize()
    ok = torch.allclose(got, want, atol=1e-3, rtol=1e-3)
    p = torch.cuda.get_device_properties(0)
    free, total = torch.cuda.mem_get_info()
    info.update(ok=bool(ok), name=p.name, capability=f"{p.major}.{p.minor}", l2Bytes=p.L2_cache_size,
                freeBytes=free, totalBytes=total, cuda=torch.version.cuda)
    if job.get("peaks"):
        info["peaks"] = measure_peaks()
    try:
        import triton
        info["triton"] = triton.__version__
    except ImportError:
        pass
    return {"outcome": "ok", "health": info}


def measure_peaks():
    """Device copy bandwidth and fp32 (no TF32) matmul rate: the speed-of-light bound's rates."""
    x = torch.empty(256 * 1024 ** 2 // 4, device="cuda")
    y = torch.empty_like(x)
    a = torch.randn(8192, 8192, device="cuda")
    def best(fn, n=5):
        ts = []
        for _ in range(n):
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record(); fn(); e.record(); torch.cuda.synchronize()
            ts.append(s.elapsed_time(e) / 1e3)
        return min(ts)
    bw = 2 * x.numel() * 4 / best(lambda: y.copy_(x))
    fl = 2 * 8192 ** 3 / best(lambda: a @ a)
    return {"bytesPerSecond": bw, "flopsPerSecond": fl}
