// SPDX-License-Identifier: GPL-2.0

//! omhpc: openMosix's `/proc/hpc`, served by omd.
//!
//! The module holds no policy. omd opens the misc device `/dev/hpc` (one omd at a time),
//! tells the module which directories and files the tree has (a `Tree` message, sent again
//! whenever it changes) and answers every read and write of a file, which the module
//! turns into a request that omd reads from the device (see `relay`). The protocol is
//! `kmod/hpcproto/src/wire.rs`, the same source omd compiles.
//!
//! Unloading: while omd holds the device the module is in use (the device's `owner`), so
//! `rmmod` is refused and nothing is freed under omd. Otherwise exit wakes every waiting
//! caller (ENOTCONN), removes the tree (procfs waits for callers still inside), deregisters
//! the device and frees the state.

use kernel::prelude::*;

mod ffi;
mod relay;
mod tree;
#[allow(dead_code, unreachable_pub)]
#[path = "../hpcproto/src/wire.rs"]
mod wire;

module! {
    type: OmHpc,
    name: "omhpc",
    author: "the om project",
    description: "openMosix /proc/hpc, served by omd through /dev/hpc",
    license: "GPL",
}

struct OmHpc {
    shared: Pin<KBox<relay::Shared>>,
    misc: Option<ffi::Misc>,
}

impl kernel::Module for OmHpc {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let shared = KBox::pin_init(relay::Shared::new(), GFP_KERNEL)?;
        ffi::publish(&shared);
        if let Err(e) = shared.tree.lock().make_root() {
            ffi::unpublish();
            pr_err!("cannot make /proc/hpc (errno {e}); is another module serving it?\n");
            return Err(Error::from_errno(-e));
        }
        let misc = match ffi::Misc::register(kernel::c_str!("hpc"), module) {
            Ok(m) => m,
            Err(e) => {
                shared.tree.lock().clear();
                ffi::unpublish();
                pr_err!("cannot register /dev/hpc (errno {e})\n");
                return Err(Error::from_errno(-e));
            }
        };
        pr_info!("/proc/hpc and /dev/hpc ready, waiting for omd\n");
        Ok(OmHpc {
            shared,
            misc: Some(misc),
        })
    }
}

impl Drop for OmHpc {
    fn drop(&mut self) {
        self.shared.shut_down();
        self.shared.tree.lock().clear();
        if let Some(m) = self.misc.take() {
            m.deregister();
        }
        ffi::unpublish();
        pr_info!("unloaded\n");
    }
}
