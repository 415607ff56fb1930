#!/usr/bin/env python3
"""Makes Switchyard's simulated inference pods answer HTTP.

kwok marks pods Running and gives them IPs, but no process stands behind those IPs. This
agent watches pods labelled `switchyard.dev/backend`; for each one with an IP it has
pod_host.py (one process inside the pod network namespace, netns.sh) add the IP and serve the
mock vLLM there, bound to that IP and the pod's `http` container port, serving the pod's model
name. When the pod goes away, so does its server and address. One host process serves every
pod, so hundreds of pods (the scale benchmark) cost sockets, not interpreters.

Pods whose images were loaded into the cluster (the Helm chart's controller and gateway run
from Switchyard's own image) run for real instead: pod_runtime.py.
"""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pod_runtime

HERE = pathlib.Path(__file__).resolve().parent
NETNS = os.environ.get("SWITCHYARD_NETNS", "switchyard-pods")
LOG_DIR = pathlib.Path(os.environ["LOG_DIR"])
SELECTOR = "switchyard.dev/backend"

servers = {}  # pod uid -> ip
host = None  # the pod_host.py process
runtime = None  # pods of loaded images (pod_runtime.Runtime)


def log(msg):
    print(f"{time.strftime('%H:%M:%S')} [pod-agent] {msg}", flush=True)


def ask(cmd):
    """Sends one command to the host and waits for its answer (None: the host died)."""
    try:
        host.stdin.write(json.dumps(cmd) + "\n")
        host.stdin.flush()
        line = host.stdout.readline()
    except (BrokenPipeError, OSError):
        return None
    return json.loads(line) if line else None


def ensure_host():
    global host
    if host is not None and host.poll() is None:
        return
    if host is not None:
        log(f"pod host exited ({host.returncode}); restarting it and every server")
        servers.clear()
    out = open(LOG_DIR / "pod-host.log", "a")
    host = subprocess.Popen(
        ["ip", "netns", "exec", NETNS, sys.executable, str(HERE / "pod_host.py")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=out, text=True, bufsize=1)


def container_facts(pod):
    """The port named `http` and the served model name (from the runtime's arguments)."""
    port, model = 8000, "model"
    for c in pod["spec"]["containers"]:
        for p in c.get("ports", []):
            if p.get("name") == "http":
                port = p["containerPort"]
        args = c.get("args", []) + c.get("command", [])
        for flag in ("--served-model-name", "--model-id", "--model-path", "--model"):
            if flag in args and args.index(flag) + 1 < len(args):
                model = args[args.index(flag) + 1]
                if flag == "--served-model-name":
                    return port, model
    return port, model


def start(pod):
    uid, ip = pod["metadata"]["uid"], pod["status"]["podIP"]
    port, model = container_facts(pod)
    name = f'{pod["metadata"]["namespace"]}/{pod["metadata"]["name"]}'
    answer = ask({"op": "start", "uid": uid, "ip": ip, "port": port, "model": model})
    if answer and answer.get("ok"):
        servers[uid] = ip
        log(f"serving {name} on {ip}:{port} as {model!r}")
    else:
        log(f"cannot serve {name} on {ip}:{port}: {answer and answer.get('error')}")


def stop(uid):
    ip = servers.pop(uid)
    ask({"op": "stop", "uid": uid})
    log(f"stopped server on {ip}")


def sync(pods):
    # kwok may hand a new pod the IP of one that is still being deleted. The newest pod owns
    # an IP, as it would on a real network once the old sandbox is gone.
    newest = {}
    for pod in pods:
        ip = (pod.get("status") or {}).get("podIP")
        if ip and not pod["metadata"].get("deletionTimestamp") and pod["status"].get("phase") == "Running":
            if ip not in newest or pod["metadata"]["creationTimestamp"] >= newest[ip]["metadata"]["creationTimestamp"]:
                newest[ip] = pod
    live = {pod["metadata"]["uid"]: pod for pod in newest.values()}
    for uid in [u for u in servers if u not in live]:
        stop(uid)
    for uid, pod in live.items():
        if uid not in servers:
            start(pod)


def shutdown(*_):
    if runtime is not None:
        runtime.shutdown()
    if host is not None and host.poll() is None:
        host.stdin.close()  # the host stops every server and exits on end of input
        try:
            host.wait(5)
        except subprocess.TimeoutExpired:
            host.kill()
    sys.exit(0)


def sync_loaded():
    """Pods of loaded images: any pod but the mock backends (the backend label), listed only
    once an image was loaded, so the scale runs' hundreds of pods cost no second list."""
    if not pod_runtime.INDEX.exists():
        return
    proc = subprocess.run(["kubectl", "get", "pods", "-A", "-l", f"!{SELECTOR}", "-o", "json"],
                          capture_output=True, text=True)
    if proc.returncode == 0:
        runtime.sync(json.loads(proc.stdout)["items"])


def main():
    global runtime
    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    runtime = pod_runtime.Runtime()
    while True:
        ensure_host()
        sync_loaded()
        # Polling, not `kubectl get --watch`: kubectl's watch output reached this agent minutes
        # late when few events flowed. A list every quarter second survives API restarts too.
        # With hundreds of pods a list costs more: wait at least as long as it took.
        began = time.monotonic()
        proc = subprocess.run(["kubectl", "get", "pods", "-A", "-l", SELECTOR, "-o", "json"],
                              capture_output=True, text=True)
        if proc.returncode == 0:
            sync(json.loads(proc.stdout)["items"])
        time.sleep(max(0.25, time.monotonic() - began))


if __name__ == "__main__":
    main()
