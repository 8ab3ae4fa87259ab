//! The messages that set a migration up, and the page stream's: the payloads of the
//! link's frames until the session (`om_remote::relay::Msg`) takes over. Their variant
//! order is their wire format (postcard): a new variant goes last, and changing one
//! changes [`crate::link::LINK_VERSION`].

use om_map::NodeId;
use serde::{Deserialize, Serialize};

/// Messages while a migration is set up.
#[derive(Debug, Serialize, Deserialize)]
pub enum Setup {
    /// Home → target: may this process come? (size in bytes, the CPU flags it may use,
    /// its XSAVE features, its name and owner for the target's records.)
    Offer {
        /// Home pid.
        pid: i32,
        /// Command name.
        comm: String,
        /// Owner at home.
        uid: u32,
        /// Memory it brings.
        bytes: u64,
        /// CPU flags of the home node.
        cpu_flags: Vec<String>,
        /// XSAVE features in use.
        xcr0: u64,
        /// Copy all pages before it runs.
        eager: bool,
        /// How long it has run, milliseconds (the target's balancer's estimate of
        /// what is left).
        age_ms: u64,
        /// Locked against automatic migration.
        locked: bool,
        /// Its job hint.
        job: om_proto::JobKind,
        /// Sent by a balancer rather than asked for.
        auto: bool,
        /// How many times it has moved, this move included.
        moves: u32,
    },
    /// Target → home: yes; this id names the migration.
    Accept(u64),
    /// Target → home: no, and why.
    Refuse(String),
    /// Home → target (second connection): this connection serves migration `id`'s pages.
    PagesFor(u64),
    /// Home → target: the process.
    Image(Box<om_ckpt::ProcessImage>),
    /// Target → home: it runs, with this pid here.
    Started(i32),
    /// Page server: read.
    Read {
        /// Address.
        addr: u64,
        /// Length.
        len: u64,
    },
    /// Page server: the bytes (empty when unreadable).
    Bytes(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Node hosting a guest → its home: the balancer here would send home process `pid`
    /// on to node `to`. Answered with `Accept(0)` or `Refuse`.
    MoveOn { pid: i32, to: NodeId },
    /// Page server: which pages of the process's private anonymous mappings hold data?
    /// (For an image that does not list them: `ProcessImage::anon_unlisted`.)
    Index,
    /// Page server: those pages, in address order (`None` when they cannot be told).
    Indexed(Option<Vec<om_ckpt::image::PageRun>>),
}
