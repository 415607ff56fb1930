"""Measuring a process under load: CPU time from /proc (utime + stime of every thread,
clock ticks), peak RSS, saturation with wrk, fixed-rate latency with oha."""

import json
import os
import pathlib
import platform
import re
import subprocess
import tempfile

TICK = os.sysconf("SC_CLK_TCK")
REPO = pathlib.Path(__file__).resolve().parents[2]


class Cpu:
    @staticmethod
    def tree(pid):
        """`pid` and its descendants (nginx workers, uvicorn workers)."""
        out, todo = [], [pid]
        while todo:
            p = todo.pop()
            out.append(p)
            kids = subprocess.run(["pgrep", "-P", str(p)], capture_output=True, text=True).stdout.split()
            todo += map(int, kids)
        return out

    @staticmethod
    def seconds(pids):
        total = 0
        for pid in pids:
            try:
                fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except FileNotFoundError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
        return total / TICK


class CoreFence:
    """Keeps one core for the proxy under test: every task on the machine that may move (the
    cluster's API server, etcd, Prometheus, the controller, this script) is moved to the
    other cores, and put back by `restore()`. Proxies pinned to the kept core afterwards
    have it to themselves, so their latency is theirs and not the cluster's, as on a node
    where the proxy has a dedicated CPU. Per-CPU kernel threads refuse and stay."""

    def __init__(self, keep):
        self.saved = {}
        others = os.sched_getaffinity(0) - {keep}
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                tids = os.listdir(f"/proc/{pid}/task")
            except OSError:
                continue
            for tid in map(int, tids):
                try:
                    before = os.sched_getaffinity(tid)
                    if keep in before and before - {keep}:
                        os.sched_setaffinity(tid, before - {keep})
                        self.saved[tid] = before
                except OSError:
                    pass  # gone, or a kernel thread bound to its CPU

    def restore(self):
        for tid, cpus in self.saved.items():
            try:
                os.sched_setaffinity(tid, cpus)
            except OSError:
                pass


def production_controller_flags(conftest):
    """The suite's controller runs with a 4 s lease so hand-overs fit a test; a benchmark
    measures the controller as deployed (default lease timings)."""
    conftest.CONTROLLER_FLAGS = ["--prometheus-url", conftest.CLUSTER["PROMETHEUS_URL"]]


def peak_rss_mb(pids):
    total = 0
    for pid in pids:
        try:
            m = re.search(r"VmHWM:\s+(\d+) kB", pathlib.Path(f"/proc/{pid}/status").read_text())
        except FileNotFoundError:
            continue
        total += int(m.group(1)) if m else 0
    return total / 1024


def _body_file(body):
    f = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    json.dump(body, f)
    f.close()
    return f.name


def wrk(url, body, duration, connections, core, pids, timeout=5, probe=None):
    """Saturation: requests per second, errors, and the CPU the measured processes spent per
    1,000 requests. A 2 s warm-up run comes first (connections, caches). `probe`, if given, is
    called right before and right after the measured run; both results are returned."""
    script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    script.write(f"""wrk.method = "POST"
wrk.body = {json.dumps(json.dumps(body))}
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer bench"
wrk.headers["x-api-key"] = "bench"
wrk.headers["anthropic-version"] = "2023-06-01"
""")
    script.close()
    cmd = ["taskset", "-c", str(core), "wrk", "-t", "1", "-c", str(connections), "--timeout", f"{timeout}s",
           "-s", script.name, url]
    subprocess.run([*cmd[:-1], "-d", "2s", url], capture_output=True, text=True)
    probed = [probe()] if probe else []
    before = Cpu.seconds(pids)
    out = subprocess.run([*cmd[:-1], "-d", f"{duration}s", url], capture_output=True, text=True).stdout
    spent = Cpu.seconds(pids) - before
    if probe:
        probed.append(probe())
    n = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = 0
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        errors += sum(map(int, m.groups()))
    good = n - errors
    # rps counts failed answers too: report the successful ones only.
    return {"rps": rps * good / n if n else 0.0, "requests": n, "errors": errors, "good": good,
            "cpu_s": spent, "probe": probed,
            "cpu_ms_per_1k": spent * 1e6 / good if pids and good > 0 else None}


def oha_binary():
    return os.environ.get("OHA_BIN", "oha")


def oha(url, body, rate, duration, core):
    """Latency percentiles (ms) at a fixed request rate."""
    path = _body_file(body)
    out = subprocess.run(
        ["taskset", "-c", str(core), oha_binary(), "-z", f"{duration}s", "-q", str(rate), "-c", "64",
         "--no-tui", "--output-format", "json", "-m", "POST", "-D", path,
         "-H", "Content-Type: application/json", "-H", "Authorization: Bearer bench", url],
        capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"oha failed: {out.stderr[-500:]}")
    data = json.loads(out.stdout)
    lp = data["latencyPercentiles"]
    codes = data.get("statusCodeDistribution", {})
    bad = sum(v for k, v in codes.items() if not str(k).startswith("2"))
    if bad:
        raise RuntimeError(f"{bad} non-2xx answers from {url}: {codes}")
    return {"p50": lp["p50"] * 1e3, "p99": lp["p99"] * 1e3, "p99.9": lp["p99.9"] * 1e3}


def bench_env():
    """Machine, versions and the commit, for the report."""
    def first(cmd):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True)
            return (r.stdout or r.stderr).strip().splitlines()[0]
        except (OSError, IndexError):
            return "absent"
    model = next((ln.split(":", 1)[1].strip() for ln in pathlib.Path("/proc/cpuinfo").read_text().splitlines()
                  if ln.startswith("model name")), platform.processor())
    mem = int(re.search(r"MemTotal:\s+(\d+)", pathlib.Path("/proc/meminfo").read_text()).group(1)) // 1024 // 1024
    commit = first(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", str(REPO), "diff", "--quiet", "HEAD"]).returncode != 0
    return (f"{model}, {os.cpu_count()} cores, {mem} GiB; {first(['rustc', '--version'])}; "
            f"{first(['nginx', '-v'])}; {first(['wrk', '-v'])}; {first([oha_binary(), '--version'])}; "
            f"LiteLLM {os.environ.get('LITELLM_VERSION', 'absent')}; switchyard {commit}{' (modified)' if dirty else ''}")
