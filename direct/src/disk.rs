//! Per-host disk quota: a program that writes without end (`yes > file`) fills the quota, not the
//! machine's disk.
//!
//! Writes to regular files are already notified (`write`, `writev`, `pwrite64`, `pwritev`,
//! `pwritev2`: the supervisor must see writes to pipes and sockets), and the supervisor looks at
//! the descriptor before letting the kernel run the call, so the quota costs no extra
//! notification: for a regular file it computes by how much the write grows the file (from the
//! file's size, the write's offset — the file position, `O_APPEND`'s end, or `pwrite`'s
//! argument — and its length), and charges that growth to the host. What fits runs in the kernel;
//! a write that would cross the quota is cut short (the supervisor writes what fits itself, a
//! short write, as a nearly full disk gives) and the next one fails with `ENOSPC`, what Linux
//! gives on a full file system.
//!
//! What a host uses is the apparent size of the files in its folder (`hosts/<name>/`, where its
//! programs start and their `HOME` is), measured by walking the folder, plus the growth of files
//! elsewhere (`/tmp`), which is never given back. Between walks, growth inside the folder is
//! added to the last walk's figure; the folder is walked again only when a write would cross the
//! quota and the host may have freed space since the last walk: it has deleted, renamed or
//! truncated something (`unlink`, `unlinkat`, `rename*`, `truncate`, `ftruncate`, an open with
//! `O_TRUNC` — all notified for this). So deleting old files gives their room back, and a full
//! host that deletes nothing does not walk its folder on every failing write.
//!
//! Sizes are apparent sizes (`st_size`), not blocks, so the figure is the same on every file
//! system: a sparse file counts at its full length. The walk, and the growth of each write, only
//! depend on what the host's own programs wrote, so the outcome is deterministic. Files of pseudo
//! file systems (`/proc/<pid>/mem`, `/sys`, cgroups) take no room. Where a file is (its path,
//! its file system) is looked up once per file, until the host deletes or renames something. Not seen: data
//! written through `mmap`, `fallocate`, `copy_file_range`, `splice` or `sendfile` into a file
//! (they do not pass through a notified write); a folder walk counts such files at their size.
//! RLIMIT_FSIZE is not used: it limits one file, not a host, and its `SIGXFSZ` would kill
//! programs that preallocate large sparse files.

use std::collections::{HashMap, HashSet};
use std::os::fd::RawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A direct host's disk quota unless its processes give one (`disk_quota`): 1 GiB.
pub const DEFAULT_DISK_QUOTA: u64 = 1 << 30;

/// The supervisor's own file in a host folder, not counted: `--pcap`'s capture.
const PCAP_FILE: &str = "packets.pcap";

/// `RWF_APPEND` of `pwritev2`.
pub(crate) const RWF_APPEND: u64 = 0x10;

/// One host's disk use and quota.
#[derive(Debug)]
pub struct Disk {
    quota: u64,
    /// The host's folder, canonical (compared with the paths of written files).
    dir: PathBuf,
    /// Where the host's programs see that folder, if elsewhere (a host with a namespace sees it
    /// at `/run/thermocline/<host>`, and files opened there are named so).
    seen_at: Option<PathBuf>,
    /// Apparent size of the folder's files at the last walk.
    measured: u64,
    /// Growth of files in the folder since the last walk.
    inside: u64,
    /// Growth of files outside the folder, ever.
    outside: u64,
    /// Space may have been freed since the last walk (or there has been none).
    stale: bool,
    /// Where each written file (device, inode) is, so that a file's path and file system are
    /// looked up once. Cleared whenever files may have moved or been deleted (an inode number
    /// can then be reused).
    places: HashMap<(u64, u64), Place>,
}

/// Where a written file is, for the quota.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Place {
    /// In the host's folder.
    Inside,
    /// Elsewhere.
    Outside,
    /// On a pseudo file system: it takes no room.
    Pseudo,
}

impl Disk {
    /// The disk of a host whose folder is `dir`, with `quota` bytes.
    pub fn new(dir: PathBuf, quota: u64) -> Self {
        Disk { quota, dir, seen_at: None, measured: 0, inside: 0, outside: 0, stale: true, places: HashMap::new() }
    }

    /// The host's programs see its folder at `path` (its namespace's mount of the host folders).
    pub fn seen_at(&mut self, path: PathBuf) {
        self.seen_at = Some(path);
        self.places.clear();
    }

    /// Bytes in use, as far as the supervisor knows.
    pub fn used(&self) -> u64 {
        self.measured.saturating_add(self.inside).saturating_add(self.outside)
    }

    /// The quota, bytes.
    pub fn quota(&self) -> u64 {
        self.quota
    }

    /// The host deleted, renamed or truncated something: the next write that would cross the
    /// quota walks the folder again.
    pub fn freed(&mut self) {
        self.stale = true;
        self.places.clear();
    }

    /// Room for `growth` more bytes: all of it if it fits, else what is left, after walking the
    /// folder again if space may have been freed since the last walk.
    pub fn room(&mut self, growth: u64) -> u64 {
        if self.used().saturating_add(growth) > self.quota && self.stale {
            self.measured = folder_size(&self.dir);
            self.inside = 0;
            self.stale = false;
        }
        growth.min(self.quota.saturating_sub(self.used()))
    }

    /// A write grew a file by `growth` bytes; `inside`: the file is in the host's folder.
    pub fn record(&mut self, growth: u64, inside: bool) {
        let counter = if inside { &mut self.inside } else { &mut self.outside };
        *counter = counter.saturating_add(growth);
    }

    /// Whether the file at `path` is in the host's folder.
    fn holds(&self, path: &Path) -> bool {
        path.starts_with(&self.dir) || self.seen_at.as_ref().is_some_and(|d| path.starts_with(d))
    }

    /// Where the file behind our descriptor `fd`, inode `id` (device, inode), is.
    pub(crate) fn place(&mut self, fd: RawFd, id: (u64, u64)) -> Place {
        if let Some(&p) = self.places.get(&id) {
            return p;
        }
        let p = if pseudo_file(fd) {
            Place::Pseudo
        } else if fd_path(fd).is_some_and(|p| self.holds(&p)) {
            Place::Inside
        } else {
            Place::Outside
        };
        self.places.insert(id, p);
        p
    }
}

/// Apparent size of the regular files under `dir` (hard links once; symbolic links not followed;
/// the host's packet capture, written by the supervisor, left out).
pub fn folder_size(dir: &Path) -> u64 {
    let mut seen = HashSet::new();
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file()
                && !(d == dir && entry.file_name() == PCAP_FILE)
                && seen.insert((meta.dev(), meta.ino()))
            {
                total = total.saturating_add(meta.size());
            }
        }
    }
    total
}

/// File systems whose "regular files" hold no data (`/proc/<pid>/mem`, which the shim writes to
/// patch the vDSO, `/sys` and `cgroup` attributes, …): writes to them take no disk space.
const PSEUDO_FILE_SYSTEMS: [i64; 12] = [
    0x9fa0,      // proc
    0x6265_6572, // sysfs
    0x6462_6720, // debugfs
    0x7472_6163, // tracefs
    0x0027_e0eb, // cgroup
    0x6367_7270, // cgroup2
    0x7363_6673, // securityfs
    0xcafe_4a11, // bpf
    0x6265_6570, // configfs
    0x6165_676c, // pstore
    0xde5e_81e4, // efivarfs
    0x6573_5543, // fusectl
];

/// Whether our descriptor `fd` is a file of a pseudo file system.
fn pseudo_file(fd: RawFd) -> bool {
    // SAFETY: fstatfs fills the struct.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above, on our own descriptor.
    unsafe { libc::fstatfs(fd, &mut fs) == 0 && PSEUDO_FILE_SYSTEMS.contains(&(fs.f_type as i64)) }
}

/// The path of the file behind our descriptor `fd`.
fn fd_path(fd: RawFd) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/self/fd/{fd}")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("thermocline-disk-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::canonicalize(&dir).unwrap()
    }

    #[test]
    fn the_folder_counts_apparent_sizes_once_per_file_without_the_capture() {
        let dir = scratch("walk");
        std::fs::write(dir.join("a"), [0u8; 100]).unwrap();
        std::fs::write(dir.join("sub/b"), [0u8; 50]).unwrap();
        std::fs::hard_link(dir.join("a"), dir.join("sub/a-again")).unwrap();
        std::os::unix::fs::symlink(dir.join("a"), dir.join("link")).unwrap();
        std::fs::write(dir.join(PCAP_FILE), [0u8; 1000]).unwrap();
        let sparse = std::fs::File::create(dir.join("sparse")).unwrap();
        sparse.set_len(4096).unwrap();
        assert_eq!(folder_size(&dir), 100 + 50 + 4096);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn writes_fill_the_quota_then_fail_and_deleting_gives_room_back() {
        let dir = scratch("quota");
        let mut d = Disk::new(dir.clone(), 1000);
        assert_eq!(d.room(600), 600);
        d.record(600, true);
        std::fs::write(dir.join("f"), [0u8; 600]).unwrap();
        assert_eq!(d.room(600), 400, "the walk finds the 600 bytes: 400 left");
        d.record(400, true);
        std::fs::write(dir.join("f"), [0u8; 1000]).unwrap();
        assert_eq!(d.room(1), 0, "full");
        std::fs::remove_file(dir.join("f")).unwrap();
        assert_eq!(d.room(1), 0, "nothing said space was freed: no walk");
        d.freed();
        assert_eq!(d.room(1), 1, "a walk after a deletion finds the room");
        assert_eq!(d.used(), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn files_are_placed_inside_outside_or_on_a_pseudo_file_system_once() {
        use std::os::fd::AsRawFd;
        let dir = scratch("place");
        let elsewhere = scratch("place-elsewhere");
        let mut d = Disk::new(dir.clone(), 1000);
        let mem = std::fs::File::open("/proc/self/mem").unwrap();
        let inside = std::fs::File::create(dir.join("sub/f")).unwrap();
        let outside = std::fs::File::create(elsewhere.join("f")).unwrap();
        assert_eq!(d.place(mem.as_raw_fd(), (1, 1)), Place::Pseudo);
        assert_eq!(d.place(inside.as_raw_fd(), (1, 2)), Place::Inside);
        assert_eq!(d.place(outside.as_raw_fd(), (1, 3)), Place::Outside);
        assert_eq!(d.place(outside.as_raw_fd(), (1, 2)), Place::Inside, "looked up once per inode");
        d.freed();
        assert_eq!(d.place(outside.as_raw_fd(), (1, 2)), Place::Outside, "until something may have moved");
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&elsewhere);
    }

    #[test]
    fn growth_outside_the_folder_is_never_given_back() {
        let dir = scratch("outside");
        let mut d = Disk::new(dir.clone(), 1000);
        assert!(d.holds(&dir.join("sub/x")) && !d.holds(Path::new("/tmp/x")));
        assert!(!d.holds(Path::new("/run/thermocline/h/x")));
        d.seen_at(PathBuf::from("/run/thermocline/h"));
        assert!(d.holds(Path::new("/run/thermocline/h/x")), "where the host's programs see the folder");
        assert!(d.holds(&dir.join("x")) && !d.holds(Path::new("/run/thermocline/other/x")));
        d.record(900, false);
        d.freed();
        assert_eq!(d.room(200), 100, "the walk finds an empty folder; the 900 bytes elsewhere stay");
        assert_eq!(d.quota(), 1000);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
