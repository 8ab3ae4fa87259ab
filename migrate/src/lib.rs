//! The migration of processes between omds: the protocol (the encrypted [`link`], what
//! the port admits before a handshake ([`admit`]), the messages that set a migration up
//! and serve its pages ([`Setup`])) and both of its sides: this node's registry of
//! processes under migration control and guests ([`Migrations`], a value omd hands to
//! its servers), the home side (`home.rs`: request, capture, offer, pages, deputy) and
//! the target side (`target.rs`: admission, checks, the confined guest). What it needs
//! of the cluster and the node's policy is the [`Cluster`] trait; the session that runs
//! while a process is away (forwarded calls, signals, coming home) is
//! `om_remote::relay`'s, carried in the link's frames. Failures are [`MigrateError`].

pub mod admit;
mod error;
mod home;
pub mod link;
mod migrations;
mod registry;
mod setup;
pub mod steps;
mod target;

pub use error::{MigrateError, Outcome};
pub use link::{Conn, LinkError};
pub use migrations::{Cluster, Migrations, MoveEvent, Observer, DEFAULT_BANDWIDTH};
pub use registry::{owner, GuestIds, GuestProc, HomeProc};
pub use setup::Setup;
