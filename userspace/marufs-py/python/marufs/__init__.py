"""marufs: a zero-copy KV-cache store on CXL shared memory, from Python.

A mounted marufs pool (``mount -t marufs /dev/dax0.0 /mnt/maru``) holds one
directory per application; each holds keys, files whose bytes are pool memory
that every permitted process on every host sharing the pool maps directly.
:class:`Store` is one application's view::

    import marufs, numpy as np

    store = marufs.Store("/mnt/maru", "llama3-8b")
    a = store.alloc(32 << 20)                   # pool memory, writable
    np.frombuffer(a, dtype=np.uint8)[:] = 7     # written in place, no copy
    store.publish(a, "chunk-0")                 # named; now immutable everywhere
    v = store.retrieve("chunk-0")               # a mapping, no copy
    t = np.frombuffer(v, dtype=np.float16)      # read-only array over pool memory

Every error is a :class:`MarufsError`, an ``OSError`` with ``errno`` set.
Scripts written for XCENA Maru's ``MaruHandler`` use :mod:`marufs.compat`.
"""

from marufs._native import (
    NAME_MAX,
    Allocation,
    KeyInfo,
    KeyView,
    MarufsError,
    Pin,
    Store,
    validate_name,
)

__all__ = [
    "NAME_MAX",
    "Allocation",
    "KeyInfo",
    "KeyView",
    "MarufsError",
    "Pin",
    "Store",
    "validate_name",
]
