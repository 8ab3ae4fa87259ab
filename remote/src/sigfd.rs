//! The signalfds of a process: which signals they watch.
//!
//! A process reads signals through a signalfd only while it blocks them (signalfd(2)).
//! Away from home its signalfds stay at home with its other descriptors, so the signals
//! they watch must stay queued at home too: the deputy keeps them blocked rather than
//! passing them to the guest, and a forwarded `read`, `poll` or `epoll_wait` of the
//! signalfd finds them as natively.

/// The bit of signal `sig` in a signal mask (0 for a number no signal has).
pub(crate) fn signal_bit(sig: i32) -> u64 {
    match sig {
        1..=64 => 1 << (sig - 1),
        _ => 0,
    }
}

/// The union of the signal masks of every signalfd process `pid` holds (0 if none, or
/// if its descriptors cannot be read).
pub(crate) fn watched_signals(pid: i32) -> u64 {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    let mut mask = 0;
    for fd in fds.flatten() {
        let is_signalfd =
            std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == "anon_inode:[signalfd]");
        if !is_signalfd {
            continue;
        }
        let info = format!("/proc/{pid}/fdinfo/{}", fd.file_name().to_string_lossy());
        if let Ok(text) = std::fs::read_to_string(info) {
            mask |= signalfd_mask(&text).unwrap_or(0);
        }
    }
    mask
}

/// The `sigmask:` of a signalfd's fdinfo text.
fn signalfd_mask(fdinfo: &str) -> Option<u64> {
    let hex = fdinfo.lines().find_map(|l| l.strip_prefix("sigmask:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

#[cfg(test)]
mod tests {
    use super::{signal_bit, signalfd_mask, watched_signals};

    #[test]
    fn signalfd_masks_are_read_from_fdinfo() {
        let info = "pos:\t0\nflags:\t02\nmnt_id:\t15\nino:\t1057\nsigmask:\t0000000000004200\n";
        assert_eq!(
            signalfd_mask(info),
            Some(signal_bit(libc::SIGUSR1) | signal_bit(libc::SIGTERM))
        );
        assert_eq!(signalfd_mask("pos:\t0\n"), None);
        assert_eq!(signal_bit(0), 0);
        assert_eq!(signal_bit(65), 0);
    }

    #[test]
    fn a_real_signalfd_is_found() {
        let before = watched_signals(std::process::id() as i32);
        let mut set = nix::sys::signal::SigSet::empty();
        set.add(nix::sys::signal::Signal::SIGWINCH);
        let fd = nix::sys::signalfd::SignalFd::new(&set).unwrap();
        let with = watched_signals(std::process::id() as i32);
        assert_eq!(
            with & signal_bit(libc::SIGWINCH),
            signal_bit(libc::SIGWINCH)
        );
        drop(fd);
        assert_eq!(before & signal_bit(libc::SIGWINCH), 0);
    }
}
