//! Result rows on disk during a run: what engines hand out early ([`Engine::take_tables`], e.g.
//! the arrivals of retired messages) is appended to one file per table and shard in the run's
//! staging folder, so a long run's memory does not hold its results. The run's outputs are
//! then written from these files and the shards' reports together ([`Tables`]), batch by batch.
//!
//! A spill file `<name>.<shard>.spill` is a sequence of frames: a little-endian `u64` length and
//! that many bytes of one Arrow IPC stream (one engine table). Every shard writes its own files,
//! so under MPI the output folder must be on a file system all ranks share.

use arrow_array::RecordBatch;
use arrow_ipc::reader::StreamReader;
use arrow_schema::SchemaRef;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Cursor, Read, Write};
use std::path::{Path, PathBuf};
use thermocline_bus::{Engine, EngineError, EngineOutput, Event, Outbox, ShardId, ShardReport, SimTime, Table};

/// The spill folder of a run whose output folder (staging folder) is `dir`.
pub fn spill_dir(dir: &Path) -> PathBuf {
    dir.join(".spill")
}

fn file_name(name: &str, shard: ShardId) -> String {
    format!("{name}.{}.spill", shard.0)
}

/// An engine whose early tables go to disk: it runs `inner` and appends every table `inner`
/// hands out to the spill files of its shard.
pub struct Spilling {
    inner: Box<dyn Engine>,
    dir: PathBuf,
    shard: ShardId,
    files: BTreeMap<String, BufWriter<File>>,
}

impl Spilling {
    /// Wrap `inner`, the engine of `shard`, spilling into `dir` (created when first needed).
    pub fn new(inner: Box<dyn Engine>, dir: PathBuf, shard: ShardId) -> Self {
        Spilling { inner, dir, shard, files: BTreeMap::new() }
    }

    /// Append everything `inner` hands out now, a few tables at a time.
    fn store(&mut self) -> Result<(), EngineError> {
        loop {
            let tables = self.inner.take_tables();
            if tables.is_empty() {
                return Ok(());
            }
            for t in tables {
                let path = self.dir.join(file_name(&t.name, self.shard));
                self.append(&t).map_err(|e| format!("writing {}: {e}", path.display()))?;
            }
        }
    }

    fn append(&mut self, t: &Table) -> io::Result<()> {
        let w = match self.files.get_mut(&t.name) {
            Some(w) => w,
            None => {
                fs::create_dir_all(&self.dir)?;
                let f = File::create(self.dir.join(file_name(&t.name, self.shard)))?;
                self.files.entry(t.name.clone()).or_insert(BufWriter::new(f))
            }
        };
        w.write_all(&(t.arrow_ipc.len() as u64).to_le_bytes())?;
        w.write_all(&t.arrow_ipc)
    }
}

impl Engine for Spilling {
    fn next_event_time(&self) -> SimTime {
        self.inner.next_event_time()
    }

    fn run_until(&mut self, end: SimTime, outbox: &mut Outbox) -> Result<u64, EngineError> {
        let n = self.inner.run_until(end, outbox)?;
        self.store()?;
        Ok(n)
    }

    fn deliver(&mut self, events: &mut Vec<Event>) -> Result<(), EngineError> {
        self.inner.deliver(events)
    }

    fn finish(&mut self) -> Result<EngineOutput, EngineError> {
        self.store()?;
        let out = self.inner.finish()?;
        self.store()?;
        for (name, w) in std::mem::take(&mut self.files) {
            let file = w.into_inner().map_err(|e| e.into_error()).and_then(|f| f.sync_all().map(|_| f));
            file.map_err(|e| format!("writing {}: {e}", self.dir.join(file_name(&name, self.shard)).display()))?;
        }
        Ok(out)
    }
}

/// Why result tables could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum TablesError {
    /// A spill file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What happened.
        #[source]
        source: io::Error,
    },
    /// Arrow rejected a table's bytes.
    #[error("table {name}: {source}")]
    Arrow {
        /// The table.
        name: String,
        /// What happened.
        #[source]
        source: arrow_schema::ArrowError,
    },
    /// Tables of one name have different schemas.
    #[error("table {0}: shards produced different schemas")]
    SchemaMismatch(String),
    /// A table could not be written out.
    #[error("table {name}: {detail}")]
    Write {
        /// The table.
        name: String,
        /// What happened.
        detail: String,
    },
}

/// Every result table of a finished run: per shard, in shard order, what it spilled (in the
/// order handed out) and then what its report holds.
pub struct Tables<'a> {
    reports: &'a [ShardReport],
    spill: Option<PathBuf>,
}

impl<'a> Tables<'a> {
    /// The tables of `reports` and of the spill folder `spill` (if the run had one).
    pub fn new(reports: &'a [ShardReport], spill: Option<PathBuf>) -> Self {
        let spill = spill.filter(|d| d.is_dir());
        Tables { reports, spill }
    }

    /// The names of every table, sorted.
    pub fn names(&self) -> Result<BTreeSet<String>, TablesError> {
        let mut names: BTreeSet<String> =
            self.reports.iter().flat_map(|r| r.output.tables.iter().map(|t| t.name.clone())).collect();
        if let Some(dir) = &self.spill {
            let io = |source| TablesError::Io { path: dir.display().to_string(), source };
            for entry in fs::read_dir(dir).map_err(io)? {
                let file = entry.map_err(io)?.file_name().to_string_lossy().into_owned();
                if let Some(stem) = file.strip_suffix(".spill")
                    && let Some((name, _shard)) = stem.rsplit_once('.')
                {
                    names.insert(name.to_string());
                }
            }
        }
        Ok(names)
    }

    /// Whether any table is called `name`.
    pub fn has(&self, name: &str) -> Result<bool, TablesError> {
        Ok(self.names()?.contains(name))
    }

    /// Call `f` with every batch of table `name`, shard by shard; returns its schema (`None` if
    /// no shard produced it). Batches are read one at a time, so the table need not fit in
    /// memory.
    pub fn each_batch(
        &self,
        name: &str,
        mut f: impl FnMut(&RecordBatch) -> Result<(), TablesError>,
    ) -> Result<Option<SchemaRef>, TablesError> {
        let mut schema: Option<SchemaRef> = None;
        let mut one = |bytes: &[u8]| -> Result<(), TablesError> {
            let arrow = |source| TablesError::Arrow { name: name.to_string(), source };
            let reader = StreamReader::try_new(Cursor::new(bytes), None).map_err(arrow)?;
            match &schema {
                Some(prev) if prev != &reader.schema() => return Err(TablesError::SchemaMismatch(name.to_string())),
                _ => schema = Some(reader.schema()),
            }
            for b in reader {
                f(&b.map_err(arrow)?)?;
            }
            Ok(())
        };
        for r in self.reports {
            if let Some(dir) = &self.spill {
                let path = dir.join(file_name(name, r.shard));
                let io = |source| TablesError::Io { path: path.display().to_string(), source };
                match File::open(&path) {
                    Ok(file) => {
                        let mut frames = BufReader::new(file);
                        while let Some(frame) = next_frame(&mut frames).map_err(io)? {
                            one(&frame)?;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io(e)),
                }
            }
            for t in r.output.tables.iter().filter(|t| t.name == name) {
                one(&t.arrow_ipc)?;
            }
        }
        Ok(schema)
    }

    /// Every batch of table `name` in memory (for small tables).
    pub fn batches(&self, name: &str) -> Result<Vec<RecordBatch>, TablesError> {
        let mut all = Vec::new();
        self.each_batch(name, |b| {
            all.push(b.clone());
            Ok(())
        })?;
        Ok(all)
    }
}

/// The next frame of a spill file, `None` at its end.
fn next_frame(r: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 8];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u64::from_le_bytes(len);
    let mut frame = Vec::new();
    r.take(len).read_to_end(&mut frame)?;
    if frame.len() as u64 != len {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "a spill file ends inside a table"));
    }
    Ok(Some(frame))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::{DataType, Field};
    use thermocline_bus::Digest;
    use thermocline_models::metrics::{table, u64_col};

    /// Hands out one single-row table per window, then one more at the end.
    struct Rows {
        window: u64,
        due: bool,
    }

    fn row(v: u64) -> Table {
        table("rows", vec![Field::new("v", DataType::UInt64, false)], vec![u64_col([v])]).unwrap()
    }

    impl Engine for Rows {
        fn next_event_time(&self) -> SimTime {
            SimTime::NEVER
        }
        fn run_until(&mut self, _: SimTime, _: &mut Outbox) -> Result<u64, EngineError> {
            self.window += 1;
            self.due = true;
            Ok(0)
        }
        fn deliver(&mut self, _: &mut Vec<Event>) -> Result<(), EngineError> {
            Ok(())
        }
        fn take_tables(&mut self) -> Vec<Table> {
            std::mem::take(&mut self.due).then(|| row(self.window)).into_iter().collect()
        }
        fn finish(&mut self) -> Result<EngineOutput, EngineError> {
            Ok(EngineOutput { digest: Digest::EMPTY, tables: vec![row(100)] })
        }
    }

    #[test]
    fn spilled_rows_read_back_in_order_before_the_reports() {
        let dir = std::env::temp_dir().join(format!("thermocline-spill-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let mut reports = Vec::new();
        for shard in [ShardId(0), ShardId(1)] {
            let mut e =
                Spilling::new(Box::new(Rows { window: shard.0 as u64 * 10, due: false }), spill_dir(&dir), shard);
            for _ in 0..3 {
                e.run_until(SimTime::NEVER, &mut Outbox::new(2)).unwrap();
            }
            let output = e.finish().unwrap();
            reports.push(ShardReport { shard, output, windows: vec![], pairs: vec![], wall_ns: 0 });
        }
        let tables = Tables::new(&reports, Some(spill_dir(&dir)));
        assert_eq!(tables.names().unwrap().into_iter().collect::<Vec<_>>(), vec!["rows".to_string()]);
        let mut seen = Vec::new();
        tables
            .each_batch("rows", |b| {
                let c = b.column(0).as_any().downcast_ref::<arrow_array::UInt64Array>().unwrap();
                seen.extend(c.values().iter().copied());
                Ok(())
            })
            .unwrap();
        // Per shard: a row per window, spilled, then its report's row.
        assert_eq!(seen, vec![1, 2, 3, 100, 11, 12, 13, 100]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_truncated_spill_file_is_an_error_not_a_short_table() {
        let mut bytes = 10u64.to_le_bytes().to_vec();
        bytes.extend_from_slice(b"short");
        let err = next_frame(&mut Cursor::new(bytes)).unwrap_err();
        assert!(err.to_string().contains("ends inside a table"), "{err}");
        assert!(next_frame(&mut Cursor::new(Vec::new())).unwrap().is_none());
    }
}
