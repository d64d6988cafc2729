//! STUN Binding (RFC 8489) for address discovery: the request we send from our SIP socket and
//! the mapped address in the server's success response. Sans-IO: bytes in, bytes out.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

const MAGIC_COOKIE: u32 = 0x2112_A442;
const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
const MAPPED_ADDRESS: u16 = 0x0001;
const XOR_MAPPED_ADDRESS: u16 = 0x0020;
const HEADER_LEN: usize = 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StunError {
    #[error("not a STUN message")]
    NotStun,
    #[error("not the answer to our request")]
    OtherTransaction,
    #[error("the server refused the binding request")]
    Refused,
    #[error("no mapped address in the answer")]
    NoAddress,
}

/// A Binding request with this transaction id (no attributes).
pub fn binding_request(transaction_id: [u8; 12]) -> Vec<u8> {
    let mut request = Vec::with_capacity(HEADER_LEN);
    request.extend_from_slice(&BINDING_REQUEST.to_be_bytes());
    request.extend_from_slice(&0u16.to_be_bytes());
    request.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
    request.extend_from_slice(&transaction_id);
    request
}

/// Whether a datagram looks like STUN (first two bits zero, the magic cookie).
pub fn is_stun(bytes: &[u8]) -> bool {
    bytes.len() >= HEADER_LEN
        && bytes.first().is_some_and(|b| b & 0xc0 == 0)
        && bytes.get(4..8) == Some(&MAGIC_COOKIE.to_be_bytes()[..])
}

/// The address the server saw our request come from, from its success response to
/// `transaction_id` (XOR-MAPPED-ADDRESS, else the old MAPPED-ADDRESS).
pub fn mapped_address(bytes: &[u8], transaction_id: [u8; 12]) -> Result<SocketAddr, StunError> {
    if !is_stun(bytes) {
        return Err(StunError::NotStun);
    }
    let kind = u16::from_be_bytes([bytes[0], bytes[1]]);
    if bytes.get(8..20) != Some(&transaction_id[..]) {
        return Err(StunError::OtherTransaction);
    }
    if kind != BINDING_SUCCESS {
        return Err(StunError::Refused);
    }
    let length = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
    let body = bytes
        .get(HEADER_LEN..HEADER_LEN + length)
        .ok_or(StunError::NotStun)?;
    let mut plain = None;
    let mut rest = body;
    while let (Some(kind), Some(len)) = (rest.get(0..2), rest.get(2..4)) {
        let kind = u16::from_be_bytes([kind[0], kind[1]]);
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        let Some(value) = rest.get(4..4 + len) else {
            break;
        };
        match kind {
            XOR_MAPPED_ADDRESS => {
                if let Some(addr) = address(value, Some(transaction_id)) {
                    return Ok(addr);
                }
            }
            MAPPED_ADDRESS => plain = plain.or_else(|| address(value, None)),
            _ => {}
        }
        // Attributes are padded to 4 bytes.
        rest = rest.get(4 + len.div_ceil(4) * 4..).unwrap_or_default();
    }
    plain.ok_or(StunError::NoAddress)
}

/// An address attribute's value; XORed with the cookie (and transaction id) when `xor` is set.
fn address(value: &[u8], xor: Option<[u8; 12]>) -> Option<SocketAddr> {
    let family = *value.get(1)?;
    let port: [u8; 2] = value.get(2..4)?.try_into().ok()?;
    let mut port = u16::from_be_bytes(port);
    let cookie = MAGIC_COOKIE.to_be_bytes();
    if xor.is_some() {
        port ^= (MAGIC_COOKIE >> 16) as u16;
    }
    let ip = match family {
        0x01 => {
            let mut octets: [u8; 4] = value.get(4..8)?.try_into().ok()?;
            if xor.is_some() {
                for (octet, key) in octets.iter_mut().zip(cookie) {
                    *octet ^= key;
                }
            }
            IpAddr::V4(Ipv4Addr::from(octets))
        }
        0x02 => {
            let mut octets: [u8; 16] = value.get(4..20)?.try_into().ok()?;
            if let Some(transaction_id) = xor {
                let key = cookie.iter().chain(&transaction_id);
                for (octet, key) in octets.iter_mut().zip(key) {
                    *octet ^= key;
                }
            }
            IpAddr::V6(Ipv6Addr::from(octets))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// A success response carrying `mapped` as XOR-MAPPED-ADDRESS (for tests and test servers).
pub fn binding_success(transaction_id: [u8; 12], mapped: SocketAddr) -> Vec<u8> {
    let cookie = MAGIC_COOKIE.to_be_bytes();
    let mut value = vec![0, if mapped.is_ipv4() { 1 } else { 2 }];
    value.extend_from_slice(&(mapped.port() ^ (MAGIC_COOKIE >> 16) as u16).to_be_bytes());
    match mapped.ip() {
        IpAddr::V4(ip) => value.extend(ip.octets().iter().zip(cookie).map(|(a, b)| a ^ b)),
        IpAddr::V6(ip) => {
            let key = cookie.iter().chain(&transaction_id);
            value.extend(ip.octets().iter().zip(key).map(|(a, b)| a ^ b));
        }
    }
    let mut response = Vec::new();
    response.extend_from_slice(&BINDING_SUCCESS.to_be_bytes());
    response.extend_from_slice(&((4 + value.len()) as u16).to_be_bytes());
    response.extend_from_slice(&cookie);
    response.extend_from_slice(&transaction_id);
    response.extend_from_slice(&XOR_MAPPED_ADDRESS.to_be_bytes());
    response.extend_from_slice(&(value.len() as u16).to_be_bytes());
    response.extend_from_slice(&value);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: [u8; 12] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];

    #[test]
    fn reads_the_xor_mapped_address_of_our_request() {
        let request = binding_request(ID);
        assert!(is_stun(&request));
        assert_eq!(request.len(), 20);
        for mapped in ["203.0.113.9:41000", "[2001:db8::7]:5060"] {
            let mapped: SocketAddr = mapped.parse().unwrap();
            let response = binding_success(ID, mapped);
            assert_eq!(mapped_address(&response, ID), Ok(mapped));
            assert_eq!(
                mapped_address(&response, [0; 12]),
                Err(StunError::OtherTransaction)
            );
        }
    }

    #[test]
    fn rfc_5769_sample_response_decodes() {
        // RFC 5769 §2.2: IPv4 response, XOR-MAPPED-ADDRESS 192.0.2.1:32853 (SOFTWARE and
        // integrity attributes skipped).
        let id = [
            0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
        ];
        let mut response = vec![0x01, 0x01, 0x00, 0x3c, 0x21, 0x12, 0xa4, 0x42];
        response.extend_from_slice(&id);
        response.extend_from_slice(&[
            0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63, 0x74, 0x6f,
            0x72, 0x20, 0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43,
            0x00, 0x08, 0x00, 0x14, 0x2b, 0x91, 0xf5, 0x99, 0xfd, 0x9e, 0x90, 0xc3, 0x8c, 0x74,
            0x89, 0xf9, 0x2a, 0xf9, 0xba, 0x53, 0xf0, 0x6b, 0xe7, 0xd7, 0x80, 0x28, 0x00, 0x04,
            0xc0, 0x7d, 0x4c, 0x96,
        ]);
        assert_eq!(
            mapped_address(&response, id),
            Ok("192.0.2.1:32853".parse().unwrap())
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut truncated = binding_success(ID, "203.0.113.9:41000".parse().unwrap());
        truncated.truncate(26);
        for bytes in [
            &[][..],
            &[0u8; 19][..],
            &truncated[..],
            b"SIP/2.0 200 OK\r\n\r\n",
        ] {
            assert!(mapped_address(bytes, ID).is_err());
        }
        let mut error = binding_success(ID, "203.0.113.9:41000".parse().unwrap());
        error[1] = 0x11;
        assert_eq!(mapped_address(&error, ID), Err(StunError::Refused));
    }
}
