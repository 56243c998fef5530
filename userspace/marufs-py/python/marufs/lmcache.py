"""LMCache on marufs: a storage plugin (in-process mode) that is also
LMCache's memory allocator, and an L2 adapter (multi-process mode).

Both map LMCache's keys to marufs keys with :func:`app_name` and
:func:`key_name`: the model names the application directory, the rest of the
key is escaped into a name (hashed when it would exceed 255 bytes).

In-process mode (``LMCacheEngineConfig``)::

    chunk_size: 256
    local_cpu: false
    max_local_cpu_size: 0          # marufs is the allocator: zero copy
    storage_plugins: ["MaruBackend"]
    extra_config:
      storage_plugin.MaruBackend.module_path: marufs.lmcache
      storage_plugin.MaruBackend.class_name: MarufsBackend
      marufs.mount: /mnt/maru
      marufs.quota_gb: 64          # optional: the application's quota

LMCache 0.5.6 makes a backend its primary allocator only when the backend is
named ``MaruBackend`` and there is no local CPU backend: then the engine's
KV chunks are allocated in pool memory, a store publishes them in place and a
retrieve maps them (no copy either way). Under any other name, or with a
local CPU backend, the plugin still works, as a secondary allocator that
LMCache copies into on every store.

Multi-process mode (the L2 adapter)::

    --l2-adapter '{"type": "plugin", "module_path": "marufs.lmcache",
                   "class_name": "MarufsL2Adapter",
                   "adapter_params": {"mount": "/mnt/maru"}}'

This module imports ``torch`` and ``lmcache`` (tested with LMCache 0.5.6);
the rest of the package does not need them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from lmcache.lmcache_native import Bitmap
from lmcache.utils import CacheEngineKey
from lmcache.v1.distributed.internal_api import L2StoreResult
from lmcache.v1.distributed.l2_adapters import L2AdapterInterface
from lmcache.v1.memory_management import (
    MemoryAllocatorInterface,
    MemoryFormat,
    MemoryObj,
    MemoryObjMetadata,
    TensorMemoryObj,
)
from lmcache.v1.platform import create_event_notifier
from lmcache.v1.storage_backend.abstract_backend import (
    AllocatorBackendInterface,
    StoragePluginInterface,
)

import marufs

logger = logging.getLogger(__name__)

__all__ = [
    "MarufsAllocator",
    "MarufsBackend",
    "MarufsL2Adapter",
    "MarufsMemoryObj",
    "app_name",
    "escape",
    "key_name",
]

# Bytes kept as they are in a name; every other byte is %XX.
_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.@=+,")


def escape(s: str) -> str:
    """A marufs name for `s`: UTF-8 bytes outside ``[A-Za-z0-9_-.@=+,]`` (and a
    leading ``.``) become ``%XX``; the result is hashed down when it would
    exceed ``NAME_MAX`` (the first 190 bytes, ``~``, then the SHA-256 of the
    whole string in hex). Distinct strings give distinct names (but for a
    SHA-256 collision)."""
    b = s.encode()
    out = []
    for i, c in enumerate(b):
        if c in _SAFE and not (i == 0 and c == ord(".")):
            out.append(chr(c))
        else:
            out.append(f"%{c:02X}")
    name = "".join(out)
    if not name:
        name = "%"
    if len(name) > marufs.NAME_MAX:
        # `~` never appears in an escaped name, so hashed and unhashed names
        # cannot collide.
        name = name[:190] + "~" + hashlib.sha256(b).hexdigest()
    return name


def app_name(model_name: str) -> str:
    """The application directory of a model's keys."""
    return escape(model_name)


def key_name(key: Any, shared: bool = False) -> str:
    """The name of an LMCache key in its model's directory: a
    ``CacheEngineKey`` (in-process mode) or an ``ObjectKey`` (MP mode). With
    `shared` (one directory configured for every model) the model's name is
    kept in the key's name, so that models never read each other's chunks."""
    if isinstance(key, CacheEngineKey):
        s = key.to_string()
        prefix = key.model_name + "@"
        if not shared and s.startswith(prefix):
            s = s[len(prefix) :]
        return escape(s)
    s = f"{key.kv_rank}@{key.object_group_id}@{key.chunk_hash.hex()}@{key.cache_salt}"
    return escape(f"{key.model_name}@{s}" if shared else s)


def _frombuffer(buf: Any) -> torch.Tensor:
    # A retrieved key is a read-only buffer: torch warns that it may not
    # write through it, which LMCache never does (reads copy out of it).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.frombuffer(buf, dtype=torch.uint8)


class MarufsMemoryObj(TensorMemoryObj):
    """A ``TensorMemoryObj`` over pool memory: an allocation being written
    (``allocation``) or a retrieved key's mapping (``view``). The object keeps
    the memory mapped for as long as it lives."""

    def __init__(
        self,
        raw: torch.Tensor,
        meta: MemoryObjMetadata,
        parent: MemoryAllocatorInterface,
        allocation: marufs.Allocation | None = None,
        view: marufs.KeyView | None = None,
    ) -> None:
        super().__init__(raw, meta, parent)
        self.allocation = allocation
        self.view = view
        # The marufs pin a lookup took for this key, moved onto the object
        # that reads it: released when LMCache unpins the object (its
        # asynchronous path) or frees it (its synchronous one).
        self.marufs_pin: marufs.Pin | None = None

    def release_pin(self) -> None:
        p, self.marufs_pin = self.marufs_pin, None
        if p is not None:
            p.unpin()

    def unpin(self) -> bool:
        self.release_pin()
        if self.meta.pin_count > 0:
            return super().unpin()
        return True


def _nbytes(shapes: list[torch.Size], dtypes: list[torch.dtype]) -> int:
    return sum(s.numel() * d.itemsize for s, d in zip(shapes, dtypes, strict=True))


def _as_lists(shapes: Any, dtypes: Any) -> tuple[list[torch.Size], list[torch.dtype]]:
    if isinstance(shapes, torch.Size):
        shapes = [shapes]
    if isinstance(dtypes, torch.dtype):
        dtypes = [dtypes]
    return list(shapes), list(dtypes)


class MarufsAllocator(MemoryAllocatorInterface):
    """LMCache's allocator over a :class:`marufs.Store`: each memory object is
    one unnamed allocation, named when the backend publishes it. With
    ``evict``, a full quota or pool evicts the application's oldest unpinned
    keys first (the store's policy); still full: ``None`` (LMCache then skips
    the store)."""

    def __init__(self, store: marufs.Store) -> None:
        self.store = store
        self.failed = 0

    def allocate(
        self,
        shapes: Any,
        dtypes: Any,
        fmt: MemoryFormat = MemoryFormat.UNDEFINED,
        allocator_type: str | None = None,
        evict: bool = True,
    ) -> MemoryObj | None:
        shapes, dtypes = _as_lists(shapes, dtypes)
        n = _nbytes(shapes, dtypes)
        try:
            a = self.store.alloc(n, evict=evict)
        except marufs.MarufsError as e:
            if e.errno in (28, 122):  # ENOSPC, EDQUOT
                self.failed += 1
                return None
            raise
        meta = MemoryObjMetadata(
            shape=shapes[0],
            dtype=dtypes[0],
            address=0,
            phy_size=n,
            ref_count=1,
            fmt=fmt,
            shapes=shapes,
            dtypes=dtypes,
        )
        return MarufsMemoryObj(_frombuffer(a), meta, self, allocation=a)

    def batched_allocate(
        self,
        shapes: Any,
        dtypes: Any,
        batch_size: int,
        fmt: MemoryFormat = MemoryFormat.UNDEFINED,
        allocator_type: str | None = None,
        evict: bool = True,
    ) -> list[MemoryObj] | None:
        out: list[MemoryObj] = []
        for _ in range(batch_size):
            o = self.allocate(shapes, dtypes, fmt, allocator_type, evict)
            if o is None:
                for x in out:
                    x.ref_count_down()
                return None
            out.append(o)
        return out

    def free(self, memory_obj: MemoryObj, allocator_type: str | None = None) -> None:
        # An unpublished allocation is discarded (nothing appears); a
        # published one or a view only loses this mapping. The memory goes
        # with the last reference (the object's tensor included).
        if not isinstance(memory_obj, MarufsMemoryObj) or not memory_obj.is_valid():
            return
        memory_obj.invalidate()
        memory_obj.release_pin()
        if memory_obj.allocation is not None:
            memory_obj.allocation.free()

    def batched_free(
        self,
        memory_objs: list[MemoryObj],
        allocator_type: str | None = None,
        update_stats: bool = True,
    ) -> None:
        for o in memory_objs:
            self.free(o)


def _store_from_config(extra: dict[str, Any], model_name: str) -> marufs.Store:
    quota = extra.get("marufs.quota_gb")
    return marufs.Store(
        extra.get("marufs.mount", os.environ.get("MARUFS_MOUNT", "/mnt/maru")),
        extra.get("marufs.app") or app_name(model_name),
        quota=int(float(quota) * (1 << 30)) if quota is not None else None,
        high_pct=int(extra.get("marufs.high_pct", 95)),
        low_pct=int(extra.get("marufs.low_pct", 85)),
    )


class MarufsBackend(StoragePluginInterface, AllocatorBackendInterface):
    """The in-process storage plugin: every LMCache chunk is one marufs key,
    stored zero copy (published in place) and retrieved zero copy (mapped).

    ``extra_config`` keys: ``marufs.mount`` (default ``/mnt/maru`` or
    ``$MARUFS_MOUNT``), ``marufs.app`` (default: the model name, escaped),
    ``marufs.quota_gb``, ``marufs.high_pct``, ``marufs.low_pct`` (the
    eviction policy of :class:`marufs.Store`)."""

    def __init__(
        self,
        dst_device: str = "cpu",
        config: Any = None,
        metadata: Any = None,
        local_cpu_backend: Any = None,
        loop: Any = None,
    ) -> None:
        StoragePluginInterface.__init__(self, dst_device, config, metadata, local_cpu_backend, loop)
        if metadata is None:
            raise ValueError("MarufsBackend needs LMCache's metadata (model and KV shape)")
        shapes, dtypes = metadata.get_shapes(), metadata.get_dtypes()
        if len(shapes) != 1:
            raise ValueError(f"MarufsBackend stores one KV group per chunk, not {len(shapes)}")
        self.shape, self.dtype = shapes[0], dtypes[0]
        self.fmt = MemoryFormat.KV_MLA_FMT if metadata.use_mla else MemoryFormat.KV_2LTD
        self.token_dim = self.fmt.token_dim()
        self.token_bytes = _nbytes([self.shape], [self.dtype]) // self.shape[self.token_dim]
        extra = dict(getattr(config, "extra_config", None) or {})
        self.store = _store_from_config(extra, metadata.model_name)
        self.shared = bool(extra.get("marufs.app"))
        self.failed_puts = 0
        self.allocator = MarufsAllocator(self.store)
        self.pins: dict[str, list[marufs.Pin]] = {}
        self.lock = threading.Lock()
        self.stored = 0
        self.deduplicated = 0

    def __str__(self) -> str:
        return "MarufsBackend"

    def name(self, key: CacheEngineKey) -> str:
        return key_name(key, self.shared)

    # AllocatorBackendInterface
    def initialize_allocator(self, config: Any, metadata: Any) -> MemoryAllocatorInterface:
        return self.allocator

    def get_memory_allocator(self) -> MemoryAllocatorInterface:
        return self.allocator

    def get_allocator_backend(self) -> MarufsBackend:
        return self

    def allocate(
        self,
        shapes: Any,
        dtypes: Any,
        fmt: MemoryFormat = MemoryFormat.KV_2LTD,
        eviction: bool = True,
        busy_loop: bool = True,
    ) -> MemoryObj | None:
        return self.allocator.allocate(shapes, dtypes, fmt, evict=eviction)

    def batched_allocate(
        self,
        shapes: Any,
        dtypes: Any,
        batch_size: int,
        fmt: MemoryFormat = MemoryFormat.KV_2LTD,
        eviction: bool = True,
        busy_loop: bool = True,
    ) -> list[MemoryObj] | None:
        return self.allocator.batched_allocate(shapes, dtypes, batch_size, fmt, evict=eviction)

    # StorageBackendInterface
    def contains(self, key: CacheEngineKey, pin: bool = False) -> bool:
        return self.batched_contains([key], pin) == 1

    def batched_contains(self, keys: list[CacheEngineKey], pin: bool = False) -> int:
        """The number of leading keys present: one batched lookup; with
        `pin`, those keys are pinned (until `unpin`)."""
        names = [self.name(k) for k in keys]
        found = self.store.batch_exists(names)
        n = 0
        while n < len(found) and found[n]:
            n += 1
        if pin:
            for i, name in enumerate(names[:n]):
                p = self.store.pin(name)
                if p is None:  # deleted since the lookup (another host)
                    return i
                with self.lock:
                    self.pins.setdefault(name, []).append(p)
        return n

    def exists_in_put_tasks(self, key: CacheEngineKey) -> bool:
        return False

    def batched_submit_put_task(
        self,
        keys: Sequence[CacheEngineKey],
        objs: list[MemoryObj],
        transfer_spec: Any = None,
        on_complete_callback: Callable[[CacheEngineKey], None] | None = None,
    ) -> None:
        """Publishes each object's memory under its key, in place (no copy
        when the object came from this allocator). A key that exists already
        keeps its bytes (the same content, by LMCache's hashing)."""
        for k, o in zip(keys, objs, strict=True):
            name = self.name(k)
            try:
                if (
                    isinstance(o, MarufsMemoryObj)
                    and o.allocation is not None
                    and o.allocation.writable
                ):
                    done = self.store.publish(o.allocation, name)
                else:
                    done = self.store.put(name, o.byte_array)
            except marufs.MarufsError as e:
                # Never raised into LMCache: this chunk is not stored, the
                # rest of the batch is.
                with self.lock:
                    self.failed_puts += 1
                logger.warning("marufs: storing %s failed: %s", name, e)
                continue
            with self.lock:
                if done:
                    self.stored += 1
                else:
                    self.deduplicated += 1
            if on_complete_callback is not None:
                on_complete_callback(k)

    def _view_obj(self, view: marufs.KeyView) -> MemoryObj | None:
        n = view.size
        if n == 0 or n % self.token_bytes:
            return None
        shape = list(self.shape)
        shape[self.token_dim] = n // self.token_bytes
        size = torch.Size(shape)
        meta = MemoryObjMetadata(
            shape=size,
            dtype=self.dtype,
            address=0,
            phy_size=n,
            ref_count=1,
            fmt=self.fmt,
            shapes=[size],
            dtypes=[self.dtype],
        )
        return MarufsMemoryObj(_frombuffer(view), meta, self.allocator, view=view)

    def _take_pin(self, name: str) -> marufs.Pin | None:
        with self.lock:
            ps = self.pins.get(name)
            if not ps:
                return None
            p = ps.pop()
            if not ps:
                del self.pins[name]
            return p

    def _get(self, names: list[str]) -> list[MemoryObj | None]:
        # A key a lookup pinned is read through its pin (it may have been
        # deleted or evicted by another store or host since); the pin moves
        # onto the object that reads it.
        pins = [self._take_pin(n) for n in names]
        rest = [n for n, p in zip(names, pins, strict=True) if p is None]
        views = iter(self.store.batch_retrieve(rest) if rest else [])
        out: list[MemoryObj | None] = []
        for p in pins:
            v = p.map() if p is not None else next(views)
            o = None if v is None else self._view_obj(v)
            if isinstance(o, MarufsMemoryObj):
                o.marufs_pin = p
            elif p is not None:
                p.unpin()
            out.append(o)
        return out

    def get_blocking(self, key: CacheEngineKey) -> MemoryObj | None:
        return self._get([self.name(key)])[0]

    def batched_get_blocking(self, keys: list[CacheEngineKey]) -> list[MemoryObj | None]:
        return self._get([self.name(k) for k in keys])

    async def batched_async_contains(
        self, lookup_id: str, keys: list[CacheEngineKey], pin: bool = False
    ) -> int:
        return self.batched_contains(keys, pin)

    async def batched_get_non_blocking(
        self, lookup_id: str, keys: list[CacheEngineKey], transfer_spec: Any = None
    ) -> list[MemoryObj]:
        out: list[MemoryObj] = []
        for o in self.batched_get_blocking(keys):
            if o is None:
                break
            out.append(o)
        return out

    def pin(self, key: CacheEngineKey) -> bool:
        name = self.name(key)
        p = self.store.pin(name)
        if p is None:
            return False
        with self.lock:
            self.pins.setdefault(name, []).append(p)
        return True

    def unpin(self, key: CacheEngineKey) -> bool:
        p = self._take_pin(self.name(key))
        if p is None:
            return False
        p.unpin()
        return True

    def remove(self, key: CacheEngineKey, force: bool = True) -> bool:
        return self.store.delete(self.name(key))

    def close(self) -> None:
        with self.lock:
            pins, self.pins = self.pins, {}
        for ps in pins.values():
            for p in ps:
                p.unpin()


class MarufsL2Adapter(L2AdapterInterface):
    """LMCache's MP-mode L2 adapter over marufs (``{"type": "plugin", ...}``).
    ``adapter_params``: ``mount`` (default ``/mnt/maru`` or ``$MARUFS_MOUNT``),
    ``app`` (default: each key's model name, escaped), ``quota_gb``,
    ``high_pct``, ``low_pct``. A store copies LMCache's L1 objects into pool
    keys (one per object, published whole: a reader on any host sees all of
    a key or none of it); lookups are batched and lock by pinning; a load
    copies a key into the L1 object LMCache gives.

    Every task completes before its submit returns (a copy at memory
    bandwidth); its event fd is signalled at once."""

    def __init__(self, params: dict[str, Any] | None = None, l1_memory_desc: Any = None) -> None:
        params = dict(params or {})
        super().__init__(max_capacity_bytes=int(float(params.get("quota_gb", 0)) * (1 << 30)))
        self.params = params
        self.stores: dict[str, marufs.Store] = {}
        self.efd = {n: create_event_notifier() for n in ("store", "lookup", "load")}
        self.done_store: dict[int, Any] = {}
        self.done_lookup: dict[int, Any] = {}
        self.done_load: dict[int, Any] = {}
        self.pins: dict[Any, list[marufs.Pin]] = {}
        self.next_id = 0
        self.mu = threading.Lock()

    def store_of(self, model: str) -> marufs.Store:
        with self.mu:
            s = self.stores.get(model)
            if s is None:
                p = self.params
                extra = {
                    "marufs.mount": p.get("mount", os.environ.get("MARUFS_MOUNT", "/mnt/maru")),
                    "marufs.app": p.get("app"),
                    "marufs.quota_gb": p.get("quota_gb"),
                    "marufs.high_pct": p.get("high_pct", 95),
                    "marufs.low_pct": p.get("low_pct", 85),
                }
                s = _store_from_config({k: v for k, v in extra.items() if v is not None}, model)
                self.stores[model] = s
            return s

    def name(self, key: Any) -> str:
        return key_name(key, bool(self.params.get("app")))

    def task(self) -> int:
        with self.mu:
            self.next_id += 1
            return self.next_id

    def get_store_event_fd(self) -> int:
        return self.efd["store"].fileno()

    def get_lookup_and_lock_event_fd(self) -> int:
        return self.efd["lookup"].fileno()

    def get_load_event_fd(self) -> int:
        return self.efd["load"].fileno()

    def submit_store_task(self, keys: list[Any], objects: list[MemoryObj]) -> int:
        tid, total, ok = self.task(), 0, True
        stored, sizes = [], []
        for k, o in zip(keys, objects, strict=True):
            try:
                new = self.store_of(k.model_name).put(self.name(k), o.byte_array)
            except marufs.MarufsError as e:
                logger.warning("marufs: storing %s failed: %s", self.name(k), e)
                ok = False
                continue
            n = o.get_size()
            total += n
            if new:
                # A key that existed (the same content) was counted when it
                # was stored.
                stored.append(k)
                sizes.append(n)
        with self.mu:
            self.done_store[tid] = L2StoreResult(ok, total)
        if stored:
            self._notify_keys_stored(stored, sizes)
        self.efd["store"].notify()
        return tid

    def pop_completed_store_tasks(self) -> dict[int, Any]:
        with self.mu:
            d, self.done_store = self.done_store, {}
        return d

    def submit_lookup_and_lock_task(self, keys: list[Any], group_layout_descs: Any) -> int:
        tid, bm = self.task(), Bitmap(len(keys))
        by_model: dict[str, list[int]] = {}
        for i, k in enumerate(keys):
            by_model.setdefault(k.model_name, []).append(i)
        for model, idx in by_model.items():
            s = self.store_of(model)
            names = [self.name(keys[i]) for i in idx]
            for i, name, there in zip(idx, names, s.batch_exists(names), strict=True):
                if not there:
                    continue
                p = s.pin(name)
                if p is None:
                    continue
                with self.mu:
                    self.pins.setdefault(keys[i], []).append(p)
                bm.set(i)
        with self.mu:
            self.done_lookup[tid] = bm
        self.efd["lookup"].notify()
        return tid

    def query_lookup_and_lock_result(self, task_id: int) -> Any:
        with self.mu:
            return self.done_lookup.pop(task_id, None)

    def submit_unlock(self, keys: list[Any]) -> None:
        for k in keys:
            with self.mu:
                ps = self.pins.get(k)
                p = ps.pop() if ps else None
                if ps is not None and not ps:
                    del self.pins[k]
            if p is not None:
                p.unpin()

    def submit_load_task(self, keys: list[Any], objects: list[MemoryObj]) -> int:
        tid, bm = self.task(), Bitmap(len(keys))
        loaded = []
        for i, (k, o) in enumerate(zip(keys, objects, strict=True)):
            # Through the lock's pin where there is one: the name may have
            # been deleted or evicted since by another store or host.
            with self.mu:
                ps = self.pins.get(k)
                p = ps[-1] if ps else None
            v = p.map() if p is not None else self.store_of(k.model_name).retrieve(self.name(k))
            # Exactly the object's size: a shorter key would leave a stale
            # tail in the object.
            if v is None or v.size != o.get_size():
                continue
            dst = o.tensor.view(torch.uint8).view(-1)
            dst[: v.size].copy_(_frombuffer(v))
            bm.set(i)
            loaded.append(k)
        if loaded:
            self._notify_keys_accessed(loaded)
        with self.mu:
            self.done_load[tid] = bm
        self.efd["load"].notify()
        return tid

    def query_load_result(self, task_id: int) -> Any:
        with self.mu:
            return self.done_load.pop(task_id, None)

    def delete(self, keys: list[Any]) -> None:
        gone, sizes = [], []
        for k in keys:
            s = self.store_of(k.model_name)
            info = s.stat(self.name(k))
            if info is not None and s.delete(self.name(k)):
                gone.append(k)
                sizes.append(info.size)
        if gone:
            self._notify_keys_deleted(gone, sizes)

    def close(self) -> None:
        with self.mu:
            pins, self.pins = self.pins, {}
        for ps in pins.values():
            for p in ps:
                p.unpin()
        for e in self.efd.values():
            e.close()
