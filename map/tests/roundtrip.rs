//! Property tests: an expanded table written as map text parses back to the same table,
//! and the parser never panics, whatever the input.

use om_map::{parse, ClusterMap, NoResolver, Node};
use proptest::prelude::*;
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A run of nodes with consecutive numbers and addresses, which the writer folds into one
/// range line; runs that collide with earlier ones are dropped when the table is built.
#[derive(Debug, Clone)]
struct Run {
    first: u16,
    len: u16,
    addr: IpAddr,
}

fn addr() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        // Small spaces so that runs touch and collide often.
        (0u32..64).prop_map(|n| IpAddr::V4(Ipv4Addr::from(0xC612_0000 + n))),
        any::<u32>().prop_map(|n| IpAddr::V4(Ipv4Addr::from(n))),
        (0u128..64).prop_map(|n| IpAddr::V6(Ipv6Addr::from(0xfd00_u128 << 112 | n))),
        any::<u128>().prop_map(|n| IpAddr::V6(Ipv6Addr::from(n))),
    ]
}

fn run() -> impl Strategy<Value = Run> {
    (
        prop_oneof![1u16..40, 65500u16..=65535, any::<u16>()],
        1u16..6,
        addr(),
    )
        .prop_map(|(first, len, addr)| Run { first, len, addr })
}

fn next(a: IpAddr, k: u16) -> Option<IpAddr> {
    match a {
        IpAddr::V4(a) => u32::from(a)
            .checked_add(u32::from(k))
            .map(|n| IpAddr::V4(Ipv4Addr::from(n))),
        IpAddr::V6(a) => u128::from(a)
            .checked_add(u128::from(k))
            .map(|n| IpAddr::V6(Ipv6Addr::from(n))),
    }
}

/// A valid expanded table: unique node numbers 1..=65535, unique addresses (main and
/// alias), aliases only on existing nodes.
fn table() -> impl Strategy<Value = Vec<Node>> {
    (
        prop::collection::vec(run(), 1..12),
        prop::collection::vec((any::<prop::sample::Index>(), addr()), 0..6),
    )
        .prop_map(|(runs, aliases)| {
            let mut nodes: Vec<Node> = Vec::new();
            let mut ids = HashSet::new();
            let mut addrs = HashSet::new();
            for r in runs {
                for k in 0..r.len {
                    let Some(id) = r.first.checked_add(k).filter(|&id| id != 0) else {
                        continue;
                    };
                    let Some(a) = next(r.addr, k) else { continue };
                    if ids.contains(&id) || addrs.contains(&a) {
                        continue;
                    }
                    ids.insert(id);
                    addrs.insert(a);
                    nodes.push(Node {
                        id,
                        addr: a,
                        aliases: vec![],
                    });
                }
            }
            if nodes.is_empty() {
                nodes.push(Node {
                    id: 1,
                    addr: "198.18.0.1".parse().unwrap(),
                    aliases: vec![],
                });
                addrs.insert("198.18.0.1".parse().unwrap());
            }
            for (i, a) in aliases {
                if addrs.insert(a) {
                    let n = i.index(nodes.len());
                    nodes[n].aliases.push(a);
                }
            }
            nodes
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn table_to_text_to_table_is_identity(nodes in table()) {
        let map = ClusterMap::from_nodes(nodes.clone()).expect("a valid table is accepted");
        let mut want = nodes;
        want.sort_by_key(|n| n.id);
        let got: Vec<Node> = map.nodes().cloned().collect();
        prop_assert_eq!(&got, &want);

        let text = map.to_map_text();
        let again = parse(&text, "roundtrip", &NoResolver)
            .map_err(|e| TestCaseError::fail(format!("{e}\n--- text:\n{text}")))?;
        prop_assert_eq!(again.nodes().cloned().collect::<Vec<_>>(), want);
        // Writing is deterministic and stable.
        prop_assert_eq!(again.to_map_text(), text);
    }

    #[test]
    fn consecutive_runs_fold_into_one_line(first in 1u16..60000, len in 1u16..200, a in addr()) {
        prop_assume!(next(a, len - 1).is_some());
        let nodes: Vec<Node> = (0..len)
            .map(|k| Node { id: first + k, addr: next(a, k).unwrap(), aliases: vec![] })
            .collect();
        let text = ClusterMap::from_nodes(nodes).unwrap().to_map_text();
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        prop_assert_eq!(lines, vec![format!("{first} {a} {len}")]);
    }

    #[test]
    fn parser_never_panics_on_token_soup(
        lines in prop::collection::vec(
            prop::collection::vec(
                prop_oneof![
                    Just("ALIAS".to_string()),
                    Just("#".to_string()),
                    "[0-9]{1,6}",
                    "[0-9.:a-f]{1,20}",
                    ".{0,8}",
                ],
                0..5,
            ),
            0..20,
        )
    ) {
        let text: String = lines.iter().map(|l| l.join(" ") + "\n").collect();
        match parse(&text, "soup", &NoResolver) {
            Ok(map) => prop_assert!(!map.is_empty()),
            Err(errors) => {
                prop_assert!(!errors.is_empty());
                for e in errors.iter() {
                    prop_assert!(e.to_string().starts_with("soup"));
                }
            }
        }
    }
}
