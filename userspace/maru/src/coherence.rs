//! CPU cache maintenance in userspace, for memory shared between hosts
//! without coherent caches (CXL 2.0-style sharing) — now an option.
//!
//! The marufs kernel module does the data plane's cache maintenance itself
//! (`Documentation/design/kernel.md`, "Data-plane coherence"): at publish it
//! writes back every unit a writable mapping may have dirtied, and before a
//! host first reads or maps a unit of a key it invalidates the unit unless
//! it already did for that very key. So by default the library does none
//! ([`Coherence::Kernel`]). [`Coherence::Flush`] keeps the library's own
//! maintenance — the writer writes back every line before publishing, the
//! reader evicts a key's lines when it first maps it — for a module built
//! before the kernel did it, or for a pool mounted `coherent` on memory that
//! is not; it costs one `clflushopt`/`clflush` per 64 bytes of a key, once.

/// How the library keeps CPU caches and shared memory consistent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Coherence {
    /// The kernel does it (marufs mounted without `coherent`, the default):
    /// no maintenance in the library.
    #[default]
    Kernel,
    /// The library also flushes written lines before publishing and evicts
    /// a key's lines when it first maps it.
    Flush,
    /// The platform keeps caches coherent (one host, or hardware-coherent
    /// sharing): no cache maintenance anywhere.
    Hardware,
}

/// Cache line size assumed for maintenance (x86-64 and arm64 servers).
const LINE: usize = 64;

/// Writes back and evicts the cache lines covering `ptr..ptr+len`, then
/// orders the flushes before later stores (the publish).
pub(crate) fn write_back(ptr: *const u8, len: usize) {
    flush_range(ptr, len);
}

/// Evicts the cache lines covering `ptr..ptr+len` so that the next loads
/// come from memory.
pub(crate) fn invalidate(ptr: *const u8, len: usize) {
    // On x86 there is no user-mode invalidate without write-back: clflush
    // does both (a clean line is simply dropped).
    flush_range(ptr, len);
}

#[cfg(target_arch = "x86_64")]
fn flush_range(ptr: *const u8, len: usize) {
    use std::sync::OnceLock;
    static OPT: OnceLock<bool> = OnceLock::new();
    if len == 0 {
        return;
    }
    let opt = *OPT.get_or_init(|| {
        // CPUID.(EAX=7,ECX=0):EBX bit 23 = CLFLUSHOPT.
        // SAFETY: cpuid is available on every x86-64 CPU (the intrinsic is
        // safe in newer Rust, unsafe in 1.85).
        #[allow(unused_unsafe)]
        let r = unsafe { core::arch::x86_64::__cpuid_count(7, 0) };
        r.ebx & (1 << 23) != 0
    });
    let start = ptr as usize & !(LINE - 1);
    let end = ptr as usize + len;
    let mut p = start;
    while p < end {
        // SAFETY: `p` lies within a live mapping owned by the caller (rounded
        // down to its line, which is in the same page); clflush/clflushopt
        // only need a mapped address and do not change memory contents.
        unsafe {
            if opt {
                core::arch::asm!("clflushopt [{0}]", in(reg) p, options(nostack, preserves_flags));
            } else {
                core::arch::x86_64::_mm_clflush(p as *const u8);
            }
        }
        p += LINE;
    }
    // clflushopt is ordered only by fences.
    // SAFETY: a fence has no preconditions.
    unsafe { core::arch::x86_64::_mm_mfence() };
}

#[cfg(target_arch = "aarch64")]
fn flush_range(ptr: *const u8, len: usize) {
    if len == 0 {
        return;
    }
    let start = ptr as usize & !(LINE - 1);
    let end = ptr as usize + len;
    let mut p = start;
    while p < end {
        // SAFETY: `p` is within a live mapping; DC CIVAC (clean and invalidate
        // to the point of coherence) is permitted at EL0 on Linux.
        unsafe { core::arch::asm!("dc civac, {0}", in(reg) p, options(nostack, preserves_flags)) };
        p += LINE;
    }
    // SAFETY: a barrier has no preconditions.
    unsafe { core::arch::asm!("dsb sy", options(nostack, preserves_flags)) };
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn flush_range(_ptr: *const u8, _len: usize) {
    std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
}
