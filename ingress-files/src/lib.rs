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

use ingress_core::manifest::Loaded;

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

/// Read PATHs: files, folders (recursed), or `-` for stdin.
pub fn read(paths: &[PathBuf]) -> Result<Input, InputError> {
    read_with(paths, true)
}

/// Like [`read`], without keeping each file's text in [`Input::texts`] (for long-running
/// processes that never show snippets).
pub fn read_without_texts(paths: &[PathBuf]) -> Result<Input, InputError> {
    read_with(paths, false)
}

fn read_with(paths: &[PathBuf], keep_texts: bool) -> Result<Input, InputError> {
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
            add(&mut input, "<stdin>".into(), buf, keep_texts)?;
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
            add(&mut input, f.display().to_string(), bytes, keep_texts)?;
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

fn add(input: &mut Input, name: String, bytes: Vec<u8>, keep: bool) -> Result<(), InputError> {
    let text = String::from_utf8(bytes).map_err(|_| InputError::NotUtf8(name.clone()))?;
    load_parallel(&mut input.loaded, &name, &text);
    if keep {
        input.texts.insert(name, text);
    }
    input.files += 1;
    Ok(())
}

/// Texts above this size are split at document boundaries and parsed on every core.
const PARALLEL_BYTES: usize = 256 * 1024;

/// Load one text, in parallel pieces when it is large; the result is identical to a
/// sequential `add_str` (pieces are merged in order).
fn load_parallel(loaded: &mut Loaded, name: &str, text: &str) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if text.len() < PARALLEL_BYTES || cores < 2 {
        loaded.add_str(name, text);
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

    #[test]
    fn errors() {
        assert!(matches!(read(&[]), Err(InputError::Empty)));
        assert!(matches!(
            read(&["/nonexistent/for/sure".into()]),
            Err(InputError::Io { .. })
        ));
    }
}
