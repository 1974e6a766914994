//! Generated configurations for benchmarks and load tests.

/// An HTTP frontend switching by path over `backends` backends of `servers`
/// checked servers each. Always valid.
pub fn backends_config(backends: usize, servers: usize) -> String {
    let mut s = String::from(
        "defaults\n  mode http\n  timeout client 30s\n  timeout server 30s\n  timeout connect 5s\n  option httplog\n  log global\n\n",
    );
    s.push_str("frontend ft\n  bind :8080\n");
    for b in 0..backends {
        s.push_str(&format!("  acl is_{b} path_beg -i /app{b}/\n  use_backend bk_{b} if is_{b}\n"));
    }
    s.push_str("  default_backend bk_0\n\n");
    for b in 0..backends {
        s.push_str(&format!(
            "backend bk_{b}\n  balance roundrobin\n  option httpchk GET /health\n  http-check expect status 200\n"
        ));
        for i in 0..servers {
            s.push_str(&format!(
                "  server s{i} 10.{}.{}.{}:80 check inter 2s rise 2 fall 3 weight 10\n",
                b / 256,
                b % 256,
                i % 250 + 1
            ));
        }
        s.push('\n');
    }
    s
}
