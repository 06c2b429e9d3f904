//! Where the JWT signing secret comes from.
//!
//! Order of precedence: an explicit `--jwt-secret-file`, then the
//! `HTS_JWT_SECRET` environment variable, then the demo's default secret file
//! `hts-data/jwt.secret` if it exists. The secret is never logged.

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};

/// Environment variable holding the JWT secret.
pub const ENV_VAR: &str = "HTS_JWT_SECRET";

/// The demo's default data directory.
pub const DEFAULT_DATA_DIR: &str = "hts-data";

/// The secret file inside a data directory.
pub fn secret_file_in(data_dir: &Path) -> PathBuf {
    data_dir.join("jwt.secret")
}

/// Resolves the JWT secret for a command that verifies or mints tokens.
pub fn resolve(secret_file: Option<&Path>) -> anyhow::Result<Vec<u8>> {
    if let Some(path) = secret_file {
        return read_file(path);
    }
    if let Ok(value) = std::env::var(ENV_VAR) {
        if !value.trim().is_empty() {
            return Ok(value.trim().as_bytes().to_vec());
        }
    }
    let default = secret_file_in(Path::new(DEFAULT_DATA_DIR));
    if default.exists() {
        return read_file(&default);
    }
    bail!(
        "no JWT secret: set {ENV_VAR}, pass --jwt-secret-file, or run `hts demo` first \
         (it writes {})",
        default.display()
    )
}

/// Returns the secret from `HTS_JWT_SECRET`, else the data directory's secret
/// file, creating that file with a fresh random secret (mode 0600) if missing.
pub fn resolve_or_create(data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    if let Ok(value) = std::env::var(ENV_VAR) {
        if !value.trim().is_empty() {
            return Ok(value.trim().as_bytes().to_vec());
        }
    }
    let path = secret_file_in(data_dir);
    if path.exists() {
        return read_file(&path);
    }
    let bytes: [u8; 32] = rand::random();
    let secret = hex::encode(bytes);
    write_private(&path, secret.as_bytes())?;
    Ok(secret.into_bytes())
}

fn read_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read JWT secret file {}", path.display()))?;
    let secret = text.trim();
    if secret.is_empty() {
        bail!("JWT secret file {} is empty", path.display());
    }
    Ok(secret.as_bytes().to_vec())
}

fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create JWT secret file {}", path.display()))?;
    file.write_all(contents)?;
    file.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_file_wins_and_is_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        std::fs::write(&path, "  abc\n").unwrap();
        assert_eq!(resolve(Some(&path)).unwrap(), b"abc");
    }

    #[test]
    fn empty_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        std::fs::write(&path, "\n").unwrap();
        assert!(resolve(Some(&path)).is_err());
    }

    #[test]
    fn created_secret_is_stable_and_private() {
        if std::env::var(ENV_VAR).is_ok() {
            return; // the environment overrides the file; nothing to check here
        }
        let dir = tempfile::tempdir().unwrap();
        let first = resolve_or_create(dir.path()).unwrap();
        let second = resolve_or_create(dir.path()).unwrap();
        assert_eq!(first, second);
        assert_eq!(first.len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(secret_file_in(dir.path()))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
