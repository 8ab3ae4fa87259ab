// SPDX-License-Identifier: GPL-2.0

//! The entries below /proc/hpc, as omd last listed them.
//!
//! omd sends the whole tree (sorted by path, so each directory comes before what it
//! holds); [`Tree::replace`] turns the entries there into the entries wanted: removes
//! what is gone (deepest first), creates what is new (parents first), and changes owners
//! in place. A tree with an entry whose directory is not listed is refused whole (EINVAL);
//! an entry procfs refuses is skipped, and the message fails (EEXIST) after the rest is
//! applied.

use kernel::bindings;
use kernel::prelude::*;
use kernel::str::CStr;

use crate::ffi::{pop, Pde};
use crate::relay::Errno;
use crate::wire::{self, Entry};

struct Node {
    path: KVec<u8>,
    mode: u16,
    uid: u32,
    pde: Pde,
}

impl Node {
    fn is_dir(&self) -> bool {
        self.mode & 0o170000 == wire::S_IFDIR
    }
}

/// /proc/hpc and what omd put in it.
pub(crate) struct Tree {
    root: Option<Pde>,
    /// Sorted by path.
    nodes: KVec<Node>,
}

const ENOMEM: Errno = bindings::ENOMEM as Errno;

/// `name` with a NUL, as procfs wants it.
fn c_name<'a>(name: &[u8], buf: &'a mut [u8; wire::MAX_PATH + 1]) -> Result<&'a CStr, Errno> {
    buf[..name.len()].copy_from_slice(name);
    buf[name.len()] = 0;
    CStr::from_bytes_with_nul(&buf[..=name.len()]).map_err(|_| bindings::EINVAL as Errno)
}

impl Tree {
    pub(crate) fn new() -> Self {
        Tree {
            root: None,
            nodes: KVec::new(),
        }
    }

    /// Makes /proc/hpc.
    pub(crate) fn make_root(&mut self) -> Result<(), Errno> {
        self.root = Some(Pde::mkdir(kernel::c_str!("hpc"), None)?);
        Ok(())
    }

    /// Removes everything, /proc/hpc included.
    pub(crate) fn clear(&mut self) {
        self.remove_all();
        if let Some(root) = self.root.take() {
            root.remove();
        }
    }

    fn remove_all(&mut self) {
        // Deepest first: a path sorts after its directory's.
        while let Some(n) = pop(&mut self.nodes) {
            n.pde.remove();
        }
    }

    /// Makes the tree the one `payload` (a checked `Tree` message) lists.
    pub(crate) fn replace(&mut self, payload: &[u8]) -> Result<(), Errno> {
        let Some(root) = self.root.as_ref() else {
            return Err(bindings::ENODEV as Errno);
        };
        let mut want: KVec<Entry<'_>> = KVec::new();
        for e in wire::entries(payload) {
            let e = e.map_err(|_| bindings::EINVAL as Errno)?;
            want.push(e, GFP_KERNEL).map_err(|_| ENOMEM)?;
        }
        let find = |path: &[u8]| want.binary_search_by(|e| e.path.cmp(path)).ok();
        // Every entry's directory must be listed, as a directory: else removing that
        // directory below would take a kept entry along. Refused before any change.
        for w in want.iter() {
            let parent = w.parent();
            if !parent.is_empty() && !find(parent).is_some_and(|i| want[i].is_dir()) {
                return Err(bindings::EINVAL as Errno);
            }
        }

        // Take out what stays (same path, same kind, same file mode); remove the rest,
        // deepest first, so that no removal takes a kept entry along.
        // Reserve everything first, so that no push below can fail while it holds an entry.
        let mut kept: KVec<Option<Node>> =
            KVec::with_capacity(self.nodes.len(), GFP_KERNEL).map_err(|_| ENOMEM)?;
        let new_nodes = KVec::with_capacity(want.len(), GFP_KERNEL).map_err(|_| ENOMEM)?;
        let mut old = core::mem::replace(&mut self.nodes, new_nodes);
        while let Some(n) = pop(&mut old) {
            let stays = find(&n.path).is_some_and(|i| {
                let w = &want[i];
                w.is_dir() == n.is_dir() && (n.is_dir() || w.mode == n.mode)
            });
            if stays {
                let _ = kept.push(Some(n), GFP_KERNEL); // reserved above
            } else {
                n.pde.remove();
            }
        }
        kept.as_mut_slice().reverse();

        let mut result = Ok(());
        let mut name = [0u8; wire::MAX_PATH + 1];
        for w in want.iter() {
            let old = kept
                .binary_search_by(|n| match n {
                    Some(n) => n.path.as_slice().cmp(w.path),
                    None => core::cmp::Ordering::Less,
                })
                .ok()
                .and_then(|i| kept[i].take());
            let node = match old {
                Some(n) => {
                    if n.uid != w.uid {
                        n.pde.set_owner(w.uid);
                    }
                    Node { uid: w.uid, ..n }
                }
                None => {
                    let parent = if w.parent().is_empty() {
                        Some(root)
                    } else {
                        self.nodes
                            .binary_search_by(|n| n.path.as_slice().cmp(w.parent()))
                            .ok()
                            .map(|i| &self.nodes[i])
                            .filter(|n| n.is_dir())
                            .map(|n| &n.pde)
                    };
                    let Some(parent) = parent else {
                        result = Err(bindings::EINVAL as Errno);
                        continue;
                    };
                    // (Never an error for a checked entry; no early return either way: the
                    // entries kept so far must all reach `self.nodes`.)
                    let cname = match c_name(w.name(), &mut name) {
                        Ok(c) => c,
                        Err(e) => {
                            result = Err(e);
                            continue;
                        }
                    };
                    let made = if w.is_dir() {
                        Pde::mkdir(cname, Some(parent))
                    } else {
                        Pde::file(cname, w.mode, Some(parent))
                    };
                    let pde = match made {
                        Ok(p) => p,
                        Err(e) => {
                            result = Err(e);
                            continue;
                        }
                    };
                    if w.uid != 0 {
                        pde.set_owner(w.uid);
                    }
                    let mut path = KVec::new();
                    if path.extend_from_slice(w.path, GFP_KERNEL).is_err() {
                        pde.remove();
                        result = Err(ENOMEM);
                        continue;
                    }
                    Node {
                        path,
                        mode: if w.is_dir() {
                            wire::S_IFDIR | 0o555
                        } else {
                            w.mode
                        },
                        uid: w.uid,
                        pde,
                    }
                }
            };
            // The capacity was reserved: this cannot fail (and must not: the entry would
            // be lost while procfs still has it).
            let _ = self.nodes.push(node, GFP_KERNEL);
        }
        result
    }
}
