//! Checking a run's options once, for every command and the library alike.

use crate::block::EventFilter;
use crate::error::{Error, Result};
use crate::field::Field;
use crate::options::{DataSource, Format, RunOptions, SchemaMode, WriteMode};
use crate::window::Windowing;

/// Options that passed [`RunOptions::validate`], with what checking them produced.
#[derive(Debug, Clone)]
pub struct ValidOptions {
    /// The windows of the options' time zone and partition.
    pub windowing: Windowing,
    /// The event whitelist and the compiled `where` (F1–F3).
    pub filter: EventFilter,
    /// Worker threads, `threads` resolved (0 means one per core).
    pub threads: usize,
}

impl RunOptions {
    /// Checks every option once, for every command and the library alike, and compiles
    /// what the run needs (time zone, `where`). An error names the [`Field`] at fault.
    pub fn validate(&self) -> Result<ValidOptions> {
        if self.memory_limit < 64 << 20 {
            return Err(Error::config(Field::MemoryLimit, "must be at least 64MiB"));
        }
        if self.row_group_rows == 0 || self.row_group_rows > u32::MAX as usize / 2 {
            return Err(Error::config(
                Field::RowGroupRows,
                "must be between 1 and 2^31",
            ));
        }
        if self.block_bytes == 0 || self.block_bytes > 1 << 30 {
            return Err(Error::config(
                Field::BlockBytes,
                "must be between 1 byte and 1GiB",
            ));
        }
        if self.nested_as_text && (self.format != Format::Json || self.schema == SchemaMode::Raw) {
            return Err(Error::config(
                Field::NestedAsText,
                "applies only to JSON output of tables (format json, monoschema or multischema): \
                 Parquet always holds lists and objects as JSON text, and raw output keeps the \
                 lines unaltered",
            ));
        }
        if self.threads > 256 {
            return Err(Error::config(Field::Threads, "must be at most 256"));
        }
        if let Some(p) = &self.prefix {
            if p.is_empty() || p.split('/').any(|s| s == ".." || s == ".") {
                return Err(Error::config(
                    Field::Prefix,
                    format!("{p:?} is not a plain relative folder"),
                ));
            }
        }
        let windowing = match self.data_source {
            DataSource::Events => Windowing::new(&self.tz, self.partition)?,
            DataSource::People => {
                self.check_people()?;
                Windowing::snapshot()
            }
        };
        let threads = if self.threads == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            self.threads
        };
        Ok(ValidOptions {
            windowing,
            filter: self.filter()?,
            threads,
        })
    }

    /// People are one monoschema table without windows or event names.
    fn check_people(&self) -> Result<()> {
        if self.schema != SchemaMode::Monoschema {
            return Err(Error::config(
                Field::DataSource,
                format!(
                    "people profiles are always one monoschema table (mp_people_data), not {}; \
                     leave the schema mode at its default",
                    format!("{:?}", self.schema).to_lowercase()
                ),
            ));
        }
        if !self.events.is_empty() {
            return Err(Error::config(
                Field::DataSource,
                "people profiles have no event names to select; filter them with `where` instead",
            ));
        }
        if self.mode == WriteMode::Append {
            return Err(Error::config(
                Field::DataSource,
                "people profiles are a full snapshot that replaces the previous one; append mode does not apply",
            ));
        }
        Ok(())
    }

    /// The run's filter: the event whitelist and the compiled `where` (F1–F3). An empty
    /// `where` means no filter (where-language §2.5).
    fn filter(&self) -> Result<EventFilter> {
        let filter = EventFilter::new(&self.events);
        let Some(expr) = self.where_expr.as_deref().filter(|e| !e.is_empty()) else {
            return Ok(filter);
        };
        let ctx =
            tidewater_where::Context::new(&self.tz).map_err(|m| Error::config(Field::Tz, m))?;
        let program = tidewater_where::compile(expr, ctx)
            .map_err(|e| Error::config(Field::Where, e.to_string()))?;
        Ok(filter.with_where(program))
    }
}
