use super::*;
use crate::annotations::auth::parse_htdigest;
use crate::annotations::values::ObjectName;
use http::HeaderValue;

const REALM: &str = "testrealm@host.com";
const URI: &str = "/dir/index.html";

fn auth() -> DigestAuth {
    let users = parse_htdigest(&format!(
        "Mufasa:{REALM}:{}\nother:elsewhere:{}\n",
        hex(&ha1("Mufasa", REALM, "Circle Of Life")),
        hex(&ha1("other", "elsewhere", "x")),
    ))
    .expect("users");
    let secret = ObjectName {
        namespace: None,
        name: "users".into(),
    };
    DigestAuth::new(secret, Some(REALM.into()), users)
}

fn header(fields: &[(&str, &str)]) -> HeaderMap {
    let v: Vec<String> = fields
        .iter()
        .map(|(k, v)| {
            if matches!(*k, "qop" | "nc" | "algorithm") {
                format!("{k}={v}")
            } else {
                format!("{k}=\"{v}\"")
            }
        })
        .collect();
    let mut h = HeaderMap::new();
    h.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Digest {}", v.join(", "))).expect("value"),
    );
    h
}

/// What a client sends for `nonce`/`opaque` with `password` and `nc`.
fn answer(nonce: &str, opaque: &str, password: &str, nc: &str) -> HeaderMap {
    let r = response(
        &ha1("Mufasa", REALM, password),
        nonce,
        nc,
        "0a4f113b",
        "GET",
        URI,
    );
    header(&[
        ("username", "Mufasa"),
        ("realm", REALM),
        ("nonce", nonce),
        ("uri", URI),
        ("qop", "auth"),
        ("nc", nc),
        ("cnonce", "0a4f113b"),
        ("response", &r),
        ("opaque", opaque),
    ])
}

#[test]
fn rfc_2617_worked_example() {
    // RFC 2617 section 3.5.
    let nonce = "dcd98b7102dd2f0e8b11d0f600bfb0c093";
    assert_eq!(
        hex(&ha1("Mufasa", REALM, "Circle Of Life")),
        "939e7578ed9e3c518a452acee763bce9"
    );
    assert_eq!(
        response(
            &ha1("Mufasa", REALM, "Circle Of Life"),
            nonce,
            "00000001",
            "0a4f113b",
            "GET",
            URI
        ),
        "6629fae49393a05397450978507c4ef1"
    );
    let h: HeaderMap = [(
        AUTHORIZATION,
        HeaderValue::from_static(
            "Digest username=\"Mufasa\", realm=\"testrealm@host.com\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"/dir/index.html\", qop=auth, nc=00000001, cnonce=\"0a4f113b\", response=\"6629fae49393a05397450978507c4ef1\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        ),
    )]
    .into_iter()
    .collect();
    let c = credentials(&h);
    let c = c.expect("parsed");
    assert_eq!(
        (c.username.as_str(), c.realm.as_str(), c.nonce.as_str()),
        ("Mufasa", REALM, nonce)
    );
    assert_eq!((c.qop.as_str(), c.nc.as_str()), ("auth", "00000001"));
    assert_eq!(c.response, "6629fae49393a05397450978507c4ef1");
    assert!(!format!("{c:?}").contains("6629"));
    // The RFC's nonce is not one of ours, but the answer is right: stale, so
    // the client retries with our nonce without asking its user.
    let key = NonceKey::new([9; 32]);
    let mut store = NonceStore::new(NonceConfig::default());
    let a = auth();
    let out = a.verify(&key, &mut store, "GET", URI, &h, Duration::from_secs(1));
    assert_eq!(out, Outcome::Challenge { stale: true });
    assert!(store.is_empty());
}

#[test]
fn challenge_then_allow_then_replay_and_stale() {
    let a = auth();
    let key = NonceKey::new([3; 32]);
    let mut store = NonceStore::new(NonceConfig::default());
    let t0 = Duration::from_secs(1000);
    let (nonce, opaque) = issue(&key, t0, [5; 8]);
    assert_eq!(
        a.challenge(&nonce, &opaque, false),
        format!("Digest realm=\"{REALM}\", qop=\"auth\", nonce=\"{nonce}\", opaque=\"{opaque}\"")
    );
    assert!(a.challenge(&nonce, &opaque, true).ends_with(", stale=true"));
    let v = |store: &mut NonceStore, h: &HeaderMap, now: Duration| {
        a.verify(&key, store, "GET", URI, h, now)
    };
    let deny = Outcome::Challenge { stale: false };
    let stale = Outcome::Challenge { stale: true };
    // Nothing, a wrong password, another method or URI: challenged.
    assert_eq!(v(&mut store, &HeaderMap::new(), t0), deny);
    let wrong = answer(&nonce, &opaque, "Circle of Life", "00000001");
    assert_eq!(v(&mut store, &wrong, t0), deny);
    let good = answer(&nonce, &opaque, "Circle Of Life", "00000001");
    assert_eq!(a.verify(&key, &mut store, "POST", URI, &good, t0), deny);
    assert_eq!(a.verify(&key, &mut store, "GET", "/other", &good, t0), deny);
    assert!(store.is_empty(), "failures are not remembered");
    // Good; then the same nc is a replay; the next nc is good.
    assert_eq!(v(&mut store, &good, t0), Outcome::Allow);
    assert_eq!(v(&mut store, &good, t0), deny);
    let second = answer(&nonce, &opaque, "Circle Of Life", "00000002");
    assert_eq!(
        v(&mut store, &second, t0 + Duration::from_secs(5)),
        Outcome::Allow
    );
    // After `expires` from its first use the nonce is stale, also for a new nc.
    let third = answer(&nonce, &opaque, "Circle Of Life", "00000003");
    assert_eq!(v(&mut store, &third, t0 + Duration::from_secs(11)), stale);
    // ... and stays so after the store forgets it (no replay window).
    let later = t0 + Duration::from_secs(70);
    store.make_room(millis(later));
    assert_eq!(v(&mut store, &third, later), stale);
    // nc past `replays` is stale; a forged opaque or nonce is not ours.
    let (n2, o2) = issue(&key, t0, [6; 8]);
    let far = answer(&n2, &o2, "Circle Of Life", "00000015");
    assert_eq!(v(&mut store, &far, t0), stale);
    // (right answers on them are stale, wrong ones denied).
    let forged = answer(&n2, &opaque, "Circle Of Life", "00000001");
    assert_eq!(v(&mut store, &forged, t0), stale);
    let other_key = NonceKey::new([4; 32]);
    let (n3, o3) = issue(&other_key, t0, [6; 8]);
    let foreign = answer(&n3, &o3, "Circle Of Life", "00000001");
    assert_eq!(v(&mut store, &foreign, t0), stale);
    let foreign_wrong = answer(&n3, &o3, "Circle of Life", "00000001");
    assert_eq!(v(&mut store, &foreign_wrong, t0), deny);
    // A nonce not used within `timeout` of its issue is stale.
    let (n4, o4) = issue(&key, t0, [7; 8]);
    let late = answer(&n4, &o4, "Circle Of Life", "00000001");
    assert_eq!(v(&mut store, &late, t0 + Duration::from_secs(61)), stale);
    assert_eq!(
        v(&mut store, &late, t0 + Duration::from_secs(60)),
        Outcome::Allow
    );
}

#[test]
fn users_of_other_realms_and_bad_fields_are_refused() {
    let a = auth();
    assert!(a.user("Mufasa").is_some() && a.user("other").is_none());
    let key = NonceKey::new([1; 32]);
    let mut store = NonceStore::new(NonceConfig::default());
    let now = Duration::from_secs(10);
    let (nonce, opaque) = issue(&key, now, [0; 8]);
    let r = response(
        &ha1("Mufasa", REALM, "Circle Of Life"),
        &nonce,
        "00000001",
        "c",
        "GET",
        URI,
    );
    let base = [
        ("username", "Mufasa"),
        ("realm", REALM),
        ("nonce", nonce.as_str()),
        ("uri", URI),
        ("qop", "auth"),
        ("nc", "00000001"),
        ("cnonce", "c"),
        ("response", r.as_str()),
        ("opaque", opaque.as_str()),
    ];
    let with = |k: &str, v: &'static str| {
        let f: Vec<(&str, &str)> = base
            .iter()
            .map(|(bk, bv)| if *bk == k { (*bk, v) } else { (*bk, *bv) })
            .collect();
        header(&f)
    };
    let deny = Outcome::Challenge { stale: false };
    for (k, v) in [
        ("realm", "elsewhere"),
        ("qop", "auth-int"),
        ("nc", "1"),
        ("response", "zz"),
        ("username", "nobody"),
    ] {
        assert_eq!(
            a.verify(&key, &mut store, "GET", URI, &with(k, v), now),
            deny,
            "{k}={v}"
        );
    }
    let mut f = base.to_vec();
    f.push(("algorithm", "SHA-256"));
    assert_eq!(
        a.verify(&key, &mut store, "GET", URI, &header(&f), now),
        deny
    );
    let mut f = base.to_vec();
    f.push(("algorithm", "MD5"));
    assert_eq!(
        a.verify(&key, &mut store, "GET", URI, &header(&f), now),
        Outcome::Allow
    );
    // Missing fields, duplicates, other schemes, junk: no credentials.
    for bad in [
        "Digest username=\"Mufasa\"",
        "Basic YTpi",
        "Digest username=\"a\", username=\"b\"",
        "Digest username=\"unterminated",
        "Digest =x",
        "Digest",
    ] {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_static(bad));
        assert!(credentials(&h).is_none(), "{bad}");
    }
}

#[test]
fn the_store_stays_bounded_without_reopening_replays() {
    let a = auth();
    let key = NonceKey::new([2; 32]);
    let config = NonceConfig {
        capacity: 8,
        ..NonceConfig::default()
    };
    let mut store = NonceStore::new(config);
    let mut used = Vec::new();
    for i in 0..20u8 {
        let at = Duration::from_millis(1000 + u64::from(i));
        let (n, o) = issue(&key, at, [i; 8]);
        let h = answer(&n, &o, "Circle Of Life", "00000001");
        assert_eq!(
            a.verify(&key, &mut store, "GET", URI, &h, at),
            Outcome::Allow,
            "{i}"
        );
        assert!(store.len() <= 8);
        used.push((h, at));
    }
    // Every nonce used before, remembered or forgotten, refuses its nc again.
    for (h, at) in &used {
        let out = a.verify(&key, &mut store, "GET", URI, h, *at);
        assert_ne!(out, Outcome::Allow);
    }
}

#[test]
fn parameters_with_quotes_and_escapes() {
    let p = params("a=\"x, \\\"y\\\"\", b=tok , c=\"\"").expect("parsed");
    assert_eq!(
        p,
        vec![
            ("a".into(), "x, \"y\"".into()),
            ("b".into(), "tok".into()),
            ("c".into(), String::new()),
        ]
    );
    for bad in ["a", "a=", "a=\"x\" b=1", "a=1,,", "é=1"] {
        assert!(params(bad).is_none(), "{bad}");
    }
}

proptest::proptest! {
    #[test]
    fn any_header_is_parsed_or_refused_without_panic(v in "[ -~]{0,200}") {
        let a = auth();
        let key = NonceKey::new([8; 32]);
        let mut store = NonceStore::new(NonceConfig::default());
        for value in [v.clone(), format!("Digest {v}")] {
            if let Ok(hv) = HeaderValue::from_str(&value) {
                let mut h = HeaderMap::new();
                h.insert(AUTHORIZATION, hv);
                let _ = credentials(&h);
                let out = a.verify(&key, &mut store, "GET", URI, &h, Duration::from_secs(5));
                proptest::prop_assert_ne!(out, Outcome::Allow);
            }
        }
    }
}
