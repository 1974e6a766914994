# shellcheck shell=bash
# Sourced by scripts/bench and scripts/build-lbd: the loopback web servers and
# load generator both drive lbd with (nginx and wrk from Debian).
#
# web_install: nginx-light and wrk when missing. Debian's nginx package starts
#   its default site on :80 from its postinst; invoke-rc.d and
#   deb-systemd-invoke ask policy-rc.d first, and 101 means "not allowed", so
#   that nginx is never started (nor left enabled). While the install runs,
#   $policy_rc names the policy-rc.d it wrote, for the caller's exit trap.
# web_start DIR PORT: one nginx process (no master, one worker loop) answering
#   `200 ok` on 127.0.0.1:PORT, with everything under DIR and nothing on :80;
#   its pid is appended to the caller's `pids` array. DIR/big is served as a
#   1 MiB body.
# port_open PORT, wait_ports PORT...: whether 127.0.0.1:PORT accepts; up to
#   10 s for all of them to.
# web_certs DIR: self-signed RSA-2048 and ECDSA P-256 certificates, each with
#   its key in one PEM as haproxy and lbd read it: DIR/rsa.pem, DIR/ec.pem.
# web_auth_lua FILE USERS: a wrk script sending one Authorization value per
#   request, cycling over USERS users (each wrk thread over the same users).

policy_rc=

web_install() {
    local pkgs=()
    command -v nginx >/dev/null 2>&1 || pkgs+=(nginx-light)
    command -v wrk >/dev/null 2>&1 || pkgs+=(wrk)
    command -v openssl >/dev/null 2>&1 || pkgs+=(openssl)
    [ ${#pkgs[@]} -gt 0 ] || return 0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        policy_rc=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' >"$policy_rc"
        chmod 755 "$policy_rc"
    fi
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
    if [ -n "$policy_rc" ]; then rm -f "$policy_rc"; policy_rc=; fi
    if [[ " ${pkgs[*]} " == *" nginx-light "* ]]; then
        # In case the machine's own policy-rc.d let it start anyway.
        if [ -d /run/systemd/system ]; then systemctl disable --now nginx >/dev/null 2>&1 || true; fi
        nginx -s quit >/dev/null 2>&1 || true # the pid in Debian's /run/nginx.pid, if any
    fi
}

web_start() { # DIR PORT
    local dir=$1
    mkdir -p "$dir/root"
    head -c 1048576 /dev/zero >"$dir/root/big"
    cat >"$dir/nginx.conf" <<NGINX
worker_processes 1;
master_process off;
worker_rlimit_nofile 8192;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir/client_body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  server {
    listen 127.0.0.1:$2 backlog=4096;
    root $dir/root;
    location = /big { }
    location / { return 200 "ok\\n"; }
  }
}
NGINX
    nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" -g 'daemon off;' 2>"$dir/stderr" &
    pids+=($!)
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_ports() { # PORT...
    local p
    for p in "$@"; do
        for _ in $(seq 100); do port_open "$p" && break; sleep 0.1; done
        port_open "$p" || return 1
    done
}

web_certs() { # DIR
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$1/rsa.key" -out "$1/rsa.crt" -days 2 \
        -subj /CN=bench.example 2>/dev/null
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1/ec.key" -out "$1/ec.crt" \
        -days 2 -subj /CN=bench.example 2>/dev/null
    cat "$1/rsa.crt" "$1/rsa.key" >"$1/rsa.pem"
    cat "$1/ec.crt" "$1/ec.key" >"$1/ec.pem"
}

web_auth_lua() { # FILE USERS
    cat >"$1" <<LUA
local n = 0
function request()
  n = n % $2 + 1
  return wrk.format(nil, nil, { ["Authorization"] = "Basic user-" .. n })
end
LUA
}
