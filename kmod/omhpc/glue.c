// SPDX-License-Identifier: GPL-2.0
/*
 * Compile-time checks only: ffi.rs declares #[repr(C)] mirrors of struct proc_ops and
 * struct miscdevice (the 6.12 Rust bindings lack both) and asserts these same sizes and
 * offsets on its side. If the kernel's config or version changes a layout, the build
 * fails here instead of the module corrupting memory.
 */
#include <linux/build_bug.h>
#include <linux/miscdevice.h>
#include <linux/proc_fs.h>
#include <linux/stddef.h>

static_assert(sizeof(struct proc_ops) == 88);
static_assert(offsetof(struct proc_ops, proc_open) == 8);
static_assert(offsetof(struct proc_ops, proc_read) == 16);
static_assert(offsetof(struct proc_ops, proc_write) == 32);
static_assert(offsetof(struct proc_ops, proc_lseek) == 40);
static_assert(offsetof(struct proc_ops, proc_release) == 48);
static_assert(sizeof(struct miscdevice) == 80);
static_assert(offsetof(struct miscdevice, name) == 8);
static_assert(offsetof(struct miscdevice, fops) == 16);
static_assert(offsetof(struct miscdevice, this_device) == 48);
static_assert(offsetof(struct miscdevice, mode) == 72);
