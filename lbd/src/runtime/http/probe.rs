//! Drives lbd's whole HTTP path over an in-memory client stream, with a real
//! (hyper) server on loopback behind it: for the fuzz target and the property
//! test, which feed it arbitrary bytes. The server counts requests it could not
//! parse: lbd must never forward one.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::body::LbBody;
use crate::runtime::session::Accepted;
use crate::runtime::snapshot::Snapshot;

pub struct Probe {
    rt: tokio::runtime::Runtime,
    snapshot: Arc<Snapshot>,
    /// Requests the server behind lbd received that it could not parse.
    pub server_parse_errors: Arc<AtomicUsize>,
    /// Requests the server answered.
    pub server_requests: Arc<AtomicUsize>,
}

/// How one exchange went.
pub struct Exchange {
    /// Everything lbd sent back to the client.
    pub output: Vec<u8>,
    /// The connection task panicked (a bug).
    pub panicked: bool,
    /// lbd neither answered nor closed within the limit.
    pub hung: bool,
}

impl Probe {
    /// Builds lbd's snapshot from `config`, where `BACKEND` stands for the
    /// address of the probe's own server.
    pub fn new(config: &str) -> Result<Probe, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let errors = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let (e2, r2) = (Arc::clone(&errors), Arc::clone(&requests));
        rt.spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                let (e3, r3) = (Arc::clone(&e2), Arc::clone(&r2));
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let r4 = Arc::clone(&r3);
                        async move {
                            use http_body_util::BodyExt;
                            let n = req.into_body().collect().await.map(|b| b.to_bytes().len()).unwrap_or(0);
                            r4.fetch_add(1, Ordering::Relaxed);
                            let mut resp = http::Response::new(LbBody::full(format!("got {n}\n")));
                            resp.headers_mut()
                                .insert(http::header::SET_COOKIE, http::HeaderValue::from_static("app=1"));
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    });
                    if let Err(e) = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(s), svc)
                        .await
                    {
                        if e.is_parse() {
                            e3.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        let text = config.replace("BACKEND", &addr.to_string());
        let checked = crate::config::check_str("probe.cfg", &text);
        let Some(cfg) = checked.config else {
            return Err(format!("{:?}", checked.diags));
        };
        let snapshot = {
            let _inside = rt.enter();
            Arc::new(Snapshot::build(&cfg, "probe", None))
        };
        Ok(Probe {
            rt,
            snapshot,
            server_parse_errors: errors,
            server_requests: requests,
        })
    }

    /// Sends `input` as one client connection to the first frontend, closes the
    /// sending side, and gathers what comes back within `limit`.
    pub fn exchange(&self, input: &[u8], limit: Duration) -> Exchange {
        let Some(fe) = self.snapshot.frontends.first().cloned() else {
            return Exchange {
                output: Vec::new(),
                panicked: false,
                hung: false,
            };
        };
        let snapshot = Arc::clone(&self.snapshot);
        self.rt.block_on(async move {
            let (mut client, server) = tokio::io::duplex(64 * 1024);
            let acc = Accepted {
                src: "192.0.2.10:40000".parse().ok(),
                dst: "192.0.2.1:80".parse().ok(),
                tls: None,
                accept_ms: 0,
                started: Instant::now(),
            };
            let task = tokio::spawn(super::run(snapshot, fe, server, acc, Vec::new()));
            let io = async {
                let _ = client.write_all(input).await;
                let _ = client.shutdown().await;
                let mut out = Vec::new();
                let _ = client.read_to_end(&mut out).await;
                out
            };
            let (output, hung) = match tokio::time::timeout(limit, io).await {
                Ok(out) => (out, false),
                Err(_) => (Vec::new(), true),
            };
            let panicked = match tokio::time::timeout(limit, task).await {
                Ok(Err(e)) => e.is_panic(),
                _ => false,
            };
            Exchange { output, panicked, hung }
        })
    }
}
