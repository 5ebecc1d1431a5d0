//! Signed transaction datagrams: what traffic sources send to ingress nodes (the QoS operation of
//! the scenarios), one transaction per UDP payload, signed with ed25519 as Solana's and similar
//! transaction formats are.
//!
//! ```text
//! offset  0   32-byte ed25519 public key of the sender
//!        32   8-byte nonce, big-endian
//!        40   body (any length, padding to the datagram's size)
//!   len - 64  64-byte ed25519 signature over everything before it
//! ```
//!
//! An invalid transaction is one whose signature does not verify (a traffic source flips a bit of
//! it). [`decode`] never panics on any bytes; verification is separate ([`Tx::verify`]), since
//! deciding *whether* to spend a verification on a datagram is what an ingress node's QoS is for.

use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};

/// Bytes of a transaction besides its body: key, nonce and signature.
pub const OVERHEAD: usize = 32 + 8 + 64;

/// Why bytes are not a transaction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// Shorter than a transaction with an empty body.
    #[error("{0} bytes is shorter than a transaction's {OVERHEAD}")]
    Short(usize),
}

/// A transaction read from a datagram, borrowing its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tx<'a> {
    /// The sender's public key.
    pub key: &'a [u8; 32],
    /// Its nonce.
    pub nonce: u64,
    /// Its body.
    pub body: &'a [u8],
    signed: &'a [u8],
    signature: &'a [u8; 64],
}

/// Read a transaction from `bytes` (without checking its signature).
pub fn decode(bytes: &[u8]) -> Result<Tx<'_>, TxError> {
    if bytes.len() < OVERHEAD {
        return Err(TxError::Short(bytes.len()));
    }
    let (signed, signature) = bytes.split_at(bytes.len() - 64);
    let (key, rest) = signed.split_at(32);
    let (nonce, body) = rest.split_at(8);
    Ok(Tx {
        key: key.try_into().map_err(|_| TxError::Short(bytes.len()))?,
        nonce: u64::from_be_bytes(nonce.try_into().map_err(|_| TxError::Short(bytes.len()))?),
        body,
        signed,
        signature: signature.try_into().map_err(|_| TxError::Short(bytes.len()))?,
    })
}

impl Tx<'_> {
    /// Whether its signature is the key's over its bytes (a key that is no curve point fails).
    pub fn verify(&self) -> bool {
        let Ok(key) = VerifyingKey::from_bytes(self.key) else { return false };
        key.verify(self.signed, &Signature::from_bytes(self.signature)).is_ok()
    }
}

/// A sender's key pair.
pub struct TxSigner {
    key: SigningKey,
}

impl TxSigner {
    /// The key pair of the 32-byte secret `seed`.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        TxSigner { key: SigningKey::from_bytes(&seed) }
    }

    /// Its public key.
    pub fn public(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// The transaction with `nonce` whose body is `body`, signed (or, with `valid` false, with
    /// one bit of the signature flipped), appended to `out`.
    pub fn encode(&self, nonce: u64, body: &[u8], valid: bool, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&self.public());
        out.extend_from_slice(&nonce.to_be_bytes());
        out.extend_from_slice(body);
        let mut signature = self.key.sign(&out[start..]).to_bytes();
        if !valid {
            signature[7] ^= 0x20;
        }
        out.extend_from_slice(&signature);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_signed_transaction_verifies_and_a_flipped_one_does_not() {
        let signer = TxSigner::from_seed([7; 32]);
        let (mut good, mut bad) = (Vec::new(), Vec::new());
        signer.encode(42, b"pay 5 to bob", true, &mut good);
        signer.encode(42, b"pay 5 to bob", false, &mut bad);
        assert_eq!(good.len(), OVERHEAD + 12);
        let tx = decode(&good).unwrap();
        assert_eq!((tx.key, tx.nonce, tx.body), (&signer.public(), 42, &b"pay 5 to bob"[..]));
        assert!(tx.verify());
        assert!(!decode(&bad).unwrap().verify());
        good[40] ^= 1;
        assert!(!decode(&good).unwrap().verify(), "a changed body breaks the signature");
        assert_eq!(decode(&good[..OVERHEAD - 1]), Err(TxError::Short(OVERHEAD - 1)));
    }

    proptest! {
        #[test]
        fn any_bytes_decode_or_fail_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(tx) = decode(&bytes) {
                prop_assert_eq!(tx.body.len() + OVERHEAD, bytes.len());
                let _ = tx.verify();
            }
        }

        #[test]
        fn encoded_transactions_round_trip(seed in any::<[u8; 32]>(), nonce in any::<u64>(), body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let signer = TxSigner::from_seed(seed);
            let mut out = vec![9, 9];
            signer.encode(nonce, &body, true, &mut out);
            let tx = decode(&out[2..]).unwrap();
            prop_assert_eq!((tx.nonce, tx.body), (nonce, &body[..]));
            prop_assert!(tx.verify());
        }
    }
}
