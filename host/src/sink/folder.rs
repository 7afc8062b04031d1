//! A file sink's folder, opened once as a `cap-std` directory handle: every
//! file the sink creates, renames, lists or removes is named relative to
//! the handle, so a symlink or `..` swapped into the path after the job
//! started cannot send its output elsewhere. On a server the folder is
//! opened beneath the files root, and a link that leaves it is refused.

use std::fs::File;
use std::path::{Path, PathBuf};

use cap_std::ambient_authority;
use cap_std::fs::Dir;

/// An open sink folder.
#[derive(Debug)]
pub struct SinkDir {
    dir: Dir,
    /// The folder's path, for messages.
    path: PathBuf,
}

impl SinkDir {
    /// Opens `folder` (created if missing): beneath `root` if given (it
    /// must lie inside), else as it is.
    pub fn open(folder: &Path, root: Option<&Path>) -> Result<Self, String> {
        let failed = |e: std::io::Error| format!("{}: {e}", folder.display());
        let dir = match root {
            Some(root) => {
                let inside = folder
                    .strip_prefix(root)
                    .map_err(|_| format!("{} lies outside the files root", folder.display()))?;
                let root = Dir::open_ambient_dir(root, ambient_authority()).map_err(failed)?;
                if inside.as_os_str().is_empty() {
                    root
                } else {
                    root.create_dir_all(inside).map_err(failed)?;
                    root.open_dir(inside).map_err(failed)?
                }
            }
            None => {
                std::fs::create_dir_all(folder).map_err(failed)?;
                Dir::open_ambient_dir(folder, ambient_authority()).map_err(failed)?
            }
        };
        Ok(SinkDir {
            dir,
            path: folder.to_path_buf(),
        })
    }

    /// The folder's path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn failed(&self, name: &str, e: impl std::fmt::Display) -> String {
        format!("{}: {e}", self.path.join(name).display())
    }

    /// Creates (or truncates) file `name`.
    pub fn create(&self, name: &str) -> Result<File, String> {
        self.dir
            .create(name)
            .map(cap_std::fs::File::into_std)
            .map_err(|e| self.failed(name, e))
    }

    /// Renames `from` to `to`, both in the folder.
    pub fn rename(&self, from: &str, to: &str) -> Result<(), String> {
        self.dir
            .rename(from, &self.dir, to)
            .map_err(|e| self.failed(from, e))
    }

    /// Whether `name` exists (as anything, a link included).
    pub fn exists(&self, name: &str) -> bool {
        self.dir.symlink_metadata(name).is_ok()
    }

    /// Removes file `name`.
    pub fn remove(&self, name: &str) -> Result<(), String> {
        self.dir.remove_file(name).map_err(|e| self.failed(name, e))
    }

    /// The names in the folder.
    pub fn names(&self) -> Result<Vec<String>, String> {
        let entries = self.dir.entries().map_err(|e| self.failed("", e))?;
        Ok(entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .collect())
    }

    /// Fsyncs the folder, so renames in it are durable (through the
    /// handle: the folder opened again, for reading).
    pub fn sync(&self) -> Result<(), String> {
        let mut read = cap_std::fs::OpenOptions::new();
        read.read(true);
        self.dir
            .open_with(".", &read)
            .and_then(|d| d.into_std().sync_all())
            .map_err(|e| self.failed("", e))
    }

    /// Puts at `name` in the folder a copy of `src` (a file outside it, a
    /// savepoint's copy): a hard link where the filesystem allows, else a
    /// copy made durable.
    pub fn link_in(&self, src: &Path, name: &str) -> Result<(), String> {
        let (parent, file) = split(src)?;
        let shown = format!("{} -> {}", src.display(), self.failed(name, ""));
        let from = Dir::open_ambient_dir(parent, ambient_authority())
            .map_err(|e| format!("{shown}: {e}"))?;
        link_or_copy((&from, file.as_ref()), (&self.dir, name.as_ref()))
            .map_err(|e| format!("{shown}: {e}"))
    }

    /// Puts at `dst` (outside the folder, a savepoint's copy) a copy of
    /// file `name`: a hard link where the filesystem allows, else a copy
    /// made durable.
    pub fn link_out(&self, name: &str, dst: &Path) -> Result<(), String> {
        let (parent, file) = split(dst)?;
        let shown = format!("{} -> {}", self.failed(name, ""), dst.display());
        let to = Dir::open_ambient_dir(parent, ambient_authority())
            .map_err(|e| format!("{shown}: {e}"))?;
        link_or_copy((&self.dir, name.as_ref()), (&to, file.as_ref()))
            .map_err(|e| format!("{shown}: {e}"))
    }
}

/// Puts at `to` a copy of file `from` (each a folder handle and a name): a
/// hard link where the filesystem allows, else a copy made durable.
fn link_or_copy(from: (&Dir, &Path), to: (&Dir, &Path)) -> std::io::Result<()> {
    if from.0.hard_link(from.1, to.0, to.1).is_ok() {
        return Ok(());
    }
    from.0.copy(from.1, to.0, to.1)?;
    to.0.open(to.1)?.into_std().sync_all()
}

/// A file path's folder and name.
fn split(path: &Path) -> Result<(&Path, &std::ffi::OsStr), String> {
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => Ok((parent, name)),
        _ => Err(format!("{}: not a file path", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_swapped_for_a_link_after_opening_is_not_followed() {
        let root = tempfile::tempdir().expect("root");
        let outside = tempfile::tempdir().expect("outside");
        let folder = root.path().join("out");
        let sink = SinkDir::open(&folder, Some(root.path())).expect("open");
        // The path now leads elsewhere; the handle still means the folder.
        std::fs::rename(&folder, root.path().join("moved")).expect("move");
        std::os::unix::fs::symlink(outside.path(), &folder).expect("link");
        sink.create("part-0-0").expect("create");
        assert!(root.path().join("moved/part-0-0").is_file());
        assert_eq!(std::fs::read_dir(outside.path()).expect("dir").count(), 0);
        // Opened again beneath the root, the link that leaves it is refused.
        let err = SinkDir::open(&folder, Some(root.path())).expect_err("refused");
        assert!(err.contains("out"), "{err}");
        // Without a root (weir run), a path is taken as it is.
        assert!(SinkDir::open(&folder, None).is_ok());
    }
}
