// How Argo CD v3.5.1 runs a resource customization's Lua (util/lua/lua.go, and the deletion
// rule of gitops-engine's health.GetResourceHealth), reduced to what a script can observe:
// the libraries opened, how `obj` and `actionParams` are injected, the one-second limit, and
// how the value a script returns becomes a health status, a list of actions or the objects
// an action changes. Anything that differs from Argo CD here would let a script pass this
// suite and fail in Argo CD, so the code follows the original line by line.

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	lua "github.com/yuin/gopher-lua"
	luajson "layeh.com/gopher-json"
)

// Health statuses Argo CD accepts from a script (gitops-engine pkg/health).
var validHealth = map[string]bool{
	"Unknown": true, "Progressing": true, "Suspended": true, "Healthy": true, "Degraded": true, "Missing": true,
}

// hookFinalizer marks Argo CD's own hooks, whose health is assessed even while deleting.
const hookFinalizer = "argocd.argoproj.io/hook-finalizer"

type healthStatus struct {
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
}

// resourceAction is one entry of what a discovery script returns (appv1.ResourceAction).
type resourceAction struct {
	Name        string `json:"name,omitempty"`
	Params      []any  `json:"params,omitempty"`
	Disabled    bool   `json:"disabled,omitempty"`
	IconClass   string `json:"iconClass,omitempty"`
	DisplayName string `json:"displayName,omitempty"`
}

// impactedResource is one object an action returns, and what Argo CD does with it.
type impactedResource struct {
	Resource  map[string]any `json:"resource"`
	Operation string         `json:"operation"`
}

// runLua is VM.runLuaWithResourceActionParameters: a state without the standard libraries
// (argocd-cm customizations run with `useOpenLibs` false unless the ConfigMap says otherwise),
// then package, base, table and the safe os, `os` also loadable with require.
func runLua(obj map[string]any, script string, useOpenLibs bool) (*lua.LState, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: !useOpenLibs})
	defer l.Close()
	for _, pair := range []struct {
		n string
		f lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.OsLibName, OpenSafeOs},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(pair.f), NRet: 0, Protect: true}, lua.LString(pair.n)); err != nil {
			panic(err)
		}
	}
	l.PreloadModule(lua.OsLibName, SafeOsLoader)

	ctx, cancel := context.WithTimeout(context.Background(), 1*time.Second)
	defer cancel()
	l.SetContext(ctx)

	// Actions here take no parameters; Argo CD sets the table all the same.
	l.SetGlobal("actionParams", l.CreateTable(0, 0))
	l.SetGlobal("obj", decodeValue(l, obj))
	err := l.DoString(script)
	var apiErr *lua.ApiError
	if errors.As(err, &apiErr) && apiErr.Type == lua.ApiErrorRun {
		apiErr.StackTrace = ""
		err = apiErr
	}
	return l, err
}

// resourceHealth is gitops-engine's GetResourceHealth with a Lua override: an object being
// deleted is "Pending deletion" whatever its script says; a failing script is Unknown.
func resourceHealth(obj map[string]any, script string, useOpenLibs bool) healthStatus {
	meta, _ := obj["metadata"].(map[string]any)
	if meta["deletionTimestamp"] != nil && !hasFinalizer(meta, hookFinalizer) {
		return healthStatus{Status: "Progressing", Message: "Pending deletion"}
	}
	hs, err := executeHealthLua(obj, script, useOpenLibs)
	if err != nil {
		return healthStatus{Status: "Unknown", Message: err.Error()}
	}
	return hs
}

func hasFinalizer(meta map[string]any, name string) bool {
	finalizers, _ := meta["finalizers"].([]any)
	for _, f := range finalizers {
		if f == name {
			return true
		}
	}
	return false
}

// executeHealthLua is VM.ExecuteHealthLua.
func executeHealthLua(obj map[string]any, script string, useOpenLibs bool) (healthStatus, error) {
	l, err := runLua(obj, script, useOpenLibs)
	if err != nil {
		return healthStatus{}, err
	}
	returnValue := l.Get(-1)
	switch returnValue.Type() {
	case lua.LTTable:
		jsonBytes, err := luajson.Encode(returnValue)
		if err != nil {
			return healthStatus{}, err
		}
		var hs healthStatus
		if err := json.Unmarshal(jsonBytes, &hs); err != nil {
			// An empty table encodes as [], which Argo CD reads as no health at all.
			var typeError *json.UnmarshalTypeError
			if errors.As(err, &typeError) {
				return healthStatus{}, nil
			}
			return healthStatus{}, err
		}
		if !validHealth[hs.Status] {
			return healthStatus{Status: "Unknown", Message: "Lua returned an invalid health status"}, nil
		}
		return hs, nil
	case lua.LTNil:
		return healthStatus{}, nil
	}
	return healthStatus{}, fmt.Errorf("expect table output from Lua script, not %s", returnValue.Type())
}

// executeResourceActionDiscovery is VM.ExecuteResourceActionDiscovery for one script.
func executeResourceActionDiscovery(obj map[string]any, script string, useOpenLibs bool) ([]resourceAction, error) {
	l, err := runLua(obj, script, useOpenLibs)
	if err != nil {
		return nil, err
	}
	returnValue := l.Get(-1)
	if returnValue.Type() != lua.LTTable {
		return nil, fmt.Errorf("expect table output from Lua script, not %s", returnValue.Type())
	}
	jsonBytes, err := luajson.Encode(returnValue)
	if err != nil {
		return nil, fmt.Errorf("error in converting to lua table: %w", err)
	}
	if string(jsonBytes) == "[]" {
		return nil, nil
	}
	actionsMap := map[string]any{}
	if err := json.Unmarshal(jsonBytes, &actionsMap); err != nil {
		return nil, fmt.Errorf("error unmarshaling action table: %w", err)
	}
	var available []resourceAction
	for key, value := range actionsMap {
		action := resourceAction{Name: key, Disabled: isActionDisabled(value)}
		// An action given as an empty table is enabled, with nothing more to say.
		if _, empty := value.([]any); !empty {
			b, err := json.Marshal(value)
			if err != nil {
				return nil, fmt.Errorf("error marshaling resource action: %w", err)
			}
			if err := json.Unmarshal(b, &action); err != nil {
				return nil, fmt.Errorf("error unmarshaling resource action: %w", err)
			}
		}
		available = append(available, action)
	}
	return available, nil
}

func isActionDisabled(value any) bool {
	fields, ok := value.(map[string]any)
	if !ok {
		return false
	}
	disabled, ok := fields["disabled"].(bool)
	return ok && disabled
}

// executeResourceAction is VM.ExecuteResourceAction: a script returns either the modified
// object (patched by Argo CD) or a list of {operation, resource}.
func executeResourceAction(obj map[string]any, script string, useOpenLibs bool) ([]impactedResource, error) {
	l, err := runLua(obj, script, useOpenLibs)
	if err != nil {
		return nil, err
	}
	returnValue := l.Get(-1)
	if returnValue.Type() != lua.LTTable {
		return nil, fmt.Errorf("expect table output from Lua script, not %s", returnValue.Type())
	}
	jsonBytes, err := luajson.Encode(returnValue)
	if err != nil {
		return nil, err
	}
	s := string(jsonBytes)
	if len(s) < 2 {
		return nil, errors.New("Lua output was not a valid json object or array")
	}
	var impacted []impactedResource
	if s[0] == '[' && s[len(s)-1] == ']' {
		if err := json.Unmarshal(jsonBytes, &impacted); err != nil {
			return nil, err
		}
		for _, r := range impacted {
			if r.Operation != "create" && r.Operation != "patch" {
				return nil, fmt.Errorf("unsupported operation: %q", r.Operation)
			}
		}
	} else {
		var newObj map[string]any
		if err := json.Unmarshal(jsonBytes, &newObj); err != nil {
			return nil, err
		}
		impacted = []impactedResource{{Resource: newObj, Operation: "patch"}}
	}
	for i := range impacted {
		if impacted[i].Operation == "patch" {
			impacted[i].Resource = cleanReturnedObj(impacted[i].Resource, obj)
		}
	}
	return impacted, nil
}

// cleanReturnedObj undoes what the JSON round trip through Lua does to empty objects: Lua
// cannot tell an empty table from an empty array, so `{}` comes back as `[]`.
func cleanReturnedObj(newObj, obj map[string]any) map[string]any {
	mapToReturn := newObj
	for key := range obj {
		newValueInterface, ok := newObj[key]
		if !ok {
			continue
		}
		oldValueInterface := obj[key]
		switch newValue := newValueInterface.(type) {
		case map[string]any:
			if oldValue, ok := oldValueInterface.(map[string]any); ok {
				mapToReturn[key] = cleanReturnedObj(newValue, oldValue)
			}
		case []any:
			switch oldValue := oldValueInterface.(type) {
			case map[string]any:
				if len(newValue) == 0 {
					mapToReturn[key] = map[string]any{}
				}
			case []any:
				mapToReturn[key] = cleanReturnedArray(newValue, oldValue)
			}
		}
	}
	return mapToReturn
}

func cleanReturnedArray(newObj, obj []any) []any {
	arrayToReturn := newObj
	for i := range newObj {
		if i >= len(obj) {
			break
		}
		switch newValue := newObj[i].(type) {
		case map[string]any:
			if oldValue, ok := obj[i].(map[string]any); ok {
				arrayToReturn[i] = cleanReturnedObj(newValue, oldValue)
			}
		case []any:
			if oldValue, ok := obj[i].([]any); ok {
				arrayToReturn[i] = cleanReturnedArray(newValue, oldValue)
			}
		}
	}
	return arrayToReturn
}

// decodeValue turns the object into Lua values as Argo CD does: every number (int64 in
// Argo CD's live objects, float64 here) becomes a Lua number.
func decodeValue(l *lua.LState, value any) lua.LValue {
	switch converted := value.(type) {
	case bool:
		return lua.LBool(converted)
	case float64:
		return lua.LNumber(converted)
	case string:
		return lua.LString(converted)
	case json.Number:
		return lua.LString(converted)
	case int:
		return lua.LNumber(converted)
	case int32:
		return lua.LNumber(converted)
	case int64:
		return lua.LNumber(converted)
	case []any:
		arr := l.CreateTable(len(converted), 0)
		for _, item := range converted {
			arr.Append(decodeValue(l, item))
		}
		return arr
	case map[string]any:
		tbl := l.CreateTable(0, len(converted))
		for key, item := range converted {
			tbl.RawSetH(lua.LString(key), decodeValue(l, item))
		}
		return tbl
	}
	return lua.LNil
}
