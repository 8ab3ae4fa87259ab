//! `omd`: omd, the node daemon.
//!
//! Pure parts: [`wire`] (the gossip packet), [`gossip`] (the table and the choice of
//! peer, shared with the simulator), [`load`] (load arithmetic), [`node`] (a node's view
//! and settings, answering requests). Parts that touch the system: [`measure`] (cgroups,
//! /proc, the speed benchmark), [`procs`], [`key`], [`control`] (the Unix socket),
//! [`hpcfs`] (the tree, over FUSE), [`hpcdev`] (the same tree through the omhpc kernel
//! module's /dev/hpc) and [`daemon`] (sockets, timers, start-up).

pub mod balance;
pub mod balancer;
pub mod cli;
pub mod control;
pub mod daemon;
pub mod gossip;
pub mod hpcdev;
pub mod hpcfs;
pub mod http;
pub mod key;
pub mod load;
pub mod measure;
pub mod metrics;
pub mod migrate;
pub mod node;
pub mod procs;
pub mod simbalance;
pub mod simulate;
pub mod view;

/// The gossip packet (its own crate, so that the fuzz target builds quickly).
pub use om_wire as wire;
