//! The fake API server's objects, history and watchers.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;

type Reply = Result<(u16, Value), (u16, &'static str, String)>;

/// One served resource: its plural, kind, apiVersion and scope.
struct Kind {
    plural: &'static str,
    kind: &'static str,
    api_version: &'static str,
    namespaced: bool,
}

const KINDS: &[Kind] = &[
    Kind {
        plural: "ingresses",
        kind: "Ingress",
        api_version: "networking.k8s.io/v1",
        namespaced: true,
    },
    Kind {
        plural: "ingressclasses",
        kind: "IngressClass",
        api_version: "networking.k8s.io/v1",
        namespaced: false,
    },
    Kind {
        plural: "services",
        kind: "Service",
        api_version: "v1",
        namespaced: true,
    },
    Kind {
        plural: "endpointslices",
        kind: "EndpointSlice",
        api_version: "discovery.k8s.io/v1",
        namespaced: true,
    },
    Kind {
        plural: "secrets",
        kind: "Secret",
        api_version: "v1",
        namespaced: true,
    },
    Kind {
        plural: "ingressgatewayconfigs",
        kind: "IngressGatewayConfig",
        api_version: "gateway.ingress-rs.io/v1alpha1",
        namespaced: false,
    },
    Kind {
        plural: "leases",
        kind: "Lease",
        api_version: "coordination.k8s.io/v1",
        namespaced: true,
    },
    Kind {
        plural: "events",
        kind: "Event",
        api_version: "events.k8s.io/v1",
        namespaced: true,
    },
];

fn by_plural(p: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.plural == p)
}

fn by_kind(k: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|x| x.kind == k)
}

/// A request path: `/api/v1/namespaces/ns/services/name/status` and the like.
#[derive(Debug, Clone)]
pub(crate) struct Path {
    pub(crate) namespace: Option<String>,
    pub(crate) plural: String,
    pub(crate) name: Option<String>,
    pub(crate) subresource: Option<String>,
}

impl Path {
    pub(crate) fn parse(path: &str) -> Option<Path> {
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let (api_version, rest) = match segs.as_slice() {
            ["api", v, rest @ ..] => ((*v).to_owned(), rest),
            ["apis", g, v, rest @ ..] => (format!("{g}/{v}"), rest),
            _ => return None,
        };
        let (namespace, rest) = match rest {
            ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some((*ns).to_owned()), rest),
            _ => (None, rest),
        };
        let (plural, name, subresource) = match rest {
            [p] => (p, None, None),
            [p, n] => (p, Some(*n), None),
            [p, n, s] => (p, Some(*n), Some(*s)),
            _ => return None,
        };
        let k = by_plural(plural)?;
        if k.api_version != api_version {
            return None;
        }
        Some(Path {
            namespace,
            plural: (*plural).to_owned(),
            name: name.map(str::to_owned),
            subresource: subresource.map(str::to_owned),
        })
    }
}

/// One write a client made.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Write {
    /// `POST`, `PUT`, `PATCH` or `DELETE`.
    pub method: &'static str,
    /// The resource, e.g. `ingresses`.
    pub plural: String,
    /// The namespace (empty for cluster-scoped objects).
    pub namespace: String,
    /// The name.
    pub name: String,
    /// The subresource, e.g. `status`.
    pub subresource: Option<String>,
    /// The body sent.
    pub body: Value,
}

struct Watcher {
    plural: String,
    namespace: Option<String>,
    tx: mpsc::UnboundedSender<Bytes>,
}

/// The key of [`State::fail_lists`] that makes watches fail.
pub(crate) const WATCHES: &str = "<watch>";
/// The prefix of [`State::fail_lists`] keys that make a kind unknown (404).
pub(crate) const GONE: &str = "<gone>";

type Key = (String, String, String); // plural, namespace, name

#[derive(Default)]
pub(crate) struct State {
    rv: u64,
    floor: u64,
    objects: BTreeMap<Key, Value>,
    /// (rv, plural, namespace, event type, object)
    log: Vec<(u64, String, String, &'static str, Value)>,
    watchers: Vec<Watcher>,
    failing: BTreeSet<String>,
    pub(crate) writes: Vec<Write>,
    /// (method, plural, watch)
    pub(crate) requests: Vec<(String, String, bool)>,
    /// Lists still to answer `410`, by plural.
    expiring: BTreeMap<String, usize>,
    /// What failing lists and watches answer: (status, Retry-After seconds);
    /// `None`: 503 without Retry-After.
    fault: Option<(u16, Option<u32>)>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("rv", &self.rv)
            .field("objects", &self.objects.len())
            .field("watchers", &self.watchers.len())
            .finish()
    }
}

/// A `v1` Status object.
pub(crate) fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

fn line(kind: &str, object: &Value) -> Bytes {
    let mut v = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

fn merge(dst: &mut Value, patch: &Value) {
    match (dst.as_object_mut(), patch.as_object()) {
        (Some(d), Some(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    d.remove(k);
                } else {
                    merge(d.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        _ => *dst = patch.clone(),
    }
}

fn meta_str<'v>(o: &'v Value, key: &str) -> &'v str {
    o["metadata"][key].as_str().unwrap_or("")
}

impl State {
    fn key(k: &Kind, ns: &str, name: &str) -> Key {
        let ns = if k.namespaced { ns } else { "" };
        (k.plural.to_owned(), ns.to_owned(), name.to_owned())
    }

    /// Store `object`, bump its resourceVersion and generation, tell watchers.
    fn store(&mut self, k: &Kind, mut object: Value, spec_changed: bool) -> Value {
        self.rv += 1;
        let ns = if k.namespaced {
            let ns = meta_str(&object, "namespace");
            if ns.is_empty() {
                "default".to_owned()
            } else {
                ns.to_owned()
            }
        } else {
            String::new()
        };
        let key = Self::key(k, &ns, meta_str(&object, "name"));
        let old = self.objects.get(&key);
        object["apiVersion"] = json!(k.api_version);
        object["kind"] = json!(k.kind);
        if k.namespaced {
            object["metadata"]["namespace"] = json!(ns);
        }
        object["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let (uid, created, generation) = match old {
            Some(o) => (
                o["metadata"]["uid"].clone(),
                o["metadata"]["creationTimestamp"].clone(),
                o["metadata"]["generation"].as_i64().unwrap_or(1) + i64::from(spec_changed),
            ),
            None => (
                json!(format!("uid-{}", self.rv)),
                json!("2024-01-01T00:00:00Z"),
                1,
            ),
        };
        let event = if old.is_some() { "MODIFIED" } else { "ADDED" };
        // Writes to the main resource keep the status (the status subresource's).
        if let Some(o) = old
            && object.get("status").is_none_or(Value::is_null)
            && !o["status"].is_null()
        {
            object["status"] = o["status"].clone();
        }
        object["metadata"]["uid"] = uid;
        if object["metadata"]["creationTimestamp"].is_null() {
            object["metadata"]["creationTimestamp"] = created;
        }
        object["metadata"]["generation"] = json!(generation);
        self.objects.insert(key, object.clone());
        self.emit(k.plural, &ns, event, &object);
        object
    }

    fn emit(&mut self, plural: &str, ns: &str, event: &'static str, object: &Value) {
        self.log.push((
            self.rv,
            plural.to_owned(),
            ns.to_owned(),
            event,
            object.clone(),
        ));
        let bytes = line(event, object);
        self.watchers.retain(|w| {
            if w.plural != plural || w.namespace.as_deref().is_some_and(|n| n != ns) {
                return !w.tx.is_closed();
            }
            w.tx.send(bytes.clone()).is_ok()
        });
    }

    pub(crate) fn apply(&mut self, object: Value) -> Result<Value, String> {
        let kind = object["kind"].as_str().unwrap_or("");
        let k = by_kind(kind).ok_or_else(|| format!("kind {kind:?} is not served"))?;
        if meta_str(&object, "name").is_empty() {
            return Err("metadata.name is required".into());
        }
        Ok(self.store(k, object, true))
    }

    pub(crate) fn get_by_kind(&self, kind: &str, ns: &str, name: &str) -> Option<Value> {
        let k = by_kind(kind)?;
        self.objects.get(&Self::key(k, ns, name)).cloned()
    }

    pub(crate) fn delete_by_kind(&mut self, kind: &str, ns: &str, name: &str) -> bool {
        let Some(k) = by_kind(kind) else { return false };
        let key = Self::key(k, ns, name);
        let Some(mut object) = self.objects.remove(&key) else {
            return false;
        };
        self.rv += 1;
        object["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.emit(k.plural, &key.1, "DELETED", &object);
        true
    }

    pub(crate) fn drop_watches(&mut self) {
        self.watchers.clear();
    }

    pub(crate) fn compact(&mut self) {
        self.floor = self.rv;
        self.log.clear();
        self.watchers.clear();
    }

    pub(crate) fn fail_lists(&mut self, plural: &str, fail: bool) {
        if fail {
            self.failing.insert(plural.to_owned());
        } else {
            self.failing.remove(plural);
        }
    }

    pub(crate) fn expire_lists(&mut self, plural: &str, n: usize) {
        self.expiring.insert(plural.to_owned(), n);
    }

    pub(crate) fn expiring_lists(&self, plural: &str) -> usize {
        self.expiring.get(plural).copied().unwrap_or(0)
    }

    pub(crate) fn fail_with(&mut self, status: u16, retry_after: Option<u32>) {
        self.fault = Some((status, retry_after));
    }

    /// The status and reason failing requests answer.
    pub(crate) fn failure(&self) -> (u16, &'static str) {
        match self.fault.map_or(503, |f| f.0) {
            429 => (429, "TooManyRequests"),
            500 => (500, "InternalError"),
            503 => (503, "ServiceUnavailable"),
            other => (other, "Failure"),
        }
    }

    /// The Retry-After of failing requests.
    pub(crate) fn retry_after(&self) -> Option<u32> {
        self.fault.and_then(|f| f.1)
    }

    pub(crate) fn kind_gone(&self, plural: &str) -> bool {
        self.failing.contains(&format!("{GONE}{plural}"))
    }

    pub(crate) fn watches_failing(&self) -> bool {
        self.failing.contains(WATCHES)
    }

    pub(crate) fn bookmark(&mut self) {
        let rv = self.rv.to_string();
        self.watchers.retain(|w| {
            let k = by_plural(&w.plural);
            let obj = json!({"apiVersion": k.map(|k| k.api_version), "kind": k.map(|k| k.kind),
                             "metadata": {"resourceVersion": rv}});
            w.tx.send(line("BOOKMARK", &obj)).is_ok()
        });
    }

    pub(crate) fn watch(&mut self, path: &Path, since: u64, tx: mpsc::UnboundedSender<Bytes>) {
        if since < self.floor {
            let _ = tx.send(line(
                "ERROR",
                &status(
                    410,
                    "Expired",
                    &format!("too old resource version: {since} ({})", self.floor),
                ),
            ));
            return;
        }
        for (rv, plural, ns, event, object) in &self.log {
            if *rv > since
                && *plural == path.plural
                && path.namespace.as_deref().is_none_or(|n| n == ns)
            {
                let _ = tx.send(line(event, object));
            }
        }
        self.watchers.push(Watcher {
            plural: path.plural.clone(),
            namespace: path.namespace.clone(),
            tx,
        });
    }

    pub(crate) fn list(&mut self, path: &Path) -> Reply {
        if self.failing.contains(&path.plural) {
            let (code, reason) = self.failure();
            return Err((code, reason, "lists are failing (test)".into()));
        }
        if let Some(n) = self.expiring.get_mut(&path.plural).filter(|n| **n > 0) {
            *n -= 1;
            return Err((
                410,
                "Expired",
                format!(
                    "the provided resourceVersion or continue token is too old ({})",
                    self.floor
                ),
            ));
        }
        let k = by_plural(&path.plural).ok_or((404, "NotFound", "no such resource".to_owned()))?;
        let items: Vec<Value> = self
            .objects
            .iter()
            .filter(|((p, ns, _), _)| {
                *p == path.plural && path.namespace.as_deref().is_none_or(|n| n == ns)
            })
            .map(|(_, o)| o.clone())
            .collect();
        Ok((
            200,
            json!({"apiVersion": k.api_version, "kind": format!("{}List", k.kind),
                   "metadata": {"resourceVersion": self.rv.to_string()}, "items": items}),
        ))
    }

    fn found(&self, path: &Path) -> Result<(&'static Kind, Key), (u16, &'static str, String)> {
        let k = by_plural(&path.plural).ok_or((404, "NotFound", "no such resource".to_owned()))?;
        let key = Self::key(
            k,
            path.namespace.as_deref().unwrap_or(""),
            path.name.as_deref().unwrap_or(""),
        );
        Ok((k, key))
    }

    fn not_found(path: &Path) -> (u16, &'static str, String) {
        (
            404,
            "NotFound",
            format!(
                "{} {:?} not found",
                path.plural,
                path.name.as_deref().unwrap_or("")
            ),
        )
    }

    fn record(&mut self, method: &'static str, path: &Path, name: &str, body: &Value) {
        self.writes.push(Write {
            method,
            plural: path.plural.clone(),
            namespace: path.namespace.clone().unwrap_or_default(),
            name: name.to_owned(),
            subresource: path.subresource.clone(),
            body: body.clone(),
        });
    }

    pub(crate) fn get(&mut self, path: &Path) -> Reply {
        let (_, key) = self.found(path)?;
        self.objects
            .get(&key)
            .map(|o| (200, o.clone()))
            .ok_or_else(|| Self::not_found(path))
    }

    pub(crate) fn create(&mut self, path: &Path, body: Option<Value>) -> Reply {
        let k = by_plural(&path.plural).ok_or((404, "NotFound", "no such resource".to_owned()))?;
        let mut body = body.ok_or((400, "BadRequest", "no JSON body".to_owned()))?;
        let name = meta_str(&body, "name").to_owned();
        if name.is_empty() {
            return Err((422, "Invalid", "metadata.name is required".into()));
        }
        if let Some(ns) = &path.namespace {
            body["metadata"]["namespace"] = json!(ns);
        }
        self.record("POST", path, &name, &body);
        let key = Self::key(k, path.namespace.as_deref().unwrap_or(""), &name);
        if self.objects.contains_key(&key) {
            return Err((
                409,
                "AlreadyExists",
                format!("{} {name:?} already exists", k.plural),
            ));
        }
        Ok((201, self.store(k, body, true)))
    }

    pub(crate) fn replace(&mut self, path: &Path, body: Option<Value>) -> Reply {
        let (k, key) = self.found(path)?;
        let mut body = body.ok_or((400, "BadRequest", "no JSON body".to_owned()))?;
        self.record("PUT", path, &key.2, &body);
        let old = self
            .objects
            .get(&key)
            .ok_or_else(|| Self::not_found(path))?;
        let sent = meta_str(&body, "resourceVersion");
        if !sent.is_empty() && sent != meta_str(old, "resourceVersion") {
            return Err((
                409,
                "Conflict",
                "the object has been modified; please apply your changes to the latest version"
                    .into(),
            ));
        }
        if let Some(ns) = &path.namespace {
            body["metadata"]["namespace"] = json!(ns);
        }
        let spec_changed = old["spec"] != body["spec"];
        Ok((200, self.store(k, body, spec_changed)))
    }

    pub(crate) fn patch(&mut self, path: &Path, body: Option<Value>) -> Reply {
        let (k, key) = self.found(path)?;
        let body = body.ok_or((400, "BadRequest", "no JSON body".to_owned()))?;
        self.record("PATCH", path, &key.2, &body);
        let mut object = self
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| Self::not_found(path))?;
        if path.subresource.as_deref() == Some("status") {
            // Only the status changes through the status subresource.
            merge(&mut object["status"], &body["status"]);
        } else {
            let mut patch = body;
            if let Some(m) = patch.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("resourceVersion");
            }
            merge(&mut object, &patch);
        }
        let spec_changed = self
            .objects
            .get(&key)
            .is_some_and(|o| o["spec"] != object["spec"]);
        Ok((200, self.store(k, object, spec_changed)))
    }

    pub(crate) fn delete(&mut self, path: &Path) -> Reply {
        let (k, key) = self.found(path)?;
        self.record("DELETE", path, &key.2, &Value::Null);
        if self.delete_by_kind(k.kind, &key.1, &key.2) {
            Ok((200, status(200, "Deleted", "deleted")))
        } else {
            Err(Self::not_found(path))
        }
    }
}
