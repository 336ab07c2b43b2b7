//! `wxpush events replay` and `wxpush events discard`: deliveries chosen by id or by
//! filters, a summary of what will be touched, a question before touching more than 100,
//! and progress on a terminal.

use std::collections::BTreeMap;
use std::io::{BufRead as _, IsTerminal as _, Write as _};

use anyhow::{Context as _, bail};
use clap::Args;
use wxpush::clock;
use wxpush::escape::Printable;
use wxpush::store::{DeliveryKey, ListFilter, QuarantinedPush, Status, Store};

/// Above this many, a bulk operation asks first (or needs `--yes`).
const ASK_ABOVE: usize = 100;

/// Deliveries changed per store call.
const CHUNK: usize = 500;

/// Which deliveries a bulk operation touches: ids, or filters, or both.
#[derive(Debug, Args)]
pub(crate) struct Selection {
    /// Event ids (evt_…); for discard also quarantine ids (q_…). Every route's delivery of
    /// each, narrowed by the filters.
    ids: Vec<String>,
    /// Only deliveries in this state: pending, delivered, dead, discarded (discard: also
    /// quarantined, for quarantined pushes).
    #[arg(long)]
    pub(crate) status: Option<String>,
    /// Only events with this name (e.g. wxa_category_audit).
    #[arg(long)]
    event: Option<String>,
    /// Only events of this app (its configured name).
    #[arg(long)]
    app: Option<String>,
    /// Only deliveries to this route.
    #[arg(long)]
    route: Option<String>,
    /// Only events received at or after this time (RFC 3339, e.g. 2026-11-28T08:00:00+08:00,
    /// or a date).
    #[arg(long)]
    since: Option<String>,
    /// Only events received before this time (RFC 3339, or a date).
    #[arg(long)]
    until: Option<String>,
    /// Do not ask before touching more than 100.
    #[arg(long, short = 'y')]
    yes: bool,
}

/// What a bulk operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    /// Make deliveries pending again, due now, with a fresh schedule.
    Replay,
    /// Dismiss dead or pending deliveries, and quarantined pushes.
    Discard,
}

impl Operation {
    fn verb(self) -> &'static str {
        match self {
            Self::Replay => "replay",
            Self::Discard => "discard",
        }
    }
}

/// What the selection found.
struct Found {
    deliveries: Vec<(DeliveryKey, Status)>,
    quarantined: Vec<String>,
    missing: Vec<String>,
}

/// Runs a bulk replay or discard of `selection`.
pub(crate) async fn run(
    store: &dyn Store,
    op: Operation,
    selection: Selection,
) -> anyhow::Result<()> {
    let filter = selection.filter()?;
    let has_filter = filter != ListFilter::default();
    if selection.ids.is_empty() && !has_filter {
        bail!(
            "give event ids, or filters (--status, --event, --app, --route, --since, --until) to choose what to {}",
            op.verb()
        );
    }
    let found = find(store, op, &selection, &filter).await?;
    let total = found.deliveries.len() + found.quarantined.len();
    summarize(op, &found)?;
    if total > ASK_ABOVE && !selection.yes && !confirm(op, total)? {
        bail!("nothing changed");
    }
    let done = apply(store, op, &found).await?;
    match op {
        Operation::Replay => outln!("{done} delivery(ies) queued for delivery")?,
        Operation::Discard => {
            outln!("{done} discarded")?;
            if done < total {
                outln!(
                    "{} left as they were: delivered already, or being delivered right now",
                    total - done
                )?;
            }
        }
    }
    if !found.missing.is_empty() {
        bail!(
            "no event with id {} (`wxpush events list` shows the ids)",
            found.missing.join(", ")
        );
    }
    Ok(())
}

impl Selection {
    /// The filters as the store takes them.
    fn filter(&self) -> anyhow::Result<ListFilter> {
        let status = match self.status.as_deref() {
            None => None,
            Some(text) => Some(Status::parse(text).with_context(|| {
                format!(
                    "--status: expected pending, delivered, dead, discarded or quarantined, got '{}'",
                    Printable(text)
                )
            })?),
        };
        let time = |flag: &str, value: &Option<String>| -> anyhow::Result<Option<i64>> {
            value
                .as_deref()
                .map(|t| clock::parse_rfc3339(t).map_err(|e| anyhow::anyhow!("{flag}: {e}")))
                .transpose()
        };
        Ok(ListFilter {
            status,
            event: self.event.clone(),
            app: self.app.clone(),
            route: self.route.clone(),
            since: time("--since", &self.since)?,
            until: time("--until", &self.until)?,
            limit: 0,
        })
    }
}

/// The deliveries (and quarantined pushes) the selection names.
async fn find(
    store: &dyn Store,
    op: Operation,
    selection: &Selection,
    filter: &ListFilter,
) -> anyhow::Result<Found> {
    let mut found = Found {
        deliveries: Vec::new(),
        quarantined: Vec::new(),
        missing: Vec::new(),
    };
    let quarantine_wanted = filter.status == Some(Status::Quarantined);
    if quarantine_wanted && (filter.event.is_some() || filter.route.is_some()) {
        bail!("--event and --route do not apply to quarantined pushes: they are not events yet");
    }
    if quarantine_wanted && op == Operation::Replay {
        bail!("quarantined pushes are re-processed with `wxpush events retry-quarantined`");
    }
    let quarantined = if quarantine_wanted || selection.ids.iter().any(|i| i.starts_with("q_")) {
        store.quarantined(usize::MAX).await?
    } else {
        Vec::new()
    };
    let in_window = |push: &QuarantinedPush| {
        filter.app.as_ref().is_none_or(|a| *a == push.app)
            && filter.since.is_none_or(|t| push.received_at >= t)
            && filter.until.is_none_or(|t| push.received_at < t)
    };
    if selection.ids.is_empty() {
        if quarantine_wanted {
            found.quarantined = quarantined
                .iter()
                .filter(|p| in_window(p))
                .map(|p| p.id.clone())
                .collect();
        } else {
            found.deliveries = store.deliveries_matching(filter.clone()).await?;
        }
        return Ok(found);
    }
    for id in &selection.ids {
        if id.starts_with("q_") {
            if op == Operation::Replay {
                bail!(
                    "{} is a quarantined push: re-process it with `wxpush events retry-quarantined`",
                    Printable(id)
                );
            }
            match quarantined.iter().find(|p| p.id == *id) {
                Some(push) if in_window(push) => found.quarantined.push(id.clone()),
                Some(_) => {}
                None => found.missing.push(Printable(id).to_string()),
            }
            continue;
        }
        let records = store.get(id.clone()).await?;
        if records.is_empty() {
            found.missing.push(Printable(id).to_string());
        }
        found.deliveries.extend(
            records
                .into_iter()
                .filter(|r| !r.route.is_empty() && matches(filter, r))
                .map(|r| (r.key(), r.status)),
        );
    }
    Ok(found)
}

/// Whether a record passes the filters (for deliveries chosen by id).
fn matches(filter: &ListFilter, r: &wxpush::store::Record) -> bool {
    let received = r.event.received_at.unwrap_or_default();
    filter.status.is_none_or(|s| s == r.status)
        && filter.event.as_deref().is_none_or(|e| e == r.event.name())
        && filter.app.as_ref().is_none_or(|a| *a == r.event.app)
        && filter.route.as_ref().is_none_or(|route| *route == r.route)
        && filter.since.is_none_or(|t| received >= t)
        && filter.until.is_none_or(|t| received < t)
}

/// What will be touched: counts by route and status.
fn summarize(op: Operation, found: &Found) -> std::io::Result<()> {
    let mut by: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for (key, status) in &found.deliveries {
        *by.entry((key.route.as_str(), status.as_str())).or_default() += 1;
    }
    let total = found.deliveries.len() + found.quarantined.len();
    outln!("{} would touch {total}:", op.verb())?;
    for ((route, status), n) in &by {
        outln!("  route {}: {n} {status}", Printable(route))?;
    }
    if !found.quarantined.is_empty() {
        outln!("  {} quarantined push(es)", found.quarantined.len())?;
    }
    Ok(())
}

/// Asks on a terminal; refuses elsewhere (a script must say `--yes`).
fn confirm(op: Operation, total: usize) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        bail!(
            "{total} match, more than {ASK_ABOVE}: run again with --yes to {} them all",
            op.verb()
        );
    }
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "{} all {total}? [y/N] ", op.verb());
    let _ = err.flush();
    drop(err);
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

/// Applies the operation in chunks, with progress on a terminal; returns how many changed.
async fn apply(store: &dyn Store, op: Operation, found: &Found) -> anyhow::Result<usize> {
    let keys: Vec<DeliveryKey> = found.deliveries.iter().map(|(k, _)| k.clone()).collect();
    let total = keys.len() + found.quarantined.len();
    let progress = std::io::stderr().is_terminal() && total > CHUNK;
    let mut done = 0;
    let mut seen = 0;
    for chunk in keys.chunks(CHUNK) {
        done += match op {
            Operation::Replay => store.replay_deliveries(chunk.to_vec()).await?,
            Operation::Discard => store.discard(chunk.to_vec()).await?,
        };
        seen += chunk.len();
        if progress {
            let _ = write!(std::io::stderr(), "\r{} {seen}/{total}", op.verb());
        }
    }
    for chunk in found.quarantined.chunks(CHUNK) {
        done += store.discard_quarantined(chunk.to_vec()).await?;
        seen += chunk.len();
        if progress {
            let _ = write!(std::io::stderr(), "\r{} {seen}/{total}", op.verb());
        }
    }
    if progress {
        let _ = writeln!(std::io::stderr());
    }
    Ok(done)
}
