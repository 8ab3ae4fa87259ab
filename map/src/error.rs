//! Errors of map parsing and loading.

use std::fmt;

/// What is wrong with one line (or with the whole map).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    #[error("expected 3 fields (FIRST-ID HOST-OR-IP COUNT, or ID ALT-IP ALIAS), found {0}")]
    FieldCount(usize),
    #[error("bad node number `{0}`: expected a decimal number from 1 to 65535")]
    BadNodeNumber(String),
    #[error("node number `{0}` is out of range: node numbers are 1 to 65535")]
    NodeNumberOutOfRange(String),
    #[error("bad node count `{0}`: expected a decimal number of nodes, or ALIAS")]
    BadCount(String),
    #[error("node count 0: a range needs at least one node")]
    ZeroCount,
    #[error("nodes {first} to {last} run past the highest node number, 65535")]
    NodeRangeOverflow { first: u32, last: u64 },
    #[error("bad address `{0}`: expected an IPv4 or IPv6 address or a host name")]
    BadAddress(String),
    #[error("cannot resolve host `{host}`: {reason}")]
    Unresolvable { host: String, reason: String },
    #[error("{count} addresses from {first} run past the end of the address space")]
    AddressRangeOverflow { first: String, count: u32 },
    #[error(
        "nodes {first} to {last} overlap nodes {other_first} to {other_last} of line {other_line}"
    )]
    NodeOverlap {
        first: u32,
        last: u32,
        other_first: u32,
        other_last: u32,
        other_line: usize,
    },
    #[error("addresses {first} to {last} overlap addresses {other_first} to {other_last} of line {other_line}")]
    AddressOverlap {
        first: String,
        last: String,
        other_first: String,
        other_last: String,
        other_line: usize,
    },
    #[error("ALIAS for node {0}, but no line of the map defines node {0}")]
    AliasForUnknownNode(u32),
    #[error("duplicate of line {0}")]
    Duplicate(usize),
    #[error("the map defines no nodes")]
    NoNodes,
}

/// One problem in a map, located at `origin:line`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapError {
    /// Where the map came from (a file name, `-` for standard input, ...).
    pub origin: String,
    /// 1-based line number; None for problems of the whole map.
    pub line: Option<usize>,
    /// The offending line, without its comment and surrounding whitespace.
    pub text: String,
    pub kind: ErrorKind,
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(
                f,
                "{}:{}: {}: `{}`",
                self.origin, line, self.kind, self.text
            ),
            None => write!(f, "{}: {}", self.origin, self.kind),
        }
    }
}

impl std::error::Error for MapError {}

/// Every problem found in a map, in line order. Never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapErrors(pub Vec<MapError>);

impl MapErrors {
    pub fn iter(&self) -> impl Iterator<Item = &MapError> {
        self.0.iter()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for MapErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for MapErrors {}

/// Loading a map from a file: the file could not be read, or its contents are wrong.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read map {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(#[from] MapErrors),
}
