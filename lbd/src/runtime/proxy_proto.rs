//! The PROXY protocol (v1 text and v2 binary), parsed and built by the `ppp`
//! crate: `bind ... accept-proxy` reads the header a relay (the SSL tab, another
//! load balancer) puts before the client's bytes, and `server ... send-proxy` /
//! `send-proxy-v2` writes one toward a server.

use std::net::SocketAddr;
use std::time::Duration;

use ppp::{v1, v2, HeaderResult, PartialResult};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::config::model::ProxyVersion;

/// Largest header accepted: a v2 header with addresses and some TLVs. Anything
/// longer is not a PROXY header a relay would send.
const MAX_HEADER: usize = 4096;

/// What an accepted PROXY header says.
#[derive(Debug)]
pub struct Received {
    /// The client as the relay saw it; `None` for `LOCAL`/`UNKNOWN` (keep the socket's).
    pub src: Option<SocketAddr>,
    pub dst: Option<SocketAddr>,
    /// Bytes the client sent after the header, to be processed first.
    pub rest: Vec<u8>,
}

/// Reads a PROXY header, waiting at most `wait` for it (the attack it bounds: a
/// client that connects and never sends its header). Garbage is an error.
pub async fn read_header<S: AsyncRead + Unpin>(stream: &mut S, wait: Duration) -> Result<Received, String> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut buf: Vec<u8> = Vec::with_capacity(128);
    let mut chunk = [0u8; 512];
    loop {
        if !buf.is_empty() {
            let parsed = HeaderResult::parse(&buf);
            if !parsed.is_incomplete() {
                return match parsed {
                    HeaderResult::V1(Ok(h)) => {
                        let len = h.header.len();
                        let (src, dst) = match h.addresses {
                            v1::Addresses::Tcp4(a) => (
                                Some(SocketAddr::from((a.source_address, a.source_port))),
                                Some(SocketAddr::from((a.destination_address, a.destination_port))),
                            ),
                            v1::Addresses::Tcp6(a) => (
                                Some(SocketAddr::from((a.source_address, a.source_port))),
                                Some(SocketAddr::from((a.destination_address, a.destination_port))),
                            ),
                            v1::Addresses::Unknown => (None, None),
                        };
                        Ok(Received {
                            src,
                            dst,
                            rest: buf[len.min(buf.len())..].to_vec(),
                        })
                    }
                    HeaderResult::V2(Ok(h)) => {
                        let len = h.len();
                        let (src, dst) = match (h.command, h.addresses) {
                            (v2::Command::Proxy, v2::Addresses::IPv4(a)) => (
                                Some(SocketAddr::from((a.source_address, a.source_port))),
                                Some(SocketAddr::from((a.destination_address, a.destination_port))),
                            ),
                            (v2::Command::Proxy, v2::Addresses::IPv6(a)) => (
                                Some(SocketAddr::from((a.source_address, a.source_port))),
                                Some(SocketAddr::from((a.destination_address, a.destination_port))),
                            ),
                            _ => (None, None),
                        };
                        Ok(Received {
                            src,
                            dst,
                            rest: buf[len.min(buf.len())..].to_vec(),
                        })
                    }
                    HeaderResult::V1(Err(e)) => Err(format!("invalid PROXY v1 header: {e}")),
                    HeaderResult::V2(Err(e)) => Err(format!("invalid PROXY header: {e}")),
                };
            }
        }
        if buf.len() >= MAX_HEADER {
            return Err("PROXY header too long".into());
        }
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Err(_) => return Err("timeout waiting for the PROXY header".into()),
            Ok(Err(e)) => return Err(format!("reading the PROXY header: {e}")),
            Ok(Ok(0)) => return Err("connection closed before the PROXY header".into()),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The header to send a server for a client seen as `src` → `dst`. Without
/// addresses (a UNIX client) it says `UNKNOWN` (v1) or `LOCAL` (v2).
pub fn header(version: ProxyVersion, src: Option<SocketAddr>, dst: Option<SocketAddr>) -> Vec<u8> {
    let pair = match (src, dst) {
        (Some(s), Some(d)) if s.is_ipv4() == d.is_ipv4() => Some((s, d)),
        (Some(s), Some(d)) => Some((to_v6(s), to_v6(d))),
        _ => None,
    };
    match version {
        ProxyVersion::V1 => match pair {
            Some(p) => v1::Addresses::from(p).to_string().into_bytes(),
            None => b"PROXY UNKNOWN\r\n".to_vec(),
        },
        ProxyVersion::V2 => {
            let built = match pair {
                Some(p) => v2::Builder::with_addresses(v2::Version::Two | v2::Command::Proxy, v2::Protocol::Stream, p).build(),
                None => v2::Builder::new(
                    v2::Version::Two | v2::Command::Local,
                    v2::AddressFamily::Unspecified | v2::Protocol::Unspecified,
                )
                .build(),
            };
            built.unwrap_or_default()
        }
    }
}

fn to_v6(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V4(v4) => SocketAddr::from((v4.ip().to_ipv6_mapped(), v4.port())),
        v6 => v6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> Option<SocketAddr> {
        s.parse().ok()
    }

    #[tokio::test]
    async fn v1_and_v2_round_trip_and_keep_the_bytes_after_the_header() {
        for v in [ProxyVersion::V1, ProxyVersion::V2] {
            let mut bytes = header(v, sa("10.1.2.3:5555"), sa("10.0.0.17:443"));
            bytes.extend_from_slice(b"GET / HTTP/1.1\r\n");
            let got = read_header(&mut &bytes[..], Duration::from_secs(1)).await.expect("parsed");
            assert_eq!(got.src, sa("10.1.2.3:5555"));
            assert_eq!(got.dst, sa("10.0.0.17:443"));
            assert_eq!(got.rest, b"GET / HTTP/1.1\r\n");
        }
        let v1 = header(ProxyVersion::V1, sa("10.1.2.3:5555"), sa("10.0.0.17:443"));
        assert_eq!(v1, b"PROXY TCP4 10.1.2.3 10.0.0.17 5555 443\r\n");
    }

    #[tokio::test]
    async fn garbage_and_silence_are_errors() {
        assert!(read_header(&mut &b"GET / HTTP/1.1\r\n\r\n"[..], Duration::from_secs(1))
            .await
            .is_err());
        assert!(read_header(&mut &b"PROXY TCP4 1.2.3.4\r\n"[..], Duration::from_secs(1))
            .await
            .is_err());
        assert!(read_header(&mut &b""[..], Duration::from_secs(1)).await.is_err());
        let unknown = read_header(&mut &b"PROXY UNKNOWN\r\nrest"[..], Duration::from_secs(1))
            .await
            .expect("unknown");
        assert_eq!((unknown.src, unknown.rest.as_slice()), (None, &b"rest"[..]));
    }
}
