#!/usr/bin/env python3
"""Generates the V4L2 timestamp traces used by tests/v4l2_*.rs.

There is no capture card on the build machines, so these traces are NOT recordings: they are
modelled on the behaviour of real devices (drop-in replaceable by real `v4l2-ctl
--stream-mmap --verbose` output, which has exactly this line format). A fixed LCG makes them
reproducible. Run from this directory.
"""

class Lcg:
    def __init__(self, seed):
        self.s = seed
    def uniform(self, lo, hi):
        self.s = (self.s * 6364136223846793005 + 1442695040888963407) % 2**64
        return lo + (hi - lo) * ((self.s >> 11) / 2**53)

def line(i, seq, used, ts_us, prev_us, flags="ts-monotonic, ts-src-eof"):
    s = f"cap dqbuf: {i % 8} seq: {seq:6d} bytesused: {used} ts: {ts_us // 1_000_000}.{ts_us % 1_000_000:06d}"
    if prev_us is not None:
        s += f" delta: {(ts_us - prev_us) / 1000:.3f} ms"
    return s + f" ({flags})"

def write(name, header, events):
    with open(name, "w") as f:
        for h in header:
            f.write(f"# {h}\n")
        prev = None
        for i, (seq, used, ts, flags) in enumerate(events):
            f.write(line(i, seq, used, ts, prev, flags) + "\n")
            prev = ts

OK = "ts-monotonic, ts-src-eof"
ERR = "error, ts-monotonic, ts-src-eof"

# 1. SDI card at 29.97 (1001/30000), +-2 ms jitter, 600 buffers; the driver drops frames
#    seq 200 and seq 401 (sequence gaps) and flags seq 300 as damaged.
r = Lcg(2997)
t0 = 8_412_316_204
events = []
for seq in range(602):
    if seq in (200, 401):
        continue
    ts = t0 + round(seq * 1001 / 30000 * 1e6 + r.uniform(-2000, 2000))
    events.append((seq, 4147200, ts, ERR if seq == 300 else OK))
write("sdi-2997-jitter.trace",
      ["Modelled (not recorded): PCIe SDI card, UYVY 1920x1080 at 30000/1001, +-2 ms jitter.",
       "Driver drops seq 200 and 401 (sequence gaps), flags seq 300 as damaged (error).",
       "Replayed with the 128x72 fixture pictures."], events)

# 2. USB webcam (C920, MJPG 1280x720) running at 30.000 fps for a 29.97 channel: 1200
#    buffers, USB jitter of -1..+4 ms with an occasional 10 ms late completion.
r = Lcg(920)
t0 = 1_205_554_001
events = []
for seq in range(1200):
    j = r.uniform(-1000, 4000)
    if seq % 97 == 13:
        j += 10_000
    events.append((seq, 98304 + (seq * 37) % 4096, t0 + round(seq * 1e6 / 30 + j), OK))
write("webcam-30-on-2997.trace",
      ["Modelled (not recorded): Logitech C920 over uvcvideo, MJPG 1280x720 at 1/30 s,",
       "USB completion jitter -1..+4 ms, every 97th buffer 10 ms late. 30.000 fps on a",
       "29.97 channel: one grid slot in 1001 gets two buffers.",
       "Replayed with the 128x72 fixture pictures."], events)

# 3. SDI card at 25 fps: 10 s of signal, 3 s without (cable pulled: no buffers at all),
#    then 5 s of signal again. Sequence numbers continue (the driver counts frames it saw).
r = Lcg(25)
t0 = 5_000_000_000
events = []
for seq in range(450):
    if 250 <= seq < 325:
        continue
    ts = t0 + seq * 40_000 + round(r.uniform(-100, 100))
    events.append((seq, 4147200, ts, OK))
write("sdi-25-gap3s.trace",
      ["Modelled (not recorded): PCIe SDI card, UYVY 1920x1080 at 1/25 s, +-0.1 ms jitter.",
       "Signal for 10 s (seq 0-249), none for 3 s (seq 250-324 never delivered), then 5 s.",
       "Replayed with the 128x72 fixture pictures."], events)
