//! Shared pieces of the user commands: reading a map from a file or standard input, and
//! reaching the node daemon.

use anyhow::{bail, Context, Result};
use om_map::{parse, ClusterMap, MapErrors, SystemResolver};
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

/// Where omd listens for the tools; `OM_CONTROL_SOCKET` overrides it.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/omd/control.sock";

/// The control socket path in use.
pub fn control_socket() -> PathBuf {
    std::env::var_os("OM_CONTROL_SOCKET")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONTROL_SOCKET))
}

/// A map read from `path` (`-` is standard input), not yet checked.
pub struct MapText {
    /// How errors name the source: the path, or `<stdin>`.
    pub origin: String,
    pub text: String,
}

impl MapText {
    pub fn read(path: &str) -> Result<Self> {
        if path == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("cannot read the map from standard input")?;
            return Ok(Self {
                origin: "<stdin>".into(),
                text,
            });
        }
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read map {path}"))?;
        Ok(Self {
            origin: path.to_string(),
            text,
        })
    }

    /// Checks the map, resolving host names.
    pub fn check(&self) -> std::result::Result<ClusterMap, MapErrors> {
        parse(&self.text, &self.origin, &SystemResolver)
    }
}

/// Connects to the running omd, or explains that none is running.
///
/// The daemon and its protocol arrive with the daemon (issue 4); until then every request
/// that needs it ends here with a clear message.
pub fn require_daemon(what: &str) -> Result<()> {
    let path = control_socket();
    match UnixStream::connect(&path) {
        Err(e) => bail!(
            "{what} needs the omd daemon, but no omd is running on this node \
             (cannot connect to {}: {e})",
            path.display()
        ),
        Ok(_) => bail!(
            "an omd is listening at {}, but this build of the tools cannot send it `{what}` \
             yet: the daemon protocol is not implemented",
            path.display()
        ),
    }
}
