//! Everything the user sees: the plan and apply reports (human or JSON lines), progress, and secret masking.

pub mod human;
pub mod json;
pub mod mask;
pub mod summary;

pub use summary::Summary;
