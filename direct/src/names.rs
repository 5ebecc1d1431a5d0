//! Name resolution without DNS: every managed program that opens `/etc/hosts` reads a hosts file
//! naming every simulated host, so `getaddrinfo("bob")` (glibc, Go's resolver, Node's libuv
//! thread pool) answers with bob's address inside the simulation.
//!
//! The file lives in a sealed memfd built once per engine; each `open` gets a fresh open file
//! description of it (through `/proc/self/fd`), with its own offset, like a real file.

use std::ffi::CString;
use std::fmt::Write as _;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use thermocline_models::directory::HostDirectory;

/// The contents of the simulated `/etc/hosts`: loopback names, then for every host of the
/// directory, in host-id order, `address name` with its IPv4 address and again with its IPv6
/// address ([`crate::inet6::v6_of`]), so `getaddrinfo` gives both an A and an AAAA answer.
pub fn hosts_text(directory: &HostDirectory) -> String {
    let mut text = String::from(
        "# Simulated hosts (thermocline)\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
    );
    for h in 0..directory.len() {
        let ip = HostDirectory::ip_of(h);
        let name = directory.name_of(h);
        let _ = writeln!(text, "{ip}\t{name}\n{}\t{name}", crate::inet6::v6_of(ip));
    }
    text
}

/// The hosts file of a run, ready to be opened by managed programs.
#[derive(Debug)]
pub struct HostsFile {
    memfd: OwnedFd,
}

impl HostsFile {
    /// Write `text` into a new sealed memfd.
    pub fn new(text: &str) -> io::Result<Self> {
        let name = CString::new("thermocline-hosts").expect("no NUL");
        // SAFETY: memfd_create with a valid name; the result is checked.
        let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor we own.
        let memfd = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut written = 0;
        let bytes = text.as_bytes();
        while written < bytes.len() {
            // SAFETY: writing from a live buffer to our own descriptor.
            let n = unsafe { libc::write(fd, bytes[written..].as_ptr().cast(), bytes.len() - written) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            written += n as usize;
        }
        let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
        // SAFETY: fcntl on our own descriptor.
        if unsafe { libc::fcntl(fd, libc::F_ADD_SEALS, seals) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self { memfd })
    }

    /// A new read-only open file description of the file, positioned at its start.
    pub fn open(&self) -> io::Result<OwnedFd> {
        let path = CString::new(format!("/proc/self/fd/{}", self.memfd.as_raw_fd())).expect("no NUL");
        // SAFETY: open of a path we built; the result is checked.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor we own.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn each_open_reads_the_whole_file_from_its_start() {
        let file = HostsFile::new("10.0.0.1\talice\n").unwrap();
        let mut a = std::fs::File::from(file.open().unwrap());
        let mut first = [0u8; 5];
        a.read_exact(&mut first).unwrap();
        let mut b = std::fs::File::from(file.open().unwrap());
        let mut all = String::new();
        b.read_to_string(&mut all).unwrap();
        assert_eq!(&first, b"10.0.");
        assert_eq!(all, "10.0.0.1\talice\n", "a second open has its own offset");
    }

    #[test]
    fn the_file_cannot_be_written_through_an_open() {
        let file = HostsFile::new("x").unwrap();
        let fd = file.open().unwrap();
        // SAFETY: write to our own descriptor.
        let n = unsafe { libc::write(fd.as_raw_fd(), b"y".as_ptr().cast(), 1) };
        assert_eq!(n, -1);
    }
}
