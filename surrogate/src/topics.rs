//! Topics and subscriptions. Topic indices are fixed whatever the configuration, so tables and
//! bus events name topics the same way in every run: 0 is `beacon_block`, 1..=64 the attestation
//! subnets, 65..=192 the data column subnets, 193 `beacon_aggregate_and_proof`.
//! Who subscribes to and publishes on which topic is [`crate::traffic`]'s.
//!
//! Subscriptions follow Ethereum's rules in shape: every identity subscribes to the block topic,
//! to `subnets_per_node` attestation subnets and to `custody_per_node` column subnets, chosen
//! from its own "subscriptions" stream (the spec derives them from the node id; here the id is
//! synthetic, so a stream plays its part). They are fixed for the run, and every shard computes
//! the same table.

/// Attestation subnets (`ATTESTATION_SUBNET_COUNT`).
pub const ATTESTATION_SUBNETS: u32 = 64;
/// Data column sidecar subnets (`DATA_COLUMN_SIDECAR_SUBNET_COUNT`, one column each).
pub const COLUMN_SUBNETS: u32 = 128;

/// Topic index of `beacon_block`.
pub const TOPIC_BEACON_BLOCK: u8 = 0;
/// Topic index of attestation subnet 0.
pub const ATTESTATION_BASE: u8 = 1;
/// Topic index of data column subnet 0.
pub const COLUMN_BASE: u8 = ATTESTATION_BASE + ATTESTATION_SUBNETS as u8;
/// Topic index of `beacon_aggregate_and_proof` (subscribed in an Ethereum domain, where real
/// clients' aggregates cross the tail; see [`crate::traffic::Subscriptions::compute`]).
pub const TOPIC_AGGREGATE: u8 = COLUMN_BASE + COLUMN_SUBNETS as u8;
/// Number of topic indices.
pub const TOPIC_COUNT: usize = TOPIC_AGGREGATE as usize + 1;

/// The topic's name as Ethereum clients spell it (without the fork digest and encoding).
pub fn topic_name(t: u8) -> String {
    if t == TOPIC_BEACON_BLOCK {
        "beacon_block".into()
    } else if t < COLUMN_BASE {
        format!("beacon_attestation_{}", t - ATTESTATION_BASE)
    } else if t < TOPIC_AGGREGATE {
        format!("data_column_sidecar_{}", t - COLUMN_BASE)
    } else {
        "beacon_aggregate_and_proof".into()
    }
}

/// The topic's family: `beacon_block`, `beacon_attestation`, `data_column_sidecar` or
/// `beacon_aggregate_and_proof`.
pub fn topic_family(t: u8) -> &'static str {
    FAMILIES[family_index(t)]
}

/// Topic families, in the order of [`family_index`].
pub const FAMILIES: [&str; 4] =
    ["beacon_block", "beacon_attestation", "data_column_sidecar", "beacon_aggregate_and_proof"];

/// The index of topic `t`'s family in [`FAMILIES`].
pub fn family_index(t: u8) -> usize {
    if t == TOPIC_BEACON_BLOCK {
        0
    } else if t < COLUMN_BASE {
        1
    } else if t < TOPIC_AGGREGATE {
        2
    } else {
        3
    }
}

/// The family of a topic as [`topic_name`] spells it (the name without its subnet number), for
/// readers of the tables.
pub fn topic_family_of_name(name: &str) -> &str {
    name.trim_end_matches(|c: char| c.is_ascii_digit()).trim_end_matches('_')
}

/// The `attnets` bits (MetaData, node records) of an identity subscribed to `topics`.
pub fn attnets(topics: &[u8]) -> u64 {
    topics
        .iter()
        .filter_map(|&t| t.checked_sub(ATTESTATION_BASE).filter(|&s| u32::from(s) < ATTESTATION_SUBNETS))
        .fold(0u64, |bits, s| bits | 1 << s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_families() {
        assert_eq!(topic_name(0), "beacon_block");
        assert_eq!(topic_name(ATTESTATION_BASE + 63), "beacon_attestation_63");
        assert_eq!(topic_name(COLUMN_BASE), "data_column_sidecar_0");
        assert_eq!(topic_name(TOPIC_AGGREGATE - 1), "data_column_sidecar_127");
        assert_eq!(topic_name(TOPIC_AGGREGATE), "beacon_aggregate_and_proof");
        assert_eq!(TOPIC_COUNT, 194);
        assert_eq!(topic_family(COLUMN_BASE - 1), "beacon_attestation");
        for t in 0..TOPIC_COUNT as u8 {
            assert_eq!(topic_family_of_name(&topic_name(t)), topic_family(t));
        }
    }

    #[test]
    fn attnets_are_the_attestation_subnets_subscribed() {
        assert_eq!(attnets(&[TOPIC_BEACON_BLOCK]), 0);
        assert_eq!(attnets(&[TOPIC_BEACON_BLOCK, ATTESTATION_BASE, ATTESTATION_BASE + 63]), 1 | 1 << 63);
        assert_eq!(attnets(&[ATTESTATION_BASE + 5, TOPIC_AGGREGATE]), 1 << 5);
    }
}
