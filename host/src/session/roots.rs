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
use crate::objectstore::Bucket;

/// One root: a local folder or a bucket prefix.
#[derive(Debug)]
pub struct Root {
    /// What the root is called in messages (`files`, `checkpoints`, ...).
    pub name: &'static str,
    /// Its canonical host path, or its `s3://bucket/prefix` location.
    pub path: PathBuf,
    place: Place,
}

/// Where a root is, open.
#[derive(Debug)]
enum Place {
    /// A capability handle on the root's folder.
    Folder(Dir),
    /// A client of the root's bucket.
    Bucket(std::sync::Arc<Bucket>),
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
            place: Place::Folder(dir),
        })
    }

    /// Root `name` at prefix `uri` of a bucket, after checking with `s3`
    /// that it can be listed (a missing bucket or refused credentials fail
    /// the server's start, not its first checkpoint).
    pub fn in_bucket(name: &'static str, uri: &ObjectUri, s3: &S3Config) -> anyhow::Result<Self> {
        let bucket = crate::objectstore::open_bucket(uri, s3)
            .map_err(|e| anyhow::anyhow!("the {name} root: {e}"))?;
        Ok(Root {
            name,
            path: uri.to_path(),
            place: Place::Bucket(bucket),
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
        let dir = match &self.place {
            Place::Folder(dir) => dir,
            Place::Bucket(_) => {
                let parsed = parse_location(requested).map_err(|e| e.to_string())?;
                return self.resolve_in_bucket(&parsed)?.ok_or_else(outside);
            }
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
    /// or plain relative names appended to it; `None` if it lies outside,
    /// an error if the names make no location.
    fn resolve_in_bucket(&self, parsed: &Path) -> Result<Option<PathBuf>, String> {
        let Some(root) = ObjectUri::of(&self.path) else {
            return Ok(None);
        };
        let uri = match ObjectUri::of(parsed) {
            Some(uri) => uri,
            None if parsed
                .components()
                .all(|c| matches!(c, Component::Normal(_))) =>
            {
                let joined = format!("{root}/{}", parsed.to_string_lossy());
                let location = parse_location(&joined).map_err(|e| e.to_string())?;
                ObjectUri::of(&location).unwrap_or_else(|| root.clone())
            }
            None => return Ok(None),
        };
        let below = root.key.is_empty()
            || uri.key == root.key
            || uri.key.starts_with(&format!("{}/", root.key));
        let plain = uri.key.split('/').all(|s| s != "..");
        Ok((uri.bucket == root.bucket && below && plain).then(|| uri.to_path()))
    }

    /// Whether something is at `path` (resolved in this root): a file or
    /// folder, or objects under a bucket key (a snapshot's `_metadata`
    /// stands for its folder). A bucket that does not answer holds nothing.
    fn holds(&self, path: &Path) -> bool {
        match (&self.place, ObjectUri::of(path)) {
            (Place::Bucket(bucket), Some(uri)) => {
                let key = uri.key.strip_suffix("/_metadata").unwrap_or(&uri.key);
                bucket.list(key).is_ok_and(|l| !l.is_empty())
            }
            (Place::Folder(_), None) => path.exists(),
            _ => false,
        }
    }

    /// Replaces this root's host path in `text` with `<name>` (a bucket
    /// root's location is no secret, and stays).
    pub fn redact(&self, text: &str) -> String {
        match self.place {
            Place::Folder(_) => {
                text.replace(&*self.path.to_string_lossy(), &format!("<{}>", self.name))
            }
            Place::Bucket(_) => text.to_owned(),
        }
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
    /// savepoint root; a relative one is looked up in the root that holds
    /// it (the checkpoints root first).
    pub fn restore_path(&self, requested: &str) -> Result<PathBuf, String> {
        let parsed = parse_location(requested).map_err(|e| e.to_string())?;
        let parsed = parsed.to_string_lossy();
        let found: Vec<(&Root, PathBuf)> = [&self.checkpoints, &self.savepoints]
            .into_iter()
            .filter_map(|r| Some((r, r.resolve(&parsed).ok()?)))
            .collect();
        found
            .iter()
            .find(|(root, p)| root.holds(p))
            .or(found.first())
            .map(|(_, p)| p.clone())
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
        let uri = ObjectUri::of(Path::new("s3://weir/sp")).expect("uri");
        let s3 = S3Config {
            endpoint: Some("http://127.0.0.1:9".into()),
            access_key: Some("k".into()),
            secret_key: Some(String::from("s").into()),
            ..S3Config::default()
        };
        let client = crate::objectstore::client_of(&uri, &s3).expect("client");
        let r = Root {
            name: "savepoints",
            path: uri.to_path(),
            place: Place::Bucket(client),
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
