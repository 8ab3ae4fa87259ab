//! The parser against good and bad maps: every kind of mistake is rejected with
//! `file:line:`, the reason and the offending text.

use om_map::{parse, ClusterMap, ErrorKind, MapErrors, NoResolver, SystemResolver};
use std::net::IpAddr;

fn ok(text: &str) -> ClusterMap {
    parse(text, "test.map", &SystemResolver).unwrap_or_else(|e| panic!("map rejected:\n{e}"))
}

fn errs(text: &str) -> MapErrors {
    match parse(text, "test.map", &SystemResolver) {
        Ok(m) => panic!("map accepted but should not be: {m:?}"),
        Err(e) => e,
    }
}

/// The one error of a map, as the user sees it.
fn only_error(text: &str) -> String {
    let e = errs(text);
    assert_eq!(e.len(), 1, "expected exactly one error, got:\n{e}");
    e.to_string()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn ranges_expand_to_consecutive_nodes_and_addresses() {
    let m = ok("# a cluster\n\n  1   198.18.0.1   3  # three nodes\n10 10.0.0.255 2\n");
    let table: Vec<(u16, IpAddr)> = m.nodes().map(|n| (n.id, n.addr)).collect();
    assert_eq!(
        table,
        vec![
            (1, ip("198.18.0.1")),
            (2, ip("198.18.0.2")),
            (3, ip("198.18.0.3")),
            (10, ip("10.0.0.255")),
            (11, ip("10.0.1.0")),
        ]
    );
    assert_eq!(m.node_by_addr(ip("198.18.0.2")), Some(2));
    assert_eq!(m.node_by_addr(ip("198.18.0.4")), None);
}

#[test]
fn ipv6_ranges_and_tabs() {
    let m = ok("5\tfd00::fffe\t3\n");
    let addrs: Vec<IpAddr> = m.nodes().map(|n| n.addr).collect();
    assert_eq!(
        addrs,
        vec![ip("fd00::fffe"), ip("fd00::ffff"), ip("fd00::1:0")]
    );
}

#[test]
fn alias_lines_add_addresses_to_existing_nodes_in_any_order() {
    let m = ok("2 10.9.0.1 alias\n1 10.0.0.1 2\n2 10.9.0.2 ALIAS\n");
    let n2 = m.node(2).unwrap();
    assert_eq!(n2.aliases, vec![ip("10.9.0.1"), ip("10.9.0.2")]);
    assert_eq!(m.node_by_addr(ip("10.9.0.2")), Some(2));
    assert!(m.node(1).unwrap().aliases.is_empty());
}

#[test]
fn host_names_are_resolved_at_load_time() {
    let m = ok("1 localhost 1\n");
    assert!(m.node(1).unwrap().addr.is_loopback());
}

#[test]
fn highest_node_and_last_address_are_allowed() {
    let m = ok("65534 255.255.255.254 2\n");
    assert_eq!(m.node(65535).unwrap().addr, ip("255.255.255.255"));
}

#[test]
fn bad_numbers_are_named() {
    assert_eq!(
        only_error("1 10.0.0.1 1\nx2 10.0.0.2 1\n"),
        "test.map:2: bad node number `x2`: expected a decimal number from 1 to 65535: `x2 10.0.0.2 1`"
    );
    assert_eq!(
        only_error("-1 10.0.0.1 1\n"),
        "test.map:1: bad node number `-1`: expected a decimal number from 1 to 65535: `-1 10.0.0.1 1`"
    );
    assert_eq!(
        only_error("1 10.0.0.1 two\n"),
        "test.map:1: bad node count `two`: expected a decimal number of nodes, or ALIAS: `1 10.0.0.1 two`"
    );
}

#[test]
fn node_zero_and_numbers_over_65535_are_rejected() {
    assert_eq!(
        only_error("0 10.0.0.1 1\n"),
        "test.map:1: node number `0` is out of range: node numbers are 1 to 65535: `0 10.0.0.1 1`"
    );
    assert_eq!(
        only_error("65536 10.0.0.1 1\n"),
        "test.map:1: node number `65536` is out of range: node numbers are 1 to 65535: `65536 10.0.0.1 1`"
    );
    let huge = "99999999999999999999999 10.0.0.1 1";
    assert!(only_error(huge).contains("out of range"));
}

#[test]
fn count_zero_is_rejected() {
    assert_eq!(
        only_error("1 10.0.0.1 0\n"),
        "test.map:1: node count 0: a range needs at least one node: `1 10.0.0.1 0`"
    );
}

#[test]
fn ranges_past_node_65535_are_rejected() {
    assert_eq!(
        only_error("65530 10.0.0.1 10\n"),
        "test.map:1: nodes 65530 to 65539 run past the highest node number, 65535: `65530 10.0.0.1 10`"
    );
}

#[test]
fn overlapping_node_numbers_are_rejected() {
    assert_eq!(
        only_error("1 10.0.0.1 4\n3 10.1.0.1 4\n"),
        "test.map:2: nodes 3 to 6 overlap nodes 1 to 4 of line 1: `3 10.1.0.1 4`"
    );
}

#[test]
fn overlapping_addresses_are_rejected() {
    assert_eq!(
        only_error("1 10.0.0.1 4\n# gap\n10 10.0.0.4 2\n"),
        "test.map:3: addresses 10.0.0.4 to 10.0.0.5 overlap addresses 10.0.0.1 to 10.0.0.4 of line 1: `10 10.0.0.4 2`"
    );
    // An alias may not take an address that belongs to another node either.
    let e = only_error("1 10.0.0.1 4\n1 10.0.0.3 ALIAS\n");
    assert!(
        e.starts_with("test.map:2: addresses 10.0.0.3 to 10.0.0.3 overlap"),
        "{e}"
    );
    // The same numbers in different families do not clash.
    ok("1 0.0.0.1 2\n3 ::1 2\n");
}

#[test]
fn address_ranges_past_the_end_of_the_space_are_rejected() {
    assert_eq!(
        only_error("1 255.255.255.250 10\n"),
        "test.map:1: 10 addresses from 255.255.255.250 run past the end of the address space: `1 255.255.255.250 10`"
    );
    let e = only_error("1 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 2\n");
    assert!(e.contains("run past the end of the address space"), "{e}");
}

#[test]
fn alias_for_a_missing_node_is_rejected() {
    assert_eq!(
        only_error("1 10.0.0.1 2\n7 10.9.9.9 ALIAS\n"),
        "test.map:2: ALIAS for node 7, but no line of the map defines node 7: `7 10.9.9.9 ALIAS`"
    );
}

#[test]
fn unresolvable_hosts_and_bad_addresses_are_rejected() {
    let e = only_error("1 no-such-host.invalid 1\n");
    assert!(
        e.starts_with("test.map:1: cannot resolve host `no-such-host.invalid`: "),
        "{e}"
    );
    assert!(e.ends_with(": `1 no-such-host.invalid 1`"), "{e}");
    assert_eq!(
        only_error("1 10.0.0.256 1\n"),
        "test.map:1: bad address `10.0.0.256`: expected an IPv4 or IPv6 address or a host name: `1 10.0.0.256 1`"
    );
    assert!(only_error("1 fe80::1%eth0 1\n").contains("bad address `fe80::1%eth0`"));
    // Without a resolver, names are refused with the reason.
    let e = parse("1 localhost 1\n", "m", &NoResolver)
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot resolve host `localhost`"), "{e}");
}

#[test]
fn duplicate_lines_are_rejected() {
    assert_eq!(
        only_error("1 10.0.0.1 2\n1   10.0.0.1   2 # again\n"),
        "test.map:2: duplicate of line 1: `1   10.0.0.1   2`"
    );
    assert_eq!(
        only_error("1 10.0.0.1 2\n1 10.5.0.1 ALIAS\n1 10.5.0.1 alias\n"),
        "test.map:3: duplicate of line 2: `1 10.5.0.1 alias`"
    );
}

#[test]
fn wrong_field_counts_are_rejected() {
    assert_eq!(
        only_error("1 10.0.0.1\n2 10.0.0.2 1\n"),
        "test.map:1: expected 3 fields (FIRST-ID HOST-OR-IP COUNT, or ID ALT-IP ALIAS), found 2: `1 10.0.0.1`"
    );
    assert!(only_error("1 10.0.0.1 1 extra\n").contains("found 4"));
}

#[test]
fn empty_maps_are_rejected() {
    assert_eq!(only_error(""), "test.map: the map defines no nodes");
    assert_eq!(
        only_error("# nothing\n\n   \n"),
        "test.map: the map defines no nodes"
    );
}

#[test]
fn every_error_is_reported_not_just_the_first() {
    let text = "\
1 10.0.0.1 4
0 10.0.1.1 1
2 10.0.2.1 1
5 10.0.0.2 1
9 10.0.9.1 0
8 no-such-host.invalid 1
1 10.0.0.1 4
40 10.0.0.9 ALIAS
";
    let e = errs(text);
    let lines: Vec<Option<usize>> = e.iter().map(|e| e.line).collect();
    assert_eq!(
        lines,
        vec![
            Some(2),
            Some(3),
            Some(4),
            Some(5),
            Some(6),
            Some(7),
            Some(8)
        ],
        "{e}"
    );
    let kinds: Vec<&ErrorKind> = e.iter().map(|e| &e.kind).collect();
    assert!(matches!(kinds[0], ErrorKind::NodeNumberOutOfRange(_)));
    assert!(matches!(
        kinds[1],
        ErrorKind::NodeOverlap { other_line: 1, .. }
    ));
    // Node 5 at 10.0.0.2 takes an address of line 1's range.
    assert!(matches!(
        kinds[2],
        ErrorKind::AddressOverlap { other_line: 1, .. }
    ));
    assert!(matches!(kinds[3], ErrorKind::ZeroCount));
    assert!(matches!(kinds[4], ErrorKind::Unresolvable { .. }));
    assert!(matches!(kinds[5], ErrorKind::Duplicate(1)));
    assert!(matches!(kinds[6], ErrorKind::AliasForUnknownNode(40)));
}

#[test]
fn a_line_with_several_problems_reports_each() {
    let e = errs("0 10.0.0.999 0\n");
    let kinds: Vec<String> = e.iter().map(|e| e.kind.to_string()).collect();
    assert_eq!(kinds.len(), 3, "{kinds:?}");
}

#[test]
fn load_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("openmosix.map");
    std::fs::write(&path, "1 10.0.0.1 2\n3 10.0.0.2 1\n").unwrap();
    let e = ClusterMap::load(&path).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("{}:2: addresses", path.display())),
        "{e}"
    );
    let missing = dir.path().join("missing.map");
    let e = ClusterMap::load(&missing).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("cannot read map {}: ", missing.display())),
        "{e}"
    );
}

#[test]
fn enormous_counts_are_rejected_without_overflow() {
    // Found by the fuzzer: a count near u64::MAX overflowed the range arithmetic.
    let e = only_error("1 fd0:: 4444444444444444444444444444444444444442\n");
    assert!(e.contains("run past the highest node number, 65535"), "{e}");
}
