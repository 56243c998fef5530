//! One application's keys: store, retrieve, delete, pin.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::cache::Cache;
use crate::coherence::{self, Coherence};
use crate::counters::{AtomicCounters, Counters};
use crate::error::{Error, Result};
use crate::evict::{Evicted, EvictionPolicy, PinSet};
use crate::lookup::{self, BatchedLookup, KeyInfo, LookupMode};
use crate::map::{MapInner, Mapping};
use crate::names::validate_name;
use crate::pool::{fill_usage, AppUsage, Pool, PoolUsage};
use crate::sys;
use marufs_core::layout::UNIT;

/// Options of [`Store::open_with`] / [`Pool::store_with`].
///
/// ```
/// let opts = maru::StoreOptions::default().key_mode(0o600).cache_capacity(4096);
/// assert_eq!(opts.key_mode, 0o600);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct StoreOptions {
    /// Create the application directory if it does not exist (needs write
    /// permission on the pool's root). Default: true.
    pub create: bool,
    /// Mode of a created application directory (the umask applies).
    /// Default: 0o777.
    pub dir_mode: u32,
    /// Mode of created keys (the umask applies). Default: 0o666.
    pub key_mode: u32,
    /// Most mappings kept in the mapping cache (0: no cache; every
    /// retrieval maps the key again). Default: 1024.
    pub cache_capacity: usize,
    /// Check on every cache hit (one `fstatat`) that the name still refers
    /// to the cached key, so that a deleted key is not served and a deleted
    /// and re-created one is served fresh. Without it a hit costs no system
    /// call but may return a key deleted meanwhile (still valid bytes: the
    /// mapping keeps them). Default: true.
    pub validate_hits: bool,
    /// Cache maintenance for memory shared without hardware coherence.
    /// Default: [`Coherence::Kernel`].
    pub coherence: Coherence,
    /// Use of marufs' batched lookup ioctl. Default: [`BatchedLookup::Auto`].
    pub batched_lookup: BatchedLookup,
    /// Which keys [`Store::make_room`] evicts and when. Default: no quota,
    /// watermarks 95/85 %.
    pub eviction: EvictionPolicy,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            create: true,
            dir_mode: 0o777,
            key_mode: 0o666,
            cache_capacity: 1024,
            validate_hits: true,
            coherence: Coherence::default(),
            batched_lookup: BatchedLookup::default(),
            eviction: EvictionPolicy::default(),
        }
    }
}

impl StoreOptions {
    /// Whether to create the application directory.
    pub fn create(mut self, v: bool) -> Self {
        self.create = v;
        self
    }
    /// Mode of a created application directory.
    pub fn dir_mode(mut self, v: u32) -> Self {
        self.dir_mode = v;
        self
    }
    /// Mode of created keys.
    pub fn key_mode(mut self, v: u32) -> Self {
        self.key_mode = v;
        self
    }
    /// Mapping cache capacity.
    pub fn cache_capacity(mut self, v: usize) -> Self {
        self.cache_capacity = v;
        self
    }
    /// Validation of cache hits.
    pub fn validate_hits(mut self, v: bool) -> Self {
        self.validate_hits = v;
        self
    }
    /// Cache maintenance.
    pub fn coherence(mut self, v: Coherence) -> Self {
        self.coherence = v;
        self
    }
    /// Batched lookup policy.
    pub fn batched_lookup(mut self, v: BatchedLookup) -> Self {
        self.batched_lookup = v;
        self
    }
    /// Eviction policy.
    pub fn eviction(mut self, v: EvictionPolicy) -> Self {
        self.eviction = v;
        self
    }
}

/// State shared by a store, its allocation handles and pins.
pub(crate) struct Shared {
    pool: Pool,
    app: String,
    dir: OwnedFd,
    counters: Arc<AtomicCounters>,
    coherence: Coherence,
    pins: Arc<PinSet>,
    /// Pool space reserved by this store's allocations not yet published
    /// or discarded (unnamed ones are in no listing): counted against the
    /// quota with the application's keys.
    pending: AtomicU64,
    /// The application's keys as this store last counted them, for the
    /// quota (see [`Store::alloc_evicting`]).
    usage: Mutex<KeyUsage>,
}

/// The running figure of an application's keys that spares a quota'd
/// allocation a listing of the whole application.
#[derive(Default)]
struct KeyUsage {
    /// Allocated bytes of its keys at the last listing, plus what this store
    /// published since, minus what it evicted. Keys that others published
    /// since are missing (for at most [`USAGE_REFRESH`]); keys this store or
    /// others deleted otherwise are still counted (a conservative error).
    bytes: u64,
    /// When it was listed; `None`: never.
    at: Option<Instant>,
}

/// How long a quota'd store trusts its running figure of the application's
/// keys before listing the application again.
pub const USAGE_REFRESH: Duration = Duration::from_secs(1);

impl Shared {
    /// What the pool gives a key of `size` bytes: whole units on marufs,
    /// pages elsewhere.
    fn rounded(&self, size: u64) -> u64 {
        let grain = if self.pool.is_marufs() { UNIT } else { 4096 };
        size.div_ceil(grain).saturating_mul(grain)
    }

    fn usage(&self) -> MutexGuard<'_, KeyUsage> {
        self.usage.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A key of `reserved` bytes was published by this store: it is in the
    /// application's keys now (before its reservation goes, so that the two
    /// are never both missing from the count).
    fn note_published(&self, reserved: u64) {
        let mut u = self.usage();
        u.bytes = u.bytes.saturating_add(reserved);
    }

    /// A publish failed, maybe after the key became visible: the running
    /// figure may miss it, so the next quota'd allocation lists.
    fn distrust_usage(&self) {
        self.usage().at = None;
    }
}

/// Pool space held for an allocation of a store, counted in
/// [`Shared::pending`] until dropped or handed to an [`AllocHandle`].
struct Reservation {
    /// `None` once handed over.
    shared: Option<Arc<Shared>>,
    bytes: u64,
}

impl Reservation {
    fn new(shared: &Arc<Shared>, bytes: u64) -> Reservation {
        shared.pending.fetch_add(bytes, Relaxed);
        Reservation {
            shared: Some(shared.clone()),
            bytes,
        }
    }

    /// The bytes, now the caller's to give back (an [`AllocHandle`] does at
    /// its drop).
    fn hand_over(mut self) -> u64 {
        self.shared = None;
        self.bytes
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(s) = &self.shared {
            s.pending.fetch_sub(self.bytes, Relaxed);
        }
    }
}

/// One application's keys in a pool: the client of a marufs mount (the role
/// of Maru's `MaruHandler`).
///
/// Keys are files of the application directory; the store keeps that
/// directory open and does every operation relative to it.
///
/// - Writing: [`alloc`](Self::alloc) a key of a given size, fill the
///   returned [`AllocHandle`] in place (it is pool memory), then
///   [`store`](Self::store) it: it becomes visible, immutable, to every host.
///   [`store_bytes`](Self::store_bytes) does the three steps from a slice.
///   A key that exists already is never replaced: storing it again is a
///   detected no-op (deduplication).
/// - Reading: [`retrieve`](Self::retrieve) returns a zero-copy read-only
///   [`Mapping`]; mappings are cached and shared, so retrieving a key again
///   costs no `mmap`.
/// - [`exists`](Self::exists), [`delete`](Self::delete), batched variants
///   (one lookup system call for many keys on marufs), [`pin`](Self::pin),
///   [`list`](Self::list), [`stats`](Self::stats).
///
/// A `Store` is `Send + Sync`; reads take no store-wide lock (the mapping
/// cache is sharded, counters are atomic), and writes need none (the kernel
/// serialises what must be).
///
/// On a directory that is not marufs (tests, development) the same calls
/// work with ordinary file semantics: a key is visible as soon as it is
/// allocated, and nothing stops another process from changing it.
///
/// ```
/// # fn main() -> maru::Result<()> {
/// let mount = tempfile::tempdir().unwrap(); // stands in for /mnt/maru
/// let store = maru::Store::open(mount.path(), "llama3")?;
///
/// // Zero-copy write: allocate, fill in place, publish.
/// let mut h = store.alloc("chunk-0", 11)?;
/// h.copy_from_slice(b"hello world");
/// store.store(h)?;
///
/// // Storing an existing key again is a no-op.
/// assert!(!store.store_bytes("chunk-0", b"other bytes")?);
///
/// // Zero-copy read.
/// let m = store.retrieve("chunk-0")?.expect("stored above");
/// assert_eq!(&m[..], b"hello world");
/// assert!(store.exists("chunk-0")?);
/// assert!(store.delete("chunk-0")?);
/// assert!(store.retrieve("chunk-0")?.is_none());
/// # Ok(()) }
/// ```
pub struct Store {
    shared: Arc<Shared>,
    cache: Cache,
    opts: StoreOptions,
}

/// Usage report of [`Store::stats`].
#[derive(Clone, Debug)]
pub struct Stats {
    /// Pool space.
    pub pool: PoolUsage,
    /// This store's application.
    pub app: AppUsage,
    /// Every application of the pool (unreadable ones without bytes).
    pub apps: Vec<AppUsage>,
    /// This store's operation counters.
    pub counters: Counters,
    /// Mappings in the cache.
    pub cached_mappings: usize,
    /// Bytes mapped by the cache.
    pub cached_bytes: u64,
    /// How batched lookups are done.
    pub lookup_mode: LookupMode,
}

impl Store {
    /// Opens application `app` of the pool mounted at `mount`, creating its
    /// directory if missing (and permitted).
    pub fn open(mount: impl AsRef<Path>, app: &str) -> Result<Store> {
        Self::open_with(mount, app, &StoreOptions::default())
    }

    /// Opens application `app` of the pool mounted at `mount` with `opts`.
    pub fn open_with(mount: impl AsRef<Path>, app: &str, opts: &StoreOptions) -> Result<Store> {
        Pool::open(mount)?.store_with(app, opts)
    }

    pub(crate) fn with_pool(pool: Pool, app: &str, opts: &StoreOptions) -> Result<Store> {
        validate_name(app)?;
        let dir = match pool.open_app(app) {
            Err(Error::NoApp(_)) if opts.create => {
                pool.create_app(app, opts.dir_mode)?;
                pool.open_app(app)?
            }
            r => r?,
        };
        let store = Store {
            shared: Arc::new(Shared {
                pool,
                app: app.to_string(),
                dir,
                counters: Arc::new(AtomicCounters::default()),
                coherence: opts.coherence,
                pins: Arc::new(PinSet::default()),
                pending: AtomicU64::new(0),
                usage: Mutex::new(KeyUsage::default()),
            }),
            cache: Cache::new(opts.cache_capacity),
            opts: opts.clone(),
        };
        store.record_policy();
        Ok(store)
    }

    /// With a quota, records the store's eviction policy in the application
    /// directory (an empty entry whose name holds it, see
    /// [`EvictionPolicy::marker_name`]) for `maru df` and `maru top`, and
    /// removes markers of other policies. Best effort: a store that may not
    /// write the directory records nothing.
    fn record_policy(&self) {
        let Some(want) = self.opts.eviction.marker_name() else {
            return;
        };
        let Ok(marks) = crate::pool::policy_markers(self.dir(), &self.shared.app) else {
            return;
        };
        if !marks.iter().any(|m| m.2 == want) {
            let Ok(c) = sys::cname(&want) else { return };
            match sys::openat(
                self.dir(),
                &c,
                libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW,
                0o444,
            ) {
                Ok(fd) => drop(fd),
                Err(_) => return,
            }
        }
        for (_, _, name) in marks.iter().filter(|m| m.2 != want) {
            if let Ok(c) = sys::cname(name) {
                let _ = sys::unlinkat(self.dir(), &c, 0);
            }
        }
    }

    /// The application name.
    pub fn app(&self) -> &str {
        &self.shared.app
    }

    /// The pool this store belongs to.
    pub fn pool(&self) -> &Pool {
        &self.shared.pool
    }

    /// The options it was opened with.
    pub fn options(&self) -> &StoreOptions {
        &self.opts
    }

    /// A snapshot of the operation counters.
    pub fn counters(&self) -> Counters {
        self.shared.counters.snapshot()
    }

    /// How batched lookups are done (decided on the first batched call).
    pub fn lookup_mode(&self) -> LookupMode {
        self.shared.pool.lookup_mode()
    }

    fn dir(&self) -> std::os::fd::BorrowedFd<'_> {
        self.shared.dir.as_fd()
    }

    fn cname(&self, op: &'static str, key: &str) -> Result<std::ffi::CString> {
        validate_name(key)?;
        if key.starts_with(crate::evict::RESERVED_PREFIX) {
            return Err(Error::InvalidName {
                name: key.to_string(),
                why: "names beginning with \".marufs-\" are reserved for the library's own entries",
            });
        }
        sys::cname(key).map_err(|e| Error::io(op, key, e))
    }

    // ------------------------------------------------------------ writing

    /// Creates key `key` of `size` bytes, unpublished, and maps it writable.
    ///
    /// The space is one contiguous, zero-filled extent of pool memory (2 MiB
    /// units on marufs); write into the handle, then [`store`](Self::store)
    /// it. Until then nobody else sees the key (on marufs: others get
    /// "not found", a second creator on any host gets [`Error::Exists`]).
    /// Dropping the handle, or [`free`](Self::free), discards it.
    ///
    /// Errors: [`Error::Exists`] if the key exists or is being created
    /// (deduplication: nothing to write), [`Error::NoSpace`] if the pool is
    /// full (nothing is left behind), [`Error::InvalidName`].
    ///
    /// The key is named at allocation (not at [`store`](Self::store) as in
    /// Maru's `alloc(size)`): marufs publishes a key under the name it was
    /// created with, and reserving the name first lets a second writer of
    /// the same content skip its copy entirely.
    pub fn alloc(&self, key: &str, size: u64) -> Result<AllocHandle> {
        self.alloc_reserved(key, size, None)
    }

    /// [`alloc`](Self::alloc) with its pool space reserved already (`None`:
    /// reserved here).
    fn alloc_reserved(
        &self,
        key: &str,
        size: u64,
        res: Option<Reservation>,
    ) -> Result<AllocHandle> {
        let c = self.cname("create", key)?;
        check_size(key, size)?;
        let fd = match sys::openat(
            self.dir(),
            &c,
            libc::O_CREAT | libc::O_EXCL | libc::O_RDWR | libc::O_NOFOLLOW,
            self.opts.key_mode as libc::mode_t,
        ) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                return Err(Error::Exists(key.to_string()))
            }
            Err(e) => return Err(Error::io("create", key, e)),
        };
        self.prepare(fd, key, true, size, res)
    }

    /// Creates an unpublished key without a name (`O_TMPFILE` in the
    /// application directory) of `size` bytes and maps it writable: Maru's
    /// `alloc(size)`, for callers that learn the key after writing the value.
    /// Name and publish it with [`store_as`](Self::store_as); dropping or
    /// [`free`](Self::free)ing it discards it.
    ///
    /// Unlike [`alloc`](Self::alloc), a second writer of the same key finds
    /// out only when naming it, after writing. Needs a filesystem with
    /// `O_TMPFILE` (marufs with unnamed-key support, tmpfs, ext4...);
    /// `EOPNOTSUPP`/`EISDIR` otherwise.
    pub fn alloc_unnamed(&self, size: u64) -> Result<AllocHandle> {
        self.alloc_unnamed_reserved(size, None)
    }

    fn alloc_unnamed_reserved(&self, size: u64, res: Option<Reservation>) -> Result<AllocHandle> {
        check_size("(unnamed)", size)?;
        let fd = sys::openat(
            self.dir(),
            c".",
            libc::O_TMPFILE | libc::O_RDWR,
            self.opts.key_mode as libc::mode_t,
        )
        .map_err(|e| Error::io("create unnamed key in", self.app(), e))?;
        self.prepare(fd, "", false, size, res)
    }

    /// Sizes and maps a new key; discards it on failure.
    fn prepare(
        &self,
        fd: OwnedFd,
        key: &str,
        named: bool,
        size: u64,
        res: Option<Reservation>,
    ) -> Result<AllocHandle> {
        let reserved = res
            .unwrap_or_else(|| Reservation::new(&self.shared, self.shared.rounded(size)))
            .hand_over();
        let mut h = AllocHandle {
            reserved,
            shared: self.shared.clone(),
            key: key.to_string(),
            named,
            ino: 0,
            fd: Some(fd),
            ptr: NonNull::dangling(),
            len: 0,
        };
        let setup = (|| {
            let fd = h.fd.as_ref().map(|f| f.as_fd()).ok_or(libc::EBADF);
            let fd = fd.map_err(|e| (std::io::Error::from_raw_os_error(e), "create"))?;
            h.ino = sys::fstat(fd).map_err(|e| (e, "stat"))?.st_ino;
            if size > 0 {
                let len = size as usize; // checked by check_size
                sys::ftruncate(fd, size as i64).map_err(|e| (e, "truncate"))?;
                let p = sys::mmap_shared(fd, len, true).map_err(|e| (e, "mmap"))?;
                sys::dont_fork(p, len);
                h.ptr = NonNull::new(p).unwrap_or(NonNull::dangling());
                h.len = len;
            }
            Ok::<(), (std::io::Error, &'static str)>(())
        })();
        match setup {
            Ok(()) => Ok(h),
            Err((e, op)) => {
                // Never leave a half-made key behind.
                let _ = h.discard();
                Err(match e.raw_os_error() {
                    Some(libc::ENOSPC) | Some(libc::EFBIG) => Error::NoSpace {
                        key: key.to_string(),
                        size,
                    },
                    _ => Error::io(op, key, e),
                })
            }
        }
    }

    /// Names and publishes an unnamed allocation ([`alloc_unnamed`](Self::alloc_unnamed))
    /// as `key`, atomically (`linkat`): `Ok(true)` when published, `Ok(false)`
    /// if `key` exists already (deduplication; the allocation is discarded).
    /// A handle from [`alloc`](Self::alloc) is published under its own name,
    /// which must equal `key`.
    pub fn store_as(&self, handle: AllocHandle, key: &str) -> Result<bool> {
        if handle.named {
            if handle.key != key {
                return Err(Error::InvalidName {
                    name: key.to_string(),
                    why: "the allocation was created under another name",
                });
            }
            return handle.publish().map(|()| true);
        }
        let c = self.cname("link", key)?;
        let mut handle = handle;
        handle.flush_and_unmap();
        let Some(fd) = handle.fd.as_ref() else {
            return Err(Error::PublishFailed(key.to_string()));
        };
        match sys::link_unnamed(fd.as_fd(), handle.shared.dir.as_fd(), &c) {
            Ok(()) => {
                // Published by the link; releasing the file just closes it.
                handle.fd = None;
                self.shared.note_published(handle.reserved);
                self.shared.counters.stored.fetch_add(1, Relaxed);
                Ok(true)
            }
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                self.shared.counters.deduplicated.fetch_add(1, Relaxed);
                drop(handle);
                Ok(false)
            }
            Err(e) => Err(Error::io("link", key, e)),
        }
    }

    /// Names and publishes an unnamed allocation as `key` like
    /// [`store_as`](Self::store_as), but keeps its mapping: on success the
    /// same bytes at the same address become a read-only [`Mapping`] of the
    /// published key, so anything pointing into the allocation (a tensor, a
    /// Python buffer) stays valid and reads the published value.
    ///
    /// On any failure the allocation comes back unchanged, still unnamed,
    /// mapped and writable, in [`Unpublished`] — [`Error::Exists`] if `key`
    /// is taken (deduplication): free it, or publish it under another name,
    /// once nothing points into it any more.
    ///
    /// On marufs the link revokes the writable mapping's page table entries
    /// (the key is immutable from then on); the next read fault maps the
    /// pages read-only and a write gets `SIGBUS`. On an ordinary filesystem
    /// the pages stay writable, but only read access is handed out. A named
    /// allocation ([`alloc`](Self::alloc)) is published by releasing its
    /// mapping, so it cannot be published this way ([`Error::InvalidName`]).
    ///
    /// The returned mapping is not entered in the store's mapping cache.
    pub fn publish_mapped(
        &self,
        handle: AllocHandle,
        key: &str,
    ) -> std::result::Result<Mapping, Unpublished> {
        let fail = |error, handle| Err(Unpublished { error, handle });
        if handle.named {
            let error = Error::InvalidName {
                name: key.to_string(),
                why: "only an unnamed allocation can be published keeping its mapping",
            };
            return fail(error, handle);
        }
        let c = match self.cname("link", key) {
            Ok(c) => c,
            Err(e) => return fail(e, handle),
        };
        let Some(fd) = handle.fd.as_ref() else {
            return fail(Error::PublishFailed(key.to_string()), handle);
        };
        if self.shared.coherence == Coherence::Flush {
            coherence::write_back(handle.ptr.as_ptr(), handle.len);
        }
        match sys::link_unnamed(fd.as_fd(), handle.shared.dir.as_fd(), &c) {
            Ok(()) => {
                self.shared.note_published(handle.reserved);
                self.shared.counters.stored.fetch_add(1, Relaxed);
                let mut handle = handle;
                // The VMA holds the file (and on marufs its hold on the
                // key): the descriptor is not needed any more.
                handle.fd = None;
                // Immutable now, and inherited by a fork like any mapping of
                // a published key.
                sys::seal_published(handle.ptr.as_ptr(), handle.len);
                let inner =
                    MapInner::adopt(handle.ptr, handle.len, handle.ino, &self.shared.counters);
                // The mapping now belongs to `inner`; the handle's drop finds
                // nothing left to unmap or discard.
                handle.len = 0;
                handle.ptr = NonNull::dangling();
                Ok(Mapping {
                    inner: Arc::new(inner),
                })
            }
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                self.shared.counters.deduplicated.fetch_add(1, Relaxed);
                fail(Error::Exists(key.to_string()), handle)
            }
            Err(e) => fail(Error::io("link", key, e), handle),
        }
    }

    /// Publishes an allocated key: from now on every host sees it, with the
    /// bytes written into the handle, and nobody can change it.
    ///
    /// With [`Coherence::Flush`] written cache lines are flushed first (by
    /// default the kernel writes them back at publish); then the
    /// writable mapping and the creating descriptor are released, which is
    /// what publishes a key on marufs. The key is then checked to be there
    /// ([`Error::PublishFailed`] if the filesystem discarded it).
    pub fn store(&self, handle: AllocHandle) -> Result<()> {
        handle.publish()
    }

    /// Discards an allocated key without publishing it (nothing becomes
    /// visible; its space returns to the pool). Dropping the handle does the
    /// same, ignoring errors.
    ///
    /// On marufs the creating descriptor gets `MARUFS_IOC_DISCARD`: the key
    /// is never published and its space returns when the descriptor closes.
    /// Elsewhere the file is unlinked. (On a module without the ioctl the
    /// library asks for an impossible size: a failed resize discards an
    /// unpublished key; [`Error::DiscardFailed`] if even that was accepted,
    /// and the key is then published empty rather than half written.)
    pub fn free(&self, handle: AllocHandle) -> Result<()> {
        let mut handle = handle;
        handle.discard()
    }

    /// Stores `data` under `key` (allocate, copy, publish). Returns `false`
    /// without writing anything if the key exists or is being created by
    /// someone else: a detected no-op (deduplication).
    pub fn store_bytes(&self, key: &str, data: &[u8]) -> Result<bool> {
        let mut h = match self.alloc(key, data.len() as u64) {
            Ok(h) => h,
            Err(Error::Exists(_)) => {
                self.shared.counters.deduplicated.fetch_add(1, Relaxed);
                return Ok(false);
            }
            Err(e) => return Err(e),
        };
        h.copy_from_slice(data);
        self.store(h)?;
        Ok(true)
    }

    /// [`store_bytes`](Self::store_bytes) for each pair, in order: `true`
    /// where stored, `false` where the key existed. Stops at the first
    /// other error (keys stored before it stay stored).
    pub fn batch_store(&self, items: &[(&str, &[u8])]) -> Result<Vec<bool>> {
        items.iter().map(|(k, d)| self.store_bytes(k, d)).collect()
    }

    /// Deletes `key`; `false` if it did not exist. Its name goes at once;
    /// its space returns to the pool when no host maps, opens or pins it any
    /// more (existing [`Mapping`]s and [`Pin`]s stay valid).
    pub fn delete(&self, key: &str) -> Result<bool> {
        let c = self.cname("unlink", key)?;
        let r = sys::unlinkat(self.dir(), &c, 0);
        if self.cache.remove(key, None) {
            self.shared.counters.evictions.fetch_add(1, Relaxed);
        }
        match r {
            Ok(()) => {
                self.shared.counters.deleted.fetch_add(1, Relaxed);
                Ok(true)
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(Error::io("unlink", key, e)),
        }
    }

    // ----------------------------------------------------------- capacity

    /// Evicts at least `bytes` of pool space from this application: deletes
    /// its oldest-published keys first, skipping keys pinned through this
    /// store, until their allocated space adds up (or no key is left). See
    /// [`EvictionPolicy`] for why deleting is always safe for readers.
    pub fn evict(&self, bytes: u64) -> Result<Evicted> {
        if bytes == 0 {
            return Ok(Evicted::default());
        }
        // Under the usage lock: a listing between the deletes and the
        // subtraction would already miss what is subtracted.
        let mut u = self.shared.usage();
        let ev = self.evict_from(self.list()?, bytes)?;
        u.bytes = u.bytes.saturating_sub(ev.bytes);
        Ok(ev)
    }

    /// [`evict`](Self::evict) from a listing of the application.
    fn evict_from(&self, mut keys: Vec<KeyInfo>, bytes: u64) -> Result<Evicted> {
        let mut out = Evicted::default();
        keys.sort_by(|a, b| (a.mtime_ns, &a.name).cmp(&(b.mtime_ns, &b.name)));
        for k in keys {
            if out.bytes >= bytes {
                break;
            }
            if self.shared.pins.contains(k.ino) {
                continue;
            }
            // Only this incarnation of the name: one stored again since the
            // listing is newer than anything older left.
            let c = self.cname("unlink", &k.name)?;
            match sys::fstatat(self.dir(), &c) {
                Ok(st) if st.st_ino == k.ino => {}
                Ok(_) => continue,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                Err(e) => return Err(Error::io("stat", k.name.as_str(), e)),
            }
            if self.delete(&k.name)? {
                out.keys += 1;
                out.bytes = out.bytes.saturating_add(k.allocated);
                self.shared.counters.evicted.fetch_add(1, Relaxed);
            }
        }
        Ok(out)
    }

    /// Lists the application and makes the running usage that listing.
    fn count_usage(&self, u: &mut KeyUsage) -> Result<Vec<KeyInfo>> {
        let keys = self.list()?;
        u.bytes = keys.iter().map(|k| k.allocated).sum();
        u.at = Some(Instant::now());
        self.shared.counters.usage_listings.fetch_add(1, Relaxed);
        Ok(keys)
    }

    /// Evicts what the store's [`EvictionPolicy`] says must go before `size`
    /// more bytes are allocated (nothing if there is room). This lists the
    /// application (with a quota) and asks the pool for its free space.
    pub fn make_room(&self, size: u64) -> Result<Evicted> {
        let size = self.shared.rounded(size);
        let pool = self.shared.pool.usage()?;
        let mut u = self.shared.usage();
        let (keys, app) = if self.opts.eviction.quota.is_some() {
            let keys = self.count_usage(&mut u)?;
            // This store's allocations in flight count (a batch allocated
            // before any of it is published counts whole).
            (
                Some(keys),
                u.bytes.saturating_add(self.shared.pending.load(Relaxed)),
            )
        } else {
            (None, 0)
        };
        let need = self
            .opts
            .eviction
            .to_free(size, app, pool.total, pool.available);
        if need == 0 {
            return Ok(Evicted::default());
        }
        let keys = match keys {
            Some(k) => k,
            None => self.list()?,
        };
        let ev = self.evict_from(keys, need)?;
        u.bytes = u.bytes.saturating_sub(ev.bytes);
        Ok(ev)
    }

    /// Holds `size` bytes (rounded up to what the pool gives) for an
    /// allocation within the quota `q`, evicting per the policy first.
    ///
    /// One decision at a time per store (its usage lock), and the
    /// reservation is made before the lock goes: concurrent allocations of
    /// a store never pass the quota together. The running usage is trusted
    /// while fresher than [`USAGE_REFRESH`] and below the high watermark;
    /// otherwise the application is listed (and that listing is what
    /// eviction chooses from).
    fn reserve_within_quota(&self, q: u64, size: u64, key: &str) -> Result<Reservation> {
        let size = self.shared.rounded(size);
        let policy = &self.opts.eviction;
        let mut u = self.shared.usage();
        let pending = || self.shared.pending.load(Relaxed);
        // The quota's part of the policy only: a full pool shows as a failed
        // allocation.
        let to_free = |app: u64| policy.to_free(size, app, 0, u64::MAX);
        let fresh = u.at.is_some_and(|t| t.elapsed() < USAGE_REFRESH);
        if !fresh || to_free(u.bytes.saturating_add(pending())) > 0 {
            let keys = self.count_usage(&mut u)?;
            let need = to_free(u.bytes.saturating_add(pending()));
            if need > 0 {
                let ev = self.evict_from(keys, need)?;
                u.bytes = u.bytes.saturating_sub(ev.bytes);
            }
        }
        // The quota is a limit: when pinned keys and allocations in flight
        // leave too little to evict, the allocation fails.
        if u.bytes.saturating_add(pending()).saturating_add(size) > q {
            return Err(Error::NoSpace {
                key: key.to_string(),
                size,
            });
        }
        Ok(Reservation::new(&self.shared, size))
    }

    /// [`alloc_unnamed`](Self::alloc_unnamed) (or [`alloc`](Self::alloc)
    /// with `key`) that makes room first: with a quota, evicts per the
    /// policy before allocating and fails with [`Error::NoSpace`] if the
    /// application's keys and this store's allocations in flight would
    /// still pass the quota (pinned keys cannot go); when the pool is full,
    /// evicts and tries once more. Still [`Error::NoSpace`] if nothing
    /// evictable was left.
    ///
    /// Sizes count as the pool gives them (whole 2 MiB units on marufs).
    /// The application's keys are a running figure: listed at most every
    /// [`USAGE_REFRESH`] (see [`Counters::usage_listings`]) unless the
    /// allocation would pass the high watermark, then listed for the
    /// eviction; in between, keys other processes and hosts published are
    /// not counted yet.
    pub fn alloc_evicting(&self, size: u64, key: Option<&str>) -> Result<AllocHandle> {
        let name = key.unwrap_or("(unnamed)");
        check_size(name, size)?;
        let go = |res| match key {
            Some(k) => self.alloc_reserved(k, size, res),
            None => self.alloc_unnamed_reserved(size, res),
        };
        let reserve = || {
            let q = self.opts.eviction.quota;
            q.map(|q| self.reserve_within_quota(q, size, name))
                .transpose()
        };
        if let Some(k) = key {
            // A refused name (a reserved one too) evicts nothing.
            self.cname("create", k)?;
            // Deduplication first: no key is evicted for a name that exists.
            if self.exists(k)? {
                return Err(Error::Exists(k.to_string()));
            }
        }
        match go(reserve()?) {
            Err(Error::NoSpace { .. }) => {
                let pool = self.shared.pool.usage()?;
                let mut need = self.opts.eviction.to_free(
                    self.shared.rounded(size),
                    0,
                    pool.total,
                    pool.available,
                );
                if need == 0 {
                    // statfs said there is room and the allocation said
                    // not (no contiguous extent, a race): free its size.
                    need = size;
                }
                self.evict(need)?;
                // The first reservation went with the failed allocation:
                // the quota is checked again.
                go(reserve()?)
            }
            r => r,
        }
    }

    // ------------------------------------------------------------ reading

    /// A zero-copy read-only view of `key`'s bytes, or `None` if there is no
    /// such (published) key.
    ///
    /// Served from the mapping cache when the key was retrieved before (one
    /// `fstatat` to check the name still refers to it, unless
    /// [`StoreOptions::validate_hits`] is off); otherwise the key is opened,
    /// mapped (`MAP_SHARED`, read-only), its descriptor closed, and the
    /// mapping cached. The view stays valid as long as it is held, whatever
    /// happens to the key.
    pub fn retrieve(&self, key: &str) -> Result<Option<Mapping>> {
        let c = self.cname("open", key)?;
        if let Some(m) = self.cache.get(key) {
            if !self.opts.validate_hits {
                self.shared.counters.hits.fetch_add(1, Relaxed);
                return Ok(Some(Mapping { inner: m }));
            }
            match sys::fstatat(self.dir(), &c) {
                Ok(st) if sys::is_reg(&st) && st.st_ino == m.ino() => {
                    self.shared.counters.hits.fetch_add(1, Relaxed);
                    return Ok(Some(Mapping { inner: m }));
                }
                Ok(_) => self.uncache(key, m.ino()),
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    self.uncache(key, m.ino());
                    self.shared.counters.misses.fetch_add(1, Relaxed);
                    return Ok(None);
                }
                Err(e) => return Err(Error::io("stat", key, e)),
            }
        }
        self.shared.counters.misses.fetch_add(1, Relaxed);
        self.map_key(key, &c)
    }

    fn uncache(&self, key: &str, ino: u64) {
        if self.cache.remove(key, Some(ino)) {
            self.shared.counters.evictions.fetch_add(1, Relaxed);
        }
    }

    fn map_key(&self, key: &str, c: &std::ffi::CStr) -> Result<Option<Mapping>> {
        let fd = match sys::openat(self.dir(), c, libc::O_RDONLY | libc::O_NOFOLLOW, 0) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
            Err(e) => return Err(Error::io("open", key, e)),
        };
        let st = sys::fstat(fd.as_fd()).map_err(|e| Error::io("stat", key, e))?;
        if !sys::is_reg(&st) {
            return Ok(None);
        }
        let inner = MapInner::map(
            fd.as_fd(),
            st.st_size as u64,
            st.st_ino,
            self.shared.coherence,
            &self.shared.counters,
        )
        .map_err(|e| Error::io("mmap", key, e))?;
        // The mapping keeps the key (and its hold) alive: the descriptor is
        // not needed any more.
        drop(fd);
        let ins = self.cache.insert(key, Arc::new(inner));
        self.shared
            .counters
            .evictions
            .fetch_add(ins.evicted, Relaxed);
        Ok(Some(Mapping { inner: ins.map }))
    }

    /// Whether `key` exists (published).
    pub fn exists(&self, key: &str) -> Result<bool> {
        validate_name(key)?;
        Ok(lookup::stat_one(self.dir(), key)?.is_some())
    }

    /// Attributes of `key`, or `None` if it does not exist.
    pub fn stat(&self, key: &str) -> Result<Option<KeyInfo>> {
        validate_name(key)?;
        Ok(lookup::stat_one(self.dir(), key)?.map(|f| f.named(key.to_string())))
    }

    /// Looks many keys up at once: on marufs one system call per 4096 names
    /// (`MARUFS_IOC_LOOKUP`); elsewhere, or on a module without the ioctl
    /// (detected once), one `fstatat` per name.
    pub fn batch_stat(&self, keys: &[&str]) -> Result<Vec<Option<KeyInfo>>> {
        Ok(self
            .batch_found(keys)?
            .into_iter()
            .zip(keys)
            .map(|(f, k)| f.map(|f| f.named(k.to_string())))
            .collect())
    }

    /// Batched lookups in this store's directory.
    fn batch(&self) -> crate::lookup::How<'_> {
        self.shared.pool.batch(
            self.dir(),
            &self.shared.app,
            self.opts.batched_lookup,
            &self.shared.counters,
        )
    }

    /// The batched lookup itself (no names copied).
    fn batch_found(&self, keys: &[&str]) -> Result<Vec<Option<lookup::Found>>> {
        for k in keys {
            validate_name(k)?;
        }
        self.batch().lookup(keys)
    }

    /// Which of `keys` exist (one batched lookup).
    pub fn batch_exists(&self, keys: &[&str]) -> Result<Vec<bool>> {
        for k in keys {
            validate_name(k)?;
        }
        self.batch().exists(keys)
    }

    /// [`retrieve`](Self::retrieve) for many keys: one batched lookup, then
    /// cached mappings of the same incarnation are reused with no further
    /// system call and only the other present keys are opened and mapped.
    ///
    /// ```
    /// # fn main() -> maru::Result<()> {
    /// # let tmp = tempfile::tempdir().unwrap();
    /// let store = maru::Store::open(tmp.path(), "app")?;
    /// store.batch_store(&[("a", b"1".as_slice()), ("b", b"2")])?;
    /// let got = store.batch_retrieve(&["a", "zz", "b"])?;
    /// assert_eq!(got[0].as_deref(), Some(b"1".as_slice()));
    /// assert!(got[1].is_none());
    /// # Ok(()) }
    /// ```
    pub fn batch_retrieve(&self, keys: &[&str]) -> Result<Vec<Option<Mapping>>> {
        let infos = self.batch_found(keys)?;
        let mut out = Vec::with_capacity(keys.len());
        for (key, info) in keys.iter().zip(infos) {
            let Some(info) = info else {
                out.push(None);
                continue;
            };
            match self.cache.get(key) {
                Some(m) if m.ino() == info.ino => {
                    self.shared.counters.hits.fetch_add(1, Relaxed);
                    out.push(Some(Mapping { inner: m }));
                }
                _ => {
                    self.shared.counters.misses.fetch_add(1, Relaxed);
                    let c = self.cname("open", key)?;
                    out.push(self.map_key(key, &c)?);
                }
            }
        }
        Ok(out)
    }

    /// Pins `key`: holds it open so that its bytes stay valid and its pool
    /// space allocated, on every host, until the [`Pin`] is dropped, even if
    /// the key is deleted meanwhile (deletion removes the name at once;
    /// nobody can re-use the space while it is pinned). A pin does not stop
    /// deletion and is not a lock. [`Error::NotFound`] if there is no such
    /// key.
    ///
    /// A [`Mapping`] pins its key the same way; a `Pin` costs a descriptor
    /// instead of address space and can map the key later
    /// ([`Pin::map`]), even after it was deleted. On a read-only mount
    /// (which does not join the pool) pins do not hold space.
    ///
    /// ```
    /// # fn main() -> maru::Result<()> {
    /// # let tmp = tempfile::tempdir().unwrap();
    /// let store = maru::Store::open(tmp.path(), "app")?;
    /// store.store_bytes("prefix-7", b"kv")?;
    /// let pin = store.pin("prefix-7")?;
    /// store.delete("prefix-7")?;              // gone by name...
    /// assert_eq!(&pin.map()?[..], b"kv");     // ...but its bytes stay
    /// drop(pin);                              // now its space can return
    /// # Ok(()) }
    /// ```
    pub fn pin(&self, key: &str) -> Result<Pin> {
        let c = self.cname("open", key)?;
        let fd = match sys::openat(self.dir(), &c, libc::O_RDONLY | libc::O_NOFOLLOW, 0) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                return Err(Error::NotFound(key.to_string()))
            }
            Err(e) => return Err(Error::io("open", key, e)),
        };
        let st = sys::fstat(fd.as_fd()).map_err(|e| Error::io("stat", key, e))?;
        if !sys::is_reg(&st) {
            return Err(Error::NotFound(key.to_string()));
        }
        self.shared.pins.add(st.st_ino);
        Ok(Pin {
            info: KeyInfo::from_stat(key.to_string(), &st),
            fd,
            coherence: self.shared.coherence,
            counters: self.shared.counters.clone(),
            pins: self.shared.pins.clone(),
        })
    }

    /// Releases a pin (the same as dropping it).
    pub fn unpin(&self, pin: Pin) {
        drop(pin);
    }

    // ------------------------------------------------------------ listing

    /// Every key of this application, sorted by name.
    pub fn list(&self) -> Result<Vec<KeyInfo>> {
        self.shared.pool.list_fd(
            self.dir(),
            &self.shared.app,
            self.opts.batched_lookup,
            &self.shared.counters,
        )
    }

    /// Pool space, this application's keys and bytes, every application's,
    /// and this store's counters.
    pub fn stats(&self) -> Result<Stats> {
        let pool = self.shared.pool.usage()?;
        let mut apps = self.shared.pool.apps()?;
        for a in &mut apps {
            let keys = if a.name == self.shared.app {
                self.list()
            } else {
                self.shared.pool.list(&a.name)
            };
            match keys {
                Ok(keys) => fill_usage(a, &keys),
                Err(e) if e.is_permission_denied() || e.errno() == Some(libc::ENOENT) => {}
                Err(e) => return Err(e),
            }
        }
        let app = match apps.iter().find(|a| a.name == self.shared.app) {
            Some(a) => a.clone(),
            None => {
                // Our directory was removed from the root (we still hold it).
                let st = sys::fstat(self.dir()).map_err(|e| Error::io("stat", self.app(), e))?;
                let mut a = AppUsage {
                    name: self.shared.app.clone(),
                    ino: st.st_ino,
                    uid: st.st_uid,
                    gid: st.st_gid,
                    mode: st.st_mode,
                    mtime_ns: sys::mtime_ns(&st),
                    keys: None,
                    bytes: None,
                    allocated: None,
                    policy: self.opts.eviction.marker_name().map(|_| self.opts.eviction),
                };
                fill_usage(&mut a, &self.list()?);
                a
            }
        };
        let (cached_mappings, cached_bytes) = self.cache.size();
        Ok(Stats {
            pool,
            app,
            apps,
            counters: self.counters(),
            cached_mappings,
            cached_bytes,
            lookup_mode: self.lookup_mode(),
        })
    }

    // ------------------------------------------------------------ cache

    /// Drops cached mappings whose key was deleted or re-created since (one
    /// `fstatat` each), so that their space can be reclaimed; returns how
    /// many were dropped. Mappings handed out stay valid.
    pub fn trim_cache(&self) -> Result<usize> {
        let mut n = 0;
        for (key, ino) in self.cache.entries() {
            let stale = match lookup::stat_one(self.dir(), &key)? {
                Some(i) => i.ino != ino,
                None => true,
            };
            if stale && self.cache.remove(&key, Some(ino)) {
                self.shared.counters.evictions.fetch_add(1, Relaxed);
                n += 1;
            }
        }
        Ok(n)
    }

    /// Drops every cached mapping; returns how many.
    pub fn clear_cache(&self) -> usize {
        let n = self.cache.clear();
        self.shared.counters.evictions.fetch_add(n as u64, Relaxed);
        n
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("pool", &self.shared.pool)
            .field("app", &self.shared.app)
            .field("options", &self.opts)
            .finish()
    }
}

/// A key being written: an unpublished key and a writable mapping of it
/// (`DerefMut<Target = [u8]>`: write the value in place).
///
/// Publish it with [`Store::store`] (or [`AllocHandle::publish`]); discard it
/// with [`Store::free`] or by dropping it. A handle is `Send`: fill it on
/// any thread.
pub struct AllocHandle {
    /// Its share of [`Shared::pending`], given back when the handle goes
    /// (published, freed or dropped), by which time a published key is in
    /// the listing and the running usage.
    reserved: u64,
    shared: Arc<Shared>,
    key: String,
    /// Created under `key` (else an unnamed O_TMPFILE allocation).
    named: bool,
    ino: u64,
    fd: Option<OwnedFd>,
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is exclusively owned by the handle (the key is
// unpublished: nobody else can map it), and access follows Rust's borrow
// rules through Deref/DerefMut.
unsafe impl Send for AllocHandle {}
// SAFETY: `&AllocHandle` only gives shared `&[u8]` access.
unsafe impl Sync for AllocHandle {}

impl AllocHandle {
    /// The key it will be published as (empty for an unnamed allocation).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Whether it was allocated under its key ([`Store::alloc`]) rather than
    /// unnamed ([`Store::alloc_unnamed`]).
    pub fn is_named(&self) -> bool {
        self.named
    }

    /// Publishes the key (see [`Store::store`]).
    pub fn publish(self) -> Result<()> {
        let shared = self.shared.clone();
        self.publish_inner()
            .inspect_err(|_| shared.distrust_usage())
    }

    fn publish_inner(mut self) -> Result<()> {
        if !self.named {
            return Err(Error::InvalidName {
                name: String::new(),
                why: "an unnamed allocation is published with Store::store_as",
            });
        }
        self.flush_and_unmap();
        let Some(fd) = self.fd.take() else {
            return Err(Error::PublishFailed(self.key.clone()));
        };
        // Releasing the creating file (descriptor and mapping) publishes.
        drop(fd);
        let c = sys::cname(&self.key).map_err(|e| Error::io("stat", self.key.as_str(), e))?;
        match sys::fstatat(self.shared.dir.as_fd(), &c) {
            Ok(st) if st.st_ino == self.ino => {
                self.shared.note_published(self.reserved);
                self.shared.counters.stored.fetch_add(1, Relaxed);
                Ok(())
            }
            Ok(_) => Err(Error::PublishFailed(self.key.clone())),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                Err(Error::PublishFailed(self.key.clone()))
            }
            Err(e) => Err(Error::io("stat", self.key.as_str(), e)),
        }
    }

    /// Publishes a named allocation ([`Store::alloc`]) keeping its address:
    /// the writable mapping is replaced in place, first by an inaccessible
    /// placeholder (releasing it is what publishes the key), then by a
    /// read-only mapping of the published key. Anything pointing into the
    /// allocation reads the published value afterwards; only a read racing
    /// with the publish itself can fault (`SIGSEGV` on the placeholder),
    /// never read other memory. Errors as [`publish`](Self::publish); on
    /// failure after the key was released the address stays reserved
    /// (inaccessible) for good.
    pub fn publish_remapped(self) -> Result<Mapping> {
        let shared = self.shared.clone();
        self.publish_remapped_inner()
            .inspect_err(|_| shared.distrust_usage())
    }

    fn publish_remapped_inner(mut self) -> Result<Mapping> {
        if !self.named {
            return Err(Error::InvalidName {
                name: String::new(),
                why: "an unnamed allocation is published with Store::publish_mapped",
            });
        }
        if self.shared.coherence == Coherence::Flush {
            coherence::write_back(self.ptr.as_ptr(), self.len);
        }
        let Some(fd) = self.fd.take() else {
            return Err(Error::PublishFailed(self.key.clone()));
        };
        drop(fd);
        let (ptr, len) = (self.ptr, self.len);
        // From here the handle owns nothing (no discard at drop).
        self.len = 0;
        self.ptr = NonNull::dangling();
        if len > 0 {
            // SAFETY: ptr/len is this handle's one writable mapping, given up
            // above; callers write nothing through it any more.
            if let Err(e) = unsafe { sys::remap_fixed(ptr.as_ptr(), len, None) } {
                // Could not swap: release the mapping the ordinary way.
                // SAFETY: still our mapping, nothing uses it.
                unsafe { sys::munmap(ptr.as_ptr(), len) };
                return Err(Error::io("mmap", self.key.as_str(), e));
            }
        }
        let c = sys::cname(&self.key).map_err(|e| Error::io("open", self.key.as_str(), e))?;
        let fd = match sys::openat(
            self.shared.dir.as_fd(),
            &c,
            libc::O_RDONLY | libc::O_NOFOLLOW,
            0,
        ) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                return Err(Error::PublishFailed(self.key.clone()))
            }
            Err(e) => return Err(Error::io("open", self.key.as_str(), e)),
        };
        match sys::fstat(fd.as_fd()) {
            Ok(st) if st.st_ino == self.ino => {}
            Ok(_) => return Err(Error::PublishFailed(self.key.clone())),
            Err(e) => return Err(Error::io("stat", self.key.as_str(), e)),
        }
        self.shared.note_published(self.reserved);
        self.shared.counters.stored.fetch_add(1, Relaxed);
        if len > 0 {
            // SAFETY: ptr/len is the placeholder we own; the new pages are
            // the published key's, read-only.
            unsafe { sys::remap_fixed(ptr.as_ptr(), len, Some(fd.as_fd())) }
                .map_err(|e| Error::io("mmap", self.key.as_str(), e))?;
        }
        Ok(Mapping {
            inner: Arc::new(MapInner::adopt(ptr, len, self.ino, &self.shared.counters)),
        })
    }

    fn flush_and_unmap(&mut self) {
        if self.shared.coherence == Coherence::Flush {
            coherence::write_back(self.ptr.as_ptr(), self.len);
        }
        self.unmap();
    }

    fn unmap(&mut self) {
        if self.len > 0 {
            // SAFETY: ptr/len is our one writable mapping; `&mut self` means no
            // slice into it is alive, and it is forgotten right after.
            unsafe { sys::munmap(self.ptr.as_ptr(), self.len) };
            self.len = 0;
            self.ptr = NonNull::dangling();
        }
    }

    /// Discards the unpublished key (idempotent).
    fn discard(&mut self) -> Result<()> {
        self.unmap();
        let Some(fd) = self.fd.take() else {
            return Ok(());
        };
        self.shared.counters.discarded.fetch_add(1, Relaxed);
        if !self.named {
            // Released without a name: discarded by the filesystem.
            drop(fd);
            return Ok(());
        }
        if self.shared.pool.is_marufs() && sys::ioctl_discard(fd.as_fd()).is_ok() {
            // Never published: freed when the descriptor is closed, below.
            return Ok(());
        }
        let c = sys::cname(&self.key).map_err(|e| Error::io("unlink", self.key.as_str(), e))?;
        if sys::unlinkat(self.shared.dir.as_fd(), &c, 0).is_ok() {
            // An ordinary filesystem.
            return Ok(());
        }
        // A marufs module without IOC_DISCARD hides an unpublished key from
        // path lookups (ENOENT above). A failed resize marks the key failed,
        // and a failed key is discarded at release: ask for more than any
        // pool holds (but not above RLIMIT_FSIZE, which would raise SIGXFSZ
        // before the filesystem is asked).
        let size = sys::fsize_limit().map_or(i64::MAX, |l| i64::try_from(l).unwrap_or(i64::MAX));
        let r = match sys::ftruncate(fd.as_fd(), size) {
            Err(_) => Ok(()),
            Ok(()) if self.shared.pool.is_marufs() => {
                // The resize worked: publish it empty, not half-written.
                let _ = sys::ftruncate(fd.as_fd(), 0);
                Err(Error::DiscardFailed(self.key.clone()))
            }
            // Not marufs and already gone: nothing to discard.
            Ok(()) => Ok(()),
        };
        drop(fd);
        r
    }
}

fn check_size(key: &str, size: u64) -> Result<()> {
    if usize::try_from(size).is_ok() && i64::try_from(size).is_ok() {
        Ok(())
    } else {
        Err(Error::NoSpace {
            key: key.to_string(),
            size,
        })
    }
}

impl Deref for AllocHandle {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: ptr/len is our live writable mapping (or empty).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl DerefMut for AllocHandle {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: ptr/len is our live writable mapping (or empty), and
        // `&mut self` makes this the only access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for AllocHandle {
    fn drop(&mut self) {
        let _ = self.discard();
        self.shared.pending.fetch_sub(self.reserved, Relaxed);
    }
}

impl fmt::Debug for AllocHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AllocHandle")
            .field("key", &self.key)
            .field("len", &self.len)
            .finish()
    }
}

/// A failed [`Store::publish_mapped`]: why, and the allocation, unchanged.
#[derive(Debug)]
pub struct Unpublished {
    /// Why it was not published ([`Error::Exists`]: the name is taken).
    pub error: Error,
    /// The allocation, still unnamed, mapped and writable.
    pub handle: AllocHandle,
}

/// A pinned key (see [`Store::pin`]): its bytes and space stay allocated
/// while this is alive, even if the key is deleted. Dropping it unpins.
pub struct Pin {
    info: KeyInfo,
    fd: OwnedFd,
    coherence: Coherence,
    counters: Arc<AtomicCounters>,
    pins: Arc<PinSet>,
}

impl Drop for Pin {
    fn drop(&mut self) {
        self.pins.remove(self.info.ino);
    }
}

impl Pin {
    /// The key's name.
    pub fn key(&self) -> &str {
        &self.info.name
    }

    /// The pinned key's attributes (as when it was pinned).
    pub fn info(&self) -> &KeyInfo {
        &self.info
    }

    /// Maps the pinned key (works after it was deleted too). Not cached:
    /// each call makes a new mapping.
    pub fn map(&self) -> Result<Mapping> {
        let inner = MapInner::map(
            self.fd.as_fd(),
            self.info.size,
            self.info.ino,
            self.coherence,
            &self.counters,
        )
        .map_err(|e| Error::io("mmap", self.info.name.as_str(), e))?;
        Ok(Mapping {
            inner: Arc::new(inner),
        })
    }

    /// Unpins (the same as dropping).
    pub fn unpin(self) {}
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pin").field("key", &self.info).finish()
    }
}
