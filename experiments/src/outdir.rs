//! The output folder of a run: complete or absent.
//!
//! A run writes into a hidden staging folder beside its target (`.<name>.partial`), locked against
//! concurrent runs by `.<name>.lock`, and only a run that succeeded is swapped into place, in one
//! atomic `rename` (`RENAME_EXCHANGE` when a previous run is replaced). A failed run's files are
//! kept apart as `<name>.failed` (or removed when it wrote none), so the target folder only ever
//! holds one whole run. The target is checked before anything is simulated: a folder holding
//! something other than a Thermocline run is refused unless forced, and a folder holding the
//! spec being run, or the working directory, is always refused.
//!
//! The staging path depends on the target path only, so programs on direct hosts see the same
//! working directories on every rerun into the same folder.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// The file that marks a folder as a Thermocline run (written first into every staging folder).
pub const MARKER: &str = ".thermocline-run";

/// Why an output folder cannot be used or written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// A file operation failed.
    #[error("{path}: {what}: {source}")]
    Io {
        /// The file or folder.
        path: String,
        /// What was being done.
        what: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The folder is in use by another run.
    #[error("{0} is being written by another thermocline run; wait for it or choose another --out")]
    Busy(String),
    /// The folder holds something that a run must not replace.
    #[error("{path}: {why}")]
    Refused {
        /// The folder.
        path: String,
        /// Why.
        why: String,
    },
}

fn io_err(path: &Path, what: &'static str) -> impl FnOnce(io::Error) -> OutputError + use<> {
    let path = path.display().to_string();
    move |source| OutputError::Io { path, what, source }
}

/// A locked staging folder for one run's outputs, and the target it will replace.
#[derive(Debug)]
pub struct OutputDir {
    target: PathBuf,
    staging: PathBuf,
    /// Held for the life of the run: `flock` on the lock file.
    _lock: File,
}

/// What happened to a failed run's files.
#[derive(Debug, PartialEq, Eq)]
pub enum Abandoned {
    /// Kept for inspection in this folder.
    Kept(PathBuf),
    /// The run wrote nothing worth keeping; the staging folder was removed.
    Removed,
}

/// `name` with `prefix` and `suffix` around it, beside `path`.
fn sibling(path: &Path, prefix: &str, suffix: &str) -> PathBuf {
    let name = path.file_name().map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!("{prefix}{name}{suffix}"))
}

/// The staging folder of `target` (an absolute, normalised path): what every process of a run
/// computes alike, so MPI ranks other than 0 write into the folder that rank 0 prepared.
pub fn staging_path(target: &Path) -> PathBuf {
    sibling(target, ".", ".partial")
}

/// Whether `dir` may be replaced by a run: it is empty or holds a Thermocline run.
fn holds_a_run(dir: &Path) -> Result<bool, OutputError> {
    let mut entries = std::fs::read_dir(dir).map_err(io_err(dir, "reading the output folder"))?;
    if entries.next().is_none() {
        return Ok(true);
    }
    if dir.join(MARKER).is_file() {
        return Ok(true);
    }
    // Runs written before the marker existed: a summary with a digest and a version.
    let summary = std::fs::read_to_string(dir.join("summary.json")).unwrap_or_default();
    let parsed: Option<serde_json::Value> = serde_json::from_str(&summary).ok();
    Ok(parsed.is_some_and(|v| v.get("digest").is_some() && v.get("version").is_some()))
}

/// Refuse a target that contains `protected` (the spec file, the working directory).
fn check_not_containing(target: &Path, protected: &Path, what: &str) -> Result<(), OutputError> {
    let protected = protected.canonicalize().unwrap_or_else(|_| protected.to_path_buf());
    let target_real = target.canonicalize().unwrap_or_else(|_| target.to_path_buf());
    if protected.starts_with(&target_real) {
        return Err(OutputError::Refused {
            path: target.display().to_string(),
            why: format!("the output folder would replace {what} ({}); choose another --out", protected.display()),
        });
    }
    Ok(())
}

impl OutputDir {
    /// Check `target`, take its lock and make an empty staging folder. `spec` is the spec file
    /// being run (never inside the target); `force` allows replacing a folder that does not hold
    /// a Thermocline run.
    pub fn prepare(target: &Path, spec: Option<&Path>, force: bool) -> Result<OutputDir, OutputError> {
        let target = resolve(target)?;
        if target.parent().is_none() {
            let why = "the root folder cannot be an output folder".to_string();
            return Err(OutputError::Refused { path: target.display().to_string(), why });
        }
        if let Some(spec) = spec {
            check_not_containing(&target, spec, "the spec file being run")?;
        }
        if let Ok(cwd) = std::env::current_dir() {
            check_not_containing(&target, &cwd, "the current working directory")?;
        }
        let parent = target.parent().expect("checked above");
        std::fs::create_dir_all(parent).map_err(io_err(parent, "creating the output folder's parent"))?;
        let lock_path = sibling(&target, ".", ".lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path, "opening the output lock"))?;
        // SAFETY: flock on a descriptor we own; no memory is passed.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Err(OutputError::Busy(target.display().to_string()));
            }
            return Err(io_err(&lock_path, "locking the output folder")(e));
        }
        match std::fs::symlink_metadata(&target) {
            Ok(m) if !m.is_dir() => {
                let why = "exists and is not a folder".to_string();
                return Err(OutputError::Refused { path: target.display().to_string(), why });
            }
            Ok(_) if !force && !holds_a_run(&target)? => {
                let why = "holds files that are not a Thermocline run; choose another --out, or pass --force \
                           to replace the folder and everything in it"
                    .to_string();
                return Err(OutputError::Refused { path: target.display().to_string(), why });
            }
            _ => {}
        }
        let staging = staging_path(&target);
        // A staging folder left by a killed run: its lock is ours now, so nobody is writing it.
        remove_if_present(&staging)?;
        std::fs::create_dir(&staging).map_err(io_err(&staging, "creating the staging folder"))?;
        write_synced(&staging.join(MARKER), format!("thermocline {}\n", env!("CARGO_PKG_VERSION")).as_bytes())?;
        Ok(OutputDir { target, staging, _lock: lock })
    }

    /// Where the run writes: the staging folder.
    pub fn staging(&self) -> &Path {
        &self.staging
    }

    /// Where a successful run ends up.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Put the finished run in place of the target, atomically, and remove what it replaced.
    pub fn commit(self) -> Result<PathBuf, OutputError> {
        sync_dir(&self.staging)?;
        if std::fs::symlink_metadata(&self.target).is_ok() {
            exchange(&self.staging, &self.target)?;
            // The staging path now holds the previous run.
            remove_if_present(&self.staging)?;
        } else {
            std::fs::rename(&self.staging, &self.target).map_err(io_err(&self.target, "moving the run into place"))?;
        }
        if let Some(parent) = self.target.parent() {
            sync_dir(parent)?;
        }
        Ok(self.target.clone())
    }

    /// The run failed: keep what it wrote as `<name>.failed` (replacing an earlier one), or remove
    /// the staging folder if it holds nothing but the marker. The target is left as it was.
    pub fn abandon(self) -> Result<Abandoned, OutputError> {
        let entries = std::fs::read_dir(&self.staging).map_err(io_err(&self.staging, "reading the staging folder"))?;
        let wrote = entries.filter_map(Result::ok).any(|e| e.file_name() != MARKER);
        if !wrote {
            remove_if_present(&self.staging)?;
            return Ok(Abandoned::Removed);
        }
        let failed = sibling(&self.target, "", ".failed");
        remove_if_present(&failed)?;
        std::fs::rename(&self.staging, &failed).map_err(io_err(&failed, "keeping the failed run's files"))?;
        Ok(Abandoned::Kept(failed))
    }
}

/// The absolute, normalised form of an output folder's path: how a run names its target.
pub fn resolve(target: &Path) -> Result<PathBuf, OutputError> {
    let absolute = std::path::absolute(target).map_err(io_err(target, "resolving the output folder"))?;
    Ok(normalise(&absolute))
}

/// `path` without `.` and `..` components (lexically), so `out/.` and `out` are one target.
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn remove_if_present(path: &Path) -> Result<(), OutputError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path).map_err(io_err(path, "removing")),
        Ok(_) => std::fs::remove_file(path).map_err(io_err(path, "removing")),
        Err(_) => Ok(()),
    }
}

/// Write `bytes` to a new file at `path` and flush them to disk.
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), OutputError> {
    let mut f = File::create(path).map_err(io_err(path, "creating"))?;
    f.write_all(bytes).map_err(io_err(path, "writing"))?;
    f.sync_all().map_err(io_err(path, "writing"))
}

/// Write `bytes` to `path` atomically: a temporary file beside it, synced, then renamed over it.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), OutputError> {
    let tmp = sibling(path, ".", ".tmp");
    write_synced(&tmp, bytes)?;
    std::fs::rename(&tmp, path).map_err(io_err(path, "renaming into place"))
}

fn sync_dir(dir: &Path) -> Result<(), OutputError> {
    File::open(dir).and_then(|f| f.sync_all()).map_err(io_err(dir, "syncing the folder"))
}

/// Swap two paths atomically (`renameat2(RENAME_EXCHANGE)`); where the file system cannot, move
/// the old one aside first.
fn exchange(a: &Path, b: &Path) -> Result<(), OutputError> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let ca = CString::new(a.as_os_str().as_bytes()).map_err(|e| io_err(a, "naming")(e.into()))?;
    let cb = CString::new(b.as_os_str().as_bytes()).map_err(|e| io_err(b, "naming")(e.into()))?;
    // SAFETY: two valid NUL-terminated paths; the call reads them only.
    let rc =
        unsafe { libc::renameat2(libc::AT_FDCWD, ca.as_ptr(), libc::AT_FDCWD, cb.as_ptr(), libc::RENAME_EXCHANGE) };
    if rc == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if !matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOSYS)) {
        return Err(io_err(b, "replacing the previous run")(e));
    }
    let aside = sibling(b, ".", ".old");
    remove_if_present(&aside)?;
    std::fs::rename(b, &aside).map_err(io_err(b, "moving the previous run aside"))?;
    std::fs::rename(a, b).map_err(io_err(b, "moving the run into place"))?;
    std::fs::rename(&aside, a).map_err(io_err(a, "moving the previous run aside"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("thermocline-outdir-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_committed_run_replaces_the_previous_one_whole() {
        let root = scratch("commit");
        let target = root.join("out");
        let first = OutputDir::prepare(&target, None, false).unwrap();
        std::fs::write(first.staging().join("a"), "1").unwrap();
        first.commit().unwrap();
        let second = OutputDir::prepare(&target, None, false).unwrap();
        assert!(!second.staging().join("a").exists(), "staging starts empty");
        std::fs::write(second.staging().join("b"), "2").unwrap();
        second.commit().unwrap();
        assert!(!target.join("a").exists() && target.join("b").exists() && target.join(MARKER).exists());
        let left: Vec<_> = std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left.len(), 2, "only the run and its lock file remain: {left:?}");
    }

    #[test]
    fn a_failed_run_leaves_the_target_untouched() {
        let root = scratch("abandon");
        let target = root.join("out");
        let first = OutputDir::prepare(&target, None, false).unwrap();
        std::fs::write(first.staging().join("summary.json"), "{}").unwrap();
        first.commit().unwrap();
        let second = OutputDir::prepare(&target, None, false).unwrap();
        std::fs::write(second.staging().join("log"), "x").unwrap();
        assert_eq!(second.abandon().unwrap(), Abandoned::Kept(root.join("out.failed")));
        assert!(target.join("summary.json").exists());
        assert!(root.join("out.failed/log").exists());
        let third = OutputDir::prepare(&target, None, false).unwrap();
        assert_eq!(third.abandon().unwrap(), Abandoned::Removed);
        assert!(!root.join(".out.partial").exists());
    }

    #[test]
    fn a_locked_target_is_busy() {
        let root = scratch("busy");
        let first = OutputDir::prepare(&root.join("out"), None, false).unwrap();
        let err = OutputDir::prepare(&root.join("out"), None, false).unwrap_err();
        assert!(matches!(err, OutputError::Busy(_)), "{err}");
        drop(first);
        OutputDir::prepare(&root.join("out"), None, false).unwrap();
    }

    #[test]
    fn foreign_folders_the_spec_and_the_working_directory_are_refused() {
        let root = scratch("refuse");
        let mine = root.join("mine");
        std::fs::create_dir_all(&mine).unwrap();
        std::fs::write(mine.join("notes.txt"), "precious").unwrap();
        let err = OutputDir::prepare(&mine, None, false).unwrap_err().to_string();
        assert!(err.contains("not a Thermocline run") && err.contains("--force"), "{err}");
        OutputDir::prepare(&mine, None, true).unwrap();
        let spec = mine.join("spec.toml");
        std::fs::write(&spec, "").unwrap();
        let err = OutputDir::prepare(&mine, Some(&spec), true).unwrap_err().to_string();
        assert!(err.contains("spec file"), "{err}");
        let cwd = std::env::current_dir().unwrap();
        let err = OutputDir::prepare(&cwd, None, true).unwrap_err().to_string();
        assert!(err.contains("working directory"), "{err}");
        std::fs::write(root.join("file"), "").unwrap();
        let err = OutputDir::prepare(&root.join("file"), None, true).unwrap_err().to_string();
        assert!(err.contains("not a folder"), "{err}");
    }

    #[test]
    fn targets_are_normalised() {
        assert_eq!(normalise(Path::new("/a/./b/../c/.")), PathBuf::from("/a/c"));
    }
}
