//! A host-local (DRAM) table of name lookup answers, the batched lookup's
//! fast path: `MARUFS_IOC_LOOKUP` answers a name from here when the answer
//! was found under the directory's current change counter.
//!
//! Coherence is the directory change counter's (see `fs::dir_changes` and
//! `Documentation/design/protocol.md`, "Name caches"): every transaction that
//! changes what a lookup in a directory returns bumps the counter as its last
//! write. An answer is stored with a *tag*: a counter value read before the
//! lookup that found it. It is served only while the counter still reads
//! that value, so any change since makes it stale at once. A tag of 0 is
//! never served (pools without the feature read 0).
//!
//! The table has a fixed number of slots (no allocation after creation):
//! 4-way buckets ([`Group`]s, 1088 bytes) picked by a hash of (directory, name);
//! a new answer takes a free or stale slot of its bucket, else one chosen by
//! the hash. A bucket's hashes and tags share one cache line and a short
//! name sits in its slot's first line: a hit touches two lines. Names longer than
//! [`NAME_INLINE`] bytes are not kept (they are looked up every time).
//! A hostile name set can at worst evict others from a bucket: a slower
//! lookup, never a wrong answer (every hit compares the whole name).

/// Longest name a slot keeps.
pub const NAME_INLINE: usize = 184;
/// Slots per bucket.
const WAYS: usize = 4;

/// The attributes a lookup answer carries (what `MARUFS_IOC_LOOKUP` reports).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Attrs {
    /// Inode number.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, ns since the epoch.
    pub mtime_ns: u64,
    /// Mode bits, file type included.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

/// One name's answer: present (with its attributes) or absent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The name is present.
    Present(Attrs),
    /// No such name.
    Absent,
}

impl Answer {
    /// Whether the answer is a key: present and a regular file.
    pub fn is_key(&self) -> bool {
        matches!(self, Answer::Present(a) if a.mode & 0o170000 == 0o100000)
    }
}

/// One slot of a [`Group`]: what was looked up and the answer. The name
/// comes first, so that a short one shares the first cache line.
#[derive(Clone, Debug)]
#[repr(C, align(64))]
pub struct Slot {
    dir: u64,
    len: u8,
    present: bool,
    /// Present and a regular file (what `exists` asks).
    key: bool,
    name: [u8; NAME_INLINE],
    attrs: Attrs,
}

impl Default for Slot {
    fn default() -> Self {
        Self {
            dir: 0,
            len: 0,
            present: false,
            key: false,
            name: [0; NAME_INLINE],
            attrs: Attrs::default(),
        }
    }
}

impl Slot {
    fn holds(&self, dir: u64, name: &[u8]) -> bool {
        self.dir == dir
            && usize::from(self.len) == name.len()
            && self
                .name
                .get(..name.len())
                .is_some_and(|n| same_bytes(n, name))
    }
}

/// A bucket of the table: the hashes and tags of its slots in one cache
/// line (a probe reads them first), then the slots, each starting a line.
/// 1088 bytes.
#[derive(Clone, Debug, Default)]
#[repr(C, align(64))]
pub struct Group {
    hash: [u64; WAYS],
    /// Counter value each slot's answer holds for; 0: empty.
    tag: [u64; WAYS],
    slots: [Slot; WAYS],
}

impl Group {
    /// The slot holding (`dir`, `name`), by index.
    fn find(&self, hash: u64, dir: u64, name: &[u8]) -> Option<usize> {
        (0..WAYS).find(|&i| {
            self.tag.get(i).is_some_and(|&t| t != 0)
                && self.hash.get(i) == Some(&hash)
                && self.slots.get(i).is_some_and(|s| s.holds(dir, name))
        })
    }
}

/// `a == b` for equally long slices, a word at a time (the kernel's `memcmp`
/// goes byte by byte, and a table hit always compares the whole name).
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let (mut x, mut y) = (a.chunks_exact(8), b.chunks_exact(8));
    for (p, q) in x.by_ref().zip(y.by_ref()) {
        let mut u = [0u8; 8];
        let mut v = [0u8; 8];
        u.copy_from_slice(p);
        v.copy_from_slice(q);
        if u64::from_ne_bytes(u) != u64::from_ne_bytes(v) {
            return false;
        }
    }
    let (p, q) = (x.remainder(), y.remainder());
    p.len() == q.len() && p.iter().zip(q).all(|(c, d)| c == d)
}

/// A kept answer, borrowed from its slot (no copy on the hot path).
#[derive(Clone, Copy, Debug)]
pub struct Kept<'a> {
    present: bool,
    key: bool,
    attrs: &'a Attrs,
}

impl Kept<'_> {
    /// Whether the name is present.
    pub fn present(&self) -> bool {
        self.present
    }
    /// Whether the name is a key (present, a regular file).
    pub fn is_key(&self) -> bool {
        self.key
    }
    /// The answer, copied out.
    pub fn answer(&self) -> Answer {
        if self.present {
            Answer::Present(*self.attrs)
        } else {
            Answer::Absent
        }
    }
}

/// Hash of (directory, name) for the table: word at a time (names are
/// hashed on every batched lookup), not stored anywhere.
pub fn table_hash(dir: u64, name: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = (dir ^ (name.len() as u64)).wrapping_mul(K);
    let mut chunks = name.chunks_exact(8);
    for c in chunks.by_ref() {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        // Byte by byte: a variable-length copy would be a memcpy call.
        let w = rest
            .iter()
            .rev()
            .fold(0u64, |w, &c| (w << 8) | u64::from(c));
        h = (h.rotate_left(5) ^ w).wrapping_mul(K);
    }
    // Every input bit reaches every output bit (murmur3's finaliser): the
    // bucket comes from a few of them, and names often differ in one byte.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The table over caller-provided groups (a power of two of them, at least
/// one; the kernel allocates them once per mount).
pub struct NameTable<'a> {
    groups: &'a mut [Group],
}

impl<'a> NameTable<'a> {
    /// The table over `groups`; `None` unless their number is a power of
    /// two.
    pub fn new(groups: &'a mut [Group]) -> Option<Self> {
        groups.len().is_power_of_two().then_some(Self { groups })
    }

    fn group(&self, hash: u64) -> usize {
        // The high bits: the low ones pick the slot to replace.
        (hash >> 32) as usize & (self.groups.len() - 1)
    }

    /// The answer for `name` in directory `dir` if it was stored under
    /// `tag` (the counter just read); `None` otherwise.
    pub fn get(&self, dir: u64, name: &[u8], tag: u64) -> Option<Answer> {
        self.kept(dir, name, tag).map(|k| k.answer())
    }

    /// [`get`](Self::get) without copying the attributes out.
    pub fn kept(&self, dir: u64, name: &[u8], tag: u64) -> Option<Kept<'_>> {
        if tag == 0 {
            return None;
        }
        let hash = table_hash(dir, name);
        let g = self.groups.get(self.group(hash))?;
        let i = g.find(hash, dir, name)?;
        if g.tag.get(i) != Some(&tag) {
            return None;
        }
        let s = g.slots.get(i)?;
        Some(Kept {
            present: s.present,
            key: s.key,
            attrs: &s.attrs,
        })
    }

    /// Stores `answer` for `name` in `dir`, found by a lookup that began
    /// after the counter read `tag`. Names longer than [`NAME_INLINE`] and
    /// tag 0 are not stored.
    pub fn put(&mut self, dir: u64, name: &[u8], tag: u64, answer: Answer) {
        if tag == 0 || name.len() > NAME_INLINE {
            return;
        }
        let hash = table_hash(dir, name);
        let gi = self.group(hash);
        let Some(g) = self.groups.get_mut(gi) else {
            return;
        };
        // The same name, else an empty slot, else one chosen by the hash's
        // low bits (no per-bucket state to keep).
        let i = g
            .find(hash, dir, name)
            .or_else(|| g.tag.iter().position(|&t| t == 0))
            .unwrap_or((hash as usize) % WAYS);
        let (Some(h), Some(t), Some(s)) = (g.hash.get_mut(i), g.tag.get_mut(i), g.slots.get_mut(i))
        else {
            return;
        };
        let Some(dst) = s.name.get_mut(..name.len()) else {
            return;
        };
        dst.copy_from_slice(name);
        s.len = name.len() as u8;
        s.dir = dir;
        s.key = answer.is_key();
        match answer {
            Answer::Present(a) => {
                s.present = true;
                s.attrs = a;
            }
            Answer::Absent => {
                s.present = false;
                s.attrs = Attrs::default();
            }
        }
        *h = hash;
        *t = tag;
    }

    /// Forgets every answer.
    pub fn clear(&mut self) {
        for g in self.groups.iter_mut() {
            g.tag = [0; WAYS];
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec;
    use std::vec::Vec;

    fn attrs(ino: u64) -> Attrs {
        Attrs {
            ino,
            size: 4096,
            mtime_ns: 7,
            mode: 0o100644,
            uid: 1,
            gid: 2,
        }
    }

    #[test]
    fn word_compare() {
        for (a, b, eq) in [
            (&b""[..], &b""[..], true),
            (b"key-001", b"key-001", true),
            (b"key-001", b"key-002", false),
            (b"0123456789abcdef", b"0123456789abcdef", true),
            (b"0123456789abcdef", b"0123456789abcdeF", false),
            (b"x123456789abcdef", b"0123456789abcdef", false),
            (b"0123456789abcdefg", b"0123456789abcdefh", false),
        ] {
            assert_eq!(same_bytes(a, b), eq, "{a:?} {b:?}");
        }
    }

    #[test]
    fn kept_answers() {
        let mut slots = vec![Group::default(); 2];
        let mut t = NameTable::new(&mut slots).unwrap();
        t.put(1, b"f", 5, Answer::Present(attrs(3)));
        t.put(
            1,
            b"d",
            5,
            Answer::Present(Attrs {
                mode: 0o40755,
                ..attrs(4)
            }),
        );
        t.put(1, b"a", 5, Answer::Absent);
        let k = t.kept(1, b"f", 5).unwrap();
        assert!(k.present() && k.is_key());
        assert_eq!(k.answer(), Answer::Present(attrs(3)));
        let k = t.kept(1, b"d", 5).unwrap();
        assert!(k.present() && !k.is_key());
        let k = t.kept(1, b"a", 5).unwrap();
        assert!(!k.present() && !k.is_key());
        assert!(t.kept(1, b"f", 6).is_none());
    }

    #[test]
    fn group_is_1k() {
        assert_eq!(core::mem::size_of::<Slot>(), 256);
        assert_eq!(core::mem::size_of::<Group>(), 64 + 4 * 256);
        assert_eq!(core::mem::align_of::<Group>(), 64);
        // A short name's bytes are in its slot's first cache line.
        assert!(core::mem::offset_of!(Slot, name) + 40 <= 64);
    }

    #[test]
    fn sizes() {
        assert!(NameTable::new(&mut []).is_none());
        assert!(NameTable::new(&mut vec![Group::default(); 3]).is_none());
        assert!(NameTable::new(&mut vec![Group::default(); 1]).is_some());
        assert!(NameTable::new(&mut vec![Group::default(); 4]).is_some());
    }

    #[test]
    fn answers_only_under_their_tag() {
        let mut slots = vec![Group::default(); 16];
        let mut t = NameTable::new(&mut slots).unwrap();
        assert_eq!(t.get(5, b"k1", 3), None);
        t.put(5, b"k1", 3, Answer::Present(attrs(9)));
        t.put(5, b"k2", 3, Answer::Absent);
        assert_eq!(t.get(5, b"k1", 3), Some(Answer::Present(attrs(9))));
        assert_eq!(t.get(5, b"k2", 3), Some(Answer::Absent));
        // Another counter value, directory, name or prefix: no answer.
        assert_eq!(t.get(5, b"k1", 4), None);
        assert_eq!(t.get(6, b"k1", 3), None);
        assert_eq!(t.get(5, b"k", 3), None);
        assert_eq!(t.get(5, b"k10", 3), None);
        // Tag 0 (no counters on this pool) is never stored or served.
        t.put(5, b"z", 0, Answer::Absent);
        assert_eq!(t.get(5, b"z", 0), None);
        // A newer answer replaces the older one in place.
        t.put(5, b"k1", 4, Answer::Absent);
        assert_eq!(t.get(5, b"k1", 4), Some(Answer::Absent));
        assert_eq!(t.get(5, b"k1", 3), None);
        t.clear();
        assert_eq!(t.get(5, b"k1", 4), None);
    }

    #[test]
    fn long_names_are_not_kept() {
        let mut slots = vec![Group::default(); 1];
        let mut t = NameTable::new(&mut slots).unwrap();
        let long = [b'a'; NAME_INLINE + 1];
        t.put(1, &long, 1, Answer::Absent);
        assert_eq!(t.get(1, &long, 1), None);
        let max = [b'b'; NAME_INLINE];
        t.put(1, &max, 1, Answer::Absent);
        assert_eq!(t.get(1, &max, 1), Some(Answer::Absent));
    }

    #[test]
    fn full_buckets_evict_but_never_lie() {
        // One bucket: every name collides.
        let mut slots = vec![Group::default(); 1];
        let mut t = NameTable::new(&mut slots).unwrap();
        let names: Vec<Vec<u8>> = (0..40u32)
            .map(|i| std::format!("key-{i}").into_bytes())
            .collect();
        for (i, n) in names.iter().enumerate() {
            t.put(1, n, 1, Answer::Present(attrs(i as u64)));
        }
        let mut kept = 0;
        for (i, n) in names.iter().enumerate() {
            match t.get(1, n, 1) {
                Some(Answer::Present(a)) => {
                    assert_eq!(a.ino, i as u64);
                    kept += 1;
                }
                Some(Answer::Absent) => panic!("{i}: wrong answer"),
                None => {}
            }
        }
        assert!((1..=4).contains(&kept), "{kept}");
    }

    #[test]
    fn hash_spreads_similar_names() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..4096u32 {
            let n = std::format!("vllm@llama@0@{i:016x}");
            seen.insert((table_hash(3, n.as_bytes()) >> 32) & 1023);
        }
        // 4096 names over 1024 buckets: nearly all buckets used.
        assert!(seen.len() > 950, "{}", seen.len());
        // Short names differing in one or two bytes (the bench's), in a
        // table of 4096 slots: spread like random (512 names, 1024 buckets:
        // ~400 used, none with more than 4).
        let mut per = std::collections::HashMap::new();
        for i in 0..512u32 {
            let n = std::format!("key-{i:03}");
            *per.entry((table_hash(7, n.as_bytes()) >> 32) & 1023)
                .or_insert(0) += 1;
        }
        assert!(per.len() > 350, "{} buckets", per.len());
        assert!(per.values().all(|&c| c <= 4), "{:?}", per.values().max());
        // Every slot of a full table of such names is found again.
        let mut slots = vec![Group::default(); 1024];
        let mut t = NameTable::new(&mut slots).unwrap();
        for i in 0..512u32 {
            t.put(7, std::format!("key-{i:03}").as_bytes(), 1, Answer::Absent);
        }
        let kept = (0..512u32)
            .filter(|i| t.get(7, std::format!("key-{i:03}").as_bytes(), 1).is_some())
            .count();
        assert_eq!(kept, 512);
        assert_ne!(table_hash(1, b"a"), table_hash(2, b"a"));
        assert_ne!(table_hash(1, b"a"), table_hash(1, b"a\0"));
    }
}
