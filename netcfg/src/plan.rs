//! The plan: the changes that take the live state to the desired one, in an
//! order that works (sysctls first so a VIP can be bound before it is held;
//! bonds, then their members, then VLANs; links up; addresses; routes), and
//! their application with undo: a failed step rolls back the steps before it.

use std::fmt;

use ipnet::IpNet;
use rtnetlink::Handle;

use crate::live::{self, Kind, Live};
use crate::model::{BondMode, Desired, DesiredRoute, LinkKind};

#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Sysctl {
        key: String,
        value: String,
        old: String,
    },
    CreateBond {
        name: String,
        mode: BondMode,
        miimon: u32,
    },
    Enslave {
        member: String,
        bond: String,
        old: Option<String>,
        was_up: bool,
    },
    CreateVlan {
        name: String,
        parent: String,
        id: u16,
    },
    Mtu {
        link: String,
        mtu: u32,
        old: Option<u32>,
    },
    /// `was`: the link's state before (`None`: it did not exist).
    Up {
        link: String,
        up: bool,
        was: Option<bool>,
    },
    DelAddr {
        link: String,
        net: IpNet,
    },
    AddAddr {
        link: String,
        net: IpNet,
        nodad: bool,
    },
    AddRoute(DesiredRoute),
    /// A route to the same prefix with the same metric exists with another gateway or device.
    ReplaceRoute {
        new: DesiredRoute,
        old: DesiredRoute,
    },
    StartDhcp {
        link: String,
        default_route: bool,
        run_dir: std::path::PathBuf,
    },
    StopDhcp {
        link: String,
        run_dir: std::path::PathBuf,
    },
    Hostname {
        name: String,
        old: String,
    },
    Resolv {
        content: String,
        old: Option<String>,
    },
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Sysctl { key, value, old } => write!(
                f,
                "sysctl {} = {} (was {})",
                key.replace('/', "."),
                value.replace('\t', " "),
                old.replace('\t', " ")
            ),
            Step::CreateBond { name, mode, miimon } => write!(f, "create bond {name} mode {mode:?} miimon {miimon}"),
            Step::Enslave { member, bond, .. } => write!(f, "put {member} into bond {bond}"),
            Step::CreateVlan { name, parent, id } => write!(f, "create vlan {name} on {parent} id {id}"),
            Step::Mtu { link, mtu, .. } => write!(f, "set {link} mtu {mtu}"),
            Step::Up { link, up, .. } => write!(f, "set {link} {}", if *up { "up" } else { "down" }),
            Step::DelAddr { link, net } => write!(f, "remove {net} from {link}"),
            Step::AddAddr { link, net, nodad } => {
                write!(f, "add {net} to {link}")?;
                if *nodad && net.addr().is_ipv6() {
                    write!(f, " nodad")?;
                }
                Ok(())
            }
            Step::AddRoute(r) => {
                write!(f, "add route {}", r.to)?;
                if let Some(v) = r.via {
                    write!(f, " via {v}")?;
                }
                if let Some(d) = &r.dev {
                    write!(f, " dev {d}")?;
                }
                if let Some(m) = r.metric {
                    write!(f, " metric {m}")?;
                }
                Ok(())
            }
            Step::ReplaceRoute { new, old } => {
                write!(f, "replace route {}", new.to)?;
                if let Some(v) = old.via {
                    write!(f, " via {v}")?;
                }
                write!(f, " with")?;
                if let Some(v) = new.via {
                    write!(f, " via {v}")?;
                }
                if let Some(d) = &new.dev {
                    write!(f, " dev {d}")?;
                }
                Ok(())
            }
            Step::StartDhcp { link, .. } => write!(f, "start DHCP on {link}"),
            Step::StopDhcp { link, .. } => write!(f, "stop DHCP on {link}"),
            Step::Hostname { name, old } => write!(f, "hostname {name} (was {old})"),
            Step::Resolv { .. } => write!(f, "write /etc/resolv.conf"),
        }
    }
}

fn read_sysctl(key: &str) -> String {
    std::fs::read_to_string(format!("/proc/sys/{key}"))
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join("\t"))
        .unwrap_or_default()
}

/// The steps from `live` to `want`, in the order they must run.
pub fn plan(want: &Desired, live: &Live) -> Vec<Step> {
    let mut steps = Vec::new();
    for (key, value) in &want.sysctl {
        let old = read_sysctl(key);
        if &old != value {
            steps.push(Step::Sysctl {
                key: key.clone(),
                value: value.clone(),
                old,
            });
        }
    }
    let index_name = |i: u32| live.by_index(i).map(|l| l.name.clone());
    for (name, l) in &want.links {
        if let LinkKind::Bond { mode, miimon } = l.kind {
            if !live.links.contains_key(name) {
                steps.push(Step::CreateBond {
                    name: name.clone(),
                    mode,
                    miimon,
                });
            }
        }
    }
    for (name, l) in &want.links {
        if let Some(b) = &l.bond {
            let current = live.links.get(name).and_then(|x| x.controller).and_then(index_name);
            if current.as_deref() != Some(b.as_str()) {
                steps.push(Step::Enslave {
                    member: name.clone(),
                    bond: b.clone(),
                    old: current,
                    was_up: live.links.get(name).is_some_and(|x| x.up),
                });
            }
        }
    }
    for (name, l) in &want.links {
        if let LinkKind::Vlan { parent, id } = &l.kind {
            if !live.links.contains_key(name) {
                steps.push(Step::CreateVlan {
                    name: name.clone(),
                    parent: parent.clone(),
                    id: *id,
                });
            }
        }
    }
    for (name, l) in &want.links {
        let cur = live.links.get(name);
        if let Some(mtu) = l.mtu {
            if cur.map(|c| c.mtu) != Some(mtu) {
                steps.push(Step::Mtu {
                    link: name.clone(),
                    mtu,
                    old: cur.map(|c| c.mtu),
                });
            }
        }
        // A link just put into a bond went down to join it.
        let enslaved = steps.iter().any(|s| matches!(s, Step::Enslave { member, .. } if member == name));
        if cur.map(|c| c.up) != Some(l.up) || (enslaved && l.up) {
            steps.push(Step::Up {
                link: name.clone(),
                up: l.up,
                was: cur.map(|c| c.up),
            });
        }
    }
    // DHCP clients stop before addresses change: removing a lease that is an
    // interface's primary address would take the addresses after it along.
    let run_dir = &want.keepalived.run_dir;
    let default_v4 = want.routes.iter().any(|r| r.to.prefix_len() == 0 && r.to.addr().is_ipv4());
    for (name, l) in &want.links {
        let running = crate::dhcp::running(run_dir, name).is_some();
        if l.dhcp && !running {
            steps.push(Step::StartDhcp {
                link: name.clone(),
                default_route: !default_v4,
                run_dir: run_dir.clone(),
            });
        } else if !l.dhcp && running {
            steps.push(Step::StopDhcp {
                link: name.clone(),
                run_dir: run_dir.clone(),
            });
        }
    }
    // New addresses before the ones removed: an interface never goes through having
    // none (the kernel would drop its routes with the last one).
    let vrrp_vips: Vec<IpNet> = want
        .vrrp
        .iter()
        .flat_map(|i| i.vips.iter())
        .filter_map(|v| crate::model::cidr(v).ok())
        .collect();
    let mut removals = Vec::new();
    for (name, l) in &want.links {
        let have: Vec<IpNet> = live.links.get(name).map(|c| c.addresses.clone()).unwrap_or_default();
        for (n, nodad) in &l.addresses {
            if !have.contains(n) {
                steps.push(Step::AddAddr {
                    link: name.clone(),
                    net: *n,
                    nodad: *nodad,
                });
            }
        }
        if l.managed {
            // keepalived's VIPs come and go with the MASTER state: never netcfg's to remove.
            for a in have.iter().filter(|a| !vrrp_vips.contains(a)) {
                if !l.addresses.iter().any(|(n, _)| n == a) {
                    removals.push(Step::DelAddr {
                        link: name.clone(),
                        net: *a,
                    });
                }
            }
        }
    }
    steps.extend(removals);
    // The kernel gives an IPv6 route without a metric 1024.
    let metric = |r: &IpNet, m: Option<u32>| m.unwrap_or(if r.addr().is_ipv6() { 1024 } else { 0 });
    for r in &want.routes {
        let same_slot = |lr: &&live::LiveRoute| lr.to == r.to && lr.metric.unwrap_or(0) == metric(&r.to, r.metric);
        let present = live.routes.iter().filter(same_slot).any(|lr| {
            lr.via == r.via
                && r.dev
                    .as_ref()
                    .is_none_or(|d| lr.oif.and_then(index_name).as_deref() == Some(d.as_str()))
        });
        if present {
            continue;
        }
        match live.routes.iter().find(same_slot) {
            Some(old) => steps.push(Step::ReplaceRoute {
                new: r.clone(),
                old: DesiredRoute {
                    to: old.to,
                    via: old.via,
                    dev: old.oif.and_then(index_name),
                    metric: old.metric,
                },
            }),
            None => steps.push(Step::AddRoute(r.clone())),
        }
    }
    if let Some(h) = &want.hostname {
        let old = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap_or_default()
            .trim()
            .to_owned();
        if &old != h {
            steps.push(Step::Hostname { name: h.clone(), old });
        }
    }
    if let Some(content) = &want.resolv_conf {
        let old = std::fs::read_to_string(RESOLV).ok();
        if old.as_deref() != Some(content.as_str()) {
            steps.push(Step::Resolv {
                content: content.clone(),
                old,
            });
        }
    }
    steps
}

const RESOLV: &str = "/etc/resolv.conf";

fn write_sysctl(key: &str, value: &str) -> Result<(), String> {
    std::fs::write(format!("/proc/sys/{key}"), value).map_err(|e| format!("sysctl {key}: {e}"))
}

fn set_hostname(name: &str) -> Result<(), String> {
    std::fs::write("/proc/sys/kernel/hostname", name).map_err(|e| format!("hostname: {e}"))
}

fn write_atomic(path: &str, content: &str) -> Result<(), String> {
    // A file mounted over (`ip netns exec` mounts /etc/netns/NAME/resolv.conf
    // there) cannot be replaced by a rename: it is written in place.
    let mounted = std::fs::read_to_string("/proc/self/mountinfo").is_ok_and(|m| m.lines().any(|l| l.split(' ').nth(4) == Some(path)));
    if mounted {
        return std::fs::write(path, content).map_err(|e| format!("{path}: {e}"));
    }
    let tmp = format!("{path}.netcfg");
    std::fs::write(&tmp, content).map_err(|e| format!("{tmp}: {e}"))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("{path}: {e}")
    })
}

async fn run(h: &Handle, s: &Step) -> Result<(), String> {
    match s {
        Step::Sysctl { key, value, .. } => write_sysctl(key, value),
        Step::CreateBond { name, mode, miimon } => live::create_bond(h, name, *mode, *miimon).await,
        Step::Enslave { member, bond, .. } => live::set_controller(h, member, Some(bond)).await,
        Step::CreateVlan { name, parent, id } => live::create_vlan(h, name, parent, *id).await,
        Step::Mtu { link, mtu, .. } => live::set_mtu(h, link, *mtu).await,
        Step::Up { link, up, .. } => live::set_up(h, link, *up).await,
        Step::DelAddr { link, net } => live::del_address(h, link, *net).await,
        Step::AddAddr { link, net, nodad } => {
            live::add_address(h, link, *net, *nodad).await?;
            crate::announce::address_added(link, *net);
            Ok(())
        }
        Step::AddRoute(r) => live::add_route(h, r).await,
        Step::ReplaceRoute { new, .. } => live::replace_route(h, new).await,
        Step::StartDhcp {
            link,
            default_route,
            run_dir,
        } => crate::dhcp::start(run_dir, link, *default_route),
        Step::StopDhcp { link, run_dir } => crate::dhcp::stop(run_dir, link),
        Step::Hostname { name, .. } => set_hostname(name),
        Step::Resolv { content, .. } => write_atomic(RESOLV, content),
    }
}

async fn undo(h: &Handle, s: &Step) -> Result<(), String> {
    match s {
        Step::Sysctl { key, old, .. } => write_sysctl(key, old),
        Step::CreateBond { name, .. } | Step::CreateVlan { name, .. } => live::delete_link(h, name).await,
        Step::Enslave { member, old, was_up, .. } => {
            live::set_controller(h, member, old.as_deref()).await?;
            // Joining took it down: it comes back as it was.
            if *was_up {
                live::set_up(h, member, true).await?;
            }
            Ok(())
        }
        Step::Mtu { link, old, .. } => match old {
            Some(m) => live::set_mtu(h, link, *m).await,
            None => Ok(()),
        },
        Step::Up { link, was, .. } => match was {
            Some(w) => live::set_up(h, link, *w).await,
            None => Ok(()),
        },
        Step::DelAddr { link, net } => live::add_address(h, link, *net, false).await,
        Step::AddAddr { link, net, .. } => live::del_address(h, link, *net).await,
        Step::AddRoute(r) => live::del_route(h, r).await,
        Step::ReplaceRoute { old, .. } => live::replace_route(h, old).await,
        Step::StartDhcp { link, run_dir, .. } => crate::dhcp::stop(run_dir, link),
        Step::StopDhcp { link, run_dir } => crate::dhcp::start(run_dir, link, false),
        Step::Hostname { old, .. } => set_hostname(old),
        Step::Resolv { old, .. } => match old {
            Some(o) => write_atomic(RESOLV, o),
            None => std::fs::remove_file(RESOLV).map_err(|e| e.to_string()),
        },
    }
}

/// A step that failed, after the ones before it were undone.
#[derive(Debug)]
pub struct Failed {
    pub step: usize,
    pub what: String,
    pub error: String,
    pub undone: usize,
    pub undo_errors: Vec<String>,
}

impl fmt::Display for Failed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "step {} ({}) failed: {}; the {} step(s) before it were undone",
            self.step, self.what, self.error, self.undone
        )?;
        for e in &self.undo_errors {
            write!(f, "\n  could not undo: {e}")?;
        }
        Ok(())
    }
}

/// Runs the steps in order; on a failure, undoes the ones made, last first.
/// `NETCFG_FAIL_AT=N` (tests) makes step N fail as if the kernel refused it.
pub async fn apply(h: &Handle, steps: &[Step]) -> Result<(), Failed> {
    let fail_at: Option<usize> = std::env::var("NETCFG_FAIL_AT").ok().and_then(|v| v.parse().ok());
    for (i, s) in steps.iter().enumerate() {
        let result = if fail_at == Some(i + 1) {
            Err("injected failure (NETCFG_FAIL_AT)".to_owned())
        } else {
            run(h, s).await
        };
        if let Err(error) = result {
            let mut undo_errors = Vec::new();
            for done in steps[..i].iter().rev() {
                if let Err(e) = undo(h, done).await {
                    undo_errors.push(format!("{done}: {e}"));
                }
            }
            return Err(Failed {
                step: i + 1,
                what: s.to_string(),
                error,
                undone: i,
                undo_errors,
            });
        }
    }
    Ok(())
}

/// Undoes applied steps, last first (a later part of the apply failed); what could not be undone.
pub async fn undo_all(h: &Handle, steps: &[Step]) -> Vec<String> {
    let mut errors = Vec::new();
    for s in steps.iter().rev() {
        if let Err(e) = undo(h, s).await {
            errors.push(format!("{s}: {e}"));
        }
    }
    errors
}

/// Kinds the live state must not contradict (a VLAN that exists with another id).
pub fn conflicts(want: &Desired, live: &Live) -> Vec<String> {
    let mut out = Vec::new();
    for (name, l) in &want.links {
        let Some(cur) = live.links.get(name) else { continue };
        match (&l.kind, &cur.kind) {
            (LinkKind::Vlan { parent, id }, Kind::Vlan { parent: p, id: i }) => {
                let pname = live.by_index(*p).map(|x| x.name.as_str()).unwrap_or("?");
                if pname != parent || i != id {
                    out.push(format!(
                        "{name} exists as VLAN {i} on {pname}, not VLAN {id} on {parent}: remove it first"
                    ));
                }
            }
            (LinkKind::Vlan { .. }, k) => out.push(format!("{name} exists and is not a VLAN ({k:?})")),
            (LinkKind::Bond { mode, .. }, Kind::Bond { mode: m, .. }) if m.as_ref() != Some(mode) => {
                out.push(format!("bond {name} exists in another mode: remove it first"));
            }
            (LinkKind::Bond { .. }, Kind::Bond { .. }) => {}
            (LinkKind::Bond { .. }, k) => out.push(format!("{name} exists and is not a bond ({k:?})")),
            _ => {}
        }
    }
    out
}
