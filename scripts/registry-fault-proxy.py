#!/usr/bin/env python3
"""An HTTP/1.1 proxy in front of a registry, with faults switched at run time.

Listens on 127.0.0.1 (a free port, written to --port-file) and forwards every request to
--upstream (host:port, plain HTTP), keep-alive on both sides (one upstream connection per
client connection). Python 3 standard library only.

Control: a second port on 127.0.0.1 (written to --control-port-file). A client connects, sends
one line, and reads one line back (`ok <mode>`, or `error ...`):

  pass            forward as is
  latency=MS      wait MS before forwarding each request and again before sending each
                  response (a one-way delay: each exchange costs a round trip of 2 x MS);
                  a new connection's first request also waits one round trip for the TCP
                  handshake, two with --tls (TLS 1.3 adds one)
  stall           read each request, never answer (the connection stays open)
  5xx             answer 503 to everything, without asking the registry
  reset           close each connection with a TCP RST (SO_LINGER 0): new ones right after
                  accept, open ones when their next request arrives
  slow[=B/MS]     forward the real answer, B bytes at a time with MS between writes (default
                  16/100: 160 bytes/s), so that every read succeeds but a whole answer takes
                  seconds
  mark TEXT       write TEXT to the log as a marker (mode unchanged)
  mode            report the mode

From bash:  exec 3<>/dev/tcp/127.0.0.1/$CONTROL; echo stall >&3; read -r reply <&3; exec 3<&-

The mode in force when a request arrives applies to the whole exchange.

Log (--log): one JSON line per event, `t` in Unix milliseconds:
  {"t", "event": "open", "conn"}                      a client connection accepted
  {"t", "event": "reset", "conn"}                     ... and reset at once (`reset`)
  {"t", "event": "request", "conn", "mode", "method", "path", "status", "bytes", "ms"}
      a request answered (`bytes`: body bytes sent back; `status` 0 when none was sent)
  {"t", "event": "mark", "text"}

--tls-cert/--tls-key: serve TLS (Python ssl) instead of plain HTTP to clients; the upstream
stays plain HTTP. With `slow`, every small write is its own TLS record (slow TLS).

Usage: registry-fault-proxy.py --upstream 127.0.0.1:5000 --port-file P --control-port-file C
       [--log FILE] [--mode pass] [--tls-cert CRT --tls-key KEY]
"""

import argparse
import asyncio
import json
import signal
import socket
import ssl
import struct
import sys
import time

MAX_HEAD = 64 * 1024
CHUNK = 64 * 1024
ERRORS = (
    ConnectionError,
    asyncio.IncompleteReadError,
    asyncio.LimitOverrunError,
    ssl.SSLError,
    OSError,
    ValueError,
    EOFError,
)


class State:
    def __init__(self, log_path, mode):
        self.mode = "pass"
        self.latency = 0.0
        self.slow = (16, 0.1)
        self.conns = 0
        self.log_file = open(log_path, "a", buffering=1) if log_path else None
        err = self.set_mode(mode)
        if err:
            raise SystemExit(err)

    def log(self, **fields):
        if self.log_file:
            fields = {"t": round(time.time() * 1000, 1), **fields}
            self.log_file.write(json.dumps(fields, separators=(",", ":")) + "\n")

    def set_mode(self, text):
        """Switches the mode; returns an error message or None."""
        text = text.strip()
        name, _, value = text.partition("=")
        try:
            if text in ("pass", "stall", "5xx", "reset"):
                self.mode = text
            elif name == "latency" and value:
                ms = float(value)
                if ms < 0:
                    raise ValueError
                self.latency = ms / 1000
                self.mode = "latency"
            elif name == "slow":
                if value:
                    b, ms = value.split("/")
                    if int(b) < 1 or float(ms) < 0:
                        raise ValueError
                    self.slow = (int(b), float(ms) / 1000)
                self.mode = "slow"
            else:
                return f"unknown mode {text!r}"
        except ValueError:
            return f"bad value in {text!r}"
        return None

    def describe(self):
        if self.mode == "latency":
            return f"latency={self.latency * 1000:g}"
        if self.mode == "slow":
            return f"slow={self.slow[0]}/{self.slow[1] * 1000:g}"
        return self.mode


def parse_head(head):
    """(first line, [(name, value)], {lower name: value}) of an HTTP head."""
    lines = head.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise ValueError(f"bad header line {line!r}")
        headers.append((name.strip(), value.strip()))
    return lines[0], headers, {n.lower(): v for n, v in headers}


async def read_head(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    if len(head) > MAX_HEAD:
        raise ValueError("head too large")
    return head


async def relay_body(reader, send, index, no_body):
    """Relays one message body from `reader` through `send`; returns (bytes, until_close)."""
    if no_body:
        return 0, False
    if "chunked" in index.get("transfer-encoding", "").lower():
        total = 0
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip(), 16)
            data = size_line
            if size:
                data += await reader.readexactly(size + 2)
                total += size
                await send(data)
                continue
            # Last chunk, then trailers up to an empty line.
            while True:
                line = await reader.readuntil(b"\r\n")
                data += line
                if line == b"\r\n":
                    break
            await send(data)
            return total, False
    if "content-length" in index:
        left = int(index["content-length"])
        total = left
        while left > 0:
            data = await reader.read(min(CHUNK, left))
            if not data:
                raise asyncio.IncompleteReadError(b"", left)
            left -= len(data)
            await send(data)
        return total, False
    return None, True


def rst(writer):
    """Closes the connection with a TCP RST."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()


async def close(writer):
    if writer is None:
        return
    try:
        writer.close()
        await asyncio.wait_for(writer.wait_closed(), 2)
    except (Exception, asyncio.CancelledError):  # noqa: BLE001 - closing is best effort
        pass


UNAVAILABLE = json.dumps(
    {"errors": [{"code": "UNAVAILABLE", "message": "injected fault: service unavailable"}]}
).encode()


async def handle(state, upstream, reader, writer):
    state.conns += 1
    conn = state.conns
    state.log(event="open", conn=conn)
    up_reader = up_writer = None
    handshake_rtts = 2 if writer.get_extra_info("sslcontext") else 1
    try:
        if state.mode == "reset":
            state.log(event="reset", conn=conn)
            rst(writer)
            return
        while True:
            try:
                head = await read_head(reader)
            except asyncio.IncompleteReadError:
                return  # the client closed between requests
            mode = state.mode
            latency, (slow_bytes, slow_pause) = state.latency, state.slow
            started = time.monotonic()
            line, headers, index = parse_head(head)
            method, path = (line.split(" ") + ["", ""])[:2]
            if mode == "reset":
                state.log(event="request", conn=conn, mode=mode, method=method, path=path,
                          status=0, bytes=0, ms=0)
                rst(writer)
                return
            # The request body (registry reads have none; uploads do).
            body = bytearray()

            async def keep(data):
                body.extend(data)

            await relay_body(reader, keep, index, False)
            if mode == "stall":
                state.log(event="request", conn=conn, mode=mode, method=method, path=path,
                          status=0, bytes=0, ms=0)
                while await reader.read(CHUNK):
                    pass
                return
            if mode == "5xx":
                writer.write(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(UNAVAILABLE)}\r\n\r\n".encode()
                    + UNAVAILABLE
                )
                await writer.drain()
                state.log(event="request", conn=conn, mode=mode, method=method, path=path,
                          status=503, bytes=len(UNAVAILABLE),
                          ms=round((time.monotonic() - started) * 1000, 1))
                continue
            if mode == "latency" and latency:
                await asyncio.sleep(latency + handshake_rtts * 2 * latency)
            handshake_rtts = 0
            if up_writer is None or up_writer.is_closing():
                up_reader, up_writer = await asyncio.open_connection(*upstream)
            up_writer.write(head + bytes(body))
            await up_writer.drain()
            resp_head = await read_head(up_reader)
            status_line, _, resp_index = parse_head(resp_head)
            status = int(status_line.split(" ")[1])
            if mode == "latency" and latency:
                await asyncio.sleep(latency)

            async def send(data):
                if mode != "slow":
                    writer.write(data)
                    await writer.drain()
                    return
                for i in range(0, len(data), slow_bytes):
                    writer.write(data[i:i + slow_bytes])
                    await writer.drain()
                    await asyncio.sleep(slow_pause)

            await send(resp_head)
            no_body = method == "HEAD" or status in (204, 304) or 100 <= status < 200
            sent, until_close = await relay_body(up_reader, send, resp_index, no_body)
            if until_close:
                sent = 0
                while data := await up_reader.read(CHUNK):
                    sent += len(data)
                    await send(data)
            state.log(event="request", conn=conn, mode=mode, method=method, path=path,
                      status=status, bytes=sent, ms=round((time.monotonic() - started) * 1000, 1))
            if until_close or index.get("connection", "").lower() == "close":
                return
    except ERRORS:
        pass
    except asyncio.CancelledError:
        pass
    finally:
        await close(up_writer)
        await close(writer)


async def control(state, reader, writer):
    try:
        line = (await asyncio.wait_for(reader.readline(), 5)).decode("utf-8", "replace").strip()
        if line.startswith("mark "):
            state.log(event="mark", text=line[5:])
            reply = f"ok {state.describe()}"
        elif line == "mode":
            reply = f"ok {state.describe()}"
        else:
            err = state.set_mode(line)
            if err:
                reply = f"error {err}"
            else:
                state.log(event="mark", text=f"mode {state.describe()}")
                reply = f"ok {state.describe()}"
        writer.write((reply + "\n").encode())
        await writer.drain()
    except (*ERRORS, asyncio.TimeoutError):
        pass
    finally:
        await close(writer)


async def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--upstream", required=True, help="host:port of the registry (plain HTTP)")
    p.add_argument("--port-file", required=True)
    p.add_argument("--control-port-file", required=True)
    p.add_argument("--log")
    p.add_argument("--mode", default="pass")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    a = p.parse_args()
    host, _, port = a.upstream.rpartition(":")
    upstream = (host or "127.0.0.1", int(port))
    state = State(a.log, a.mode)
    tls = None
    if a.tls_cert or a.tls_key:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(a.tls_cert, a.tls_key)

    loop = asyncio.get_running_loop()

    def quiet(loop, context):
        # Client disconnects surface here with TLS; they are not the proxy's failures.
        exc = context.get("exception")
        if isinstance(exc, ERRORS):
            return
        loop.default_exception_handler(context)

    loop.set_exception_handler(quiet)
    server = await asyncio.start_server(
        lambda r, w: handle(state, upstream, r, w), "127.0.0.1", 0, ssl=tls, backlog=1024,
        limit=MAX_HEAD + 1,
    )
    ctl = await asyncio.start_server(lambda r, w: control(state, r, w), "127.0.0.1", 0)
    # The control port first: a script that sees the proxy port may switch modes at once.
    with open(a.control_port_file, "w") as f:
        f.write(str(ctl.sockets[0].getsockname()[1]))
    with open(a.port_file, "w") as f:
        f.write(str(server.sockets[0].getsockname()[1]))
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    ctl.close()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
