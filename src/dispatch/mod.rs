//! Delivery out of the request path. Every stored event has a delivery per route that
//! takes it ([`Routes`]); the dispatcher takes due deliveries from the store, runs up to
//! `concurrency` handler calls at once, each with a timeout, and records each outcome:
//! delivered after `Ok`, else retried along the retry schedule ([`DeliveryPolicy`]), and `dead`
//! after its last wait.
//!
//! Deliveries that share a route and an ordering key ([`crate::event::Event::order_key`])
//! are handed out by the store one at a time, in arrival order, on every instance sharing
//! it: a failing or hanging delivery holds back only its own key. A route failing again
//! and again pauses (a breaker per route): only a probe now and then, until one succeeds.
//!
//! It wakes when the request path stores a new event, when an attempt ends, when a retry
//! or probe falls due, and once a second (to pick up replays made by the events CLI, or
//! events stored by other replicas on a shared store). On a shared store the deliveries it
//! takes are leased to it; it starts an attempt only while the lease outlasts the attempt's
//! timeout, and gives back what it did not attempt. On shutdown it lets the attempts in
//! flight finish for a short grace period; an unfinished delivery stays pending and is made
//! after the restart.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::clock;
use crate::handler::BoxHandler;
use crate::observe::{self, Metrics};
use crate::store::{DeliveryKey, Store, StoreError};

mod alerts;
mod attempt;
mod breaker;
mod flight;
mod outcomes;
mod policy;
mod prune;
mod routes;
mod take;

pub use alerts::{Alert, AlertKind, Alerts, AlertsConfig};
use attempt::{Attempting, Finished};
use breaker::{Breakers, Change};
use flight::Flight;
use outcomes::Unrecorded;
pub use policy::{DEFAULT_SCHEDULE_SECS, DeliveryPolicy, Jitter};
pub use prune::prune_periodically;
pub use routes::{Route, RouteConfig, RouteFilter, Routes, Routing};

/// Which routes this instance's breakers hold paused, shared with what shows it.
#[derive(Debug, Clone, Default)]
pub struct RouteStates(std::sync::Arc<Mutex<std::collections::BTreeSet<String>>>);

impl RouteStates {
    fn set(&self, route: &str, paused: bool) {
        if let Ok(mut set) = self.0.lock() {
            if paused {
                set.insert(route.to_owned());
            } else {
                set.remove(route);
            }
        }
    }

    /// Whether `route` is paused now.
    pub fn is_paused(&self, route: &str) -> bool {
        self.0.lock().is_ok_and(|set| set.contains(route))
    }
}

/// How often the dispatcher looks at the store when nothing wakes it.
const POLL: Duration = Duration::from_secs(1);

/// How long the attempts in flight may continue after shutdown begins.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Most deliveries one [`Dispatcher::deliver_due`] step attempts.
const STEP_LIMIT: usize = 64;

/// Wakes the dispatcher when a new event is stored.
#[derive(Debug, Clone, Default)]
pub struct Wake(Arc<Notify>);

impl Wake {
    /// Signals that an event is waiting.
    pub fn notify(&self) {
        self.0.notify_one();
    }
}

/// Delivers stored events to their routes' handlers.
pub struct Dispatcher {
    store: Arc<dyn Store>,
    handlers: HashMap<String, BoxHandler>,
    policy: Arc<DeliveryPolicy>,
    wake: Wake,
    metrics: Metrics,
    breakers: Mutex<Breakers>,
    /// Routes found in the store that are not configured: left alone, reported once.
    unknown: Mutex<HashSet<String>>,
    alerts: Alerts,
    /// Which routes are paused, for whoever shows it (the console).
    states: RouteStates,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Dispatcher {
    /// A dispatcher over `store` delivering to `routes` (a [`BoxHandler`] is the one route
    /// `default`); `wake` is the signal the request path uses.
    pub fn new(
        store: Arc<dyn Store>,
        routes: impl Into<Routes>,
        policy: DeliveryPolicy,
        wake: Wake,
    ) -> Self {
        let handlers = routes
            .into()
            .0
            .into_iter()
            .map(|r| (r.filter.name, r.handler))
            .collect();
        Self {
            store,
            handlers,
            breakers: Mutex::new(Breakers::new(policy.breaker_failures, policy.breaker_probe)),
            policy: Arc::new(policy),
            wake,
            metrics: Metrics::new(),
            unknown: Mutex::new(HashSet::new()),
            alerts: Alerts::off(),
            states: RouteStates::default(),
        }
    }

    /// Reports which routes are paused to `states`.
    pub fn with_states(mut self, states: RouteStates) -> Self {
        self.states = states;
        self
    }

    /// Raises alerts (a route paused or resumed, a delivery dead) on `alerts`.
    pub fn with_alerts(mut self, alerts: Alerts) -> Self {
        self.alerts = alerts;
        self
    }

    /// Counts into `metrics` (the server's registry) instead of a registry of its own.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Runs until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        self.resume().await;
        self.metrics.record(|| {
            for route in self.handlers.keys() {
                metrics::gauge!(observe::ROUTE_PAUSED, "route" => route.clone()).set(0.0);
            }
        });
        let mut unrecorded = Unrecorded::default();
        let mut flight = Flight::new();
        let attempting = self.attempting();
        while !*shutdown.borrow() {
            unrecorded.apply(&*self.store).await;
            let now = clock::now_ms();
            let wait = match self.fill(&mut flight, &unrecorded, now, true).await {
                Ok(_) if !flight.running.is_empty() => POLL,
                Ok(_) => self.idle_wait(now).await,
                Err(error) => {
                    tracing::error!(%error, "dispatcher: cannot read pending events");
                    POLL
                }
            };
            tokio::select! {
                Some(done) = flight.next(&attempting), if !flight.running.is_empty() => {
                    self.finish(done, &mut unrecorded, &mut flight).await;
                    while let Some(done) = flight.ready(&attempting).await {
                        self.finish(done, &mut unrecorded, &mut flight).await;
                    }
                }
                () = self.wake.0.notified() => {}
                () = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {}
            }
        }
        self.drain(&mut flight, &mut unrecorded, &attempting).await;
        let abandoned: Vec<DeliveryKey> = flight.keys.drain().collect();
        flight.running.shutdown().await;
        unrecorded.apply(&*self.store).await;
        unrecorded.report_left();
        self.give_back(abandoned).await;
        tracing::debug!("dispatcher stopped");
    }

    /// One step, for tests: attempts what is due now (at most `concurrency` at once, and
    /// what falls due as earlier deliveries of its key finish), records the outcomes, and
    /// says how it went; [`Step::Empty`] means nothing was due, so nothing more will
    /// happen until something is stored, replayed or falls due.
    ///
    /// # Errors
    /// The store's, when it cannot say what is due.
    pub async fn deliver_due(&self) -> Result<Step, StoreError> {
        let mut unrecorded = Unrecorded::default();
        let mut flight = Flight::new();
        let attempting = self.attempting();
        let (mut started, mut delivered, mut failed) = (0, 0, 0);
        loop {
            if started < STEP_LIMIT {
                started += self
                    .fill(&mut flight, &unrecorded, clock::now_ms(), false)
                    .await?;
            }
            let Some(done) = flight.next(&attempting).await else {
                break;
            };
            if done.success {
                delivered += 1;
            } else {
                failed += 1;
            }
            self.finish(done, &mut unrecorded, &mut flight).await;
        }
        unrecorded.apply(&*self.store).await;
        Ok(if started == 0 {
            Step::Empty
        } else {
            Step::Attempted { delivered, failed }
        })
    }

    /// Records what an attempt's end means beyond its own delivery: an outcome the store
    /// refused is kept, and the route's breaker counts it (pausing or resuming the route).
    async fn finish(&self, done: Finished, unrecorded: &mut Unrecorded, flight: &mut Flight) {
        flight.keys.remove(done.outcome.key());
        if let Err(error) = &done.written {
            unrecorded.keep(done.outcome.clone(), error);
        }
        let route = done.outcome.key().route.clone();
        let change = self
            .breakers()
            .record(&route, done.success, clock::now_ms());
        match change {
            Some(Change::Paused) => {
                tracing::error!(
                    route = %route,
                    failures = self.policy.breaker_failures,
                    probe_every_secs = self.policy.breaker_probe.as_secs(),
                    "route paused after consecutive failures: only a probe is attempted now and then, until one succeeds"
                );
                self.set_paused_gauge(&route, true);
                self.alerts
                    .raise(Alert::route(AlertKind::RoutePaused, &route));
            }
            Some(Change::Resumed) => {
                let expedited = self.store.expedite(route.clone()).await.unwrap_or(0);
                tracing::warn!(route = %route, due_now = expedited, "route resumed: a delivery succeeded");
                self.set_paused_gauge(&route, false);
                self.alerts
                    .raise(Alert::route(AlertKind::RouteResumed, &route));
            }
            None => {}
        }
    }

    /// What each attempt's task gets.
    fn attempting(&self) -> Attempting {
        Attempting {
            store: Arc::clone(&self.store),
            policy: Arc::clone(&self.policy),
            metrics: self.metrics.clone(),
            alerts: self.alerts.clone(),
        }
    }

    /// Lets the attempts in flight finish, for [`SHUTDOWN_GRACE`] at most.
    async fn drain(
        &self,
        flight: &mut Flight,
        unrecorded: &mut Unrecorded,
        attempting: &Attempting,
    ) {
        let grace = tokio::time::sleep(SHUTDOWN_GRACE);
        tokio::pin!(grace);
        while !flight.running.is_empty() {
            tokio::select! {
                Some(done) = flight.next(attempting) => self.finish(done, unrecorded, flight).await,
                () = &mut grace => {
                    tracing::warn!(deliveries = flight.running.len(), "shutdown: deliveries still running; they stay pending and are made after restart");
                    return;
                }
            }
        }
    }

    /// How long to sleep when nothing is in flight: until the next delivery or probe falls
    /// due, at most [`POLL`].
    async fn idle_wait(&self, now: i64) -> Duration {
        let next_due = self
            .store
            .next_due_at(self.skipped_routes())
            .await
            .ok()
            .flatten();
        let next_probe = self.breakers().next_probe_at();
        let next = [next_due, next_probe].into_iter().flatten().min();
        next.map_or(POLL, |at| {
            Duration::from_millis(u64::try_from(at - now).unwrap_or(0)).min(POLL)
        })
    }

    fn breakers(&self) -> std::sync::MutexGuard<'_, Breakers> {
        self.breakers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn set_paused_gauge(&self, route: &str, paused: bool) {
        self.states.set(route, paused);
        self.metrics.record(|| {
            metrics::gauge!(observe::ROUTE_PAUSED, "route" => route.to_owned()).set(if paused {
                1.0
            } else {
                0.0
            });
        });
    }

    /// On start: deliveries an earlier run of this instance held become due now.
    async fn resume(&self) {
        match self.store.take_over().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                deliveries = n,
                "resuming deliveries held by the previous run"
            ),
            Err(error) => {
                tracing::warn!(%error, "cannot resume deliveries held by the previous run; they fall due within the hour")
            }
        }
    }

    /// On shutdown: on a shared store, deliveries leased to this instance go back to the
    /// others now rather than when their leases expire; an abandoned attempt keeps its
    /// lease, as it may still be running in the handler's world.
    async fn give_back(&self, abandoned: Vec<DeliveryKey>) {
        match self.store.release_all(abandoned).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                released = n,
                "shutdown: gave back leased deliveries to the other instances"
            ),
            Err(error) => {
                tracing::warn!(%error, "shutdown: cannot give back leased deliveries; other instances take them when the leases expire")
            }
        }
    }
}

/// What one step of the dispatcher did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Deliveries were due: this many were delivered, this many failed (and were
    /// rescheduled or are dead).
    Attempted {
        /// Accepted by the handler.
        delivered: usize,
        /// Refused by the handler, or timed out.
        failed: usize,
    },
    /// Nothing was due.
    Empty,
}
