//! Authentication end to end: basic auth, external auth against an auth service
//! written here, client certificates made with rcgen.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::{TcpListener, TcpStream};

use crate::support::*;

const N: &str = "nginx.ingress.kubernetes.io/";

fn a(k: &str) -> String {
    format!("{N}{k}")
}

fn secret(name: &str, data: &[(&str, &str)]) -> String {
    let mut out = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: t}}\nstringData:\n"
    );
    for (k, v) in data {
        out += &format!("  {k}: {}\n", serde_json::to_string(v).expect("json"));
    }
    out
}

fn basic_header(user: &str, pass: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

// htpasswd -nbm alice secret; htpasswd -nbB -C 4 erin hunter2
const ALICE: &str = "$apr1$FpD1wUQG$Km7KDahdOB7Kb1a.LrDgZ1";
const ERIN: &str = "$2y$04$jKrnOTPqb18NZYA0Qo9rkuUIzRmgZD/Re10/CqvzQMp/KnG8rp5/2";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_checks_htpasswd_and_auth_map_secrets() -> TestResult {
    let up = echo("up").await;
    let dir = tempfile::tempdir()?;
    write(
        dir.path(),
        "basic.yaml",
        &docs(&[
            CLASS.to_owned(),
            ingress_with(
                "file",
                &[
                    (&a("auth-type"), "basic"),
                    (&a("auth-secret"), "users"),
                    (&a("auth-realm"), "Staff only"),
                ],
                &[("file.test", "/", "up")],
                &[],
            ),
            ingress_with(
                "map",
                &[
                    (&a("auth-type"), "basic"),
                    (&a("auth-secret"), "map"),
                    (&a("auth-secret-type"), "auth-map"),
                ],
                &[("map.test", "/", "up")],
                &[],
            ),
            secret(
                "users",
                &[("auth", &format!("alice:{ALICE}\nerin:{ERIN}\n"))],
            ),
            secret("map", &[("erin", ERIN)]),
            service("up", &[up.addr]),
        ]),
    );
    let p = proxy(dir.path(), |_| {}).await;
    let addr = p.http_addr().expect("http");
    let call = |host: &'static str, auth: Option<String>| async move {
        let mut b = get(host, "/x");
        if let Some(v) = auth {
            b = b.header("authorization", v);
        }
        h1(addr, b.body(empty()).expect("request")).await
    };
    for auth in [
        None,
        Some(basic_header("alice", "wrong")),
        Some(basic_header("nobody", "secret")),
        Some("Bearer abc".to_owned()),
    ] {
        let r = call("file.test", auth.clone()).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(r.headers["www-authenticate"], "Basic realm=\"Staff only\"");
    }
    assert_eq!(
        up.hits.load(Ordering::SeqCst),
        0,
        "no upstream contact on denial"
    );
    let r = call("file.test", Some(basic_header("alice", "secret"))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        r.seen("authorization"),
        Some(basic_header("alice", "secret")),
        "the Authorization header goes upstream, as ingress-nginx"
    );
    let r = call("file.test", Some(basic_header("erin", "hunter2"))).await;
    assert_eq!(r.status, StatusCode::OK, "bcrypt");
    let r = call("map.test", Some(basic_header("erin", "hunter2"))).await;
    assert_eq!(r.status, StatusCode::OK, "auth-map");
    let r = call("map.test", Some(basic_header("alice", "secret"))).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers["www-authenticate"], "Basic realm=\"\"");
    p.shutdown().await;
    Ok(())
}

fn md5_hex(s: &str) -> String {
    use md5::Digest as _;
    md5::Md5::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The quoted parameters of a `WWW-Authenticate: Digest` challenge.
fn challenge_param(challenge: &str, name: &str) -> String {
    let start = challenge
        .find(&format!("{name}=\""))
        .unwrap_or_else(|| panic!("{name} in {challenge}"))
        + name.len()
        + 2;
    let end = challenge[start..].find('"').expect("closing quote") + start;
    challenge[start..end].to_owned()
}

/// The `Authorization` value a client computes (RFC 2617, qop=auth), written
/// here independently of the core's digest code.
fn digest_header(challenge: &str, user: &str, pass: &str, uri: &str, nc: u32) -> String {
    let (realm, nonce, opaque) = (
        challenge_param(challenge, "realm"),
        challenge_param(challenge, "nonce"),
        challenge_param(challenge, "opaque"),
    );
    let ha1 = md5_hex(&format!("{user}:{realm}:{pass}"));
    let ha2 = md5_hex(&format!("GET:{uri}"));
    let nc = format!("{nc:08x}");
    let cnonce = "f00dfeed";
    let response = md5_hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"));
    format!(
        "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", algorithm=MD5, qop=auth, nc={nc}, cnonce=\"{cnonce}\", response=\"{response}\", opaque=\"{opaque}\""
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_auth_challenges_verifies_and_refuses_replays() -> TestResult {
    let up = echo("up").await;
    let dir = tempfile::tempdir()?;
    let realm = "testrealm@host.com";
    let htdigest = format!(
        "Mufasa:{realm}:{}\nscar:elsewhere:{}\n",
        md5_hex(&format!("Mufasa:{realm}:Circle Of Life")),
        md5_hex("scar:elsewhere:pride")
    );
    write(
        dir.path(),
        "digest.yaml",
        &docs(&[
            CLASS.to_owned(),
            ingress_with(
                "digest",
                &[
                    (&a("auth-type"), "digest"),
                    (&a("auth-secret"), "users"),
                    (&a("auth-realm"), realm),
                ],
                &[("digest.test", "/", "up")],
                &[],
            ),
            ingress_with(
                "norealm",
                &[(&a("auth-type"), "digest"), (&a("auth-secret"), "users")],
                &[("norealm.test", "/", "up")],
                &[],
            ),
            secret("users", &[("auth", &htdigest)]),
            service("up", &[up.addr]),
        ]),
    );
    let p = proxy(dir.path(), |_| {}).await;
    let addr = p.http_addr().expect("http");
    let uri = "/dir/index.html?x=1";
    let call = |auth: Option<String>| async move {
        let mut b = get("digest.test", uri);
        if let Some(v) = auth {
            b = b.header("authorization", v);
        }
        h1(addr, b.body(empty()).expect("request")).await
    };
    let r = call(None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let challenge = r.headers["www-authenticate"].to_str()?.to_owned();
    assert!(
        challenge.starts_with(&format!("Digest realm=\"{realm}\", qop=\"auth\", nonce=\"")),
        "{challenge}"
    );
    assert!(!challenge.contains("stale"), "{challenge}");
    let wrong = call(Some(digest_header(
        &challenge,
        "Mufasa",
        "circle of life",
        uri,
        1,
    )))
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let other_realm = call(Some(digest_header(&challenge, "scar", "pride", uri, 1))).await;
    assert_eq!(other_realm.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        up.hits.load(Ordering::SeqCst),
        0,
        "no upstream contact on denial"
    );
    let good = digest_header(&challenge, "Mufasa", "Circle Of Life", uri, 1);
    let r = call(Some(good.clone())).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = call(Some(digest_header(
        &challenge,
        "Mufasa",
        "Circle Of Life",
        uri,
        2,
    )))
    .await;
    assert_eq!(r.status, StatusCode::OK, "the next nc on the same nonce");
    let hits = up.hits.load(Ordering::SeqCst);
    let replay = call(Some(good)).await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED, "a replayed nc");
    assert!(
        replay.headers["www-authenticate"]
            .to_str()?
            .starts_with("Digest ")
    );
    let elsewhere = digest_header(&challenge, "Mufasa", "Circle Of Life", "/elsewhere", 3);
    assert_eq!(call(Some(elsewhere)).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(up.hits.load(Ordering::SeqCst), hits);
    // No user of the (empty) realm: the route fails closed.
    let r = h1(addr, get("norealm.test", "/").body(empty())?).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);

    // A real client: curl computes the digest itself.
    let curl = move |pass: &'static str| {
        let url = format!("http://{addr}{uri}");
        std::process::Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--digest",
                "-u",
            ])
            .arg(format!("Mufasa:{pass}"))
            .args(["-H", "Host: digest.test"])
            .arg(url)
            .output()
    };
    let out = tokio::task::spawn_blocking(move || (curl("Circle Of Life"), curl("nope"))).await?;
    let code = |o: std::io::Result<std::process::Output>| {
        let o = o.expect("curl runs (.ci/run installs it)");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert_eq!(code(out.0), "200");
    assert_eq!(code(out.1), "401");
    p.shutdown().await;
    Ok(())
}

/// An auth service: `x-token: good` is 200 (with `X-User`, `X-Ignored` and a
/// cookie), `forbid` 403, `boom` 502, anything else 401. It records every
/// request's method, URI and headers.
struct AuthService {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<(String, String, HeaderMap)>>>,
    /// The SNI names of TLS connections.
    sni: Arc<Mutex<Vec<String>>>,
}

async fn auth_service() -> AuthService {
    auth_service_on(None).await
}

/// [`auth_service`], over TLS with this certificate when given.
async fn auth_service_on(
    tls: Option<(CertificateDer<'static>, PrivateKeyDer<'static>)>,
) -> AuthService {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sni = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let names = sni.clone();
    let acceptor = tls.map(|(cert, key)| {
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("server cert");
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    });
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let log = log.clone();
            let names = names.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let log = log.clone();
                    async move {
                        log.lock().expect("lock").push((
                            req.method().to_string(),
                            req.uri().to_string(),
                            req.headers().clone(),
                        ));
                        let token = req
                            .headers()
                            .get("x-token")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("");
                        let mut resp = Response::new(Full::new(Bytes::from_static(b"auth")));
                        *resp.status_mut() = match token {
                            "good" => StatusCode::OK,
                            "forbid" => StatusCode::FORBIDDEN,
                            "boom" => StatusCode::BAD_GATEWAY,
                            _ => StatusCode::UNAUTHORIZED,
                        };
                        let h = resp.headers_mut();
                        if token == "good" {
                            h.insert("x-user", "alice".parse().expect("v"));
                            h.insert("x-ignored", "1".parse().expect("v"));
                            h.insert("set-cookie", "session=s1; Path=/".parse().expect("v"));
                        }
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
                let http = hyper::server::conn::http1::Builder::new();
                match acceptor {
                    None => {
                        let _ = http.serve_connection(TokioIo::new(tcp), svc).await;
                    }
                    Some(a) => {
                        let Ok(stream) = a.accept(tcp).await else {
                            return;
                        };
                        if let Some(n) = stream.get_ref().1.server_name() {
                            names.lock().expect("lock").push(n.to_owned());
                        }
                        let _ = http.serve_connection(TokioIo::new(stream), svc).await;
                    }
                }
            });
        }
    });
    AuthService { addr, seen, sni }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_auth_over_https_verifies_the_auth_service() -> TestResult {
    let up = echo("up").await;
    let (pki, rogue_ca) = (Pki::new("Auth CA"), Pki::new("Rogue CA"));
    let good = auth_service_on(Some(pki.server(&["localhost"]))).await;
    let rogue = auth_service_on(Some(rogue_ca.server(&["localhost"]))).await;
    let misnamed = auth_service_on(Some(pki.server(&["auth.elsewhere.test"]))).await;
    let dir = tempfile::tempdir()?;
    let url = |s: &AuthService| format!("https://localhost:{}/check", s.addr.port());
    let guarded = |name: &str, host: &'static str, url: String| {
        ingress_with(
            name,
            &[
                (&a("auth-url"), &url),
                (&a("auth-response-headers"), "X-User"),
            ],
            &[(host, "/", "up")],
            &[],
        )
    };
    write(
        dir.path(),
        "https-auth.yaml",
        &docs(&[
            CLASS.to_owned(),
            guarded("good", "good.test", url(&good)),
            guarded("rogue", "rogue.test", url(&rogue)),
            guarded("misnamed", "misnamed.test", url(&misnamed)),
            service("up", &[up.addr]),
        ]),
    );
    let ca = pki.ca.der().clone();
    let p = proxy(dir.path(), move |c| c.service.auth_roots = vec![ca]).await;
    let addr = p.http_addr().expect("http");
    let call = |host: &'static str, token: &'static str| async move {
        let req = get(host, "/")
            .header("x-token", token)
            .body(empty())
            .expect("request");
        h1(addr, req).await
    };
    let r = call("good.test", "good").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.seen("x-user").as_deref(), Some("alice"));
    assert_eq!(
        call("good.test", "nope").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        good.sni.lock().expect("lock").first().map(String::as_str),
        Some("localhost"),
        "SNI is the URL's host"
    );
    let hits = up.hits.load(Ordering::SeqCst);
    for host in ["rogue.test", "misnamed.test"] {
        let r = call(host, "good").await;
        assert_eq!(
            r.status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{host}: an unverified auth service denies"
        );
    }
    assert!(rogue.seen.lock().expect("lock").is_empty());
    assert!(misnamed.seen.lock().expect("lock").is_empty());
    assert_eq!(
        up.hits.load(Ordering::SeqCst),
        hits,
        "no upstream contact on denial"
    );
    p.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_auth_asks_the_auth_service_and_fails_closed() -> TestResult {
    let up = echo("up").await;
    let auth = auth_service().await;
    let down = closed_port().await;
    let dir = tempfile::tempdir()?;
    let url = format!("http://{}/check?host=$host", auth.addr);
    write(
        dir.path(),
        "ext.yaml",
        &docs(&[
            CLASS.to_owned(),
            ingress_with(
                "ext",
                &[
                    (&a("auth-url"), &url),
                    (&a("auth-method"), "POST"),
                    (&a("auth-response-headers"), "X-User, X-Email"),
                ],
                &[("ext.test", "/", "up")],
                &[],
            ),
            ingress_with(
                "signin",
                &[
                    (&a("auth-url"), &url),
                    (&a("auth-signin"), "https://login.test/start"),
                ],
                &[("signin.test", "/", "up")],
                &[],
            ),
            ingress_with(
                "cached",
                &[
                    (&a("auth-url"), &url),
                    (&a("auth-cache-key"), "$http_x_token"),
                    (&a("auth-cache-duration"), "200 1m"),
                ],
                &[("cached.test", "/", "up")],
                &[],
            ),
            ingress_with(
                "down",
                &[(&a("auth-url"), &format!("http://127.0.0.1:{down}/check"))],
                &[("down.test", "/", "up")],
                &[],
            ),
            service("up", &[up.addr]),
        ]),
    );
    let p = proxy(dir.path(), |_| {}).await;
    let addr = p.http_addr().expect("http");
    let call = |host: &'static str, token: &'static str| async move {
        let req = get(host, "/app/page?id=7")
            .header("x-token", token)
            .header("x-email", "forged@evil.test")
            .header("cookie", "sid=9")
            .body(empty())
            .expect("request");
        h1(addr, req).await
    };

    let r = call("ext.test", "good").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.seen("x-user").as_deref(), Some("alice"));
    assert_eq!(
        r.seen("x-email"),
        None,
        "a named header the auth answer lacks is removed"
    );
    assert_eq!(r.seen("x-ignored"), None);
    assert_eq!(r.headers["set-cookie"], "session=s1; Path=/");
    {
        let seen = auth.seen.lock().expect("lock");
        let (method, uri, h) = seen.last().expect("the auth service was asked");
        assert_eq!(method, "POST");
        assert_eq!(uri, "/check?host=ext.test");
        let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok());
        assert_eq!(get("x-original-url"), Some("http://ext.test/app/page?id=7"));
        assert_eq!(get("x-original-method"), Some("GET"));
        assert_eq!(get("x-sent-from"), Some("nginx-ingress-controller"));
        assert_eq!(get("x-auth-request-redirect"), Some("/app/page?id=7"));
        assert_eq!(get("x-forwarded-for"), Some("127.0.0.1"));
        assert_eq!(get("cookie"), Some("sid=9"));
        assert_eq!(get("x-token"), Some("good"));
        assert_eq!(get("host"), Some(auth.addr.to_string().as_str()));
        assert!(h.get("content-length").is_none());
    }
    let hits = up.hits.load(Ordering::SeqCst);
    assert_eq!(
        call("ext.test", "nope").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call("ext.test", "forbid").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call("ext.test", "boom").await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    let r = call("signin.test", "nope").await;
    assert_eq!(r.status, StatusCode::FOUND);
    assert_eq!(
        r.headers["location"],
        "https://login.test/start?rd=http://signin.test%2Fapp%2Fpage%3Fid%3D7"
    );
    assert_eq!(
        call("signin.test", "forbid").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        up.hits.load(Ordering::SeqCst),
        hits,
        "no upstream contact on denial"
    );
    // auth-cache-key: a 200 is asked once per key; a 403 is not cached.
    let asked = || auth.seen.lock().expect("lock").len();
    let before = asked();
    for _ in 0..3 {
        let r = call("cached.test", "good").await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.seen("x-user"), None, "no auth-response-headers here");
    }
    assert_eq!(asked(), before + 1, "cached under the key");
    for _ in 0..2 {
        assert_eq!(
            call("cached.test", "forbid").await.status,
            StatusCode::FORBIDDEN
        );
    }
    assert_eq!(asked(), before + 3, "403 is not cached");
    let hits = up.hits.load(Ordering::SeqCst);
    let r = call("down.test", "good").await;
    assert_eq!(
        r.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "auth service down: fail closed"
    );
    assert_eq!(
        up.hits.load(Ordering::SeqCst),
        hits,
        "no upstream contact on denial"
    );
    p.shutdown().await;
    Ok(())
}

/// A CA and certificates it signs, made with rcgen.
struct Pki {
    ca: rcgen::Certificate,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate().expect("key");
        let ca = params.self_signed(&key).expect("ca");
        Pki {
            ca,
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// An intermediate CA signed by this one.
    fn intermediate(&self, name: &str) -> Pki {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate().expect("key");
        let ca = params.signed_by(&key, &self.issuer).expect("intermediate");
        Pki {
            ca,
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A server certificate for `names`.
    fn server(&self, names: &[&str]) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("params");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("signed");
        let key = PrivateKeyDer::try_from(key.serialize_der()).expect("key der");
        (cert.der().clone(), key)
    }

    fn client(&self, cn: &str) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("signed");
        let key = PrivateKeyDer::try_from(key.serialize_der()).expect("key der");
        (cert.der().clone(), key)
    }
}

/// HTTP/1.1 over TLS with SNI `sni`, presenting `client` if given.
async fn mtls_get(
    addr: SocketAddr,
    sni: &str,
    host: &str,
    client: Option<(CertificateDer<'static>, PrivateKeyDer<'static>)>,
) -> Reply {
    mtls_chain_get(addr, sni, host, client.map(|(c, k)| (vec![c], k))).await
}

/// [`mtls_get`] with a chain (leaf first).
async fn mtls_chain_get(
    addr: SocketAddr,
    sni: &str,
    host: &str,
    client: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Reply {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)));
    let config = match client {
        Some((c, k)) => builder.with_client_auth_cert(c, k).expect("client cert"),
        None => builder.with_no_client_auth(),
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from(sni.to_owned()).expect("sni");
    let stream = connector.connect(name, tcp).await.expect("TLS handshake");
    h1_on(
        TokioIo::new(stream),
        get(host, "/").body(empty()).expect("request"),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_are_asked_for_verified_and_passed_upstream() -> TestResult {
    let up = echo("up").await;
    let (pki, other) = (Pki::new("Test CA"), Pki::new("Other CA"));
    let server = cert(&[
        "mtls.test",
        "opt.test",
        "page.test",
        "plain.test",
        "deep.test",
    ]);
    let dir = tempfile::tempdir()?;
    let ca_pem = pki.ca.pem();
    write(
        dir.path(),
        "mtls.yaml",
        &docs(&[
            CLASS.to_owned(),
            ingress_with(
                "strict",
                &[
                    (&a("auth-tls-secret"), "t/ca"),
                    (&a("auth-tls-pass-certificate-to-upstream"), "true"),
                ],
                &[("mtls.test", "/", "up")],
                &[("mtls.test", "server")],
            ),
            ingress_with(
                "optional",
                &[
                    (&a("auth-tls-secret"), "ca"),
                    (&a("auth-tls-verify-client"), "optional"),
                ],
                &[("opt.test", "/", "up")],
                &[("opt.test", "server")],
            ),
            ingress_with(
                "page",
                &[
                    (&a("auth-tls-secret"), "ca"),
                    (&a("auth-tls-error-page"), "https://errors.test/cert"),
                    (&a("auth-tls-match-cn"), "CN=^alice$"),
                ],
                &[("page.test", "/", "up")],
                &[("page.test", "server")],
            ),
            ingress(
                "plain",
                &[("plain.test", "/", "up")],
                &[("plain.test", "server")],
            ),
            ingress_with(
                "deep",
                &[
                    (&a("auth-tls-secret"), "ca"),
                    (&a("auth-tls-verify-depth"), "2"),
                ],
                &[("deep.test", "/", "up")],
                &[("deep.test", "server")],
            ),
            tls_secret("server", &server),
            secret("ca", &[("ca.crt", &ca_pem)]),
            service("up", &[up.addr]),
        ]),
    );
    if let Err(e) =
        ingress_proxy::source::load(dir.path(), &ingress_core::CompileOptions::default())
    {
        panic!(
            "manifests: {e}\n{}",
            std::fs::read_to_string(dir.path().join("mtls.yaml")).unwrap_or_default()
        );
    }
    let p = proxy(dir.path(), |_| {}).await;
    let addr = p.https_addr().expect("https");
    let routes = admin(&p, "/routes").await.json();
    assert_eq!(
        routes["diagnostics"].as_array().map(Vec::len),
        Some(1),
        "{routes}"
    );

    // on: a good certificate passes, with the nginx headers upstream.
    let r = mtls_get(addr, "mtls.test", "mtls.test", Some(pki.client("alice"))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.seen("ssl-client-verify").as_deref(), Some("SUCCESS"));
    assert_eq!(r.seen("ssl-client-subject-dn").as_deref(), Some("CN=alice"));
    assert_eq!(
        r.seen("ssl-client-issuer-dn").as_deref(),
        Some("CN=Test CA")
    );
    let pem = r
        .seen("ssl-client-cert")
        .expect("the certificate goes upstream");
    assert!(pem.starts_with("-----BEGIN%20CERTIFICATE-----%0A"), "{pem}");
    // on: no certificate, or one from another CA: 400, no upstream contact.
    let hits = up.hits.load(Ordering::SeqCst);
    let r = mtls_get(addr, "mtls.test", "mtls.test", None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.text().contains("No required SSL certificate was sent"),
        "{}",
        r.text()
    );
    let r = mtls_get(
        addr,
        "mtls.test",
        "mtls.test",
        Some(other.client("mallory")),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.text().contains("The SSL certificate error"),
        "{}",
        r.text()
    );
    // A connection set up for another host cannot borrow this one's check.
    let r = mtls_get(addr, "plain.test", "mtls.test", None).await;
    assert_eq!(r.status, StatusCode::MISDIRECTED_REQUEST);
    assert_eq!(
        up.hits.load(Ordering::SeqCst),
        hits,
        "no upstream contact on denial"
    );
    // A client cannot forge the headers.
    let req = get("mtls.test", "/")
        .header("ssl-client-verify", "SUCCESS")
        .body(empty())?;
    let r = h1(p.http_addr().expect("http"), req).await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "plain HTTP has no certificate"
    );

    // optional: without a certificate passes (NONE), with a bad one 400.
    let r = mtls_get(addr, "opt.test", "opt.test", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.seen("ssl-client-verify").as_deref(), Some("NONE"));
    let r = mtls_get(addr, "opt.test", "opt.test", Some(pki.client("bob"))).await;
    assert_eq!(r.seen("ssl-client-verify").as_deref(), Some("SUCCESS"));
    assert_eq!(r.seen("ssl-client-cert"), None, "not passed unless asked");
    let r = mtls_get(addr, "opt.test", "opt.test", Some(other.client("bob"))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // The error page and the CN rule.
    let r = mtls_get(addr, "page.test", "page.test", None).await;
    assert_eq!(r.status, StatusCode::FOUND);
    assert_eq!(r.headers["location"], "https://errors.test/cert");
    let r = mtls_get(addr, "page.test", "page.test", Some(pki.client("bob"))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = mtls_get(addr, "page.test", "page.test", Some(pki.client("alice"))).await;
    assert_eq!(r.status, StatusCode::OK);

    // auth-tls-verify-depth: one intermediate needs depth 2.
    let mid = pki.intermediate("Test Intermediate");
    let chained = || {
        let (leaf, key) = mid.client("carol");
        (vec![leaf, mid.ca.der().clone()], key)
    };
    let r = mtls_chain_get(addr, "deep.test", "deep.test", Some(chained())).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        r.seen("ssl-client-issuer-dn").as_deref(),
        Some("CN=Test Intermediate")
    );
    let r = mtls_chain_get(addr, "mtls.test", "mtls.test", Some(chained())).await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "depth 1 allows no intermediate"
    );

    // Hosts without client certificates are not asked and see no such header.
    let r = mtls_get(addr, "plain.test", "plain.test", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.seen("ssl-client-verify"), None);
    p.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn satisfy_any_lets_an_allowed_address_or_a_login_through() -> TestResult {
    let up = echo("up").await;
    let dir = tempfile::tempdir()?;
    let guarded = |name: &str, host: &'static str, cidr: &'static str, satisfy: &'static str| {
        ingress_with(
            name,
            &[
                (&a("auth-type"), "basic"),
                (&a("auth-secret"), "users"),
                (&a("whitelist-source-range"), cidr),
                (&a("satisfy"), satisfy),
            ],
            &[(host, "/", "up")],
            &[],
        )
    };
    write(
        dir.path(),
        "satisfy.yaml",
        &docs(&[
            CLASS.to_owned(),
            guarded("local", "local.test", "127.0.0.1/32", "any"),
            guarded("remote", "remote.test", "10.0.0.0/8", "any"),
            guarded("all", "all.test", "127.0.0.1/32", "all"),
            guarded("closed", "closed.test", "10.0.0.0/8", "all"),
            secret("users", &[("auth", &format!("alice:{ALICE}\n"))]),
            service("up", &[up.addr]),
        ]),
    );
    let p = proxy(dir.path(), |_| {}).await;
    let addr = p.http_addr().expect("http");
    let call = |host: &'static str, login: bool| async move {
        let mut b = get(host, "/");
        if login {
            b = b.header("authorization", basic_header("alice", "secret"));
        }
        h1(addr, b.body(empty()).expect("request")).await.status
    };
    // any: the allowed address needs no login; another address needs one.
    assert_eq!(call("local.test", false).await, StatusCode::OK);
    assert_eq!(call("remote.test", false).await, StatusCode::UNAUTHORIZED);
    assert_eq!(call("remote.test", true).await, StatusCode::OK);
    // all: both.
    assert_eq!(call("all.test", false).await, StatusCode::UNAUTHORIZED);
    assert_eq!(call("all.test", true).await, StatusCode::OK);
    assert_eq!(call("closed.test", true).await, StatusCode::FORBIDDEN);
    p.shutdown().await;
    Ok(())
}
