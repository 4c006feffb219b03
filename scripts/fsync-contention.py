#!/usr/bin/env python3
"""How one disk's fsync latency grows when several processes fsync at once
(docs/BENCHMARKS.md, "Bottlenecks found" 4): 1, 2, then 3 writers, each
writing 4 KiB and calling fdatasync in a loop, as three controllers on one
machine do for every commit.

    scripts/fsync-contention.py [DIR] [WRITES]     # defaults: /tmp 2000
"""
import multiprocessing as mp
import os
import sys
import time


def writer(path, writes, results):
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    block = b"x" * 4096
    latencies = []
    try:
        for k in range(writes):
            t = time.perf_counter()
            os.pwrite(fd, block, (k % 256) * 4096)
            os.fdatasync(fd)
            latencies.append(time.perf_counter() - t)
    finally:
        os.close(fd)
        os.unlink(path)
    latencies.sort()
    results.put((latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]))


def main():
    directory = sys.argv[1] if len(sys.argv) > 1 else "/tmp"
    writes = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    for count in (1, 2, 3):
        results = mp.Queue()
        procs = [
            mp.Process(target=writer, args=(os.path.join(directory, f"fsync-contention-{os.getpid()}-{i}"), writes, results))
            for i in range(count)
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        figures = [results.get() for _ in procs]
        print(f"{count} writer(s), p50/p99 µs per write+fdatasync: "
              + ", ".join(f"{p50 * 1e6:.0f}/{p99 * 1e6:.0f}" for p50, p99 in figures))


if __name__ == "__main__":
    main()
