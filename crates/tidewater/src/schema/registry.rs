//! The table registry: tables, their columns and types, handed out in first-seen order
//! (output-format §4) and kept stable across runs through the mapping file (M1, T6).

use std::path::{Path, PathBuf};

use rustc_hash::FxHashMap;
use serde_json::{json, Map, Value};

use crate::columns::TypeClass;
use crate::error::{Error, Result};
use crate::options::{DataSource, SchemaMode};
use crate::schema::naming::{clean_base, NameScope, RESERVED_COLUMNS, RESERVED_TABLES};
use crate::store::Output;

/// At most this many property columns per table (T5).
pub const MAX_PROPERTY_COLUMNS: usize = 9500;

/// The monoschema table.
pub const MASTER_TABLE: &str = "mp_master_event";

/// The people table (export-api §5).
pub const PEOPLE_TABLE: &str = "mp_people_data";

/// The mapping file below the output root (M1), one per data source.
fn mapping_file(source: DataSource) -> &'static str {
    match source {
        DataSource::Events => "schema/events.json",
        DataSource::People => "schema/people.json",
    }
}

/// The fixed columns a table starts with (§4.3), by the position each has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fixed {
    /// A multischema table: `time`, `distinct_id`.
    Event,
    /// The monoschema table: `time`, `distinct_id`, `mp_event_name`.
    Master,
    /// The people table: `distinct_id` only (a profile has no time or event name).
    Profile,
}

impl Fixed {
    /// The fixed columns of a run's tables.
    pub fn of_run(schema: SchemaMode, source: DataSource) -> Fixed {
        match (source, schema) {
            (DataSource::People, _) => Fixed::Profile,
            (_, SchemaMode::Multischema) => Fixed::Event,
            _ => Fixed::Master,
        }
    }

    /// How many there are.
    pub fn count(self) -> usize {
        match self {
            Fixed::Event => 2,
            Fixed::Master => 3,
            Fixed::Profile => 1,
        }
    }

    /// The column of `time`, if the table has one.
    pub fn time(self) -> Option<u32> {
        (self != Fixed::Profile).then_some(0)
    }

    /// The column of `distinct_id`.
    pub fn distinct_id(self) -> u32 {
        match self {
            Fixed::Profile => 0,
            _ => 1,
        }
    }

    /// The column of `mp_event_name`, if the table has one.
    pub fn event_name(self) -> Option<u32> {
        (self == Fixed::Master).then_some(2)
    }

    fn columns(self) -> Vec<ColumnInfo> {
        let mut columns = Vec::with_capacity(self.count());
        if self.time().is_some() {
            columns.push(ColumnInfo {
                name: "time".into(),
                property: Some("time".into()),
                ty: ColumnType::Timestamp,
            });
        }
        let source = match self {
            Fixed::Profile => "$distinct_id",
            Fixed::Event | Fixed::Master => "distinct_id",
        };
        columns.push(ColumnInfo {
            name: "distinct_id".into(),
            property: Some(source.into()),
            ty: ColumnType::Class(TypeClass::String),
        });
        if self.event_name().is_some() {
            columns.push(ColumnInfo {
                name: "mp_event_name".into(),
                property: None,
                ty: ColumnType::Class(TypeClass::String),
            });
        }
        columns
    }
}

/// Type of an output column, as written in the mapping file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// The `time` column.
    Timestamp,
    /// A JSON type class.
    Class(TypeClass),
}

impl ColumnType {
    fn as_str(self) -> &'static str {
        match self {
            ColumnType::Timestamp => "timestamp",
            ColumnType::Class(c) => c.as_str(),
        }
    }
}

/// One output column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnInfo {
    /// Final column name.
    pub name: String,
    /// Original property name (`None` for `mp_event_name` and `mp_properties`).
    pub property: Option<String>,
    /// Type.
    pub ty: ColumnType,
}

/// Where a (property, type class) pair goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A column, by index in the table's column list.
    Column(u32),
    /// The `mp_properties` overflow column (T5), by index.
    Overflow(u32),
}

#[derive(Debug, Clone)]
struct PropertyColumns {
    base: String,
    by_class: [Option<u32>; 5],
}

/// One table.
#[derive(Debug, Clone)]
pub struct Table {
    /// Final table name.
    pub name: String,
    /// Source event (`None` for the monoschema table).
    pub event: Option<String>,
    /// Columns in T4 order: fixed columns first, then in creation order.
    pub columns: Vec<ColumnInfo>,
    scope: NameScope,
    properties: FxHashMap<String, PropertyColumns>,
    property_columns: usize,
    overflow: Option<u32>,
}

impl Table {
    fn new(name: String, event: Option<String>, fixed: Fixed) -> Self {
        Table {
            name,
            event,
            columns: fixed.columns(),
            scope: NameScope::with_reserved(RESERVED_COLUMNS),
            properties: FxHashMap::default(),
            property_columns: 0,
            overflow: None,
        }
    }

    /// Resolves a property and type class to its column, creating it on first sight
    /// (T2, N5, N6) or sending it to `mp_properties` once the table is full (T5).
    pub fn resolve(&mut self, property: &str, class: TypeClass) -> Target {
        if let Some(p) = self.properties.get(property) {
            if let Some(c) = p.by_class[class as usize] {
                return Target::Column(c);
            }
        }
        if self.property_columns >= MAX_PROPERTY_COLUMNS {
            let id = match self.overflow {
                Some(id) => id,
                None => {
                    let id = self.columns.len() as u32;
                    self.columns.push(ColumnInfo {
                        name: "mp_properties".into(),
                        property: None,
                        ty: ColumnType::Class(TypeClass::Object),
                    });
                    self.overflow = Some(id);
                    id
                }
            };
            return Target::Overflow(id);
        }
        let id = self.columns.len() as u32;
        let name = match self.properties.get_mut(property) {
            Some(p) => {
                p.by_class[class as usize] = Some(id);
                let base = p.base.clone();
                self.scope.allocate(&base, &format!("_{}", class.as_str()))
            }
            None => {
                let base = clean_base(property);
                let name = self.scope.allocate(&base, "");
                let mut by_class = [None; 5];
                by_class[class as usize] = Some(id);
                self.properties
                    .insert(property.to_string(), PropertyColumns { base, by_class });
                name
            }
        };
        self.columns.push(ColumnInfo {
            name,
            property: Some(property.to_string()),
            ty: ColumnType::Class(class),
        });
        self.property_columns += 1;
        Target::Column(id)
    }

    /// Re-adds a column read from the mapping file.
    fn restore(&mut self, column: ColumnInfo) -> std::result::Result<(), String> {
        if self.scope.is_taken(&column.name) {
            return Err(format!(
                "column {:?} of table {:?} appears twice",
                column.name, self.name
            ));
        }
        self.scope.take(&column.name);
        let id = self.columns.len() as u32;
        match (&column.property, column.ty) {
            (None, ColumnType::Class(TypeClass::Object)) if column.name == "mp_properties" => {
                self.overflow = Some(id)
            }
            (Some(p), ColumnType::Class(class)) => {
                let entry = self
                    .properties
                    .entry(p.clone())
                    .or_insert_with(|| PropertyColumns {
                        base: clean_base(p),
                        by_class: [None; 5],
                    });
                entry.by_class[class as usize] = Some(id);
                self.property_columns += 1;
            }
            _ => {
                return Err(format!(
                    "column {:?} of table {:?} has an unexpected type or property",
                    column.name, self.name
                ))
            }
        }
        self.columns.push(column);
        Ok(())
    }
}

/// All tables of an output root.
#[derive(Debug, Clone)]
pub struct Registry {
    schema: SchemaMode,
    source: DataSource,
    /// Tables in creation order.
    pub tables: Vec<Table>,
    by_event: FxHashMap<String, u32>,
    table_scope: NameScope,
    /// Number of columns when loaded (to know whether the mapping file must be rewritten).
    loaded_size: usize,
}

impl Registry {
    /// An empty registry of events in a schema mode.
    pub fn new(schema: SchemaMode) -> Self {
        Self::for_source(schema, DataSource::Events)
    }

    /// An empty registry of a data source in a schema mode.
    pub fn for_source(schema: SchemaMode, source: DataSource) -> Self {
        let mut r = Registry {
            schema,
            source,
            tables: Vec::new(),
            by_event: FxHashMap::default(),
            table_scope: NameScope::with_reserved(RESERVED_TABLES),
            loaded_size: 0,
        };
        if let Some(table) = r.single_table() {
            r.tables.push(table);
        }
        r
    }

    /// The one table of a run that has one table (all but multischema).
    fn single_table(&self) -> Option<Table> {
        let fixed = Fixed::of_run(self.schema, self.source);
        match (self.source, self.schema) {
            (DataSource::People, _) => Some(Table::new(PEOPLE_TABLE.into(), None, fixed)),
            (_, SchemaMode::Monoschema) => Some(Table::new(MASTER_TABLE.into(), None, fixed)),
            // Raw output has no tables; one unnamed table carries its rows through merge.
            (_, SchemaMode::Raw) => Some(Table::new(String::new(), None, fixed)),
            (_, SchemaMode::Multischema) => None,
        }
    }

    /// The table of an event (multischema), or the master table; created on first sight.
    pub fn table_for(&mut self, event: Option<&str>) -> u32 {
        match (self.schema, event) {
            (SchemaMode::Multischema, Some(e)) => {
                if let Some(&t) = self.by_event.get(e) {
                    return t;
                }
                let name = self.table_scope.allocate(&clean_base(e), "");
                let id = self.tables.len() as u32;
                self.tables
                    .push(Table::new(name, Some(e.to_string()), Fixed::Event));
                self.by_event.insert(e.to_string(), id);
                id
            }
            _ => 0,
        }
    }

    fn size(&self) -> usize {
        self.tables.len() + self.tables.iter().map(|t| t.columns.len()).sum::<usize>()
    }

    /// Whether tables or columns were added since loading.
    pub fn changed(&self) -> bool {
        self.size() != self.loaded_size
    }

    /// Records that the mapping file now holds every table and column (after [`Registry::save`]
    /// in the middle of a run, so that later windows save only what they add).
    pub fn mark_saved(&mut self) {
        self.loaded_size = self.size();
    }

    /// Path of the events mapping file in an output root.
    pub fn mapping_path(root: &Path) -> PathBuf {
        root.join(mapping_file(DataSource::Events))
    }

    /// Loads the events mapping file of the local folder `root` if it exists (T6), for
    /// a run in `schema` mode.
    pub fn load(root: &Path, schema: SchemaMode) -> Result<Self> {
        Self::load_from(
            &Output::Local(root.to_path_buf()),
            schema,
            DataSource::Events,
        )
    }

    /// Loads the mapping file of `source` in `output` if it exists (T6), for a run in
    /// `schema` mode.
    pub(crate) fn load_from(
        output: &Output,
        schema: SchemaMode,
        source: DataSource,
    ) -> Result<Self> {
        let mut reg = Registry::for_source(schema, source);
        let mapping = mapping_file(source);
        let path = output.display(mapping);
        let bad = |message: String| Error::Mapping {
            path: path.clone(),
            message,
        };
        let text = match output.read(mapping) {
            Ok(Some(t)) => t,
            Ok(None) => return Ok(reg),
            Err(Error::Output { source, .. }) => return Err(bad(source.to_string())),
            Err(e) => return Err(e),
        };
        let doc: Value =
            serde_json::from_slice(&text).map_err(|e| bad(format!("invalid JSON: {e}")))?;
        let tables = doc
            .get("tables")
            .and_then(Value::as_object)
            .ok_or_else(|| bad("no \"tables\" object".into()))?;
        reg.tables.clear();
        for (name, t) in tables {
            let event = t.get("event").and_then(Value::as_str).map(str::to_string);
            let is_master = name == MASTER_TABLE;
            if source == DataSource::People {
                if name != PEOPLE_TABLE {
                    return Err(bad(format!(
                        "it holds table {name:?}, and a people mapping holds only {PEOPLE_TABLE:?}"
                    )));
                }
            } else if is_master != (schema == SchemaMode::Monoschema) {
                let (old, new) = if is_master {
                    ("monoschema", "multischema")
                } else {
                    ("multischema", "monoschema")
                };
                return Err(bad(format!(
                    "it holds table {name:?} of a {old} run, and this run is {new} \
                     (--schema {old} would add to it)"
                )));
            }
            let fixed = match &event {
                Some(_) => Fixed::Event,
                None => Fixed::of_run(schema, source),
            };
            let mut table = Table::new(name.clone(), event.clone(), fixed);
            let fixed = table.columns.len();
            let columns = t
                .get("columns")
                .and_then(Value::as_array)
                .ok_or_else(|| bad(format!("table {name:?} has no columns")))?;
            for (i, c) in columns.iter().enumerate() {
                let col_name = c
                    .get("column")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad(format!("table {name:?}: column without a name")))?;
                let property = c
                    .get("property")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                let ty = match c.get("type").and_then(Value::as_str) {
                    Some("timestamp") => ColumnType::Timestamp,
                    Some(s) => ColumnType::Class(
                        TypeClass::parse(s).ok_or_else(|| bad(format!("unknown type {s:?}")))?,
                    ),
                    None => {
                        return Err(bad(format!(
                            "table {name:?}: column {col_name:?} has no type"
                        )))
                    }
                };
                let info = ColumnInfo {
                    name: col_name.to_string(),
                    property,
                    ty,
                };
                if i < fixed {
                    if table.columns[i] != info {
                        return Err(bad(format!(
                            "table {name:?}: fixed column {i} is {col_name:?}, expected {:?}",
                            table.columns[i].name
                        )));
                    }
                    continue;
                }
                table.restore(info).map_err(bad)?;
            }
            reg.table_scope.take(name);
            if let Some(e) = &event {
                reg.by_event.insert(e.clone(), reg.tables.len() as u32);
            }
            reg.tables.push(table);
        }
        if reg.tables.is_empty() {
            reg.tables.extend(reg.single_table());
        }
        reg.loaded_size = reg.size();
        Ok(reg)
    }

    /// The mapping file's JSON (M1).
    pub fn to_json(&self) -> Value {
        let mut tables = Map::new();
        for t in &self.tables {
            let columns: Vec<Value> = t
                .columns
                .iter()
                .map(|c| json!({"column": c.name, "property": c.property, "type": c.ty.as_str()}))
                .collect();
            tables.insert(
                t.name.clone(),
                json!({"event": t.event, "columns": columns}),
            );
        }
        json!({"version": 1, "tables": tables})
    }

    /// Writes the mapping file of a local folder atomically.
    pub fn save(&self, root: &Path) -> Result<()> {
        self.save_to(&Output::Local(root.to_path_buf()))
    }

    /// Writes the mapping file atomically (a rename locally, one put on a store).
    pub(crate) fn save_to(&self, output: &Output) -> Result<()> {
        let mut text = serde_json::to_string_pretty(&self.to_json()).expect("mapping serializes");
        text.push('\n');
        output.write(mapping_file(self.source), text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(t: &Table) -> Vec<&str> {
        t.columns.iter().map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn t2_type_columns_and_n6_suffix_order() {
        let mut r = Registry::new(SchemaMode::Monoschema);
        let t = &mut r.tables[0];
        t.resolve("amount", TypeClass::Number);
        t.resolve("amount", TypeClass::String);
        t.resolve("plan", TypeClass::String);
        t.resolve("Plan", TypeClass::String);
        t.resolve("Plan", TypeClass::Number);
        t.resolve("Time", TypeClass::Number);
        t.resolve("$date", TypeClass::String);
        t.resolve("mp_event_name", TypeClass::String);
        assert_eq!(
            names(t),
            [
                "time",
                "distinct_id",
                "mp_event_name",
                "amount",
                "amount_string",
                "plan",
                "plan_1",
                "plan_number",
                "time_1",
                "mp_date_1",
                "mp_event_name_1"
            ]
        );
        assert_eq!(t.resolve("amount", TypeClass::String), Target::Column(4));
    }

    #[test]
    fn s3_table_names_avoid_reserved_and_collide_with_suffix() {
        let mut r = Registry::new(SchemaMode::Multischema);
        r.table_for(Some("Page View"));
        r.table_for(Some("page view"));
        r.table_for(Some("schema"));
        r.table_for(Some("$mp_master_event"));
        r.table_for(Some("_rejects"));
        let tables: Vec<&str> = r.tables.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            tables,
            [
                "page_view",
                "page_view_1",
                "schema_1",
                "mp_mp_master_event",
                "_rejects_1"
            ]
        );
        assert_eq!(r.table_for(Some("page view")), 1);
        assert_eq!(names(&r.tables[0]), ["time", "distinct_id"]);
    }

    #[test]
    fn t5_overflow_after_9500_columns() {
        let mut r = Registry::new(SchemaMode::Monoschema);
        let t = &mut r.tables[0];
        for i in 0..MAX_PROPERTY_COLUMNS {
            assert!(matches!(
                t.resolve(&format!("p{i}"), TypeClass::Number),
                Target::Column(_)
            ));
        }
        let o = t.resolve("one_more", TypeClass::String);
        assert!(matches!(o, Target::Overflow(_)));
        assert_eq!(
            t.resolve("p0", TypeClass::String),
            o,
            "a new type column overflows too"
        );
        assert_eq!(t.resolve("p0", TypeClass::Number), Target::Column(3));
        assert_eq!(t.columns.last().unwrap().name, "mp_properties");
    }

    #[test]
    fn t6_mapping_round_trip_keeps_assignments() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Registry::new(SchemaMode::Multischema);
        let a = r.table_for(Some("Sign Up")) as usize;
        r.tables[a].resolve("plan", TypeClass::String);
        r.tables[a].resolve("Plan", TypeClass::String);
        r.tables[a].resolve("plan", TypeClass::Number);
        r.save(dir.path()).unwrap();
        let mut back = Registry::load(dir.path(), SchemaMode::Multischema).unwrap();
        assert!(!back.changed());
        assert_eq!(back.to_json(), r.to_json());
        let t = back.table_for(Some("Sign Up")) as usize;
        assert_eq!(
            back.tables[t].resolve("Plan", TypeClass::String),
            Target::Column(3)
        );
        assert_eq!(
            back.tables[t].resolve("Plan", TypeClass::Number),
            Target::Column(5)
        );
        assert_eq!(back.tables[t].columns[5].name, "plan_number_1");
        assert!(back.changed());
        let other = back.table_for(Some("sign up"));
        assert_eq!(back.tables[other as usize].name, "sign_up_1");
        assert!(Registry::load(dir.path(), SchemaMode::Monoschema)
            .unwrap_err()
            .is_usage());
    }

    #[test]
    fn people_table_has_distinct_id_only_and_its_own_mapping_file() {
        let dir = tempfile::tempdir().unwrap();
        let output = Output::Local(dir.path().to_path_buf());
        let mut r = Registry::for_source(SchemaMode::Monoschema, DataSource::People);
        let t = &mut r.tables[0];
        assert_eq!(t.name, PEOPLE_TABLE);
        assert_eq!(t.columns[0].property.as_deref(), Some("$distinct_id"));
        // `time`, `distinct_id` and `mp_event_name` stay reserved (§4.3) although the
        // people table has only `distinct_id`.
        for p in ["$email", "time", "distinct_id", "mp_event_name"] {
            t.resolve(p, TypeClass::String);
        }
        assert_eq!(
            names(t),
            [
                "distinct_id",
                "mp_email",
                "time_1",
                "distinct_id_1",
                "mp_event_name_1"
            ]
        );
        r.save_to(&output).unwrap();
        assert!(dir.path().join("schema/people.json").is_file());
        assert!(!dir.path().join("schema/events.json").exists());
        let back =
            Registry::load_from(&output, SchemaMode::Monoschema, DataSource::People).unwrap();
        assert_eq!(back.to_json(), r.to_json());
        // An events run in the same root starts its own mapping.
        let events = Registry::load(dir.path(), SchemaMode::Monoschema).unwrap();
        assert_eq!(
            names(&events.tables[0]),
            ["time", "distinct_id", "mp_event_name"]
        );
    }
}
