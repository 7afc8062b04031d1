//! The server's data folder: private to its user, and the API token kept
//! in it.

use crate::config::Config;

/// The API token: `weir.server.token` if set, else the one in
/// `<data_dir>/token`, else a new random one written there (mode 0600).
/// The flag says whether it is new, so the caller prints it once.
pub fn load_or_create_token(
    config: &Config,
    data_dir: &std::path::Path,
) -> anyhow::Result<(String, bool)> {
    if let Some(t) = &config.server.token {
        return Ok((t.clone(), false));
    }
    let path = data_dir.join("token");
    match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => {
            check_private(&path)?;
            return Ok((t.trim().to_owned(), false));
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness for a token: {e}"))?;
    let token = hex::encode(bytes);
    create_private_dir(data_dir)?;
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        f.write_all(token.as_bytes())?;
        f.sync_all()?;
    }
    Ok((token, true))
}

/// Refuses a token file that others could read or that is not a plain
/// file of this user: the token is the only key to the API.
fn check_private(path: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path)?;
    let me = rustix::process::geteuid().as_raw();
    if !meta.is_file() || meta.uid() != me {
        anyhow::bail!(
            "the token file {} is not a regular file of this user: delete it to generate a new one",
            path.display()
        );
    }
    if meta.mode() & 0o077 != 0 {
        anyhow::bail!(
            "the token file {} has mode {:o} and others may read it: chmod 600 it, or delete it to generate a new one",
            path.display(),
            meta.mode() & 0o777
        );
    }
    Ok(())
}

/// Creates `dir` (and its parents) readable by this user only; an existing
/// folder of this user is made so.
pub fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let meta = std::fs::metadata(dir)?;
    if meta.uid() == rustix::process::geteuid().as_raw() && meta.mode() & 0o077 != 0 {
        tracing::debug!("{}: readable by others; made private (0700)", dir.display());
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Makes every file and folder this process creates from now on private
/// to its user (umask 077): a server keeps jobs' data, checkpoints and
/// bundles of several users.
pub fn keep_files_private() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}
