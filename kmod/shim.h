/* SPDX-License-Identifier: GPL-2.0 */
/*
 * marufs C shim: the only C in the module. It provides what the kernel's Rust
 * bindings (kernel::bindings) do not: the fs_context operation table and its
 * accessors (linux/fs_context.h is not part of the generated bindings).
 * Every function here is a thin, logic-free adapter; the Rust side
 * (kmod/vfs/) declares them in vfs/shim.rs.
 */
#ifndef MARUFS_SHIM_H
#define MARUFS_SHIM_H

struct fs_context;

/* Implemented in Rust (kmod/vfs/fs_context.rs). */
int marufs_rs_init_fs_context(struct fs_context *fc);
int marufs_rs_get_tree(struct fs_context *fc);
void marufs_rs_fc_free(struct fs_context *fc);

/* Implemented in shim.c. */
int marufs_shim_init_fs_context(struct fs_context *fc);
void *marufs_shim_fc_private(struct fs_context *fc);
void marufs_shim_fc_set_private(struct fs_context *fc, void *p);
const char *marufs_shim_fc_source(struct fs_context *fc);

#endif
