.PHONY: demo test crds down bench image install-plugin krew-manifest

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

# The OCI image from the release binary, without a container engine: target/image/layout,
# target/image/switchyard-VERSION.oci.tar and its SBOM (image/Dockerfile builds the same with Docker).
image:
	bash image/build.sh

# The kubectl plugin: `kubectl switchyard …` and its completion helper, installed into
# $(PREFIX)/bin (put it on PATH). PROFILE=dev installs the debug build instead.
PREFIX ?= $(HOME)/.local
PROFILE ?= release
PROFILE_DIR = $(if $(filter dev,$(PROFILE)),debug,$(PROFILE))
TARGET_DIR = $(or $(CARGO_TARGET_DIR),target)
install-plugin:
	cargo build --quiet --profile $(PROFILE)
	install -d $(PREFIX)/bin
	install -m 0755 $(TARGET_DIR)/$(PROFILE_DIR)/switchyard $(PREFIX)/bin/kubectl-switchyard
	ln -sfn kubectl-switchyard $(PREFIX)/bin/kubectl_complete-switchyard

# plugins/krew/switchyard.yaml from the release binary's archive (written to dist/).
krew-manifest:
	bash plugins/krew/package.sh
