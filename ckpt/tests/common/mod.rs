//! Helpers shared by the engine's integration tests.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use om_ckpt::{PageError, PageSource};

/// Builds the test program `tests/testprogs/NAME.c` (see [`om_testprogs::build`]).
pub fn build(name: &str) -> PathBuf {
    om_testprogs::build(
        name,
        &Path::new(env!("CARGO_TARGET_TMPDIR")).join("relay-programs"),
    )
}

/// What a [`Cuttable`] source's reads fail with once cut.
pub const CUT: &str = "the page source was cut";

/// `pages` until `cut` is set; then every read fails (with [`CUT`]), as when the link to
/// the original's node is lost.
pub struct Cuttable<S> {
    pub pages: S,
    pub cut: Arc<AtomicBool>,
}

impl<S: PageSource> PageSource for Cuttable<S> {
    fn read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), PageError> {
        if self.cut.load(Ordering::SeqCst) {
            return Err(PageError::Io {
                addr,
                source: std::io::Error::other(CUT),
            });
        }
        self.pages.read(addr, buf)
    }
    fn reads_any_address(&self) -> bool {
        self.pages.reads_any_address()
    }
}
