//! A file sink's folder, opened once as a `cap-std` directory handle: every
//! file the sink creates, renames, lists or removes is named relative to
//! the handle, so a symlink or `..` swapped into the path after the job
//! started cannot send its output elsewhere. On a server the folder is
//! opened beneath the files root, and a link that leaves it is refused.

use std::fs::File;
use std::path::Path;

use crate::confined::{Folder, split};

/// An open sink folder.
#[derive(Debug)]
pub struct SinkDir {
    dir: Folder,
}

impl SinkDir {
    /// Opens `folder` (created if missing): beneath `root` if given (it
    /// must lie inside), else as it is.
    pub fn open(folder: &Path, root: Option<&Path>) -> Result<Self, String> {
        Folder::open(folder, root)
            .map(|dir| SinkDir { dir })
            .map_err(|e| format!("{}: {e}", folder.display()))
    }

    /// The folder's path, for messages.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    fn failed(&self, name: &str, e: impl std::fmt::Display) -> String {
        format!("{}: {e}", self.dir.shown(name).display())
    }

    /// Creates (or truncates) file `name`.
    pub fn create(&self, name: &str) -> Result<File, String> {
        self.dir.create(name).map_err(|e| self.failed(name, e))
    }

    /// Renames `from` to `to`, both in the folder.
    pub fn rename(&self, from: &str, to: &str) -> Result<(), String> {
        self.dir
            .rename(from, &self.dir, to)
            .map_err(|e| self.failed(from, e))
    }

    /// Whether `name` exists (as anything, a link included).
    pub fn exists(&self, name: &str) -> bool {
        self.dir.exists(name)
    }

    /// Removes file `name`.
    pub fn remove(&self, name: &str) -> Result<(), String> {
        self.dir.remove_file(name).map_err(|e| self.failed(name, e))
    }

    /// The names in the folder.
    pub fn names(&self) -> Result<Vec<String>, String> {
        self.dir.names().map_err(|e| self.failed("", e))
    }

    /// Fsyncs the folder, so renames in it are durable.
    pub fn sync(&self) -> Result<(), String> {
        self.dir.sync().map_err(|e| self.failed("", e))
    }

    /// Puts at `name` in the folder a copy of `src` (a file outside it, a
    /// savepoint's copy): a hard link where the filesystem allows, else a
    /// copy made durable.
    pub fn link_in(&self, src: &Path, name: &str) -> Result<(), String> {
        let shown = format!("{} -> {}", src.display(), self.failed(name, ""));
        let copy = || {
            let (parent, file) = split(src)?;
            self.dir
                .link_in(&Folder::open_existing(parent)?, file, name)
        };
        copy().map_err(|e| format!("{shown}: {e}"))
    }

    /// Puts at `dst` (outside the folder, a savepoint's copy) a copy of
    /// file `name`: a hard link where the filesystem allows, else a copy
    /// made durable.
    pub fn link_out(&self, name: &str, dst: &Path) -> Result<(), String> {
        let shown = format!("{} -> {}", self.failed(name, ""), dst.display());
        let copy = || {
            let (parent, file) = split(dst)?;
            Folder::open_existing(parent)?.link_in(&self.dir, name, file)
        };
        copy().map_err(|e| format!("{shown}: {e}"))
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
