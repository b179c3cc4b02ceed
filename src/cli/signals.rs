//! SIGINT and SIGTERM during plan/apply: the first one cancels the run (no task starts, running ones are
//! stopped with what they started on the hosts, temp files go, connections close, the summary prints)
//! and decides the exit code, 130 or 143 as a shell reports a death by that signal; a second one exits
//! at once.

use apim_provision::execute::{Cancel, Canceller};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use tokio::signal::unix::{signal, SignalKind};

/// The signal watch of one run.
pub struct Signals {
    caught: Arc<AtomicI32>,
    task: tokio::task::JoinHandle<()>,
}

impl Signals {
    /// Starts watching; the returned token is cancelled on the first signal.
    pub fn watch() -> std::io::Result<(Self, Cancel)> {
        let (canceller, cancel) = Canceller::new();
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        let caught = Arc::new(AtomicI32::new(0));
        let seen = caught.clone();
        let task = tokio::spawn(async move {
            loop {
                let (name, code) = tokio::select! {
                    _ = int.recv() => ("SIGINT", 130),
                    _ = term.recv() => ("SIGTERM", 143),
                };
                if seen.swap(code, Ordering::SeqCst) != 0 {
                    eprintln!("{name} again: exiting now");
                    std::process::exit(code);
                }
                eprintln!("{name}: stopping the run (send it again to exit at once)");
                canceller.cancel(name);
            }
        });
        Ok((Self { caught, task }, cancel))
    }

    /// The exit code the run must end with because of a signal, if one came.
    pub fn exit_code(&self) -> Option<i32> {
        match self.caught.load(Ordering::SeqCst) {
            0 => None,
            code => Some(code),
        }
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        self.task.abort();
    }
}
