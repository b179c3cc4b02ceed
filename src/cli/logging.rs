//! Logs go to stderr through the secret mask; `RUST_LOG` wins over the -v/-q default.

use apim_provision::report::mask::Masker;
use std::io::Write;
use tracing_subscriber::EnvFilter;

/// Stderr behind the run's masker (shared with the run, which teaches it the secrets once known).
struct MaskedStderr(Masker);

impl Write for MaskedStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        std::io::stderr().write_all(self.0.mask(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Installs the subscriber: warnings by default, info with -v, debug with -vv, errors only with -q;
/// every line passes through `masker`. Colours only where `console` would colour stderr (a terminal,
/// and no `--no-color`).
pub fn init(verbose: u8, quiet: bool, masker: &Masker) {
    let masker = masker.clone();
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (_, 0) => "warn",
        (_, 1) => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(move || MaskedStderr(masker.clone()))
        .with_target(false)
        .with_ansi(console::colors_enabled_stderr())
        .try_init();
}
