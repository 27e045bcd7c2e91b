//! Extreme values through the whole pipeline: no value in a line may abort a run
//! (output-format IN2–IN4), whatever the schema mode, partition, zone or filter. Every
//! line ends up kept, filtered or rejected, and the run commits.

use proptest::prelude::*;
use tidewater::{Converter, Format, Partition, SchemaMode};

/// Times at every boundary IN3 draws, as numbers of every form, and non-numbers.
const TIMES: &[&str] = &[
    "0",
    "-0",
    "-0.0",
    "-0e0",
    "-1e-400",
    "1e-400",
    "0.0005",
    "-1",
    "-0.5",
    "1",
    "99999999999",
    "99999999999.99999999",
    "100000000000",
    "1e11",
    "1709078400",
    "1709078400.12399999999",
    "1709078400123.9",
    "253402214399",
    "253402300799",
    "253402300800",
    "253402207200000",
    "253402214400000",
    "253402300799999",
    "253402300799999.999",
    "253402300800000",
    "9223372036854775807",
    "18446744073709551616",
    "123456789012345678901234567890",
    "1e308",
    "1e400",
    "\"1\"",
    "null",
    "true",
    "[]",
    "{}",
];

/// Property values of every JSON type, with huge, tiny and signed-zero numbers.
const VALUES: &[&str] = &[
    "null",
    "true",
    "false",
    "0",
    "-0.0",
    "1e-400",
    "-1e-400",
    "1e308",
    "-1e308",
    "1.7976931348623157e308",
    "5e-324",
    "9007199254740993",
    "-9223372036854775809",
    "123456789012345678901234567890",
    "\"\"",
    "\"x\"",
    "\"\\u0000\"",
    "\"\\ud83d\\ude00\"",
    "[]",
    "{}",
    "[1,\"a\",null,[{}]]",
    "{\"a\":{\"b\":[1e308]}}",
    "1e400",
];

const ZONES: &[&str] = &[
    "UTC",
    "Asia/Tokyo",
    "Pacific/Kiritimati",
    "America/New_York",
];

fn line(name: usize, time: usize, values: &[(usize, usize)], event_last: bool) -> String {
    let name = ["\"A\"", "\"B\"", "1", "null", "\"\"", "\"A\\u0000\""][name];
    let mut props = format!("\"time\":{}", TIMES[time]);
    for (k, v) in values {
        props.push_str(&format!(",\"p{k}\":{}", VALUES[*v]));
    }
    if event_last {
        format!("{{\"properties\":{{{props}}},\"event\":{name}}}")
    } else {
        format!("{{\"event\":{name},\"properties\":{{{props}}},\"event\":\"B\"}}")
    }
}

fn arb_line() -> impl Strategy<Value = String> {
    (
        0..6usize,
        0..TIMES.len(),
        prop::collection::vec((0..4usize, 0..VALUES.len()), 0..5),
        any::<bool>(),
    )
        .prop_map(|(n, t, v, last)| line(n, t, &v, last))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn in2_in4_no_value_aborts_a_run(
        lines in prop::collection::vec(arb_line(), 1..60),
        schema in prop::sample::select(vec![SchemaMode::Raw, SchemaMode::Monoschema, SchemaMode::Multischema]),
        hourly in any::<bool>(),
        zone in prop::sample::select(ZONES.to_vec()),
        whitelist in any::<bool>(),
        json in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.jsonl");
        std::fs::write(&input, lines.join("\n")).unwrap();
        let mut run = Converter::new(dir.path().join("out"))
            .input(&input)
            .schema(schema)
            .tz(zone)
            .threads(2)
            .partition(if hourly { Partition::Hourly } else { Partition::Daily })
            .format(if json { Format::Json } else { Format::Parquet });
        if whitelist {
            run = run.events(["B"]);
        }
        let s = run.run().unwrap();
        prop_assert_eq!(s.lines_read, lines.len() as u64);
        prop_assert_eq!(s.events_kept + s.events_filtered + s.events_rejected, s.lines_read);
        prop_assert!(s.windows_not_committed.is_empty());
        prop_assert_eq!(s.rows_per_table.values().sum::<u64>(), s.events_kept);
        s.check().unwrap();
    }
}

/// The line of issue 16: a valid time in the last day of 9999 is kept (in UTC) or
/// rejected with a reason of its own (where its local date is in the year 10000).
#[test]
fn in3_a_time_in_the_last_day_of_9999_is_kept_or_rejected_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let last = r#"{"event":"E","properties":{"time":253402214400000}}"#;
    let later = r#"{"event":"E","properties":{"time":253402300799999}}"#;
    std::fs::write(&input, format!("{last}\n{later}\n")).unwrap();
    let utc = Converter::new(dir.path().join("utc"))
        .input(&input)
        .run()
        .unwrap();
    assert_eq!((utc.events_kept, utc.windows_committed), (2, 1));
    assert!(dir
        .path()
        .join("utc/mp_master_event/9999/12/31/_complete")
        .exists());
    let tokyo = Converter::new(dir.path().join("tokyo"))
        .input(&input)
        .tz("Asia/Tokyo")
        .run()
        .unwrap();
    assert_eq!((tokyo.events_kept, tokyo.events_rejected), (1, 1));
    let rejects = std::fs::read_to_string(tokyo.rejects_file.unwrap()).unwrap();
    assert!(
        rejects.contains("in the year 10000 in time zone Asia/Tokyo"),
        "{rejects}"
    );
}
