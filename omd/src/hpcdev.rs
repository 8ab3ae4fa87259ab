//! The /proc-style tree at `/proc/hpc`, through the omhpc kernel module (kmod/omhpc).
//!
//! When the module is loaded, `/dev/hpc` exists and omd serves the tree through it
//! instead of mounting FUSE: the module makes the entries omd lists and relays every read
//! and write of a file to omd as a request on the device; the answers come from the same
//! [`HpcFs`] as over FUSE, so both trees always agree. The protocol is
//! [`om_hpcproto`].
//!
//! Two threads: one reads requests and writes replies; the other lists the tree every
//! second and sends it when it changed (a separate thread, so that a tree update that
//! waits for a reader of a removed file never holds up the replies that reader waits for).

use crate::control::Omd;
use crate::hpcfs::{HpcFs, TreeEntry};
use om_hpcproto as wire;
use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub const DEFAULT_DEVICE: &str = "/dev/hpc";

/// How often the tree is listed.
const TREE_EVERY: Duration = Duration::from_secs(1);

/// Serves the tree through `device` if it exists: `Ok(false)` when there is no such
/// device (no module loaded), an error if it exists but cannot be used (another omd has
/// it: EBUSY). The threads run as long as omd does; the module sees omd go when the
/// process ends and its descriptor closes.
pub fn serve(omd: Omd, device: &Path) -> std::io::Result<bool> {
    let file = match File::options().read(true).write(true).open(device) {
        Ok(f) => Arc::new(f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let fs = Arc::new(HpcFs::new(omd));
    // The first tree before any request can come.
    let mut last = encode_tree(&fs.entries())?;
    (&*file).write_all(&last)?;
    {
        let (file, fs) = (file.clone(), fs.clone());
        std::thread::Builder::new()
            .name("om-hpcdev".into())
            .spawn(move || answer_requests(&file, &fs))?;
    }
    std::thread::Builder::new()
        .name("om-hpctree".into())
        .spawn(move || loop {
            std::thread::sleep(TREE_EVERY);
            match encode_tree(&fs.entries()) {
                Ok(t) if t == last => {}
                Ok(t) => {
                    if let Err(e) = (&*file).write_all(&t) {
                        tracing::warn!("cannot send the /proc/hpc tree to the module: {e}");
                        return;
                    }
                    last = t;
                }
                Err(e) => tracing::warn!("cannot encode the /proc/hpc tree: {e}"),
            }
        })?;
    Ok(true)
}

/// The `Tree` message for `entries` (sorted by path, as [`HpcFs::entries`] gives them).
pub fn encode_tree(entries: &[TreeEntry]) -> std::io::Result<Vec<u8>> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let list: Vec<wire::Entry<'_>> = entries
        .iter()
        .map(|e| wire::Entry {
            mode: if e.dir { wire::S_IFDIR } else { wire::S_IFREG } | e.perm,
            uid: e.uid,
            path: e.path.as_bytes(),
        })
        .collect();
    let mut payload = vec![0u8; list.iter().map(wire::Entry::wire_len).sum()];
    let mut at = 0;
    for e in &list {
        at += e
            .put(&mut payload[at..])
            .map_err(|_| bad(&format!("tree entry {:?}", String::from_utf8_lossy(e.path))))?;
    }
    let msg = wire::Msg::Tree { entries: &payload };
    let mut out = vec![0u8; msg.encoded_len()];
    wire::encode(&msg, &mut out)
        .map_err(|e| bad(&format!("tree of {} entries: {e:?}", entries.len())))?;
    Ok(out)
}

/// The reply to one request from the module.
pub fn answer(fs: &HpcFs, request: &[u8]) -> Option<Vec<u8>> {
    let (id, result) = match wire::decode(request) {
        Ok(wire::Msg::Read { id, path }) => (
            id,
            std::str::from_utf8(path)
                .map_err(|_| fuser::Errno::ENOENT)
                .and_then(|p| fs.read_path(p)),
        ),
        Ok(wire::Msg::Write {
            id,
            uid,
            path,
            data,
        }) => (
            id,
            std::str::from_utf8(path)
                .map_err(|_| fuser::Errno::ENOENT)
                .and_then(|p| fs.write_path(p, data, uid))
                .map(|()| Vec::new()),
        ),
        other => {
            tracing::warn!("unexpected message from /dev/hpc: {other:?}");
            return None;
        }
    };
    let (errno, mut data) = match result {
        Ok(d) => (0, d),
        Err(e) => (e.code(), Vec::new()),
    };
    data.truncate(wire::MAX_DATA);
    let reply = wire::Msg::Reply {
        id,
        errno,
        data: &data,
    };
    let mut out = vec![0u8; reply.encoded_len()];
    wire::encode(&reply, &mut out).ok()?;
    Some(out)
}

fn answer_requests(file: &File, fs: &HpcFs) {
    let mut buf = vec![0u8; wire::MAX_REQUEST];
    loop {
        let n = match (&*file).read(&mut buf) {
            Ok(0) => {
                tracing::info!("the omhpc module is going away: /proc/hpc is no longer served");
                return;
            }
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!("cannot read /dev/hpc: {e}; /proc/hpc is no longer served");
                return;
            }
        };
        if let Some(reply) = answer(fs, &buf[..n]) {
            if let Err(e) = (&*file).write_all(&reply) {
                tracing::warn!("cannot answer through /dev/hpc: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::{Config, Node};
    use crate::wire::Key;
    use om_hpcproto::Msg;
    use std::sync::Mutex;

    fn fs() -> (HpcFs, Arc<Mutex<Node>>) {
        let map = om_map::parse("1 10.0.0.1 3\n", "test", &om_map::NoResolver).unwrap();
        let cfg = Config {
            node: 1,
            port: 723,
            interval: Duration::from_secs(1),
            down_after: Duration::from_secs(5),
            window: 4,
            key: Key([7; 32]),
        };
        let mut n = Node::new(cfg, map, "test".into(), 10_000);
        n.set_measured(om_proto::NodeRecord {
            load: 150,
            speed: 10_000,
            cpus: 1,
            tmem: 1000,
            ..Default::default()
        });
        let node = Arc::new(Mutex::new(n));
        (HpcFs::new(Omd::node_only(node.clone())), node)
    }

    fn request(m: Msg<'_>) -> Vec<u8> {
        let mut out = vec![0u8; m.encoded_len()];
        wire::encode(&m, &mut out).unwrap();
        out
    }

    /// omd's answer to `m`: (id, errno, data).
    fn ask(fs: &HpcFs, m: Msg<'_>) -> (u32, i32, String) {
        let reply = answer(fs, &request(m)).expect("a reply");
        match wire::decode(&reply).unwrap() {
            Msg::Reply { id, errno, data } => (id, errno, String::from_utf8_lossy(data).into()),
            other => panic!("not a reply: {other:?}"),
        }
    }

    /// A read of `path`: (errno, content); the reply must carry the request's id.
    fn read(fs: &HpcFs, path: &[u8]) -> (i32, String) {
        let (id, errno, data) = ask(fs, Msg::Read { id: 77, path });
        assert_eq!(id, 77);
        (errno, data)
    }

    #[test]
    fn reads_and_writes_answer_as_the_fuse_tree_does() {
        let (fs, node) = fs();
        assert_eq!(read(&fs, b"admin/block"), (0, "0\n".into()));
        assert_eq!(read(&fs, b"nodes/1/speed"), (0, "10000\n".into()));
        assert_eq!(read(&fs, b"nodes/1/load"), (0, "150\n".into()));
        let w = |uid, data: &'static [u8]| Msg::Write {
            id: 7,
            uid,
            path: b"admin/block",
            data,
        };
        // Only root sets admin files; the value must be 0 or 1.
        assert_eq!(ask(&fs, w(1000, b"1\n")), (7, libc::EACCES, String::new()));
        assert_eq!(ask(&fs, w(0, b"7\n")), (7, libc::EINVAL, String::new()));
        assert_eq!(ask(&fs, w(0, b"1\n")), (7, 0, String::new()));
        assert!(node.lock().unwrap().setting(om_proto::Setting::Block));
        assert_eq!(read(&fs, b"admin/block"), (0, "1\n".into()));
        for (path, errno) in [
            (&b"nodes/9/load"[..], libc::ENOENT),
            (b"nodes", libc::EISDIR),
            (b"admin/../admin/block", libc::ENOENT),
            (b"\xff", libc::ENOENT),
        ] {
            assert_eq!(read(&fs, path).0, errno, "{path:?}");
        }
        // A request kind omd only sends is not answered.
        assert!(answer(&fs, &encode_tree(&[]).unwrap()).is_none());
    }

    #[test]
    fn the_tree_lists_every_entry_sorted_and_decodes() {
        let (fs, _) = fs();
        let entries = fs.entries();
        let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
        let mut sorted = paths.clone();
        sorted.sort();
        assert_eq!(paths, sorted);
        for want in [
            "admin",
            "admin/block",
            "nodes",
            "nodes/1",
            "nodes/3/load",
            "remote",
        ] {
            assert!(paths.contains(&want), "{want} missing from {paths:?}");
        }
        let block = entries.iter().find(|e| e.path == "admin/block").unwrap();
        assert_eq!((block.dir, block.perm, block.uid), (false, 0o644, 0));
        assert!(entries.iter().find(|e| e.path == "nodes/2").unwrap().dir);

        let msg = encode_tree(&entries).unwrap();
        let Ok(Msg::Tree { entries: payload }) = wire::decode(&msg) else {
            panic!("not a tree");
        };
        let back: Vec<(String, u16)> = wire::entries(payload)
            .map(|e| {
                let e = e.unwrap();
                (String::from_utf8(e.path.to_vec()).unwrap(), e.mode)
            })
            .collect();
        assert_eq!(back.len(), entries.len());
        assert!(back.contains(&("admin/block".into(), wire::S_IFREG | 0o644)));
        assert!(back.contains(&("nodes".into(), wire::S_IFDIR | 0o555)));
    }
}
