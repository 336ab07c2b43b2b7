//! The platform's own HTTP APIs, called by wxpush: one [`client`] for all of them (error
//! codes with their fixes, "system busy" retried), the token APIs ([`tokens`]) and the
//! category group ([`category`]).

pub mod category;
pub mod client;
pub mod media;
pub mod tokens;

pub use client::{ApiClient, ApiError, DEFAULT_API_BASE};
