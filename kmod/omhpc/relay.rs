// SPDX-License-Identifier: GPL-2.0

//! The requests between the tree's files and omd.
//!
//! A read or write of a file becomes a request in one of [`SLOTS`] slots; omd takes
//! requests from `/dev/hpc` in order and writes back replies, which wake the waiting
//! caller. A caller waits at most [`TIMEOUT_MS`] (then ETIMEDOUT), or until a signal
//! (EINTR), omd's close of the device, or the module's exit (both ENOTCONN). With no omd
//! connected a request fails at once with ENOTCONN; the first such failure after a
//! disconnect logs one line.

use kernel::bindings;
use kernel::prelude::*;
use kernel::sync::{new_condvar, new_mutex, CondVar, CondVarTimeoutResult, Mutex};
use kernel::time::msecs_to_jiffies;
use kernel::uaccess::UserSliceWriter;

use crate::tree::Tree;
use crate::wire::{self, Msg};

/// A positive errno.
pub(crate) type Errno = i32;

/// How long a caller waits for omd's answer.
pub(crate) const TIMEOUT_MS: u32 = 5000;
/// Requests in flight at once; more fail with EAGAIN.
const SLOTS: usize = 64;

const fn errno(e: u32) -> Errno {
    e as Errno
}

const ENOTCONN: Errno = errno(bindings::ENOTCONN);
const ENOMEM: Errno = errno(bindings::ENOMEM);
const EINVAL: Errno = errno(bindings::EINVAL);

struct Slot {
    id: u32,
    /// The omd connection it was made for.
    session: u64,
    /// The encoded request.
    msg: KVec<u8>,
    /// Given to omd.
    sent: bool,
    /// omd's answer: the content, or an errno.
    reply: Option<Result<KVec<u8>, Errno>>,
}

struct Queue {
    /// omd has the device open.
    connected: bool,
    /// Counts omd's connections.
    session: u64,
    /// The module is going away.
    closing: bool,
    /// "not connected" was logged since the last disconnect.
    warned_absent: bool,
    /// A timeout was logged in this session.
    warned_slow: bool,
    next_id: u32,
    slots: [Option<Slot>; SLOTS],
}

/// Everything the callbacks share (published through [`crate::ffi::publish`]).
#[pin_data]
pub(crate) struct Shared {
    #[pin]
    q: Mutex<Queue>,
    /// omd's read waits here for a request.
    #[pin]
    to_omd: CondVar,
    /// Callers wait here for replies.
    #[pin]
    to_caller: CondVar,
    /// The entries below /proc/hpc.
    #[pin]
    pub(crate) tree: Mutex<Tree>,
}

impl Shared {
    pub(crate) fn new() -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            q <- new_mutex!(Queue {
                connected: false,
                session: 0,
                closing: false,
                warned_absent: false,
                warned_slow: false,
                next_id: 1,
                slots: [const { None }; SLOTS],
            }),
            to_omd <- new_condvar!("omhpc::to_omd"),
            to_caller <- new_condvar!("omhpc::to_caller"),
            tree <- new_mutex!(Tree::new()),
        })
    }

    /// The content of file `path`.
    pub(crate) fn read(&self, path: &[u8]) -> Result<KVec<u8>, Errno> {
        self.ask(path, |id| Msg::Read { id, path })
    }

    /// Writes `data` to file `path` on behalf of `uid`.
    pub(crate) fn write(&self, uid: u32, path: &[u8], data: &[u8]) -> Result<(), Errno> {
        self.ask(path, |id| Msg::Write {
            id,
            uid,
            path,
            data,
        })
        .map(|_| ())
    }

    /// Queues the request `request` makes for an id and waits for its reply.
    fn ask<'a>(&self, path: &[u8], request: impl Fn(u32) -> Msg<'a>) -> Result<KVec<u8>, Errno> {
        let size = request(0).encoded_len();
        let mut msg = KVec::from_elem(0u8, size, GFP_KERNEL).map_err(|_| ENOMEM)?;
        let mut g = self.q.lock();
        if g.closing {
            return Err(ENOTCONN);
        }
        if !g.connected {
            if !g.warned_absent {
                g.warned_absent = true;
                pr_warn!("omd is not connected to /dev/hpc: reads and writes of /proc/hpc fail with ENOTCONN until it is\n");
            }
            return Err(ENOTCONN);
        }
        let id = g.next_id;
        g.next_id = g.next_id.wrapping_add(1).max(1);
        wire::encode(&request(id), msg.as_mut_slice()).map_err(|_| EINVAL)?;
        let k = g
            .slots
            .iter()
            .position(Option::is_none)
            .ok_or(errno(bindings::EAGAIN))?;
        let session = g.session;
        g.slots[k] = Some(Slot {
            id,
            session,
            msg,
            sent: false,
            reply: None,
        });
        self.to_omd.notify_all();
        let mut left = msecs_to_jiffies(TIMEOUT_MS);
        let result = loop {
            if let Some(r) = g.slots[k].as_mut().and_then(|s| s.reply.take()) {
                break r;
            }
            if g.closing || !g.connected || g.session != session {
                break Err(ENOTCONN);
            }
            match self.to_caller.wait_interruptible_timeout(&mut g, left) {
                CondVarTimeoutResult::Timeout => {
                    if !g.warned_slow {
                        g.warned_slow = true;
                        pr_warn!(
                            "omd did not answer for {} ms (path {}); such requests fail with ETIMEDOUT\n",
                            TIMEOUT_MS,
                            kernel::str::BStr::from_bytes(path)
                        );
                    }
                    break Err(errno(bindings::ETIMEDOUT));
                }
                CondVarTimeoutResult::Signal { .. } => break Err(errno(bindings::EINTR)),
                CondVarTimeoutResult::Woken { jiffies } => left = jiffies,
            }
        };
        g.slots[k] = None;
        result
    }

    /// omd opened the device.
    pub(crate) fn connect(&self) -> Result<(), Errno> {
        let mut g = self.q.lock();
        if g.closing {
            return Err(errno(bindings::ENODEV));
        }
        if g.connected {
            return Err(errno(bindings::EBUSY));
        }
        g.connected = true;
        g.session += 1;
        g.warned_absent = false;
        g.warned_slow = false;
        pr_info!("omd connected\n");
        Ok(())
    }

    /// omd closed the device (or died): every waiting caller fails.
    pub(crate) fn disconnect(&self) {
        let mut g = self.q.lock();
        g.connected = false;
        self.to_caller.notify_all();
        pr_info!("omd disconnected\n");
    }

    /// The module is going away: every waiter wakes and fails, and no new request is made.
    pub(crate) fn shut_down(&self) {
        let mut g = self.q.lock();
        g.closing = true;
        self.to_caller.notify_all();
        self.to_omd.notify_all();
    }

    /// Copies the oldest request not yet given to omd into `out`, waiting for one.
    pub(crate) fn next_request(&self, out: &mut UserSliceWriter) -> Result<usize, Errno> {
        let mut msg = KVec::new();
        {
            let mut g = self.q.lock();
            loop {
                if g.closing {
                    return Ok(0);
                }
                let next = g
                    .slots
                    .iter_mut()
                    .flatten()
                    .filter(|s| !s.sent)
                    .min_by_key(|s| s.id);
                if let Some(s) = next {
                    if out.len() < s.msg.len() {
                        return Err(errno(bindings::EMSGSIZE));
                    }
                    msg.extend_from_slice(&s.msg, GFP_KERNEL)
                        .map_err(|_| ENOMEM)?;
                    s.sent = true;
                    break;
                }
                if self.to_omd.wait_interruptible(&mut g) {
                    return Err(errno(bindings::ERESTARTSYS));
                }
            }
        }
        out.write_slice(&msg).map_err(|_| errno(bindings::EFAULT))?;
        Ok(msg.len())
    }

    /// A message from omd: a reply, or the new tree.
    pub(crate) fn from_omd(&self, b: &[u8]) -> Result<(), Errno> {
        match wire::decode(b) {
            Ok(Msg::Reply { id, errno: e, data }) => {
                if data.len() > wire::MAX_DATA {
                    return Err(errno(bindings::EMSGSIZE));
                }
                let reply = if e == 0 {
                    let mut v = KVec::new();
                    v.extend_from_slice(data, GFP_KERNEL).map_err(|_| ENOMEM)?;
                    Ok(v)
                } else if (1..4096).contains(&e) {
                    Err(e)
                } else {
                    Err(errno(bindings::EIO))
                };
                let mut g = self.q.lock();
                let session = g.session;
                // A reply to a request whose caller gave up finds no slot: dropped.
                if let Some(s) = g
                    .slots
                    .iter_mut()
                    .flatten()
                    .find(|s| s.id == id && s.sent && s.session == session)
                {
                    s.reply = Some(reply);
                    self.to_caller.notify_all();
                }
                Ok(())
            }
            Ok(Msg::Tree { entries }) => self.tree.lock().replace(entries),
            Ok(_) | Err(_) => Err(EINVAL),
        }
    }
}
