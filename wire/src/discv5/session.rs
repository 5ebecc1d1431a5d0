//! The cryptography of a discv5 session (identity scheme "v4"): the ECDH of the handshake, the
//! HKDF that turns it into the two directions' keys, the id signature that proves the
//! initiator's identity, and AES-128-GCM for messages.

use super::enr::NodeId;
use aes_gcm::aead::{Aead as _, KeyInit as _, Payload};
use k256::ecdsa::signature::hazmat::{PrehashSigner as _, PrehashVerifier as _};
use k256::ecdsa::{Signature, SigningKey, VerifyingKey};
use k256::elliptic_curve::sec1::ToSec1Point as _;
use sha2::{Digest as _, Sha256};

/// The keys of a session: the initiator's messages are sealed with `initiator`, the recipient's
/// with `recipient`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionKeys {
    /// Key of messages from the node that answered the WHOAREYOU.
    pub initiator: [u8; 16],
    /// Key of messages from the node that sent it.
    pub recipient: [u8; 16],
}

/// ECDH as discv5 takes it: the compressed point `secret · public` (33 bytes).
pub fn ecdh(public: &VerifyingKey, secret: &SigningKey) -> [u8; 33] {
    let point = k256::ProjectivePoint::from(*public.as_affine()) * *secret.as_nonzero_scalar().as_ref();
    let affine = k256::PublicKey::from_affine(point.to_affine()).expect("a non-zero scalar times a valid key");
    affine.to_sec1_point(true).as_bytes().try_into().expect("a compressed point is 33 bytes")
}

/// The session keys of a handshake between initiator `a` and recipient `b`, from `a`'s
/// ephemeral key and `b`'s public key (or, at `b`, `b`'s static key and `a`'s ephemeral public
/// key: the ECDH is the same), salted with the WHOAREYOU's `challenge` data.
pub fn derive_keys(
    secret: &SigningKey,
    public: &VerifyingKey,
    a: &NodeId,
    b: &NodeId,
    challenge: &[u8],
) -> SessionKeys {
    let shared = ecdh(public, secret);
    let mut info = b"discovery v5 key agreement".to_vec();
    info.extend_from_slice(a);
    info.extend_from_slice(b);
    let mut okm = [0u8; 32];
    hkdf::Hkdf::<Sha256>::new(Some(challenge), &shared).expand(&info, &mut okm).expect("32 bytes is a valid length");
    SessionKeys { initiator: okm[..16].try_into().expect("16"), recipient: okm[16..].try_into().expect("16") }
}

/// The hash the id signature signs.
fn id_digest(challenge: &[u8], eph_pubkey: &[u8], b: &NodeId) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"discovery v5 identity proof");
    h.update(challenge);
    h.update(eph_pubkey);
    h.update(b);
    h.finalize().into()
}

/// The initiator's id signature over the challenge, its ephemeral public key and the
/// recipient's node id `b` (64 bytes, r || s).
pub fn id_sign(key: &SigningKey, challenge: &[u8], eph_pubkey: &[u8], b: &NodeId) -> [u8; 64] {
    let sig: Signature = key.sign_prehash(&id_digest(challenge, eph_pubkey, b)).expect("a 32-byte prehash signs");
    sig.to_bytes().into()
}

/// Whether `sig` is `key`'s id signature for this handshake.
pub fn id_verify(key: &VerifyingKey, challenge: &[u8], eph_pubkey: &[u8], b: &NodeId, sig: &[u8]) -> bool {
    Signature::from_slice(sig).is_ok_and(|s| key.verify_prehash(&id_digest(challenge, eph_pubkey, b), &s).is_ok())
}

/// Seals message plaintext `pt` with `key` and `nonce`, authenticating `ad` too.
pub fn encrypt(key: &[u8; 16], nonce: &[u8; 12], pt: &[u8], ad: &[u8]) -> Vec<u8> {
    let cipher = aes_gcm::Aes128Gcm::new(key.into());
    cipher.encrypt(nonce.into(), Payload { msg: pt, aad: ad }).expect("AES-GCM seals any length we send")
}

/// Opens a sealed message; `None` if it does not authenticate.
pub fn decrypt(key: &[u8; 16], nonce: &[u8; 12], ct: &[u8], ad: &[u8]) -> Option<Vec<u8>> {
    let cipher = aes_gcm::Aes128Gcm::new(key.into());
    cipher.decrypt(nonce.into(), Payload { msg: ct, aad: ad }).ok()
}
