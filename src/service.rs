//! The composition root: opens the store and builds the routes' handlers from the [`Config`], then
//! runs the HTTP server, the dispatcher and the pruner together until shutdown. Stages never
//! read the configuration themselves; this module hands each its settings.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::dispatch::{self, Alerts, Dispatcher, Route, Routes, Wake};
#[cfg(doc)]
use crate::handler::BoxHandler;
use crate::observe::{Metrics, UPKEEP_EVERY};
use crate::server::{self, AppState, Listeners};
use crate::store::{PostgresStore, SqliteStore, Store, StoreError, StoreKind};

/// Opens the store the configuration names: the embedded SQLite inbox in `data_dir`, or
/// the PostgreSQL database (connecting and migrating its schema).
///
/// # Errors
/// [`StoreError::Open`] when the data dir or database cannot be created, reached or written.
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match &config.store {
        StoreKind::Sqlite => Arc::new(SqliteStore::open(&config.data_dir)?),
        StoreKind::Postgres(pg) => Arc::new(PostgresStore::open(pg).await?),
    })
}

/// Opens the store the configuration names only if it already holds an inbox: what every
/// command but `serve` uses, so a command run from the wrong directory says where it looked
/// instead of creating an empty inbox.
///
/// # Errors
/// [`StoreError::Open`] naming where it looked when there is no inbox; otherwise as [`open_store`].
pub async fn open_existing_store(config: &Config) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match &config.store {
        StoreKind::Sqlite => Arc::new(SqliteStore::open_existing(&config.data_dir)?),
        StoreKind::Postgres(pg) => Arc::new(PostgresStore::open_existing(pg).await?),
    })
}

/// Clears the flag it holds when dropped.
struct AliveGuard(Arc<AtomicBool>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// Builds the handler of every configured route.
///
/// # Errors
/// Naming the route, when a webhook's HTTP client cannot be built.
pub fn routes(config: &Config) -> Result<Routes, String> {
    let mut routes = Vec::with_capacity(config.routes.len());
    for route in &config.routes {
        let handler = crate::handler::from_config(&route.handler).map_err(|e| {
            format!(
                "setting up the {} handler of route {}: {e}",
                route.handler.name(),
                route.filter.name
            )
        })?;
        routes.push(Route {
            filter: route.filter.clone(),
            handler,
        });
    }
    Ok(Routes(routes))
}

/// Runs the whole service for `config` on `listeners`, storing into `store` and delivering
/// to `routes` (a [`BoxHandler`] is the one route `default`): starts the dispatcher and the pruner, serves until `shutdown`, finishes the
/// requests in flight, then stops the dispatcher (an attempt in flight gets a short grace).
///
/// # Errors
/// I/O errors from the listeners, or binding `admin_listen`.
pub async fn run(
    config: &Config,
    store: Arc<dyn Store>,
    routes: impl Into<Routes>,
    listeners: impl Into<Listeners>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let Listeners { public, admin } = listeners.into();
    let admin = match (admin, config.admin_listen) {
        (Some(admin), _) => Some(admin),
        (None, Some(addr)) => Some(bind_admin(addr).await?),
        (None, None) => None,
    };
    let wake = Wake::default();
    let alive = Arc::new(AtomicBool::new(true));
    let (stop_tx, stop_rx) = watch::channel(false);
    let metrics = Metrics::new();
    let routes: Routes = routes.into();
    let routing = routes.routing();
    let alerts = match &config.alerts {
        Some(alerts) => Alerts::start(alerts.clone())
            .map_err(|e| std::io::Error::other(format!("setting up alerts: {e}")))?,
        None => Alerts::off(),
    };
    let dispatcher = Dispatcher::new(
        Arc::clone(&store),
        routes,
        config.delivery.clone(),
        wake.clone(),
    )
    .with_metrics(metrics.clone())
    .with_alerts(alerts.clone());
    let dispatcher_alive = Arc::clone(&alive);
    let dispatcher = tokio::spawn(async move {
        // Cleared however the dispatcher ends, a panic included: readiness reports it.
        let _alive = AliveGuard(dispatcher_alive);
        dispatcher.run(stop_rx).await;
    });
    let pruner = tokio::spawn(dispatch::prune_periodically(
        Arc::clone(&store),
        config.retention,
        stop_tx.subscribe(),
    ));
    let state = AppState::new(
        config.app.clone(),
        config.extra_apps.clone(),
        store,
        wake,
        alive,
        config.max_clock_skew,
        metrics.clone(),
    )
    .with_routing(routing)
    .with_alerts(alerts);
    let upkeep = tokio::spawn(upkeep(metrics, stop_tx.subscribe()));
    let admin_task = admin.map(|listener| {
        let router = server::admin_router(state.clone());
        let mut stop = stop_tx.subscribe();
        let limits = config.http;
        tokio::spawn(async move {
            let stopped = async move {
                let _ = stop.changed().await;
            };
            server::serve(listener, router, limits, stopped).await
        })
    });
    let separate = admin_task.is_some();
    let router = server::router(state, config.body_limit_bytes, separate);
    let result = server::serve(public, router, config.http, shutdown).await;
    let _ = stop_tx.send(true);
    if let Some(task) = admin_task
        && !matches!(task.await, Ok(Ok(())))
    {
        tracing::error!("the operations endpoints stopped abnormally");
    }
    if dispatcher.await.is_err() || pruner.await.is_err() || upkeep.await.is_err() {
        tracing::error!("a background task stopped abnormally");
    }
    result
}

async fn bind_admin(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("binding admin_listen {addr}: {e}")))?;
    let bound = listener.local_addr()?;
    tracing::info!("operations endpoints (/healthz, /readyz, /metrics) on {bound}");
    Ok(listener)
}

/// Folds the metrics' histogram samples into buckets now and then, until `stop` turns true.
async fn upkeep(metrics: Metrics, mut stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        tokio::select! {
            () = tokio::time::sleep(UPKEEP_EVERY) => metrics.upkeep(),
            _ = stop.changed() => {}
        }
    }
}
