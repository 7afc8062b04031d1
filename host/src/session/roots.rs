//! The places a request may name paths under: source and sink files,
//! checkpoints, savepoints. A local root is a folder, and a requested path
//! is resolved through a `cap-std` handle on it, so neither `..` nor a
//! symbolic link can lead outside it. The checkpoints and savepoints roots
//! may instead be key prefixes in an S3 bucket (`s3://bucket/prefix`),
//! where a requested location must lie below the prefix. Errors name
//! paths relative to a local root, never the host's own paths.

use std::path::{Component, Path, PathBuf};

use cap_std::ambient_authority;
use cap_std::fs::Dir;

use crate::config::{Config, ObjectUri, S3Config, parse_location};

/// One root and, for a local one, a capability handle on its folder.
#[derive(Debug)]
pub struct Root {
    /// What the root is called in messages (`files`, `checkpoints`, ...).
    pub name: &'static str,
    /// Its canonical host path, or its `s3://bucket/prefix` location.
    pub path: PathBuf,
    /// The folder of a local root; `None` for a root in a bucket.
    dir: Option<Dir>,
}

impl Root {
    /// Opens root `name` at `path`, creating the folder if needed.
    pub fn open(name: &'static str, path: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(path).map_err(|e| {
            anyhow::anyhow!("cannot create the {name} root {}: {e}", path.display())
        })?;
        let path = path.canonicalize()?;
        let dir = Dir::open_ambient_dir(&path, ambient_authority())?;
        Ok(Root {
            name,
            path,
            dir: Some(dir),
        })
    }

    /// Root `name` at prefix `uri` of a bucket, after checking with `s3`
    /// that it can be listed (a missing bucket or refused credentials fail
    /// the server's start, not its first checkpoint).
    pub fn in_bucket(name: &'static str, uri: &ObjectUri, s3: &S3Config) -> anyhow::Result<Self> {
        crate::objectstore::open_bucket(uri, s3)
            .map_err(|e| anyhow::anyhow!("the {name} root: {e}"))?;
        Ok(Root {
            name,
            path: uri.to_path(),
            dir: None,
        })
    }

    /// Resolves `requested` (relative to the root, or absolute and inside
    /// it; in a bucket, an `s3://` location below the root's prefix) to a
    /// path inside the root. The part of a local path that exists is
    /// resolved by cap-std, which refuses any step outside the root; the
    /// part that does not exist yet must be plain names. The error says
    /// why, naming only `requested` and the root's name.
    pub fn resolve(&self, requested: &str) -> Result<PathBuf, String> {
        let outside = || format!("{requested:?} lies outside the {} root", self.name);
        if requested.is_empty() || requested.contains('\0') {
            return Err(format!("{requested:?} is not a path"));
        }
        let Some(dir) = &self.dir else {
            let parsed = parse_location(requested).map_err(|e| e.to_string())?;
            return self.resolve_in_bucket(&parsed).ok_or_else(outside);
        };
        let p = Path::new(requested);
        if ObjectUri::of(p).is_some() {
            return Err(outside());
        }
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
            match dir.canonicalize(&prefix) {
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

    /// `parsed` in this bucket root: an `s3://` location below its prefix,
    /// or plain relative names appended to it; `None` if it lies outside.
    fn resolve_in_bucket(&self, parsed: &Path) -> Option<PathBuf> {
        let root = ObjectUri::of(&self.path)?;
        let uri = match ObjectUri::of(parsed) {
            Some(uri) => uri,
            None if parsed
                .components()
                .all(|c| matches!(c, Component::Normal(_))) =>
            {
                let joined = format!("{root}/{}", parsed.to_str()?);
                ObjectUri::of(&parse_location(&joined).ok()?)?
            }
            None => return None,
        };
        let below = root.key.is_empty()
            || uri.key == root.key
            || uri.key.starts_with(&format!("{}/", root.key));
        let plain = uri.key.split('/').all(|s| s != "..");
        (uri.bucket == root.bucket && below && plain).then(|| uri.to_path())
    }

    /// Replaces this root's host path in `text` with `<name>` (a bucket
    /// root's location is no secret, and stays).
    pub fn redact(&self, text: &str) -> String {
        match self.dir {
            Some(_) => text.replace(&*self.path.to_string_lossy(), &format!("<{}>", self.name)),
            None => text.to_owned(),
        }
    }

    /// Whether the root is a prefix in a bucket.
    pub fn in_object_storage(&self) -> bool {
        self.dir.is_none()
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
    /// The roots `config` names, relative ones under `data_dir`; the
    /// checkpoints and savepoints roots may be `s3://` prefixes, reached
    /// with `config`'s `s3.*` settings.
    pub fn open(config: &Config, data_dir: &Path) -> anyhow::Result<Self> {
        let open = |name: &'static str, path: &Path| match ObjectUri::of(path) {
            Some(uri) => Root::in_bucket(name, &uri, &config.s3),
            None => Root::open(name, &data_dir.join(path)),
        };
        let savepoints = config
            .checkpoint
            .savepoint_dir
            .as_deref()
            .unwrap_or(Path::new("savepoints"));
        Ok(Roots {
            files: Root::open("files", &data_dir.join(&config.server.files_dir))?,
            checkpoints: open("checkpoints", &config.checkpoint.dir)?,
            savepoints: open("savepoints", savepoints)?,
            data: Root::open("data", data_dir)?,
        })
    }

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
    /// exists (the checkpoints root first; a bucket root is taken as
    /// holding it).
    pub fn restore_path(&self, requested: &str) -> Result<PathBuf, String> {
        let parsed = parse_location(requested).map_err(|e| e.to_string())?;
        let parsed = parsed.to_string_lossy();
        let found: Vec<PathBuf> = [&self.checkpoints, &self.savepoints]
            .iter()
            .filter_map(|r| r.resolve(&parsed).ok())
            .collect();
        found
            .iter()
            .find(|p| ObjectUri::of(p).is_some() || p.exists())
            .or(found.first())
            .cloned()
            .ok_or_else(|| {
                format!("{requested:?} lies outside the checkpoints and savepoints roots")
            })
    }
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
    fn a_bucket_root_takes_locations_below_its_prefix_only() {
        let r = Root {
            name: "savepoints",
            path: PathBuf::from("s3://weir/sp"),
            dir: None,
        };
        for (given, resolved) in [
            ("s3://weir/sp", "s3://weir/sp"),
            ("s3://weir/sp/manual", "s3://weir/sp/manual"),
            ("s3a://weir/sp//a/./b/", "s3://weir/sp/a/b"),
            ("manual/x", "s3://weir/sp/manual/x"),
        ] {
            assert_eq!(r.resolve(given), Ok(PathBuf::from(resolved)), "{given}");
        }
        for outside in [
            "s3://weir/spx",
            "s3://weir/other",
            "s3://other/sp",
            "s3://weir/sp/../other",
            "/tmp/x",
            "../x",
            "hdfs://n/sp",
            "",
        ] {
            assert!(r.resolve(outside).is_err(), "{outside}");
        }
        assert_eq!(r.redact("at s3://weir/sp/x"), "at s3://weir/sp/x");
    }

    #[test]
    fn a_local_root_takes_no_bucket_location() {
        let (_t, r) = root();
        assert!(r.resolve("s3://weir/sp").is_err());
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
