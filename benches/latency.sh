#!/usr/bin/env bash
# Real-time latency: for each fragment, the time from the wall-clock end of its media to the
# arrival of its last byte at a local receiver (benches/sink.py on 127.0.0.1), p50/p99 per
# track — smoothcast vs FFmpeg at the ladder's default x264 settings, and with the low-latency
# setting (tune = "zerolatency", bframes = 0: no lookahead, no B-frames, sliced threads).
#
#   benches/latency.sh [--secs 20] [--work DIR] [--only smoothcast|ffmpeg] [--keep]
#
# smoothcast runs `run PROFILE --duration S --push http://127.0.0.1:PORT/NAME.isml` with the
# clock timecode: media time is UTC, and its synthetic source releases frame n at the UTC instant
# of frame n's start. It also prints its own probe (last byte written to the socket, and when
# the packager emitted the fragment).
# FFmpeg reads the identical raw pictures and tone from two FIFOs fed by benches/pace.py, frame
# n at t0 + n/rate (the same instants relative to the media timeline), encodes the same ladder
# and pushes `-f ismv` with a chunked POST to the same receiver; its media time 0 is t0.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# On a box shared with other work: `setsid -w env BENCH_NICE=-10 benches/...` runs the benchmark
# in its own session whose scheduler autogroup gets that nice value (both tools alike).
if [ -n "${BENCH_NICE:-}" ]; then
  echo "$BENCH_NICE" 2>/dev/null > /proc/self/autogroup || echo "cannot set autogroup nice" >&2
fi
root=$(cd "$here/.." && pwd)
secs=20
work=""
only=""
keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --secs) secs=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
bin=${SMOOTHCAST:-${CARGO_TARGET_DIR:-$root/target}/release/smoothcast}
[ -x "$bin" ] || { echo "no smoothcast binary at $bin" >&2; exit 1; }
[ -n "$work" ] || work=$(mktemp -d /tmp/smoothcast-latency.XXXXXX)
mkdir -p "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ "$keep" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT

python3 "$here/sink.py" --log "$work/fragments.jsonl" --port-file "$work/port" &
pids+=($!)
for _ in $(seq 50); do [ -s "$work/port" ] && break; sleep 0.1; done
port=$(cat "$work/port")
echo "== receiver on 127.0.0.1:$port, work dir $work"

profile="$root/profiles/bench-ladder3.toml"
lowlat="$root/profiles/bench-ladder3-lowlatency.toml"
frames=$((secs * 30))

run_smoothcast() {
  local name=$1 prof=$2
  echo "-- smoothcast $name ($(basename "$prof"))"
  "$bin" run "$prof" --duration "$secs" --push "http://127.0.0.1:$port/$name.isml" \
    > "$work/$name.out" 2> "$work/$name.err" || { tail "$work/$name.err"; exit 1; }
  sed -n '/^latency/,$p' "$work/$name.out"
}

run_ffmpeg() {
  local name=$1; shift
  echo "-- ffmpeg $name ($*)"
  rm -f "$work/v.fifo" "$work/a.fifo"
  mkfifo "$work/v.fifo" "$work/a.fifo"
  local start
  start=$(python3 -c 'import time; print(time.time() + 2.0)')
  python3 "$here/pace.py" --video "$work/src.yuv:$((1280 * 720 * 3 / 2)):$work/v.fifo" \
    --audio "$work/src.s16:6400:$work/a.fifo" --rate 30 --start-at "$start" \
    --t0-file "$work/$name.t0" &
  local pacer=$!
  ffmpeg -hide_banner -nostdin -loglevel error \
    -probesize 32 -thread_queue_size 64 -f rawvideo -pix_fmt yuv420p -s 1280x720 -framerate 30 -i "$work/v.fifo" \
    -probesize 32 -thread_queue_size 4096 -f s16le -ar 48000 -ac 2 -i "$work/a.fifo" \
    -filter_complex "[0:v]split=3[a][b][c];[b]scale=854:480:flags=bicubic[b2];[c]scale=640:360:flags=bicubic[c2]" \
    -map "[a]" -map "[b2]" -map "[c2]" -map 1:a \
    -c:v libx264 -preset veryfast -profile:v high -g 60 -keyint_min 60 -sc_threshold 0 \
    -b:v:0 3000k -maxrate:v:0 3000k -bufsize:v:0 6000k \
    -b:v:1 1500k -maxrate:v:1 1500k -bufsize:v:1 3000k \
    -b:v:2 800k -maxrate:v:2 800k -bufsize:v:2 1600k \
    "$@" \
    -c:a aac -b:a 128k \
    -flush_packets 1 -f ismv "http://127.0.0.1:$port/$name.isml/Streams($name)" \
    2> "$work/$name.err" || { tail "$work/$name.err"; }
  # FFmpeg reads both inputs to the end, so the pacer is done unless FFmpeg failed.
  kill "$pacer" 2>/dev/null || true
  wait "$pacer" 2>/dev/null || true
}

if [ "$only" != smoothcast ]; then
  "${SOURCE_BIN:-$bin}" bench-source "$profile" --frames "$frames" --video "$work/src.yuv" --audio "$work/src.s16" 2>/dev/null
  # bench-source starts at the profile's timecode (clock): the pictures differ from a later
  # smoothcast run only in the burnt-in time, which does not change the work.
fi
if [ "$only" != ffmpeg ]; then
  run_smoothcast sc-default "$profile"
  run_smoothcast sc-lowlat "$lowlat"
fi
if [ "$only" != smoothcast ]; then
  x="keyint=60:min-keyint=60:scenecut=0:open-gop=0:force-cfr=1"
  run_ffmpeg ff-default -bf 2 -x264-params "$x"
  run_ffmpeg ff-lowlat -tune zerolatency -bf 0 -x264-params "$x"
fi
sleep 1

echo
python3 "$here/latency_report.py" "$work"
