//! The binary's subcommands, over the library: the command line (clap), then one module per
//! subcommand. Nothing here is part of the library's API.

pub(crate) mod bulk;
pub(crate) mod categories;
pub(crate) mod category_commands;
pub(crate) mod decrypt;
pub(crate) mod events;
pub(crate) mod healthcheck;
pub(crate) mod out;
pub(crate) mod serve;
pub(crate) mod simulate;
pub(crate) mod tokens;
pub(crate) mod verify_url;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use wxpush::Config;
use wxpush::config;

/// Receives WeChat Mini Program / Open Platform message pushes.
#[derive(Debug, Parser)]
#[command(version, about)]
pub(crate) struct Cli {
    /// A TOML file layered over the embedded defaults (env: WXPUSH_CONFIG).
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the receiver until SIGTERM or Ctrl-C.
    Serve,
    /// Validate the configuration and print it with secrets masked.
    CheckConfig,
    /// Send a push exactly as the platform would (signed, encrypted) and show the answer.
    Simulate(simulate::SimulateArgs),
    /// Run the platform's URL check against a deployed receiver and explain the result.
    VerifyUrl {
        /// The push URL as registered, e.g. https://example.com/wechat.
        url: String,
        /// The configured app whose token to sign with.
        #[arg(long)]
        app: Option<String>,
    },
    /// Explain every check on a captured request (query and body) with the configured apps.
    Decrypt(decrypt::DecryptArgs),
    /// Submit a category for review (`addcategory`) and track it as pending.
    AddCategory(categories::AddCategoryArgs),
    /// Category submissions and how each was resolved; with a subcommand, the settable
    /// list, what is set, delete and modify.
    Categories {
        /// One JSON object per line (the submissions).
        #[arg(long)]
        json: bool,
        #[command(subcommand)]
        command: Option<category_commands::CategoriesCommand>,
    },
    /// Temporary media for qualification documents.
    #[command(subcommand)]
    Media(category_commands::MediaCommand),
    /// Exit 0 when the local server answers /healthz (for container health checks).
    Healthcheck {
        /// The URL to check; default: /healthz on admin_listen, or on listen without it.
        #[arg(long)]
        url: Option<String>,
    },
    /// Inspect and repair the inbox (works while the server runs).
    #[command(subcommand)]
    Events(events::EventsCommand),
    /// The tokens wxpush manages (third-party platforms, authorizers, Mini Programs).
    #[command(subcommand)]
    Tokens(tokens::TokensCommand),
    /// The authorizers of the managed third-party platforms.
    #[command(subcommand)]
    Authorizers(tokens::AuthorizersCommand),
}

/// Parses the command line and runs the subcommand; the exit code says how it went.
pub(crate) fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(config::config_path(cli.config).as_deref()) {
        Ok(config) => config,
        Err(e) => {
            out::error_line(format_args!("wxpush: configuration error: {e}"));
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::CheckConfig => {
            let printed = out::text(&config.to_masked_toml());
            let demo = config.demo_credentials();
            if !demo.is_empty() {
                out::error_line(format_args!(
                    "note: still the public DEMO values: {}",
                    demo.join(", ")
                ));
            }
            for deprecation in &config.deprecations {
                out::error_line(format_args!("warning: {deprecation}"));
            }
            printed.map_err(anyhow::Error::from)
        }
        Command::Serve => {
            if let Err(e) = config.check_exposure() {
                out::error_line(format_args!("wxpush: refusing to start: {e}"));
                return ExitCode::from(2);
            }
            serve::serve(&config)
        }
        Command::Events(command) => events::run(&config, command),
        Command::Simulate(args) => simulate::simulate(&config, args),
        Command::VerifyUrl { url, app } => verify_url::verify_url(&config, &url, app.as_deref()),
        Command::Decrypt(args) => decrypt::decrypt(&config, args),
        Command::AddCategory(args) => categories::add_category(&config, args),
        Command::Categories {
            json,
            command: None,
        } => categories::list(&config, json),
        Command::Categories {
            command: Some(command),
            ..
        } => category_commands::run(&config, command),
        Command::Media(command) => category_commands::media(&config, command),
        Command::Healthcheck { url } => healthcheck::run(&config, url.as_deref()),
        Command::Tokens(command) => tokens::tokens(&config, command),
        Command::Authorizers(command) => tokens::authorizers(&config, command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of our output has gone (`| head`): nothing left to say to anyone.
        Err(e) if out::is_closed_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            out::error_line(format_args!("wxpush: {e:#}"));
            ExitCode::FAILURE
        }
    }
}
