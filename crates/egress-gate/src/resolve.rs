//! Name resolution, done by the gate itself in Rust: the gate runs in an
//! image without NSS, and resolving here means the only names that ever
//! reach a DNS server are names the policy allowed.

use std::net::{IpAddr, SocketAddr};

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;

#[derive(Debug, Clone)]
pub(crate) struct Resolver {
    inner: TokioResolver,
}

impl Resolver {
    /// Asks `server`, or the first nameserver of `/etc/resolv.conf`.
    pub(crate) fn new(server: Option<SocketAddr>) -> std::io::Result<Self> {
        let server = match server {
            Some(server) => server,
            None => system_nameserver()?,
        };
        let connections = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
            .into_iter()
            .map(|mut c| {
                c.port = server.port();
                c
            })
            .collect();
        let config = ResolverConfig::from_name_servers(vec![NameServerConfig::new(
            server.ip(),
            true,
            connections,
        )]);
        let mut options = ResolverOpts::default();
        // Names are looked up exactly as allowed: no search domains.
        options.ndots = 0;
        let inner = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(options)
            .build()
            .map_err(std::io::Error::other)?;
        Ok(Self { inner })
    }

    pub(crate) async fn lookup(&self, name: &str) -> Result<Vec<IpAddr>, String> {
        let fqdn = format!("{name}.");
        self.inner
            .lookup_ip(fqdn.as_str())
            .await
            .map(|found| found.iter().collect())
            .map_err(|err| err.to_string())
    }
}

fn system_nameserver() -> std::io::Result<SocketAddr> {
    let conf = std::fs::read_to_string("/etc/resolv.conf")?;
    conf.lines()
        .filter_map(|line| line.trim().strip_prefix("nameserver"))
        .find_map(|rest| rest.trim().parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .ok_or_else(|| {
            std::io::Error::other("no nameserver in /etc/resolv.conf; set CLAUDE_BOTTLE_GATE_DNS")
        })
}
