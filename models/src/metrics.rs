//! Metrics as Apache Arrow: the bus's per-window statistics and the engines' result tables,
//! written through one [`TableWriter`] as Arrow IPC files, Parquet files or both, which pyarrow,
//! polars and DuckDB open directly.

use arrow_array::{
    ArrayRef, BooleanArray, RecordBatch, StringArray, TimestampMillisecondArray, UInt32Array, UInt64Array,
};
use arrow_ipc::reader::{FileReader, StreamReader};
use arrow_ipc::writer::{FileWriter, StreamWriter};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use std::fs::File;
use std::io::{BufWriter, Cursor, Write};
use std::path::{Path, PathBuf};
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
    /// The Parquet writer or reader failed on a file.
    #[error("{path}: {source}")]
    Parquet {
        /// The file.
        path: String,
        /// What happened.
        #[source]
        source: ParquetError,
    },
    /// Tables of the same name from different shards have different schemas.
    #[error("table {0}: shards produced different schemas")]
    SchemaMismatch(String),
    /// A batch handed to a [`TableWriter`] does not have the table's schema.
    #[error("table {table}: a batch's schema differs from the table's")]
    BatchSchema {
        /// The table.
        table: String,
    },
    /// A file name without a known table extension (`.arrow`, `.parquet`).
    #[error("{0}: not a table file (expected .arrow or .parquet)")]
    UnknownExtension(String),
    /// Neither `<name>.arrow` nor `<name>.parquet` is in the folder.
    #[error("{dir}: no table {name} (.arrow or .parquet)")]
    NoTable {
        /// The folder looked in.
        dir: String,
        /// The table.
        name: String,
    },
}

/// Which files a run writes for each table: Arrow IPC (`<name>.arrow`), Parquet
/// (`<name>.parquet`), or both, with the same schema and rows in each (`[output] format`).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TableFormat {
    /// Arrow IPC files only: the default, what the project wrote before Parquet.
    #[default]
    Arrow,
    /// Parquet files only (Snappy-compressed), for notebooks and data lakes.
    Parquet,
    /// Both, side by side.
    Both,
}

impl TableFormat {
    /// The spec's name of the format.
    pub fn name(self) -> &'static str {
        match self {
            TableFormat::Arrow => "arrow",
            TableFormat::Parquet => "parquet",
            TableFormat::Both => "both",
        }
    }

    /// Whether `<name>.arrow` files are written.
    pub fn arrow(self) -> bool {
        matches!(self, TableFormat::Arrow | TableFormat::Both)
    }

    /// Whether `<name>.parquet` files are written.
    pub fn parquet(self) -> bool {
        matches!(self, TableFormat::Parquet | TableFormat::Both)
    }
}

/// Rows per Parquet row group: what the writer holds in memory before it writes one out, and a
/// size DuckDB and polars scan in parallel well.
pub const PARQUET_ROW_GROUP_ROWS: usize = 128 * 1024;

/// Maps a writer's errors to [`MetricsError`]s naming its file.
struct FileErrors<'a>(&'a Path);

impl FileErrors<'_> {
    fn io(&self, source: std::io::Error) -> MetricsError {
        MetricsError::Io { path: self.0.display().to_string(), source }
    }

    fn arrow(&self, e: ArrowError) -> MetricsError {
        match e {
            ArrowError::IoError(_, source) => self.io(source),
            other => MetricsError::File { path: self.0.display().to_string(), source: other },
        }
    }

    fn parquet(&self, source: ParquetError) -> MetricsError {
        MetricsError::Parquet { path: self.0.display().to_string(), source }
    }
}

/// One table being written, batch by batch, as `<name>.arrow` and/or `<name>.parquet` in a
/// folder: every table of a run goes through one, so each is written the same way in each format,
/// and none needs all its rows in memory at once (the Parquet writer holds at most one row group,
/// [`PARQUET_ROW_GROUP_ROWS`] rows). Files are complete only after [`TableWriter::finish`].
pub struct TableWriter {
    name: String,
    schema: SchemaRef,
    arrow: Option<(PathBuf, FileWriter<BufWriter<File>>)>,
    parquet: Option<(PathBuf, ArrowWriter<BufWriter<File>>)>,
}

impl std::fmt::Debug for TableWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableWriter")
            .field("name", &self.name)
            .field("arrow", &self.arrow.as_ref().map(|(p, _)| p))
            .field("parquet", &self.parquet.as_ref().map(|(p, _)| p))
            .finish()
    }
}

impl TableWriter {
    /// Create the files of table `name` (of `schema`) in `dir`, in `format`.
    pub fn create(dir: &Path, name: &str, schema: SchemaRef, format: TableFormat) -> Result<Self, MetricsError> {
        let arrow = match format.arrow() {
            true => {
                let path = dir.join(format!("{name}.arrow"));
                let e = FileErrors(&path);
                let file = File::create(&path).map_err(|s| e.io(s))?;
                let w = FileWriter::try_new(BufWriter::new(file), &schema).map_err(|a| e.arrow(a))?;
                Some((path, w))
            }
            false => None,
        };
        let parquet = match format.parquet() {
            true => {
                let path = dir.join(format!("{name}.parquet"));
                let e = FileErrors(&path);
                let file = File::create(&path).map_err(|s| e.io(s))?;
                let props = WriterProperties::builder()
                    .set_compression(Compression::SNAPPY)
                    .set_max_row_group_row_count(Some(PARQUET_ROW_GROUP_ROWS))
                    .build();
                let w = ArrowWriter::try_new(BufWriter::new(file), schema.clone(), Some(props))
                    .map_err(|p| e.parquet(p))?;
                Some((path, w))
            }
            false => None,
        };
        Ok(TableWriter { name: name.to_string(), schema, arrow, parquet })
    }

    /// The table's schema.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Append one batch (of the table's schema) to every file.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), MetricsError> {
        if batch.schema() != self.schema {
            return Err(MetricsError::BatchSchema { table: self.name.clone() });
        }
        if let Some((path, w)) = &mut self.arrow {
            w.write(batch).map_err(|a| FileErrors(path).arrow(a))?;
        }
        if let Some((path, w)) = &mut self.parquet {
            w.write(batch).map_err(|p| FileErrors(path).parquet(p))?;
        }
        Ok(())
    }

    /// Complete every file (footer written, flushed and synced to disk) and return their names,
    /// `.arrow` first.
    pub fn finish(self) -> Result<Vec<String>, MetricsError> {
        let mut files = Vec::new();
        if let Some((path, mut w)) = self.arrow {
            let e = FileErrors(&path);
            w.finish().map_err(|a| e.arrow(a))?;
            let file = w.into_inner().map_err(|a| e.arrow(a))?.into_inner().map_err(|b| e.io(b.into_error()))?;
            file.sync_all().map_err(|s| e.io(s))?;
            files.push(file_name(&path));
        }
        if let Some((path, mut w)) = self.parquet {
            let e = FileErrors(&path);
            w.finish().map_err(|p| e.parquet(p))?;
            let out = w.inner_mut();
            out.flush().map_err(|s| e.io(s))?;
            out.get_ref().sync_all().map_err(|s| e.io(s))?;
            files.push(file_name(&path));
        }
        Ok(files)
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// Write `batches` (all of `schema`) as table `name` in `dir`, in `format`; returns the file
/// names written.
pub fn write_table(
    dir: &Path,
    name: &str,
    schema: SchemaRef,
    batches: &[RecordBatch],
    format: TableFormat,
) -> Result<Vec<String>, MetricsError> {
    let mut w = TableWriter::create(dir, name, schema, format)?;
    for b in batches {
        w.write(b)?;
    }
    w.finish()
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

/// Read every batch of an Arrow IPC file.
pub fn read_ipc_file(path: &Path) -> Result<(SchemaRef, Vec<RecordBatch>), MetricsError> {
    let file = File::open(path).map_err(|source| MetricsError::Io { path: path.display().to_string(), source })?;
    let reader = FileReader::try_new(file, None)?;
    let schema = reader.schema();
    let batches = reader.collect::<Result<Vec<_>, _>>()?;
    Ok((schema, batches))
}

/// Read every batch of a Parquet file, with the Arrow schema it was written with.
pub fn read_parquet_file(path: &Path) -> Result<(SchemaRef, Vec<RecordBatch>), MetricsError> {
    let e = FileErrors(path);
    let file = File::open(path).map_err(|s| e.io(s))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|p| e.parquet(p))?;
    let schema = builder.schema().clone();
    let reader = builder.build().map_err(|p| e.parquet(p))?;
    let batches = reader.collect::<Result<Vec<_>, _>>().map_err(|a| e.arrow(a))?;
    Ok((schema, batches))
}

/// A whole table file, `.arrow` or `.parquet` (by its extension), as one batch.
pub fn read_table_file(path: &Path) -> Result<RecordBatch, MetricsError> {
    let (schema, batches) = match path.extension().and_then(|x| x.to_str()) {
        Some("arrow") => read_ipc_file(path)?,
        Some("parquet") => read_parquet_file(path)?,
        _ => return Err(MetricsError::UnknownExtension(path.display().to_string())),
    };
    Ok(arrow_select::concat::concat_batches(&schema, &batches)?)
}

/// Table `name` of a run's output folder as one batch, from `<name>.arrow` if the run wrote it,
/// else from `<name>.parquet`: readers work whatever `[output] format` the run had.
pub fn read_table(dir: &Path, name: &str) -> Result<RecordBatch, MetricsError> {
    for ext in ["arrow", "parquet"] {
        let path = dir.join(format!("{name}.{ext}"));
        if path.exists() {
            return read_table_file(&path);
        }
    }
    Err(MetricsError::NoTable { dir: dir.display().to_string(), name: name.to_string() })
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
/// kind of node is in `docs/formats.md`. Column names follow the Ethereum measurement
/// community's published gossip tables (Xatu's `libp2p_gossipsub_beacon_block`) where they have
/// a counterpart.
#[derive(Debug, Default)]
pub struct GossipArrivals {
    /// `slot`: the message's slot.
    pub slot: Vec<u64>,
    /// The simulated time its slot started, ns (gives `slot_start_date_time` and
    /// `propagation_slot_start_diff`).
    pub slot_start_ns: Vec<u64>,
    /// `topic`: its gossipsub topic.
    pub topic: Vec<String>,
    /// `message_id`: its key.
    pub message_id: Vec<u64>,
    /// `node`: the receiving host's id.
    pub node: Vec<u32>,
    /// `meta_client_name`: the receiving host's name (identity or direct host).
    pub name: Vec<String>,
    /// `meta_client_implementation`: the receiver's client (gossip profile, or program).
    pub implementation: Vec<String>,
    /// The simulated time of the arrival, ns (gives `event_date_time`).
    pub arrival_ns: Vec<u64>,
    /// `arrival_since_publish_ns`: arrival since publication, ns.
    pub since_publish_ns: Vec<u64>,
    /// `hops`: hops the first copy took.
    pub hops: Vec<u32>,
    /// `from_peer`: who sent the first copy.
    pub from_peer: Vec<u32>,
    /// `duplicates`: copies after the first.
    pub duplicates: Vec<u32>,
}

/// A non-null column of UTC timestamps in milliseconds: `start_unix_ns` (the run's calendar
/// time at simulated time zero) plus each simulated time, truncated to the millisecond.
pub fn utc_ms_col(start_unix_ns: u64, sim_ns: &[u64]) -> ArrayRef {
    let ms = sim_ns.iter().map(|&t| (start_unix_ns.saturating_add(t) / 1_000_000) as i64);
    Arc::new(TimestampMillisecondArray::from_iter_values(ms).with_timezone("UTC"))
}

/// The type of [`utc_ms_col`] columns.
pub fn utc_ms_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

impl GossipArrivals {
    /// The `gossip_arrivals` table of these rows, every row's `hot` column set to `hot`; dates
    /// are `start_unix_ns` (`[run] start_date`) plus simulated time.
    pub fn table(self, hot: bool, start_unix_ns: u64) -> Result<Table, ArrowError> {
        let n = self.slot.len();
        let slot_diff_ms =
            self.arrival_ns.iter().zip(&self.slot_start_ns).map(|(&a, &s)| a.saturating_sub(s) / 1_000_000);
        let slot_start_date_time = utc_ms_col(start_unix_ns, &self.slot_start_ns);
        let event_date_time = utc_ms_col(start_unix_ns, &self.arrival_ns);
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
                Field::new("slot_start_date_time", utc_ms_type(), false),
                Field::new("event_date_time", utc_ms_type(), false),
                Field::new("meta_client_implementation", DataType::Utf8, false),
            ],
            vec![
                u64_col(self.slot),
                str_col(self.topic),
                u64_col(self.message_id),
                u32_col(self.node),
                str_col(self.name),
                u64_col(slot_diff_ms.collect::<Vec<_>>()),
                u64_col(self.since_publish_ns),
                u32_col(self.hops),
                u32_col(self.from_peer),
                u32_col(self.duplicates),
                Arc::new(BooleanArray::from(vec![hot; n])),
                slot_start_date_time,
                event_date_time,
                str_col(self.implementation),
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
        let files = write_table(&dir, "w", batch.schema(), std::slice::from_ref(&batch), TableFormat::Arrow).unwrap();
        assert_eq!(files, ["w.arrow"]);
        let (schema, back) = read_ipc_file(&dir.join("w.arrow")).unwrap();
        assert_eq!(schema, batch.schema());
        assert_eq!(back, vec![batch]);
        let events = back[0].column_by_name("events").unwrap().as_any().downcast_ref::<UInt64Array>().unwrap();
        assert_eq!(events.len(), 6);
        assert_eq!(events.value(5), 3);
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tc-metrics-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn rows(from: u64, n: u64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::UInt64, false),
            Field::new("name", DataType::Utf8, false),
            Field::new("at", utc_ms_type(), false),
            Field::new("hot", DataType::Boolean, false),
        ]));
        let ks: Vec<u64> = (from..from + n).collect();
        RecordBatch::try_new(
            schema,
            vec![
                u64_col(ks.iter().copied()),
                str_col(ks.iter().map(|k| format!("node{}", k % 97))),
                utc_ms_col(1_700_000_000_000_000_000, &ks),
                Arc::new(BooleanArray::from(ks.iter().map(|k| k % 3 == 0).collect::<Vec<_>>())),
            ],
        )
        .unwrap()
    }

    #[test]
    fn a_table_streamed_in_batches_reads_back_the_same_from_arrow_and_parquet() {
        let dir = scratch("both");
        let batches: Vec<RecordBatch> = (0..3).map(|i| rows(i * 100_000, 100_000)).collect();
        let mut w = TableWriter::create(&dir, "t", batches[0].schema(), TableFormat::Both).unwrap();
        for b in &batches {
            w.write(b).unwrap();
        }
        assert_eq!(w.finish().unwrap(), ["t.arrow", "t.parquet"]);
        let whole = arrow_select::concat::concat_batches(&batches[0].schema(), &batches).unwrap();
        let (from_arrow, from_parquet) =
            (read_table_file(&dir.join("t.arrow")).unwrap(), read_table_file(&dir.join("t.parquet")).unwrap());
        assert_eq!(from_arrow, whole);
        assert_eq!(from_parquet, whole);
        // 300,000 rows make three row groups: the writer never held the whole table.
        let meta = ParquetRecordBatchReaderBuilder::try_new(File::open(dir.join("t.parquet")).unwrap()).unwrap();
        assert_eq!(meta.metadata().num_row_groups(), 3);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn each_format_writes_only_its_files_and_read_table_finds_either() {
        let dir = scratch("formats");
        let b = rows(0, 10);
        assert_eq!(
            write_table(&dir, "p", b.schema(), std::slice::from_ref(&b), TableFormat::Parquet).unwrap(),
            ["p.parquet"]
        );
        assert!(!dir.join("p.arrow").exists());
        assert_eq!(read_table(&dir, "p").unwrap(), b);
        assert_eq!(
            write_table(&dir, "a", b.schema(), std::slice::from_ref(&b), TableFormat::Arrow).unwrap(),
            ["a.arrow"]
        );
        assert!(!dir.join("a.parquet").exists());
        assert_eq!(read_table(&dir, "a").unwrap(), b);
        assert!(matches!(read_table(&dir, "missing"), Err(MetricsError::NoTable { .. })));
        // A table with no rows is still a file with its schema.
        write_table(&dir, "empty", b.schema(), &[], TableFormat::Both).unwrap();
        for ext in ["arrow", "parquet"] {
            let t = read_table_file(&dir.join(format!("empty.{ext}"))).unwrap();
            assert_eq!((t.num_rows(), t.schema()), (0, b.schema()), "{ext}");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_batch_of_another_schema_is_refused() {
        let dir = scratch("schema");
        let mut w = TableWriter::create(&dir, "t", rows(0, 1).schema(), TableFormat::Both).unwrap();
        let other = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("k", DataType::UInt32, false)])),
            vec![u32_col([1])],
        )
        .unwrap();
        let err = w.write(&other).unwrap_err().to_string();
        assert!(err.contains("table t"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn damaged_table_files_give_errors_naming_them() {
        let dir = scratch("damaged");
        let b = rows(0, 1000);
        write_table(&dir, "t", b.schema(), std::slice::from_ref(&b), TableFormat::Both).unwrap();
        for ext in ["arrow", "parquet"] {
            let path = dir.join(format!("t.{ext}"));
            let bytes = std::fs::read(&path).unwrap();
            for cut in [0, 8, bytes.len() / 2, bytes.len() - 1] {
                std::fs::write(&path, &bytes[..cut]).unwrap();
                assert!(read_table_file(&path).is_err(), "{ext} cut at {cut}");
            }
            // The footer's length (just before the closing magic) claims more than the file holds.
            let mut flipped = bytes.clone();
            let at = flipped.len() - if ext == "arrow" { 10 } else { 8 };
            flipped[at..at + 4].copy_from_slice(&i32::MAX.to_le_bytes());
            std::fs::write(&path, &flipped).unwrap();
            let err = read_table_file(&path).unwrap_err().to_string();
            assert!(ext == "arrow" || err.contains("t.parquet"), "{err}");
        }
        assert!(matches!(read_table_file(&dir.join("t.csv")), Err(MetricsError::UnknownExtension(_))));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
