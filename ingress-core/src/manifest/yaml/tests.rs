//! Tests for the YAML loader.

use super::scalar::go_float_key;
use super::*;
use serde_json::json;

fn parse(text: &str) -> Vec<Document> {
    match parse_documents(text) {
        Ok(docs) => docs,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

fn parse_one(text: &str) -> Document {
    let mut docs = parse(text);
    assert_eq!(docs.len(), 1, "expected one document in {text:?}");
    docs.remove(0)
}

fn parse_err(text: &str) -> YamlError {
    match parse_documents(text) {
        Ok(docs) => panic!("expected an error, got {docs:?}"),
        Err(e) => e,
    }
}

fn pos(line: u32, column: u32) -> Position {
    Position { line, column }
}

fn at(doc: &Document, path: &str) -> Position {
    match doc.positions.get(path) {
        Some(p) => *p,
        None => panic!("no position for {path:?}; have {:?}", doc.positions.keys()),
    }
}

fn line(doc: &Document, path: &str) -> u32 {
    at(doc, path).line
}

const INGRESS: &str = "\
# leading comment
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web   # trailing comment
  annotations:
    nginx.ingress.kubernetes.io/rewrite-target: /$2
    plain-key: x
spec:
  rules:
  - host: example.com
    http:
      paths:
      - path: /a
        pathType: Prefix
      - path: /b
        pathType: Exact
---
# a document that is only a comment
---
apiVersion: v1
kind: Secret
data:
  tls.crt: Zm9v
  \"quoted \\\"key\\\"\": 1
...
";

#[test]
fn multi_document_with_comments() {
    let docs = parse(INGRESS);
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0].value["kind"], json!("Ingress"));
    assert_eq!(docs[0].position, pos(3, 1));
    assert_eq!(docs[0].value["metadata"]["name"], json!("web"));
    assert_eq!(docs[1].value["kind"], json!("Secret"));
    assert_eq!(docs[1].position, pos(22, 1));
    assert_eq!(docs[1].positions[""], pos(22, 1));
}

#[test]
fn positions_of_nested_keys_and_sequence_items() {
    let docs = parse(INGRESS);
    let doc = &docs[0];
    assert_eq!(line(doc, "apiVersion"), 3);
    assert_eq!(at(doc, "kind"), pos(4, 7));
    // A mapping sits at its first key.
    assert_eq!(at(doc, "metadata"), pos(6, 3));
    assert_eq!(at(doc, "metadata.name"), pos(6, 9));
    assert_eq!(line(doc, "spec"), 11);
    assert_eq!(line(doc, "spec.rules"), 12);
    assert_eq!(at(doc, "spec.rules[0]"), pos(12, 5));
    assert_eq!(at(doc, "spec.rules[0].host"), pos(12, 11));
    assert_eq!(line(doc, "spec.rules[0].http"), 14);
    assert_eq!(line(doc, "spec.rules[0].http.paths"), 15);
    assert_eq!(at(doc, "spec.rules[0].http.paths[0]"), pos(15, 9));
    assert_eq!(at(doc, "spec.rules[0].http.paths[0].path"), pos(15, 15));
    assert_eq!(at(doc, "spec.rules[0].http.paths[1]"), pos(17, 9));
    assert_eq!(at(doc, "spec.rules[0].http.paths[1].pathType"), pos(18, 19));
    // Every node has a position, and only nodes do.
    assert_eq!(doc.positions.len(), 20);
    assert_eq!(
        doc.value["spec"]["rules"][0]["http"]["paths"][1]["path"],
        json!("/b")
    );
}

#[test]
fn indented_sequences_and_scalar_documents() {
    let doc = parse_one("list:\n    - a\n    -   - b\n        - c\n");
    assert_eq!(doc.value, json!({"list": ["a", ["b", "c"]]}));
    assert_eq!(at(&doc, "list"), pos(2, 5));
    assert_eq!(at(&doc, "list[0]"), pos(2, 7));
    assert_eq!(at(&doc, "list[1]"), pos(3, 9));
    assert_eq!(at(&doc, "list[1][1]"), pos(4, 11));

    let docs = parse("--- 42\n--- \"text\"\n---\n- 1\n");
    let values: Vec<_> = docs.iter().map(|d| d.value.clone()).collect();
    assert_eq!(values, vec![json!(42), json!("text"), json!([1])]);
    assert_eq!(docs[0].position, pos(1, 5));
    assert_eq!(docs[2].position, pos(4, 1));
}

#[test]
fn annotation_keys_use_bracket_form() {
    let docs = parse(INGRESS);
    let key = "metadata.annotations[\"nginx.ingress.kubernetes.io/rewrite-target\"]";
    assert_eq!(at(&docs[0], key), pos(8, 49));
    assert_eq!(line(&docs[0], "metadata.annotations.plain-key"), 9);
    assert_eq!(line(&docs[1], "data[\"tls.crt\"]"), 25);
    assert_eq!(line(&docs[1], "data[\"quoted \\\"key\\\"\"]"), 26);
    assert_eq!(docs[1].value["data"]["quoted \"key\""], json!(1));
}

#[test]
fn field_path_builders() {
    let mut path = String::new();
    push_key(&mut path, "spec");
    push_key(&mut path, "rules");
    push_index(&mut path, 0);
    push_key(&mut path, "http");
    push_key(&mut path, "paths");
    push_index(&mut path, 1);
    push_key(&mut path, "path");
    assert_eq!(path, "spec.rules[0].http.paths[1].path");

    let mut path = String::new();
    push_key(&mut path, "a.b");
    push_key(&mut path, "x_y-Z9");
    push_key(&mut path, "");
    push_index(&mut path, 12);
    assert_eq!(path, "[\"a.b\"].x_y-Z9[\"\"][12]");

    let mut path = String::new();
    push_index(&mut path, 3);
    push_key(&mut path, "k");
    assert_eq!(path, "[3].k");

    for key in [
        "a\"b\\c",
        "tab\tnl\ncr\r",
        "\u{1}\u{8}\u{c}\u{1f}\u{7f}",
        "é/ü ☃",
        " ",
    ] {
        let mut path = String::new();
        push_key(&mut path, key);
        let expected = match serde_json::to_string(key) {
            Ok(s) => format!("[{s}]"),
            Err(e) => panic!("{e}"),
        };
        assert_eq!(path, expected, "key {key:?}");
    }
}

#[test]
fn scalar_typing_table() {
    let cases: &[(&str, Value)] = &[
        ("true", json!(true)),
        ("True", json!(true)),
        ("TRUE", json!(true)),
        ("false", json!(false)),
        ("False", json!(false)),
        ("FALSE", json!(false)),
        ("yes", json!(true)),
        ("Yes", json!(true)),
        ("YES", json!(true)),
        ("no", json!(false)),
        ("No", json!(false)),
        ("NO", json!(false)),
        ("on", json!(true)),
        ("On", json!(true)),
        ("ON", json!(true)),
        ("off", json!(false)),
        ("Off", json!(false)),
        ("OFF", json!(false)),
        ("y", json!(true)),
        ("N", json!(false)),
        ("yEs", json!("yEs")),
        ("tRUE", json!("tRUE")),
        ("null", Value::Null),
        ("Null", Value::Null),
        ("NULL", Value::Null),
        ("~", Value::Null),
        ("", Value::Null),
        ("nULL", json!("nULL")),
        ("80", json!(80)),
        ("\"80\"", json!("80")),
        ("'80'", json!("80")),
        ("\"true\"", json!("true")),
        ("'yes'", json!("yes")),
        ("\"null\"", json!("null")),
        ("-17", json!(-17)),
        ("+17", json!(17)),
        ("0x1F", json!(31)),
        ("-0x10", json!(-16)),
        ("0o17", json!(15)),
        ("0644", json!(420)),
        ("0b101", json!(5)),
        ("1_000", json!(1000)),
        ("0", json!(0)),
        ("09", json!(9)),
        ("9223372036854775807", json!(i64::MAX)),
        ("-9223372036854775808", json!(i64::MIN)),
        ("18446744073709551615", json!(u64::MAX)),
        ("99999999999999999999999", json!(1e23)),
        ("1.5", json!(1.5)),
        ("-0.25", json!(-0.25)),
        (".5", json!(0.5)),
        ("1e3", json!(1000)),
        ("1.0", json!(1)),
        ("2.5e-3", json!(0.0025)),
        ("1e400", json!("1e400")),
        (".inf", json!(".inf")),
        ("-.Inf", json!("-.Inf")),
        (".nan", json!(".nan")),
        ("0x", json!("0x")),
        ("0x+5", json!("0x+5")),
        ("1.2.3", json!("1.2.3")),
        ("+", json!("+")),
        ("-x", json!("-x")),
        ("-.5", json!(-0.5)),
        ("2001-12-14", json!("2001-12-14")),
        ("1:30", json!("1:30")),
        ("v1", json!("v1")),
        ("nan", json!("nan")),
        ("hello world", json!("hello world")),
        ("!!str 80", json!("80")),
        ("!!str true", json!("true")),
        ("!!int \"42\"", json!(42)),
        ("!!bool \"yes\"", json!(true)),
        ("!!null ''", Value::Null),
        ("!!float 3", json!(3)),
        ("! 12", json!("12")),
        ("!custom 12", json!(12)),
        ("!custom '12'", json!("12")),
    ];
    for (text, expected) in cases {
        let doc = parse_one(&format!("v: {text}\n"));
        assert_eq!(&doc.value["v"], expected, "value {text:?}");
    }
}

#[test]
fn mapping_keys_become_strings() {
    let doc = parse_one(
        "80: a\ntrue: b\noff: c\n0x10: d\n1.5: e\n1e6: f\n.Inf: g\n\"quoted\": h\n'80x': i\n",
    );
    assert_eq!(
        doc.value,
        json!({
            "80": "a", "true": "b", "false": "c", "16": "d", "1.5": "e",
            "1e+06": "f", ".inf": "g", "quoted": "h", "80x": "i",
        })
    );
    assert_eq!(line(&doc, "[\"1.5\"]"), 5);
    assert_eq!(line(&doc, "[\".inf\"]"), 7);
    assert_eq!(go_float_key(0.1), "0.1");
    assert_eq!(go_float_key(123_456.0), "123456");
    assert_eq!(go_float_key(1_234_567.0), "1.234567e+06");
    assert_eq!(go_float_key(0.000_01), "1e-05");
    assert_eq!(go_float_key(0.0001), "0.0001");
    assert_eq!(go_float_key(-2.5), "-2.5");
    assert_eq!(go_float_key(0.0), "0");
}

#[test]
fn block_scalars() {
    let text = "\
literal: |
  line one
    indented
  line three
folded: >
  folded
  text

  new paragraph
strip: |-
  no newline
keep: |+
  keep

number: |
  80
boolean: >-
  true
last: x
";
    let doc = parse_one(text);
    assert_eq!(
        doc.value["literal"],
        json!("line one\n  indented\nline three\n")
    );
    assert_eq!(doc.value["folded"], json!("folded text\nnew paragraph\n"));
    assert_eq!(doc.value["strip"], json!("no newline"));
    assert_eq!(doc.value["keep"], json!("keep\n\n"));
    assert_eq!(doc.value["number"], json!("80\n"));
    assert_eq!(doc.value["boolean"], json!("true"));
    // yaml-rust2 marks a block scalar at its first content line.
    assert_eq!(at(&doc, "literal"), pos(2, 3));
    assert_eq!(line(&doc, "last"), 19);
}

#[test]
fn json_input() {
    let text = concat!(
        "{\n",
        "  \"apiVersion\": \"v1\",\n",
        "\t\"kind\": \"Service\",\n",
        "  \"spec\": {\n",
        "    \"ports\": [\n",
        "      {\"port\": 80, \"name\": \"http\", \"tls\": false},\n",
        "      {\"port\": 443, \"x\": null, \"r\": 1.5}\n",
        "    ],\n",
        "    \"a.b\": \"\\u00e9\\/\\n\"\n",
        "  }\n",
        "}\n",
    );
    let doc = parse_one(text);
    assert_eq!(
        doc.value,
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "spec": {
                "ports": [
                    {"port": 80, "name": "http", "tls": false},
                    {"port": 443, "x": null, "r": 1.5}
                ],
                "a.b": "é/\n"
            }
        })
    );
    assert_eq!(doc.position, pos(1, 1));
    assert_eq!(at(&doc, "kind"), pos(3, 10));
    assert_eq!(at(&doc, "spec"), pos(4, 11));
    assert_eq!(at(&doc, "spec.ports"), pos(5, 14));
    assert_eq!(at(&doc, "spec.ports[0]"), pos(6, 7));
    assert_eq!(at(&doc, "spec.ports[0].port"), pos(6, 16));
    assert_eq!(line(&doc, "spec.ports[1].r"), 7);
    assert_eq!(line(&doc, "spec[\"a.b\"]"), 9);

    let err = parse_err("{\"a\": 1, \"a\": 2}");
    assert!(matches!(err, YamlError::DuplicateKey { .. }), "{err:?}");
    assert_eq!(parse_one("[1, \"2\", {}]").value, json!([1, "2", {}]));
}

#[test]
fn syntax_error_has_line_and_column() {
    let err = parse_err("a: 1\n  b: 2\n");
    assert_eq!(err.position(), pos(2, 4));
    assert!(matches!(err, YamlError::Syntax { .. }), "{err:?}");
    assert!(err.to_string().starts_with("line 2, column 4: "), "{err}");

    let err = parse_err("a: [1, 2\nb: 3\n");
    assert!(matches!(err, YamlError::Syntax { .. }), "{err:?}");
    assert_eq!(err.position().line, 2);

    let err = parse_err("{\"a\": 1,\n \"b\": }}\n");
    assert!(matches!(err, YamlError::Syntax { .. }), "{err:?}");
    assert_eq!(err.position().line, 2);

    let err = parse_err("a: *nope\n");
    assert!(matches!(err, YamlError::Syntax { .. }), "{err:?}");
    assert_eq!(err.position(), pos(1, 4));
}

#[test]
fn duplicate_key_is_an_error() {
    let err = parse_err("metadata:\n  name: a\n  labels: {}\n  name: b\n");
    assert_eq!(
        err,
        YamlError::DuplicateKey {
            position: pos(4, 3),
            key: "name".to_owned(),
            first: pos(2, 3),
        }
    );
    assert_eq!(
        err.to_string(),
        "line 4, column 3: duplicate key \"name\" (first at line 2, column 3)"
    );
    // Keys are compared after conversion to strings.
    let err = parse_err("80: a\n\"80\": b\n");
    assert!(
        matches!(err, YamlError::DuplicateKey { ref key, .. } if key == "80"),
        "{err:?}"
    );
    let err = parse_err("true: a\nyes: b\n");
    assert!(matches!(err, YamlError::DuplicateKey { .. }), "{err:?}");
    // The same key in different mappings is fine.
    let doc = parse_one("a: {x: 1}\nb: {x: 2}\n");
    assert_eq!(doc.value, json!({"a": {"x": 1}, "b": {"x": 2}}));
}

#[test]
fn depth_limit() {
    let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
    let doc = parse_one(&ok);
    assert!(doc.value.is_array());

    let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
    let err = parse_err(&deep);
    assert_eq!(
        err,
        YamlError::TooDeep {
            position: pos(1, 129),
            limit: MAX_DEPTH
        }
    );

    // Far deeper input fails just as fast, without recursion (here in
    // yaml-rust2's scanner, which stops at 255 open flow collections).
    let err = parse_err(&"[".repeat(1_000_000));
    assert!(matches!(err, YamlError::TooDeep { .. }), "{err:?}");
    let err = parse_err(&"{a: ".repeat(1_000_000));
    assert!(matches!(err, YamlError::TooDeep { .. }), "{err:?}");
    let err = parse_err(&"- ".repeat(100_000));
    assert!(matches!(err, YamlError::TooDeep { .. }), "{err:?}");

    let mut block = String::new();
    for i in 0..=MAX_DEPTH {
        block.push_str(&" ".repeat(i));
        block.push_str("k:\n");
    }
    block.push_str(&" ".repeat(MAX_DEPTH + 1));
    block.push_str("k: v\n");
    let err = parse_err(&block);
    assert!(matches!(err, YamlError::TooDeep { .. }), "{err:?}");

    // An alias cannot be used to nest deeper either.
    let nested = format!("{}{}", "[".repeat(100), "]".repeat(100));
    let text = format!(
        "a: &a {nested}\nb: {}*a{}\n",
        "[".repeat(30),
        "]".repeat(30)
    );
    let err = parse_err(&text);
    assert!(matches!(err, YamlError::TooDeep { .. }), "{err:?}");
}

#[test]
fn aliases_copy_values() {
    let text = "\
defaults: &defaults
  port: 80
  tls: &tls [a, b]
first:
  conf: *defaults
  tls: *tls
name: &n web
other: *n
";
    let doc = parse_one(text);
    assert_eq!(
        doc.value["first"]["conf"],
        json!({"port": 80, "tls": ["a", "b"]})
    );
    assert_eq!(doc.value["first"]["tls"], json!(["a", "b"]));
    assert_eq!(doc.value["other"], json!("web"));
    // Copied nodes point at the alias.
    assert_eq!(at(&doc, "first.conf"), pos(5, 9));
    assert_eq!(at(&doc, "first.conf.tls[1]"), pos(5, 9));
    assert_eq!(at(&doc, "defaults.tls[1]"), pos(3, 17));
    assert_eq!(at(&doc, "other"), pos(8, 8));

    // An anchored key can be reused as a key or a value.
    let doc = parse_one("&k host: a\nother: *k\n");
    assert_eq!(doc.value, json!({"host": "a", "other": "host"}));
    let doc = parse_one("a: &k 80\n*k : b\n");
    assert_eq!(doc.value, json!({"a": 80, "80": "b"}));
    assert_eq!(at(&doc, "80"), pos(2, 6));

    // Anchors do not cross documents.
    let err = parse_err("a: &x 1\n---\nb: *x\n");
    assert!(matches!(err, YamlError::Unsupported { .. }), "{err:?}");
    // An alias inside its own anchor is recursive.
    let err = parse_err("a: &x [1, *x]\n");
    assert!(matches!(err, YamlError::Unsupported { .. }), "{err:?}");
}

#[test]
fn alias_bomb_is_limited() {
    let text = "\
a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
";
    let err = parse_err(text);
    assert!(matches!(err, YamlError::TooLarge { .. }), "{err:?}");
    assert_eq!(err.position().line, 7);

    // Few nodes, but long strings copied many times.
    let long = "x".repeat(100_000);
    let aliases = vec!["*s"; 30].join(", ");
    let lists = vec!["*l"; 30].join(", ");
    let text = format!("s: &s {long}\nl: &l [{aliases}]\nm: [{lists}]\n");
    let err = parse_err(&text);
    assert!(matches!(err, YamlError::TooLarge { .. }), "{err:?}");
    assert_eq!(err.position().line, 3);

    // Modest reuse is fine.
    let doc = parse_one("a: &a [1, 2]\nb: [*a, *a, *a]\n");
    assert_eq!(doc.value["b"], json!([[1, 2], [1, 2], [1, 2]]));
}

#[test]
fn unsupported_constructs_are_errors() {
    let err = parse_err("base: &b {a: 1}\nderived:\n  <<: *b\n  c: 2\n");
    assert_eq!(err.position(), pos(3, 3));
    assert!(matches!(err, YamlError::Unsupported { .. }), "{err:?}");
    // A quoted "<<" is an ordinary key.
    assert_eq!(parse_one("\"<<\": 1\n").value, json!({"<<": 1}));

    let err = parse_err("? [a, b]\n: c\n");
    assert!(matches!(err, YamlError::Unsupported { .. }), "{err:?}");
    let err = parse_err("{[1]: 2}\n");
    assert!(matches!(err, YamlError::Unsupported { .. }), "{err:?}");
    let err = parse_err("~: 1\n");
    assert!(matches!(err, YamlError::Unsupported { .. }), "{err:?}");
    let err = parse_err("a: &m {x: 1}\n*m : 2\n");
    assert!(matches!(err, YamlError::Unsupported { .. }), "{err:?}");
    let err = parse_err("v: !!int abc\n");
    assert_eq!(err.position(), pos(1, 10));
    assert!(matches!(err, YamlError::InvalidValue { .. }), "{err:?}");
    let err = parse_err("v: !!bool 1\n");
    assert!(matches!(err, YamlError::InvalidValue { .. }), "{err:?}");
}

#[test]
fn empty_input_and_empty_documents() {
    assert!(parse("").is_empty());
    assert!(parse("\n\n   \n").is_empty());
    assert!(parse("# only a comment\n").is_empty());
    assert!(parse("---\n# comment\n---\n...\n").is_empty());
    assert!(parse("--- null\n--- ~\n").is_empty());
    let docs = parse("# c\n---\n# only comment\n---\na: 1\n---\n");
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].value, json!({"a": 1}));
    assert_eq!(docs[0].position, pos(5, 1));
}

#[test]
fn empty_values_point_at_their_key() {
    let doc = parse_one("a:\nb:\n\n\n  c: 1\nd: !!str\ne: x\n");
    assert_eq!(
        doc.value,
        json!({"a": null, "b": {"c": 1}, "d": "", "e": "x"})
    );
    assert_eq!(at(&doc, "a"), pos(1, 1));
    assert_eq!(at(&doc, "b"), pos(5, 3));
    assert_eq!(at(&doc, "d"), pos(6, 1));
}

#[test]
fn byte_order_mark_and_crlf() {
    let doc = parse_one("\u{feff}a: 1\r\nb:\r\n  - x\r\n");
    assert_eq!(doc.value, json!({"a": 1, "b": ["x"]}));
    assert_eq!(at(&doc, "a"), pos(1, 4));
    assert_eq!(at(&doc, "b[0]"), pos(3, 5));
}

#[test]
fn arbitrary_inputs_do_not_panic() {
    let alphabet: Vec<char> = "ab: -[]{},\"'|>&*!#?\n \t~.0x19e_<%@`\\\u{e9}"
        .chars()
        .collect();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..20_000 {
        let len = usize::try_from(next() % 40).unwrap_or(0);
        let text: String = (0..len)
            .map(|_| {
                let i = usize::try_from(next()).unwrap_or(0) % alphabet.len();
                alphabet.get(i).copied().unwrap_or(' ')
            })
            .collect();
        let _ = parse_documents(&text);
    }
    let base = INGRESS.as_bytes();
    for _ in 0..5_000 {
        let mut bytes = base.to_vec();
        for _ in 0..3 {
            let i = usize::try_from(next()).unwrap_or(0) % bytes.len();
            let j = usize::try_from(next()).unwrap_or(0) % alphabet.len();
            let mut buf = [0u8; 4];
            let c = alphabet
                .get(j)
                .copied()
                .unwrap_or(' ')
                .encode_utf8(&mut buf);
            bytes.splice(i..=i, c.bytes());
        }
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse_documents(&text);
    }
}
