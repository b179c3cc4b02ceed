//! `apim-provision`: the binary. All behaviour lives in the library and in `cli`.

mod cli;

use clap::Parser;

fn main() {
    std::process::exit(cli::Cli::parse().run());
}
