// Command argocd-lua runs Switchyard's Argo CD resource customizations (argocd/) the way
// Argo CD runs them, so the end-to-end suite can judge live objects with them:
//
//	argocd-lua configmap DIR      prints the argocd-cm ConfigMap that carries DIR's scripts
//	argocd-lua health DIR         objects on stdin: one JSON line each, {kind, namespace, name, status, message}
//	argocd-lua actions DIR        objects on stdin: one JSON line each, the actions discovery offers, by name
//	argocd-lua run DIR ACTION     one object on stdin: {impacted, patch}, the merge patch Argo CD would send
//
// DIR is laid out as Argo CD's own resource_customizations: <group>/<Kind>/health.lua,
// <group>/<Kind>/actions/discovery.lua and <group>/<Kind>/actions/<name>/action.lua. The
// scripts are not run from those files but from the ConfigMap rendered from them and read
// back as Argo CD reads argocd-cm, so what is tested is what users paste.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	jsonpatch "github.com/evanphx/json-patch"
	"sigs.k8s.io/yaml"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "argocd-lua:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) < 2 {
		return errors.New("usage: argocd-lua configmap|health|actions DIR, or argocd-lua run DIR ACTION")
	}
	cmd, dir := args[0], args[1]
	cm, err := renderConfigMap(dir)
	if err != nil {
		return err
	}
	if cmd == "configmap" {
		_, err := io.WriteString(os.Stdout, cm)
		return err
	}
	overrides, err := readOverrides(cm)
	if err != nil {
		return fmt.Errorf("reading the rendered ConfigMap back as Argo CD does: %w", err)
	}
	objs, err := readObjects(os.Stdin)
	if err != nil {
		return err
	}
	out := json.NewEncoder(os.Stdout)
	out.SetEscapeHTML(false)
	switch cmd {
	case "health":
		for _, obj := range objs {
			o := overrides[configMapKey(obj)]
			r := map[string]any{"kind": obj["kind"], "namespace": field(obj, "namespace"), "name": field(obj, "name")}
			if o.HealthLua == "" {
				return fmt.Errorf("no health check for %s", configMapKey(obj))
			}
			hs := resourceHealth(obj, o.HealthLua, o.UseOpenLibs)
			r["status"], r["message"] = hs.Status, hs.Message
			if err := out.Encode(r); err != nil {
				return err
			}
		}
	case "actions":
		for _, obj := range objs {
			actions, err := discover(overrides[configMapKey(obj)], obj)
			if err != nil {
				return err
			}
			if err := out.Encode(actions); err != nil {
				return err
			}
		}
	case "run":
		if len(args) != 3 || len(objs) != 1 {
			return errors.New("usage: argocd-lua run DIR ACTION, with one object on stdin")
		}
		result, err := runAction(overrides[configMapKey(objs[0])], objs[0], args[2])
		if err != nil {
			return err
		}
		return out.Encode(result)
	default:
		return fmt.Errorf("unknown command %q", cmd)
	}
	return nil
}

// override is the part of Argo CD's ResourceOverride that scripts come from.
type override struct {
	HealthLua   string
	UseOpenLibs bool
	Actions     string
}

// resourceActions is appv1.ResourceActions, the YAML in resource.customizations.actions.*.
type resourceActions struct {
	ActionDiscoveryLua string `json:"discovery.lua,omitempty"`
	Definitions        []struct {
		Name      string `json:"name"`
		ActionLua string `json:"action.lua"`
	} `json:"definitions,omitempty"`
	MergeBuiltinActions bool `json:"mergeBuiltinActions,omitempty"`
}

func discover(o override, obj map[string]any) (map[string]resourceAction, error) {
	if o.Actions == "" {
		return nil, fmt.Errorf("no actions for %s", configMapKey(obj))
	}
	var ra resourceActions
	if err := yaml.Unmarshal([]byte(o.Actions), &ra); err != nil {
		return nil, err
	}
	if ra.ActionDiscoveryLua == "" {
		return nil, errors.New("no action discovery script provided")
	}
	actions, err := executeResourceActionDiscovery(obj, ra.ActionDiscoveryLua, o.UseOpenLibs)
	if err != nil {
		return nil, err
	}
	byName := map[string]resourceAction{}
	for _, a := range actions {
		byName[a.Name] = a
	}
	return byName, nil
}

type actionResult struct {
	Impacted []impactedResource `json:"impacted"`
	// The JSON merge patch Argo CD's server sends for the object the action patches
	// (server/application.go patchResource), null when the action changes nothing.
	Patch json.RawMessage `json:"patch"`
}

func runAction(o override, obj map[string]any, name string) (*actionResult, error) {
	var ra resourceActions
	if err := yaml.Unmarshal([]byte(o.Actions), &ra); err != nil {
		return nil, err
	}
	script := ""
	for _, d := range ra.Definitions {
		if d.Name == name {
			script = d.ActionLua
		}
	}
	if script == "" {
		return nil, fmt.Errorf("no action %q for %s", name, configMapKey(obj))
	}
	// Serialised before the script runs: Argo CD diffs against the live object as fetched.
	live, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	impacted, err := executeResourceAction(obj, script, o.UseOpenLibs)
	if err != nil {
		return nil, err
	}
	result := &actionResult{Impacted: impacted, Patch: json.RawMessage("null")}
	for _, r := range impacted {
		if r.Operation != "patch" {
			continue
		}
		changed, err := json.Marshal(r.Resource)
		if err != nil {
			return nil, err
		}
		patch, err := jsonpatch.CreateMergePatch(live, changed)
		if err != nil {
			return nil, fmt.Errorf("error calculating merge patch: %w", err)
		}
		if string(patch) != "{}" {
			result.Patch = patch
		}
	}
	return result, nil
}

// configMapKey is lua.GetConfigMapKey: "group/Kind", or "Kind" for the core group.
func configMapKey(obj map[string]any) string {
	apiVersion, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	if group, _, ok := strings.Cut(apiVersion, "/"); ok {
		return group + "/" + kind
	}
	return kind
}

func field(obj map[string]any, name string) any {
	meta, _ := obj["metadata"].(map[string]any)
	return meta[name]
}

// readOverrides reads argocd-cm's resource.customizations.<type>.<group_kind> keys as Argo
// CD's settings manager does (appendResourceOverridesFromSplitKeys).
func readOverrides(configMap string) (map[string]override, error) {
	var cm struct {
		Data map[string]string `json:"data"`
	}
	if err := yaml.Unmarshal([]byte(configMap), &cm); err != nil {
		return nil, err
	}
	overrides := map[string]override{}
	for k, v := range cm.Data {
		parts := strings.SplitN(k, ".", 4)
		if !strings.HasPrefix(k, "resource.customizations") || len(parts) < 4 {
			continue
		}
		gk := strings.Split(parts[3], "_")
		if len(gk) != 2 {
			return nil, fmt.Errorf("group kind should be in format `resource.customizations.<type>.<group_kind>`, got %q", parts[3])
		}
		key := gk[0] + "/" + gk[1]
		o := overrides[key]
		switch parts[2] {
		case "health":
			o.HealthLua = v
		case "useOpenLibs":
			o.UseOpenLibs = v == "true"
		case "actions":
			o.Actions = v
		default:
			return nil, fmt.Errorf("resource customization type %s not supported here", parts[2])
		}
		overrides[key] = o
	}
	return overrides, nil
}

// renderConfigMap writes DIR's scripts into argocd-cm keys, each script a literal block, in
// a stable order so that the checked-in file can be compared with a fresh rendering.
func renderConfigMap(dir string) (string, error) {
	var b strings.Builder
	b.WriteString(`# Argo CD health checks and actions for Switchyard's resources. Generated by ` + "`make argocd`" + `
# from the Lua scripts in argocd/ (edit those, not this file). Add the keys to Argo CD's
# settings, e.g. kubectl -n argocd patch configmap argocd-cm --patch-file argocd/argocd-cm.yaml
# or under configs.cm in the argo-cd Helm chart's values.
apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-cm
  namespace: argocd
data:
`)
	kinds, err := filepath.Glob(filepath.Join(dir, "*", "*", "health.lua"))
	if err != nil {
		return "", err
	}
	if len(kinds) == 0 {
		return "", fmt.Errorf("no <group>/<Kind>/health.lua under %s", dir)
	}
	sort.Strings(kinds)
	for _, health := range kinds {
		kindDir := filepath.Dir(health)
		groupKind := filepath.Base(filepath.Dir(kindDir)) + "_" + filepath.Base(kindDir)
		actions, err := renderActions(filepath.Join(kindDir, "actions"))
		if err != nil {
			return "", err
		}
		if actions != "" {
			b.WriteString("  resource.customizations.actions." + groupKind + ": |\n")
			b.WriteString(indent(actions, 4))
		}
		script, err := os.ReadFile(health)
		if err != nil {
			return "", err
		}
		b.WriteString("  resource.customizations.health." + groupKind + ": |\n")
		b.WriteString(indent(string(script), 4))
	}
	return b.String(), nil
}

// renderActions is the YAML of appv1.ResourceActions for one kind, "" when it has none.
func renderActions(dir string) (string, error) {
	discovery, err := os.ReadFile(filepath.Join(dir, "discovery.lua"))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	scripts, err := filepath.Glob(filepath.Join(dir, "*", "action.lua"))
	if err != nil {
		return "", err
	}
	if len(scripts) == 0 {
		return "", fmt.Errorf("%s has a discovery.lua but no <action>/action.lua", dir)
	}
	// By action name: a plain sort of the paths would put promote-full/ before promote/.
	sort.Slice(scripts, func(i, j int) bool {
		return filepath.Base(filepath.Dir(scripts[i])) < filepath.Base(filepath.Dir(scripts[j]))
	})
	var b strings.Builder
	b.WriteString("discovery.lua: |\n" + indent(string(discovery), 2) + "definitions:\n")
	for _, s := range scripts {
		body, err := os.ReadFile(s)
		if err != nil {
			return "", err
		}
		b.WriteString("  - name: " + filepath.Base(filepath.Dir(s)) + "\n    action.lua: |\n" + indent(string(body), 6))
	}
	return b.String(), nil
}

// indent puts text in a YAML literal block at the given depth; empty lines stay empty.
func indent(text string, depth int) string {
	pad := strings.Repeat(" ", depth)
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		if strings.TrimSpace(line) != "" {
			b.WriteString(pad + line)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// readObjects reads one object, a JSON array, a `kind: List`, or several objects in a row.
func readObjects(r io.Reader) ([]map[string]any, error) {
	dec := json.NewDecoder(r)
	var all []map[string]any
	for {
		var raw any
		err := dec.Decode(&raw)
		if errors.Is(err, io.EOF) {
			return all, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading stdin: %w", err)
		}
		all = append(all, flatten(raw)...)
	}
}

func flatten(raw any) []map[string]any {
	switch v := raw.(type) {
	case []any:
		var all []map[string]any
		for _, item := range v {
			all = append(all, flatten(item)...)
		}
		return all
	case map[string]any:
		if items, ok := v["items"].([]any); ok {
			return flatten(items)
		}
		return []map[string]any{v}
	}
	return nil
}
