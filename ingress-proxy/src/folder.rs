//! The manifests folder as last applied, kept so that a change reads only the files
//! that changed and compiles only what changed ([`ingress_core::compile::Compiler`]).
//!
//! A file counts as changed when its size, modification or change time, or inode
//! differ from the last load (an editor's write-and-rename gives a new inode). The
//! objects of the changed (and removed) files are compared kind by kind, and each
//! kind that changed takes its fast path:
//!
//! - Ingresses: only the hosts they touch are compiled again;
//! - Secrets: only the TLS bindings naming them are checked again
//!   ([`Compiler::apply_secrets`]), the routes stay;
//! - EndpointSlices: only the backends of their Services are resolved again
//!   ([`Compiler::apply_endpoint_slices`]);
//! - Services: only their own backends are resolved again
//!   ([`Compiler::apply_services`]); the data plane patches them as an endpoint
//!   change.
//!
//! Several kinds changed at once (an app's Ingress and Service edited in one
//! file, say) are applied one after the other, in `--kube` mode's order (Secrets,
//! Ingresses, EndpointSlices, Services), and published as one update
//! ([`Update::then`]): Ingresses with endpoint changes are one patch; a Secret
//! change with any other is compiled incrementally but served as a whole new
//! table. A change to an IngressClass, an object defined in two files, or anything
//! the compiler cannot do that way reloads and compiles the whole folder, as the
//! first load does.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use ingress_core::compile::{Compiler, RouteSplice, Update};
use ingress_core::diagnostics::Diagnostic;
use ingress_core::manifest::{Loaded, Located, SourceLocation};
use ingress_core::model::ObjectMeta;
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

/// `(namespace, name)` of an object.
type Key = (String, String);

fn key_of(m: &ObjectMeta) -> Key {
    (m.namespace_or_default().to_owned(), m.name.clone())
}

/// One file as last applied.
#[derive(Debug)]
struct FileState {
    stamp: Stamp,
    /// Its Ingresses, EndpointSlices, Secrets and Services, in file order.
    ingresses: Vec<Key>,
    slices: Vec<Key>,
    secrets: Vec<Key>,
    services: Vec<Key>,
    /// Digests of its objects by kind.
    digests: Digests,
    /// Its syntax and schema diagnostics (warnings: errors are never applied).
    diagnostics: Vec<Located>,
}

/// Digests of a file's objects: its Ingresses, EndpointSlices, Secrets,
/// Services, and the rest (IngressClasses: a change there is a full reload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Digests {
    ingresses: u64,
    slices: u64,
    secrets: u64,
    services: u64,
    rest: u64,
}

fn digest(v: &impl std::fmt::Debug) -> u64 {
    let mut h = DefaultHasher::new();
    format!("{v:?}").hash(&mut h);
    h.finish()
}

impl Digests {
    fn of(loaded: &Loaded) -> Digests {
        let s = &loaded.snapshot;
        Digests {
            ingresses: digest(&s.ingresses),
            slices: digest(&s.endpoint_slices),
            secrets: digest(&s.secrets),
            services: digest(&s.services),
            rest: digest(&s.ingress_classes),
        }
    }
}

impl FileState {
    fn of(stamp: Stamp, loaded: &Loaded) -> FileState {
        let s = &loaded.snapshot;
        FileState {
            stamp,
            ingresses: s.ingresses.iter().map(|o| key_of(&o.metadata)).collect(),
            slices: s
                .endpoint_slices
                .iter()
                .map(|o| key_of(&o.metadata))
                .collect(),
            secrets: s.secrets.iter().map(|o| key_of(&o.metadata)).collect(),
            services: s.services.iter().map(|o| key_of(&o.metadata)).collect(),
            digests: Digests::of(loaded),
            diagnostics: loaded.diagnostics.clone(),
        }
    }
}

/// What one apply did to the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Applied {
    /// No file changed, or the changes left every object as it was.
    Unchanged,
    /// The whole folder was compiled (why).
    Full(String),
    /// Only the hosts of the changed Ingresses were compiled again (and, when
    /// EndpointSlices or Services changed with them, the backends of those
    /// Services resolved again).
    Incremental {
        /// Ingresses compiled again.
        ingresses: usize,
        /// Where the touched hosts' routes were and are.
        splices: Vec<RouteSplice>,
        /// Backends written by the Ingress update or resolved again by the
        /// endpoint one: their endpoints may differ from the previous table's.
        backends: Vec<ingress_core::routing::BackendId>,
    },
    /// Only Secrets changed: the TLS bindings naming them were checked again
    /// (indexes into the table's TLS bindings); the routes are as they were.
    Secrets {
        /// The bindings checked again.
        bindings: Vec<usize>,
    },
    /// Only EndpointSlices or Services changed: the backends of those Services
    /// were resolved again; the routes are as they were.
    Endpoints {
        /// Backends resolved again to something new (ids in the new table).
        backends: Vec<ingress_core::routing::BackendId>,
    },
}

/// The folder's files, objects and compiled table.
#[derive(Debug)]
pub(crate) struct Folder {
    root: PathBuf,
    files: BTreeMap<PathBuf, FileState>,
    compiler: Compiler,
    /// The file that defines each Ingress, EndpointSlice, Secret and Service.
    owners: Owners,
    /// Where each current compile diagnostic points (kept: an unchanged Ingress's
    /// diagnostics are not located again).
    located: BTreeMap<Diagnostic, Option<SourceLocation>>,
    /// Some Ingress, EndpointSlice, Secret or Service is defined twice: every change
    /// reloads in full.
    duplicates: bool,
}

#[derive(Debug, Default)]
struct Owners {
    ingresses: HashMap<Key, PathBuf>,
    slices: HashMap<Key, PathBuf>,
    secrets: HashMap<Key, PathBuf>,
    services: HashMap<Key, PathBuf>,
}

/// The kinds with a fast path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ingress,
    Slice,
    Secret,
    Service,
}

impl Kind {
    const ALL: [Kind; 4] = [Kind::Ingress, Kind::Slice, Kind::Secret, Kind::Service];
    /// The order changes of several kinds are applied in (`--kube` mode's):
    /// Ingresses before EndpointSlices and Services, whose backend ids are then the
    /// final table's ([`Update::then`]).
    const APPLY_ORDER: [Kind; 4] = [Kind::Secret, Kind::Ingress, Kind::Slice, Kind::Service];

    fn names(self, f: &FileState) -> &[Key] {
        match self {
            Kind::Ingress => &f.ingresses,
            Kind::Slice => &f.slices,
            Kind::Secret => &f.secrets,
            Kind::Service => &f.services,
        }
    }

    fn owners(self, o: &mut Owners) -> &mut HashMap<Key, PathBuf> {
        match self {
            Kind::Ingress => &mut o.ingresses,
            Kind::Slice => &mut o.slices,
            Kind::Secret => &mut o.secrets,
            Kind::Service => &mut o.services,
        }
    }

    fn digest(self, d: &Digests) -> u64 {
        match self {
            Kind::Ingress => d.ingresses,
            Kind::Slice => d.slices,
            Kind::Secret => d.secrets,
            Kind::Service => d.services,
        }
    }
}

/// The changes of one kind: every object of `read` (upserts; the compiler skips
/// the unchanged ones) and removals of the names gone from the changed and
/// removed files; the owners updated. `None` when an object would be defined in
/// two files (nothing changed then).
fn changes_of<T>(
    kind: Kind,
    files: &BTreeMap<PathBuf, FileState>,
    owners: &mut Owners,
    read: Vec<(&PathBuf, Vec<T>)>,
    removed: &[PathBuf],
    meta: impl Fn(&T) -> &ObjectMeta,
) -> Option<Vec<(String, String, Option<T>)>> {
    let rewritten: BTreeSet<&PathBuf> = read.iter().map(|(f, _)| *f).chain(removed).collect();
    let mut new_owner: HashMap<Key, PathBuf> = HashMap::new();
    {
        let owners = kind.owners(owners);
        for (f, objects) in &read {
            for o in objects {
                let n = key_of(meta(o));
                let elsewhere = owners
                    .get(&n)
                    .is_some_and(|o| o != *f && !rewritten.contains(o));
                if elsewhere || new_owner.insert(n, (*f).clone()).is_some() {
                    return None;
                }
            }
        }
    }
    let owners = kind.owners(owners);
    let mut changes = Vec::new();
    for f in read.iter().map(|(f, _)| *f).chain(removed) {
        for n in files.get(f).map(|s| kind.names(s)).unwrap_or(&[]) {
            if !new_owner.contains_key(n) {
                changes.push((n.0.clone(), n.1.clone(), None));
                owners.remove(n);
            }
        }
    }
    for (_, objects) in read {
        for o in objects {
            let (ns, name) = key_of(meta(&o));
            changes.push((ns, name, Some(o)));
        }
    }
    owners.extend(new_owner);
    Some(changes)
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
        let mut owners = Owners::default();
        let mut duplicates = false;
        for (f, stamp, loaded) in read {
            let state = FileState::of(stamp, &loaded);
            for kind in Kind::ALL {
                let map = kind.owners(&mut owners);
                for n in kind.names(&state) {
                    duplicates |= map.insert(n.clone(), f.clone()).is_some();
                }
            }
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
            return self.reload(options, "an object is defined in two files");
        }
        let read = read_files(changed)?;
        // Which kinds changed, file by file (a removed file's objects all did).
        let empty = Digests::of(&Loaded::default());
        let mut kinds: Vec<Kind> = Vec::new();
        let before = |f: &PathBuf| self.files.get(f).map_or(empty, |s| s.digests);
        let pairs = read
            .iter()
            .map(|(f, _, loaded)| (before(f), Digests::of(loaded)))
            .chain(
                removed
                    .iter()
                    .map(|f| (before(f), Digests::of(&Loaded::default()))),
            );
        for (old, new) in pairs {
            if old.rest != new.rest {
                return self.reload(options, "IngressClasses changed");
            }
            for kind in Kind::ALL {
                if kind.digest(&old) != kind.digest(&new) && !kinds.contains(&kind) {
                    kinds.push(kind);
                }
            }
        }
        // None changed: the files changed in form only (the Ingress path then
        // finds every object as it was).
        if kinds.is_empty() {
            kinds.push(Kind::Ingress);
        }
        let mut sources = Loaded::default();
        let mut objects = Vec::with_capacity(read.len());
        let mut states = Vec::with_capacity(read.len());
        for (f, stamp, loaded) in read {
            states.push((f.clone(), FileState::of(stamp, &loaded)));
            objects.push((f, loaded.snapshot));
            sources.extend(Loaded {
                sources: loaded.sources,
                ..Loaded::default()
            });
        }
        let update = {
            let (paths, mut snapshots): (Vec<PathBuf>, Vec<_>) = objects.into_iter().unzip();
            macro_rules! changes {
                ($kind:expr, $field:ident) => {
                    changes_of(
                        $kind,
                        &self.files,
                        &mut self.owners,
                        paths
                            .iter()
                            .zip(snapshots.iter_mut().map(|s| std::mem::take(&mut s.$field)))
                            .collect(),
                        &removed,
                        |o| &o.metadata,
                    )
                };
            }
            let mut update = Some(Update::Unchanged);
            for kind in Kind::APPLY_ORDER {
                if !kinds.contains(&kind) {
                    continue;
                }
                let this = match kind {
                    Kind::Ingress => {
                        changes!(kind, ingresses).map(|c| self.compiler.apply_ingresses(c))
                    }
                    Kind::Slice => changes!(kind, endpoint_slices)
                        .map(|c| self.compiler.apply_endpoint_slices(c)),
                    Kind::Secret => changes!(kind, secrets).map(|c| self.compiler.apply_secrets(c)),
                    Kind::Service => {
                        changes!(kind, services).map(|c| self.compiler.apply_services(c))
                    }
                };
                // `None` (an object defined in two files): the whole folder is
                // loaded again below, whatever was applied so far.
                update = update.zip(this).map(|(u, next)| u.then(next));
                if update.is_none() {
                    break;
                }
            }
            update
        };
        let Some(update) = update else {
            return self.reload(options, "an object is defined in two files");
        };
        for (f, state) in states {
            self.files.insert(f, state);
        }
        for f in &removed {
            self.files.remove(f);
        }
        let sources = sources.sources;
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
                ingresses,
                splices,
                backends,
            } => Applied::Incremental {
                ingresses,
                splices,
                backends,
            },
            Update::Tls { bindings } => Applied::Secrets { bindings },
            Update::Endpoints { backends, .. } => Applied::Endpoints { backends },
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
