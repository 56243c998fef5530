"""LMCache's own released code (the version in tests/lmcache/requirements.txt,
unmodified) on the marufs plugin and L2 adapter, CPU only: its
StorageManager and LMCacheEngine in-process, its MP-mode StorageManager and
L2 adapter loader. A temporary directory stands in for the mount (guests run
the same on a real one). Skipped where LMCache is not installed."""

import argparse
import os
import select
import subprocess
import sys
import time

import pytest

os.environ.setdefault("LMCACHE_LOG_LEVEL", "WARNING")
pytest.importorskip("lmcache")

import torch
from lmcache.v1.cache_engine import LMCacheEngineBuilder
from lmcache.v1.event_manager import EventManager
from lmcache.v1.storage_backend.storage_manager import StorageManager

sys.path.insert(0, os.path.dirname(__file__))
import lmc_util as u

import marufs
from marufs.lmcache import MarufsMemoryObj, app_name, escape, key_name


@pytest.fixture
def sm_factory(tmp_path):
    made = []

    def make(md=None, **kw):
        md = md or u.metadata()
        sm = StorageManager(u.config(str(tmp_path), **kw), md, EventManager())
        made.append(sm)
        return sm, md

    yield make
    for sm in made:
        sm.close()


def fill(sm, md, hashes, seed=0):
    objs = sm.batched_allocate(md.get_shapes(), md.get_dtypes(), len(hashes))
    assert objs is not None
    keys, refs = [], []
    for i, (h, o) in enumerate(zip(hashes, objs, strict=True)):
        t = u.chunk_data(md, seed + i)
        o.tensor.copy_(t)
        keys.append(u.key(md, h))
        refs.append(t)
    sm.batched_put(keys, objs)
    return keys, refs, objs


def test_names():
    assert app_name(u.MODEL) == "meta-llama%2FLlama-3.1-8B-Instruct"
    assert escape(".hidden") == "%2Ehidden"
    assert escape("a b") == "a%20b"
    assert escape("") == "%"
    long = "x" * 300
    assert len(escape(long)) == 255 and escape(long) != escape(long + "y")
    assert escape("é" * 100) != escape("é" * 101)
    for s in [u.MODEL, "a/b", "x" * 300, ".", ".."]:
        marufs.validate_name(escape(s))
    md = u.metadata()
    assert key_name(u.key(md, 0xABC)) == "1@0@abc@bfloat16"


def test_plugin_is_the_allocator_zero_copy(sm_factory, tmp_path):
    sm, md = sm_factory()
    assert "MaruBackend" in sm.list_backends()
    be = sm.storage_backends["MaruBackend"]
    assert sm.allocator_backend is be
    keys, refs, objs = fill(sm, md, [0x10, 0x11, 0x12])
    # Allocated in the store and published in place: no copy on store.
    assert all(isinstance(o, MarufsMemoryObj) for o in objs)
    assert be.stored == 3
    names = sorted(os.listdir(tmp_path / app_name(u.MODEL)))
    assert names == sorted(key_name(k) for k in keys)
    assert sm.batched_contains(keys)[0] == 3
    assert sm.contains(u.key(md, 0x99)) is None
    got = sm.batched_get(keys, location="MaruBackend")
    for g, r in zip(got, refs, strict=True):
        # A mapping of the key, not a copy.
        assert isinstance(g, MarufsMemoryObj) and g.view is not None and g.allocation is None
        assert torch.equal(g.tensor, r)
        g.ref_count_down()
    # The same content again: deduplicated, the first bytes stay.
    _, _, _ = fill(sm, md, [0x10], seed=100)
    assert be.deduplicated == 1
    (g,) = sm.batched_get(keys[:1], location="MaruBackend")
    assert torch.equal(g.tensor, refs[0])
    g.ref_count_down()
    assert sm.remove(keys[0])
    assert sm.batched_contains(keys)[0] == 0


def test_secondary_allocator_under_another_name(sm_factory):
    # With a local CPU backend as LMCache's allocator, LMCache copies into
    # the plugin's allocation on every store; retrieves still map.
    sm, md = sm_factory(name="marufs", local_cpu_gb=0.05)
    assert "marufs" in sm.list_backends()
    keys, refs, _ = fill(sm, md, [0x20, 0x21])
    assert sm.batched_contains(keys)[0] == 2
    got = sm.batched_get(keys, location="marufs")
    assert all(torch.equal(g.tensor, r) for g, r in zip(got, refs, strict=True))
    for g in got:
        g.ref_count_down()


def test_engine_store_lookup_retrieve(tmp_path):
    md = u.metadata()
    cfg = u.config(str(tmp_path))
    eng = LMCacheEngineBuilder.get_or_create(
        "marufs-test", cfg, md, u.CPUConnector(md), lambda t, r: None, lambda o, r: o
    )
    try:
        eng.post_init()
        n = 3 * md.chunk_size
        tokens = torch.arange(5000, 5000 + n)
        src = u.chunk_data(md, 7, n)
        eng.store(tokens, kvcache=src)
        assert eng.lookup(tokens) == n
        assert len(os.listdir(tmp_path / app_name(u.MODEL))) == 3
        dst = torch.zeros_like(src)
        mask = eng.retrieve(tokens, kvcache=dst)
        assert int(mask.sum()) == n
        assert torch.equal(src, dst)
        # A prefix it never saw: no hit.
        assert eng.lookup(torch.arange(9000, 9000 + n)) == 0
    finally:
        LMCacheEngineBuilder.destroy("marufs-test")


def test_lookup_pins_hold_keys_through_eviction(sm_factory):
    md = u.metadata()
    chunk = md.get_shapes()[0].numel() * 2
    # A quota of 6 chunks (high watermark 95%, low 85%).
    sm, md = sm_factory(md=md, **{"marufs.quota_gb": 6 * chunk / (1 << 30)})
    be = sm.storage_backends["MaruBackend"]
    keys, refs, _ = fill(sm, md, [0x30, 0x31])
    # A lookup with pin (as the engine's lookup before a retrieve).
    assert be.batched_contains(keys, pin=True) == 2
    later = []
    for i in range(8):
        k, _, _ = fill(sm, md, [0x40 + i], seed=50 + i)
        later += k
        # Never past the quota.
        assert sum(i.allocated for i in be.store.list()) <= 6 * chunk
    # Every store succeeded by evicting older keys; the pinned ones stayed.
    present = be.store.batch_exists([key_name(k) for k in later])
    assert be.store.batch_exists([key_name(k) for k in keys]) == [True, True]
    assert present[-1] and not all(present)
    assert be.store.counters()["evicted"] > 0
    # A batch that cannot fit even after evicting all it may: no allocation
    # (LMCache skips the store), nothing half done.
    assert sm.batched_allocate(md.get_shapes(), md.get_dtypes(), 5) is None
    assert be.allocator.failed == 1
    got = sm.batched_get(keys, location="MaruBackend")
    assert all(torch.equal(g.tensor, r) for g, r in zip(got, refs, strict=True))
    for g in got:
        g.ref_count_down()
    # The gets took the lookup's pins; freeing the objects released them.
    assert not be.pins and not be.unpin(keys[0])


def test_full_store_without_quota_fails_cleanly_or_evicts(sm_factory):
    # No quota, eviction off: an allocation that does not fit is None, not
    # an exception (LMCache skips that store).
    sm, _md = sm_factory()
    be = sm.storage_backends["MaruBackend"]
    huge = torch.Size([1 << 62])
    assert be.allocate(huge, torch.uint8, eviction=False) is None


WRITER = """
import sys
sys.path.insert(0, {tests!r})
import lmc_util as u
from lmcache.v1.event_manager import EventManager
from lmcache.v1.storage_backend.storage_manager import StorageManager
md = u.metadata()
sm = StorageManager(u.config({mount!r}), md, EventManager())
try:
    objs = sm.batched_allocate(md.get_shapes(), md.get_dtypes(), 4)
    for i, o in enumerate(objs):
        o.tensor.copy_(u.chunk_data(md, 200 + i))
    sm.batched_put([u.key(md, 0x500 + i) for i in range(4)], objs)
finally:
    sm.close()
print("stored")
"""


def test_two_processes_share_one_store(sm_factory, tmp_path):
    script = WRITER.format(tests=os.path.dirname(__file__), mount=str(tmp_path))
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "stored" in r.stdout
    sm, md = sm_factory()
    keys = [u.key(md, 0x500 + i) for i in range(4)]
    assert sm.batched_contains(keys)[0] == 4
    got = sm.batched_get(keys, location="MaruBackend")
    for i, g in enumerate(got):
        assert torch.equal(g.tensor, u.chunk_data(md, 200 + i))
        g.ref_count_down()


def wait_fd(fd):
    r, _, _ = select.select([fd], [], [], 10)
    assert r, "the adapter did not signal its event fd"
    os.read(fd, 8)


def test_l2_adapter_through_lmcache_plugin_loader(tmp_path):
    from lmcache.v1.distributed.api import ObjectKey
    from lmcache.v1.distributed.l2_adapters import create_l2_adapter
    from lmcache.v1.distributed.l2_adapters.config import (
        add_l2_adapters_args,
        parse_args_to_l2_adapters_config,
    )
    from lmcache.v1.memory_allocators.tensor_memory_allocator import TensorMemoryAllocator
    from lmcache.v1.memory_management import MemoryFormat

    spec = (
        '{"type": "plugin", "module_path": "marufs.lmcache", "class_name": "MarufsL2Adapter",'
        f' "adapter_params": {{"mount": "{tmp_path}"}}}}'
    )
    args = add_l2_adapters_args(argparse.ArgumentParser()).parse_args(["--l2-adapter", spec])
    ad = create_l2_adapter(parse_args_to_l2_adapters_config(args).adapters[0])
    assert type(ad).__name__ == "MarufsL2Adapter"
    alloc = TensorMemoryAllocator(torch.empty(8 << 20, dtype=torch.uint8))
    shape, dt = torch.Size([2, 4, 16, 1024]), torch.bfloat16
    src = alloc.batched_allocate(shape, dt, 3, MemoryFormat.KV_2LTD)
    for i, o in enumerate(src):
        o.tensor.copy_(torch.randn(shape, generator=torch.Generator().manual_seed(i)).to(dt))
    keys = [ObjectKey(ObjectKey.IntHash2Bytes(i + 1), u.MODEL, 0) for i in range(3)]
    missing = ObjectKey(b"\xff\xff\xff\xff", u.MODEL, 0)
    try:
        t = ad.submit_store_task(keys, src)
        wait_fd(ad.get_store_event_fd())
        res = ad.pop_completed_store_tasks()
        assert res[t].is_successful()
        assert len(os.listdir(tmp_path / app_name(u.MODEL))) == 3
        t = ad.submit_lookup_and_lock_task([*keys, missing], {})
        wait_fd(ad.get_lookup_and_lock_event_fd())
        bm = ad.query_lookup_and_lock_result(t)
        assert [bm.test(i) for i in range(4)] == [True, True, True, False]
        assert ad.query_lookup_and_lock_result(t) is None
        dst = alloc.batched_allocate(shape, dt, 3, MemoryFormat.KV_2LTD)
        t = ad.submit_load_task(keys, dst)
        wait_fd(ad.get_load_event_fd())
        bm = ad.query_load_result(t)
        assert [bm.test(i) for i in range(3)] == [True] * 3
        assert all(torch.equal(a.tensor, b.tensor) for a, b in zip(src, dst, strict=True))
        ad.submit_unlock(keys)
        ad.delete(keys[:1])
        assert sorted(os.listdir(tmp_path / app_name(u.MODEL))) == sorted(
            key_name(k) for k in keys[1:]
        )
        for o in dst:
            o.ref_count_down()
    finally:
        ad.close()
        for o in src:
            o.ref_count_down()


def test_mp_storage_manager_with_the_l2_adapter(tmp_path):
    from lmcache.v1.distributed.api import (
        GroupedObjectKeys,
        MemoryLayoutDesc,
        ObjectKey,
        PrefetchTaskSpec,
    )
    from lmcache.v1.distributed.config import parse_args
    from lmcache.v1.distributed.storage_manager import StorageManager as MPStorageManager

    spec = (
        '{"type": "plugin", "module_path": "marufs.lmcache", "class_name": "MarufsL2Adapter",'
        f' "adapter_params": {{"mount": "{tmp_path}"}}}}'
    )
    cfg = parse_args(["--l1-size-gb", "0.1", "--eviction-policy", "LRU", "--l2-adapter", spec])
    sm = MPStorageManager(cfg)
    try:
        shape, dt = torch.Size([2, 4, 16, 1024]), torch.bfloat16
        layout = MemoryLayoutDesc([shape], [dt])
        keys = [ObjectKey(ObjectKey.IntHash2Bytes(100 + i), u.MODEL, 0) for i in range(3)]
        objs = sm.reserve_write(keys, layout)
        refs = {}
        for k, o in objs.items():
            refs[k] = torch.randn(shape).to(dt)
            o.tensor.copy_(refs[k])
        sm.finish_write(keys)
        d = tmp_path / app_name(u.MODEL)
        for _ in range(200):  # LMCache's store controller pushes L1 to L2 on its own
            if d.exists() and len(os.listdir(d)) == 3:
                break
            time.sleep(0.05)
        assert len(os.listdir(d)) == 3
        sm.delete_l1_keys(keys)
        h = sm.submit_prefetch_task(PrefetchTaskSpec([GroupedObjectKeys(keys, 0, layout)]))
        assert sm.wait_prefetch_status(h, 10.0)
        r = sm.query_prefetch_status(h)
        # Bitmaps: every key hit, all of them from L2.
        assert [(r.hit_cells[0].test(i), r.l2_hit_cells[0].test(i)) for i in range(3)] == [
            (True, True)
        ] * 3
        with sm.read_prefetched_results(keys) as got:
            assert all(torch.equal(o.tensor, refs[k]) for k, o in zip(keys, got, strict=True))
        sm.finish_read_prefetched(keys)
    finally:
        sm.close()


def test_lookup_pins_move_to_the_objects_that_read_them(sm_factory):
    sm, md = sm_factory()
    be = sm.storage_backends["MaruBackend"]
    keys, refs, _ = fill(sm, md, [0x60, 0x61])
    assert be.batched_contains(keys, pin=True) == 2 and len(be.pins) == 2
    # Another store deletes one: the pinned bytes are still what a get reads.
    other = marufs.Store(be.store.mount, be.store.app)
    assert other.delete(key_name(keys[0]))
    got = be.batched_get_blocking(keys)
    assert not be.pins, "the lookup's pins moved onto the objects"
    for g, r in zip(got, refs, strict=True):
        assert g.marufs_pin is not None and torch.equal(g.tensor, r)
    # LMCache's async path unpins the object; its sync path frees it.
    got[0].unpin()
    assert got[0].marufs_pin is None
    got[1].ref_count_down()
    assert got[1].marufs_pin is None
    got[0].ref_count_down()


def test_a_shared_app_keeps_models_apart(sm_factory):
    sm, md = sm_factory(**{"marufs.app": "all-models"})
    be = sm.storage_backends["MaruBackend"]
    k = u.key(md, 0x70)
    assert be.name(k).startswith(escape(u.MODEL) + "@")
    other = type(k)("other/model", 1, 0, 0x70, md.kv_dtype)
    assert be.name(other) != be.name(k)


def test_a_failed_publish_is_not_raised_into_lmcache(sm_factory, tmp_path):
    sm, md = sm_factory()
    be = sm.storage_backends["MaruBackend"]
    objs = sm.batched_allocate(md.get_shapes(), md.get_dtypes(), 2)
    bad = u.key(md, 0x80)
    # A name the filesystem refuses for the first chunk: the second is stored.
    be.name = lambda k: "x" * 300 if k == bad else key_name(k)
    sm.batched_put([bad, u.key(md, 0x81)], objs)
    assert be.failed_puts == 1 and be.stored == 1
