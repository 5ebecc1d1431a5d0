//! The surrogate engine's result tables (Arrow), with column names in the style of the Ethereum
//! measurement community (Xatu): `slot`, `slot_start_date_time`, `propagation_slot_start_diff`,
//! `topic`, `message_id`, `meta_client_name` (the identity's name), `meta_client_implementation`
//! (its client profile).

use crate::engine::attack::AttackerLink;
use crate::engine::{FAMILIES, GossipEngine, MsgState};
use crate::rpc::{RPC_KINDS, RpcKind};
use crate::topics::{TOPIC_COUNT, topic_name};
use arrow_array::{ArrayRef, BooleanArray, Float64Array, UInt16Array};
use arrow_schema::{ArrowError, DataType, Field};
use std::sync::Arc;
use thermocline_bus::Table;
use thermocline_models::metrics::{GossipArrivals, str_col, table, u32_col, u64_col};

/// `gossip_arrivals` (one row per identity and message it received: first arrival; `hot`
/// false; clients' messages only in an Ethereum domain), `gossip_messages` (one row per message published on this shard, with how many
/// identities subscribe to its topic) and `client_message_arrivals` (if a client's message is
/// among them) for the messages of slots `order`, in that order; rows of one message go by
/// identity id. Called for messages as they retire, and at the end for the rest.
pub(crate) fn messages(e: &GossipEngine, order: &[usize]) -> Result<Vec<Table>, ArrowError> {
    let ids = e.ids();
    let mut rows = GossipArrivals::default();
    // Per topic: subscriber positions in id order.
    let mut members_by_id: Vec<Option<Vec<usize>>> = vec![None; TOPIC_COUNT];
    let (mut m_slot, mut m_topic, mut m_msg, mut m_publisher, mut m_published, mut m_subscribers, mut m_peers) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    let mut clients = ClientArrivals::default();
    for &m in order {
        let st = &e.msgs[m];
        if st.key.is_client() {
            clients.add(e, st);
            // In an Ethereum domain a client's message has a slot (read from it): its tail
            // arrivals are rows too, timed from the slot's start.
            if e.eth2.is_none() {
                continue;
            }
        }
        let slot_start = e.slot_start_ns(st.slot);
        let name = topic_name(st.topic);
        let members = e.members(st.topic);
        let positions = members_by_id[st.topic as usize].get_or_insert_with(|| {
            let mut p: Vec<usize> = (0..members.len()).collect();
            p.sort_by_key(|&pos| ids[members[pos] as usize]);
            p
        });
        for &pos in positions.iter() {
            let a = st.arrival[pos];
            if a == u64::MAX {
                continue;
            }
            let id = ids[members[pos] as usize];
            rows.slot.push(st.slot);
            rows.slot_start_ns.push(slot_start);
            rows.topic.push(name.clone());
            rows.message_id.push(st.key.0);
            rows.node.push(id);
            rows.name.push(e.host_name(id));
            rows.implementation.push(e.profile(members[pos] as usize).to_string());
            rows.arrival_ns.push(st.published_ns + a);
            rows.since_publish_ns.push(a);
            rows.hops.push(st.hops[pos] as u32);
            rows.from_peer.push(st.from[pos]);
            rows.duplicates.push(st.dups[pos] as u32);
        }
        if st.publisher != u32::MAX {
            m_slot.push(st.slot);
            m_topic.push(name);
            m_msg.push(st.key.0);
            m_publisher.push(ids[st.publisher as usize]);
            m_published.push(st.published_ns);
            m_subscribers.push(e.subscribers(st.topic));
            m_peers.push(st.publisher_peers as u32);
        }
    }
    let messages = table(
        "gossip_messages",
        vec![
            Field::new("slot", DataType::UInt64, false),
            Field::new("topic", DataType::Utf8, false),
            Field::new("message_id", DataType::UInt64, false),
            Field::new("publisher", DataType::UInt32, false),
            Field::new("published_ns", DataType::UInt64, false),
            Field::new("subscribers", DataType::UInt32, false),
            Field::new("publisher_topic_peers", DataType::UInt32, false),
        ],
        vec![
            u64_col(m_slot),
            str_col(m_topic),
            u64_col(m_msg),
            u32_col(m_publisher),
            u64_col(m_published),
            u32_col(m_subscribers),
            u32_col(m_peers),
        ],
    )?;
    let mut tables = vec![rows.table(false, e.start_unix_ns())?, messages];
    if !clients.message_id.is_empty() {
        tables.push(clients.table()?);
    }
    Ok(tables)
}

/// The tables of [`messages`] for the messages still held at the end (slots `order`), then
/// `gossip_nodes` (one row per identity: bytes by RPC kind, final `beacon_block` mesh degree,
/// losses) and `gossip_mesh_degree` (meshes sampled at each degree per heartbeat period and
/// topic family). Identity rows go by id (`by_id`: local indices in id order).
pub(crate) fn build(
    e: &GossipEngine,
    order: &[usize],
    by_id: &[usize],
    degree: &[((u64, u8, u16), u64)],
    mean_scores: &[f64],
) -> Result<Vec<Table>, ArrowError> {
    let ids = e.ids();
    let mut tables = messages(e, order)?;
    let kinds = [
        RpcKind::Message,
        RpcKind::IHave,
        RpcKind::IWant,
        RpcKind::Graft,
        RpcKind::Prune,
        RpcKind::IDontWant,
        RpcKind::PeerExchange,
    ];
    let mut fields = vec![
        Field::new("node", DataType::UInt32, false),
        Field::new("meta_client_name", DataType::Utf8, false),
        Field::new("meta_client_implementation", DataType::Utf8, false),
        Field::new("mesh_degree", DataType::UInt16, false),
        Field::new("mesh_outbound", DataType::UInt16, false),
        Field::new("lost", DataType::UInt64, false),
        Field::new("graft_in_backoff", DataType::UInt32, false),
        Field::new("mean_mesh_score", DataType::Float64, false),
        Field::new("copies_cancelled", DataType::UInt32, false),
        Field::new("offline_ns", DataType::UInt64, false),
        Field::new("dropped_offline", DataType::UInt32, false),
        Field::new("connections", DataType::UInt32, false),
        Field::new("expired_rpcs", DataType::UInt32, false),
        Field::new("invalid_received", DataType::UInt32, false),
        Field::new("score_disconnects", DataType::UInt32, false),
        Field::new("attacker", DataType::Boolean, false),
    ];
    let mut columns: Vec<ArrayRef> = vec![
        u32_col(by_id.iter().map(|&i| ids[i])),
        str_col(by_id.iter().map(|&i| e.host_name(ids[i]))),
        str_col(by_id.iter().map(|&i| e.profile(i))),
        Arc::new(UInt16Array::from(by_id.iter().map(|&i| e.block_mesh_degree(i)).collect::<Vec<_>>())),
        Arc::new(UInt16Array::from(by_id.iter().map(|&i| e.block_mesh_outbound(i)).collect::<Vec<_>>())),
        u64_col(by_id.iter().map(|&i| e.lost()[i])),
        u32_col(by_id.iter().map(|&i| e.graft_in_backoff()[i])),
        Arc::new(Float64Array::from(by_id.iter().map(|&i| mean_scores[i]).collect::<Vec<_>>())),
        u32_col(by_id.iter().map(|&i| e.cancelled()[i])),
        u64_col(by_id.iter().map(|&i| e.offline_ns(i))),
        u32_col(by_id.iter().map(|&i| e.dropped_offline()[i])),
        u32_col(by_id.iter().map(|&i| e.connections(i))),
        u32_col(by_id.iter().map(|&i| e.expired_rpcs()[i])),
        u32_col(by_id.iter().map(|&i| e.attack.invalid_in[i])),
        u32_col(by_id.iter().map(|&i| e.attack.disconnects[i])),
        Arc::new(BooleanArray::from(by_id.iter().map(|&i| e.attack.is_attacker(ids[i])).collect::<Vec<_>>())),
    ];
    for (dir, counts) in [("sent", e.sent()), ("recv", e.recv())] {
        for (k, kind) in kinds.iter().enumerate().take(RPC_KINDS) {
            fields.push(Field::new(format!("bytes_{dir}_{}", kind.name()), DataType::UInt64, false));
            columns.push(u64_col(by_id.iter().map(|&i| counts[i][k])));
        }
    }
    let nodes = table("gossip_nodes", fields, columns)?;
    let mesh = table(
        "gossip_mesh_degree",
        vec![
            Field::new("heartbeat_period", DataType::UInt64, false),
            Field::new("topic_family", DataType::Utf8, false),
            Field::new("mesh_degree", DataType::UInt16, false),
            Field::new("meshes", DataType::UInt64, false),
        ],
        vec![
            u64_col(degree.iter().map(|((p, _, _), _)| *p)),
            str_col(degree.iter().map(|((_, f, _), _)| FAMILIES[*f as usize])),
            Arc::new(UInt16Array::from(degree.iter().map(|((_, _, d), _)| *d).collect::<Vec<_>>())),
            u64_col(degree.iter().map(|(_, c)| *c)),
        ],
    )?;
    tables.extend([nodes, mesh]);
    Ok(tables)
}

/// `gossip_attack_links`: one row per connection of an honest identity to an attacker, at the
/// end of the run: the attacker's score there, whether it is still connected and in the
/// `beacon_block` mesh, and its P₄ (invalid messages) and P₇ (behaviour) counters.
pub(crate) fn attacker_links(rows: &[AttackerLink]) -> Result<Table, ArrowError> {
    let f64s = |f: fn(&AttackerLink) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from(rows.iter().map(f).collect::<Vec<_>>()))
    };
    let bools = |f: fn(&AttackerLink) -> bool| -> ArrayRef {
        Arc::new(BooleanArray::from(rows.iter().map(f).collect::<Vec<_>>()))
    };
    table(
        "gossip_attack_links",
        vec![
            Field::new("node", DataType::UInt32, false),
            Field::new("attacker", DataType::UInt32, false),
            Field::new("score", DataType::Float64, false),
            Field::new("connected", DataType::Boolean, false),
            Field::new("in_mesh", DataType::Boolean, false),
            Field::new("invalid_deliveries", DataType::Float64, false),
            Field::new("behaviour_penalty", DataType::Float64, false),
        ],
        vec![
            u32_col(rows.iter().map(|r| r.node)),
            u32_col(rows.iter().map(|r| r.attacker)),
            f64s(|r| r.score),
            bools(|r| r.connected),
            bools(|r| r.in_mesh),
            f64s(|r| r.invalid),
            f64s(|r| r.behaviour),
        ],
    )
}

/// `client_message_arrivals`: one row per identity and message a real client published that it
/// received. The tail cannot know when a client published, so arrivals are ns since the start of
/// the run; `message_id` is the message's key (a hash of its gossipsub id).
#[derive(Default)]
struct ClientArrivals {
    message_id: Vec<u64>,
    topic: Vec<String>,
    node: Vec<u32>,
    arrival: Vec<u64>,
    hops: Vec<u32>,
    from: Vec<u32>,
}

impl ClientArrivals {
    fn add(&mut self, e: &GossipEngine, st: &MsgState) {
        let members = e.members(st.topic);
        let ids = e.ids();
        let mut rows: Vec<usize> = (0..members.len()).filter(|&p| st.arrival[p] != u64::MAX).collect();
        rows.sort_by_key(|&p| ids[members[p] as usize]);
        for p in rows {
            self.message_id.push(st.key.0);
            self.topic.push(topic_name(st.topic));
            self.node.push(ids[members[p] as usize]);
            self.arrival.push(st.published_ns + st.arrival[p]);
            self.hops.push(st.hops[p] as u32);
            self.from.push(st.from[p]);
        }
    }

    fn table(self) -> Result<Table, ArrowError> {
        let fields = vec![
            Field::new("message_id", DataType::UInt64, false),
            Field::new("topic", DataType::Utf8, false),
            Field::new("node", DataType::UInt32, false),
            Field::new("arrival_ns", DataType::UInt64, false),
            Field::new("hops", DataType::UInt32, false),
            Field::new("from_peer", DataType::UInt32, false),
        ];
        let columns = vec![
            u64_col(self.message_id),
            str_col(self.topic),
            u32_col(self.node),
            u64_col(self.arrival),
            u32_col(self.hops),
            u32_col(self.from),
        ];
        table("client_message_arrivals", fields, columns)
    }
}

/// `surrogate_packets`: one row per identity that direct hosts sent IPv4 packets to (`identity`,
/// `packets`, `bytes`, and the TCP `connections` it accepted from them), in the order given.
/// Identities count such packets and drop them until they speak the wire protocol.
pub(crate) fn packets(rows: impl Iterator<Item = (u32, (u64, u64), u32)>) -> Result<Table, ArrowError> {
    let (mut identity, mut packets, mut bytes, mut connections) = (vec![], vec![], vec![], vec![]);
    for (id, (p, b), c) in rows {
        identity.push(id);
        packets.push(p);
        bytes.push(b);
        connections.push(c);
    }
    let fields = vec![
        Field::new("identity", DataType::UInt32, false),
        Field::new("packets", DataType::UInt64, false),
        Field::new("bytes", DataType::UInt64, false),
        Field::new("connections", DataType::UInt32, false),
    ];
    let columns = vec![u32_col(identity), u64_col(packets), u64_col(bytes), u32_col(connections)];
    table("surrogate_packets", fields, columns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_packets_table_has_a_column_for_each_field() {
        let t = packets([(7, (3, 1500), 1), (9, (1, 60), 0)].into_iter()).unwrap();
        let (schema, batches) = thermocline_models::metrics::concat_tables("surrogate_packets", &[&t]).unwrap();
        assert_eq!(schema.fields().len(), 4);
        assert_eq!(batches[0].num_rows(), 2);
    }
}
