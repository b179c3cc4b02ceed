//! Planning: from inventory + playbook to a checked task graph in which every task whose arguments can be
//! known up front already has its resource built. Everything that can be wrong with the input is found
//! here, before any host is touched.

pub mod graph;
mod prepare;
mod render;

pub use graph::{Edge, Node, TaskGraph};
pub use prepare::{prepare, prepare_with, NodePrep, Options, Prepared, OTHER_HOSTS};
pub use render::{Outcome, RenderedFile, KNOWN_AFTER_APPLY};
