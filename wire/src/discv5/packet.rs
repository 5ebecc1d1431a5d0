//! discv5 v5.1 packets: `masking-iv || masked-header || message`. The header (a static part,
//! then the `authdata` of one of three kinds) is masked with AES-128-CTR keyed by the first 16
//! bytes of the destination's node id; the message is AES-GCM ciphertext (see
//! [`super::session`]). Decoding takes any bytes from a peer and never panics.

use super::enr::NodeId;
use aes::cipher::{KeyIvInit as _, StreamCipher as _};

/// The protocol id at the start of every header.
pub const PROTOCOL_ID: &[u8; 6] = b"discv5";
/// The protocol version, v5.1.
pub const VERSION: u16 = 1;
/// The largest packet.
pub const MAX_PACKET: usize = 1280;
/// The smallest packet.
pub const MIN_PACKET: usize = 63;
/// `protocol-id || version || flag || nonce || authdata-size`.
const STATIC_HEADER: usize = 6 + 2 + 1 + 12 + 2;

type Masking = ctr::Ctr128BE<aes::Aes128>;

/// Why bytes are not a packet for us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Shorter than 63 or longer than 1280 bytes.
    #[error("packet of {0} bytes, outside 63..=1280")]
    Size(usize),
    /// The unmasked header does not start with `discv5` and version 1 (not for us, or not discv5).
    #[error("not a discv5 v5.1 header")]
    NotDiscv5,
    /// An unknown flag.
    #[error("unknown packet flag {0}")]
    Flag(u8),
    /// `authdata` of the wrong size for its kind, or longer than the packet.
    #[error("bad authdata")]
    AuthData,
}

/// The `authdata` of the three kinds of packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthData {
    /// An ordinary message (flag 0): the sender's node id.
    Message {
        /// The sender.
        src: NodeId,
    },
    /// WHOAREYOU (flag 1): the challenge.
    WhoAreYou {
        /// Random bytes the handshake signs.
        id_nonce: [u8; 16],
        /// The sequence number of the sender's record that the challenger holds (0: none).
        enr_seq: u64,
    },
    /// A handshake message (flag 2).
    Handshake {
        /// The sender.
        src: NodeId,
        /// The id signature (64 bytes for "v4").
        signature: Vec<u8>,
        /// The ephemeral public key (33 bytes compressed for "v4").
        eph_pubkey: Vec<u8>,
        /// The sender's record, when the challenge asked for it.
        record: Option<Vec<u8>>,
    },
}

/// A packet header: the message nonce and the `authdata`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The message's nonce (for WHOAREYOU: the nonce of the packet it answers).
    pub nonce: [u8; 12],
    /// The kind's data.
    pub auth: AuthData,
}

impl Header {
    fn flag(&self) -> u8 {
        match self.auth {
            AuthData::Message { .. } => 0,
            AuthData::WhoAreYou { .. } => 1,
            AuthData::Handshake { .. } => 2,
        }
    }

    /// The unmasked header: `static-header || authdata`.
    pub fn encode(&self) -> Vec<u8> {
        let mut auth = Vec::new();
        match &self.auth {
            AuthData::Message { src } => auth.extend_from_slice(src),
            AuthData::WhoAreYou { id_nonce, enr_seq } => {
                auth.extend_from_slice(id_nonce);
                auth.extend_from_slice(&enr_seq.to_be_bytes());
            }
            AuthData::Handshake { src, signature, eph_pubkey, record } => {
                auth.extend_from_slice(src);
                auth.push(signature.len() as u8);
                auth.push(eph_pubkey.len() as u8);
                auth.extend_from_slice(signature);
                auth.extend_from_slice(eph_pubkey);
                auth.extend_from_slice(record.as_deref().unwrap_or_default());
            }
        }
        let mut out = Vec::with_capacity(STATIC_HEADER + auth.len());
        out.extend_from_slice(PROTOCOL_ID);
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.push(self.flag());
        out.extend_from_slice(&self.nonce);
        out.extend_from_slice(&(auth.len() as u16).to_be_bytes());
        out.extend_from_slice(&auth);
        out
    }
}

/// A packet addressed to us, unmasked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<'a> {
    /// The masking IV.
    pub masking_iv: [u8; 16],
    /// The header.
    pub header: Header,
    /// `masking-iv || header` unmasked: the message's associated data, and for a WHOAREYOU the
    /// `challenge-data` the handshake keys and signature are made from.
    pub authenticated: Vec<u8>,
    /// The encrypted message (empty for WHOAREYOU).
    pub message: &'a [u8],
}

/// The packet carrying `header` and encrypted `message` to `dest`, masked with `masking_iv`.
pub fn encode(dest: &NodeId, masking_iv: [u8; 16], header: &Header, message: &[u8]) -> Vec<u8> {
    let mut masked = header.encode();
    Masking::new((&dest[..16]).into(), (&masking_iv).into()).apply_keystream(&mut masked);
    let mut out = Vec::with_capacity(16 + masked.len() + message.len());
    out.extend_from_slice(&masking_iv);
    out.extend_from_slice(&masked);
    out.extend_from_slice(message);
    out
}

/// `masking-iv || header` of a packet we build: its message's associated data.
pub fn authenticated(masking_iv: [u8; 16], header: &Header) -> Vec<u8> {
    let mut out = masking_iv.to_vec();
    out.extend_from_slice(&header.encode());
    out
}

/// Unmasks and parses a packet that reached node `local`.
pub fn decode<'a>(local: &NodeId, bytes: &'a [u8]) -> Result<Packet<'a>, PacketError> {
    if !(MIN_PACKET..=MAX_PACKET).contains(&bytes.len()) {
        return Err(PacketError::Size(bytes.len()));
    }
    let masking_iv: [u8; 16] = bytes[..16].try_into().expect("checked length");
    let mut cipher = Masking::new((&local[..16]).into(), (&masking_iv).into());
    let mut head = bytes[16..16 + STATIC_HEADER].to_vec();
    cipher.apply_keystream(&mut head);
    if &head[..6] != PROTOCOL_ID || head[6..8] != VERSION.to_be_bytes() {
        return Err(PacketError::NotDiscv5);
    }
    let flag = head[8];
    let nonce: [u8; 12] = head[9..21].try_into().expect("static header length");
    let size = usize::from(u16::from_be_bytes([head[21], head[22]]));
    let auth_end = 16 + STATIC_HEADER + size;
    let mut auth = bytes.get(16 + STATIC_HEADER..auth_end).ok_or(PacketError::AuthData)?.to_vec();
    cipher.apply_keystream(&mut auth);
    let auth_data = parse_auth(flag, &auth)?;
    let message = &bytes[auth_end..];
    if matches!(auth_data, AuthData::WhoAreYou { .. }) && !message.is_empty() {
        return Err(PacketError::AuthData);
    }
    let mut authenticated = masking_iv.to_vec();
    authenticated.extend_from_slice(&head);
    authenticated.extend_from_slice(&auth);
    Ok(Packet { masking_iv, header: Header { nonce, auth: auth_data }, authenticated, message })
}

/// The `authdata` of a packet with `flag`.
fn parse_auth(flag: u8, auth: &[u8]) -> Result<AuthData, PacketError> {
    let id = |b: &[u8]| -> NodeId { b[..32].try_into().expect("checked length") };
    match flag {
        0 if auth.len() == 32 => Ok(AuthData::Message { src: id(auth) }),
        1 if auth.len() == 24 => Ok(AuthData::WhoAreYou {
            id_nonce: auth[..16].try_into().expect("checked length"),
            enr_seq: u64::from_be_bytes(auth[16..24].try_into().expect("checked length")),
        }),
        2 if auth.len() >= 34 => {
            let (sig, key) = (usize::from(auth[32]), usize::from(auth[33]));
            let rest = &auth[34..];
            if rest.len() < sig + key {
                return Err(PacketError::AuthData);
            }
            let record = &rest[sig + key..];
            Ok(AuthData::Handshake {
                src: id(auth),
                signature: rest[..sig].to_vec(),
                eph_pubkey: rest[sig..sig + key].to_vec(),
                record: (!record.is_empty()).then(|| record.to_vec()),
            })
        }
        0..=2 => Err(PacketError::AuthData),
        f => Err(PacketError::Flag(f)),
    }
}
