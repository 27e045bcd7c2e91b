//! Deterministic, realistic Mixpanel-like events and user profiles (`tidewater gen`).
//!
//! About 60 event names with Zipf-like frequencies (including `$` events, names with
//! spaces and non-ASCII), Mixpanel's default properties, and 5–40 event-specific
//! properties of every JSON type with nulls, lists, nested objects, occasional type
//! conflicts and case-variant names, escapes, U+2028 and some long strings. Events are in
//! time order. The same configuration gives the same bytes, at any thread count: chunks
//! are generated in parallel from per-chunk seeds and written in order.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use jiff::civil::Date;
use rayon::prelude::*;

use tidewater_event::write_json_string;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenConfig {
    /// Number of events.
    pub events: u64,
    /// Days spanned, starting at `start` 00:00 UTC.
    pub days: u32,
    /// Seed.
    pub seed: u64,
    /// First day.
    pub start: Date,
}

const CHUNK_EVENTS: u64 = 8192;

/// SplitMix64: small, fast, and stable across versions (unlike library RNGs).
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        let mut r = Rng(seed ^ 0x9E37_79B9_7F4A_7C15);
        r.next();
        r
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, per_thousand: u64) -> bool {
        self.below(1000) < per_thousand
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

const EVENT_NAMES: &[&str] = &[
    "Page View",
    "$mp_web_page_view",
    "Click",
    "Search",
    "View Item",
    "Add to Cart",
    "$identify",
    "Sign Up",
    "Login",
    "Logout",
    "Purchase",
    "Checkout Started",
    "Checkout Completed",
    "$ae_session",
    "Video Play",
    "Video Pause",
    "Share",
    "Invite Sent",
    "Notification Opened",
    "Settings Changed",
    "Profile Updated",
    "$create_alias",
    "Subscription Started",
    "Subscription Cancelled",
    "Trial Started",
    "Error",
    "App Open",
    "App Close",
    "Screen View",
    "Button Tap",
    "Form Submitted",
    "File Uploaded",
    "File Downloaded",
    "Comment Posted",
    "Like",
    "Follow",
    "Unfollow",
    "Message Sent",
    "Message Read",
    "Coupon Applied",
    "Ürün Görüntüleme",
    "注册完成",
    "Zahlung erfolgreich",
    "Checkout ✓",
    "rating given",
    "RATING GIVEN",
    "Onboarding Step",
    "Tutorial Skipped",
    "Feature Used",
    "Export Created",
    "Report Viewed",
    "Dashboard Loaded",
    "API Call",
    "Webhook Received",
    "Plan Upgraded",
    "Plan Downgraded",
    "$campaign_delivery",
    "$mp_session_record",
    "order",
    "1st Purchase",
];

const PROPERTY_WORDS: &[&str] = &[
    "plan",
    "amount",
    "item_id",
    "category",
    "price",
    "quantity",
    "coupon",
    "search_term",
    "results",
    "is_trial",
    "tags",
    "cart",
    "experiment",
    "variant",
    "duration_ms",
    "error_code",
    "page",
    "section",
    "position",
    "currency",
    "discount",
    "rating",
    "comment",
    "file_size",
    "file_type",
    "step",
    "source",
    "target",
    "method",
    "status",
    "latency",
    "retries",
    "feature",
    "level",
    "score",
    "device_model",
    "locale",
    "theme",
    "count",
    "items",
    "user_role",
    "team_size",
    "order",
    "select",
    "Plan",
    "Amount",
    "référence",
    "价格",
    "Item ID",
    "button-label",
    "nested",
    "metadata",
    "flags",
    "$custom_flag",
    "long_text",
    "notes",
    "from",
    "2fa_enabled",
];

const BROWSERS: &[&str] = &[
    "Chrome",
    "Safari",
    "Firefox",
    "Edge",
    "Mobile Safari",
    "Samsung Internet",
    "Opera",
];
const OSES: &[&str] = &[
    "Windows",
    "Mac OS X",
    "Linux",
    "iOS",
    "Android",
    "Chrome OS",
];
const CITIES: &[(&str, &str, &str)] = &[
    ("San Francisco", "California", "US"),
    ("New York", "New York", "US"),
    ("London", "England", "GB"),
    ("Berlin", "Berlin", "DE"),
    ("São Paulo", "São Paulo", "BR"),
    ("Tokyo", "Tokyo", "JP"),
    ("Bengaluru", "Karnataka", "IN"),
    ("Zürich", "Zurich", "CH"),
    ("İstanbul", "İstanbul", "TR"),
    ("Montréal", "Quebec", "CA"),
    ("Sydney", "New South Wales", "AU"),
    ("Paris", "Île-de-France", "FR"),
];
const UTM_SOURCES: &[&str] = &[
    "google",
    "newsletter",
    "twitter",
    "facebook",
    "partner_site",
    "linkedin",
];
const TEXTS: &[&str] = &[
    "hello world",
    "quote \" and backslash \\ inside",
    "line one\nline two",
    "tab\tseparated",
    "unicode: Ünïcödé ✓ 日本語 🎉",
    "line\u{2028}separator and\u{2029}paragraph",
    "next line \u{85} char",
    "control \u{1} char",
    "",
];

/// A property of an event: its name and JSON type.
#[derive(Clone, Copy)]
enum Kind {
    Str,
    Int,
    Float,
    Bool,
    List,
    Object,
    LongText,
}

struct EventSpec {
    name: &'static str,
    props: Vec<(&'static str, Kind)>,
}

fn event_specs(seed: u64) -> Vec<EventSpec> {
    EVENT_NAMES
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let mut rng = Rng::new(seed.wrapping_mul(31).wrapping_add(i as u64 * 7919));
            let n = 5 + rng.below(36) as usize;
            // Few events carry many properties: keeps the mean line near 1 KB.
            let n = if rng.chance(700) {
                n.min(5 + rng.below(12) as usize)
            } else {
                n
            };
            let mut props: Vec<(&'static str, Kind)> = Vec::with_capacity(n);
            while props.len() < n {
                let word = rng.pick(PROPERTY_WORDS);
                if props.iter().any(|(w, _)| *w == word) {
                    continue;
                }
                let kind = match word {
                    "long_text" | "notes" => Kind::LongText,
                    "nested" | "metadata" => Kind::Object,
                    "tags" | "items" | "flags" => Kind::List,
                    _ => rng.pick(&[
                        Kind::Str,
                        Kind::Str,
                        Kind::Int,
                        Kind::Float,
                        Kind::Bool,
                        Kind::List,
                        Kind::Object,
                    ]),
                };
                props.push((word, kind));
            }
            EventSpec { name, props }
        })
        .collect()
}

/// Cumulative Zipf-like weights (1/(rank+1)) over the event list.
fn event_weights() -> Vec<f64> {
    let mut acc = 0.0;
    (0..EVENT_NAMES.len())
        .map(|r| {
            acc += 1.0 / (r as f64 + 1.0);
            acc
        })
        .collect()
}

/// Generates events `from..to` as JSONL.
fn generate_chunk(
    config: &GenConfig,
    specs: &[EventSpec],
    weights: &[f64],
    from: u64,
    to: u64,
) -> Vec<u8> {
    let mut rng = Rng::new(config.seed ^ from.wrapping_mul(0xA24B_AED4_963E_E407));
    let start = config
        .start
        .to_zoned(jiff::tz::TimeZone::UTC)
        .map(|z| z.timestamp().as_second())
        .unwrap_or(0);
    let span = i64::from(config.days) * 86_400;
    let step = span as f64 / config.events.max(1) as f64;
    let total_weight = *weights.last().expect("events exist");
    let mut out = Vec::with_capacity(((to - from) * 1100) as usize);
    for i in from..to {
        let time = start + (i as f64 * step) as i64;
        let x = (rng.next() >> 11) as f64 / (1u64 << 53) as f64 * total_weight;
        let spec = &specs[weights.partition_point(|&w| w < x).min(specs.len() - 1)];
        write_event(&mut out, &mut rng, spec, time, i);
    }
    out
}

fn write_event(out: &mut Vec<u8>, rng: &mut Rng, spec: &EventSpec, time: i64, i: u64) {
    out.extend_from_slice(b"{\"event\":");
    write_json_string(out, spec.name);
    out.extend_from_slice(b",\"properties\":{\"time\":");
    out.extend_from_slice(itoa::Buffer::new().format(time).as_bytes());
    let user = rng.below(50_000);
    out.extend_from_slice(b",\"distinct_id\":");
    if rng.chance(20) {
        out.extend_from_slice(itoa::Buffer::new().format(user).as_bytes());
    } else {
        write_json_string(out, &format!("user-{user:05}"));
    }
    let (city, region, country) = rng.pick(CITIES);
    let s = |out: &mut Vec<u8>, k: &str, v: &str| {
        out.push(b',');
        write_json_string(out, k);
        out.push(b':');
        write_json_string(out, v);
    };
    s(out, "$browser", rng.pick(BROWSERS));
    out.extend_from_slice(format!(",\"$browser_version\":{}", 90 + rng.below(40)).as_bytes());
    s(out, "$os", rng.pick(OSES));
    s(out, "$city", city);
    s(out, "$region", region);
    s(out, "mp_country_code", country);
    s(
        out,
        "$device_id",
        &format!("{:016x}-{:08x}", rng.next(), user),
    );
    s(
        out,
        "$insert_id",
        &format!("{:032x}", (u128::from(rng.next()) << 64) | u128::from(i)),
    );
    out.extend_from_slice(
        format!(
            ",\"mp_processing_time_ms\":{}",
            time * 1000 + 500 + rng.below(5000) as i64
        )
        .as_bytes(),
    );
    let page = rng.below(200);
    s(
        out,
        "$current_url",
        &format!(
            "https://www.example.com/products/category-{}/item-{page}?ref=home&session={:x}",
            page % 17,
            rng.next()
        ),
    );
    s(
        out,
        "$referrer",
        &format!(
            "https://www.{}.com/search?q=item+{page}",
            rng.pick(UTM_SOURCES)
        ),
    );
    s(
        out,
        "$referring_domain",
        &format!("www.{}.com", rng.pick(UTM_SOURCES)),
    );
    out.extend_from_slice(
        format!(
            ",\"$screen_height\":{},\"$screen_width\":{}",
            700 + rng.below(800),
            360 + rng.below(2200)
        )
        .as_bytes(),
    );
    s(out, "mp_lib", "web");
    s(out, "$lib_version", "2.55.1");
    if rng.chance(400) {
        s(out, "utm_source", rng.pick(UTM_SOURCES));
        s(
            out,
            "utm_medium",
            rng.pick(&["cpc", "email", "social", "referral"]),
        );
        s(out, "utm_campaign", &format!("campaign_{}", rng.below(30)));
    }
    for &(name, kind) in &spec.props {
        if rng.chance(60) {
            continue; // property absent on this event
        }
        out.push(b',');
        write_json_string(out, name);
        out.push(b':');
        if rng.chance(30) {
            out.extend_from_slice(b"null");
            continue;
        }
        // Occasional type conflict: the value arrives as another type.
        let kind = if rng.chance(8) {
            rng.pick(&[Kind::Str, Kind::Int, Kind::Bool])
        } else {
            kind
        };
        write_value(out, rng, kind, 0);
    }
    out.extend_from_slice(b"}}\n");
}

fn write_value(out: &mut Vec<u8>, rng: &mut Rng, kind: Kind, depth: u32) {
    match kind {
        Kind::Str => {
            if rng.chance(100) {
                write_json_string(out, rng.pick(TEXTS));
            } else {
                write_json_string(out, &format!("value-{}", rng.below(500)));
            }
        }
        Kind::Int => out.extend_from_slice(
            itoa::Buffer::new()
                .format(rng.below(100_000) as i64 - 100)
                .as_bytes(),
        ),
        Kind::Float => {
            let v = rng.below(10_000_000) as f64 / 100.0;
            tidewater_event::write_f64(out, v);
        }
        Kind::Bool => out.extend_from_slice(if rng.chance(500) { b"true" } else { b"false" }),
        Kind::List => {
            out.push(b'[');
            for k in 0..rng.below(5) {
                if k > 0 {
                    out.push(b',');
                }
                let inner = if depth < 2 {
                    rng.pick(&[Kind::Str, Kind::Int, Kind::Object])
                } else {
                    Kind::Int
                };
                write_value(out, rng, inner, depth + 1);
            }
            out.push(b']');
        }
        Kind::Object => {
            // Distinct keys, as SDKs serialize objects; one object in a hundred repeats
            // a key, which IN2's rule resolves.
            let mut keys = ["id", "name", "value", "kind", "enabled", "ratio"];
            let len = 1 + rng.below(4) as usize;
            for k in 0..len {
                let pick = k + rng.below((keys.len() - k) as u64) as usize;
                keys.swap(k, pick);
            }
            if len > 1 && rng.chance(10) {
                keys[len - 1] = keys[0];
            }
            out.push(b'{');
            for (k, key) in keys[..len].iter().enumerate() {
                if k > 0 {
                    out.push(b',');
                }
                write_json_string(out, key);
                out.push(b':');
                let inner = if depth < 2 {
                    rng.pick(&[Kind::Str, Kind::Int, Kind::Bool, Kind::Float, Kind::List])
                } else {
                    Kind::Str
                };
                write_value(out, rng, inner, depth + 1);
            }
            out.push(b'}');
        }
        Kind::LongText => {
            let words = 10 + rng.below(60);
            let mut s = String::new();
            for _ in 0..words {
                s.push_str(rng.pick(&[
                    "lorem",
                    "ipsum",
                    "dolor",
                    "sit",
                    "amet",
                    "ünïcode",
                    "日本",
                    "\"quoted\"",
                    "tab\t",
                ]));
                s.push(' ');
            }
            write_json_string(out, &s);
        }
    }
}

/// Generates the events and writes them to `out` (anything `Write`). With `gzip`, each
/// chunk becomes one gzip member (a valid multi-member gzip stream). Returns the bytes
/// of JSON produced.
pub fn generate(config: &GenConfig, gzip: bool, out: &mut impl Write) -> std::io::Result<u64> {
    let specs = event_specs(config.seed);
    let weights = event_weights();
    generate_chunks(config.events, gzip, out, |from, to| {
        generate_chunk(config, &specs, &weights, from, to)
    })
}

/// What to generate for `tidewater gen --profiles`.
#[derive(Debug, Clone)]
pub struct ProfileConfig {
    /// Number of profiles.
    pub profiles: u64,
    /// Seed.
    pub seed: u64,
}

/// Generates user profiles as the Engage API returns them, one
/// `{"$distinct_id": …, "$properties": {…}}` per line, and writes them to `out` (see
/// [`generate`]). Profiles carry Mixpanel's reserved `$` properties (`$email`,
/// `$created`, `$last_seen`, …), custom ones of every JSON type, lists and nested
/// objects, occasional type conflicts and case-variant names, and unicode.
pub fn generate_profiles(
    config: &ProfileConfig,
    gzip: bool,
    out: &mut impl Write,
) -> std::io::Result<u64> {
    generate_chunks(config.profiles, gzip, out, |from, to| {
        let mut rng = Rng::new(config.seed ^ from.wrapping_mul(0x6C8E_9CF5_7093_2BD5));
        let mut out = Vec::with_capacity(((to - from) * 700) as usize);
        for i in from..to {
            write_profile(&mut out, &mut rng, i);
        }
        out
    })
}

/// Generates profiles into a file, gzip when its name ends in `.gz`.
pub fn generate_profiles_file(config: &ProfileConfig, path: &Path) -> crate::Result<u64> {
    write_generated(path, |out, gzip| generate_profiles(config, gzip, out))
}

const FIRST_NAMES: &[&str] = &[
    "Ada",
    "Grace",
    "Linus",
    "Zoë",
    "José",
    "Chloé",
    "Søren",
    "Mehmet",
    "Yuki",
    "Priya",
    "Олег",
    "李",
    "O'Brien",
    "Anne-Marie",
];
const LAST_NAMES: &[&str] = &[
    "Lovelace",
    "Hopper",
    "Müller",
    "García",
    "Øster",
    "Yılmaz",
    "Tanaka",
    "Sharma",
    "Иванов",
    "王",
    "Smith \"Smitty\"",
    "de la Cruz",
];
const PLANS: &[&str] = &["free", "starter", "growth", "enterprise"];

fn write_profile(out: &mut Vec<u8>, rng: &mut Rng, i: u64) {
    let s = |out: &mut Vec<u8>, k: &str, v: &str| {
        out.push(b',');
        write_json_string(out, k);
        out.push(b':');
        write_json_string(out, v);
    };
    out.extend_from_slice(b"{\"$distinct_id\":");
    // Most ids are strings; the docs' example has an integer.
    if rng.chance(20) {
        out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
    } else {
        write_json_string(out, &format!("user-{i:07}"));
    }
    out.extend_from_slice(b",\"$properties\":{\"$created\":");
    let created = 1_600_000_000 + rng.below(120_000_000) as i64;
    let last_seen = created + rng.below(20_000_000) as i64;
    write_json_string(out, &iso_local(created));
    let (first, last) = (rng.pick(FIRST_NAMES), rng.pick(LAST_NAMES));
    s(out, "$first_name", first);
    s(out, "$last_name", last);
    s(out, "$name", &format!("{first} {last}"));
    s(out, "$email", &format!("user{i}@example.com"));
    if rng.chance(300) {
        s(out, "$phone", &format!("+1-555-{:04}", rng.below(10_000)));
    }
    let (city, region, country) = rng.pick(CITIES);
    s(out, "$city", city);
    s(out, "$region", region);
    s(out, "$country_code", country);
    s(
        out,
        "$timezone",
        rng.pick(&["America/New_York", "Europe/Berlin", "Asia/Tokyo"]),
    );
    s(out, "$os", rng.pick(OSES));
    s(out, "$browser", rng.pick(BROWSERS));
    s(out, "plan", rng.pick(PLANS));
    out.extend_from_slice(b",\"lifetime_value\":");
    tidewater_event::write_f64(out, rng.below(1_000_000) as f64 / 100.0);
    out.extend_from_slice(b",\"logins\":");
    out.extend_from_slice(itoa::Buffer::new().format(rng.below(5_000)).as_bytes());
    out.extend_from_slice(if rng.chance(300) {
        b",\"is_paying\":true"
    } else {
        b",\"is_paying\":false"
    });
    if rng.chance(600) {
        out.extend_from_slice(b",\"tags\":");
        write_value(out, rng, Kind::List, 1);
    }
    if rng.chance(400) {
        out.extend_from_slice(b",\"address\":");
        write_value(out, rng, Kind::Object, 0);
    }
    // Type conflicts as profiles collect them over the years: `age` mostly a number.
    if rng.chance(700) {
        out.extend_from_slice(b",\"age\":");
        let age = 18 + rng.below(70);
        if rng.chance(30) {
            write_json_string(out, &age.to_string());
        } else {
            out.extend_from_slice(itoa::Buffer::new().format(age).as_bytes());
        }
    }
    // A case variant of a name set by another SDK, and an explicit null.
    if rng.chance(50) {
        s(out, "Plan", rng.pick(PLANS));
    }
    if rng.chance(100) {
        out.extend_from_slice(b",\"referrer\":null");
    }
    if rng.chance(50) {
        s(out, "bio", rng.pick(TEXTS));
    }
    out.extend_from_slice(b",\"$last_seen\":");
    write_json_string(out, &iso_local(last_seen));
    out.extend_from_slice(b"}}\n");
}

/// Seconds since the epoch as the ISO text without zone that Engage returns.
fn iso_local(seconds: i64) -> String {
    jiff::Timestamp::from_second(seconds)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%S").to_string())
        .unwrap_or_default()
}

/// Writes the lines `chunk(from, to)` makes for `0..total`, chunk by chunk in parallel
/// and in order (see [`generate`]). Returns the bytes of JSON produced.
fn generate_chunks(
    total: u64,
    gzip: bool,
    out: &mut impl Write,
    chunk: impl Fn(u64, u64) -> Vec<u8> + Sync,
) -> std::io::Result<u64> {
    let chunks: Vec<(u64, u64)> = (0..total.div_ceil(CHUNK_EVENTS))
        .map(|c| (c * CHUNK_EVENTS, ((c + 1) * CHUNK_EVENTS).min(total)))
        .collect();
    let mut total = 0u64;
    // Bounded batches keep memory flat for any number of events.
    for batch in chunks.chunks(rayon::current_num_threads() * 4) {
        let parts: Vec<std::io::Result<(u64, Vec<u8>)>> = batch
            .par_iter()
            .map(|&(from, to)| {
                let text = chunk(from, to);
                let len = text.len() as u64;
                Ok((
                    len,
                    if gzip {
                        crate::write::json::gzip_member(&text)?
                    } else {
                        text
                    },
                ))
            })
            .collect();
        for part in parts {
            let (len, bytes) = part?;
            total += len;
            out.write_all(&bytes)?;
        }
    }
    out.flush()?;
    Ok(total)
}

/// Generates into a file, gzip when its name ends in `.gz`.
pub fn generate_file(config: &GenConfig, path: &Path) -> crate::Result<u64> {
    write_generated(path, |out, gzip| generate(config, gzip, out))
}

fn write_generated(
    path: &Path,
    generate: impl FnOnce(&mut BufWriter<File>, bool) -> std::io::Result<u64>,
) -> crate::Result<u64> {
    let gzip = path.extension().is_some_and(|e| e == "gz");
    // A file that cannot be made is the caller's to fix; a write that fails later (a
    // full disk) is not.
    let file = File::create(path).map_err(|e| crate::Error::output_root(path, e))?;
    generate(&mut BufWriter::new(file), gzip).map_err(|e| crate::Error::output(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(events: u64) -> GenConfig {
        GenConfig {
            events,
            days: 3,
            seed: 7,
            start: jiff::civil::date(2024, 1, 1),
        }
    }

    #[test]
    fn profiles_are_deterministic_engage_results_with_unique_ids() {
        let config = ProfileConfig {
            profiles: 20_000,
            seed: 3,
        };
        let (mut a, mut b) = (Vec::new(), Vec::new());
        generate_profiles(&config, false, &mut a).unwrap();
        generate_profiles(&config, false, &mut b).unwrap();
        assert_eq!(a, b);
        let mut ids = std::collections::HashSet::new();
        let mut types = std::collections::HashSet::new();
        for line in a.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
            let v: serde_json::Value = serde_json::from_slice(line).unwrap();
            assert!(ids.insert(v["$distinct_id"].to_string()), "unique ids");
            let props = v["$properties"].as_object().unwrap();
            assert!(props["$email"].is_string() && props["$last_seen"].is_string());
            if let Some(age) = props.get("age") {
                types.insert(if age.is_string() { "string" } else { "number" });
            }
        }
        assert_eq!(ids.len(), 20_000);
        assert_eq!(types.len(), 2, "age arrives as a number and as a string");
    }

    #[test]
    fn deterministic_and_valid_json_in_time_order() {
        let mut a = Vec::new();
        generate(&config(3000), false, &mut a).unwrap();
        let mut b = Vec::new();
        generate(&config(3000), false, &mut b).unwrap();
        assert_eq!(a, b);
        let mut last = 0;
        let mut names = std::collections::HashSet::new();
        for line in a.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
            let v: serde_json::Value = serde_json::from_slice(line).unwrap();
            let t = v["properties"]["time"].as_i64().unwrap();
            assert!(t >= last);
            last = t;
            names.insert(v["event"].as_str().unwrap().to_string());
        }
        assert!(names.len() > 30, "{} event names", names.len());
        let mean = a.len() / 3000;
        assert!((600..1600).contains(&mean), "mean line {mean} bytes");
    }

    #[test]
    fn nested_objects_rarely_repeat_a_key() {
        use simd_json::value::tape::Node;
        let mut data = Vec::new();
        generate(&config(3000), false, &mut data).unwrap();
        let (mut objects, mut repeating) = (0, 0);
        for line in data.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
            let mut line = line.to_vec();
            let tape = simd_json::to_tape(&mut line).unwrap();
            let nodes = &tape.0;
            // Objects inside `properties` (nodes: 0 the event, 1–2 `event`, 3 the key
            // `properties`, 4 its object).
            for i in 5..nodes.len() {
                let Node::Object { len, .. } = nodes[i] else {
                    continue;
                };
                let mut keys = Vec::new();
                let mut k = i + 1;
                for _ in 0..len {
                    let Node::String(key) = nodes[k] else {
                        unreachable!()
                    };
                    keys.push(key);
                    k += 1 + tidewater_event::span(nodes, k + 1);
                }
                objects += 1;
                let distinct: std::collections::HashSet<_> = keys.iter().collect();
                repeating += usize::from(distinct.len() < keys.len());
            }
        }
        assert!(objects > 1000, "{objects} nested objects");
        assert!(
            repeating > 0 && repeating * 50 < objects,
            "{repeating} of {objects} nested objects repeat a key"
        );
    }

    #[test]
    fn other_seed_other_data() {
        let mut a = Vec::new();
        generate(&config(100), false, &mut a).unwrap();
        let mut b = Vec::new();
        generate(
            &GenConfig {
                seed: 8,
                ..config(100)
            },
            false,
            &mut b,
        )
        .unwrap();
        assert_ne!(a, b);
    }
}
