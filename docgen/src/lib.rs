//! Man pages and shell completions from the commands' own clap definitions, so they can
//! never disagree with `--help`.
//!
//! Every binary calls [`generate_if_asked`] first thing. When `OM_GENERATE_DOCS` names a
//! directory, the binary writes `man/man<S>/<name>.<S>` and `completions/{bash,zsh,fish}/`
//! there and exits; otherwise nothing happens. `scripts/gendocs.sh` runs every binary
//! that way.

use clap::Command;
use clap_complete::Shell;
use std::path::Path;

/// The variable that asks a binary for its documentation.
pub const ENV: &str = "OM_GENERATE_DOCS";

/// Writes the man page (in `section`) and completions of `cmd` into `dir`.
pub fn generate(mut cmd: Command, section: &str, dir: &Path) -> std::io::Result<()> {
    let name = cmd.get_name().to_string();
    let man_dir = dir.join("man").join(format!("man{section}"));
    std::fs::create_dir_all(&man_dir)?;
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .section(section)
        .manual("openMosix-rs")
        .render(&mut page)?;
    std::fs::write(man_dir.join(format!("{name}.{section}")), page)?;
    for (shell, sub, file) in [
        (Shell::Bash, "bash", name.clone()),
        (Shell::Zsh, "zsh", format!("_{name}")),
        (Shell::Fish, "fish", format!("{name}.fish")),
    ] {
        let d = dir.join("completions").join(sub);
        std::fs::create_dir_all(&d)?;
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut cmd, &name, &mut out);
        std::fs::write(d.join(file), out)?;
    }
    Ok(())
}

/// If `OM_GENERATE_DOCS` is set, writes the docs of `cmd` there and exits the process.
pub fn generate_if_asked(cmd: impl FnOnce() -> Command, section: &str) {
    let Some(dir) = std::env::var_os(ENV) else {
        return;
    };
    // Named after the binary (a derive names it after its package otherwise).
    let name = std::env::args()
        .next()
        .and_then(|a| {
            Path::new(&a)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    let cmd = cmd().name(name.clone()).bin_name(name.clone());
    match generate(cmd, section, Path::new(&dir)) {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!(
                "{name}: cannot write documentation to {}: {e}",
                Path::new(&dir).display()
            );
            std::process::exit(1)
        }
    }
}
