//! `/proc/PID/smaps`, read for what capture and restore use of it: each mapping's line
//! (addresses, permissions, offset, device, inode, path) and its `VmFlags`.
//!
//! A process with tens of thousands of mappings has an smaps of many megabytes, about
//! twenty lines a mapping. Parsing every line (as `procfs`'s `Process::smaps` does, into
//! a map of strings per mapping) took longer than the kernel took to write them, all of
//! it while the process was frozen; here the other lines are dropped before parsing.

use std::fs::File;
use std::io::Read;

use procfs::process::MemoryMaps;
use procfs::FromBufRead;

/// The mappings of process `pid` with their `VmFlags` (the rest of each entry's
/// extension is left empty).
pub(crate) fn read(pid: i32) -> std::io::Result<MemoryMaps> {
    Ok(read_early(pid)?.maps)
}

/// The mappings of a process, read while it ran, and what its `/proc/PID/maps` said then.
pub(crate) struct Early {
    pub maps: MemoryMaps,
    /// The mappings' own lines, as `/proc/PID/maps` shows them.
    lines: Vec<u8>,
}

impl Early {
    /// Whether the mappings of process `pid` are still laid out as they were: same
    /// addresses, permissions, offsets, files. Reading `/proc/PID/maps` does not walk
    /// page tables, so this costs a fraction of reading smaps again. It cannot see a flag
    /// changed without a change of layout (`madvise` over a whole mapping): whoever
    /// relies on the flags must know that no such call ran meanwhile.
    pub fn unchanged(&self, pid: i32) -> std::io::Result<bool> {
        let mut now = Vec::with_capacity(self.lines.len() + 4096);
        File::open(format!("/proc/{pid}/maps"))?.read_to_end(&mut now)?;
        Ok(now == self.lines)
    }
}

/// [`read`], keeping what [`Early::unchanged`] compares.
pub(crate) fn read_early(pid: i32) -> std::io::Result<Early> {
    let mut raw = Vec::with_capacity(1 << 20);
    File::open(format!("/proc/{pid}/smaps"))?.read_to_end(&mut raw)?;
    parse(&raw)
}

/// The entries of smaps text `raw`, as [`read_early`] gives them.
fn parse(raw: &[u8]) -> std::io::Result<Early> {
    let mut kept = Vec::with_capacity(raw.len() / 8);
    let mut lines = Vec::with_capacity(raw.len() / 16);
    for line in raw.split_inclusive(|&b| b == b'\n') {
        // A mapping's own line starts with its address (lower-case hex); the lines of
        // its details with an upper-case key.
        if line.first().is_some_and(u8::is_ascii_uppercase) {
            if line.starts_with(b"VmFlags:") {
                kept.extend_from_slice(line);
            }
            continue;
        }
        kept.extend_from_slice(line);
        lines.extend_from_slice(line);
    }
    let maps = MemoryMaps::from_buf_read(&kept[..]).map_err(std::io::Error::other)?;
    Ok(Early { maps, lines })
}

#[cfg(test)]
mod tests {
    use procfs::process::{MMapPath, Process, VmFlags};

    #[test]
    fn the_same_mappings_and_flags_as_procfs_reads() {
        // A process whose mappings do not change (this one's threads come and go).
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        // Until it sleeps in clock_nanosleep (230), its loader may still map.
        let syscall = format!("/proc/{pid}/syscall");
        while !std::fs::read_to_string(&syscall).is_ok_and(|s| s.starts_with("230 ")) {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let early = super::read_early(pid).unwrap();
        // Its maps say what its smaps said.
        assert!(early.unchanged(pid).unwrap());
        let ours = early.maps;
        let theirs = Process::new(pid).unwrap().smaps().unwrap();
        let key = |m: &procfs::process::MemoryMap| {
            (
                m.address,
                m.perms,
                m.offset,
                m.dev,
                m.inode,
                m.pathname.clone(),
                m.extension.vm_flags,
            )
        };
        let a: Vec<_> = ours.iter().map(key).collect();
        let b: Vec<_> = theirs.iter().map(key).collect();
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(a, b);
        // Every mapping is readable or says it is not; the stack grows down.
        let stack = ours.iter().find(|m| m.pathname == MMapPath::Stack).unwrap();
        assert!(stack.extension.vm_flags.contains(VmFlags::GD));
        assert!(ours.iter().all(|m| m.extension.map.is_empty()));
    }

    #[test]
    fn details_without_flags_and_odd_paths_parse() {
        let text = b"00400000-00401000 r-xp 00000000 08:01 12 /bin/a b\n\
Size:                  4 kB\n\
VmFlags: rd ex mr mw me lo\n\
7ffd0000-7ffd1000 rw-p 00000000 00:00 0                          [stack]\n\
Rss:                   4 kB\n";
        let e = super::parse(text).unwrap();
        assert_eq!(
            e.lines,
            b"00400000-00401000 r-xp 00000000 08:01 12 /bin/a b\n\
7ffd0000-7ffd1000 rw-p 00000000 00:00 0                          [stack]\n"
        );
        let m = e.maps;
        assert_eq!(m.0.len(), 2);
        assert!(m.0[0].extension.vm_flags.contains(VmFlags::LO));
        assert_eq!(m.0[0].pathname, MMapPath::Path("/bin/a b".into()));
        assert_eq!(m.0[1].extension.vm_flags, VmFlags::NONE);
        assert!(super::parse(b"not a mapping\n").is_err());
    }
}
