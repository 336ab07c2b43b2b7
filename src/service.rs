//! The composition root: opens the store and builds the routes' handlers from the [`Config`], then
//! runs the HTTP server, the dispatcher and the pruner together until shutdown. Stages never
//! read the configuration themselves; this module hands each its settings.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::categories::CategoryService;
use crate::config::Config;
use crate::dispatch::{self, Alerts, Dispatcher, Route, Routes, Wake};
use crate::dispatch::{RouteStates, Routing};
use crate::handler::BoxHandler;
use crate::observe::{Metrics, UPKEEP_EVERY};
use crate::server::console::{Console, ConsoleParts};
use crate::server::{self, AppState, Listeners, OperatorApi};
use crate::store::{PostgresStore, SqliteStore, Store, StoreError, StoreKind};
use crate::tokens::{TokenEvents, TokenService, token_events};

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
        (None, Some(addr)) => Some(bind_admin(addr).await?),
        (admin, _) => admin,
    };
    let wake = Wake::default();
    let alive = Arc::new(AtomicBool::new(true));
    let (stop_tx, stop_rx) = watch::channel(false);
    let metrics = Metrics::new();
    let mut routes: Routes = routes.into();
    let tokens = token_service(config, &store, &metrics)?;
    add_token_route(&mut routes, tokens.as_ref());
    let routing = routes.routing();
    let states = RouteStates::default();
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
    .with_alerts(alerts.clone())
    .with_states(states.clone());
    let dispatcher = spawn_dispatcher(dispatcher, Arc::clone(&alive), stop_rx);
    let pruner = tokio::spawn(dispatch::prune_periodically(
        Arc::clone(&store),
        config.retention,
        stop_tx.subscribe(),
    ));
    let state = AppState::new(
        config.app.clone(),
        config.extra_apps.clone(),
        Arc::clone(&store),
        wake,
        alive,
        config.max_clock_skew,
        metrics.clone(),
    )
    .with_routing(routing.clone())
    .with_alerts(alerts);
    let upkeep = tokio::spawn(upkeep(metrics.clone(), stop_tx.subscribe()));
    let categories = tokens
        .clone()
        .map(|service| CategoryService::new(service, Arc::clone(&store)));
    let background = platform_tasks(config, &tokens, &categories, &routing, &stop_tx);
    let console = console(
        config,
        &store,
        (&routing, &states),
        &tokens,
        &categories,
        &metrics,
        admin.is_some(),
    );
    let api = operator_api(config, tokens, categories, admin.is_some());
    let admin_task = admin.map(|listener| {
        let router = server::admin_router(state.clone(), api, console);
        spawn_admin(listener, router, config.http, stop_tx.subscribe())
    });
    let separate = admin_task.is_some();
    let router = server::router(state, config.body_limit_bytes, separate);
    let result = server::serve(public, router, config.http, shutdown).await;
    let mut tasks = background;
    tasks.extend([
        (dispatcher, "dispatcher"),
        (pruner, "pruner"),
        (upkeep, "metrics upkeep"),
    ]);
    stop_all(&stop_tx, admin_task, tasks).await;
    result
}

/// Tells every background task to stop, and waits for each; one that ended abnormally is
/// logged.
async fn stop_all(
    stop: &watch::Sender<bool>,
    admin: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    tasks: Vec<(tokio::task::JoinHandle<()>, &'static str)>,
) {
    let _ = stop.send(true);
    if let Some(task) = admin
        && !matches!(task.await, Ok(Ok(())))
    {
        tracing::error!("the operations endpoints stopped abnormally");
    }
    for (task, name) in tasks {
        if task.await.is_err() {
            tracing::error!("the {name} stopped abnormally");
        }
    }
}

/// Runs the dispatcher until `stop`; `alive` is cleared however it ends, a panic included,
/// so that readiness reports it.
fn spawn_dispatcher(
    dispatcher: Dispatcher,
    alive: Arc<AtomicBool>,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let _alive = AliveGuard(alive);
        dispatcher.run(stop).await;
    })
}

/// The token service's own route (`tokens`), when a third-party platform is managed.
fn add_token_route(routes: &mut Routes, tokens: Option<&TokenService>) {
    if let Some(service) = tokens
        && let Some(filter) = token_events(service.config())
    {
        routes.0.push(Route {
            filter,
            handler: BoxHandler::new(TokenEvents(service.clone())),
        });
    }
}

/// The token refresher and the category reconciler, when there is something for them to
/// do; each with its name, for the log.
fn platform_tasks(
    config: &Config,
    tokens: &Option<TokenService>,
    categories: &Option<CategoryService>,
    routing: &Routing,
    stop: &watch::Sender<bool>,
) -> Vec<(tokio::task::JoinHandle<()>, &'static str)> {
    let mut tasks = Vec::new();
    if let Some(service) = tokens {
        let refresh = service.clone().refresh_periodically(stop.subscribe());
        tasks.push((tokio::spawn(refresh), "token refresher"));
    }
    if let (Some(service), Some(every)) = (categories, config.categories_reconcile) {
        let reconcile =
            service
                .clone()
                .reconcile_periodically(every, routing.clone(), stop.subscribe());
        tasks.push((tokio::spawn(reconcile), "category reconciler"));
    }
    tasks
}

/// Serves `router` on `listener` (admin_listen) until `stop` changes.
fn spawn_admin(
    listener: TcpListener,
    router: axum::Router,
    limits: server::HttpLimits,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<std::io::Result<()>> {
    tokio::spawn(async move {
        let stopped = async move {
            let _ = stop.changed().await;
        };
        server::serve(listener, router, limits, stopped).await
    })
}

/// The token service, when any app's tokens are managed; warns when they are stored
/// unencrypted.
fn token_service(
    config: &Config,
    store: &Arc<dyn Store>,
    metrics: &Metrics,
) -> std::io::Result<Option<TokenService>> {
    if !config.tokens.manages_any() {
        return Ok(None);
    }
    if config.tokens.secrets_key.is_none() {
        tracing::warn!(
            "!!! TOKENS ARE STORED UNENCRYPTED: wxpush manages tokens (component_appsecret or appsecret is set) and secrets_key (WXPUSH_SECRETS_KEY) is not. Anyone who can read the inbox can use them. Set secrets_key to 32 random bytes in base64 (`openssl rand -base64 32`). !!!"
        );
    }
    let service = TokenService::new(config.tokens.clone(), Arc::clone(store))
        .map_err(|e| std::io::Error::other(format!("setting up the token service: {e}")))?
        .with_metrics(metrics.clone());
    let managed: Vec<String> = config
        .tokens
        .apps
        .iter()
        .map(|a| format!("{} ({})", a.appid, a.name))
        .collect();
    tracing::info!(apps = ?managed, "token service: managing the tokens of these apps");
    Ok(Some(service))
}

/// The console, when a secret signs in to it and `admin_listen` serves it; the log says why
/// it is not served otherwise.
fn console(
    config: &Config,
    store: &Arc<dyn Store>,
    (routing, states): (&Routing, &RouteStates),
    tokens: &Option<TokenService>,
    categories: &Option<CategoryService>,
    metrics: &Metrics,
    admin_listen: bool,
) -> Option<Console> {
    let Some(settings) = &config.console else {
        tracing::info!(
            "the console is off: set admin.console_password (WXPUSH_ADMIN_CONSOLE_PASSWORD) or admin.api_token to sign in to it"
        );
        return None;
    };
    if !admin_listen {
        tracing::warn!(
            "the console is not served: it is on admin_listen only, which is not set (WXPUSH_ADMIN_LISTEN)"
        );
        return None;
    }
    Some(Console::new(ConsoleParts {
        config: settings.clone(),
        store: Arc::clone(store),
        apps: config.apps().cloned().collect(),
        routing: routing.clone(),
        states: states.clone(),
        tokens: tokens.clone(),
        categories: categories.clone(),
        metrics: metrics.clone(),
    }))
}

/// The operator API, when `admin.api_token` is set and `admin_listen` serves it; the log
/// says why it is not served otherwise.
fn operator_api(
    config: &Config,
    tokens: Option<TokenService>,
    categories: Option<CategoryService>,
    admin_listen: bool,
) -> Option<OperatorApi> {
    let managed = tokens.is_some();
    match (&config.admin_api_token, admin_listen) {
        (Some(token), true) => Some(OperatorApi::new(token.clone(), tokens, categories)),
        (None, _) if managed => {
            tracing::warn!(
                "the token API (/v1/tokens/...) is not served: set admin.api_token (WXPUSH_ADMIN_API_TOKEN) and admin_listen (WXPUSH_ADMIN_LISTEN)"
            );
            None
        }
        (Some(_), false) => {
            tracing::warn!(
                "the operator API (/v1/) is not served: it is served on admin_listen only, which is not set (WXPUSH_ADMIN_LISTEN)"
            );
            None
        }
        (None, _) => None,
    }
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
