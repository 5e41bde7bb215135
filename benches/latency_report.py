#!/usr/bin/env python3
"""Latency per run and track from benches/sink.py's fragment log (see benches/latency.sh).

    latency_report.py WORK_DIR

Runs are told apart by the publishing point name (`/NAME.isml/...`). For smoothcast runs
(media time = UTC) the media of a fragment ends at (time + duration) / timescale. For FFmpeg
runs media time 0 is t0 (WORK_DIR/NAME.t0, written by pace.py): FFmpeg's timestamps start at 0
with the first frame (AAC priming makes the first audio fragment start slightly before 0).
"""

import json
import math
import os
import re
import sys
from collections import defaultdict

TRACKS = {1: "720p", 2: "480p", 3: "360p", 4: "audio"}


def pct(v, p):
    v = sorted(v)
    return v[max(1, math.ceil(p * len(v) / 100)) - 1]


def main():
    work = sys.argv[1]
    runs = defaultdict(lambda: defaultdict(list))
    for line in open(os.path.join(work, "fragments.jsonl")):
        r = json.loads(line)
        m = re.search(r"/([^/]+)\.isml", r["path"])
        if not m or r["time"] is None:
            continue
        runs[m.group(1)][r["track"]].append(r)
    print("latency = arrival of a fragment's last byte at the receiver − wall-clock end of its media")
    print(f"{'run':12} {'track':6} {'frags':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    summary = {}
    for name in sorted(runs):
        t0 = None
        t0_file = os.path.join(work, name + ".t0")
        if os.path.exists(t0_file):
            t0 = float(open(t0_file).read())
        for track in sorted(runs[name]):
            frags = runs[name][track]
            lats = []
            for f in frags:
                t = f["time"] - (1 << 64) if f["time"] >= 1 << 63 else f["time"]
                end = t + f["duration"]
                media_end = end / f["timescale"] + (t0 or 0.0)
                lats.append((f["arrival"] - media_end) * 1000)
            p50, p99 = pct(lats, 50), pct(lats, 99)
            summary[(name, track)] = (p50, p99)
            print(f"{name:12} {TRACKS.get(track, track):6} {len(lats):5} {p50:8.0f} {p99:8.0f} {max(lats):8.0f}")
    with open(os.path.join(work, "latency-summary.json"), "w") as f:
        json.dump({f"{k[0]}/{k[1]}": v for k, v in summary.items()}, f, indent=1)


if __name__ == "__main__":
    main()
