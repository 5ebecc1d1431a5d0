//! Multiaddrs (multiformats/multiaddr) in their binary and text forms, for the protocols a
//! gossipsub node's addresses use: `/ip4`, `/ip6`, `/tcp`, `/udp`, `/quic-v1`, `/p2p` and
//! `/dns`, `/dns4`, `/dns6`. Codes are those of the spec's `protocols.csv`.
//!
//! Binary: each component is its code as a varint, then its value — fixed size for addresses
//! and ports (big-endian), nothing for `quic-v1`, a varint length and the bytes for `p2p` and
//! the DNS names. Text: `/name/value` per component, `p2p` values in base58btc (the legacy name
//! `/ipfs` is read as `/p2p`). Any other code or name is an error; nothing here panics, and
//! decoding allocates no more than its input's size.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::varint;

/// `ip4`'s code.
const IP4: u64 = 4;
/// `tcp`'s code.
const TCP: u64 = 6;
/// `ip6`'s code.
const IP6: u64 = 41;
/// `dns`'s code.
const DNS: u64 = 53;
/// `dns4`'s code.
const DNS4: u64 = 54;
/// `dns6`'s code.
const DNS6: u64 = 55;
/// `udp`'s code.
const UDP: u64 = 273;
/// `p2p`'s code (also `ipfs`).
const P2P: u64 = 421;
/// `quic-v1`'s code.
const QUIC_V1: u64 = 461;

/// Why bytes or text are not a multiaddr we understand.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MultiaddrError {
    /// A protocol code this module does not know.
    #[error("unknown multiaddr protocol code {0}")]
    UnknownCode(u64),
    /// A protocol name this module does not know.
    #[error("unknown multiaddr protocol name {0:?}")]
    UnknownName(String),
    /// The bytes ended inside a component.
    #[error("multiaddr truncated")]
    Truncated,
    /// A varint too long, or not in its shortest form (multiformats requires minimal varints).
    #[error("multiaddr varint overlong or not minimal")]
    Varint,
    /// A component's value is malformed (address, port, peer id or name).
    #[error("invalid value for /{protocol}: {value:?}")]
    InvalidValue {
        /// The protocol's name.
        protocol: &'static str,
        /// The offending value (text, or the bytes' debug form).
        value: String,
    },
    /// The text does not start with `/`, or a protocol lacks its value.
    #[error("malformed multiaddr text")]
    Malformed,
}

/// One component of a multiaddr.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// `/ip4/<dotted quad>`.
    Ip4(Ipv4Addr),
    /// `/ip6/<RFC 5952 text>`.
    Ip6(Ipv6Addr),
    /// `/tcp/<port>`.
    Tcp(u16),
    /// `/udp/<port>`.
    Udp(u16),
    /// `/quic-v1` (RFC 9000 QUIC, over the preceding `/udp`).
    QuicV1,
    /// `/p2p/<base58btc>`: a peer id's multihash bytes.
    P2p(Vec<u8>),
    /// `/dns/<name>`: resolved to IPv4 or IPv6.
    Dns(String),
    /// `/dns4/<name>`: resolved to IPv4 only.
    Dns4(String),
    /// `/dns6/<name>`: resolved to IPv6 only.
    Dns6(String),
}

/// A multiaddr: a sequence of [`Protocol`] components, outermost first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Multiaddr(pub Vec<Protocol>);

impl Protocol {
    /// The protocol's text name.
    pub fn name(&self) -> &'static str {
        match self {
            Protocol::Ip4(_) => "ip4",
            Protocol::Ip6(_) => "ip6",
            Protocol::Tcp(_) => "tcp",
            Protocol::Udp(_) => "udp",
            Protocol::QuicV1 => "quic-v1",
            Protocol::P2p(_) => "p2p",
            Protocol::Dns(_) => "dns",
            Protocol::Dns4(_) => "dns4",
            Protocol::Dns6(_) => "dns6",
        }
    }

    /// The protocol's code.
    fn code(&self) -> u64 {
        match self {
            Protocol::Ip4(_) => IP4,
            Protocol::Ip6(_) => IP6,
            Protocol::Tcp(_) => TCP,
            Protocol::Udp(_) => UDP,
            Protocol::QuicV1 => QUIC_V1,
            Protocol::P2p(_) => P2P,
            Protocol::Dns(_) => DNS,
            Protocol::Dns4(_) => DNS4,
            Protocol::Dns6(_) => DNS6,
        }
    }

    /// Appends the binary form.
    fn write(&self, out: &mut Vec<u8>) {
        varint::put(out, self.code());
        match self {
            Protocol::Ip4(a) => out.extend(a.octets()),
            Protocol::Ip6(a) => out.extend(a.octets()),
            Protocol::Tcp(p) | Protocol::Udp(p) => out.extend(p.to_be_bytes()),
            Protocol::QuicV1 => {}
            Protocol::P2p(b) => put_len_prefixed(out, b),
            Protocol::Dns(n) | Protocol::Dns4(n) | Protocol::Dns6(n) => put_len_prefixed(out, n.as_bytes()),
        }
    }

    /// Reads one component from the start of `bytes`: it and the bytes it took.
    fn read(bytes: &[u8]) -> Result<(Protocol, usize), MultiaddrError> {
        let (code, n) = get_varint(bytes)?;
        let rest = &bytes[n..];
        let (p, used) = match code {
            IP4 => (Protocol::Ip4(Ipv4Addr::from(fixed::<4>(rest)?)), 4),
            IP6 => (Protocol::Ip6(Ipv6Addr::from(fixed::<16>(rest)?)), 16),
            TCP => (Protocol::Tcp(u16::from_be_bytes(fixed(rest)?)), 2),
            UDP => (Protocol::Udp(u16::from_be_bytes(fixed(rest)?)), 2),
            QUIC_V1 => (Protocol::QuicV1, 0),
            P2P | DNS | DNS4 | DNS6 => {
                let (len, m) = get_varint(rest)?;
                let len = usize::try_from(len).map_err(|_| MultiaddrError::Truncated)?;
                let value = rest.get(m..m.saturating_add(len)).ok_or(MultiaddrError::Truncated)?;
                (variable(code, value)?, m + len)
            }
            other => return Err(MultiaddrError::UnknownCode(other)),
        };
        Ok((p, n + used))
    }

    /// Parses one component from its name and the text parts after it.
    fn parse<'a>(name: &str, parts: &mut impl Iterator<Item = &'a str>) -> Result<Protocol, MultiaddrError> {
        if name == "quic-v1" {
            return Ok(Protocol::QuicV1);
        }
        let known = ["ip4", "ip6", "tcp", "udp", "p2p", "ipfs", "dns", "dns4", "dns6"];
        if !known.contains(&name) {
            return Err(MultiaddrError::UnknownName(name.to_owned()));
        }
        let value = parts.next().ok_or(MultiaddrError::Malformed)?;
        let bad = |protocol| MultiaddrError::InvalidValue { protocol, value: value.to_owned() };
        Ok(match name {
            "ip4" => Protocol::Ip4(value.parse().map_err(|_| bad("ip4"))?),
            "ip6" => Protocol::Ip6(value.parse().map_err(|_| bad("ip6"))?),
            "tcp" => Protocol::Tcp(value.parse().map_err(|_| bad("tcp"))?),
            "udp" => Protocol::Udp(value.parse().map_err(|_| bad("udp"))?),
            "p2p" | "ipfs" => {
                let b = bs58::decode(value).into_vec().map_err(|_| bad("p2p"))?;
                variable(P2P, &b)?
            }
            "dns" => variable(DNS, value.as_bytes())?,
            "dns4" => variable(DNS4, value.as_bytes())?,
            _ => variable(DNS6, value.as_bytes())?,
        })
    }
}

/// Builds a variable-length component, checking its value: a peer id must be one whole
/// multihash (code, length, digest); a DNS name must be non-empty UTF-8 without `/`, so that
/// the text form reads back.
fn variable(code: u64, value: &[u8]) -> Result<Protocol, MultiaddrError> {
    let debug = || format!("{value:?}");
    if code == P2P {
        if !is_multihash(value) {
            return Err(MultiaddrError::InvalidValue { protocol: "p2p", value: debug() });
        }
        return Ok(Protocol::P2p(value.to_vec()));
    }
    let protocol = match code {
        DNS => "dns",
        DNS4 => "dns4",
        _ => "dns6",
    };
    let name = std::str::from_utf8(value)
        .ok()
        .filter(|n| !n.is_empty() && !n.contains('/'))
        .ok_or_else(|| MultiaddrError::InvalidValue { protocol, value: debug() })?
        .to_owned();
    Ok(match code {
        DNS => Protocol::Dns(name),
        DNS4 => Protocol::Dns4(name),
        _ => Protocol::Dns6(name),
    })
}

/// Whether `b` is exactly one multihash: varint code, varint digest length, that many bytes.
fn is_multihash(b: &[u8]) -> bool {
    let Ok((_, n)) = get_varint(b) else { return false };
    let Ok((len, m)) = get_varint(&b[n..]) else { return false };
    usize::try_from(len).is_ok_and(|len| b.len() - n - m == len)
}

/// A multiformats varint: at most 9 bytes, and minimal, so each address has one binary form.
fn get_varint(bytes: &[u8]) -> Result<(u64, usize), MultiaddrError> {
    match varint::get(bytes) {
        Ok((v, n)) if varint::len(v) == n => Ok((v, n)),
        Err(varint::VarintError::Truncated) => Err(MultiaddrError::Truncated),
        _ => Err(MultiaddrError::Varint),
    }
}

/// The first `N` bytes of `bytes`.
fn fixed<const N: usize>(bytes: &[u8]) -> Result<[u8; N], MultiaddrError> {
    bytes.get(..N).and_then(|b| b.try_into().ok()).ok_or(MultiaddrError::Truncated)
}

/// Appends a varint length and the bytes.
fn put_len_prefixed(out: &mut Vec<u8>, b: &[u8]) {
    varint::put(out, b.len() as u64);
    out.extend_from_slice(b);
}

impl Multiaddr {
    /// The binary form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for p in &self.0 {
            p.write(&mut out);
        }
        out
    }

    /// Reads the binary form; every byte must belong to a known component.
    pub fn from_bytes(mut bytes: &[u8]) -> Result<Multiaddr, MultiaddrError> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let (p, n) = Protocol::read(bytes)?;
            out.push(p);
            bytes = &bytes[n..];
        }
        Ok(Multiaddr(out))
    }

    /// The components.
    pub fn iter(&self) -> std::slice::Iter<'_, Protocol> {
        self.0.iter()
    }

    /// This address with `p` appended.
    pub fn with(mut self, p: Protocol) -> Multiaddr {
        self.0.push(p);
        self
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}", self.name())?;
        match self {
            Protocol::Ip4(a) => write!(f, "/{a}"),
            Protocol::Ip6(a) => write!(f, "/{a}"),
            Protocol::Tcp(p) | Protocol::Udp(p) => write!(f, "/{p}"),
            Protocol::QuicV1 => Ok(()),
            Protocol::P2p(b) => write!(f, "/{}", bs58::encode(b).into_string()),
            Protocol::Dns(n) | Protocol::Dns4(n) | Protocol::Dns6(n) => write!(f, "/{n}"),
        }
    }
}

impl fmt::Display for Multiaddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|p| p.fmt(f))
    }
}

impl FromStr for Multiaddr {
    type Err = MultiaddrError;

    /// Reads the text form; the empty string is the empty multiaddr.
    fn from_str(s: &str) -> Result<Multiaddr, MultiaddrError> {
        if s.is_empty() {
            return Ok(Multiaddr::default());
        }
        let mut parts = s.strip_prefix('/').ok_or(MultiaddrError::Malformed)?.split('/');
        let mut out = Vec::new();
        while let Some(name) = parts.next() {
            out.push(Protocol::parse(name, &mut parts)?);
        }
        Ok(Multiaddr(out))
    }
}

#[cfg(test)]
mod tests;
