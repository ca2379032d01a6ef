//! Manifest text (multi-document YAML, or JSON) to JSON values with the
//! source position of every node.
//!
//! [`parse_documents`] turns the text of a manifest file into one
//! [`Document`] per YAML document. Each document carries its value as a
//! [`serde_json::Value`] and a map from *field path* to [`Position`], so that
//! later code can report `file.yaml:12: spec.rules[0].host is invalid`.
//!
//! # Field paths
//!
//! Keys are joined with `.`, sequence indexes are written `[N]`, and a key
//! that is not a non-empty run of `[A-Za-z0-9_-]` is written `["..."]` with
//! JSON string escaping: `spec.rules[0].http.paths[1].path`,
//! `metadata.annotations["nginx.ingress.kubernetes.io/rewrite-target"]`,
//! `data["tls.crt"]`. The root is the empty string. [`push_key`] and
//! [`push_index`] build these strings.
//!
//! # Scalar typing
//!
//! Plain (unquoted) scalars are typed the way Kubernetes clients type them
//! (`sigs.k8s.io/yaml`, which runs go-yaml v2 and converts to JSON):
//!
//! * `true`, `True`, `TRUE`, `false`, … and the YAML 1.1 forms `yes`, `no`,
//!   `on`, `off` (lower, title or upper case) and `y`, `Y`, `n`, `N` are
//!   booleans;
//! * `null`, `Null`, `NULL`, `~` and an empty value are null;
//! * integers (decimal, `0x` hex, `0o` or leading-`0` octal, `0b` binary,
//!   optional sign, `_` separators ignored) are numbers;
//! * floats (`1.5`, `1e3`, `.5`) are numbers; a float with an integral value
//!   becomes an integer, as it does once Go has written it as JSON;
//!   `.inf`, `-.inf` and `.nan` cannot be JSON and stay strings;
//! * everything else, and every quoted or block (`|`, `>`) scalar, is a
//!   string.
//!
//! Mapping keys are always strings: a key `80` becomes `"80"`, `true` becomes
//! `"true"`, a float key is written the way `sigs.k8s.io/yaml` writes it.
//! The tags `!!str`, `!!int`, `!!float`, `!!bool` and `!!null` are honoured;
//! `!!binary` and `!!timestamp` keep the text; the non-specific tag `!` makes
//! a string; any other tag is ignored.
//!
//! # Limits
//!
//! The input is untrusted. Nesting deeper than 128 collections, an output of
//! more than 1,000,000 nodes, or more than 64 MiB of strings and field paths
//! (for example through alias expansion, "billion laughs") is an error.
//! Nothing here recurses deeper than the nesting limit allows.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, ScanError, TScalarStyle};

/// Deepest nesting of sequences and mappings accepted (the root collection
/// is level 1).
const MAX_DEPTH: usize = 128;

/// Most nodes (scalars, sequences and mappings, alias copies included) the
/// whole input may expand to.
const MAX_NODES: usize = 1_000_000;

/// Most bytes of string values, mapping keys and field paths the whole input
/// may expand to.
const MAX_OUTPUT_BYTES: usize = 64 * 1024 * 1024;

/// Prefix of the YAML core schema tags (`!!str` is `tag:yaml.org,2002:str`).
const CORE_TAG_PREFIX: &str = "tag:yaml.org,2002:";

/// 1-based line and column of a node in the source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// Line, counting from 1.
    pub line: u32,
    /// Column in characters, counting from 1.
    pub column: u32,
}

impl Position {
    /// Converts a yaml-rust2 marker (1-based line, 0-based column).
    fn from_marker(marker: &Marker) -> Self {
        Position {
            line: to_u32(marker.line()).max(1),
            column: to_u32(marker.col().saturating_add(1)),
        }
    }
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// One YAML document: its value as JSON and where each node sits.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The document converted to JSON.
    pub value: Value,
    /// Position of the document's root node (for a mapping: its first key).
    pub position: Position,
    /// Position of every node, keyed by its field path (see the module
    /// documentation). The root is `""`.
    pub positions: BTreeMap<String, Position>,
}

/// Why a manifest text could not be turned into [`Document`]s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum YamlError {
    /// The text is not well-formed YAML (or JSON).
    #[error("line {}, column {}: {message}", position.line, position.column)]
    Syntax {
        /// Where the parser gave up.
        position: Position,
        /// What the parser expected or found.
        message: String,
    },
    /// A mapping has the same key twice.
    #[error(
        "line {}, column {}: duplicate key {key:?} (first at line {}, column {})",
        position.line,
        position.column,
        first.line,
        first.column
    )]
    DuplicateKey {
        /// Position of the second occurrence.
        position: Position,
        /// The key, as a string.
        key: String,
        /// Position of the first occurrence.
        first: Position,
    },
    /// Valid YAML that has no JSON form here: merge keys (`<<`), sequences,
    /// mappings or null as mapping keys, aliases to unfinished anchors.
    #[error("line {}, column {}: unsupported: {message}", position.line, position.column)]
    Unsupported {
        /// Where the construct starts.
        position: Position,
        /// What is not supported.
        message: String,
    },
    /// A scalar whose explicit tag contradicts its text, such as `!!int abc`.
    #[error("line {}, column {}: {message}", position.line, position.column)]
    InvalidValue {
        /// Position of the scalar.
        position: Position,
        /// What is wrong with it.
        message: String,
    },
    /// Sequences and mappings nested deeper than 128 levels.
    #[error(
        "line {}, column {}: nesting deeper than {limit} levels",
        position.line,
        position.column
    )]
    TooDeep {
        /// The node that goes too deep.
        position: Position,
        /// The limit, 128.
        limit: usize,
    },
    /// The output would exceed 1,000,000 nodes or 64 MiB of strings and
    /// field paths, usually through alias expansion.
    #[error("line {}, column {}: {message}", position.line, position.column)]
    TooLarge {
        /// The node at which the limit was crossed.
        position: Position,
        /// Which limit.
        message: String,
    },
}

impl YamlError {
    /// Where in the source the error was found.
    #[must_use]
    pub fn position(&self) -> Position {
        match self {
            YamlError::Syntax { position, .. }
            | YamlError::DuplicateKey { position, .. }
            | YamlError::Unsupported { position, .. }
            | YamlError::InvalidValue { position, .. }
            | YamlError::TooDeep { position, .. }
            | YamlError::TooLarge { position, .. } => *position,
        }
    }
}

/// Appends mapping key `key` to field path `path`: `.key` (no dot at the
/// root) when the key is a non-empty run of `[A-Za-z0-9_-]`, otherwise
/// `["key"]` with JSON string escaping.
pub fn push_key(path: &mut String, key: &str) {
    let plain = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if plain {
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key);
    } else {
        path.push('[');
        push_json_string(path, key);
        path.push(']');
    }
}

/// Appends sequence index `index` to field path `path`: `[index]`.
pub fn push_index(path: &mut String, index: usize) {
    // Writing to a String cannot fail.
    let _ = write!(path, "[{index}]");
}

/// Writes `s` as a JSON string literal, escaped exactly as `serde_json` does.
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Parse every document in `text`. Empty documents (only comments / `---`)
/// are skipped, and so are documents whose value is null, as `kubectl` does.
///
/// # Errors
///
/// Returns a [`YamlError`] carrying the position of the first problem:
/// malformed YAML, a duplicate key, an unsupported construct, a tag that
/// contradicts its scalar, or a limit exceeded (nesting deeper than 128
/// levels, more than 1,000,000 nodes or 64 MiB of output, for example
/// through alias expansion).
pub fn parse_documents(text: &str) -> Result<Vec<Document>, YamlError> {
    // yaml-rust2 would make a byte order mark part of the first key.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut parser = Parser::new_from_str(text);
    let mut loader = Loader::default();
    loop {
        let (event, marker) = parser.next_token().map_err(|e| syntax_error(&e))?;
        if event == Event::StreamEnd {
            break;
        }
        loader.event(event, &marker)?;
    }
    Ok(loader.documents)
}

fn syntax_error(error: &ScanError) -> YamlError {
    let position = Position::from_marker(error.marker());
    // The scanner gives up on its own past 255 open flow collections,
    // reading ahead of the events that would trip `MAX_DEPTH`.
    if error.info() == "recursion limit exceeded" {
        return YamlError::TooDeep {
            position,
            limit: MAX_DEPTH,
        };
    }
    YamlError::Syntax {
        position,
        message: error.info().to_owned(),
    }
}

fn internal(position: Position) -> YamlError {
    YamlError::Syntax {
        position,
        message: "internal error: unexpected YAML event sequence".to_owned(),
    }
}

/// A scalar after YAML typing, before conversion to JSON.
#[derive(Debug, Clone, PartialEq)]
enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    /// Always finite.
    Float(f64),
    /// `.inf`, `-.inf` or `.nan`: `text` as written, `canonical` as a key.
    NonFinite {
        text: String,
        canonical: &'static str,
    },
    Str(String),
}

#[derive(Debug)]
enum Kind {
    Scalar(Scalar),
    Seq(Vec<usize>),
    Map(Vec<(String, usize)>),
    /// A copy of the node with this index.
    Alias(usize),
}

#[derive(Debug)]
struct Node {
    kind: Kind,
    position: Position,
    /// Number of output nodes this node expands to, itself included.
    size: usize,
    /// Collections nested in this node, itself included (0 for a scalar).
    depth: usize,
}

/// A sequence or mapping whose end has not been seen yet.
#[derive(Debug)]
enum Frame {
    Seq {
        anchor: usize,
        position: Position,
        items: Vec<usize>,
    },
    Map {
        anchor: usize,
        position: Position,
        /// Character index of the `MappingStart` marker.
        index: usize,
        entries: Vec<(String, usize)>,
        seen: HashMap<String, Position>,
        /// Key read, value not yet.
        pending: Option<(String, Position)>,
    },
}

/// Builds documents from parser events without recursion.
#[derive(Debug, Default)]
struct Loader {
    /// Nodes of the current document.
    arena: Vec<Node>,
    stack: Vec<Frame>,
    /// Anchor id to arena index, for finished anchored nodes.
    anchors: HashMap<usize, usize>,
    root: Option<usize>,
    /// Output nodes so far, whole input.
    nodes: usize,
    /// Output bytes so far, whole input.
    bytes: usize,
    documents: Vec<Document>,
}

impl Loader {
    fn event(&mut self, event: Event, marker: &Marker) -> Result<(), YamlError> {
        let position = Position::from_marker(marker);
        match event {
            Event::Nothing | Event::StreamStart | Event::StreamEnd => Ok(()),
            Event::DocumentStart => {
                self.reset_document();
                Ok(())
            }
            Event::DocumentEnd => self.finish_document(position),
            Event::Alias(id) => self.alias(id, position, marker.index()),
            Event::Scalar(text, style, anchor, tag) => {
                self.scalar(text, style, anchor, tag.as_ref(), position, marker.index())
            }
            Event::SequenceStart(anchor, _) => self.start(false, anchor, position, marker.index()),
            Event::MappingStart(anchor, _) => self.start(true, anchor, position, marker.index()),
            Event::SequenceEnd | Event::MappingEnd => self.end(position),
        }
    }

    fn reset_document(&mut self) {
        self.arena.clear();
        self.stack.clear();
        self.anchors.clear();
        self.root = None;
    }

    /// True when the next node is a mapping key.
    fn expecting_key(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Map { pending: None, .. }))
    }

    fn push_node(&mut self, kind: Kind, position: Position, size: usize, depth: usize) -> usize {
        self.arena.push(Node {
            kind,
            position,
            size,
            depth,
        });
        self.arena.len() - 1
    }

    fn count_nodes(&mut self, n: usize, position: Position) -> Result<(), YamlError> {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > MAX_NODES {
            return Err(YamlError::TooLarge {
                position,
                message: format!("output would exceed {MAX_NODES} nodes (alias expansion?)"),
            });
        }
        Ok(())
    }

    fn scalar(
        &mut self,
        text: String,
        style: TScalarStyle,
        anchor: usize,
        tag: Option<&Tag>,
        position: Position,
        index: usize,
    ) -> Result<(), YamlError> {
        let plain = matches!(style, TScalarStyle::Plain);
        if self.expecting_key() {
            if plain && tag.is_none() && text == "<<" {
                return Err(YamlError::Unsupported {
                    position,
                    message: "merge keys (`<<`) are not supported".to_owned(),
                });
            }
            let scalar = resolve(text, plain, tag, position)?;
            let key = key_string(&scalar, position)?;
            if anchor != 0 {
                let node = self.push_node(Kind::Scalar(scalar), position, 1, 0);
                self.anchors.insert(anchor, node);
            }
            return self.set_key(key, position, index);
        }
        // An empty value has no text; yaml-rust2 marks the token after it,
        // often on a later line. In a mapping, point at the key instead.
        let position = match self.stack.last() {
            Some(Frame::Map {
                pending: Some((_, key_position)),
                ..
            }) if plain && text.is_empty() => *key_position,
            _ => position,
        };
        let scalar = resolve(text, plain, tag, position)?;
        self.count_nodes(1, position)?;
        let node = self.push_node(Kind::Scalar(scalar), position, 1, 0);
        if anchor != 0 {
            self.anchors.insert(anchor, node);
        }
        self.place(node, position)
    }

    fn set_key(&mut self, key: String, position: Position, index: usize) -> Result<(), YamlError> {
        let Some(Frame::Map {
            position: map_position,
            index: map_index,
            seen,
            pending,
            ..
        }) = self.stack.last_mut()
        else {
            return Err(internal(position));
        };
        // A block mapping's start marker sits on the first `:`; its node
        // starts at the first key.
        if seen.is_empty() && index < *map_index {
            *map_position = position;
        }
        if let Some(first) = seen.get(&key) {
            return Err(YamlError::DuplicateKey {
                position,
                key,
                first: *first,
            });
        }
        seen.insert(key.clone(), position);
        *pending = Some((key, position));
        Ok(())
    }

    fn alias(&mut self, id: usize, position: Position, index: usize) -> Result<(), YamlError> {
        let Some(&target) = self.anchors.get(&id) else {
            return Err(YamlError::Unsupported {
                position,
                message: "alias to an anchor whose node is not finished (recursive alias)"
                    .to_owned(),
            });
        };
        let Some(node) = self.arena.get(target) else {
            return Err(internal(position));
        };
        let (size, depth) = (node.size, node.depth);
        if self.expecting_key() {
            let Kind::Scalar(scalar) = &node.kind else {
                return Err(YamlError::Unsupported {
                    position,
                    message: "a sequence or mapping cannot be a mapping key".to_owned(),
                });
            };
            let key = key_string(scalar, position)?;
            return self.set_key(key, position, index);
        }
        if self.stack.len().saturating_add(depth) > MAX_DEPTH {
            return Err(YamlError::TooDeep {
                position,
                limit: MAX_DEPTH,
            });
        }
        self.count_nodes(size, position)?;
        let node = self.push_node(Kind::Alias(target), position, size, depth);
        self.place(node, position)
    }

    fn start(
        &mut self,
        is_map: bool,
        anchor: usize,
        position: Position,
        index: usize,
    ) -> Result<(), YamlError> {
        if self.expecting_key() {
            return Err(YamlError::Unsupported {
                position,
                message: "a sequence or mapping cannot be a mapping key".to_owned(),
            });
        }
        if self.stack.len() >= MAX_DEPTH {
            return Err(YamlError::TooDeep {
                position,
                limit: MAX_DEPTH,
            });
        }
        self.count_nodes(1, position)?;
        self.stack.push(if is_map {
            Frame::Map {
                anchor,
                position,
                index,
                entries: Vec::new(),
                seen: HashMap::new(),
                pending: None,
            }
        } else {
            Frame::Seq {
                anchor,
                position,
                items: Vec::new(),
            }
        });
        Ok(())
    }

    fn end(&mut self, end_position: Position) -> Result<(), YamlError> {
        let Some(frame) = self.stack.pop() else {
            return Err(internal(end_position));
        };
        let (anchor, position, kind) = match frame {
            Frame::Seq {
                anchor,
                position,
                items,
            } => (anchor, position, Kind::Seq(items)),
            Frame::Map {
                anchor,
                position,
                entries,
                pending,
                ..
            } => {
                if pending.is_some() {
                    return Err(internal(end_position));
                }
                (anchor, position, Kind::Map(entries))
            }
        };
        let children: Box<dyn Iterator<Item = &usize>> = match &kind {
            Kind::Seq(items) => Box::new(items.iter()),
            Kind::Map(entries) => Box::new(entries.iter().map(|(_, child)| child)),
            Kind::Scalar(_) | Kind::Alias(_) => Box::new(std::iter::empty()),
        };
        let mut size: usize = 1;
        let mut depth: usize = 0;
        for &child in children {
            let Some(child) = self.arena.get(child) else {
                return Err(internal(end_position));
            };
            size = size.saturating_add(child.size);
            depth = depth.max(child.depth);
        }
        let node = self.push_node(kind, position, size, depth.saturating_add(1));
        if anchor != 0 {
            self.anchors.insert(anchor, node);
        }
        self.place(node, position)
    }

    /// Attaches a finished node to its parent, or makes it the root.
    fn place(&mut self, node: usize, position: Position) -> Result<(), YamlError> {
        match self.stack.last_mut() {
            None if self.root.is_none() => self.root = Some(node),
            None => return Err(internal(position)),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries, pending, ..
            }) => match pending.take() {
                Some((key, _)) => entries.push((key, node)),
                None => return Err(internal(position)),
            },
        }
        Ok(())
    }

    fn finish_document(&mut self, position: Position) -> Result<(), YamlError> {
        if !self.stack.is_empty() {
            return Err(internal(position));
        }
        let Some(root) = self.root.take() else {
            return Ok(());
        };
        let mut builder = Builder {
            arena: &self.arena,
            positions: BTreeMap::new(),
            path: String::new(),
            bytes: self.bytes,
        };
        let value = builder.build(root, None, 0)?;
        let Builder {
            positions, bytes, ..
        } = builder;
        self.bytes = bytes;
        if !value.is_null() {
            let position = positions
                .get("")
                .copied()
                .or_else(|| self.arena.get(root).map(|node| node.position))
                .unwrap_or(position);
            self.documents.push(Document {
                value,
                position,
                positions,
            });
        }
        self.reset_document();
        Ok(())
    }
}

/// Turns the node tree of one document into JSON and field-path positions.
#[derive(Debug)]
struct Builder<'a> {
    arena: &'a [Node],
    positions: BTreeMap<String, Position>,
    /// Field path of the node being built.
    path: String,
    /// Output bytes so far, whole input.
    bytes: usize,
}

impl Builder<'_> {
    fn charge(&mut self, n: usize, position: Position) -> Result<(), YamlError> {
        self.bytes = self.bytes.saturating_add(n);
        if self.bytes > MAX_OUTPUT_BYTES {
            return Err(YamlError::TooLarge {
                position,
                message: format!(
                    "output would exceed {MAX_OUTPUT_BYTES} bytes of strings and field paths \
                     (alias expansion?)"
                ),
            });
        }
        Ok(())
    }

    /// Builds node `index`. Inside an alias copy, `at` is the alias position,
    /// used for every copied node. `calls` is the recursion depth, one per
    /// collection level, which loading has already bounded by [`MAX_DEPTH`].
    fn build(
        &mut self,
        index: usize,
        at: Option<Position>,
        calls: usize,
    ) -> Result<Value, YamlError> {
        let arena = self.arena;
        let fallback = at.unwrap_or(Position { line: 1, column: 1 });
        let mut node = arena.get(index).ok_or_else(|| internal(fallback))?;
        let mut at = at;
        if let Kind::Alias(target) = node.kind {
            at = Some(at.unwrap_or(node.position));
            node = arena.get(target).ok_or_else(|| internal(fallback))?;
        }
        let position = at.unwrap_or(node.position);
        if calls > MAX_DEPTH.saturating_add(1) {
            return Err(YamlError::TooDeep {
                position,
                limit: MAX_DEPTH,
            });
        }
        self.charge(self.path.len().saturating_add(1), position)?;
        self.positions.insert(self.path.clone(), position);
        let base = self.path.len();
        Ok(match &node.kind {
            Kind::Scalar(scalar) => {
                if let Scalar::Str(text) | Scalar::NonFinite { text, .. } = scalar {
                    self.charge(text.len(), position)?;
                }
                scalar_value(scalar)
            }
            Kind::Seq(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, &child) in items.iter().enumerate() {
                    push_index(&mut self.path, i);
                    let value = self.build(child, at, calls.saturating_add(1));
                    self.path.truncate(base);
                    out.push(value?);
                }
                Value::Array(out)
            }
            Kind::Map(entries) => {
                let mut out = Map::new();
                for (key, child) in entries {
                    self.charge(key.len(), position)?;
                    push_key(&mut self.path, key);
                    let value = self.build(*child, at, calls.saturating_add(1));
                    self.path.truncate(base);
                    out.insert(key.clone(), value?);
                }
                Value::Object(out)
            }
            // An anchor never names an alias.
            Kind::Alias(_) => return Err(internal(position)),
        })
    }
}

fn scalar_value(scalar: &Scalar) -> Value {
    match scalar {
        Scalar::Null => Value::Null,
        Scalar::Bool(b) => Value::Bool(*b),
        Scalar::Int(i) => Value::Number(Number::from(*i)),
        Scalar::UInt(u) => Value::Number(Number::from(*u)),
        Scalar::Float(f) => float_value(*f),
        Scalar::NonFinite { text, .. } | Scalar::Str(text) => Value::String(text.clone()),
    }
}

/// Go writes an integral float64 below 1e21 without a fraction or exponent,
/// so Kubernetes reads `1.0` or `1e3` from YAML as the integers 1 and 1000.
/// Integral floats that fit 64 bits become integers here too.
fn float_value(f: f64) -> Value {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    const TWO_64: f64 = 18_446_744_073_709_551_616.0;
    if f.fract() == 0.0 {
        if (-TWO_63..TWO_63).contains(&f) {
            return Value::Number(Number::from(f as i64));
        }
        if (0.0..TWO_64).contains(&f) {
            return Value::Number(Number::from(f as u64));
        }
    }
    // Only non-finite floats have no JSON number, and they never get here.
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// The string a scalar becomes as a mapping key (as `sigs.k8s.io/yaml`
/// converts go-yaml keys).
fn key_string(scalar: &Scalar, position: Position) -> Result<String, YamlError> {
    Ok(match scalar {
        Scalar::Null => {
            return Err(YamlError::Unsupported {
                position,
                message: "a mapping key must not be null".to_owned(),
            });
        }
        Scalar::Bool(b) => b.to_string(),
        Scalar::Int(i) => i.to_string(),
        Scalar::UInt(u) => u.to_string(),
        Scalar::Float(f) => go_float_key(*f),
        Scalar::NonFinite { canonical, .. } => (*canonical).to_owned(),
        Scalar::Str(s) => s.clone(),
    })
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 32)`, the format `sigs.k8s.io/yaml`
/// uses for float keys: shortest float32 digits, exponent form when the
/// decimal exponent is below -4 or at least 6.
fn go_float_key(f: f64) -> String {
    #[allow(clippy::cast_possible_truncation)]
    let x = f as f32;
    if x.is_nan() {
        return ".nan".to_owned();
    }
    if x.is_infinite() {
        return if x > 0.0 { ".inf" } else { "-.inf" }.to_owned();
    }
    // `{:e}` gives the shortest round-trip digits: "-1.2345679e-7", "1e6".
    let formatted = format!("{x:e}");
    let (neg, rest) = match formatted.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, formatted.as_str()),
    };
    let Some((mantissa, exp)) = rest.split_once('e') else {
        return x.to_string();
    };
    let Ok(exp) = exp.parse::<i64>() else {
        return x.to_string();
    };
    let digits: Vec<char> = mantissa.chars().filter(char::is_ascii_digit).collect();
    let nd = i64::try_from(digits.len()).unwrap_or(i64::MAX);
    let digit = |i: i64| {
        usize::try_from(i)
            .ok()
            .and_then(|i| digits.get(i))
            .copied()
            .unwrap_or('0')
    };
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if !(-4..6).contains(&exp) {
        out.push(digit(0));
        if nd > 1 {
            out.push('.');
            (1..nd).for_each(|i| out.push(digit(i)));
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let _ = write!(out, "{:02}", exp.unsigned_abs());
    } else {
        let dp = exp + 1;
        if dp > 0 {
            (0..dp).for_each(|i| out.push(digit(i)));
        } else {
            out.push('0');
        }
        let decimals = (nd - dp).max(0);
        if decimals > 0 {
            out.push('.');
            (0..decimals).for_each(|i| out.push(digit(dp + i)));
        }
    }
    out
}

/// Types a scalar. `plain` is false for quoted and block scalars.
fn resolve(
    text: String,
    plain: bool,
    tag: Option<&Tag>,
    position: Position,
) -> Result<Scalar, YamlError> {
    let untagged = |text: String| {
        if plain {
            resolve_plain(text)
        } else {
            Scalar::Str(text)
        }
    };
    let Some(tag) = tag else {
        return Ok(untagged(text));
    };
    let full = format!("{}{}", tag.handle, tag.suffix);
    let Some(short) = full.strip_prefix(CORE_TAG_PREFIX) else {
        // The non-specific tag `!` makes a string; other tags are ignored.
        return Ok(if full == "!" {
            Scalar::Str(text)
        } else {
            untagged(text)
        });
    };
    let invalid = |text: &str| YamlError::InvalidValue {
        position,
        message: format!("{text:?} is not a valid !!{short}"),
    };
    match short {
        "str" | "binary" | "timestamp" => Ok(Scalar::Str(text)),
        "int" => match resolve_plain(text.clone()) {
            scalar @ (Scalar::Int(_) | Scalar::UInt(_)) => Ok(scalar),
            _ => Err(invalid(&text)),
        },
        "float" => match resolve_plain(text.clone()) {
            scalar @ (Scalar::Float(_) | Scalar::NonFinite { .. }) => Ok(scalar),
            #[allow(clippy::cast_precision_loss)]
            Scalar::Int(i) => Ok(Scalar::Float(i as f64)),
            #[allow(clippy::cast_precision_loss)]
            Scalar::UInt(u) => Ok(Scalar::Float(u as f64)),
            _ => Err(invalid(&text)),
        },
        "bool" => match resolve_plain(text.clone()) {
            scalar @ Scalar::Bool(_) => Ok(scalar),
            _ => Err(invalid(&text)),
        },
        "null" => match resolve_plain(text.clone()) {
            Scalar::Null => Ok(Scalar::Null),
            _ => Err(invalid(&text)),
        },
        _ => Ok(untagged(text)),
    }
}

/// go-yaml v2's `resolve` for an untagged plain scalar.
fn resolve_plain(text: String) -> Scalar {
    match text.as_str() {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Scalar::Bool(true);
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Scalar::Bool(false);
        }
        "" | "~" | "null" | "Null" | "NULL" => return Scalar::Null,
        ".nan" | ".NaN" | ".NAN" => {
            return Scalar::NonFinite {
                text,
                canonical: ".nan",
            };
        }
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Scalar::NonFinite {
                text,
                canonical: ".inf",
            };
        }
        "-.inf" | "-.Inf" | "-.INF" => {
            return Scalar::NonFinite {
                text,
                canonical: "-.inf",
            };
        }
        _ => {}
    }
    match text.as_bytes().first() {
        Some(b'.') => {
            if let Some(f) = parse_finite_float(&text) {
                return Scalar::Float(f);
            }
        }
        Some(b'0'..=b'9' | b'+' | b'-') => {
            let number: String = text.chars().filter(|&c| c != '_').collect();
            if let Some(i) = go_parse_int(&number) {
                return Scalar::Int(i);
            }
            if let Some(u) = go_parse_uint(&number) {
                return Scalar::UInt(u);
            }
            if let Some(f) = parse_finite_float(&number) {
                return Scalar::Float(f);
            }
            // go-yaml turns integers beyond 64 bits written in hex, octal or
            // binary into big integers; those stay strings here.
        }
        _ => {}
    }
    Scalar::Str(text)
}

/// Go's `strconv.ParseUint(s, 0, 64)`: `0x`, `0o`, `0b` or leading-`0`
/// octal prefixes, no sign, no other characters.
fn go_parse_uint(s: &str) -> Option<u64> {
    let bytes = s.as_bytes();
    let (radix, digits) = match bytes {
        [] => return None,
        [b'0', b'x' | b'X', _, ..] => (16, s.get(2..)?),
        [b'0', b'o' | b'O', _, ..] => (8, s.get(2..)?),
        [b'0', b'b' | b'B', _, ..] => (2, s.get(2..)?),
        [b'0', ..] => (8, s.get(1..)?),
        _ => (10, s),
    };
    if digits.is_empty() {
        // Only "0" gets here.
        return Some(0);
    }
    if !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// Go's `strconv.ParseInt(s, 0, 64)`.
fn go_parse_int(s: &str) -> Option<i64> {
    let (negative, rest) = match s.as_bytes().first() {
        Some(b'+') => (false, s.get(1..)?),
        Some(b'-') => (true, s.get(1..)?),
        _ => (false, s),
    };
    let magnitude = go_parse_uint(rest)?;
    if negative {
        0i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// go-yaml's float syntax `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`,
/// parsed; out-of-range values (Go: `ErrRange`) are rejected.
fn parse_finite_float(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let digits_from = |mut i: usize| {
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    };
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let int_end = digits_from(i);
    if int_end == i {
        if b.get(i) != Some(&b'.') {
            return None;
        }
        let frac_end = digits_from(i + 1);
        if frac_end == i + 1 {
            return None;
        }
        i = frac_end;
    } else {
        i = int_end;
        if b.get(i) == Some(&b'.') {
            i = digits_from(i + 1);
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exp_end = digits_from(i);
        if exp_end == i {
            return None;
        }
        i = exp_end;
    }
    if i != b.len() {
        return None;
    }
    s.parse::<f64>().ok().filter(|f| f.is_finite())
}

#[cfg(test)]
mod tests {
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
}
