//! The CRDs checked into `crds/` must be exactly what the Rust types generate, so the YAML
//! users and Helm install never drifts from what the controller and gateway expect.

use std::path::Path;

#[test]
fn checked_in_crds_match_the_types() {
    check_dir("crds");
}

#[test]
fn helm_chart_crds_match_the_types() {
    check_dir("charts/switchyard/crds");
}

fn check_dir(rel: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    let generated = switchyard::api::crd_files().expect("CRDs serialize");
    for (name, yaml) in &generated {
        let on_disk = std::fs::read_to_string(dir.join(name))
            .unwrap_or_else(|e| panic!("{rel}/{name}: {e}; run `make crds`"));
        assert!(
            on_disk == *yaml,
            "{rel}/{name} differs from what the types generate; run `make crds`"
        );
    }
    let mut on_disk: Vec<_> = std::fs::read_dir(&dir)
        .expect("crds/ exists")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut expected: Vec<_> = generated.into_iter().map(|(n, _)| n).collect();
    expected.sort();
    assert_eq!(on_disk, expected, "{rel} holds files no type generates");
}

#[test]
fn every_schema_property_has_a_description() {
    fn walk(path: &str, schema: &serde_json::Value, missing: &mut Vec<String>) {
        if let Some(props) = schema.get("properties").and_then(|p| p.as_object()) {
            for (name, sub) in props {
                let p = format!("{path}.{name}");
                // metadata's schema belongs to Kubernetes; apiVersion and kind are standard.
                if !["apiVersion", "kind", "metadata"].contains(&name.as_str())
                    && sub.get("description").is_none()
                {
                    missing.push(p.clone());
                }
                walk(&p, sub, missing);
            }
        }
        if let Some(items) = schema.get("items") {
            walk(&format!("{path}[]"), items, missing);
        }
        if let Some(extra) = schema.get("additionalProperties").filter(|v| v.is_object()) {
            walk(&format!("{path}{{}}"), extra, missing);
        }
    }
    let mut missing = vec![];
    for crd in switchyard::api::crds() {
        let v = serde_json::to_value(&crd).unwrap();
        let schema = &v["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        walk(crd.metadata.name.as_deref().unwrap(), schema, &mut missing);
    }
    assert!(
        missing.is_empty(),
        "fields without a description: {missing:#?}"
    );
}
