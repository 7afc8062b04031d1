//! The folders a request may name paths under: source and sink files,
//! checkpoints, savepoints. A requested path is resolved through a
//! `cap-std` handle on its root, so neither `..` nor a symbolic link can
//! lead outside it; and errors name paths relative to a root, never the
//! host's own paths.

use std::path::{Component, Path, PathBuf};

use cap_std::ambient_authority;
use cap_std::fs::Dir;

use crate::config::{ObjectUri, parse_location};

/// One root folder and a capability handle on it.
#[derive(Debug)]
pub struct Root {
    /// What the root is called in messages (`files`, `checkpoints`, ...).
    pub name: &'static str,
    /// Its canonical host path.
    pub path: PathBuf,
    dir: Dir,
}

impl Root {
    /// Opens root `name` at `path`, creating the folder if needed.
    pub fn open(name: &'static str, path: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(path).map_err(|e| {
            anyhow::anyhow!("cannot create the {name} root {}: {e}", path.display())
        })?;
        let path = path.canonicalize()?;
        let dir = Dir::open_ambient_dir(&path, ambient_authority())?;
        Ok(Root { name, path, dir })
    }

    /// Resolves `requested` (relative to the root, or absolute and inside
    /// it) to a host path inside the root. The part that exists is resolved
    /// by cap-std, which refuses any step outside the root; the part that
    /// does not exist yet must be plain names. The error says why, naming
    /// only `requested` and the root's name.
    pub fn resolve(&self, requested: &str) -> Result<PathBuf, String> {
        let outside = || format!("{requested:?} lies outside the {} root", self.name);
        if requested.is_empty() || requested.contains('\0') {
            return Err(format!("{requested:?} is not a path"));
        }
        let p = Path::new(requested);
        let relative = if p.is_absolute() {
            // Only a translation into the root's frame: cap-std below
            // decides whether the rest stays inside.
            p.strip_prefix(&self.path).map_err(|_| outside())?
        } else {
            p
        };
        let parts: Vec<Component> = relative.components().collect();
        let mut exists = parts.len();
        loop {
            let prefix: PathBuf = if exists == 0 {
                PathBuf::from(".")
            } else {
                parts[..exists].iter().collect()
            };
            match self.dir.canonicalize(&prefix) {
                Ok(inside) => {
                    let tail = &parts[exists..];
                    if !tail.iter().all(|c| matches!(c, Component::Normal(_))) {
                        return Err(outside());
                    }
                    let mut out = self.path.join(inside);
                    out.extend(tail);
                    return Ok(out);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && exists > 0 => exists -= 1,
                Err(_) => return Err(outside()),
            }
        }
    }

    /// Replaces this root's host path in `text` with `<name>`.
    pub fn redact(&self, text: &str) -> String {
        text.replace(&*self.path.to_string_lossy(), &format!("<{}>", self.name))
    }
}

/// Every root of a server.
#[derive(Debug)]
pub struct Roots {
    /// Source and sink files of submitted jobs (`weir.server.files-dir`).
    pub files: Root,
    /// Job checkpoints (`state.checkpoints.dir`).
    pub checkpoints: Root,
    /// Savepoints (`execution.checkpointing.savepoint-dir`, default
    /// `savepoints`).
    pub savepoints: Root,
    /// The data folder (bundles, job records).
    pub data: Root,
}

impl Roots {
    /// Replaces every root's host path in `text` with its name, so an
    /// error never shows where the server keeps its files.
    pub fn redact(&self, text: &str) -> String {
        // Longest first, so a root inside another keeps its own name.
        let mut roots = [&self.files, &self.checkpoints, &self.savepoints, &self.data];
        roots.sort_by_key(|r| std::cmp::Reverse(r.path.as_os_str().len()));
        roots.iter().fold(text.to_owned(), |t, r| r.redact(&t))
    }

    /// Resolves a restore path: it must lie under the checkpoint or the
    /// savepoint root; a relative one is looked up in the root where it
    /// exists (the checkpoints root first).
    /// A URI of a scheme Weir does not store to is refused first.
    pub fn restore_path(&self, requested: &str) -> Result<PathBuf, String> {
        let local = local_location(requested)?;
        let local = local.to_string_lossy();
        let found: Vec<PathBuf> = [&self.checkpoints, &self.savepoints]
            .iter()
            .filter_map(|r| r.resolve(&local).ok())
            .collect();
        found
            .iter()
            .find(|p| p.exists())
            .or(found.first())
            .cloned()
            .ok_or_else(|| {
                format!("{requested:?} lies outside the checkpoints and savepoints roots")
            })
    }
}

/// A location a server's request names, parsed: only local paths, since
/// the server keeps every checkpoint and savepoint under its roots.
pub fn local_location(requested: &str) -> Result<PathBuf, String> {
    let path = parse_location(requested).map_err(|e| e.to_string())?;
    if ObjectUri::of(&path).is_some() {
        return Err(format!(
            "{requested:?}: object storage (s3://) is not supported yet by weir serve, which keeps checkpoints and savepoints under its roots"
        ));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> (tempfile::TempDir, Root) {
        let t = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(t.path().join("files/in")).expect("mkdir");
        let r = Root::open("files", &t.path().join("files")).expect("root");
        (t, r)
    }

    #[test]
    fn relative_and_absolute_paths_inside_resolve() {
        let (_t, r) = root();
        assert_eq!(
            r.resolve("in/a.txt").expect("inside"),
            r.path.join("in/a.txt")
        );
        assert_eq!(r.resolve("out/x").expect("inside"), r.path.join("out/x"));
        let abs = r.path.join("in/b").display().to_string();
        assert_eq!(r.resolve(&abs).expect("inside"), r.path.join("in/b"));
        assert_eq!(
            r.resolve("in/../in/c").expect("inside"),
            r.path.join("in/c")
        );
    }

    #[test]
    fn escapes_are_refused_without_host_paths() {
        let (t, r) = root();
        std::os::unix::fs::symlink("/etc", r.path.join("in/link")).expect("symlink");
        for bad in [
            "../x",
            "in/../../x",
            "missing/../../x",
            "/etc/passwd",
            "in/link/passwd",
            "",
        ] {
            let e = r.resolve(bad).expect_err(bad);
            assert!(!e.contains(&*t.path().to_string_lossy()), "{e}");
        }
    }
}
