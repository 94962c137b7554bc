#!/usr/bin/env python3
"""The reference side of `domicile bench vectors`: hnswlib and NumPy on the
same vectors, in the same run, on one thread.

Reads the float32 little-endian files `domicile bench vectors` wrote (data,
queries, and the exact top-k it computed), and prints one JSON object:
hnswlib's build time, memory per vector (heap growth), recall@k and
queries per second for each ef; NumPy's brute-force scan rate in GB/s (one
thread, and its default thread count); and whether NumPy's exact top-k agrees
with Domicile's.

With --save-index PATH it also saves its one-thread index there; with
--sweep-index PATH it only loads that index and runs the sweep again (for
`bench vectors --rounds`, which alternates the two sides' sweeps).

Needs numpy and hnswlib (pip install numpy hnswlib).
"""
import argparse
import ctypes
import json
import os
import sys
import time

# One BLAS thread unless told otherwise: single-thread figures on both sides.
for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(variable, "1")

import numpy as np  # noqa: E402

try:
    import hnswlib  # noqa: E402
except ImportError:
    hnswlib = None


class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]


def heap_bytes():
    """Bytes glibc's allocator has handed out (small blocks and mmapped ones), as Domicile measures itself."""
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    info = libc.mallinfo2()
    return info.uordblks + info.hblkhd


def resident_bytes():
    """The resident set (/proc/self/statm), as Domicile measures itself."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def load(path, dimension):
    return np.fromfile(path, dtype="<f4").reshape(-1, dimension)


def recall(found, truth):
    hits = sum(len(set(row_found) & set(row_truth)) for row_found, row_truth in zip(found, truth))
    return hits / truth.size


def numpy_scan(data, queries, k):
    """Brute force l2: |q|² − 2 q·x + |x|², top-k by argpartition, one query at a time."""
    norms = np.einsum("ij,ij->i", data, data)
    start = time.perf_counter()
    result = []
    for query in queries:
        distances = norms - 2 * (data @ query)
        top = np.argpartition(distances, k)[:k]
        result.append(top[np.argsort(distances[top])])
    elapsed = time.perf_counter() - start
    return np.array(result), data.nbytes * len(queries) / elapsed / 1e9


def sweep(index, queries, truth, arguments):
    """Recall@k and queries per second (best of three rounds, as on the Domicile side) for each ef."""
    points = []
    for ef in (int(value) for value in arguments.efs.split(",")):
        index.set_ef(max(ef, arguments.k))
        elapsed = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            labels, _ = index.knn_query(queries, k=arguments.k, num_threads=1)
            elapsed = min(elapsed, time.perf_counter() - start)
        points.append({"ef": ef, "recall": recall(labels, truth), "qps": len(queries) / elapsed})
    return points


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--queries", required=True)
    parser.add_argument("--truth", required=True)
    parser.add_argument("--dimension", type=int, required=True)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--m", type=int, default=16)
    parser.add_argument("--ef-construction", type=int, default=200)
    parser.add_argument("--efs", default="10,16,24,32,48,64,96,128,192,256,384,512")
    parser.add_argument("--scan-queries", type=int, default=50)
    parser.add_argument("--save-index")
    parser.add_argument("--sweep-index")
    arguments = parser.parse_args()

    queries = load(arguments.queries, arguments.dimension)
    truth = np.fromfile(arguments.truth, dtype="<i4").reshape(len(queries), arguments.k)
    if arguments.sweep_index:
        index = hnswlib.Index(space="l2", dim=arguments.dimension)
        index.load_index(arguments.sweep_index)
        index.set_num_threads(1)
        print(json.dumps({"sweep": sweep(index, queries, truth, arguments)}))
        return
    data = load(arguments.data, arguments.dimension)
    report = {"count": len(data), "dimension": arguments.dimension}

    scanned, gbps = numpy_scan(data, queries[: arguments.scan_queries], arguments.k)
    report["numpy_scan_gbps_one_thread"] = gbps
    report["numpy_truth_agreement"] = recall(scanned, truth[: arguments.scan_queries])

    if hnswlib is None:
        report["hnswlib"] = None
        print(json.dumps(report))
        return
    before, resident_before = heap_bytes(), resident_bytes()
    index = hnswlib.Index(space="l2", dim=arguments.dimension)
    index.init_index(max_elements=len(data), M=arguments.m, ef_construction=arguments.ef_construction, random_seed=100)
    index.set_num_threads(1)
    start = time.perf_counter()
    index.add_items(data, np.arange(len(data)), num_threads=1)
    build = time.perf_counter() - start
    grown = heap_bytes() - before
    resident = resident_bytes() - resident_before
    # The same build on two threads (a second index, freed at once).
    parallel = hnswlib.Index(space="l2", dim=arguments.dimension)
    parallel.init_index(max_elements=len(data), M=arguments.m, ef_construction=arguments.ef_construction, random_seed=100)
    start = time.perf_counter()
    parallel.add_items(data, np.arange(len(data)), num_threads=2)
    build_two_threads = time.perf_counter() - start
    del parallel
    points = sweep(index, queries, truth, arguments)
    if arguments.save_index:
        index.save_index(arguments.save_index)
    report["hnswlib"] = {"version": getattr(hnswlib, "__version__", "unknown"), "build_seconds": build,
                         "bytes_per_vector": grown / len(data),
                         "resident_bytes_per_vector": resident / len(data), "build_seconds_two_threads": build_two_threads,
                         "sweep": points}
    print(json.dumps(report))


if __name__ == "__main__":
    sys.exit(main())
