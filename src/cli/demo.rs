//! `apim-provision demo`: the repository's demo inventory, playbook and module are compiled into the
//! binary and written to a scratch directory, then planned, applied and planned again, so a newcomer sees
//! the whole cycle on this machine alone.

use anyhow::{Context, Result};
use apim_provision::execute::Mode;
use apim_provision::report::human::Verbosity;
use std::path::Path;

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

/// Writes the demo project under `dir` and runs plan, apply, plan. Exit code 0 when the final plan is clean.
pub async fn run(dir: &Path, keep: bool, verbosity: Verbosity) -> Result<i32> {
    if !keep && dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    for (rel, text) in FILES {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().expect("files have a parent"))?;
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    let inventory = dir.join("inventory/demo.yaml");
    let args = super::RunArgs {
        target: super::Target {
            inventory: inventory.clone(),
            playbook: None,
            limit: None,
            extra: Vec::new(),
        },
        forks: None,
        json: false,
    };
    let steps = [
        ("plan (fresh hosts: everything to create)", Mode::Plan),
        ("apply", Mode::Apply),
        ("plan again (converged: nothing to change)", Mode::Plan),
    ];
    let mut last = 0;
    for (title, mode) in steps {
        println!("\n{} {title}\n", console::style("==>").cyan().bold());
        last = super::run(&args, mode, verbosity).await?;
        if mode == Mode::Apply && last != 0 {
            return Ok(last);
        }
    }
    println!(
        "\nThe demo project is in {}; its hosts' files are under {}.\nTry: apim-provision plan {}",
        dir.display(),
        dir.join(".scratch").display(),
        inventory.display()
    );
    Ok(last)
}
