"""The benchmark's upstreams, which must never be the bottleneck: nginx serving fixed answers
in both dialects (JSON and ~100-chunk SSE), an nginx reverse proxy in front of it (the floor
a proxy is compared with), and a paced SSE server for time to first token.

nginx serves each answer as a static file; a POST to a static file is a 405, which
`error_page 405 =200 $uri` turns into the file with a 200, so no module beyond nginx-light
is needed."""

import asyncio
import json
import os
import pathlib
import shutil
import subprocess
import threading
import time

CHUNKS = 100
CONTENT = "Hello! This is a fixed answer from the benchmark upstream, long enough to look real."


def openai_json():
    return json.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000, "model": "gpt-bench",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": CONTENT}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 24, "total_tokens": 36}}, separators=(",", ":"))


def openai_chunk(delta, finish=None, usage=None, choices=True):
    c = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000, "model": "gpt-bench",
         "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if choices else []}
    if usage:
        c["usage"] = usage
    return "data: " + json.dumps(c, separators=(",", ":")) + "\n\n"


def openai_sse_events():
    """Role chunk, CHUNKS content chunks, the finish, the usage chunk, [DONE]."""
    yield openai_chunk({"role": "assistant", "content": ""})
    for i in range(CHUNKS):
        yield openai_chunk({"content": f"tok{i} "})
    yield openai_chunk({}, finish="stop")
    yield openai_chunk({}, usage={"prompt_tokens": 12, "completion_tokens": CHUNKS, "total_tokens": 12 + CHUNKS},
                       choices=False)
    yield "data: [DONE]\n\n"


def anthropic_json():
    return json.dumps({
        "id": "msg_bench", "type": "message", "role": "assistant", "model": "claude-bench",
        "content": [{"type": "text", "text": CONTENT}], "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 24}}, separators=(",", ":"))


def anthropic_event(name, data):
    return f"event: {name}\ndata: {json.dumps({'type': name, **data}, separators=(',', ':'))}\n\n"


def anthropic_sse_events():
    yield anthropic_event("message_start", {"message": {
        "id": "msg_bench", "type": "message", "role": "assistant", "model": "claude-bench", "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 12, "output_tokens": 1}}})
    yield anthropic_event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
    for i in range(CHUNKS):
        yield anthropic_event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": f"tok{i} "}})
    yield anthropic_event("content_block_stop", {"index": 0})
    yield anthropic_event("message_delta", {"delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                            "usage": {"output_tokens": CHUNKS}})
    yield anthropic_event("message_stop", {})


# Path prefix → (file under it, content type, body). Backends point their baseUrl at
# `<prefix>/v1`, so the gateway's own path suffix lands on the file.
ANSWERS = {
    "openai-json": ("v1/chat/completions", "application/json", openai_json),
    "openai-sse": ("v1/chat/completions", "text/event-stream", lambda: "".join(openai_sse_events())),
    "anthropic-json": ("v1/messages", "application/json", anthropic_json),
    "anthropic-sse": ("v1/messages", "text/event-stream", lambda: "".join(anthropic_sse_events())),
}


class Nginx:
    """One nginx with one worker, pinned to `core`, serving `server` (a config block)."""

    def __init__(self, name, workdir, server, core):
        self.dir = pathlib.Path(workdir) / name
        shutil.rmtree(self.dir, ignore_errors=True)
        (self.dir / "logs").mkdir(parents=True)
        conf = self.dir / "nginx.conf"
        conf.write_text(f"""
daemon off;
worker_processes 1;
worker_cpu_affinity {1 << core:b};
pid {self.dir}/nginx.pid;
error_log {self.dir}/logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  client_body_buffer_size 64k;
  client_body_temp_path {self.dir}/body;
  proxy_temp_path {self.dir}/proxy;
  {server}
}}
""")
        self.proc = subprocess.Popen(["taskset", "-c", str(core), "nginx", "-c", str(conf), "-p", str(self.dir)],
                                     stdout=subprocess.DEVNULL, stderr=open(self.dir / "logs" / "stderr", "w"))
        # A port held by another process (an nginx left over from a killed run) makes this one
        # exit at once while the old one answers: its CPU would then read as zero. Wait for the
        # worker and fail loudly instead.
        deadline = time.monotonic() + 10
        while len(self.pids()) < 2:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nginx {name} did not start: "
                                   f"{(self.dir / 'logs' / 'stderr').read_text()[-500:]}")
            time.sleep(0.05)

    def pids(self):
        """The master and its worker: both count for CPU."""
        kids = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout.split()
        return [self.proc.pid, *map(int, kids)]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


def static_upstream(workdir, port, core):
    # nginx's workers run as an unprivileged user: the answers must be readable to them.
    os.chmod(workdir, 0o755)
    root = pathlib.Path(workdir) / "answers"
    shutil.rmtree(root, ignore_errors=True)
    locations = []
    for prefix, (file, ctype, body) in ANSWERS.items():
        path = root / prefix / file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body())
        locations.append(f"location /{prefix}/ {{ default_type {ctype}; error_page 405 =200 $uri; }}")
    server = f"""server {{
    listen 127.0.0.1:{port} reuseport backlog=4096;
    root {root};
    {' '.join(locations)}
  }}"""
    return Nginx("upstream", workdir, server, core)


def reverse_proxy(workdir, port, upstream_port, core):
    server = f"""upstream backend {{ server 127.0.0.1:{upstream_port}; keepalive 128; }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}"""
    return Nginx("proxy", workdir, server, core)


class PacedSse:
    """An OpenAI-dialect SSE upstream that sends the role chunk at once, the first content
    after `first_ms`, then one chunk per `gap_ms`: time to first token through a proxy minus
    the same measured directly is what the proxy adds."""

    def __init__(self, port, first_ms=20, gap_ms=1, chunks=20):
        self.port, self.first, self.gap, self.chunks = port, first_ms / 1e3, gap_ms / 1e3, chunks
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()
        self.ready.wait(10)

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", self.port))
        self.ready.set()
        self.loop.run_forever()

    async def _serve(self, reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n")

                def chunk(s):
                    b = s.encode()
                    writer.write(f"{len(b):x}\r\n".encode() + b + b"\r\n")
                chunk(openai_chunk({"role": "assistant", "content": ""}))
                await writer.drain()
                await asyncio.sleep(self.first)
                for i in range(self.chunks):
                    chunk(openai_chunk({"content": f"tok{i} "}))
                    await writer.drain()
                    await asyncio.sleep(self.gap)
                chunk(openai_chunk({}, finish="stop"))
                chunk(openai_chunk({}, usage={"prompt_tokens": 1, "completion_tokens": self.chunks,
                                              "total_tokens": 1 + self.chunks}, choices=False))
                chunk("data: [DONE]\n\n")
                writer.write(b"0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def stop(self):
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)


def time_to_first_content(url, body, n=200):
    """Milliseconds from sending a streamed request until the first content chunk arrives,
    per request, on a kept-alive connection (http.client, so the client costs the same for
    every proxy measured)."""
    import http.client
    import urllib.parse
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    data = json.dumps(body).encode()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        conn.request("POST", u.path, body=data, headers={"Content-Type": "application/json",
                                                         "Authorization": "Bearer bench"})
        resp = conn.getresponse()
        first = None
        while True:
            line = resp.readline()
            if not line:
                break
            if first is None and b'"content":"tok' in line:
                first = (time.perf_counter() - t) * 1e3
        resp.read()
        if first is not None:
            out.append(first)
    conn.close()
    return sorted(out)
