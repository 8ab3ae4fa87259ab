//! The cluster key: 32 random bytes, written as 64 hex digits in a file only root may
//! read. Every node of a cluster has the same key; it authenticates all their traffic.

use crate::wire::Key;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Where omd looks for the key unless told otherwise.
pub const DEFAULT_KEY_PATH: &str = "/etc/omd/cluster.key";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the cluster key {}: {source} (make one with `omd keygen`)", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the cluster key {} may be read by others (mode {mode:04o}); it must be readable by \
         its owner only: chmod 600 {}",
        .path.display(), .path.display()
    )]
    Exposed { path: PathBuf, mode: u32 },
    #[error("the cluster key {} belongs to uid {owner}, not to uid {me} who runs omd", .path.display())]
    Owner { path: PathBuf, owner: u32, me: u32 },
    #[error("{} is not a cluster key: expected 64 hexadecimal digits", .path.display())]
    Format { path: PathBuf },
    #[error(
        "{} already exists; omd keygen does not overwrite a key (use --force to replace it: \
         every node of the cluster then needs the new one)",
        .path.display()
    )]
    Exists { path: PathBuf },
    #[error("cannot write the cluster key {}: {source}", .path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Parses 64 hex digits (surrounding white space allowed).
pub fn parse(text: &str) -> Option<Key> {
    let t = text.trim();
    if t.len() != 64 || !t.is_ascii() {
        return None;
    }
    let mut k = [0u8; 32];
    for (i, b) in k.iter_mut().enumerate() {
        *b = u8::from_str_radix(&t[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(Key(k))
}

/// The key as the file holds it.
pub fn to_text(key: &Key) -> String {
    let mut s: String = key.0.iter().map(|b| format!("{b:02x}")).collect();
    s.push('\n');
    s
}

/// Reads the key at `path`, refusing a file that others may read.
pub fn load(path: &Path) -> Result<Key, KeyError> {
    let read_err = |source| KeyError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyError::Exposed {
            path: path.to_path_buf(),
            mode,
        });
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Err(KeyError::Owner {
            path: path.to_path_buf(),
            owner: meta.uid(),
            me,
        });
    }
    let text = std::fs::read_to_string(path).map_err(read_err)?;
    parse(&text).ok_or_else(|| KeyError::Format {
        path: path.to_path_buf(),
    })
}

/// A new random key.
pub fn random() -> std::io::Result<Key> {
    use std::io::Read;
    let mut k = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut k)?;
    Ok(Key(k))
}

/// Writes a new random key to `path` (mode 0600, its directory made if needed).
pub fn generate(path: &Path, force: bool) -> Result<Key, KeyError> {
    let write_err = |source| KeyError::Write {
        path: path.to_path_buf(),
        source,
    };
    if path.exists() && !force {
        return Err(KeyError::Exists {
            path: path.to_path_buf(),
        });
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(write_err)?;
    }
    let key = random().map_err(write_err)?;
    let tmp = path.with_extension("new");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(write_err)?;
    f.write_all(to_text(&key).as_bytes())
        .and_then(|_| f.sync_all())
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(write_err)?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn keygen_then_load() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/cluster.key");
        let k = generate(&p, false).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        assert_eq!(load(&p).unwrap(), k);
        assert!(matches!(generate(&p, false), Err(KeyError::Exists { .. })));
        let k2 = generate(&p, true).unwrap();
        assert_ne!(k, k2);
    }

    #[test]
    fn exposed_missing_and_garbled_keys_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("k");
        assert!(load(&p).unwrap_err().to_string().contains("omd keygen"));
        generate(&p, false).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = load(&p).unwrap_err().to_string();
        assert!(e.contains("mode 0644") && e.contains("chmod 600"), "{e}");
        std::fs::write(&p, "not a key\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(load(&p), Err(KeyError::Format { .. })));
        assert_eq!(parse(&"ab".repeat(32)), Some(Key([0xab; 32])));
        assert_eq!(parse(&"zz".repeat(32)), None);
    }
}
