//! netcfg: the appliance's network configuration (interfaces, VLANs, bonds,
//! addresses, VIPs, routes, sysctls, DNS, hostname) from one declarative TOML
//! file, planned against the live kernel state and applied over rtnetlink.

pub mod announce;
pub mod dhcp;
pub mod live;
pub mod model;
pub mod plan;
pub mod show;
pub mod vrrp;
