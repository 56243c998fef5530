//! `maru`: the client library of marufs, a shared KV-cache store on CXL
//! shared memory — the Rust counterpart of XCENA Maru's `MaruHandler`,
//! with no server: the kernel module is the metadata service.
//!
//! A mounted pool (`mount -t marufs /dev/dax0.0 /mnt/maru`) holds
//! *application directories*; each holds *keys*, files whose bytes are pool
//! memory. A [`Store`] is one application's view:
//!
//! | Maru (`MaruHandler`) | here | system calls on marufs |
//! | --- | --- | --- |
//! | `alloc(size)` | [`Store::alloc`]`(key, size)` → [`AllocHandle`] | `openat(O_CREAT\|O_EXCL)`, `ftruncate`, `mmap(PROT_WRITE, MAP_SHARED)` |
//! | `store(key, handle=)` | [`Store::store`]`(handle)` | cache write-back, `munmap`, `close` (publishes) |
//! | `alloc(size)`, key known later | [`Store::alloc_unnamed`]`(size)`, then [`Store::store_as`]`(handle, key)` | `openat(O_TMPFILE)`...; `linkat` (publishes) |
//! | the same, the writer's view kept | [`Store::publish_mapped`]`(handle, key)` → [`Mapping`] | as above; the mapping stays, read-only |
//! | `store(key, data=)` | [`Store::store_bytes`] → `false` if it existed | as above, plus one copy |
//! | `free(handle)` | [`Store::free`] or drop | `MARUFS_IOC_DISCARD`, `close` |
//! | `retrieve(key)` | [`Store::retrieve`] → [`Mapping`] (zero copy, cached) | `openat(O_RDONLY)`, `mmap(PROT_READ, MAP_SHARED)`, `close` |
//! | `exists` / `delete` | [`Store::exists`] / [`Store::delete`] | `fstatat` / `unlinkat` |
//! | `batch_*` | [`Store::batch_exists`], [`Store::batch_retrieve`], [`Store::batch_store`] | one `MARUFS_IOC_LOOKUP` per 4096 names |
//! | `get_stats()` | [`Store::stats`], [`Pool::usage`] | `fstatfs`, `getdents`, lookups |
//! | — | [`Store::pin`] → [`Pin`] | an open descriptor (a hold on the key) |
//!
//! Published keys are immutable on every host; a key is never visible half
//! written; a second writer of the same name gets [`Error::Exists`] at
//! allocation, before writing anything (deduplication). That is why the
//! main write path names the key at allocation: marufs publishes a key
//! under the name it was created with, and reserving the name first saves
//! the loser of a race its copy. Where the key is known only after the
//! value is written, an unnamed allocation ([`Store::alloc_unnamed`], an
//! `O_TMPFILE`) is named and published in one step by [`Store::store_as`]. Permissions are the
//! kernel's: POSIX modes on directories and keys.
//!
//! The library works on any directory (tests and development use a
//! temporary directory); there, files have ordinary semantics (a key is
//! visible while being written, nothing enforces immutability).
//!
//! ```
//! # fn main() -> maru::Result<()> {
//! # let tmp = tempfile::tempdir().unwrap();
//! # let mount = tmp.path();
//! use maru::Store;
//! let store = Store::open(mount, "llama3-8b")?;
//! store.store_bytes("layer0/abc", b"x").unwrap_err(); // no '/' in names
//! store.store_bytes("abc", b"kv bytes")?;
//! let hits = store.batch_exists(&["abc", "def"])?;
//! assert_eq!(hits, [true, false]);
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod cache;
mod coherence;
mod counters;
mod error;
mod evict;
mod lookup;
mod map;
mod names;
mod pool;
mod store;
mod sys;

pub use coherence::Coherence;
pub use counters::Counters;
pub use error::{Error, Result};
pub use evict::{Evicted, EvictionPolicy};
pub use lookup::{BatchedLookup, KeyInfo, LookupMode};
pub use map::Mapping;
pub use names::{validate_name, NAME_MAX};
pub use pool::{AppUsage, Pool, PoolUsage};
pub use store::{AllocHandle, Pin, Stats, Store, StoreOptions, Unpublished, USAGE_REFRESH};

/// `statfs` `f_type` of a mounted marufs.
pub const MARUFS_MAGIC: i64 = sys::MARUFS_MAGIC;
