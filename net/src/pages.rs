//! Giving the memory of buffer regions that hold nothing back to the kernel.
//!
//! A TCP connection's send and receive buffers are fixed rings sized for the window (256 KiB
//! each way for a boundary identity), but Linux keeps only what is in flight or unread. An
//! anonymous page costs memory only once written, so a ring costs what has passed through it
//! since its pages were last returned: [`release`] returns the whole pages of a region whose
//! contents no longer matter, and the next write to them finds fresh zeroed pages.
//!
//! Such a ring must stay on small pages ([`keep_small`]): a process whose allocator asks for
//! transparent huge pages for large blocks (the `thermocline` binary's does, for surrogate
//! state) would otherwise back a multi-MiB ring with 2-MiB pages, and every write after a release
//! would fault in and zero a whole huge page for a few KiB of data.

/// The page size assumed (x86-64 and aarch64 Linux default). A larger real page only makes
/// [`release`] skip more of a region; a smaller one cannot occur on those targets.
pub const PAGE: usize = 4096;

/// Returns the whole pages inside `buf` to the kernel; their bytes read as zeros afterwards (or
/// keep their values, where the kernel declines). Partial pages at either end are left alone,
/// as they may hold other data. Regions of less than a page cost nothing.
pub fn release(buf: &mut [u8]) {
    let start = (buf.as_mut_ptr() as usize).next_multiple_of(PAGE);
    let end = (buf.as_mut_ptr() as usize + buf.len()) / PAGE * PAGE;
    if end > start {
        release_range(start, end);
    }
}

/// Keeps `buf` on small pages: advises the kernel never to back it with transparent huge
/// pages (`MADV_NOHUGEPAGE` on the whole pages inside it), whatever its allocator asked for.
/// Meant for buffers that [`release`] pages of as they go.
pub fn keep_small(buf: &mut [u8]) {
    let start = (buf.as_mut_ptr() as usize).next_multiple_of(PAGE);
    let end = (buf.as_mut_ptr() as usize + buf.len()) / PAGE * PAGE;
    if end > start {
        #[cfg(target_os = "linux")]
        // SAFETY: the caller holds `&mut` to every byte of `[start, end)`; the advice changes
        // only how the kernel backs those pages, never their contents.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_NOHUGEPAGE);
        }
    }
}

/// Returns the whole pages inside the addresses `[start, end)` to the kernel, as [`release`].
///
/// # Safety
///
/// `[start, end)` must lie inside one live allocation that the caller has exclusive access to,
/// and its contents must be free space that nothing reads before writing it again.
pub unsafe fn release_span(start: usize, end: usize) {
    let (start, end) = (start.next_multiple_of(PAGE), end / PAGE * PAGE);
    if end > start {
        release_range(start, end);
    }
}

/// Returns the pages `[start, end)` (page-aligned addresses) to the kernel.
fn release_range(start: usize, end: usize) {
    #[cfg(target_os = "linux")]
    // SAFETY: the caller holds `&mut` to every byte of `[start, end)` (see `release`), so
    // nothing else reads them; `MADV_DONTNEED` on private anonymous memory only replaces their
    // contents with zeros, which every caller treats as free space.
    unsafe {
        libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (start, end);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn released_pages_read_as_zeros_and_bytes_outside_keep_theirs() {
        let mut v = vec![7u8; 5 * PAGE];
        let last = v.len() - 1;
        release(&mut v[1..last]);
        let first_whole = (v.as_ptr() as usize + 1).next_multiple_of(PAGE) - v.as_ptr() as usize;
        assert!(v[first_whole..first_whole + PAGE].iter().all(|&b| b == 0), "a whole page inside is returned");
        assert_eq!((v[0], v[last]), (7, 7), "bytes outside the region are untouched");
    }

    #[test]
    fn a_buffer_kept_small_is_never_on_huge_pages() {
        // A 2-MiB-aligned, huge-page-advised mapping, as a huge-page allocator hands out.
        let len = 8 << 20;
        // SAFETY: a new private anonymous mapping, unmapped at the end of the test.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED);
        let aligned = (base as usize).next_multiple_of(2 << 20);
        // SAFETY: `[aligned, aligned + 4 MiB)` lies inside the mapping.
        let buf = unsafe { std::slice::from_raw_parts_mut(aligned as *mut u8, 4 << 20) };
        // SAFETY: advice on memory of this test's own mapping.
        unsafe { libc::madvise(aligned as *mut libc::c_void, buf.len(), libc::MADV_HUGEPAGE) };
        keep_small(buf);
        buf.iter_mut().step_by(PAGE).for_each(|b| *b = 1);
        let huge = anon_huge_kib(aligned);
        // SAFETY: the mapping made above, unmapped once.
        unsafe { libc::munmap(base, len) };
        assert_eq!(huge, Some(0), "no huge page backs the buffer");
    }

    /// `AnonHugePages` of the mapping holding `addr`, from `/proc/self/smaps` (None if absent).
    fn anon_huge_kib(addr: usize) -> Option<u64> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
        let mut inside = false;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ')
                && let Some((a, b)) = range.split_once('-')
                && let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
            {
                inside = (a..b).contains(&addr);
            } else if inside && let Some(v) = line.strip_prefix("AnonHugePages:") {
                return v.trim().trim_end_matches("kB").trim().parse().ok();
            }
        }
        None
    }

    #[test]
    fn a_region_shorter_than_a_page_is_left_alone() {
        let mut v = vec![3u8; PAGE - 1];
        release(&mut v);
        assert!(v.iter().all(|&b| b == 3));
    }
}
