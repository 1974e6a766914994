//! The network file (`/config/network.toml`): what the box's network should
//! be. Parsed with serde (unknown keys are errors), then checked as a whole
//! before anything changes; every message names the line and the key.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use toml::Spanned;

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NetFile {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns: Option<Dns>,
    #[serde(default, rename = "interface", skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Spanned<Interface>>,
    #[serde(default, rename = "vlan", skip_serializing_if = "Vec::is_empty")]
    pub vlans: Vec<Spanned<Vlan>>,
    #[serde(default, rename = "bond", skip_serializing_if = "Vec::is_empty")]
    pub bonds: Vec<Spanned<Bond>>,
    #[serde(default, rename = "route", skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Spanned<Route>>,
    #[serde(default, rename = "vip", skip_serializing_if = "Vec::is_empty")]
    pub vips: Vec<Spanned<Vip>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sysctl: Option<Sysctl>,
    #[serde(default, rename = "vrrp", skip_serializing_if = "Vec::is_empty")]
    pub vrrp: Vec<Spanned<crate::vrrp::Instance>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keepalived: Option<crate::vrrp::Keepalived>,
}

#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Dns {
    #[serde(default)]
    pub servers: Vec<IpAddr>,
    #[serde(default)]
    pub search: Vec<String>,
}

#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Interface {
    /// Matched by name, or by `mac` when the name is not known in advance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(default = "yes")]
    pub up: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub dhcp: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<Spanned<String>>,
    /// netcfg owns every address of the interface: addresses the file does not name are removed.
    #[serde(default, skip_serializing_if = "is_false")]
    pub managed: bool,
}

#[derive(Debug, Deserialize, Serialize, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Vlan {
    pub name: String,
    pub parent: Spanned<String>,
    pub id: u16,
    #[serde(default = "yes")]
    pub up: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<Spanned<String>>,
}

/// The kernel's bonding modes, in `ip link`'s words. The appliance uses
/// active-backup and 802.3ad; the others are read back by `show`.
#[derive(Debug, Deserialize, Serialize, Clone, Copy, PartialEq, Eq)]
pub enum BondMode {
    #[serde(rename = "active-backup")]
    ActiveBackup,
    #[serde(rename = "802.3ad")]
    Lacp,
    #[serde(rename = "balance-rr")]
    BalanceRr,
    #[serde(rename = "balance-xor")]
    BalanceXor,
    #[serde(rename = "broadcast")]
    Broadcast,
    #[serde(rename = "balance-tlb")]
    BalanceTlb,
    #[serde(rename = "balance-alb")]
    BalanceAlb,
}

#[derive(Debug, Deserialize, Serialize, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Bond {
    pub name: String,
    pub mode: BondMode,
    #[serde(default)]
    pub members: Vec<Spanned<String>>,
    #[serde(default = "miimon")]
    pub miimon: u32,
    #[serde(default = "yes")]
    pub up: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize, Serialize, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// A prefix, or `default` (`default6` for IPv6's).
    pub to: Spanned<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<Spanned<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dev: Option<Spanned<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<u32>,
}

#[derive(Debug, Deserialize, Serialize, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Vip {
    pub address: Spanned<String>,
    pub interface: Spanned<String>,
    /// IPv6: no duplicate address detection (the address is usable at once).
    #[serde(default = "yes")]
    pub nodad: bool,
}

#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Sysctl {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_forward: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_nonlocal_bind: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub somaxconn: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_tw_reuse: Option<bool>,
    /// `"FIRST LAST"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_local_port_range: Option<String>,
}

fn yes() -> bool {
    true
}

fn miimon() -> u32 {
    100
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One problem in the file: where, which key, what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    pub line: usize,
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}: {}", self.line, self.key, self.message)
    }
}

/// The line (1-based) of a byte offset.
pub fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|b| *b == b'\n').count() + 1
}

/// The line where `key = ...` is first written (0 when it is not: a default).
fn key_line(text: &str, key: &str) -> usize {
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            l.strip_prefix(key).is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map_or(0, |i| i + 1)
}

/// Parses the file: the model, or the first syntax or type error with its line.
pub fn parse(text: &str) -> Result<NetFile, FileError> {
    toml::from_str::<NetFile>(text).map_err(|e| {
        let line = e.span().map_or(0, |s| line_of(text, s.start));
        let msg = e.message().to_owned();
        // serde names the offending key in its message ("unknown field `mtuu`, expected ...").
        let key = msg.split('`').nth(1).map(str::to_owned).unwrap_or_else(|| "-".into());
        FileError { line, key, message: msg }
    })
}

/// An address with its prefix (`10.0.0.2/24`), as the file writes it.
pub fn cidr(s: &str) -> Result<IpNet, String> {
    if !s.contains('/') {
        return Err(format!("'{s}' needs a prefix length (for example {s}/24)"));
    }
    s.parse::<IpNet>()
        .map_err(|_| format!("'{s}' is not an address with a prefix length"))
}

/// The desired state, resolved from the file: every link with its addresses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Desired {
    pub links: BTreeMap<String, DesiredLink>,
    pub routes: Vec<DesiredRoute>,
    pub sysctl: Vec<(String, String)>,
    pub hostname: Option<String>,
    pub resolv_conf: Option<String>,
    pub vrrp: Vec<crate::vrrp::Instance>,
    pub keepalived: crate::vrrp::Keepalived,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LinkKind {
    /// Exists already (a NIC, a veth): configured, never created or deleted.
    Existing,
    Vlan {
        parent: String,
        id: u16,
    },
    Bond {
        mode: BondMode,
        miimon: u32,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct DesiredLink {
    pub kind: LinkKind,
    pub up: bool,
    pub mtu: Option<u32>,
    /// Addresses with their `nodad` flag (VIPs).
    pub addresses: Vec<(IpNet, bool)>,
    pub managed: bool,
    /// The bond this link is a member of.
    pub bond: Option<String>,
    /// A DHCP client runs for it.
    pub dhcp: bool,
}

impl DesiredLink {
    /// A link netcfg creates (a bond, a VLAN): it owns all of its addresses.
    fn created(kind: LinkKind, up: bool, mtu: Option<u32>, addresses: Vec<(IpNet, bool)>) -> Self {
        DesiredLink {
            kind,
            up,
            mtu,
            addresses,
            managed: true,
            bond: None,
            dhcp: false,
        }
    }

    /// An interface the file names only through a bond's members or a VIP: up, nothing else said.
    fn existing(addresses: Vec<(IpNet, bool)>, bond: Option<String>) -> Self {
        DesiredLink {
            kind: LinkKind::Existing,
            up: true,
            mtu: None,
            addresses,
            managed: false,
            bond,
            dhcp: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DesiredRoute {
    pub to: IpNet,
    pub via: Option<IpAddr>,
    pub dev: Option<String>,
    pub metric: Option<u32>,
}

/// What the live system knows when a file is checked: links by name and MAC.
pub trait Known {
    fn has_link(&self, name: &str) -> bool;
    fn name_of_mac(&self, mac: &str) -> Option<String>;
    /// How many global addresses the live link holds.
    fn address_count(&self, name: &str) -> usize;
}

/// What is wrong with `name` for a link the file creates (a bond, a VLAN), if anything.
fn new_link_name_problem(name: &str, links: &BTreeMap<String, DesiredLink>) -> Option<String> {
    if !valid_ifname(name) {
        return Some(format!(
            "'{name}' is not an interface name (1 to 15 characters, no '/', ':' or blank)"
        ));
    }
    links.contains_key(name).then(|| format!("'{name}' is already an interface"))
}

/// An interface name the kernel takes: 1 to 15 characters, none of them '/', ':' or blank.
pub fn valid_ifname(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 15
        && n != "."
        && n != ".."
        && !n.chars().any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
}

/// Checks the whole file and resolves it; every error found, with its line and key.
pub fn resolve(text: &str, file: &NetFile, known: &dyn Known) -> Result<Desired, Vec<FileError>> {
    let mut errors = Vec::new();
    let at = |span: std::ops::Range<usize>| line_of(text, span.start);
    let mut err = |line: usize, key: &str, message: String| {
        errors.push(FileError {
            line,
            key: key.to_owned(),
            message,
        })
    };
    let mut d = Desired::default();
    let mut seen_addr: BTreeMap<IpAddr, usize> = BTreeMap::new();
    let mut addr_list = |list: &[Spanned<String>], nodad: bool, err: &mut dyn FnMut(usize, &str, String)| {
        let mut out = Vec::new();
        for a in list {
            let line = at(a.span());
            match cidr(a.get_ref()) {
                Ok(n) => {
                    if let Some(first) = seen_addr.insert(n.addr(), line) {
                        err(line, "addresses", format!("{} is already given at line {first}", n.addr()));
                    } else {
                        out.push((n, nodad));
                    }
                }
                Err(m) => err(line, "addresses", m),
            }
        }
        out
    };
    for i in &file.interfaces {
        let line = at(i.span());
        let i = i.get_ref();
        let name = match (&i.name, &i.mac) {
            (Some(n), _) => n.clone(),
            (None, Some(mac)) => match known.name_of_mac(mac) {
                Some(n) => n,
                None => {
                    err(line, "mac", format!("no interface has the MAC address {mac}"));
                    continue;
                }
            },
            (None, None) => {
                err(line, "interface", "an interface needs 'name' or 'mac'".into());
                continue;
            }
        };
        if !known.has_link(&name) {
            err(
                line,
                "name",
                format!("there is no interface '{name}' (VLANs and bonds have their own tables)"),
            );
        }
        if i.dhcp && i.managed {
            err(
                line,
                "managed",
                "'managed' would remove the address DHCP leases: use one or the other".into(),
            );
        }
        let addresses = addr_list(&i.addresses, false, &mut err);
        if d.links.contains_key(&name) {
            err(line, "name", format!("interface '{name}' is described twice"));
            continue;
        }
        d.links.insert(
            name,
            DesiredLink {
                kind: LinkKind::Existing,
                up: i.up,
                mtu: i.mtu,
                addresses,
                managed: i.managed,
                bond: None,
                dhcp: i.dhcp,
            },
        );
    }
    for b in &file.bonds {
        let line = at(b.span());
        let b = b.get_ref();
        let addresses = addr_list(&b.addresses, false, &mut err);
        if let Some(m) = new_link_name_problem(&b.name, &d.links) {
            err(line, "name", m);
            continue;
        }
        for m in &b.members {
            let ml = at(m.span());
            let m = m.get_ref();
            if known.address_count(m) > 0 {
                err(
                    ml,
                    "members",
                    format!("'{m}' still holds addresses: remove them before it joins bond '{}'", b.name),
                );
                continue;
            }
            match d.links.get_mut(m) {
                Some(l) if l.bond.is_none() && l.addresses.is_empty() && !l.dhcp => l.bond = Some(b.name.clone()),
                Some(_) => err(
                    ml,
                    "members",
                    format!("'{m}' cannot join bond '{}': it has addresses or another bond", b.name),
                ),
                None if known.has_link(m) => {
                    d.links.insert(m.clone(), DesiredLink::existing(Vec::new(), Some(b.name.clone())));
                }
                None => err(ml, "members", format!("there is no interface '{m}'")),
            }
        }
        d.links.insert(
            b.name.clone(),
            DesiredLink::created(
                LinkKind::Bond {
                    mode: b.mode,
                    miimon: b.miimon,
                },
                b.up,
                b.mtu,
                addresses,
            ),
        );
    }
    for v in &file.vlans {
        let line = at(v.span());
        let v = v.get_ref();
        let parent = v.parent.get_ref();
        if !d.links.contains_key(parent) && !known.has_link(parent) {
            err(
                at(v.parent.span()),
                "parent",
                format!("VLAN '{}' is on '{parent}', which does not exist", v.name),
            );
        }
        if v.id == 0 || v.id > 4094 {
            err(line, "id", format!("VLAN id {} is outside 1-4094", v.id));
        }
        if let Some(m) = new_link_name_problem(&v.name, &d.links) {
            err(line, "name", m);
            continue;
        }
        let addresses = addr_list(&v.addresses, false, &mut err);
        d.links.insert(
            v.name.clone(),
            DesiredLink::created(
                LinkKind::Vlan {
                    parent: parent.clone(),
                    id: v.id,
                },
                v.up,
                v.mtu,
                addresses,
            ),
        );
    }
    for vip in &file.vips {
        let line = at(vip.span());
        let vip = vip.get_ref();
        let dev = vip.interface.get_ref();
        let got = addr_list(std::slice::from_ref(&vip.address), vip.nodad, &mut err);
        match d.links.get_mut(dev) {
            Some(l) if l.bond.is_some() => err(line, "interface", format!("'{dev}' is a bond member: put the VIP on its bond")),
            Some(l) => l.addresses.extend(got),
            None if known.has_link(dev) => {
                d.links.insert(dev.clone(), DesiredLink::existing(got, None));
            }
            None => err(line, "interface", format!("VIP on '{dev}', which does not exist")),
        }
    }
    for r in &file.routes {
        let line = at(r.span());
        let r = r.get_ref();
        let via = match &r.via {
            Some(v) => match v.get_ref().parse::<IpAddr>() {
                Ok(ip) => Some(ip),
                Err(_) => {
                    err(at(v.span()), "via", format!("'{}' is not an IP address", v.get_ref()));
                    continue;
                }
            },
            None => None,
        };
        let to = match r.to.get_ref().as_str() {
            "default" => match via {
                Some(IpAddr::V6(_)) => IpNet::V6(Default::default()),
                _ => IpNet::V4(Default::default()),
            },
            "default6" => IpNet::V6(Default::default()),
            other => match cidr(other) {
                Ok(n) => n.trunc(),
                Err(m) => {
                    err(at(r.to.span()), "to", m);
                    continue;
                }
            },
        };
        if let Some(dev) = &r.dev {
            if !d.links.contains_key(dev.get_ref()) && !known.has_link(dev.get_ref()) {
                err(at(dev.span()), "dev", format!("there is no interface '{}'", dev.get_ref()));
            }
        }
        match via {
            Some(gw) => {
                if gw.is_ipv4() != to.addr().is_ipv4() {
                    err(line, "via", format!("gateway {gw} is not of the family of {to}"));
                    continue;
                }
                // The gateway must be on a subnet the file gives the box.
                let reachable = d.links.values().flat_map(|l| l.addresses.iter()).any(|(n, _)| n.contains(&gw));
                if !reachable {
                    err(
                        line,
                        "via",
                        format!("gateway {gw} is on none of the subnets of this file's addresses: it cannot be reached"),
                    );
                    continue;
                }
            }
            None if r.dev.is_none() => {
                err(line, "via", "a route needs 'via', 'dev' or both".into());
                continue;
            }
            None => {}
        }
        d.routes.push(DesiredRoute {
            to,
            via,
            dev: r.dev.as_ref().map(|d| d.get_ref().clone()),
            metric: r.metric,
        });
    }
    if let Some(s) = &file.sysctl {
        let b = |v: bool| if v { "1" } else { "0" }.to_owned();
        if let Some(v) = s.ip_forward {
            d.sysctl.push(("net/ipv4/ip_forward".into(), b(v)));
        }
        if let Some(v) = s.ip_nonlocal_bind {
            d.sysctl.push(("net/ipv4/ip_nonlocal_bind".into(), b(v)));
            d.sysctl.push(("net/ipv6/ip_nonlocal_bind".into(), b(v)));
        }
        if let Some(v) = s.somaxconn {
            d.sysctl.push(("net/core/somaxconn".into(), v.to_string()));
        }
        if let Some(v) = s.tcp_tw_reuse {
            d.sysctl.push(("net/ipv4/tcp_tw_reuse".into(), b(v)));
        }
        if let Some(r) = &s.ip_local_port_range {
            let parts: Vec<Option<u16>> = r.split_whitespace().map(|p| p.parse().ok()).collect();
            match parts.as_slice() {
                [Some(a), Some(b)] if a < b => d.sysctl.push(("net/ipv4/ip_local_port_range".into(), format!("{a}\t{b}"))),
                _ => err(
                    key_line(text, "ip_local_port_range"),
                    "ip_local_port_range",
                    format!("'{r}' is not \"FIRST LAST\" with FIRST < LAST"),
                ),
            }
        }
    }
    for i in &file.vrrp {
        let line = at(i.span());
        let inst = i.get_ref();
        if !d.links.contains_key(&inst.interface) && !known.has_link(&inst.interface) {
            err(
                line,
                "interface",
                format!("vrrp '{}' is on '{}', which does not exist", inst.name, inst.interface),
            );
        }
        for (key, m) in crate::vrrp::check(std::slice::from_ref(inst)) {
            err(line, &key, m);
        }
    }
    let instances: Vec<crate::vrrp::Instance> = file.vrrp.iter().map(|i| i.get_ref().clone()).collect();
    for (key, m) in crate::vrrp::check(&instances).into_iter().filter(|(_, m)| m.contains("used twice")) {
        err(file.vrrp.last().map_or(0, |i| at(i.span())), &key, m);
    }
    // keepalived owns its VIPs: the same address in the file's addresses would be removed and re-added by two masters.
    for i in &file.vrrp {
        for v in &i.get_ref().vips {
            if let Ok(n) = cidr(v) {
                if let Some(first) = seen_addr.get(&n.addr()) {
                    err(
                        at(i.span()),
                        "vips",
                        format!(
                            "{} is also an address of this file (line {first}): keepalived manages VRRP VIPs",
                            n.addr()
                        ),
                    );
                }
            }
        }
    }
    d.vrrp = instances;
    d.keepalived = file.keepalived.clone().unwrap_or_default();
    if file.keepalived.is_some() || !file.vrrp.is_empty() {
        for (key, m) in crate::vrrp::check_paths(&d.keepalived) {
            let line = key_line(text, &key);
            let line = if line == 0 {
                file.vrrp.first().map_or(0, |i| at(i.span()))
            } else {
                line
            };
            err(line, &key, m);
        }
    }
    d.hostname = file.hostname.clone();
    if let Some(h) = &d.hostname {
        if h.is_empty() || h.len() > 63 || !h.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            err(
                key_line(text, "hostname"),
                "hostname",
                format!("'{h}' is not a host name (letters, digits and '-', up to 63)"),
            );
        }
    }
    if let Some(dns) = &file.dns {
        for name in &dns.search {
            let ok = !name.is_empty() && name.len() <= 253 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
            if !ok {
                err(
                    key_line(text, "search"),
                    "search",
                    format!("'{}' is not a domain name", name.escape_debug()),
                );
            }
        }
    }
    d.resolv_conf = file.dns.as_ref().map(|dns| {
        let mut s = String::from("# written by netcfg\n");
        if !dns.search.is_empty() {
            s.push_str(&format!("search {}\n", dns.search.join(" ")));
        }
        for n in &dns.servers {
            s.push_str(&format!("nameserver {n}\n"));
        }
        s
    });
    if errors.is_empty() {
        Ok(d)
    } else {
        errors.sort_by_key(|e| e.line);
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake;

    impl Known for Fake {
        fn has_link(&self, name: &str) -> bool {
            matches!(name, "eth0" | "eth1" | "eth2")
        }

        fn name_of_mac(&self, _mac: &str) -> Option<String> {
            None
        }

        fn address_count(&self, name: &str) -> usize {
            usize::from(name == "eth2")
        }
    }

    fn errors(text: &str) -> Vec<FileError> {
        match parse(text) {
            Ok(f) => resolve(text, &f, &Fake).err().unwrap_or_default(),
            Err(e) => vec![e],
        }
    }

    #[test]
    fn names_and_values_that_would_reach_the_kernel_or_a_script_are_refused() {
        let cases = [
            ("[[vlan]]\nname = \"a/b\"\nparent = \"eth0\"\nid = 5\n", "name"),
            ("[[bond]]\nname = \"bond-with-a-long-name\"\nmode = \"802.3ad\"\n", "name"),
            ("[dns]\nsearch = [\"a.example\\nnameserver 6.6.6.6\"]\n", "search"),
            ("[[bond]]\nname = \"bond0\"\nmode = \"active-backup\"\nmembers = [\"eth2\"]\n", "members"),
            (
                "[[vrrp]]\nname = \"v\"\ninterface = \"eth0\"\nvirtual_router_id = 1\nvips = [\"10.0.0.9/24\"]\nauth_pass = \"x}\"\n",
                "auth_pass",
            ),
            (
                "[[vrrp]]\nname = \"v\"\ninterface = \"eth0\"\nvirtual_router_id = 1\nvips = [\"10.0.0.9/24\"]\ntrack_script = \"true\\nvrrp_script x {\"\n",
                "track_script",
            ),
            (
                "[[vrrp]]\nname = \"v\"\ninterface = \"eth0\"\nvirtual_router_id = 1\nvips = [\"10.0.0.9/24\"]\n\n[keepalived]\nrun_dir = \"/x;id\"\n",
                "run_dir",
            ),
            (
                "[[interface]]\nname = \"eth0\"\naddresses = [\"10.0.0.9/24\"]\n\n[[vrrp]]\nname = \"v\"\ninterface = \"eth0\"\nvirtual_router_id = 1\nvips = [\"10.0.0.9/24\"]\n",
                "vips",
            ),
        ];
        for (text, key) in cases {
            let e = errors(text);
            assert!(e.iter().any(|x| x.key == key && x.line > 0), "{text}: {e:?}");
        }
    }
}
