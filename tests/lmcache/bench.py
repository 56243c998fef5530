"""LMCache on marufs against LMCache's own local-disk backend on tmpfs, and
the Python package against the Rust library, measured in one run on the same
data. Prints ratios; fails if a retrieve through marufs costs more than a
tenth of the disk backend's (it should cost a mapping, not a copy).

- LMCache (the released version, unmodified), 32 MiB chunks of
  Llama-3.1-8B's shape (32 layers x 2 x 256 tokens x 8 KV heads x 128, bf16),
  both through LMCache's StorageManager: store = allocate from the backend's
  allocator, write the chunk into it (what the GPU connector does), put,
  until the chunk is visible (the disk backend writes asynchronously: polled);
  retrieve = get (marufs: a mapping of the key, its mapping cache cleared
  first; disk: a read of the file into LMCache's CPU buffer); then the same
  plus reading every byte (a copy to a destination, as into GPU memory) and
  releasing the object (marufs: unmapping it).
- The package's exists, batch_exists and retrieve (cold: mapping cache
  cleared; warm) per key, against the Rust library's (maru-kvdemo bench) on
  the same number of keys of the same size, both on tmpfs.

Usage: bench.py [--dir /dev/shm/marufs-lmc-bench] [--chunks 16] [--kvdemo PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

os.environ.setdefault("LMCACHE_LOG_LEVEL", "WARNING")

import torch
from lmcache.utils import CacheEngineKey
from lmcache.v1.config import LMCacheEngineConfig
from lmcache.v1.event_manager import EventManager
from lmcache.v1.metadata import LMCacheMetadata
from lmcache.v1.storage_backend.storage_manager import StorageManager

import marufs

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
CHUNK = 256


def p50(xs: list[float]) -> float:
    return statistics.median(xs)


def metadata() -> LMCacheMetadata:
    return LMCacheMetadata(
        model_name=MODEL,
        world_size=1,
        local_world_size=1,
        worker_id=0,
        local_worker_id=0,
        kv_dtype=torch.bfloat16,
        kv_shape=(32, 2, CHUNK, 8, 128),
        chunk_size=CHUNK,
        role="worker",
    )


def run_backend(
    name: str, cfg: LMCacheEngineConfig, location: str, data: list[torch.Tensor], clear: object
) -> dict[str, float]:
    md = metadata()
    sm = StorageManager(cfg, md, EventManager())
    try:
        assert location in sm.list_backends(), sm.list_backends()
        shapes, dtypes = md.get_shapes(), md.get_dtypes()
        keys = [CacheEngineKey(MODEL, 1, 0, 0x7000 + i, md.kv_dtype) for i in range(len(data))]
        store, get, read = [], [], []
        for k, t in zip(keys, data, strict=True):
            t0 = time.perf_counter()
            (o,) = sm.batched_allocate(shapes, dtypes, 1)
            o.tensor.copy_(t)
            sm.batched_put([k], [o])
            while sm.batched_contains([k])[0] < 1:
                time.sleep(0.0002)
            store.append(time.perf_counter() - t0)
        dst = torch.empty_like(data[0])
        for k, t in zip(keys, data, strict=True):
            if callable(clear):
                clear(sm)
            t0 = time.perf_counter()
            (g,) = sm.batched_get([k], location=location)
            t1 = time.perf_counter()
            dst.copy_(g.tensor)
            g.ref_count_down()
            # Releasing counts (marufs: unmapping the chunk's pages).
            del g
            t2 = time.perf_counter()
            get.append(t1 - t0)
            read.append(t2 - t0)
            assert torch.equal(dst, t), f"{name}: chunk {k.chunk_hash:x} differs"
        return {
            "store_ms": p50(store) * 1e3,
            "retrieve_ms": p50(get) * 1e3,
            "retrieve_read_ms": p50(read) * 1e3,
        }
    finally:
        sm.close()


def package_vs_library(root: str, kvdemo: str, n: int = 256) -> dict[str, float]:
    os.makedirs(root, exist_ok=True)
    s = marufs.Store(root, "pybench")
    names = [f"key-{i:05}" for i in range(n)]
    for i, k in enumerate(names):
        s.put(k, bytes([i % 251]) * 4096)
    ex, rc, rw = [], [], []
    for _ in range(3):
        for k in names:
            t0 = time.perf_counter()
            assert s.exists(k)
            ex.append(time.perf_counter() - t0)
    bx = []
    for _ in range(20):
        t0 = time.perf_counter()
        assert all(s.batch_exists(names))
        bx.append((time.perf_counter() - t0) / n)
    for _ in range(3):
        for k in names:
            s.clear_cache()
            t0 = time.perf_counter()
            v = s.retrieve(k)
            rc.append(time.perf_counter() - t0)
            assert v is not None
    for _ in range(3):
        for k in names:
            t0 = time.perf_counter()
            v = s.retrieve(k)
            rw.append(time.perf_counter() - t0)
    py = {
        "exists": p50(ex) * 1e6,
        "batch_exists": p50(bx) * 1e6,
        "retrieve cold": p50(rc) * 1e6,
        "retrieve warm": p50(rw) * 1e6,
    }
    out = subprocess.run(
        [kvdemo, "bench", "--mount", root, "--app", "rustbench", "--keys", str(n)]
        + ["--batches", str(n), "--pairs", "5", "--target", "0", "--json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    rows = json.loads(next(x for x in reversed(out) if x.startswith("{")))["rows"]
    want = {("exists", 1), ("batch_exists", n), ("retrieve cold", 1), ("retrieve warm", 1)}
    rust = {r["op"]: r["per_key_p50_us"] for r in rows if (r["op"], r["batch"]) in want}
    res = {}
    for op, v in py.items():
        res[f"{op}_py_us"] = v
        res[f"{op}_rust_us"] = rust[op]
        print(
            f"lmcache-bench: package {op:<14} {v:8.2f} us/key, library {rust[op]:8.2f} us/key:"
            f" {v / rust[op]:.2f}x"
        )
    return res


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default="/dev/shm/marufs-lmc-bench")
    ap.add_argument("--chunks", type=int, default=16)
    ap.add_argument("--kvdemo", default=None)
    a = ap.parse_args()
    shutil.rmtree(a.dir, ignore_errors=True)
    os.makedirs(a.dir)
    try:
        md = metadata()
        g = torch.Generator().manual_seed(1)
        data = [
            torch.randn(md.get_shapes()[0], generator=g).to(md.kv_dtype) for _ in range(a.chunks)
        ]
        mib = data[0].numel() * data[0].element_size() / (1 << 20)
        mfs = os.path.join(a.dir, "marufs")
        disk = os.path.join(a.dir, "disk")
        os.makedirs(mfs)
        cfg_m = LMCacheEngineConfig.from_dict(
            {
                "chunk_size": CHUNK,
                "local_cpu": False,
                "max_local_cpu_size": 0,
                "storage_plugins": ["MaruBackend"],
                "extra_config": {
                    "storage_plugin.MaruBackend.module_path": "marufs.lmcache",
                    "storage_plugin.MaruBackend.class_name": "MarufsBackend",
                    "marufs.mount": mfs,
                },
            }
        )
        cfg_d = LMCacheEngineConfig.from_dict(
            {
                "chunk_size": CHUNK,
                "local_cpu": False,
                "max_local_cpu_size": 1,
                "local_disk": f"file://{disk}",
                "max_local_disk_size": 8,
                "extra_config": {"use_odirect": False, "disk_io_threads": 2},
            }
        )

        def clear_maps(sm: StorageManager) -> None:
            sm.storage_backends["MaruBackend"].store.clear_cache()

        m = run_backend("marufs", cfg_m, "MaruBackend", data, clear_maps)
        d = run_backend("disk", cfg_d, "LocalDiskBackend", data, None)
        print(
            f"lmcache-bench: LMCache {a.chunks} chunks of {mib:.0f} MiB (Llama-3.1-8B), tmpfs;"
            " p50 per chunk, marufs plugin / LMCache local-disk backend"
        )
        res: dict[str, float] = {}
        for op in ("store_ms", "retrieve_ms", "retrieve_read_ms"):
            r = m[op] / d[op]
            res[f"{op}_marufs"], res[f"{op}_disk"], res[f"{op}_ratio"] = m[op], d[op], r
            print(f"lmcache-bench: {op[:-3]:<14} {m[op]:9.3f} ms / {d[op]:9.3f} ms = {r:.3f}x")
        kvdemo = a.kvdemo or shutil.which("maru-kvdemo")
        if kvdemo:
            res.update(package_vs_library(os.path.join(a.dir, "lib"), kvdemo))
        else:
            print("lmcache-bench: maru-kvdemo not found: package vs library skipped")
        print(json.dumps(res))
        if res["retrieve_ms_ratio"] > 0.1:
            print("lmcache-bench: FAIL: a retrieve through marufs costs more than 0.1x the disk's")
            return 1
        return 0
    finally:
        shutil.rmtree(a.dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
