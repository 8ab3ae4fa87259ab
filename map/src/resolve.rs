//! Host name resolution for map lines that name a host instead of an address.

use std::net::{IpAddr, ToSocketAddrs};

/// Turns a host name into one address.
pub trait Resolver {
    /// The address of `host`, or a human-readable reason why it has none.
    fn resolve(&self, host: &str) -> Result<IpAddr, String>;
}

/// The system resolver (`getaddrinfo`: /etc/hosts, DNS, ...). An IPv4 address is
/// preferred when a name has both, as openMosix did.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn resolve(&self, host: &str) -> Result<IpAddr, String> {
        let addrs: Vec<IpAddr> = (host, 0)
            .to_socket_addrs()
            .map_err(|e| e.to_string())?
            .map(|sa| sa.ip())
            .collect();
        addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or_else(|| addrs.first())
            .copied()
            .ok_or_else(|| "the name has no address".to_string())
    }
}

/// A resolver that knows no names: maps must use literal addresses. Used where name
/// lookups must not happen (fuzzing, checking an already-expanded table).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoResolver;

impl Resolver for NoResolver {
    fn resolve(&self, _host: &str) -> Result<IpAddr, String> {
        Err("host names are not resolved here; use an address".to_string())
    }
}
