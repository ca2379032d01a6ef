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

use serde_json::{Map, Value};
use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, ScanError, TScalarStyle};

use scalar::{Scalar, key_string, resolve, scalar_into_value, scalar_value};

mod scalar;

/// Deepest nesting of sequences and mappings accepted (the root collection
/// is level 1).
const MAX_DEPTH: usize = 128;

/// Most nodes (scalars, sequences and mappings, alias copies included) the
/// whole input may expand to.
const MAX_NODES: usize = 1_000_000;

/// Most bytes of string values, mapping keys and field paths the whole input
/// may expand to.
const MAX_OUTPUT_BYTES: usize = 64 * 1024 * 1024;

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
    /// Anchored: an alias may copy it, so building must not move its strings out.
    shared: bool,
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
        /// Position of each entry's key, parallel to `entries`.
        key_positions: Vec<Position>,
        /// Key index for duplicate checks, built once the mapping is large;
        /// small mappings are scanned.
        seen: Option<HashMap<String, Position>>,
        /// Key read, value not yet.
        pending: Option<(String, Position)>,
    },
}

/// Mappings with fewer keys than this are checked for duplicates by scanning.
const SCAN_KEYS: usize = 16;

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
            shared: false,
        });
        self.arena.len() - 1
    }

    fn anchor(&mut self, anchor: usize, node: usize) {
        if let Some(n) = self.arena.get_mut(node) {
            n.shared = true;
        }
        self.anchors.insert(anchor, node);
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
                self.anchor(anchor, node);
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
            self.anchor(anchor, node);
        }
        self.place(node, position)
    }

    fn set_key(&mut self, key: String, position: Position, index: usize) -> Result<(), YamlError> {
        let Some(Frame::Map {
            position: map_position,
            index: map_index,
            entries,
            key_positions,
            seen,
            pending,
            ..
        }) = self.stack.last_mut()
        else {
            return Err(internal(position));
        };
        // A block mapping's start marker sits on the first `:`; its node
        // starts at the first key.
        if entries.is_empty() && index < *map_index {
            *map_position = position;
        }
        let first = match seen {
            Some(seen) => seen.get(&key).copied(),
            None => entries
                .iter()
                .zip(key_positions.iter())
                .find(|((k, _), _)| *k == key)
                .map(|(_, p)| *p),
        };
        if let Some(first) = first {
            return Err(YamlError::DuplicateKey {
                position,
                key,
                first,
            });
        }
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
                key_positions: Vec::new(),
                seen: None,
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
        let mut size: usize = 1;
        let mut depth: usize = 0;
        let mut add = |child: usize| -> Result<(), YamlError> {
            let child = self
                .arena
                .get(child)
                .ok_or_else(|| internal(end_position))?;
            size = size.saturating_add(child.size);
            depth = depth.max(child.depth);
            Ok(())
        };
        match &kind {
            Kind::Seq(items) => items.iter().try_for_each(|&c| add(c))?,
            Kind::Map(entries) => entries.iter().try_for_each(|&(_, c)| add(c))?,
            Kind::Scalar(_) | Kind::Alias(_) => {}
        }
        let node = self.push_node(kind, position, size, depth.saturating_add(1));
        if anchor != 0 {
            self.anchor(anchor, node);
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
                entries,
                key_positions,
                seen,
                pending,
                ..
            }) => match pending.take() {
                Some((key, key_position)) => {
                    if let Some(seen) = seen {
                        seen.insert(key.clone(), key_position);
                    } else if entries.len() + 1 >= SCAN_KEYS {
                        let mut index: HashMap<String, Position> = entries
                            .iter()
                            .map(|(k, _)| k.clone())
                            .zip(key_positions.iter().copied())
                            .collect();
                        index.insert(key.clone(), key_position);
                        *seen = Some(index);
                    }
                    entries.push((key, node));
                    key_positions.push(key_position);
                }
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
            arena: &mut self.arena,
            positions: Vec::new(),
            path: String::new(),
            bytes: self.bytes,
        };
        let value = builder.build(root, None, false, 0)?;
        let Builder {
            positions, bytes, ..
        } = builder;
        // Bulk-build the map from the collected pairs (paths are unique).
        let positions: BTreeMap<String, Position> = positions.into_iter().collect();
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
    /// Consumed while building: strings are moved out of nodes that no alias
    /// copies, and cloned from the others.
    arena: &'a mut [Node],
    positions: Vec<(String, Position)>,
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
    /// used for every copied node. `copy` is set inside anything an alias may
    /// copy, where strings are cloned instead of moved out. `calls` is the
    /// recursion depth, one per collection level, which loading has already
    /// bounded by [`MAX_DEPTH`].
    fn build(
        &mut self,
        index: usize,
        at: Option<Position>,
        copy: bool,
        calls: usize,
    ) -> Result<Value, YamlError> {
        let fallback = at.unwrap_or(Position { line: 1, column: 1 });
        let mut index = index;
        let mut at = at;
        let mut node = self.arena.get(index).ok_or_else(|| internal(fallback))?;
        if let Kind::Alias(target) = node.kind {
            at = Some(at.unwrap_or(node.position));
            index = target;
            node = self.arena.get(target).ok_or_else(|| internal(fallback))?;
        }
        let position = at.unwrap_or(node.position);
        let copy = copy || at.is_some() || node.shared;
        let text_len = match &node.kind {
            Kind::Scalar(Scalar::Str(text) | Scalar::NonFinite { text, .. }) => text.len(),
            _ => 0,
        };
        if calls > MAX_DEPTH.saturating_add(1) {
            return Err(YamlError::TooDeep {
                position,
                limit: MAX_DEPTH,
            });
        }
        self.charge(self.path.len().saturating_add(1), position)?;
        self.positions.push((self.path.clone(), position));
        self.charge(text_len, position)?;
        let base = self.path.len();

        let kind = match &mut self.arena[index].kind {
            Kind::Scalar(scalar) => {
                return Ok(if copy {
                    scalar_value(scalar)
                } else {
                    scalar_into_value(std::mem::replace(scalar, Scalar::Null))
                });
            }
            Kind::Seq(items) if copy => Kind::Seq(items.clone()),
            Kind::Seq(items) => Kind::Seq(std::mem::take(items)),
            Kind::Map(entries) if copy => Kind::Map(entries.clone()),
            Kind::Map(entries) => Kind::Map(std::mem::take(entries)),
            // An anchor never names an alias.
            Kind::Alias(_) => return Err(internal(position)),
        };
        Ok(match kind {
            Kind::Seq(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, child) in items.into_iter().enumerate() {
                    push_index(&mut self.path, i);
                    let value = self.build(child, at, copy, calls.saturating_add(1));
                    self.path.truncate(base);
                    out.push(value?);
                }
                Value::Array(out)
            }
            Kind::Map(entries) => {
                let mut out = Map::new();
                for (key, child) in entries {
                    self.charge(key.len(), position)?;
                    push_key(&mut self.path, &key);
                    let value = self.build(child, at, copy, calls.saturating_add(1));
                    self.path.truncate(base);
                    out.insert(key, value?);
                }
                Value::Object(out)
            }
            Kind::Scalar(_) | Kind::Alias(_) => return Err(internal(position)),
        })
    }
}

#[cfg(test)]
mod tests;
