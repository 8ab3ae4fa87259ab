//! SIGPIPE back to its default, for the command-line tools.

use nix::sys::signal::{signal, SigHandler, Signal};

/// Rust starts every program with SIGPIPE ignored, so that `println!` to a closed pipe
/// panics (`mosctl status | grep -q block` printed a panic) and programs that mosrun
/// execs inherit the ignored signal. This restores the default, as C tools have it: a
/// write to a closed pipe ends the tool quietly.
pub fn restore_default() {
    // SAFETY: SIG_DFL installs no handler, so no code of ours ever runs as a signal
    // handler; changing a disposition is otherwise harmless.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
}
