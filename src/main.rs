//! The `wxpush` binary: the allocator, then the subcommands in [`cli`].

/// `println!` that returns an `io::Result` instead of panicking on a closed stdout.
macro_rules! outln {
    ($($arg:tt)*) => { $crate::cli::out::line(format_args!($($arg)*)) };
}

mod cli;

/// mimalloc instead of the system allocator: a push allocates a few buffers over 1 KiB, which
/// glibc's malloc handles on its slow path (bin consolidation); under load mimalloc needs
/// about 6 µs less CPU per push. Transparent huge pages stay off (`no_thp`), which keeps
/// the resident set within the benchmark's bound (see docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}
