//! Manifest text (YAML, multi-document, or JSON; `kind: List` too) into a
//! [`Snapshot`], keeping the source position of every object and field so
//! diagnostics can point at `file:line`.
//!
//! Pure: the caller reads files (or stdin) and passes their text.

mod yaml;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::Value;

pub use yaml::{Document, Position, YamlError, parse_documents, push_index, push_key};

use crate::diagnostics::{Code, Diagnostic};
use crate::model::{EndpointSlice, Ingress, IngressClass, ObjectKind, ObjectRef, Secret, Service};
use crate::snapshot::Snapshot;

/// Where something is in the input.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct SourceLocation {
    /// The source name given to the loader (a path, or `-` for stdin).
    pub file: Arc<str>,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
}

/// A diagnostic together with its place in the input, if known.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Located {
    /// Where.
    pub location: Option<SourceLocation>,
    /// What.
    #[serde(flatten)]
    pub diagnostic: Diagnostic,
}

/// Where one object came from.
#[derive(Debug, Clone)]
struct ObjectSource {
    file: Arc<str>,
    /// Prefix of this object's fields in its document (`items[3].` inside a List).
    prefix: String,
    /// The positions of its document's fields; `None` once
    /// [`Sources::forget_fields`] dropped them.
    document: Option<Arc<BTreeMap<String, Position>>>,
    position: Position,
}

/// The source positions of loaded objects.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    objects: BTreeMap<ObjectRef, ObjectSource>,
}

impl Sources {
    /// Where a diagnostic points: its field if known, else the nearest enclosing
    /// field, else the object. After [`Sources::forget_fields`], the object.
    pub fn locate(&self, d: &Diagnostic) -> Option<SourceLocation> {
        let src = self.objects.get(d.object.as_ref()?)?;
        let Some(document) = &src.document else {
            return Some(SourceLocation {
                file: src.file.clone(),
                line: src.position.line,
                column: src.position.column,
            });
        };
        let mut field = d.field.clone().unwrap_or_default();
        let pos = loop {
            let key = format!("{}{}", src.prefix, field);
            let key = key.strip_suffix('.').unwrap_or(&key);
            if let Some(p) = document.get(key) {
                break *p;
            }
            if field.is_empty() {
                break src.position;
            }
            field = parent(&field).to_owned();
        };
        Some(SourceLocation {
            file: src.file.clone(),
            line: pos.line,
            column: pos.column,
        })
    }

    /// Attach locations to diagnostics.
    pub fn locate_all(&self, diags: impl IntoIterator<Item = Diagnostic>) -> Vec<Located> {
        diags
            .into_iter()
            .map(|d| Located {
                location: self.locate(&d),
                diagnostic: d,
            })
            .collect()
    }

    /// Drop the positions of the objects' fields, keeping each object's file and
    /// position: they are most of a load's memory (a map of field paths per
    /// document, several times the size of the objects themselves). [`Sources::locate`]
    /// then points at the object; [`Sources::refile`] says which diagnostics need
    /// their file read again to be located at their field.
    pub fn forget_fields(&mut self) {
        for src in self.objects.values_mut() {
            src.document = None;
        }
    }

    /// The file to load again (with field positions) to locate `d` at its field:
    /// `Some` when `d` names a field of an object whose field positions
    /// [`Sources::forget_fields`] dropped.
    pub fn refile(&self, d: &Diagnostic) -> Option<&Arc<str>> {
        let src = self.objects.get(d.object.as_ref()?)?;
        let field = d.field.as_deref().unwrap_or("");
        (src.document.is_none() && !field.is_empty()).then_some(&src.file)
    }

    /// The file and position an object was read from.
    pub fn object_location(&self, r: &ObjectRef) -> Option<SourceLocation> {
        let src = self.objects.get(r)?;
        Some(SourceLocation {
            file: src.file.clone(),
            line: src.position.line,
            column: src.position.column,
        })
    }
}

/// The enclosing field path: `a.b[2]` → `a.b`, `a["x.y"]` → `a`, `a` → ``.
fn parent(field: &str) -> &str {
    if field.ends_with(']') {
        // Find the '[' that opens the last segment, skipping a quoted key.
        if field.ends_with("\"]") {
            let bytes = field.as_bytes();
            let mut i = field.len() - 2;
            while i > 0 {
                i -= 1;
                if bytes[i] == b'"'
                    && (i == 0 || bytes[i - 1] != b'\\')
                    && i > 0
                    && bytes[i - 1] == b'['
                {
                    return &field[..i - 1];
                }
            }
            return "";
        }
        return field.rfind('[').map_or("", |i| &field[..i]);
    }
    field.rfind('.').map_or("", |i| &field[..i])
}

/// The objects read so far, their positions, and the problems met reading them.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// The objects.
    pub snapshot: Snapshot,
    /// Their positions.
    pub sources: Sources,
    /// Problems reading the text (syntax, schema), already located.
    pub diagnostics: Vec<Located>,
}

/// Load one text.
pub fn load_str(name: &str, text: &str) -> Loaded {
    let mut l = Loaded::default();
    l.add_str(name, text);
    l
}

/// Split manifest text into at most `parts` pieces at document boundaries (`---` at
/// the start of a line), of roughly equal size, so they can be loaded in parallel
/// with [`Loaded::add_str_from_line`] and merged with [`Loaded::extend`] in order.
/// Returns each piece with the 1-based line it starts on. A YAML document marker
/// cannot occur inside a document's content, so a split never cuts a document.
pub fn split_documents(text: &str, parts: usize) -> Vec<(u32, &str)> {
    let parts = parts.max(1);
    let target = text.len() / parts + 1;
    let mut out = Vec::with_capacity(parts);
    let (mut start, mut start_line, mut line) = (0usize, 1u32, 1u32);
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        // `i` is at the start of a line.
        let at_marker = bytes[i..].starts_with(b"---")
            && matches!(bytes.get(i + 3), None | Some(b'\n' | b'\r' | b' ' | b'\t'));
        if at_marker && i - start >= target && out.len() + 1 < parts {
            out.push((start_line, &text[start..i]));
            start = i;
            start_line = line;
        }
        match memchr_newline(&bytes[i..]) {
            Some(n) => {
                i += n + 1;
                line += 1;
            }
            None => break,
        }
    }
    out.push((start_line, &text[start..]));
    out
}

fn memchr_newline(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

impl Loaded {
    /// Append another load's objects, positions and diagnostics (for parallel loads
    /// of [`split_documents`] pieces: extend in piece order to keep the result
    /// identical to a sequential load).
    pub fn extend(&mut self, other: Loaded) {
        let Loaded {
            snapshot,
            sources,
            diagnostics,
        } = other;
        self.snapshot.ingresses.extend(snapshot.ingresses);
        self.snapshot
            .ingress_classes
            .extend(snapshot.ingress_classes);
        self.snapshot.services.extend(snapshot.services);
        self.snapshot
            .endpoint_slices
            .extend(snapshot.endpoint_slices);
        self.snapshot.secrets.extend(snapshot.secrets);
        for (r, src) in sources.objects {
            self.sources.objects.entry(r).or_insert(src);
        }
        self.diagnostics.extend(diagnostics);
    }

    /// Add the objects of one more text (a file, stdin).
    pub fn add_str(&mut self, name: &str, text: &str) {
        self.add_str_from_line(name, text, 1);
    }

    /// Like [`Loaded::add_str`], for a piece of a file that starts on line
    /// `first_line` (1-based) of it.
    pub fn add_str_from_line(&mut self, name: &str, text: &str, first_line: u32) {
        let shift = first_line.saturating_sub(1);
        let moved = |p: Position| Position {
            line: p.line.saturating_add(shift),
            column: p.column,
        };
        let file: Arc<str> = Arc::from(name);
        let docs = match parse_documents(text) {
            Ok(mut docs) => {
                if shift > 0 {
                    for d in &mut docs {
                        d.position = moved(d.position);
                        for p in d.positions.values_mut() {
                            *p = moved(*p);
                        }
                    }
                }
                docs
            }
            Err(e) => {
                let pos = Some(moved(e.position()));
                self.diagnostics.push(Located {
                    location: pos.map(|p| SourceLocation {
                        file: file.clone(),
                        line: p.line,
                        column: p.column,
                    }),
                    diagnostic: Diagnostic::new(
                        Code::ManifestSyntax,
                        None,
                        None,
                        format!("{name}: {e}; nothing in this file is read"),
                    ),
                });
                return;
            }
        };
        for doc in docs {
            let positions = Arc::new(doc.positions);
            self.add_value(&file, &positions, String::new(), doc.value, doc.position);
        }
    }

    fn add_value(
        &mut self,
        file: &Arc<str>,
        positions: &Arc<BTreeMap<String, Position>>,
        prefix: String,
        value: Value,
        position: Position,
    ) {
        let at = |field: &str| -> SourceLocation {
            let key = format!("{prefix}{field}");
            let p = positions
                .get(key.strip_suffix('.').unwrap_or(&key))
                .copied()
                .unwrap_or(position);
            SourceLocation {
                file: file.clone(),
                line: p.line,
                column: p.column,
            }
        };
        if value.is_null() {
            return;
        }
        let Some(obj) = value.as_object() else {
            self.diagnostics.push(Located {
                location: Some(at("")),
                diagnostic: Diagnostic::new(
                    Code::ManifestInvalidObject,
                    None,
                    None,
                    "a document must be a Kubernetes object (a mapping with apiVersion and kind)",
                ),
            });
            return;
        };
        let api_version = obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let kind_str = obj
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        if kind_str.ends_with("List") && obj.get("items").is_some_and(Value::is_array) {
            // Move the items out: a `kubectl get -o json` List can be large.
            let Value::Object(mut map) = value else {
                return;
            };
            let Some(Value::Array(items)) = map.remove("items") else {
                return;
            };
            for (i, item) in items.into_iter().enumerate() {
                let mut p = prefix.clone();
                push_key(&mut p, "items");
                push_index(&mut p, i);
                let item_pos = positions.get(&p).copied().unwrap_or(position);
                p.push('.');
                self.add_value(file, positions, p, item, item_pos);
            }
            return;
        }
        let kind = match (api_version.as_str(), kind_str.as_str()) {
            ("networking.k8s.io/v1", "Ingress") => ObjectKind::Ingress,
            ("networking.k8s.io/v1", "IngressClass") => ObjectKind::IngressClass,
            ("v1", "Service") => ObjectKind::Service,
            ("discovery.k8s.io/v1", "EndpointSlice") => ObjectKind::EndpointSlice,
            ("v1", "Secret") => ObjectKind::Secret,
            (v, "Ingress") if v.ends_with("v1beta1") => {
                self.diagnostics.push(Located {
                    location: Some(at("apiVersion")),
                    diagnostic: Diagnostic::new(
                        Code::ManifestInvalidObject,
                        None,
                        Some("apiVersion".into()),
                        format!("{v} Ingress was removed in Kubernetes 1.22; convert it to networking.k8s.io/v1 (pathType, service.name, service.port)"),
                    ),
                });
                return;
            }
            (v, k) => {
                let what = if k.is_empty() {
                    "a document without kind".to_owned()
                } else {
                    format!("{v} {k}")
                };
                self.diagnostics.push(Located {
                    location: Some(at("kind")),
                    diagnostic: Diagnostic::new(
                        Code::ManifestUnknownKind,
                        None,
                        Some("kind".into()),
                        format!("{what} is not read by the gateway; skipped"),
                    ),
                });
                return;
            }
        };
        let meta_name = obj
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let meta_ns = obj
            .get("metadata")
            .and_then(|m| m.get("namespace"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or("default")
            .to_owned();
        let r = if kind.is_namespaced() {
            ObjectRef::namespaced(kind, &meta_ns, &meta_name)
        } else {
            ObjectRef::cluster(kind, &meta_name)
        };
        if meta_name.is_empty() {
            self.diagnostics.push(Located {
                location: Some(at("metadata")),
                diagnostic: Diagnostic::new(
                    Code::ManifestMissingName,
                    None,
                    Some("metadata.name".into()),
                    format!("{kind} without metadata.name; skipped"),
                ),
            });
            return;
        }
        self.sources
            .objects
            .entry(r.clone())
            .or_insert_with(|| ObjectSource {
                file: file.clone(),
                prefix: prefix.clone(),
                document: Some(positions.clone()),
                position,
            });
        let res = match kind {
            ObjectKind::Ingress => {
                decode::<Ingress>(value).map(|o| self.snapshot.ingresses.push(o))
            }
            ObjectKind::IngressClass => {
                decode::<IngressClass>(value).map(|o| self.snapshot.ingress_classes.push(o))
            }
            ObjectKind::Service => decode::<Service>(value).map(|o| self.snapshot.services.push(o)),
            ObjectKind::EndpointSlice => {
                decode::<EndpointSlice>(value).map(|o| self.snapshot.endpoint_slices.push(o))
            }
            ObjectKind::Secret => decode::<Secret>(value).map(|o| self.snapshot.secrets.push(o)),
        };
        if let Err((field, msg)) = res {
            self.diagnostics.push(Located {
                location: Some(at(&field)),
                diagnostic: Diagnostic::new(
                    Code::ManifestInvalidObject,
                    Some(r.clone()),
                    Some(field.clone()),
                    format!("{msg}; the {kind} is skipped"),
                ),
            });
        }
    }
}

/// Deserialize, reporting the failing field as a field path.
fn decode<T: DeserializeOwned>(value: Value) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let mut field = String::new();
        for seg in e.path().iter() {
            match seg {
                serde_path_to_error::Segment::Seq { index } => push_index(&mut field, *index),
                serde_path_to_error::Segment::Map { key } => push_key(&mut field, key),
                serde_path_to_error::Segment::Enum { variant } => push_key(&mut field, variant),
                serde_path_to_error::Segment::Unknown => {}
            }
        }
        let msg = format!(
            "{}: {}",
            if field.is_empty() { "object" } else { &field },
            e.inner()
        );
        (field, msg)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: b}\nspec: {ports: [{port: x}]}\n--- # c\napiVersion: v1\nkind: Service\nmetadata: {name: c}\n---\nkey: |\n  ---not a marker\n  text\n---\napiVersion: v1\nkind: Service\nmetadata: {name: d}\nspec: {ports: [{port: 8, name: 9}]}\n";

    #[test]
    fn split_documents_cuts_only_at_markers() {
        for parts in 1..8 {
            let pieces = split_documents(TEXT, parts);
            assert!(pieces.len() <= parts);
            let joined: String = pieces.iter().map(|(_, t)| *t).collect();
            assert_eq!(joined, TEXT);
            let mut offset = 0;
            for (line, piece) in &pieces {
                let want = TEXT[..offset].matches('\n').count() as u32 + 1;
                assert_eq!(*line, want);
                assert!(*line == 1 || piece.starts_with("---"), "{parts}: {piece:?}");
                offset += piece.len();
            }
        }
    }

    #[test]
    fn forgotten_fields_locate_at_the_object() {
        let full = load_str("f.yaml", TEXT);
        let mut lean = full.clone();
        lean.sources.forget_fields();
        let d = Diagnostic::new;
        let b = ObjectRef::namespaced(ObjectKind::Service, "default", "b");
        let on_field = d(
            Code::ManifestInvalidObject,
            Some(b.clone()),
            Some("spec.ports[0].port".into()),
            "x",
        );
        let on_object = d(Code::ManifestInvalidObject, Some(b.clone()), None, "x");
        let nowhere = d(Code::ManifestInvalidObject, None, Some("spec".into()), "x");
        // Service b starts on line 5; its port is on line 8.
        assert_eq!(full.sources.locate(&on_field).map(|l| l.line), Some(8));
        assert_eq!(lean.sources.locate(&on_field).map(|l| l.line), Some(5));
        assert_eq!(
            lean.sources.locate(&on_field),
            full.sources.object_location(&b)
        );
        assert_eq!(
            lean.sources.locate(&on_object),
            full.sources.locate(&on_object)
        );
        assert_eq!(lean.sources.locate(&nowhere), None);
        assert_eq!(lean.sources.refile(&on_field).map(|f| &**f), Some("f.yaml"));
        assert_eq!(lean.sources.refile(&on_object), None);
        assert_eq!(lean.sources.refile(&nowhere), None);
        assert_eq!(full.sources.refile(&on_field), None);
        for r in full.sources.objects.keys() {
            assert_eq!(
                lean.sources.object_location(r),
                full.sources.object_location(r)
            );
        }
    }

    #[test]
    fn parallel_pieces_load_like_the_whole() {
        let whole = load_str("f.yaml", TEXT);
        for parts in 2..6 {
            let mut merged = Loaded::default();
            for (line, piece) in split_documents(TEXT, parts) {
                let mut l = Loaded::default();
                l.add_str_from_line("f.yaml", piece, line);
                merged.extend(l);
            }
            assert_eq!(merged.snapshot, whole.snapshot);
            assert_eq!(merged.diagnostics, whole.diagnostics);
            for r in whole.sources.objects.keys() {
                assert_eq!(
                    merged.sources.object_location(r),
                    whole.sources.object_location(r)
                );
            }
        }
        // The bad port in Service b is reported on its own line, 8.
        let d = &whole.diagnostics[0];
        assert_eq!(d.location.as_ref().map(|l| l.line), Some(8), "{d:?}");
    }
}
