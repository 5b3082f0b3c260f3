"""Measurement pieces of the torch backend shared by the judge (judge.py) and
the runner processes (runner.py): inputs, poisoning, the comparison, statistics,
the profile (run in the candidate's own process), the extension build job and
the device check.

Works on CUDA (torch 2.x, Triton 3.x) and, for everything that needs no GPU, on
CPU with torch 1.13: there the candidate's own code is a C++ extension and the
profile counts time outside framework ops.
"""

import glob
import hashlib
import math
import os
import statistics
import subprocess
import sys
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


class Device:
    def __init__(self, kind):
        self.kind = kind
        self.cuda = kind == "cuda"
        self.torch_device = torch.device("cuda:0" if self.cuda else "cpu")

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()


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
            return {
                "reason": f"output {i} is a {type(g).__module__}.{type(g).__qualname__}, not exactly torch.Tensor",
                "hack": "tensor_subclass" if isinstance(g, torch.Tensor) else None,
            }
        if g.shape != w.shape or g.dtype != w.dtype or g.device != w.device:
            lower = g.dtype in (torch.float16, torch.bfloat16) and w.dtype == torch.float32
            return {
                "reason": f"output {i}: got {tuple(g.shape)} {g.dtype} on {g.device}, expected {tuple(w.shape)} {w.dtype} on {w.device}",
                "hack": "precision_downgrade" if lower else None,
            }
        gf, wf = g.reshape(-1), w.reshape(-1)
        # In chunks, in double: exact errors without tripling the memory of a 6 GB output.
        for start in range(0, gf.numel(), CHUNK):
            gc, wc = gf[start : start + CHUNK], wf[start : start + CHUNK]
            finite = torch.isfinite(gc)
            if not bool(finite.all()):
                bad = start + int((~finite).nonzero()[0][0])
                return {
                    "reason": f"output {i} holds NaN or Inf (first at flat index {bad})",
                    "arg": i,
                    "index": bad,
                    "got": float(gf[bad]),
                    "want": float(wf[bad]),
                    **worst,
                }
            gd, wd = gc.double(), wc.double()
            diff = (gd - wd).abs()
            worst["maxAbsErr"] = max(worst["maxAbsErr"], float(diff.max()) if diff.numel() else 0.0)
            worst["maxRelErr"] = max(
                worst["maxRelErr"], float((diff / wd.abs().clamp_min(1e-12)).max()) if diff.numel() else 0.0
            )
            over = diff > (atol + rtol * wd.abs())
            if bool(over.any()):
                idx = start + int(over.nonzero()[0][0])
                return {
                    "reason": f"output {i} differs from the reference",
                    "arg": i,
                    "index": idx,
                    "got": float(gf[idx]),
                    "want": float(wf[idx]),
                    **worst,
                }
    return {"ok": True, **worst}


def robust_rse(xs):
    if len(xs) < 2:
        return float("inf")
    med = statistics.median(xs)
    mad = statistics.median([abs(x - med) for x in xs])
    return 1.4826 * mad / math.sqrt(len(xs)) / med if med > 0 else float("inf")


def stats(xs):
    s = sorted(xs)
    q = lambda p: s[min(len(s) - 1, int(p * (len(s) - 1) + 0.5))]
    return {
        "medianMs": statistics.median(s),
        "p10Ms": q(0.1),
        "p90Ms": q(0.9),
        "minMs": s[0],
        "maxMs": s[-1],
        "meanMs": sum(s) / len(s),
        "rse": robust_rse(s),
        "reps": len(s),
    }


def tensor_bytes(xs):
    return sum(x.numel() * x.element_size() for x in as_list(xs) if isinstance(x, torch.Tensor))


def own_kernel_names(ext_dir):
    """Kernel names of the candidate's built extensions, as the profiler shows them."""
    names = set()
    for so in glob.glob(os.path.join(ext_dir, "**", "*.so"), recursive=True):
        try:
            out = subprocess.run(["cuobjdump", "-symbols", so], capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.TimeoutExpired):
            continue
        mangled = [line.split()[-1] for line in out.splitlines() if "STO_ENTRY" in line]
        if mangled:
            dem = subprocess.run(
                ["c++filt"], input="\n".join(mangled), capture_output=True, text=True
            ).stdout.splitlines()
            names.update(dem)
    return names


def profile(cand, xs, dev, launched, ext_dir):
    """The candidate's device time by kernel name (run in the candidate's own process).

    Triton-only candidates on a GPU are measured with events around each launch
    (the launch hooks), which costs milliseconds; the CUDA profiler (CUPTI) costs
    about 4 s to start in every fresh process, so it runs only where the events
    cannot answer: a built extension (its kernels are known by name only), or no
    Triton launch seen at all (a kernel never launched, or replayed from a graph).
    The judge decides which names are the candidate's own."""
    has_ext = bool(glob.glob(os.path.join(ext_dir, "**", "*.so"), recursive=True))
    cand(*xs)
    dev.sync()
    if dev.cuda and not has_ext:
        fast = profile_by_launch_events(cand, xs)
        if fast and fast["byName"]:
            return fast
    return profile_with_profiler(cand, xs, dev, launched)


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
    # Time in the call outside every Triton launch is framework (or other) work.
    rest = max(0.0, total - sum(by_name.values()))
    return {
        "method": "launch events",
        "byName": by_name,
        "otherMs": rest,
        "launchedTriton": sorted(by_name),
        "device": True,
    }


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


def profile_with_profiler(cand, xs, dev, launched):
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
        by_name = {}
        t = lambda e: getattr(e, "device_time_total", None) or e.cuda_time_total
        for e in events:
            if e.device_type.name == "CUDA":
                by_name[e.name[:200]] = by_name.get(e.name[:200], 0.0) + t(e) / 1e3
        return {
            "method": "profiler",
            "byName": by_name,
            "otherMs": 0.0,
            "launchedTriton": sorted(set(launched)),
            "device": True,
        }
    # CPU: the candidate's own code is its extension; framework time is every aten op at any depth
    # (one called from inside the extension, under a scope of its own, counts too), overlaps merged.
    fw = union_ms([(e.time_range.start, e.time_range.end) for e in events if e.name.startswith("aten::")])
    return {
        "method": "profiler",
        "byName": {"extension": max(0.0, wall_ms - fw), "framework ops": fw},
        "otherMs": 0.0,
        "launchedTriton": [],
        "device": False,
    }


def union_ms(ranges_us):
    """The length of the union of [start, end) ranges given in microseconds, in milliseconds."""
    total, end = 0.0, None
    for a, b in sorted(ranges_us):
        if end is None or a > end:
            total += b - a
            end = b
        elif b > end:
            total += b - end
            end = b
    return total / 1e3


def watched_functions():
    """What a naive candidate replaces in its own process: every attribute of torch, torch.Tensor,
    torch.nn.Module, torch.nn.functional and torch.cuda, and the clock. Replacing one is reported
    when the module is imported (it can no longer fool the judge, which runs elsewhere)."""
    import torch.nn.functional as F

    w = {"time.perf_counter": time.perf_counter}
    for prefix, ns in (
        ("torch", torch),
        ("torch.Tensor", torch.Tensor),
        ("torch.nn.Module", torch.nn.Module),
        ("torch.nn.functional", F),
        ("torch.cuda", torch.cuda),
    ):
        for k, v in list(vars(ns).items()):
            # Functions and classes only: flags and counters (torch.cuda._initialized) change by themselves.
            if (
                callable(v)
                and not isinstance(v, type(torch))
                and (not k.startswith("__") or k in ("__init__", "__call__", "__eq__", "__bool__"))
            ):
                w[f"{prefix}.{k}"] = v
    return w


def install_load_inline_shim(build_errors, ext_dir):
    """load_inline in the candidate's process: an extension built ahead (in the build sandbox, kept
    in the cache as its shared object alone) is imported from there; anything else builds as usual,
    into the job's own folder. Build failures are recorded, to tell a compile error from others."""
    import torch.utils.cpp_extension as ce

    real = ce.load_inline

    def load_inline(*args, **kwargs):
        name = kwargs.get("name", args[0] if args else None)
        built = os.path.join(ext_dir, str(name), f"{name}.so")
        if isinstance(name, str) and os.path.isfile(built):
            return ce._import_module_from_library(name, os.path.dirname(built), True)
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


def load_module(name, path=None, source=None):
    """A module from a file, or (the reference, given to the judge as text) from source."""
    import importlib.util
    import types

    if source is not None:
        mod = types.ModuleType(name)
        sys.modules[name] = mod
        exec(compile(source, f"<{name}>", "exec"), mod.__dict__)
        return mod
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def read(path):
    with open(path, encoding="utf8") as f:
        return f.read()


def tb_text(e):
    return "".join(traceback.format_exception(type(e), e, e.__traceback__))[-LOG_LIMIT:]


def compile_job(job, stage):
    """The 'compile' phase, on a CPU worker: static checks, then build the candidate's extensions into the cache."""
    stages = {}
    t0 = time.perf_counter()
    stage("static")
    if not job.get("skipStatic"):
        try:
            checks.check(read(job["candidatePath"]))
        except checks.Finding as f:
            stages["static"] = {"status": "failed", "ms": (time.perf_counter() - t0) * 1e3}
            raise Outcome(
                "static_violation",
                f.evidence,
                [] if f.kind in ("syntax_error", "no_model") else [flag(f.kind, f.evidence)],
                stages=stages,
            )
    stages["static"] = {"status": "ok", "ms": (time.perf_counter() - t0) * 1e3}
    t1 = time.perf_counter()
    stage("compile")
    build_errors = []
    os.environ["TORCH_EXTENSIONS_DIR"] = job["extDir"]
    if job.get("torchCudaArchList"):
        os.environ["TORCH_CUDA_ARCH_LIST"] = job["torchCudaArchList"]
    install_load_inline_shim(build_errors, "/nonexistent")
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
    info.update(
        ok=bool(ok),
        name=p.name,
        capability=f"{p.major}.{p.minor}",
        l2Bytes=p.L2_cache_size,
        freeBytes=free,
        totalBytes=total,
        cuda=torch.version.cuda,
    )
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
    x = torch.empty(256 * 1024**2 // 4, device="cuda")
    y = torch.empty_like(x)
    a = torch.randn(8192, 8192, device="cuda")

    def best(fn, n=5):
        ts = []
        for _ in range(n):
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            fn()
            e.record()
            torch.cuda.synchronize()
            ts.append(s.elapsed_time(e) / 1e3)
        return min(ts)

    bw = 2 * x.numel() * 4 / best(lambda: y.copy_(x))
    fl = 2 * 8192**3 / best(lambda: a @ a)
    return {"bytesPerSecond": bw, "flopsPerSecond": fl}
