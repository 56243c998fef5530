"""XCENA Maru's ``MaruConfig``/``MaruHandler`` API, over marufs.

For scripts written against Maru (``from maru import MaruConfig, MaruHandler``):
change the import to ``from marufs.compat import MaruConfig, MaruHandler`` and
point the configuration at a marufs mount instead of a MaruServer::

    config = MaruConfig(mount_path="/mnt/maru", app="llama3-8b")
    with MaruHandler(config) as handler:
        handle = handler.alloc(size=len(data))
        handle.buf[: len(data)] = data
        handler.store(key="k", handle=handle)
        info = handler.retrieve(key="k")        # MemoryInfo, zero copy

Differences, all following from there being no server (the kernel is the
metadata service and the pool is shared by every host that mounts it):

- ``server_url`` may name the mount (``marufs:///mnt/maru`` or a path);
  ``pool_size`` is accepted and ignored (the pool is the whole device);
  ``timeout_ms``, ``use_async_rpc``, ``max_inflight`` and ``eager_map`` are
  accepted and ignored.
- Keys are strings (other values are converted with ``str``) and must be
  valid file names: ``validate_name``; LMCache keys are escaped by the plugin.
- ``region_id`` is always 0; ``page_index`` numbers this handler's
  allocations.
- ``store`` returns True when the key is stored *or already existed*
  (deduplication), as Maru's does.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from marufs._native import Allocation, KeyView, MarufsError, Pin, Store

__all__ = ["AllocHandle", "MaruConfig", "MaruHandler", "MemoryInfo"]


@dataclass
class MaruConfig:
    """Where the pool is and how to use it."""

    mount_path: str | None = None
    """The marufs mount (or any directory). Default: ``server_url`` if it
    names a path, else ``$MARUFS_MOUNT``, else ``/mnt/maru``."""
    app: str | None = None
    """The application directory. Default: ``instance_id``, else ``default``."""
    server_url: str | None = None
    instance_id: str | None = None
    pool_size: int | None = None
    chunk_size_bytes: int = 1 << 20
    """Largest allocation (``alloc`` refuses more, as Maru's does)."""
    auto_connect: bool = True
    coherence: str = "kernel"
    """Cache maintenance: 'kernel' (marufs does it), 'flush' (the library
    does), 'hardware' (coherent memory: none)."""
    create: bool = True
    """Create the application directory if missing."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Maru options without an equivalent (``timeout_ms``...): ignored."""

    def resolved_mount(self) -> str:
        if self.mount_path:
            return self.mount_path
        url = self.server_url or ""
        if url.startswith("marufs://"):
            return url[len("marufs://") :] or "/"
        if url.startswith("/"):
            return url
        return os.environ.get("MARUFS_MOUNT", "/mnt/maru")

    def resolved_app(self) -> str:
        return self.app or self.instance_id or "default"


class AllocHandle:
    """A writable allocation (``buf``) for ``MaruHandler.store``."""

    __slots__ = ("_alloc", "_size", "buf", "page_index")

    def __init__(self, alloc: Allocation, size: int, page_index: int) -> None:
        self._alloc = alloc
        self._size = size
        self.buf = memoryview(alloc)
        self.page_index = page_index

    @property
    def region_id(self) -> int:
        return 0

    @property
    def size(self) -> int:
        return self._size

    def __repr__(self) -> str:
        return f"AllocHandle(size={self._size}, page_index={self.page_index})"


class MemoryInfo:
    """A zero-copy view (``view``) of a stored key."""

    __slots__ = ("_pin", "_source", "page_index", "region_id", "view")

    def __init__(
        self,
        view: memoryview,
        region_id: int = 0,
        page_index: int = 0,
        source: KeyView | Allocation | None = None,
    ) -> None:
        self.view = view
        self.region_id = region_id
        self.page_index = page_index
        self._source = source
        self._pin: Pin | None = None

    def __len__(self) -> int:
        return len(self.view)


class MaruHandler:
    """Maru's client handle, over a :class:`marufs.Store`.

    Thread-safe: marufs serialises metadata changes in the kernel, so reads
    and writes run concurrently; the handler's own tables take a short lock.
    """

    def __init__(self, config: MaruConfig | None = None) -> None:
        self._config = config or MaruConfig()
        self._store: Store | None = None
        self._lock = threading.Lock()
        self._pages = itertools.count()
        # page_index -> live allocation handed out by alloc().
        self._allocs: dict[int, AllocHandle] = {}
        # key -> the allocation it was stored from (for free-after-store).
        self._stored: dict[str, AllocHandle] = {}
        self._pins: dict[str, list[Pin]] = {}
        if self._config.auto_connect:
            self.connect()

    # ----------------------------------------------------------- lifecycle

    def connect(self) -> bool:
        """Opens the application's store on the mount. True on success."""
        if self._store is not None:
            return True
        self._store = Store(
            self._config.resolved_mount(),
            self._config.resolved_app(),
            create=self._config.create,
            coherence=self._config.coherence,
        )
        return True

    def close(self) -> None:
        """Drops pins and unstored allocations; stored keys stay."""
        with self._lock:
            pins = [p for ps in self._pins.values() for p in ps]
            self._pins.clear()
            allocs = list(self._allocs.values())
            self._allocs.clear()
            self._stored.clear()
        for p in pins:
            p.unpin()
        for a in allocs:
            a._alloc.free()
        self._store = None

    def __enter__(self) -> MaruHandler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        return self._store is not None

    @property
    def instance_id(self) -> str:
        return self._config.resolved_app()

    @property
    def store_handle(self) -> Store:
        """The underlying :class:`marufs.Store`."""
        return self._s()

    def _s(self) -> Store:
        if self._store is None:
            raise RuntimeError("MaruHandler is not connected")
        return self._store

    def healthcheck(self) -> bool:
        """True if connected and the mount answers."""
        try:
            self._s().stats()
        except (RuntimeError, MarufsError):
            return False
        return True

    def get_chunk_size(self) -> int:
        return self._config.chunk_size_bytes

    def get_stats(self) -> dict[str, Any]:
        return self._s().stats()

    # -------------------------------------------------------------- writes

    def alloc(self, size: int) -> AllocHandle:
        """A writable, zero-filled allocation of ``size`` bytes."""
        if size > self._config.chunk_size_bytes:
            raise ValueError(f"size {size} exceeds the chunk size {self._config.chunk_size_bytes}")
        a = self._s().alloc(size)
        with self._lock:
            h = AllocHandle(a, size, next(self._pages))
            self._allocs[h.page_index] = h
        return h

    def free(self, handle: AllocHandle) -> None:
        """Discards an allocation, or, after ``store``, evicts its key."""
        with self._lock:
            if self._allocs.pop(handle.page_index, None) is None:
                raise ValueError(f"{handle!r} is not tracked (freed already?)")
            key = handle._alloc.key if handle._alloc.published else None
            if key is not None and self._stored.get(key) is handle:
                del self._stored[key]
            else:
                key = None
        if key is not None:
            self._s().delete(key)
        handle._alloc.free()

    def store(
        self,
        key: object,
        info: MemoryInfo | memoryview | None = None,
        prefix: bytes | None = None,
        *,
        data: memoryview | None = None,
        handle: AllocHandle | None = None,
    ) -> bool:
        """Stores ``key``: from ``handle`` (zero copy), else a copy of
        ``prefix`` + ``data``/``info``. True when stored or already there."""
        k = str(key)
        s = self._s()
        if handle is not None:
            if prefix:
                raise ValueError("prefix cannot be combined with handle (zero-copy)")
            if s.publish(handle._alloc, k):
                with self._lock:
                    self._stored[k] = handle
                return True
            return s.exists(k)
        src = data if data is not None else info
        if isinstance(src, MemoryInfo):
            src = src.view
        if src is None:
            raise ValueError("store needs handle=, data= or info")
        if prefix:
            buf = bytearray(prefix)
            buf += memoryview(src).cast("B")
            src = memoryview(buf)
        s.put(k, src)
        return True

    def batch_store(
        self,
        keys: Sequence[object],
        infos: Sequence[MemoryInfo | memoryview | AllocHandle],
        prefixes: Sequence[bytes | None] | None = None,
    ) -> list[bool]:
        if len(keys) != len(infos):
            raise ValueError("keys and infos differ in length")
        out = []
        for i, (k, v) in enumerate(zip(keys, infos, strict=True)):
            p = prefixes[i] if prefixes else None
            if isinstance(v, AllocHandle):
                out.append(self.store(k, handle=v))
            else:
                out.append(self.store(k, v, p))
        return out

    def delete(self, key: object) -> bool:
        k = str(key)
        with self._lock:
            self._stored.pop(k, None)
        return self._s().delete(k)

    # --------------------------------------------------------------- reads

    def retrieve(self, key: object) -> MemoryInfo | None:
        """A zero-copy read-only view of ``key``, or None."""
        v = self._s().retrieve(str(key))
        return None if v is None else MemoryInfo(memoryview(v), source=v)

    def batch_retrieve(self, keys: Sequence[object]) -> list[MemoryInfo | None]:
        views = self._s().batch_retrieve([str(k) for k in keys])
        return [None if v is None else MemoryInfo(memoryview(v), source=v) for v in views]

    def exists(self, key: object) -> bool:
        return self._s().exists(str(key))

    def batch_exists(self, keys: Sequence[object]) -> list[bool]:
        return self._s().batch_exists([str(k) for k in keys])

    def pin(self, key: object) -> bool:
        """Pins ``key`` (counted): True if it exists."""
        k = str(key)
        p = self._s().pin(k)
        if p is None:
            return False
        with self._lock:
            self._pins.setdefault(k, []).append(p)
        return True

    def batch_pin(self, keys: Sequence[object]) -> list[bool]:
        return [self.pin(k) for k in keys]

    def unpin(self, key: object) -> bool:
        """Drops one pin of ``key``: False if it had none."""
        k = str(key)
        with self._lock:
            ps = self._pins.get(k)
            if not ps:
                return False
            p = ps.pop()
            if not ps:
                del self._pins[k]
        p.unpin()
        return True

    def batch_unpin(self, keys: Sequence[object]) -> list[bool]:
        return [self.unpin(k) for k in keys]
