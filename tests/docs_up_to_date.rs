//! The docs that are derived from the code must follow it: the API reference is exactly what
//! the CRDs generate, and the troubleshooting guide has a section for every condition reason
//! the controller can write, and none for a reason it cannot. Links between the docs resolve,
//! anchors included.

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

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors a Markdown file offers: its headings (a repeated one gets `-1`, `-2`, …, as on
/// GitHub) and explicit `<a id="…">`s. Headings inside code blocks do not count.
fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut fenced = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        if line.starts_with('#') {
            let base = slug(line.trim_start_matches('#'));
            let mut a = base.clone();
            let mut n = 0;
            while found.contains(&a) {
                n += 1;
                a = format!("{base}-{n}");
            }
            found.insert(a);
        }
        for part in line.split("<a id=\"").skip(1) {
            if let Some(end) = part.find('"') {
                found.insert(part[..end].to_owned());
            }
        }
    }
    found
}

/// The text outside code blocks and code spans, where links are links.
fn prose(markdown: &str) -> String {
    let mut out = String::new();
    let mut fenced = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            out.extend(line.split('`').step_by(2));
            out.push('\n');
        }
    }
    out
}

#[test]
fn links_between_the_docs_resolve() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![
        root.join("README.md"),
        root.join("charts/switchyard/README.md"),
    ];
    for entry in std::fs::read_dir(root.join("docs")).expect("docs/ exists") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            files.push(path);
        }
    }
    let mut broken = vec![];
    for file in &files {
        let text = prose(&std::fs::read_to_string(file).unwrap());
        for link in text.split("](").skip(1).filter_map(|s| s.split(')').next()) {
            if link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            let (path, anchor) = link.split_once('#').unwrap_or((link, ""));
            let target = if path.is_empty() {
                file.clone()
            } else {
                file.parent().unwrap().join(path)
            };
            let Ok(target_text) = std::fs::read_to_string(&target) else {
                if !target.is_dir() {
                    broken.push(format!("{}: {link} (no such file)", file.display()));
                }
                continue;
            };
            if !anchor.is_empty() && !anchors(&target_text).contains(anchor) {
                broken.push(format!("{}: {link} (no such anchor)", file.display()));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn anchors_are_found_as_github_makes_them() {
    let md = "# Install\n## Grafana dashboard\n### `Ready`\n```\n# not a heading\n```\n## Grafana dashboard\n<a id=\"x-y\"></a>\n## 4. Canary: 5 → 20\n";
    let a = anchors(md);
    for want in [
        "install",
        "grafana-dashboard",
        "grafana-dashboard-1",
        "ready",
        "x-y",
        "4-canary-5--20",
    ] {
        assert!(a.contains(want), "{want} not in {a:?}");
    }
    assert!(!a.contains("not-a-heading"));
}
