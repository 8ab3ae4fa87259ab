//! om-ckpt: capture a running process and restore it, on one node.
//!
//! [`capture`] freezes a single-threaded process under ptrace and reads its whole user
//! context into a [`ProcessImage`]; its memory is read through the returned [`Frozen`]
//! handle (a [`PageSource`]). [`restore`] turns a traced stub into that process again,
//! at the same addresses, with memory supplied eagerly or lazily by userfaultfd.
//! [`checkpoint`] stores an image in a directory (`image.json` + `pages.img`).
//!
//! All ptrace calls for one process happen on one dedicated thread ([`TracerThread`]).
//! The restored process is a child of the caller and has a new pid.
//!
//! It knows nothing of running away from home (guests, deputies, forwarded calls: that
//! is om-remote, which builds on it through [`Frozen::hand_over`] and the
//! [`restore::Mode`]s); it uses om-sys for every raw kernel call.

pub mod bytes;
pub mod capture;
pub mod checkpoint;
mod cow;
pub mod error;
pub mod image;
pub mod inject;
pub mod lazy;
pub mod pages;
pub mod ranges;
pub mod restore;
mod smaps;
use om_sys as sys;
pub mod tracer;

pub use capture::{capture, capture_with, check_movable, Before, Frozen, Options};
pub use error::{CaptureError, InjectError, PageError, Refusal, RestoreError};
pub use image::ProcessImage;
pub use lazy::PagerStats;
pub use pages::{ImagePages, PageSource, ProcessMemory};
pub use restore::{check_restorable, restore, Paging, Restored};
pub use tracer::TracerThread;
