"""A Python operator that misbehaves on purpose, chosen by config `mode`:
`loop` (never returns), `bomb` (allocates until memory runs out), `raise`
(an uncaught exception), `read-file` (reads /etc/passwd), `connect`
(connects a socket to config `addr`), `sleep` (sleeps a minute). The last
three catch what fails and emit `<value> <what happened>`, so the job goes
on."""

import socket
import time

from weir_sdk import Operator, export_operator


class Hostile(Operator):
    def __init__(self, ctx):
        self.mode = ctx.get("mode", "ok")
        self.addr = ctx.get("addr", "127.0.0.1:9")

    def process(self, e, ctx):
        if self.mode == "loop":
            n = 0
            while True:
                n += 1
        elif self.mode == "bomb":
            hoard = []
            while True:
                hoard.append(bytearray(1 << 20))
        elif self.mode == "raise":
            raise KeyError("hostile python: no such key")
        ctx.emit(e.key, e.value + b" " + self.probe().encode(), e.timestamp)

    def probe(self):
        try:
            if self.mode == "read-file":
                with open("/etc/passwd", "rb") as f:
                    return f"read {len(f.read())} bytes"
            if self.mode == "connect":
                host, port = self.addr.rsplit(":", 1)
                with socket.create_connection((host, int(port)), timeout=1):
                    return "connected"
            if self.mode == "sleep":
                start = time.monotonic()
                time.sleep(60)
                return f"slept {time.monotonic() - start:.3f} s"
            return "ok"
        except Exception as e:  # what the sandbox refused, as the guest sees it
            return f"error: {type(e).__name__}: {e}"


Handler = export_operator(Hostile)
