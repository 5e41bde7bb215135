#!/usr/bin/env bash
# Push fan-out cost: the benchmark ladder in real time pushed to 1 and to 8 destinations
# (every stream to every destination: 4 and 32 chunked POSTs) on a local receiver that
# discards (benches/sink.py --discard, a separate process, so receiving costs are not counted).
# Alternates 1 / 8 for --reps runs each and reports medians of the process CPU (user+sys) and
# of the CPU of the push threads (tokio runtime `push-<channel>`) and the output thread.
#
#   benches/fanout.sh [--secs 10] [--reps 3] [--work DIR] [--keep]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# On a box shared with other work: `setsid -w env BENCH_NICE=-10 benches/...` runs the benchmark
# in its own session whose scheduler autogroup gets that nice value (both tools alike).
if [ -n "${BENCH_NICE:-}" ]; then
  echo "$BENCH_NICE" 2>/dev/null > /proc/self/autogroup || echo "cannot set autogroup nice" >&2
fi
root=$(cd "$here/.." && pwd)
secs=10
reps=3
work=""
keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --secs) secs=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
bin=${SMOOTHCAST:-${CARGO_TARGET_DIR:-$root/target}/release/smoothcast}
[ -x "$bin" ] || { echo "no smoothcast binary at $bin" >&2; exit 1; }
[ -n "$work" ] || work=$(mktemp -d /tmp/smoothcast-fanout.XXXXXX)
mkdir -p "$work"
sink_pid=""
cleanup() {
  [ -n "$sink_pid" ] && kill "$sink_pid" 2>/dev/null || true
  [ "$keep" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT
python3 "$here/sink.py" --discard --port-file "$work/port" &
sink_pid=$!
for _ in $(seq 50); do [ -s "$work/port" ] && break; sleep 0.1; done
port=$(cat "$work/port")
profile="$root/profiles/bench-ladder3.toml"
echo "== receiver 127.0.0.1:$port; $secs s real time per run, $reps runs each; work dir $work"

for rep in $(seq 1 "$reps"); do
  for n in 1 8; do
    urls=()
    for d in $(seq 1 "$n"); do urls+=(--push "http://127.0.0.1:$port/d$d.isml"); done
    python3 "$here/cpu_by_thread.py" "$work/n$n-$rep.json" -- \
      "$bin" run "$profile" --duration "$secs" "${urls[@]}" > "$work/n$n-$rep.out" 2>&1
    python3 - "$work/n$n-$rep.json" "$n" "$rep" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
push = sum(v for k, v in r["threads"].items() if k.startswith("push-") or k.endswith("/output"))
print(f"{sys.argv[2]} dest, run {sys.argv[3]}: CPU {r['cpu_total']:.2f} s, push+output threads {push:.3f} s, wall {r['wall']:.1f} s")
PY
    sessions=$(grep -c "Stopped sent" "$work/n$n-$rep.out" || true)
    behind=$(grep -c "behind" "$work/n$n-$rep.out" || true)
    [ "$sessions" = $((4 * n)) ] || echo "   (warning: $sessions of $((4 * n)) sessions finished; see $work/n$n-$rep.out)"
    [ "$behind" = 0 ] || echo "   (warning: a destination fell behind; see $work/n$n-$rep.out)"
  done
done

python3 - "$work" "$reps" <<'PY'
import json, sys, statistics as st
work, reps = sys.argv[1], int(sys.argv[2])
def load(n):
    out = []
    for rep in range(1, reps + 1):
        r = json.load(open(f"{work}/n{n}-{rep}.json"))
        push = sum(v for k, v in r["threads"].items() if k.startswith("push-") or k.endswith("/output"))
        out.append((r["cpu_total"], push))
    return out
one, eight = load(1), load(8)
c1, c8 = st.median(x[0] for x in one), st.median(x[0] for x in eight)
p1, p8 = st.median(x[1] for x in one), st.median(x[1] for x in eight)
print()
print(f"medians: 1 destination CPU {c1:.2f} s (push {p1:.3f} s); 8 destinations CPU {c8:.2f} s (push {p8:.3f} s)")
print(f"process CPU 8 vs 1: {100 * (c8 / c1 - 1):+.2f} %  (noisy: x264 itself varies by about a percent)")
print(f"push threads 8 vs 1: {p8 - p1:+.3f} s = {100 * (p8 - p1) / c1:+.2f} % of the 1-destination total (target <= 2 %)")
PY
