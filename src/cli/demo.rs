//! `apim-provision demo`: plan -> apply -> plan of the main job, then a one-line drift check, so a
//! newcomer sees the whole cycle. Where this machine can run the project's lab, that is the
//! active-active WSO2 cluster (DB host, two API-M nodes, nginx) on fresh lab hosts with a stand-in
//! product pack; elsewhere (or with `--local`) it is the embedded demo inventory, whose hosts are local
//! directories. Either way the inventory's passwords are `{ secret: NAME }` references: the demo makes
//! up a random value for each, encrypts them into `secrets.age` next to the inventory for an age
//! identity it keeps in its own scratch directory, and runs with that identity, as an operator runs
//! with theirs.

use anyhow::{Context, Result};
use apim_provision::execute::Mode;
use apim_provision::model::Reference;
use apim_provision::report::human::Verbosity;
use apim_provision::report::mask::Masker;
use apim_provision::secrets::store;
use std::path::{Path, PathBuf};

const FILES: &[(&str, &str)] = &[
    (
        "inventory/demo.yaml",
        include_str!("../../inventory/demo.yaml"),
    ),
    (
        "playbooks/demo.yaml",
        include_str!("../../playbooks/demo.yaml"),
    ),
    (
        "modules/demo_node/tasks.yaml",
        include_str!("../../modules/demo_node/tasks.yaml"),
    ),
    (
        "modules/demo_node/defaults.yaml",
        include_str!("../../modules/demo_node/defaults.yaml"),
    ),
    (
        "modules/demo_node/handlers.yaml",
        include_str!("../../modules/demo_node/handlers.yaml"),
    ),
    (
        "modules/demo_node/templates/deployment.toml.j2",
        include_str!("../../modules/demo_node/templates/deployment.toml.j2"),
    ),
];

/// Runs the lab demo when the lab can run here and `local` is not asked for, else the local one. Each
/// keeps its project in its own subdirectory of `dir` (`lab`, `local`), so starting one afresh never
/// deletes the other's state (the lab cluster's CA and keys).
pub async fn run(
    dir: &Path,
    keep: bool,
    local: bool,
    verbosity: Verbosity,
    masker: &Masker,
) -> Result<i32> {
    if !local {
        let dir = dir.join("lab");
        if let Some(inventory) = prepare_lab(&dir)? {
            let identity = seed_secrets(&dir, &inventory)?;
            let code = cycle(&inventory, &identity, verbosity, masker).await?;
            let ca = dir.join("inventory/.apim-state/pki/ca.pem");
            println!(
                "Both nodes answer: curl --cacert {} https://10.231.0.12:9443/health\nThe lab stays up; tests/lab/lab down removes it.",
                ca.display()
            );
            return Ok(code);
        }
    }
    run_local(&dir.join("local"), keep, verbosity, masker).await
}

/// Brings the lab up and writes the active-active project and a stand-in pack under `dir`; `None` when
/// the lab cannot run on this machine (or this binary was not built from a checkout that has it).
fn prepare_lab(dir: &Path) -> Result<Option<PathBuf>> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab/prepare-demo");
    if !script.exists() {
        return Ok(None);
    }
    println!(
        "{} preparing the lab (4 hosts) and a stand-in WSO2 pack...",
        console::style("==>").cyan().bold()
    );
    let out = std::process::Command::new(&script)
        .arg(dir)
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    match out.status.code() {
        Some(0) => {
            let text = String::from_utf8_lossy(&out.stdout);
            let inventory = text.lines().last().unwrap_or_default().trim().to_string();
            Ok(Some(PathBuf::from(inventory)))
        }
        Some(3) => {
            println!("The lab cannot run on this machine; running the local demo instead.");
            Ok(None)
        }
        _ => anyhow::bail!("{} failed ({})", script.display(), out.status),
    }
}

/// Writes the embedded demo project under `dir` and runs plan, apply, plan on it.
async fn run_local(dir: &Path, keep: bool, verbosity: Verbosity, masker: &Masker) -> Result<i32> {
    if !keep && dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    for (rel, text) in FILES {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().expect("files have a parent"))?;
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    let inventory = dir.join("inventory/demo.yaml");
    let identity = seed_secrets(dir, &inventory)?;
    let last = cycle(&inventory, &identity, verbosity, masker).await?;
    println!(
        "The demo project is in {}; its hosts' files are under {}.",
        dir.display(),
        dir.join(".scratch").display()
    );
    Ok(last)
}

/// The demo's secrets: an age identity in `dir` (0600) and, next to `inventory`, `secrets.age`
/// encrypted to it with a random value for each `{ secret: NAME }` the inventory asks for. Kept as they
/// are when both exist (`--keep`), so hosts already applied keep their passwords. Returns the
/// identity's path.
fn seed_secrets(dir: &Path, inventory: &Path) -> Result<PathBuf> {
    use std::os::unix::fs::OpenOptionsExt;
    let identity = dir.join("age-identity.txt");
    let inv = apim_provision::model::Inventory::load(inventory)?;
    if identity.exists() && inv.secrets_file.exists() {
        return Ok(identity);
    }
    let (id_text, recipient) = store::new_identity();
    let _ = std::fs::remove_file(&identity);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&identity)
        .with_context(|| format!("writing {}", identity.display()))?;
    std::io::Write::write_all(&mut f, id_text.as_bytes())?;
    let mut plain = String::new();
    for r in &inv.references {
        if let Reference::Secret(name) = &r.reference {
            plain.push_str(&format!("{name}: {}\n", random_password()?));
        }
    }
    let recipients = store::recipients(&recipient, "the demo identity")?;
    store::write(&inv.secrets_file, plain.as_bytes(), &recipients)?;
    Ok(identity)
}

/// 24 random letters and digits: strong, and safe in every config format the modules write.
fn random_password() -> Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::new();
    while out.len() < 24 {
        let mut b = [0u8; 32];
        getrandom::getrandom(&mut b).context("random bytes")?;
        // Bytes past the last whole multiple of the alphabet would favour its first letters.
        out.extend(
            b.iter()
                .filter(|&&x| (x as usize) < 256 - 256 % ALPHABET.len())
                .map(|&x| ALPHABET[x as usize % ALPHABET.len()] as char),
        );
    }
    out.truncate(24);
    Ok(out)
}

/// Plan, apply, plan again, drift in one line; the exit code is the failed apply's, else the final
/// plan's when it has changes, else drift's (0 when converged and nothing drifted).
async fn cycle(
    inventory: &Path,
    identity: &Path,
    verbosity: Verbosity,
    masker: &Masker,
) -> Result<i32> {
    let defaults = apim_provision::execute::Control::default();
    let args = super::RunArgs {
        target: super::Target {
            inventory: inventory.to_path_buf(),
            playbook: None,
            limit: None,
            extra: Vec::new(),
            identity: Some(identity.to_path_buf()),
        },
        forks: None,
        json: false,
        command_timeout: defaults.command_timeout.as_secs(),
        probe_timeout: defaults.probe_timeout.as_secs(),
        persist: None,
    };
    let steps = [
        ("plan (fresh hosts: everything to create)", Mode::Plan),
        ("apply", Mode::Apply),
        ("plan again (converged: nothing to change)", Mode::Plan),
    ];
    let mut last = 0;
    for (title, mode) in steps {
        println!("\n{} {title}\n", console::style("==>").cyan().bold());
        last = super::run(&args, mode, verbosity, masker).await?;
        if mode == Mode::Apply && last != 0 {
            return Ok(last);
        }
    }
    let (drift, line) = super::drift::one_line(&args, masker).await?;
    println!("\n{line}");
    println!(
        "\nTry: apim-provision plan {} --identity {}",
        inventory.display(),
        identity.display()
    );
    Ok(if last == 0 { drift } else { last })
}
