"""Tensors shared between the judge and the candidate's process, without either
trusting the other's memory.

On a GPU: dedicated device allocations (the CUDA driver's cuMemAlloc, never the
caching allocator, whose segments hold other tensors) exported with CUDA IPC
handles, and interprocess events to order the two processes' streams.
On the CPU: the judge's inputs are files on the job's tmpfs mapped by both
processes; the candidate's outputs are read by the judge from the candidate's
memory (/proc/PID/mem) while the candidate is stopped.

A descriptor crossing the process boundary is plain JSON: {"handle" (hex) or
"path" or "addr", "nbytes", "dtype", "shape", "strides", "offset"} — element
strides and offset, as torch counts them. The judge validates every field.
"""

import ctypes
import os

import torch

DTYPES = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float64": torch.float64,
    "int64": torch.int64,
    "int32": torch.int32,
    "int16": torch.int16,
    "int8": torch.int8,
    "uint8": torch.uint8,
    "bool": torch.bool,
}
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}
MAX_DIMS = 8


class ShareError(Exception):
    """A descriptor that does not describe memory the other side may use."""


def describe(t, **where):
    """The JSON descriptor of a tensor whose storage the other side can reach through `where`."""
    return {
        "dtype": DTYPE_NAMES.get(t.dtype, str(t.dtype)),
        "shape": list(t.shape),
        "strides": list(t.stride()),
        "offset": int(t.storage_offset()),
        **where,
    }


def extent(desc):
    """(dtype, shape, strides, offset, bytes spanned from the base) of a descriptor, validated."""
    if not isinstance(desc, dict):
        raise ShareError("a tensor descriptor must be an object")
    dtype = DTYPES.get(desc.get("dtype"))
    if dtype is None:
        raise ShareError(f"unsupported dtype {str(desc.get('dtype'))[:40]!r}")
    shape, strides, offset = desc.get("shape"), desc.get("strides"), desc.get("offset", 0)
    ints = lambda xs: isinstance(xs, list) and len(xs) <= MAX_DIMS and all(type(x) is int for x in xs)
    if not (ints(shape) and ints(strides) and len(shape) == len(strides) and type(offset) is int):
        raise ShareError("shape, strides and offset must be lists of at most 8 integers (and an integer)")
    if any(s < 0 for s in shape) or any(s < 0 for s in strides) or offset < 0:
        raise ShareError("negative sizes, strides or offsets are not allowed")
    item = torch.empty((), dtype=dtype).element_size()
    if 0 in shape:
        return dtype, shape, strides, offset, 0
    last = offset + sum((n - 1) * s for n, s in zip(shape, strides))
    return dtype, shape, strides, offset, (last + 1) * item


def view(raw, desc):
    """A tensor over the bytes `raw` (a uint8 tensor from the allocation's base) as `desc` says."""
    dtype, shape, strides, offset, span = extent(desc)
    if span > raw.numel():
        raise ShareError(f"the tensor spans {span} bytes; its memory holds {raw.numel()}")
    item = torch.empty((), dtype=dtype).element_size()
    usable = raw[: raw.numel() - raw.numel() % item]
    return usable.view(dtype).as_strided(shape, strides, offset)


# --- the CPU: files on tmpfs for inputs, /proc/PID/mem for outputs ---------------------------


def file_tensor(path, nbytes):
    """A uint8 tensor over a shared mapping of `path`, created at `nbytes` if missing."""
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.truncate(max(1, nbytes))
    size = max(1, nbytes)
    if hasattr(torch, "from_file"):
        return torch.from_file(path, shared=True, size=size, dtype=torch.uint8)
    return torch.ByteTensor(torch.ByteStorage.from_file(path, True, size))


class FileBuffer:
    """The judge's side of an input file on the CPU: written and read back with pwrite/pread, never
    mapped, so that a candidate that truncates the file cannot fault the judge (a mapping past the
    end of a file is SIGBUS; a read there is only short). The file is unlinked once the runner has
    mapped it, so nothing else can open it."""

    def __init__(self, path, nbytes):
        self.path, self.nbytes = path, max(1, nbytes)
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        os.ftruncate(self.fd, self.nbytes)

    def numel(self):
        return self.nbytes

    def write(self, t):
        data = t.contiguous().view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        if os.pwrite(self.fd, data, 0) != len(data):
            raise ShareError("a short write of an input")

    def read(self, like):
        """The bytes now in the file, as a tensor shaped like `like` (contiguous)."""
        n = like.numel() * like.element_size()
        data = os.pread(self.fd, n, 0)
        if len(data) != n:
            return None  # the file was cut short: not what the judge wrote
        return (
            torch.frombuffer(bytearray(data), dtype=torch.uint8).view(like.dtype).view(like.shape)
            if n
            else like.new_empty(like.shape)
        )

    def unlink(self):
        try:
            os.unlink(self.path)
        except OSError:
            pass

    def close(self):
        os.close(self.fd)


def read_process_tensor(mem_fd, desc, max_bytes):
    """The candidate's output, copied out of its (stopped) memory by address."""
    dtype, shape, strides, offset, span = extent(desc)
    addr = desc.get("addr")
    if type(addr) is not int or addr <= 0:
        raise ShareError("an output descriptor needs its address")
    if span > max_bytes:
        raise ShareError(f"the output spans {span} bytes, more than the {max_bytes} allowed")
    data = bytearray(max(span, 1))
    try:
        got = os.preadv(mem_fd, [data], addr) if span else 0
    except OSError as e:  # an address the process does not map
        raise ShareError(f"cannot read the output at {addr:#x}: {e.strerror}")
    if got != span:
        raise ShareError(f"read {got} of the output's {span} bytes at {addr:#x}")
    raw = torch.frombuffer(data, dtype=torch.uint8) if span else torch.empty(0, dtype=torch.uint8)
    return view(raw, desc)


def mapped_files(pid):
    """Address ranges of the process that map files: (start, end, path)."""
    out = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split(None, 5)
            if len(parts) == 6 and parts[5].startswith("/"):
                a, b = parts[0].split("-")
                out.append((int(a, 16), int(b, 16), parts[5].strip()))
    return out


# --- the GPU: driver allocations, IPC handles, interprocess events --------------------------


class _Handle(ctypes.Structure):
    _fields_ = [("reserved", ctypes.c_ubyte * 64)]

    def hex(self):
        return ctypes.string_at(ctypes.addressof(self), 64).hex()

    @classmethod
    def parse(cls, handle_hex):
        if not isinstance(handle_hex, str) or len(handle_hex) != 128:
            raise ShareError("an IPC handle is 64 bytes of hex")
        h = cls()
        ctypes.memmove(ctypes.addressof(h), bytes.fromhex(handle_hex), 64)
        return h


_driver = None


def driver():
    """libcuda, which torch has already loaded; calls run in torch's current (primary) context."""
    global _driver
    if _driver is None:
        d = ctypes.CDLL("libcuda.so.1")
        d.cuMemAlloc_v2.argtypes = [ctypes.POINTER(ctypes.c_uint64), ctypes.c_size_t]
        d.cuMemFree_v2.argtypes = [ctypes.c_uint64]
        d.cuIpcGetMemHandle.argtypes = [ctypes.POINTER(_Handle), ctypes.c_uint64]
        d.cuIpcOpenMemHandle_v2.argtypes = [ctypes.POINTER(ctypes.c_uint64), _Handle, ctypes.c_uint]
        d.cuIpcCloseMemHandle.argtypes = [ctypes.c_uint64]
        d.cuMemGetAddressRange_v2.argtypes = [
            ctypes.POINTER(ctypes.c_uint64),
            ctypes.POINTER(ctypes.c_size_t),
            ctypes.c_uint64,
        ]
        _driver = d
    return _driver


def _check(code, what):
    if code != 0:
        raise ShareError(f"{what} failed with CUDA driver error {code}")


class _CudaArray:
    """Just enough of __cuda_array_interface__ for torch.as_tensor to wrap a raw device pointer."""

    def __init__(self, ptr, nbytes):
        self.__cuda_array_interface__ = {"shape": (nbytes,), "typestr": "|u1", "data": (ptr, False), "version": 2}


def raw_cuda(ptr, nbytes):
    torch.zeros(1, device="cuda")  # makes torch's context current on this thread
    if nbytes == 0:
        return torch.empty(0, dtype=torch.uint8, device="cuda")
    return torch.as_tensor(_CudaArray(ptr, nbytes), device="cuda")


class DeviceBuffer:
    """A device allocation of its own (nothing else lives in it), exportable to the candidate."""

    def __init__(self, nbytes):
        torch.zeros(1, device="cuda")
        self.nbytes = max(1, nbytes)
        ptr = ctypes.c_uint64()
        _check(driver().cuMemAlloc_v2(ctypes.byref(ptr), self.nbytes), "cuMemAlloc")
        self.ptr = ptr.value
        h = _Handle()
        _check(driver().cuIpcGetMemHandle(ctypes.byref(h), self.ptr), "cuIpcGetMemHandle")
        self.handle = h.hex()
        self.raw = raw_cuda(self.ptr, self.nbytes)

    def free(self):
        self.raw = None
        if self.ptr:
            driver().cuMemFree_v2(self.ptr)
            self.ptr = 0


def export_cuda(t):
    """(handle hex, byte offset of the tensor's storage from the allocation's base) for a CUDA tensor."""
    base, size = ctypes.c_uint64(), ctypes.c_size_t()
    ptr = t.untyped_storage().data_ptr() if hasattr(t, "untyped_storage") else t.storage().data_ptr()
    _check(driver().cuMemGetAddressRange_v2(ctypes.byref(base), ctypes.byref(size), ptr), "cuMemGetAddressRange")
    h = _Handle()
    _check(driver().cuIpcGetMemHandle(ctypes.byref(h), base.value), "cuIpcGetMemHandle")
    return h.hex(), ptr - base.value


class OpenedHandles:
    """IPC handles opened in this process, each once; closed together."""

    def __init__(self, limit=256):
        self.opened = {}
        self.limit = limit

    def raw(self, handle_hex):
        if handle_hex in self.opened:
            return self.opened[handle_hex][1]
        h = _Handle.parse(handle_hex)
        if len(self.opened) >= self.limit:
            raise ShareError(f"more than {self.limit} distinct device allocations were shared")
        ptr = ctypes.c_uint64()
        _check(driver().cuIpcOpenMemHandle_v2(ctypes.byref(ptr), h, 1), "cuIpcOpenMemHandle")
        base, size = ctypes.c_uint64(), ctypes.c_size_t()
        # The allocation's true size comes from the driver, never from the other side.
        _check(
            driver().cuMemGetAddressRange_v2(ctypes.byref(base), ctypes.byref(size), ptr.value), "cuMemGetAddressRange"
        )
        raw = raw_cuda(ptr.value, size.value)
        self.opened[handle_hex] = (ptr.value, raw)
        return raw

    def close(self):
        for ptr, _ in self.opened.values():
            driver().cuIpcCloseMemHandle(ptr)
        self.opened.clear()


def ipc_event():
    """An interprocess event (timing disabled, as CUDA requires) and its handle in hex."""
    e = torch.cuda.Event(enable_timing=False, interprocess=True)
    return e, bytes(e.ipc_handle()).hex()


def open_event(handle_hex):
    if not isinstance(handle_hex, str) or len(handle_hex) != 128:
        raise ShareError("an event handle is 64 bytes of hex")
    return torch.cuda.Event.from_ipc_handle(torch.cuda.current_device(), bytes.fromhex(handle_hex))
