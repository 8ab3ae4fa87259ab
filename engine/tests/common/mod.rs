//! Helpers shared by the engine's integration tests.

use std::path::{Path, PathBuf};

/// Builds the test program `tests/programs/NAME.c` (see [`om_testprogs::build`]).
pub fn build(name: &str) -> PathBuf {
    om_testprogs::build(
        name,
        &Path::new(env!("CARGO_TARGET_TMPDIR")).join("relay-programs"),
    )
}
