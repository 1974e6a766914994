//! Addresses as HAProxy reads them in `bind`, `server`, `addr` and `log`.
//!
//! - `host:port` where the last colon separates the port, so `:::80` is `::` port
//!   80 and `[::1]:80` is the bracketed form;
//! - an empty host or `*` is every IPv4 address;
//! - IPv4 in the classic `inet_aton` forms: `10.0.16` is 10.0.0.16, `10.16` is
//!   10.0.0.16 and a lone number is a 32-bit address;
//! - host names are resolved once, when the configuration is checked;
//! - a path starting with `/` (or `unix@path`) is a UNIX socket; for `bind` it is
//!   put under `unix-bind prefix`;
//! - `ipv4@` and `ipv6@` force the family.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

/// Which port a server connects to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerPort {
    /// A fixed port.
    Fixed(u16),
    /// No port: the port the client connected to (the seed's RPC backends).
    ClientPort,
    /// `+N` / `-N`: the client's port shifted by N.
    Offset(i32),
}

/// Where a server lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ServerAddr {
    Inet { ip: IpAddr, port: ServerPort },
    Unix(PathBuf),
}

impl fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerAddr::Inet { ip, port } => {
                match ip {
                    IpAddr::V4(v4) => write!(f, "{v4}")?,
                    IpAddr::V6(v6) => write!(f, "[{v6}]")?,
                }
                match port {
                    ServerPort::Fixed(p) => write!(f, ":{p}"),
                    ServerPort::ClientPort => Ok(()),
                    ServerPort::Offset(o) => write!(f, ":{o:+}"),
                }
            }
            ServerAddr::Unix(p) => write!(f, "{}", p.display()),
        }
    }
}

/// One listening address of a `bind` line (a port range gives several).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ListenAddr {
    Inet(SocketAddr),
    /// The path as written (`/ssl:web`) and the path on disk after `unix-bind prefix`.
    Unix {
        written: String,
        path: PathBuf,
    },
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Inet(sa) => write!(f, "{sa}"),
            ListenAddr::Unix { path, .. } => write!(f, "{}", path.display()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddrError {
    #[error("missing address")]
    Empty,
    #[error("missing port specification in '{0}'")]
    MissingPort(String),
    #[error("invalid port '{0}'")]
    BadPort(String),
    #[error("invalid port range '{0}'")]
    BadRange(String),
    #[error("port range not permitted here in '{0}'")]
    RangeNotAllowed(String),
    #[error("invalid address: '{host}' in '{text}'")]
    BadHost { host: String, text: String },
    #[error("address family prefix '{0}' is not supported")]
    UnsupportedPrefix(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Any,
    V4,
    V6,
}

/// Splits an optional `proto@` prefix.
fn strip_prefix(text: &str) -> Result<(Family, bool, &str), AddrError> {
    if let Some((pfx, rest)) = text.split_once('@') {
        return match pfx {
            "ipv4" | "tcp4" => Ok((Family::V4, false, rest)),
            "ipv6" | "tcp6" => Ok((Family::V6, false, rest)),
            "tcp" => Ok((Family::Any, false, rest)),
            "unix" => Ok((Family::Any, true, rest)),
            other => Err(AddrError::UnsupportedPrefix(format!("{other}@"))),
        };
    }
    Ok((Family::Any, text.starts_with('/'), text))
}

/// Splits `host:port` on the last colon, understanding `[v6]:port`.
fn split_host_port(text: &str) -> Result<(&str, Option<&str>), AddrError> {
    if let Some(rest) = text.strip_prefix('[') {
        let Some(end) = rest.find(']') else {
            let host = text.rsplit_once(':').map_or(text, |(h, _)| h);
            return Err(AddrError::BadHost {
                host: host.to_owned(),
                text: text.to_owned(),
            });
        };
        let host = &rest[..end];
        let after = &rest[end + 1..];
        return match after.strip_prefix(':') {
            Some(p) => Ok((host, Some(p))),
            None if after.is_empty() => Ok((host, None)),
            None => Err(AddrError::BadHost {
                host: text.to_owned(),
                text: text.to_owned(),
            }),
        };
    }
    match text.rsplit_once(':') {
        Some((h, p)) => Ok((h, Some(p))),
        None => Ok((text, None)),
    }
}

/// The classic `inet_aton` forms: a, a.b, a.b.c, a.b.c.d with decimal parts
/// (HAProxy hands these to the C library, which accepts them).
fn inet_aton(host: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = host.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut nums = Vec::with_capacity(parts.len());
    for p in &parts {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        nums.push(p.parse::<u64>().ok()?);
    }
    let v: u64 = match nums.as_slice() {
        [a] => *a,
        [a, b] if *a < 256 && *b < (1 << 24) => a << 24 | b,
        [a, b, c] if *a < 256 && *b < 256 && *c < (1 << 16) => a << 24 | b << 16 | c,
        [a, b, c, d] if [a, b, c, d].iter().all(|x| **x < 256) => a << 24 | b << 16 | c << 8 | d,
        _ => return None,
    };
    u32::try_from(v).ok().map(Ipv4Addr::from)
}

fn resolve_host(host: &str, family: Family, text: &str) -> Result<IpAddr, AddrError> {
    let bad = || AddrError::BadHost {
        host: host.to_owned(),
        text: text.to_owned(),
    };
    if host.is_empty() || host == "*" {
        return Ok(match family {
            Family::V6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        });
    }
    if let Ok(v6) = host.parse::<Ipv6Addr>() {
        return if family == Family::V4 { Err(bad()) } else { Ok(IpAddr::V6(v6)) };
    }
    if let Some(v4) = inet_aton(host) {
        return if family == Family::V6 { Err(bad()) } else { Ok(IpAddr::V4(v4)) };
    }
    // Purely numeric dotted forms that inet_aton refused are not names.
    if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(bad());
    }
    let valid_name = host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    if !valid_name {
        return Err(bad());
    }
    let addrs = (host, 0u16).to_socket_addrs().map_err(|_| bad())?;
    addrs
        .map(|sa| sa.ip())
        .find(|ip| match family {
            Family::Any => true,
            Family::V4 => ip.is_ipv4(),
            Family::V6 => ip.is_ipv6(),
        })
        .ok_or_else(bad)
}

fn parse_port(p: &str) -> Result<u16, AddrError> {
    let bad = || AddrError::BadPort(p.to_owned());
    if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match p.parse::<u32>() {
        Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
        _ => Err(bad()),
    }
}

/// Parses one address of a `bind` line. A comma-separated list and port ranges
/// give several listeners. `unix_prefix` is `unix-bind prefix`.
pub fn parse_listen(text: &str, unix_prefix: Option<&str>) -> Result<Vec<ListenAddr>, AddrError> {
    let mut out = Vec::new();
    for item in text.split(',') {
        if item.is_empty() {
            return Err(AddrError::Empty);
        }
        let (family, unix, rest) = strip_prefix(item)?;
        if unix {
            let path = match unix_prefix {
                Some(pfx) => PathBuf::from(format!("{pfx}{rest}")),
                None => PathBuf::from(rest),
            };
            out.push(ListenAddr::Unix {
                written: rest.to_owned(),
                path,
            });
            continue;
        }
        let (host, port) = split_host_port(rest)?;
        let Some(port) = port else {
            return Err(AddrError::MissingPort(item.to_owned()));
        };
        let ip = resolve_host(host, family, item)?;
        let (lo, hi) = match port.split_once('-') {
            Some((a, b)) => {
                let lo = parse_port(a).map_err(|_| AddrError::BadRange(port.to_owned()))?;
                let hi = parse_port(b).map_err(|_| AddrError::BadRange(port.to_owned()))?;
                if hi < lo {
                    return Err(AddrError::BadRange(port.to_owned()));
                }
                (lo, hi)
            }
            None => {
                let p = parse_port(port)?;
                (p, p)
            }
        };
        for p in lo..=hi {
            out.push(ListenAddr::Inet(SocketAddr::new(ip, p)));
        }
    }
    Ok(out)
}

/// Parses a server's address. No port (or an empty one) means the client's port.
pub fn parse_server(text: &str) -> Result<ServerAddr, AddrError> {
    if text.is_empty() {
        return Err(AddrError::Empty);
    }
    let (family, unix, rest) = strip_prefix(text)?;
    if unix {
        return Ok(ServerAddr::Unix(PathBuf::from(rest)));
    }
    let (host, port) = split_host_port(rest)?;
    let port = match port {
        None | Some("") => ServerPort::ClientPort,
        Some(p) if p.contains('-') && !p.starts_with('-') => return Err(AddrError::RangeNotAllowed(text.to_owned())),
        Some(p) => {
            let (sign, digits) = match p.as_bytes()[0] {
                b'+' => (1, &p[1..]),
                b'-' => (-1, &p[1..]),
                _ => (0, p),
            };
            if let Some(c) = digits.chars().find(|c| !c.is_ascii_digit()) {
                return Err(AddrError::BadHost {
                    host: format!("invalid character '{c}' in port number"),
                    text: text.to_owned(),
                });
            }
            let n: i64 = digits.parse().map_err(|_| AddrError::BadPort(p.to_owned()))?;
            if n > 65535 {
                return Err(AddrError::BadPort(p.to_owned()));
            }
            if sign == 0 {
                // Port 0 is accepted by HAProxy and means the client's port, like no port.
                if n == 0 {
                    ServerPort::ClientPort
                } else {
                    ServerPort::Fixed(n as u16)
                }
            } else {
                ServerPort::Offset((sign * n) as i32)
            }
        }
    };
    let ip = resolve_host(host, family, text)?;
    Ok(ServerAddr::Inet { ip, port })
}

/// Parses an address that must carry a host only (`addr` on a server, `source`).
pub fn parse_host(text: &str) -> Result<IpAddr, AddrError> {
    let (family, _, rest) = strip_prefix(text)?;
    let host = rest.strip_prefix('[').and_then(|r| r.strip_suffix(']')).unwrap_or(rest);
    resolve_host(host, family, text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn inet(s: &str) -> ListenAddr {
        ListenAddr::Inet(s.parse().unwrap())
    }

    #[rstest]
    #[case(":80", vec![inet("0.0.0.0:80")])]
    #[case("*:80", vec![inet("0.0.0.0:80")])]
    #[case("0.0.0.0:135", vec![inet("0.0.0.0:135")])]
    #[case("10.0.0.17:443", vec![inet("10.0.0.17:443")])]
    #[case("10.0.16:80", vec![inet("10.0.0.16:80")])]
    #[case(":::80", vec![inet("[::]:80")])]
    #[case("::1:80", vec![inet("[::1]:80")])]
    #[case("[::1]:80", vec![inet("[::1]:80")])]
    #[case("ipv6@:80", vec![inet("[::]:80")])]
    #[case(":8000-8002", vec![inet("0.0.0.0:8000"), inet("0.0.0.0:8001"), inet("0.0.0.0:8002")])]
    #[case(":80,:81", vec![inet("0.0.0.0:80"), inet("0.0.0.0:81")])]
    #[case("167772176:80", vec![inet("10.0.0.16:80")])]
    fn listen_addresses(#[case] text: &str, #[case] want: Vec<ListenAddr>) {
        assert_eq!(parse_listen(text, None).unwrap(), want);
    }

    #[test]
    fn unix_bind_prefix() {
        let got = parse_listen("/ssl:web", Some("/run/lbd")).unwrap();
        assert_eq!(
            got,
            vec![ListenAddr::Unix {
                written: "/ssl:web".into(),
                path: "/run/lbd/ssl:web".into()
            }]
        );
    }

    #[rstest]
    #[case(":0")]
    #[case(":70000")]
    #[case(":80-79")]
    #[case("1.2.3")]
    #[case("[::1:80")]
    #[case("300.1.1.1:80")]
    #[case("no_such-host.invalid:80")]
    #[case("udp@:80")]
    fn bad_listen(#[case] text: &str) {
        assert!(parse_listen(text, None).is_err(), "{text}");
    }

    #[rstest]
    #[case("10.0.0.15:80", "10.0.0.15:80")]
    #[case("10.0.0.15", "10.0.0.15")]
    #[case("10.0.15", "10.0.0.15")]
    #[case("1.1.1.1:", "1.1.1.1")]
    #[case("1.1.1.1:+1", "1.1.1.1:+1")]
    #[case("1.1.1.1:-1", "1.1.1.1:-1")]
    #[case("[::1]:80", "[::1]:80")]
    #[case("/tmp/sock", "/tmp/sock")]
    fn server_addresses(#[case] text: &str, #[case] shown: &str) {
        assert_eq!(parse_server(text).unwrap().to_string(), shown);
    }

    #[rstest]
    #[case("1.1.1.1:80-90")]
    #[case("300.1.1.1:80")]
    #[case("1.1.1.1:abc")]
    #[case("::1")]
    #[case("")]
    fn bad_servers(#[case] text: &str) {
        assert!(parse_server(text).is_err(), "{text}");
    }
}
