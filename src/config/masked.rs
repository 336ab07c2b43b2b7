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
            "listen = \"{}\"\nadmin_listen = \"{}\"\nallow_demo_credentials = {}\nbody_limit_bytes = {}\nhandler = \"{}\"\ndata_dir = \"{}\"\nstore = \"{}\"\nmax_clock_skew_secs = {}\nretention_days = {}\n\n[http]\nheader_timeout_secs = {}\nidle_timeout_secs = {}\nmax_connections = {}\n\n[delivery]\nattempt_timeout_secs = {}\nmax_attempts = {}\nbackoff_initial_ms = {}\nbackoff_max_secs = {}\n\n[log]\nformat = \"{format}\"\n",
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
            self.delivery.max_attempts,
            self.delivery.backoff_initial.as_millis(),
            self.delivery.backoff_max.as_secs(),
        );
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
        match &self.handler {
            HandlerKind::Log => {}
            HandlerKind::Webhook(w) => {
                let _ = write!(
                    out,
                    "\n[webhook]\nurl = \"{}\"\nsecret = \"{}\"\ntimeout_secs = {}\n",
                    w.url,
                    w.secret
                        .as_ref()
                        .map_or_else(|| "(none)".to_owned(), |s| mask(s.expose().len())),
                    w.timeout.as_secs()
                );
            }
            HandlerKind::Command(c) => {
                let _ = write!(
                    out,
                    "\n[command]\nprogram = {:?}\nshell = {}\ntimeout_secs = {}\n",
                    c.program,
                    c.shell,
                    c.timeout.as_secs()
                );
            }
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
        }
        out
    }
}

fn mask(len: usize) -> String {
    format!("******** ({len} characters, hidden)")
}
