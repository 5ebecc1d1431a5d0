//! What the report reads: a run's output folder, its `summary.json` and its Arrow IPC tables,
//! one table at a time and only the columns a plot needs. Tables whose rows grow with the run
//! (arrivals, messages, windows) are read one record batch at a time ([`RunFolder::each_batch`]),
//! so the report's memory is that of one batch and of the aggregates, not of the table.

use super::ReportError;
use crate::output::Summary;
use arrow_array::{Array, ArrayRef, BooleanArray, Float64Array, RecordBatch, StringArray};
use arrow_array::{UInt16Array, UInt32Array, UInt64Array};
use arrow_ipc::reader::FileReader;
use std::fs::File;
use std::path::{Path, PathBuf};
use thermocline_models::metrics::{MetricsError, read_ipc_file};

/// A finished run's output folder.
#[derive(Debug)]
pub struct RunFolder {
    dir: PathBuf,
    /// The run's `summary.json`.
    pub summary: Summary,
}

impl RunFolder {
    /// Open the run in `dir`: its `summary.json` must be there and parse.
    pub fn open(dir: &Path) -> Result<RunFolder, ReportError> {
        let path = dir.join("summary.json");
        let text = std::fs::read_to_string(&path).map_err(|source| ReportError::Io { path: path.clone(), source })?;
        let summary = serde_json::from_str(&text).map_err(|source| ReportError::Summary { path, source })?;
        Ok(RunFolder { dir: dir.to_path_buf(), summary })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Table `name` (`<name>.arrow`), or `None` when the run did not write it.
    pub fn table(&self, name: &str) -> Result<Option<Table>, ReportError> {
        let path = self.dir.join(format!("{name}.arrow"));
        if !path.is_file() {
            return Ok(None);
        }
        let (_, batches) =
            read_ipc_file(&path).map_err(|source| ReportError::Table { table: name.to_string(), source })?;
        Ok(Some(Table { name: name.to_string(), batches }))
    }

    /// Call `f` with each record batch of table `name` in file order, as a one-batch [`Table`]
    /// holding only the columns `keep` accepts (decoding no other); `false` when the run did not
    /// write the table. Only one batch is in memory at a time.
    pub fn each_batch(
        &self,
        name: &str,
        keep: impl Fn(&str) -> bool,
        mut f: impl FnMut(&Table) -> Result<(), ReportError>,
    ) -> Result<bool, ReportError> {
        let path = self.dir.join(format!("{name}.arrow"));
        if !path.is_file() {
            return Ok(false);
        }
        let table_error = |source: MetricsError| ReportError::Table { table: name.to_string(), source };
        let open = || {
            File::open(&path)
                .map_err(|source| table_error(MetricsError::Io { path: path.display().to_string(), source }))
        };
        let schema = FileReader::try_new_buffered(open()?, None).map_err(|e| table_error(e.into()))?.schema();
        let projection = schema.fields().iter().enumerate().filter(|(_, c)| keep(c.name())).map(|(k, _)| k).collect();
        let reader = FileReader::try_new_buffered(open()?, Some(projection)).map_err(|e| table_error(e.into()))?;
        for batch in reader {
            let batch = batch.map_err(|e| table_error(e.into()))?;
            f(&Table::new(name, vec![batch]))?;
        }
        Ok(true)
    }
}

/// One table's record batches, read column by column.
#[derive(Debug)]
pub struct Table {
    name: String,
    batches: Vec<RecordBatch>,
}

impl Table {
    /// A table of `batches`, named `name` in error messages.
    pub fn new(name: &str, batches: Vec<RecordBatch>) -> Table {
        Table { name: name.to_string(), batches }
    }

    /// Rows over all batches.
    pub fn rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// Names of the columns (of the first batch; every batch of a file shares its schema).
    pub fn column_names(&self) -> Vec<String> {
        self.batches.first().map_or_else(Vec::new, |b| b.schema().fields().iter().map(|f| f.name().clone()).collect())
    }

    fn columns(&self, column: &str) -> Result<Vec<&ArrayRef>, ReportError> {
        self.batches
            .iter()
            .map(|b| b.column_by_name(column).ok_or_else(|| self.missing(column, "is missing")))
            .collect()
    }

    fn missing(&self, column: &str, why: &str) -> ReportError {
        ReportError::Column { table: self.name.clone(), column: column.to_string(), why: why.to_string() }
    }

    /// An unsigned integer column (u16, u32 or u64) as u64s.
    pub fn u64s(&self, column: &str) -> Result<Vec<u64>, ReportError> {
        let mut out = Vec::with_capacity(self.rows());
        for c in self.columns(column)? {
            let any = c.as_any();
            if let Some(a) = any.downcast_ref::<UInt64Array>() {
                out.extend(a.values().iter().copied());
            } else if let Some(a) = any.downcast_ref::<UInt32Array>() {
                out.extend(a.values().iter().map(|&v| u64::from(v)));
            } else if let Some(a) = any.downcast_ref::<UInt16Array>() {
                out.extend(a.values().iter().map(|&v| u64::from(v)));
            } else {
                return Err(self.missing(column, "is not an unsigned integer column"));
            }
        }
        Ok(out)
    }

    /// A float column.
    pub fn f64s(&self, column: &str) -> Result<Vec<f64>, ReportError> {
        let mut out = Vec::with_capacity(self.rows());
        for c in self.columns(column)? {
            let a = c.as_any().downcast_ref::<Float64Array>().ok_or_else(|| self.missing(column, "is not f64"))?;
            out.extend(a.values().iter().copied());
        }
        Ok(out)
    }

    /// A boolean column; `false` for every row when the column is absent.
    pub fn bools_or_false(&self, column: &str) -> Result<Vec<bool>, ReportError> {
        let mut out = Vec::with_capacity(self.rows());
        for b in &self.batches {
            match b.column_by_name(column) {
                None => out.extend(std::iter::repeat_n(false, b.num_rows())),
                Some(c) => {
                    let a = c
                        .as_any()
                        .downcast_ref::<BooleanArray>()
                        .ok_or_else(|| self.missing(column, "is not boolean"))?;
                    out.extend((0..a.len()).map(|k| a.value(k)));
                }
            }
        }
        Ok(out)
    }

    /// A string column, each distinct value numbered: the values in order of first appearance,
    /// and each row's number. Keeps a million rows of a few topic names small.
    pub fn codes(&self, column: &str) -> Result<(Vec<String>, Vec<u32>), ReportError> {
        let mut names: Vec<String> = Vec::new();
        let mut index = std::collections::HashMap::<String, u32>::new();
        let mut codes = Vec::with_capacity(self.rows());
        for c in self.columns(column)? {
            let a = c.as_any().downcast_ref::<StringArray>().ok_or_else(|| self.missing(column, "is not utf8"))?;
            for k in 0..a.len() {
                let v = a.value(k);
                let code = match index.get(v) {
                    Some(&code) => code,
                    None => {
                        let code = names.len() as u32;
                        names.push(v.to_string());
                        index.insert(v.to_string(), code);
                        code
                    }
                };
                codes.push(code);
            }
        }
        Ok((names, codes))
    }

    /// A string column's values.
    pub fn strings(&self, column: &str) -> Result<Vec<String>, ReportError> {
        let (names, codes) = self.codes(column)?;
        Ok(codes.iter().map(|&c| names[c as usize].clone()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use thermocline_models::metrics::{str_col, u32_col, u64_col};

    fn batch() -> RecordBatch {
        RecordBatch::try_from_iter([
            ("a", u64_col([1, 2, 3])),
            ("b", u32_col([4, 5, 6])),
            ("t", str_col(["x", "y", "x"])),
        ])
        .unwrap()
    }

    #[test]
    fn columns_read_across_batches_and_widen() {
        let t = Table::new("t", vec![batch(), batch()]);
        assert_eq!(t.rows(), 6);
        assert_eq!(t.u64s("a").unwrap(), [1, 2, 3, 1, 2, 3]);
        assert_eq!(t.u64s("b").unwrap(), [4, 5, 6, 4, 5, 6]);
        let (names, codes) = t.codes("t").unwrap();
        assert_eq!((names, codes), (vec!["x".to_string(), "y".to_string()], vec![0, 1, 0, 0, 1, 0]));
        assert_eq!(t.bools_or_false("hot").unwrap(), [false; 6]);
    }

    #[test]
    fn a_missing_or_mistyped_column_is_an_error_naming_it() {
        let t = Table::new("tab", vec![batch()]);
        let e = t.u64s("nope").unwrap_err().to_string();
        assert!(e.contains("tab") && e.contains("nope"), "{e}");
        let e = t.u64s("t").unwrap_err().to_string();
        assert!(e.contains("not an unsigned"), "{e}");
    }
}
