//! Progress of a long run on stderr: a bar on a terminal, otherwise a log line every few
//! seconds. One loop for every command; a [`Meter`] says what to show.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use tidewater::export::{ExportProgress, Exporter};
use tidewater::{Converter, Progress};

/// What a run reports while it goes.
pub enum Meter {
    /// A conversion: bytes read of the inputs' total, events.
    Convert(Arc<Progress>),
    /// An export: windows committed of those to do, bytes received, retries, waiting.
    Export(Arc<Progress>, Arc<ExportProgress>),
}

impl Meter {
    pub fn convert(converter: &Converter) -> Meter {
        Meter::Convert(converter.progress())
    }

    pub fn export(exporter: &Exporter) -> Meter {
        Meter::Export(exporter.progress(), exporter.export_progress())
    }

    /// How often the display is updated, and how often a log line is written when
    /// stderr is not a terminal.
    fn intervals(&self) -> (Duration, Duration) {
        match self {
            Meter::Convert(_) => (Duration::from_millis(100), Duration::from_secs(5)),
            Meter::Export(..) => (Duration::from_millis(200), Duration::from_secs(10)),
        }
    }

    fn bar(&self) -> ProgressBar {
        match self {
            // A spinner until the size of the inputs is known: the run records it once
            // it has opened them, which is usually after this thread starts (stdin never
            // has one).
            Meter::Convert(_) => {
                let bar = ProgressBar::new_spinner();
                bar.set_style(style("{spinner} {bytes} read, {msg} ({bytes_per_sec})"));
                bar
            }
            Meter::Export(..) => {
                let bar = ProgressBar::new(0);
                bar.set_style(style(
                    "{bar:25} {pos}/{len} windows, {msg} ({elapsed}, ETA {eta})",
                ));
                bar
            }
        }
    }

    fn update(&self, bar: &ProgressBar) {
        match self {
            Meter::Convert(p) if finishing(p) => {
                // Reading is done; files are written and windows committed: a phase of
                // its own, up to half of a multischema run.
                let files = p.files_total.load(Ordering::Relaxed);
                if files == 0 {
                    bar.set_style(style("{spinner} {msg} ({elapsed})"));
                } else if bar.length() != Some(files) {
                    bar.set_length(files);
                    bar.set_position(0);
                    bar.reset_eta();
                    bar.set_style(style(
                        "{bar:30} {pos}/{len} files written, {msg} ({elapsed}, ETA {eta})",
                    ));
                }
                bar.set_position(p.files_written.load(Ordering::Relaxed));
                bar.set_message(finishing_message(p));
            }
            Meter::Convert(p) => {
                let total = p.input_total.load(Ordering::Relaxed);
                if total > 0 && bar.length() != Some(total) {
                    bar.set_length(total);
                    bar.set_style(style(
                        "{bar:30} {bytes}/{total_bytes} read, {msg} ({bytes_per_sec}, ETA {eta})",
                    ));
                }
                bar.set_position(p.input_bytes.load(Ordering::Relaxed));
                bar.set_message(format!("{} events", p.events.load(Ordering::Relaxed)));
            }
            Meter::Export(p, e) => {
                bar.set_length(e.windows_total.load(Ordering::Relaxed));
                bar.set_position(e.windows_done.load(Ordering::Relaxed));
                bar.set_message(export_message(p, e, bar.elapsed()));
            }
        }
    }

    fn log_line(&self, elapsed: Duration) -> String {
        match self {
            Meter::Convert(p) if finishing(p) => {
                format!(
                    "tidewater: {}/{} files written, {}",
                    p.files_written.load(Ordering::Relaxed),
                    p.files_total.load(Ordering::Relaxed),
                    finishing_message(p)
                )
            }
            Meter::Convert(p) => {
                let total = p.input_total.load(Ordering::Relaxed);
                let read = p.input_bytes.load(Ordering::Relaxed);
                let pct = if total > 0 {
                    format!(" ({:.0}%)", read as f64 * 100.0 / total as f64)
                } else {
                    String::new()
                };
                format!(
                    "tidewater: {:.1} MB read{pct}, {} events, {:.1} MB/s",
                    read as f64 / 1e6,
                    p.events.load(Ordering::Relaxed),
                    read as f64 / 1e6 / elapsed.as_secs_f64()
                )
            }
            Meter::Export(p, e) => format!(
                "tidewater: {}/{} windows, {}",
                e.windows_done.load(Ordering::Relaxed),
                e.windows_total.load(Ordering::Relaxed),
                export_message(p, e, elapsed)
            ),
        }
    }
}

/// Whether a conversion has read its inputs and is writing its files.
fn finishing(p: &Progress) -> bool {
    let total = p.input_total.load(Ordering::Relaxed);
    p.files_total.load(Ordering::Relaxed) > 0
        || (total > 0 && p.input_bytes.load(Ordering::Relaxed) >= total)
}

fn finishing_message(p: &Progress) -> String {
    match p.files_total.load(Ordering::Relaxed) {
        0 => format!(
            "{} events read; encoding the last row groups",
            p.events.load(Ordering::Relaxed)
        ),
        _ => format!(
            "{} windows committed",
            p.windows_committed.load(Ordering::Relaxed)
        ),
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).expect("valid template")
}

/// The export's counts, in the summary's units: MB of JSON (decompressed), and the
/// compressed MB received beside them.
fn export_message(p: &Progress, e: &ExportProgress, elapsed: Duration) -> String {
    let mb = p.decompressed_bytes.load(Ordering::Relaxed) as f64 / 1e6;
    let received = e.bytes_received.load(Ordering::Relaxed) as f64 / 1e6;
    format!(
        "{} events, {mb:.1} MB ({:.1} MB/s; {received:.1} MB received compressed), {} retries, {:.0}s waiting on rate limits",
        p.events.load(Ordering::Relaxed),
        mb / elapsed.as_secs_f64().max(1e-3),
        e.retries.load(Ordering::Relaxed),
        e.rate_limit_wait_ms.load(Ordering::Relaxed) as f64 / 1e3
    )
}

/// Runs `run` while a thread shows `meter` (nothing when `quiet`).
pub fn run_with_progress<T>(meter: Meter, quiet: bool, run: impl FnOnce() -> T) -> T {
    let done = Arc::new(AtomicBool::new(false));
    let reporter = (!quiet).then(|| {
        let done = done.clone();
        std::thread::spawn(move || show(&meter, &done))
    });
    let result = run();
    done.store(true, Ordering::Relaxed);
    if let Some(r) = reporter {
        let _ = r.join();
    }
    result
}

/// The bar on screen, if any: log lines are written above it (see [`above_the_bar`]).
static SHOWN: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Runs `write` with the bar (if one is shown) taken off the screen and drawn again
/// after it, so that a log line does not leave a stale copy of the bar behind.
pub fn above_the_bar(write: impl FnOnce()) {
    let shown = SHOWN.lock().unwrap_or_else(|e| e.into_inner()).clone();
    match shown {
        Some(bar) => bar.suspend(write),
        None => write(),
    }
}

fn show(meter: &Meter, done: &AtomicBool) {
    let start = Instant::now();
    let (tick, log_every) = meter.intervals();
    let bar = std::io::stderr().is_terminal().then(|| meter.bar());
    *SHOWN.lock().unwrap_or_else(|e| e.into_inner()) = bar.clone();
    let mut last_log = Instant::now();
    while !done.load(Ordering::Relaxed) {
        std::thread::sleep(tick);
        match &bar {
            Some(bar) => meter.update(bar),
            None if last_log.elapsed() >= log_every => {
                last_log = Instant::now();
                eprintln!("{}", meter.log_line(start.elapsed()));
            }
            None => {}
        }
    }
    SHOWN.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}
