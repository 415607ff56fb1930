//! The docs that are derived from the code must follow it: the API reference is exactly what
//! the CRDs generate.

use std::path::Path;

use switchyard::api::reference;

fn read(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn api_reference_matches_the_crds() {
    let generated = reference::markdown(&switchyard::api::crds());
    let on_disk = read("docs/api-reference.md");
    if on_disk != generated {
        let line = on_disk
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| on_disk.lines().count().min(generated.lines().count()))
            + 1;
        panic!(
            "docs/api-reference.md differs from what the CRDs generate (first at line {line}); run `{}`",
            reference::REGENERATE
        );
    }
}
