//! lo and eth0 with a static address (QEMU user networking hands out fixed ones).

use crate::sys;
use oci2vm_guest::Network;
use std::io;

/// The netmask for a prefix length (0-32; larger values saturate).
pub fn netmask(prefix: u8) -> [u8; 4] {
    let bits: u32 = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix.min(32)))
    };
    bits.to_be_bytes()
}

/// Brings lo up and, when configured, eth0 with its address and default route. The kernel
/// gives lo 127.0.0.1/8 (and ::1) itself when it goes up (`inetdev_event`, NETDEV_UP on a
/// loopback device), so lo needs no address ioctls. `wait_eth0` waits for the interface to
/// appear (the driver probes asynchronously).
pub fn configure(net: &Network, wait_eth0: impl Fn() -> bool) -> io::Result<()> {
    let sock = sys::inet_socket()?;
    sys::set_if_up(&sock, "lo").map_err(|e| io::Error::new(e.kind(), format!("lo up: {e}")))?;
    let Network::Static {
        addr,
        prefix,
        gateway,
    } = net
    else {
        return Ok(());
    };
    if !wait_eth0() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "no eth0 (virtio-net missing?)",
        ));
    }
    sys::set_if_addr(&sock, "eth0", *addr, netmask(*prefix))
        .map_err(|e| io::Error::new(e.kind(), format!("eth0 address: {e}")))?;
    sys::set_if_up(&sock, "eth0").map_err(|e| io::Error::new(e.kind(), format!("eth0 up: {e}")))?;
    if let Some(gw) = gateway {
        sys::add_default_route(&sock, *gw)
            .map_err(|e| io::Error::new(e.kind(), format!("default route: {e}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netmasks() {
        assert_eq!(netmask(0), [0, 0, 0, 0]);
        assert_eq!(netmask(8), [255, 0, 0, 0]);
        assert_eq!(netmask(24), [255, 255, 255, 0]);
        assert_eq!(netmask(30), [255, 255, 255, 252]);
        assert_eq!(netmask(32), [255, 255, 255, 255]);
        assert_eq!(netmask(99), [255, 255, 255, 255]);
    }
}
