//! Exit codes and error messages: 0 success, 2 usage or configuration errors, 1
//! failures at run time.

use tidewater::Field;

/// Exit code and message for an error: 2 for usage and configuration, 1 otherwise.
pub fn describe(e: &anyhow::Error) -> (u8, String) {
    let code = match e.downcast_ref::<tidewater::Error>() {
        Some(t) if t.is_usage() => 2,
        Some(_) => 1,
        None if e.downcast_ref::<UsageError>().is_some() => 2,
        None => 1,
    };
    let message = match e.downcast_ref::<tidewater::Error>() {
        // The library names the field; the command line shows the flag the user typed.
        Some(tidewater::Error::Config { field, message }) if e.chain().count() == 1 => {
            format!("invalid option {}: {message}", flag(*field))
        }
        _ => chain_message(e),
    };
    (code, message)
}

/// How the command line spells an option.
fn flag(field: Field) -> &'static str {
    match field {
        Field::Input => "INPUT",
        Field::DataSource => "--data-source",
        Field::Out => "--out",
        Field::Where => "--where",
        Field::Tz => "--tz",
        Field::Prefix => "--prefix",
        Field::ProjectId => "--project-id",
        Field::Threads => "--threads",
        Field::MemoryLimit => "--memory-limit",
        Field::RowGroupRows => "--row-group-rows",
        Field::BlockBytes => "--block-size",
        Field::NestedAsText => "--nested-as-text",
        Field::From => "--from",
        Field::To => "--to",
        Field::WindowDays => "--window-days",
        Field::Concurrency => "--concurrency",
        Field::MaxAttempts => "--max-attempts",
        Field::Pace => "--pace",
        Field::PageSize => "--page-size",
        Field::BaseUrl => "--base-url",
        Field::CredentialsFile => "--credentials-file",
        Field::Listen => "--listen",
        // A field added to the library before the CLI learns it: its JSON name.
        other => other.json_name(),
    }
}

/// The error and its causes joined by `: `, leaving out a cause whose text the message
/// already holds (library errors name their source in their own text, and anyhow's
/// `{:#}` printed it twice: "cannot read input x: No such file…: No such file…").
fn chain_message(e: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if message.contains(&text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
    }
    message
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct UsageError(String);

/// An error that exits with 2 (usage or configuration).
pub fn usage(message: String) -> anyhow::Error {
    UsageError(message).into()
}
