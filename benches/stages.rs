//! Criterion benches of the hot stages: framing, parse+filter+shape, Parquet encoding.
//! `cargo bench` (release). Throughput is in uncompressed input bytes.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tidewater::filter::EventFilter;
use tidewater::frame::{frame_input, Block, FrameConfig};
use tidewater::gen::{generate, GenConfig};
use tidewater::merge::{BufferLimits, Merger, RowGroup};
use tidewater::options::{Partition, SchemaMode};
use tidewater::registry::Registry;
use tidewater::shape::Shaper;
use tidewater::window::Windowing;
use tidewater::write::Encoder;

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
                    .map(|blk| shaper.shape(blk, schema, &filter, &windowing).kept)
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
            .shape(blk, SchemaMode::Monoschema, &filter, &windowing)
            .tables
        {
            merger.add(t, &mut |g| groups.push(g));
        }
    }
    merger.flush_all(&mut |g| groups.push(g));
    let encoder = Encoder::Parquet(tidewater::write::parquet::properties(
        tidewater::Compression::Snappy,
    ));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spill");
    g.bench_function("parquet_encode_monoschema", |b| {
        b.iter(|| encoder.encode(&groups[0], 3, &path).unwrap().rows)
    });
    g.finish();
}

criterion_group!(benches, bench_stages);
criterion_main!(benches);
