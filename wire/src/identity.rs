//! libp2p identity keys and peer ids (libp2p/specs `peer-ids/peer-ids.md`): the key pairs a
//! node signs with, the `PublicKey` protobuf its peers see (in the Noise handshake, in signed
//! gossipsub messages, in identify), and the `PeerId` multihash derived from that protobuf.
//!
//! Two key types are supported, as the surrogates and the real clients they meet need:
//! Ed25519 (what rust-libp2p nodes use by default) and Secp256k1 (what Ethereum consensus
//! clients use). Keys are built from caller-given secrets only, so identities are deterministic.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{Signer as _, Verifier as _};
use sha2::{Digest as _, Sha256};

/// Why a key, a signature secret or a peer id could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The `PublicKey` protobuf is malformed (truncated, bad wire type, missing field).
    #[error("bad public key protobuf: {0}")]
    BadProtobuf(&'static str),
    /// The protobuf names a key type this crate does not support (RSA = 0, ECDSA = 3, others).
    #[error("unsupported key type {0}")]
    UnsupportedKeyType(u64),
    /// The key bytes are not a valid key of their type (wrong length, not on the curve).
    #[error("invalid {0} public key")]
    BadKey(KeyType),
    /// The secret is not a valid secp256k1 scalar (zero, or not below the group order).
    #[error("invalid secp256k1 secret key")]
    BadSecret,
    /// The bytes are not a peer id: not an identity (at most 42 bytes) or sha2-256 multihash.
    #[error("bad peer id: {0}")]
    BadPeerId(&'static str),
}

/// The key types this crate speaks, numbered as the `KeyType` enum of libp2p's `keys.proto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyType {
    /// Ed25519 (RFC 8032): 32-byte public keys, 64-byte signatures.
    Ed25519,
    /// Secp256k1 ECDSA: 33-byte compressed SEC1 public keys, DER signatures over SHA-256.
    Secp256k1,
}

impl KeyType {
    /// The `KeyType` enum value on the wire.
    pub fn code(self) -> u64 {
        match self {
            KeyType::Ed25519 => 1,
            KeyType::Secp256k1 => 2,
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyType::Ed25519 => "ed25519",
            KeyType::Secp256k1 => "secp256k1",
        })
    }
}

/// A libp2p identity key pair: signs handshake payloads and messages for one peer id.
#[derive(Clone)]
pub struct Keypair(KeypairInner);

#[derive(Clone)]
enum KeypairInner {
    Ed25519(ed25519_dalek::SigningKey),
    Secp256k1(k256::ecdsa::SigningKey),
}

impl Keypair {
    /// The Ed25519 key pair whose 32-byte secret seed is `secret` (RFC 8032's private key, what
    /// rust-libp2p's `Keypair::ed25519_from_bytes` takes), so the same seed gives the same peer
    /// id here and in a rust-libp2p node.
    pub fn ed25519_from_secret(secret: [u8; 32]) -> Keypair {
        Keypair(KeypairInner::Ed25519(ed25519_dalek::SigningKey::from_bytes(&secret)))
    }

    /// The Secp256k1 key pair whose secret scalar is `secret` (big-endian, as Bitcoin and
    /// libp2p store it); fails when it is zero or not below the group order.
    pub fn secp256k1_from_secret(secret: [u8; 32]) -> Result<Keypair, IdentityError> {
        let key = k256::ecdsa::SigningKey::from_slice(&secret).map_err(|_| IdentityError::BadSecret)?;
        Ok(Keypair(KeypairInner::Secp256k1(key)))
    }

    /// The type of this key pair.
    pub fn key_type(&self) -> KeyType {
        match &self.0 {
            KeypairInner::Ed25519(_) => KeyType::Ed25519,
            KeypairInner::Secp256k1(_) => KeyType::Secp256k1,
        }
    }

    /// The public half, which peers see and derive the peer id from.
    pub fn public(&self) -> PublicKey {
        match &self.0 {
            KeypairInner::Ed25519(k) => PublicKey(PublicKeyInner::Ed25519(k.verifying_key())),
            KeypairInner::Secp256k1(k) => PublicKey(PublicKeyInner::Secp256k1(*k.verifying_key())),
        }
    }

    /// The peer id of this key pair's public key.
    pub fn peer_id(&self) -> PeerId {
        self.public().peer_id()
    }

    /// Signs `msg` as libp2p does: a 64-byte Ed25519 signature, or for Secp256k1 a DER-encoded
    /// ECDSA signature (RFC 6979 nonce, low S) over SHA-256 of `msg`. Deterministic.
    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        match &self.0 {
            KeypairInner::Ed25519(k) => k.sign(msg).to_bytes().to_vec(),
            KeypairInner::Secp256k1(k) => {
                let sig: k256::ecdsa::Signature = k256::ecdsa::signature::Signer::sign(k, msg);
                sig.to_der().as_bytes().to_vec()
            }
        }
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keypair").field("public", &self.public()).finish_non_exhaustive()
    }
}

/// A libp2p identity public key: verifies signatures and names a peer.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey(PublicKeyInner);

#[derive(Clone, PartialEq, Eq)]
enum PublicKeyInner {
    Ed25519(ed25519_dalek::VerifyingKey),
    Secp256k1(k256::ecdsa::VerifyingKey),
}

impl PublicKey {
    /// The type of this key.
    pub fn key_type(&self) -> KeyType {
        match &self.0 {
            PublicKeyInner::Ed25519(_) => KeyType::Ed25519,
            PublicKeyInner::Secp256k1(_) => KeyType::Secp256k1,
        }
    }

    /// The key's `Data` bytes: 32 raw Ed25519 bytes, or the 33-byte compressed SEC1 point.
    pub fn to_raw(&self) -> Vec<u8> {
        match &self.0 {
            PublicKeyInner::Ed25519(k) => k.to_bytes().to_vec(),
            PublicKeyInner::Secp256k1(k) => k.to_sec1_point(true).as_bytes().to_vec(),
        }
    }

    /// Whether `sig` is this key's signature of `msg` under the rules of [`Keypair::sign`]
    /// (Secp256k1: DER, low S only, over SHA-256 of `msg`).
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        match &self.0 {
            PublicKeyInner::Ed25519(k) => {
                ed25519_dalek::Signature::from_slice(sig).is_ok_and(|s| k.verify(msg, &s).is_ok())
            }
            PublicKeyInner::Secp256k1(k) => {
                use k256::ecdsa::signature::hazmat::PrehashVerifier as _;
                let digest = Sha256::digest(msg);
                k256::ecdsa::Signature::from_der(sig).is_ok_and(|s| k.verify_prehash(&digest, &s).is_ok())
            }
        }
    }

    /// The deterministic `PublicKey` protobuf: field 1 (`Type`, varint) then field 2 (`Data`).
    pub fn to_protobuf(&self) -> Vec<u8> {
        let raw = self.to_raw();
        let mut out = Vec::with_capacity(4 + raw.len());
        pb::put_varint_field(&mut out, 1, self.key_type().code());
        pb::put_bytes_field(&mut out, 2, &raw);
        out
    }

    /// Decodes a `PublicKey` protobuf as a protobuf decoder would (fields in any order, the
    /// last one winning, unknown fields skipped), then the key itself. Both fields are required.
    pub fn from_protobuf(bytes: &[u8]) -> Result<PublicKey, IdentityError> {
        let (mut key_type, mut data) = (None, None);
        let mut rest = bytes;
        while let Some((field, value)) = pb::next_field(&mut rest).map_err(IdentityError::BadProtobuf)? {
            match (field, value) {
                (1, pb::Value::Varint(v)) => key_type = Some(v),
                (2, pb::Value::Bytes(b)) => data = Some(b),
                (1 | 2, _) => return Err(IdentityError::BadProtobuf("wrong wire type")),
                _ => {}
            }
        }
        let key_type = key_type.ok_or(IdentityError::BadProtobuf("missing Type"))?;
        let data = data.ok_or(IdentityError::BadProtobuf("missing Data"))?;
        match key_type {
            1 => PublicKey::ed25519_from_raw(data),
            2 => PublicKey::secp256k1_from_raw(data),
            other => Err(IdentityError::UnsupportedKeyType(other)),
        }
    }

    /// An Ed25519 public key from its 32 raw bytes.
    pub fn ed25519_from_raw(raw: &[u8]) -> Result<PublicKey, IdentityError> {
        let bytes: &[u8; 32] = raw.try_into().map_err(|_| IdentityError::BadKey(KeyType::Ed25519))?;
        let key =
            ed25519_dalek::VerifyingKey::from_bytes(bytes).map_err(|_| IdentityError::BadKey(KeyType::Ed25519))?;
        Ok(PublicKey(PublicKeyInner::Ed25519(key)))
    }

    /// A Secp256k1 public key from its SEC1 encoding (33 bytes compressed, as libp2p sends it;
    /// 65 bytes uncompressed is accepted too, as rust-libp2p does).
    pub fn secp256k1_from_raw(raw: &[u8]) -> Result<PublicKey, IdentityError> {
        let key =
            k256::ecdsa::VerifyingKey::from_sec1_bytes(raw).map_err(|_| IdentityError::BadKey(KeyType::Secp256k1))?;
        Ok(PublicKey(PublicKeyInner::Secp256k1(key)))
    }

    /// The peer id this key names (see [`PeerId::from_key_protobuf`]).
    pub fn peer_id(&self) -> PeerId {
        PeerId::from_key_protobuf(&self.to_protobuf())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({}:", self.key_type())?;
        for b in self.to_raw() {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

/// The multihash code of the identity "hash" (the key protobuf inlined).
const MULTIHASH_IDENTITY: u8 = 0x00;
/// The multihash code of sha2-256.
const MULTIHASH_SHA256: u8 = 0x12;
/// The longest key protobuf inlined in a peer id; longer ones are hashed with sha2-256.
const MAX_INLINE_KEY_LEN: usize = 42;
/// The longest peer id in bytes: code, length, 42 inlined bytes.
const MAX_PEER_ID_LEN: usize = 2 + MAX_INLINE_KEY_LEN;

/// A peer id: the multihash of a public key's protobuf (identity when it is at most 42 bytes,
/// sha2-256 otherwise), shown in base58btc. Stored inline (no heap), so it is `Copy` and cheap
/// to keep by the million. Ordered as its bytes are.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerId {
    /// The multihash bytes, zero past `len` (so the derived order is the bytes' order).
    bytes: [u8; MAX_PEER_ID_LEN],
    len: u8,
}

impl PeerId {
    /// The peer id of an encoded `PublicKey` protobuf, by the spec's rule: the identity
    /// multihash of the bytes when they are at most 42 long, else their sha2-256 multihash.
    pub fn from_key_protobuf(key: &[u8]) -> PeerId {
        if key.len() <= MAX_INLINE_KEY_LEN {
            PeerId::wrap(MULTIHASH_IDENTITY, key)
        } else {
            PeerId::wrap(MULTIHASH_SHA256, &Sha256::digest(key))
        }
    }

    /// The multihash `code, len, digest` (the digest is at most 42 bytes here).
    fn wrap(code: u8, digest: &[u8]) -> PeerId {
        let mut bytes = [0u8; MAX_PEER_ID_LEN];
        bytes[0] = code;
        bytes[1] = digest.len() as u8;
        bytes[2..2 + digest.len()].copy_from_slice(digest);
        PeerId { bytes, len: (2 + digest.len()) as u8 }
    }

    /// Parses multihash bytes: an identity multihash of at most 42 bytes or a sha2-256 one of
    /// exactly 32, minimally encoded, nothing after it (what a real key's peer id can be).
    pub fn from_bytes(bytes: &[u8]) -> Result<PeerId, IdentityError> {
        let [code, len, digest @ ..] = bytes else { return Err(IdentityError::BadPeerId("too short")) };
        let (code, len) = (*code, usize::from(*len));
        if len >= 0x80 {
            return Err(IdentityError::BadPeerId("digest too long"));
        }
        if digest.len() != len {
            return Err(IdentityError::BadPeerId("digest length mismatch"));
        }
        match code {
            MULTIHASH_IDENTITY if len <= MAX_INLINE_KEY_LEN => Ok(PeerId::wrap(code, digest)),
            MULTIHASH_IDENTITY => Err(IdentityError::BadPeerId("inlined key longer than 42 bytes")),
            MULTIHASH_SHA256 if len == 32 => Ok(PeerId::wrap(code, digest)),
            MULTIHASH_SHA256 => Err(IdentityError::BadPeerId("sha2-256 digest not 32 bytes")),
            _ => Err(IdentityError::BadPeerId("not an identity or sha2-256 multihash")),
        }
    }

    /// The multihash bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The multihash bytes, owned.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }

    /// The public key inlined in an identity peer id (`None` for a hashed one or a key this
    /// crate cannot decode).
    pub fn public_key(&self) -> Option<PublicKey> {
        match self.as_bytes() {
            [MULTIHASH_IDENTITY, _, key @ ..] => PublicKey::from_protobuf(key).ok(),
            _ => None,
        }
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&bs58::encode(self.as_bytes()).into_string())
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({self})")
    }
}

impl FromStr for PeerId {
    type Err = IdentityError;

    /// Parses the base58btc form (`12D3Koo…`, `16Uiu2…`, `Qm…`); the CIDv1 form is not
    /// accepted (rust-libp2p does not accept it either).
    fn from_str(s: &str) -> Result<PeerId, IdentityError> {
        let mut buf = [0u8; MAX_PEER_ID_LEN];
        let n = bs58::decode(s).onto(&mut buf[..]).map_err(|_| IdentityError::BadPeerId("not base58btc"))?;
        PeerId::from_bytes(&buf[..n])
    }
}

/// The protobuf wire format, as much as the libp2p messages here need: reading fields one by
/// one without allocating, writing varint and length-delimited fields.
pub(crate) mod pb {
    use crate::varint;

    /// One field's value as it is on the wire.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum Value<'a> {
        /// Wire type 0.
        Varint(u64),
        /// Wire type 2 (bytes, strings, embedded messages).
        Bytes(&'a [u8]),
        /// Wire types 1 and 5 (fixed 64 and 32 bits), skipped by every reader here.
        Fixed,
    }

    /// Reads the next field of `buf` (field number and value) and advances past it; `None` at
    /// the end. Errors name what was wrong; nothing is allocated.
    pub(crate) fn next_field<'a>(buf: &mut &'a [u8]) -> Result<Option<(u64, Value<'a>)>, &'static str> {
        if buf.is_empty() {
            return Ok(None);
        }
        let (key, n) = varint::get(buf).map_err(|_| "bad field key")?;
        *buf = &buf[n..];
        let field = key >> 3;
        if field == 0 {
            return Err("field number 0");
        }
        let value = match key & 7 {
            0 => {
                let (v, n) = get_varint(buf)?;
                *buf = &buf[n..];
                Value::Varint(v)
            }
            1 => skip(buf, 8).map(|_| Value::Fixed)?,
            2 => {
                let (len, n) = varint::get(buf).map_err(|_| "bad length")?;
                *buf = &buf[n..];
                let len = usize::try_from(len).map_err(|_| "length too large")?;
                Value::Bytes(skip(buf, len)?)
            }
            5 => skip(buf, 4).map(|_| Value::Fixed)?,
            _ => return Err("unsupported wire type"),
        };
        Ok(Some((field, value)))
    }

    /// A varint field value: up to 10 bytes, as protobuf writes negative `int32`s.
    fn get_varint(buf: &[u8]) -> Result<(u64, usize), &'static str> {
        let mut v = 0u64;
        for (i, &b) in buf.iter().take(10).enumerate() {
            v |= u64::from(b & 0x7f).checked_shl(7 * i as u32).unwrap_or(0);
            if b & 0x80 == 0 {
                return Ok((v, i + 1));
            }
        }
        Err("bad varint")
    }

    /// Takes `len` bytes off the front of `buf`.
    fn skip<'a>(buf: &mut &'a [u8], len: usize) -> Result<&'a [u8], &'static str> {
        if buf.len() < len {
            return Err("truncated");
        }
        let (head, tail) = buf.split_at(len);
        *buf = tail;
        Ok(head)
    }

    /// Appends a varint field.
    pub(crate) fn put_varint_field(out: &mut Vec<u8>, field: u64, v: u64) {
        varint::put(out, field << 3);
        varint::put(out, v);
    }

    /// Appends a length-delimited field.
    pub(crate) fn put_bytes_field(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
        varint::put(out, (field << 3) | 2);
        varint::put(out, bytes.len() as u64);
        out.extend_from_slice(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    fn secret(s: &str) -> [u8; 32] {
        hex(s).try_into().unwrap()
    }

    /// `nodes/gossip-node`'s `key_of(i)` secret.
    fn gossip_node_secret(index: u32) -> [u8; 32] {
        let mut secret = [0u8; 32];
        secret[..4].copy_from_slice(&index.to_be_bytes());
        secret[4..12].copy_from_slice(b"gossipnd");
        secret
    }

    #[test]
    fn spec_vectors_ed25519() {
        let key =
            Keypair::ed25519_from_secret(secret("7e0830617c4a7de83925dfb2694556b12936c477a0e1feb2e148ec9da60fee7d"));
        let expected = hex("080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e");
        assert_eq!(key.public().to_protobuf(), expected);
        assert_eq!(PublicKey::from_protobuf(&expected).unwrap(), key.public());
    }

    #[test]
    fn spec_vectors_secp256k1() {
        let key =
            Keypair::secp256k1_from_secret(secret("53DADF1D5A164D6B4ACDB15E24AA4C5B1D3461BDBD42ABEDB0A4404D56CED8FB"))
                .unwrap();
        let expected = hex("08021221037777e994e452c21604f91de093ce415f5432f701dd8cd1a7a6fea0e630bfca99");
        assert_eq!(key.public().to_protobuf(), expected);
        assert_eq!(PublicKey::from_protobuf(&expected).unwrap(), key.public());
    }

    #[test]
    fn spec_peer_id_examples() {
        let inlined: PeerId = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA".parse().unwrap();
        assert_eq!(inlined.to_string(), "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA");
        let key = inlined.public_key().expect("an ed25519 key is inlined");
        assert_eq!(key.key_type(), KeyType::Ed25519);
        assert_eq!(key.peer_id(), inlined);

        let hashed: PeerId = "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N".parse().unwrap();
        assert_eq!(hashed.to_string(), "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N");
        assert_eq!(&hashed.as_bytes()[..2], &[0x12, 0x20]);
        assert_eq!(hashed.public_key(), None);
    }

    #[test]
    fn long_keys_are_hashed_short_ones_inlined() {
        let short = [7u8; 42];
        assert_eq!(PeerId::from_key_protobuf(&short).as_bytes(), [&[0u8, 42][..], &short].concat());
        let long = [7u8; 43];
        let id = PeerId::from_key_protobuf(&long);
        assert_eq!(id.as_bytes(), [&[0x12u8, 32][..], Sha256::digest(long).as_slice()].concat());
        assert_eq!(PeerId::from_bytes(id.as_bytes()), Ok(id));
        assert!(id.to_string().starts_with("Qm"));
    }

    #[test]
    fn peer_id_from_bytes_refuses_non_peer_ids() {
        let ok = Keypair::ed25519_from_secret([1; 32]).peer_id().to_bytes();
        let mut trailing = ok.clone();
        trailing.push(0);
        let mut identity_43 = vec![0u8, 43];
        identity_43.extend([1u8; 43]);
        let mut sha_31 = vec![0x12u8, 31];
        sha_31.extend([1u8; 31]);
        let mut blake = vec![0xb2u8, 0x20];
        blake.extend([1u8; 32]);
        for bad in [&[][..], &[0], &ok[..ok.len() - 1], &trailing, &identity_43, &sha_31, &blake, &[0x80, 0x00]] {
            assert!(PeerId::from_bytes(bad).is_err(), "{bad:?}");
        }
        assert!("".parse::<PeerId>().is_err());
        assert!("0OIl".parse::<PeerId>().is_err(), "not in the base58 alphabet");
        assert!("1".repeat(100).parse::<PeerId>().is_err(), "longer than any peer id");
    }

    #[test]
    fn from_protobuf_refuses_bad_keys() {
        let good = Keypair::ed25519_from_secret([2; 32]).public().to_protobuf();
        let rsa = [&[0x08u8, 0x00][..], &good[2..]].concat();
        let ecdsa = [&[0x08u8, 0x03][..], &good[2..]].concat();
        let short = [&[0x08u8, 0x01, 0x12, 0x1f][..], &good[4..35]].concat();
        let secp_wrong_len = [&[0x08u8, 0x02][..], &good[2..]].concat();
        assert_eq!(PublicKey::from_protobuf(&rsa), Err(IdentityError::UnsupportedKeyType(0)));
        assert_eq!(PublicKey::from_protobuf(&ecdsa), Err(IdentityError::UnsupportedKeyType(3)));
        assert_eq!(PublicKey::from_protobuf(&short), Err(IdentityError::BadKey(KeyType::Ed25519)));
        assert_eq!(PublicKey::from_protobuf(&secp_wrong_len), Err(IdentityError::BadKey(KeyType::Secp256k1)));
        assert!(PublicKey::from_protobuf(&good[..good.len() - 1]).is_err(), "truncated");
        assert!(PublicKey::from_protobuf(&good[2..]).is_err(), "no Type");
        assert!(PublicKey::from_protobuf(&good[..2]).is_err(), "no Data");
        assert!(PublicKey::from_protobuf(&[0x0a, 0x00]).is_err(), "Type as bytes");
    }

    #[test]
    fn from_protobuf_reads_any_field_order_and_skips_unknown_fields() {
        let key = Keypair::secp256k1_from_secret([3; 32]).unwrap().public();
        let pb = key.to_protobuf();
        let reordered = [&pb[2..], &pb[..2], &[0x18, 0x05, 0x25, 1, 2, 3, 4][..]].concat();
        assert_eq!(PublicKey::from_protobuf(&reordered), Ok(key));
    }

    #[test]
    fn secp256k1_secret_must_be_a_scalar() {
        assert_eq!(Keypair::secp256k1_from_secret([0; 32]).unwrap_err(), IdentityError::BadSecret);
        assert_eq!(Keypair::secp256k1_from_secret([0xff; 32]).unwrap_err(), IdentityError::BadSecret);
    }

    #[test]
    fn signatures_verify_only_for_their_message_and_key() {
        for key in [Keypair::ed25519_from_secret([4; 32]), Keypair::secp256k1_from_secret([4; 32]).unwrap()] {
            let sig = key.sign(b"message");
            assert_eq!(sig, key.sign(b"message"), "deterministic");
            assert!(key.public().verify(b"message", &sig));
            assert!(!key.public().verify(b"massage", &sig));
            assert!(!Keypair::ed25519_from_secret([5; 32]).public().verify(b"message", &sig));
            let mut bad = sig.clone();
            *bad.last_mut().unwrap() ^= 1;
            assert!(!key.public().verify(b"message", &bad));
        }
        assert_eq!(Keypair::ed25519_from_secret([4; 32]).sign(b"m").len(), 64);
    }

    #[test]
    fn secp256k1_high_s_signatures_are_refused() {
        let key = Keypair::secp256k1_from_secret([6; 32]).unwrap();
        let sig = k256::ecdsa::Signature::from_der(&key.sign(b"m")).unwrap();
        let (r, s) = sig.split_scalars();
        let high = k256::ecdsa::Signature::from_scalars(r.to_bytes(), (-*s).to_bytes()).unwrap();
        assert!(!key.public().verify(b"m", high.to_der().as_bytes()));
    }

    /// An independent implementation (rust-libp2p's `libp2p-identity`) agrees on keys, peer ids
    /// and signatures; including `nodes/gossip-node`'s keys.
    #[test]
    fn agrees_with_libp2p_identity() {
        let secrets = [gossip_node_secret(0), gossip_node_secret(1), gossip_node_secret(999_999), [9; 32]];
        for secret in secrets {
            let ours = Keypair::ed25519_from_secret(secret);
            let theirs = libp2p_identity::Keypair::ed25519_from_bytes(secret).unwrap();
            check_against_libp2p(&ours, &theirs);
            let ours = Keypair::secp256k1_from_secret(secret).unwrap();
            let sk = libp2p_identity::secp256k1::SecretKey::try_from_bytes(secret).unwrap();
            let theirs: libp2p_identity::Keypair = libp2p_identity::secp256k1::Keypair::from(sk).into();
            check_against_libp2p(&ours, &theirs);
        }
    }

    fn check_against_libp2p(ours: &Keypair, theirs: &libp2p_identity::Keypair) {
        let pb = ours.public().to_protobuf();
        assert_eq!(pb, theirs.public().encode_protobuf());
        assert_eq!(ours.peer_id().to_string(), theirs.public().to_peer_id().to_string());
        assert_eq!(ours.peer_id().to_bytes(), theirs.public().to_peer_id().to_bytes());
        let their_id: PeerId = theirs.public().to_peer_id().to_string().parse().unwrap();
        assert_eq!(their_id.public_key(), Some(ours.public()));
        let their_key = libp2p_identity::PublicKey::try_decode_protobuf(&pb).unwrap();
        assert!(their_key.verify(b"from us", &ours.sign(b"from us")));
        assert!(ours.public().verify(b"from them", &theirs.sign(b"from them").unwrap()));
        assert_eq!(ours.sign(b"same"), theirs.sign(b"same").unwrap(), "both sign deterministically");
    }

    proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80), s in ".{0,70}") {
            let _ = PublicKey::from_protobuf(&bytes);
            let _ = PeerId::from_bytes(&bytes);
            let _ = s.parse::<PeerId>();
            if let Ok(id) = PeerId::from_bytes(&bytes) {
                let _ = id.public_key();
            }
        }

        #[test]
        fn decoders_agree_with_libp2p(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let ours = PublicKey::from_protobuf(&bytes).ok().map(|k| k.to_protobuf());
            let theirs = libp2p_identity::PublicKey::try_decode_protobuf(&bytes).ok().map(|k| k.encode_protobuf());
            prop_assert_eq!(ours, theirs);
            if let Ok(id) = PeerId::from_bytes(&bytes) {
                let theirs = libp2p_identity::PeerId::from_bytes(&bytes).unwrap();
                prop_assert_eq!(id.to_string(), theirs.to_string());
            }
        }

        #[test]
        fn mutated_keys_decode_as_libp2p_decodes_them(
            secret in any::<[u8; 32]>(), secp in any::<bool>(), at in any::<prop::sample::Index>(), byte in any::<u8>(),
            insert in any::<bool>(),
        ) {
            let mut pb = match Keypair::secp256k1_from_secret(secret) {
                Ok(k) if secp => k.public().to_protobuf(),
                _ => Keypair::ed25519_from_secret(secret).public().to_protobuf(),
            };
            let i = at.index(pb.len());
            if insert { pb.insert(i, byte) } else { pb[i] = byte }
            let ours = PublicKey::from_protobuf(&pb).ok().map(|k| k.to_protobuf());
            let theirs = libp2p_identity::PublicKey::try_decode_protobuf(&pb).ok().map(|k| k.encode_protobuf());
            prop_assert_eq!(ours, theirs);
        }

        #[test]
        fn keys_and_peer_ids_round_trip(secret in any::<[u8; 32]>(), secp in any::<bool>()) {
            let key = if secp {
                match Keypair::secp256k1_from_secret(secret) { Ok(k) => k, Err(_) => return Ok(()) }
            } else {
                Keypair::ed25519_from_secret(secret)
            };
            let public = key.public();
            prop_assert_eq!(PublicKey::from_protobuf(&public.to_protobuf()), Ok(public.clone()));
            let id = public.peer_id();
            prop_assert_eq!(PeerId::from_bytes(&id.to_bytes()), Ok(id));
            prop_assert_eq!(id.to_string().parse::<PeerId>(), Ok(id));
            prop_assert_eq!(id.public_key(), Some(public));
        }

        #[test]
        fn peer_id_order_is_byte_order(a in any::<[u8; 32]>(), b in any::<[u8; 32]>(), la in 0usize..43, lb in 0usize..43) {
            let x = PeerId::from_key_protobuf(&a[..la.min(32)]);
            let y = PeerId::from_key_protobuf(&b[..lb.min(32)]);
            prop_assert_eq!(x.cmp(&y), x.as_bytes().cmp(y.as_bytes()));
        }
    }
}
