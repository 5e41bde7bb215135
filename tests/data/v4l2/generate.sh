#!/bin/sh
# Regenerates the V4L2 test buffers. There is no capture card on the build machines, so these
# are NOT recorded from hardware: they are FFmpeg renderings of one `testsrc` picture stored
# byte for byte in the memory layouts V4L2 drivers deliver (V4L2_PIX_FMT_UYVY, YUYV, NV12,
# YUV420, MJPEG), plus FFmpeg's own conversion of each buffer to yuv420p as the reference the
# converter is checked against. Run from this directory; needs ffmpeg (Debian 12: 5.1).
set -eu
S=128x72
SRC="testsrc=size=$S:rate=25"
ff() { ffmpeg -nostdin -v error -y "$@"; }
ff -f lavfi -i "$SRC" -frames:v 1 -pix_fmt uyvy422 -f rawvideo testsrc-$S.uyvy
ff -f lavfi -i "$SRC" -frames:v 1 -pix_fmt yuyv422 -f rawvideo testsrc-$S.yuyv
ff -f lavfi -i "$SRC" -frames:v 1 -pix_fmt nv12 -f rawvideo testsrc-$S.nv12
ff -f lavfi -i "$SRC" -frames:v 1 -pix_fmt yuv420p -f rawvideo testsrc-$S.yuv420
# Webcams send 4:2:2 full-range JPEG (yuvj422p), as a Logitech C920 does in MJPG mode.
ff -f lavfi -i "$SRC" -frames:v 1 -pix_fmt yuvj422p -c:v mjpeg -q:v 3 -f mjpeg testsrc-$S.mjpeg
# Interlaced: two consecutive 50p pictures woven into one 25i frame (top field first).
ff -f lavfi -i "testsrc=size=$S:rate=50" -vf tinterlace=mode=merge -frames:v 1 \
   -pix_fmt uyvy422 -f rawvideo testsrc-128x144-interlaced-tff.uyvy
# References: FFmpeg's conversion of each stored buffer to yuv420p.
ref() { ff -f rawvideo -pix_fmt "$1" -s $S -i "$2" -pix_fmt yuv420p -f rawvideo "$3"; }
ref uyvy422 testsrc-$S.uyvy ref-uyvy.yuv420p
ref yuyv422 testsrc-$S.yuyv ref-yuyv.yuv420p
ref nv12 testsrc-$S.nv12 ref-nv12.yuv420p
ff -i testsrc-$S.mjpeg -pix_fmt yuv420p -f rawvideo ref-mjpeg.yuv420p
