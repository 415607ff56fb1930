"""The API as users meet it through kubectl: CRDs install, examples apply, bad manifests are
rejected by the real API server with a message that says what to fix, and `kubectl get` and
`kubectl explain` are useful."""

import textwrap

import pytest
import yaml

from conftest import REPO, condition, kubectl, kubectl_json, wait_until

EXTERNAL = {
    "external": {
        "dialect": "openai",
        "baseUrl": "https://api.openai.com/v1",
        "model": "gpt-4o",
        "credentials": {"secretRef": {"name": "openai", "key": "apiKey"}},
    }
}
SELF_HOSTED = {"selfHosted": {"runtime": "vllm", "model": "meta-llama/Llama-3.1-8B-Instruct", "gpu": {"count": 1}}}


def backend(spec):
    return {"apiVersion": "switchyard.dev/v1alpha1", "kind": "InferenceBackend",
            "metadata": {"name": "bad"}, "spec": spec}


def route(spec):
    return {"apiVersion": "switchyard.dev/v1alpha1", "kind": "ModelRoute",
            "metadata": {"name": "bad"}, "spec": spec}


def with_external(**fields):
    return backend({"external": {**EXTERNAL["external"], **fields}})


def with_self_hosted(**fields):
    return backend({"selfHosted": {**SELF_HOSTED["selfHosted"], **fields}})


ONE = [{"name": "openai", "weight": 100}]


def with_rollout(**fields):
    return route({"backends": ONE, "rollout": fields})


def with_analysis(**fields):
    return with_rollout(analysis=fields)


# (id, manifest, the message the API server must return)
INVALID = [
    ("backend-both-kinds", backend({**EXTERNAL, **SELF_HOSTED}),
     "set exactly one of spec.external (a hosted provider) or spec.selfHosted"),
    ("backend-no-kind", backend({"capabilities": {"tools": True}}),
     "set exactly one of spec.external (a hosted provider) or spec.selfHosted"),
    ("base-url-not-http", with_external(baseUrl="ftp://api.example.com"),
     "baseUrl must be an http:// or https:// URL with a host"),
    ("base-url-not-a-url", with_external(baseUrl="api.openai.com"),
     "baseUrl must be an http:// or https:// URL with a host"),
    ("credentials-over-plain-http", with_external(baseUrl="http://llm.internal/v1"),
     "credentials are sent only over https: use an https:// baseUrl, or set allowInsecure: true"),
    ("tls-over-plain-http", with_external(baseUrl="http://llm.internal/v1", allowInsecure=True,
                                          tls={"caSecretRef": {"name": "private-ca", "key": "ca.crt"}}),
     "tls verifies an https backend's certificate: use an https:// baseUrl, or remove tls"),
    ("tls-without-ca", with_external(tls={}),
     "spec.external.tls.caSecretRef: Required value"),
    ("credentials-literal-key", with_external(credentials="sk-live-123"),
     "spec.external.credentials in body must be of type object"),
    ("credentials-inline-key", with_external(credentials={"apiKey": "sk-live-123"}),
     'strict decoding error: unknown field "spec.external.credentials.apiKey"'),
    ("unknown-dialect", with_external(dialect="cohere"),
     'spec.external.dialect: Unsupported value: "cohere": supported values: "openai", "anthropic"'),
    ("gpu-count-zero", with_self_hosted(gpu={"count": 0}),
     "gpu.count must be between 1 and 64 GPUs per pod"),
    ("unknown-runtime", with_self_hosted(runtime="ollama"),
     'spec.selfHosted.runtime: Unsupported value: "ollama"'),
    ("timeout-not-a-duration", backend({**EXTERNAL, "limits": {"timeout": "10 seconds"}}),
     "spec.limits.timeout: Invalid value: \"string\": must be a duration such as 30s, 10m or 1h30m"),
    ("price-not-decimal", backend({**EXTERNAL, "pricing": {"inputPerMillionTokens": "$5",
                                                           "outputPerMillionTokens": "15"}}),
     "inputPerMillionTokens must be a non-negative decimal string"),
    ("price-total-and-input", backend({**EXTERNAL, "pricing": {"totalPerMillionTokens": "0.60",
                                                               "inputPerMillionTokens": "2.50"}}),
     "totalPerMillionTokens prices every token alike: remove inputPerMillionTokens"),
    ("price-output-missing", backend({**EXTERNAL, "pricing": {"inputPerMillionTokens": "2.50",
                                                              "cachedInputPerMillionTokens": "1.25"}}),
     "pricing needs both inputPerMillionTokens and outputPerMillionTokens, or totalPerMillionTokens alone"),
    ("cached-price-not-decimal", backend({**EXTERNAL, "pricing": {"inputPerMillionTokens": "2.50",
                                                                  "cachedInputPerMillionTokens": "half",
                                                                  "outputPerMillionTokens": "10"}}),
     "cachedInputPerMillionTokens must be a non-negative decimal string"),
    ("no-positive-weight", route({"backends": [{"name": "a", "weight": 0}, {"name": "b", "weight": 0}]}),
     "at least one backend needs a positive weight"),
    ("negative-weight", route({"backends": [{"name": "a", "weight": 100}, {"name": "b", "weight": -5}]}),
     "spec.backends[1].weight: Invalid value: \"integer\": weight must be a whole number between 0 and 1000000"),
    ("fractional-weight", route({"backends": [{"name": "a", "weight": 2.5}]}),
     "spec.backends[0].weight in body must be of type integer"),
    ("duplicate-backend", route({"backends": [{"name": "a", "weight": 50}, {"name": "a", "weight": 50}]}),
     "backend names must be unique within a route"),
    ("no-backends", route({"backends": []}),
     "spec.backends in body should have at least 1 items"),
    ("steps-not-increasing", with_rollout(steps=[5, 50, 20, 100]),
     "steps must strictly increase, e.g. [5, 20, 50, 100]"),
    ("steps-repeated", with_rollout(steps=[5, 5, 100]),
     "steps must strictly increase, e.g. [5, 20, 50, 100]"),
    ("steps-not-ending-at-100", with_rollout(steps=[5, 20, 50]),
     "the last step must be 100"),
    ("step-out-of-range", with_rollout(steps=[0, 100]),
     "each step is a percentage between 1 and 100"),
    ("step-duration-unparseable", with_rollout(stepDuration="10"),
     "spec.rollout.stepDuration: Invalid value: \"string\": must be a duration such as 30s, 10m or 1h30m"),
    ("interval-zero", with_analysis(interval="0s"),
     "spec.rollout.analysis.interval: Invalid value: \"string\": must be greater than zero"),
    ("error-rate-above-one", with_analysis(maxErrorRate=1.5),
     "maxErrorRate is a fraction between 0 and 1"),
    ("error-rate-negative", with_analysis(maxErrorRate=-0.1),
     "maxErrorRate is a fraction between 0 and 1"),
    ("metric-without-threshold", with_analysis(metrics=[{"name": "ttft", "query": "vector(1)"}]),
     "a metric check needs a min or a max threshold"),
    ("metric-min-above-max", with_analysis(metrics=[{"name": "ttft", "query": "vector(1)", "min": 2, "max": 1}]),
     "min must not be greater than max"),
    ("unknown-inconclusive-policy", with_analysis(onInconclusive="Ignore"),
     'spec.rollout.analysis.onInconclusive: Unsupported value: "Ignore": supported values: "Hold", "Rollback"'),
    ("mirror-percent-zero", with_rollout(mirror={"percent": 0, "duration": "1h"}),
     "mirror.percent must be between 1 and 100"),
    ("duplicate-fallback", route({"backends": ONE, "fallback": [{"name": "x"}, {"name": "x"}]}),
     "fallback backend names must be unique"),
]


def test_at_least_twelve_distinct_rejections():
    assert len({message for _, _, message in INVALID}) >= 12


@pytest.mark.parametrize("manifest,message", [(m, msg) for _, m, msg in INVALID], ids=[i for i, _, _ in INVALID])
def test_invalid_manifest_is_rejected_with_a_helpful_message(crds, namespace, manifest, message):
    result = kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest), namespace=namespace, check=False)
    assert result.returncode != 0, f"accepted an invalid manifest:\n{yaml.safe_dump(manifest)}"
    assert message in result.stderr, f"expected {message!r} in:\n{result.stderr}"
    # Nothing was stored.
    kind = manifest["kind"].lower()
    assert kubectl("get", kind, "bad", namespace=namespace, check=False).returncode != 0


def test_examples_apply(crds, namespace):
    result = kubectl("apply", "-f", str(REPO / "examples"), namespace=namespace)
    assert "modelroute.switchyard.dev/chat created" in result.stdout
    names = {i["metadata"]["name"] for i in kubectl_json("get", "inferencebackends", namespace=namespace)["items"]}
    assert names == {"openai-gpt4o", "anthropic-sonnet", "llama-h100"}
    # Defaults from the schema are filled in by the API server.
    llama = kubectl_json("get", "ib", "llama-h100", namespace=namespace)
    assert llama["spec"]["selfHosted"]["replicas"] == 2
    chat = kubectl_json("get", "mr", "chat", namespace=namespace)
    assert chat["spec"]["rollout"]["analysis"]["maxHold"] == "30m"


def test_kubectl_get_shows_the_columns_that_matter(controller, namespace):
    kubectl("apply", "-f", str(REPO / "examples"), namespace=namespace)

    def route_row():
        out = kubectl("get", "mr", namespace=namespace).stdout
        return out if "openai-gpt4o=950,llama-h100=50" in out else None

    out = wait_until(route_row, timeout=30, what="route status in kubectl get mr")
    header = out.splitlines()[0].split()
    assert header == ["NAME", "MODEL", "PHASE", "WEIGHTS", "STEP", "AGE"]
    row = out.splitlines()[1].split()
    assert row[:4] == ["chat", "chat", "Stable", "openai-gpt4o=950,llama-h100=50"]

    def backends_ready():
        out = kubectl("get", "ib", namespace=namespace).stdout
        rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
        return out if rows.get("openai-gpt4o", [None] * 5)[4] == "True" else None

    out = wait_until(backends_ready, timeout=30, what="external backend Ready in kubectl get ib")
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "TYPE", "PROVIDER", "MODEL", "READY", "AGE"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["openai-gpt4o"][1:5] == ["External", "openai", "gpt-4o", "True"]
    assert rows["anthropic-sonnet"][1:4] == ["External", "anthropic", "claude-sonnet-4-5"]
    assert rows["llama-h100"][1:4] == ["SelfHosted", "vllm", "meta-llama/Llama-3.1-8B-Instruct"]

    # Short names and the category resolve.
    everything = kubectl("get", "switchyard", namespace=namespace).stdout
    assert "inferencebackend.switchyard.dev/llama-h100" in everything
    assert "modelroute.switchyard.dev/chat" in everything

    # Status follows kstatus: conditions carry observedGeneration.
    chat = kubectl_json("get", "mr", "chat", namespace=namespace)
    ready = condition(chat, "Ready")
    assert ready["status"] == "True"
    assert ready["observedGeneration"] == chat["metadata"]["generation"]
    assert chat["status"]["observedGeneration"] == chat["metadata"]["generation"]
    kubectl("wait", "--for=condition=Ready", "mr/chat", "--timeout=10s", namespace=namespace)


def test_kubectl_explain_documents_the_rollout(crds):
    out = kubectl("explain", "modelroute.spec.rollout").stdout
    assert "Percent of the way from the stable split to the desired split at each step." in out
    out = kubectl("explain", "inferencebackend.spec.external.credentials").stdout
    assert "Literal keys are not accepted" in out or "never sits in a manifest" in out
    out = kubectl("explain", "modelroute.spec.rollout.analysis.onInconclusive").stdout
    assert "inconclusive verdict" in out


def test_a_secret_value_never_reaches_status_or_events(controller, namespace):
    secret_value = "sk-e2e-do-not-leak-7f3a"
    kubectl("create", "secret", "generic", "openai", f"--from-literal=other={secret_value}", namespace=namespace)
    kubectl("label", "secret", "openai", "switchyard.dev/credential=provider", namespace=namespace)
    kubectl("apply", "-f", "-", namespace=namespace, input=textwrap.dedent("""
        apiVersion: switchyard.dev/v1alpha1
        kind: InferenceBackend
        metadata: {name: openai}
        spec:
          external:
            dialect: openai
            baseUrl: https://api.openai.com/v1
            model: gpt-4o
            credentials: {secretRef: {name: openai, key: apiKey}}
        """))

    def reason():
        c = condition(kubectl_json("get", "ib", "openai", namespace=namespace), "Ready")
        return c and c["reason"]

    assert wait_until(reason, timeout=30, what="Ready condition") == "SecretKeyMissing"
    dump = kubectl("get", "ib,events", "-o", "yaml", namespace=namespace).stdout
    assert secret_value not in dump
    assert secret_value not in controller.output()
