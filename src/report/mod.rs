//! Everything the user sees: the plan and apply reports (human or JSON lines), progress, and secret masking.

pub mod mask;
