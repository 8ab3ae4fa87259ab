//! How a process ended, at home or away: one type for the guest, the deputy and what the
//! two ends tell each other.

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// It exited with this code.
    Exited(i32),
    /// It was killed by this signal; `core` if it dumped core.
    Killed {
        /// The signal.
        signal: i32,
        /// Core dumped.
        core: bool,
    },
}

impl Ended {
    /// Killed by `signal`, without a core dump.
    pub fn killed(signal: i32) -> Ended {
        Ended::Killed {
            signal,
            core: false,
        }
    }
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Ended::Exited(code) => write!(f, "exited with status {code}"),
            Ended::Killed { signal, core } => {
                match nix::sys::signal::Signal::try_from(signal) {
                    Ok(s) => write!(f, "killed by {}", s.as_str())?,
                    Err(_) => write!(f, "killed by signal {signal}")?,
                }
                if core {
                    write!(f, " (core dumped)")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Ended;

    #[test]
    fn ends_read_as_a_shell_user_would_say_them() {
        assert_eq!(Ended::Exited(42).to_string(), "exited with status 42");
        assert_eq!(
            Ended::killed(libc::SIGTERM).to_string(),
            "killed by SIGTERM"
        );
        let core = Ended::Killed {
            signal: libc::SIGSEGV,
            core: true,
        };
        assert_eq!(core.to_string(), "killed by SIGSEGV (core dumped)");
        assert_eq!(Ended::killed(99).to_string(), "killed by signal 99");
    }
}
