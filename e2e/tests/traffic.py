"""Steady client traffic through the gateway, shared by the migration and chaos tests.

`Load` sends requests at a fixed rate from a few threads and records every one of them
(when it started and ended, which gateway replica and backend served it, how it failed), so
a test can count failures honestly and compute the split the client saw. `Replicas` is the
client-side balancer a smart client or a mesh sidecar would be: round robin over gateway
replicas, with active (`/readyz`) and passive (connection error) health checks. It never
retries a request: a request that fails counts as failed, whatever the reason.
"""

import dataclasses
import json
import threading
import time

import requests

FIGURES = []  # lines printed by `figure`, repeated in the run's terminal summary


def figure(line):
    """Prints a scenario's figures and keeps them for the end-of-run summary."""
    print(f"[figures] {line}")
    FIGURES.append(line)


@dataclasses.dataclass
class Record:
    start: float
    end: float
    target: str | None  # the gateway replica's URL, None when no replica was up
    backend: str | None  # x-switchyard-backend
    status: int  # HTTP status, 0 for a transport error
    error: str | None  # why it failed, None when it succeeded
    stream: bool
    started: bool  # a stream that delivered content before it failed: it cannot be retried

    @property
    def ok(self):
        return self.error is None


class Replicas:
    """Round robin over gateway replicas that are up. A replica goes down when its /readyz
    stops answering 200 (probed every `probe_every` seconds, as an active health check) or at
    once when a request to it fails at the connection level (a passive check), and comes back
    when /readyz answers 200 again."""

    def __init__(self, gateways, probe_every=0.1):
        self.lock = threading.Lock()
        # The API URL each request goes to, and the admin URL its /readyz is on.
        self.admin = {g.url: g.admin_url for g in gateways}
        self.headers = gateways[0].headers
        self.urls = [g.url for g in gateways]
        self.up = set(self.urls)
        self.down_since = {}  # url -> when the client stopped sending to it
        self.turn = 0
        self.stop_flag = threading.Event()
        self.prober = threading.Thread(target=self._probe, args=(probe_every,), daemon=True)
        self.prober.start()

    def add(self, gateway):
        with self.lock:
            self.admin[gateway.url] = gateway.admin_url
            self.urls.append(gateway.url)
            self.up.add(gateway.url)

    def pick(self):
        with self.lock:
            live = [u for u in self.urls if u in self.up]
            if not live:
                return None
            self.turn += 1
            return live[self.turn % len(live)]

    def _mark(self, url, up):
        with self.lock:
            if up:
                self.up.add(url)
                self.down_since.pop(url, None)
            elif url in self.up:
                self.up.discard(url)
                self.down_since[url] = time.monotonic()

    def connection_failed(self, url):
        self._mark(url, False)

    def _probe(self, every):
        # A definite answer (not 200, connection refused) counts at once; a slow answer on a
        # loaded machine only after three in a row, as a readiness probe's failureThreshold.
        session, slow = requests.Session(), {}
        while not self.stop_flag.wait(every):
            for url in list(self.urls):
                try:
                    ok = session.get(f"{self.admin[url]}/readyz", timeout=max(1.0, every * 5)).status_code == 200
                    slow[url] = 0
                except requests.Timeout:
                    slow[url] = slow.get(url, 0) + 1
                    if slow[url] < 3:
                        continue
                    ok = False
                except requests.RequestException:
                    ok = False
                self._mark(url, ok)

    def stop(self):
        self.stop_flag.set()
        self.prober.join(5)


class _One:
    """A single gateway: every request goes to it."""

    def __init__(self, gateway):
        self.url = gateway.url
        self.headers = gateway.headers

    def pick(self):
        return self.url

    def connection_failed(self, url):
        pass


class Load:
    """Steady traffic to a model through the gateway from a few threads, recording which
    backend answered each request and when. `gateway` is a Gateway or a `Replicas`; with
    `stream_every=n` every n-th request of a thread is streamed; `max_tokens` caps each answer
    (short by default, so load stays cheap; longer to see a backend's answers grow)."""

    def __init__(self, gateway, model, rps=40, threads=4, stream_every=0, timeout=10, max_tokens=4):
        self.replicas = gateway if isinstance(gateway, Replicas) else _One(gateway)
        self.max_tokens = max_tokens
        self.model, self.period, self.timeout = model, threads / rps, timeout
        self.stream_every = stream_every
        self.answers = []  # (time, backend or None, status), kept for the share computations
        self.records = []
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()
        self.started_at = time.monotonic()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(threads)]
        for t in self.threads:
            t.start()

    def run(self):
        sessions = {}
        deadline = time.monotonic()
        n = 0
        while not self.stop_flag.is_set():
            n += 1
            stream = bool(self.stream_every) and n % self.stream_every == 0
            target = self.replicas.pick()
            start = time.monotonic()
            if target is None:
                record = Record(start, start, None, None, 0, "no gateway replica up", stream, False)
            else:
                if target not in sessions:
                    sessions[target] = requests.Session()
                    sessions[target].headers.update(self.replicas.headers)
                session = sessions[target]
                record = self._send(session, target, stream, start)
                if record.status == 0 and "connection" in (record.error or "").lower():
                    self.replicas.connection_failed(target)
            with self.lock:
                self.records.append(record)
                self.answers.append((record.end, record.backend, record.status if record.ok else 0))
            deadline += self.period
            time.sleep(max(0.0, deadline - time.monotonic()))

    def _send(self, session, target, stream, start):
        body = {"model": self.model, "messages": [{"role": "user", "content": "steady traffic"}],
                "max_tokens": self.max_tokens, "stream": stream}
        backend, status, started = None, 0, False
        try:
            with session.post(f"{target}/v1/chat/completions", json=body, timeout=self.timeout,
                              stream=stream) as r:
                backend, status = r.headers.get("x-switchyard-backend"), r.status_code
                if status != 200:
                    error = f"HTTP {status}: {r.text[:200]}"
                elif not stream:
                    error = None if r.json().get("choices") else f"no choices: {r.text[:200]}"
                else:
                    error, started = _read_stream(r)
        except requests.ConnectionError as e:
            error = f"connection error: {type(e).__name__}: {e}"
        except requests.RequestException as e:
            error = f"{type(e).__name__}: {e}"
        return Record(start, time.monotonic(), target, backend, status, error, stream, started)

    def share(self, backend, start, end):
        with self.lock:
            window = [b for t, b, code in self.answers if start <= t < end and code == 200]
        return (sum(1 for b in window if b == backend) / len(window)) if window else None, len(window)

    def between(self, start=None, end=None):
        """The records of requests that started in [start, end)."""
        start = self.started_at if start is None else start
        end = float("inf") if end is None else end
        with self.lock:
            return [r for r in self.records if start <= r.start < end]

    def first_share(self, backend, at_least, after, window=20):
        """When the client first saw `backend` answer at least `at_least` of `window`
        consecutive successful requests that started after `after`; None if never."""
        answers = [r for r in self.between(after) if r.ok]
        for i in range(window, len(answers) + 1):
            part = answers[i - window:i]
            if sum(1 for r in part if r.backend == backend) >= at_least * window:
                return part[-1].end
        return None

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(15)
        if isinstance(self.replicas, Replicas):
            self.replicas.stop()


def _read_stream(r):
    """Reads an OpenAI SSE stream. Returns (error or None, whether content had arrived)."""
    started = False
    for line in r.iter_lines():
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            return None, started
        event = json.loads(data)
        if "error" in event:
            return f"error event: {json.dumps(event['error'])[:200]}", started
        for choice in event.get("choices") or []:
            if (choice.get("delta") or {}).get("content"):
                started = True
    return "stream ended without [DONE]", started


def summarize(title, records, excluded=lambda r: False):
    """Counts of `records` as a dict and one printed line the CI log shows. `excluded`
    marks failures that do not count against the success rate (streams already started)."""
    counted = [r for r in records if r.ok or not excluded(r)]
    failed = [r for r in counted if not r.ok]
    rate = (1 - len(failed) / len(counted)) if counted else None
    backends = {}
    for r in records:
        if r.ok:
            backends[r.backend] = backends.get(r.backend, 0) + 1
    out = {"title": title, "requests": len(records), "counted": len(counted), "failed": len(failed),
           "excluded": len(records) - len(counted), "success_rate": rate, "backends": backends,
           "errors": sorted({r.error for r in failed})[:5]}
    rate_text = f"{100 * rate:.2f}%" if rate is not None else "n/a"
    figure(f"{title}: {len(records)} requests, {len(failed)} failed, success {rate_text}"
          + (f", {out['excluded']} excluded (streams already started)" if out["excluded"] else "")
          + f", answered by {backends}" + (f", errors {out['errors']}" if failed else ""))
    return out
