//! Tools beside the request path: pushes built as the platform builds them ([`simulate`])
//! and step-by-step checks of a captured push ([`diagnose`]). The server never uses them.

pub mod diagnose;
pub mod simulate;
