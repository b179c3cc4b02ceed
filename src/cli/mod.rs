//! The command line: argument parsing and the commands. This is the only place that uses `anyhow`; the
//! library below returns typed errors.

mod demo;
mod drift;
mod lint;
mod lock;
mod logging;
mod render;
mod schedule;
mod secrets;
mod signals;
mod timer;

use anyhow::{bail, Context, Result};
use apim_provision::drift::record;
use apim_provision::execute::{self, Mode, Sink};
use apim_provision::model::location::Lines;
use apim_provision::model::{error, Vars};
use apim_provision::plan::{prepare_with, Options, Prepared};
use apim_provision::report::human::{self, HumanSink, Verbosity};
use apim_provision::report::mask::Masker;
use apim_provision::report::{json, Summary};
use apim_provision::secrets::Resolver;
use apim_provision::transport::Persist;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Plan and apply WSO2 API Manager clusters over SSH, idempotently, through a dependency graph.
#[derive(Parser)]
#[command(name = "apim-provision", version, about, long_about = None)]
pub struct Cli {
    /// More output (-v: locations and timings, -vv: debug logs); RUST_LOG overrides the log filter.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Only the summary and failures.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// No colours, even on a terminal.
    #[arg(long, global = true)]
    no_color: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show what apply would change on every host (exit 0: nothing, 2: changes, 1: error); the lint's
    /// findings come first, as warnings.
    Plan(PlanArgs),
    /// Make the changes (exit 0: all succeeded, 1: a task failed).
    Apply(RunArgs),
    /// Check, changing nothing, whether hosts moved away from the inventory (exit 0: no drift, 2:
    /// drift, 1: a host unreachable or a check failed); or schedule that check as a systemd timer.
    Drift(drift::DriftArgs),
    /// Parse the inventory and playbook and build the graph; touches no host.
    Validate(Target),
    /// Say what makes the inventory unfit for production (exit 0: no error, 1: an error, or a warning
    /// with --strict); touches no host.
    Lint(lint::LintArgs),
    /// Print the task graph (Graphviz DOT or JSON); touches no host.
    Graph {
        #[command(flatten)]
        target: Target,
        /// Output format.
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
    },
    /// Write every file the copy/template tasks would write into DIR/<host>/<dest>, with DIR/index.json;
    /// touches no host.
    Render {
        #[command(flatten)]
        target: Target,
        /// Directory to write (new, empty, or an earlier render's, which is replaced).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// The age-encrypted secrets file that `{ secret: NAME }` references read.
    Secrets {
        #[command(subcommand)]
        action: secrets::Action,
    },
    /// Run plan -> apply -> plan of the main job: the active-active WSO2 cluster on the project's lab
    /// where this machine can run it, else the embedded local demo.
    Demo {
        /// Scratch directory for the demo project and its hosts' files.
        #[arg(long, default_value = "/tmp/apim-provision-demo")]
        dir: PathBuf,
        /// Keep what an earlier local demo left instead of starting fresh.
        #[arg(long)]
        keep: bool,
        /// The embedded local demo (hosts are directories), even where the lab could run.
        #[arg(long)]
        local: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum GraphFormat {
    Dot,
    Json,
}

/// What to run on: shared by every command that reads an inventory.
#[derive(Args, Clone)]
struct Target {
    /// Inventory file (YAML).
    inventory: PathBuf,
    /// Playbook to run instead of the one the inventory names.
    #[arg(long)]
    playbook: Option<PathBuf>,
    /// Only these hosts: a host or group pattern (`web`, `a,b`, `all:!db`, `wkr*`).
    #[arg(short, long)]
    limit: Option<String>,
    /// Extra variables, highest precedence: `key=value` (value read as YAML) or `@file.yaml`.
    #[arg(short = 'e', long = "extra-vars")]
    extra: Vec<String>,
    /// The identity that decrypts the inventory's secrets file: an age identity file or an ssh
    /// private key (default: ~/.ssh/id_ed25519).
    #[arg(long, value_name = "FILE", env = "APIM_AGE_IDENTITY")]
    identity: Option<PathBuf>,
}

/// `plan`'s arguments: a run's, and whether the lint's findings fail it.
#[derive(Args, Clone)]
pub(crate) struct PlanArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Exit 1 without planning when the lint finds an error or a warning.
    #[arg(long)]
    strict: bool,
}

#[derive(Args, Clone)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    target: Target,
    /// Hosts worked on at once, each with its connection open (default: 64).
    #[arg(long)]
    forks: Option<usize>,
    /// One JSON object per event on stdout, then a summary object.
    #[arg(long)]
    json: bool,
    /// Seconds a `command` or `shell` task may run when it sets no `timeout:` of its own.
    #[arg(long, default_value_t = execute::Control::default().command_timeout.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    command_timeout: u64,
    /// Seconds a host's probes may take.
    #[arg(long, default_value_t = execute::Control::default().probe_timeout.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    probe_timeout: u64,
    /// Keep each SSH host's master up for DURATION once idle after the run (ControlPersist, e.g. 60s,
    /// 10m), in a private directory of yours, and attach to one an earlier run kept: later runs skip
    /// the handshake.
    #[arg(long, value_name = "DURATION", value_parser = persist_duration)]
    persist: Option<std::time::Duration>,
}

/// Parses `--persist`: written as `--every` is (`30s`, `10m`, `1h`, `1d`).
fn persist_duration(s: &str) -> std::result::Result<std::time::Duration, String> {
    timer::Every::parse(s).map(timer::Every::duration).map_err(|_| {
        format!("`{s}` is not a duration: expected a whole number above 0 and s, m, h or d (60s, 10m, 1h)")
    })
}

impl RunArgs {
    /// Hosts connected and worked on at once: `--forks`, or a cap that keeps a run of hundreds of
    /// hosts from holding hundreds of ssh processes and sockets.
    fn forks(&self) -> usize {
        self.forks.unwrap_or(execute::DEFAULT_FORKS).max(1)
    }

    /// The walk's controls as the command line sets them (the timeouts, the kept masters); what a
    /// command adds (`may_change`, `explain_causes`) it sets over these. Fails when `--persist` has no
    /// private directory to keep masters in.
    fn control(&self, cancel: execute::Cancel) -> Result<execute::Control> {
        let persist = self
            .persist
            .map(Persist::new)
            .transpose()
            .context("--persist")?;
        Ok(execute::Control {
            cancel,
            command_timeout: Duration::from_secs(self.command_timeout),
            probe_timeout: Duration::from_secs(self.probe_timeout),
            persist,
            ..execute::Control::default()
        })
    }
}

impl Cli {
    /// Runs the command and returns the process exit code.
    pub fn run(self) -> i32 {
        if self.no_color {
            console::set_colors_enabled(false);
            console::set_colors_enabled_stderr(false);
        }
        // One masker for the whole invocation: the log writer, the reports and the error printer share it.
        let masker = Masker::new();
        logging::init(self.verbose, self.quiet, &masker);
        let verbosity = match (self.quiet, self.verbose) {
            (true, _) => Verbosity::Quiet,
            (_, 0) => Verbosity::Normal,
            _ => Verbosity::Verbose,
        };
        let json = match &self.command {
            Command::Plan(a) => a.run.json,
            Command::Apply(a) => a.json,
            // --json of --install-timer is for the scheduled runs; the install reports as text.
            Command::Drift(d) => d.run.json && !d.schedule.asked(),
            _ => false,
        };
        let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
        let result = rt.block_on(async {
            match self.command {
                Command::Plan(a) => plan(&a, verbosity, &masker).await,
                Command::Apply(a) => run(&a, Mode::Apply, verbosity, &masker).await,
                Command::Drift(d) => drift::run(&d, verbosity, &masker).await,
                Command::Validate(t) => validate(&t, &masker),
                Command::Lint(a) => lint::run(&a, &masker),
                Command::Graph { target, format } => graph(&target, format, &masker),
                Command::Render { target, out } => render_to(&target, &out, &masker),
                Command::Secrets { action } => secrets::run(&action).await,
                Command::Demo { dir, keep, local } => {
                    demo::run(&dir, keep, local, verbosity, &masker).await
                }
            }
        });
        match result {
            Ok(code) => code,
            Err(e) => {
                let msg = format!("{e:#}");
                if json {
                    json::print_error(&msg, &masker);
                } else {
                    eprintln!(
                        "{} {}",
                        console::style("error:").red().bold(),
                        masker.mask(&msg)
                    );
                }
                1
            }
        }
    }
}

/// `-e` values: `key=value` (the value read as YAML) or `@file.yaml`, whose file is checked like any
/// other input (regular file, no duplicate keys, bounded nesting). A key must be a variable name, so that
/// `-e =x` or `-e 'a b=1'` is refused instead of defining a variable no template can read.
fn extra_vars(list: &[String]) -> Result<Vars> {
    let mut out = Vars::new();
    for item in list {
        if let Some(file) = item.strip_prefix('@') {
            let path = std::path::Path::new(file);
            let text = error::read(path).context("-e @file")?;
            let v: Option<Vars> = error::parse_yaml(path, &text).context("-e @file")?;
            Lines::index(path, &text).context("-e @file")?;
            for (k, value) in v.unwrap_or_default() {
                if !is_var_name(&k) {
                    bail!("-e {item}: `{k}` is not a variable name (letters, digits and '_', not starting with a digit)");
                }
                out.insert(k, value);
            }
        } else if let Some((k, v)) = item.split_once('=') {
            if !is_var_name(k) {
                bail!("-e `{item}`: `{k}` is not a variable name (letters, digits and '_', not starting with a digit)");
            }
            let value: serde_json::Value = serde_yaml::from_str(v).unwrap_or_else(|_| v.into());
            out.insert(k.to_string(), value);
        } else {
            bail!("-e `{item}`: expected key=value or @file.yaml");
        }
    }
    Ok(out)
}

fn is_var_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(x) if x.is_ascii_alphabetic() || x == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

fn load(t: &Target, masker: &Masker) -> Result<Prepared> {
    let opts = Options {
        playbook: t.playbook.clone(),
        limit: t.limit.clone(),
        extra: extra_vars(&t.extra)?,
        secrets: Arc::new(Resolver::new(t.identity.as_deref())),
    };
    Ok(prepare_with(&t.inventory, &opts, masker)?)
}

/// Lints, then plans; returns the exit code.
async fn plan(a: &PlanArgs, verbosity: Verbosity, masker: &Masker) -> Result<i32> {
    let p = Arc::new(load(&a.run.target, masker)?);
    if lint::before_plan(&p, a.strict, masker)? {
        bail!("the lint found what --strict refuses (see above); nothing was planned");
    }
    walk_prepared(p, &a.run, Mode::Plan, verbosity, masker).await
}

/// Plans or applies; returns the exit code.
async fn run(a: &RunArgs, mode: Mode, verbosity: Verbosity, masker: &Masker) -> Result<i32> {
    let p = Arc::new(load(&a.target, masker)?);
    walk_prepared(p, a, mode, verbosity, masker).await
}

/// Plans or applies what is loaded; returns the exit code.
async fn walk_prepared(
    p: Arc<Prepared>,
    a: &RunArgs,
    mode: Mode,
    verbosity: Verbosity,
    masker: &Masker,
) -> Result<i32> {
    if !a.json {
        for w in &p.graph.warnings {
            eprintln!("{} {w}", console::style("warning:").yellow());
        }
    }
    let _lock = match mode {
        Mode::Apply => Some(lock::RunLock::acquire(&a.target.inventory)?),
        Mode::Plan => None,
    };
    let (signals, cancel) = signals::Signals::watch().context("watching for SIGINT/SIGTERM")?;
    let summary = walk(&p, a, mode, verbosity, masker, cancel, None).await?;
    Ok(signals
        .exit_code()
        .unwrap_or_else(|| summary.exit_code(mode)))
}

/// Walks the graph of `p` in `mode`, reporting as `a` asks (human or JSON lines) with the final plan
/// or recap; an apply then records each host on which everything succeeded (see
/// `apim_provision::drift::record`). `may_change` restricts what an apply changes (`drift --fix`).
async fn walk(
    p: &Arc<Prepared>,
    a: &RunArgs,
    mode: Mode,
    verbosity: Verbosity,
    masker: &Masker,
    cancel: execute::Cancel,
    may_change: Option<Arc<Vec<bool>>>,
) -> Result<Summary> {
    let started = Instant::now();
    let forks = a.forks();
    let total = p.graph.graph.node_count();
    let hosts: Vec<String> = p.graph.hosts.keys().cloned().collect();
    let (sink, human): (Arc<dyn Sink>, Option<Arc<HumanSink>>) = if a.json {
        (Arc::new(json::JsonSink::new(mode, masker.clone())), None)
    } else {
        let h = Arc::new(HumanSink::new(mode, verbosity, total, masker.clone()));
        (h.clone(), Some(h))
    };
    let ctl = execute::Control {
        may_change,
        ..a.control(cancel)?
    };
    let run = execute::run_with(p.clone(), mode, forks, sink, ctl).await;
    let reports = run.reports;
    let summary = Summary::of(hosts, &reports).with_costs(&run.hosts);
    let elapsed = started.elapsed();
    if let Some(h) = human {
        h.finish();
        match mode {
            Mode::Plan => human::print_plan(&reports, &summary, verbosity, masker),
            Mode::Apply => human::print_recap(&reports, &summary, elapsed, verbosity, masker),
        }
        .context("writing to standard output")?;
    } else {
        json::print_summary(mode, &summary, elapsed, &p.graph.warnings, masker);
    }
    if mode == Mode::Apply {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        record::write_applied(p, &reports, now).context("writing the last-apply record")?;
    }
    Ok(summary)
}

/// Writes `text` and a newline to stdout. A closed reader (`graph | head -1`) is an error to report,
/// not a panic as `println!` makes it.
fn print_out(text: &str) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")
        .and_then(|()| out.flush())
        .context("writing to standard output")
}

fn validate(t: &Target, masker: &Masker) -> Result<i32> {
    let p = load(t, masker)?;
    print_out(&format!(
        "Valid: {} hosts, {} plays, {} tasks, {} graph nodes ({}).",
        p.graph.hosts.len(),
        p.pb.plays.len(),
        p.pb.tasks.len(),
        p.graph.graph.node_count(),
        p.pb.path.display()
    ))?;
    for w in &p.graph.warnings {
        eprintln!("warning: {w}");
    }
    Ok(0)
}

fn graph(t: &Target, format: GraphFormat, masker: &Masker) -> Result<i32> {
    let p = load(t, masker)?;
    let text = match format {
        GraphFormat::Dot => p.graph.to_dot(&p.pb),
        GraphFormat::Json => serde_json::to_string_pretty(&p.graph.to_json(&p.pb))?,
    };
    print_out(&masker.mask(&text))?;
    Ok(0)
}

fn render_to(t: &Target, out: &std::path::Path, masker: &Masker) -> Result<i32> {
    let p = load(t, masker)?;
    for w in &p.graph.warnings {
        eprintln!("warning: {w}");
    }
    let summary = render::render(&p, out)?;
    print_out(&masker.mask(&summary))?;
    Ok(0)
}
