"""marufs.compat: scripts written against Maru's MaruHandler."""

import pytest

from marufs.compat import AllocHandle, MaruConfig, MaruHandler, MemoryInfo


@pytest.fixture
def handler(tmp_path):
    with MaruHandler(
        MaruConfig(mount_path=str(tmp_path), app="llm", chunk_size_bytes=1 << 20)
    ) as h:
        yield h


def test_seed_example_flow(handler):
    # The Maru documentation's example, unchanged but for the config.
    data = b"hello world"
    handle = handler.alloc(size=len(data))
    assert isinstance(handle, AllocHandle) and handle.size == len(data) and handle.region_id == 0
    handle.buf[: len(data)] = data
    assert handler.store(key=12345, handle=handle)
    result = handler.retrieve(key=12345)
    assert isinstance(result, MemoryInfo) and bytes(result.view) == data
    assert handler.exists(key=12345)
    assert handler.delete(key=12345)
    assert not handler.exists(key=12345) and handler.retrieve(12345) is None


def test_store_variants_and_dedup(handler):
    assert handler.store("a", data=memoryview(b"abc"))
    assert handler.store("a", data=memoryview(b"zzz"))  # existed: still True
    assert bytes(handler.retrieve("a").view) == b"abc"
    assert handler.store("p", memoryview(b"body"), prefix=b"hdr:")
    assert bytes(handler.retrieve("p").view) == b"hdr:body"
    h = handler.alloc(3)
    h.buf[:] = b"xyz"
    assert handler.store("a", handle=h)  # dedup with a handle: True, allocation kept
    handler.free(h)
    with pytest.raises(ValueError):
        handler.free(h)
    with pytest.raises(ValueError):
        handler.alloc((1 << 20) + 1)
    with pytest.raises(ValueError):
        handler.store("x")


def test_batches_and_pins(handler):
    keys = [f"k{i}" for i in range(5)]
    handles = []
    for i in range(5):
        h = handler.alloc(8)
        h.buf[:] = bytes([i]) * 8
        handles.append(h)
    assert handler.batch_store(keys, handles) == [True] * 5
    assert handler.batch_exists([*keys, "nope"]) == [True] * 5 + [False]
    infos = handler.batch_retrieve(["k2", "nope"])
    assert bytes(infos[0].view) == b"\x02" * 8 and infos[1] is None
    assert handler.batch_pin(["k0", "nope"]) == [True, False]
    assert handler.delete("k0")
    assert handler.unpin("k0") and not handler.unpin("k0")
    assert handler.batch_unpin(["k1"]) == [False]


def test_free_after_store_evicts(handler):
    h = handler.alloc(4)
    h.buf[:] = b"evic"
    assert handler.store("e", handle=h)
    handler.free(h)
    assert not handler.exists("e")


def test_lifecycle(tmp_path, monkeypatch):
    monkeypatch.setenv("MARUFS_MOUNT", str(tmp_path))
    h = MaruHandler(MaruConfig(auto_connect=False, instance_id="inst"))
    assert not h.connected and not h.healthcheck()
    with pytest.raises(RuntimeError):
        h.alloc(1)
    assert h.connect() and h.connected and h.instance_id == "inst"
    assert h.healthcheck() and h.get_chunk_size() == 1 << 20
    assert h.get_stats()["app"]["name"] == "inst"
    a = h.alloc(10)
    h.close()
    assert not h.connected
    assert not (tmp_path / "inst").exists() or list((tmp_path / "inst").iterdir()) == []
    del a
    assert MaruConfig(server_url="marufs:///mnt/x").resolved_mount() == "/mnt/x"
