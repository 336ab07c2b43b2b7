//! `check-config`'s view: the effective configuration as TOML, secrets masked.

use std::fmt::Write as _;

use super::{Config, HandlerKind, LogFormat, StoreKind};

impl Config {
    /// The effective configuration as TOML, with tokens, keys and the webhook secret masked.
    pub fn to_masked_toml(&self) -> String {
        let format = match self.log_format {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        };
        let mut out = format!(
            "listen = \"{}\"\nadmin_listen = \"{}\"\nallow_demo_credentials = {}\nbody_limit_bytes = {}\nhandler = \"{}\"\ndata_dir = \"{}\"\nstore = \"{}\"\nmax_clock_skew_secs = {}\nretention_days = {}\n\n[http]\nheader_timeout_secs = {}\nidle_timeout_secs = {}\nmax_connections = {}\n\n[delivery]\nattempt_timeout_secs = {}\nretry_schedule_secs = {:?}\nconcurrency = {}\nbreaker_failures = {}\nbreaker_probe_secs = {}\n\n[log]\nformat = \"{format}\"\n",
            self.listen,
            self.admin_listen.map(|a| a.to_string()).unwrap_or_default(),
            self.allow_demo_credentials,
            self.body_limit_bytes,
            self.handler.name(),
            self.data_dir.display(),
            self.store.name(),
            self.max_clock_skew.map_or(0, |d| d.as_secs()),
            self.retention.as_secs() / 86_400,
            self.http.header_timeout.as_secs(),
            self.http.idle_timeout.as_secs(),
            self.http.max_connections,
            self.delivery.attempt_timeout.as_secs(),
            self.delivery
                .retry_schedule
                .iter()
                .map(std::time::Duration::as_secs_f64)
                .collect::<Vec<_>>(),
            self.delivery.concurrency,
            self.delivery.breaker_failures,
            self.delivery.breaker_probe.as_secs(),
        );
        let top = self.top_level_toml();
        if let Some(at) = out.find("\n[http]") {
            out.insert_str(at, &top);
        }
        if let StoreKind::Postgres(pg) = &self.store {
            let _ = write!(
                out,
                "\n[postgres]\nurl = \"{} (password hidden)\"\nschema = \"{}\"\npool_size = {}\nlease_secs = {}\n",
                pg.target,
                pg.schema,
                pg.pool_size,
                pg.lease.as_secs()
            );
        }
        out.push_str(&handler_toml(&self.handler, None));
        out.push_str(&self.routes_toml());
        out.push_str(&self.tokens_toml());
        if let Some(alerts) = &self.alerts {
            let _ = write!(
                out,
                "\n[alerts]\nwebhook_url = \"{}\"\nsecret = \"{}\"\ncoalesce_secs = {}\n",
                alerts.webhook_url,
                alerts
                    .secret
                    .as_ref()
                    .map_or_else(|| "(none)".to_owned(), |s| mask(s.expose().len())),
                alerts.coalesce.as_secs()
            );
        }
        for (i, app) in self.apps().enumerate() {
            let header = if i == 0 { "[app]" } else { "[[apps]]" };
            let _ = write!(
                out,
                "\n{header}\nname = \"{}\"\ntoken = \"{}\"\nencoding_aes_key = \"{}\"\nappid = \"{}\"\nrequire_encryption = {}\n",
                app.name,
                mask(app.token.expose().len()),
                mask(43),
                app.appid,
                app.require_encryption,
            );
            if let Some(t) = &app.previous_token {
                let _ = writeln!(out, "previous_token = \"{}\"", mask(t.expose().len()));
            }
            if app.previous_aes_key.is_some() {
                let _ = writeln!(out, "previous_encoding_aes_key = \"{}\"", mask(43));
            }
            if let Some(managed) = self.tokens.app(&app.appid) {
                let key = match managed.kind {
                    crate::tokens::AppKind::Component => "component_appsecret",
                    crate::tokens::AppKind::MiniProgram => "appsecret",
                };
                let _ = writeln!(out, "{key} = \"{}\"", mask(managed.secret.expose().len()));
            }
        }
        out
    }

    /// The top-level keys of the token service: before the first table.
    fn top_level_toml(&self) -> String {
        format!(
            "api_base = \"{}\"\nsecrets_key = \"{}\"\n",
            self.tokens.api_base,
            if self.tokens.secrets_key.is_some() {
                mask(44)
            } else {
                String::new()
            },
        )
    }

    /// `[tokens]` and `[admin]`.
    fn tokens_toml(&self) -> String {
        format!(
            "\n[tokens]\nrefresh_margin_secs = {}\n\n[categories]\nreconcile_secs = {}\n\n[admin]\napi_token = \"{}\"\n# the console is {}\nsecure_cookies = {}\n",
            self.tokens.refresh_margin.as_secs(),
            self.categories_reconcile.map_or(0, |d| d.as_secs()),
            self.admin_api_token
                .as_ref()
                .map_or_else(String::new, |t| mask(t.expose().len())),
            if self.console.is_some() { "on" } else { "off" },
            self.console.as_ref().is_some_and(|c| c.secure_cookies),
        )
    }

    /// The `[[routes]]` tables, unless the only route is the implicit `default`.
    fn routes_toml(&self) -> String {
        let mut out = String::new();
        let implicit = self.routes.len() == 1
            && self.routes[0].filter
                == crate::dispatch::RouteFilter::all(crate::store::DEFAULT_ROUTE)
            && self.routes[0].handler == self.handler;
        if !implicit {
            for route in &self.routes {
                let _ = write!(
                    out,
                    "\n[[routes]]\nname = \"{}\"\nhandler = \"{}\"\nevents = {:?}\napps = {:?}\n",
                    route.filter.name,
                    route.handler.name(),
                    route.filter.events,
                    route.filter.apps
                );
                out.push_str(&handler_toml(&route.handler, Some(&route.filter.name)));
            }
        }
        out
    }
}

/// A handler's settings as TOML: a table of their own, or inline in a route's table.
fn handler_toml(handler: &HandlerKind, route: Option<&str>) -> String {
    let (open, sep, close) = match route {
        None => ("\n[{}]\n", "\n", "\n"),
        Some(_) => ("{} = { ", ", ", " }\n"),
    };
    let fields = match handler {
        HandlerKind::Log => return String::new(),
        HandlerKind::Webhook(w) => (
            "webhook",
            vec![
                format!("url = \"{}\"", w.url),
                format!(
                    "secret = \"{}\"",
                    w.secret
                        .as_ref()
                        .map_or_else(|| "(none)".to_owned(), |s| mask(s.expose().len()))
                ),
                format!("timeout_secs = {}", w.timeout.as_secs()),
            ],
        ),
        HandlerKind::Command(c) => (
            "command",
            vec![
                format!("program = {:?}", c.program),
                format!("shell = {}", c.shell),
                format!("timeout_secs = {}", c.timeout.as_secs()),
            ],
        ),
    };
    format!(
        "{}{}{close}",
        open.replace("{}", fields.0),
        fields.1.join(sep)
    )
}

fn mask(len: usize) -> String {
    format!("******** ({len} characters, hidden)")
}
