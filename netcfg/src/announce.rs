//! Telling the network that an address moved here: a gratuitous ARP for an
//! IPv4 address (so switches and neighbours update their caches at once when
//! a VIP is added), and for IPv6 the kernel's own unsolicited neighbour
//! advertisement (`ndisc_notify`), which netcfg turns on for the interface.

use std::net::IpAddr;

use ipnet::IpNet;

/// Announces `net`'s address on `dev`; failures are reported, not fatal (the
/// address is configured either way).
pub fn address_added(dev: &str, net: IpNet) {
    let r = match net.addr() {
        IpAddr::V4(ip) => garp(dev, ip.octets()),
        IpAddr::V6(_) => std::fs::write(format!("/proc/sys/net/ipv6/conf/{dev}/ndisc_notify"), "1").map_err(|e| e.to_string()),
    };
    if let Err(e) = r {
        eprintln!("netcfg: could not announce {net} on {dev}: {e}");
    }
}

fn mac_of(dev: &str) -> Result<[u8; 6], String> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{dev}/address")).map_err(|e| format!("{dev}: {e}"))?;
    let bytes: Vec<u8> = text.trim().split(':').filter_map(|h| u8::from_str_radix(h, 16).ok()).collect();
    <[u8; 6]>::try_from(bytes.as_slice()).map_err(|_| format!("{dev} has no Ethernet address"))
}

/// One broadcast ARP request for our own address (sender = target = `ip`).
fn garp(dev: &str, ip: [u8; 4]) -> Result<(), String> {
    let mac = mac_of(dev)?;
    let ifindex: i32 = std::fs::read_to_string(format!("/sys/class/net/{dev}/ifindex"))
        .map_err(|e| e.to_string())?
        .trim()
        .parse()
        .map_err(|_| "bad ifindex".to_owned())?;
    let mut frame = Vec::with_capacity(42);
    frame.extend_from_slice(&[0xff; 6]);
    frame.extend_from_slice(&mac);
    frame.extend_from_slice(&[0x08, 0x06]); // ARP
    frame.extend_from_slice(&[0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01]); // Ethernet, IPv4, request
    frame.extend_from_slice(&mac);
    frame.extend_from_slice(&ip);
    frame.extend_from_slice(&[0; 6]);
    frame.extend_from_slice(&ip);
    // SAFETY: plain socket calls on a descriptor this function owns; the address
    // structure is fully initialised and its size is passed.
    unsafe {
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error().to_string());
        }
        let mut addr: libc::sockaddr_ll = std::mem::zeroed();
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = 0x0806u16.to_be();
        addr.sll_ifindex = ifindex;
        addr.sll_halen = 6;
        addr.sll_addr[..6].copy_from_slice(&[0xff; 6]);
        let n = libc::sendto(
            fd,
            frame.as_ptr().cast(),
            frame.len(),
            0,
            (&addr as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        );
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        if n < 0 {
            return Err(err.to_string());
        }
    }
    Ok(())
}
