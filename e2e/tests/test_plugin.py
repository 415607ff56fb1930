"""The kubectl plugin as users get it: installed with `make install-plugin` (or krew) and run
through kubectl itself — `kubectl switchyard status --watch` following a migration, `get`
across namespaces, shell completion (kubectl's plugin completion included) and the krew
manifest installed with the real krew."""

import hashlib
import json
import os
import re
import subprocess
import threading
import time
import uuid

import pytest
import yaml

from conftest import CLUSTER, REPO, kubectl, kubectl_json, switchyard_binary, wait_until
from migration import command, rollout, status
from test_gateway_sdk import apply, backend, route

VERSION = re.search(r'^version = "(.+)"', (REPO / "Cargo.toml").read_text(), re.M).group(1)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """`make install-plugin` into a fresh prefix (the debug build the suite runs, so no release
    build here); returns the environment that has its bin directory first on PATH."""
    prefix = tmp_path_factory.mktemp("prefix")
    r = subprocess.run(["make", "-C", str(REPO), "install-plugin", f"PREFIX={prefix}", "PROFILE=dev"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    env = {**os.environ, "PATH": f"{prefix}/bin:{os.environ['PATH']}", "KUBECONFIG": CLUSTER["KUBECONFIG"]}
    return prefix, env


def plugin(env, *args, check=True):
    r = subprocess.run(["kubectl", "switchyard", *args], capture_output=True, text=True, timeout=60, env=env)
    if check:
        assert r.returncode == 0, f"kubectl switchyard {' '.join(args)}: {r.stderr}"
    return r


def test_make_install_plugin_puts_the_plugin_and_its_completion_helper_on_path(installed):
    prefix, env = installed
    assert (prefix / "bin" / "kubectl-switchyard").is_file()
    assert os.readlink(prefix / "bin" / "kubectl_complete-switchyard") == "kubectl-switchyard"
    listed = subprocess.run(["kubectl", "plugin", "list"], capture_output=True, text=True, env=env, timeout=30)
    assert f"{prefix}/bin/kubectl-switchyard" in listed.stdout.splitlines(), listed.stdout + listed.stderr
    assert plugin(env, "version").stdout == f"switchyard {VERSION}\n"


class Watch:
    """`kubectl switchyard status --watch` with its stdout on a pipe, read in the background."""

    def __init__(self, env, *args):
        self.proc = subprocess.Popen(["kubectl", "switchyard", "status", "--watch", *args], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.out = []
        self.thread = threading.Thread(target=lambda: self.out.extend(iter(self.proc.stdout.readline, "")),
                                       daemon=True)
        self.thread.start()

    def text(self):
        return "".join(self.out)

    def blocks(self):
        """The screens printed so far: each starts with the route's title line."""
        return [b for b in re.split(r"\n(?=Route )", self.text()) if b.strip()]

    def wait_for(self, what, predicate, timeout=30):
        return wait_until(lambda: next((b for b in self.blocks() if predicate(b)), None), timeout=timeout,
                          what=f"a watch block with {what}; printed so far:\n{self.text()}")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.thread.join(5)
        return self.proc.stderr.read()


def test_status_watch_piped_prints_a_block_for_each_step_the_migration_takes(controller, namespace, mocks, installed):
    _, env = installed
    stable, target = mocks("openai"), mocks("openai")
    roll = rollout(steps=(20, 60, 100), step_duration="10m")
    apply(namespace, backend("openai", stable, "gpt-4o"), backend("candidate", target, "llama"),
          route("chat", [("openai", 100)], rollout=roll))
    wait_until(lambda: status(namespace).get("phase") == "Stable", timeout=30, what="stable route")
    watch = Watch(env, "mr/chat", "-n", namespace)
    try:
        watch.wait_for("the stable split", lambda b: "Phase:    Stable" in b)
        started = time.monotonic()
        apply(namespace, route("chat", [("candidate", 100)], rollout=roll))
        watch.wait_for("step 1", lambda b: "20% <- now" in b)
        # Each promote moves one step; the watch prints the new step without being asked.
        while status(namespace).get("stable") != [{"name": "candidate", "weight": 100}]:
            cid = command(namespace, "promote")
            wait_until(lambda: status(namespace).get("lastCommand") == cid, timeout=15, what="promote handled")
        # The route's status and its Promoted Event are two changes; a block follows each.
        final = watch.wait_for("the new stable split and its Event", lambda b: "Stable:   candidate=100" in b and
                               "Promoted" in b[b.find("Events (newest last"):])
        followed = time.monotonic() - started
    finally:
        stderr = watch.stop()
    text = watch.text()
    assert "\x1b" not in text, "escape codes in piped output"
    blocks = watch.blocks()
    first = lambda needle: next(i for i, b in enumerate(blocks) if needle in b)  # noqa: E731
    at_20, at_60 = first("20% <- now"), first("60% <- now")
    assert at_20 < at_60 < blocks.index(final), text
    assert "Steps:    20% done -> 60% <- now -> 100% next" in blocks[at_60], blocks[at_60]
    assert re.search(r"\n  candidate +20\.0% +\[#{8}\.{32}\]\n", blocks[at_20]), blocks[at_20]
    assert re.search(r"\n  openai +40\.0% +\[#{16}\.{24}\]\n", blocks[at_60]), blocks[at_60]
    assert re.search(r"\n  candidate +100\.0% +\[#{40}\]\n", final), final
    # The history: the migration's record and its Events, newest last.
    assert "Migrations (newest last):" in final and "Promoted" in final, final
    assert "Phase:    Stable" in final and "MigrationStarted" in final, final
    assert followed < 30, f"took {followed:.1f}s"
    assert "error" not in stderr.lower(), stderr


def test_get_lists_routes_and_backends_across_namespaces(controller, namespace, mocks, installed):
    _, env = installed
    other = f"e2e-plugin-get-{uuid.uuid4().hex[:5]}"
    kubectl("create", "namespace", other)
    try:
        mock = mocks("openai")
        apply(namespace, backend("openai", mock, "gpt-4o"), route("chat", [("openai", 100)]))
        apply(other, backend("anthropic", mocks("anthropic"), "claude"), route("embed", [("anthropic", 100)]))
        for ns, name in ((namespace, "chat"), (other, "embed")):
            wait_until(lambda: status(ns, name).get("phase") == "Stable", timeout=30, what=f"{ns}/{name} stable")
        out = plugin(env, "get", "-A").stdout
        routes, backends = out.split("\n\n")
        assert routes.splitlines()[0].split() == ["NAMESPACE", "NAME", "MODEL", "PHASE", "STEP", "WEIGHTS", "READY",
                                                  "AGE"], out
        assert backends.splitlines()[0].split() == ["NAMESPACE", "NAME", "TYPE", "PROVIDER", "MODEL", "READY", "PODS",
                                                    "AGE"], out
        rows = {tuple(line.split()[:2]): line.split() for line in out.splitlines()}
        for ns, name, backend_name in ((namespace, "chat", "openai"), (other, "embed", "anthropic")):
            ready = next(c["status"] for c in status(ns, name)["conditions"] if c["type"] == "Ready")
            assert rows[(ns, name)][2:7] == [name, "Stable", "-", f"{backend_name}=100%", ready], out
            ib = kubectl_json("get", "ib", backend_name, namespace=ns)
            ib_ready = next(c["status"] for c in ib["status"]["conditions"] if c["type"] == "Ready")
            assert rows[(ns, backend_name)][2:7] == ["External", ib["status"]["provider"], ib["status"]["model"],
                                                     ib_ready, "-"], out
        # One namespace, one kind: no NAMESPACE column, nothing from elsewhere.
        out = plugin(env, "get", "mr", "-n", other).stdout
        assert [line.split()[:3] for line in out.splitlines()] == [["NAME", "MODEL", "PHASE"], ["embed", "embed",
                                                                                                "Stable"]], out
        empty = plugin(env, "get", "-n", f"{other}-none")
        assert (empty.stdout, empty.stderr) == ("", f"No resources found in {other}-none namespace.\n")
    finally:
        kubectl("delete", "namespace", other, "--wait=false", check=False)


def test_completion_scripts_and_kubectl_completes_the_plugin_with_route_names(crds, namespace, mocks, installed, tmp_path):
    _, env = installed
    for shell in ("bash", "zsh", "fish"):
        script = plugin(env, "completion", shell).stdout
        assert "kubectl-switchyard" in script and f"COMPLETE={shell}" in script.replace('"', ""), script
    script = tmp_path / "completion.bash"
    script.write_text(plugin(env, "completion", "bash").stdout)
    r = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    apply(namespace, backend("openai", mocks("openai"), "gpt-4o"), route("chat", [("openai", 100)]),
          route("chat-canary", [("openai", 100)]))

    def bash_complete(*words):
        """COMPREPLY of the sourced script for `kubectl-switchyard WORDS…`, the last one being
        completed, as bash fills it in at a Tab."""
        probe = (f'source {script}; COMP_WORDS=(kubectl-switchyard {" ".join(map(json.dumps, words))}); '
                 f'COMP_CWORD={len(words)}; COMP_TYPE=9; '
                 f'_clap_complete_kubectl_switchyard kubectl-switchyard {json.dumps(words[-1])} kubectl-switchyard; '
                 'printf "%s\\n" "${COMPREPLY[@]}"')
        r = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, env=env, timeout=30)
        assert r.returncode == 0, r.stderr
        return r.stdout.split()

    # A new word after the subcommand: the namespace's routes (and the flags, as clap offers them).
    names = lambda candidates: sorted(c for c in candidates if not c.startswith("-"))  # noqa: E731
    assert bash_complete("sta") == ["status"]
    assert names(bash_complete("status", "-n", namespace, "")) == ["chat", "chat-canary"]

    def kubectl_complete(*words):
        """What kubectl's own completion offers for `kubectl switchyard WORDS…` (it runs
        kubectl_complete-switchyard from PATH)."""
        r = subprocess.run(["kubectl", "__complete", "switchyard", *words], capture_output=True, text=True,
                           env=env, timeout=30)
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert lines[-1] == ":4", r.stdout  # no file names as a fallback
        return [line.split("\t")[0] for line in lines[:-1]]

    assert kubectl_complete("pro") == ["promote"]
    assert "--watch" in kubectl_complete("status", "--")
    assert names(kubectl_complete("status", "-n", namespace, "")) == ["chat", "chat-canary"]
    assert kubectl_complete("promote", f"--namespace={namespace}", "mr/chat-") == ["mr/chat-canary"]
    assert namespace in kubectl_complete("get", "-n", namespace[:12])


def test_krew_installs_the_plugin_from_the_generated_manifest_and_archive(tmp_path):
    tools = subprocess.run(["bash", str(REPO / "plugins" / "krew" / "tools.sh")], capture_output=True, text=True,
                           timeout=900)
    assert tools.returncode == 0, tools.stderr
    tools = tools.stdout.strip()

    def validate(manifest):
        r = subprocess.run([f"{tools}/validate-krew-manifest", "-manifest", str(manifest), "-skip-install"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        return r.stderr

    committed = REPO / "plugins" / "krew" / "switchyard.yaml"
    assert "structural validation OK" in validate(committed)
    manifest = tmp_path / "switchyard.yaml"
    packed = subprocess.run(["bash", str(REPO / "plugins" / "krew" / "package.sh"), "--binary",
                             str(switchyard_binary()), "--out", str(tmp_path), "--manifest", str(manifest)],
                            capture_output=True, text=True, timeout=120)
    assert packed.returncode == 0, packed.stderr
    archive = packed.stdout.strip()
    validate(manifest)
    platform = yaml.safe_load(manifest.read_text())["spec"]["platforms"][0]
    assert platform["sha256"] == hashlib.sha256(open(archive, "rb").read()).hexdigest()
    assert platform["uri"].endswith("/v" + VERSION + "/" + os.path.basename(archive)), platform["uri"]
    # The committed manifest is the script's output (only the archive's digest differs).
    unhashed = lambda text: re.sub(r"sha256: [0-9a-f]{64}", "sha256: -", text)  # noqa: E731
    assert unhashed(committed.read_text()) == unhashed(manifest.read_text()), "rerun `make krew-manifest`"

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl-krew").symlink_to(f"{tools}/krew")
    krew_root = tmp_path / "krew"
    env = {**os.environ, "KREW_ROOT": str(krew_root), "KREW_NO_UPGRADE_CHECK": "1",
           "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    r = subprocess.run(["kubectl", "krew", "install", f"--manifest={manifest}", f"--archive={archive}"],
                       capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (krew_root / "store" / "switchyard" / f"v{VERSION}" / "LICENSE").is_file()
    env["PATH"] = f"{krew_root}/bin:{env['PATH']}"
    r = subprocess.run(["kubectl", "switchyard", "version"], capture_output=True, text=True, env=env, timeout=30)
    assert (r.returncode, r.stdout) == (0, f"switchyard {VERSION}\n"), r.stderr
