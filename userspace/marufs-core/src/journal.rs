//! Per-host redo journal: makes every multi-line metadata mutation atomic.
//!
//! Layout of host `h`'s journal area (`JOURNAL_SIZE` bytes at `Geometry::journal(h)`):
//! - `+0`: `applied_seq` (u64, alone in its line): highest sequence applied in place.
//! - `+64`: record header: `seq` u64, `count` u32, `len` u32, `crc` u32, `magic` u32.
//! - `+128`: `len` bytes of ops: `target` u64, `size` u32, 4 pad bytes, then `size`
//!   data bytes padded to a multiple of 8.
//!
//! The CRC32C covers the ops bytes and then `seq`, `count`, `len`. A record is
//! pending when its CRC is valid and `seq > applied_seq`; replaying it is idempotent.

use super::crc;
use super::error::{Error, Result};
use super::layout::{rd32, rd64, wr32, wr64, Geometry, JOURNAL_SIZE};
use super::media::Media;

/// Journal record magic.
pub const JMAGIC: u32 = 0x4A52_4E4C;
/// Offset of the record header in the journal area.
pub const HDR: u64 = 64;
/// Offset of the ops in the journal area.
pub const OPS: u64 = 128;
/// Capacity for ops bytes.
pub const CAP: u64 = JOURNAL_SIZE - OPS;
const OP_HDR: u64 = 16;
/// Bytes of a record read by one load (walk, apply): a record is read in
/// a few multi-line loads whose misses overlap, not one load per op
/// header and line.
const WINDOW: usize = 512;

/// A window over a record's ops bytes: serves reads from one buffered
/// load of up to [`WINDOW`] bytes and loads the next when a read leaves it.
struct Window {
    base: u64,
    len: u64,
    start: u64,
    fill: usize,
    buf: [u8; WINDOW],
}

impl Window {
    fn new(base: u64, len: u64) -> Window {
        Window {
            base,
            len,
            start: 0,
            fill: 0,
            buf: [0; WINDOW],
        }
    }

    /// Fills `out` (at most [`WINDOW`] bytes) with the ops bytes at `pos`;
    /// `Corrupt` past the record's end.
    fn read<M: Media>(&mut self, m: &M, pos: u64, out: &mut [u8]) -> Result<()> {
        let n = out.len() as u64;
        if n > WINDOW as u64 || pos.checked_add(n).is_none_or(|e| e > self.len) {
            return Err(Error::Corrupt);
        }
        let have = self.start + self.fill as u64;
        if pos < self.start || pos + n > have {
            let k = (self.len - pos).min(WINDOW as u64) as usize;
            let b = self.buf.get_mut(..k).ok_or(Error::Corrupt)?;
            m.load(self.base + pos, b)?;
            self.start = pos;
            self.fill = k;
        }
        let at = (pos - self.start) as usize;
        let src = self.buf.get(at..at + out.len()).ok_or(Error::Corrupt)?;
        out.copy_from_slice(src);
        Ok(())
    }
}

/// A transaction being built in a host's journal area.
#[derive(Debug)]
pub struct Txn {
    base: u64,
    seq: u64,
    pos: u64,
    count: u32,
    crc: u32,
    /// A final op was added ([`Txn::put_last`]): nothing may follow it.
    sealed: bool,
    /// An op being streamed ([`Txn::begin_op`]): its data's start and length.
    open: Option<(u64, u64)>,
}

/// A pending (valid, unapplied) record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pending {
    /// Sequence number.
    pub seq: u64,
    /// Number of ops.
    pub count: u32,
    /// Bytes of ops.
    pub len: u32,
}

fn target_ok(g: &Geometry, off: u64, len: u64) -> bool {
    match off.checked_add(len) {
        Some(end) => off >= g.host_off && end <= g.meta_end,
        None => false,
    }
}

impl Txn {
    /// Starts a transaction with sequence `seq` in host `host`'s journal.
    pub fn begin(g: &Geometry, host: u32, seq: u64) -> Txn {
        Txn {
            base: g.journal(host),
            seq,
            pos: 0,
            count: 0,
            crc: crc::INIT,
            sealed: false,
            open: None,
        }
    }

    /// Appends "write `data` at `off`" as the transaction's last op: it is
    /// applied (and flushed) after every other op, so a host that sees it
    /// sees all of them. Any later `put` fails with `InvalidArgument`.
    pub fn put_last<M: Media>(&mut self, m: &M, g: &Geometry, off: u64, data: &[u8]) -> Result<()> {
        self.put(m, g, off, data)?;
        self.sealed = true;
        Ok(())
    }

    /// Appends "write `data` at `off`" (not applied until [`Txn::commit`]).
    /// Ops are applied in order, each flushed before the next is written.
    pub fn put<M: Media>(&mut self, m: &M, g: &Geometry, off: u64, data: &[u8]) -> Result<()> {
        self.begin_op(m, g, off, data.len() as u64)?;
        self.op_data(m, data)?;
        self.end_op(m)
    }

    /// Starts an op "write `len` bytes at `off`" whose data follows in
    /// [`op_data`](Self::op_data) pieces, then [`end_op`](Self::end_op)
    /// (for copying another host's record without a buffer of its size).
    pub fn begin_op<M: Media>(&mut self, m: &M, g: &Geometry, off: u64, len: u64) -> Result<()> {
        if self.sealed || self.open.is_some() {
            return Err(Error::InvalidArgument);
        }
        let padded = len.div_ceil(8) * 8;
        if !target_ok(g, off, len) || len > u64::from(u32::MAX) {
            return Err(Error::InvalidArgument);
        }
        if self.pos + OP_HDR + padded > CAP {
            return Err(Error::Busy);
        }
        let mut h = [0u8; OP_HDR as usize];
        wr64(&mut h, 0, off);
        wr32(&mut h, 8, len as u32);
        m.store(self.base + OPS + self.pos, &h)?;
        self.crc = crc::update(self.crc, &h);
        self.open = Some((self.pos + OP_HDR, len));
        self.pos += OP_HDR;
        Ok(())
    }

    /// The next piece of the open op's data (see [`begin_op`](Self::begin_op)).
    pub fn op_data<M: Media>(&mut self, m: &M, data: &[u8]) -> Result<()> {
        let Some((start, len)) = self.open else {
            return Err(Error::InvalidArgument);
        };
        if self.pos + data.len() as u64 > start + len {
            return Err(Error::InvalidArgument);
        }
        m.store(self.base + OPS + self.pos, data)?;
        self.crc = crc::update(self.crc, data);
        self.pos += data.len() as u64;
        Ok(())
    }

    /// Ends the open op: checks its data is complete and pads it.
    pub fn end_op<M: Media>(&mut self, m: &M) -> Result<()> {
        let Some((start, len)) = self.open.take() else {
            return Err(Error::InvalidArgument);
        };
        if self.pos != start + len {
            return Err(Error::InvalidArgument);
        }
        let pad = (len.div_ceil(8) * 8 - len) as usize;
        if pad > 0 {
            let z = [0u8; 8];
            let z = z.get(..pad).unwrap_or(&[]);
            m.store(self.base + OPS + self.pos, z)?;
            self.crc = crc::update(self.crc, z);
            self.pos += pad as u64;
        }
        self.count += 1;
        Ok(())
    }

    /// Sequence number of this transaction.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Number of ops so far.
    pub fn len(&self) -> u32 {
        self.count
    }

    /// True when no op was added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Writes the header, flushes the record, applies it in place, flushes, and
    /// marks it applied. Returns the sequence number used.
    pub fn commit<M: Media>(self, m: &M, g: &Geometry, host: u32) -> Result<u64> {
        if self.open.is_some() {
            return Err(Error::InvalidArgument);
        }
        if self.count == 0 {
            return Ok(self.seq);
        }
        let mut tail = [0u8; 16];
        wr64(&mut tail, 0, self.seq);
        wr32(&mut tail, 8, self.count);
        wr32(&mut tail, 12, self.pos as u32);
        let c = crc::finish(crc::update(self.crc, &tail));
        let mut hdr = [0u8; 24];
        if let Some(s) = hdr.get_mut(..16) {
            s.copy_from_slice(&tail);
        }
        wr32(&mut hdr, 16, c);
        wr32(&mut hdr, 20, JMAGIC);
        m.store(self.base + HDR, &hdr)?;
        m.flush(self.base + HDR, OPS - HDR + self.pos)?;
        let p = Pending {
            seq: self.seq,
            count: self.count,
            len: self.pos as u32,
        };
        apply(m, g, host, &p)?;
        mark_applied(m, g, host, self.seq)?;
        Ok(self.seq)
    }
}

/// Reads `applied_seq` of host `host` (invalidating first).
pub fn applied_seq<M: Media>(m: &M, g: &Geometry, host: u32) -> Result<u64> {
    let base = g.journal(host);
    m.invalidate(base, 8)?;
    let mut b = [0u8; 8];
    m.load(base, &mut b)?;
    Ok(u64::from_le_bytes(b))
}

/// Sets `applied_seq` of host `host` and flushes.
pub fn mark_applied<M: Media>(m: &M, g: &Geometry, host: u32, seq: u64) -> Result<()> {
    let base = g.journal(host);
    m.store(base, &seq.to_le_bytes())?;
    m.flush(base, 8)?;
    Ok(())
}

/// What [`walk`] reports while it reads a record's ops.
enum Ev<'a> {
    /// An op "write `len` bytes at `off`" starts.
    Op { off: u64, len: u64 },
    /// Its next piece of data (`data` bytes of it; the rest is padding).
    Piece { bytes: &'a [u8], data: usize },
}

/// Reads host `host`'s record header (invalidating first) and, when it is
/// a complete, well-formed record with a valid CRC over exactly the bytes
/// read, returns it and its header CRC; `each` sees every op and piece as
/// it is read (an error from it ends the walk).
fn walk<M: Media>(
    m: &M,
    g: &Geometry,
    host: u32,
    mut each: impl FnMut(Ev<'_>) -> Result<()>,
) -> Result<Option<Pending>> {
    let base = g.journal(host);
    m.invalidate(base + HDR, 64)?;
    let mut hdr = [0u8; 24];
    m.load(base + HDR, &mut hdr)?;
    let seq = rd64(&hdr, 0);
    let count = rd32(&hdr, 8);
    let len = rd32(&hdr, 12);
    let c = rd32(&hdr, 16);
    if rd32(&hdr, 20) != JMAGIC || u64::from(len) > CAP || count == 0 || seq == 0 {
        return Ok(None);
    }
    m.invalidate(base + OPS, u64::from(len))?;
    // Walk the ops: structure and CRC.
    let mut st = crc::INIT;
    let mut pos: u64 = 0;
    let mut n = 0u32;
    let mut buf = [0u8; 64];
    let mut w = Window::new(base + OPS, u64::from(len));
    while pos < u64::from(len) {
        let mut oh = [0u8; OP_HDR as usize];
        if pos + OP_HDR > u64::from(len) {
            return Ok(None);
        }
        w.read(m, pos, &mut oh)?;
        st = crc::update(st, &oh);
        let off = rd64(&oh, 0);
        let sz = u64::from(rd32(&oh, 8));
        let padded = sz.div_ceil(8) * 8;
        if !target_ok(g, off, sz) || pos + OP_HDR + padded > u64::from(len) {
            return Ok(None);
        }
        each(Ev::Op { off, len: sz })?;
        let mut done = 0u64;
        while done < padded {
            let k = (padded - done).min(64) as usize;
            let piece = buf.get_mut(..k).ok_or(Error::Corrupt)?;
            w.read(m, pos + OP_HDR + done, piece)?;
            st = crc::update(st, piece);
            let data = (sz.saturating_sub(done) as usize).min(k);
            each(Ev::Piece { bytes: piece, data })?;
            done += k as u64;
        }
        pos += OP_HDR + padded;
        n += 1;
    }
    let mut tail = [0u8; 16];
    if let Some(s) = hdr.get(..16) {
        tail.copy_from_slice(s);
    }
    st = crc::update(st, &tail);
    if crc::finish(st) != c || n != count {
        return Ok(None);
    }
    Ok(Some(Pending { seq, count, len }))
}

/// Reads the record header of host `host` (invalidating first) and returns it when
/// it is a complete record with a valid CRC, whatever its sequence.
pub fn read_record<M: Media>(m: &M, g: &Geometry, host: u32) -> Result<Option<Pending>> {
    walk(m, g, host, |_| Ok(()))
}

/// Returns host `host`'s record if it is valid and not yet applied in place by
/// the host itself (`seq > applied_seq`).
pub fn pending<M: Media>(m: &M, g: &Geometry, host: u32) -> Result<Option<Pending>> {
    let applied = applied_seq(m, g, host)?;
    match read_record(m, g, host)? {
        Some(p) if p.seq > applied => Ok(Some(p)),
        _ => Ok(None),
    }
}

/// Copies host `host`'s pending record `p` into `t` (a transaction of the
/// calling host, in its own journal, which no other host writes), re-reading
/// it from the media and re-checking its header and CRC against what was
/// copied. True: `t` now holds exactly the record `p`, to be committed (and
/// so applied) by the caller. False: the record changed while it was read —
/// its host is alive and writing (a stalled host that resumed), and then it
/// had applied `p` itself before it started overwriting it; nothing of it may
/// be applied. A replayer never applies a record in place from a journal its
/// owner might rewrite meanwhile.
pub fn copy_record<M: Media>(
    m: &M,
    g: &Geometry,
    host: u32,
    p: &Pending,
    t: &mut Txn,
) -> Result<bool> {
    let mut open = false;
    let got = walk(m, g, host, |ev| match ev {
        Ev::Op { off, len } => {
            if open {
                t.end_op(m)?;
            }
            open = true;
            t.begin_op(m, g, off, len)
        }
        // The op's data; its padding is zero in the copy.
        Ev::Piece { bytes, data } => t.op_data(m, bytes.get(..data).unwrap_or(&[])),
    })?;
    if open {
        t.end_op(m)?;
    }
    Ok(got == Some(*p))
}

/// Applies a validated record of host `host` in place and flushes each target.
pub fn apply<M: Media>(m: &M, g: &Geometry, host: u32, p: &Pending) -> Result<()> {
    let base = g.journal(host);
    let mut pos: u64 = 0;
    let mut buf = [0u8; 64];
    let mut w = Window::new(base + OPS, u64::from(p.len));
    for _ in 0..p.count {
        let mut oh = [0u8; OP_HDR as usize];
        w.read(m, pos, &mut oh)?;
        let off = rd64(&oh, 0);
        let sz = u64::from(rd32(&oh, 8));
        if !target_ok(g, off, sz) || pos + OP_HDR + sz > u64::from(p.len) {
            return Err(Error::Corrupt);
        }
        // A partial-line store merges into this host's cached copy of the line:
        // drop any stale copy first so the merge starts from shared memory.
        m.invalidate(off, sz)?;
        let mut done = 0u64;
        while done < sz {
            let k = (sz - done).min(64) as usize;
            let piece = buf.get_mut(..k).ok_or(Error::Corrupt)?;
            w.read(m, pos + OP_HDR + done, piece)?;
            m.store(off + done, piece)?;
            done += k as u64;
        }
        m.flush(off, sz)?;
        pos += OP_HDR + sz.div_ceil(8) * 8;
    }
    Ok(())
}
