//! apim-provision: plan and apply idempotent task graphs on hosts over SSH. The layers, from the outside
//! in: `model` (inventory, playbook, vars) → `secrets` (resolving the inventory's secret references) → `plan` (graph, diff) → `execute` (scheduler) → `transport`
//! (local, ssh) → `resources` (one file per type); `report` and `drift` read the run's results. The engine knows nothing of WSO2: that lives in the
//! `modules/` and `playbooks/` YAML.

#![warn(missing_docs)]

pub mod drift;
pub mod execute;
pub mod lint;
pub mod model;
pub mod plan;
pub mod report;
pub mod resources;
pub mod secrets;
pub mod transport;
