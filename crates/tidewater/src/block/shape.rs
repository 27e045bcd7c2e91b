//! Parse → filter → shape for one block, run on a rayon worker.
//!
//! The block's kept events become block-local sparse columns keyed by (table, original
//! property name, type class), grouped by window. Workers make no naming decisions:
//! [`crate::merge`] resolves names and types in input order.

use rustc_hash::FxHashMap;
use simd_json::{value::tape::Node, StaticNode};

use crate::block::filter::EventFilter;
use crate::block::Rows;
use crate::columns::{SparseColumn, Strings, TypeClass, Values};
use crate::input::frame::{is_blank, Block};
use crate::options::{DataSource, OnWhereError, SchemaMode};
use crate::window::{WindowKey, Windowing};
use tidewater_event::{Event, LineKind, LineParser, Reject, RejectReason};
use tidewater_where::Scratch;

/// What a run's lines are and the tables they become.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tables {
    /// The schema mode.
    pub schema: SchemaMode,
    /// Events or profiles.
    pub source: DataSource,
}

impl From<SchemaMode> for Tables {
    /// Events in `schema` mode.
    fn from(schema: SchemaMode) -> Tables {
        Tables {
            schema,
            source: DataSource::Events,
        }
    }
}

impl Tables {
    fn line_kind(self) -> LineKind {
        match self.source {
            DataSource::Events => LineKind::Event,
            DataSource::People => LineKind::Profile,
        }
    }

    /// Whether rows carry the event name (`mp_event_name`).
    fn has_event_name(self) -> bool {
        self.schema == SchemaMode::Monoschema && self.source == DataSource::Events
    }
}

impl Rows {
    /// Empty rows of table `table_key`, with room for what its previous block held.
    fn with_room(table_key: u64, tables: Tables, sizes: &SizeHints) -> Rows {
        let (rows, columns) = sizes.table(table_key);
        let mut out = Rows {
            row_bytes: Vec::with_capacity(rows),
            time: Vec::with_capacity(rows),
            columns: Vec::with_capacity(columns),
            ..Rows::default()
        };
        let room = |key| sizes.column(SizeHints::column_key(table_key, key, TypeClass::String));
        if tables.schema != SchemaMode::Raw {
            let (values, bytes) = room(DISTINCT_ID_KEY);
            out.distinct_id = SparseColumn::with_capacity(TypeClass::String, values, bytes);
        }
        if tables.has_event_name() {
            let (values, bytes) = room(EVENT_NAME_KEY);
            out.event_name = Strings::with_capacity(values, bytes);
        }
        out
    }
}

/// A `where` runtime error that fails the run (where-language §2.4).
#[derive(Debug, Clone)]
pub struct WhereFailure {
    /// Physical line number.
    pub line: u64,
    /// The event's `$insert_id`, or `(none)`.
    pub insert_id: String,
    /// The error.
    pub message: String,
}

/// What the filter decided for one parsed line.
enum Verdict {
    Kept(usize),
    Filtered,
    WhereError(String, String),
    OutsideWindow(i64),
    NoWindow(i64),
}

/// One table's share of a block.
#[derive(Debug, Default)]
pub struct BlockTable {
    /// The event name for multischema; `None` for the single monoschema or raw table.
    pub event: Option<String>,
    /// Block-local columns in first-seen order.
    pub columns: BlockColumns,
    /// Rows per window, in order of first appearance in the block.
    pub parts: Vec<(WindowKey, Rows)>,
    /// Block-local column per (key, type class), found by the key's hash: where the
    /// key is in the columns' packed keys, and the column of each class (`u32::MAX`
    /// for none yet).
    pub(crate) lookup: hashbrown::HashTable<(KeySpan, [u32; 5])>,
    pub(crate) slots: Vec<Vec<u32>>,
}

/// The columns of a block table, in first-seen order: a property key and a type class
/// each. The keys are packed in one string: a multischema block has ~2,000 columns
/// (60 tables of ~35), and two strings of their own per column were a sixth of a
/// multischema run's allocations.
#[derive(Debug, Default)]
pub struct BlockColumns {
    keys: String,
    columns: Vec<BlockColumn>,
}

#[derive(Debug, Clone, Copy)]
struct BlockColumn {
    key: KeySpan,
    /// [`tidewater_event::hash_key`] of the key.
    hash: u64,
    class: TypeClass,
}

/// Room for a property key's bytes when a block's columns are sized from the previous
/// block's (Mixpanel's own keys, such as `mp_processing_time_ms`, are 5–25 bytes).
const TYPICAL_KEY_BYTES: usize = 16;

/// Where a key's bytes are in [`BlockColumns`]' packed keys.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeySpan {
    start: u32,
    end: u32,
}

impl BlockColumns {
    /// Empty, with room for `columns` columns.
    fn with_capacity(columns: usize) -> Self {
        BlockColumns {
            keys: String::with_capacity(columns * TYPICAL_KEY_BYTES),
            columns: Vec::with_capacity(columns),
        }
    }

    /// Number of columns.
    pub fn len(&self) -> usize {
        self.columns.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// The property key and type class of column `i`.
    pub fn get(&self, i: usize) -> (&str, TypeClass) {
        let c = self.columns[i];
        (self.key_at(c.key), c.class)
    }

    fn key_at(&self, span: KeySpan) -> &str {
        &self.keys[span.start as usize..span.end as usize]
    }

    /// Every column's key and type class, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, TypeClass)> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    /// Whether the key at `span` is `key` (compared as bytes: slicing `keys` as a `str`
    /// would check char boundaries on every lookup).
    #[inline]
    fn is_key(&self, span: KeySpan, key: &str) -> bool {
        self.keys
            .as_bytes()
            .get(span.start as usize..span.end as usize)
            == Some(key.as_bytes())
    }

    /// Adds a column of `class` for `key`, whose bytes are already at `span` when
    /// given. Returns its number and the key's span.
    fn push(
        &mut self,
        key: &str,
        hash: u64,
        class: TypeClass,
        span: Option<KeySpan>,
    ) -> (u32, KeySpan) {
        let key = span.unwrap_or_else(|| {
            let start = self.keys.len() as u32;
            self.keys.push_str(key);
            KeySpan {
                start,
                end: self.keys.len() as u32,
            }
        });
        self.columns.push(BlockColumn { key, hash, class });
        (self.columns.len() as u32 - 1, key)
    }
}

/// The result of shaping one block.
#[derive(Debug, Default)]
pub struct ShapedBlock {
    /// Index of the input.
    pub input: usize,
    /// Physical lines in the block.
    pub lines: u64,
    /// Decompressed bytes in the block.
    pub bytes: u64,
    /// Events kept.
    pub kept: u64,
    /// Events dropped by the filter.
    pub filtered: u64,
    /// Rejected lines, in line order.
    pub rejects: Vec<Reject>,
    /// Events dropped because `where` raised a runtime error (skip policy).
    pub where_errors: u64,
    /// The first `where` runtime error under the fail policy; shaping stopped there.
    pub where_failure: Option<WhereFailure>,
    /// Tables in order of first appearance in the block.
    pub tables: Vec<BlockTable>,
    /// A few distinct names of events the whitelist dropped, for the warning of a run
    /// that keeps nothing (a sample: the first of the block).
    pub unlisted: Vec<String>,
}

/// How many unlisted event names each block samples.
const UNLISTED_SAMPLE: usize = 4;

impl ShapedBlock {
    fn note_unlisted(&mut self, name: &str) {
        if self.unlisted.len() < UNLISTED_SAMPLE && !self.unlisted.iter().any(|n| n == name) {
            self.unlisted.push(name.to_string());
        }
    }
}

/// Per-worker state reused across blocks.
#[derive(Default)]
pub struct Shaper {
    parser: LineParser,
    text: Vec<u8>,
    scratch: Scratch,
    /// The block's lines in the order grouped shaping takes them.
    grouped: Vec<GroupedLine>,
    /// How large this worker's previous block made each table and column.
    sizes: SizeHints,
}

/// The sizes that tables and columns reached in the previous block a worker shaped, by
/// table and (property, type class): a new block's columns start with room for about
/// as much. Growing them by doubling instead cost ~80 reallocations per 1,000 events,
/// each copying what the column held (2% of a monoschema run's instructions, callgrind).
/// Keys are hashes: a collision only gives a column an unsuited starting capacity.
#[derive(Default)]
struct SizeHints {
    /// Rows and columns per table.
    tables: FxHashMap<u64, (u32, u32)>,
    /// Values and text bytes per column.
    columns: FxHashMap<u64, (u32, u32)>,
}

/// Starting capacity of a column the previous block did not have: most columns of a
/// multischema block hold dozens of values.
const DEFAULT_COLUMN_ROOM: (u32, u32) = (16, 256);

/// The most text bytes a hint reserves for one column: a block made of one huge line
/// should not make every later block reserve as much.
const MAX_HINT_BYTES: u32 = 8 << 20;

impl SizeHints {
    /// The hint key of a table's column, from its key's hash and type class.
    fn column_key(table: u64, key_hash: u64, class: TypeClass) -> u64 {
        (table.rotate_left(17) ^ key_hash).wrapping_add(class as u64 + 1)
    }

    /// Room for a table's (rows, columns): the previous sizes with an eighth more.
    fn table(&self, table: u64) -> (usize, usize) {
        let (rows, columns) = self.tables.get(&table).copied().unwrap_or_default();
        (with_headroom(rows), with_headroom(columns))
    }

    /// Room for a column: (values, text bytes).
    fn column(&self, key: u64) -> (usize, usize) {
        let (values, bytes) = self
            .columns
            .get(&key)
            .copied()
            .unwrap_or(DEFAULT_COLUMN_ROOM);
        (
            with_headroom(values),
            with_headroom(bytes.min(MAX_HINT_BYTES)),
        )
    }

    /// Records the sizes a shaped block reached.
    fn learn(&mut self, block: &ShapedBlock) {
        for table in &block.tables {
            let key = table_key(&table.event);
            let column_key = |hash, class| Self::column_key(key, hash, class);
            let column_keys: Vec<u64> = (table.columns.columns.iter())
                .map(|c| column_key(c.hash, c.class))
                .collect();
            for (_, rows) in &table.parts {
                self.tables
                    .insert(key, (rows.count, rows.columns.len() as u32));
                let columns = &mut self.columns;
                columns.insert(
                    column_key(EVENT_NAME_KEY, TypeClass::String),
                    text_size(&rows.event_name),
                );
                columns.insert(
                    column_key(DISTINCT_ID_KEY, TypeClass::String),
                    size_of(&rows.distinct_id),
                );
                for (local, column) in &rows.columns {
                    columns.insert(column_keys[*local as usize], size_of(column));
                }
            }
        }
    }
}

/// The [`SizeHints`] key of a table: its event name's hash (0 for the single table).
fn table_key(event: &Option<String>) -> u64 {
    event.as_deref().map_or(0, tidewater_event::hash_key)
}

/// Stand for the key hashes of `distinct_id` and of monoschema's event names in
/// [`SizeHints`] keys.
const DISTINCT_ID_KEY: u64 = 0x9e37_79b9_7f4a_7c15;
const EVENT_NAME_KEY: u64 = 0xc2b2_ae3d_27d4_eb4f;

fn with_headroom(n: u32) -> usize {
    n as usize + n as usize / 8
}

/// A column's values and text bytes.
fn size_of(column: &SparseColumn) -> (u32, u32) {
    match &column.values {
        Values::Text(s) => text_size(s),
        _ => (column.len() as u32, 0),
    }
}

/// Values and bytes of packed strings.
fn text_size(s: &Strings) -> (u32, u32) {
    (s.len() as u32, s.data.len() as u32)
}

/// How a block's lines are judged: the run's settings.
struct LineRules<'a> {
    tables: Tables,
    filter: &'a EventFilter,
    on_where_error: OnWhereError,
    /// What the input was requested for, and the part of it that is kept.
    owned_range: Option<((i64, i64), (i64, i64))>,
}

/// A block being shaped.
struct BlockState {
    out: ShapedBlock,
    table_of: FxHashMap<String, usize>,
    windowing: Windowing,
    /// Per table, the physical line of its first row.
    first_line: Vec<u64>,
}

impl BlockState {
    fn new(block: &Block, windowing: &Windowing) -> Self {
        BlockState {
            out: ShapedBlock {
                input: block.input,
                bytes: block.data.len() as u64,
                ..Default::default()
            },
            table_of: FxHashMap::default(),
            windowing: windowing.clone(),
            first_line: Vec::new(),
        }
    }
}

/// What shaping one line did.
enum LineOutcome {
    /// The line was filtered or rejected.
    Skipped,
    /// The event became a row of this table.
    Kept(usize),
    /// A `where` runtime error under the fail policy: shaping stops here.
    Stop,
}

/// Asks the CPU to start loading `bytes` into its caches: grouped shaping jumps from
/// line to line of a block, where reading in order lets the hardware prefetch.
#[inline]
fn prefetch(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    for at in (0..bytes.len()).step_by(64) {
        // SAFETY: a prefetch is only a hint and never faults; the address is in `bytes`.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                bytes.as_ptr().add(at).cast(),
            )
        };
    }
}

/// A non-blank line of a block, for grouped shaping.
#[derive(Debug, Clone, Copy)]
struct GroupedLine {
    /// Number of the line's event name in the block.
    group: u32,
    /// Physical line number within the block, from 0.
    line: u32,
    start: usize,
    end: usize,
}

impl Shaper {
    /// Shapes one block.
    pub fn shape(
        &mut self,
        block: &Block,
        tables: impl Into<Tables>,
        filter: &EventFilter,
        on_where_error: OnWhereError,
        windowing: &Windowing,
        owned_range: Option<((i64, i64), (i64, i64))>,
    ) -> ShapedBlock {
        let rules = LineRules {
            tables: tables.into(),
            filter,
            on_where_error,
            owned_range,
        };
        let shaped = self.shape_block(block, &rules, windowing);
        self.sizes.learn(&shaped);
        shaped
    }

    fn shape_block(
        &mut self,
        block: &Block,
        rules: &LineRules<'_>,
        windowing: &Windowing,
    ) -> ShapedBlock {
        if let Some(o) = &block.oversized {
            let mut out = BlockState::new(block, windowing).out;
            out.lines = 1;
            out.rejects.push(Reject {
                input: block.input,
                line: block.first_line,
                reason: RejectReason::Oversized(o.len).to_string(),
                raw: o.prefix.clone(),
            });
            return out;
        }
        if rules.tables.schema == SchemaMode::Multischema {
            let mut state = BlockState::new(block, windowing);
            if let Some(out) = self.shape_grouped(block, rules, &mut state) {
                return out;
            }
        }
        let mut state = BlockState::new(block, windowing);
        self.shape_in_order(block, rules, &mut state);
        state.out
    }

    /// Shapes the lines one after another.
    fn shape_in_order(&mut self, block: &Block, rules: &LineRules<'_>, state: &mut BlockState) {
        let mut line_no = block.first_line;
        let data = &block.data[..];
        let mut start = 0;
        while start < data.len() {
            let end = memchr::memchr(b'\n', &data[start..]).map_or(data.len(), |p| start + p);
            let line = &data[start..end];
            start = end + 1;
            let this_line = line_no;
            line_no += 1;
            if is_blank(line) {
                continue;
            }
            if let LineOutcome::Stop = self.shape_line(block.input, line, this_line, rules, state) {
                break;
            }
        }
        state.out.lines = line_no - block.first_line;
    }

    /// Multischema: shapes the lines of one event name after another. Each table then
    /// fills its own columns for a stretch, which keeps them in cache: interleaving
    /// about 60 tables line by line cost a tenth of a multischema run's CPU time
    /// (1M events). The result must be what [`Shaper::shape_in_order`] gives, so the
    /// lines of a name keep their order, rejects are sorted back into line order and
    /// tables into the order of their first rows. `None` leaves the block to in-order
    /// shaping: when it holds one name only, when a line's name cannot be read without
    /// parsing, and (after the work) when a table received a row from before its
    /// latest one (a line whose first `event` key is not its last, IN2) or a `where`
    /// error stopped the block.
    fn shape_grouped(
        &mut self,
        block: &Block,
        rules: &LineRules<'_>,
        state: &mut BlockState,
    ) -> Option<ShapedBlock> {
        let (physical_lines, names) = self.group_lines(&block.data)?;
        if names < 2 {
            return None;
        }
        let mut lines = std::mem::take(&mut self.grouped);
        // Stable: each name's lines stay in line order.
        lines.sort_by_key(|l| l.group);
        let shaped = self.shape_lines(block, &lines, rules, state);
        self.grouped = lines;
        shaped?;
        let out = &mut state.out;
        out.lines = physical_lines;
        out.rejects.sort_by_key(|r| r.line);
        let mut tables: Vec<(u64, BlockTable)> = (state.first_line.iter().copied())
            .zip(std::mem::take(&mut out.tables))
            .collect();
        tables.sort_by_key(|(first_line, _)| *first_line);
        out.tables = tables.into_iter().map(|(_, table)| table).collect();
        Some(std::mem::take(out))
    }

    /// Lists the non-blank lines of `data` in `self.grouped`, each with the number of
    /// its event name. Returns the number of physical lines and of names, or `None`
    /// when a line's name cannot be read without parsing (such a line, shaped after
    /// the others, could belong to a table whose later rows were already added).
    fn group_lines(&mut self, data: &[u8]) -> Option<(u64, usize)> {
        let mut groups: FxHashMap<&[u8], u32> = FxHashMap::default();
        self.grouped.clear();
        let (mut start, mut line) = (0usize, 0u32);
        while start < data.len() {
            let end = memchr::memchr(b'\n', &data[start..]).map_or(data.len(), |p| start + p);
            let text = &data[start..end];
            if !is_blank(text) {
                let next = groups.len() as u32;
                let name = tidewater_event::written_event_name(text)?;
                self.grouped.push(GroupedLine {
                    group: *groups.entry(name).or_insert(next),
                    line,
                    start,
                    end,
                });
            }
            start = end + 1;
            line += 1;
        }
        Some((u64::from(line), groups.len()))
    }

    /// Shapes `lines` in the given order; `None` when a table's rows would leave line
    /// order or shaping stopped.
    fn shape_lines(
        &mut self,
        block: &Block,
        lines: &[GroupedLine],
        rules: &LineRules<'_>,
        state: &mut BlockState,
    ) -> Option<()> {
        let mut last_line: Vec<u64> = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            if let Some(next) = lines.get(i + 1) {
                prefetch(&block.data[next.start..next.end]);
            }
            let text = &block.data[l.start..l.end];
            let line_no = block.first_line + u64::from(l.line);
            match self.shape_line(block.input, text, line_no, rules, state) {
                LineOutcome::Skipped => {}
                LineOutcome::Kept(t) => {
                    if t == last_line.len() {
                        last_line.push(line_no);
                    } else if last_line[t] > line_no {
                        return None;
                    } else {
                        last_line[t] = line_no;
                    }
                }
                LineOutcome::Stop => return None,
            }
        }
        Some(())
    }

    /// Parses, filters and shapes one non-blank line (without its `\n`).
    fn shape_line(
        &mut self,
        input: usize,
        line: &[u8],
        line_no: u64,
        rules: &LineRules<'_>,
        state: &mut BlockState,
    ) -> LineOutcome {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let filter = rules.filter;
        let BlockState {
            out,
            table_of,
            windowing,
            first_line,
        } = state;
        if let Some(name) = filter.unlisted_name(line) {
            out.filtered += 1;
            out.note_unlisted(name);
            return LineOutcome::Skipped;
        }
        let Shaper {
            parser,
            text,
            scratch,
            sizes,
            ..
        } = self;
        let result = parser.parse_as(rules.tables.line_kind(), line, |event| {
            if !filter.lists(event.name) {
                out.note_unlisted(event.name);
                return Verdict::Filtered;
            }
            match filter.passes_where(event, scratch) {
                Ok(true) => {}
                Ok(false) => return Verdict::Filtered,
                Err(e) => return Verdict::WhereError(e.to_string(), insert_id(event)),
            }
            // An export response may only hold its own window's events.
            if let Some(((start, end), (keep_start, keep_end))) = rules.owned_range {
                if event.time_ms < start || event.time_ms >= end {
                    return Verdict::OutsideWindow(event.time_ms);
                }
                if event.time_ms < keep_start || event.time_ms >= keep_end {
                    return Verdict::Filtered;
                }
            }
            // IN3 bounds times to [1970, 10000) UTC; east of UTC the last hours of 9999
            // fall in local year 10000, which no window can hold.
            let Some(window) = windowing.window_of(event.time_ms) else {
                return Verdict::NoWindow(event.time_ms);
            };
            let table = match rules.tables.schema {
                SchemaMode::Multischema => match table_of.get(event.name) {
                    Some(&t) => t,
                    None => {
                        table_of.insert(event.name.to_string(), out.tables.len());
                        let event = Some(event.name.to_string());
                        out.tables.push(BlockTable::with_room(event, sizes));
                        first_line.push(line_no);
                        out.tables.len() - 1
                    }
                },
                _ => {
                    if out.tables.is_empty() {
                        out.tables.push(BlockTable::with_room(None, sizes));
                        first_line.push(line_no);
                    }
                    0
                }
            };
            out.tables[table].add_event(event, line, window, rules.tables, text, sizes);
            Verdict::Kept(table)
        });
        match result {
            Ok(Verdict::Kept(table)) => {
                out.kept += 1;
                return LineOutcome::Kept(table);
            }
            Ok(Verdict::Filtered) => out.filtered += 1,
            Ok(Verdict::WhereError(message, insert_id)) => match rules.on_where_error {
                OnWhereError::Skip => {
                    out.filtered += 1;
                    out.where_errors += 1;
                }
                OnWhereError::Fail => {
                    out.where_failure = Some(WhereFailure {
                        line: line_no,
                        insert_id,
                        message,
                    });
                    return LineOutcome::Stop;
                }
            },
            Ok(Verdict::OutsideWindow(ms)) => out.rejects.push(Reject {
                input,
                line: line_no,
                reason: format!(
                    "event time {} is outside the window this response was requested for",
                    jiff::Timestamp::from_millisecond(ms)
                        .map_or_else(|_| ms.to_string(), |t| t.to_string())
                ),
                raw: line.to_vec(),
            }),
            Ok(Verdict::NoWindow(time_ms)) => out.rejects.push(Reject {
                input,
                line: line_no,
                reason: RejectReason::NoWindow {
                    time_ms,
                    tz: windowing.zone_name().to_string(),
                }
                .to_string(),
                raw: line.to_vec(),
            }),
            Err(reason) => out.rejects.push(Reject {
                input,
                line: line_no,
                reason: reason.to_string(),
                raw: line.to_vec(),
            }),
        }
        LineOutcome::Skipped
    }
}

impl BlockTable {
    /// An empty table with room for as many columns as it had in the previous block.
    fn with_room(event: Option<String>, sizes: &SizeHints) -> BlockTable {
        let (_, columns) = sizes.table(table_key(&event));
        BlockTable {
            event,
            columns: BlockColumns::with_capacity(columns),
            lookup: hashbrown::HashTable::with_capacity(columns),
            ..BlockTable::default()
        }
    }

    fn add_event(
        &mut self,
        event: &Event<'_, '_>,
        line: &[u8],
        window: WindowKey,
        tables: Tables,
        text: &mut Vec<u8>,
        sizes: &SizeHints,
    ) {
        let part = match self.parts.iter().rposition(|(w, _)| *w == window) {
            Some(p) => p,
            None => {
                self.parts.push((
                    window,
                    Rows::with_room(table_key(&self.event), tables, sizes),
                ));
                self.slots.push(Vec::new());
                self.parts.len() - 1
            }
        };
        let (_, rows) = &mut self.parts[part];
        let row = rows.count;
        rows.count += 1;
        rows.row_bytes.push(line.len() as u32);
        rows.time.push(event.time_ms);
        if tables.schema == SchemaMode::Raw {
            rows.raw.push(line);
            return;
        }
        let distinct_id = event
            .distinct_id
            .filter(|&d| !matches!(event.nodes[d], Node::Static(StaticNode::Null)));
        if let Some(d) = distinct_id {
            text.clear();
            distinct_id_text(text, event.nodes, d, line, tables.line_kind());
            rows.distinct_id.push_row(row);
            if let Values::Text(s) = &mut rows.distinct_id.values {
                s.push(text);
            }
        }
        if tables.has_event_name() {
            rows.event_name.push(event.name.as_bytes());
        }
        for (&(k, v), &hash) in event.properties.iter().zip(event.key_hashes) {
            let (class, node) = match &event.nodes[v] {
                Node::Static(StaticNode::Null) => continue,
                Node::String(_) => (TypeClass::String, v),
                Node::Static(StaticNode::Bool(_)) => (TypeClass::Boolean, v),
                Node::Static(_) => (TypeClass::Number, v),
                Node::Array { .. } => (TypeClass::List, v),
                Node::Object { .. } => (TypeClass::Object, v),
            };
            let key = event.key((k, v));
            let columns = &mut self.columns;
            let found = self
                .lookup
                .find_mut(hash, |&(span, _)| columns.is_key(span, key));
            let local = match found {
                Some((_, ids)) if ids[class as usize] != u32::MAX => ids[class as usize],
                Some((span, ids)) => {
                    let (id, _) = columns.push(key, hash, class, Some(*span));
                    ids[class as usize] = id;
                    id
                }
                None => {
                    let (id, span) = columns.push(key, hash, class, None);
                    let mut ids = [u32::MAX; 5];
                    ids[class as usize] = id;
                    // Growing the table (rare: it starts with the previous block's
                    // room) hashes the keys again.
                    self.lookup.insert_unique(hash, (span, ids), |&(span, _)| {
                        tidewater_event::hash_key(columns.key_at(span))
                    });
                    id
                }
            };
            let slots = &mut self.slots[part];
            if slots.len() <= local as usize {
                slots.resize(local as usize + 1, u32::MAX);
            }
            if slots[local as usize] == u32::MAX {
                slots[local as usize] = rows.columns.len() as u32;
                let (values, bytes) =
                    sizes.column(SizeHints::column_key(table_key(&self.event), hash, class));
                let column = SparseColumn::with_capacity(class, values, bytes);
                rows.columns.push((local, column));
            }
            let column = &mut rows.columns[slots[local as usize] as usize].1;
            column.push_row(row);
            match (&mut column.values, &event.nodes[node]) {
                (Values::Text(s), Node::String(x)) => s.push(x.as_bytes()),
                (Values::Text(s), _) => match event.compact_as_written(v) {
                    Some(text) => s.push(text),
                    None => {
                        tidewater_event::write_compact(&mut s.data, event.nodes, node);
                        s.close_value();
                    }
                },
                (Values::Number(n), Node::Static(x)) => {
                    n.push(tidewater_event::number_value(x).unwrap_or(f64::NAN))
                }
                (Values::Boolean(b), Node::Static(StaticNode::Bool(x))) => b.push(*x),
                _ => unreachable!("the column's storage matches the value's type class"),
            }
        }
    }
}

/// `properties.$insert_id` as text for messages, or `(none)`.
fn insert_id(event: &Event<'_, '_>) -> String {
    let found = event
        .properties
        .iter()
        .find(|&&e| event.key(e) == "$insert_id");
    match found.map(|&(_, v)| &event.nodes[v]) {
        Some(Node::String(s)) => (*s).to_string(),
        Some(Node::Static(n)) if !matches!(n, StaticNode::Null) => {
            let mut out = Vec::new();
            tidewater_event::write_number(&mut out, n);
            String::from_utf8_lossy(&out).into_owned()
        }
        _ => "(none)".to_string(),
    }
}

/// `distinct_id` as text (§4.3): strings as is, integers as written, other numbers in
/// shortest plain decimal, booleans/lists/objects as compact JSON.
fn distinct_id_text(out: &mut Vec<u8>, nodes: &[Node<'_>], i: usize, line: &[u8], kind: LineKind) {
    match &nodes[i] {
        Node::String(s) => out.extend_from_slice(s.as_bytes()),
        Node::Static(StaticNode::F64(f)) => match integer_literal(line, *f, kind) {
            Some(digits) => out.extend_from_slice(digits),
            None => out.extend_from_slice(tidewater_event::plain_decimal(*f).as_bytes()),
        },
        Node::Static(StaticNode::Bool(_)) | Node::Array { .. } | Node::Object { .. } => {
            tidewater_event::write_compact(out, nodes, i)
        }
        Node::Static(n) => tidewater_event::write_number(out, n),
    }
}

/// An integer literal too long for 64 bits parses as a double; §4.3 wants its digits as
/// written. Finds the literal after a `"distinct_id"` key (a profile's `"$distinct_id"`)
/// in the raw line whose value parses to the same double (rare path: only for integral
/// doubles beyond ±2^63).
fn integer_literal(line: &[u8], value: f64, kind: LineKind) -> Option<&[u8]> {
    if value.fract() != 0.0 || value.abs() < 9.2e18 {
        return None;
    }
    let key: &[u8] = match kind {
        LineKind::Event => b"\"distinct_id\"",
        LineKind::Profile => b"\"$distinct_id\"",
    };
    let mut found = None;
    for pos in memchr::memmem::find_iter(line, key) {
        let rest = &line[pos + key.len()..];
        let Some(rest) = rest.trim_ascii_start().strip_prefix(b":") else {
            continue;
        };
        let rest = rest.trim_ascii_start();
        let len = rest
            .iter()
            .position(|&b| !(b.is_ascii_digit() || b == b'-'))
            .unwrap_or(rest.len());
        let literal = &rest[..len];
        let followed_by_number_part = matches!(rest.get(len), Some(b'.' | b'e' | b'E'));
        let parsed = std::str::from_utf8(literal)
            .ok()
            .and_then(|t| t.parse::<f64>().ok());
        if !literal.is_empty() && !followed_by_number_part && parsed == Some(value) {
            found = Some(literal); // the last one wins, like the parser (IN2)
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::columns::RowNumbers;
    use crate::options::Partition;

    fn block_of(data: &str) -> Block {
        Block {
            input: 0,
            first_line: 1,
            data: data.as_bytes().to_vec(),
            oversized: None,
        }
    }

    fn shape(data: &str, schema: SchemaMode, events: &[&str]) -> ShapedBlock {
        let filter = EventFilter::new(&events.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        shape_with(data, schema, &filter, OnWhereError::Fail)
    }

    fn shape_with(
        data: &str,
        schema: SchemaMode,
        filter: &EventFilter,
        policy: OnWhereError,
    ) -> ShapedBlock {
        let windowing = Windowing::new("UTC", Partition::Daily).unwrap();
        Shaper::default().shape(&block_of(data), schema, filter, policy, &windowing, None)
    }

    /// A block shaped line after line, as without grouping.
    fn shape_in_order(data: &str, filter: &EventFilter, policy: OnWhereError) -> ShapedBlock {
        let block = block_of(data);
        let windowing = Windowing::new("UTC", Partition::Daily).unwrap();
        let rules = LineRules {
            tables: SchemaMode::Multischema.into(),
            filter,
            on_where_error: policy,
            owned_range: None,
        };
        let mut state = BlockState::new(&block, &windowing);
        Shaper::default().shape_in_order(&block, &rules, &mut state);
        state.out
    }

    /// One line of a multischema block: mostly events of a few names, some repeating
    /// `event`, some not events at all, and a few whose name cannot be read without
    /// parsing.
    fn arb_line() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let value = proptest::sample::select(
            &[
                "1",
                "\"s\"",
                "true",
                "null",
                "[1, {\"k\":2}]",
                "{\"a\":1,\"a\":2}",
            ][..],
        );
        let props = proptest::collection::vec(("[wxyz]", value), 0..4).prop_map(|kv| {
            kv.iter()
                .map(|(k, v)| format!(",\"{k}\":{v}"))
                .collect::<String>()
        });
        let name = prop_oneof![Just("a"), Just("b"), Just("c"), Just("d e")];
        let time = prop_oneof![Just("1700000000"), Just("1700090000"), Just("\"x\"")];
        let event = (name, time, props, 0..5u8).prop_map(|(name, time, props, form)| {
            let body = format!("\"properties\":{{\"time\":{time}{props}}}");
            match form {
                0 => format!("{{\"event\":\"{name}\",{body},\"event\":\"b\"}}"),
                1 => format!("{{\"event\":\"{name}\",{body}}}\r"),
                _ => format!("{{\"event\":\"{name}\",{body}}}"),
            }
        });
        // Rare, so that many blocks are still shaped grouped.
        let unreadable_name = prop_oneof![
            Just(r#"{"properties":{"time":1700000000},"event":"a"}"#.to_string()),
            Just(r#"{"event":"\u0061","properties":{"time":1700000000}}"#.to_string()),
            Just("not json".to_string()),
        ];
        prop_oneof![
            40 => event,
            5 => Just(String::new()),
            5 => Just("{\"event\":\"a\",\"properties\":".to_string()),
            1 => unreadable_name,
        ]
    }

    proptest::proptest! {
        /// Grouped shaping gives exactly the block that shaping line after line gives:
        /// the same tables in the same order, rows, columns, rejects and counts.
        #[test]
        fn grouped_shaping_is_shaping_in_order(
            lines in proptest::collection::vec(arb_line(), 0..40),
            whitelist in proptest::bool::ANY,
        ) {
            let data = lines.join("\n");
            let events: Vec<String> = if whitelist {
                vec!["a".into(), "b".into(), "d e".into()]
            } else {
                Vec::new()
            };
            let filter = EventFilter::new(&events);
            let grouped = shape_with(&data, SchemaMode::Multischema, &filter, OnWhereError::Fail);
            let in_order = shape_in_order(&data, &filter, OnWhereError::Fail);
            proptest::prop_assert_eq!(format!("{grouped:?}"), format!("{in_order:?}"));
        }
    }

    #[test]
    fn grouped_shaping_stops_at_the_first_where_error_in_line_order() {
        let program = tidewater_where::compile(
            r#"properties["w"] and true"#,
            tidewater_where::Context::new("UTC").unwrap(),
        )
        .unwrap();
        let filter = EventFilter::new(&[]).with_where(program);
        let data = concat!(
            r#"{"event":"a","properties":{"time":1,"w":true}}"#,
            "\n",
            r#"{"event":"b","properties":{"time":1,"w":"x"}}"#,
            "\n",
            r#"{"event":"a","properties":{"time":1,"w":"y"}}"#,
            "\n",
        );
        for policy in [OnWhereError::Fail, OnWhereError::Skip] {
            let grouped = shape_with(data, SchemaMode::Multischema, &filter, policy);
            let in_order = shape_in_order(data, &filter, policy);
            assert_eq!(format!("{grouped:?}"), format!("{in_order:?}"));
        }
        let failed = shape_with(data, SchemaMode::Multischema, &filter, OnWhereError::Fail);
        assert_eq!(failed.where_failure.map(|f| f.line), Some(2));
    }

    #[test]
    fn counts_rejects_blank_lines_and_line_numbers() {
        let data = "{\"event\":\"a\",\"properties\":{\"time\":1}}\r\n\n  \nnot json\n{\"event\":\"b\",\"properties\":{\"time\":2}}";
        let b = shape(data, SchemaMode::Monoschema, &[]);
        assert_eq!((b.lines, b.kept, b.filtered), (5, 2, 0));
        assert_eq!(b.rejects.len(), 1);
        assert_eq!(b.rejects[0].line, 4);
        assert_eq!(b.rejects[0].raw, b"not json");
    }

    #[test]
    fn monoschema_columns_keyed_by_name_and_class() {
        let data = concat!(
            r#"{"event":"a","properties":{"time":1,"distinct_id":7,"x":1,"y":null}}"#,
            "\n",
            r#"{"event":"b","properties":{"time":2,"x":"s","z":[1,{"k":2}]}}"#,
            "\n"
        );
        let b = shape(data, SchemaMode::Monoschema, &[]);
        assert_eq!(b.tables.len(), 1);
        let t = &b.tables[0];
        let cols: Vec<(&str, TypeClass)> = t.columns.iter().collect();
        assert_eq!(
            cols,
            [
                ("x", TypeClass::Number),
                ("x", TypeClass::String),
                ("z", TypeClass::List)
            ]
        );
        let rows = &t.parts[0].1;
        assert_eq!(rows.count, 2);
        assert_eq!(rows.distinct_id.rows, RowNumbers::Leading);
        assert_eq!(rows.distinct_id.len(), 1);
        match &rows.columns[2].1.values {
            Values::Text(s) => assert_eq!(s.get(0), r#"[1,{"k":2}]"#),
            _ => panic!(),
        }
        assert_eq!(rows.event_name.get(1), "b");
    }

    #[test]
    fn f3_filtered_events_create_no_columns() {
        let data = concat!(
            r#"{"event":"a","properties":{"time":1,"only_a":1}}"#,
            "\n",
            r#"{"event":"b","properties":{"time":2,"only_b":1}}"#,
            "\n",
            r#"{"event":"c","properties":{"time":"bad"}}"#,
            "\n"
        );
        let b = shape(data, SchemaMode::Multischema, &["b"]);
        assert_eq!((b.kept, b.filtered, b.rejects.len()), (1, 2, 0));
        assert_eq!(b.tables.len(), 1);
        assert_eq!(b.tables[0].columns.get(0).0, "only_b");
    }

    #[test]
    fn distinct_id_forms() {
        let cases = [
            (r#""u1""#, "u1"),
            ("-0", "0"),
            ("12", "12"),
            (
                "123456789012345678901234567890",
                "123456789012345678901234567890",
            ),
            ("-98765432109876543210", "-98765432109876543210"),
            ("1.5e29", "150000000000000000000000000000"),
            ("1.0", "1"),
            ("1e21", "1000000000000000000000"),
            ("1.5e-7", "0.00000015"),
            ("true", "true"),
            (r#"[1, "a"]"#, r#"[1,"a"]"#),
            (r#"{"a" : 1}"#, r#"{"a":1}"#),
        ];
        for (json, want) in cases {
            let data = format!(r#"{{"event":"a","properties":{{"time":1,"distinct_id":{json}}}}}"#);
            let b = shape(&data, SchemaMode::Monoschema, &[]);
            match &b.tables[0].parts[0].1.distinct_id.values {
                Values::Text(s) => assert_eq!(s.get(0), want, "{json}"),
                _ => panic!(),
            }
        }
    }

    #[test]
    fn columns_start_with_room_for_the_previous_block() {
        let windowing = Windowing::new("UTC", Partition::Daily).unwrap();
        let filter = EventFilter::new(&[]);
        let lines = |n: usize, text: &str| -> String {
            (0..n)
                .map(|i| {
                    format!(
                        r#"{{"event":"e","properties":{{"time":{i},"distinct_id":"d{i}","t":"{text}","n":{i}}}}}"#
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        let room = |block: &ShapedBlock| {
            let rows = &block.tables[0].parts[0].1;
            let text = match &rows.columns[0].1.values {
                Values::Text(s) => (s.ends.capacity(), s.data.capacity()),
                _ => panic!("t is text"),
            };
            (rows.time.capacity(), text)
        };
        for schema in [SchemaMode::Monoschema, SchemaMode::Multischema] {
            let mut shaper = Shaper::default();
            let mut shape = |data: &str| {
                let block = block_of(data);
                shaper.shape(
                    &block,
                    schema,
                    &filter,
                    OnWhereError::Fail,
                    &windowing,
                    None,
                )
            };
            shape(&lines(300, "0123456789"));
            let next = shape(&lines(2, "x"));
            let (times, (ends, bytes)) = room(&next);
            assert!(times >= 300 && ends >= 300, "{schema:?}");
            assert!(bytes >= 3000, "{schema:?}: {bytes} bytes");
            // A huge value does not make later blocks reserve as much.
            shape(&lines(1, &"y".repeat(MAX_HINT_BYTES as usize + 1000)));
            let next = shape(&lines(2, "x"));
            let (_, (_, bytes)) = room(&next);
            assert!(
                bytes <= with_headroom(MAX_HINT_BYTES),
                "{schema:?}: {bytes} bytes"
            );
        }
    }
}
