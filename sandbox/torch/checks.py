"""Static checks of a torch-backend candidate, on its syntax tree.

They are early, friendly refusals, not the wall: the judge runs in another
process, so nothing here decides a verdict alone. They keep the candidate away
from the interpreter's internals, other modules, files, threads and processes,
and refuse the shortcuts visible in the source: handlers that fall back to other
code, reuse of the reference model, and framework compute ops in the forward pass.
"""

import ast

# Modules a candidate may import (and their submodules, where listed so).
ALLOWED_IMPORTS = {
    "torch",
    "torch.nn",
    "torch.nn.functional",
    "torch.utils.cpp_extension",
    "triton",
    "triton.language",
    "math",
    "typing",
    "functools",
}

# Builtins that reach the interpreter, files or other code.
DENIED_NAMES = {
    "__import__",
    "eval",
    "exec",
    "compile",
    "open",
    "globals",
    "locals",
    "vars",
    "getattr",
    "setattr",
    "delattr",
    "breakpoint",
    "input",
    "memoryview",
    "__builtins__",
    "__loader__",
    "__spec__",
    "exit",
    "quit",
    "help",
    "object",
}

# Attributes that lead to frames, code objects or the allocator's internals.
DENIED_ATTRS = {
    "f_back",
    "f_locals",
    "f_globals",
    "f_builtins",
    "f_code",
    "tb_frame",
    "gi_frame",
    "cr_frame",
    "ag_frame",
    "_getframe",
    "setprofile",
    "settrace",
    "modules",
    "_C",
    "_dynamo",
    "_inductor",
    "set_float32_matmul_precision",
    "allow_tf32",
    "allow_bf16_reduced_precision_reduction",
    "allow_fp16_reduced_precision_reduction",
    "backends",
    "profiler",
    "set_stream",
    "manual_seed",
    "seed",
    "Event",
    "multiprocessing",
    "distributed",
    "hub",
    "library",
    "ops",
    "classes",
    "storage",
    "untyped_storage",
    "from_file",
    "set_default_device",
}
# Attributes refused on torch only (triton.jit is how kernels are written).
TORCH_DENIED_ATTRS = {"jit", "compile", "load", "save"}

# Framework ops that compute; calling one from forward hands the work to the framework.
COMPUTE_OPS = {
    "matmul",
    "mm",
    "bmm",
    "addmm",
    "baddbmm",
    "addmv",
    "mv",
    "dot",
    "einsum",
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose2d",
    "softmax",
    "log_softmax",
    "layer_norm",
    "rms_norm",
    "group_norm",
    "batch_norm",
    "instance_norm",
    "normalize",
    "gelu",
    "relu",
    "relu_",
    "silu",
    "sigmoid",
    "tanh",
    "exp",
    "log",
    "sum",
    "mean",
    "amax",
    "max",
    "min",
    "cumsum",
    "cumprod",
    "prod",
    "var",
    "std",
    "norm",
    "softplus",
    "elu",
    "leaky_relu",
    "hardtanh",
    "mish",
    "scaled_dot_product_attention",
    "add",
    "sub",
    "mul",
    "div",
    "addcmul",
    "where",
    "clamp",
    "pow",
    "sqrt",
    "rsqrt",
    "abs",
    "erf",
    "logsumexp",
    "max_pool2d",
    "avg_pool2d",
    "interpolate",
    "cross_entropy",
    "mse_loss",
    "topk",
    "sort",
    "argmax",
    "argmin",
    "square",
    "neg",
    "reciprocal",
    "maximum",
    "minimum",
    "addmm_",
}

# Module-level names that may be the root of a compute-op call (torch.matmul, F.gelu…).
FRAMEWORK_ROOTS = {"torch", "F", "nn", "functional"}


class Finding(Exception):
    def __init__(self, kind, evidence):
        super().__init__(evidence)
        self.kind = kind
        self.evidence = evidence


def _root(node):
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _dotted(node):
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def _is_triton_jit(fn):
    return any(
        "jit" in _dotted(d.func if isinstance(d, ast.Call) else d)
        or "autotune" in _dotted(d.func if isinstance(d, ast.Call) else d)
        for d in fn.decorator_list
    )


def kernel_names(source):
    """Names of the Triton kernels the source defines: the judge's list of what counts as the candidate's own."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    return {
        fn.name
        for fn in ast.walk(tree)
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) and _is_triton_jit(fn)
    }


def check(source, filename="candidate.py"):
    """Raises Finding on the first violation; returns the syntax tree otherwise."""
    try:
        tree = ast.parse(source, filename)
    except SyntaxError as e:
        raise Finding("syntax_error", f"line {e.lineno}: {e.msg}")
    imported_modules = set()
    for node in ast.walk(tree):
        line = getattr(node, "lineno", "?")
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name not in ALLOWED_IMPORTS:
                    raise Finding(
                        "forbidden_import",
                        f"line {line}: import {a.name} (allowed: {', '.join(sorted(ALLOWED_IMPORTS))})",
                    )
                imported_modules.add((a.asname or a.name).split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            if (
                node.level
                or node.module not in ALLOWED_IMPORTS
                and f"{node.module}.{node.names[0].name}" not in ALLOWED_IMPORTS
            ):
                raise Finding(
                    "forbidden_import",
                    f"line {line}: from {node.module or '.'} import … (allowed: {', '.join(sorted(ALLOWED_IMPORTS))})",
                )
            for a in node.names:
                if a.name.startswith("_") or a.name in DENIED_ATTRS or a.name in DENIED_NAMES:
                    raise Finding("forbidden_import", f"line {line}: from {node.module} import {a.name} is not allowed")
                # `from torch.nn import functional as G` binds a module: assignments to G.x patch it.
                imported_modules.add(a.asname or a.name)
            if node.module == "torch.utils.cpp_extension" and any(a.name != "load_inline" for a in node.names):
                raise Finding(
                    "forbidden_import", f"line {line}: only load_inline may be imported from torch.utils.cpp_extension"
                )
        elif isinstance(node, ast.Name) and node.id in DENIED_NAMES:
            raise Finding("forbidden_name", f"line {line}: `{node.id}` is not allowed")
        elif isinstance(node, ast.Attribute):
            if node.attr.startswith("__") and node.attr.endswith("__") and node.attr != "__init__":
                raise Finding("forbidden_attribute", f"line {line}: attribute `{node.attr}` is not allowed")
            if (
                node.attr in DENIED_ATTRS
                or (node.attr.startswith("_") and node.attr != "__init__" and _root(node) != "self")
                or (node.attr in TORCH_DENIED_ATTRS and _root(node) == "torch")
            ):
                raise Finding("forbidden_attribute", f"line {line}: `{_dotted(node)}` is not allowed")
        elif isinstance(node, (ast.Try, getattr(ast, "TryStar", ast.Try))):
            raise Finding(
                "exception_fallback",
                f"line {line}: try/except is not allowed (a failing kernel must fail, not fall back to other code)",
            )
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            raise Finding("forbidden_name", f"line {line}: global/nonlocal state is not allowed")
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            for t in targets:
                root = _root(t)
                if (
                    isinstance(t, (ast.Attribute, ast.Subscript))
                    and root is not None
                    and root != "self"
                    and root in imported_modules | FRAMEWORK_ROOTS | {"tl", "triton", "math"}
                ):
                    raise Finding(
                        "harness_patching", f"line {line}: assigns to `{_dotted(t) or root}`, a module's attribute"
                    )
        elif isinstance(node, ast.ClassDef):
            for b in node.bases:
                if _dotted(b) in ("Model",) or _dotted(b).endswith(".Model"):
                    raise Finding("reference_reuse", f"line {line}: class {node.name} subclasses the reference Model")
        if isinstance(node, ast.Name) and node.id == "Model":
            raise Finding("reference_reuse", f"line {line}: the reference `Model` may not be used")

    model = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "ModelNew"), None)
    if model is None:
        raise Finding("no_model", "the code defines no class `ModelNew`")
    _check_compute_ops(tree)
    return tree


def _check_compute_ops(tree):
    """Framework compute ops anywhere outside __init__ and kernels: forward must launch the candidate's own kernels."""
    # Names bound to a load_inline extension: calling its functions is launching own kernels.
    extensions = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Call)
            and _dotted(node.value.func).endswith("load_inline")
        ):
            extensions.update(_dotted(t) for t in node.targets)
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) or fn.name == "__init__" or _is_triton_jit(fn):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult):
                raise Finding(
                    "framework_compute",
                    f"line {node.lineno}: `@` in {fn.name} is a framework matmul; launch your own kernel",
                )
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in COMPUTE_OPS:
                if _dotted(node.func.value) in extensions:
                    continue
                root = _root(node.func)
                # torch.sum(x), F.gelu(x), x.sum(), self.linear.weight.t().matmul(...): all framework compute.
                if root in FRAMEWORK_ROOTS or root not in ("tl", "triton", "math"):
                    raise Finding(
                        "framework_compute",
                        f"line {node.lineno}: `{_dotted(node.func)}(…)` in {fn.name} is a framework compute op; launch your own kernel",
                    )
