module switchyard.dev/e2e/argocd-lua

go 1.24.0

// The versions Argo CD v3.5.1 builds with (its go.mod): the Lua VM, the JSON bridge between
// Lua tables and Go values, the merge patch of an action's result, and the YAML reader of
// argocd-cm.
require (
	github.com/evanphx/json-patch v5.9.11+incompatible
	github.com/yuin/gopher-lua v1.1.2
	layeh.com/gopher-json v0.0.0-20190114024228-97fed8db8427
	sigs.k8s.io/yaml v1.6.0
)

require go.yaml.in/yaml/v2 v2.4.2 // indirect
