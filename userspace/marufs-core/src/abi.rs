//! The ioctl interface of a mounted marufs, shared by the kernel module and
//! the client library (one definition, explicit little-endian layouts).
//!
//! `MARUFS_IOC_LOOKUP` is issued on an open application directory (any open
//! mode). One call looks up many key names in that directory: the caller
//! needs search (exec) permission on the directory, as a path walk would.
//! The kernel takes its metadata lock once for the whole batch.
//!
//! Request ([`LookupReq`], 32 bytes, read by the kernel from the ioctl
//! argument): a pointer to the packed names, their total length, the number of
//! names, a pointer to the result array and flags (0 or [`LOOKUP_EXISTS`];
//! any other bit fails the call with `EINVAL`).
//!
//! Packed names: `count` records, each one length byte (1..=255) followed by
//! that many name bytes; `names_len` is the total. A record that overruns
//! `names_len`, a zero length, `count` above [`LOOKUP_MAX`] or trailing bytes
//! fail the whole call with `EINVAL` before any lookup.
//!
//! Results: `count` records of [`LookupRes`] (40 bytes) written back in order.
//! `status` is 0 for a published key, or a positive errno (`ENOENT` for an
//! absent or still-unpublished name and for one no path can hold: `.`, `..`,
//! containing `/` or NUL; `EIO`/`EUCLEAN` for damaged metadata); the other
//! fields are valid when `status == 0`. The call returns the number of
//! present keys.
//!
//! With [`LOOKUP_EXISTS`] the results are `count` bytes instead: 1 for a
//! published key, 0 for no key by that name (absent, unpublished, a name no
//! path can hold, or something that is not a key). A name whose lookup
//! fails otherwise (damaged metadata) fails the whole call with its errno.
//! The kernel then copies no attributes: this is what `exists` needs.

/// ioctl type byte of marufs.
pub const IOC_TYPE: u8 = b'm';
/// Most names in one [`IOC_LOOKUP`] call.
pub const LOOKUP_MAX: u32 = 4096;

/// Linux `_IOC` encoding (asm-generic: x86, arm64, riscv).
pub const fn ioc(dir: u32, nr: u8, size: usize) -> u32 {
    (dir << 30) | ((size as u32) << 16) | ((IOC_TYPE as u32) << 8) | nr as u32
}
/// `_IOC_WRITE | _IOC_READ`.
pub const IOC_RW: u32 = 3;

/// Batched lookup: `_IOWR('m', 1, struct marufs_lookup_req)`.
pub const IOC_LOOKUP: u32 = ioc(IOC_RW, 1, LOOKUP_REQ_SIZE);

/// [`LookupReq::flags`]: answer presence only, one result byte per name.
pub const LOOKUP_EXISTS: u64 = 1;
/// Every flag [`IOC_LOOKUP`] knows.
pub const LOOKUP_FLAGS: u64 = LOOKUP_EXISTS;

/// Bytes of results a request asks for: `count` records of
/// [`LOOKUP_RES_SIZE`] bytes, or `count` bytes with [`LOOKUP_EXISTS`].
pub fn lookup_results_len(count: u32, flags: u64) -> usize {
    if flags & LOOKUP_EXISTS != 0 {
        count as usize
    } else {
        count as usize * LOOKUP_RES_SIZE
    }
}

/// Discard: `_IO('m', 2)`, no argument, on the creating file of an
/// unpublished key (opened with `O_CREAT` or `O_TMPFILE`): the key is never
/// published; it is freed when that file is released (last descriptor and
/// last mapping gone). `EPERM` on any other file (published keys are
/// deleted with `unlink`).
pub const IOC_DISCARD: u32 = ioc(0, 2, 0);

/// TEST ONLY, refused (`ENOTTY`) unless the module's `test_skip` has bit 8:
/// `_IO('m', 3)` on an application directory, the argument a number of
/// milliseconds: takes the cross-host namespace lock and keeps it that long
/// (renewing the lease), so a test can kill a host that holds the lock.
pub const IOC_TEST_HOLD_LOCK: u32 = ioc(0, 3, 0);

/// Size of [`LookupReq`] on the wire.
pub const LOOKUP_REQ_SIZE: usize = 32;
/// Size of [`LookupRes`] on the wire.
pub const LOOKUP_RES_SIZE: usize = 40;

/// The request of [`IOC_LOOKUP`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LookupReq {
    /// User address of the packed names.
    pub names: u64,
    /// Total bytes of packed names.
    pub names_len: u32,
    /// Number of names (and of result records).
    pub count: u32,
    /// User address of the results ([`lookup_results_len`] bytes).
    pub results: u64,
    /// 0 or [`LOOKUP_EXISTS`].
    pub flags: u64,
}

impl LookupReq {
    /// Encodes to the wire layout.
    pub fn encode(&self) -> [u8; LOOKUP_REQ_SIZE] {
        let mut b = [0u8; LOOKUP_REQ_SIZE];
        put(&mut b, 0, &self.names.to_le_bytes());
        put(&mut b, 8, &self.names_len.to_le_bytes());
        put(&mut b, 12, &self.count.to_le_bytes());
        put(&mut b, 16, &self.results.to_le_bytes());
        put(&mut b, 24, &self.flags.to_le_bytes());
        b
    }
    /// Decodes from the wire layout.
    pub fn decode(b: &[u8; LOOKUP_REQ_SIZE]) -> Self {
        Self {
            names: u64_at(b, 0),
            names_len: u32_at(b, 8),
            count: u32_at(b, 12),
            results: u64_at(b, 16),
            flags: u64_at(b, 24),
        }
    }
}

/// One result of [`IOC_LOOKUP`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LookupRes {
    /// 0: present; otherwise a positive errno.
    pub status: u32,
    /// Mode bits (file type included: `S_IFREG | perm`).
    pub mode: u32,
    /// Size in bytes.
    pub size: u64,
    /// Inode number (as `stat` reports it).
    pub ino: u64,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time (ns since the epoch).
    pub mtime_ns: u64,
}

impl LookupRes {
    /// Encodes to the wire layout.
    pub fn encode(&self) -> [u8; LOOKUP_RES_SIZE] {
        let mut b = [0u8; LOOKUP_RES_SIZE];
        put(&mut b, 0, &self.status.to_le_bytes());
        put(&mut b, 4, &self.mode.to_le_bytes());
        put(&mut b, 8, &self.size.to_le_bytes());
        put(&mut b, 16, &self.ino.to_le_bytes());
        put(&mut b, 24, &self.uid.to_le_bytes());
        put(&mut b, 28, &self.gid.to_le_bytes());
        put(&mut b, 32, &self.mtime_ns.to_le_bytes());
        b
    }
    /// Decodes from the wire layout.
    pub fn decode(b: &[u8; LOOKUP_RES_SIZE]) -> Self {
        Self {
            status: u32_at(b, 0),
            mode: u32_at(b, 4),
            size: u64_at(b, 8),
            ino: u64_at(b, 16),
            uid: u32_at(b, 24),
            gid: u32_at(b, 28),
            mtime_ns: u64_at(b, 32),
        }
    }
}

/// Iterates over packed names: yields each name, or `Err(())` once when the
/// packing is malformed (zero length or a record past the end).
pub struct PackedNames<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> PackedNames<'a> {
    /// Walks `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }
    /// Bytes not consumed yet.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }
}

impl<'a> Iterator for PackedNames<'a> {
    type Item = Result<&'a [u8], ()>;
    fn next(&mut self) -> Option<Self::Item> {
        let len = *self.buf.get(self.pos)? as usize;
        let name = self.buf.get(self.pos + 1..self.pos + 1 + len);
        match name {
            Some(n) if len > 0 => {
                self.pos += 1 + len;
                Some(Ok(n))
            }
            _ => {
                self.pos = self.buf.len();
                Some(Err(()))
            }
        }
    }
}

/// Checks a whole packed buffer against `count`: every record well formed,
/// exactly `count` of them, no trailing bytes.
pub fn validate_packed(buf: &[u8], count: u32) -> bool {
    if count > LOOKUP_MAX {
        return false;
    }
    let mut it = PackedNames::new(buf);
    let mut n = 0u32;
    for r in it.by_ref() {
        if r.is_err() {
            return false;
        }
        n += 1;
    }
    n == count && it.remaining() == 0
}

/// Appends one name to a packed buffer (a slice writer for `no_std` callers);
/// returns the new length, or `None` if the name is empty, longer than 255
/// bytes or does not fit.
pub fn pack_name(buf: &mut [u8], at: usize, name: &[u8]) -> Option<usize> {
    if name.is_empty() || name.len() > 255 {
        return None;
    }
    let end = at.checked_add(1 + name.len())?;
    let dst = buf.get_mut(at..end)?;
    let (l, rest) = dst.split_first_mut()?;
    *l = name.len() as u8;
    rest.copy_from_slice(name);
    Some(end)
}

fn put(b: &mut [u8], at: usize, v: &[u8]) {
    if let Some(d) = b.get_mut(at..at + v.len()) {
        d.copy_from_slice(v);
    }
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        x.copy_from_slice(s);
    }
    u32::from_le_bytes(x)
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        x.copy_from_slice(s);
    }
    u64::from_le_bytes(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_number_matches_iowr() {
        // _IOWR('m', 1, 32 bytes) and _IO('m', 2) as C computes them.
        assert_eq!(IOC_LOOKUP, 0xc020_6d01);
        assert_eq!(IOC_DISCARD, 0x6d02);
        assert_eq!(IOC_TEST_HOLD_LOCK, 0x6d03);
    }

    #[test]
    fn round_trips() {
        let q = LookupReq {
            names: 0x1122_3344_5566_7788,
            names_len: 9,
            count: 2,
            results: 42,
            flags: 0,
        };
        assert_eq!(LookupReq::decode(&q.encode()), q);
        let r = LookupRes {
            status: 2,
            mode: 0o100644,
            size: 1 << 25,
            ino: 7,
            uid: 1001,
            gid: 2000,
            mtime_ns: 99,
        };
        assert_eq!(LookupRes::decode(&r.encode()), r);
    }

    #[test]
    fn results_len() {
        assert_eq!(lookup_results_len(3, 0), 3 * LOOKUP_RES_SIZE);
        assert_eq!(lookup_results_len(3, LOOKUP_EXISTS), 3);
        assert_eq!(lookup_results_len(LOOKUP_MAX, 0), 4096 * 40);
        assert_eq!(LOOKUP_FLAGS & !LOOKUP_EXISTS, 0);
    }

    #[test]
    fn packing() {
        let mut b = [0u8; 16];
        let n = pack_name(&mut b, 0, b"ab").unwrap();
        let n = pack_name(&mut b, n, b"xyz").unwrap();
        assert_eq!(n, 7);
        assert!(validate_packed(&b[..n], 2));
        assert!(!validate_packed(&b[..n], 3));
        assert!(!validate_packed(&b[..n + 1], 2)); // zero-length record
        assert!(!validate_packed(&b[..n - 1], 2)); // truncated
        assert!(pack_name(&mut b, 0, b"").is_none());
        assert!(pack_name(&mut b, 10, b"toolong").is_none());
        let v: [u8; 256] = [b'a'; 256];
        assert!(pack_name(&mut [0u8; 300], 0, &v).is_none());
    }
}
