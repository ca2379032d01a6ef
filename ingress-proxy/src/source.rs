//! Configuration sources: the manifests folder (load, compile, publish, watch) and
//! the Kubernetes API ([`feed_kube`], fed by `ingress_kube::KubeSource`).
//!
//! A load whose files cannot be read, or have syntax or schema errors, is not
//! applied: the last good table keeps serving and the diagnostics are logged. A load
//! that reads cleanly is applied even when compile drops some Ingresses (one bad
//! object is left out alone; its diagnostics are logged and shown by `GET /routes`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ingress_core::manifest::Located;
use ingress_core::{CompileOptions, RouteTable, Severity, compile};
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::folder::{Applied, Folder};
use crate::gateway::RuntimeOptions;
use crate::live::{Live, LiveTable};
use crate::metrics::Metrics;
use crate::service::ServiceOptions;

/// Why a load was not applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// A file or folder could not be read.
    #[error(transparent)]
    Read(#[from] ingress_files::InputError),
    /// Manifest syntax or schema errors (the located diagnostics say where).
    #[error("{} manifest error(s); first: {}", .0.len(), .0.first().map(|d| d.diagnostic.message.as_str()).unwrap_or(""))]
    Manifest(Vec<Located>),
    /// The blocking load task failed.
    #[error("load task failed: {0}")]
    Task(String),
}

/// Errors starting the folder watch.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WatchError {
    /// The watcher could not be set up.
    #[error("cannot watch {path}: {source}")]
    Notify {
        /// The folder.
        path: String,
        /// Why.
        source: notify::Error,
    },
}

/// Read and compile a manifests folder (or file). Diagnostics come back sorted.
pub fn load(
    path: &Path,
    options: &CompileOptions,
) -> Result<(RouteTable, Vec<Located>), LoadError> {
    let input = ingress_files::read_without_texts(&[path.to_owned()])?;
    let loaded = input.loaded;
    if loaded
        .diagnostics
        .iter()
        .any(|d| d.diagnostic.severity == Severity::Error)
    {
        let mut d = loaded.diagnostics;
        d.sort();
        return Err(LoadError::Manifest(d));
    }
    let compiled = compile(&loaded.snapshot, options);
    let mut diagnostics = loaded.diagnostics;
    diagnostics.extend(loaded.sources.locate_all(compiled.diagnostics));
    diagnostics.sort();
    Ok((compiled.table, diagnostics))
}

/// Loads a folder and publishes its tables into a [`LiveTable`].
#[derive(Debug, Clone)]
pub struct FileSource {
    path: PathBuf,
    options: CompileOptions,
    live: Arc<LiveTable>,
    metrics: Arc<Metrics>,
    /// Test hook: loading panics while a file of this name is in the folder.
    panic_marker: Option<String>,
    /// The folder as last applied (`None` before the first good load): a change
    /// reads only the changed files and compiles only the touched hosts.
    folder: Arc<std::sync::Mutex<Option<Folder>>>,
    /// One apply at a time, from load to store: a patched table must be made from
    /// the table its update started from.
    applying: Arc<tokio::sync::Mutex<()>>,
}

impl FileSource {
    /// A source for `path`, publishing into `live`.
    pub fn new(
        path: PathBuf,
        options: CompileOptions,
        live: Arc<LiveTable>,
        metrics: Arc<Metrics>,
    ) -> Self {
        FileSource {
            path,
            options,
            live,
            metrics,
            panic_marker: None,
            folder: Arc::default(),
            applying: Arc::default(),
        }
    }

    /// Test hook (panic containment tests): loading panics, inside the blocking
    /// task, while a file named `marker` is in the folder. Set only by code.
    #[doc(hidden)]
    pub fn with_panic_marker(mut self, marker: impl Into<String>) -> Self {
        self.panic_marker = Some(marker.into());
        self
    }

    /// Load, compile and publish once (blocking work runs off the async threads).
    /// On error the current table stays. An empty path means no folder (`--kube`
    /// mode, where [`feed_kube`] fills the table): nothing is loaded.
    pub async fn apply(&self) -> Result<u64, LoadError> {
        if self.path.as_os_str().is_empty() {
            return Ok(self.live.load().version());
        }
        let _applying = self.applying.lock().await;
        let started = Instant::now();
        let (path, options) = (self.path.clone(), self.options.clone());
        let marker = self.panic_marker.clone();
        let folder = self.folder.clone();
        // A panic while loading ends only this task: it comes back as
        // `LoadError::Task` and the last good table keeps serving (the folder state
        // is dropped, so the next load starts afresh).
        let result = tokio::task::spawn_blocking(move || {
            let mut guard = folder.lock().unwrap_or_else(|e| {
                let mut g = e.into_inner();
                *g = None;
                g
            });
            if let Some(m) = marker {
                assert!(!path.join(m).exists(), "test hook: panic_marker present");
            }
            let applied = match guard.as_mut() {
                Some(f) => f.refresh(&options)?,
                None => {
                    *guard = Some(Folder::load(&path, &options)?);
                    Applied::Full("first load".to_owned())
                }
            };
            let Some(f) = guard.as_ref() else {
                return Err(LoadError::Task("folder state missing".into()));
            };
            if applied == Applied::Unchanged {
                return Ok((applied, None));
            }
            let refreshed = started.elapsed();
            // Publishing a copy is cheap: the table's parts are shared.
            let published = (f.table().clone(), f.diagnostics());
            tracing::debug!(
                refresh_ms = refreshed.as_secs_f64() * 1e3,
                publish_ms = (started.elapsed() - refreshed).as_secs_f64() * 1e3,
                "folder read and compiled"
            );
            Ok((applied, Some(published)))
        })
        .await
        .map_err(|e| LoadError::Task(e.to_string()))
        .and_then(|r| r);
        match result {
            Ok((applied, None)) => {
                tracing::debug!(?applied, "configuration unchanged");
                Ok(self.live.load().version())
            }
            Ok((applied, Some((table, diagnostics)))) => {
                let previous = self.live.load();
                let version = previous.version() + 1;
                log_diagnostics(&diagnostics);
                let (routes, dropped) = (table.routes().len(), count_errors(&diagnostics));
                match &applied {
                    Applied::Incremental {
                        ingresses,
                        splices,
                        backends,
                    } if previous.version() > 0 => {
                        tracing::debug!(
                            ingresses,
                            hosts = splices.len(),
                            backends = backends.len(),
                            "incremental update: only the touched hosts were compiled"
                        );
                        let at = Instant::now();
                        // The backends it wrote, and those of EndpointSlices and
                        // Services changed with it: their balancers follow their
                        // endpoints.
                        let live = Live::with_endpoints(
                            &previous,
                            table,
                            version,
                            diagnostics,
                            splices,
                            backends,
                        );
                        let patched = at.elapsed();
                        self.live.store_patched(live);
                        drop(previous);
                        tracing::debug!(
                            patch_ms = patched.as_secs_f64() * 1e3,
                            store_and_drop_ms = (at.elapsed() - patched).as_secs_f64() * 1e3,
                            "per-route state carried over"
                        );
                        self.metrics.config_update("incremental");
                    }
                    Applied::Secrets { bindings } if previous.version() > 0 => {
                        tracing::debug!(
                            bindings = bindings.len(),
                            "Secret update: only the TLS bindings naming the changed Secrets were checked again"
                        );
                        let live = Live::with_certificates(
                            &previous,
                            table,
                            version,
                            diagnostics,
                            bindings,
                            crate::certs::system_now(),
                        );
                        self.live.store_patched(live);
                        self.metrics.config_update("secrets");
                    }
                    Applied::Endpoints { backends } if previous.version() > 0 => {
                        // Only the balancers over the changed backends are
                        // replaced; the rest of the served state is shared.
                        let at = Instant::now();
                        let live = Live::with_endpoints(
                            &previous,
                            table,
                            version,
                            diagnostics,
                            &[],
                            backends,
                        );
                        let patched = at.elapsed();
                        self.live.store_patched(live);
                        drop(previous);
                        tracing::debug!(
                            backends = backends.len(),
                            patch_ms = patched.as_secs_f64() * 1e3,
                            store_and_drop_ms = (at.elapsed() - patched).as_secs_f64() * 1e3,
                            "endpoint update: only the balancers of the changed backends were replaced"
                        );
                        self.metrics.config_update("endpoints");
                    }
                    other => {
                        tracing::debug!(update = ?other, "full compile");
                        self.live.store(Live::new(table, version, diagnostics));
                        self.metrics.config_update("full");
                    }
                }
                self.metrics.config_applied(true, version);
                tracing::info!(
                    version,
                    routes,
                    errors = dropped,
                    elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
                    "configuration applied"
                );
                Ok(version)
            }
            Err(e) => {
                if let LoadError::Manifest(d) = &e {
                    log_diagnostics(d);
                }
                self.metrics
                    .config_applied(false, self.live.load().version());
                tracing::error!(error = %e, version = self.live.load().version(), "configuration rejected; the last good table keeps serving");
                Err(e)
            }
        }
    }

    /// Watch the folder and apply every change, `debounce` after the last event of a
    /// burst (at most `10 × debounce` after the first). Runs until the returned task
    /// is aborted.
    pub fn watch(&self, debounce: Duration) -> Result<tokio::task::JoinHandle<()>, WatchError> {
        let (tx, mut rx) = mpsc::unbounded_channel::<()>();
        let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            match res {
                // Our own reads show up as access events; they change nothing.
                Ok(ev) if matches!(ev.kind, EventKind::Access(_)) => {}
                Ok(_) => {
                    let _ = tx.send(());
                }
                // A lost event (queue overflow...) could hide a change: reload anyway.
                Err(e) => {
                    tracing::warn!(error = %e, "file watch error; reloading");
                    let _ = tx.send(());
                }
            }
        })
        .map_err(|source| WatchError::Notify {
            path: self.path.display().to_string(),
            source,
        })?;
        watcher
            .watch(&self.path, RecursiveMode::Recursive)
            .map_err(|source| WatchError::Notify {
                path: self.path.display().to_string(),
                source,
            })?;
        let this = self.clone();
        Ok(tokio::spawn(async move {
            let _watcher = watcher;
            while rx.recv().await.is_some() {
                let first = tokio::time::Instant::now();
                let deadline = first + debounce * 10;
                loop {
                    let quiet = tokio::time::sleep(debounce);
                    tokio::select! {
                        _ = quiet => break,
                        _ = tokio::time::sleep_until(deadline) => break,
                        more = rx.recv() => if more.is_none() { return },
                    }
                }
                tracing::debug!(
                    debounce_ms = first.elapsed().as_secs_f64() * 1e3,
                    "folder changed; applying"
                );
                let _ = this.apply().await;
            }
        }))
    }
}

/// Serve every table an `ingress_kube::KubeSource` publishes (its `subscribe()`
/// receiver) from `live`, as [`FileSource`] does for the folder. Nothing is stored
/// before the source's first table (which it publishes only once every watched kind
/// is listed), so `/readyz` stays 503 until then. Runs until the source stops.
///
/// Each table is served with the gateway config applied to it
/// (`Published::applied_gateway`) laid over `base`, the options the flags built
/// ([`crate::gateway::RuntimeOptions`]): a field the config sets wins, one it
/// leaves out keeps the flag's value; with no config, `base` alone. The merged
/// options are remade only when the config changes.
pub fn feed_kube(
    mut tables: tokio::sync::watch::Receiver<Option<Arc<ingress_kube::Published>>>,
    live: Arc<LiveTable>,
    metrics: Arc<Metrics>,
    base: ServiceOptions,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut runtime: Option<Arc<RuntimeOptions>> = None;
        loop {
            let published = tables.borrow_and_update().clone();
            if let Some(p) = published {
                let started = Instant::now();
                let diagnostics: Vec<Located> = p
                    .diagnostics
                    .iter()
                    .map(|d| Located {
                        location: None,
                        diagnostic: d.clone(),
                    })
                    .collect();
                log_diagnostics(&diagnostics);
                let (routes, dropped) = (p.table.routes().len(), count_errors(&diagnostics));
                runtime = match &p.applied_gateway {
                    None => None,
                    Some(c) => match runtime.take() {
                        Some(r) if r.config() == c => Some(r),
                        previous => {
                            tracing::info!("gateway config applied");
                            Some(Arc::new(RuntimeOptions::merge(
                                &base,
                                c,
                                previous.as_deref(),
                            )))
                        }
                    },
                };
                let previous = live.load();
                // Patch the served table when the update was made from it (the
                // watch channel may have skipped a version).
                let from_served = previous.version() > 0 && previous.version() + 1 == p.version;
                let splices = p
                    .splices
                    .as_ref()
                    .filter(|_| p.path == ingress_kube::BuildPath::Incremental)
                    .filter(|_| from_served);
                // A Secret update made from the served table: only the TLS bindings
                // naming the changed Secrets are loaded again.
                let bindings = p
                    .bindings
                    .as_ref()
                    .filter(|_| p.path == ingress_kube::BuildPath::Secrets)
                    .filter(|_| from_served);
                // An EndpointSlice update made from the served table: only the
                // balancers over the changed backends are replaced.
                let endpoints = p
                    .endpoints
                    .as_deref()
                    .filter(|_| p.path == ingress_kube::BuildPath::Endpoints)
                    .filter(|_| from_served);
                if let Some(splices) = splices {
                    // The backends it wrote, and those of slices changed in the
                    // same build: their balancers follow their endpoints.
                    let backends = p.endpoints.as_deref().unwrap_or_default();
                    tracing::debug!(
                        hosts = splices.len(),
                        backends = backends.len(),
                        "incremental update: per-route state carried over"
                    );
                    let table = Live::with_endpoints(
                        &previous,
                        p.table.clone(),
                        p.version,
                        diagnostics,
                        splices,
                        backends,
                    );
                    live.store_patched(table);
                    metrics.config_update("incremental");
                } else if let Some(backends) = endpoints {
                    let at = Instant::now();
                    let table = Live::with_endpoints(
                        &previous,
                        p.table.clone(),
                        p.version,
                        diagnostics,
                        &[],
                        backends,
                    );
                    let patched = at.elapsed();
                    live.store_patched(table);
                    tracing::debug!(
                        backends = backends.len(),
                        patch_ms = patched.as_secs_f64() * 1e3,
                        "endpoint update: only the balancers of the changed backends were replaced"
                    );
                    metrics.config_update("endpoints");
                } else if let Some(bindings) = bindings {
                    tracing::debug!(
                        bindings = bindings.len(),
                        "Secret update: only the TLS bindings naming the changed Secrets were checked again"
                    );
                    let mut table = Live::with_certificates(
                        &previous,
                        p.table.clone(),
                        p.version,
                        diagnostics,
                        bindings,
                        crate::certs::system_now(),
                    );
                    // The gateway config's default certificate may be one of the
                    // changed Secrets (a bad one keeps the previous certificate).
                    if let Some(cert) = gateway_default_certificate(&p) {
                        table = table.with_default_certificate(cert);
                    }
                    live.store_patched(table);
                    metrics.config_update("secrets");
                } else {
                    let mut table = Live::new(p.table.clone(), p.version, diagnostics);
                    if let Some(r) = &runtime {
                        table = table.with_runtime(r.clone());
                    }
                    if let Some(cert) = gateway_default_certificate(&p) {
                        table = table.with_default_certificate(cert);
                    }
                    live.store(table);
                    metrics.config_update("full");
                }
                metrics.config_applied(true, p.version);
                tracing::info!(
                    version = p.version,
                    routes,
                    errors = dropped,
                    elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
                    "configuration applied from the cluster"
                );
            }
            if tables.changed().await.is_err() {
                return;
            }
        }
    })
}

/// The applied gateway config's `defaultTlsCertificate`, when it names a usable
/// Secret of the published table.
fn gateway_default_certificate(
    p: &ingress_kube::Published,
) -> Option<Arc<rustls::sign::CertifiedKey>> {
    p.applied_gateway
        .as_ref()
        .and_then(|g| g.default_tls_certificate.as_ref())
        .and_then(|r| default_certificate_of(&p.secrets, r))
}

fn count_errors(d: &[Located]) -> usize {
    d.iter()
        .filter(|d| d.diagnostic.severity == Severity::Error)
        .count()
}

fn log_diagnostics(diagnostics: &[Located]) {
    for d in diagnostics {
        let at = d
            .location
            .as_ref()
            .map(|l| format!("{}:{}:{}", l.file, l.line, l.column))
            .unwrap_or_default();
        let (code, msg) = (d.diagnostic.code.as_str(), &d.diagnostic.message);
        match d.diagnostic.severity {
            Severity::Error => tracing::warn!(code, at, "{msg}"),
            Severity::Warning => tracing::warn!(code, at, "{msg}"),
            Severity::Info => tracing::debug!(code, at, "{msg}"),
        }
    }
}

/// The gateway config's default certificate from its Secret in `secrets`; `None`
/// (logged) when the Secret is missing or unusable: the listener's default serves.
fn default_certificate_of(
    secrets: &[ingress_core::model::Secret],
    secret: &ingress_core::model::ObjectRef,
) -> Option<Arc<rustls::sign::CertifiedKey>> {
    let found = secrets.iter().find(|s| {
        s.metadata.name == secret.name
            && s.metadata.namespace.as_deref() == secret.namespace.as_deref()
    });
    let Some(found) = found else {
        tracing::warn!(secret = %secret, "defaultTlsCertificate: Secret not found; serving the listener's default certificate");
        return None;
    };
    let (Some(crt), Some(key)) = (found.get("tls.crt"), found.get("tls.key")) else {
        tracing::warn!(secret = %secret, "defaultTlsCertificate: the Secret must hold tls.crt and tls.key");
        return None;
    };
    let parsed = match ingress_core::tls::CertifiedKey::from_pem(crt, key) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(secret = %secret, error = %e, "defaultTlsCertificate not usable");
            return None;
        }
    };
    match crate::tls::rustls_key(&parsed) {
        Ok(k) => Some(k),
        Err(e) => {
            tracing::warn!(secret = %secret, error = %e, "defaultTlsCertificate key not usable");
            None
        }
    }
}
