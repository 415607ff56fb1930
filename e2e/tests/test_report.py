"""A migration's decisions as metrics, and its picture: a real short migration through the
gateway, judged by Prometheus; Prometheus scrapes the controller's decision series, and
`switchyard report` draws the timeline from them as PNG and SVG."""

import os
import struct
import subprocess
import time
import xml.etree.ElementTree as ET
import zlib

import requests

from conftest import CLUSTER, switchyard_binary, wait_until
from migration import rollout, status, watch_steps
from test_gateway_sdk import apply, backend, route, served
from traffic import Load

PRICING = {"inputPerMillionTokens": "2.50", "outputPerMillionTokens": "10.00"}


def prom(query):
    """The samples of an instant query, as {backend or phase or '': value}."""
    r = requests.get(f'{CLUSTER["PROMETHEUS_URL"]}/api/v1/query', params={"query": query}, timeout=5).json()
    assert r["status"] == "success", r
    return {s["metric"].get("backend", s["metric"].get("phase", "")): float(s["value"][1])
            for s in r["data"]["result"]}


def png_size(data):
    """(width, height) of a PNG, after checking its signature, the IHDR, every chunk's CRC
    and that the image data inflates to exactly the rows an 8-bit RGB(A) image has."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "PNG signature"
    at, chunks = 8, []
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        body = data[at + 8:at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length:at + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"CRC of {kind}"
        chunks.append((kind, body))
        at += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    width, height, depth, colour = struct.unpack(">IIBB", chunks[0][1][:10])
    assert depth == 8 and colour in (2, 6), (depth, colour)
    pixels = zlib.decompress(b"".join(b for k, b in chunks if k == b"IDAT"))
    assert len(pixels) == height * (1 + width * (3 if colour == 2 else 4))
    return width, height


def svg_texts(path):
    root = ET.parse(path).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg", root.tag
    return root, [(t.text or "").strip() for t in root.iter("{http://www.w3.org/2000/svg}text")]


def test_a_promoted_migration_is_exported_and_reported(controller, namespace, gateway, mocks, tmp_path):
    stable, target = mocks("openai"), mocks("openai")
    roll = rollout(steps=(20, 50, 100), step_duration="5s", interval="3s", min_requests=5)
    apply(namespace, backend("openai", stable, "gpt-4o", pricing=PRICING),
          backend("candidate", target, "llama", pricing={"inputPerMillionTokens": "0.20",
                                                          "outputPerMillionTokens": "0.20"}),
          route("chat", [("openai", 100)], rollout=roll))
    served(gateway, "chat")
    wait_until(lambda: status(namespace).get("phase") == "Stable", timeout=20, what="stable route")
    load = Load(gateway, "chat", stream_every=3)
    try:
        time.sleep(4)
        apply(namespace, route("chat", [("candidate", 100)], rollout=roll))
        started = time.monotonic()
        seen = watch_steps(namespace, lambda st: st.get("phase") == "Stable" and st.get("stable") == [
            {"name": "candidate", "weight": 100}], timeout=120)
        took = time.monotonic() - started
        time.sleep(4)  # traffic on the promoted split, and two scrapes of the final state
    finally:
        load.stop()
    print(f"[figures] report scenario: promoted after {took:.1f}s through {[s[1:3] for s in seen]}")

    # Prometheus has the decisions: the split now, the phase, every step, the outcome, the
    # checks with their thresholds and counted verdicts.
    sel = f'namespace="{namespace}",route="chat"'
    wait_until(lambda: prom(f"switchyard_route_weight{{{sel}}}") == {"candidate": 1000.0},
               timeout=15, what="the promoted weight in Prometheus")
    assert prom(f"switchyard_route_phase{{{sel}}} == 1") == {"Stable": 1.0}
    assert prom(f"max_over_time(switchyard_route_step{{{sel}}}[5m])") == {"": 3.0}
    assert prom(f"max_over_time(switchyard_route_steps{{{sel}}}[5m])") == {"": 3.0}
    assert prom(f'switchyard_migrations_total{{{sel},outcome="Promoted"}}') == {"": 1.0}
    assert prom(f'switchyard_migrations_total{{{sel},outcome="RolledBack"}}') == {"": 0.0}
    assert prom(f'switchyard_analysis_check_threshold{{{sel},check="error-rate",bound="max"}}') == \
        {"candidate": 0.02}
    assert "candidate" in prom(f'switchyard_analysis_check_value{{{sel},check="error-rate"}}')
    passes = prom(f'switchyard_analysis_verdicts_total{{{sel},check="error-rate",verdict="Pass"}}')
    assert passes[""] >= 3, "at least one passing analysis per step, each counted once"

    # The picture, from the same Prometheus (named by the environment) and the history.
    env = {**os.environ, "SWITCHYARD_PROMETHEUS_URL": CLUSTER["PROMETHEUS_URL"]}
    t0 = time.monotonic()
    run = subprocess.run([str(switchyard_binary()), "report", "chat", "-n", namespace, "--since", "5m",
                          "-o", str(tmp_path)], capture_output=True, text=True, env=env, timeout=60)
    rendered = time.monotonic() - t0
    assert run.returncode == 0, run.stderr
    png, svg = tmp_path / "chat-report.png", tmp_path / "chat-report.svg"
    assert run.stdout.split() == [str(png), str(svg)]
    width, height = png_size(png.read_bytes())
    root, texts = svg_texts(svg)
    assert (root.get("width"), root.get("height")) == (str(width), str(height)) == ("1200", str(height))
    print(f"[figures] report: rendered in {rendered:.2f}s, PNG {png.stat().st_size} B {width}x{height}, "
          f"SVG {svg.stat().st_size} B")

    def shown(prefix):
        return [t for t in texts if t.startswith(prefix)]
    for title in ("Weight", "Error rate", "p95 latency", "Time to first token", "Cost per 1k"):
        assert shown(title), f"panel {title!r} missing from {texts}"
    # Legends: each backend in weight, error rate and cost; the candidate ends at 100%.
    assert "candidate  100" in texts, texts
    assert len(shown("candidate")) >= 4 and len(shown("openai")) >= 4, texts
    for marker in ("step 1", "step 2", "step 3", "started", "Promoted"):
        assert marker in texts, f"marker {marker!r} missing from {texts}"
    assert not shown("No switchyard_route_step"), "the controller's steps were found"
    assert "Evaluation" not in " ".join(texts), "no evaluation in status, no evaluation text"

    # Without any Prometheus named, the command says what to set.
    env.pop("SWITCHYARD_PROMETHEUS_URL")
    run = subprocess.run([str(switchyard_binary()), "report", "chat", "-n", namespace, "-o", str(tmp_path)],
                         capture_output=True, text=True, env=env, timeout=60)
    assert run.returncode != 0 and "--prometheus-url" in run.stderr, run.stderr
