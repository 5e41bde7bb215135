#!/usr/bin/env bash
# Where the CPU goes: `perf record` (software cpu-clock event, so it works in VMs without PMU
# access) of one smoothcast run of the benchmark ladder (--fast --no-push --archive, 600 frames),
# then the share of samples per library and per thread, and the time outside x264.
#
#   benches/profile.sh [--frames 600] [--work DIR] [--keep] [--ffmpeg] [--profile P]
#                      [--steady SECS]
#
# --profile: another profile (default profiles/bench-ladder3.toml), e.g. the bench.toml that
# `vs-ffmpeg.sh --keep --work DIR [--source mandelbrot] [--scaler K]` leaves in DIR.
# --steady SECS: also report the shares without the first SECS seconds of the run (start-up:
# loading, first touch of x264's frame buffers), i.e. what a channel running for hours costs.
#
# --ffmpeg also profiles the equivalent FFmpeg command of benches/vs-ffmpeg.sh (needs its work
# dir from a previous `vs-ffmpeg.sh --keep --work DIR`).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# On a box shared with other work: `setsid -w env BENCH_NICE=-10 benches/...` runs the benchmark
# in its own session whose scheduler autogroup gets that nice value (both tools alike).
if [ -n "${BENCH_NICE:-}" ]; then
  echo "$BENCH_NICE" 2>/dev/null > /proc/self/autogroup || echo "cannot set autogroup nice" >&2
fi
root=$(cd "$here/.." && pwd)
frames=600
work=""
keep=0
ff=0
prof="$root/profiles/bench-ladder3.toml"
steady=""
while [ $# -gt 0 ]; do
  case "$1" in
    --frames) frames=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --ffmpeg) ff=1; shift ;;
    --profile) prof=$2; shift 2 ;;
    --steady) steady=$2; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
bin=${SMOOTHCAST:-${CARGO_TARGET_DIR:-$root/target}/release/smoothcast}
command -v perf >/dev/null || { echo "perf not found (apt-get install linux-perf)" >&2; exit 1; }
[ -n "$work" ] || work=$(mktemp -d /tmp/smoothcast-profile.XXXXXX)
mkdir -p "$work"
cleanup() { [ "$keep" = 1 ] || rm -rf "$work"; }
trap cleanup EXIT
secs=$(python3 -c "print($frames / 30)")

report() {
  local data=$1; shift   # further arguments: perf report options (e.g. --time)
  set +o pipefail   # head closes the pipes early
  echo "-- by library (share of all samples)"
  perf report -i "$data" "$@" --stdio --sort dso --no-children -g none 2>/dev/null \
    | grep '%' | grep -v '^#' | head -12
  echo "-- by thread and library, outside libx264"
  perf report -i "$data" "$@" --stdio --sort comm,dso --no-children -g none 2>/dev/null \
    | grep '%' | grep -v '^#' | grep -v libx264 | head -14
  echo "-- top symbols outside libx264"
  perf report -i "$data" "$@" --stdio --sort dso,sym --no-children -g none 2>/dev/null \
    | grep '%' | grep -v '^#' | grep -v libx264 | head -15
  perf report -i "$data" "$@" --stdio --sort dso --no-children -g none 2>/dev/null \
    | awk '/%/ && !/^#/ { gsub("%", "", $1); t += $1; if ($2 ~ /libx264/) x += $1 }
           END { printf "== outside libx264: %.1f %% of CPU samples (x264 %.1f %%)\n", t - x, x }'
  set -o pipefail
}

echo "== smoothcast: $frames frames of $prof (--fast --no-push --archive)"
perf record -q -e cpu-clock -F 999 -g -o "$work/smoothcast.perf" -- \
  "$bin" run "$prof" --fast --no-push --archive "$work/out" \
  --duration "$secs" > "$work/smoothcast.log" 2>&1
report "$work/smoothcast.perf"
if [ -n "$steady" ]; then
  first=$({ perf script -i "$work/smoothcast.perf" -F time 2>/dev/null || true; } | head -1 | tr -d ' :')
  from=$(python3 -c "print(f'{$first + $steady:.6f}')")
  echo
  echo "== steady state: without the first $steady s"
  report "$work/smoothcast.perf" --time "$from,"
fi

if [ "$ff" = 1 ]; then
  cmd=$(cat "$work/ffmpeg-command.txt" 2>/dev/null || true)
  [ -n "$cmd" ] || { echo "no $work/ffmpeg-command.txt: run vs-ffmpeg.sh --keep --work $work first" >&2; exit 1; }
  echo
  echo "== FFmpeg: $cmd"
  eval "perf record -q -e cpu-clock -F 999 -g -o '$work/ffmpeg.perf' -- ${cmd/OUT.ismv/$work/ff-profile.ismv}" \
    > "$work/ffmpeg-profile.log" 2>&1
  report "$work/ffmpeg.perf"
fi
