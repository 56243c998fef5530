//! `marufs._native`: the Python classes of the `marufs` package, over the
//! `maru` client library.
//!
//! Zero copy: an [`Allocation`] exports a writable buffer over its key's
//! mapping and a [`KeyView`] a read-only one (the buffer protocol: feed them
//! to `memoryview`, `numpy.frombuffer`, `torch.frombuffer`). A buffer holds a
//! reference to the object that exported it, and the object owns the
//! mapping, so the memory stays mapped while any buffer points into it.
//! Operations that would unmap it while buffers exist are deferred (free) or
//! refused (publishing a named allocation).
//!
//! The GIL is released around every system call and cache maintenance pass;
//! copies from or into Python objects keep it (the source may be a Python
//! object other threads could resize).

use std::ffi::{c_int, c_void};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use pyo3::buffer::PyBuffer;
use pyo3::create_exception;
use pyo3::exceptions::{PyBufferError, PyOSError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyDict;

create_exception!(
    marufs,
    MarufsError,
    PyOSError,
    "An error of the marufs library: an OSError whose errno is the system's \
     (EEXIST, ENOENT, ENOSPC, EACCES...) and whose message names the key or \
     application concerned."
);

fn err(e: maru::Error) -> PyErr {
    let errno = e.errno().unwrap_or(libc::EIO);
    MarufsError::new_err((errno, e.to_string()))
}

fn buffer_err(msg: &str) -> PyErr {
    PyBufferError::new_err(msg.to_string())
}

/// Locks `m`, recovering from a poisoned lock (a panic in another thread
/// leaves the state as consistent as any Rust value: nothing half-written).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Fills `view` for `len` bytes at `ptr`, exported by `obj`.
///
/// # Safety
/// `view` is the pointer CPython passed to `bf_getbuffer`; `ptr..ptr+len` is
/// memory owned by `obj` that stays valid (mapped) while `obj` lives, and
/// writable if `readonly` is false.
unsafe fn fill_buffer(
    obj: &Bound<'_, PyAny>,
    view: *mut ffi::Py_buffer,
    flags: c_int,
    ptr: *const u8,
    len: usize,
    readonly: bool,
) -> PyResult<()> {
    let len = ffi::Py_ssize_t::try_from(len).map_err(|_| buffer_err("mapping too large"))?;
    // SAFETY: per this function's contract. PyBuffer_FillInfo checks
    // `flags` (a writable request on a read-only export fails with
    // BufferError), stores a new reference to `obj` in `view.obj` (which
    // keeps `obj`, hence the mapping, alive until the buffer is released)
    // and describes a contiguous array of unsigned bytes.
    let r = unsafe {
        ffi::PyBuffer_FillInfo(
            view,
            obj.as_ptr(),
            ptr as *mut c_void,
            len,
            c_int::from(readonly),
            flags,
        )
    };
    if r == -1 {
        Err(PyErr::fetch(obj.py()))
    } else {
        Ok(())
    }
}

fn coherence(name: &str) -> PyResult<maru::Coherence> {
    Ok(match name {
        "kernel" => maru::Coherence::Kernel,
        "flush" => maru::Coherence::Flush,
        "hardware" => maru::Coherence::Hardware,
        _ => {
            return Err(PyValueError::new_err(format!(
                "coherence must be 'kernel', 'flush' or 'hardware', not {name:?}"
            )))
        }
    })
}

fn batched(name: &str) -> PyResult<maru::BatchedLookup> {
    Ok(match name {
        "auto" => maru::BatchedLookup::Auto,
        "always" => maru::BatchedLookup::Always,
        "never" => maru::BatchedLookup::Never,
        _ => {
            return Err(PyValueError::new_err(format!(
                "batched_lookup must be 'auto', 'always' or 'never', not {name:?}"
            )))
        }
    })
}

// ------------------------------------------------------------------ Store

/// One application's keys in a marufs pool (or any directory standing in for
/// one): `Store(mount, app)`.
#[pyclass(module = "marufs._native", frozen)]
struct Store {
    inner: maru::Store,
    mount: PathBuf,
}

#[pymethods]
impl Store {
    #[new]
    #[pyo3(signature = (mount, app, *, create=true, dir_mode=None, key_mode=None,
        cache_capacity=None, validate_hits=true, coherence="kernel", batched_lookup="auto",
        quota=None, high_pct=95, low_pct=85))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        mount: PathBuf,
        app: &str,
        create: bool,
        dir_mode: Option<u32>,
        key_mode: Option<u32>,
        cache_capacity: Option<usize>,
        validate_hits: bool,
        coherence: &str,
        batched_lookup: &str,
        quota: Option<u64>,
        high_pct: u8,
        low_pct: u8,
    ) -> PyResult<Self> {
        if low_pct > high_pct || high_pct > 100 {
            return Err(PyValueError::new_err(format!(
                "watermarks must satisfy low_pct <= high_pct <= 100 (got {low_pct}, {high_pct})"
            )));
        }
        let mut o = maru::StoreOptions::default()
            .create(create)
            .validate_hits(validate_hits)
            .coherence(self::coherence(coherence)?)
            .batched_lookup(batched(batched_lookup)?)
            .eviction(maru::EvictionPolicy {
                quota,
                high_pct,
                low_pct,
            });
        if let Some(m) = dir_mode {
            o = o.dir_mode(m);
        }
        if let Some(m) = key_mode {
            o = o.key_mode(m);
        }
        if let Some(c) = cache_capacity {
            o = o.cache_capacity(c);
        }
        let inner = py
            .detach(|| maru::Store::open_with(&mount, app, &o))
            .map_err(err)?;
        Ok(Store { inner, mount })
    }

    /// The application name.
    #[getter]
    fn app(&self) -> &str {
        self.inner.app()
    }

    /// The mount point (or directory) the store was opened on.
    #[getter]
    fn mount(&self) -> PathBuf {
        self.mount.clone()
    }

    /// Whether the directory is a mounted marufs.
    #[getter]
    fn is_marufs(&self) -> bool {
        self.inner.pool().is_marufs()
    }

    /// How batched lookups are done: 'unknown' (none yet), 'ioctl', 'fallback'.
    #[getter]
    fn lookup_mode(&self) -> &'static str {
        self.inner.lookup_mode().name()
    }

    /// Allocates `size` bytes of pool memory, zero-filled and writable.
    /// Without `key`, an unnamed allocation, named when published; with it,
    /// the key is reserved at once (a second writer gets EEXIST before
    /// writing anything).
    /// With `evict=True`, makes room first by the store's eviction policy
    /// (see `evict`): past the quota's high watermark, or when the pool is
    /// full (ENOSPC), the application's oldest keys are deleted.
    #[pyo3(signature = (size, key=None, *, evict=false))]
    fn alloc(
        &self,
        py: Python<'_>,
        size: u64,
        key: Option<&str>,
        evict: bool,
    ) -> PyResult<Allocation> {
        let h = py
            .detach(|| match (key, evict) {
                (k, true) => self.inner.alloc_evicting(size, k),
                (Some(k), false) => self.inner.alloc(k, size),
                (None, false) => self.inner.alloc_unnamed(size),
            })
            .map_err(err)?;
        Ok(Allocation::new(h))
    }

    /// Publishes an allocation: True if published, False if the name was
    /// taken (deduplication; the allocation is left as it was, writable, for
    /// `free` or another name). An unnamed allocation needs `key` and keeps
    /// its memory: its buffers now read the published, immutable key (on
    /// marufs, writing through them after this kills the process with
    /// SIGBUS). A named one is published under its own name by unmapping it,
    /// so no buffer may point into it (BufferError).
    #[pyo3(signature = (allocation, key=None))]
    fn publish(
        &self,
        py: Python<'_>,
        allocation: &Allocation,
        key: Option<&str>,
    ) -> PyResult<bool> {
        allocation.publish(py, &self.inner, key)
    }

    /// Discards an allocation (unpublished: nothing appears) or drops a
    /// published one's mapping (the key stays): no more buffers are made
    /// from it, and its memory goes with the object (its last reference,
    /// e.g. a tensor made from it).
    fn free(&self, allocation: &Allocation) {
        allocation.free()
    }

    /// Stores a copy of `data` (any bytes-like object) as `key`: True if
    /// stored, False if the key existed (nothing written).
    fn put(&self, py: Python<'_>, key: &str, data: &Bound<'_, PyAny>) -> PyResult<bool> {
        let buf = match PyBuffer::<u8>::get(data) {
            Ok(b) => b,
            // Typed arrays (numpy, torch via numpy, array.array): their bytes.
            Err(_) => {
                let bytes = pyo3::types::PyMemoryView::from(data)?.call_method1("cast", ("B",))?;
                PyBuffer::<u8>::get(&bytes)?
            }
        };
        let len = buf.len_bytes() as u64;
        // Unnamed until complete: a writer that dies half way (SIGKILL,
        // os._exit) leaves nothing behind, where a named allocation's
        // release would publish what it had.
        let h = py
            .detach(|| {
                maru::validate_name(key)?;
                if self.inner.exists(key)? {
                    return Ok(None);
                }
                self.inner.alloc_unnamed(len).map(Some)
            })
            .map_err(err)?;
        let Some(mut h) = h else {
            return Ok(false);
        };
        buf.copy_to_slice(py, &mut h[..])?;
        drop(buf);
        py.detach(|| self.inner.store_as(h, key)).map_err(err)
    }

    /// A zero-copy read-only view of `key`, or None if there is no such key.
    fn retrieve(&self, py: Python<'_>, key: &str) -> PyResult<Option<KeyView>> {
        let m = py.detach(|| self.inner.retrieve(key)).map_err(err)?;
        Ok(m.map(|map| KeyView {
            key: key.to_string(),
            map,
        }))
    }

    /// The same as `retrieve` for many keys, with one batched lookup.
    fn batch_retrieve(&self, py: Python<'_>, keys: Vec<String>) -> PyResult<Vec<Option<KeyView>>> {
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let maps = py
            .detach(|| self.inner.batch_retrieve(&refs))
            .map_err(err)?;
        Ok(keys
            .into_iter()
            .zip(maps)
            .map(|(key, m)| m.map(|map| KeyView { key, map }))
            .collect())
    }

    /// Whether `key` exists (is published).
    fn exists(&self, py: Python<'_>, key: &str) -> PyResult<bool> {
        py.detach(|| self.inner.exists(key)).map_err(err)
    }

    /// `exists` for many keys: one batched lookup (one system call per
    /// 4096 names on marufs).
    fn batch_exists(&self, py: Python<'_>, keys: Vec<String>) -> PyResult<Vec<bool>> {
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        py.detach(|| self.inner.batch_exists(&refs)).map_err(err)
    }

    /// The attributes of `key`, or None.
    fn stat(&self, py: Python<'_>, key: &str) -> PyResult<Option<KeyInfo>> {
        let i = py.detach(|| self.inner.stat(key)).map_err(err)?;
        Ok(i.map(KeyInfo::from))
    }

    /// `stat` for many keys, with one batched lookup.
    fn batch_stat(&self, py: Python<'_>, keys: Vec<String>) -> PyResult<Vec<Option<KeyInfo>>> {
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let v = py.detach(|| self.inner.batch_stat(&refs)).map_err(err)?;
        Ok(v.into_iter().map(|i| i.map(KeyInfo::from)).collect())
    }

    /// Deletes `key`: False if it did not exist. Views and pins of it stay
    /// valid; its space returns when none is left on any host.
    fn delete(&self, py: Python<'_>, key: &str) -> PyResult<bool> {
        py.detach(|| self.inner.delete(key)).map_err(err)
    }

    /// Pins `key` (its bytes and space stay, even if it is deleted, until
    /// `unpin`), or None if there is no such key.
    fn pin(&self, py: Python<'_>, key: &str) -> PyResult<Option<Pin>> {
        match py.detach(|| self.inner.pin(key)) {
            Ok(p) => Ok(Some(Pin {
                pin: Mutex::new(Some(Arc::new(p))),
                key: key.to_string(),
            })),
            Err(maru::Error::NotFound(_)) => Ok(None),
            Err(e) => Err(err(e)),
        }
    }

    /// Deletes the application's oldest-published keys (skipping keys
    /// pinned through this store) until at least `nbytes` of pool space is
    /// freed. Safe for readers on every host: views and pins of a deleted
    /// key stay valid. Returns {"keys": n, "bytes": b}.
    fn evict<'py>(&self, py: Python<'py>, nbytes: u64) -> PyResult<Bound<'py, PyDict>> {
        let e = py.detach(|| self.inner.evict(nbytes)).map_err(err)?;
        evicted(py, e)
    }

    /// Evicts what the policy (quota, high_pct, low_pct) requires before
    /// allocating `size` bytes; nothing if there is room.
    fn make_room<'py>(&self, py: Python<'py>, size: u64) -> PyResult<Bound<'py, PyDict>> {
        let e = py.detach(|| self.inner.make_room(size)).map_err(err)?;
        evicted(py, e)
    }

    /// The keys of the application.
    fn list(&self, py: Python<'_>) -> PyResult<Vec<KeyInfo>> {
        let v = py.detach(|| self.inner.list()).map_err(err)?;
        Ok(v.into_iter().map(KeyInfo::from).collect())
    }

    /// Usage of the pool and the application, and the operation counters,
    /// as a dict.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = py.detach(|| self.inner.stats()).map_err(err)?;
        let d = PyDict::new(py);
        let pool = PyDict::new(py);
        pool.set_item("total", s.pool.total)?;
        pool.set_item("used", s.pool.used)?;
        pool.set_item("free", s.pool.free)?;
        pool.set_item("available", s.pool.available)?;
        pool.set_item("block_size", s.pool.block_size)?;
        pool.set_item("entries_total", s.pool.entries_total)?;
        pool.set_item("entries_free", s.pool.entries_free)?;
        pool.set_item("marufs", s.pool.marufs)?;
        d.set_item("pool", pool)?;
        let app = PyDict::new(py);
        app.set_item("name", &s.app.name)?;
        app.set_item("keys", s.app.keys)?;
        app.set_item("bytes", s.app.bytes)?;
        app.set_item("allocated", s.app.allocated)?;
        d.set_item("app", app)?;
        d.set_item("counters", counters(py, &s.counters)?)?;
        d.set_item("cached_mappings", s.cached_mappings)?;
        d.set_item("cached_bytes", s.cached_bytes)?;
        d.set_item("lookup_mode", s.lookup_mode.name())?;
        Ok(d)
    }

    /// The store's operation counters (since it was opened), as a dict.
    fn counters<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        counters(py, &self.inner.counters())
    }

    /// Drops cached mappings of keys deleted or replaced since; returns how
    /// many.
    fn trim_cache(&self, py: Python<'_>) -> PyResult<usize> {
        py.detach(|| self.inner.trim_cache()).map_err(err)
    }

    /// Drops every cached mapping (views handed out stay valid); returns how
    /// many.
    fn clear_cache(&self, py: Python<'_>) -> usize {
        py.detach(|| self.inner.clear_cache())
    }

    fn __repr__(&self) -> String {
        format!(
            "marufs.Store(mount={:?}, app={:?})",
            self.mount.display().to_string(),
            self.inner.app()
        )
    }
}

fn evicted(py: Python<'_>, e: maru::Evicted) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("keys", e.keys)?;
    d.set_item("bytes", e.bytes)?;
    Ok(d)
}

fn counters<'py>(py: Python<'py>, c: &maru::Counters) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, v) in [
        ("hits", c.hits),
        ("misses", c.misses),
        ("mmaps", c.mmaps),
        ("munmaps", c.munmaps),
        ("evictions", c.evictions),
        ("ioctl_lookups", c.ioctl_lookups),
        ("stat_lookups", c.stat_lookups),
        ("stored", c.stored),
        ("deduplicated", c.deduplicated),
        ("discarded", c.discarded),
        ("deleted", c.deleted),
        ("evicted", c.evicted),
        ("usage_listings", c.usage_listings),
    ] {
        d.set_item(k, v)?;
    }
    Ok(d)
}

// ------------------------------------------------------------- Allocation

enum Slot {
    /// Unpublished: the key's writable mapping.
    Writable(maru::AllocHandle),
    /// An unnamed allocation, published: the same memory, read-only.
    Published(maru::Mapping),
    /// Being published (by another thread, with the GIL released).
    Busy,
    /// A named allocation, published (and unmapped), or freed.
    Gone,
}

struct AllocState {
    slot: Slot,
    /// Buffers exported and not yet released.
    exports: usize,
    /// `free` was called while buffers existed: done at the last release.
    free_pending: bool,
    /// Published under this name (None: not published).
    published_as: Option<String>,
    size: usize,
}

/// Pool memory being written: a writable buffer over an unpublished key.
/// Write into it (`memoryview(a)[:n] = data`, `numpy.frombuffer(a, ...)`),
/// then `Store.publish` it.
#[pyclass(module = "marufs._native", frozen)]
struct Allocation {
    state: Mutex<AllocState>,
}

impl Allocation {
    fn new(h: maru::AllocHandle) -> Self {
        let size = h.len();
        Allocation {
            state: Mutex::new(AllocState {
                slot: Slot::Writable(h),
                exports: 0,
                free_pending: false,
                published_as: None,
                size,
            }),
        }
    }

    fn publish(&self, py: Python<'_>, store: &maru::Store, key: Option<&str>) -> PyResult<bool> {
        // The state is never locked across a GIL release: a thread holding
        // the GIL and waiting for the lock (a buffer request) would deadlock
        // with this one waiting for the GIL. The handle is taken out (the
        // slot says Busy) and put back.
        let mut st = lock(&self.state);
        if st.free_pending {
            return Err(PyValueError::new_err("the allocation was freed"));
        }
        let h = match std::mem::replace(&mut st.slot, Slot::Busy) {
            Slot::Writable(h) => h,
            other => {
                st.slot = other;
                return Err(PyValueError::new_err(
                    "the allocation was published or freed already, or is being published",
                ));
            }
        };
        if h.is_named() {
            let own = h.key().to_string();
            if key.is_some_and(|k| k != own) {
                st.slot = Slot::Writable(h);
                return Err(PyValueError::new_err(format!(
                    "the allocation was made for key {own:?}: it is published under that name"
                )));
            }
            drop(st);
            // Published in place: the address stays mapped (read-only, the
            // published key's pages), so buffers and tensors made from it
            // stay valid, whether or not they are still counted as exports.
            let r = py.detach(|| h.publish_remapped());
            let mut st = lock(&self.state);
            return match r {
                Ok(m) => {
                    st.slot = Slot::Published(m);
                    st.published_as = Some(own);
                    Ok(true)
                }
                Err(e) => {
                    st.slot = Slot::Gone;
                    Err(err(e))
                }
            };
        }
        let Some(key) = key else {
            st.slot = Slot::Writable(h);
            return Err(PyValueError::new_err(
                "an unnamed allocation needs a key to be published under",
            ));
        };
        drop(st);
        // Buffers exported before keep pointing at the same memory, which
        // the link leaves mapped (and `publish_mapped` gives back on failure).
        let r = py.detach(|| store.publish_mapped(h, key));
        let mut st = lock(&self.state);
        match r {
            Ok(m) => {
                st.slot = Slot::Published(m);
                st.published_as = Some(key.to_string());
                Ok(true)
            }
            Err(maru::Unpublished { error, handle }) => {
                st.slot = Slot::Writable(handle);
                match error {
                    maru::Error::Exists(_) => Ok(false),
                    e => Err(err(e)),
                }
            }
        }
    }

    fn free(&self) {
        // Never unmapped while this object lives: a consumer may hold a
        // pointer into the memory with no buffer export counted (torch's
        // frombuffer releases its buffer at once and keeps a reference to
        // the object instead). The key is discarded, and its memory
        // unmapped, when the object goes (its last reference).
        lock(&self.state).free_pending = true;
    }
}

#[pymethods]
impl Allocation {
    /// Size in bytes.
    #[getter]
    fn size(&self) -> usize {
        lock(&self.state).size
    }

    fn __len__(&self) -> usize {
        lock(&self.state).size
    }

    /// The key it is reserved for or was published as (None: unnamed and
    /// not published).
    #[getter]
    fn key(&self) -> Option<String> {
        let st = lock(&self.state);
        match (&st.slot, &st.published_as) {
            (_, Some(k)) => Some(k.clone()),
            (Slot::Writable(h), None) if h.is_named() => Some(h.key().to_string()),
            _ => None,
        }
    }

    /// Whether it was published.
    #[getter]
    fn published(&self) -> bool {
        lock(&self.state).published_as.is_some()
    }

    /// Whether it can still be written (not published, not freed).
    #[getter]
    fn writable(&self) -> bool {
        let st = lock(&self.state);
        matches!(st.slot, Slot::Writable(_)) && !st.free_pending
    }

    /// Buffers exported from it and not yet released.
    #[getter]
    fn exports(&self) -> usize {
        lock(&self.state).exports
    }

    /// See `Store.free`.
    #[pyo3(name = "free")]
    fn py_free(&self) {
        self.free()
    }

    /// The buffer protocol: writable while unpublished, read-only once an
    /// unnamed allocation is published.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let this = slf.get();
        let mut st = lock(&this.state);
        if st.free_pending {
            return Err(buffer_err("the allocation was freed"));
        }
        let (ptr, len, readonly) = match &st.slot {
            Slot::Writable(h) => (h.as_ptr(), h.len(), false),
            Slot::Published(m) => (m.as_ptr(), m.len(), true),
            Slot::Busy => return Err(buffer_err("the allocation is being published")),
            Slot::Gone => return Err(buffer_err("the allocation failed to publish")),
        };
        // SAFETY: `view` comes from CPython's bf_getbuffer; ptr/len is the
        // mapping owned by this object's slot, which is neither unmapped nor
        // replaced while `exports > 0` (free is deferred, a named publish is
        // refused, an unnamed publish keeps the memory), and `slf`'s
        // reference in `view.obj` keeps the object alive; it is writable
        // exactly while the key is unpublished.
        unsafe { fill_buffer(slf.as_any(), view, flags, ptr, len, readonly) }?;
        st.exports += 1;
        Ok(())
    }

    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {
        let mut st = lock(&self.state);
        st.exports = st.exports.saturating_sub(1);
    }

    fn __repr__(&self) -> String {
        let st = lock(&self.state);
        let what = match (&st.slot, &st.published_as) {
            (_, Some(k)) => format!("published as {k:?}"),
            (Slot::Writable(h), None) if h.is_named() => format!("for {:?}", h.key()),
            (Slot::Writable(_), None) => "unnamed".to_string(),
            _ => "freed".to_string(),
        };
        format!("marufs.Allocation({} bytes, {what})", st.size)
    }
}

// ---------------------------------------------------------------- KeyView

/// A zero-copy, read-only view of a published key's bytes (the buffer
/// protocol). Valid as long as it (or any buffer made from it) lives, even
/// if the key is deleted.
#[pyclass(module = "marufs._native", frozen)]
struct KeyView {
    key: String,
    map: maru::Mapping,
}

#[pymethods]
impl KeyView {
    /// The key's name.
    #[getter]
    fn key(&self) -> &str {
        &self.key
    }

    /// Size in bytes.
    #[getter]
    fn size(&self) -> usize {
        self.map.len()
    }

    /// The key's inode number (a new one when the name is deleted and
    /// stored again).
    #[getter]
    fn ino(&self) -> u64 {
        self.map.ino()
    }

    fn __len__(&self) -> usize {
        self.map.len()
    }

    fn __bytes__<'py>(&self, py: Python<'py>) -> Bound<'py, pyo3::types::PyBytes> {
        pyo3::types::PyBytes::new(py, &self.map[..])
    }

    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let m = &slf.get().map;
        // SAFETY: `view` comes from CPython's bf_getbuffer; the mapping is
        // owned by this (frozen) object for its whole life, which the
        // reference stored in `view.obj` extends past the buffer's; it is
        // exported read-only.
        unsafe { fill_buffer(slf.as_any(), view, flags, m.as_ptr(), m.len(), true) }
    }

    fn __repr__(&self) -> String {
        format!("marufs.KeyView({:?}, {} bytes)", self.key, self.map.len())
    }
}

// -------------------------------------------------------------------- Pin

/// A pinned key: its bytes and space stay until `unpin` (or the end of a
/// `with` block), even if it is deleted meanwhile.
#[pyclass(module = "marufs._native", frozen)]
struct Pin {
    /// Shared with a `map` in progress (the lock is never held across a
    /// GIL release).
    pin: Mutex<Option<Arc<maru::Pin>>>,
    key: String,
}

#[pymethods]
impl Pin {
    /// The key's name.
    #[getter]
    fn key(&self) -> &str {
        &self.key
    }

    /// Whether it still pins its key.
    #[getter]
    fn pinned(&self) -> bool {
        lock(&self.pin).is_some()
    }

    /// Size of the pinned key.
    #[getter]
    fn size(&self) -> PyResult<u64> {
        match &*lock(&self.pin) {
            Some(p) => Ok(p.info().size),
            None => Err(PyValueError::new_err("unpinned")),
        }
    }

    /// Maps the pinned key (also after it was deleted).
    fn map(&self, py: Python<'_>) -> PyResult<KeyView> {
        let Some(p) = lock(&self.pin).clone() else {
            return Err(PyValueError::new_err("unpinned"));
        };
        let map = py.detach(|| p.map()).map_err(err)?;
        Ok(KeyView {
            key: self.key.clone(),
            map,
        })
    }

    /// Releases the pin (idempotent).
    fn unpin(&self, py: Python<'_>) {
        let p = lock(&self.pin).take();
        py.detach(|| drop(p));
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.unpin(py);
        false
    }

    fn __repr__(&self) -> String {
        let state = if self.pinned() { "pinned" } else { "unpinned" };
        format!("marufs.Pin({:?}, {state})", self.key)
    }
}

// ---------------------------------------------------------------- KeyInfo

/// A key's attributes.
#[pyclass(module = "marufs._native", frozen, get_all)]
struct KeyInfo {
    /// The key's name.
    name: String,
    /// Size in bytes.
    size: u64,
    /// Pool space it occupies.
    allocated: u64,
    /// Mode bits, file type included.
    mode: u32,
    /// Owner.
    uid: u32,
    /// Group.
    gid: u32,
    /// Publication time, ns since the epoch.
    mtime_ns: i64,
    /// Inode number.
    ino: u64,
}

impl From<maru::KeyInfo> for KeyInfo {
    fn from(i: maru::KeyInfo) -> Self {
        KeyInfo {
            name: i.name,
            size: i.size,
            allocated: i.allocated,
            mode: i.mode,
            uid: i.uid,
            gid: i.gid,
            mtime_ns: i.mtime_ns,
            ino: i.ino,
        }
    }
}

#[pymethods]
impl KeyInfo {
    fn __repr__(&self) -> String {
        format!(
            "marufs.KeyInfo(name={:?}, size={}, mode=0o{:o}, ino={})",
            self.name, self.size, self.mode, self.ino
        )
    }
}

/// Checks a key or application name: raises MarufsError (EINVAL) if the
/// filesystem cannot hold it.
#[pyfunction]
fn validate_name(name: &str) -> PyResult<()> {
    maru::validate_name(name).map_err(err)
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("MarufsError", m.py().get_type::<MarufsError>())?;
    m.add("NAME_MAX", maru::NAME_MAX)?;
    m.add_class::<Store>()?;
    m.add_class::<Allocation>()?;
    m.add_class::<KeyView>()?;
    m.add_class::<Pin>()?;
    m.add_class::<KeyInfo>()?;
    m.add_function(wrap_pyfunction!(validate_name, m)?)?;
    Ok(())
}
