//! The libraries' floor for converting an input: how long gunzip alone, and gunzip plus
//! simd-json's tape of every line, take on this machine, with nothing of Tidewater's
//! own work past its reader (no validation, shaping, encoding or writing). It tells how
//! close `tidewater convert` is to what its parser and inflater allow.
//!
//! `cargo run --release --example floor -- bench.jsonl.gz [gunzip|parse|snappy] [THREADS]`
//!
//! - `gunzip`: `convert`'s reader alone: inflate (zlib-rs through flate2) and cut into
//!   blocks of whole lines, which are dropped.
//! - `parse` (the default): the same, with every line parsed into a tape on THREADS
//!   workers (default: available cores).
//! - `snappy`: the same blocks compressed in 1 MiB pages on THREADS workers: snappy's
//!   speed on this machine, per CPU-second (convert's Parquet pages are not the input
//!   text, so this gives a rate, not convert's snappy time).
//!
//! Prints wall time, CPU time (user + system of the process) and input MB/s.

use std::time::Instant;

use crossbeam_channel::bounded;
use tidewater::{frame_input, Block, FrameConfig};

/// `convert`'s allocator, so that blocks cost what they cost there.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PAGE_BYTES: usize = 1 << 20;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else {
        eprintln!("usage: floor INPUT.jsonl.gz [gunzip|parse|snappy] [THREADS]");
        std::process::exit(2);
    };
    let mode = args.get(1).map_or("parse", String::as_str);
    if !matches!(mode, "gunzip" | "parse" | "snappy") {
        eprintln!("floor: unknown mode {mode:?}: use gunzip, parse or snappy");
        std::process::exit(2);
    }
    let threads = match args.get(2) {
        Some(n) => n.parse()?,
        None => std::thread::available_parallelism().map_or(2, |n| n.get()),
    };

    let started = Instant::now();
    let cpu_before = cpu_seconds();
    let (tx, rx) = bounded::<Block>(threads * 2 + 2);
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let rx = rx.clone();
            let mode = mode.to_string();
            std::thread::spawn(move || -> Result<u64, String> {
                let mut work = Work::default();
                for block in rx {
                    match mode.as_str() {
                        "parse" => work.parse(&block.data)?,
                        "snappy" => work.compress(&block.data)?,
                        _ => {}
                    }
                }
                Ok(work.count)
            })
        })
        .collect();
    drop(rx);

    // Read, gunzip and cut into blocks of whole lines as `convert` does.
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open {path}: {e}"))?;
    let input = tidewater::gzip_reader(std::io::BufReader::with_capacity(1 << 20, file));
    let defaults = tidewater::RunOptions::default();
    let config = FrameConfig {
        block_bytes: defaults.block_bytes,
        max_line_bytes: defaults.max_line_bytes,
    };
    // `send` fails only when a worker stopped: its error is reported below.
    let end = frame_input(input, 0, config, |block| tx.send(block).is_ok());
    drop(tx);
    let mut count = 0;
    for w in workers {
        count += w.join().map_err(|_| "a worker panicked")??;
    }
    let end = end.ok_or("reading stopped early")?;
    if let Some(reason) = end.incomplete {
        return Err(format!("{path} is incomplete: {reason}").into());
    }
    let total = end.bytes;
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    let what = match mode {
        "parse" => format!("{count} lines parsed"),
        "snappy" => format!("{:.1} MB compressed", count as f64 / 1e6),
        _ => "read only".to_string(),
    };
    println!(
        "{mode}: {:.1} MB of text, {what}; {wall:.2} s wall, {cpu:.2} CPU-s, {:.0} MB/s, \
         {:.0} MB per CPU-s ({threads} worker threads)",
        total as f64 / 1e6,
        total as f64 / wall / 1e6,
        total as f64 / cpu / 1e6,
    );
    Ok(())
}

/// One worker's reusable state.
struct Work {
    scratch: Vec<u8>,
    buffers: simd_json::Buffers,
    tape: Option<simd_json::Tape<'static>>,
    page: Vec<u8>,
    snappy: snap::raw::Encoder,
    /// Lines parsed or bytes compressed.
    count: u64,
}

impl Default for Work {
    fn default() -> Self {
        Work {
            scratch: Vec::new(),
            buffers: simd_json::Buffers::default(),
            tape: None,
            page: Vec::new(),
            snappy: snap::raw::Encoder::new(),
            count: 0,
        }
    }
}

impl Work {
    fn parse(&mut self, block: &[u8]) -> Result<(), String> {
        for line in block.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            self.scratch.clear();
            self.scratch.extend_from_slice(line);
            self.scratch
                .resize(line.len() + simd_json::INPUT_PADDING, 0);
            let mut tape = self
                .tape
                .take()
                .unwrap_or_else(|| simd_json::Tape::null().reset())
                .reset();
            simd_json::fill_tape_padded(
                &mut self.scratch,
                line.len(),
                &mut self.buffers,
                &mut tape,
            )
            .map_err(|e| format!("line {}: {e}", self.count + 1))?;
            self.tape = Some(tape.reset());
            self.count += 1;
        }
        Ok(())
    }

    fn compress(&mut self, block: &[u8]) -> Result<(), String> {
        for page in block.chunks(PAGE_BYTES) {
            self.page.resize(snap::raw::max_compress_len(page.len()), 0);
            self.snappy
                .compress(page, &mut self.page)
                .map_err(|e| e.to_string())?;
            self.count += page.len() as u64;
        }
        Ok(())
    }
}

/// User plus system CPU time of the process so far.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}
