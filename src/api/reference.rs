//! `docs/api-reference.md`: every field of every served version, with its type, whether it is
//! required and its description, generated from the CRDs' OpenAPI schemas (themselves
//! generated from the types' doc comments), so the reference says what the API server
//! enforces and cannot drift from it.

use std::fmt::Write;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

/// The command that regenerates the reference (and the CRDs it is read from).
pub const REGENERATE: &str = "make crds";

/// The whole reference, for the CRDs given in order.
pub fn markdown(crds: &[CustomResourceDefinition]) -> String {
    let mut out = String::new();
    out.push_str("# API reference\n\n");
    let _ = writeln!(
        out,
        "<!-- Generated from the CustomResourceDefinitions by `switchyard crds --api-reference`; do not edit. Run `{REGENERATE}` after changing the types in src/api/. -->\n"
    );
    out.push_str(
        "Every field of every Switchyard resource: its type, whether it is required, and what it \
         does. Defaults are filled in by the API server; the rules under *Admission* are checked \
         by it (CEL), so an object that breaks one is refused with that message. Status fields \
         are written by the controller only.\n\n",
    );
    for crd in crds {
        for version in crd.spec.versions.iter().filter(|v| v.served) {
            let _ = writeln!(
                out,
                "- [{} (`{}/{}`)](#{})",
                crd.spec.names.kind,
                crd.spec.group,
                version.name,
                anchor(&crd.spec.names.kind, &version.name, "")
            );
        }
    }
    out.push('\n');
    for crd in crds {
        for version in crd.spec.versions.iter().filter(|v| v.served) {
            let Some(schema) = version
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref())
            else {
                continue;
            };
            let schema = serde_json::to_value(schema).expect("a schema serializes to JSON");
            kind_section(&mut out, crd, &version.name, &schema);
        }
    }
    out
}

fn kind_section(out: &mut String, crd: &CustomResourceDefinition, version: &str, schema: &Value) {
    let names = &crd.spec.names;
    let kind = &names.kind;
    let _ = writeln!(
        out,
        "<a id=\"{}\"></a>\n## {kind} (`{}/{version}`)\n",
        anchor(kind, version, ""),
        crd.spec.group
    );
    if let Some(d) = schema.get("description").and_then(Value::as_str) {
        let _ = writeln!(out, "{d}\n");
    }
    let short = names
        .short_names
        .as_ref()
        .filter(|s| !s.is_empty())
        .map(|s| format!(", short name `{}`", s.join("`, `")))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "{} resource `{}`{short}.\n",
        crd.spec.scope, names.plural
    );
    let mut sections = vec![];
    collect(kind, version, "", schema, &mut sections);
    for section in sections {
        out.push_str(&section);
    }
}

/// Appends a section for the object at `path` and, after it, one for each object below it.
fn collect(kind: &str, version: &str, path: &str, schema: &Value, sections: &mut Vec<String>) {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut s = String::new();
    // The top level sits under the kind's own heading, which says what the kind is.
    if !path.is_empty() {
        let _ = writeln!(
            s,
            "<a id=\"{}\"></a>\n### {kind} `{path}`\n",
            anchor(kind, version, path)
        );
        if let Some(d) = schema.get("description").and_then(Value::as_str) {
            let _ = writeln!(s, "{d}\n");
        }
    }
    let rules = validations(schema);
    if !rules.is_empty() {
        s.push_str("Admission:\n\n");
        for r in rules {
            let _ = writeln!(s, "- {r}");
        }
        s.push('\n');
    }
    s.push_str("| field | type | required | description |\n|---|---|---|---|\n");
    let mut below = vec![];
    for (name, prop) in props {
        // Kubernetes' own object metadata; apiVersion and kind are the standard header.
        let (type_, child) = if path.is_empty() && name == "metadata" {
            ("[ObjectMeta](https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/object-meta/#ObjectMeta)".to_owned(), None)
        } else {
            type_of(kind, version, &format!("{path}.{name}"), prop)
        };
        let _ = writeln!(
            s,
            "| `{name}` | {type_} | {} | {} |",
            if required.contains(&name.as_str()) {
                "yes"
            } else {
                "no"
            },
            // An object field's own rules are listed in its section; an array's stay here.
            cell(&describe(
                prop,
                child.as_ref().is_none_or(|(_, c)| !std::ptr::eq(*c, prop))
            ))
        );
        if let Some((child_path, child_schema)) = child {
            below.push((child_path, child_schema));
        }
    }
    s.push('\n');
    sections.push(s);
    for (child_path, child_schema) in below {
        collect(kind, version, &child_path, child_schema, sections);
    }
}

/// The type shown for a field, and the object (path, schema) that gets its own section.
fn type_of<'a>(
    kind: &str,
    version: &str,
    path: &str,
    prop: &'a Value,
) -> (String, Option<(String, &'a Value)>) {
    if prop.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        return ("integer or string".into(), None);
    }
    match prop.get("type").and_then(Value::as_str) {
        Some("array") => {
            let items = prop.get("items").unwrap_or(&Value::Null);
            let (inner, child) = type_of(kind, version, &format!("{path}[]"), items);
            (format!("array of {inner}"), child)
        }
        Some("object") if prop.get("properties").is_some() => (
            format!("[object](#{})", anchor(kind, version, path)),
            Some((path.to_owned(), prop)),
        ),
        Some("object") => match prop.get("additionalProperties") {
            Some(extra) if extra.is_object() => {
                let (inner, child) = type_of(kind, version, &format!("{path}{{}}"), extra);
                (format!("map of {inner}"), child)
            }
            _ => ("object".into(), None),
        },
        Some("integer") => match prop.get("format").and_then(Value::as_str) {
            Some(f) => (format!("integer ({f})"), None),
            None => ("integer".into(), None),
        },
        Some("string") => match prop.get("format").and_then(Value::as_str) {
            Some(f) => (format!("string ({f})"), None),
            None => ("string".into(), None),
        },
        Some(t) => (t.to_owned(), None),
        None => ("any".into(), None),
    }
}

/// A field's description followed by what the schema says of its values; `rules` adds its
/// admission rules (an object with a section of its own lists them there).
fn describe(prop: &Value, rules: bool) -> String {
    let mut parts: Vec<String> = vec![];
    if let Some(d) = prop.get("description").and_then(Value::as_str) {
        parts.push(d.to_owned());
    }
    let values = prop.get("items").filter(|_| prop["type"] == "array");
    let scalar = values.unwrap_or(prop);
    if let Some(e) = scalar.get("enum").and_then(Value::as_array) {
        let e: Vec<String> = e.iter().map(|v| format!("`{}`", plain(v))).collect();
        parts.push(format!("One of {}.", e.join(", ")));
    }
    if let Some(d) = prop.get("default") {
        parts.push(format!("Default `{}`.", plain(d)));
    }
    let mut limits = vec![];
    for (key, what) in [
        ("minimum", "minimum"),
        ("maximum", "maximum"),
        ("minLength", "min length"),
        ("maxLength", "max length"),
        ("minItems", "min items"),
        ("maxItems", "max items"),
    ] {
        if let Some(v) = prop.get(key) {
            limits.push(format!("{what} {}", plain(v)));
        }
    }
    if let Some(p) = prop.get("pattern").and_then(Value::as_str) {
        limits.push(format!("pattern `{p}`"));
    }
    if !limits.is_empty() {
        parts.push(format!("Limits: {}.", limits.join(", ")));
    }
    let checks = validations(prop);
    if rules && !checks.is_empty() {
        parts.push(format!("Admission: {}.", checks.join("; ")));
    }
    parts.join(" ")
}

/// The messages of the field's CEL rules (the rule itself when it has no message).
fn validations(prop: &Value) -> Vec<String> {
    prop.get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .map(|rules| {
            rules
                .iter()
                .map(|r| {
                    r.get("message")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .unwrap_or_else(|| format!("`{}`", plain(&r["rule"])))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A JSON value as written in YAML: strings without quotes, whole numbers without a
/// fraction, the rest as JSON.
fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

/// Text safe inside a Markdown table cell: pipes escaped, paragraphs on one line.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
        .replace("\n\n", "<br><br>")
        .replace('\n', " ")
}

/// An HTML anchor that is unique across kinds and versions.
fn anchor(kind: &str, version: &str, path: &str) -> String {
    let mut a = format!("{}-{version}", kind.to_lowercase());
    let tail: String = path
        .chars()
        .map(|c| match c {
            '.' => '-',
            '[' | ']' | '{' | '}' => '_',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    a.push_str(&tail);
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference() -> String {
        markdown(&crate::api::crds())
    }

    #[test]
    fn every_kind_and_nested_object_has_a_section_with_each_field() {
        let md = reference();
        for heading in [
            "## InferenceBackend (`switchyard.dev/v1alpha1`)",
            "## ModelRoute (`switchyard.dev/v1alpha1`)",
            "## Tenant (`switchyard.dev/v1alpha1`)",
            "### ModelRoute `.spec.rollout.analysis.metrics[]`",
            "### InferenceBackend `.spec.external.credentials.secretRef`",
            "### Tenant `.spec.routes.selector`",
        ] {
            assert!(md.contains(heading), "no {heading:?}");
        }
        // A required field, its type and description, defaults and admission rules.
        assert!(
            md.contains("| `weight` | integer (int32) | yes | Relative share of traffic"),
            "{md}"
        );
        assert!(md.contains("| `steps` | array of integer (int32) | no |"));
        assert!(md.contains("at least one backend needs a positive weight"));
        assert!(md.contains("Default `[5,20,50,100]`."));
        assert!(md.contains("One of `Hold`, `Rollback`."));
        assert!(md.contains("the last step must be 100"));
        assert!(md.contains(
            "| `matchLabels` | map of string | yes | Label keys and values a ModelRoute must all carry. |"
        ));
    }

    #[test]
    fn every_link_points_at_an_anchor() {
        let md = reference();
        let anchors: std::collections::HashSet<&str> = md
            .split("<a id=\"")
            .skip(1)
            .map(|s| &s[..s.find('"').unwrap()])
            .collect();
        let links: Vec<&str> = md
            .split("](#")
            .skip(1)
            .map(|s| &s[..s.find(')').unwrap()])
            .collect();
        assert!(links.len() > 20);
        for l in links {
            assert!(anchors.contains(l), "link to missing anchor #{l}");
        }
    }
}
