//! Standard output that never panics: `println!` panics when the reader has gone away
//! (`wxpush simulate --print | head -1`); these writes return the error instead, and `main`
//! ends quietly on a closed pipe.

use std::io::Write as _;

/// Writes one line to stdout.
///
/// # Errors
/// The write's error, `BrokenPipe` when the reader has closed the pipe.
pub(crate) fn line(args: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(args)?;
    out.write_all(b"\n")
}

/// Writes text to stdout as is.
///
/// # Errors
/// As [`line`].
pub(crate) fn text(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// Writes one line to stderr, ignoring a closed stderr.
pub(crate) fn error_line(args: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "{args}");
}

/// Whether `error` (or its cause) is a write to a pipe whose reader has gone.
pub(crate) fn is_closed_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
