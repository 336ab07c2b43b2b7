//! No missed review result: for every account with a submission in review, wxpush pulls
//! `getcategory` every `categories.reconcile_secs` (with jitter). A result no push has
//! reported resolves the submission with an audit event like the push's (`source`
//! `reconciled`), delivered to the routes as a push would be; the push, when it arrives
//! late, is kept and not delivered again. Categories in review that wxpush did not submit
//! are tracked from the first pull that shows them.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::watch;

use super::{CategoryError, CategoryService};
use crate::dispatch::Routing;
use crate::event::{Event, SOURCE_FIELD};
use crate::platform::category::CurrentCategory;
use crate::store::Submission;
use crate::tokens::TokensConfig;

impl CategoryService {
    /// Pulls every account with a pending submission every `every` (±20 %), until `stop`.
    pub async fn reconcile_periodically(
        self,
        every: Duration,
        routing: Routing,
        mut stop: watch::Receiver<bool>,
    ) {
        loop {
            let jitter = every.mul_f64(rand::random_range(0.8..1.2));
            tokio::select! {
                () = tokio::time::sleep(jitter) => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
            match self.reconcile(&routing).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!("reconciled {n} category review result(s) no push had reported")
                }
                Err(error) => tracing::warn!("reconciling category reviews: {error}"),
            }
        }
    }

    /// One round: returns how many results it found before their push.
    ///
    /// # Errors
    /// The first failure; other accounts are still pulled.
    pub async fn reconcile(&self, routing: &Routing) -> Result<usize, CategoryError> {
        let pending = self.store.pending_submissions().await?;
        let mut by_account: BTreeMap<(String, Option<String>), Vec<Submission>> = BTreeMap::new();
        for s in pending {
            by_account
                .entry((s.app.clone(), s.authorizer_appid.clone()))
                .or_default()
                .push(s);
        }
        let mut found = 0;
        let mut first_error = None;
        for ((app, authorizer), waiting) in by_account {
            let Some(appid) = account(self.tokens.config(), &app, authorizer.as_deref()) else {
                continue;
            };
            match self
                .reconcile_account(&app, &appid, authorizer.as_deref(), &waiting, routing)
                .await
            {
                Ok(n) => found += n,
                Err(error) => {
                    tracing::warn!(account = %appid, "cannot pull its categories: {error}");
                    first_error.get_or_insert(error);
                }
            }
        }
        match first_error {
            Some(error) if found == 0 => Err(error),
            _ => Ok(found),
        }
    }

    async fn reconcile_account(
        &self,
        app: &str,
        appid: &str,
        authorizer: Option<&str>,
        waiting: &[Submission],
        routing: &Routing,
    ) -> Result<usize, CategoryError> {
        let current = self.current(appid).await?;
        let mut found = 0;
        for c in &current.categories {
            let matches = |s: &&Submission| {
                s.first == c.first.to_string() && s.second == c.second.to_string()
            };
            match (c.audit_status, waiting.iter().find(matches)) {
                (2 | 3, Some(submission)) => {
                    let event = reconciled_event(app, appid, authorizer, submission, c);
                    let routes = routing.routes_for(&event);
                    self.store.record_routed(event, None, routes).await?;
                    found += 1;
                }
                (1, None) => self.track(app, authorizer, c).await?,
                _ => {}
            }
        }
        Ok(found)
    }

    /// Tracks a category in review that wxpush did not submit.
    async fn track(
        &self,
        app: &str,
        authorizer: Option<&str>,
        c: &CurrentCategory,
    ) -> Result<(), CategoryError> {
        let submission = Submission::pending("seen", app, authorizer, c.first, c.second);
        self.store.record_submission(submission).await?;
        tracing::info!(
            first = c.first,
            second = c.second,
            "tracking a category in review that wxpush did not submit"
        );
        Ok(())
    }
}

/// The account whose token pulls `app`'s categories: the authorizer, or a managed Mini
/// Program's own app id.
fn account(config: &TokensConfig, app: &str, authorizer: Option<&str>) -> Option<String> {
    let managed = config.app_named(app)?;
    Some(authorizer.map_or_else(|| managed.appid.clone(), str::to_owned))
}

/// The audit event the push would have been, marked as reconciled and named by its
/// submission, so that every replica and every round makes the same event (one id).
fn reconciled_event(
    app: &str,
    appid: &str,
    authorizer: Option<&str>,
    submission: &Submission,
    c: &CurrentCategory,
) -> Event {
    let cdata = |text: &str| format!("<![CDATA[{}]]>", text.replace("]]>", "]]]]><![CDATA[>"));
    let message = format!(
        "<xml><ToUserName>{}</ToUserName><FromUserName>{}</FromUserName><CreateTime>{}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[wxa_category_audit]]></Event><ret>{}</ret><first>{}</first><second>{}</second><reason>{}</reason><{SOURCE_FIELD}>reconciled</{SOURCE_FIELD}><WxpushSubmission>{}</WxpushSubmission></xml>",
        cdata(appid),
        cdata(appid),
        submission.submitted_at / 1000,
        c.audit_status,
        c.first,
        c.second,
        cdata(&c.audit_reason),
        cdata(&submission.id),
    );
    Event::from_message(message, app, authorizer)
}
