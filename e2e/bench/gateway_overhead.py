#!/usr/bin/env python3
"""What the gateway adds to a request, measured against the same mock provider called
directly, in the same run: latency percentiles and throughput, sequential and concurrent,
non-streamed and streamed. Prints ratios (gateway / direct) so runs on different machines
compare. Needs the local cluster (`bash e2e/cluster/up.sh`) and a built binary.

    python3 e2e/bench/gateway_overhead.py [--requests 2000] [--concurrency 8]
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import requests

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "e2e" / "tests"))
import conftest  # noqa: E402  (cluster env, process helpers)


def run(url, n, concurrency, stream):
    body = {"model": "bench", "messages": [{"role": "user", "content": "one two three four five"}],
            "max_tokens": 16, "stream": stream}
    sessions = [requests.Session() for _ in range(concurrency)]

    def one(i):
        s = sessions[i % concurrency]
        t = time.perf_counter()
        r = s.post(url, json=body, timeout=30, stream=stream)
        if stream:
            for _ in r.iter_lines():
                pass
        else:
            r.content
        assert r.status_code == 200, r.text
        return time.perf_counter() - t

    for i in range(50):  # warm connections and caches
        one(i)
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        lat = sorted(pool.map(one, range(n)))
    wall = time.perf_counter() - start
    return {"p50_ms": lat[len(lat) // 2] * 1e3, "p95_ms": lat[int(len(lat) * 0.95)] * 1e3,
            "mean_ms": statistics.fmean(lat) * 1e3, "rps": n / wall}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()

    ns = "bench"
    conftest.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
    conftest.kubectl("create", "namespace", ns, check=False)
    mock = conftest.Mock("openai")
    controller = conftest.start_controller()
    gw = conftest.start_gateway(conftest.CLUSTER["KUBECONFIG"], ns)
    try:
        conftest.kubectl("apply", "-f", "-", namespace=ns, input=json.dumps({
            "apiVersion": "v1", "kind": "List", "items": [
                {"apiVersion": "switchyard.dev/v1alpha1", "kind": "InferenceBackend", "metadata": {"name": "mock"},
                 "spec": {"external": {"dialect": "openai", "baseUrl": f"{mock.url}/v1", "model": "m"}}},
                {"apiVersion": "switchyard.dev/v1alpha1", "kind": "ModelRoute", "metadata": {"name": "bench"},
                 "spec": {"backends": [{"name": "mock", "weight": 1}]}}]}))
        conftest.wait_until(lambda: any(m["id"] == "bench" for m in
                                        requests.get(f"{gw.url}/v1/models", timeout=2).json()["data"]),
                            timeout=30, what="route served")
        print(f"gateway overhead: {args.requests} requests per case, mock OpenAI provider on loopback, "
              f"{os.cpu_count()} cores\n")
        print(f"{'case':<28}{'direct p50':>11}{'gw p50':>9}{'ratio':>7}{'direct p95':>12}{'gw p95':>9}"
              f"{'ratio':>7}{'direct rps':>12}{'gw rps':>9}{'ratio':>7}")
        for label, conc, stream in [("sequential, JSON", 1, False), ("sequential, stream", 1, True),
                                    (f"{args.concurrency} concurrent, JSON", args.concurrency, False),
                                    (f"{args.concurrency} concurrent, stream", args.concurrency, True)]:
            d = run(f"{mock.url}/v1/chat/completions", args.requests, conc, stream)
            g = run(f"{gw.url}/v1/chat/completions", args.requests, conc, stream)
            print(f"{label:<28}{d['p50_ms']:>9.2f}ms{g['p50_ms']:>7.2f}ms{g['p50_ms'] / d['p50_ms']:>7.2f}"
                  f"{d['p95_ms']:>10.2f}ms{g['p95_ms']:>7.2f}ms{g['p95_ms'] / d['p95_ms']:>7.2f}"
                  f"{d['rps']:>12.0f}{g['rps']:>9.0f}{g['rps'] / d['rps']:>7.2f}")
    finally:
        gw.proc.stop()
        controller.stop()
        mock.stop()
        conftest.kubectl("delete", "namespace", ns, "--wait=false", check=False)


if __name__ == "__main__":
    main()
