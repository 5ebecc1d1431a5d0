//! Ethereum node records (EIP-778) with the "v4" identity scheme: what a discv5 node says about
//! itself (its key, address, ports and, on Ethereum, its fork digest and subnets), signed with its
//! secp256k1 key, at most 300 bytes of RLP, in text as `enr:` and unpadded URL-safe base64.
//!
//! `record = [signature, seq, k, v, ...]`, keys sorted and unique; the signature is over
//! `keccak256(rlp([seq, k, v, ...]))` (64 bytes, r || s); the node id is the keccak256 of the
//! uncompressed public key's 64 bytes.

use crate::rlp::{self, Item, RlpError};
use base64::Engine as _;
use k256::ecdsa::signature::hazmat::{PrehashSigner as _, PrehashVerifier as _};
use k256::ecdsa::{Signature, SigningKey, VerifyingKey};
use std::net::Ipv4Addr;
use tiny_keccak::{Hasher as _, Keccak};

/// The largest record, in bytes.
pub const MAX_RECORD: usize = 300;

/// A 256-bit node id.
pub type NodeId = [u8; 32];

/// The log2 distance of two node ids: 0 when equal, else 256 minus the leading zero bits of
/// their XOR (discv5's `logdistance`, the bucket and FINDNODE distance).
pub fn log_distance(a: &NodeId, b: &NodeId) -> u16 {
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let z = x ^ y;
        if z != 0 {
            return (256 - 8 * i as u32 - z.leading_zeros()) as u16;
        }
    }
    0
}

/// Why bytes are not a valid record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnrError {
    /// Not RLP, or not the record's shape.
    #[error("record: {0}")]
    Rlp(#[from] RlpError),
    /// Over 300 bytes.
    #[error("record of {0} bytes, over the 300 allowed")]
    TooLarge(usize),
    /// Keys out of order or repeated.
    #[error("record keys not sorted and unique")]
    Keys,
    /// Not the "v4" scheme, or no usable `secp256k1` key.
    #[error("record is not a v4 record with a secp256k1 key")]
    Scheme,
    /// The signature does not verify.
    #[error("record signature does not verify")]
    Signature,
    /// Not `enr:` followed by base64.
    #[error("record text is not enr:BASE64")]
    Text,
}

/// A verified node record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enr {
    seq: u64,
    /// Keys and their values' RLP encodings, sorted by key.
    pairs: Vec<(Vec<u8>, Vec<u8>)>,
    key: VerifyingKey,
    raw: Vec<u8>,
}

/// keccak256 of `data`.
pub fn keccak256(data: &[u8]) -> [u8; 32] {
    let mut k = Keccak::v256();
    k.update(data);
    let mut out = [0u8; 32];
    k.finalize(&mut out);
    out
}

/// The node id of public key `key`.
pub fn node_id(key: &VerifyingKey) -> NodeId {
    keccak256(&key.to_sec1_point(false).as_bytes()[1..])
}

impl Enr {
    /// A record of `seq` signed by `key`, with `pairs` besides `id` and `secp256k1` (e.g. `ip`,
    /// `udp`, `eth2`); `None` if it would exceed 300 bytes.
    pub fn signed(key: &SigningKey, seq: u64, pairs: &[(&[u8], Vec<u8>)]) -> Option<Enr> {
        let public = *key.verifying_key();
        let encoded = |v: &[u8]| {
            let mut out = Vec::new();
            rlp::put_bytes(&mut out, v);
            out
        };
        let mut all: Vec<(Vec<u8>, Vec<u8>)> = pairs.iter().map(|(k, v)| (k.to_vec(), encoded(v))).collect();
        all.push((b"id".to_vec(), encoded(b"v4")));
        all.push((b"secp256k1".to_vec(), encoded(public.to_sec1_point(true).as_bytes())));
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all.dedup_by(|a, b| a.0 == b.0);
        let digest = keccak256(&content(seq, &all, None));
        let signature: Signature = key.sign_prehash(&digest).ok()?;
        let raw = content(seq, &all, Some(&signature.to_bytes()));
        (raw.len() <= MAX_RECORD).then_some(Enr { seq, pairs: all, key: public, raw })
    }

    /// Decodes and verifies a record from a peer.
    pub fn decode(bytes: &[u8]) -> Result<Enr, EnrError> {
        if bytes.len() > MAX_RECORD {
            return Err(EnrError::TooLarge(bytes.len()));
        }
        let items = rlp::decode_exact(bytes)?.list()?;
        if items.len() < 2 || items.len() % 2 != 0 {
            return Err(EnrError::Rlp(RlpError::WrongKind));
        }
        let signature = items[0].bytes()?;
        let seq = items[1].uint()?;
        let mut pairs = Vec::with_capacity(items.len() / 2 - 1);
        for kv in items[2..].chunks(2) {
            // Values are kept encoded, so the record re-encodes exactly.
            pairs.push((kv[0].bytes()?.to_vec(), kv[1].encoded()));
        }
        if pairs.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(EnrError::Keys);
        }
        let get = |k: &[u8]| pairs.iter().find(|(key, _)| key == k).map(|(_, v)| value(v));
        if get(b"id") != Some(b"v4") {
            return Err(EnrError::Scheme);
        }
        let key = get(b"secp256k1").and_then(|k| VerifyingKey::from_sec1_bytes(k).ok()).ok_or(EnrError::Scheme)?;
        let signature = Signature::from_slice(signature).map_err(|_| EnrError::Signature)?;
        let digest = keccak256(&content(seq, &pairs, None));
        key.verify_prehash(&digest, &signature).map_err(|_| EnrError::Signature)?;
        Ok(Enr { seq, pairs, key, raw: bytes.to_vec() })
    }

    /// Parses the text form `enr:…`.
    pub fn from_text(text: &str) -> Result<Enr, EnrError> {
        let b64 = text.trim().strip_prefix("enr:").ok_or(EnrError::Text)?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(b64).map_err(|_| EnrError::Text)?;
        Enr::decode(&bytes)
    }

    /// The text form `enr:…`.
    pub fn to_text(&self) -> String {
        format!("enr:{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&self.raw))
    }

    /// The record's bytes.
    pub fn encoded(&self) -> &[u8] {
        &self.raw
    }

    /// Its sequence number.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Its node id.
    pub fn node_id(&self) -> NodeId {
        node_id(&self.key)
    }

    /// Its public key.
    pub fn public_key(&self) -> &VerifyingKey {
        &self.key
    }

    /// The value of `key`, if present (a list value as its whole RLP encoding).
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| value(v))
    }

    /// The IPv4 address, if present.
    pub fn ip4(&self) -> Option<Ipv4Addr> {
        let b: [u8; 4] = self.get(b"ip")?.try_into().ok()?;
        Some(Ipv4Addr::from(b))
    }

    /// The UDP port, if present.
    pub fn udp(&self) -> Option<u16> {
        port(self.get(b"udp")?)
    }

    /// The TCP port, if present.
    pub fn tcp(&self) -> Option<u16> {
        port(self.get(b"tcp")?)
    }
}

/// A port value: a big-endian integer of at most 2 bytes.
fn port(b: &[u8]) -> Option<u16> {
    let v = Item::Bytes(b).uint().ok()?;
    u16::try_from(v).ok()
}

/// A stored value: a byte string's bytes, or a list's whole encoding.
fn value(encoded: &[u8]) -> &[u8] {
    match rlp::decode_exact(encoded) {
        Ok(Item::Bytes(b)) => b,
        _ => encoded,
    }
}

/// `rlp([signature?, seq, k, v, ...])`: the signed content without a signature, the record with one.
fn content(seq: u64, pairs: &[(Vec<u8>, Vec<u8>)], signature: Option<&[u8]>) -> Vec<u8> {
    let mut payload = Vec::new();
    if let Some(s) = signature {
        rlp::put_bytes(&mut payload, s);
    }
    rlp::put_uint(&mut payload, seq);
    for (k, v) in pairs {
        rlp::put_bytes(&mut payload, k);
        payload.extend_from_slice(v);
    }
    let mut out = Vec::new();
    rlp::put_list(&mut out, &payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// EIP-778's example record: 127.0.0.1, UDP 30303, and its node id.
    const EXAMPLE: &str = "enr:-IS4QHCYrYZbAKWCBRlAy5zzaDZXJBGkcnh4MHcBFZntXNFrdvJjX04jRzjzCBOonrkTfj499SZuOh8R33Ls8RRcy5wBgmlkgnY0gmlwhH8AAAGJc2VjcDI1NmsxoQPKY0yuDUmstAHYpMa2_oxVtw0RW_QAdpzBQA8yWM0xOIN1ZHCCdl8";

    #[test]
    fn the_eip_778_example_decodes_and_verifies() {
        let enr = Enr::from_text(EXAMPLE).unwrap();
        assert_eq!(enr.seq(), 1);
        assert_eq!(enr.ip4(), Some(Ipv4Addr::LOCALHOST));
        assert_eq!(enr.udp(), Some(30303));
        assert_eq!(enr.node_id(), hex32("a448f24c6d18e575453db13171562b71999873db5b286df957af199ec94617f7"));
        assert_eq!(enr.to_text(), EXAMPLE);
    }

    #[test]
    fn a_record_we_sign_verifies_and_a_changed_byte_does_not() {
        let key = SigningKey::from_slice(&[7u8; 32]).unwrap();
        let enr = Enr::signed(&key, 3, &[(b"ip", vec![10, 0, 0, 1]), (b"udp", vec![0x23, 0x28])]).unwrap();
        let back = Enr::decode(enr.encoded()).unwrap();
        assert_eq!((back.seq(), back.ip4(), back.udp()), (3, Some(Ipv4Addr::new(10, 0, 0, 1)), Some(9000)));
        assert_eq!(back.node_id(), node_id(key.verifying_key()));
        let mut bad = enr.encoded().to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(Enr::decode(&bad).is_err());
        assert!(Enr::signed(&key, 1, &[(b"x", vec![0; 300])]).is_none(), "over 300 bytes");
    }

    fn hex32(s: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }
}
