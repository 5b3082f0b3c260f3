"""What timing across the judge/candidate split costs on a GPU, against events in one process.

A parent (the judge's place) forks a child before CUDA starts (the candidate's
place); both then use the GPU. For an elementwise kernel sized to 0.5–5 ms,
three ways of timing the same work are compared, each interleaved and with an
L2 flush before every repetition:
  in-process   events around the call in the parent (the old design);
  gated        the parent's stream sleeps, writes the inputs and flushes, then
               records an interprocess event G; the child's stream waits on G,
               runs the kernel and records an interprocess event X; the parent's
               stream waits on X and records its end event: the time from G to
               the end, on the parent's clock;
  host         the parent's host clock around request and reply, the child
               synchronizing before it replies.
Also checked: a child that leaves its work on a side stream (not ordered before
X) is seen, because the output is read at the end event.

    python3 bench/torch-split-timing.py [--out FILE.json]
"""

import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "sandbox", "torch"))
import torch  # noqa: E402

import share  # noqa: E402


def send(fd, msg):
    os.write(fd, (json.dumps(msg) + "\n").encode())


def recv(f):
    return json.loads(f.readline())


def child(rfd, wfd):
    f = os.fdopen(rfd)
    torch.zeros(1, device="cuda")
    opened = share.OpenedHandles()
    done, done_handle = share.ipc_event()
    gate = None
    send(wfd, {"done": done_handle})
    side = torch.cuda.Stream()
    while True:
        m = recv(f)
        if m["op"] == "quit":
            return
        if gate is None:
            gate = share.open_event(m["gate"])
        x = share.view(opened.raw(m["x"]["handle"]), m["x"])
        stream = torch.cuda.current_stream()
        if m["op"] == "gated":
            stream.wait_event(gate)
            out = x * 1.5
            done.record(stream)
        elif m["op"] == "side":  # the work on a stream the end event does not follow
            stream.wait_event(gate)
            side.wait_stream(stream)
            with torch.cuda.stream(side):
                out = x * 1.5
            done.record(stream)
        else:  # host
            out = x * 1.5
            torch.cuda.synchronize()
        handle, off = share.export_cuda(out)
        keep = out
        send(wfd, {"out": share.describe(out, handle=handle, offset=off // 4 + out.storage_offset())})
        del keep


def main():
    out_path = sys.argv[sys.argv.index("--out") + 1] if "--out" in sys.argv else None
    p2c_r, p2c_w = os.pipe()
    c2p_r, c2p_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(p2c_w)
        os.close(c2p_r)
        child(p2c_r, c2p_w)
        os._exit(0)
    os.close(p2c_r)
    os.close(c2p_w)
    f = os.fdopen(c2p_r)
    torch.zeros(1, device="cuda")
    done = share.open_event(recv(f)["done"])
    gate, gate_handle = share.ipc_event()
    l2 = torch.cuda.get_device_properties(0).L2_cache_size
    flush = torch.empty(2 * l2 // 4, device="cuda")
    opened = share.OpenedHandles()
    ev = lambda: torch.cuda.Event(enable_timing=True)
    s0, s1 = ev(), ev()
    s0.record()
    torch.cuda._sleep(1_000_000)
    s1.record()
    torch.cuda.synchronize()
    cycles_per_ms = 1_000_000 / s0.elapsed_time(s1)
    report = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "sizes": []}
    # x*1.5 reads and writes 4 bytes per element: about 2 ms per 2**30 elements on an H200.
    for target_ms in (0.5, 1.0, 2.0, 5.0):
        n = int(target_ms / 2.0 * 2**30 / 1.15)
        buf = share.DeviceBuffer(n * 4)
        x = share.view(buf.raw, {"dtype": "float32", "shape": [n], "strides": [1], "offset": 0})
        staging = torch.randn(n, device="cuda")
        desc = share.describe(x, handle=buf.handle)
        want = staging * 1.5
        times = {"in-process": [], "gated": [], "host": []}
        for _ in range(30):
            for how in ("in-process", "gated", "host"):
                stream = torch.cuda.current_stream()
                if how == "in-process":
                    flush.zero_()
                    torch.cuda.synchronize()
                    a, b = ev(), ev()
                    a.record()
                    _ = x * 1.5
                    b.record()
                    torch.cuda.synchronize()
                    times[how].append(a.elapsed_time(b))
                elif how == "gated":
                    a, b = ev(), ev()
                    torch.cuda._sleep(int(cycles_per_ms * 1.0))
                    x.copy_(staging)
                    flush.zero_()
                    a.record()
                    gate.record(stream)
                    send(p2c_w, {"op": "gated", "x": desc, "gate": gate_handle})
                    reply = recv(f)
                    stream.wait_event(done)
                    b.record()
                    got = share.view(opened.raw(reply["out"]["handle"]), reply["out"])
                    ok = bool(torch.equal(got, want))
                    torch.cuda.synchronize()
                    times[how].append(a.elapsed_time(b))
                    assert ok, "gated output differs"
                else:
                    x.copy_(staging)
                    flush.zero_()
                    torch.cuda.synchronize()
                    h0 = time.perf_counter()
                    send(p2c_w, {"op": "host", "x": desc, "gate": gate_handle})
                    reply = recv(f)
                    times[how].append((time.perf_counter() - h0) * 1e3)
        med = {k: statistics.median(v) for k, v in times.items()}
        # The side-stream child: its output, read at the end event, must be caught incomplete.
        caught = 0
        for _ in range(5):
            torch.cuda._sleep(int(cycles_per_ms * 1.0))
            x.copy_(staging)
            gate.record(torch.cuda.current_stream())
            send(p2c_w, {"op": "side", "x": desc, "gate": gate_handle})
            reply = recv(f)
            torch.cuda.current_stream().wait_event(done)
            got = share.view(opened.raw(reply["out"]["handle"]), reply["out"]).clone()
            torch.cuda.synchronize()
            caught += not torch.equal(got, want)
        row = {
            "targetMs": target_ms,
            "elements": n,
            **{f"{k}Ms": round(v, 4) for k, v in med.items()},
            "gatedOverInProcess": round(med["gated"] / med["in-process"], 4),
            "hostOverInProcess": round(med["host"] / med["in-process"], 4),
            "sideStreamCaught": f"{caught} of 5",
        }
        print(json.dumps(row), flush=True)
        report["sizes"].append(row)
        del x, staging, want
        buf.free()
        opened.close()
    send(p2c_w, {"op": "quit"})
    os.waitpid(pid, 0)
    if out_path:
        with open(out_path, "w") as fo:
            json.dump(report, fo, indent=1)


if __name__ == "__main__":
    main()
