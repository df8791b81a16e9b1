"""Times PyPI cyclonedx-python-lib loading a CycloneDX JSON file, for docs/performance-attest.md.

Usage: python bench_cyclonedx_python.py BOM.json [runs]
(the file the Rust bench writes with ATTEST_BENCH_BOM_OUT=...; run with the venv that
scripts/generate-fixtures.sh creates, which has cyclonedx-python-lib 11.12.0)
"""
import json
import statistics
import sys
import time

from cyclonedx.model.bom import Bom

path = sys.argv[1]
runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
data = open(path, "rb").read()
times_load, times_json, cpu_load = [], [], []
for _ in range(runs):
    c0 = time.process_time()
    t0 = time.perf_counter()
    doc = json.loads(data)
    t1 = time.perf_counter()
    bom = Bom.from_json(doc)  # type: ignore[attr-defined]
    t2 = time.perf_counter()
    c2 = time.process_time()
    times_json.append(t1 - t0)
    times_load.append(t2 - t0)
    cpu_load.append(c2 - c0)
print(f"components: {len(bom.components)}")
print(f"json.loads only:               median {statistics.median(times_json) * 1000:.0f} ms")
print(f"json.loads + Bom.from_json:    median {statistics.median(times_load) * 1000:.0f} ms "
      f"(min {min(times_load) * 1000:.0f}, max {max(times_load) * 1000:.0f}, {runs} runs)")
print(f"json.loads + Bom.from_json CPU: median {statistics.median(cpu_load) * 1000:.0f} ms "
      f"(process time: excludes waiting for a core on a busy machine)")
