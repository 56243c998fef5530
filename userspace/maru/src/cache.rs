//! The mapping cache: key name -> live read-only mapping, so that retrieving
//! a key again costs no `open`/`mmap`/page faults.
//!
//! Sharded by name hash; each shard is a `RwLock<HashMap>`. A hit takes one
//! shard's read lock and bumps an atomic use stamp; only inserts and removals
//! take a shard's write lock. Bounded: when a shard is full, its least
//! recently used entry is dropped (LRU per shard, approximate overall).

use std::collections::hash_map::{DefaultHasher, Entry};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, RwLock};

use crate::map::MapInner;

const SHARDS: usize = 16;

struct Slot {
    map: Arc<MapInner>,
    used: AtomicU64,
}

pub(crate) struct Cache {
    shards: Vec<RwLock<HashMap<Box<str>, Slot>>>,
    per_shard: usize,
    clock: AtomicU64,
}

/// What an insert did.
pub(crate) struct Inserted {
    /// The mapping now cached for the key (an equal one inserted by another
    /// thread first wins, so racing misses share one mapping).
    pub map: Arc<MapInner>,
    /// Entries dropped to make room or because they were stale.
    pub evicted: u64,
}

impl Cache {
    /// A cache of about `capacity` entries (0 disables caching).
    pub(crate) fn new(capacity: usize) -> Self {
        let per_shard = capacity.div_ceil(SHARDS);
        Self {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            per_shard,
            clock: AtomicU64::new(0),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.per_shard > 0
    }

    fn shard(&self, key: &str) -> &RwLock<HashMap<Box<str>, Slot>> {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        &self.shards[(h.finish() as usize) % SHARDS]
    }

    /// The cached mapping of `key`, if any.
    pub(crate) fn get(&self, key: &str) -> Option<Arc<MapInner>> {
        if !self.enabled() {
            return None;
        }
        let shard = self.shard(key).read().unwrap_or_else(|e| e.into_inner());
        let slot = shard.get(key)?;
        slot.used.store(self.clock.fetch_add(1, Relaxed), Relaxed);
        Some(slot.map.clone())
    }

    /// Caches `map` for `key`. If the same incarnation (inode) is cached
    /// already, that one is kept and returned.
    pub(crate) fn insert(&self, key: &str, map: Arc<MapInner>) -> Inserted {
        if !self.enabled() {
            return Inserted { map, evicted: 0 };
        }
        let now = self.clock.fetch_add(1, Relaxed);
        let mut shard = self.shard(key).write().unwrap_or_else(|e| e.into_inner());
        let mut evicted = 0;
        if let Some(slot) = shard.get(key) {
            if slot.map.ino() == map.ino() {
                slot.used.store(now, Relaxed);
                return Inserted {
                    map: slot.map.clone(),
                    evicted: 0,
                };
            }
        } else if shard.len() >= self.per_shard {
            let victim = shard
                .iter()
                .min_by_key(|(_, s)| s.used.load(Relaxed))
                .map(|(k, _)| k.clone());
            if let Some(v) = victim {
                shard.remove(&v);
                evicted += 1;
            }
        }
        match shard.entry(key.into()) {
            Entry::Occupied(mut o) => {
                // A different incarnation: the old one is stale.
                evicted += 1;
                o.insert(Slot {
                    map: map.clone(),
                    used: AtomicU64::new(now),
                });
            }
            Entry::Vacant(v) => {
                v.insert(Slot {
                    map: map.clone(),
                    used: AtomicU64::new(now),
                });
            }
        }
        Inserted { map, evicted }
    }

    /// Drops `key`'s entry if it is incarnation `ino` (any if `None`);
    /// returns whether one was dropped.
    pub(crate) fn remove(&self, key: &str, ino: Option<u64>) -> bool {
        if !self.enabled() {
            return false;
        }
        let mut shard = self.shard(key).write().unwrap_or_else(|e| e.into_inner());
        match shard.get(key) {
            Some(s) if ino.is_none_or(|i| i == s.map.ino()) => {
                shard.remove(key);
                true
            }
            _ => false,
        }
    }

    /// Every cached (name, inode).
    pub(crate) fn entries(&self) -> Vec<(String, u64)> {
        let mut v = Vec::new();
        for s in &self.shards {
            let s = s.read().unwrap_or_else(|e| e.into_inner());
            v.extend(s.iter().map(|(k, slot)| (k.to_string(), slot.map.ino())));
        }
        v
    }

    /// Number of cached mappings and their total bytes.
    pub(crate) fn size(&self) -> (usize, u64) {
        let mut n = 0;
        let mut bytes = 0u64;
        for s in &self.shards {
            let s = s.read().unwrap_or_else(|e| e.into_inner());
            n += s.len();
            bytes += s.values().map(|x| x.map.len() as u64).sum::<u64>();
        }
        (n, bytes)
    }

    /// Drops every entry; returns how many.
    pub(crate) fn clear(&self) -> usize {
        let mut n = 0;
        for s in &self.shards {
            let mut s = s.write().unwrap_or_else(|e| e.into_inner());
            n += s.len();
            s.clear();
        }
        n
    }
}
