//! The error type of every marufs operation, with Linux errno mapping.

use super::media::MediaError;

/// Errors returned by marufs operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// No marufs superblock (neither primary nor backup).
    NotFormatted,
    /// The on-media version is not supported.
    BadVersion(u32),
    /// Unknown incompatible feature bits are set.
    IncompatibleFeatures(u64),
    /// The device is smaller than the minimum (or than the superblock says).
    TooSmall,
    /// Metadata failed validation (checksum or structure) after retries.
    Corrupt,
    /// No such directory or key.
    NotFound,
    /// The name already exists (or is being created).
    Exists,
    /// Name longer than 255 bytes.
    NameTooLong,
    /// Empty name, or a name containing `/` or NUL, or `.`/`..`.
    InvalidName,
    /// An argument is out of range.
    InvalidArgument,
    /// No free space (units or chunks).
    NoSpace,
    /// No free key entry or directory slot.
    NoEntries,
    /// The key is too large for its extent list.
    TooLarge,
    /// Directory not empty.
    NotEmpty,
    /// The key is published (immutable) or not in the state the call needs.
    NotPermitted,
    /// A handle refers to a key that changed (unlinked, recreated).
    Stale,
    /// This host lost its lease or was fenced: it must rejoin.
    Fenced,
    /// This host has not joined the pool.
    NotJoined,
    /// Too many keys being created at once by this host.
    Busy,
    /// Another host uses this node id: its heartbeat advanced while this
    /// host watched the slot before joining.
    NodeInUse {
        /// The node id.
        node: u32,
        /// The other host's join time (wall clock, ns since the epoch; 0 if
        /// its identity line is unreadable).
        join_time: u64,
    },
    /// The caller was interrupted (a fatal signal) while waiting.
    Interrupted,
    /// A record stayed inconsistent through the bounded retries: another host
    /// is changing it, or it was torn by a host that died and awaits recovery.
    Again,
    /// Media failure.
    Media(MediaError),
}

impl From<MediaError> for Error {
    fn from(e: MediaError) -> Self {
        Error::Media(e)
    }
}

impl Error {
    /// The Linux errno (positive) for this error.
    pub fn errno(&self) -> i32 {
        match self {
            Error::NotFormatted => 22,            // EINVAL
            Error::BadVersion(_) => 22,           // EINVAL
            Error::IncompatibleFeatures(_) => 95, // EOPNOTSUPP
            Error::TooSmall => 28,                // ENOSPC
            Error::Corrupt => 117,                // EUCLEAN
            Error::NotFound => 2,                 // ENOENT
            Error::Exists => 17,                  // EEXIST
            Error::NameTooLong => 36,             // ENAMETOOLONG
            Error::InvalidName => 22,             // EINVAL
            Error::InvalidArgument => 22,         // EINVAL
            Error::NoSpace => 28,                 // ENOSPC
            Error::NoEntries => 28,               // ENOSPC
            Error::TooLarge => 27,                // EFBIG
            Error::NotEmpty => 39,                // ENOTEMPTY
            Error::NotPermitted => 1,             // EPERM
            Error::Stale => 116,                  // ESTALE
            Error::Fenced => 108,                 // ESHUTDOWN
            Error::NotJoined => 107,              // ENOTCONN
            Error::Busy => 16,                    // EBUSY
            Error::NodeInUse { .. } => 16,        // EBUSY
            Error::Interrupted => 4,              // EINTR
            Error::Again => 11,                   // EAGAIN
            Error::Media(_) => 5,                 // EIO
        }
    }
}

/// A sentence for people: what went wrong and, where there is one, what to do.
/// The tools print it; the kernel maps the error to its errno and logs its own.
impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::NotFormatted => f.write_str(
                "not a marufs pool (no marufs superblock, neither the primary nor the backup): run mkfs.marufs to format it",
            ),
            Error::BadVersion(v) => write!(
                f,
                "on-media format version {v} is not supported by this version of marufs"
            ),
            Error::IncompatibleFeatures(bits) => write!(
                f,
                "the pool uses features this version of marufs does not know (incompatible feature bits {bits:#x}); upgrade marufs"
            ),
            Error::TooSmall => f.write_str(
                "the device is too small for a marufs pool, or smaller than the pool its superblock describes (wrong device or region?)",
            ),
            Error::Corrupt => f.write_str(
                "metadata failed validation (checksum or structure); run maru-fsck",
            ),
            Error::NotFound => f.write_str("no such directory or key"),
            Error::Exists => f.write_str("the name already exists (or is being created)"),
            Error::NameTooLong => f.write_str("name longer than 255 bytes"),
            Error::InvalidName => f.write_str(
                "invalid name (empty, \".\" or \"..\", or containing \"/\" or NUL)",
            ),
            Error::InvalidArgument => f.write_str("invalid argument (out of range)"),
            Error::NoSpace => f.write_str("no free space in the pool"),
            Error::NoEntries => f.write_str("no free key entry or directory slot in the pool"),
            Error::TooLarge => f.write_str("the key is too large for its extent list"),
            Error::NotEmpty => f.write_str("directory not empty"),
            Error::NotPermitted => f.write_str(
                "not permitted: the key is published (immutable) or not in the state this needs",
            ),
            Error::Stale => f.write_str("the key changed (unlinked or recreated) since it was opened"),
            Error::Fenced => f.write_str(
                "this host lost its lease or was fenced by the other hosts: mount again to rejoin",
            ),
            Error::NotJoined => f.write_str("this host has not joined the pool"),
            Error::Busy => f.write_str("too many keys being created at once by this host"),
            Error::NodeInUse { node, join_time } => write!(
                f,
                "node {node} is in use by another host (it joined at {}.{:09} s after the epoch and its heartbeat is advancing): give each host its own node=",
                join_time / 1_000_000_000,
                join_time % 1_000_000_000
            ),
            Error::Interrupted => f.write_str("interrupted while waiting"),
            Error::Again => f.write_str(
                "a record stayed inconsistent through every retry: another host is changing it, or a dead host tore it and recovery is pending; try again",
            ),
            Error::Media(m) => write!(f, "{m}"),
        }
    }
}

/// Result alias.
pub type Result<T> = core::result::Result<T, Error>;
