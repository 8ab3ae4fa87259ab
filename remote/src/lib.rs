//! om-remote: a process running away from its home node.
//!
//! At the remote node the process is a [`guest::Guest`]: restored (by om-ckpt) as an
//! unprivileged user under a seccomp filter built from the system-call table
//! ([`syscalls`], [`seccomp`]), whose trapped calls the supervisor forwards home. At home
//! the original process is the [`deputy`]: frozen under ptrace, it makes the forwarded
//! calls, takes the signals sent to the process, and becomes the process again when it
//! comes home. [`relay`] is the session between the two ends over any [`relay::Link`].
//!
//! It uses om-ckpt (capture, restore, paging) and om-sys; it knows nothing of the
//! network, the cluster or omd.

pub mod deputy;
mod direct;
pub mod ended;
pub mod guest;
pub mod homefile;
pub mod relay;
pub mod seccomp;
mod sigfd;
pub mod syscalls;

// The single-node mechanisms, under the names the modules here use.
use om_ckpt::{bytes, capture, error, image, inject, lazy, pages, ranges, restore};
use om_sys as sys;
