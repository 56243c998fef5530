//! Capacity: evicting an application's keys when its quota or the pool is
//! full (the policy of [`Store::make_room`](crate::Store::make_room)).
//!
//! Deleting a key is always safe for its readers, on every host: the name
//! goes at once, the bytes stay valid for whoever maps, opens or pins the
//! key, and the space returns when the last of them lets go. So eviction
//! needs no coordination; it only chooses *which* keys:
//!
//! 1. the application's keys, oldest published first (the key's `mtime`,
//!    which marufs sets at publication), ties by name;
//! 2. skipping keys pinned through this store ([`Store::pin`](crate::Store::pin)):
//!    their space would not come back while pinned anyway;
//! 3. until the bytes asked for are freed.
//!
//! Watermarks: with a quota, the application is cut down to `low_pct` of it
//! once an allocation would take it past `high_pct`; when the pool itself is
//! full, enough is evicted to leave room for the allocation plus
//! `high_pct - low_pct` percent of the pool, so that the next allocations do
//! not each pay an eviction.
//!
//! The quota counts the application's keys (as listed: every process's and
//! host's) and this store's allocations not yet published (unnamed ones are
//! in no listing). It is a limit for [`Store::alloc_evicting`](crate::Store::alloc_evicting):
//! when what is left after evicting (pinned keys, allocations in flight)
//! plus the new allocation would pass it, the allocation fails with
//! `NoSpace`. Other stores of the application (other processes, hosts) see
//! only each other's published keys, so each may pass it by its own
//! allocations in flight.
//!
//! Sizes count as the pool gives them (whole 2 MiB units on marufs). A
//! store decides one allocation at a time and reserves its space before
//! the next decision, so its threads together never pass the quota. It
//! keeps a running figure of the application's keys (its last listing plus
//! what it published since, minus what it evicted) and lists the
//! application again only when that figure is older than
//! [`USAGE_REFRESH`](crate::USAGE_REFRESH) or the allocation would pass the
//! high watermark (an allocation then costs no listing: 16 ms at 16k keys);
//! keys other stores published in between count from the next listing.
//! Names beginning with [`RESERVED_PREFIX`] are refused as keys.

use std::collections::HashMap;
use std::sync::Mutex;

/// The eviction policy of a store (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EvictionPolicy {
    /// Most pool space (allocated bytes) the application's keys and this
    /// store's allocations in flight may take; `None`: no quota (evict only
    /// when the pool is full).
    pub quota: Option<u64>,
    /// An allocation that would take the application past this percentage
    /// of its quota evicts first. Default 95.
    pub high_pct: u8,
    /// ... down to this percentage. Default 85.
    pub low_pct: u8,
}

impl Default for EvictionPolicy {
    fn default() -> Self {
        EvictionPolicy {
            quota: None,
            high_pct: 95,
            low_pct: 85,
        }
    }
}

/// Names beginning with this are the library's own entries of an
/// application directory (never listed as keys, never evicted).
pub const RESERVED_PREFIX: &str = ".marufs-";

/// The empty entry recording a quota'd application's policy for every tool
/// (`maru df`, `maru top`): the policy is in its name, so it takes no pool
/// space.
const MARKER: &str = ".marufs-eviction.";

impl EvictionPolicy {
    /// The name of the entry recording this policy (`None` without a quota):
    /// `.marufs-eviction.quota=BYTES.high=PCT.low=PCT`.
    pub fn marker_name(&self) -> Option<String> {
        self.quota.map(|q| {
            format!(
                "{MARKER}quota={q}.high={}.low={}",
                self.high_pct, self.low_pct
            )
        })
    }

    /// The policy a [`marker_name`](Self::marker_name) records.
    pub fn from_marker_name(name: &str) -> Option<EvictionPolicy> {
        let rest = name.strip_prefix(MARKER)?;
        let mut it = rest.split('.');
        let mut field = |k: &str| it.next()?.strip_prefix(k)?.parse::<u64>().ok();
        let quota = field("quota=")?;
        let high_pct = u8::try_from(field("high=")?).ok()?;
        let low_pct = u8::try_from(field("low=")?).ok()?;
        (it.next().is_none() && low_pct <= high_pct && high_pct <= 100).then_some(EvictionPolicy {
            quota: Some(quota),
            high_pct,
            low_pct,
        })
    }

    /// The bytes to evict before allocating `size` more, given the
    /// application's allocated bytes and the pool's total and free bytes.
    pub fn to_free(&self, size: u64, app_allocated: u64, pool_total: u64, pool_free: u64) -> u64 {
        let high = u64::from(self.high_pct.min(100));
        let low = u64::from(self.low_pct.min(self.high_pct).min(100));
        // `p` percent of `q`, without overflow for any u64 quota.
        let pct = |q: u64, p: u64| q / 100 * p + q % 100 * p / 100;
        let for_quota = match self.quota {
            Some(q) if app_allocated.saturating_add(size) > pct(q, high) => {
                app_allocated.saturating_sub(pct(q, low).saturating_sub(size))
            }
            _ => 0,
        };
        let for_pool = if pool_free < size {
            let slack = pool_total / 100 * (high - low);
            size.saturating_add(slack).saturating_sub(pool_free)
        } else {
            0
        };
        for_quota.max(for_pool)
    }
}

/// What an eviction did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Evicted {
    /// Keys deleted.
    pub keys: u64,
    /// Pool space they occupied (returned once no host holds them).
    pub bytes: u64,
}

/// Keys pinned through one store (by inode): not evicted.
#[derive(Default)]
pub(crate) struct PinSet {
    m: Mutex<HashMap<u64, u32>>,
}

impl PinSet {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, u32>> {
        self.m.lock().unwrap_or_else(|p| p.into_inner())
    }
    pub(crate) fn add(&self, ino: u64) {
        *self.lock().entry(ino).or_insert(0) += 1;
    }
    pub(crate) fn remove(&self, ino: u64) {
        let mut g = self.lock();
        if let Some(n) = g.get_mut(&ino) {
            *n -= 1;
            if *n == 0 {
                g.remove(&ino);
            }
        }
    }
    pub(crate) fn contains(&self, ino: u64) -> bool {
        self.lock().contains_key(&ino)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: u64 = 1 << 30;

    #[test]
    fn marker_names_round_trip() {
        let p = EvictionPolicy {
            quota: Some(64 * G),
            high_pct: 90,
            low_pct: 70,
        };
        let n = p.marker_name().unwrap();
        assert_eq!(n, ".marufs-eviction.quota=68719476736.high=90.low=70");
        assert_eq!(EvictionPolicy::from_marker_name(&n), Some(p));
        assert!(n.starts_with(RESERVED_PREFIX) && n.len() <= crate::NAME_MAX);
        assert_eq!(EvictionPolicy::default().marker_name(), None);
        for bad in [
            ".marufs-eviction.quota=1.high=90",
            ".marufs-eviction.quota=1.high=90.low=95",
            ".marufs-eviction.quota=1.high=101.low=5",
            ".marufs-eviction.quota=x.high=90.low=5",
            ".marufs-eviction.quota=1.high=90.low=5.more",
            "quota=1.high=90.low=5",
        ] {
            assert_eq!(EvictionPolicy::from_marker_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn watermarks() {
        let p = EvictionPolicy {
            quota: Some(100 * G),
            ..EvictionPolicy::default()
        };
        // Below the high watermark: nothing.
        assert_eq!(p.to_free(G, 90 * G, 1000 * G, 500 * G), 0);
        // Past it: down to 85 % with room for the allocation.
        assert_eq!(p.to_free(2 * G, 94 * G, 1000 * G, 500 * G), 94 * G - 83 * G);
        // The pool is full: the allocation plus 10 % of the pool.
        let q = EvictionPolicy::default();
        assert_eq!(q.to_free(G, 0, 100 * G, 0), G + 10 * G);
        assert_eq!(q.to_free(G, 0, 100 * G, G), 0);
        // The larger need wins.
        assert_eq!(p.to_free(2 * G, 94 * G, 100 * G, 0), (2 + 10) * G);
    }
}
