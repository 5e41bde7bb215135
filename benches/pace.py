#!/usr/bin/env python3
"""Feeds raw video and audio to two FIFOs in real time, like a capture card.

    pace.py --video SRC.yuv:FRAME_BYTES:FIFO --audio SRC.s16:BYTES_PER_FRAME:FIFO \
            --rate 30 --start-at UNIX_SECONDS --t0-file FILE

Frame n (and the audio covering frame n's slot) is written at t0 + n / rate, t0 being
--start-at. That is also when smoothcast's synthetic source releases frame n relative to its
first frame, so both encoders get their input at the same instants relative to the media
timeline. t0 (UTC seconds) is written to --t0-file. The FIFOs are opened read-write so the
pacer never blocks on the reader opening them; writes block while the reader is behind (each
stream has its own writer thread). The reader must read both FIFOs to the end.
"""

import argparse
import os
import threading
import time
from fractions import Fraction


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--video", required=True)
    ap.add_argument("--audio")
    ap.add_argument("--rate", default="30")
    ap.add_argument("--start-at", type=float, required=True)
    ap.add_argument("--t0-file", required=True)
    a = ap.parse_args()
    rate = Fraction(a.rate)

    def spec(s):
        path, size, fifo = s.rsplit(":", 2)
        return open(path, "rb"), int(size), os.open(fifo, os.O_RDWR)

    streams = [spec(a.video)] + ([spec(a.audio)] if a.audio else [])
    t0 = a.start_at
    with open(a.t0_file + ".tmp", "w") as t:
        t.write(repr(t0))
    os.replace(a.t0_file + ".tmp", a.t0_file)

    def feed(f, size, fd):
        # One thread per stream: a reader that is slow on one input (FFmpeg reads audio only
        # once its video encoder produces output) must not hold back the other.
        n = 0
        while True:
            chunk = f.read(size)
            if len(chunk) < size:
                break
            due = t0 + float(n / rate)
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
            view = memoryview(chunk)
            try:
                while view:
                    view = view[os.write(fd, view):]
            except OSError:
                break
            n += 1
        os.close(fd)

    threads = [threading.Thread(target=feed, args=s) for s in streams]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

if __name__ == "__main__":
    main()
