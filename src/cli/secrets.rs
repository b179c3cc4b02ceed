//! `apim-provision secrets encrypt|decrypt|edit`: the age-encrypted secrets file that `{ secret: NAME }`
//! references read. Recipients (who can decrypt) come from `--recipients FILE` / `--recipient KEY`, or
//! else from `FILE.recipients` next to the secrets file, so that an edit re-encrypts to the whole team
//! and not only to whoever edits.

use anyhow::{bail, Context, Result};
use apim_provision::secrets::store;
use clap::{Args, Subcommand};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What to do with a secrets file.
#[derive(Subcommand)]
pub enum Action {
    /// Encrypt a plaintext YAML map of names to strings into a secrets file.
    Encrypt {
        /// The plaintext YAML file (`-` for stdin).
        plaintext: PathBuf,
        /// The secrets file to write.
        #[arg(short, long, default_value = "secrets.age")]
        out: PathBuf,
        #[command(flatten)]
        to: Recipients,
    },
    /// Print a secrets file's plaintext on stdout.
    Decrypt {
        /// The secrets file.
        #[arg(default_value = "secrets.age")]
        file: PathBuf,
        #[command(flatten)]
        with: Identity,
    },
    /// Decrypt into a private temporary file, run $EDITOR on it, and re-encrypt; the plaintext never
    /// stays on disk. A file that does not exist yet starts empty.
    Edit {
        /// The secrets file.
        #[arg(default_value = "secrets.age")]
        file: PathBuf,
        #[command(flatten)]
        with: Identity,
        #[command(flatten)]
        to: Recipients,
    },
}

/// Who may decrypt.
#[derive(Args)]
pub struct Recipients {
    /// A file of age recipients (age1…) or ssh public keys, one a line (default: FILE.recipients).
    #[arg(long, value_name = "FILE")]
    recipients: Vec<PathBuf>,
    /// One age recipient or ssh public key.
    #[arg(long, value_name = "KEY")]
    recipient: Vec<String>,
}

/// The identity to decrypt with.
#[derive(Args)]
pub struct Identity {
    /// An age identity file or an ssh private key (default: ~/.ssh/id_ed25519).
    #[arg(long, value_name = "FILE", env = "APIM_AGE_IDENTITY")]
    identity: Option<PathBuf>,
}

impl Identity {
    fn path(&self) -> Result<PathBuf> {
        store::identity_path(self.identity.as_deref()).context(
            "no identity: pass --identity FILE or set APIM_AGE_IDENTITY (no ~/.ssh/id_ed25519 either)",
        )
    }
}

impl Recipients {
    /// The recipients asked for, else those of `FILE.recipients` next to `file`.
    fn load(&self, file: &Path) -> Result<Vec<Box<dyn age::Recipient + Send>>> {
        let mut text = Vec::new();
        for f in &self.recipients {
            let t = std::fs::read_to_string(f).with_context(|| format!("{}", f.display()))?;
            text.push((f.display().to_string(), t));
        }
        for (i, r) in self.recipient.iter().enumerate() {
            text.push((format!("--recipient #{}", i + 1), r.clone()));
        }
        if text.is_empty() {
            let default = recipients_file(file);
            match std::fs::read_to_string(&default) {
                Ok(t) => text.push((default.display().to_string(), t)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                    "no recipients: pass --recipients FILE or --recipient KEY, or write them to {}",
                    default.display()
                ),
                Err(e) => return Err(e).context(default.display().to_string()),
            }
        }
        let mut out = Vec::new();
        for (name, t) in &text {
            out.extend(store::recipients(t, name)?);
        }
        if out.is_empty() {
            bail!(store::StoreError::NoRecipients);
        }
        Ok(out)
    }
}

/// `FILE.recipients`: who a secrets file is encrypted to, kept next to it.
fn recipients_file(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".recipients");
    PathBuf::from(name)
}

/// Runs the action; returns the exit code.
pub async fn run(action: &Action) -> Result<i32> {
    match action {
        Action::Encrypt { plaintext, out, to } => {
            let plain = if plaintext.as_os_str() == "-" {
                let mut b = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut b).context("stdin")?;
                b
            } else {
                std::fs::read(plaintext).with_context(|| plaintext.display().to_string())?
            };
            store::write(out, &plain, &to.load(out)?)?;
            eprintln!("wrote {}", out.display());
        }
        Action::Decrypt { file, with } => {
            let plain = store::decrypt(file, &with.path()?)?;
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(&plain)
                .and_then(|()| stdout.flush())
                .context("writing to standard output")?;
        }
        Action::Edit { file, with, to } => edit(file, with, to).await?,
    }
    Ok(0)
}

/// Decrypt, edit, re-encrypt. The plaintext lives in a 0600 file (in /dev/shm where there is one, so
/// not on disk) that is removed however the edit ends; SIGINT, SIGTERM and SIGHUP are held off while
/// the editor runs, so that they cannot end this process before it removes the file.
async fn edit(file: &Path, with: &Identity, to: &Recipients) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let recipients = to.load(file)?;
    let before = if file.exists() {
        store::decrypt(file, &with.path()?)?
    } else {
        Vec::new()
    };
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let mut tmp = tempfile::Builder::new()
        .prefix("apim-secrets-")
        .suffix(".yaml")
        .tempfile_in(&dir)
        .context("creating the private temporary file")?;
    tmp.write_all(&before)
        .and_then(|()| tmp.flush())
        .context("writing the private temporary file")?;
    let set = |name| {
        std::env::var(name)
            .ok()
            .filter(|v: &String| !v.trim().is_empty())
    };
    let editor = set("VISUAL")
        .or_else(|| set("EDITOR"))
        .unwrap_or_else(|| "vi".to_string());
    let held = [
        signal(SignalKind::interrupt())?,
        signal(SignalKind::terminate())?,
        signal(SignalKind::hangup())?,
    ];
    // The path goes as the script's $1, never into the command text.
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(tmp.path())
        .status()
        .await
        .with_context(|| format!("running the editor `{editor}`"))?;
    drop(held);
    if !status.success() {
        bail!(
            "the editor `{editor}` exited with {status}; {} is unchanged",
            file.display()
        );
    }
    let after = std::fs::read(tmp.path()).context("reading the edited file")?;
    tmp.close().context("removing the private temporary file")?;
    if after == before {
        eprintln!("no change; {} is unchanged", file.display());
        return Ok(());
    }
    store::write(file, &after, &recipients)
        .with_context(|| format!("{} is unchanged", file.display()))?;
    eprintln!("wrote {}", file.display());
    Ok(())
}
