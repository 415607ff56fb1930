"""A backend behind a private CA: its InferenceBackend names a CA bundle (a Secret labelled
switchyard.dev/credential=ca-bundle), the controller checks it, and the gateway verifies the
backend's certificate against it alone."""

import subprocess

import openai
import pytest

from conftest import condition, kubectl, kubectl_json, wait_until
from test_gateway_sdk import apply, oai, route, served


def make_ca(directory, name):
    """A CA and a certificate it issued for 127.0.0.1 and localhost, as PEM files."""
    ca_key, ca_crt = directory / f"{name}-ca.key", directory / f"{name}-ca.crt"
    key, csr, crt = directory / f"{name}.key", directory / f"{name}.csr", directory / f"{name}.crt"
    ext = directory / f"{name}.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                   "extendedKeyUsage=serverAuth\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    for args in (
        ["req", "-x509", *ec, "-keyout", ca_key, "-out", ca_crt, "-days", "1", "-subj", f"/CN={name} private CA",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"],
        ["req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"],
        ["x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial", "-out", crt,
         "-days", "1", "-extfile", ext],
    ):
        subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)
    return crt, key, ca_crt


def private_backend(mock):
    return [{"apiVersion": "switchyard.dev/v1alpha1", "kind": "InferenceBackend", "metadata": {"name": "private"},
             "spec": {"external": {"dialect": "openai", "baseUrl": f"{mock.url}/v1", "model": "gpt-4o",
                                   "tls": {"caSecretRef": {"name": "private-ca", "key": "ca.crt"}}}}}]


def ca_secret(pem, labelled=True):
    labels = {"switchyard.dev/credential": "ca-bundle"} if labelled else {}
    return [{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "private-ca", "labels": labels},
             "stringData": {"ca.crt": pem}}]


def ready(namespace):
    return condition(kubectl_json("get", "inferencebackend", "private", namespace=namespace), "Ready") or {}


def test_a_backend_behind_a_private_ca_is_served_once_its_bundle_is_labelled_and_valid(
        controller, namespace, gateway, mocks, tmp_path):
    crt, key, ca = make_ca(tmp_path, "private")
    _, _, other_ca = make_ca(tmp_path, "other")
    mock = mocks("openai", tls=(crt, key, ca))
    apply(namespace, private_backend(mock), ca_secret(ca.read_text(), labelled=False), route("chat", [("private", 100)]))

    # Unlabelled: never read, and the condition says exactly which label to add.
    wait_until(lambda: ready(namespace).get("reason") == "SecretNotLabelled", timeout=30,
               what="the backend reporting its CA bundle Secret unlabelled")
    assert f"kubectl label secret private-ca -n {namespace} switchyard.dev/credential=ca-bundle" in \
        ready(namespace)["message"]

    # A labelled Secret that holds no certificate is refused by the controller too.
    apply(namespace, ca_secret("not a certificate"))
    wait_until(lambda: ready(namespace).get("reason") == "CABundleInvalid", timeout=30,
               what="the backend reporting its CA bundle invalid")

    apply(namespace, ca_secret(ca.read_text()))
    wait_until(lambda: ready(namespace).get("status") == "True", timeout=30, what="the backend Ready")
    served(gateway, "chat")
    client = oai(gateway)

    def answers():
        try:
            return client.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": "hi"}]).choices[0].message.content
        except openai.APIStatusError:
            return None

    assert wait_until(answers, timeout=30, what="an answer through the private CA")
    assert mock.chat_requests() >= 1

    # Another CA's bundle does not vouch for this host: the handshake fails, nothing is sent.
    before = mock.chat_requests()
    apply(namespace, ca_secret(other_ca.read_text()))

    def refused():
        try:
            client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
            return None
        except openai.APIStatusError as e:
            return e

    err = wait_until(refused, timeout=30, what="the backend refused under another CA")
    assert err.status_code == 502 and "certificate" in err.message, err.message
    assert mock.chat_requests() == before
