"""Messages between the judge and a runner process: one JSON object per line,
each at most MAX_LINE bytes. The judge reads a runner's pipe only through
Channel.recv, which refuses anything that is not one well-formed object."""

import json
import os
import select
import time

MAX_LINE = 1 << 20


class ChannelError(Exception):
    """The other side broke the protocol, died, or did not answer in time."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind  # "closed", "timeout", "garbage"


class Channel:
    def __init__(self, rfd, wfd):
        self.rfd, self.wfd = rfd, wfd
        self.buf = b""

    def send(self, msg):
        data = (json.dumps(msg, allow_nan=False) + "\n").encode()
        view = memoryview(data)
        while view:
            n = os.write(self.wfd, view)
            view = view[n:]

    def recv(self, timeout_s):
        """The next message; ChannelError on a closed pipe, a timeout or anything not a JSON object."""
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self.buf:
            if len(self.buf) > MAX_LINE:
                raise ChannelError("garbage", f"a line of more than {MAX_LINE} bytes")
            wait = deadline - time.monotonic()
            if wait <= 0:
                raise ChannelError("timeout", f"no answer within {timeout_s:.1f} s")
            ready, _, _ = select.select([self.rfd], [], [], wait)
            if not ready:
                continue
            chunk = os.read(self.rfd, 1 << 16)
            if not chunk:
                raise ChannelError("closed", "the process closed its pipe")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        try:
            msg = json.loads(line)
        except ValueError:
            raise ChannelError("garbage", f"not JSON: {line[:120]!r}")
        if not isinstance(msg, dict):
            raise ChannelError("garbage", f"not an object: {line[:120]!r}")
        return msg

    def close(self):
        for fd in (self.rfd, self.wfd):
            try:
                os.close(fd)
            except OSError:
                pass
