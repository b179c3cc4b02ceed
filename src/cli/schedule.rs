//! `drift --install-timer` and `drift --remove-timer`: the drift check as a systemd timer on this
//! machine (the controller), written, enabled, updated and removed idempotently. The unit text is
//! `timer`'s; this module decides what to write and tells systemd.

use super::drift::DriftArgs;
use super::timer::{self, Every, Spec};
use anyhow::{anyhow, bail, Context, Result};
use apim_provision::drift::record;
use apim_provision::execute;
use apim_provision::model::location::clean;
use apim_provision::report::mask::Masker;
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the units go: the administrator's unit directory, which no package touches.
const UNIT_DIR: &str = "/etc/systemd/system";
/// Exists only while systemd is PID 1: the test of sd_booted(3).
const SYSTEMD_RUNNING: &str = "/run/systemd/system";

/// The flags of `drift` that schedule it instead of running it.
#[derive(Args, Clone)]
pub struct ScheduleArgs {
    /// Install (or update) a systemd timer on this machine that runs this drift check every
    /// --every, with the other flags given here (--prometheus, --junit, --limit, -e @FILE, …);
    /// a second install with the same flags changes nothing.
    #[arg(long, requires = "every", conflicts_with_all = ["fix", "remove_timer"])]
    install_timer: bool,
    /// How often the installed timer runs: a whole number and s, m, h or d (30s, 15m, 1h, 1d).
    #[arg(long, value_name = "INTERVAL", requires = "install_timer", value_parser = Every::parse)]
    every: Option<Every>,
    /// Stop, disable and delete the timer --install-timer made for INVENTORY.
    #[arg(long, conflicts_with_all = [
        "fix", "junit", "prometheus", "json", "playbook", "limit", "extra", "forks",
        "command_timeout", "probe_timeout", "persist",
    ])]
    remove_timer: bool,
}

impl ScheduleArgs {
    /// True when the command installs or removes a timer instead of checking drift.
    pub fn asked(&self) -> bool {
        self.install_timer || self.remove_timer
    }
}

/// Installs or removes the timer `d` asks for; returns the exit code.
pub fn run(d: &DriftArgs, masker: &Masker) -> Result<i32> {
    let inventory = absolute(&d.run.target.inventory)?;
    if d.schedule.install_timer {
        let every = d.schedule.every.context("--install-timer needs --every")?;
        install(d, inventory, every, masker)
    } else {
        remove(&inventory)
    }
}

/// `p` made absolute against the current directory and cleaned: the service runs elsewhere.
fn absolute(p: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(p).with_context(|| format!("making {} absolute", p.display()))?;
    Ok(clean(&abs))
}

/// A path as an argument of the unit's command line.
fn arg(p: &Path) -> Result<String> {
    let abs = absolute(p)?;
    abs.to_str().map(str::to_string).ok_or_else(|| {
        anyhow!(
            "{} is not UTF-8, which a unit file cannot hold",
            abs.display()
        )
    })
}

/// The `drift` arguments the service passes after the inventory: the flags of this command line that
/// shape the check and its reports, every path absolute. Nothing secret: unit files are readable by
/// every user, so an inline `-e KEY=VALUE` is refused (a file, `-e @FILE`, is passed by name). A report
/// whose directory is missing is refused too: every run would fail writing it.
fn scheduled_args(d: &DriftArgs) -> Result<Vec<String>> {
    let a = &d.run;
    let t = &a.target;
    let mut v: Vec<String> = Vec::new();
    if let Some(p) = &t.playbook {
        v.extend(["--playbook".into(), arg(p)?]);
    }
    if let Some(l) = &t.limit {
        v.extend(["--limit".into(), l.clone()]);
    }
    for e in &t.extra {
        let Some(file) = e.strip_prefix('@') else {
            let key = e.split_once('=').map_or(e.as_str(), |(k, _)| k);
            bail!(
                "-e {key}=…: a timer's unit files are readable by every user, so they take variables only \
                 from a file: put them in a YAML file and pass -e @FILE"
            );
        };
        v.extend(["-e".into(), format!("@{}", arg(Path::new(file))?)]);
    }
    // The identity's path, not its content: the unit's runs decrypt the secrets file as this one does.
    if let Some(id) = &t.identity {
        v.extend(["--identity".into(), arg(id)?]);
    }
    if let Some(f) = a.forks {
        v.extend(["--forks".into(), f.to_string()]);
    }
    let defaults = execute::Control::default();
    if a.command_timeout != defaults.command_timeout.as_secs() {
        v.extend(["--command-timeout".into(), a.command_timeout.to_string()]);
    }
    if a.probe_timeout != defaults.probe_timeout.as_secs() {
        v.extend(["--probe-timeout".into(), a.probe_timeout.to_string()]);
    }
    if let Some(d) = a.persist {
        v.extend(["--persist".into(), format!("{}s", d.as_secs())]);
    }
    if a.json {
        v.push("--json".into());
    }
    for (flag, file) in [("--junit", &d.junit), ("--prometheus", &d.prometheus)] {
        if let Some(f) = file {
            let abs = absolute(f)?;
            let dir = abs.parent().unwrap_or(Path::new("/"));
            if !dir.is_dir() {
                bail!(
                    "{flag} {}: directory {} does not exist, so every scheduled run would fail writing it",
                    abs.display(),
                    dir.display()
                );
            }
            v.extend([flag.into(), arg(&abs)?]);
        }
    }
    Ok(v)
}

/// True when systemd is this machine's init.
fn systemd_running() -> bool {
    Path::new(SYSTEMD_RUNNING).is_dir()
}

/// Runs `systemctl ARGS`, failing with what it said.
fn systemctl(args: &[&str]) -> Result<()> {
    let out = Command::new("systemctl")
        .args(args)
        .output()
        .with_context(|| format!("running systemctl {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "systemctl {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Whether `systemctl --quiet ARGS` (`is-enabled`, `is-active`, `is-failed`) says yes.
fn systemctl_says(args: &[&str]) -> Result<bool> {
    let status = Command::new("systemctl")
        .arg("--quiet")
        .args(args)
        .status()
        .with_context(|| format!("running systemctl {}", args.join(" ")))?;
    Ok(status.success())
}

/// What writing a unit file did.
#[derive(PartialEq)]
enum Wrote {
    New,
    Changed,
    Same,
}

/// Writes `text` to `path` (0644, atomically) unless the file already holds exactly that with that
/// mode, so that an install with the same flags touches nothing.
fn write_unit(path: &Path, text: &str) -> Result<Wrote> {
    use std::os::unix::fs::PermissionsExt;
    let before = match std::fs::read(path) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let wrote = match &before {
        None => Wrote::New,
        Some(b) => {
            let mode = std::fs::metadata(path)
                .with_context(|| format!("reading {}", path.display()))?
                .permissions()
                .mode();
            if b == text.as_bytes() && mode & 0o7777 == 0o644 {
                return Ok(Wrote::Same);
            }
            Wrote::Changed
        }
    };
    record::write_atomic(path, text.as_bytes(), 0o644)
        .with_context(|| format!("writing {}", path.display()))?;
    super::print_out(&format!("wrote {}", path.display()))?;
    Ok(wrote)
}

/// Installs the timer: refuses an inventory that does not load (the same load the check makes) and a
/// machine without systemd (offering the cron line instead) before anything is written, then writes
/// what differs, reloads systemd only then, and enables and starts the timer.
fn install(d: &DriftArgs, inventory: PathBuf, every: Every, masker: &Masker) -> Result<i32> {
    super::load(&d.run.target, masker)
        .context("the inventory does not load, so no timer was installed")?;
    let exe = std::env::current_exe().context("finding this program's path")?;
    if !exe.is_file() {
        bail!(
            "this program's file {} is gone (replaced while running?); run the new one",
            exe.display()
        );
    }
    let spec = Spec {
        exe,
        inventory,
        args: scheduled_args(d)?,
        home: std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from),
        every,
    };
    let units = spec.units()?;
    let name = &units.name;
    if !systemd_running() {
        let choose = match every.cron() {
            Some(_) => String::new(),
            None => format!(
                " (cron cannot run every {every} exactly: replace SCHEDULE with a schedule of your choice)"
            ),
        };
        bail!(
            "systemd is not running on this machine (no {SYSTEMD_RUNNING}), so no timer can be installed; \
             nothing was written. The same check from cron, e.g. as /etc/cron.d/{name}{choose}:\n{}",
            spec.cron_line()?
        );
    }
    let dir = Path::new(UNIT_DIR);
    let service = write_unit(&dir.join(format!("{name}.service")), &units.service)?;
    let timer = write_unit(&dir.join(format!("{name}.timer")), &units.timer)?;
    let unit = format!("{name}.timer");
    let soon = format!("first run in {}, then every {every}", timer::FIRST_RUN);
    if service == Wrote::Same && timer == Wrote::Same {
        if systemctl_says(&["is-enabled", &unit])? && systemctl_says(&["is-active", &unit])? {
            super::print_out(&format!(
                "unchanged {unit}: enabled and active, every {every}"
            ))?;
        } else {
            systemctl(&["enable", "--now", &unit])?;
            super::print_out(&format!("enabled {unit}: {soon}"))?;
        }
        return Ok(0);
    }
    systemctl(&["daemon-reload"])?;
    systemctl(&["enable", &unit])?;
    // A restart also starts a stopped timer; a running one starts over with the new settings.
    systemctl(&["restart", &unit])?;
    let verb = if service == Wrote::New && timer == Wrote::New {
        "installed"
    } else {
        "updated"
    };
    super::print_out(&format!("{verb} {unit}: {soon}"))?;
    Ok(0)
}

/// Removes the timer of `inventory`: stops and disables it, stops a run in progress (it ends as on
/// SIGTERM), deletes both files and reloads systemd. Nothing installed is no error. Needs no loadable
/// inventory: one deleted or broken since the install still has its timer removed.
fn remove(inventory: &Path) -> Result<i32> {
    let name = timer::unit_name(inventory);
    if !systemd_running() {
        bail!(
            "systemd is not running on this machine (no {SYSTEMD_RUNNING}), so no timer can be installed \
             here and there is none to remove; a cron entry for this check (/etc/cron.d/{name} if made \
             as suggested) is removed by deleting it"
        );
    }
    let dir = Path::new(UNIT_DIR);
    let (timer, service) = (format!("{name}.timer"), format!("{name}.service"));
    let (timer_file, service_file) = (dir.join(&timer), dir.join(&service));
    let exists = |p: &Path| std::fs::symlink_metadata(p).is_ok();
    let (has_timer, has_service) = (exists(&timer_file), exists(&service_file));
    if !has_timer && !has_service {
        super::print_out(&format!(
            "no drift timer installed for {} ({timer}; the name follows the inventory's path as \
             given, made absolute); nothing to remove",
            inventory.display()
        ))?;
        return Ok(0);
    }
    if has_timer {
        systemctl(&["disable", "--now", &timer])?;
        super::print_out(&format!("stopped and disabled {timer}"))?;
    }
    let failed = has_service && systemctl_says(&["is-failed", &service])?;
    if has_service {
        systemctl(&["stop", &service])?;
    }
    for f in [&service_file, &timer_file] {
        match std::fs::remove_file(f) {
            Ok(()) => super::print_out(&format!("removed {}", f.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", f.display())),
        }
    }
    systemctl(&["daemon-reload"])?;
    if failed {
        // A failed unit stays listed (not-found, failed) after its file is gone until this.
        systemctl(&["reset-failed", &service])?;
    }
    Ok(0)
}
