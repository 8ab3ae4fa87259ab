//! Shared pieces of the user commands: reading a map from a file or standard input, and
//! reaching the node daemon.

pub use om_sys::sigpipe;

use anyhow::{Context, Result};
use om_map::{parse, ClusterMap, MapErrors, SystemResolver};
use om_proto::{Request, Response};
use std::io::Read;
use std::process::ExitCode;

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

/// Sends one request to this node's omd; a daemon that is not running, or that refuses,
/// becomes an error that says so.
pub fn ask(request: Request) -> Result<Response> {
    Ok(om_proto::call(request)?)
}

/// Prints `value` as pretty JSON.
pub fn print_json(value: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Runs a command's `run` and turns an error into `name: message` and exit status 1.
pub fn finish(name: &str, result: Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{name}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Bytes as MiB, the way the tools print memory.
pub fn mib(bytes: u64) -> String {
    format!("{}M", bytes >> 20)
}
