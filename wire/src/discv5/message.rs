//! discv5 v5.1 messages: `message-type || rlp(message-data)`, the first item always the
//! request id (a byte string of at most 8 bytes). Records in NODES stay as bytes here; the
//! caller decodes and verifies each with [`super::enr::Enr::decode`].

use crate::rlp::{self, Item, RlpError};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why a plaintext is not a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// Empty plaintext.
    #[error("empty message")]
    Empty,
    /// A type this implementation does not speak.
    #[error("unknown message type {0:#04x}")]
    Type(u8),
    /// Not the message's RLP shape.
    #[error("message: {0}")]
    Rlp(#[from] RlpError),
    /// A request id over 8 bytes, an IP of neither 4 nor 16 bytes, a port over 65535.
    #[error("message field out of range")]
    Field,
}

/// One message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// PING (0x01): are you there, and my record's sequence number.
    Ping {
        /// Request id.
        req_id: Vec<u8>,
        /// The sender's record sequence number.
        enr_seq: u64,
    },
    /// PONG (0x02): the answer, with the address the request came from.
    Pong {
        /// Request id of the PING.
        req_id: Vec<u8>,
        /// The sender's record sequence number.
        enr_seq: u64,
        /// The PING's sender's address as seen.
        ip: IpAddr,
        /// Its UDP port as seen.
        port: u16,
    },
    /// FINDNODE (0x03): records at these log2 distances from the recipient.
    FindNode {
        /// Request id.
        req_id: Vec<u8>,
        /// Log2 distances (0: the recipient's own record).
        distances: Vec<u64>,
    },
    /// NODES (0x04): one of `total` responses carrying records.
    Nodes {
        /// Request id of the FINDNODE.
        req_id: Vec<u8>,
        /// How many NODES messages answer the request.
        total: u64,
        /// Encoded records.
        records: Vec<Vec<u8>>,
    },
    /// TALKREQ (0x05): an application request.
    TalkReq {
        /// Request id.
        req_id: Vec<u8>,
        /// Application protocol name.
        protocol: Vec<u8>,
        /// Its request.
        request: Vec<u8>,
    },
    /// TALKRESP (0x06): the answer (empty for an unknown protocol).
    TalkResp {
        /// Request id of the TALKREQ.
        req_id: Vec<u8>,
        /// The response.
        response: Vec<u8>,
    },
}

impl Message {
    /// The message's request id.
    pub fn req_id(&self) -> &[u8] {
        match self {
            Message::Ping { req_id, .. }
            | Message::Pong { req_id, .. }
            | Message::FindNode { req_id, .. }
            | Message::Nodes { req_id, .. }
            | Message::TalkReq { req_id, .. }
            | Message::TalkResp { req_id, .. } => req_id,
        }
    }

    /// The plaintext: type byte, then the RLP list.
    pub fn encode(&self) -> Vec<u8> {
        let mut p = Vec::new();
        rlp::put_bytes(&mut p, self.req_id());
        let kind = match self {
            Message::Ping { enr_seq, .. } => {
                rlp::put_uint(&mut p, *enr_seq);
                1
            }
            Message::Pong { enr_seq, ip, port, .. } => {
                rlp::put_uint(&mut p, *enr_seq);
                match ip {
                    IpAddr::V4(v4) => rlp::put_bytes(&mut p, &v4.octets()),
                    IpAddr::V6(v6) => rlp::put_bytes(&mut p, &v6.octets()),
                }
                rlp::put_uint(&mut p, u64::from(*port));
                2
            }
            Message::FindNode { distances, .. } => {
                let mut list = Vec::new();
                distances.iter().for_each(|&d| rlp::put_uint(&mut list, d));
                rlp::put_list(&mut p, &list);
                3
            }
            Message::Nodes { total, records, .. } => {
                rlp::put_uint(&mut p, *total);
                let list: Vec<u8> = records.concat();
                rlp::put_list(&mut p, &list);
                4
            }
            Message::TalkReq { protocol, request, .. } => {
                rlp::put_bytes(&mut p, protocol);
                rlp::put_bytes(&mut p, request);
                5
            }
            Message::TalkResp { response, .. } => {
                rlp::put_bytes(&mut p, response);
                6
            }
        };
        let mut out = vec![kind];
        rlp::put_list(&mut out, &p);
        out
    }

    /// Parses a decrypted plaintext from a peer.
    pub fn decode(pt: &[u8]) -> Result<Message, MessageError> {
        let (&kind, body) = pt.split_first().ok_or(MessageError::Empty)?;
        if !(1..=6).contains(&kind) {
            return Err(MessageError::Type(kind));
        }
        let items = rlp::decode_exact(body)?.list()?;
        let field = |i: usize| items.get(i).copied().ok_or(MessageError::Rlp(RlpError::Truncated));
        let req_id = field(0)?.bytes()?;
        if req_id.len() > 8 {
            return Err(MessageError::Field);
        }
        let req_id = req_id.to_vec();
        Ok(match kind {
            1 => Message::Ping { req_id, enr_seq: field(1)?.uint()? },
            2 => Message::Pong { req_id, enr_seq: field(1)?.uint()?, ip: ip(field(2)?)?, port: port(field(3)?)? },
            3 => {
                let distances = field(1)?.list()?.iter().map(|d| d.uint()).collect::<Result<_, _>>()?;
                Message::FindNode { req_id, distances }
            }
            4 => {
                let records = field(2)?.list()?.iter().map(|r| r.encoded()).collect();
                Message::Nodes { req_id, total: field(1)?.uint()?, records }
            }
            5 => {
                Message::TalkReq { req_id, protocol: field(1)?.bytes()?.to_vec(), request: field(2)?.bytes()?.to_vec() }
            }
            _ => Message::TalkResp { req_id, response: field(1)?.bytes()?.to_vec() },
        })
    }
}

fn ip(item: Item<'_>) -> Result<IpAddr, MessageError> {
    let b = item.bytes()?;
    match b.len() {
        4 => Ok(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(b).expect("4 bytes")))),
        16 => Ok(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(b).expect("16 bytes")))),
        _ => Err(MessageError::Field),
    }
}

fn port(item: Item<'_>) -> Result<u16, MessageError> {
    u16::try_from(item.uint()?).map_err(|_| MessageError::Field)
}
