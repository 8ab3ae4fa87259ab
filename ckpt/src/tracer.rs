//! A tracer is a *thread*: every ptrace request for a tracee must come from the thread
//! that attached it. [`TracerThread`] is one dedicated OS thread that runs jobs in order,
//! so all ptrace calls for one process happen on it (never on a pool).

use std::sync::mpsc;
use std::thread::JoinHandle;

type Job = Box<dyn FnOnce() + Send>;

/// A dedicated thread running ptrace jobs for one process.
pub struct TracerThread {
    tx: Option<mpsc::Sender<Job>>,
    handle: Option<JoinHandle<()>>,
}

impl TracerThread {
    /// Starts the thread.
    pub fn spawn(name: &str) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Job>();
        let handle = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                for job in rx {
                    job();
                }
            })?;
        Ok(Self {
            tx: Some(tx),
            handle: Some(handle),
        })
    }

    /// Runs `f` on the tracer thread and returns its result. If the job panics, the
    /// thread ends (which detaches its tracees, letting them run on) and an error is
    /// returned.
    pub fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> std::io::Result<R> {
        let (rtx, rrx) = mpsc::sync_channel(1);
        let job: Job = Box::new(move || {
            let _ = rtx.send(f());
        });
        if let Some(tx) = &self.tx {
            let _ = tx.send(job);
        }
        rrx.recv()
            .map_err(|_| std::io::Error::other("the tracer thread ended while running a job"))
    }
}

impl Drop for TracerThread {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
