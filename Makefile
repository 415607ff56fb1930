.PHONY: demo test crds down bench

# The demo on the local cluster.
demo:
	bash e2e/demo.sh

# Every test: lints, unit tests, and the end-to-end suite on a fresh local cluster.
test:
	bash e2e/test.sh

# Regenerate crds/ and the API reference from the Rust types.
crds:
	cargo run --quiet -- crds --dir crds --api-reference docs/api-reference.md
	cargo run --quiet -- crds --dir charts/switchyard/crds

# Regenerate argocd/argocd-cm.yaml from the Lua scripts in argocd/ (a test fails when it drifts).
.PHONY: argocd
argocd:
	bash -c '. e2e/cluster/versions.sh && cd e2e/argocd-lua && GOTOOLCHAIN=$$GO_TOOLCHAIN go run . configmap ../../argocd' >argocd/argocd-cm.yaml.tmp
	mv argocd/argocd-cm.yaml.tmp argocd/argocd-cm.yaml

# Stop the local cluster and everything started on it.
down:
	bash e2e/cluster/down.sh

# Benchmarks (release build): the gateway beside nginx and LiteLLM, 10,000 routes, time to roll back.
bench:
	bash e2e/bench/run.sh
