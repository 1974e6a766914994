//! `netcfg show`: the live state in the file's own language, so that the
//! output, applied, changes nothing.

use toml::Spanned;

use crate::live::{Kind, Live};
use crate::model::{Bond, BondMode, Interface, NetFile, Route, Sysctl, Vlan};

fn spanned<T>(v: T) -> Spanned<T> {
    Spanned::new(0..0, v)
}

fn sysctl_bool(key: &str) -> Option<bool> {
    std::fs::read_to_string(format!("/proc/sys/{key}")).ok().map(|v| v.trim() == "1")
}

/// `run_dir`: where netcfg's DHCP clients keep their pid and lease files.
pub fn show(live: &Live, run_dir: &std::path::Path) -> String {
    let mut f = NetFile::default();
    let name_of = |i: u32| live.by_index(i).map(|l| l.name.clone());
    for l in live.links.values() {
        if l.name == "lo" {
            continue;
        }
        let addresses: Vec<Spanned<String>> = l.addresses.iter().map(|a| spanned(a.to_string())).collect();
        match &l.kind {
            Kind::Vlan { parent, id } => f.vlans.push(spanned(Vlan {
                name: l.name.clone(),
                parent: spanned(name_of(*parent).unwrap_or_default()),
                id: *id,
                up: l.up,
                mtu: Some(l.mtu),
                addresses,
            })),
            Kind::Bond { mode, miimon } => f.bonds.push(spanned(Bond {
                name: l.name.clone(),
                mode: mode.unwrap_or(BondMode::BalanceRr),
                members: live
                    .links
                    .values()
                    .filter(|m| m.controller == Some(l.index))
                    .map(|m| spanned(m.name.clone()))
                    .collect(),
                miimon: *miimon,
                up: l.up,
                mtu: Some(l.mtu),
                addresses,
            })),
            Kind::Other(_) => {
                // A bond's member is described by its bond.
                if l.controller
                    .is_some_and(|c| matches!(live.by_index(c).map(|b| &b.kind), Some(Kind::Bond { .. })))
                {
                    continue;
                }
                // A DHCP interface: its leased address is the client's, not configuration.
                let dhcp = crate::dhcp::running(run_dir, &l.name).is_some();
                let lease = std::fs::read_to_string(crate::dhcp::lease_file(run_dir, &l.name)).unwrap_or_default();
                let addresses = addresses.into_iter().filter(|a| !(dhcp && a.get_ref() == lease.trim())).collect();
                f.interfaces.push(spanned(Interface {
                    name: Some(l.name.clone()),
                    mac: None,
                    up: l.up,
                    mtu: Some(l.mtu),
                    dhcp,
                    addresses,
                    managed: false,
                }))
            }
        }
    }
    for r in &live.routes {
        // Routes the kernel derives from addresses (proto kernel) and router advertisements are not configuration.
        if r.protocol != 3 && r.protocol != 4 {
            continue;
        }
        let to = if r.to.prefix_len() == 0 {
            if r.to.addr().is_ipv4() {
                "default".to_owned()
            } else {
                "default6".to_owned()
            }
        } else {
            r.to.to_string()
        };
        f.routes.push(spanned(Route {
            to: spanned(to),
            via: r.via.map(|v| spanned(v.to_string())),
            dev: r.oif.and_then(name_of).map(spanned),
            metric: r.metric.filter(|m| *m != 0),
        }));
    }
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "));
    f.sysctl = Some(Sysctl {
        ip_forward: sysctl_bool("net/ipv4/ip_forward"),
        ip_nonlocal_bind: sysctl_bool("net/ipv4/ip_nonlocal_bind"),
        somaxconn: std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|v| v.trim().parse().ok()),
        // 2 (the kernel's default: loopback only) has no spelling in the file.
        tcp_tw_reuse: std::fs::read_to_string("/proc/sys/net/ipv4/tcp_tw_reuse")
            .ok()
            .and_then(|v| match v.trim() {
                "0" => Some(false),
                "1" => Some(true),
                _ => None,
            }),
        ip_local_port_range: range,
    });
    toml::to_string_pretty(&f).unwrap_or_else(|e| format!("# cannot render the live state: {e}\n"))
}
