//! The manifests folder as last applied, kept so that a change reads only the files
//! that changed and compiles only the hosts their Ingresses touch
//! ([`ingress_core::compile::Compiler`]).
//!
//! A file counts as changed when its size, modification or change time, or inode
//! differ from the last load (an editor's write-and-rename gives a new inode). Only
//! Ingress changes are applied incrementally; a changed file whose other objects
//! (Services, EndpointSlices, Secrets, IngressClasses) differ, an Ingress defined in
//! two files, or anything the compiler cannot do host by host reloads and compiles
//! the whole folder, as the first load does.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use ingress_core::compile::{Compiler, RouteSplice, Update};
use ingress_core::diagnostics::Diagnostic;
use ingress_core::manifest::{Loaded, Located, SourceLocation};
use ingress_core::{CompileOptions, RouteTable, Severity};

use crate::source::LoadError;

/// What identifies one version of a file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    ino: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(path: &Path) -> Result<Stamp, LoadError> {
        let m = std::fs::metadata(path).map_err(|source| {
            LoadError::Read(ingress_files::InputError::Io {
                path: path.display().to_string(),
                source,
            })
        })?;
        Ok(Stamp {
            len: m.len(),
            ino: m.ino(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        })
    }
}

/// One file as last applied.
#[derive(Debug)]
struct FileState {
    stamp: Stamp,
    /// `(namespace, name)` of its Ingresses, in file order.
    ingresses: Vec<(String, String)>,
    /// A digest of its other objects: a change there is a full reload.
    others: u64,
    /// Its syntax and schema diagnostics (warnings: errors are never applied).
    diagnostics: Vec<Located>,
}

/// What one apply did to the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Applied {
    /// No file changed, or the changes left every object as it was.
    Unchanged,
    /// The whole folder was compiled (why).
    Full(String),
    /// Only the hosts of the changed Ingresses were compiled again.
    Incremental {
        /// Ingresses compiled again.
        ingresses: usize,
        /// Where the touched hosts' routes were and are.
        splices: Vec<RouteSplice>,
    },
}

/// The folder's files, objects and compiled table.
#[derive(Debug)]
pub(crate) struct Folder {
    root: PathBuf,
    files: BTreeMap<PathBuf, FileState>,
    compiler: Compiler,
    /// The file that defines each Ingress.
    owners: HashMap<(String, String), PathBuf>,
    /// Where each current compile diagnostic points (kept: an unchanged Ingress's
    /// diagnostics are not located again).
    located: BTreeMap<Diagnostic, Option<SourceLocation>>,
    /// Some Ingress is defined twice: every change reloads in full.
    duplicates: bool,
}

fn digest_others(loaded: &Loaded) -> u64 {
    let s = &loaded.snapshot;
    let mut h = DefaultHasher::new();
    format!(
        "{:?}{:?}{:?}{:?}",
        s.ingress_classes, s.services, s.endpoint_slices, s.secrets
    )
    .hash(&mut h);
    h.finish()
}

fn ingress_names(loaded: &Loaded) -> Vec<(String, String)> {
    loaded
        .snapshot
        .ingresses
        .iter()
        .map(|i| {
            (
                i.metadata.namespace_or_default().to_owned(),
                i.metadata.name.clone(),
            )
        })
        .collect()
}

fn manifest_files(root: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let meta = std::fs::metadata(root).map_err(|source| {
        LoadError::Read(ingress_files::InputError::Io {
            path: root.display().to_string(),
            source,
        })
    })?;
    if meta.is_dir() {
        Ok(ingress_files::manifest_files(root)?)
    } else {
        Ok(vec![root.to_owned()])
    }
}

/// Read one file; `Err` when it has syntax or schema errors.
fn read_file(path: &Path) -> Result<(Stamp, Loaded), LoadError> {
    // The stamp first: a write after it shows as a change next time.
    let stamp = Stamp::of(path)?;
    let loaded = ingress_files::read_objects_only(&[path.to_owned()])?.loaded;
    Ok((stamp, loaded))
}

fn has_errors(d: &[Located]) -> bool {
    d.iter().any(|d| d.diagnostic.severity == Severity::Error)
}

/// Read `files`; every error diagnostic of any of them (sorted) when one has some.
fn read_files(files: Vec<PathBuf>) -> Result<Vec<(PathBuf, Stamp, Loaded)>, LoadError> {
    let mut read = Vec::with_capacity(files.len());
    let mut errors = Vec::new();
    for f in files {
        let (stamp, loaded) = read_file(&f)?;
        if has_errors(&loaded.diagnostics) {
            errors.extend(loaded.diagnostics.iter().cloned());
        }
        read.push((f, stamp, loaded));
    }
    if !errors.is_empty() {
        errors.sort();
        return Err(LoadError::Manifest(errors));
    }
    Ok(read)
}

impl Folder {
    /// Read and compile every file under `root` (or the one file `root`).
    pub(crate) fn load(root: &Path, options: &CompileOptions) -> Result<Folder, LoadError> {
        let read = read_files(manifest_files(root)?)?;
        let mut all = Loaded::default();
        let mut files = BTreeMap::new();
        let mut owners = HashMap::new();
        let mut duplicates = false;
        for (f, stamp, loaded) in read {
            let ingresses = ingress_names(&loaded);
            for n in &ingresses {
                duplicates |= owners.insert(n.clone(), f.clone()).is_some();
            }
            let state = FileState {
                stamp,
                ingresses,
                others: digest_others(&loaded),
                diagnostics: loaded.diagnostics.clone(),
            };
            files.insert(f, state);
            all.extend(loaded);
        }
        let Loaded {
            snapshot, sources, ..
        } = all;
        let compiler = Compiler::new(snapshot, options.clone());
        let located = compiler
            .diagnostics()
            .iter()
            .cloned()
            .zip(ingress_files::locate(&sources, compiler.diagnostics()))
            .collect();
        Ok(Folder {
            root: root.to_owned(),
            files,
            compiler,
            owners,
            located,
            duplicates,
        })
    }

    /// The current table.
    pub(crate) fn table(&self) -> &RouteTable {
        self.compiler.table()
    }

    /// Every diagnostic of the current table: the files' and the compile's, sorted.
    pub(crate) fn diagnostics(&self) -> Vec<Located> {
        let mut d: Vec<Located> = self
            .files
            .values()
            .flat_map(|f| f.diagnostics.iter().cloned())
            .collect();
        d.extend(self.located.iter().map(|(d, l)| Located {
            location: l.clone(),
            diagnostic: d.clone(),
        }));
        d.sort();
        d
    }

    /// Bring the table up to date with the files. On `Err` nothing changed: the
    /// last good state stays.
    pub(crate) fn refresh(&mut self, options: &CompileOptions) -> Result<Applied, LoadError> {
        let list = manifest_files(&self.root)?;
        let present: BTreeSet<&PathBuf> = list.iter().collect();
        let mut changed = Vec::new();
        for f in &list {
            let stamp = Stamp::of(f)?;
            if self.files.get(f).map(|s| s.stamp) != Some(stamp) {
                changed.push(f.clone());
            }
        }
        let removed: Vec<PathBuf> = self
            .files
            .keys()
            .filter(|f| !present.contains(f))
            .cloned()
            .collect();
        if changed.is_empty() && removed.is_empty() {
            return Ok(Applied::Unchanged);
        }
        if self.duplicates {
            return self.reload(options, "an Ingress is defined in two files");
        }
        let read = read_files(changed)?;
        let empty = digest_others(&Loaded::default());
        for (f, _, loaded) in &read {
            let before = self.files.get(f).map_or(empty, |s| s.others);
            if digest_others(loaded) != before {
                return self.reload(options, "objects other than Ingresses changed");
            }
        }
        if removed
            .iter()
            .any(|f| self.files.get(f).is_some_and(|s| s.others != empty))
        {
            return self.reload(options, "a removed file held objects other than Ingresses");
        }
        // Ingress changes: those gone from changed or removed files, then every
        // Ingress of the changed files (the compiler skips the unchanged ones).
        let rewritten: BTreeSet<&PathBuf> =
            read.iter().map(|(f, _, _)| f).chain(&removed).collect();
        let mut changes: Vec<(String, String, Option<ingress_core::model::Ingress>)> = Vec::new();
        let mut new_owner: HashMap<(String, String), PathBuf> = HashMap::new();
        for (f, _, loaded) in &read {
            for n in ingress_names(loaded) {
                let elsewhere = self
                    .owners
                    .get(&n)
                    .is_some_and(|o| o != f && !rewritten.contains(o));
                if elsewhere || new_owner.insert(n, f.clone()).is_some() {
                    return self.reload(options, "an Ingress is defined in two files");
                }
            }
        }
        for f in read.iter().map(|(f, _, _)| f).chain(&removed) {
            for n in self.files.get(f).map(|s| &s.ingresses[..]).unwrap_or(&[]) {
                if !new_owner.contains_key(n) {
                    changes.push((n.0.clone(), n.1.clone(), None));
                    self.owners.remove(n);
                }
            }
        }
        let mut sources = Loaded::default();
        for (f, stamp, loaded) in read {
            let state = FileState {
                stamp,
                ingresses: ingress_names(&loaded),
                others: digest_others(&loaded),
                diagnostics: loaded.diagnostics,
            };
            self.files.insert(f, state);
            for ing in loaded.snapshot.ingresses {
                let (ns, name) = (
                    ing.metadata.namespace_or_default().to_owned(),
                    ing.metadata.name.clone(),
                );
                changes.push((ns, name, Some(ing)));
            }
            sources.extend(Loaded {
                sources: loaded.sources,
                ..Loaded::default()
            });
        }
        for f in &removed {
            self.files.remove(f);
        }
        self.owners.extend(new_owner);
        let sources = sources.sources;
        let update = self.compiler.apply_ingresses(changes);
        // Locate the compile diagnostics: those seen before where they were, new
        // ones in the files just read.
        let mut located = BTreeMap::new();
        let mut new = Vec::new();
        for d in self.compiler.diagnostics() {
            match self.located.get(d) {
                Some(at) => {
                    located.insert(d.clone(), at.clone());
                }
                None => new.push(d),
            }
        }
        let at = ingress_files::locate(&sources, new.iter().copied());
        located.extend(new.into_iter().cloned().zip(at));
        self.located = located;
        Ok(match update {
            Update::Unchanged => Applied::Unchanged,
            Update::Incremental {
                ingresses, splices, ..
            } => Applied::Incremental { ingresses, splices },
            Update::Full(reason) => Applied::Full(reason.to_string()),
            other => Applied::Full(format!("{other:?}")),
        })
    }

    /// Read and compile the whole folder again, replacing this state.
    fn reload(&mut self, options: &CompileOptions, why: &str) -> Result<Applied, LoadError> {
        *self = Folder::load(&self.root, options)?;
        Ok(Applied::Full(why.to_owned()))
    }
}
