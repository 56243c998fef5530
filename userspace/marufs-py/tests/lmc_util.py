"""What the LMCache tests share (also imported by their subprocesses): the
model's metadata, configurations, a CPU stand-in for vLLM's GPU connector."""

from __future__ import annotations

import os

os.environ.setdefault("LMCACHE_LOG_LEVEL", "WARNING")

import torch
from lmcache.utils import CacheEngineKey
from lmcache.v1.config import LMCacheEngineConfig
from lmcache.v1.gpu_connector.gpu_connectors import GPUConnectorInterface
from lmcache.v1.metadata import LMCacheMetadata

MODEL = "meta-llama/Llama-3.1-8B-Instruct"


def metadata(chunk: int = 16, layers: int = 4) -> LMCacheMetadata:
    """Llama-3.1-8B's per-layer KV shape (8 KV heads of 128), `layers`
    layers (32 in the model), bf16."""
    return LMCacheMetadata(
        model_name=MODEL,
        world_size=1,
        local_world_size=1,
        worker_id=0,
        local_worker_id=0,
        kv_dtype=torch.bfloat16,
        kv_shape=(layers, 2, chunk, 8, 128),
        chunk_size=chunk,
        role="worker",
    )


def config(
    mount: str,
    chunk: int = 16,
    name: str = "MaruBackend",
    local_cpu_gb: float = 0,
    **extra: object,
) -> LMCacheEngineConfig:
    """LMCache with the marufs plugin as `name` ("MaruBackend", no local CPU
    backend: the plugin is the allocator, zero copy)."""
    ec: dict[str, object] = {
        f"storage_plugin.{name}.module_path": "marufs.lmcache",
        f"storage_plugin.{name}.class_name": "MarufsBackend",
        "marufs.mount": mount,
    }
    ec.update(extra)
    return LMCacheEngineConfig.from_dict(
        {
            "chunk_size": chunk,
            "local_cpu": False,
            "max_local_cpu_size": local_cpu_gb,
            "storage_plugins": [name],
            "extra_config": ec,
        }
    )


def key(md: LMCacheMetadata, h: int) -> CacheEngineKey:
    return CacheEngineKey(md.model_name, md.world_size, md.worker_id, h, md.kv_dtype)


def chunk_data(md: LMCacheMetadata, seed: int, tokens: int | None = None) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(md.get_shapes(tokens)[0], generator=g).to(md.kv_dtype)


class CPUConnector(GPUConnectorInterface):
    """vLLM's paged KV cache stood in for by one CPU tensor
    ``[2, layers, tokens, hidden]`` (LMCache's KV_2LTD)."""

    def __init__(self, md: LMCacheMetadata) -> None:
        self.md = md

    def get_shape(self, num_tokens: int) -> torch.Size:
        return self.md.get_shapes(num_tokens)[0]

    def from_gpu(self, memory_obj, start, end, **kw):
        memory_obj.tensor.copy_(kw["kvcache"][:, :, start:end])

    def to_gpu(self, memory_obj, start, end, **kw):
        kw["kvcache"][:, :, start:end].copy_(memory_obj.tensor)

    def batched_from_gpu(self, memory_objs, starts, ends, **kw):
        for o, s, e in zip(memory_objs, starts, ends, strict=True):
            self.from_gpu(o, s, e, **kw)

    def batched_to_gpu(self, memory_objs=None, starts=None, ends=None, **kw):
        for o, s, e in zip(memory_objs, starts, ends, strict=True):
            self.to_gpu(o, s, e, **kw)
