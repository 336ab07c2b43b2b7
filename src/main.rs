//! The `wxpush` binary: `serve`, `check-config` and `events` over the library.

/// `println!` that returns an `io::Result` instead of panicking on a closed stdout.
macro_rules! outln {
    ($($arg:tt)*) => { $crate::cli::out::line(format_args!($($arg)*)) };
}

mod cli {
    pub(crate) mod categories;
    pub(crate) mod debug;
    pub(crate) mod events;
    pub(crate) mod healthcheck;
    pub(crate) mod out;
}

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use wxpush::Config;
use wxpush::config;

/// Receives WeChat Mini Program / Open Platform message pushes.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
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
    Simulate(cli::debug::SimulateArgs),
    /// Run the platform's URL check against a deployed receiver and explain the result.
    VerifyUrl {
        /// The push URL as registered, e.g. https://example.com/wechat.
        url: String,
        /// The configured app whose token to sign with.
        #[arg(long)]
        app: Option<String>,
    },
    /// Explain every check on a captured request (query and body) with the configured apps.
    Decrypt(cli::debug::DecryptArgs),
    /// Submit a category for review (`addcategory`) and track it as pending.
    AddCategory(cli::categories::AddCategoryArgs),
    /// List category submissions and the review results that resolved them.
    Categories {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Exit 0 when the local server answers /healthz (for container health checks).
    Healthcheck {
        /// The URL to check; default: /healthz on admin_listen, or on listen without it.
        #[arg(long)]
        url: Option<String>,
    },
    /// Inspect and repair the inbox (works while the server runs).
    #[command(subcommand)]
    Events(cli::events::EventsCommand),
}

/// mimalloc instead of the system allocator: a push allocates a few buffers over 1 KiB, which
/// glibc's malloc handles on its slow path (bin consolidation); under load mimalloc needs
/// about 6 µs less CPU per push. Transparent huge pages stay off (`no_thp`), which keeps
/// the resident set within the benchmark's bound (see README, Performance).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(config::config_path(cli.config).as_deref()) {
        Ok(config) => config,
        Err(e) => {
            cli::out::error_line(format_args!("wxpush: configuration error: {e}"));
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::CheckConfig => {
            let printed = cli::out::text(&config.to_masked_toml());
            let demo = config.demo_credentials();
            if !demo.is_empty() {
                cli::out::error_line(format_args!(
                    "note: still the public DEMO values: {}",
                    demo.join(", ")
                ));
            }
            printed.map_err(anyhow::Error::from)
        }
        Command::Serve => {
            if let Err(e) = config.check_exposure() {
                cli::out::error_line(format_args!("wxpush: refusing to start: {e}"));
                return ExitCode::from(2);
            }
            serve(&config)
        }
        Command::Events(command) => cli::events::run(&config, command),
        Command::Simulate(args) => cli::debug::simulate(&config, args),
        Command::VerifyUrl { url, app } => cli::debug::verify_url(&config, &url, app.as_deref()),
        Command::Decrypt(args) => cli::debug::decrypt(&config, args),
        Command::AddCategory(args) => cli::categories::add_category(&config, args),
        Command::Categories { json } => cli::categories::list(&config, json),
        Command::Healthcheck { url } => cli::healthcheck::run(&config, url.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of our output has gone (`| head`): nothing left to say to anyone.
        Err(e) if cli::out::is_closed_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            cli::out::error_line(format_args!("wxpush: {e:#}"));
            ExitCode::FAILURE
        }
    }
}

fn serve(config: &Config) -> anyhow::Result<()> {
    let _log_flush = wxpush::telemetry::init_buffered(config.log_format);
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let demo = config.demo_credentials();
        if !demo.is_empty() {
            tracing::warn!(
                "!!! USING THE PUBLIC DEMO CREDENTIALS for {}: anyone can sign pushes for this server, and real pushes (signed and encrypted with your own values) will fail. Set each of them (or use a --config file) before registering the URL. !!!",
                demo.join(", ")
            );
        }
        let store = wxpush::service::open_store(config).await?; // the error names the store and the cause
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let addr = listener.local_addr().context("reading the bound address")?;
        let handler = wxpush::handler::from_config(&config.handler)
            .map_err(|e| anyhow::anyhow!("setting up the {} handler: {e}", config.handler.name()))?;
        let apps: Vec<&str> = config.apps().map(|a| a.name.as_str()).collect();
        tracing::info!(apps = ?apps, handler = config.handler.name(), store = %config.store_description(), "listening on {addr}");
        wxpush::service::run(config, store, handler, listener, shutdown_signal())
            .await
            .context("serving")?;
        tracing::info!("stopped");
        Ok(())
    })
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests and the delivery in progress");
}
