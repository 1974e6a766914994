//! The kernel's state, read over rtnetlink, and the changes netcfg makes to it.
//! The kernel is the source of truth: plans are computed against what is read
//! here, never against a state file.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::address::{AddressAttribute, AddressHeaderFlags, AddressMessage, AddressScope};
use rtnetlink::packet_route::link::{
    BondMode as NlBondMode, InfoBond, InfoData, InfoKind, InfoVlan, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope};
use rtnetlink::{Handle, LinkBond, LinkUnspec, LinkVlan, RouteMessageBuilder};

use crate::model::{BondMode, DesiredRoute, Known};

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Other(String),
    Vlan { parent: u32, id: u16 },
    Bond { mode: Option<BondMode>, miimon: u32 },
}

#[derive(Debug, Clone)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub mac: String,
    pub mtu: u32,
    pub up: bool,
    pub kind: Kind,
    pub controller: Option<u32>,
    /// Global-scope addresses.
    pub addresses: Vec<IpNet>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LiveRoute {
    pub to: IpNet,
    pub via: Option<IpAddr>,
    pub oif: Option<u32>,
    pub metric: Option<u32>,
    pub protocol: u8,
}

#[derive(Debug, Clone, Default)]
pub struct Live {
    pub links: BTreeMap<String, Link>,
    pub routes: Vec<LiveRoute>,
}

impl Live {
    pub fn by_index(&self, index: u32) -> Option<&Link> {
        self.links.values().find(|l| l.index == index)
    }
}

impl Known for Live {
    fn has_link(&self, name: &str) -> bool {
        self.links.contains_key(name)
    }

    fn address_count(&self, name: &str) -> usize {
        self.links.get(name).map_or(0, |l| l.addresses.len())
    }

    fn name_of_mac(&self, mac: &str) -> Option<String> {
        self.links
            .values()
            .find(|l| l.mac.eq_ignore_ascii_case(mac))
            .map(|l| l.name.clone())
    }
}

pub type Error = String;

fn nl(e: rtnetlink::Error) -> Error {
    e.to_string()
}

fn mac_text(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(":")
}

fn link_of(msg: LinkMessage) -> Link {
    let mut l = Link {
        index: msg.header.index,
        name: String::new(),
        mac: String::new(),
        mtu: 0,
        up: msg.header.flags.contains(LinkFlags::Up),
        kind: Kind::Other(String::new()),
        controller: None,
        addresses: Vec::new(),
    };
    let mut vlan_parent = 0;
    for a in msg.attributes {
        match a {
            LinkAttribute::IfName(n) => l.name = n,
            LinkAttribute::Address(m) => l.mac = mac_text(&m),
            LinkAttribute::Mtu(m) => l.mtu = m,
            LinkAttribute::Controller(c) => l.controller = Some(c),
            LinkAttribute::Link(p) => vlan_parent = p,
            LinkAttribute::LinkInfo(infos) => {
                let mut kind = None;
                let mut data = None;
                for i in infos {
                    match i {
                        LinkInfo::Kind(k) => kind = Some(k),
                        LinkInfo::Data(d) => data = Some(d),
                        _ => {}
                    }
                }
                l.kind = match (kind, data) {
                    (Some(InfoKind::Vlan), Some(InfoData::Vlan(v))) => Kind::Vlan {
                        parent: 0,
                        id: v
                            .iter()
                            .find_map(|x| if let InfoVlan::Id(id) = x { Some(*id) } else { None })
                            .unwrap_or(0),
                    },
                    (Some(InfoKind::Bond), Some(InfoData::Bond(b))) => {
                        let mut mode = None;
                        let mut miimon = 0;
                        for x in b {
                            match x {
                                InfoBond::Mode(m) => mode = from_nl(m),
                                InfoBond::MiiMon(m) => miimon = m,
                                _ => {}
                            }
                        }
                        Kind::Bond { mode, miimon }
                    }
                    (Some(k), _) => Kind::Other(k.to_string()),
                    _ => Kind::Other(String::new()),
                };
            }
            _ => {}
        }
    }
    if let Kind::Vlan { parent, .. } = &mut l.kind {
        *parent = vlan_parent;
    }
    l
}

fn from_nl(m: NlBondMode) -> Option<BondMode> {
    Some(match m {
        NlBondMode::ActiveBackup => BondMode::ActiveBackup,
        NlBondMode::Ieee8023Ad => BondMode::Lacp,
        NlBondMode::BalanceRr => BondMode::BalanceRr,
        NlBondMode::BalanceXor => BondMode::BalanceXor,
        NlBondMode::Broadcast => BondMode::Broadcast,
        NlBondMode::BalanceTlb => BondMode::BalanceTlb,
        NlBondMode::BalanceAlb => BondMode::BalanceAlb,
        _ => return None,
    })
}

/// Reads links, their global addresses, and the main table's routes.
pub async fn read(h: &Handle) -> Result<Live, Error> {
    let mut live = Live::default();
    let mut links = h.link().get().execute();
    while let Some(m) = links.try_next().await.map_err(nl)? {
        let l = link_of(m);
        live.links.insert(l.name.clone(), l);
    }
    let mut addrs = h.address().get().execute();
    while let Some(m) = addrs.try_next().await.map_err(nl)? {
        if m.header.scope != AddressScope::Universe {
            continue;
        }
        let ip = m.attributes.iter().find_map(|a| match a {
            AddressAttribute::Local(ip) => Some(*ip),
            _ => None,
        });
        let ip = ip.or_else(|| {
            m.attributes.iter().find_map(|a| match a {
                AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            })
        });
        let (Some(ip), Some(link)) = (ip, live.links.values_mut().find(|l| l.index == m.header.index)) else {
            continue;
        };
        if let Ok(n) = IpNet::new(ip, m.header.prefix_len) {
            link.addresses.push(n);
        }
    }
    for family in [
        RouteMessageBuilder::<Ipv4Addr>::new().build(),
        RouteMessageBuilder::<Ipv6Addr>::new().build(),
    ] {
        let mut routes = h.route().get(family).execute();
        while let Some(m) = routes.try_next().await.map_err(nl)? {
            if let Some(r) = route_of(&m) {
                live.routes.push(r);
            }
        }
    }
    Ok(live)
}

fn route_addr(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

fn route_of(m: &RouteMessage) -> Option<LiveRoute> {
    // The main table only; the kernel's own (link-scope, local) routes are not ours to manage.
    if m.header.table != 254 || m.header.scope == RouteScope::Host {
        return None;
    }
    let v6 = m.header.address_family == rtnetlink::packet_route::AddressFamily::Inet6;
    let mut dst = if v6 {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    };
    let mut via = None;
    let mut oif = None;
    let mut metric = None;
    for a in &m.attributes {
        match a {
            RouteAttribute::Destination(d) => dst = route_addr(d)?,
            RouteAttribute::Gateway(g) => via = route_addr(g),
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Priority(p) => metric = Some(*p),
            _ => {}
        }
    }
    Some(LiveRoute {
        to: IpNet::new(dst, m.header.destination_prefix_length).ok()?,
        via,
        oif,
        metric,
        protocol: u8::from(m.header.protocol),
    })
}

async fn index_of(h: &Handle, name: &str) -> Result<u32, Error> {
    let mut links = h.link().get().match_name(name.to_owned()).execute();
    match links.try_next().await {
        Ok(Some(m)) => Ok(m.header.index),
        Ok(None) => Err(format!("no interface '{name}'")),
        Err(e) => Err(format!("interface '{name}': {e}")),
    }
}

pub async fn create_vlan(h: &Handle, name: &str, parent: &str, id: u16) -> Result<(), Error> {
    let p = index_of(h, parent).await?;
    h.link().add(LinkVlan::new(name, p, id).build()).execute().await.map_err(nl)
}

pub async fn create_bond(h: &Handle, name: &str, mode: BondMode, miimon: u32) -> Result<(), Error> {
    let m = match mode {
        BondMode::ActiveBackup => NlBondMode::ActiveBackup,
        BondMode::Lacp => NlBondMode::Ieee8023Ad,
        BondMode::BalanceRr => NlBondMode::BalanceRr,
        BondMode::BalanceXor => NlBondMode::BalanceXor,
        BondMode::Broadcast => NlBondMode::Broadcast,
        BondMode::BalanceTlb => NlBondMode::BalanceTlb,
        BondMode::BalanceAlb => NlBondMode::BalanceAlb,
    };
    h.link()
        .add(LinkBond::new(name).mode(m).miimon(miimon).build())
        .execute()
        .await
        .map_err(nl)
}

pub async fn delete_link(h: &Handle, name: &str) -> Result<(), Error> {
    let i = index_of(h, name).await?;
    h.link().del(i).execute().await.map_err(nl)
}

pub async fn set_up(h: &Handle, name: &str, up: bool) -> Result<(), Error> {
    let i = index_of(h, name).await?;
    let m = if up {
        LinkUnspec::new_with_index(i).up().build()
    } else {
        LinkUnspec::new_with_index(i).down().build()
    };
    h.link().set(m).execute().await.map_err(nl)
}

pub async fn set_mtu(h: &Handle, name: &str, mtu: u32) -> Result<(), Error> {
    let i = index_of(h, name).await?;
    h.link()
        .set(LinkUnspec::new_with_index(i).mtu(mtu).build())
        .execute()
        .await
        .map_err(nl)
}

/// Puts `member` into `bond` (`None`: out of any bond). A member must be down to join.
pub async fn set_controller(h: &Handle, member: &str, bond: Option<&str>) -> Result<(), Error> {
    let i = index_of(h, member).await?;
    let m = match bond {
        Some(b) => {
            let bi = index_of(h, b).await?;
            h.link()
                .set(LinkUnspec::new_with_index(i).down().build())
                .execute()
                .await
                .map_err(nl)?;
            LinkUnspec::new_with_index(i).controller(bi).build()
        }
        None => LinkUnspec::new_with_index(i).nocontroller().build(),
    };
    h.link().set(m).execute().await.map_err(nl)
}

pub async fn add_address(h: &Handle, name: &str, net: IpNet, nodad: bool) -> Result<(), Error> {
    let i = index_of(h, name).await?;
    let mut req = h.address().add(i, net.addr(), net.prefix_len());
    if nodad && net.addr().is_ipv6() {
        req.message_mut().header.flags |= AddressHeaderFlags::Nodad;
    }
    req.execute().await.map_err(nl)
}

pub async fn del_address(h: &Handle, name: &str, net: IpNet) -> Result<(), Error> {
    let i = index_of(h, name).await?;
    if net.addr().is_ipv4() {
        // Removing a primary IPv4 address takes the secondaries of its subnet (VIPs)
        // along unless they are promoted.
        let _ = std::fs::write(format!("/proc/sys/net/ipv4/conf/{name}/promote_secondaries"), "1");
    }
    let mut addrs = h.address().get().set_link_index_filter(i).execute();
    while let Some(m) = addrs.try_next().await.map_err(nl)? {
        if matches(&m, net) {
            return h.address().del(m).execute().await.map_err(nl);
        }
    }
    Err(format!("{net} is not on '{name}'"))
}

fn matches(m: &AddressMessage, net: IpNet) -> bool {
    m.header.prefix_len == net.prefix_len()
        && m.attributes.iter().any(|a| match a {
            AddressAttribute::Local(ip) | AddressAttribute::Address(ip) => *ip == net.addr(),
            _ => false,
        })
}

fn route_message(r: &DesiredRoute, oif: Option<u32>) -> Result<RouteMessage, Error> {
    let mut b = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(r.to.addr(), r.to.prefix_len())
        .map_err(|e| e.to_string())?
        .protocol(RouteProtocol::Static);
    if let Some(gw) = r.via {
        b = b.gateway(gw).map_err(|e| e.to_string())?;
    }
    if let Some(i) = oif {
        b = b.output_interface(i);
    }
    if let Some(m) = r.metric {
        b = b.priority(m);
    }
    Ok(b.build())
}

pub async fn add_route(h: &Handle, r: &DesiredRoute) -> Result<(), Error> {
    let oif = match &r.dev {
        Some(d) => Some(index_of(h, d).await?),
        None => None,
    };
    h.route().add(route_message(r, oif)?).execute().await.map_err(nl)
}

/// Adds `r`, or replaces the route to the same prefix and metric.
pub async fn replace_route(h: &Handle, r: &DesiredRoute) -> Result<(), Error> {
    let oif = match &r.dev {
        Some(d) => Some(index_of(h, d).await?),
        None => None,
    };
    h.route().add(route_message(r, oif)?).replace().execute().await.map_err(nl)
}

pub async fn del_route(h: &Handle, r: &DesiredRoute) -> Result<(), Error> {
    let oif = match &r.dev {
        Some(d) => Some(index_of(h, d).await?),
        None => None,
    };
    h.route().del(route_message(r, oif)?).execute().await.map_err(nl)
}
