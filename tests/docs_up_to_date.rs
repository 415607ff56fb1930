//! The docs that are derived from the code must follow it: the API reference is exactly what
//! the CRDs generate, and the troubleshooting guide has a section for every condition reason
//! the controller can write, and none for a reason it cannot.

use std::collections::BTreeSet;
use std::path::Path;

use switchyard::api::reason::Reason;
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

/// The reasons with a section (a heading that is just the reason in backquotes).
fn documented(markdown: &str) -> BTreeSet<String> {
    markdown
        .lines()
        .filter(|l| l.starts_with('#'))
        .filter_map(|l| {
            let title = l.trim_start_matches('#').trim();
            title
                .strip_prefix('`')?
                .strip_suffix('`')
                .map(str::to_owned)
        })
        .collect()
}

#[test]
fn troubleshooting_has_a_section_for_every_condition_reason() {
    let sections = documented(&read("docs/troubleshooting.md"));
    let reasons: BTreeSet<String> = Reason::ALL.iter().map(|r| r.as_str().to_owned()).collect();
    let missing: Vec<_> = reasons.difference(&sections).collect();
    assert!(
        missing.is_empty(),
        "docs/troubleshooting.md has no section (### `Reason`) for {missing:?}: say what each means and how to fix it"
    );
    let stale: Vec<_> = sections.difference(&reasons).collect();
    assert!(
        stale.is_empty(),
        "docs/troubleshooting.md has sections for {stale:?}, which no condition can carry (see src/api/reason.rs)"
    );
}

#[test]
fn sections_are_found_by_their_heading_only() {
    let md = "# Title\n### `Ready`\ntext with `SecretNotFound`\n## `Holding`\n### `Foo` bar\n";
    assert_eq!(
        documented(md),
        BTreeSet::from(["Ready".to_owned(), "Holding".to_owned()])
    );
}
