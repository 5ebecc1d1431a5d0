//! The process's memory allocator: the system allocator, asking the kernel to back large
//! allocations with transparent huge pages.
//!
//! A surrogate shard of half a million identities holds about 1.8 GB of per-identity state and
//! touches it at random, a few cache lines per event. With 4-KiB pages nearly every one of those
//! touches also misses the TLB, and inside a virtual machine a TLB miss walks two levels of page
//! tables. 2-MiB pages cover the same state with 512 times fewer entries. Machines that leave
//! transparent huge pages to `madvise` (Debian's default) give them only to memory that asks,
//! which is what this allocator does for every allocation of [`HUGE_MIN_BYTES`] or more: it maps
//! such blocks itself, aligned to 2 MiB, so that all of a block but its last partial huge page can
//! be huge. The advice is only a hint: if the kernel says no, or has huge pages off, nothing
//! changes but speed.

use std::alloc::{GlobalAlloc, Layout, System};

/// Allocations at least this large get their own mapping on huge pages (one huge page is the
/// least that can gain anything).
pub const HUGE_MIN_BYTES: usize = HUGE_PAGE;

/// The size of a transparent huge page on x86-64.
const HUGE_PAGE: usize = 2 << 20;

/// [`System`] for small blocks; large ones are anonymous mappings of their own, aligned to 2 MiB
/// and advised `MADV_HUGEPAGE` before anything touches them.
pub struct HugePageAlloc;

impl HugePageAlloc {
    /// Whether a block of `layout` is one of ours (decided by its layout alone, which `dealloc`
    /// and `realloc` are given too).
    fn ours(size: usize, align: usize) -> bool {
        size >= HUGE_MIN_BYTES && align <= HUGE_PAGE
    }

    /// The mapping length of a block of `size` bytes: whole 4-KiB pages.
    fn mapped(size: usize) -> usize {
        size.next_multiple_of(4096)
    }

    /// A fresh, zeroed, 2-MiB-aligned mapping of `size` bytes advised to use huge pages; null if
    /// the kernel has no memory for it.
    fn map(size: usize) -> *mut u8 {
        let len = Self::mapped(size);
        let Some(span) = len.checked_add(HUGE_PAGE) else { return std::ptr::null_mut() };
        // SAFETY: a new private anonymous mapping; nothing else refers to it.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                span,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return std::ptr::null_mut();
        }
        let base = base as usize;
        let start = base.next_multiple_of(HUGE_PAGE);
        // SAFETY: the head and tail trimmed off lie inside the mapping just made and are not
        // handed out; the advice changes no contents, and if refused leaves 4-KiB pages.
        unsafe {
            if start > base {
                libc::munmap(base as *mut libc::c_void, start - base);
            }
            let tail = start + len;
            if base + span > tail {
                libc::munmap(tail as *mut libc::c_void, base + span - tail);
            }
            libc::madvise(start as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
        }
        start as *mut u8
    }
}

// SAFETY: small blocks are `System`'s, unchanged. Large blocks are whole mappings of at least the
// asked size, aligned to 2 MiB (so to any alignment up to it), zeroed by the kernel, and freed by
// unmapping exactly what `map` kept; which kind a block is follows from its layout alone.
unsafe impl GlobalAlloc for HugePageAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if Self::ours(layout.size(), layout.align()) {
            return Self::map(layout.size());
        }
        // SAFETY: the caller's contract is passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if Self::ours(layout.size(), layout.align()) {
            return Self::map(layout.size());
        }
        // SAFETY: the caller's contract is passed on.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if Self::ours(layout.size(), layout.align()) {
            // SAFETY: `ptr` came from `map` with this size; the caller gives it up.
            unsafe { libc::munmap(ptr as *mut libc::c_void, Self::mapped(layout.size())) };
            return;
        }
        // SAFETY: the caller's contract is passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let (old_ours, new_ours) = (Self::ours(layout.size(), layout.align()), Self::ours(new_size, layout.align()));
        if !old_ours && !new_ours {
            // SAFETY: the caller's contract is passed on.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        if old_ours && new_ours && Self::mapped(new_size) == Self::mapped(layout.size()) {
            return ptr;
        }
        // A move into a fresh block: growing a mapping in place would keep the pages already
        // touched as 4-KiB pages.
        // SAFETY: the new layout is valid (the caller guarantees `new_size` with this alignment).
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: as above.
        let q = unsafe { self.alloc(new_layout) };
        if !q.is_null() {
            // SAFETY: both blocks hold at least the bytes copied and do not overlap; the old one
            // is then given up, as the caller's contract says.
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, q, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_blocks_are_aligned_zeroed_and_keep_their_contents_when_they_grow_and_shrink() {
        let a = HugePageAlloc;
        let layout = Layout::from_size_align(HUGE_MIN_BYTES * 2 + 100, 64).unwrap();
        // SAFETY: every layout is non-zero; each block is used within its size and freed once.
        unsafe {
            let p = a.alloc_zeroed(layout);
            assert!(!p.is_null());
            assert_eq!(p as usize % HUGE_PAGE, 0);
            assert!(std::slice::from_raw_parts(p, layout.size()).iter().all(|&b| b == 0));
            p.add(12345).write(7);
            p.add(layout.size() - 1).write(9);
            let grown = HUGE_MIN_BYTES * 3;
            let q = a.realloc(p, layout, grown);
            assert!(!q.is_null());
            assert_eq!((q.add(12345).read(), q.add(layout.size() - 1).read()), (7, 9));
            // Down to a small block: the system allocator's again.
            let small = Layout::from_size_align(grown, 64).unwrap();
            let r = a.realloc(q, small, 20_000);
            assert!(!r.is_null());
            assert_eq!(r.add(12345).read(), 7);
            a.dealloc(r, Layout::from_size_align(20_000, 64).unwrap());
        }
    }
}
