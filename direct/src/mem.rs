//! Reading and writing a stopped task's memory (`process_vm_readv` / `process_vm_writev`).

use std::io;

/// Read `len` bytes at `addr` of task `pid`.
pub fn read(pid: i32, addr: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    read_into(pid, addr, &mut buf)?;
    Ok(buf)
}

/// Fill `buf` from `addr` of task `pid`; a short read is an `EFAULT` error.
pub fn read_into(pid: i32, addr: u64, buf: &mut [u8]) -> io::Result<()> {
    if buf.is_empty() {
        return Ok(());
    }
    let local = libc::iovec { iov_base: buf.as_mut_ptr() as *mut libc::c_void, iov_len: buf.len() };
    let remote = libc::iovec { iov_base: addr as *mut libc::c_void, iov_len: buf.len() };
    // SAFETY: one local iovec over `buf`; the remote side is checked by the kernel.
    let n = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n as usize != buf.len() {
        return Err(io::Error::from_raw_os_error(libc::EFAULT));
    }
    Ok(())
}

/// A NUL-terminated string at `addr` of task `pid` (at most `max` bytes).
pub fn read_cstr(pid: i32, addr: u64, max: usize) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = addr;
    while out.len() < max {
        // Read up to the end of the page, so a string near an unmapped page still reads.
        let chunk = (4096 - (at % 4096) as usize).min(max - out.len());
        let mut buf = vec![0u8; chunk];
        read_into(pid, at, &mut buf)?;
        if let Some(end) = buf.iter().position(|&b| b == 0) {
            out.extend_from_slice(&buf[..end]);
            return Ok(out);
        }
        out.extend_from_slice(&buf);
        at += chunk as u64;
    }
    Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG))
}

/// Write `data` at `addr` of task `pid`; a short write is an `EFAULT` error.
pub fn write(pid: i32, addr: u64, data: &[u8]) -> io::Result<()> {
    if data.is_empty() {
        return Ok(());
    }
    let local = libc::iovec { iov_base: data.as_ptr() as *mut libc::c_void, iov_len: data.len() };
    let remote = libc::iovec { iov_base: addr as *mut libc::c_void, iov_len: data.len() };
    // SAFETY: one local iovec over `data`; the remote side is checked by the kernel.
    let n = unsafe { libc::process_vm_writev(pid, &local, 1, &remote, 1, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n as usize != data.len() {
        return Err(io::Error::from_raw_os_error(libc::EFAULT));
    }
    Ok(())
}

/// `IOV_MAX` (the kernel's `UIO_MAXIOV`): the most iovecs one call takes.
pub const IOV_MAX: usize = 1024;

/// The buffers of read or write call `nr` of task `pid` with arguments `a`: the one buffer of
/// `read`, `pread64`, `write` and `pwrite64`, else the iovec array of the vectored forms (see
/// [`read_iovecs`]).
#[allow(non_upper_case_globals)]
pub fn call_buffers(pid: i32, nr: i64, a: &[u64; 6]) -> Result<Vec<(u64, usize)>, i32> {
    use libc::{SYS_pread64, SYS_pwrite64, SYS_read, SYS_write};
    if matches!(nr, SYS_read | SYS_pread64 | SYS_write | SYS_pwrite64) {
        Ok(vec![(a[1], a[2] as usize)])
    } else {
        read_iovecs(pid, a[1], a[2] as usize)
    }
}

/// Read an array of `count` `(base, len)` iovecs at `addr` of task `pid`, checked as Linux's
/// `import_iovec` checks them: a count above [`IOV_MAX`] (a negative `int` count arrives as a
/// huge one) or a negative length fails with `EINVAL`, an unreadable array with `EFAULT`.
pub fn read_iovecs(pid: i32, addr: u64, count: usize) -> Result<Vec<(u64, usize)>, i32> {
    if count > IOV_MAX {
        return Err(libc::EINVAL);
    }
    let raw = read(pid, addr, count * 16).map_err(|_| libc::EFAULT)?;
    raw.chunks_exact(16)
        .map(|c| {
            let base = u64::from_ne_bytes(c[..8].try_into().unwrap_or([0; 8]));
            let len = u64::from_ne_bytes(c[8..].try_into().unwrap_or([0; 8]));
            if (len as i64) < 0 { Err(libc::EINVAL) } else { Ok((base, len as usize)) }
        })
        .collect()
}

/// The iovecs of a `msghdr` (`msg_iov`, `msg_iovlen`): as [`read_iovecs`], except that Linux's
/// `copy_msghdr_from_user` refuses more than [`IOV_MAX`] with `EMSGSIZE`.
pub fn read_msg_iovecs(pid: i32, iov: u64, iovlen: usize) -> Result<Vec<(u64, usize)>, i32> {
    if iovlen > IOV_MAX {
        return Err(libc::EMSGSIZE);
    }
    read_iovecs(pid, iov, iovlen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_our_own_memory() {
        let pid = std::process::id() as i32;
        let src = b"hello\0world".to_vec();
        assert_eq!(read(pid, src.as_ptr() as u64, 5).unwrap(), b"hello");
        assert_eq!(read_cstr(pid, src.as_ptr() as u64, 100).unwrap(), b"hello");
        let mut dst = vec![0u8; 4];
        write(pid, dst.as_mut_ptr() as u64, b"abcd").unwrap();
        assert_eq!(std::hint::black_box(&dst), b"abcd");
        assert!(read(pid, 8, 4).is_err());
    }

    #[test]
    fn iovec_counts_and_lengths_are_checked_as_linux_checks_them() {
        let pid = std::process::id() as i32;
        let iov: [u64; 4] = [0x1000, 5, 0x2000, u64::MAX];
        let at = iov.as_ptr() as u64;
        assert_eq!(read_iovecs(pid, at, 1), Ok(vec![(0x1000, 5)]));
        assert_eq!(read_iovecs(pid, at, 2), Err(libc::EINVAL), "a negative length");
        assert_eq!(read_iovecs(pid, at, usize::MAX), Err(libc::EINVAL), "a negative count");
        assert_eq!(read_iovecs(pid, at, IOV_MAX + 1), Err(libc::EINVAL));
        assert_eq!(read_iovecs(pid, 8, 1), Err(libc::EFAULT));
        assert_eq!(read_msg_iovecs(pid, at, IOV_MAX + 1), Err(libc::EMSGSIZE));
    }
}
