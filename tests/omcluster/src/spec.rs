//! What a cluster should look like: node count, CPU share and memory of each node.

use crate::Error;

/// Largest cluster: node addresses are 198.18.0.1 to 198.18.0.254.
pub const MAX_NODES: usize = 254;
/// Smallest memory limit a node may have.
pub const MIN_MEM: u64 = 16 << 20;
/// Memory limit of a node when none is given.
pub const DEFAULT_MEM: u64 = 1 << 30;

/// One node's capacity.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NodeSpec {
    /// Share of one CPU (0.25 = a quarter of a CPU), enforced by a CFS quota.
    pub cpu: f64,
    /// Memory limit in bytes.
    pub mem: u64,
}

impl Default for NodeSpec {
    fn default() -> Self {
        Self {
            cpu: 1.0,
            mem: DEFAULT_MEM,
        }
    }
}

/// The node daemon every node runs, when the cluster has one.
#[derive(Debug, Clone, PartialEq)]
pub struct DaemonSpec {
    /// The omd binary (it must not live under /tmp or /run, which a node hides).
    pub bin: std::path::PathBuf,
    /// Extra arguments, e.g. `--down-after 3`.
    pub args: Vec<String>,
}

/// Where users keep programs and data: with [`FsSpec::private`], each node gets its own
/// writable view of these (those that exist on the host).
pub const PRIVATE_PLACES: [&str; 6] = ["/home", "/root", "/var/tmp", "/opt", "/usr/local", "/srv"];

/// Which directories the nodes share. By default a node has its own /tmp, /run and /etc
/// and shares everything else with the host (and so with every other node).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FsSpec {
    /// Directories each node sees through an overlay of its own: what was there when
    /// the node started is seen by all, what a node writes only by that node (as on
    /// separate machines installed alike).
    pub private: Vec<std::path::PathBuf>,
    /// Directories kept shared by every node (like an NFS home), even inside a private
    /// one.
    pub shared: Vec<std::path::PathBuf>,
}

impl FsSpec {
    /// Nodes with files of their own: [`PRIVATE_PLACES`] and `workdir` (the checkout a
    /// cluster is brought up from) unless it is `/` or already in one of them; `shared`
    /// stay shared.
    pub fn private(workdir: Option<&std::path::Path>, shared: Vec<std::path::PathBuf>) -> Self {
        let mut private: Vec<std::path::PathBuf> = PRIVATE_PLACES
            .iter()
            .map(std::path::PathBuf::from)
            .collect();
        if let Some(w) = workdir {
            if w != std::path::Path::new("/") && !private.iter().any(|p| w.starts_with(p)) {
                private.push(w.to_path_buf());
            }
        }
        Self { private, shared }
    }
}

/// A whole cluster: its name and its nodes (node i+1 is `nodes[i]`).
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSpec {
    pub name: String,
    pub nodes: Vec<NodeSpec>,
    /// Start this omd in every node, with a generated cluster key.
    pub daemon: Option<DaemonSpec>,
    /// Which files the nodes share.
    pub fs: FsSpec,
    /// Give every node /etc/openmosix.map (off for clusters that discover each other,
    /// `omd --discover`).
    pub map: bool,
}

impl ClusterSpec {
    /// `n` nodes with the CPU and memory lists of `omcluster up` (`"0.5,1"`, `"2G,512M"`):
    /// one value applies to every node, otherwise there must be one value per node.
    pub fn new(name: &str, n: usize, cpu: Option<&str>, mem: Option<&str>) -> Result<Self, Error> {
        check_name(name)?;
        if n == 0 || n > MAX_NODES {
            return Err(Error::Spec(format!(
                "--nodes {n}: a cluster has 1 to {MAX_NODES} nodes"
            )));
        }
        let cpus = per_node("--cpu", cpu, n, parse_cpu)?;
        let mems = per_node("--mem", mem, n, parse_mem)?;
        let nodes = (0..n)
            .map(|i| NodeSpec {
                cpu: cpus.as_ref().map_or(1.0, |v| v[i]),
                mem: mems.as_ref().map_or(DEFAULT_MEM, |v| v[i]),
            })
            .collect();
        Ok(Self {
            name: name.to_string(),
            nodes,
            daemon: None,
            fs: FsSpec::default(),
            map: true,
        })
    }
}

/// Cluster names become parts of namespace and cgroup names: keep them short and plain.
pub fn check_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 24
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::Spec(format!(
            "bad cluster name `{name}`: use 1 to 24 letters, digits, `-` or `_`"
        )))
    }
}

fn per_node<T: Copy>(
    flag: &str,
    list: Option<&str>,
    n: usize,
    parse: fn(&str) -> Option<T>,
) -> Result<Option<Vec<T>>, Error> {
    let Some(list) = list else { return Ok(None) };
    let mut values = Vec::new();
    for item in list.split(',') {
        let v = parse(item.trim())
            .ok_or_else(|| Error::Spec(format!("{flag} {list}: bad value `{}`", item.trim())))?;
        values.push(v);
    }
    match values.len() {
        1 => Ok(Some(vec![values[0]; n])),
        len if len == n => Ok(Some(values)),
        len => Err(Error::Spec(format!(
            "{flag} {list}: {len} values for {n} nodes (give one value, or one per node)"
        ))),
    }
}

/// A CPU share: a positive number of CPUs, at most 64.
pub fn parse_cpu(s: &str) -> Option<f64> {
    let v: f64 = s.parse().ok()?;
    (v.is_finite() && (0.01..=64.0).contains(&v)).then_some(v)
}

/// A memory size: bytes, or a number with K, M, G or T (powers of 1024), at least 16M.
pub fn parse_mem(s: &str) -> Option<u64> {
    let s = s.trim_end_matches(['B', 'b']);
    let (num, shift) = match s.chars().last()? {
        'k' | 'K' => (&s[..s.len() - 1], 10),
        'm' | 'M' => (&s[..s.len() - 1], 20),
        'g' | 'G' => (&s[..s.len() - 1], 30),
        't' | 'T' => (&s[..s.len() - 1], 40),
        _ => (s, 0),
    };
    let v: f64 = num.parse().ok()?;
    let bytes = v * (1u64 << shift) as f64;
    (bytes.is_finite() && bytes >= MIN_MEM as f64 && bytes < 1e18).then_some(bytes as u64)
}

/// `1073741824` -> `1G`, for display.
pub fn format_mem(bytes: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (1 << 40, "T"),
        (1 << 30, "G"),
        (1 << 20, "M"),
        (1 << 10, "K"),
    ];
    for (size, unit) in UNITS {
        if bytes >= size {
            let v = bytes as f64 / size as f64;
            return if v.fract() == 0.0 {
                format!("{v}{unit}")
            } else {
                format!("{v:.1}{unit}")
            };
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_give_one_value_for_all_or_one_per_node() {
        let s = ClusterSpec::new("t", 3, Some("0.5,1,0.25"), Some("2G")).unwrap();
        let cpus: Vec<f64> = s.nodes.iter().map(|n| n.cpu).collect();
        assert_eq!(cpus, vec![0.5, 1.0, 0.25]);
        assert!(s.nodes.iter().all(|n| n.mem == 2 << 30));
        let e = ClusterSpec::new("t", 3, Some("0.5,1"), None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--cpu 0.5,1: 2 values for 3 nodes (give one value, or one per node)"
        );
        let e = ClusterSpec::new("t", 2, None, Some("1G,lots")).unwrap_err();
        assert_eq!(e.to_string(), "--mem 1G,lots: bad value `lots`");
    }

    #[test]
    fn bad_counts_names_and_sizes_are_refused() {
        assert!(ClusterSpec::new("t", 0, None, None).is_err());
        assert!(ClusterSpec::new("t", 255, None, None).is_err());
        assert!(ClusterSpec::new("a b", 1, None, None).is_err());
        assert!(ClusterSpec::new("a.b", 1, None, None).is_err());
        assert_eq!(parse_cpu("0"), None);
        assert_eq!(parse_cpu("nan"), None);
        assert_eq!(parse_mem("1M"), None);
        assert_eq!(parse_mem("512M"), Some(512 << 20));
        assert_eq!(parse_mem("1.5G"), Some(3 << 29));
        assert_eq!(format_mem(3 << 29), "1.5G");
        assert_eq!(format_mem(1 << 30), "1G");
    }
}
