//! The SSRF guard of webhook endpoints: an endpoint whose host is, or resolves to, a loopback,
//! private (RFC 1918, fc00::/7), link-local (169.254/16 with the cloud metadata address,
//! fe80::/10), CGNAT (100.64/10), unspecified, multicast or broadcast address is refused unless
//! `[webhooks] allow_private` lists its network. It is checked at registration and again at every
//! delivery: the sender's HTTP client resolves names through [`Resolver`], which hands the
//! connector only addresses it checked (so a name that changed its answer since registration
//! cannot reach a refused address), and an address written in the URL is checked before sending.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use crate::config::{IpNet, WebhooksConfig};

/// An endpoint address the guard refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{host} is {ip}, a {kind} address: webhooks may not reach it (list its network in [webhooks] allow_private to allow it)")]
pub struct NotAllowed {
    /// The URL's host.
    pub host: String,
    /// The address it is or resolved to.
    pub ip: IpAddr,
    /// `loopback`, `private`, `link-local`, …
    pub kind: &'static str,
}

/// Which refused kind of address `ip` is, if any (IPv4-mapped IPv6 addresses count as IPv4).
pub fn refused_kind(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if v4.is_loopback() {
                Some("loopback")
            } else if v4.is_private() {
                Some("private")
            } else if v4.is_link_local() {
                Some("link-local")
            } else if v4.is_unspecified() || a == 0 {
                Some("unspecified")
            } else if a == 100 && (64..128).contains(&b) {
                Some("CGNAT")
            } else if v4.is_multicast() || v4.is_broadcast() {
                Some("multicast or broadcast")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if first & 0xfe00 == 0xfc00 {
                Some("private")
            } else if first & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if v6.is_multicast() {
                Some("multicast or broadcast")
            } else {
                None
            }
        }
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The guard: the refused kinds, less the networks the operator allowed.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    allowed: Vec<IpNet>,
}

impl Guard {
    /// The guard `[webhooks]` asks for.
    pub fn new(config: &WebhooksConfig) -> Guard {
        Guard { allowed: config.allowed_nets() }
    }

    /// Refuses `ip` (the address of `host`) when it is of a refused kind and not allowed.
    pub fn check(&self, host: &str, ip: IpAddr) -> Result<(), NotAllowed> {
        let ip = canonical(ip);
        match refused_kind(ip) {
            Some(kind) if !self.allowed.iter().any(|n| n.contains(ip)) => {
                Err(NotAllowed { host: host.to_owned(), ip, kind })
            }
            _ => Ok(()),
        }
    }

    /// The URL's host when it is an address, checked (`None`: a name, for [`Resolver`]).
    pub fn check_literal(&self, url: &reqwest::Url) -> Result<Option<IpAddr>, NotAllowed> {
        let host = url.host_str().unwrap_or_default();
        let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() else { return Ok(None) };
        self.check(&ip.to_string(), ip).map(|()| Some(ip))
    }

    /// Resolves `url`'s host now (blocking) and checks every address it has; the reason when
    /// one is refused or the name does not resolve.
    pub fn check_url_blocking(&self, url: &reqwest::Url) -> Result<(), String> {
        if self.check_literal(url).map_err(|e| e.to_string())?.is_some() {
            return Ok(());
        }
        let host = url.host_str().unwrap_or_default();
        let port = url.port_or_known_default().unwrap_or(443);
        let addrs: Vec<SocketAddr> =
            (host, port).to_socket_addrs().map_err(|e| format!("{host} does not resolve: {e}"))?.collect();
        if addrs.is_empty() {
            return Err(format!("{host} does not resolve"));
        }
        addrs.iter().try_for_each(|a| self.check(host, a.ip())).map_err(|e| e.to_string())
    }
}

/// The webhook client's DNS resolver: every address a name resolves to is checked, and a name
/// with any refused address resolves to nothing.
pub struct Resolver(pub Arc<Guard>);

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = Arc::clone(&self.0);
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            for a in &addrs {
                guard.check(&host, a.ip())?;
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The guard's refusal inside a client error, if that is why it failed.
pub fn refusal<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a NotAllowed> {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(found) = e.downcast_ref::<NotAllowed>() {
            return Some(found);
        }
        cause = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses_are_refused_unless_allowed() {
        let guard = Guard::default();
        for (ip, kind) in [
            ("127.0.0.1", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local"),
            ("100.64.0.1", "CGNAT"),
            ("0.0.0.0", "unspecified"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fd00::1", "private"),
            ("fe80::1", "link-local"),
            ("::ffff:10.0.0.1", "private"),
            ("::ffff:169.254.169.254", "link-local"),
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(guard.check("h", ip).unwrap_err().kind, kind, "{ip}");
        }
        for ip in ["93.184.216.34", "100.128.0.1", "2606:4700::1111", "172.32.0.1"] {
            assert!(guard.check("h", ip.parse().unwrap()).is_ok(), "{ip}");
        }
        let config =
            WebhooksConfig { allow_private: vec!["127.0.0.0/8".into(), "fd00::/8".into()], ..Default::default() };
        let guard = Guard::new(&config);
        assert!(guard.check("h", "127.5.6.7".parse().unwrap()).is_ok());
        assert!(guard.check("h", "::ffff:127.0.0.1".parse().unwrap()).is_ok());
        assert!(guard.check("h", "fd12::1".parse().unwrap()).is_ok());
        assert!(guard.check("h", "::1".parse().unwrap()).is_err(), "only what is listed");
        assert!(guard.check("h", "10.0.0.1".parse().unwrap()).is_err());
        let url = reqwest::Url::parse("http://[::1]:8080/x").unwrap();
        assert!(guard.check_literal(&url).is_err());
        assert!(guard.check_url_blocking(&reqwest::Url::parse("http://127.0.0.1:9/").unwrap()).is_ok());
    }
}
