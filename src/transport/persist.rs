//! Masters kept for later runs (`--persist`): each host's ssh master stays up for a set idle time after
//! the run (OpenSSH's `ControlPersist`, which Ansible sets to 60s), so that the next run attaches to it
//! instead of paying a handshake. The masters live in a directory only the user can enter, each under a
//! name hashing everything its connection was made with (this user, the host, the idle time, and the
//! ssh configuration as `ssh -G` resolves it: user, address, port, keys, known_hosts), so a run never
//! attaches to a master made for another user, port, key or configuration; hashed, the names stay
//! short enough for a socket path (108 bytes) however long or many the host names are.

use sha2::{Digest, Sha256};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;

/// What the socket path adds below the control directory: `/<16 hex>` (the host's directory),
/// `/.ssh-connection` and 6 random characters (the openssh crate's directory per master), `/master`,
/// and the 17 characters of the temporary name ssh binds before renaming it into place.
const SOCKET_TAIL: usize = 17 + 22 + 7 + 17;
/// The longest socket path `sockaddr_un` holds (108 bytes with the terminating NUL).
const SUN_PATH_MAX: usize = 107;

/// A control directory that cannot hold kept masters safely: a master there could be used by whoever
/// can reach its socket, to run anything on the host as the user it logged in as.
#[derive(Debug, Error)]
#[error("control directory {path}: {reason}")]
pub struct ControlDirError {
    /// The directory.
    pub path: PathBuf,
    /// What is wrong with it.
    pub reason: String,
}

/// How long each host's master stays up once idle, and where it is kept.
#[derive(Debug, Clone)]
pub struct Persist {
    idle_secs: u64,
    dir: PathBuf,
}

impl Persist {
    /// Masters kept for `idle` (whole seconds, at least one) in the user's own control directory:
    /// `$XDG_RUNTIME_DIR/apim-provision` (a tmpfs only the user can enter, emptied at logout), else
    /// `~/.cache/apim-provision/cm`; made 0700 when missing, refused when another user could enter it.
    pub fn new(idle: Duration) -> Result<Self, ControlDirError> {
        let runtime = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|d| d.is_absolute() && d.is_dir());
        let dir = match runtime {
            Some(r) => r.join("apim-provision"),
            None => {
                let home = std::env::var_os("HOME")
                    .map(PathBuf::from)
                    .filter(|h| h.is_absolute())
                    .ok_or_else(|| ControlDirError {
                        path: PathBuf::from("~/.cache/apim-provision/cm"),
                        reason: "neither XDG_RUNTIME_DIR nor HOME is set to a directory".into(),
                    })?;
                home.join(".cache/apim-provision/cm")
            }
        };
        Self::in_dir(idle, dir)
    }

    /// Masters kept for `idle` in `dir`, made (0700) when missing; refused when the socket paths
    /// below it would not fit a socket address, or when it is not this user's alone.
    pub fn in_dir(idle: Duration, dir: PathBuf) -> Result<Self, ControlDirError> {
        let err = |reason: String| ControlDirError {
            path: dir.clone(),
            reason,
        };
        let longest = dir.as_os_str().len() + SOCKET_TAIL;
        if longest > SUN_PATH_MAX {
            return Err(err(format!(
                "its sockets' paths would be {longest} bytes, more than a socket address holds \
                 ({SUN_PATH_MAX}); set XDG_RUNTIME_DIR to a shorter private directory"
            )));
        }
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| err(format!("creating {}: {e}", parent.display())))?;
        }
        private_dir(&dir)?;
        Ok(Self {
            idle_secs: idle.as_secs().max(1),
            dir,
        })
    }

    /// How long a master stays up after its last use.
    pub fn idle(&self) -> Duration {
        Duration::from_secs(self.idle_secs)
    }

    /// The directory of the masters of inventory host `name` whose connection `ssh -G` resolves to
    /// `resolved`, made (0700) when missing.
    pub(super) fn host_dir(&self, name: &str, resolved: &[u8]) -> Result<PathBuf, ControlDirError> {
        let dir = self.dir.join(self.key(name, resolved));
        private_dir(&dir)?;
        Ok(dir)
    }

    /// The name of a host's master directory: 16 hex digits of a digest of everything that makes its
    /// connection what it is, and of the idle time, so a run never extends a master made for a longer
    /// one beyond its own duration.
    fn key(&self, name: &str, resolved: &[u8]) -> String {
        let mut h = Sha256::new();
        // SAFETY: geteuid(2) only reads.
        let uid = unsafe { libc::geteuid() };
        for part in [
            b"apim-provision master v1".as_slice(),
            uid.to_string().as_bytes(),
            name.as_bytes(),
            self.idle_secs.to_string().as_bytes(),
            resolved,
        ] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        h.finalize()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// Makes `dir` (mode 0700) unless it exists, then checks that it is a real directory (not a symlink)
/// owned by this user that no other user can enter.
fn private_dir(dir: &Path) -> Result<(), ControlDirError> {
    let err = |reason: String| ControlDirError {
        path: dir.to_path_buf(),
        reason,
    };
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(err(format!("creating it: {e}"))),
    }
    let m = std::fs::symlink_metadata(dir).map_err(|e| err(e.to_string()))?;
    // SAFETY: geteuid(2) only reads.
    let uid = unsafe { libc::geteuid() };
    if !m.file_type().is_dir() {
        return Err(err("not a directory (a symlink is refused)".into()));
    }
    if m.uid() != uid {
        return Err(err(format!(
            "owned by uid {}, not by this user (uid {uid})",
            m.uid()
        )));
    }
    if m.mode() & 0o077 != 0 {
        return Err(err(format!(
            "mode {:04o} lets other users in; it must be 0700",
            m.mode() & 0o7777
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// The name of a host's master changes with everything that makes the connection (another user,
    /// port or key shows in what `ssh -G` resolves), with the host and with the idle time; and the
    /// same connection finds the same name again.
    #[test]
    fn a_master_is_named_by_its_host_its_connection_and_its_idle_time() {
        let d = tempfile::tempdir().unwrap();
        let p = Persist::in_dir(Duration::from_secs(30), d.path().join("cm")).unwrap();
        let resolved = b"user root\nhostname 10.0.0.1\nport 22\nidentityfile ~/.ssh/id_ed25519\n";
        let base = p.key("h1", resolved);
        assert_eq!(base.len(), 16);
        assert_eq!(base, p.key("h1", resolved));
        let other_user =
            b"user deploy\nhostname 10.0.0.1\nport 22\nidentityfile ~/.ssh/id_ed25519\n";
        let other_port =
            b"user root\nhostname 10.0.0.1\nport 2222\nidentityfile ~/.ssh/id_ed25519\n";
        let other_key = b"user root\nhostname 10.0.0.1\nport 22\nidentityfile ~/.ssh/other\n";
        for other in [other_user.as_slice(), other_port, other_key] {
            assert_ne!(base, p.key("h1", other));
        }
        assert_ne!(base, p.key("h2", resolved));
        let longer = Persist::in_dir(Duration::from_secs(600), d.path().join("cm")).unwrap();
        assert_ne!(base, longer.key("h1", resolved));
        let dir = p.host_dir("h1", resolved).unwrap();
        assert_eq!(dir, d.path().join("cm").join(&base));
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    /// At 1,000 hosts with long names every socket path still fits a socket address, and all are
    /// distinct; a control directory too long to allow that is refused up front, naming the fix.
    #[test]
    fn socket_paths_fit_a_socket_address_for_a_thousand_long_host_names() {
        let d = tempfile::tempdir().unwrap();
        // The longest directory allowed.
        let pad = SUN_PATH_MAX - SOCKET_TAIL - d.path().join("c").as_os_str().len();
        let dir = d.path().join(format!("c{}", "x".repeat(pad)));
        let p = Persist::in_dir(Duration::from_secs(60), dir.clone()).unwrap();
        let mut seen = std::collections::HashSet::new();
        for i in 0..1000 {
            let name = format!(
                "gateway-worker-{i:04}.{}.example.com",
                "very-long-zone".repeat(8)
            );
            let host = p.key(&name, format!("hostname {name}\n").as_bytes());
            // What the openssh crate and ssh add below the host's directory.
            let socket = dir
                .join(&host)
                .join(".ssh-connectionAbC123")
                .join("master.0123456789abcdef");
            assert!(
                socket.as_os_str().len() <= SUN_PATH_MAX,
                "{}: {} bytes",
                socket.display(),
                socket.as_os_str().len()
            );
            assert!(seen.insert(host), "two hosts share a master name");
        }
        let too_long = d.path().join(format!("c{}y", "x".repeat(pad)));
        let e = Persist::in_dir(Duration::from_secs(60), too_long).unwrap_err();
        assert!(e.reason.contains("XDG_RUNTIME_DIR"), "{e}");
    }

    /// A directory other users can enter, or a symlink to one, is refused: a master there would let
    /// them run commands on the host as the user it logged in as. One made here is 0700.
    #[test]
    fn a_control_directory_others_can_enter_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let open = d.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
        let e = Persist::in_dir(Duration::from_secs(60), open).unwrap_err();
        assert!(e.reason.contains("0755"), "{e}");
        let private = d.path().join("private");
        Persist::in_dir(Duration::from_secs(60), private.clone()).unwrap();
        let mode = std::fs::metadata(&private).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&private, &link).unwrap();
        let e = Persist::in_dir(Duration::from_secs(60), link).unwrap_err();
        assert!(e.reason.contains("symlink"), "{e}");
        // SAFETY: geteuid(2) only reads.
        if unsafe { libc::geteuid() } == 0 {
            let theirs = d.path().join("theirs");
            std::fs::create_dir(&theirs).unwrap();
            std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
            std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o700)).unwrap();
            let e = Persist::in_dir(Duration::from_secs(60), theirs).unwrap_err();
            assert!(e.reason.contains("owned by uid 65534"), "{e}");
        }
    }
}
