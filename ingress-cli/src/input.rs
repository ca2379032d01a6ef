//! Reading PATH arguments: files, folders (recursed), `-` for stdin.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use ingress_core::manifest::Loaded;

/// What was read: the objects, and each file's text for showing snippets.
#[derive(Debug, Default)]
pub(crate) struct Input {
    pub(crate) loaded: Loaded,
    pub(crate) texts: BTreeMap<String, String>,
    pub(crate) files: usize,
}

/// A PATH that cannot be read at all (exit 2).
#[derive(Debug, thiserror::Error)]
pub(crate) enum InputError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}: not UTF-8 text")]
    NotUtf8(String),
    #[error("no input: give one or more files or folders, or - for stdin")]
    Empty,
}

const EXTENSIONS: [&str; 3] = ["yaml", "yml", "json"];

pub(crate) fn read(paths: &[PathBuf]) -> Result<Input, InputError> {
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
            add(&mut input, "<stdin>".into(), buf)?;
            continue;
        }
        let meta = std::fs::metadata(p).map_err(|source| InputError::Io {
            path: p.display().to_string(),
            source,
        })?;
        if meta.is_dir() {
            let mut files = Vec::new();
            walk(p, &mut files)?;
            files.sort();
            for f in files {
                let bytes = std::fs::read(&f).map_err(|source| InputError::Io {
                    path: f.display().to_string(),
                    source,
                })?;
                add(&mut input, f.display().to_string(), bytes)?;
            }
        } else {
            let bytes = std::fs::read(p).map_err(|source| InputError::Io {
                path: p.display().to_string(),
                source,
            })?;
            add(&mut input, p.display().to_string(), bytes)?;
        }
    }
    Ok(input)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), InputError> {
    let entries = std::fs::read_dir(dir).map_err(|source| InputError::Io {
        path: dir.display().to_string(),
        source,
    })?;
    for e in entries {
        let e = e.map_err(|source| InputError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let path = e.path();
        let name = e.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let ft = e.file_type().map_err(|source| InputError::Io {
            path: path.display().to_string(),
            source,
        })?;
        if ft.is_dir() {
            walk(&path, out)?;
        } else if path
            .extension()
            .and_then(|x| x.to_str())
            .is_some_and(|x| EXTENSIONS.contains(&x))
        {
            out.push(path);
        }
    }
    Ok(())
}

fn add(input: &mut Input, name: String, bytes: Vec<u8>) -> Result<(), InputError> {
    let text = String::from_utf8(bytes).map_err(|_| InputError::NotUtf8(name.clone()))?;
    load_parallel(&mut input.loaded, &name, &text);
    input.texts.insert(name, text);
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
