//! Routes: named destinations, each a handler with optional filters on the event name and
//! the app. Every event is stored with a delivery per route that takes it, and each
//! delivery has its own state: a failing route retries only itself.

use crate::event::Event;
use crate::handler::{BoxHandler, HandlerKind};
use crate::store::DEFAULT_ROUTE;

/// Which events a route takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteFilter {
    /// The route's name (as stored, printed and labelled in metrics).
    pub name: String,
    /// Only events with these names (`Event`, `InfoType` or `MsgType`); empty = any.
    pub events: Vec<String>,
    /// Only events of these apps (their configured names); empty = any.
    pub apps: Vec<String>,
}

impl RouteFilter {
    /// A route named `name` taking every event.
    pub fn all(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            events: Vec::new(),
            apps: Vec::new(),
        }
    }

    /// Whether the route takes `event`. Event names compare without regard to case, as
    /// the platform's do.
    pub fn takes(&self, event: &Event) -> bool {
        let name = event.name();
        (self.events.is_empty() || self.events.iter().any(|e| e.eq_ignore_ascii_case(name)))
            && (self.apps.is_empty() || self.apps.contains(&event.app))
    }
}

/// A route as configured: its filter and which built-in handler it uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteConfig {
    /// Name and filters.
    pub filter: RouteFilter,
    /// The handler and its settings.
    pub handler: HandlerKind,
}

/// A route: its filter and the handler its deliveries go to.
#[derive(Debug, Clone)]
pub struct Route {
    /// Name and filters.
    pub filter: RouteFilter,
    /// Where its deliveries go.
    pub handler: BoxHandler,
}

impl Route {
    /// A route named `name` taking every event to `handler`.
    pub fn new(name: impl Into<String>, handler: BoxHandler) -> Self {
        Self {
            filter: RouteFilter::all(name),
            handler,
        }
    }
}

/// Every route of the service, in configuration order.
#[derive(Debug, Clone)]
pub struct Routes(pub Vec<Route>);

impl From<BoxHandler> for Routes {
    /// One route, `default`, taking every event: the service without `[[routes]]`.
    fn from(handler: BoxHandler) -> Self {
        Self(vec![Route::new(DEFAULT_ROUTE, handler)])
    }
}

impl From<Vec<Route>> for Routes {
    fn from(routes: Vec<Route>) -> Self {
        Self(routes)
    }
}

impl Routes {
    /// The filters alone: what the request path needs to store an event's deliveries.
    pub fn routing(&self) -> Routing {
        Routing(self.0.iter().map(|r| r.filter.clone()).collect())
    }
}

/// Which routes take which events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routing(pub Vec<RouteFilter>);

impl Default for Routing {
    /// The route `default`, taking every event.
    fn default() -> Self {
        Self(vec![RouteFilter::all(DEFAULT_ROUTE)])
    }
}

impl Routing {
    /// The names of the routes that take `event`, in configuration order.
    pub fn routes_for(&self, event: &Event) -> Vec<String> {
        self.0
            .iter()
            .filter(|r| r.takes(event))
            .map(|r| r.name.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_select_by_event_name_and_app() {
        let audit = Event::parse(
            "<xml><Event>wxa_category_audit</Event><ret>3</ret></xml>",
            "shop",
            None,
        );
        let routing = Routing(vec![
            RouteFilter {
                name: "audits".into(),
                events: vec!["WXA_CATEGORY_AUDIT".into()],
                apps: Vec::new(),
            },
            RouteFilter {
                name: "other-app".into(),
                events: Vec::new(),
                apps: vec!["demo".into()],
            },
            RouteFilter::all("everything"),
        ]);
        assert_eq!(routing.routes_for(&audit), ["audits", "everything"]);
    }
}
