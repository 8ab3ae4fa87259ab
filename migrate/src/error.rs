//! Why a migration could not be asked for or did not happen.

use std::net::SocketAddr;

use om_map::NodeId;

use crate::LinkError;

/// Why a migration could not be asked for or did not happen.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("no process {pid} at node {node}")]
    NoProcess { pid: i32, node: NodeId },
    #[error("permission denied: process {pid} belongs to uid {owner}; only its owner or root may move it")]
    NotOwner { pid: i32, owner: u32 },
    #[error("permission denied: process {pid} runs with privileges its owner lacks ({why}); only root may move it")]
    Privileged { pid: i32, why: String },
    #[error("node {0} is not in the cluster map")]
    NotInMap(NodeId),
    #[error("node {0} is down")]
    Down(NodeId),
    #[error("no other node is up")]
    NoNodeUp,
    #[error("process {0} is still being moved after 60 s; try again")]
    Busy(i32),
    #[error("cannot start the migration: {0}")]
    Thread(#[source] std::io::Error),
    #[error("no outcome for process {0} within 120 s")]
    NoOutcome(i32),
    #[error("process {pid} did not come home: {how}")]
    DidNotComeHome { pid: i32, how: String },
    #[error(
        "process {pid} is not home yet after 60 s; it still runs at {at} and may come home later"
    )]
    NotHomeYet { pid: i32, at: String },
    #[error("process {pid} cannot move: {reason}")]
    Capture { pid: i32, reason: String },
    #[error("node {0} has no address in the map")]
    NoAddress(NodeId),
    #[error("cannot reach node {node} ({addr}): {source}")]
    Unreachable {
        node: NodeId,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("node {node} refused the link: {source}")]
    LinkRefused {
        node: NodeId,
        #[source]
        source: LinkError,
    },
    #[error("link to node {node} failed: {source}")]
    Link {
        node: NodeId,
        #[source]
        source: std::io::Error,
    },
    #[error("node {node} refused: {why}")]
    Refused { node: NodeId, why: String },
    #[error("node {0} did not answer the offer")]
    NoAnswer(NodeId),
    #[error("memory of {pid}: {source}")]
    Memory {
        pid: i32,
        #[source]
        source: std::io::Error,
    },
    #[error("node {node} could not start it: {why}")]
    CouldNotStart { node: NodeId, why: String },
    #[error("node {0} did not start it")]
    NotStarted(NodeId),
    #[error("process {pid} runs at node {at}, not at node {asker}")]
    NotThere { pid: i32, at: NodeId, asker: NodeId },
    #[error("process {0} is locked against automatic migration")]
    Locked(i32),
}

impl MigrateError {
    /// The kind of error the tools are told.
    pub fn kind(&self) -> om_proto::ErrorKind {
        match self {
            MigrateError::NoProcess { .. } => om_proto::ErrorKind::NotFound,
            MigrateError::NotOwner { .. } | MigrateError::Privileged { .. } => {
                om_proto::ErrorKind::PermissionDenied
            }
            _ => om_proto::ErrorKind::Invalid,
        }
    }

    /// A short, fixed name for the reason, for counting failures (metrics' `reason`).
    pub fn reason(&self) -> &'static str {
        use MigrateError::*;
        match self {
            NoProcess { .. } | DidNotComeHome { .. } => "gone",
            NotOwner { .. } | Privileged { .. } | Locked(_) => "not_allowed",
            NotInMap(_) | Down(_) | NoNodeUp | NoAddress(_) => "no_node",
            Busy(_) | NotHomeYet { .. } | NotThere { .. } => "busy",
            Capture { .. } | Memory { .. } => "cannot_move",
            Unreachable { .. } | Link { .. } | LinkRefused { .. } | NoAnswer(_) | NoOutcome(_) => {
                "link"
            }
            Refused { .. } => "refused",
            CouldNotStart { .. } | NotStarted(_) | Thread(_) => "not_started",
        }
    }
}

/// What a migration request answers.
pub type Outcome = Result<String, MigrateError>;
