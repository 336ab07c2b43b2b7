//! What durability costs on a disk: CPU and wall time of one `fdatasync` after writing a
//! batch of push-sized records, for several batch sizes.
//!
//! ```sh
//! cargo run --release --example fsync_cost -- [--dir DATA_DIR] [--record-bytes 1400]
//! ```
//!
//! wxpush answers a push only once it is on disk, and a batch of pushes shares one flush
//! (group commit). The flush is not free in CPU: the kernel writes the pages back from the
//! syncing thread, and on virtual disks the device's queue costs CPU too. This program shows
//! that floor for the disk holding `--dir` (default: the system's temporary directory). It
//! writes a file of its own there and removes it.
//!
//! Two patterns: `append` grows a new file (as a log file does), `overwrite` rewrites a
//! file that already has its blocks (as SQLite's write-ahead log does once it restarts).
//! CPU time is this process's user + system time from `/proc/self/stat` (Linux).

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod support;

/// Batch sizes measured, in records per flush.
const BATCHES: [usize; 5] = [1, 4, 16, 64, 256];

/// Time spent on each batch size and pattern.
const BUDGET: Duration = Duration::from_millis(1500);

/// Size of the overwritten region (the file is preallocated to this).
const REGION: u64 = 32 << 20;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let dir = arg("--dir").map_or_else(std::env::temp_dir, PathBuf::from);
    let record_bytes: usize = arg("--record-bytes")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1400);
    let path = dir.join(format!(".wxpush-fsync-cost-{}", std::process::id()));
    println!(
        "disk of {}: one fdatasync after a batch of {record_bytes}-byte records\n",
        dir.display()
    );
    println!(
        "{:<10} {:>6} {:>10} {:>14} {:>15} {:>16}",
        "pattern", "batch", "flushes", "wall/flush", "CPU/flush", "CPU/record"
    );
    let result = measure_all(&path, record_bytes);
    let _ = std::fs::remove_file(&path);
    result
}

fn measure_all(path: &Path, record_bytes: usize) -> std::io::Result<()> {
    for batch in BATCHES {
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(path)?;
        let buf = vec![b'x'; record_bytes * batch];
        let m = measure(|| {
            file.write_all(&buf)?;
            file.sync_data()
        })?;
        m.print("append", batch);
    }
    let file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(path)?;
    preallocate(&file)?;
    for batch in BATCHES {
        let buf = vec![b'x'; record_bytes * batch];
        let mut offset = 0u64;
        let m = measure(|| {
            let len = buf.len() as u64;
            if offset + len > REGION {
                offset = 0;
            }
            file.write_all_at(&buf, offset)?;
            offset += len;
            file.sync_data()
        })?;
        m.print("overwrite", batch);
    }
    Ok(())
}

/// Writes the whole region once and flushes it, so that later writes find their blocks.
fn preallocate(file: &File) -> std::io::Result<()> {
    let chunk = vec![0u8; 1 << 20];
    let mut offset = 0u64;
    while offset < REGION {
        file.write_all_at(&chunk, offset)?;
        offset += chunk.len() as u64;
    }
    file.sync_all()
}

/// Flushes done, and the wall and CPU time they took.
struct Measurement {
    flushes: u32,
    wall: Duration,
    cpu: Duration,
}

impl Measurement {
    fn print(&self, pattern: &str, batch: usize) {
        let n = self.flushes.max(1);
        let per_record = self.cpu / n / u32::try_from(batch).unwrap_or(u32::MAX);
        println!(
            "{pattern:<10} {batch:>6} {:>10} {:>11.1} µs {:>12.1} µs {:>13.2} µs",
            self.flushes,
            micros(self.wall / n),
            micros(self.cpu / n),
            micros(per_record),
        );
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Runs `flush` repeatedly for [`BUDGET`].
fn measure(mut flush: impl FnMut() -> std::io::Result<()>) -> std::io::Result<Measurement> {
    let cpu_start = support::cpu_time(None);
    let start = Instant::now();
    let mut flushes = 0u32;
    while start.elapsed() < BUDGET {
        flush()?;
        flushes += 1;
    }
    Ok(Measurement {
        flushes,
        wall: start.elapsed(),
        cpu: support::cpu_time(None).saturating_sub(cpu_start),
    })
}
