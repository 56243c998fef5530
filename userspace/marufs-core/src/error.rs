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
            Error::Again => 11,                   // EAGAIN
            Error::Media(_) => 5,                 // EIO
        }
    }
}

/// Result alias.
pub type Result<T> = core::result::Result<T, Error>;
