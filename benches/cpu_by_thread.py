#!/usr/bin/env python3
"""Runs a command and reports its CPU time per thread name (and in total).

    cpu_by_thread.py OUT.json -- COMMAND [ARGS...]

Polls /proc/PID/task/*/schedstat every 50 ms and keeps each thread's last CPU time, so a
thread that exits loses at most the last 50 ms. The total comes from the kernel's accounting of
the whole process (wait4 rusage), which is exact. Thread names are what the threads set
(smoothcast names its pipeline threads; x264's worker threads inherit the name of the thread
that opened the encoder, i.e. the rung's thread).
"""

import json
import os
import resource
import subprocess
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")


def sample(pid, seen):
    base = f"/proc/{pid}/task"
    try:
        tids = os.listdir(base)
    except OSError:
        return
    for tid in tids:
        try:
            with open(f"{base}/{tid}/stat") as f:
                s = f.read()
        except OSError:
            continue
        comm = s[s.index("(") + 1:s.rindex(")")]
        try:
            # Nanoseconds on the CPU (finer than stat's utime+stime clock ticks).
            with open(f"{base}/{tid}/schedstat") as f:
                cpu = int(f.read().split()[0]) / 1e9
        except (OSError, ValueError, IndexError):
            rest = s[s.rindex(")") + 2:].split()
            cpu = (int(rest[11]) + int(rest[12])) / TICK
        seen[tid] = (comm, cpu)


def main():
    out = sys.argv[1]
    cmd = sys.argv[sys.argv.index("--") + 1:]
    start = time.time()
    p = subprocess.Popen(cmd)
    seen = {}
    while p.poll() is None:
        sample(p.pid, seen)
        time.sleep(0.05)
    wall = time.time() - start
    # The command was this process's only child: its (reaped) usage is exact.
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    by_name = {}
    for comm, cpu in seen.values():
        by_name[comm] = by_name.get(comm, 0.0) + cpu
    result = {
        "returncode": p.returncode,
        "wall": wall,
        "cpu_total": ru.ru_utime + ru.ru_stime,
        "maxrss_kb": ru.ru_maxrss,
        "threads": dict(sorted(by_name.items(), key=lambda kv: -kv[1])),
    }
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
    sys.exit(p.returncode)


if __name__ == "__main__":
    main()
