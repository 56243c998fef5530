//! The library's error type.

use std::io;

/// Errors of the marufs client library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A key or application name the filesystem cannot hold: empty, longer
    /// than 255 bytes, containing `/` or NUL, or `.`/`..`.
    #[error("invalid name {name:?}: {why}")]
    InvalidName {
        /// The offending name.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The key exists already (published, or being created by another
    /// writer on some host). For a content-addressed KV cache this means
    /// "already stored": see [`Store::store_bytes`](crate::Store::store_bytes).
    #[error("key {0:?} already exists")]
    Exists(String),
    /// The key does not exist (or is not published yet).
    #[error("key {0:?}: no such key")]
    NotFound(String),
    /// The application directory does not exist and was not to be created.
    #[error("application {0:?} does not exist")]
    NoApp(String),
    /// The pool has no room for the key; nothing was published.
    #[error("no space in the pool for {size} bytes of key {key:?}")]
    NoSpace {
        /// The key being created.
        key: String,
        /// The requested size.
        size: u64,
    },
    /// The key was closed but is not visible afterwards: the filesystem
    /// discarded it (see the kernel log) instead of publishing it.
    #[error("key {0:?} was not published (discarded by the filesystem)")]
    PublishFailed(String),
    /// An unpublished key could not be discarded and may be published with
    /// incomplete contents (see [`Store::free`](crate::Store::free)).
    #[error("key {0:?}: could not discard the unpublished key")]
    DiscardFailed(String),
    /// Any other system error, with the operation and name it concerned.
    ///
    /// The message names the cause itself, so the cause is not also this
    /// error's `source()` (a printed chain would repeat it); [`Error::errno`]
    /// and [`Error::io_error`] give it to code.
    #[error("{op} {name:?}: {err}")]
    Io {
        /// The operation (`open`, `mmap`, `unlink`...).
        op: &'static str,
        /// The key, application or path concerned.
        name: String,
        /// The underlying error.
        err: io::Error,
    },
}

impl Error {
    pub(crate) fn io(op: &'static str, name: impl Into<String>, err: io::Error) -> Self {
        Error::Io {
            op,
            name: name.into(),
            err,
        }
    }

    /// The system error behind this error, if it came from a system call.
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            Error::Io { err, .. } => Some(err),
            _ => None,
        }
    }

    /// The errno behind this error, if it came from a system call (or is the
    /// natural errno of the condition: `EEXIST`, `ENOENT`, `ENOSPC`).
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Io { err, .. } => err.raw_os_error(),
            Error::Exists(_) => Some(libc::EEXIST),
            Error::NotFound(_) | Error::NoApp(_) => Some(libc::ENOENT),
            Error::NoSpace { .. } => Some(libc::ENOSPC),
            Error::InvalidName { .. } => Some(libc::EINVAL),
            Error::PublishFailed(_) | Error::DiscardFailed(_) => Some(libc::EIO),
        }
    }

    /// Whether the kernel refused the operation for lack of permission
    /// (`EACCES` or `EPERM`, e.g. opening another user's private key, or
    /// writing to a published key).
    pub fn is_permission_denied(&self) -> bool {
        matches!(self.errno(), Some(libc::EACCES) | Some(libc::EPERM))
    }
}

/// Result type of the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;
