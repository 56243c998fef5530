//! Read-only mappings of published keys.

use std::fmt;
use std::ops::Deref;
use std::os::fd::BorrowedFd;
use std::ptr::NonNull;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use crate::coherence::{self, Coherence};
use crate::counters::AtomicCounters;
use crate::sys;

/// One `mmap` of a key (shared by every [`Mapping`] clone and the cache).
pub(crate) struct MapInner {
    ptr: NonNull<u8>,
    len: usize,
    ino: u64,
    counters: Arc<AtomicCounters>,
}

// SAFETY: the mapping is read-only and of an immutable (published) key; it is
// unmapped only when the last owner drops it. Sharing `&[u8]` views of it
// across threads is sound.
unsafe impl Send for MapInner {}
// SAFETY: as above: only shared, read-only access is ever handed out.
unsafe impl Sync for MapInner {}

impl MapInner {
    /// Maps `len` bytes of `fd` read-only (`MAP_SHARED`: marufs refuses
    /// private mappings). An empty key gets no mapping.
    pub(crate) fn map(
        fd: BorrowedFd<'_>,
        len: u64,
        ino: u64,
        coherence: Coherence,
        counters: &Arc<AtomicCounters>,
    ) -> std::io::Result<Self> {
        let len =
            usize::try_from(len).map_err(|_| std::io::Error::from_raw_os_error(libc::EFBIG))?;
        let ptr = if len == 0 {
            NonNull::dangling()
        } else {
            let p = sys::mmap_shared(fd, len, false)?;
            counters.mmaps.fetch_add(1, Relaxed);
            if coherence == Coherence::Flush {
                // First sight of these bytes on this host: drop any stale
                // lines of the same memory (see `coherence`).
                coherence::invalidate(p, len);
            }
            NonNull::new(p).ok_or_else(|| std::io::Error::from_raw_os_error(libc::ENOMEM))?
        };
        Ok(Self {
            ptr,
            len,
            ino,
            counters: counters.clone(),
        })
    }

    /// Takes over an existing mapping of `len` bytes at `ptr` (an
    /// allocation's, once its key is published), to be unmapped when the last
    /// owner drops it. The caller gives up the mapping: it must be live,
    /// `MAP_SHARED`, of a key nobody writes any more, and owned by nothing
    /// else.
    pub(crate) fn adopt(
        ptr: NonNull<u8>,
        len: usize,
        ino: u64,
        counters: &Arc<AtomicCounters>,
    ) -> Self {
        Self {
            ptr: if len == 0 { NonNull::dangling() } else { ptr },
            len,
            ino,
            counters: counters.clone(),
        }
    }

    pub(crate) fn ino(&self) -> u64 {
        self.ino
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for MapInner {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: ptr/len is our one live mapping and this is its last
            // owner (Arc), so no slice into it survives.
            unsafe { sys::munmap(self.ptr.as_ptr(), self.len) };
            self.counters.munmaps.fetch_add(1, Relaxed);
        }
    }
}

/// A zero-copy, read-only view of a published key's bytes, straight in pool
/// memory.
///
/// The view stays valid while any clone of it is alive, even if the key is
/// deleted meanwhile (the mapping keeps the key's space allocated, on every
/// host, until it is dropped; see [`Pin`](crate::Pin)). Clones share one
/// mapping; so do repeated [`retrieve`](crate::Store::retrieve)s of the same
/// key through the store's mapping cache.
///
/// `Mapping` is `Send + Sync`: hand it to other threads freely.
#[derive(Clone)]
pub struct Mapping {
    pub(crate) inner: Arc<MapInner>,
}

impl Mapping {
    /// The key's inode number (changes when a key is deleted and created
    /// again under the same name).
    pub fn ino(&self) -> u64 {
        self.inner.ino
    }

    /// Whether `self` and `other` share one mapping.
    pub fn same_mapping(&self, other: &Mapping) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Deref for Mapping {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: ptr/len is a live read-only mapping (or an empty dangling
        // slice) owned by `inner`, which outlives the borrow.
        unsafe { std::slice::from_raw_parts(self.inner.ptr.as_ptr(), self.inner.len) }
    }
}

impl AsRef<[u8]> for Mapping {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl fmt::Debug for Mapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mapping")
            .field("addr", &self.inner.ptr)
            .field("len", &self.inner.len)
            .field("ino", &self.inner.ino)
            .finish()
    }
}
