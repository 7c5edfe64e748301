//! Which network addresses `http` inputs may reach, and the resolver and redirect policy
//! that hold every connection to it.
//!
//! Under `grove serve`'s policy an `http` input may not reach the server's own host or
//! network: loopback, private, shared (CGNAT), link-local (cloud metadata services live
//! there), unspecified, multicast and broadcast addresses are refused unless the operator
//! allows the host, the address or its network (`--allow-host`). The rule is applied
//!
//! - to a URI whose host is an address, when the statement is planned (a 400 at
//!   submission);
//! - to every address a host name resolves to, when a connection is made (the resolver
//!   drops refused addresses, and fails when none is left), so a name cannot be pointed
//!   at a private address after planning;
//! - to every redirect, before it is followed (the scheme too).
//!
//! Nothing here connects: the resolver's lookup is a function, so tests hand it the
//! answers they need.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use datafusion::common::{DataFusionError, Result};
use futures::future::BoxFuture;

/// A host the operator allows `http` inputs to reach although its address is not public:
/// a name (exact, any case), an address, or a network in CIDR form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllowedHost {
    /// A host name, lower case.
    Name(String),
    /// A network (an address is a network of its full length).
    Net(IpAddr, u8),
}

impl AllowedHost {
    /// Parses `10.0.0.0/8`, `192.168.1.7`, `::1`, `[::1]` or `files.internal`.
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        let bad = |why: &str| {
            DataFusionError::Configuration(format!("Allowed host [{text}] is not valid: {why}"))
        };
        if text.is_empty() {
            return Err(bad("empty"));
        }
        if let Some((addr, len)) = text.split_once('/') {
            let ip: IpAddr = addr
                .trim_matches(['[', ']'])
                .parse()
                .map_err(|_| bad("not an address before '/'"))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let len: u8 = len
                .parse()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| bad("not a prefix length after '/'"))?;
            return Ok(Self::Net(ip, len));
        }
        if let Ok(ip) = text.trim_matches(['[', ']']).parse::<IpAddr>() {
            return Ok(Self::Net(ip, if ip.is_ipv4() { 32 } else { 128 }));
        }
        if text.contains(|c: char| c.is_whitespace() || c == '/' || c == ':') {
            return Err(bad("not a host name, an address or a network"));
        }
        Ok(Self::Name(text.to_ascii_lowercase()))
    }

    fn allows(&self, host: &str, ip: IpAddr) -> bool {
        match self {
            Self::Name(name) => name.eq_ignore_ascii_case(host.trim_end_matches('.')),
            Self::Net(net, len) => in_network(canonical(ip), canonical(*net), *len),
        }
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

fn in_network(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// What kind of non-public address `ip` is; `None` for a public one.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => non_public_v6(v6),
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    Some(if ip.is_loopback() {
        "loopback"
    } else if ip.is_unspecified() || a == 0 {
        "unspecified"
    } else if ip.is_private() {
        "private"
    } else if ip.is_link_local() {
        "link-local"
    } else if a == 100 && (64..128).contains(&b) {
        "shared (carrier-grade NAT)"
    } else if ip.is_broadcast() {
        "broadcast"
    } else if ip.is_multicast() || a >= 240 {
        "multicast or reserved"
    } else {
        return None;
    })
}

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    Some(if ip.is_loopback() {
        "loopback"
    } else if ip.is_unspecified() {
        "unspecified"
    } else if first & 0xfe00 == 0xfc00 {
        "private (unique local)"
    } else if first & 0xffc0 == 0xfe80 {
        "link-local"
    } else if ip.is_multicast() {
        "multicast or reserved"
    } else {
        return None;
    })
}

/// The rule: refuse non-public addresses unless allowed. `restrict` false allows all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AddressRule {
    /// Whether non-public addresses are refused.
    pub restrict: bool,
    /// What the operator allows although it is not public.
    pub allowed: Vec<AllowedHost>,
}

impl AddressRule {
    /// Refuses `ip` (an address of `host`) when it is not public and not allowed.
    pub fn check(&self, host: &str, ip: IpAddr) -> Result<()> {
        if !self.restrict {
            return Ok(());
        }
        let Some(kind) = non_public(ip) else {
            return Ok(());
        };
        if self.allowed.iter().any(|a| a.allows(host, ip)) {
            return Ok(());
        }
        let shown = if host.trim_matches(['[', ']']) == ip.to_string() {
            format!("[{ip}]")
        } else {
            format!("[{host}] ([{ip}])")
        };
        Err(DataFusionError::Plan(format!(
            "Reading {shown} is not allowed: it is a {kind} address, which http inputs may \
             not reach (start the server with --allow-host {} to allow it)",
            if host.parse::<IpAddr>().is_ok() || host.starts_with('[') {
                ip.to_string()
            } else {
                host.to_string()
            }
        )))
    }

    /// Refuses a URL whose host is a refused address (a name is checked when it is
    /// resolved).
    pub fn check_url(&self, url: &reqwest::Url) -> Result<()> {
        let host = url.host_str().unwrap_or_default().trim_matches(['[', ']']);
        match host.parse::<IpAddr>() {
            Ok(ip) => self.check(host, ip),
            Err(_) => Ok(()),
        }
    }
}

/// Looks a host name up: every address it has.
pub type Lookup =
    Arc<dyn Fn(String) -> BoxFuture<'static, std::io::Result<Vec<IpAddr>>> + Send + Sync>;

/// The system's resolver (through tokio).
pub fn system_lookup() -> Lookup {
    Arc::new(|host: String| {
        Box::pin(async move {
            Ok(tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .map(|a| a.ip())
                .collect())
        })
    })
}

/// reqwest's resolver under an [`AddressRule`]: refused addresses are dropped, and a
/// name left without any is an error naming why.
pub struct GuardedResolver {
    rule: AddressRule,
    lookup: Lookup,
}

impl GuardedResolver {
    /// Resolves with `lookup` under `rule`.
    pub fn new(rule: AddressRule, lookup: Lookup) -> Self {
        Self { rule, lookup }
    }

    /// The addresses of `host` the rule allows.
    pub async fn allowed(&self, host: &str) -> Result<Vec<IpAddr>> {
        let found = (self.lookup)(host.to_string())
            .await
            .map_err(|e| DataFusionError::Execution(format!("Cannot resolve [{host}]: {e}")))?;
        let mut refusal = None;
        let allowed: Vec<IpAddr> = found
            .into_iter()
            .filter(|ip| match self.rule.check(host, *ip) {
                Ok(()) => true,
                Err(e) => {
                    refusal.get_or_insert(e);
                    false
                }
            })
            .collect();
        match (allowed.is_empty(), refusal) {
            (true, Some(e)) => Err(e),
            (true, None) => Err(DataFusionError::Execution(format!(
                "Cannot resolve [{host}]: no address"
            ))),
            (false, _) => Ok(allowed),
        }
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        let this = Self {
            rule: self.rule.clone(),
            lookup: Arc::clone(&self.lookup),
        };
        Box::pin(async move {
            let ips = this.allowed(&host).await.map_err(
                |e| -> Box<dyn std::error::Error + Send + Sync> {
                    Box::new(std::io::Error::other(e.strip_backtrace()))
                },
            )?;
            let addrs: reqwest::dns::Addrs =
                Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// A message with every cause of `e` (reqwest's own message leaves out why a request
/// failed, e.g. that the policy refused an address).
pub fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(allowed: &[&str]) -> AddressRule {
        AddressRule {
            restrict: true,
            allowed: allowed
                .iter()
                .map(|a| AllowedHost::parse(a).unwrap())
                .collect(),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn non_public_addresses_are_named() {
        for (addr, kind) in [
            ("127.0.0.1", "loopback"),
            ("127.8.9.10", "loopback"),
            ("::1", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local"),
            ("fe80::1", "link-local"),
            ("fd00::1", "private (unique local)"),
            ("0.0.0.0", "unspecified"),
            ("::", "unspecified"),
            ("100.64.0.1", "shared (carrier-grade NAT)"),
            ("255.255.255.255", "broadcast"),
            ("224.0.0.1", "multicast or reserved"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "link-local"),
        ] {
            assert_eq!(non_public(ip(addr)), Some(kind), "{addr}");
        }
        for addr in ["8.8.8.8", "93.184.216.34", "2606:4700::1111", "100.128.0.1"] {
            assert_eq!(non_public(ip(addr)), None, "{addr}");
        }
    }

    #[test]
    fn allowed_hosts_parse_and_match() {
        assert!(AllowedHost::parse("10.0.0.0/33").is_err());
        assert!(AllowedHost::parse("x/8").is_err());
        assert!(AllowedHost::parse("").is_err());
        assert!(AllowedHost::parse("a b").is_err());
        let r = rule(&["10.0.0.0/8", "127.0.0.1", "[::1]", "Files.Internal"]);
        r.check("10.9.8.7", ip("10.9.8.7")).unwrap();
        r.check("127.0.0.1", ip("127.0.0.1")).unwrap();
        r.check("localhost", ip("::1")).unwrap();
        r.check("files.internal", ip("192.168.0.5")).unwrap();
        r.check("FILES.INTERNAL.", ip("192.168.0.5")).unwrap();
        r.check("example.org", ip("93.184.216.34")).unwrap();
        let e = r.check("127.0.0.2", ip("127.0.0.2")).unwrap_err();
        assert!(
            e.to_string().contains(
                "Reading [127.0.0.2] is not allowed: it is a loopback address, which http \
                 inputs may not reach (start the server with --allow-host 127.0.0.2"
            ),
            "{e}"
        );
        let e = r.check("other.internal", ip("192.168.0.5")).unwrap_err();
        assert!(
            e.to_string().contains(
                "Reading [other.internal] ([192.168.0.5]) is not allowed: it is a private address"
            ),
            "{e}"
        );
        AddressRule::default()
            .check("localhost", ip("127.0.0.1"))
            .unwrap();
    }

    #[test]
    fn urls_with_addresses_are_checked_when_planned() {
        let r = rule(&[]);
        for url in [
            "http://127.0.0.1:8888/druid/v2/sql",
            "http://[::1]/x",
            "http://169.254.169.254/latest/meta-data/",
            "http://[::ffff:10.0.0.1]/x",
            "https://0.0.0.0/",
        ] {
            assert!(
                r.check_url(&reqwest::Url::parse(url).unwrap()).is_err(),
                "{url}"
            );
        }
        // Names wait for their resolution.
        r.check_url(&reqwest::Url::parse("http://localhost/x").unwrap())
            .unwrap();
        r.check_url(&reqwest::Url::parse("https://93.184.216.34/x").unwrap())
            .unwrap();
    }

    /// The resolver never connects anywhere: its lookup is a table.
    fn table(entries: &[(&str, &[&str])]) -> Lookup {
        let entries: Vec<(String, Vec<IpAddr>)> = entries
            .iter()
            .map(|(h, ips)| (h.to_string(), ips.iter().map(|i| ip(i)).collect()))
            .collect();
        Arc::new(move |host: String| {
            let found = entries
                .iter()
                .find(|(h, _)| *h == host)
                .map(|(_, ips)| ips.clone());
            Box::pin(async move {
                found.ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::NotFound, "no such host")
                })
            })
        })
    }

    #[tokio::test]
    async fn the_resolver_drops_refused_addresses() {
        let lookup = table(&[
            ("metadata.internal", &["169.254.169.254"]),
            ("both.example", &["10.0.0.7", "93.184.216.34"]),
            ("public.example", &["93.184.216.34"]),
            ("files.internal", &["192.168.0.5"]),
        ]);
        let resolver = GuardedResolver::new(rule(&["files.internal"]), lookup);
        let e = resolver.allowed("metadata.internal").await.unwrap_err();
        assert!(e.to_string().contains("link-local"), "{e}");
        assert_eq!(
            resolver.allowed("both.example").await.unwrap(),
            vec![ip("93.184.216.34")],
            "only the public address is kept"
        );
        assert_eq!(
            resolver.allowed("files.internal").await.unwrap(),
            vec![ip("192.168.0.5")]
        );
        let e = resolver.allowed("nowhere.example").await.unwrap_err();
        assert!(e.to_string().contains("no such host"), "{e}");
        // Through reqwest's trait, as a connection would ask.
        use reqwest::dns::Resolve;
        let name: reqwest::dns::Name = "metadata.internal".parse().unwrap();
        let e = match resolver.resolve(name).await {
            Ok(_) => panic!("resolved"),
            Err(e) => e.to_string(),
        };
        assert!(e.contains("not allowed"), "{e}");
    }
}
