//! One apply at a time per inventory: a lock file in the inventory's state directory, held with
//! flock(2) for as long as the apply runs. The kernel drops the lock when its holder dies, however it
//! dies, so a stale file never blocks; the file carries the holder's PID for the refusal message.

use anyhow::{bail, Context, Result};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// A held run lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

/// `<inventory dir>/.apim-state/run.lock`.
fn lock_path(inventory: &Path) -> PathBuf {
    let dir = match inventory.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    dir.join(".apim-state").join("run.lock")
}

impl RunLock {
    /// Takes the lock of `inventory`, or refuses naming the PID of the apply that holds it.
    pub fn acquire(inventory: &Path) -> Result<Self> {
        let path = lock_path(inventory);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening the run lock {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = match holder.trim() {
                    "" => "unknown".to_string(),
                    pid => pid.to_string(),
                };
                bail!(
                    "another apply of {} is running (PID {holder}); it holds {}",
                    inventory.display(),
                    path.display()
                );
            }
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("locking {}", path.display()))
            }
        }
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .and_then(|()| file.flush())
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(Self { _file: file })
    }
}
