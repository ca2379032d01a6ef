//! # ingress-files
//!
//! Reading manifest PATHs the way `ingressctl` and `ingress-proxy --manifests` do:
//! files, folders (recursed; `.yaml`, `.yml` and `.json` files; names starting with
//! `.` skipped, so Kubernetes ConfigMap mounts' `..data` folders are not read twice),
//! or `-` for stdin. Files under a folder are read in sorted path order, so the same
//! folder always loads the same way.
//!
//! This is the only place the toolkit touches the file system for manifests;
//! `ingress-core` itself stays IO-free.
//!
//! ```no_run
//! let input = ingress_files::read(&["examples/manifests/shop".into()])?;
//! println!("{} files, {} objects", input.files, input.loaded.snapshot.len());
//! # Ok::<(), ingress_files::InputError>(())
//! ```

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use ingress_core::diagnostics::Diagnostic;
use ingress_core::manifest::{Loaded, SourceLocation, Sources};

/// What was read: the objects, and each file's text (for showing snippets).
#[derive(Debug, Default)]
pub struct Input {
    /// The objects, their source positions, and the problems met reading them.
    pub loaded: Loaded,
    /// Each source's text, by the name diagnostics use for it.
    pub texts: BTreeMap<String, String>,
    /// How many files (or stdin) were read.
    pub files: usize,
}

/// A PATH that cannot be read at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// The file system refused.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A file that is not UTF-8 text.
    #[error("{0}: not UTF-8 text")]
    NotUtf8(String),
    /// No PATH was given.
    #[error("no input: give one or more files or folders, or - for stdin")]
    Empty,
}

/// The file name extensions read from folders.
pub const EXTENSIONS: [&str; 3] = ["yaml", "yml", "json"];

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> InputError + '_ {
    move |source| InputError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// What a read keeps besides the objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keep {
    /// Each file's text and every field's position.
    Texts,
    /// Every field's position.
    Fields,
    /// Each object's position only.
    Objects,
}

/// Read PATHs: files, folders (recursed), or `-` for stdin.
pub fn read(paths: &[PathBuf]) -> Result<Input, InputError> {
    read_with(paths, Keep::Texts)
}

/// Like [`read`], without keeping each file's text in [`Input::texts`] (for long-running
/// processes that never show snippets).
pub fn read_without_texts(paths: &[PathBuf]) -> Result<Input, InputError> {
    read_with(paths, Keep::Fields)
}

/// Like [`read_without_texts`], keeping only each object's position, not its fields'
/// ([`ingress_core::manifest::Sources::forget_fields`], file by file as they are
/// read): the field positions are most of a load's memory. The read's own
/// diagnostics are located at their fields all the same (they are located while
/// the file is parsed); locate later diagnostics with [`locate`], which reads again
/// the files it needs.
pub fn read_objects_only(paths: &[PathBuf]) -> Result<Input, InputError> {
    read_with(paths, Keep::Objects)
}

/// Locate `diagnostics` against `sources` (a read's [`Loaded::sources`], by any of this
/// crate's functions).
/// A diagnostic that names a field of an object whose field positions were not kept
/// ([`read_objects_only`]) is located by reading its file again, each such file
/// once; when that fails (the file is gone, or no longer holds the object), it
/// points at the object.
pub fn locate<'a>(
    sources: &Sources,
    diagnostics: impl IntoIterator<Item = &'a Diagnostic>,
) -> Vec<Option<SourceLocation>> {
    let diagnostics: Vec<&Diagnostic> = diagnostics.into_iter().collect();
    let mut again: BTreeMap<&str, Option<Loaded>> = BTreeMap::new();
    for d in &diagnostics {
        if let Some(file) = sources.refile(d) {
            again.entry(file).or_insert(None);
        }
    }
    for (file, slot) in &mut again {
        *slot = read_with(&[PathBuf::from(*file)], Keep::Fields)
            .ok()
            .map(|i| i.loaded);
    }
    diagnostics
        .iter()
        .map(|d| {
            let fresh = sources
                .refile(d)
                .and_then(|f| again.get(&**f))
                .and_then(Option::as_ref)
                .and_then(|l| l.sources.locate(d));
            fresh.or_else(|| sources.locate(d))
        })
        .collect()
}

fn read_with(paths: &[PathBuf], keep: Keep) -> Result<Input, InputError> {
    if paths.is_empty() {
        return Err(InputError::Empty);
    }
    let mut input = Input::default();
    for p in paths {
        if p.as_os_str() == "-" {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .map_err(|source| InputError::Io {
                    path: "<stdin>".into(),
                    source,
                })?;
            add(&mut input, "<stdin>".into(), buf, keep)?;
            continue;
        }
        let meta = std::fs::metadata(p).map_err(io(p))?;
        let files = if meta.is_dir() {
            manifest_files(p)?
        } else {
            vec![p.clone()]
        };
        for f in files {
            let bytes = std::fs::read(&f).map_err(io(&f))?;
            add(&mut input, f.display().to_string(), bytes, keep)?;
        }
    }
    Ok(input)
}

/// The manifest files under a folder, recursively, sorted by path.
pub fn manifest_files(dir: &Path) -> Result<Vec<PathBuf>, InputError> {
    let mut files = Vec::new();
    walk(dir, &mut files)?;
    files.sort();
    Ok(files)
}

/// Whether a path names a file [`manifest_files`] would read (by its extension and
/// its name; the path need not exist).
pub fn is_manifest_path(path: &Path) -> bool {
    let hidden = path
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with('.'));
    !hidden
        && path
            .extension()
            .and_then(|x| x.to_str())
            .is_some_and(|x| EXTENSIONS.contains(&x))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), InputError> {
    let entries = std::fs::read_dir(dir).map_err(io(dir))?;
    for e in entries {
        let e = e.map_err(io(dir))?;
        let path = e.path();
        let name = e.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let ft = e.file_type().map_err(io(&path))?;
        if ft.is_dir() {
            walk(&path, out)?;
        } else if is_manifest_path(&path) {
            out.push(path);
        }
    }
    Ok(())
}

fn add(input: &mut Input, name: String, bytes: Vec<u8>, keep: Keep) -> Result<(), InputError> {
    let text = String::from_utf8(bytes).map_err(|_| InputError::NotUtf8(name.clone()))?;
    load_parallel(&mut input.loaded, &name, &text, keep == Keep::Objects);
    if keep == Keep::Texts {
        input.texts.insert(name, text);
    }
    input.files += 1;
    Ok(())
}

/// Texts above this size are split at document boundaries and parsed on every core.
const PARALLEL_BYTES: usize = 256 * 1024;

/// Load one text, in parallel pieces when it is large; the result is identical to a
/// sequential `add_str` (pieces are merged in order). `objects_only`: each piece's
/// field positions are dropped as soon as it is loaded.
fn load_parallel(loaded: &mut Loaded, name: &str, text: &str, objects_only: bool) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if text.len() < PARALLEL_BYTES || cores < 2 {
        if objects_only {
            let mut l = Loaded::default();
            l.add_str(name, text);
            l.sources.forget_fields();
            loaded.extend(l);
        } else {
            loaded.add_str(name, text);
        }
        return;
    }
    let pieces = ingress_core::manifest::split_documents(text, cores);
    let results: Vec<Loaded> = std::thread::scope(|s| {
        let handles: Vec<_> = pieces
            .iter()
            .map(|&(line, piece)| {
                s.spawn(move || {
                    let mut l = Loaded::default();
                    l.add_str_from_line(name, piece, line);
                    if objects_only {
                        l.sources.forget_fields();
                    }
                    l
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    for l in results {
        loaded.extend(l);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_recurse_sorted_and_skip_hidden() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir_all(dir.path().join("sub"))?;
        std::fs::create_dir_all(dir.path().join("..data"))?;
        for f in [
            "b.yaml",
            "a.json",
            "sub/c.yml",
            "notes.txt",
            ".hidden.yaml",
            "..data/d.yaml",
        ] {
            std::fs::write(dir.path().join(f), "")?;
        }
        let files = manifest_files(dir.path())?;
        let names: Vec<_> = files
            .iter()
            .filter_map(|f| f.strip_prefix(dir.path()).ok())
            .map(|f| f.display().to_string())
            .collect();
        assert_eq!(names, ["a.json", "b.yaml", "sub/c.yml"]);
        let input = read_without_texts(&[dir.path().to_owned()])?;
        assert_eq!(input.files, 3);
        assert!(input.texts.is_empty());
        Ok(())
    }

    /// A Service and two Ingresses; the second (from line 20) routes to a missing
    /// Service (line 31) and a missing port (line 35).
    const FILE: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec:\n  ports: [{name: http, port: 80}]\n---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: a, namespace: shop}\nspec:\n  rules:\n  - host: a.example.com\n    http:\n      paths:\n      - path: /\n        pathType: Prefix\n        backend:\n          service: {name: web, port: {number: 80}}\n---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: b, namespace: shop}\nspec:\n  rules:\n  - host: b.example.com\n    http:\n      paths:\n      - path: /\n        pathType: Prefix\n        backend:\n          service: {name: nowhere, port: {number: 80}}\n      - path: /x\n        pathType: Exact\n        backend:\n          service: {name: web, port: {number: 81}}\n";

    #[test]
    fn objects_only_reads_locate_like_full_reads() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        // One small file (loaded whole) and one over PARALLEL_BYTES (loaded in pieces,
        // on machines with more than one core).
        std::fs::write(dir.path().join("a.yaml"), FILE)?;
        let mut big = String::new();
        let mut i = 0;
        while big.len() <= PARALLEL_BYTES {
            big.push_str(&FILE.replace("shop", &format!("ns{i}")));
            big.push_str("---\n");
            i += 1;
        }
        std::fs::write(dir.path().join("b.yaml"), &big)?;
        let paths = [dir.path().to_owned()];
        let full = read_without_texts(&paths)?.loaded;
        let lean = read_objects_only(&paths)?.loaded;
        assert_eq!(lean.snapshot, full.snapshot);
        assert_eq!(lean.diagnostics, full.diagnostics);
        let compiled = ingress_core::compile(&full.snapshot, &Default::default());
        let with_field: Vec<&Diagnostic> = compiled
            .diagnostics
            .iter()
            .filter(|d| d.field.is_some() && d.object.is_some())
            .collect();
        assert!(with_field.len() >= 2 * i, "{:?}", compiled.diagnostics);
        let want: Vec<_> = compiled
            .diagnostics
            .iter()
            .map(|d| full.sources.locate(d))
            .collect();
        assert_eq!(locate(&lean.sources, &compiled.diagnostics), want);
        // The field's line, not the object's: Ingress b starts on line 20.
        let b = with_field
            .iter()
            .find(|d| {
                d.object
                    .as_ref()
                    .is_some_and(|o| o.name == "b" && o.namespace.as_deref() == Some("shop"))
            })
            .ok_or("no diagnostic for shop/b")?;
        let at = locate(&lean.sources, [*b]).remove(0).ok_or("not located")?;
        assert!(at.line > 20, "{at:?} for {b:?}");
        assert_eq!(Some(at), full.sources.locate(b));
        // Without the file, a field's diagnostic points at its object.
        std::fs::remove_file(dir.path().join("a.yaml"))?;
        let at = locate(&lean.sources, [*b]).remove(0).ok_or("not located")?;
        assert_eq!(at.line, 20);
        assert_eq!(Some(at), lean.sources.locate(b));
        Ok(())
    }

    #[test]
    fn errors() {
        assert!(matches!(read(&[]), Err(InputError::Empty)));
        assert!(matches!(
            read(&["/nonexistent/for/sure".into()]),
            Err(InputError::Io { .. })
        ));
    }
}
