//! The text of the systemd service and timer that run `drift` on a schedule, their name, and the cron
//! line offered where systemd does not run: pure functions of the command line, so that naming, quoting
//! and schedules are tested without a systemd (`schedule` writes and enables them).

use anyhow::{bail, Result};
use sha2::{Digest, Sha256};
use std::fmt;
use std::path::{Path, PathBuf};

/// Delay from enabling the timer to its first run: a report file exists soon after an install, yet
/// `systemctl enable --now` has returned first.
pub const FIRST_RUN: &str = "10s";

/// A unit of `--every`, as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unit {
    Second,
    Minute,
    Hour,
    Day,
}

impl Unit {
    fn secs(self) -> u64 {
        match self {
            Unit::Second => 1,
            Unit::Minute => 60,
            Unit::Hour => 3600,
            Unit::Day => 86_400,
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Unit::Second => "s",
            Unit::Minute => "m",
            Unit::Hour => "h",
            Unit::Day => "d",
        }
    }

    /// systemd's spelling: its `m` is minutes too, but `min` cannot be misread as months or metres.
    fn systemd(self) -> &'static str {
        match self {
            Unit::Minute => "min",
            u => u.suffix(),
        }
    }
}

/// How often the timer runs (`--every`), kept as the user wrote it so messages show it back that way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Every {
    count: u64,
    unit: Unit,
}

impl Every {
    /// Parses `--every`: a positive whole number and one of `s`, `m`, `h`, `d` (`30s`, `15m`, `1h`,
    /// `1d`). Zero, a bare number, another unit or anything else is refused saying what is accepted
    /// (clap calls it, so a bad value stops the command before anything is written).
    pub fn parse(s: &str) -> std::result::Result<Every, String> {
        const FORMS: &str = "a whole number and a unit, s, m, h or d: 30s, 15m, 1h, 1d";
        let digits = s.len() - s.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let (n, suffix) = s.split_at(digits);
        let unit = match suffix {
            "s" => Unit::Second,
            "m" => Unit::Minute,
            "h" => Unit::Hour,
            "d" => Unit::Day,
            _ => return Err(format!("`{s}` is not an interval: expected {FORMS}")),
        };
        let count: u64 = n
            .parse()
            .map_err(|_| format!("`{s}` is not an interval: expected {FORMS}"))?;
        if count == 0 {
            return Err(format!("`{s}` would never run: expected {FORMS}, above 0"));
        }
        // A year bounds every product below u64 and is far beyond any useful drift schedule.
        if count.saturating_mul(unit.secs()) > 366 * 86_400 {
            return Err(format!("`{s}` is longer than a year"));
        }
        Ok(Every { count, unit })
    }

    fn secs(self) -> u64 {
        self.count * self.unit.secs()
    }

    /// The interval as a duration, for `--persist`, which is written the same way.
    pub fn duration(self) -> std::time::Duration {
        std::time::Duration::from_secs(self.secs())
    }

    fn systemd(self) -> String {
        format!("{}{}", self.count, self.unit.systemd())
    }

    /// The cron schedule that runs as often, where cron can say it: whole minutes that divide an
    /// hour, whole hours that divide a day, or one day. `None` otherwise (cron restarts `*/45` every
    /// hour, so it would not be every 45 minutes).
    pub fn cron(self) -> Option<String> {
        let secs = self.secs();
        if !secs.is_multiple_of(60) {
            return None;
        }
        let minutes = secs / 60;
        match minutes {
            1 => Some("* * * * *".into()),
            m if m < 60 => 60u64.is_multiple_of(m).then(|| format!("*/{m} * * * *")),
            60 => Some("0 * * * *".into()),
            m if m.is_multiple_of(60) && m < 1440 => {
                let h = m / 60;
                24u64.is_multiple_of(h).then(|| format!("0 */{h} * * *"))
            }
            1440 => Some("0 0 * * *".into()),
            _ => None,
        }
    }
}

impl fmt::Display for Every {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.count, self.unit.suffix())
    }
}

/// What the scheduled run is: the binary, the inventory and the rest of its `drift` command line.
pub struct Spec {
    /// Absolute path of the apim-provision binary that installs the timer (the one it will run).
    pub exe: PathBuf,
    /// Absolute, cleaned path of the inventory: it names the units and its directory is the run's.
    pub inventory: PathBuf,
    /// `drift` arguments after the inventory, paths already absolute.
    pub args: Vec<String>,
    /// HOME of the installer, so the run reads the same `~/.ssh/config` and keys.
    pub home: Option<PathBuf>,
    /// How often it runs.
    pub every: Every,
}

/// The two unit files of one inventory's timer.
#[derive(Debug)]
pub struct Units {
    /// The unit name without its suffix.
    pub name: String,
    /// `<name>.service`.
    pub service: String,
    /// `<name>.timer`.
    pub timer: String,
}

/// The units' name for `inventory` (absolute and cleaned): readable from the file's stem, unique by
/// 8 hex digits of the sha256 of the path, so two inventories never share a timer and the same one
/// always finds its own (to update or remove it) whatever the other flags.
pub fn unit_name(inventory: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let stem = inventory
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let readable: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    let hash = Sha256::digest(inventory.as_os_str().as_bytes());
    let hex: String = hash[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("apim-provision-drift-{readable}-{hex}")
}

/// A path as unit-file text: UTF-8 without control characters (a unit file is UTF-8 lines).
fn text(what: &str, p: &Path) -> Result<String> {
    match p.to_str() {
        Some(s) => plain(what, s).map(str::to_string),
        None => bail!(
            "{what} {} is not UTF-8, which a unit file cannot hold",
            p.display()
        ),
    }
}

/// `s` when a unit file can hold it on one line.
fn plain<'a>(what: &str, s: &'a str) -> Result<&'a str> {
    if s.chars().any(char::is_control) {
        bail!("{what} {s:?} holds a control character, which a unit file cannot hold");
    }
    Ok(s)
}

/// `%` starts a specifier in most unit settings; `%%` is a literal one.
fn specifiers(s: &str) -> String {
    s.replace('%', "%%")
}

/// One word of `ExecStart=`: bare when it holds only characters systemd reads literally, else in
/// double quotes with `\` and `"` escaped (systemd reads C escapes there). Either way `%` (specifiers)
/// and `$` (environment variables) are doubled.
fn exec_word(s: &str) -> String {
    let bare = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._,:+=@-".contains(c));
    if bare {
        return s.into();
    }
    let escaped = s
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('%', "%%")
        .replace('$', "$$");
    format!("\"{escaped}\"")
}

/// The value of a setting systemd unquotes (`Environment=`): quoted when it holds a space, quote or
/// backslash. No `$` expansion happens there.
fn setting_value(s: &str) -> String {
    let s = specifiers(s);
    if s.contains([' ', '\t', '"', '\'', '\\']) {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        s
    }
}

impl Spec {
    /// The command line the service runs, word by word.
    fn words(&self) -> Result<Vec<String>> {
        let mut w = vec![
            text("the binary", &self.exe)?,
            "drift".into(),
            text("the inventory", &self.inventory)?,
            "--no-color".into(),
        ];
        for a in &self.args {
            w.push(plain("the argument", a)?.to_string());
        }
        Ok(w)
    }

    /// The cron entry (for `/etc/cron.d`, as root) equivalent to the timer, for where systemd does not
    /// run; its schedule is `SCHEDULE` when cron cannot say `--every` (see [`Every::cron`]).
    pub fn cron_line(&self) -> Result<String> {
        let words: Vec<String> = self
            .words()?
            .iter()
            .map(|w| shell_escape::unix::escape(w.into()).into_owned())
            .collect();
        // cron turns an unescaped `%` of the command into a newline.
        let command = words.join(" ").replace('%', "\\%");
        let schedule = self.every.cron().unwrap_or_else(|| "SCHEDULE".into());
        Ok(format!("{schedule} root {command}"))
    }

    /// The unit files: a oneshot service running the check (drift found, exit 2, is a finding the
    /// reports carry, not a failure of the unit; an error, exit 1, is) and the timer starting it
    /// [`FIRST_RUN`] after it is enabled, then `every` after each run started.
    pub fn units(&self) -> Result<Units> {
        let name = unit_name(&self.inventory);
        let inv = text("the inventory", &self.inventory)?;
        let dir = self.inventory.parent().unwrap_or(Path::new("/"));
        let dir = text("the inventory's directory", dir)?;
        if dir.ends_with(char::is_whitespace) {
            bail!("the inventory's directory {dir:?} ends in white space, which a unit file drops");
        }
        let exec: Vec<String> = self.words()?.iter().map(|w| exec_word(w)).collect();
        let header = format!(
            "# Written by `apim-provision drift --install-timer`; `apim-provision drift --remove-timer {}` removes it.\n",
            shell_escape::unix::escape(inv.as_str().into())
        );
        let home = match &self.home {
            Some(h) => format!(
                "Environment={}\n",
                setting_value(&format!("HOME={}", text("HOME", h)?))
            ),
            None => String::new(),
        };
        let service = format!(
            "{header}[Unit]\n\
             Description=apim-provision drift check of {desc}\n\
             Wants=network-online.target\n\
             After=network-online.target\n\
             \n\
             [Service]\n\
             Type=oneshot\n\
             WorkingDirectory={wd}\n\
             {home}\
             ExecStart={exec}\n\
             # Exit 2 is drift found: a finding, in the report files and the journal, not a failure of the\n\
             # unit. Exit 1 (a host unreachable, a check that failed) is one.\n\
             SuccessExitStatus=2\n",
            desc = specifiers(&inv),
            wd = specifiers(&dir),
            exec = exec.join(" "),
        );
        let timer = format!(
            "{header}[Unit]\n\
             Description=apim-provision drift check of {desc}, every {every}\n\
             \n\
             [Timer]\n\
             # The first run soon after the timer starts (install, boot), then every {every} after the last\n\
             # run started. A run still going when the next is due is not started twice.\n\
             OnActiveSec={FIRST_RUN}\n\
             OnUnitActiveSec={span}\n\
             # Run when due, not up to a minute later (the default), so the first run is {FIRST_RUN} after.\n\
             AccuracySec=1s\n\
             \n\
             [Install]\n\
             WantedBy=timers.target\n",
            desc = specifiers(&inv),
            every = self.every,
            span = self.every.systemd(),
        );
        Ok(Units {
            name,
            service,
            timer,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(inventory: &str, args: &[&str], every: &str) -> Spec {
        Spec {
            exe: "/usr/local/bin/apim-provision".into(),
            inventory: inventory.into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            home: Some("/root".into()),
            every: Every::parse(every).unwrap(),
        }
    }

    #[test]
    fn every_takes_a_positive_count_and_one_unit_and_nothing_else() {
        for (s, secs, shown) in [
            ("30s", 30, "30s"),
            ("15m", 900, "15m"),
            ("1h", 3600, "1h"),
            ("1d", 86_400, "1d"),
            ("007m", 420, "7m"),
        ] {
            let e = Every::parse(s).unwrap();
            assert_eq!((e.secs(), e.to_string()), (secs, shown.to_string()), "{s}");
        }
        assert_eq!(Every::parse("15m").unwrap().systemd(), "15min");
        for bad in [
            "",
            "0",
            "0m",
            "00s",
            "15",
            "m",
            "15 m",
            " 15m",
            "15m ",
            "+15m",
            "-1m",
            "1.5h",
            "1h30m",
            "15min",
            "1w",
            "15M",
            "abc",
            "366d1",
            "99999999999999999999s",
        ] {
            assert!(Every::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(Every::parse("0m").unwrap_err().contains("never run"));
        assert!(Every::parse("400d")
            .unwrap_err()
            .contains("longer than a year"));
        assert!(Every::parse("x").unwrap_err().contains("30s, 15m, 1h, 1d"));
    }

    #[test]
    fn cron_says_the_schedule_only_where_it_can_run_as_often() {
        let cron = |s: &str| Every::parse(s).unwrap().cron();
        assert_eq!(cron("15m").as_deref(), Some("*/15 * * * *"));
        assert_eq!(cron("1m").as_deref(), Some("* * * * *"));
        assert_eq!(cron("60s").as_deref(), Some("* * * * *"));
        assert_eq!(cron("120s").as_deref(), Some("*/2 * * * *"));
        assert_eq!(cron("60m").as_deref(), Some("0 * * * *"));
        assert_eq!(cron("1h").as_deref(), Some("0 * * * *"));
        assert_eq!(cron("6h").as_deref(), Some("0 */6 * * *"));
        assert_eq!(cron("120m").as_deref(), Some("0 */2 * * *"));
        assert_eq!(cron("24h").as_deref(), Some("0 0 * * *"));
        assert_eq!(cron("1d").as_deref(), Some("0 0 * * *"));
        for none in ["30s", "90s", "45m", "7m", "90m", "5h", "2d"] {
            assert_eq!(cron(none), None, "{none}");
        }
    }

    #[test]
    fn the_cron_line_matches_the_readme_and_quotes_for_the_shell() {
        let s = spec(
            "/srv/apim/inventory.yaml",
            &["--prometheus", "/var/lib/node_exporter/textfile/apim.prom"],
            "15m",
        );
        assert_eq!(
            s.cron_line().unwrap(),
            "*/15 * * * * root /usr/local/bin/apim-provision drift /srv/apim/inventory.yaml --no-color --prometheus /var/lib/node_exporter/textfile/apim.prom"
        );
        let s = spec("/srv/my apim/inv.yaml", &["--limit", "web%1"], "45m");
        assert_eq!(
            s.cron_line().unwrap(),
            "SCHEDULE root /usr/local/bin/apim-provision drift '/srv/my apim/inv.yaml' --no-color --limit 'web\\%1'"
        );
    }

    #[test]
    fn the_name_is_the_readable_stem_and_a_hash_of_the_whole_path() {
        let a = unit_name(Path::new("/srv/a/inventory.yaml"));
        let b = unit_name(Path::new("/srv/b/inventory.yaml"));
        assert!(a.starts_with("apim-provision-drift-inventory-"), "{a}");
        assert_eq!(a.len(), "apim-provision-drift-inventory-".len() + 8, "{a}");
        assert_ne!(a, b);
        assert_eq!(a, unit_name(Path::new("/srv/a/inventory.yaml")));
        let odd = unit_name(Path::new("/srv/my prod.inv (eu)ä.yaml"));
        assert!(
            odd.starts_with("apim-provision-drift-my-prod-inv--eu--"),
            "{odd}"
        );
        assert!(
            odd.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{odd}"
        );
        let long = unit_name(Path::new(&format!("/{}.yaml", "x".repeat(300))));
        assert!(long.len() < 100, "{long}");
    }

    #[test]
    fn units_for_a_path_with_spaces_quote_exec_start_and_escape_specifiers() {
        let mut s = spec(
            "/srv/my apim/prod 100%.yaml",
            &[
                "--prometheus",
                "/var/lib/node exporter/apim.prom",
                "--limit",
                "web$HOME\"x\\",
            ],
            "15m",
        );
        s.home = Some("/home/ops user".into());
        let u = s.units().unwrap();
        assert_eq!(u.name, unit_name(Path::new("/srv/my apim/prod 100%.yaml")));
        let line = |text: &str, key: &str| -> String {
            text.lines()
                .find_map(|l| l.strip_prefix(key))
                .unwrap_or_else(|| panic!("no {key} in:\n{text}"))
                .to_string()
        };
        assert_eq!(
            line(&u.service, "ExecStart="),
            r#"/usr/local/bin/apim-provision drift "/srv/my apim/prod 100%%.yaml" --no-color --prometheus "/var/lib/node exporter/apim.prom" --limit "web$$HOME\"x\\""#
        );
        assert_eq!(line(&u.service, "WorkingDirectory="), "/srv/my apim");
        assert_eq!(line(&u.service, "Environment="), r#""HOME=/home/ops user""#);
        assert_eq!(line(&u.service, "Type="), "oneshot");
        assert_eq!(line(&u.service, "SuccessExitStatus="), "2");
        assert!(!u.service.contains("[Install]"), "{}", u.service);
        assert_eq!(line(&u.timer, "OnActiveSec="), "10s");
        assert_eq!(line(&u.timer, "OnUnitActiveSec="), "15min");
        assert_eq!(line(&u.timer, "AccuracySec="), "1s");
        assert_eq!(line(&u.timer, "WantedBy="), "timers.target");
        assert!(
            line(&u.timer, "Description=").ends_with("prod 100%%.yaml, every 15m"),
            "{}",
            u.timer
        );
        // The unit text is a function of its inputs alone: an install can compare it with the file.
        assert_eq!(s.units().unwrap().service, u.service);
    }

    #[test]
    fn a_plain_path_stays_bare_and_what_a_unit_cannot_hold_is_refused() {
        let s = spec("/srv/apim/inventory.yaml", &["--json"], "1h");
        let u = s.units().unwrap();
        assert!(
            u.service.contains(
                "\nExecStart=/usr/local/bin/apim-provision drift /srv/apim/inventory.yaml --no-color --json\n"
            ),
            "{}",
            u.service
        );
        assert!(u.service.contains("\nEnvironment=HOME=/root\n"));
        let mut no_home = spec("/srv/apim/inventory.yaml", &[], "1h");
        no_home.home = None;
        assert!(!no_home.units().unwrap().service.contains("Environment="));

        let err = spec("/srv/a\nb/inventory.yaml", &[], "1h")
            .units()
            .unwrap_err();
        assert!(err.to_string().contains("control character"), "{err}");
        let err = spec("/srv/a/inventory.yaml", &["--limit", "a\tb"], "1h")
            .units()
            .unwrap_err();
        assert!(err.to_string().contains("control character"), "{err}");
        let err = spec("/srv/a /inventory.yaml", &[], "1h")
            .units()
            .unwrap_err();
        assert!(err.to_string().contains("white space"), "{err}");
        use std::os::unix::ffi::OsStrExt;
        let mut s = spec("/x", &[], "1h");
        s.inventory = PathBuf::from(std::ffi::OsStr::from_bytes(b"/srv/\xff.yaml"));
        assert!(s.units().unwrap_err().to_string().contains("not UTF-8"));
    }

    /// systemd's own parser reads the units without a complaint, quoting and all (where this machine
    /// has systemd-analyze; it needs no running systemd).
    #[test]
    fn systemd_analyze_verify_accepts_the_units() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("my apim");
        std::fs::create_dir(&dir).unwrap();
        let mut s = spec("/x", &[], "15m");
        s.exe = std::env::current_exe().unwrap();
        s.inventory = dir.join("prod 100%.yaml");
        s.args = [
            "--prometheus",
            "/var/lib/a b.prom",
            "--limit",
            "web$HOME\"x\\",
        ]
        .map(String::from)
        .to_vec();
        s.home = Some("/home/ops user".into());
        let u = s.units().unwrap();
        let service = dir.join(format!("{}.service", u.name));
        let timer = dir.join(format!("{}.timer", u.name));
        std::fs::write(&service, &u.service).unwrap();
        std::fs::write(&timer, &u.timer).unwrap();
        let out = match std::process::Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .args([&service, &timer])
            .output()
        {
            Ok(out) => out,
            Err(e) => {
                eprintln!("SKIPPED: no systemd-analyze here ({e})");
                return;
            }
        };
        let err = String::from_utf8_lossy(&out.stderr);
        let ours: Vec<&str> = err.lines().filter(|l| l.contains(&u.name)).collect();
        assert!(
            out.status.success() && ours.is_empty(),
            "{}\n{}\n{}\n{err}",
            out.status,
            u.service,
            u.timer
        );
    }
}
