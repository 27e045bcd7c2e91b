//! The `where` language, case by case from `../shared/specs/where-language.md`. Each case
//! names the rule it exercises; the VM and the reference interpreter must both give the
//! expected result.

use tidewater_event::LineParser;
use tidewater_where::{compile, Context, EventRef, Scratch};

/// The event every case runs against (export line format, S8).
const EVENT: &str = r#"{"event":"Signed up","properties":{"time":1602611311,"distinct_id":"u1","$insert_id":"abc","$browser":"Chrome","$os":"Linux","count":18,"price":19.99,"zero":0,"empty":"","flag":true,"nil":null,"tags":["a","b",3],"cart":[{"Brand":"Puma","n":2},{"Brand":"Nike"}],"obj":{"a":1,"b":{"c":"deep"}},"o1":{"x":1,"y":2},"o2":{"y":2,"x":1},"o3":{"x":1},"signup":"2020-01-15","neg":-7,"mp_processing_time_ms":1602625711874,"Plan":"Ent","plan":"free","str18":"18","Falsestr":"False","zerostr":"0","big":1e300,"uni":"значение 🎉","k":["x","id"]}}"#;

/// `NOW` in every case.
const NOW: i64 = 1_700_000_000;

/// (rule, expression, expected): a rendered value, a compile error code, or `RT` for the
/// runtime error E-LOGIC-TYPE.
const CASES: &[(&str, &str, &str)] = &[
    // §3 lexical syntax
    ("L1", r#"properties["$os"]=="Linux""#, "true"),
    ("L1", "properties[ \"$os\" ]\n==\t\"Linux\"\r\n", "true"),
    ("L1", r#"defined (properties["$city"])"#, "false"),
    ("L2", r#"'Linux' == properties["$os"]"#, "true"),
    ("L2", r#""a\"b\\c\/""#, r#""a\"b\\c/""#),
    ("L2", r#""\u00e9" == "é""#, "true"),
    ("L2", r#""\uD83C\uDF89" == "🎉""#, "true"),
    ("L2", r#""\uD83C""#, "E-LEX"),
    ("L2", r#""\uDF89\uD83C""#, "E-LEX"),
    ("L2", r#""\x41""#, "E-LEX"),
    ("L2", r#""abc"#, "E-LEX"),
    ("L2", r#"'it\'s'"#, r#""it's""#),
    ("L2", r#""значение 🎉" == properties["uni"]"#, "true"),
    ("L2", r#""a\tb\n""#, r#""a\tb\n""#),
    ("L3", "1.5e3", "1500"),
    ("L3", "2E-1", "0.2"),
    ("L3", ".5", "E-LEX"),
    ("L3", "5.", "E-LEX"),
    ("L3", "0x10", "E-LEX"),
    ("L3", "1_000", "E-LEX"),
    ("L3", "1.5.2", "E-LEX"),
    ("L3", "1e999", "E-LEX"),
    ("L3", "Infinity", "E-IDENT"),
    ("L3a", "-1", "-1"),
    ("L3a", "3 -1", "2"),
    ("L3a", "3-1", "2"),
    ("L3a", "NOW -604800 == NOW - 604800", "true"),
    ("L3a", "(-2) * 3", "-6"),
    ("L3a", r#"properties["count"] -1"#, "17"),
    ("L3a", "[1,-1]", "[1,-1]"),
    ("L4", "TRUE", "true"),
    ("L4", r#"properties["flag"] AND True"#, "true"),
    ("L4", r#"DEFINED(properties["$os"])"#, "true"),
    ("L4", r#"Properties["$os"]"#, r#""Linux""#),
    ("L4", r#"properties["plan"] == properties["Plan"]"#, "false"),
    ("L4", r#"properties["Plan"]"#, r#""Ent""#),
    ("L4", "Undefined == UNDEFINED", "true"),
    ("L5", "properties[$browser]", "E-LEX"),
    ("L5", "properties.browser", "E-LEX"),
    ("L5", "true && true", "E-LEX"),
    ("L5", "true || false", "E-LEX"),
    ("L5", "!true", "E-LEX"),
    ("L5", "1 # comment", "E-LEX"),
    ("L5", "{}", "E-LEX"),
    ("L5", "1 === 1", "E-SYNTAX"),
    // §4 grammar
    ("G1", "1 +", "E-SYNTAX"),
    ("G1", "(1 + 2", "E-SYNTAX"),
    ("G1", "1 2", "E-SYNTAX"),
    ("G1", "== 1", "E-SYNTAX"),
    ("G1", r#"properties["a"] properties["b"]"#, "E-SYNTAX"),
    ("G1", ")", "E-SYNTAX"),
    ("G1", "[1, 2", "E-SYNTAX"),
    ("G1", "true and", "E-SYNTAX"),
    ("G1", "and true", "E-SYNTAX"),
    ("G1", "()", "E-SYNTAX"),
    ("G2", "true or false and false", "true"),
    ("G2", "not true and false", "false"),
    ("G2", "not 1 == 2", "true"),
    ("G2", "1 + 2 * 3 == 7", "true"),
    ("G2", "10 - 4 - 3", "3"),
    ("G2", "- 2 * 3", "-6"),
    ("G2", "2 * 3 % 4", "2"),
    ("G2", "12 / 2 / 3", "2"),
    ("G2", r#"not not "abc""#, "true"),
    ("G2", "(true or false) and false", "false"),
    ("G2", "1 + 2 == 3 and 2 * 2 == 4", "true"),
    (
        "G2",
        r#"properties["$browser"] == "Chrome" and not "" in properties["$os"]"#,
        "false",
    ),
    ("G3", "1 < 2 < 3", "E-SYNTAX"),
    ("G3", "1 == 1 == true", "E-SYNTAX"),
    ("G3", "(1 == 1) == true", "true"),
    ("G3", "1 < 2 and 2 < 3", "true"),
    ("G3", r#""a" in "abc" in "x""#, "E-SYNTAX"),
    ("G4", r#""z" not in properties["$os"]"#, "true"),
    ("G4", r#""Lin" not in properties["$os"]"#, "false"),
    ("G4", r#"not "Lin" in properties["$os"]"#, "false"),
    ("G4", "1 not 2", "E-SYNTAX"),
    ("G4", r#""a" NOT IN properties["tags"]"#, "false"),
    ("G4", r#""x" not in properties["missing"]"#, "true"),
    ("G5", r#"properties["plan"] = "free""#, "true"),
    ("G5", r#"any(X, properties["tags"], X="a")"#, "true"),
    ("G6", r#"properties["count"] in [1, 18, 3]"#, "true"),
    ("G6", "[1, 1 + 1]", "[1,2]"),
    ("G6", "[]", "[]"),
    ("G6", "[1, 2,]", "E-SYNTAX"),
    ("G6", "[,1]", "E-SYNTAX"),
    ("G6", "1 in []", "false"),
    ("G6", r#"[properties["count"], "x"]"#, r#"[18,"x"]"#),
    ("G7", "defined()", "E-ARITY"),
    ("G7", "defined(1, 2)", "E-ARITY"),
    ("G7", "string(1, 2, 3)", "E-ARITY"),
    ("G7", r#"has_prefix("a")"#, "E-ARITY"),
    ("G7", "datetime(2024, 1, 1)", "E-ARITY"),
    ("G7", "any(X, [1])", "E-ARITY"),
    ("G7", "any(X, [1], true, false)", "E-ARITY"),
    ("G7", "any(and, [1], true)", "E-IDENT"),
    ("G7", "any(properties, [1], true)", "E-IDENT"),
    ("G7", "all(Now, [1], true)", "E-IDENT"),
    ("G7", "any(1, [1], true)", "E-SYNTAX"),
    ("G7", "floor(1.5, 2)", "E-ARITY"),
    ("G8", "properties[x]", "E-SYNTAX"),
    ("G8", "properties[1]", "E-SYNTAX"),
    ("G8", "properties", "E-SYNTAX"),
    ("G8", r#"behaviors["x"]"#, "E-CONTEXT"),
    ("G9", r#"user["$email"] == "a""#, "E-CONTEXT"),
    ("G9", r#"USER["x"]"#, "E-CONTEXT"),
    ("G10", "", "E-EMPTY"),
    ("G10", "   \n\t ", "E-EMPTY"),
    ("G11", "foo()", "E-IDENT"),
    ("G11", r#"lower(properties["a"])"#, "E-IDENT"),
    ("G11", r#"regex_match("a", "b")"#, "E-IDENT"),
    ("G11", "contains", "E-IDENT"),
    ("G11", r#"browser == "x""#, "E-IDENT"),
    ("G11", "any(X, [1], true) and X", "E-IDENT"),
    ("F-now", "now()", "E-SYNTAX"),
    // §6.1 values
    ("V2", r#"properties["$browser"]"#, r#""Chrome""#),
    ("V2", r#"properties["missing"]"#, "undefined"),
    ("V2", r#"properties["nil"]"#, "null"),
    ("V2", r#"properties["tags"]"#, r#"["a","b",3]"#),
    ("V2", r#"properties["obj"]"#, r#"{"a":1,"b":{"c":"deep"}}"#),
    ("V2", r#"properties["event"]"#, "undefined"),
    ("V2", r#"properties["time"]"#, "1602611311"),
    ("V2", r#"properties["distinct_id"]"#, r#""u1""#),
    ("V2", r#"properties["$os "]"#, "undefined"),
    ("V2", r#"properties["obj.a"]"#, "undefined"),
    ("V2", r#"properties["signup"]"#, r#""2020-01-15""#),
    (
        "V2a",
        r#"properties["$time"]"#,
        r#"datetime("2020-10-13T17:48:31")"#,
    ),
    ("V2a", r#"properties["$time"] == event["$time"]"#, "true"),
    (
        "V2a",
        r#"properties["$time"] >= datetime("2020-10-13")"#,
        "true",
    ),
    (
        "V2a",
        r#"properties["$time"] >= datetime(1602611311)"#,
        "true",
    ),
    (
        "V2a",
        r#"properties["$time"] > datetime(1602611311)"#,
        "false",
    ),
    ("V3", r#"properties["obj"]["a"]"#, "1"),
    ("V3", r#"properties["obj"]["b"]["c"]"#, r#""deep""#),
    ("V3", r#"properties["obj"]["zz"]"#, "undefined"),
    ("V3", r#"properties["$os"]["a"]"#, "undefined"),
    ("V3", r#"properties["tags"]["0"]"#, "undefined"),
    ("V3", r#"properties["obj"][0]"#, "E-SYNTAX"),
    ("V1", "19.99 * 100 == 1999", "false"),
    ("A6", r#"properties["big"] * 1e10"#, "undefined"),
    ("A6", "1e308 + 1e308", "undefined"),
    // §6.2 equality
    ("E1", "18 == 18.0", "true"),
    ("E1", "-0 == 0", "true"),
    ("E1", r#"properties["count"] == 18"#, "true"),
    ("E1", r#""a" == "a""#, "true"),
    ("E1", "true == true", "true"),
    (
        "E1",
        r#"datetime("2020-10-13T00:00:00") == datetime("2020-10-13T00:00:00.900")"#,
        "true",
    ),
    ("E2", r#"18 == "18""#, "false"),
    ("E2", "true == 1", "false"),
    ("E2", r#"true == "true""#, "false"),
    ("E2", r#"["a"] == "a""#, "false"),
    ("E2", "null == undefined", "false"),
    ("E2", r#"properties["str18"] == 18"#, "false"),
    ("E3", r#"properties["missing"] != "v""#, "true"),
    ("E3", r#"18 != "18""#, "true"),
    ("E3", "1 != 1", "false"),
    ("E4", "undefined == undefined", "true"),
    ("E4", "null == null", "true"),
    ("E4", r#"properties["a"] == properties["b"]"#, "true"),
    ("E4", r#"1/0 == properties["missing"]"#, "true"),
    ("E5", r#"[1, "a"] == [1, "a"]"#, "true"),
    ("E5", r#"[1, "a"] == ["a", 1]"#, "false"),
    ("E5", "[1] == [1, 1]", "false"),
    ("E5", r#"properties["tags"] == ["a", "b", 3]"#, "true"),
    ("E5", r#"properties["cart"] == properties["cart"]"#, "true"),
    ("E5", r#"properties["o1"] == properties["o2"]"#, "true"),
    ("E5", r#"properties["o1"] == properties["o3"]"#, "false"),
    ("E5", r#"properties["o1"] == properties["obj"]"#, "false"),
    ("E6", r#""Linux" == "linux""#, "false"),
    ("E6", r#"properties["$os"] == "LINUX""#, "false"),
    ("E6", r#""e\u0301" == "é""#, "false"),
    // §6.3 ordering
    ("C1", r#"properties["count"] > 17.5"#, "true"),
    ("C1", "2 <= 2", "true"),
    ("C1", r#"properties["neg"] < -7"#, "false"),
    ("C1", "3 >= 4", "false"),
    ("C2", r#""Zebra" < "apple""#, "true"),
    ("C2", r#""2020-01-02" > "2020-01-01""#, "true"),
    ("C2", r#""a" < "ab""#, "true"),
    ("C2", r#""é" > "z""#, "true"),
    ("C3", r#"18 > "17""#, "undefined"),
    ("C3", "true > false", "undefined"),
    ("C3", "[1] < [2]", "undefined"),
    ("C3", "null < 1", "undefined"),
    ("C3", r#"properties["missing"] > 0"#, "undefined"),
    ("C3", r#"not (properties["missing"] > 0)"#, "true"),
    (
        "C4",
        r#"datetime("2020-01-02") > datetime("2020-01-01")"#,
        "true",
    ),
    (
        "C4",
        "datetime(1602611311.9) == datetime(1602611311)",
        "true",
    ),
    (
        "C5",
        r#"properties["time"] >= datetime("2020-10-13")"#,
        "true",
    ),
    (
        "C5",
        r#"properties["signup"] > datetime("2020-01-01")"#,
        "true",
    ),
    (
        "C5",
        r#"properties["signup"] == datetime("2020-01-15")"#,
        "true",
    ),
    (
        "C5",
        r#"properties["$os"] == datetime("2020-01-15")"#,
        "false",
    ),
    (
        "C5",
        r#"properties["$os"] != datetime("2020-01-15")"#,
        "true",
    ),
    (
        "C5",
        r#"properties["$os"] < datetime("2020-01-15")"#,
        "undefined",
    ),
    ("C5", r#"0 < datetime("2020-01-15")"#, "undefined"),
    ("C5", r#"datetime("2020-01-15") in ["2020-01-15"]"#, "true"),
    (
        "C5",
        r#"properties["signup"] in [datetime("2020-01-15")]"#,
        "true",
    ),
    (
        "C5",
        r#"properties["mp_processing_time_ms"] > datetime("2020-10-13T21:00:00")"#,
        "true",
    ),
    // §6.4 membership
    ("I1", r#""Lin" in properties["$os"]"#, "true"),
    ("I1", r#""lin" in properties["$os"]"#, "false"),
    ("I1", r#""" in properties["$os"]"#, "true"),
    (
        "I1",
        r#"("Albany" in properties["$city"]) and (defined (properties["$city"]))"#,
        "false",
    ),
    ("I2", r#""a" in properties["tags"]"#, "true"),
    ("I2", r#"3 in properties["tags"]"#, "true"),
    ("I2", r#""3" in properties["tags"]"#, "false"),
    ("I2", r#"properties["missing"] in [1, 2]"#, "false"),
    ("I2", "undefined in [undefined]", "true"),
    ("I2", r#"properties["count"] in [1,2,3,4]"#, "false"),
    ("I2", "-0 in [0]", "true"),
    (
        "I2",
        r#"properties["$browser"] in ["Chrome", "Firefox"]"#,
        "true",
    ),
    ("I2", "null in [null]", "true"),
    (
        "I2",
        r#"properties["cart"]["x"] in [properties["missing"]]"#,
        "true",
    ),
    ("I3", r#"["a", "z"] in properties["tags"]"#, "true"),
    ("I3", r#"["y", "z"] in properties["tags"]"#, "false"),
    ("I3", r#"[] in properties["tags"]"#, "false"),
    ("I3", r#"properties["tags"] in ["b"]"#, "true"),
    ("I3", "[1] in [[1], 2]", "false"),
    ("I4", r#"1 in "123""#, "undefined"),
    ("I4", r#""1" in 123"#, "undefined"),
    ("I4", r#""x" in properties["missing"]"#, "undefined"),
    ("I4", r#"not "x" in properties["missing"]"#, "true"),
    ("I4", r#""x" in properties["obj"]"#, "undefined"),
    ("I4", r#"undefined in "abc""#, "undefined"),
    ("I4", r#""a" in null"#, "undefined"),
    // §6.5 arithmetic
    ("A1", "1 + 2", "3"),
    ("A1", r#""ab" + "cd""#, r#""abcd""#),
    ("A1", r#""a" + 1"#, "undefined"),
    ("A1", r#"datetime("2020-01-01") + 1"#, "undefined"),
    (
        "A1",
        r#"properties["$os"] + "/" + properties["$browser"]"#,
        r#""Linux/Chrome""#,
    ),
    ("A2", r#""3" - 1"#, "undefined"),
    ("A2", "6 / 4", "1.5"),
    ("A2", "true * 2", "undefined"),
    ("A3", "1 / 0", "undefined"),
    ("A3", "5 % 0", "undefined"),
    ("A3", "0 / 5", "0"),
    ("A4", "-7 % 3", "-1"),
    ("A4", "7 % -3", "1"),
    ("A4", "7.5 % 2", "1.5"),
    ("A5", r#"-properties["count"]"#, "-18"),
    ("A5", r#"-"a""#, "undefined"),
    ("A5", "- -3", "3"),
    // §6.6 logic
    ("B1", "true and undefined", "false"),
    ("B1", r#"properties["missing"] or true"#, "true"),
    ("B1", "true and true", "true"),
    ("B1", "false or false", "false"),
    ("B2", "null or true", "true"),
    ("B2", r#"properties["nil"] and true"#, "false"),
    ("B2", "not null", "true"),
    ("B3", r#"properties["$browser"] and true"#, "RT"),
    ("B3", r#"true and properties["count"]"#, "RT"),
    ("B3", "1 or false", "RT"),
    ("B3", "[1] and true", "RT"),
    ("B3", r#"datetime("2020-01-01") or true"#, "RT"),
    ("B3", r#"properties["obj"] or true"#, "RT"),
    ("B3", r#"true and "true""#, "RT"),
    ("B4", "true or 1", "true"),
    ("B4", r#"false and properties["count"]"#, "false"),
    ("B4", r#"true or properties["count"]"#, "true"),
    ("B4", "false and (1 or false)", "false"),
    ("B4", r#"properties["flag"] and (1 or false)"#, "RT"),
    ("B4", r#"properties["missing"] and (1 or false)"#, "false"),
    ("B5", "not true", "false"),
    ("B5", "not undefined", "true"),
    ("B5", r#"not "abc""#, "undefined"),
    ("B5", "not 0", "undefined"),
    ("B5", "not not not true", "false"),
    // §7 functions
    ("F-defined", r#"defined(properties["$os"])"#, "true"),
    ("F-defined", r#"defined(properties["missing"])"#, "false"),
    ("F-defined", r#"defined(properties["nil"])"#, "false"),
    ("F-defined", r#"defined(number("abc"))"#, "false"),
    ("F-defined", r#"defined(properties["empty"])"#, "true"),
    ("F-defined", r#"defined(properties["zero"])"#, "true"),
    ("F-defined", "defined([])", "true"),
    ("F-defined", "defined(false)", "true"),
    ("F-boolean", r#"boolean(properties["empty"])"#, "false"),
    ("F-boolean", r#"boolean("false")"#, "false"),
    ("F-boolean", r#"boolean(properties["Falsestr"])"#, "true"),
    ("F-boolean", r#"boolean(properties["zerostr"])"#, "true"),
    ("F-boolean", "boolean(0)", "false"),
    ("F-boolean", "boolean(2)", "true"),
    ("F-boolean", r#"boolean(properties["nil"])"#, "false"),
    ("F-boolean", r#"boolean(properties["missing"])"#, "false"),
    ("F-boolean", "boolean([])", "true"),
    ("F-boolean", r#"boolean(properties["obj"])"#, "true"),
    ("F-boolean", "boolean(datetime(1))", "true"),
    ("F-number", r#"number("42")"#, "42"),
    ("F-number", r#"number(" 42")"#, "undefined"),
    ("F-number", r#"number("-1.5e2")"#, "-150"),
    ("F-number", r#"number(".5")"#, "0.5"),
    ("F-number", r#"number("5.")"#, "5"),
    ("F-number", r#"number("+3")"#, "3"),
    ("F-number", r#"number("abc")"#, "undefined"),
    ("F-number", r#"number("1e999")"#, "undefined"),
    ("F-number", r#"number("Infinity")"#, "undefined"),
    ("F-number", r#"number("NaN")"#, "undefined"),
    ("F-number", r#"number("0x10")"#, "undefined"),
    ("F-number", r#"number(".")"#, "undefined"),
    ("F-number", "number(true)", "1"),
    ("F-number", "number(null)", "undefined"),
    ("F-number", r#"number(properties["tags"])"#, "undefined"),
    (
        "F-number",
        r#"number(datetime("2020-10-13"))"#,
        "1602547200",
    ),
    (
        "F-number",
        r#"number(properties["mp_processing_time_ms"]) < 1602625711875"#,
        "true",
    ),
    ("F-string", "string(18)", r#""18""#),
    ("F-string", "string(19.99)", r#""19.99""#),
    ("F-string", "string(-0)", r#""0""#),
    ("F-string", "string(true)", r#""true""#),
    ("F-string", "string(null)", "null"),
    ("F-string", r#"string(properties["missing"])"#, "undefined"),
    ("F-string", r#"string(properties["tags"])"#, "undefined"),
    ("F-string", r#"string(properties["obj"])"#, "undefined"),
    (
        "F-string",
        "string(datetime(1602611311))",
        r#""2020-10-13T17:48:31""#,
    ),
    ("F-string", "string(1e21)", r#""1000000000000000000000""#),
    ("F-string", "string(0.1 + 0.2)", r#""0.30000000000000004""#),
    (
        "F-string2",
        r#"string(properties["missing"], "undefined") == "undefined""#,
        "true",
    ),
    ("F-string2", r#"string(properties["nil"], "d")"#, r#""d""#),
    (
        "F-string2",
        r#"string(properties["count"], "d")"#,
        r#""18""#,
    ),
    (
        "F-string2",
        r#"string(properties["$os"], 1 or true)"#,
        r#""Linux""#,
    ),
    (
        "F-string2",
        r#"string(properties["missing"], 1 or true)"#,
        "RT",
    ),
    ("F-string2", r#"string(properties["tags"], 7)"#, "7"),
    (
        "S5",
        r#"((defined (properties["k"])) AND ((any(X, properties["k"], X="id")) OR (string(properties["k"], "undefined") == "id")))"#,
        "true",
    ),
    (
        "S5",
        r#"((defined (properties["k"])) AND ((any(X, properties["k"], X="id")) OR (string(properties["k"], "undefined") == "id"))) AND (number(properties["mp_processing_time_ms"]) < 1602625711874)"#,
        "false",
    ),
    ("F-math", "floor(1.7)", "1"),
    ("F-math", "ceil(1.2)", "2"),
    ("F-math", "round(2.5)", "3"),
    ("F-math", "round(-2.5)", "-3"),
    ("F-math", "floor(-1.5)", "-2"),
    ("F-math", r#"round("2.5")"#, "undefined"),
    ("F-math", r#"floor(properties["price"])"#, "19"),
    (
        "F-datetime",
        "datetime(1602611311)",
        r#"datetime("2020-10-13T17:48:31")"#,
    ),
    (
        "F-datetime",
        "datetime(1602611311874)",
        r#"datetime("2020-10-13T17:48:31")"#,
    ),
    ("F-datetime", "datetime(0)", "undefined"),
    ("F-datetime", "datetime(-5)", "undefined"),
    ("F-datetime", "datetime(0.5)", "undefined"),
    (
        "F-datetime",
        "datetime(4294967295)",
        r#"datetime("2106-02-07T06:28:15")"#,
    ),
    (
        "F-datetime",
        "datetime(4294967296)",
        r#"datetime("1970-02-19T17:02:47")"#,
    ),
    (
        "F-datetime",
        r#"datetime("2014-09-9") == datetime("2014-09-09")"#,
        "true",
    ),
    ("F-datetime", r#"datetime("2020-02-30")"#, "undefined"),
    ("F-datetime", r#"datetime("T25:00:00")"#, "undefined"),
    (
        "F-datetime",
        r#"datetime("2020-10-13T25:00:00")"#,
        "undefined",
    ),
    (
        "F-datetime",
        r#"datetime("2020-10-13T18:15:11+02:00") == datetime("2020-10-13T16:15:11Z")"#,
        "true",
    ),
    (
        "F-datetime",
        r#"datetime("2020-10-13 18:15")"#,
        r#"datetime("2020-10-13T18:15:00")"#,
    ),
    ("F-datetime", r#"datetime("not a date")"#, "undefined"),
    ("F-datetime", "datetime(true)", "undefined"),
    ("F-datetime", "datetime(null)", "undefined"),
    ("F-datetime", r#"datetime(properties["tags"])"#, "undefined"),
    ("F-datetime", "datetime(datetime(5)) == datetime(5)", "true"),
    ("F-list", r#"list(properties["tags"])"#, r#"["a","b",3]"#),
    ("F-list", r#"list("a")"#, "undefined"),
    ("F-list", "list([1])", "[1]"),
    (
        "F-prefix",
        r#"has_prefix(properties["$os"], "lin")"#,
        "true",
    ),
    ("F-prefix", r#"has_suffix(properties["$os"], "UX")"#, "true"),
    ("F-prefix", r#"has_prefix(properties["$os"], "x")"#, "false"),
    ("F-prefix", r#"has_prefix(1, "1")"#, "undefined"),
    (
        "F-prefix",
        r#"has_prefix(string(properties["signup"]), "2020")"#,
        "true",
    ),
    ("F-prefix", r#"has_prefix("ΣΑΣ", "σα")"#, "true"),
    ("F-any", r#"any(X, properties["tags"], X == "b")"#, "true"),
    ("F-any", r#"any(X, properties["tags"], X == "zz")"#, "false"),
    ("F-all", r#"all(X, properties["tags"], defined(X))"#, "true"),
    ("F-all", "all(X, [], false)", "true"),
    ("F-any", "any(X, [], true)", "false"),
    (
        "F-any",
        r#"any(item, properties["cart"], item["Brand"] == "Puma")"#,
        "true",
    ),
    (
        "F-all",
        r#"all(item, properties["cart"], item["Brand"] == "Puma")"#,
        "false",
    ),
    ("F-any", r#"any(X, properties["$os"], true)"#, "undefined"),
    (
        "F-any",
        r#"any(X, properties["missing"], true)"#,
        "undefined",
    ),
    ("F-any", "any(X, [1, 2], X)", "false"),
    ("F-any", "any(X, [1, 2], X and true)", "RT"),
    ("F-any", "any(X, [true, 1], X)", "true"),
    ("F-any", "any(x, [[1,2],[3]], any(x, x, x == 3))", "true"),
    ("F-any", "any(X, [1, 2], x == 2)", "true"),
    ("F-all", "all(X, [1, 2], any(Y, [2, 1], X == Y))", "true"),
    ("F-now", "NOW", "1700000000"),
    ("F-now", "now == NOW", "true"),
    (
        "F-now",
        r#"datetime(NOW - 604800) <= properties["$time"]"#,
        "false",
    ),
    ("F-now", "NOW > 1600000000", "true"),
    ("F-event", r#"event["$event_name"]"#, r#""Signed up""#),
    ("F-event", r#"event["name"] == "Signed up""#, "true"),
    (
        "F-event",
        r#"event["$time"]"#,
        r#"datetime("2020-10-13T17:48:31")"#,
    ),
    ("F-event", r#"event["$distinct_id"]"#, r#""u1""#),
    (
        "F-event",
        r#"event["distinct_id"] == properties["distinct_id"]"#,
        "true",
    ),
    ("F-event", r#"event["other"]"#, "undefined"),
    ("F-event", r#"event["time"] == properties["$time"]"#, "true"),
    ("F-event", "event", "E-SYNTAX"),
];

/// The rendered result, the compile error code, or `RT` for a runtime error.
fn outcome(expr: &str, event: &str, tz: &str) -> String {
    let program = match compile(expr, ctx(tz)) {
        Ok(p) => p,
        Err(e) => {
            let text = e.to_string();
            assert!(
                text.contains('^') && text.starts_with(e.code.as_str()),
                "{expr}: error without code or caret: {text}"
            );
            return e.code.as_str().to_string();
        }
    };
    let mut parser = LineParser::default();
    let mut scratch = Scratch::default();
    let tz = program.context().tz.clone();
    parser
        .parse(event.as_bytes(), |e| {
            let e = EventRef::from_event(e);
            let vm = program.eval(&e, &mut scratch).map(|v| v.render(&tz));
            let reference = program.interpret(&e).map(|v| v.render(&tz));
            assert_eq!(vm, reference, "{expr}: VM and interpreter disagree");
            match vm {
                Ok(v) => v,
                Err(err) => {
                    assert!(err.to_string().starts_with("E-LOGIC-TYPE"), "{err}");
                    "RT".to_string()
                }
            }
        })
        .unwrap_or_else(|r| panic!("{expr}: event rejected: {r}"))
}

fn ctx(tz: &str) -> Context {
    let mut ctx = Context::new(tz).unwrap();
    ctx.now = NOW;
    ctx
}

#[test]
fn spec_cases() {
    assert!(CASES.len() >= 150, "{} cases", CASES.len());
    let mut failures = Vec::new();
    for (rule, expr, want) in CASES {
        let got = outcome(expr, EVENT, "UTC");
        if got != *want {
            failures.push(format!("[{rule}] {expr}\n    want {want}\n    got  {got}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn v2a_time_in_ms_and_project_time_zone() {
    let ms = r#"{"event":"e","properties":{"time":1602611311874}}"#;
    assert_eq!(
        outcome(r#"properties["$time"] == datetime(1602611311)"#, ms, "UTC"),
        "true"
    );
    assert_eq!(
        outcome(r#"properties["time"] > datetime("2020-10-13")"#, ms, "UTC"),
        "true"
    );
    // §8: zone-less strings are read in the project time zone; explicit zones as given.
    let ny = "America/New_York";
    assert_eq!(
        outcome(
            r#"datetime("2020-10-13") == datetime("2020-10-13T04:00:00Z")"#,
            EVENT,
            ny
        ),
        "true"
    );
    assert_eq!(
        outcome("string(datetime(1602547200))", EVENT, ny),
        r#""2020-10-12T20:00:00""#
    );
    assert_eq!(
        outcome(r#"properties["$time"]"#, EVENT, ny),
        r#"datetime("2020-10-13T13:48:31")"#
    );
}

#[test]
fn t1_only_boolean_true_matches() {
    let c = || ctx("UTC");
    for (expr, want) in [
        ("1", false),
        (r#""true""#, false),
        ("[true]", false),
        ("undefined", false),
        ("null", false),
        (r#"datetime("2020-01-01")"#, false),
        ("boolean(1)", true),
        ("true", true),
    ] {
        let p = compile(expr, c()).unwrap();
        assert_eq!(p.matches_json(EVENT).unwrap(), want, "{expr}");
    }
}

#[test]
fn g12_nesting_limit_is_256_levels() {
    let nested =
        |open: &str, close: &str, n: usize| format!("{}1{}", open.repeat(n), close.repeat(n));
    let c = || ctx("UTC");
    assert!(compile(&nested("(", ")", 256), c()).is_ok());
    assert_eq!(
        compile(&nested("(", ")", 257), c())
            .unwrap_err()
            .code
            .as_str(),
        "E-DEPTH"
    );
    assert!(compile(&nested("[", "]", 256), c()).is_ok());
    assert_eq!(
        compile(&nested("[", "]", 257), c())
            .unwrap_err()
            .code
            .as_str(),
        "E-DEPTH"
    );
    assert_eq!(
        compile(&nested("floor(", ")", 300), c())
            .unwrap_err()
            .code
            .as_str(),
        "E-DEPTH"
    );
    assert!(compile(&format!("{}true", "not ".repeat(256)), c()).is_ok());
    assert_eq!(
        compile(&format!("{}true", "not ".repeat(257)), c())
            .unwrap_err()
            .code
            .as_str(),
        "E-DEPTH"
    );
    assert_eq!(
        compile(&format!("{}1", "- ".repeat(100_000)), c())
            .unwrap_err()
            .code
            .as_str(),
        "E-DEPTH"
    );
    // Long flat chains are not nesting; very long ones are refused instead of
    // overflowing the stack, and `or` chains of any length are flat.
    let chain = vec!["1"; 500].join(" + ");
    assert!(compile(&chain, c()).is_ok());
    let chain = vec!["1"; 100_000].join(" + ");
    assert_eq!(compile(&chain, c()).unwrap_err().code.as_str(), "E-DEPTH");
    let ors = vec![r#"properties["count"] == 1"#; 20_000].join(" or ");
    let p = compile(&ors, c()).unwrap();
    assert!(!p.matches_json(EVENT).unwrap());
}

#[test]
fn compile_errors_point_at_the_fault() {
    let e = compile("properties[\"a\"] == 1 and\n  foo(1)", ctx("UTC")).unwrap_err();
    assert_eq!(e.code.as_str(), "E-IDENT");
    assert_eq!(e.offset, 27);
    assert_eq!(
        e.to_string(),
        "E-IDENT at byte 27: unknown function `foo`\n    foo(1)\n    ^"
    );
    let e = compile("1 < 2 < 3", ctx("UTC")).unwrap_err();
    assert_eq!((e.code.as_str(), e.offset), ("E-SYNTAX", 6));
}

#[test]
fn runtime_error_names_operator_and_type() {
    let p = compile(r#"properties["$browser"] and true"#, ctx("UTC")).unwrap();
    let e = p.eval_json(EVENT).unwrap().unwrap_err();
    assert_eq!((e.operator, e.operand), ("and", "string"));
}

#[test]
fn explain_shows_tree_and_bytecode() {
    let p = compile(
        r#"properties["$os"] == "Linux" and properties["count"] in [1, 2, 18] and properties["$os"] != "x""#,
        ctx("UTC"),
    )
    .unwrap();
    let text = p.explain();
    assert!(
        text.contains("tree:\nand\n  ==\n    properties[\"$os\"]"),
        "{text}"
    );
    assert!(text.contains("in_set"), "{text}");
    assert!(text.contains("and_test"), "{text}");
    // Keys are interned: `$os` is one key even though it is read twice.
    assert!(text.contains("2 interned keys"), "{text}");
    // Constant subtrees are folded.
    let folded = compile("NOW - 86400 * 7 > 0 and 1 + 1 == 2", ctx("UTC")).unwrap();
    assert!(
        folded.explain().contains("1 instructions"),
        "{}",
        folded.explain()
    );
}
