#!/usr/bin/env python3
"""A minimal Smooth Streaming ingest receiver for benchmarks (not a publishing point).

Accepts empty probe POSTs and long chunked (or Content-Length) POSTs on any path, walks the
top-level MP4 boxes of each body as the bytes arrive, and logs one JSON line per fragment to
--log when the last byte of its `mdat` has been read from the socket:

    {"path": ..., "track": tfhd.track_ID, "time": t, "duration": d, "timescale": ts,
     "arrival": UTC seconds (float), "bytes": moof+mdat size}

`time`/`duration` come from the `tfxd` box (MS-SSTR 2.2.4.4) when present, else from `tfdt`
and the `trun` sample durations. The timescale of each track comes from the stream's `moov`
(`mdhd`). With --discard nothing is parsed or logged (fan-out CPU benchmarks).

Python standard library only. One thread per connection; fine for a few dozen streams.
"""

import argparse
import json
import socket
import socketserver
import struct
import sys
import threading
import time

TFXD = bytes.fromhex("6d1d9b0542d544e680e2141daff757b2")


def boxes(buf, start, end):
    """Yields (type, payload_start, box_end) of the boxes in buf[start:end]."""
    pos = start
    while pos + 8 <= end:
        size, typ = struct.unpack_from(">I4s", buf, pos)
        hdr = 8
        if size == 1:
            if pos + 16 > end:
                return
            size = struct.unpack_from(">Q", buf, pos + 8)[0]
            hdr = 16
        elif size == 0:
            size = end - pos
        if size < hdr or pos + size > end:
            return
        yield typ, pos + hdr, pos + size
        pos += size


def find(buf, start, end, path):
    """Payload ranges of the boxes at `path` (a list of 4-char types) under buf[start:end]."""
    if not path:
        yield start, end
        return
    for typ, s, e in boxes(buf, start, end):
        if typ == path[0]:
            yield from find(buf, s, e, path[1:])


def moov_timescales(buf):
    """{track_ID: timescale} from a moov payload."""
    out = {}
    for s, e in find(buf, 0, len(buf), [b"trak"]):
        tid = None
        ts = None
        for ts_s, _ in find(buf, s, e, [b"tkhd"]):
            v = buf[ts_s]
            tid = struct.unpack_from(">I", buf, ts_s + (20 if v == 1 else 12))[0]
        for md_s, _ in find(buf, s, e, [b"mdia", b"mdhd"]):
            v = buf[md_s]
            ts = struct.unpack_from(">I", buf, md_s + (20 if v == 1 else 12))[0]
        if tid is not None and ts:
            out[tid] = ts
    return out


def moof_info(buf):
    """(track_ID, time, duration) of a moof payload (one traf)."""
    for s, e in find(buf, 0, len(buf), [b"traf"]):
        tid = None
        t = d = None
        tfdt = None
        durs = 0
        default_dur = 0
        for typ, bs, be in boxes(buf, s, e):
            if typ == b"tfhd":
                flags = struct.unpack_from(">I", buf, bs)[0] & 0xFFFFFF
                tid = struct.unpack_from(">I", buf, bs + 4)[0]
                off = bs + 8
                if flags & 0x1:
                    off += 8
                if flags & 0x2:
                    off += 4
                if flags & 0x8:
                    default_dur = struct.unpack_from(">I", buf, off)[0]
            elif typ == b"uuid" and buf[bs:bs + 16] == TFXD:
                v = buf[bs + 16]
                if v == 1:
                    t, d = struct.unpack_from(">QQ", buf, bs + 20)
                else:
                    t, d = struct.unpack_from(">II", buf, bs + 20)
            elif typ == b"tfdt":
                v = buf[bs]
                tfdt = struct.unpack_from(">Q" if v == 1 else ">I", buf, bs + 4)[0]
            elif typ == b"trun":
                flags = struct.unpack_from(">I", buf, bs)[0] & 0xFFFFFF
                n = struct.unpack_from(">I", buf, bs + 4)[0]
                off = bs + 8
                if flags & 0x1:
                    off += 4
                if flags & 0x4:
                    off += 4
                per = 4 * bin(flags & 0xF00).count("1")
                for i in range(n):
                    if flags & 0x100:
                        durs += struct.unpack_from(">I", buf, off + i * per)[0]
                    else:
                        durs += default_dur
        if t is None and tfdt is not None:
            t, d = tfdt, durs
        return tid, t, d
    return None, None, None


class Stream:
    """Box walker over one POST body, fed in arbitrary pieces."""

    def __init__(self, path, log, lock, discard):
        self.path = path
        self.log = log
        self.lock = lock
        self.discard = discard
        self.buf = bytearray()
        self.timescales = {}
        self.pending = None  # (moof info, moof size) waiting for its mdat
        self.skip = 0  # bytes of an mdat still to skip
        self.skip_info = None

    def feed(self, data):
        if self.discard:
            return
        now = time.time()
        if self.skip:
            n = min(self.skip, len(data))
            self.skip -= n
            data = data[n:]
            if self.skip == 0 and self.skip_info is not None:
                self.emit(self.skip_info, now)
                self.skip_info = None
        self.buf += data
        while len(self.buf) >= 8:
            size, typ = struct.unpack_from(">I4s", self.buf, 0)
            hdr = 8
            if size == 1:
                if len(self.buf) < 16:
                    return
                size = struct.unpack_from(">Q", self.buf, 8)[0]
                hdr = 16
            if size < hdr:
                self.buf.clear()  # not MP4: give up on this body
                return
            if typ == b"mdat":
                # Do not buffer media data: skip it and log when its last byte is in.
                avail = len(self.buf)
                info = self.pending
                self.pending = None
                if avail >= size:
                    del self.buf[:size]
                    if info:
                        self.emit((info[0], info[1] + size), now)
                    continue
                self.skip = size - avail
                self.skip_info = (info[0], info[1] + size) if info else None
                self.buf.clear()
                return
            if len(self.buf) < size:
                return
            payload = bytes(self.buf[hdr:size])
            del self.buf[:size]
            if typ == b"moov":
                self.timescales.update(moov_timescales(payload))
            elif typ == b"moof":
                self.pending = (moof_info(payload), size)

    def emit(self, info, now):
        (tid, t, d), nbytes = info
        rec = {
            "path": self.path,
            "track": tid,
            "time": t,
            "duration": d,
            "timescale": self.timescales.get(tid, 10_000_000),
            "arrival": now,
            "bytes": nbytes,
        }
        with self.lock:
            self.log.write(json.dumps(rec) + "\n")
            self.log.flush()


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        sock = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        f = sock.makefile("rb", buffering=0)
        rd = Reader(f)
        try:
            while True:
                line = rd.line()
                if not line:
                    return
                parts = line.decode("latin-1").split()
                if len(parts) < 2:
                    return
                headers = {}
                while True:
                    h = rd.line()
                    if h in (b"\r\n", b"\n", b""):
                        break
                    k, _, v = h.decode("latin-1").partition(":")
                    headers[k.strip().lower()] = v.strip()
                stream = Stream(parts[1], self.server.log, self.server.lock, self.server.discard)
                if headers.get("transfer-encoding", "").lower() == "chunked":
                    while True:
                        size_line = rd.line()
                        if not size_line:
                            return
                        n = int(size_line.split(b";")[0].strip() or b"0", 16)
                        if n == 0:
                            while rd.line() not in (b"\r\n", b"\n", b""):
                                pass
                            break
                        while n > 0:
                            piece = rd.read(min(n, 1 << 16))
                            if not piece:
                                return
                            n -= len(piece)
                            stream.feed(piece)
                        rd.line()
                else:
                    n = int(headers.get("content-length", "0"))
                    while n > 0:
                        piece = rd.read(min(n, 1 << 16))
                        if not piece:
                            return
                        n -= len(piece)
                        stream.feed(piece)
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                if headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, OSError):
            return


class Reader:
    """Buffered reads of lines and raw bytes from an unbuffered socket file."""

    def __init__(self, f):
        self.f = f
        self.buf = b""

    def _fill(self):
        data = self.f.read(1 << 16)
        if data:
            self.buf += data
        return bool(data)

    def line(self):
        while b"\n" not in self.buf:
            if not self._fill():
                out, self.buf = self.buf, b""
                return out
        i = self.buf.index(b"\n") + 1
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read(self, n):
        if not self.buf and not self._fill():
            return b""
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0, help="0 = any free port")
    ap.add_argument("--log", default="-", help="fragment log (JSON lines); - = stdout")
    ap.add_argument("--port-file", help="write the bound port here once listening")
    ap.add_argument("--discard", action="store_true", help="do not parse or log")
    a = ap.parse_args()
    srv = Server(("127.0.0.1", a.port), Handler)
    srv.log = sys.stdout if a.log == "-" else open(a.log, "a", buffering=1)
    srv.lock = threading.Lock()
    srv.discard = a.discard
    port = srv.server_address[1]
    if a.port_file:
        with open(a.port_file + ".tmp", "w") as f:
            f.write(str(port))
        import os

        os.replace(a.port_file + ".tmp", a.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
