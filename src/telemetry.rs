//! Logging setup: `tracing` to stderr, text or JSON, filtered by `RUST_LOG`.

use std::io::IsTerminal as _;

use std::fmt::Write as _;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::MakeExt as _;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format;

use crate::escape::EscapingWriter;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The filter used when `RUST_LOG` is not set.
pub const DEFAULT_FILTER: &str = "wxpush=info,tower_http=warn";

/// Installs the global subscriber, writing to stderr directly. Calling it twice is harmless
/// (the second call is ignored).
pub fn init(format: LogFormat) {
    install(format, std::io::stderr, DEFAULT_FILTER);
}

/// Like [`init`], with `default_filter` used when `RUST_LOG` is not set: a program embedding
/// wxpush adds its own target, e.g. `"wxpush=info,my_service=info"`.
pub fn init_with(format: LogFormat, default_filter: &str) {
    install(format, std::io::stderr, default_filter);
}

/// Installs the global subscriber with stderr written by a background thread, so that request
/// and delivery threads never wait on a write to a slow terminal or pipe. Nothing is dropped
/// (a full buffer makes the logger wait); keep the guard alive until exit, which flushes it.
pub fn init_buffered(format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        // A short queue: enough to absorb bursts, small enough to keep memory flat.
        .buffered_lines_limit(4096)
        .thread_name("wxpush-log")
        // The thread writes every queued line, then flushes: under load many lines share one
        // write to stderr instead of one system call each.
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stderr(),
        ));
    install(format, writer, DEFAULT_FILTER);
    guard
}

/// The text format's field writer: every value, the message included, is written through
/// an [`EscapingWriter`], so no field from a push can put a raw CR, LF or ESC into a line.
fn escaping_fields() -> impl for<'w> FormatFields<'w> + Send + Sync + 'static {
    format::debug_fn(|writer, field, value| {
        if field.name() != "message" {
            write!(writer, "{field}=")?;
        }
        write!(EscapingWriter(writer), "{value:?}")
    })
    .delimited(" ")
}

fn install<W>(format: LogFormat, writer: W, default_filter: &str)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    // The PostgreSQL client logs every statement's parameters at debug level: push bodies,
    // and credentials when secrets_key is not set. Whatever RUST_LOG asks, it stops at info.
    let filter = match "tokio_postgres=info".parse() {
        Ok(cap) => filter.add_directive(cap),
        Err(_) => filter,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    let _already_set = match format {
        LogFormat::Text => builder.fmt_fields(escaping_fields()).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
