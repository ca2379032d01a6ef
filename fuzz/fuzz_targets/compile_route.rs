//! Structured input: a few Ingresses, IngressClasses, Services, EndpointSlices and
//! Secrets built from small vocabularies (so names line up and routes really match)
//! plus arbitrary strings, and one request. Compiled under both profiles, then routed
//! and explained.
//!
//! Checks: nothing panics; compiling twice gives identical diagnostics; `route` and
//! `explain(..).decision` agree (kind, status, route, backend, upstream target); the
//! explanation's `Chosen` step is the deciding route, and no step is chosen when no
//! route decided; a forward has endpoints and keeps the query.

#![no_main]

use std::collections::BTreeMap;

use arbitrary::{Arbitrary, Unstructured};
use ingress_core::compile::LEGACY_CLASS_ANNOTATION;
use ingress_core::model::{
    Endpoint, EndpointConditions, EndpointPort, EndpointSlice, HttpIngressPath,
    HttpIngressRuleValue, Ingress, IngressBackend, IngressClass, IngressClassSpec, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTls, IntOrString, ObjectMeta, Secret, SecretData,
    Service, ServiceBackendPort, ServicePort, ServiceSpec, Timestamp, TypedLocalObjectReference,
};
use ingress_core::{
    CompileOptions, DEFAULT_CONTROLLER_NAME, Profile, RequestView, Scheme, Snapshot, compile,
};
use ingress_core_fuzz::check_route_with;
use libfuzzer_sys::fuzz_target;

/// At most this many objects of each kind, rules per Ingress, paths per rule...
const MAX_ITEMS: usize = 4;

/// A newtype over `String` that is mostly one of a few words (so names line up and
/// routes really match) and one time in eight any string.
macro_rules! vocab {
    ($name:ident, [$($w:expr),* $(,)?]) => {
        #[derive(Debug)]
        struct $name(String);
        impl<'a> Arbitrary<'a> for $name {
            fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
                const WORDS: &[&str] = &[$($w),*];
                // One in eight is a free-form string.
                if u.ratio(1, 8)? {
                    Ok($name(String::arbitrary(u)?))
                } else {
                    Ok($name((*u.choose(WORDS)?).to_owned()))
                }
            }
        }
    };
}

vocab!(Name, ["web", "api", "a-first", "z-last", "echo", ""]);
vocab!(Namespace, ["default", "shop", ""]);
vocab!(
    Host,
    [
        "shop.example.com",
        "api.example.com",
        "*.example.com",
        "foo.bar.com",
        "*.bar.com",
        "*",
        "Foo.com",
        "10.0.0.1",
        "a..b",
        "xn--bcher-kva.example",
        "",
    ]
);
vocab!(
    Path,
    [
        "/",
        "/api",
        "/api/",
        "/api/v1",
        "/foo",
        "/foo/bar",
        "/a//b",
        "/a/../b",
        "/a/.",
        "/%2e%2e",
        "/a%2Fb",
        "/(.*)",
        "/api(/|$)(.*)",
        "/ä",
        "/a b",
        "api",
        "",
    ]
);
vocab!(
    PathType,
    ["Exact", "Prefix", "ImplementationSpecific", "prefix", ""]
);
vocab!(Class, ["gw", "conformance", "other", ""]);
vocab!(
    AnnKey,
    [
        "nginx.ingress.kubernetes.io/use-regex",
        "nginx.ingress.kubernetes.io/rewrite-target",
        "nginx.ingress.kubernetes.io/canary",
        "nginx.ingress.kubernetes.io/canary-by-header",
        "nginx.ingress.kubernetes.io/canary-by-header-value",
        "nginx.ingress.kubernetes.io/canary-by-header-pattern",
        "nginx.ingress.kubernetes.io/canary-by-cookie",
        "nginx.ingress.kubernetes.io/canary-weight",
        "nginx.ingress.kubernetes.io/canary-weight-total",
        "nginx.ingress.kubernetes.io/app-root",
        "nginx.ingress.kubernetes.io/ssl-redirect",
        "nginx.ingress.kubernetes.io/force-ssl-redirect",
        "nginx.ingress.kubernetes.io/permanent-redirect",
        "nginx.ingress.kubernetes.io/temporal-redirect",
        "nginx.ingress.kubernetes.io/from-to-www-redirect",
        "nginx.ingress.kubernetes.io/enable-cors",
        "nginx.ingress.kubernetes.io/cors-allow-origin",
        "nginx.ingress.kubernetes.io/whitelist-source-range",
        "nginx.ingress.kubernetes.io/denylist-source-range",
        "nginx.ingress.kubernetes.io/upstream-vhost",
        "nginx.ingress.kubernetes.io/x-forwarded-prefix",
        "nginx.ingress.kubernetes.io/affinity",
        "nginx.ingress.kubernetes.io/configuration-snippet",
        "nginx.ingress.kubernetes.io/auth-url",
        "nginx.ingress.kubernetes.io/auth-tls-match-cn",
        "nginx.ingress.kubernetes.io/mirror-target",
        "higress.io/rewrite-path",
        "higress.io/ignore-path-case",
        "higress.io/full-path-regex",
        "higress.io/response-header-control-add",
        "mse.ingress.kubernetes.io/canary-by-query",
        "mse.ingress.kubernetes.io/domain-whitelist-source-range",
    ]
);
vocab!(
    AnnValue,
    [
        "true",
        "false",
        "/",
        "/$1",
        "/$2",
        "/v2/$1?x=1",
        "https://example.com/$1",
        "https://new.example.com/",
        "X-Canary",
        "always",
        "never",
        "v2",
        "^v[0-9]$",
        "(?!x)",
        "30",
        "100",
        "0",
        "cookie",
        "10.0.0.0/8",
        "::1, 10.0.0.1",
        "https://a.example.com, https://*.example.com",
        "*",
        "svc.ns.svc.cluster.local",
        "/api",
        "/foo;\n}\nlocation ~* ^/x { alias /var/run/secrets/kubernetes.io/serviceaccount/; }",
        "http://x/#;\nload_module /tmp/x.so;",
        "CN=(a)\"\n}",
        "more_set_headers \"X: y\";",
        "X-A 1\nX-B 2",
        "a\rb",
    ]
);
vocab!(PortName, ["http", "grpc", "https", ""]);
vocab!(
    Address,
    [
        "10.0.0.1",
        "10.0.0.2",
        "::1",
        "fe80::1",
        "echo.example",
        "999.1.1.1",
        ""
    ]
);
vocab!(AddressType, ["IPv4", "IPv6", "FQDN", "ipv4"]);
vocab!(
    ReqHost,
    [
        "shop.example.com",
        "SHOP.example.com:8080",
        "api.example.com.",
        "x.example.com",
        "x.y.example.com",
        "foo.bar.com",
        "w.bar.com",
        "other.org",
        "[::1]:443",
        "[broken",
        "",
    ]
);
vocab!(
    ReqPath,
    [
        "/",
        "/api",
        "/api/",
        "/api/v1/x",
        "/apis",
        "/foo/bar",
        "/FOO",
        "//api",
        "/x/../api",
        "/%61pi",
        "/a%2Fb",
        "",
    ]
);

/// A port number, mostly a sensible one.
#[derive(Debug)]
struct PortNumber(i64);

impl<'a> Arbitrary<'a> for PortNumber {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        if u.ratio(1, 8)? {
            Ok(PortNumber(i64::arbitrary(u)?))
        } else {
            Ok(PortNumber(
                *u.choose(&[80, 8080, 443, 3000, 0, 65535, 65536, -1])?,
            ))
        }
    }
}

/// A bounded vector.
#[derive(Debug)]
struct Few<T>(Vec<T>);

impl<'a, T: Arbitrary<'a>> Arbitrary<'a> for Few<T> {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let n = u.int_in_range(0..=MAX_ITEMS)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(T::arbitrary(u)?);
        }
        Ok(Few(v))
    }
}

#[derive(Debug, Arbitrary)]
struct Meta {
    name: Name,
    namespace: Option<Namespace>,
    /// Days after 2024-01-01, to order conflicting objects.
    age: Option<u8>,
    /// A raw timestamp string, parsed like the loader would.
    raw_timestamp: Option<String>,
}

impl Meta {
    fn build(&self) -> ObjectMeta {
        let creation_timestamp = match (&self.raw_timestamp, self.age) {
            (Some(raw), _) => Timestamp::parse(raw),
            (None, Some(d)) => Some(Timestamp::from_unix(1_704_067_200 + i64::from(d) * 86_400)),
            (None, None) => None,
        };
        ObjectMeta {
            name: self.name.0.clone(),
            namespace: self.namespace.as_ref().map(|n| n.0.clone()),
            creation_timestamp,
            ..ObjectMeta::default()
        }
    }
}

#[derive(Debug, Arbitrary)]
enum FPort {
    Number(PortNumber),
    Name(PortName),
    Both(PortNumber, PortName),
    Neither,
}

#[derive(Debug, Arbitrary)]
enum FBackend {
    Service(Name, Option<FPort>),
    Resource(Name),
    Both(Name, FPort),
    Empty,
}

impl FBackend {
    fn build(&self) -> IngressBackend {
        let port = |p: &FPort| match p {
            FPort::Number(n) => ServiceBackendPort {
                name: None,
                number: Some(n.0),
            },
            FPort::Name(n) => ServiceBackendPort {
                name: Some(n.0.clone()),
                number: None,
            },
            FPort::Both(n, s) => ServiceBackendPort {
                name: Some(s.0.clone()),
                number: Some(n.0),
            },
            FPort::Neither => ServiceBackendPort::default(),
        };
        let resource = |n: &Name| TypedLocalObjectReference {
            api_group: Some("k8s.example.com".into()),
            kind: "StorageBucket".into(),
            name: n.0.clone(),
        };
        match self {
            FBackend::Service(name, p) => IngressBackend {
                service: Some(IngressServiceBackend {
                    name: name.0.clone(),
                    port: p.as_ref().map(port),
                }),
                resource: None,
            },
            FBackend::Resource(name) => IngressBackend {
                service: None,
                resource: Some(resource(name)),
            },
            FBackend::Both(name, p) => IngressBackend {
                service: Some(IngressServiceBackend {
                    name: name.0.clone(),
                    port: Some(port(p)),
                }),
                resource: Some(resource(name)),
            },
            FBackend::Empty => IngressBackend::default(),
        }
    }
}

#[derive(Debug, Arbitrary)]
struct FPath {
    path: Option<Path>,
    path_type: Option<PathType>,
    backend: FBackend,
}

#[derive(Debug, Arbitrary)]
struct FRule {
    host: Option<Host>,
    /// `None`: a rule without `http`.
    paths: Option<Few<FPath>>,
}

#[derive(Debug, Arbitrary)]
struct FTls {
    hosts: Few<Host>,
    secret: Option<Name>,
}

#[derive(Debug, Arbitrary)]
struct FIngress {
    meta: Meta,
    annotations: Few<(AnnKey, AnnValue)>,
    class: Option<Class>,
    legacy_class: Option<Class>,
    default_backend: Option<FBackend>,
    rules: Few<FRule>,
    tls: Few<FTls>,
}

impl FIngress {
    fn build(&self) -> Ingress {
        let mut metadata = self.meta.build();
        for (k, v) in &self.annotations.0 {
            metadata.annotations.insert(k.0.clone(), v.0.clone());
        }
        if let Some(c) = &self.legacy_class {
            metadata
                .annotations
                .insert(LEGACY_CLASS_ANNOTATION.to_owned(), c.0.clone());
        }
        Ingress {
            metadata,
            spec: IngressSpec {
                ingress_class_name: self.class.as_ref().map(|c| c.0.clone()),
                default_backend: self.default_backend.as_ref().map(FBackend::build),
                tls: self
                    .tls
                    .0
                    .iter()
                    .map(|t| IngressTls {
                        hosts: t.hosts.0.iter().map(|h| h.0.clone()).collect(),
                        secret_name: t.secret.as_ref().map(|s| s.0.clone()),
                    })
                    .collect(),
                rules: self
                    .rules
                    .0
                    .iter()
                    .map(|r| IngressRule {
                        host: r.host.as_ref().map(|h| h.0.clone()),
                        http: r.paths.as_ref().map(|ps| HttpIngressRuleValue {
                            paths: ps
                                .0
                                .iter()
                                .map(|p| HttpIngressPath {
                                    path: p.path.as_ref().map(|x| x.0.clone()),
                                    path_type: p.path_type.as_ref().map(|x| x.0.clone()),
                                    backend: p.backend.build(),
                                })
                                .collect(),
                        }),
                    })
                    .collect(),
            },
        }
    }
}

#[derive(Debug, Arbitrary)]
struct FClass {
    name: Class,
    ours: bool,
    default: bool,
}

impl FClass {
    fn build(&self) -> IngressClass {
        let mut metadata = ObjectMeta {
            name: self.name.0.clone(),
            ..ObjectMeta::default()
        };
        if self.default {
            metadata.annotations.insert(
                "ingressclass.kubernetes.io/is-default-class".into(),
                "true".into(),
            );
        }
        IngressClass {
            metadata,
            spec: IngressClassSpec {
                controller: if self.ours {
                    DEFAULT_CONTROLLER_NAME.into()
                } else {
                    "k8s.io/ingress-nginx".into()
                },
                parameters: None,
            },
        }
    }
}

#[derive(Debug, Arbitrary)]
enum FTargetPort {
    Int(PortNumber),
    Name(PortName),
}

#[derive(Debug, Arbitrary)]
struct FServicePort {
    name: Option<PortName>,
    port: PortNumber,
    target_port: Option<FTargetPort>,
}

#[derive(Debug, Arbitrary)]
struct FService {
    meta: Meta,
    external_name: Option<Address>,
    ports: Few<FServicePort>,
}

impl FService {
    fn build(&self) -> Service {
        Service {
            metadata: self.meta.build(),
            spec: ServiceSpec {
                type_: self.external_name.as_ref().map(|_| "ExternalName".into()),
                external_name: self.external_name.as_ref().map(|a| a.0.clone()),
                ports: self
                    .ports
                    .0
                    .iter()
                    .map(|p| ServicePort {
                        name: p.name.as_ref().map(|n| n.0.clone()),
                        port: p.port.0,
                        target_port: p.target_port.as_ref().map(|t| match t {
                            FTargetPort::Int(n) => IntOrString::Int(n.0),
                            FTargetPort::Name(n) => IntOrString::String(n.0.clone()),
                        }),
                        protocol: None,
                        app_protocol: None,
                    })
                    .collect(),
            },
        }
    }
}

#[derive(Debug, Arbitrary)]
struct FEndpoint {
    addresses: Few<Address>,
    ready: Option<bool>,
    serving: Option<bool>,
    terminating: Option<bool>,
}

#[derive(Debug, Arbitrary)]
struct FEndpointPort {
    name: Option<PortName>,
    port: Option<PortNumber>,
    udp: bool,
}

#[derive(Debug, Arbitrary)]
struct FSlice {
    meta: Meta,
    service: Option<Name>,
    address_type: AddressType,
    endpoints: Few<FEndpoint>,
    ports: Few<FEndpointPort>,
}

impl FSlice {
    fn build(&self) -> EndpointSlice {
        let mut metadata = self.meta.build();
        if let Some(s) = &self.service {
            metadata
                .labels
                .insert(EndpointSlice::SERVICE_NAME_LABEL.to_owned(), s.0.clone());
        }
        EndpointSlice {
            metadata,
            address_type: self.address_type.0.clone(),
            endpoints: self
                .endpoints
                .0
                .iter()
                .map(|e| Endpoint {
                    addresses: e.addresses.0.iter().map(|a| a.0.clone()).collect(),
                    conditions: EndpointConditions {
                        ready: e.ready,
                        serving: e.serving,
                        terminating: e.terminating,
                    },
                })
                .collect(),
            ports: self
                .ports
                .0
                .iter()
                .map(|p| EndpointPort {
                    name: p.name.as_ref().map(|n| n.0.clone()),
                    port: p.port.as_ref().map(|n| n.0),
                    protocol: p.udp.then(|| "UDP".to_owned()),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Arbitrary)]
struct FSecret {
    meta: Meta,
    tls_type: bool,
    crt: Vec<u8>,
    key: Vec<u8>,
}

impl FSecret {
    fn build(&self) -> Secret {
        let mut data = BTreeMap::new();
        data.insert("tls.crt".to_owned(), SecretData(self.crt.clone()));
        data.insert("tls.key".to_owned(), SecretData(self.key.clone()));
        Secret {
            metadata: self.meta.build(),
            type_: self.tls_type.then(|| "kubernetes.io/tls".to_owned()),
            data,
            string_data: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Arbitrary)]
struct FRequest {
    https: bool,
    host: ReqHost,
    path: ReqPath,
    query: Option<String>,
    method_options: bool,
    canary_header: Option<AnnValue>,
    origin: Option<AnnValue>,
    client_ip: Option<[u8; 4]>,
    roll: Option<u32>,
}

#[derive(Debug, Arbitrary)]
struct Input {
    ingresses: Few<FIngress>,
    classes: Few<FClass>,
    services: Few<FService>,
    slices: Few<FSlice>,
    secrets: Few<FSecret>,
    watch_without_class: bool,
    request: FRequest,
}

fuzz_target!(|input: Input| {
    let snapshot = Snapshot {
        ingresses: input.ingresses.0.iter().map(FIngress::build).collect(),
        ingress_classes: input.classes.0.iter().map(FClass::build).collect(),
        services: input.services.0.iter().map(FService::build).collect(),
        endpoint_slices: input.slices.0.iter().map(FSlice::build).collect(),
        secrets: input.secrets.0.iter().map(FSecret::build).collect(),
    };
    let r = &input.request;
    let scheme = if r.https { Scheme::Https } else { Scheme::Http };
    let mut req = RequestView::get(scheme, &r.host.0, &r.path.0);
    req.query = r.query.as_deref();
    let mut headers = http::HeaderMap::new();
    if let Some(v) = r
        .canary_header
        .as_ref()
        .and_then(|v| http::HeaderValue::from_str(&v.0).ok())
    {
        headers.insert("x-canary", v);
    }
    if let Some(v) = r
        .origin
        .as_ref()
        .and_then(|v| http::HeaderValue::from_str(&v.0).ok())
    {
        headers.insert(http::header::ORIGIN, v);
    }
    req.headers = &headers;
    if r.method_options {
        req.method = &http::Method::OPTIONS;
    }
    req.client_ip = r.client_ip.map(|o| std::net::IpAddr::from(o));
    let inputs = ingress_core::routing::RouteInputs { roll: r.roll };

    for profile in [Profile::Standard, Profile::IngressNginx] {
        let options = CompileOptions::with_profile(profile)
            .ingress_class("gw")
            .watch_ingress_without_class(input.watch_without_class);
        let compiled = compile(&snapshot, &options);
        let again = compile(&snapshot, &options);
        assert_eq!(
            compiled.diagnostics, again.diagnostics,
            "compile is not deterministic ({profile})"
        );

        check_route_with(&compiled.table, &req, &inputs, profile.as_str());
    }
});
