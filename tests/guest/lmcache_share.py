"""The Python half of lmcache-share.sh, run by LMCache's own environment:
python lmcache_share.py store|fetch|readback MOUNT.

LMCache 0.5.6's engine with the marufs plugin registered as `MaruBackend`
(the plugin is LMCache's allocator: zero copy), CPU tensors in
Llama-3.1-8B's per-layer KV shape. The data is a function of a seed, so each
host regenerates what the other stored and compares bytes."""

from __future__ import annotations

import os
import sys
import time

T0 = time.monotonic()
import lmc_util as u  # noqa: E402
import torch  # noqa: E402
from lmcache.v1.cache_engine import LMCacheEngineBuilder  # noqa: E402

import marufs  # noqa: E402
from marufs.lmcache import app_name  # noqa: E402

IMPORT_S = time.monotonic() - T0
CHUNK = 256  # tokens per chunk: 4 MiB with 4 layers
CHUNKS = 6
ROLE = os.environ.get("ROLE", "?")


def say(msg: str) -> None:
    print(f"[{ROLE}] lmcache: {msg}", flush=True)


def tokens(first: int) -> torch.Tensor:
    return torch.arange(first, first + CHUNKS * CHUNK)


def engine(mount: str, name: str):
    md = u.metadata(chunk=CHUNK)
    cfg = u.config(mount, chunk=CHUNK)
    eng = LMCacheEngineBuilder.get_or_create(
        name, cfg, md, u.CPUConnector(md), lambda t, r: None, lambda o, r: o
    )
    eng.post_init()
    return eng, md


def store(eng, md, first: int, seed: int) -> None:
    n = CHUNKS * CHUNK
    src = u.chunk_data(md, seed, n)
    t = time.monotonic()
    eng.store(tokens(first), kvcache=src)
    say(
        f"stored {CHUNKS} chunks ({src.numel() * src.element_size() >> 20} MiB) in {time.monotonic() - t:.2f} s"
    )
    assert eng.lookup(tokens(first)) == n, "own store not found"


def check(eng, md, first: int, seed: int) -> None:
    n = CHUNKS * CHUNK
    t = time.monotonic()
    hit = eng.lookup(tokens(first))
    assert hit == n, f"lookup found {hit} of {n} tokens the other host stored"
    dst = torch.zeros(md.get_shapes(n)[0], dtype=md.kv_dtype)
    mask = eng.retrieve(tokens(first), kvcache=dst)
    assert int(mask.sum()) == n, f"retrieved {int(mask.sum())} of {n} tokens"
    want = u.chunk_data(md, seed, n)
    assert torch.equal(dst, want), "retrieved bytes differ from what the other host stored"
    say(f"looked up and retrieved {CHUNKS} chunks in {time.monotonic() - t:.2f} s, bytes equal")
    # A prefix nobody stored: no hit.
    assert eng.lookup(tokens(900_000)) == 0


def main() -> None:
    step, mount = sys.argv[1], sys.argv[2]
    say(f"torch, LMCache and marufs imported in {IMPORT_S:.1f} s")
    s = marufs.Store(mount, app_name(u.MODEL))
    assert s.is_marufs, "not a marufs mount"
    eng, md = engine(mount, f"guest-{ROLE}")
    try:
        if step == "store":
            store(eng, md, 1000, 1)
            assert len(s.list()) == CHUNKS, s.list()
        elif step == "fetch":
            # On this host, through this host's marufs mount.
            assert len(s.list()) == CHUNKS, s.list()
            check(eng, md, 1000, 1)
            store(eng, md, 50_000, 2)
        elif step == "readback":
            check(eng, md, 50_000, 2)
            assert len(s.list()) == 2 * CHUNKS
        else:
            raise SystemExit(f"unknown step {step}")
    finally:
        LMCacheEngineBuilder.destroy(f"guest-{ROLE}")
    say(f"{step}: ok")


if __name__ == "__main__":
    main()
