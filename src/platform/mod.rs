//! The platform's own HTTP APIs, called by wxpush: the category group ([`category`]).

pub mod category;
