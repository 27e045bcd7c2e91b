//! The names of options, for errors that every surface can show.

/// An option, as every surface names it. The library reports a bad value by its field;
/// the CLI shows it as its flag (`--tz`), an HTTP API as its JSON name (`tz`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Field {
    /// The inputs of a conversion.
    Input,
    /// [`RunOptions::data_source`].
    DataSource,
    /// [`RunOptions::out`].
    Out,
    /// [`RunOptions::where_expr`].
    Where,
    /// [`RunOptions::tz`].
    Tz,
    /// [`RunOptions::prefix`].
    Prefix,
    /// [`RunOptions::project_id`].
    ProjectId,
    /// [`RunOptions::threads`].
    Threads,
    /// [`RunOptions::memory_limit`].
    MemoryLimit,
    /// [`RunOptions::row_group_rows`].
    RowGroupRows,
    /// [`RunOptions::block_bytes`].
    BlockBytes,
    /// [`RunOptions::nested_as_text`].
    NestedAsText,
    /// An export's first day.
    From,
    /// An export's last day.
    To,
    /// Days per export request.
    WindowDays,
    /// Export requests in flight at once.
    Concurrency,
    /// Attempts per export window.
    MaxAttempts,
    /// Export request limits.
    Pace,
    /// Profiles per Engage page.
    PageSize,
    /// The export API's base URL.
    BaseUrl,
    /// A file of export credentials.
    CredentialsFile,
    /// The address a server listens on.
    Listen,
}

impl Field {
    /// The field's name in JSON bodies and configuration files.
    pub fn json_name(self) -> &'static str {
        match self {
            Field::Input => "inputs",
            Field::DataSource => "data_source",
            Field::Out => "out",
            Field::Where => "where",
            Field::Tz => "tz",
            Field::Prefix => "prefix",
            Field::ProjectId => "project_id",
            Field::Threads => "threads",
            Field::MemoryLimit => "memory_limit",
            Field::RowGroupRows => "row_group_rows",
            Field::BlockBytes => "block_bytes",
            Field::NestedAsText => "nested_as_text",
            Field::From => "from_date",
            Field::To => "to_date",
            Field::WindowDays => "window_days",
            Field::Concurrency => "concurrency",
            Field::MaxAttempts => "max_attempts",
            Field::Pace => "pace",
            Field::PageSize => "page_size",
            Field::BaseUrl => "base_url",
            Field::CredentialsFile => "credentials_file",
            Field::Listen => "listen",
        }
    }
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.json_name())
    }
}
