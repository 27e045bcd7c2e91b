//! Naming rules for tables and columns (output-format §4.2, N1–N6).
//!
//! Cleaning (N1–N4) is a pure function of the original name; collision handling (N5)
//! needs the set of names already taken, which the registry owns.

use std::collections::HashSet;

/// Longest final table or column name (N6).
pub const MAX_NAME_CHARS: usize = 128;

/// Reserved table names (S3): a table named by an event never takes one of these.
pub const RESERVED_TABLES: &[&str] = &[
    "mp_master_event",
    "mp_people_data",
    "mp_identity_mappings_data",
    "schema",
    "_rejects",
];

/// Reserved column names (§4.3), taken in every table whether or not the column exists.
pub const RESERVED_COLUMNS: &[&str] = &[
    "time",
    "distinct_id",
    "mp_event_name",
    "mp_properties",
    "mp_date",
    "mp_hour",
];

/// BigQuery reserved keywords (N4), lowercase, sorted for binary search.
const RESERVED_WORDS: &[&str] = &[
    "all",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "assert_rows_modified",
    "at",
    "between",
    "by",
    "case",
    "cast",
    "collate",
    "contains",
    "create",
    "cross",
    "cube",
    "current",
    "default",
    "define",
    "desc",
    "distinct",
    "else",
    "end",
    "enum",
    "escape",
    "except",
    "exclude",
    "exists",
    "extract",
    "false",
    "fetch",
    "following",
    "for",
    "from",
    "full",
    "group",
    "grouping",
    "groups",
    "hash",
    "having",
    "if",
    "ignore",
    "in",
    "inner",
    "intersect",
    "interval",
    "into",
    "is",
    "join",
    "lateral",
    "left",
    "like",
    "limit",
    "lookup",
    "merge",
    "natural",
    "new",
    "no",
    "not",
    "null",
    "nulls",
    "of",
    "on",
    "or",
    "order",
    "outer",
    "over",
    "partition",
    "preceding",
    "proto",
    "qualify",
    "range",
    "recursive",
    "respect",
    "right",
    "rollup",
    "rows",
    "select",
    "set",
    "some",
    "struct",
    "tablesample",
    "then",
    "to",
    "treat",
    "true",
    "unbounded",
    "union",
    "unnest",
    "using",
    "when",
    "where",
    "window",
    "with",
    "within",
];

/// Applies N1–N4 to an original event or property name: the *cleaned base* (N6).
pub fn clean_base(original: &str) -> String {
    let (prefix, rest) = match original.strip_prefix('$') {
        Some(rest) => ("mp_", rest),
        None => ("", original),
    };
    let mut out = String::with_capacity(original.len() + 3);
    out.push_str(prefix);
    for c in rest.chars() {
        // N2 then N3: a character whose lowercase form is several characters (e.g. 'İ')
        // yields one `_` per resulting scalar outside [a-z0-9_].
        if c.is_ascii() {
            let l = c.to_ascii_lowercase();
            out.push(
                if l.is_ascii_lowercase() || l.is_ascii_digit() || l == '_' {
                    l
                } else {
                    '_'
                },
            );
        } else {
            for l in c.to_lowercase() {
                out.push(
                    if l.is_ascii_lowercase() || l.is_ascii_digit() || l == '_' {
                        l
                    } else {
                        '_'
                    },
                );
            }
        }
    }
    if out.is_empty() || out.as_bytes()[0].is_ascii_digit() {
        out.insert(0, '_');
    } else if RESERVED_WORDS.binary_search(&out.as_str()).is_ok() {
        out.insert_str(0, "res_");
    }
    out
}

/// Hands out unique names in first-seen order (N5, N6) within one scope: the columns of
/// one table, or the set of tables.
#[derive(Debug, Clone, Default)]
pub struct NameScope {
    taken: HashSet<String>,
}

impl NameScope {
    /// A scope in which `reserved` names are already taken.
    pub fn with_reserved(reserved: &[&str]) -> Self {
        NameScope {
            taken: reserved.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Marks a name as taken (used when loading an existing mapping file).
    pub fn take(&mut self, name: &str) {
        self.taken.insert(name.to_string());
    }

    /// Whether `name` is taken.
    pub fn is_taken(&self, name: &str) -> bool {
        self.taken.contains(name)
    }

    /// Allocates `base + suffix` (suffix such as `_string`, may be empty), appending `_N`
    /// on collision. The base is truncated so that the whole name fits in 128 characters.
    pub fn allocate(&mut self, base: &str, suffix: &str) -> String {
        let mut n = 0usize;
        loop {
            let counter = if n == 0 {
                String::new()
            } else {
                format!("_{n}")
            };
            let budget = MAX_NAME_CHARS - suffix.chars().count() - counter.chars().count();
            let truncated: String = base.chars().take(budget).collect();
            let candidate = format!("{truncated}{suffix}{counter}");
            if !self.taken.contains(&candidate) {
                self.taken.insert(candidate.clone());
                return candidate;
            }
            n += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_words_sorted() {
        let mut sorted = RESERVED_WORDS.to_vec();
        sorted.sort();
        assert_eq!(sorted, RESERVED_WORDS);
    }

    #[test]
    fn n1_dollar_prefix() {
        assert_eq!(clean_base("$browser"), "mp_browser");
        assert_eq!(clean_base("$$x"), "mp__x");
    }

    #[test]
    fn n2_n3_lowercase_and_replace() {
        assert_eq!(clean_base("Page View"), "page_view");
        assert_eq!(clean_base("é"), "_");
        assert_eq!(clean_base("a--b"), "a__b");
        assert_eq!(clean_base("Ünïcödé ✓"), "_n_c_d___");
    }

    #[test]
    fn n4_empty_digit_reserved() {
        assert_eq!(clean_base(""), "_");
        assert_eq!(clean_base("1st"), "_1st");
        assert_eq!(clean_base("order"), "res_order");
        assert_eq!(clean_base("Order"), "res_order");
        assert_eq!(clean_base("orders"), "orders");
    }

    #[test]
    fn n5_collisions_first_free_suffix() {
        let mut scope = NameScope::with_reserved(RESERVED_COLUMNS);
        assert_eq!(scope.allocate(&clean_base("plan"), ""), "plan");
        assert_eq!(scope.allocate(&clean_base("Plan"), ""), "plan_1");
        assert_eq!(scope.allocate(&clean_base("PLAN"), ""), "plan_2");
        assert_eq!(scope.allocate(&clean_base("Time"), ""), "time_1");
        assert_eq!(scope.allocate(&clean_base("$date"), ""), "mp_date_1");
    }

    #[test]
    fn n6_type_suffix_before_counter_and_truncation() {
        let mut scope = NameScope::with_reserved(RESERVED_COLUMNS);
        scope.allocate("amount", "");
        scope.allocate("amount_string", "");
        assert_eq!(scope.allocate("amount", "_string"), "amount_string_1");
        let long = "x".repeat(200);
        let a = scope.allocate(&long, "");
        assert_eq!(a.chars().count(), 128);
        let b = scope.allocate(&long, "");
        assert_eq!(b.chars().count(), 128);
        assert!(b.ends_with("_1"));
        let c = scope.allocate(&long, "_boolean");
        assert_eq!(c.chars().count(), 128);
        assert!(c.ends_with("x_boolean"));
    }
}
