//! Criterion benches of the hot stages: framing, parse+filter+shape, Parquet encoding,
//! and `where` VM evaluations over parsed events. `cargo bench` (release). Throughput is
//! in uncompressed input bytes, or in events for the VM.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use simd_json::value::tape::Node;
use tidewater::stages::{
    parquet_properties, BufferLimits, Encoder, Fixed, Merger, Registry, RowGroup, Shaper,
};
use tidewater::synth::{generate, GenConfig};
use tidewater::{
    frame_input, Block, EventFilter, FrameConfig, OnWhereError, Partition, SchemaMode, Windowing,
};

fn sample(events: u64) -> Vec<u8> {
    let mut data = Vec::new();
    let config = GenConfig {
        events,
        days: 1,
        seed: 1,
        start: jiff::civil::date(2024, 1, 1),
    };
    generate(&config, false, &mut data).unwrap();
    data
}

fn blocks(data: &[u8]) -> Vec<Block> {
    let mut out = Vec::new();
    frame_input(
        data,
        0,
        FrameConfig {
            block_bytes: 2 << 20,
            max_line_bytes: 64 << 20,
        },
        |b| {
            out.push(b);
            true
        },
    );
    out
}

fn bench_stages(c: &mut Criterion) {
    let data = sample(20_000);
    let mut g = c.benchmark_group("stages");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(10);

    g.bench_function("frame", |b| b.iter(|| blocks(&data).len()));

    let framed = blocks(&data);
    let windowing = Windowing::new("UTC", Partition::Daily).unwrap();
    let filter = EventFilter::new(&[]);
    for schema in [SchemaMode::Monoschema, SchemaMode::Multischema] {
        g.bench_function(format!("parse_shape_{schema:?}").to_lowercase(), |b| {
            let mut shaper = Shaper::default();
            b.iter(|| {
                framed
                    .iter()
                    .map(|blk| {
                        shaper
                            .shape(blk, schema, &filter, OnWhereError::Fail, &windowing, None)
                            .kept
                    })
                    .sum::<u64>()
            })
        });
    }

    // One monoschema row group of all events, encoded to Parquet.
    let mut shaper = Shaper::default();
    let limits = BufferLimits {
        row_group_rows: 1 << 30,
        row_group_bytes: u64::MAX,
        total_bytes: u64::MAX,
    };
    let mut merger = Merger::new(Registry::new(SchemaMode::Monoschema), limits);
    let mut groups: Vec<RowGroup> = Vec::new();
    for blk in &framed {
        for t in shaper
            .shape(
                blk,
                SchemaMode::Monoschema,
                &filter,
                OnWhereError::Fail,
                &windowing,
                None,
            )
            .tables
        {
            merger.add(t, &mut |g| groups.push(g));
        }
    }
    merger.flush_all(&mut |g| groups.push(g));
    let encoder = Encoder::Parquet(parquet_properties(tidewater::Compression::Snappy));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spill");
    g.bench_function("parquet_encode_monoschema", |b| {
        b.iter(|| {
            encoder
                .encode(&groups[0], Fixed::Master, &path)
                .unwrap()
                .rows
        })
    });
    g.finish();
}

/// `where` evaluations per second on parsed events (lines are parsed once, outside the
/// timing): what the filter stage adds per event on top of parsing.
fn bench_where_vm(c: &mut Criterion) {
    use tidewater_where::{compile, Context, EventRef, Scratch};
    // Few enough events for their tapes to stay in cache, as a freshly parsed line's
    // tape is in the pipeline; otherwise the bench measures memory latency.
    let data = sample(500);
    let lines: Vec<&[u8]> = data
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let mut g = c.benchmark_group("where_vm");
    g.throughput(Throughput::Elements(lines.len() as u64));
    g.sample_size(10);
    let expressions = [
        (
            "os_and_city",
            r#"properties["$os"] == "Linux" and defined(properties["$city"])"#,
        ),
        (
            "in_set",
            r#"properties["mp_country_code"] in ["US", "GB", "DE", "FR", "JP", "BR"]"#,
        ),
        (
            "time_range",
            r#"properties["$time"] >= datetime("2024-01-01T06:00:00") and properties["$time"] < datetime("2024-01-01T18:00:00")"#,
        ),
        (
            "contains_or",
            r#""Mobile" in properties["$browser"] or has_prefix(properties["$current_url"], "https://shop")"#,
        ),
    ];
    // Every line parsed once, outside the timing: the bench measures the VM alone.
    let mut buffers: Vec<Vec<u8>> = lines.iter().map(|l| l.to_vec()).collect();
    let tapes: Vec<_> = buffers
        .iter_mut()
        .map(|b| simd_json::to_tape(b).expect("generated lines are valid JSON"))
        .collect();
    let mut parsed = Vec::with_capacity(tapes.len());
    for tape in &tapes {
        let nodes = &tape.0[..];
        let (mut name, mut props, mut time) = ("", 0, None);
        let (mut top, mut scratch) = (Vec::new(), tidewater_event::EntryScratch::default());
        tidewater_event::object_entries(nodes, 0, &mut top, &mut scratch);
        for &(k, v) in &top {
            match (&nodes[k], &nodes[v]) {
                (Node::String("event"), Node::String(s)) => name = s,
                (Node::String("properties"), _) => props = v,
                _ => {}
            }
        }
        let mut entries = Vec::new();
        tidewater_event::object_entries(nodes, props, &mut entries, &mut scratch);
        entries.retain(|&(k, v)| {
            let special = matches!(nodes[k], Node::String("time"));
            if special {
                time = Some(v);
            }
            !special
        });
        parsed.push((nodes, name, entries, time));
    }
    let events: Vec<EventRef<'_>> = parsed
        .iter()
        .map(|(nodes, name, entries, time)| EventRef {
            nodes,
            name,
            properties: entries,
            time: *time,
            distinct_id: None,
        })
        .collect();
    for (name, expr) in expressions {
        let program = compile(expr, Context::new("UTC").unwrap()).unwrap();
        let mut scratch = Scratch::default();
        let kept = events
            .iter()
            .filter(|e| program.matches(e, &mut scratch).unwrap())
            .count();
        assert!(kept > 0 && kept < events.len(), "{name} keeps {kept}");
        g.bench_function(format!("eval_{name}"), |b| {
            b.iter(|| {
                events
                    .iter()
                    .filter(|e| program.matches(e, &mut scratch).unwrap_or(false))
                    .count()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_stages, bench_where_vm);
criterion_main!(benches);
