// Command kstatus reads Kubernetes objects as JSON on stdin (one object, a JSON array, a
// `kind: List`, or several objects one after another) and prints, per object, one JSON line
// with what sigs.k8s.io/cli-utils' kstatus computes: the status (Current, InProgress,
// Failed, Terminating, ...) and its message. The end-to-end suite uses it to check that
// Switchyard's conditions mean to kstatus exactly what they say.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type result struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Status    string `json:"status"`
	Message   string `json:"message"`
	// Reason of the condition kstatus based a Failed or InProgress verdict on, if any.
	Reason string `json:"reason,omitempty"`
	Error  string `json:"error,omitempty"`
}

func main() {
	dec := json.NewDecoder(os.Stdin)
	out := json.NewEncoder(os.Stdout)
	for {
		var doc json.RawMessage
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return
		}
		var raw any
		if err == nil {
			// Integers stay int64, as unstructured objects from the API server have them.
			err = utiljson.Unmarshal(doc, &raw)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "kstatus: reading stdin:", err)
			os.Exit(2)
		}
		for _, obj := range objects(raw) {
			u := &unstructured.Unstructured{Object: obj}
			r := result{Kind: u.GetKind(), Namespace: u.GetNamespace(), Name: u.GetName()}
			res, err := status.Compute(u)
			if err != nil {
				r.Error = err.Error()
			} else {
				r.Status, r.Message = res.Status.String(), res.Message
				for _, c := range res.Conditions {
					if c.Status == "True" {
						r.Reason = c.Reason
					}
				}
			}
			if err := out.Encode(r); err != nil {
				os.Exit(2)
			}
		}
	}
}

// objects flattens a JSON array or a `kind: List` into its objects.
func objects(raw any) []map[string]any {
	switch v := raw.(type) {
	case []any:
		var all []map[string]any
		for _, item := range v {
			all = append(all, objects(item)...)
		}
		return all
	case map[string]any:
		if items, ok := v["items"].([]any); ok {
			return objects(items)
		}
		return []map[string]any{v}
	}
	return nil
}
