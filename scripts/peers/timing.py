"""The timing loop every Python peer uses: warm up once, repeat for SECONDS, print the mean
wall and thread-CPU time per operation in the same format as `peer_timings` (Rust)."""
import time


def run(label, seconds, op):
    op()
    n, start, cpu = 0, time.perf_counter(), time.thread_time()
    while time.perf_counter() - start < seconds:
        for _ in range(16):
            op()
        n += 16
    wall = (time.perf_counter() - start) / n * 1e6
    per_cpu = (time.thread_time() - cpu) / n * 1e6
    print(f"{label}: {wall:.2f} us wall, {per_cpu:.2f} us cpu per op ({n} iterations)")
