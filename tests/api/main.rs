//! Integration tests: the real router on a real loopback socket, and the real binary.
#![allow(unreachable_pub)]

mod alerts;
mod browser;
mod bulk;
mod categories;
mod cli;
mod console;
mod console_browser;
mod container;
mod debug_tools;
mod delivery;
mod downstream;
mod edge;
mod fake_categories;
mod fake_platform;
mod helpers;
mod image;
mod inbox_cli;
mod inbox_upgrade;
mod integrations;
mod operator;
mod postgres;
mod properties;
mod push;
mod reconcile;
mod replay;
mod retries;
mod tokens;
mod tokens_crash;
mod tokens_support;
mod url_check;
