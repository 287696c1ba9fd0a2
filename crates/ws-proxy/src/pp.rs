//! PROXY protocol headers (HAProxy's specification, versions 1 and 2).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use crate::config::ProxyProtocol;

/// The version 2 signature.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// Both addresses in one family: IPv4 when both are IPv4, IPv6 (IPv4-mapped) otherwise.
fn same_family(src: SocketAddr, dst: SocketAddr) -> (IpAddr, IpAddr) {
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => (IpAddr::V4(s), IpAddr::V4(d)),
        (s, d) => (IpAddr::V6(to_v6(s)), IpAddr::V6(to_v6(d))),
    }
}

fn to_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

impl ProxyProtocol {
    /// The header announcing a TCP connection from `src` (the browser) to `dst` (the proxy's
    /// listening address).
    ///
    /// ```
    /// use ws_proxy::ProxyProtocol;
    /// let h = ProxyProtocol::V1.header("192.0.2.1:5000".parse().unwrap(), "192.0.2.2:80".parse().unwrap());
    /// assert_eq!(h, b"PROXY TCP4 192.0.2.1 192.0.2.2 5000 80\r\n");
    /// ```
    #[must_use]
    pub fn header(self, src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
        let (s, d) = same_family(src, dst);
        match self {
            Self::V1 => {
                let family = if s.is_ipv4() { "TCP4" } else { "TCP6" };
                format!("PROXY {family} {s} {d} {} {}\r\n", src.port(), dst.port()).into_bytes()
            }
            Self::V2 => {
                let mut out = Vec::with_capacity(52);
                out.extend_from_slice(&V2_SIGNATURE);
                out.push(0x21); // version 2, PROXY command
                match (s, d) {
                    (IpAddr::V4(s), IpAddr::V4(d)) => {
                        out.push(0x11); // AF_INET, STREAM
                        out.extend_from_slice(&12u16.to_be_bytes());
                        out.extend_from_slice(&s.octets());
                        out.extend_from_slice(&d.octets());
                    }
                    (s, d) => {
                        out.push(0x21); // AF_INET6, STREAM
                        out.extend_from_slice(&36u16.to_be_bytes());
                        out.extend_from_slice(&to_v6(s).octets());
                        out.extend_from_slice(&to_v6(d).octets());
                    }
                }
                out.extend_from_slice(&src.port().to_be_bytes());
                out.extend_from_slice(&dst.port().to_be_bytes());
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_ipv6_and_mixed() {
        let h =
            ProxyProtocol::V1.header("[::1]:1000".parse().unwrap(), "[::2]:80".parse().unwrap());
        assert_eq!(h, b"PROXY TCP6 ::1 ::2 1000 80\r\n");
        let h =
            ProxyProtocol::V1.header("10.0.0.1:1".parse().unwrap(), "[::2]:80".parse().unwrap());
        assert_eq!(h, b"PROXY TCP6 ::ffff:10.0.0.1 ::2 1 80\r\n");
    }

    #[test]
    fn v2_layout() {
        let h = ProxyProtocol::V2.header(
            "192.0.2.1:5000".parse().unwrap(),
            "192.0.2.2:443".parse().unwrap(),
        );
        assert_eq!(h.len(), 16 + 12);
        assert_eq!(&h[..12], &V2_SIGNATURE);
        assert_eq!(&h[12..16], &[0x21, 0x11, 0, 12]);
        assert_eq!(&h[16..20], &[192, 0, 2, 1]);
        assert_eq!(&h[20..24], &[192, 0, 2, 2]);
        assert_eq!(&h[24..26], &5000u16.to_be_bytes());
        assert_eq!(&h[26..28], &443u16.to_be_bytes());
        let h = ProxyProtocol::V2.header("[::1]:1".parse().unwrap(), "[::1]:2".parse().unwrap());
        assert_eq!(h.len(), 16 + 36);
        assert_eq!(&h[12..16], &[0x21, 0x21, 0, 36]);
    }
}
