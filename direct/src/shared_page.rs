//! One anonymous shared page: what the supervisor and a child it forks both see between `fork`
//! and `exec` (the launch handshake, a namespace init's start-up status). Unmapped on drop; the
//! child keeps its own copy of the mapping.

use std::io;

/// A zeroed, page-sized `MAP_SHARED | MAP_ANONYMOUS` mapping.
pub(crate) struct SharedPage(*mut libc::c_void);

impl SharedPage {
    /// Map a new zeroed page.
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: an anonymous shared mapping, unmapped on drop.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED { Err(io::Error::last_os_error()) } else { Ok(SharedPage(p)) }
    }

    /// The page as a `T` made only of atomics (for which the zeroed page is a valid value).
    ///
    /// # Safety
    /// `T` must fit in a page, need at most page alignment, and be valid when all zero.
    pub(crate) unsafe fn as_ref<T>(&self) -> &T {
        // SAFETY: per the caller; the page lives as long as `self`.
        unsafe { &*(self.0 as *const T) }
    }
}

impl Drop for SharedPage {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping once.
        unsafe { libc::munmap(self.0, 4096) };
    }
}
