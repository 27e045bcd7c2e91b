//! What the library's `tracing` events look like on the terminal: `tidewater: <message>`
//! on stderr, as the CLI's own lines; retries, resumed and failed windows at `info` and
//! above, nothing with `--quiet`. `TIDEWATER_LOG` (`debug`, `trace`, ...) shows more.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// Shows the library's events on stderr for the rest of the process.
pub fn init(quiet: bool) {
    if quiet {
        return;
    }
    let level: Level = std::env::var("TIDEWATER_LOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(Level::INFO);
    // Only Tidewater's own events: at debug, the HTTP stack's would drown them.
    let ours = Targets::new().with_target("tidewater", level);
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(|| LogLine(Vec::new()))
                .event_format(MessageOnly),
        )
        .with(ours)
        .try_init();
}

/// The server's log (P42): one line per event on stderr with its time, level and
/// fields, or one JSON object per line with `json`. `TIDEWATER_LOG` sets the level.
pub fn init_server(json: bool) {
    let level: Level = std::env::var("TIDEWATER_LOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(Level::INFO);
    let ours = Targets::new().with_target("tidewater", level);
    let registry = tracing_subscriber::registry().with(ours);
    let _ = if json {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(std::io::stderr),
            )
            .try_init()
    } else {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_target(false)
                    .with_ansi(false)
                    // The message says the fields in words; JSON logs carry them.
                    .fmt_fields(tracing_subscriber::fmt::format::debug_fn(
                        |writer, field, value| {
                            if field.name() == "message" {
                                write!(writer, "{value:?}")
                            } else {
                                Ok(())
                            }
                        },
                    ))
                    .with_writer(std::io::stderr),
            )
            .try_init()
    };
}

/// `tidewater: `, `warning: ` for warnings, and the event's message; its other fields are for structured
/// consumers (the service), and the message already says them in words.
struct MessageOnly;

impl<S, N> FormatEvent<S, N> for MessageOnly
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut message = Message(String::new());
        event.record(&mut message);
        let level = match *event.metadata().level() {
            Level::ERROR => "error: ",
            Level::WARN => "warning: ",
            _ => "",
        };
        writeln!(writer, "tidewater: {level}{}", message.0)
    }
}

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0 = value.to_string();
        }
    }
}

/// One formatted event, written to stderr in one piece above the progress bar.
struct LogLine(Vec<u8>);

impl std::io::Write for LogLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        crate::progress::above_the_bar(|| {
            let _ = std::io::Write::write_all(&mut std::io::stderr(), &self.0);
        });
    }
}
