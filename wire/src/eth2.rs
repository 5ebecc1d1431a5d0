//! What a peer of an Ethereum consensus client speaks above libp2p: gossip topics
//! (`/eth2/{fork_digest}/{name}/ssz_snappy`) with snappy-compressed SSZ payloads and the spec's
//! content-derived message ids, and the req/resp methods every client calls on a new peer
//! ([`reqresp`]: Status, Goodbye, Ping, MetaData, blocks by range and by root). [`ssz`] reads
//! consensus types through schemas (a block's root is what a node's Status names as its head),
//! [`types`] holds those schemas and the small fixed messages, [`snappy`] both snappy formats.

pub mod reqresp;
pub mod snappy;
pub mod ssz;
pub mod types;

use sha2::{Digest as _, Sha256};

/// `GOSSIP_MAX_SIZE` (since Bellatrix): the largest decompressed gossip payload.
pub const GOSSIP_MAX_SIZE: usize = 10 << 20;
/// `MESSAGE_DOMAIN_VALID_SNAPPY`.
const DOMAIN_VALID_SNAPPY: [u8; 4] = [1, 0, 0, 0];
/// `MESSAGE_DOMAIN_INVALID_SNAPPY`.
const DOMAIN_INVALID_SNAPPY: [u8; 4] = [0, 0, 0, 0];

/// The gossip topic for `name` (`beacon_block`, `beacon_attestation_3`, …) under `digest`.
pub fn topic(digest: [u8; 4], name: &str) -> String {
    format!("/eth2/{:02x}{:02x}{:02x}{:02x}/{name}/ssz_snappy", digest[0], digest[1], digest[2], digest[3])
}

/// The name and fork digest of an Ethereum gossip topic, if `topic` is one.
pub fn parse_topic(topic: &str) -> Option<([u8; 4], &str)> {
    let rest = topic.strip_prefix("/eth2/")?.strip_suffix("/ssz_snappy")?;
    let (hex, name) = rest.split_once('/')?;
    if hex.len() != 8 || name.is_empty() || name.contains('/') {
        return None;
    }
    let mut digest = [0u8; 4];
    for (k, d) in digest.iter_mut().enumerate() {
        *d = u8::from_str_radix(hex.get(2 * k..2 * k + 2)?, 16).ok()?;
    }
    Some((digest, name))
}

/// The consensus spec's gossip message id: the first 20 bytes of SHA-256 over the
/// valid-snappy domain and the decompressed payload (from Altair on, with the topic's length and
/// the topic between them), or over the invalid-snappy domain and the raw payload when it does
/// not decompress.
pub fn message_id(topic: &str, data: &[u8], with_topic: bool) -> Vec<u8> {
    let mut h = Sha256::new();
    match snappy::decompress_block(data, GOSSIP_MAX_SIZE) {
        Ok(plain) => {
            h.update(DOMAIN_VALID_SNAPPY);
            if with_topic {
                h.update((topic.len() as u64).to_le_bytes());
                h.update(topic.as_bytes());
            }
            h.update(&plain);
        }
        Err(_) => {
            h.update(DOMAIN_INVALID_SNAPPY);
            if with_topic {
                h.update((topic.len() as u64).to_le_bytes());
                h.update(topic.as_bytes());
            }
            h.update(data);
        }
    }
    h.finalize()[..20].to_vec()
}

#[cfg(test)]
mod tests;
