// SPDX-License-Identifier: GPL-2.0

//! `struct file_system_type`: registering a filesystem with the VFS.

use super::{fs_context, shim, super_block, FsOps};
use core::{marker::PhantomPinned, ptr::NonNull};
use kernel::{bindings, error::to_result, ffi::c_void, prelude::*, types::Opaque};

/// A `struct fs_context_operations` table for one filesystem type, built by
/// the shim (the struct is not in the generated bindings) from that type's
/// trampolines.
///
/// # Invariants
///
/// `p` is a live table from `marufs_shim_fc_ops_new`, freed only in `drop`.
struct ContextOps {
    p: NonNull<c_void>,
}

impl ContextOps {
    fn new<T: FsOps>() -> Result<Self> {
        let (free, parse, get_tree, reconfigure) = fs_context::context_ops::<T>();
        // SAFETY: the four trampolines are functions of the signatures the
        // shim declares; no other precondition.
        let p = unsafe { shim::marufs_shim_fc_ops_new(free, parse, get_tree, reconfigure) };
        // INVARIANT: a non-NULL result is a live table.
        NonNull::new(p).map(|p| Self { p }).ok_or(ENOMEM)
    }
}

impl Drop for ContextOps {
    fn drop(&mut self) {
        // SAFETY: the table is live (type invariant) and, being dropped with
        // its `Registration` after `unregister_filesystem`, no longer used:
        // every fs_context holds a reference to its filesystem type's module,
        // so none of this type exists when the module unregisters it.
        unsafe { shim::marufs_shim_fc_ops_free(self.p.as_ptr()) };
    }
}

// SAFETY: the table is immutable after `new` and freed once.
unsafe impl Send for ContextOps {}
// SAFETY: the table is immutable after `new`, so shared references on
// several threads only read it.
unsafe impl Sync for ContextOps {}

/// A registered filesystem type.
///
/// # Invariants
///
/// `fs` holds a `struct file_system_type` that was successfully passed to
/// `register_filesystem()`; it stays pinned and registered until `drop`, which
/// unregisters it exactly once. Its `init_fs_context` installs `ctx`, which
/// lives at least as long (it is dropped after the unregistration).
#[pin_data(PinnedDrop)]
pub struct Registration {
    ctx: ContextOps,
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
    pub fn new<T: FsOps>(module: &'static ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            ctx: ContextOps::new::<T>()?,
            fs <- Opaque::try_ffi_init(|slot: *mut bindings::file_system_type| {
                // SAFETY: `slot` is valid for writes (contract of `try_ffi_init`);
                // an all-zero `file_system_type` is a valid starting value.
                unsafe { slot.write(pin_init::zeroed()) };
                // SAFETY: `slot` was just initialised and is not registered
                // yet, so these stores race with nothing. `T::NAME` is
                // `'static`, as `register_filesystem` needs; the trampolines
                // are `T`'s; the parameter table is a static of the shim.
                unsafe {
                    (*slot).name = T::NAME.as_char_ptr();
                    (*slot).owner = module.as_ptr();
                    (*slot).init_fs_context = Some(fs_context::init_fs_context_cb::<T>);
                    (*slot).kill_sb = Some(super_block::kill_sb::<T>);
                    (*slot).parameters = shim::marufs_shim_fs_parameters().cast();
                }
                // SAFETY: `slot` is a fully initialised file_system_type inside
                // a pinned `Registration` that unregisters it before it goes.
                to_result(unsafe { bindings::register_filesystem(slot) })
            }),
            _pin: PhantomPinned,
        })
    }

    /// The context operation table of the registration whose filesystem
    /// type is `fs_type`.
    ///
    /// # Safety
    ///
    /// `fs_type` must be the `fs` field of a live `Registration` (every
    /// fs_context's `fs_type` is, for the types this layer registers: only
    /// they use `init_fs_context_cb`).
    pub(crate) unsafe fn context_ops_of(fs_type: *mut bindings::file_system_type) -> *const c_void {
        let off = core::mem::offset_of!(Registration, fs);
        // SAFETY: `fs_type` points at the `fs` field of a live `Registration`
        // (function contract), so stepping back by the field's offset stays
        // inside that object and yields a pointer to it (`Opaque<T>` has the
        // address of its `T`).
        let reg = unsafe { fs_type.cast::<u8>().sub(off).cast::<Registration>() };
        // SAFETY: `reg` is a live, pinned `Registration` (just argued); its
        // `ctx` is immutable after construction.
        unsafe { (*reg).ctx.p.as_ptr() }
    }
}

#[pinned_drop]
impl PinnedDrop for Registration {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: By the type invariant the type is registered; the VFS refuses
        // module unload while superblocks or contexts of it exist, so no user
        // remains.
        unsafe { bindings::unregister_filesystem(self.fs.get()) };
    }
}
