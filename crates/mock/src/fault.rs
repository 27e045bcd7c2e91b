//! Injected faults (XM4): what each does, when it fires, and the `--fault` syntax.

use std::time::Duration;

use tidewater::export::parse_duration;

/// What a fault does to a request (XM4).
#[derive(Debug, Clone, PartialEq)]
pub enum FaultKind {
    /// 429, with a `Retry-After` header when given.
    RateLimited(Option<Duration>),
    /// Any status, e.g. 500, 503, 402, 403.
    Status(u16),
    /// That status, with the request's headers echoed in the body, as some proxies
    /// and debugging servers do.
    EchoHeaders(u16),
    /// `export terminated early` after N lines.
    Terminated(u64),
    /// The body ends in the middle of line N+1 (the stream itself is well formed).
    CutMidLine(u64),
    /// The connection drops after N lines.
    Drop(u64),
    /// The response starts only after this long.
    SlowFirstByte(Duration),
    /// The body pauses this long after N lines.
    Stall(Duration, u64),
}

/// When a fault fires.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultTrigger {
    /// On the next N requests it sees.
    Count(u64),
    /// On each request with this probability.
    Probability(f64),
}

/// One `--fault` spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// What it does.
    pub kind: FaultKind,
    /// When.
    pub trigger: FaultTrigger,
    /// Only on this page of Engage queries (none: on every request).
    pub page: Option<u64>,
    /// The spec as written, for the request log.
    pub spec: String,
}

/// The syntax of `--fault`, also shown by `tidewater mock-server --help`.
pub const FAULT_HELP: &str = "\
KIND[,count=N | ,p=P][,page=N]
  (default count=1; faults are tried in order, one per request; page=N aims a fault at
  page N of Engage queries only; on Engage pages, line counts count profiles)
  429            429 without Retry-After      429=2s      429 with Retry-After: 2
  500, 503, 402, 403, status=NNN              that status with a JSON error body
  echo=NNN       that status, the request's headers echoed in the body (as some proxies do)
  terminated=N   `export terminated early` after N lines
  cut=N          the body ends in the middle of line N+1
  drop=N         the connection drops after N lines
  slow=DUR       the response starts after DUR (e.g. 2s, 500ms)
  stall=DUR@N    the body pauses for DUR after N lines";

impl Fault {
    /// Parses a spec such as `429=1s,count=2`, `drop=100,p=0.1` or `stall=5s@10`.
    pub fn parse(spec: &str) -> std::result::Result<Fault, String> {
        let bad = |why: &str| format!("--fault {spec:?}: {why}\n{FAULT_HELP}");
        let mut parts = spec.split(',');
        let head = parts.next().unwrap_or_default().trim();
        let (kind, arg) = match head.split_once('=') {
            Some((k, a)) => (k, Some(a)),
            None => (head, None),
        };
        let lines = |a: Option<&str>| -> std::result::Result<u64, String> {
            a.ok_or_else(|| bad("needs =N lines"))?
                .parse()
                .map_err(|_| bad("N must be a whole number of lines"))
        };
        let duration = |a: &str| parse_duration(a).map_err(|e| bad(&e));
        let kind = match kind {
            "429" => FaultKind::RateLimited(arg.map(duration).transpose()?),
            "500" | "503" | "402" | "403" | "400" | "401" | "404" if arg.is_none() => {
                FaultKind::Status(kind.parse().expect("listed statuses are numbers"))
            }
            "status" => FaultKind::Status(
                arg.and_then(|a| a.parse().ok())
                    .filter(|s| (400..600).contains(s))
                    .ok_or_else(|| bad("status=NNN needs a 4xx or 5xx status"))?,
            ),
            "echo" => FaultKind::EchoHeaders(
                arg.and_then(|a| a.parse().ok())
                    .filter(|s| (400..600).contains(s))
                    .ok_or_else(|| bad("echo=NNN needs a 4xx or 5xx status"))?,
            ),
            "terminated" => FaultKind::Terminated(lines(arg)?),
            "cut" => FaultKind::CutMidLine(lines(arg)?),
            "drop" => FaultKind::Drop(lines(arg)?),
            "slow" => FaultKind::SlowFirstByte(duration(arg.ok_or_else(|| bad("needs =DUR"))?)?),
            "stall" => {
                let (d, n) = arg
                    .and_then(|a| a.split_once('@'))
                    .ok_or_else(|| bad("needs =DUR@N"))?;
                FaultKind::Stall(duration(d)?, lines(Some(n))?)
            }
            _ => return Err(bad("unknown fault kind")),
        };
        let mut trigger = FaultTrigger::Count(1);
        let mut page = None;
        for p in parts {
            if let Some(n) = p.trim().strip_prefix("page=") {
                page = Some(n.parse().map_err(|_| bad("page must be a number"))?);
                continue;
            }
            trigger = match p.trim().split_once('=') {
                Some(("count", n)) => {
                    FaultTrigger::Count(n.parse().map_err(|_| bad("count must be a number"))?)
                }
                Some(("p", x)) => FaultTrigger::Probability(
                    x.parse::<f64>()
                        .ok()
                        .filter(|p| (0.0..=1.0).contains(p))
                        .ok_or_else(|| bad("p must be between 0 and 1"))?,
                ),
                _ => return Err(bad("expected count=N, p=P or page=N after the kind")),
            };
        }
        Ok(Fault {
            kind,
            trigger,
            page,
            spec: spec.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xm4_fault_specs() {
        assert_eq!(
            Fault::parse("429=2s,count=3").unwrap().kind,
            FaultKind::RateLimited(Some(Duration::from_secs(2)))
        );
        assert_eq!(Fault::parse("429").unwrap().trigger, FaultTrigger::Count(1));
        assert_eq!(
            Fault::parse("503,p=0.5").unwrap().trigger,
            FaultTrigger::Probability(0.5)
        );
        assert_eq!(
            Fault::parse("status=402").unwrap().kind,
            FaultKind::Status(402)
        );
        assert_eq!(Fault::parse("drop=10").unwrap().kind, FaultKind::Drop(10));
        let aimed = Fault::parse("500,count=2,page=3").unwrap();
        assert_eq!(
            (aimed.trigger, aimed.page),
            (FaultTrigger::Count(2), Some(3))
        );
        assert_eq!(
            Fault::parse("stall=500ms@7").unwrap().kind,
            FaultKind::Stall(Duration::from_millis(500), 7)
        );
        for bad in [
            "",
            "teapot",
            "drop",
            "drop=x",
            "429,p=2",
            "stall=1s",
            "status=200",
            "cut=1,often",
            "500,page=x",
        ] {
            assert!(Fault::parse(bad).is_err(), "{bad}");
        }
    }
}
