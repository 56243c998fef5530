// SPDX-License-Identifier: GPL-2.0

//! `struct file_system_type`: registering a filesystem with the VFS.

use super::{fs_context::FileSystem, shim, super_block};
use core::marker::PhantomPinned;
use kernel::{bindings, error::to_result, prelude::*, types::Opaque};

/// A registered filesystem type.
///
/// # Invariants
///
/// `fs` holds a `struct file_system_type` that was successfully passed to
/// `register_filesystem()`; it stays pinned and registered until `drop`, which
/// unregisters it exactly once.
#[pin_data(PinnedDrop)]
pub struct Registration {
    #[pin]
    fs: Opaque<bindings::file_system_type>,
    #[pin]
    _pin: PhantomPinned,
}

// SAFETY: The registration is only touched by the VFS (which does its own
// locking) and by `drop`; `unregister_filesystem` may run on any thread.
unsafe impl Send for Registration {}
// SAFETY: `Registration` has no `&self` methods that mutate state.
unsafe impl Sync for Registration {}

impl Registration {
    /// Registers the filesystem type `T` on behalf of `module`.
    pub fn new<T: FileSystem>(module: &'static ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            fs <- Opaque::try_ffi_init(|slot: *mut bindings::file_system_type| {
                // SAFETY: `slot` is valid for writes (contract of `try_ffi_init`);
                // an all-zero `file_system_type` is a valid starting value.
                unsafe { slot.write(pin_init::zeroed()) };
                // SAFETY: `slot` was just initialised; we fill in the fields the
                // VFS reads. `T::NAME` is `'static`, as `register_filesystem` needs.
                unsafe {
                    (*slot).name = T::NAME.as_char_ptr();
                    (*slot).owner = module.as_ptr();
                    (*slot).init_fs_context = Some(shim::marufs_shim_init_fs_context);
                    (*slot).kill_sb = Some(super_block::kill_sb);
                    (*slot).parameters = shim::marufs_shim_fs_parameters().cast();
                }
                // SAFETY: `slot` is a fully initialised, pinned file_system_type
                // that outlives the registration (unregistered in `drop`).
                to_result(unsafe { bindings::register_filesystem(slot) })
            }),
            _pin: PhantomPinned,
        })
    }
}

#[pinned_drop]
impl PinnedDrop for Registration {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: By the type invariant the type is registered; the VFS refuses
        // module unload while superblocks of it exist, so no user remains.
        unsafe { bindings::unregister_filesystem(self.fs.get()) };
    }
}
