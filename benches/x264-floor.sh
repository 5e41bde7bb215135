#!/usr/bin/env bash
# The memory floor under the RSS target: peak RSS of libx264 alone (benches/x264-floor.c: the
# three rungs of profiles/bench-ladder3.toml with smoothcast's x264 settings, THP off, nothing
# else in the process) next to smoothcast's whole run of the same ladder (--fast --no-push
# --archive, 600 frames). Compare with FFmpeg's peak from benches/vs-ffmpeg.sh.
#
#   benches/x264-floor.sh [--frames 600] [--work DIR]
#
# Environment: SMOOTHCAST=path to the binary (default $CARGO_TARGET_DIR/release/smoothcast,
# else target/release/smoothcast); CC (default cc). Needs libx264-dev (scripts/install-deps).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
frames=600
work=""
while [ $# -gt 0 ]; do
  case "$1" in
    --frames) frames=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
bin=${SMOOTHCAST:-${CARGO_TARGET_DIR:-$root/target}/release/smoothcast}
[ -x "$bin" ] || { echo "no smoothcast binary at $bin (cargo build --release)" >&2; exit 2; }
if [ -z "$work" ]; then
  work=$(mktemp -d /tmp/smoothcast-floor.XXXXXX)
  trap 'rm -rf "$work"' EXIT
fi
mkdir -p "$work"

"${CC:-cc}" -O2 -Wall -o "$work/x264-floor" "$here/x264-floor.c" -lx264
peak() { /usr/bin/time -f "%M" -o "$work/time" "$@" > "$work/out" 2>&1 || { cat "$work/out" >&2; exit 1; }
  awk '{ printf "%.1f", $1 / 1024 }' "$work/time"; }

echo "== peak RSS, 3-rung bench ladder, $frames frames"
echo "libx264 alone, threads=1 per rung (smoothcast's choice on 2 cores): $(peak "$work/x264-floor" "$frames" 1) MB"
echo "libx264 alone, threads=auto per rung (FFmpeg's default):            $(peak "$work/x264-floor" "$frames" auto) MB"
echo "smoothcast run (same ladder, synthetic source, AAC, archive):       $(peak "$bin" run "$root/profiles/bench-ladder3.toml" --fast --no-push --archive "$work/archive" --duration "$(( frames / 30 ))") MB"
