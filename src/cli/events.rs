//! `wxpush events …`: inspect and repair the inbox, against the same data dir as a running
//! server.

use anyhow::{Context as _, bail};
use clap::Subcommand;
use wxpush::Config;

use super::bulk;
use wxpush::clock;
use wxpush::escape::Printable;
use wxpush::store::{ListFilter, Record, Status, Store};

/// The `events` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum EventsCommand {
    /// List events, newest first.
    List {
        /// Only events in this state: pending, delivered, dead, discarded or quarantined.
        #[arg(long)]
        status: Option<String>,
        /// Only events with this name (e.g. wxa_category_audit).
        #[arg(long)]
        event: Option<String>,
        /// Only deliveries to this route.
        #[arg(long)]
        route: Option<String>,
        /// Only events of this app (its configured name).
        #[arg(long)]
        app: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one event (or quarantined push) in full.
    Show {
        /// The event id (evt_…) or quarantine id (q_…).
        id: String,
    },
    /// Deliver again: the given events' deliveries, or those the filters choose.
    Replay {
        #[command(flatten)]
        selection: bulk::Selection,
        /// Every dead delivery (as --status dead).
        #[arg(long, conflicts_with = "status")]
        dead: bool,
    },
    /// Dismiss dead or pending deliveries (and quarantined pushes) chosen by id or filters:
    /// kept as `discarded` until retention, no longer counted as dead or quarantined.
    Discard {
        #[command(flatten)]
        selection: bulk::Selection,
    },
    /// Counts by state.
    Stats {
        /// As one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Re-process quarantined pushes with the current configuration.
    RetryQuarantined,
}

/// Runs an `events` subcommand.
pub(crate) fn run(config: &Config, command: EventsCommand) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let store = wxpush::service::open_existing_store(config).await?; // the error names the store and the cause
        match command {
            EventsCommand::List {
                status,
                event,
                route,
                app,
                limit,
                json,
            } => {
                let filter = ListFilter {
                    event,
                    route,
                    app,
                    limit,
                    ..ListFilter::default()
                };
                list(&*store, status, filter, json).await
            }
            EventsCommand::Show { id } => show(&*store, &id).await,
            EventsCommand::Replay {
                mut selection,
                dead,
            } => {
                if dead {
                    selection.status = Some("dead".into());
                }
                bulk::run(&*store, bulk::Operation::Replay, selection).await
            }
            EventsCommand::Discard { selection } => {
                bulk::run(&*store, bulk::Operation::Discard, selection).await
            }
            EventsCommand::Stats { json } => stats(&*store, json).await,
            EventsCommand::RetryQuarantined => retry_quarantined(&*store, config).await,
        }
    })
}

async fn list(
    store: &dyn Store,
    status: Option<String>,
    filter: ListFilter,
    json: bool,
) -> anyhow::Result<()> {
    let limit = filter.limit;
    let status = match status.as_deref() {
        None => None,
        Some(text) => Some(Status::parse(text).with_context(|| {
            format!("--status: expected pending, delivered, dead, discarded or quarantined, got '{text}'")
        })?),
    };
    if status == Some(Status::Quarantined) {
        for push in store.quarantined(limit).await? {
            if json {
                outln!("{}", serde_json::to_string(&push)?)?;
            } else {
                outln!(
                    "{}  {}  quarantined  {}  {}",
                    push.id,
                    clock::rfc3339(push.received_at),
                    Printable(&push.app),
                    Printable(&push.reason)
                )?;
            }
        }
        return Ok(());
    }
    let records = store.list(ListFilter { status, ..filter }).await?;
    if json {
        for record in &records {
            outln!("{}", serde_json::to_string(record)?)?;
        }
        return Ok(());
    }
    if records.is_empty() {
        outln!("no events")?;
        return Ok(());
    }
    outln!(
        "{:<28}  {:<24}  {:<9}  {:<10}  {:<8}  {:<24}  {:>8}  DETAIL",
        "ID",
        "RECEIVED",
        "STATUS",
        "ROUTE",
        "APP",
        "EVENT",
        "ATTEMPTS"
    )?;
    for record in &records {
        outln!(
            "{:<28}  {:<24}  {:<9}  {:<10}  {:<8}  {:<24}  {:>8}  {}",
            record.event.id,
            record
                .event
                .received_at
                .map(clock::rfc3339)
                .unwrap_or_default(),
            record.status.as_str(),
            route_name(&record.route),
            Printable(&record.event.app),
            Printable(record.event.name()),
            record.attempts,
            Printable(&detail(record))
        )?;
    }
    Ok(())
}

/// One line about what the event says.
fn detail(record: &Record) -> String {
    let event = &record.event;
    let mut text = match event.category_audit() {
        Some(audit) => format!(
            "category {}/{} {}{}",
            audit
                .first
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            audit
                .second
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            audit.result.as_str(),
            if audit.reason.is_empty() {
                String::new()
            } else {
                format!(": {}", audit.reason)
            }
        ),
        None => event.to_user_name.clone().unwrap_or_default(),
    };
    if let Some(error) = &record.last_error {
        text.push_str(&format!(" [last error: {error}]"));
    }
    text
}

async fn show(store: &dyn Store, id: &str) -> anyhow::Result<()> {
    if id.starts_with("q_") {
        let Some(push) = store
            .quarantined(usize::MAX)
            .await?
            .into_iter()
            .find(|p| p.id == id)
        else {
            bail!("no quarantined push with id {}", Printable(id));
        };
        outln!("{}", serde_json::to_string_pretty(&push)?)?;
        outln!("query: {}", serde_json::to_string(&push.query)?)?;
        outln!("body:")?;
        print_block(&String::from_utf8_lossy(&push.body))?;
        return Ok(());
    }
    let records = store.get(id.to_owned()).await?;
    let Some(record) = records.first() else {
        bail!(
            "no event with id {} (`wxpush events list` shows the ids)",
            Printable(id)
        );
    };
    outln!("{}", serde_json::to_string_pretty(record)?)?;
    outln!("duplicates answered: {}", record.duplicates)?;
    outln!("deliveries, one per route:")?;
    for record in &records {
        show_delivery(record)?;
    }
    outln!("raw message:")?;
    print_block(&record.event.raw)?;
    Ok(())
}

/// A route's name as printed: the delivered-to-nobody route has none.
fn route_name(route: &str) -> Printable<'_> {
    Printable(if route.is_empty() {
        "(no route)"
    } else {
        route
    })
}

/// One route's delivery state, on a few indented lines.
fn show_delivery(record: &Record) -> std::io::Result<()> {
    if record.route.is_empty() {
        return outln!("  no route takes this event: stored, delivered to none");
    }
    outln!(
        "  {}: {}, {} attempt(s)",
        route_name(&record.route),
        record.status.as_str(),
        record.attempts
    )?;
    if let Some(error) = &record.last_error {
        outln!("    last error: {}", Printable(error))?;
    }
    match (&record.lease, record.next_attempt_at) {
        (Some(lease), _) => outln!(
            "    leased to {} until {} (then any instance may take it)",
            Printable(&lease.owner),
            clock::rfc3339(lease.until)
        )?,
        (None, Some(at)) => outln!("    next attempt: {}", clock::rfc3339(at))?,
        (None, None) => {}
    }
    if let Some(at) = record.delivered_at {
        outln!("    delivered at: {}", clock::rfc3339(at))?;
    }
    Ok(())
}

/// Prints untrusted multi-line text as a block: every line behind `  | `, so none of it can
/// pass for a line of ours, with control characters escaped.
fn print_block(text: &str) -> std::io::Result<()> {
    for line in text.split('\n') {
        outln!("  | {}", Printable(line.strip_suffix('\r').unwrap_or(line)))?;
    }
    Ok(())
}

async fn stats(store: &dyn Store, json: bool) -> anyhow::Result<()> {
    let stats = store.stats().await?;
    if json {
        outln!("{}", serde_json::to_string(&stats)?)?;
        return Ok(());
    }
    outln!("pending:     {}", stats.pending)?;
    outln!("delivered:   {}", stats.delivered)?;
    outln!("dead:        {}", stats.dead)?;
    outln!("quarantined: {}", stats.quarantined)?;
    outln!("discarded:   {}", stats.discarded)?;
    outln!(
        "duplicates:  {} (platform retries answered without storing again)",
        stats.duplicates
    )?;
    if let Some(at) = stats.oldest_pending_at {
        outln!("oldest pending received at {}", clock::rfc3339(at))?;
    }
    Ok(())
}

async fn retry_quarantined(store: &dyn Store, config: &Config) -> anyhow::Result<()> {
    let report = wxpush::quarantine::retry_all(
        store,
        &config.apps().cloned().collect::<Vec<_>>(),
        &config.routing(),
    )
    .await?;
    outln!(
        "{} released as new events, {} were duplicates, {} still failing",
        report.released,
        report.duplicates,
        report.still_failing.len()
    )?;
    for (id, reason) in &report.still_failing {
        outln!("  {id}: {reason}")?;
    }
    if report.still_failing.is_empty() {
        Ok(())
    } else {
        bail!(
            "{} quarantined push(es) still cannot be processed",
            report.still_failing.len()
        )
    }
}
