//! The map parser: text -> checked, expanded [`ClusterMap`], or every error found.

use crate::addr::{self, Pos, Span};
use crate::{ClusterMap, ErrorKind, MapError, MapErrors, Node, NodeId, Resolver};
use std::collections::BTreeMap;
use std::net::IpAddr;

const MAX_ID: u64 = NodeId::MAX as u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    /// `FIRST-ID ADDRESS COUNT`
    Range {
        first: u32,
        count: u32,
        addr: IpAddr,
    },
    /// `ID ALT-ADDRESS ALIAS`
    Alias { id: u32, addr: IpAddr },
}

impl Entry {
    fn ids(&self) -> Option<(u32, u32)> {
        match *self {
            Entry::Range { first, count, .. } => Some((first, first + count - 1)),
            Entry::Alias { .. } => None,
        }
    }

    fn span(&self) -> Span {
        let (first, last) = self.addr_bounds();
        Span {
            first: Pos::from(first),
            last: Pos::from(last),
        }
    }

    fn addr_bounds(&self) -> (IpAddr, IpAddr) {
        match *self {
            Entry::Range { addr, count, .. } => (
                addr,
                addr::offset(addr, u128::from(count - 1)).expect("checked when parsed"),
            ),
            Entry::Alias { addr, .. } => (addr, addr),
        }
    }
}

struct Line<'a> {
    no: usize,
    text: &'a str,
    entry: Entry,
}

/// Parses and checks a whole map. `origin` names the source in error messages (a file
/// name, or `-` for standard input); host names are looked up with `resolver`.
///
/// On failure the result holds every error found, in line order, not just the first.
pub fn parse(text: &str, origin: &str, resolver: &dyn Resolver) -> Result<ClusterMap, MapErrors> {
    let mut errors = Vec::new();
    let mut good: Vec<Line> = Vec::new();
    let error = |no: usize, text: &str, kind| MapError {
        origin: origin.to_string(),
        line: Some(no),
        text: text.to_string(),
        kind,
    };

    for (i, raw) in text.lines().enumerate() {
        let no = i + 1;
        let content = raw.split('#').next().unwrap_or("").trim();
        if content.is_empty() {
            continue;
        }
        let entry = match parse_entry(content, resolver) {
            Ok(entry) => entry,
            Err(kinds) => {
                errors.extend(kinds.into_iter().map(|k| error(no, content, k)));
                continue;
            }
        };
        if let Some(dup) = good.iter().find(|l| l.entry == entry) {
            errors.push(error(no, content, ErrorKind::Duplicate(dup.no)));
            continue;
        }
        let clashes = clashes_with_earlier(&entry, &good);
        if !clashes.is_empty() {
            errors.extend(clashes.into_iter().map(|k| error(no, content, k)));
            continue;
        }
        good.push(Line {
            no,
            text: content,
            entry,
        });
    }

    let mut nodes: BTreeMap<NodeId, Node> = BTreeMap::new();
    for line in &good {
        if let Entry::Range { first, count, addr } = line.entry {
            for k in 0..count {
                let id = NodeId::try_from(first + k).expect("checked when parsed");
                let addr = addr::offset(addr, u128::from(k)).expect("checked when parsed");
                nodes.insert(
                    id,
                    Node {
                        id,
                        addr,
                        aliases: Vec::new(),
                    },
                );
            }
        }
    }
    for line in &good {
        if let Entry::Alias { id, addr } = line.entry {
            match NodeId::try_from(id).ok().and_then(|id| nodes.get_mut(&id)) {
                Some(node) => node.aliases.push(addr),
                None => errors.push(error(
                    line.no,
                    line.text,
                    ErrorKind::AliasForUnknownNode(id),
                )),
            }
        }
    }
    // A map whose lines were all wrong has no nodes too; say so only when that is the
    // whole story (a map of comments, or an empty file).
    if nodes.is_empty() && errors.is_empty() {
        errors.push(MapError {
            origin: origin.to_string(),
            line: None,
            text: String::new(),
            kind: ErrorKind::NoNodes,
        });
    }
    if errors.is_empty() {
        Ok(ClusterMap { nodes })
    } else {
        errors.sort_by_key(|e| e.line.unwrap_or(usize::MAX));
        Err(MapErrors(errors))
    }
}

/// Parses the three fields of one line; every field is checked, so a line with several
/// problems reports them all.
fn parse_entry(content: &str, resolver: &dyn Resolver) -> Result<Entry, Vec<ErrorKind>> {
    let fields: Vec<&str> = content.split_whitespace().collect();
    let [id_text, addr_text, count_text] = fields[..] else {
        return Err(vec![ErrorKind::FieldCount(fields.len())]);
    };
    let mut errs = Vec::new();

    let id = match decimal(id_text) {
        None => {
            errs.push(ErrorKind::BadNodeNumber(id_text.to_string()));
            None
        }
        Some(n) if n == 0 || n > MAX_ID => {
            errs.push(ErrorKind::NodeNumberOutOfRange(id_text.to_string()));
            None
        }
        Some(n) => Some(n as u32),
    };

    let is_alias = count_text.eq_ignore_ascii_case("ALIAS");
    let count = if is_alias {
        Some(1)
    } else {
        match decimal(count_text) {
            None => {
                errs.push(ErrorKind::BadCount(count_text.to_string()));
                None
            }
            Some(0) => {
                errs.push(ErrorKind::ZeroCount);
                None
            }
            Some(c) => {
                if let Some(first) = id {
                    let last = u64::from(first).saturating_add(c - 1);
                    if last > MAX_ID {
                        errs.push(ErrorKind::NodeRangeOverflow { first, last });
                    }
                }
                u32::try_from(c).ok()
            }
        }
    };

    let addr = match parse_addr(addr_text, resolver) {
        Ok(a) => Some(a),
        Err(e) => {
            errs.push(e);
            None
        }
    };
    if let (Some(a), Some(c)) = (addr, count) {
        if addr::offset(a, u128::from(c) - 1).is_none() {
            errs.push(ErrorKind::AddressRangeOverflow {
                first: a.to_string(),
                count: c,
            });
        }
    }

    match (id, count, addr) {
        (Some(id), Some(count), Some(addr)) if errs.is_empty() => Ok(if is_alias {
            Entry::Alias { id, addr }
        } else {
            Entry::Range {
                first: id,
                count,
                addr,
            }
        }),
        _ => Err(errs),
    }
}

/// A plain decimal number (digits only: no sign, no spaces). Numbers too large for u64
/// come back as u64::MAX so that they are reported as out of range, not as malformed.
fn decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.parse().unwrap_or(u64::MAX))
}

fn parse_addr(text: &str, resolver: &dyn Resolver) -> Result<IpAddr, ErrorKind> {
    if let Ok(a) = text.parse::<IpAddr>() {
        return Ok(a);
    }
    // Something made only of digits and dots, or with a colon, was meant as an address.
    let numeric = text.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    let host_chars = text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    if numeric || !host_chars {
        return Err(ErrorKind::BadAddress(text.to_string()));
    }
    resolver
        .resolve(text)
        .map_err(|reason| ErrorKind::Unresolvable {
            host: text.to_string(),
            reason,
        })
}

/// Node-number and address overlaps of a new entry with the entries accepted before it.
fn clashes_with_earlier(entry: &Entry, earlier: &[Line]) -> Vec<ErrorKind> {
    let mut out = Vec::new();
    let span = entry.span();
    for other in earlier {
        if let (Some((first, last)), Some((of, ol))) = (entry.ids(), other.entry.ids()) {
            if first <= ol && of <= last {
                out.push(ErrorKind::NodeOverlap {
                    first,
                    last,
                    other_first: of,
                    other_last: ol,
                    other_line: other.no,
                });
            }
        }
        if span.overlaps(&other.entry.span()) {
            let (first, last) = entry.addr_bounds();
            let (of, ol) = other.entry.addr_bounds();
            out.push(ErrorKind::AddressOverlap {
                first: first.to_string(),
                last: last.to_string(),
                other_first: of.to_string(),
                other_last: ol.to_string(),
                other_line: other.no,
            });
        }
    }
    out
}
