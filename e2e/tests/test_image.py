"""The OCI image image/build.sh assembles without a container engine: read back with skopeo
(a real OCI consumer), unpacked with umoci, and run from its own root filesystem as its
non-root user (chroot): `--version`, `crds`, and a gateway answering /healthz. The Dockerfile
beside it must describe the same image."""

import hashlib
import json
import pathlib
import re
import shlex
import subprocess
import tomllib

import requests
import yaml

from conftest import REPO, Process, free_port, service_account_kubeconfig, wait_until

CARGO = tomllib.loads((REPO / "Cargo.toml").read_text())["package"]
NONROOT = "65532:65532"


def oci_config(image):
    out = subprocess.run(["skopeo", "inspect", "--config", f"oci-archive:{image['archive']}"],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def in_image(image, *args, **kw):
    return subprocess.run(["chroot", f"--userspec={NONROOT}", str(image["rootfs"]),
                           "/usr/local/bin/switchyard", *args], capture_output=True, text=True, **kw)


def test_the_image_is_labelled_non_root_and_runs_the_binary_from_its_own_root_filesystem(image):
    config = oci_config(image)
    assert config["os"] == "linux" and config["architecture"] == "amd64"
    assert config["config"]["User"] == NONROOT
    assert config["config"]["Entrypoint"] == ["/usr/local/bin/switchyard"]
    labels = config["config"]["Labels"]
    assert labels["org.opencontainers.image.version"] == CARGO["version"]
    assert labels["org.opencontainers.image.licenses"] == CARGO["license"]
    assert labels["org.opencontainers.image.source"] == CARGO["repository"]
    assert re.fullmatch(r"[0-9a-f]{40}", labels["org.opencontainers.image.revision"])

    # Nothing from the host: only the binary, its libraries, certificates, users, docs.
    rootfs = image["rootfs"]
    top = sorted(p.name for p in rootfs.iterdir())
    assert top == ["etc", "home", "lib", "lib64", "tmp", "usr"], top

    version = in_image(image, "--version", check=True).stdout
    assert version.strip() == f"switchyard {CARGO['version']}"

    printed = list(yaml.safe_load_all(in_image(image, "crds", check=True).stdout))
    committed = [yaml.safe_load(p.read_text()) for p in sorted((REPO / "crds").glob("*.yaml"))]
    key = lambda d: d["metadata"]["name"]
    assert sorted(filter(None, printed), key=key) == sorted(committed, key=key)


def test_the_gateway_runs_from_the_image_with_a_service_account_token(image, rbac):
    # The token comes from the TokenRequest API, as a pod's projected token does.
    config = rbac_kubeconfig(image, "switchyard-gateway")
    listen, admin = free_port(), free_port()
    proc = Process("gateway-in-image", [
        "chroot", f"--userspec={NONROOT}", str(image["rootfs"]), "/usr/local/bin/switchyard", "gateway",
        "--listen-addr", f"127.0.0.1:{listen}", "--admin-addr", f"127.0.0.1:{admin}"],
        env={"KUBECONFIG": config, "HOME": "/home/nonroot"})
    try:
        def healthy():
            assert proc.proc.poll() is None, proc.output()
            try:
                return requests.get(f"http://127.0.0.1:{admin}/healthz", timeout=1).status_code == 200
            except requests.RequestException:
                return False
        wait_until(healthy, timeout=30, what="the image's gateway /healthz")
        wait_until(lambda: requests.get(f"http://127.0.0.1:{admin}/readyz", timeout=1).status_code == 200,
                   timeout=30, what="the image's gateway /readyz (its watches synced with the token)")
        # Applications are refused without a key: the secure default holds in the image too.
        r = requests.post(f"http://127.0.0.1:{listen}/v1/chat/completions", json={"model": "m", "messages": []})
        assert r.status_code == 401, r.text
    finally:
        proc.stop()


def rbac_kubeconfig(image, account):
    """Writes the account's kubeconfig inside the image's /tmp; returns its path there."""
    name = f"{account}.kubeconfig"
    path = image["rootfs"] / "tmp" / name
    path.write_text(service_account_kubeconfig(account))
    path.chmod(0o644)
    return f"/tmp/{name}"


def test_the_sbom_names_the_binary_every_linked_crate_and_the_debian_libraries(image):
    sbom = json.loads(image["sbom"].read_text())
    assert sbom["spdxVersion"] == "SPDX-2.3"
    inside = json.loads((image["rootfs"] / "usr/share/doc/switchyard/sbom.spdx.json").read_text())
    assert inside == sbom, "the image carries the SBOM published beside it"
    packages = {p["name"]: p for p in sbom["packages"]}
    binary = (image["rootfs"] / "usr/local/bin/switchyard").read_bytes()
    root = packages["switchyard"]
    assert root["checksums"] == [{"algorithm": "SHA256", "checksumValue": hashlib.sha256(binary).hexdigest()}]
    lock = tomllib.loads((REPO / "Cargo.lock").read_text())["package"]
    locked = {(p["name"], p["version"]) for p in lock}
    crates = {(p["name"], p["versionInfo"]) for p in sbom["packages"] if "-crate-" in p["SPDXID"]}
    assert crates <= locked
    for linked in ("tokio", "hyper", "kube-client", "rustls"):
        assert any(n == linked for n, _ in crates), linked
    # Test-only crates are not in the binary, so not in its bill of materials.
    dev_only = {n for n, _ in locked} - {n for n, _ in crates}
    assert "criterion" in dev_only
    debs = {p["name"] for p in sbom["packages"] if "-deb-" in p["SPDXID"]}
    assert {"libc6", "libgcc-s1"} <= debs
    for deb in debs:
        assert (image["rootfs"] / "usr/share/doc" / deb / "copyright").exists(), deb


def dockerfile_final_stage():
    """USER, ENTRYPOINT, WORKDIR, ENV, LABEL and COPY destinations of the last stage, with
    ARG defaults substituted."""
    text = (REPO / "image" / "Dockerfile").read_text()
    lines = re.sub(r"\\\n\s*", " ", text).splitlines()
    stage = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    last_from = max(i for i, ln in enumerate(stage) if ln.upper().startswith("FROM "))
    out = {"labels": {}, "env": [], "copies": [], "args": {}}
    for ln in stage[last_from + 1:]:
        word, _, rest = ln.partition(" ")
        word = word.upper()
        sub = lambda s: re.sub(r"\$\{(\w+)\}", lambda m: out["args"].get(m.group(1), m.group(0)), s)
        if word == "ARG":
            name, _, default = rest.partition("=")
            out["args"][name] = default
        elif word == "LABEL":
            for k, v in (t.split("=", 1) for t in shlex.split(rest)):
                out["labels"][k] = (v, sub(v))
        elif word == "ENV":
            out["env"] += [sub(t) for t in shlex.split(rest)]
        elif word == "USER":
            out["user"] = rest
        elif word == "WORKDIR":
            out["workdir"] = rest
        elif word == "ENTRYPOINT":
            out["entrypoint"] = json.loads(rest)
        elif word == "COPY":
            out["copies"].append(shlex.split(rest)[-1])
    return out


def test_the_dockerfile_builds_the_same_image_as_the_script(image):
    docker = dockerfile_final_stage()
    config = oci_config(image)["config"]
    assert docker["user"] == config["User"]
    assert docker["entrypoint"] == config["Entrypoint"]
    assert docker["workdir"] == config["WorkingDir"]
    assert sorted(docker["env"]) == sorted(config["Env"])
    assert docker["args"]["VERSION"] == CARGO["version"], "the Dockerfile's default VERSION is the crate's"
    assert set(docker["labels"]) == set(config["Labels"])
    for key, (raw, value) in docker["labels"].items():
        if "${REVISION}" not in raw:  # the commit is the build's own
            assert value == config["Labels"][key], key
    for path in docker["copies"]:
        assert (image["rootfs"] / path.lstrip("/")).is_file(), f"{path} is copied by the Dockerfile but not in the image"
    # What the distroless base brings, the script brings too.
    assert "nonroot:x:65532:65532" in (image["rootfs"] / "etc/passwd").read_text()
    assert (image["rootfs"] / "etc/ssl/certs/ca-certificates.crt").stat().st_size > 1000
