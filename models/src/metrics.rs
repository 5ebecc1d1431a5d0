//! Metrics as Apache Arrow: the bus's per-window statistics and the engines' result tables,
//! written as Arrow IPC files that pyarrow, polars and DuckDB open directly.

use arrow_array::{ArrayRef, BooleanArray, RecordBatch, StringArray, UInt32Array, UInt64Array};
use arrow_ipc::reader::{FileReader, StreamReader};
use arrow_ipc::writer::{FileWriter, StreamWriter};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};
use std::fs::File;
use std::io::{BufWriter, Cursor};
use std::path::Path;
use std::sync::Arc;
use thermocline_bus::{ShardReport, Table};

/// Why a metrics table could not be built, read or written.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// Arrow rejected the data.
    #[error("arrow: {0}")]
    Arrow(#[from] ArrowError),
    /// A file could not be created or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What happened.
        #[source]
        source: std::io::Error,
    },
    /// Arrow failed while writing a file.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: String,
        /// What happened.
        #[source]
        source: ArrowError,
    },
    /// Tables of the same name from different shards have different schemas.
    #[error("table {0}: shards produced different schemas")]
    SchemaMismatch(String),
}

/// A record batch as Arrow IPC stream bytes (how engines hand tables to the bus).
pub fn ipc_stream_bytes(batch: &RecordBatch) -> Result<Vec<u8>, ArrowError> {
    let mut buf = Vec::new();
    {
        let mut w = StreamWriter::try_new(&mut buf, &batch.schema())?;
        w.write(batch)?;
        w.finish()?;
    }
    Ok(buf)
}

/// Write `batches` (all of `schema`) to an Arrow IPC file at `path`, flushed to disk. Every
/// failure, Arrow's own included, names the file.
pub fn write_ipc_file(path: &Path, schema: &SchemaRef, batches: &[RecordBatch]) -> Result<(), MetricsError> {
    let mut w = IpcFile::create(path, schema)?;
    for b in batches {
        w.write(b)?;
    }
    w.finish()
}

/// An Arrow IPC file being written a batch at a time, so a table need not be in memory whole.
pub struct IpcFile {
    path: String,
    writer: FileWriter<BufWriter<File>>,
}

impl IpcFile {
    /// Create the file at `path` for batches of `schema`.
    pub fn create(path: &Path, schema: &SchemaRef) -> Result<Self, MetricsError> {
        let path = path.display().to_string();
        let file = File::create(&path).map_err(|source| MetricsError::Io { path: path.clone(), source })?;
        let writer = FileWriter::try_new(BufWriter::new(file), schema).map_err(|e| file_error(&path, e))?;
        Ok(IpcFile { path, writer })
    }

    /// Append one batch.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), MetricsError> {
        self.writer.write(batch).map_err(|e| file_error(&self.path, e))
    }

    /// Write the footer and flush the file to disk.
    pub fn finish(mut self) -> Result<(), MetricsError> {
        let path = self.path;
        self.writer.finish().map_err(|e| file_error(&path, e))?;
        let io = |source| MetricsError::Io { path: path.clone(), source };
        let file =
            self.writer.into_inner().map_err(|e| file_error(&path, e))?.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)
    }
}

/// Arrow's failure while writing the file at `path`, naming it.
fn file_error(path: &str, e: ArrowError) -> MetricsError {
    match e {
        ArrowError::IoError(_, source) => MetricsError::Io { path: path.to_string(), source },
        other => MetricsError::File { path: path.to_string(), source: other },
    }
}

/// Read every batch of an Arrow IPC file.
pub fn read_ipc_file(path: &Path) -> Result<(SchemaRef, Vec<RecordBatch>), MetricsError> {
    let file = File::open(path).map_err(|source| MetricsError::Io { path: path.display().to_string(), source })?;
    let reader = FileReader::try_new(file, None)?;
    let schema = reader.schema();
    let batches = reader.collect::<Result<Vec<_>, _>>()?;
    Ok((schema, batches))
}

/// Concatenate engine tables of one name (one per shard, in shard order) into schema + batches.
pub fn concat_tables(name: &str, tables: &[&Table]) -> Result<(SchemaRef, Vec<RecordBatch>), MetricsError> {
    let mut schema: Option<SchemaRef> = None;
    let mut batches = Vec::new();
    for t in tables {
        let reader = StreamReader::try_new(Cursor::new(&t.arrow_ipc), None)?;
        let s = reader.schema();
        match &schema {
            Some(prev) if prev != &s => return Err(MetricsError::SchemaMismatch(name.to_string())),
            _ => schema = Some(s),
        }
        for b in reader {
            batches.push(b?);
        }
    }
    let schema = schema.unwrap_or_else(|| Arc::new(Schema::empty()));
    Ok((schema, batches))
}

/// A non-null u64 column.
pub fn u64_col(values: impl IntoIterator<Item = u64>) -> ArrayRef {
    Arc::new(UInt64Array::from_iter_values(values))
}

/// A non-null u32 column.
pub fn u32_col(values: impl IntoIterator<Item = u32>) -> ArrayRef {
    Arc::new(UInt32Array::from_iter_values(values))
}

/// A non-null text column.
pub fn str_col<S: AsRef<str>>(values: impl IntoIterator<Item = S>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(values))
}

/// An engine's result table `name`: one batch of `columns` under `fields`, as an Arrow IPC
/// stream.
pub fn table(name: &str, fields: Vec<Field>, columns: Vec<ArrayRef>) -> Result<Table, ArrowError> {
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
    Ok(Table { name: name.into(), arrow_ipc: ipc_stream_bytes(&batch)? })
}

/// Rows of `gossip_arrivals`, column by column: one row per node and message it received (its
/// first arrival). Surrogate identities (`hot` false) and real clients on direct hosts (`hot`
/// true) share this one schema, built here for both engines; what each column means for each
/// kind of node is in `docs/formats.md`.
#[derive(Debug, Default)]
pub struct GossipArrivals {
    /// `slot`: the message's slot.
    pub slot: Vec<u64>,
    /// `topic`: its gossipsub topic.
    pub topic: Vec<String>,
    /// `message_id`: its key.
    pub message_id: Vec<u64>,
    /// `node`: the receiving host's id.
    pub node: Vec<u32>,
    /// `meta_client_name`: the receiver's client (gossip profile, or program).
    pub client: Vec<String>,
    /// `propagation_slot_start_diff`: arrival since the start of its slot, ms.
    pub slot_diff_ms: Vec<u64>,
    /// `arrival_since_publish_ns`: arrival since publication, ns.
    pub since_publish_ns: Vec<u64>,
    /// `hops`: hops the first copy took.
    pub hops: Vec<u32>,
    /// `from_peer`: who sent the first copy.
    pub from_peer: Vec<u32>,
    /// `duplicates`: copies after the first.
    pub duplicates: Vec<u32>,
}

impl GossipArrivals {
    /// The `gossip_arrivals` table of these rows, every row's `hot` column set to `hot`.
    pub fn table(self, hot: bool) -> Result<Table, ArrowError> {
        let n = self.slot.len();
        table(
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
                Field::new("hot", DataType::Boolean, false),
            ],
            vec![
                u64_col(self.slot),
                str_col(self.topic),
                u64_col(self.message_id),
                u32_col(self.node),
                str_col(self.client),
                u64_col(self.slot_diff_ms),
                u64_col(self.since_publish_ns),
                u32_col(self.hops),
                u32_col(self.from_peer),
                u32_col(self.duplicates),
                Arc::new(BooleanArray::from(vec![hot; n])),
            ],
        )
    }
}

/// The per-window bus statistics of every shard: one row per (shard, window).
///
/// Columns: `shard, window, windows, start_ns, end_ns, events, sent_events, sent_bytes, recv_events,
/// recv_bytes, exec_ns, encode_ns, wait_ns, decode_ns`.
pub fn bus_windows_batch(reports: &[ShardReport]) -> Result<RecordBatch, ArrowError> {
    let rows = || reports.iter().flat_map(|r| r.windows.iter().map(move |w| (r.shard.0, w)));
    let u64_fields = [
        "window",
        "windows",
        "start_ns",
        "end_ns",
        "events",
        "sent_events",
        "sent_bytes",
        "recv_events",
        "recv_bytes",
        "exec_ns",
        "encode_ns",
        "wait_ns",
        "decode_ns",
    ];
    let mut fields = vec![Field::new("shard", DataType::UInt32, false)];
    fields.extend(u64_fields.iter().map(|n| Field::new(*n, DataType::UInt64, false)));
    let getters: [fn(&thermocline_bus::WindowStats) -> u64; 13] = [
        |w| w.window,
        |w| w.windows,
        |w| w.start.as_nanos(),
        |w| w.end.as_nanos(),
        |w| w.events,
        |w| w.sent_events,
        |w| w.sent_bytes,
        |w| w.recv_events,
        |w| w.recv_bytes,
        |w| w.exec_ns,
        |w| w.encode_ns,
        |w| w.wait_ns,
        |w| w.decode_ns,
    ];
    let mut columns = vec![u32_col(rows().map(|(s, _)| s))];
    columns.extend(getters.iter().map(|g| u64_col(rows().map(|(_, w)| g(w)))));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}

/// Shard-pair traffic per window (non-zero pairs only): the cut matrix over time.
///
/// Columns: `shard, window, peer, sent_events, sent_bytes, recv_events, recv_bytes`.
pub fn bus_pairs_batch(reports: &[ShardReport]) -> Result<RecordBatch, ArrowError> {
    let rows = || reports.iter().flat_map(|r| r.pairs.iter().map(move |p| (r.shard.0, p)));
    let schema = Schema::new(vec![
        Field::new("shard", DataType::UInt32, false),
        Field::new("window", DataType::UInt64, false),
        Field::new("peer", DataType::UInt32, false),
        Field::new("sent_events", DataType::UInt64, false),
        Field::new("sent_bytes", DataType::UInt64, false),
        Field::new("recv_events", DataType::UInt64, false),
        Field::new("recv_bytes", DataType::UInt64, false),
    ]);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            u32_col(rows().map(|(s, _)| s)),
            u64_col(rows().map(|(_, p)| p.window)),
            u32_col(rows().map(|(_, p)| p.peer.0)),
            u64_col(rows().map(|(_, p)| p.sent_events)),
            u64_col(rows().map(|(_, p)| p.sent_bytes)),
            u64_col(rows().map(|(_, p)| p.recv_events)),
            u64_col(rows().map(|(_, p)| p.recv_bytes)),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;
    use thermocline_bus::{ShardId, SimTime, WindowStats};

    #[test]
    fn window_table_round_trips_through_a_file() {
        let reports: Vec<ShardReport> = (0..2)
            .map(|s| ShardReport {
                shard: ShardId(s),
                windows: (0..3)
                    .map(|w| WindowStats {
                        window: w,
                        windows: 1,
                        start: SimTime::from_nanos(w * 10),
                        end: SimTime::from_nanos(w * 10 + 10),
                        events: s as u64 + w,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .collect();
        let batch = bus_windows_batch(&reports).unwrap();
        assert_eq!(batch.num_rows(), 6);
        let dir = std::env::temp_dir().join(format!("tc-metrics-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("w.arrow");
        write_ipc_file(&path, &batch.schema(), std::slice::from_ref(&batch)).unwrap();
        let (schema, back) = read_ipc_file(&path).unwrap();
        assert_eq!(schema, batch.schema());
        assert_eq!(back, vec![batch]);
        let events = back[0].column_by_name("events").unwrap().as_any().downcast_ref::<UInt64Array>().unwrap();
        assert_eq!(events.len(), 6);
        assert_eq!(events.value(5), 3);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
