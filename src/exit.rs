//! Exit codes and error messages: 0 success, 2 usage or configuration errors, 1
//! failures at run time.

/// Exit code and message for an error: 2 for usage and configuration, 1 otherwise.
pub fn describe(e: &anyhow::Error) -> (u8, String) {
    let code = match e.downcast_ref::<tidewater::Error>() {
        Some(t) if t.is_usage() => 2,
        Some(_) => 1,
        None if e.downcast_ref::<UsageError>().is_some() => 2,
        None => 1,
    };
    (code, chain_message(e))
}

/// The error and its causes joined by `: `, leaving out a cause whose text the message
/// already ends with (library errors name their source in their own text, and anyhow's
/// `{:#}` printed it twice: "cannot read input x: No such file…: No such file…").
fn chain_message(e: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if message.ends_with(&text) {
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

#[cfg(test)]
mod tests {
    use super::chain_message;

    #[test]
    fn error_messages_name_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let e: anyhow::Error = tidewater::Error::InputUnreadable {
            input: "x.gz".into(),
            source: io,
        }
        .into();
        assert_eq!(chain_message(&e), "cannot read input x.gz: no such file");
        let e = e.context("while reading the inputs");
        assert_eq!(
            chain_message(&e),
            "while reading the inputs: cannot read input x.gz: no such file"
        );
    }
}
