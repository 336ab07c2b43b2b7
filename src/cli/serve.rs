//! `wxpush serve`: the receiver, until SIGTERM or Ctrl-C.

use anyhow::Context as _;
use wxpush::Config;

/// Runs the receiver for `config` until a shutdown signal.
pub(crate) fn serve(config: &Config) -> anyhow::Result<()> {
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
        for deprecation in &config.deprecations {
            tracing::warn!("{deprecation}");
        }
        let routes = wxpush::service::routes(config).map_err(|e| anyhow::anyhow!(e))?;
        let apps: Vec<&str> = config.apps().map(|a| a.name.as_str()).collect();
        let named: Vec<String> = config
            .routes
            .iter()
            .map(|r| format!("{} ({})", r.filter.name, r.handler.name()))
            .collect();
        tracing::info!(apps = ?apps, routes = ?named, store = %config.store_description(), "listening on {addr}");
        wxpush::service::run(config, store, routes, listener, shutdown_signal())
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
