//! A hint to the processor: start loading a cache line an event will need. Engines over many
//! identities are bound by memory latency; they prefetch the state of events a few places ahead
//! in their queue so that its loads overlap the work of the events before it.

/// Ask the processor to start loading the cache line holding `x`: only a hint, with no effect
/// on results.
#[inline(always)]
pub(crate) fn prefetch<T>(x: &T) {
    prefetch_address((x as *const T).cast());
}

/// [`prefetch`] every cache line that `x` spans.
#[inline(always)]
pub(crate) fn prefetch_all<T>(x: &T) {
    let start = (x as *const T).cast::<u8>();
    let mut offset = 0;
    while offset < std::mem::size_of::<T>() {
        prefetch_address(start.wrapping_add(offset));
        offset += 64;
    }
}

#[inline(always)]
fn prefetch_address(p: *const u8) {
    // SAFETY: a prefetch never faults nor changes memory, whatever the address; SSE is part of
    // every x86-64.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
