#!/usr/bin/env bash
# Side-by-side throughput / CPU / memory / quality: smoothcast vs FFmpeg on the same machine,
# the same synthetic 1280x720 30 fps source (600 frames, not paced) and the same 3-rung ladder
# (profiles/bench-ladder3.toml: 1280x720 @3000k, 854x480 @1500k, 640x360 @800k, x264 veryfast,
# 2 s closed GOP, AAC-LC 128k).
#
#   benches/vs-ffmpeg.sh [--reps N] [--frames N] [--work DIR] [--profile P] [--keep]
#                        [--source synthetic|mandelbrot] [--scaler bicubic|bilinear|area]
#
# --source mandelbrot: instead of the synthetic bars (nearly static, so x264 has little to do and
# the rungs come out far below their bitrates), both tools encode the same generated clip: an
# FFmpeg `mandelbrot` zoom (detail and motion everywhere) with light temporal grain (`noise`),
# written once as Y4M (cached in $BENCH_CACHE, default /tmp). smoothcast reads it as a file
# input, FFmpeg reads the file itself; audio is the synthetic tone for both.
# The profile's `[video] scaler` (default bicubic) is FFmpeg's `scale` flags and the PSNR
# reference's kernel, so both tools scale with the same kernel and are compared to the same
# reference; --scaler overrides it.
#
# smoothcast: `run --fast --no-push --archive` (its capture = rendering the synthetic source).
# FFmpeg: one process reading the identical raw I420 (dumped by `smoothcast bench-source`) and
# the identical tone (raw s16le), split + scale (swscale, the profile's kernel) per rung, libx264 with the
# same x264 parameters, native AAC 128k, `-f ismv`.
# Runs alternate (S F S F ...). For each: source frames per second (wall clock), CPU seconds
# (user+sys), peak RSS (GNU time -v), PSNR per rung against the source scaled to the rung size
# with the same kernel. Prints medians and smoothcast/FFmpeg ratios, and diffs the x264 option
# strings both encoders wrote into their streams (SEI).
#
# Environment: SMOOTHCAST=path to the binary (default: $CARGO_TARGET_DIR/release/smoothcast,
# else target/release/smoothcast; SOURCE_BIN: another build for `bench-source`, when SMOOTHCAST
# is an older build without it); FFMPEG_EXTRA (extra output options, e.g. "-threads 2") and
# FFMPEG_X264_EXTRA (appended to -x264-params, e.g. "threads=2:lookahead-threads=1") to try
# FFmpeg with other threading than its default (automatic, as x264 chooses).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# On a box shared with other work: `setsid -w env BENCH_NICE=-10 benches/...` runs the benchmark
# in its own session whose scheduler autogroup gets that nice value (both tools alike).
if [ -n "${BENCH_NICE:-}" ]; then
  echo "$BENCH_NICE" 2>/dev/null > /proc/self/autogroup || echo "cannot set autogroup nice" >&2
fi
root=$(cd "$here/.." && pwd)
reps=3
frames=600
work=""
profile="$root/profiles/bench-ladder3.toml"
keep=0
source=synthetic
scaler=""
while [ $# -gt 0 ]; do
  case "$1" in
    --reps) reps=$2; shift 2 ;;
    --frames) frames=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --profile) profile=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --source) source=$2; shift 2 ;;
    --scaler) scaler=$2; shift 2 ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

bin=${SMOOTHCAST:-${CARGO_TARGET_DIR:-$root/target}/release/smoothcast}
[ -x "$bin" ] || { echo "no smoothcast binary at $bin (cargo build --release)" >&2; exit 1; }
command -v ffmpeg >/dev/null || { echo "ffmpeg not found" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time not found (apt-get install time)" >&2; exit 1; }

if [ -z "$work" ]; then
  work=$(mktemp -d /tmp/smoothcast-bench.XXXXXX)
fi
mkdir -p "$work"
cleanup() { [ "$keep" = 1 ] || rm -rf "$work"; }
trap cleanup EXIT

# The ladder as smoothcast resolves it (x264 settings included), read back from `check`.
"$bin" check "$profile" > "$work/plan.txt"

# A fixed timecode so the dumped source and the smoothcast run are the same frame indices
# (the synthetic picture burns in the time of day and frame number).
prof="$work/bench.toml"
awk '/^\[/{skip=($1=="[timecode]")} !skip' "$profile" > "$prof"
cat >> "$prof" <<'EOF'

[timecode]
source = "fixed"
date = "2026-01-01"
start = "00:00:00:00"
EOF

if [ -n "$scaler" ]; then
  awk -v k="$scaler" '/^\[/{sec=$1} sec=="[video]" && /^scaler *=/ {next} {print}
    /^\[video\]/{print "scaler = \"" k "\""}' "$prof" > "$prof.tmp" && mv "$prof.tmp" "$prof"
fi
kernel=$(python3 -c "import sys, tomllib; print(tomllib.load(open(sys.argv[1], 'rb'))['video'].get('scaler', 'bicubic'))" "$prof")
fps_num=$(awk -F'"' '/^rate *=/{print $2; exit}' "$prof")
frag=$(awk -F'"' '/^fragment_duration *=/{print $2; exit}' "$prof")
gop=$(python3 -c "from fractions import Fraction as F; print(int(F('$fps_num')*F('$frag')))")
secs=$(python3 -c "from fractions import Fraction as F; print(float(F($frames)/F('$fps_num')))")

# Rungs: name width height bitrate (profile order) and the source size.
python3 - "$prof" > "$work/rungs.txt" <<'PY'
import sys, tomllib
p = tomllib.load(open(sys.argv[1], "rb"))
v = p["video"]
print("source", v["width"], v["height"], 0, 0, 0)
for r in p["rung"]:
    bf = r.get("bframes", 0 if r.get("profile") == "baseline" else 2)
    print(r["name"], r["width"], r["height"], r["bitrate"], r.get("max_bitrate", r["bitrate"]), bf)
PY
read -r _ sw sh _ _ _ < "$work/rungs.txt"
mapfile -t rungs < <(tail -n +2 "$work/rungs.txt")
nr=${#rungs[@]}

echo "== source: ${sw}x${sh} @ ${fps_num} fps, $frames frames ($secs s), $nr rungs, $source, scaler $kernel; work dir $work"
case "$source" in
  synthetic)
    "${SOURCE_BIN:-$bin}" bench-source "$prof" --frames "$frames" --video "$work/src.yuv" --audio "$work/src.s16" 2> "$work/source.log"
    src_in=(-f rawvideo -pix_fmt yuv420p -s "${sw}x${sh}" -framerate "$fps_num" -i "$work/src.yuv")
    src_file=$work/src.yuv
    ;;
  mandelbrot)
    clip=${BENCH_CACHE:-/tmp}/smoothcast-bench-mandelbrot-${sw}x${sh}-${fps_num}-${frames}.y4m
    if [ ! -s "$clip" ]; then
      ffmpeg -hide_banner -nostdin -loglevel error -f lavfi -i "mandelbrot=s=${sw}x${sh}:r=$fps_num" \
        -vf "noise=alls=3:allf=t,format=yuv420p" -frames:v "$frames" -f yuv4mpegpipe -y "$clip.part"
      mv "$clip.part" "$clip"
    fi
    # The tone (the synthetic profile's audio) for FFmpeg; the pictures are the clip's.
    "${SOURCE_BIN:-$bin}" bench-source "$prof" --frames "$frames" --video /dev/null --audio "$work/src.s16" 2> "$work/source.log"
    # smoothcast reads the clip as its video input (same size and rate: one picture per slot).
    awk '/^\[/{skip=($1=="[video]")} !skip' "$prof" > "$prof.tmp"
    printf '\n[video]\ninput = "file"\npath = "%s"\nscaler = "%s"\n' "$clip" "$kernel" >> "$prof.tmp"
    mv "$prof.tmp" "$prof"
    src_in=(-i "$clip")
    src_file=$clip
    ;;
  *) echo "unknown source $source" >&2; exit 2 ;;
esac
cat "$work/source.log"
cat "$src_file" "$work/src.s16" > /dev/null   # page cache: FFmpeg's read is then a memcpy

# FFmpeg command: split + scale per rung, libx264 with smoothcast's settings.
preset=veryfast
filter="[0:v]split=$nr"
for i in $(seq 0 $((nr - 1))); do filter+="[s$i]"; done
filter+=";"
maps=()
venc=()
for i in $(seq 0 $((nr - 1))); do
  read -r name w h br maxbr bf <<< "${rungs[$i]}"
  if [ "$w" = "$sw" ] && [ "$h" = "$sh" ]; then
    filter+="[s$i]null[v$i];"
  else
    filter+="[s$i]scale=$w:$h:flags=$kernel[v$i];"
  fi
  maps+=(-map "[v$i]")
  venc+=(-b:v:$i "${br}k" -maxrate:v:$i "${maxbr}k" -bufsize:v:$i "$((maxbr * 2))k" -bf:v:$i "$bf")
done
filter=${filter%;}
x264params="keyint=$gop:min-keyint=$gop:scenecut=0:open-gop=0:force-cfr=1:colorprim=bt709:transfer=bt709:colormatrix=bt709:fullrange=off"
ffargs=(-hide_banner -nostdin -y -loglevel error
  "${src_in[@]}"
  -f s16le -ar 48000 -ac 2 -i "$work/src.s16"
  -filter_complex "$filter" "${maps[@]}" -map 1:a
  -c:v libx264 -preset "$preset" -profile:v high -g "$gop" -keyint_min "$gop" -sc_threshold 0
  "${venc[@]}" ${FFMPEG_EXTRA:-} -x264-params "$x264params${FFMPEG_X264_EXTRA:+:$FFMPEG_X264_EXTRA}"
  -c:a aac -b:a 128k -ar 48000 -ac 2
  -f ismv)
{ printf '%q ' ffmpeg "${ffargs[@]}"; echo OUT.ismv; } > "$work/ffmpeg-command.txt"

# Runs a command under GNU time -v (its output to $work/TAG.log); prints "wall user sys maxrss_kB".
measure() {
  local tag=$1; shift
  /usr/bin/time -v -o "$work/$tag.time" "$@" > "$work/$tag.log" 2>&1 \
    || { echo "$tag failed:" >&2; tail -20 "$work/$tag.log" "$work/$tag.time" >&2; exit 1; }
  python3 - "$work/$tag.time" <<'PY'
import sys
d = {}
for line in open(sys.argv[1]):
    k, _, v = line.strip().rpartition(": ")
    d[k] = v
w = d["Elapsed (wall clock) time (h:mm:ss or m:ss)"].split(":")
wall = sum(float(x) * 60 ** i for i, x in enumerate(reversed(w)))
print(wall, d["User time (seconds)"], d["System time (seconds)"], d["Maximum resident set size (kbytes)"])
PY
}

# PSNR of rung i of a file against the source scaled with swscale's $kernel.
psnr() {
  local file=$1 stream=$2 w=$3 h=$4
  local ref="[1:v]setpts=N/($fps_num*TB)"
  if [ "$w" != "$sw" ] || [ "$h" != "$sh" ]; then ref="[1:v]scale=$w:$h:flags=$kernel,setpts=N/($fps_num*TB)"; fi
  ffmpeg -hide_banner -nostdin -loglevel info -i "$file" "${src_in[@]}" \
    -lavfi "[0:v:$stream]setpts=N/($fps_num*TB)[d];$ref[r];[d][r]psnr" -f null - 2>&1 \
    | awk '/Parsed_psnr/ { for (i = 1; i <= NF; i++) if ($i ~ /^average:/) { sub("average:", "", $i); print $i } }'
}

# The x264 option string of FFmpeg's stream i (the SEI before its first picture).
ffmpeg_x264_opts() {
  # Through a file: grep -m1 closing a pipe early would fail FFmpeg (and the script).
  ffmpeg -nostdin -loglevel error -i "$1" -map "0:v:$2" -c copy -frames:v 1 -f h264 -y "$work/first.h264" || true
  { grep -a -o -m1 'x264 - core [^[:cntrl:]]*' "$work/first.h264" || true; } | sed 's/.*options: //'
}
# smoothcast logs the options string of each rung's encoder at debug level.
smoothcast_x264_opts() {
  { sed 's/\x1b\[[0-9;]*m//g' "$1" | grep "x264 options:" | grep "$2" || true; } | head -1 \
    | sed 's/.*x264 options: //; s/ track=.*//'
}

results="$work/results.txt"
: > "$results"
for rep in $(seq 1 "$reps"); do
  for tool in smoothcast ffmpeg; do
    out="$work/$tool-$rep"
    rm -rf "$out" "$out.ismv"
    if [ "$tool" = smoothcast ]; then
      read -r wall user sys rss < <(NO_COLOR=1 RUST_LOG=info,smoothcast::encode::x264=debug \
        measure "$tool-$rep" "$bin" run "$prof" --fast --no-push --archive "$out" --duration "$secs")
    else
      read -r wall user sys rss < <(measure "$tool-$rep" ffmpeg "${ffargs[@]}" "$out.ismv")
    fi
    # PSNR of every rung.
    ps=()
    for i in $(seq 0 $((nr - 1))); do
      read -r name w h _ _ _ <<< "${rungs[$i]}"
      if [ "$tool" = smoothcast ]; then
        f=$(ls "$out"/*-"$name".ismv 2>/dev/null | head -1)
        [ -n "$f" ] || f=$(ls "$out"/*.ismv | sed -n "$((i + 1))p")
        ps+=("$(psnr "$f" 0 "$w" "$h")")
      else
        ps+=("$(psnr "$out.ismv" "$i" "$w" "$h")")
      fi
    done
    fps=$(python3 -c "print(f'{$frames / $wall:.1f}')")
    cpu=$(python3 -c "print(f'{$user + $sys:.2f}')")
    echo "$tool rep $rep: $fps fps, CPU $cpu s (user $user + sys $sys), wall $wall s, peak RSS $((rss / 1024)) MB, PSNR ${ps[*]} (load $(cut -d' ' -f1 /proc/loadavg))"
    echo "$tool $rep $wall $user $sys $rss ${ps[*]}" >> "$results"
  done
done

echo
echo "== x264 settings (SEI) — smoothcast rung vs FFmpeg stream, differing options only"
for i in $(seq 0 $((nr - 1))); do
  read -r name _ _ _ _ _ <<< "${rungs[$i]}"
  so=$(smoothcast_x264_opts "$work/smoothcast-$reps.log" "/$name")
  fo=$(ffmpeg_x264_opts "$work/ffmpeg-$reps.ismv" "$i")
  echo "$name smoothcast: $so" >> "$work/x264-options.txt"
  echo "$name ffmpeg:     $fo" >> "$work/x264-options.txt"
  # "<" = smoothcast only, ">" = FFmpeg only.
  d=$(diff <(tr ' ' '\n' <<< "$so") <(tr ' ' '\n' <<< "$fo") | grep '^[<>]' | tr '\n' ' ' || true)
  echo "  $name: ${d:-identical}"
done
echo "  (full strings: $work/x264-options.txt)"
[ "$keep" = 1 ] || sed -n '1,2p' "$work/x264-options.txt" | cut -c1-400

echo
python3 - "$results" "$frames" "$nr" "${rungs[@]}" <<'PY'
import sys, statistics as st
path, frames, nr = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
names = [r.split()[0] for r in sys.argv[4:4 + nr]]
rows = {"smoothcast": [], "ffmpeg": []}
for line in open(path):
    f = line.split()
    rows[f[0]].append([float(x) for x in f[2:6]] + [float(x) if x not in ("", "inf") else float("nan") for x in f[6:]])
def med(tool, col):
    return st.median(r[col] for r in rows[tool])
def fps(tool):
    return st.median(frames / r[0] for r in rows[tool])
def cpu(tool):
    return st.median(r[1] + r[2] for r in rows[tool])
def rss(tool):
    return med(tool, 3) / 1024
print(f"== medians over {len(rows['smoothcast'])} alternated runs each")
print(f"{'':24}{'smoothcast':>12}{'FFmpeg':>12}{'ratio':>9}")
lines = [("source fps (wall)", fps), ("CPU s (user+sys)", cpu), ("peak RSS MB", rss)]
for label, fn in lines:
    s, f = fn("smoothcast"), fn("ffmpeg")
    print(f"{label:24}{s:12.1f}{f:12.1f}{s / f:9.3f}")
for i, n in enumerate(names):
    s, f = med("smoothcast", 4 + i), med("ffmpeg", 4 + i)
    print(f"{'PSNR ' + n + ' dB':24}{s:12.3f}{f:12.3f}{s - f:+9.3f} dB")
print("targets: fps ratio >= 1.2, PSNR within 0.1 dB per rung, RSS ratio <= 0.5")
PY
