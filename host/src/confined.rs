//! A folder opened once as a `cap-std` directory handle, so that every file
//! a job's sink, checkpoint or savepoint creates, reads, renames, copies or
//! removes in it is named relative to the handle: a symlink or `..` swapped
//! into a path after the folder was opened cannot lead elsewhere, and a
//! name never leaves the folder.
//!
//! Errors are `std::io::Error`s; [`Folder::shown`] gives the path of a name
//! for the caller's message.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use cap_std::ambient_authority;
use cap_std::fs::{Dir, OpenOptions, OpenOptionsExt};

/// An open folder.
#[derive(Debug)]
pub struct Folder {
    dir: Dir,
    /// The folder's path, for messages.
    path: PathBuf,
}

impl Folder {
    /// Opens `folder`, created if missing: beneath `root` if given (it must
    /// lie inside, and no link may lead out of it), else as it is.
    pub fn open(folder: &Path, root: Option<&Path>) -> std::io::Result<Self> {
        let dir = match root {
            Some(root) => {
                let inside = folder.strip_prefix(root).map_err(|_| {
                    std::io::Error::other(format!(
                        "{} lies outside {}",
                        folder.display(),
                        root.display()
                    ))
                })?;
                let root = Dir::open_ambient_dir(root, ambient_authority())?;
                if inside.as_os_str().is_empty() {
                    root
                } else {
                    root.create_dir_all(inside)?;
                    root.open_dir(inside)?
                }
            }
            None => {
                std::fs::create_dir_all(folder)?;
                Dir::open_ambient_dir(folder, ambient_authority())?
            }
        };
        Ok(Folder {
            dir,
            path: folder.to_path_buf(),
        })
    }

    /// Opens `folder`, which must exist.
    pub fn open_existing(folder: &Path) -> std::io::Result<Self> {
        Ok(Folder {
            dir: Dir::open_ambient_dir(folder, ambient_authority())?,
            path: folder.to_path_buf(),
        })
    }

    /// The folder's path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of `name` in the folder, for messages.
    pub fn shown(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Sub-folder `name` (a relative path that stays inside), created if
    /// missing when `create` is set.
    pub fn sub(&self, name: &str, create: bool) -> std::io::Result<Folder> {
        if create {
            self.dir.create_dir_all(name)?;
        }
        Ok(Folder {
            dir: self.dir.open_dir(name)?,
            path: self.path.join(name),
        })
    }

    /// Creates (or truncates) file `name`.
    pub fn create(&self, name: &str) -> std::io::Result<File> {
        self.dir.create(name).map(cap_std::fs::File::into_std)
    }

    /// Writes file `name` (created or truncated) and fsyncs it.
    pub fn write_durably(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        let mut f = self.create(name)?;
        f.write_all(bytes)?;
        f.sync_all()
    }

    /// Renames `from` in this folder to `to` in folder `into`.
    pub fn rename(&self, from: &str, into: &Folder, to: &str) -> std::io::Result<()> {
        self.dir.rename(from, &into.dir, to)
    }

    /// Whether `name` exists (as anything, a link included).
    pub fn exists(&self, name: &str) -> bool {
        self.dir.symlink_metadata(name).is_ok()
    }

    /// Removes file `name`.
    pub fn remove_file(&self, name: &str) -> std::io::Result<()> {
        self.dir.remove_file(name)
    }

    /// Removes folder `name` and everything in it (links are removed, never
    /// followed).
    pub fn remove_dir_all(&self, name: &str) -> std::io::Result<()> {
        self.dir.remove_dir_all(name)
    }

    /// The names in the folder.
    pub fn names(&self) -> std::io::Result<Vec<String>> {
        Ok(self
            .dir
            .entries()?
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .collect())
    }

    /// The names of the regular files in the folder.
    pub fn file_names(&self) -> std::io::Result<Vec<String>> {
        Ok(self
            .dir
            .entries()?
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .collect())
    }

    /// Fsyncs the folder, so that names created or renamed in it are
    /// durable (through the handle: the folder opened again, for reading).
    pub fn sync(&self) -> std::io::Result<()> {
        let mut read = OpenOptions::new();
        read.read(true);
        self.dir
            .open_with(".", &read)
            .and_then(|d| d.into_std().sync_all())
    }

    /// Opens file `name` for reading, without blocking (a FIFO), and only
    /// if what was opened is a regular file (never a link, a folder or a
    /// device; checked on the open file, not the name); the file and its
    /// size.
    pub fn open_regular(&self, name: &str) -> std::io::Result<(File, u64)> {
        let not_regular =
            || std::io::Error::other("not a regular file (a link, a folder or a device)");
        // A link is refused before anything is opened.
        if !self.dir.symlink_metadata(name)?.is_file() {
            return Err(not_regular());
        }
        let mut options = OpenOptions::new();
        options
            .read(true)
            .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32);
        let f = self.dir.open_with(name, &options)?.into_std();
        let meta = f.metadata()?;
        if !meta.is_file() {
            return Err(not_regular());
        }
        Ok((f, meta.len()))
    }

    /// Copies regular file `from_name` of folder `from` to `name` here
    /// (created or replaced), and returns its size and xxh3-64 checksum,
    /// computed on the way; with `durable`, fsyncs it. A partly written
    /// copy is removed on error.
    pub fn copy_in(
        &self,
        from: &Folder,
        from_name: &str,
        name: &str,
        durable: bool,
    ) -> std::io::Result<(u64, String)> {
        let (mut src, _) = from.open_regular(from_name)?;
        let mut dst = self.create(name)?;
        let mut copy = || -> std::io::Result<(u64, String)> {
            let mut hasher = xxhash_rust::xxh3::Xxh3::new();
            let mut buf = vec![0u8; 1 << 20];
            let mut size = 0u64;
            loop {
                let n = src.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                dst.write_all(&buf[..n])?;
                size += n as u64;
            }
            if durable {
                dst.sync_all()?;
            }
            Ok((size, format!("{:016x}", hasher.digest())))
        };
        copy().inspect_err(|_| {
            let _ = self.dir.remove_file(name);
        })
    }

    /// Puts at `name` here a copy of regular file `from_name` of folder
    /// `from`: a hard link where the filesystem allows, else a copy made
    /// durable. An existing `name` is left alone (a copy over it could
    /// truncate the source itself, when it is a link to it).
    pub fn link_in(&self, from: &Folder, from_name: &str, name: &str) -> std::io::Result<()> {
        if self.exists(name) {
            return Ok(());
        }
        if !from.dir.symlink_metadata(from_name)?.is_file() {
            return Err(std::io::Error::other("not a regular file"));
        }
        if from.dir.hard_link(from_name, &self.dir, name).is_ok() {
            return Ok(());
        }
        self.copy_in(from, from_name, name, true).map(|_| ())
    }
}

/// The folder and file name of a file path (`a/b/c` is `a/b` and `c`).
pub fn split(path: &Path) -> std::io::Result<(&Path, &str)> {
    match (path.parent(), path.file_name().and_then(|n| n.to_str())) {
        (Some(parent), Some(name)) => Ok((parent, name)),
        _ => Err(std::io::Error::other(format!(
            "{}: not a file path",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_never_leave_the_folder() {
        let root = tempfile::tempdir().expect("root");
        let outside = tempfile::tempdir().expect("outside");
        std::fs::write(outside.path().join("secret"), "s").expect("write");
        let f = Folder::open(&root.path().join("in"), None).expect("open");
        std::os::unix::fs::symlink(outside.path(), root.path().join("in/link")).expect("link");
        assert!(f.write_durably("../x", b"x").is_err());
        assert!(f.write_durably("link/x", b"x").is_err());
        assert!(f.open_regular("link").is_err());
        assert!(f.sub("link", false).is_err());
        assert_eq!(std::fs::read_dir(outside.path()).expect("dir").count(), 1);
        assert!(!root.path().join("x").exists());
    }

    #[test]
    fn copies_regular_files_only_with_their_checksum() {
        let root = tempfile::tempdir().expect("root");
        let a = Folder::open(&root.path().join("a"), None).expect("a");
        let b = Folder::open(&root.path().join("b"), None).expect("b");
        a.write_durably("f", b"bytes").expect("write");
        let (size, sum) = b.copy_in(&a, "f", "g", true).expect("copy");
        assert_eq!(size, 5);
        assert_eq!(
            sum,
            format!("{:016x}", xxhash_rust::xxh3::xxh3_64(b"bytes"))
        );
        std::os::unix::fs::symlink("/dev/zero", root.path().join("a/zero")).expect("link");
        assert!(b.copy_in(&a, "zero", "z", false).is_err());
        assert!(!b.exists("z"));
        b.link_in(&a, "f", "h").expect("link");
        assert_eq!(
            std::fs::read(root.path().join("b/h")).expect("read"),
            b"bytes"
        );
    }
}
