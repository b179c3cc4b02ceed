//! What the user wrote: inventory, playbooks, modules and variables, loaded and checked with file:line
//! errors before anything runs.

pub mod error;
pub mod inventory;
pub mod location;
pub mod playbook;
pub mod reference;
pub mod serial;
pub mod template;
pub mod vars;

pub use error::ModelError;
pub use inventory::{Connection, Host, Inventory};
pub use location::Location;
pub use playbook::{Playbook, TaskSpec};
pub use reference::{Level, Reference, ReferenceError, VarReference};
pub use serial::{Serial, SerialError, SerialSpec};

/// A set of variables; JSON values so they serialize to reports and templates without conversion.
pub type Vars = serde_json::Map<String, serde_json::Value>;
