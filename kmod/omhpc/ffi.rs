// SPDX-License-Identifier: GPL-2.0

//! Every `unsafe` of the module, in one place.
//!
//! Linux 6.12's Rust `kernel` crate has no procfs and no misc-device abstraction, and its
//! generated bindings lack `proc_create`/`struct proc_ops` and
//! `misc_register`/`struct miscdevice`. They are declared here by hand: `#[repr(C)]`
//! mirrors whose sizes and offsets are asserted below and, against the real C structs,
//! in glue.c. On top of them this module offers safe pieces to the rest:
//!
//! - [`Pde`]: a /proc entry (make a directory or a file of the tree, set its owner,
//!   remove it);
//! - [`Misc`]: the `/dev/hpc` misc device;
//! - the callbacks of both, which turn raw pointers into slices and call the published
//!   [`Shared`] state ([`publish`]).

use core::mem::{offset_of, size_of};
use core::ptr::NonNull;
use kernel::bindings;
use kernel::ffi::{c_char, c_int, c_uint, c_ulong, c_void};
use kernel::prelude::*;
use kernel::str::CStr;
use kernel::uaccess::UserSlice;

use crate::relay::{Errno, Shared};
use crate::wire;
use core::sync::atomic::{AtomicPtr, Ordering};

/// `struct proc_ops` of 6.12 without CONFIG_COMPAT (the test kernel has no
/// IA32_EMULATION, so `proc_compat_ioctl` is absent).
#[repr(C)]
struct ProcOps {
    proc_flags: c_uint,
    proc_open: Option<unsafe extern "C" fn(*mut bindings::inode, *mut bindings::file) -> c_int>,
    proc_read: Option<
        unsafe extern "C" fn(
            *mut bindings::file,
            *mut c_char,
            usize,
            *mut bindings::loff_t,
        ) -> isize,
    >,
    proc_read_iter: Option<unsafe extern "C" fn(*mut c_void, *mut c_void) -> isize>,
    proc_write: Option<
        unsafe extern "C" fn(
            *mut bindings::file,
            *const c_char,
            usize,
            *mut bindings::loff_t,
        ) -> isize,
    >,
    proc_lseek: Option<
        unsafe extern "C" fn(*mut bindings::file, bindings::loff_t, c_int) -> bindings::loff_t,
    >,
    proc_release: Option<unsafe extern "C" fn(*mut bindings::inode, *mut bindings::file) -> c_int>,
    proc_poll: Option<unsafe extern "C" fn(*mut bindings::file, *mut c_void) -> c_uint>,
    proc_ioctl: Option<unsafe extern "C" fn(*mut bindings::file, c_uint, c_ulong) -> isize>,
    proc_mmap: Option<unsafe extern "C" fn(*mut bindings::file, *mut c_void) -> c_int>,
    proc_get_unmapped_area: Option<
        unsafe extern "C" fn(*mut bindings::file, c_ulong, c_ulong, c_ulong, c_ulong) -> c_ulong,
    >,
}

const _: () = assert!(size_of::<ProcOps>() == 88);
const _: () = assert!(offset_of!(ProcOps, proc_open) == 8);
const _: () = assert!(offset_of!(ProcOps, proc_read) == 16);
const _: () = assert!(offset_of!(ProcOps, proc_write) == 32);
const _: () = assert!(offset_of!(ProcOps, proc_lseek) == 40);
const _: () = assert!(offset_of!(ProcOps, proc_release) == 48);

/// `struct miscdevice` of 6.12.
#[repr(C)]
struct MiscDevice {
    minor: c_int,
    name: *const c_char,
    fops: *const bindings::file_operations,
    list: bindings::list_head,
    parent: *mut bindings::device,
    this_device: *mut bindings::device,
    groups: *const *const c_void,
    nodename: *const c_char,
    mode: bindings::umode_t,
}

const _: () = assert!(size_of::<MiscDevice>() == 80);
const _: () = assert!(offset_of!(MiscDevice, name) == 8);
const _: () = assert!(offset_of!(MiscDevice, fops) == 16);
const _: () = assert!(offset_of!(MiscDevice, this_device) == 48);
const _: () = assert!(offset_of!(MiscDevice, mode) == 72);

const MISC_DYNAMIC_MINOR: c_int = 255;

/// The state the callbacks use; null when none is published.
static SHARED: AtomicPtr<Shared> = AtomicPtr::new(core::ptr::null_mut());

/// Makes `s` the state of every callback. The caller publishes before it makes the first
/// entry or registers the device, and [`unpublish`]es only once every entry is removed and
/// the device deregistered, keeping `s` alive (pinned) in between.
pub(crate) fn publish(s: &Shared) {
    SHARED.store(s as *const Shared as *mut Shared, Ordering::Release);
}

pub(crate) fn unpublish() {
    SHARED.store(core::ptr::null_mut(), Ordering::Release);
}

fn shared() -> &'static Shared {
    // SAFETY: callbacks run only while an entry or the device exists, and by the contract
    // of `publish` the state is then published and alive (procfs waits for callbacks
    // inside an entry before removal returns; an open device holds the module).
    unsafe { &*SHARED.load(Ordering::Acquire) }
}

// `improper_ctypes`: the lint looks through the pointers into `struct device`, whose
// bindgen spinlock type it does not trust; the mirrors are only passed by pointer.
#[allow(improper_ctypes)]
extern "C" {
    fn proc_mkdir(
        name: *const c_char,
        parent: *mut bindings::proc_dir_entry,
    ) -> *mut bindings::proc_dir_entry;
    fn proc_create(
        name: *const c_char,
        mode: bindings::umode_t,
        parent: *mut bindings::proc_dir_entry,
        ops: *const ProcOps,
    ) -> *mut bindings::proc_dir_entry;
    fn proc_remove(de: *mut bindings::proc_dir_entry);
    fn proc_set_user(
        de: *mut bindings::proc_dir_entry,
        uid: bindings::kuid_t,
        gid: bindings::kgid_t,
    );
    fn misc_register(misc: *mut MiscDevice) -> c_int;
    fn misc_deregister(misc: *mut MiscDevice);
}

/// The operations of every file of the tree: the content comes from omd through a
/// seq_file (`single_open`), which buffers it for reads at any offset and serialises
/// concurrent readers of one open file; writes go to omd as they come.
static FILE_OPS: ProcOps = ProcOps {
    proc_flags: 0,
    proc_open: Some(file_open),
    proc_read: Some(bindings::seq_read),
    proc_read_iter: None,
    proc_write: Some(file_write),
    proc_lseek: Some(bindings::seq_lseek),
    proc_release: Some(bindings::single_release),
    proc_poll: None,
    proc_ioctl: None,
    proc_mmap: None,
    proc_get_unmapped_area: None,
};

/// A /proc entry this module made. It is removed only by [`Pde::remove`] (removing a
/// directory removes what it holds, so the tree removes children first).
pub(crate) struct Pde(NonNull<bindings::proc_dir_entry>);

// SAFETY: a proc_dir_entry is reference-counted kernel memory usable from any thread; the
// module only passes the pointer back to procfs functions, which do their own locking.
unsafe impl Send for Pde {}

impl Pde {
    fn parent_ptr(parent: Option<&Pde>) -> *mut bindings::proc_dir_entry {
        parent.map_or(core::ptr::null_mut(), |p| p.0.as_ptr())
    }

    /// Makes directory `name` (mode 0555) in `parent`, or in /proc when `None`.
    pub(crate) fn mkdir(name: &CStr, parent: Option<&Pde>) -> Result<Pde, Errno> {
        // SAFETY: `name` is NUL-terminated and copied by procfs; the parent is a live entry
        // of ours (or NULL for /proc itself).
        let de = unsafe { proc_mkdir(name.as_char_ptr(), Self::parent_ptr(parent)) };
        NonNull::new(de).map(Pde).ok_or(bindings::EEXIST as Errno)
    }

    /// Makes file `name` with permission bits `mode` in `parent`; its reads and writes go
    /// to omd.
    pub(crate) fn file(name: &CStr, mode: u16, parent: Option<&Pde>) -> Result<Pde, Errno> {
        // SAFETY: as in `mkdir`; FILE_OPS is static, so it outlives the entry.
        let de = unsafe {
            proc_create(
                name.as_char_ptr(),
                mode & 0o7777,
                Self::parent_ptr(parent),
                &FILE_OPS,
            )
        };
        NonNull::new(de).map(Pde).ok_or(bindings::EEXIST as Errno)
    }

    /// Makes `uid` (a uid of the initial user namespace, where omd runs) its owner.
    pub(crate) fn set_owner(&self, uid: u32) {
        // SAFETY: the entry is live; kuid_t/kgid_t of the initial namespace are the plain ids.
        unsafe {
            proc_set_user(
                self.0.as_ptr(),
                bindings::kuid_t { val: uid },
                bindings::kgid_t { val: 0 },
            )
        };
    }

    /// Removes it (and anything still in it). procfs waits for calls still inside its
    /// callbacks and makes later ones fail.
    pub(crate) fn remove(self) {
        // SAFETY: the entry is live and, `self` being consumed, removed only once.
        unsafe { proc_remove(self.0.as_ptr()) };
    }
}

/// A /proc/hpc path buffer: the longest path omd may give plus "/hpc/" and the NUL.
type PathBuf = [u8; wire::MAX_PATH + 8];

/// The path of an open file of the tree relative to /proc/hpc (`nodes/1/load`).
///
/// # Safety
///
/// `file` must be a file of the tree, open for the duration of the call.
unsafe fn path_of(file: *const bindings::file, buf: &mut PathBuf) -> Result<&[u8], Errno> {
    // SAFETY: the open file pins its dentry; dentry_path_raw writes at most buf.len()
    // bytes, ending in a NUL, and returns a pointer into buf or an ERR_PTR.
    let p = unsafe {
        bindings::dentry_path_raw(
            (*file).f_path.dentry,
            buf.as_mut_ptr().cast(),
            buf.len() as c_int,
        )
    };
    let start = (p as usize).wrapping_sub(buf.as_ptr() as usize);
    if start >= buf.len() {
        return Err(bindings::ENAMETOOLONG as Errno);
    }
    let s = &buf[start..];
    let end = s.iter().position(|&c| c == 0).unwrap_or(s.len());
    s[..end]
        .strip_prefix(b"/hpc/")
        .ok_or(bindings::ENOENT as Errno)
}

/// The effective uid (initial namespace) of whoever opened `file`.
///
/// # Safety
///
/// `file` must be open for the duration of the call.
unsafe fn opener_uid(file: *const bindings::file) -> u32 {
    // SAFETY: an open file holds a reference to the credentials it was opened with.
    unsafe { (*(*file).f_cred).euid.val }
}

/// `proc_open`: a seq_file whose one record is the file's content from omd.
unsafe extern "C" fn file_open(_inode: *mut bindings::inode, file: *mut bindings::file) -> c_int {
    // SAFETY: called by procfs for an open of one of our files.
    unsafe { bindings::single_open(file, Some(file_show), core::ptr::null_mut()) }
}

/// The seq_file `show` of [`file_open`]: asks omd for the content.
unsafe extern "C" fn file_show(m: *mut bindings::seq_file, _v: *mut c_void) -> c_int {
    let mut buf: PathBuf = [0; wire::MAX_PATH + 8];
    // SAFETY: seq_read calls show with the seq_file of an open file of ours.
    let path = match unsafe { path_of((*m).file, &mut buf) } {
        Ok(p) => p,
        Err(e) => return -e,
    };
    match shared().read(path) {
        Ok(data) => {
            // SAFETY: `data` is valid for its length; a full buffer makes seq_read retry
            // with a larger one.
            unsafe { bindings::seq_write(m, data.as_ptr().cast(), data.len()) };
            0
        }
        Err(e) => -e,
    }
}

/// `proc_write`: the bytes go to omd, with the writer's uid; the answer is the result.
unsafe extern "C" fn file_write(
    file: *mut bindings::file,
    ubuf: *const c_char,
    count: usize,
    _pos: *mut bindings::loff_t,
) -> isize {
    let data = match from_user(ubuf, count, wire::MAX_DATA, bindings::EFBIG) {
        Ok(d) => d,
        Err(e) => return -(e as isize),
    };
    let mut buf: PathBuf = [0; wire::MAX_PATH + 8];
    // SAFETY: procfs calls proc_write for an open file of ours.
    let (path, uid) = match unsafe { path_of(file, &mut buf) } {
        // SAFETY: as above.
        Ok(p) => (p, unsafe { opener_uid(file) }),
        Err(e) => return -(e as isize),
    };
    match shared().write(uid, path, &data) {
        Ok(()) => count as isize,
        Err(e) => -(e as isize),
    }
}

/// The registered `/dev/hpc`.
pub(crate) struct Misc {
    dev: KBox<MiscDevice>,
    _fops: KBox<bindings::file_operations>,
}

// SAFETY: the device's memory is owned here and only handed to the misc subsystem, which
// does its own locking.
unsafe impl Send for Misc {}
// SAFETY: as above; the module never touches the fields after registering.
unsafe impl Sync for Misc {}

impl Misc {
    /// Registers `/dev/<name>` (root only, mode 0600), owned by `module`: while it is
    /// open the module cannot be unloaded.
    pub(crate) fn register(
        name: &'static CStr,
        module: &'static ThisModule,
    ) -> Result<Misc, Errno> {
        let fops = KBox::new(
            bindings::file_operations {
                owner: module.as_ptr(),
                open: Some(dev_open),
                release: Some(dev_release),
                read: Some(dev_read),
                write: Some(dev_write),
                llseek: Some(bindings::noop_llseek),
                ..Default::default()
            },
            GFP_KERNEL,
        )
        .map_err(|_| bindings::ENOMEM as Errno)?;
        let mut dev = KBox::new(
            MiscDevice {
                minor: MISC_DYNAMIC_MINOR,
                name: name.as_char_ptr(),
                fops: &*fops,
                list: bindings::list_head {
                    next: core::ptr::null_mut(),
                    prev: core::ptr::null_mut(),
                },
                parent: core::ptr::null_mut(),
                this_device: core::ptr::null_mut(),
                groups: core::ptr::null(),
                nodename: core::ptr::null(),
                mode: 0o600,
            },
            GFP_KERNEL,
        )
        .map_err(|_| bindings::ENOMEM as Errno)?;
        // SAFETY: `dev` and `fops` are boxed (stable addresses) and live until `deregister`.
        let r = unsafe { misc_register(&mut *dev) };
        if r < 0 {
            return Err(-r);
        }
        Ok(Misc { dev, _fops: fops })
    }

    /// Removes the device. No file of it is open: an open one holds the module.
    pub(crate) fn deregister(mut self) {
        // SAFETY: registered in `register` and deregistered once (`self` is consumed).
        unsafe { misc_deregister(&mut *self.dev) };
    }
}

unsafe extern "C" fn dev_open(_inode: *mut bindings::inode, _file: *mut bindings::file) -> c_int {
    match shared().connect() {
        Ok(()) => 0,
        Err(e) => -e,
    }
}

unsafe extern "C" fn dev_release(
    _inode: *mut bindings::inode,
    _file: *mut bindings::file,
) -> c_int {
    shared().disconnect();
    0
}

/// omd reads the next request (blocks until there is one).
unsafe extern "C" fn dev_read(
    _file: *mut bindings::file,
    buf: *mut c_char,
    count: usize,
    _pos: *mut bindings::loff_t,
) -> isize {
    let mut out = UserSlice::new(buf as usize, count).writer();
    match shared().next_request(&mut out) {
        Ok(n) => n as isize,
        Err(e) => -(e as isize),
    }
}

/// The `count` bytes a writer passed at `buf`: at most `max` (else `too_long`).
fn from_user(
    buf: *const c_char,
    count: usize,
    max: usize,
    too_long: u32,
) -> Result<KVec<u8>, Errno> {
    if count > max {
        return Err(too_long as Errno);
    }
    let mut v = KVec::new();
    UserSlice::new(buf as usize, count)
        .read_all(&mut v, GFP_KERNEL)
        .map_err(|_| bindings::EFAULT as Errno)?;
    Ok(v)
}

/// omd writes one message: a reply or a new tree.
unsafe extern "C" fn dev_write(
    _file: *mut bindings::file,
    buf: *const c_char,
    count: usize,
    _pos: *mut bindings::loff_t,
) -> isize {
    let msg = match from_user(
        buf,
        count,
        wire::HEADER + wire::MAX_PAYLOAD,
        bindings::EMSGSIZE,
    ) {
        Ok(m) => m,
        Err(e) => return -(e as isize),
    };
    match shared().from_omd(&msg) {
        Ok(()) => count as isize,
        Err(e) => -(e as isize),
    }
}

/// Removes and returns the last element (6.12's `KVec` has no `pop`).
pub(crate) fn pop<T>(v: &mut KVec<T>) -> Option<T> {
    let len = v.len();
    if len == 0 {
        return None;
    }
    // SAFETY: element `len - 1` is initialised; it is moved out, and the length is cut
    // right after so that it is never read or dropped again.
    unsafe {
        let x = core::ptr::read(v.as_ptr().add(len - 1));
        v.set_len(len - 1);
        Some(x)
    }
}
