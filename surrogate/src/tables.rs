//! The surrogate engine's result tables (Arrow), with column names in the style of the Ethereum
//! measurement community (Xatu): `slot`, `propagation_slot_start_diff`, `topic`, `message_id`,
//! `meta_client_name`.

use crate::engine::{GossipEngine, TOPICS};
use crate::rpc::{RPC_KINDS, RpcKind};
use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringArray, UInt16Array};
use arrow_schema::{ArrowError, DataType, Field, Schema};
use std::sync::Arc;
use thermocline_bus::Table;
use thermocline_models::metrics::{ipc_stream_bytes, u32_col, u64_col};

fn table(name: &str, fields: Vec<Field>, columns: Vec<ArrayRef>) -> Result<Table, ArrowError> {
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
    Ok(Table { name: name.into(), arrow_ipc: ipc_stream_bytes(&batch)? })
}

/// `gossip_arrivals` (one row per identity and message it received: first arrival),
/// `gossip_nodes` (one row per identity: bytes by RPC kind, final mesh degree, losses) and
/// `gossip_mesh_degree` (identities sampled at each mesh degree per heartbeat period). Rows go
/// by message key, then by identity id (`by_id`: local indices in id order).
pub(crate) fn build(
    e: &GossipEngine,
    order: &[usize],
    by_id: &[usize],
    degree: &[((u64, u16), u64)],
    mean_scores: &[f64],
) -> Result<Vec<Table>, ArrowError> {
    let ids = e.ids();
    let (mut slot, mut topic, mut msg, mut node, mut diff, mut since, mut hops, mut from, mut dups) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for &m in order {
        let st = &e.msgs[m];
        let slot_start = e.slot_start_ns(st.slot);
        for &i in by_id {
            let (h, a) = (ids[i], st.arrival[i]);
            if a == u64::MAX {
                continue;
            }
            slot.push(st.slot);
            topic.push(TOPICS[st.topic as usize]);
            msg.push(st.key.0);
            node.push(h);
            diff.push((st.published_ns + a).saturating_sub(slot_start) / 1_000_000);
            since.push(a);
            hops.push(st.hops[i] as u32);
            from.push(st.from[i]);
            dups.push(st.dups[i] as u32);
        }
    }
    let rows = node.len();
    let arrivals = table(
        "gossip_arrivals",
        vec![
            Field::new("slot", DataType::UInt64, false),
            Field::new("topic", DataType::Utf8, false),
            Field::new("message_id", DataType::UInt64, false),
            Field::new("node", DataType::UInt32, false),
            Field::new("meta_client_name", DataType::Utf8, false),
            Field::new("propagation_slot_start_diff", DataType::UInt64, false),
            Field::new("arrival_since_publish_ns", DataType::UInt64, false),
            Field::new("hops", DataType::UInt32, false),
            Field::new("from_peer", DataType::UInt32, false),
            Field::new("duplicates", DataType::UInt32, false),
        ],
        vec![
            u64_col(slot),
            Arc::new(StringArray::from(topic)),
            u64_col(msg),
            u32_col(node),
            Arc::new(StringArray::from(vec![e.profile(); rows])),
            u64_col(diff),
            u64_col(since),
            u32_col(hops),
            u32_col(from),
            u32_col(dups),
        ],
    )?;
    let kinds = [RpcKind::Message, RpcKind::IHave, RpcKind::IWant, RpcKind::Graft, RpcKind::Prune, RpcKind::IDontWant];
    let mut fields = vec![
        Field::new("node", DataType::UInt32, false),
        Field::new("mesh_degree", DataType::UInt16, false),
        Field::new("lost", DataType::UInt64, false),
        Field::new("graft_in_backoff", DataType::UInt32, false),
        Field::new("mean_mesh_score", DataType::Float64, false),
        Field::new("copies_cancelled", DataType::UInt32, false),
    ];
    let mut columns: Vec<ArrayRef> = vec![
        u32_col(by_id.iter().map(|&i| ids[i])),
        Arc::new(UInt16Array::from(by_id.iter().map(|&i| e.mesh_degree()[i]).collect::<Vec<_>>())),
        u64_col(by_id.iter().map(|&i| e.lost()[i])),
        u32_col(by_id.iter().map(|&i| e.graft_in_backoff()[i])),
        Arc::new(Float64Array::from(by_id.iter().map(|&i| mean_scores[i]).collect::<Vec<_>>())),
        u32_col(by_id.iter().map(|&i| e.cancelled()[i])),
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
            Field::new("mesh_degree", DataType::UInt16, false),
            Field::new("identities", DataType::UInt64, false),
        ],
        vec![
            u64_col(degree.iter().map(|((p, _), _)| *p)),
            Arc::new(UInt16Array::from(degree.iter().map(|((_, d), _)| *d).collect::<Vec<_>>())),
            u64_col(degree.iter().map(|(_, c)| *c)),
        ],
    )?;
    Ok(vec![arrivals, nodes, mesh])
}
