"""Reference side of bench/retrieval.c: FAISS's exact inner-product search
(IndexFlatIP) and torch's matmul + topk on the same items and queries.

bench/retrieval.c writes the data to the file named by
MMREC_BENCH_RETRIEVAL_DATA: four int64 (num_items, dim, num_queries, k),
then the items [num_items, dim] and the queries [num_queries, dim] as
float32, then its own top-k of every query for the inner product (ids
int64 [num_queries, k], scores float32 [num_queries, k]). This script
times
  batch   all the queries in one call (FAISS search; torch q @ X^T, topk)
  single  one query per call, each query once
with the FAISS thread count of MMREC_BENCH_FAISS_THREADS (the caller sets
OMP_WAIT_POLICY in the environment: it is read when OpenMP starts), torch
with MMREC_BENCH_THREADS (default 2) intra-op threads, and checks the C
top-k against FAISS's: the same ids wherever the scores are not tied
(within 1e-5 relative), scores within 1e-5 relative. It prints one line
of key=value fields; times are medians in ms."""
import os
import resource
import statistics
import sys
import time

import numpy as np


def median_ms(fn, runs):
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    path = os.environ["MMREC_BENCH_RETRIEVAL_DATA"]
    with open(path, "rb") as f:
        n, d, nq, k = np.fromfile(f, dtype=np.int64, count=4)
        items = np.fromfile(f, dtype=np.float32, count=n * d).reshape(n, d)
        queries = np.fromfile(f, dtype=np.float32, count=nq * d).reshape(nq, d)
        c_ids = np.fromfile(f, dtype=np.int64, count=nq * k).reshape(nq, k)
        c_scores = np.fromfile(f, dtype=np.float32, count=nq * k).reshape(nq, k)

    import faiss
    faiss.omp_set_num_threads(int(os.environ.get("MMREC_BENCH_FAISS_THREADS", "1")))
    index = faiss.IndexFlatIP(int(d))
    index.add(items)

    # correctness: FAISS's top-k against the C side's
    f_scores, f_ids = index.search(queries, int(k))
    score_diff = float(np.max(np.abs(f_scores - c_scores) / np.maximum(np.abs(f_scores), 1e-6)))
    # a position whose ids differ counts unless the two scores there are
    # equal within the tolerance (a tie, which the two order differently)
    tol = 1e-5 * np.maximum(np.abs(f_scores), 1e-6)
    mismatched = int(np.sum((f_ids != c_ids) & (np.abs(f_scores - c_scores) > tol)))

    batch_ms = median_ms(lambda: index.search(queries, int(k)), runs)

    def singles():
        for q in range(nq):
            index.search(queries[q:q + 1], int(k))

    single_ms = median_ms(singles, runs) / nq

    import torch
    torch.set_num_threads(int(os.environ.get("MMREC_BENCH_THREADS", "2")))
    X = torch.from_numpy(items)
    Q = torch.from_numpy(queries)
    with torch.no_grad():
        torch_batch_ms = median_ms(lambda: torch.topk(Q @ X.T, int(k), dim=1), runs)

        def torch_singles():
            for q in range(nq):
                torch.topk(X @ Q[q], int(k))

        torch_single_ms = median_ms(torch_singles, runs) / nq

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"faiss_batch_ms={batch_ms:.3f} faiss_single_ms={single_ms:.4f} "
          f"torch_batch_ms={torch_batch_ms:.3f} torch_single_ms={torch_single_ms:.4f} "
          f"ids_mismatched={mismatched} max_score_rel_diff={score_diff:.2e} "
          f"faiss_threads={faiss.omp_get_max_threads()} peak_rss_mib={peak:.1f}")


if __name__ == "__main__":
    main()
