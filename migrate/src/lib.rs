//! The migration protocol between two omds: the encrypted link ([`link`]) and the
//! messages that set a migration up and serve its pages ([`Setup`]). The session that
//! follows (forwarded calls, signals, coming home) is `om_remote::relay`'s, carried in
//! the same frames.

pub mod admit;
pub mod link;
mod setup;

pub use link::{Conn, LinkError};
pub use setup::Setup;
