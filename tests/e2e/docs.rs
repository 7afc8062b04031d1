//! The repo documents itself, and stays current: every configuration key
//! and alias is in `docs/configuration.md` with its default, the README's
//! first screen gives the two set-up commands and where things are, and no
//! file points outside the repo.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn every_configuration_key_is_documented_with_its_default() {
    let doc = read("docs/configuration.md");
    for key in weir::KEYS {
        let row = doc
            .lines()
            .find(|l| l.starts_with(&format!("| `{}` |", key.name)))
            .unwrap_or_else(|| panic!("docs/configuration.md has no row for `{}`", key.name));
        assert!(
            row.contains(&format!("`{}`", key.default)),
            "docs/configuration.md: `{}` should show its default `{}`: {row}",
            key.name,
            key.default
        );
    }
    for (alias, _) in weir::ALIASES {
        assert!(
            doc.contains(&format!("`{alias}`")),
            "docs/configuration.md does not mention the alias `{alias}`"
        );
    }
}

#[test]
fn the_readme_opens_with_the_set_up_and_where_things_are() {
    let readme = read("README.md");
    let first: Vec<&str> = readme.lines().take(60).collect();
    let first = first.join("\n");
    for needle in ["scripts/wordcount", "scripts/test", "## Where things are"] {
        assert!(
            first.contains(needle),
            "the README's first screen lacks {needle:?}"
        );
    }
    for part in [
        "wit/",
        "guest-sdk/",
        "operators/",
        "host/src/runtime/",
        "docs/",
    ] {
        assert!(
            first.contains(part),
            "the where-things-are table lacks {part}"
        );
    }
    for page in ["architecture", "configuration", "rest", "benchmarks"] {
        assert!(
            repo().join(format!("docs/{page}.md")).is_file(),
            "docs/{page}.md"
        );
    }
}

/// Files tracked in the repo that a reader or a build could follow.
fn repo_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name != ".ci" || name == "target" || name == "fixtures" {
            continue;
        }
        if p.is_dir() {
            repo_files(&p, out);
        } else if ["rs", "md", "toml", "yaml", "wit", "sh", "txt"]
            .iter()
            .any(|x| name.ends_with(&format!(".{x}")))
            || p.parent()
                .and_then(Path::file_name)
                .is_some_and(|d| d == "scripts" || d == ".ci")
        {
            out.push(p);
        }
    }
}

#[test]
fn nothing_points_outside_the_repo() {
    let mut files = Vec::new();
    repo_files(&repo(), &mut files);
    // The team's shelf beside the repo, which users who clone Weir lack
    // (spelled in parts so that this file does not name it itself).
    let outside: Vec<String> = ["DESIGN", "NOTES", "STYLE", "components", "tools", "hooks"]
        .iter()
        .map(|n| format!("{}/{n}", "shared"))
        .collect();
    let pointing: Vec<String> = files
        .iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            outside.iter().any(|o| text.contains(o.as_str()))
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(
        pointing.is_empty(),
        "files that point outside the repo: {pointing:?}"
    );
}
