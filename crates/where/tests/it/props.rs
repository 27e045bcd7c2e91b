//! Property tests of the `where` compiler and VM (DESIGN.md: two implementations, one
//! answer; where-language G12: no input makes the compiler panic).

use proptest::prelude::*;
use tidewater_event::LineParser;
use tidewater_where::{compile, Context, EventRef, Scratch};

fn ctx() -> Context {
    let mut ctx = Context::new("Europe/Berlin").unwrap();
    ctx.now = 1_700_000_000;
    ctx
}

/// JSON values of every type, including the awkward ones (`-0`, date-like strings,
/// `"false"`, nested lists and objects).
fn json_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_string()),
        Just("true".to_string()),
        Just("false".to_string()),
        Just("0".to_string()),
        Just("-0".to_string()),
        Just("1602611311".to_string()),
        Just("1602611311874".to_string()),
        (-1000i64..1000).prop_map(|n| n.to_string()),
        (-1e6f64..1e6).prop_map(|f| format!("{f}")),
        Just("\"\"".to_string()),
        Just("\"false\"".to_string()),
        Just("\"2020-01-15\"".to_string()),
        Just("\"2020-10-13T17:48:31\"".to_string()),
        Just("\"Linux\"".to_string()),
        Just("\"lin\"".to_string()),
        Just("\"a\"".to_string()),
        Just("\"3\"".to_string()),
    ];
    leaf.prop_recursive(3, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec(("[abk]", inner), 0..3).prop_map(|v| {
                let members: Vec<String> =
                    v.into_iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                format!("{{{}}}", members.join(","))
            }),
        ]
    })
}

fn event_line() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["a", "Signed up", "b"]),
        prop_oneof![
            Just("1602611311".to_string()),
            Just("1602611311874".to_string())
        ],
        prop::collection::vec(("k[0-4]", json_value()), 0..6),
    )
        .prop_map(|(name, time, props)| {
            let mut members = vec![format!("\"time\":{time}")];
            members.extend(props.into_iter().map(|(k, v)| format!("\"{k}\":{v}")));
            format!(
                "{{\"event\":\"{name}\",\"properties\":{{{}}}}}",
                members.join(",")
            )
        })
}

/// Expressions over the whole language. `X` may appear outside its `any`/`all`; such
/// expressions fail to compile and are skipped.
fn expression() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        "k[0-4]".prop_map(|k| format!("properties[\"{k}\"]")),
        Just("properties[\"$time\"]".to_string()),
        Just("properties[\"time\"]".to_string()),
        Just("event[\"$event_name\"]".to_string()),
        Just("X".to_string()),
        Just("NOW".to_string()),
        prop::sample::select(vec![
            "true",
            "false",
            "null",
            "undefined",
            "0",
            "-0",
            "1",
            "-1.5",
            "3",
            "18",
            "1602611311",
            "\"\"",
            "\"a\"",
            "\"lin\"",
            "\"Linux\"",
            "\"false\"",
            "\"2020-01-15\"",
            "\"3\"",
            "[]",
            "[1, \"a\"]",
            "[\"a\", 3, null]",
        ])
        .prop_map(str::to_string),
    ];
    leaf.prop_recursive(5, 48, 3, |inner| {
        let binops = prop::sample::select(vec![
            "+", "-", "*", "/", "%", "==", "=", "!=", "<", "<=", ">", ">=", "in", "not in", "and",
            "or",
        ]);
        let funcs = prop::sample::select(vec![
            "defined", "boolean", "number", "string", "datetime", "list", "floor", "round", "ceil",
        ]);
        prop_oneof![
            (inner.clone(), binops, inner.clone()).prop_map(|(a, op, b)| format!("({a} {op} {b})")),
            inner.clone().prop_map(|a| format!("not {a}")),
            inner.clone().prop_map(|a| format!("-({a})")),
            (funcs, inner.clone()).prop_map(|(f, a)| format!("{f}({a})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("string({a}, {b})")),
            (prop::bool::ANY, inner.clone(), inner.clone()).prop_map(|(p, a, b)| format!(
                "{}({a}, {b})",
                if p { "has_prefix" } else { "has_suffix" }
            )),
            (prop::bool::ANY, inner.clone(), inner.clone()).prop_map(|(all, l, p)| format!(
                "{}(X, {l}, {p})",
                if all { "all" } else { "any" }
            )),
            prop::collection::vec(inner.clone(), 0..3).prop_map(|v| format!("[{}]", v.join(", "))),
            (inner.clone(), "[abk]").prop_map(|(a, k)| format!("{a}[\"{k}\"]")),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10000, ..ProptestConfig::default() })]

    /// The VM (folded constants, interned keys, constant sets, jumps) and the plain
    /// interpreter give the same value or the same error on every event.
    #[test]
    fn vm_agrees_with_interpreter(expr in expression(), events in prop::collection::vec(event_line(), 1..4)) {
        let Ok(program) = compile(&expr, ctx()) else {
            return Ok(());
        };
        let tz = program.context().tz.clone();
        let mut parser = LineParser::default();
        let mut scratch = Scratch::default();
        for line in &events {
            let (vm, reference) = parser
                .parse(line.as_bytes(), |e| {
                    let e = EventRef::from_event(e);
                    (
                        program.eval(&e, &mut scratch).map(|v| v.render(&tz)),
                        program.interpret(&e).map(|v| v.render(&tz)),
                    )
                })
                .expect("generated lines are valid events");
            prop_assert_eq!(vm, reference, "expression {} on {}", expr, line);
        }
    }

    /// Arbitrary text never makes the compiler panic.
    #[test]
    fn compiler_never_panics_on_text(src in ".{0,200}") {
        let _ = compile(&src, ctx());
    }

    /// Token soup reaches deeper into the parser than random characters do.
    #[test]
    fn compiler_never_panics_on_token_soup(tokens in prop::collection::vec(prop::sample::select(vec![
        "(", ")", "[", "]", ",", "==", "=", "!=", "<", ">=", "+", "-", "*", "/", "%", "-1", "2.5",
        "\"s\"", "'t'", "and", "or", "not", "in", "true", "null", "NOW", "properties", "event",
        "user", "[\"k\"]", "any", "all", "X", "defined", "string", "has_prefix", "datetime", "foo",
        "\"\\u", "1e999", "\n",
    ]), 0..60)) {
        let src = tokens.join(" ");
        let _ = compile(&src, ctx());
        let _ = compile(&tokens.concat(), ctx());
    }
}

#[test]
fn compiler_survives_pathological_nesting() {
    for src in [
        "(".repeat(100_000),
        "[".repeat(100_000),
        "not ".repeat(100_000),
        "-".repeat(100_000),
        "floor(".repeat(50_000),
        format!("{}1", "any(X, [1], ".repeat(20_000)),
        format!("1{}", " + 1".repeat(200_000)),
        format!("1{}", "[\"k\"]".repeat(100_000)),
    ] {
        let e = compile(&src, ctx());
        assert!(e.is_err(), "{}", &src[..20]);
    }
}
