#!/usr/bin/python3
"""A replay consumer on the validator: counts the shreds that reach its TVU port and the slots
it could replay. Shreds are stamped datagrams (send time in ns since the run's start, source
host, sequence number); a shred belongs to the slot of its send time and to one of the slot's
FEC sets ((source + sequence) mod SETS). A slot can be replayed once every one of its FEC sets
holds at least half the shreds sent in it (erasure coding at rate 1/2). It prints a line per
simulated second and, at END_S, a summary over the slots sent from START_S to STOP_S, then exits.

    replay.py PORT SLOT_MS SHREDS_PER_SET SETS START_S STOP_S END_S
"""
import select
import socket
import struct
import sys
import time

port, slot_ms, per_set, sets = (int(a) for a in sys.argv[1:5])
start_s, stop_s, end_s = (float(a) for a in sys.argv[5:8])
EPOCH_NS = 946684800 * 10**9  # the simulation's start date, 2000-01-01


def now_ns():
    return time.time_ns() - EPOCH_NS


rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
rx.bind(("0.0.0.0", port))
seen = set()
counts = {}  # (slot, set) -> shreds
delays = []
received = 0
second = int(now_ns() // 10**9) + 1
while now_ns() < end_s * 1e9:
    wait = min(second * 1e9, end_s * 1e9) - now_ns()
    ready, _, _ = select.select([rx], [], [], max(wait, 0) / 1e9)
    if ready:
        data = rx.recv(65535)
        if len(data) < 20:
            continue
        sent, source, seq = struct.unpack(">QIQ", data[:20])
        if (source, seq) in seen:
            continue
        seen.add((source, seq))
        received += 1
        delays.append(now_ns() - sent)
        key = (sent // (slot_ms * 10**6), (source + seq) % sets)
        counts[key] = counts.get(key, 0) + 1
    while now_ns() >= second * 1e9:
        print(f"t={second} shreds={received}", flush=True)
        second += 1

slot_ns = slot_ms * 10**6
first, end = int(start_s * 1e9) // slot_ns, int(stop_s * 1e9) // slot_ns
window = [s for s in range(first, end)]
complete = [s for s in window if all(counts.get((s, k), 0) * 2 >= per_set for k in range(sets))]
in_window = sum(counts.get((s, k), 0) for s in window for k in range(sets))
seconds = (end - first) * slot_ms / 1000
delays.sort()
pct = lambda q: delays[min(len(delays) - 1, int(q * len(delays)))] / 1e6 if delays else 0
print(
    f"summary slots={len(window)} replayable={len(complete)} shreds={in_window} "
    f"shreds_per_s={in_window / seconds:.1f} slots_per_s={len(complete) / seconds:.2f} "
    f"delay_min_ms={pct(0):.2f} delay_p50_ms={pct(0.5):.2f} delay_p95_ms={pct(0.95):.2f}",
    flush=True,
)
