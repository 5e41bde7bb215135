/* The memory floor of the benchmark ladder: libx264 alone, nothing else, encoding the three
 * rungs of profiles/bench-ladder3.toml with the settings smoothcast gives them (veryfast, 2 s
 * closed GOP at 30 fps, 2 B-frames, VBV maxrate = bitrate and buffer = 2 x maxrate, High
 * profile, threads as given), one frame at a time into each encoder, in one thread. Prints the
 * peak RSS of this process, which is x264's own memory plus a C program's few hundred kB.
 *
 * Transparent huge pages are turned off first, as smoothcast does before opening encoders.
 *
 *   cc -O2 -o x264-floor benches/x264-floor.c -lx264 && ./x264-floor [frames] [threads]
 *
 * Used by benches/x264-floor.sh; see docs/performance.md (Memory).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <x264.h>

struct rung { int w, h, kbps; };

int main(int argc, char **argv) {
    const struct rung rungs[3] = {{1280, 720, 3000}, {854, 480, 1500}, {640, 360, 800}};
    int frames = argc > 1 ? atoi(argv[1]) : 600;
    const char *threads = argc > 2 ? argv[2] : "1";
    x264_t *enc[3];
    x264_picture_t pic[3], out;
    char buf[32];
    prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0);
    for (int r = 0; r < 3; r++) {
        x264_param_t p;
        if (x264_param_default_preset(&p, "veryfast", NULL) < 0) return 1;
        p.i_log_level = X264_LOG_WARNING;
        p.i_width = rungs[r].w;
        p.i_height = rungs[r].h;
        p.i_csp = X264_CSP_I420;
        const char *kv[][2] = {
            {"fps", "30/1"}, {"force-cfr", "1"}, {"keyint", "60"}, {"min-keyint", "60"},
            {"scenecut", "0"}, {"open-gop", "0"}, {"bframes", "2"}, {"annexb", "0"},
            {"repeat-headers", "0"}, {"aud", "0"}, {"threads", threads},
            {"colorprim", "bt709"}, {"transfer", "bt709"}, {"colormatrix", "bt709"},
            {"fullrange", "off"},
        };
        for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
            if (x264_param_parse(&p, kv[i][0], kv[i][1]) < 0) return 1;
        snprintf(buf, sizeof buf, "%d", rungs[r].kbps);
        x264_param_parse(&p, "bitrate", buf);
        x264_param_parse(&p, "vbv-maxrate", buf);
        snprintf(buf, sizeof buf, "%d", 2 * rungs[r].kbps);
        x264_param_parse(&p, "vbv-bufsize", buf);
        p.i_timebase_num = 1;
        p.i_timebase_den = 30;
        if (x264_param_apply_profile(&p, "high") < 0) return 1;
        if (!(enc[r] = x264_encoder_open(&p))) return 1;
        if (x264_picture_alloc(&pic[r], X264_CSP_I420, rungs[r].w, rungs[r].h) < 0) return 1;
    }
    uint64_t bytes = 0;
    for (int f = 0; f < frames; f++) {
        for (int r = 0; r < 3; r++) {
            int w = rungs[r].w, h = rungs[r].h;
            /* A moving gradient with a little pseudo-random texture: every macroblock changes. */
            uint32_t seed = 2654435761u * (uint32_t)(f + 1);
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++) {
                    seed = seed * 1664525u + 1013904223u;
                    pic[r].img.plane[0][y * pic[r].img.i_stride[0] + x] =
                        (uint8_t)(x + y + 4 * f + (seed >> 29));
                }
            for (int c = 1; c < 3; c++)
                for (int y = 0; y < h / 2; y++)
                    memset(pic[r].img.plane[c] + y * pic[r].img.i_stride[c], 128 + (f & 15), w / 2);
            pic[r].i_pts = f;
            pic[r].i_type = f % 60 == 0 ? X264_TYPE_IDR : X264_TYPE_AUTO;
            x264_nal_t *nal;
            int n;
            int size = x264_encoder_encode(enc[r], &nal, &n, &pic[r], &out);
            if (size < 0) return 1;
            bytes += (uint64_t)size;
        }
    }
    for (int r = 0; r < 3; r++) {
        x264_nal_t *nal;
        int n, size;
        while (x264_encoder_delayed_frames(enc[r]) > 0 &&
               (size = x264_encoder_encode(enc[r], &nal, &n, NULL, &out)) >= 0)
            bytes += (uint64_t)size;
        x264_encoder_close(enc[r]);
        x264_picture_clean(&pic[r]);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("frames %d threads %s encoded %.1f MB peak RSS %.1f MB\n", frames, threads,
           bytes / 1e6, ru.ru_maxrss / 1024.0);
    return 0;
}
