//! What looks wrong about a run that succeeded: it kept nothing, or rejected every line.
//! A run like that exits 0, so it says so loudly, with what would help.

use std::collections::BTreeSet;

use crate::block::EventFilter;
use crate::summary::RunSummary;

/// The warnings of a finished run.
pub(crate) fn nothing_kept(
    summary: &RunSummary,
    filter: &EventFilter,
    unlisted: &BTreeSet<String>,
) -> Vec<String> {
    let mut warnings = Vec::new();
    let lines = summary.lines_read;
    if lines == 0 || summary.events_kept > 0 {
        return warnings;
    }
    if summary.events_rejected == lines {
        warnings.push(format!(
            "every one of the {lines} lines was rejected: the input does not look like \
             Mixpanel event JSONL (one {{\"event\": ..., \"properties\": {{...}}}} object per \
             line); the rejects file{} says why for each line",
            summary
                .rejects_file
                .as_deref()
                .map_or(String::new(), |f| format!(" {f}"))
        ));
        return warnings;
    }
    let whitelist = filter.whitelist();
    if !whitelist.is_empty() && !unlisted.is_empty() {
        let mut message = format!(
            "no event kept: none of the {} events read is named {}",
            summary.events_filtered,
            quoted_list(&whitelist)
        );
        let close: Vec<String> = whitelist
            .iter()
            .filter_map(|wanted| {
                let near: Vec<&str> = unlisted
                    .iter()
                    .map(String::as_str)
                    .filter(|seen| is_close(wanted, seen))
                    .collect();
                (!near.is_empty()).then(|| format!("{} for \"{wanted}\"", quoted_list(&near)))
            })
            .collect();
        if close.is_empty() {
            let seen: Vec<&str> = unlisted.iter().map(String::as_str).take(10).collect();
            message.push_str(&format!(
                " (names are exact and case-sensitive; names seen include {})",
                quoted_list(&seen)
            ));
        } else {
            message.push_str(&format!(
                " (names are exact and case-sensitive; did you mean {}?)",
                close.join(", ")
            ));
        }
        warnings.push(message);
    } else if summary.events_filtered > 0 {
        warnings.push(format!(
            "no event kept: the filter dropped all {} events read",
            summary.events_filtered
        ));
    }
    warnings
}

fn quoted_list(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    quoted.join(", ")
}

/// Whether `seen` is plausibly what `wanted` meant: the same but for case, spaces,
/// `_`, `-` and `$`, or at most two edits apart.
fn is_close(wanted: &str, seen: &str) -> bool {
    let fold = |s: &str| -> Vec<char> {
        s.chars()
            .filter(|c| !matches!(c, ' ' | '_' | '-' | '$'))
            .flat_map(char::to_lowercase)
            .collect()
    };
    let (a, b) = (fold(wanted), fold(seen));
    a == b || (a.len() <= 64 && b.len() <= 64 && edit_distance(&a, &b) <= 2)
}

/// Levenshtein distance.
fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != cb))
                .min(row[j] + 1)
                .min(above + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(lines: u64, kept: u64, filtered: u64, rejected: u64) -> RunSummary {
        RunSummary {
            lines_read: lines,
            events_kept: kept,
            events_filtered: filtered,
            events_rejected: rejected,
            ..RunSummary::default()
        }
    }

    #[test]
    fn a_run_that_keeps_nothing_says_why() {
        let none = EventFilter::default();
        let seen = BTreeSet::new();
        assert!(nothing_kept(&summary(10, 1, 0, 9), &none, &seen).is_empty());
        assert!(nothing_kept(&summary(0, 0, 0, 0), &none, &seen).is_empty());
        let all_rejected = nothing_kept(&summary(3, 0, 0, 3), &none, &seen);
        assert!(all_rejected[0].contains("every one of the 3 lines was rejected"));

        let filter = EventFilter::new(&["page view".to_string()]);
        let seen: BTreeSet<String> = ["Page View", "Signup"].map(String::from).into();
        let w = nothing_kept(&summary(5, 0, 5, 0), &filter, &seen);
        assert!(
            w[0].contains("did you mean \"Page View\" for \"page view\""),
            "{w:?}"
        );
        let filter = EventFilter::new(&["Purchase".to_string()]);
        let w = nothing_kept(&summary(5, 0, 5, 0), &filter, &seen);
        assert!(
            w[0].contains("names seen include \"Page View\", \"Signup\""),
            "{w:?}"
        );
    }

    #[test]
    fn close_names() {
        assert!(is_close("page view", "Page View"));
        assert!(is_close("page_view", "Page View"));
        assert!(is_close("Signup", "Sign up"));
        assert!(is_close("Purchse", "Purchase"));
        assert!(!is_close("Purchase", "Signup"));
    }
}
