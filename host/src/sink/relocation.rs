//! Whether a file sink's snapshot restores into a job whose sink writes
//! to another folder: a checkpoint records each sink's folder, and a
//! folder that lacks the files the snapshot pre-committed cannot take it.

use std::path::{Path, PathBuf};

use super::Copies;
use super::file::{absolute, hidden, parse_states};

/// The folder the sink `states` committed to, and `folder` made absolute,
/// if they differ and `folder` lacks a file they pre-committed (with no
/// copy of it in `copies`, as a savepoint has): a restore into `folder`
/// would fail. A folder whose part files were copied or moved is fine.
pub(crate) fn moved_from(
    states: &[Vec<u8>],
    folder: &Path,
    copies: Option<&Copies<'_>>,
) -> Result<Option<(String, PathBuf)>, String> {
    let here = absolute(folder);
    for state in parse_states(states)? {
        let Some(old) = state.folder.filter(|f| Path::new(f) != here) else {
            continue;
        };
        let holds = |name: &String| {
            hidden(folder, name, "pending").exists()
                || folder.join(name).exists()
                || copies.is_some_and(|c| c.path(name).exists())
        };
        if !state.pending.iter().all(holds) {
            return Ok(Some((old, here)));
        }
    }
    Ok(None)
}
