use super::*;
use http::HeaderName;
use proptest::prelude::*;

fn head(lines: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in lines {
        h.append(
            HeaderName::from_bytes(n.as_bytes()).expect("name"),
            HeaderValue::from_str(v).expect("value"),
        );
    }
    h
}

fn check(version: Version, lines: &[(&str, &str)]) -> Result<HeaderMap, Refusal> {
    let mut h = head(lines);
    let uri: Uri = "/".parse().expect("uri");
    check_request(version, &Method::POST, &uri, &mut h, HeadLimits::DEFAULT).map(|()| h)
}

fn status(r: Result<HeaderMap, Refusal>) -> u16 {
    r.map_or_else(|e| e.status.as_u16(), |_| 200)
}

#[test]
fn transfer_encoding_must_be_chunked_alone() {
    let te = |v: &str| status(check(Version::HTTP_11, &[("transfer-encoding", v)]));
    assert_eq!(te("chunked"), 200);
    assert_eq!(te("CHUNKED"), 200);
    assert_eq!(te(" \tchunked\t "), 200);
    assert_eq!(te("gzip, chunked"), 501);
    assert_eq!(te("gzip"), 400);
    assert_eq!(te("identity"), 400);
    assert_eq!(te("chunked, identity"), 400);
    assert_eq!(te("chunked, gzip"), 400);
    assert_eq!(te(",chunked"), 400);
    assert_eq!(te("chunked,"), 400);
    assert_eq!(te("chunked, chunked"), 400);
    assert_eq!(te("chunked;x=1"), 400);
    assert_eq!(te("xchunked"), 400);
    assert_eq!(te("chunked x"), 400);
    assert_eq!(te("\"chunked\""), 400);
    assert_eq!(te(""), 400);
    let two = [
        ("transfer-encoding", "gzip"),
        ("transfer-encoding", "chunked"),
    ];
    assert_eq!(status(check(Version::HTTP_11, &two)), 501);
    let twice = [
        ("transfer-encoding", "chunked"),
        ("transfer-encoding", "chunked"),
    ];
    assert_eq!(status(check(Version::HTTP_11, &twice)), 400);
    let old = [("transfer-encoding", "chunked")];
    assert_eq!(status(check(Version::HTTP_10, &old)), 400);
    assert_eq!(status(check(Version::HTTP_09, &old)), 400);
    let both = [("content-length", "5"), ("transfer-encoding", "chunked")];
    assert_eq!(
        check(Version::HTTP_11, &both).map(|_| ()),
        Err(refuse(
            StatusCode::BAD_REQUEST,
            "content-length-with-transfer-encoding"
        ))
    );
    let te_first = [("transfer-encoding", "chunked"), ("content-length", "5")];
    assert_eq!(status(check(Version::HTTP_11, &te_first)), 400);
    // HTTP/2 framing is the h2 layer's (connection headers are malformed there).
    assert_eq!(status(check(Version::HTTP_2, &both)), 200);
}

#[test]
fn obs_text_in_transfer_encoding_is_not_trimmed() {
    // `\xa0chunked` (HTTP Garden: trimmed by some parsers) is never chunked.
    let mut h = HeaderMap::new();
    h.append(
        header::TRANSFER_ENCODING,
        HeaderValue::from_bytes(b"\xa0chunked").expect("obs-text is a valid value"),
    );
    assert_eq!(
        request_framing(Version::HTTP_11, &h),
        Err("bad-transfer-encoding")
    );
    let uri: Uri = "/".parse().expect("uri");
    let r = check_request(
        Version::HTTP_11,
        &Method::POST,
        &uri,
        &mut h,
        HeadLimits::DEFAULT,
    );
    assert_eq!(r.map_err(|e| e.status.as_u16()), Err(400));
}

#[test]
fn content_length_is_digits_and_one_value() {
    let cl = |v: &[&str]| {
        let lines: Vec<_> = v.iter().map(|v| ("content-length", *v)).collect();
        check(Version::HTTP_11, &lines)
    };
    for bad in [
        "+1",
        "-1",
        "0x1",
        "1_0",
        "1 0",
        "10, 10",
        "",
        "99999999999999999999",
        "1.0",
        "١",
    ] {
        assert_eq!(status(cl(&[bad])), 400, "{bad:?}");
    }
    assert_eq!(status(cl(&["10", "11"])), 400);
    assert_eq!(status(cl(&["10", "010"])), 200, "same value, leading zero");
    let h = cl(&["10", "10"]).expect("identical lines");
    assert_eq!(h.get_all(header::CONTENT_LENGTH).iter().count(), 1);
    assert_eq!(status(cl(&["18446744073709551615"])), 200);
    assert_eq!(
        request_framing(Version::HTTP_11, &head(&[("content-length", "7")])),
        Ok(BodyFraming::Length(7))
    );
    assert_eq!(
        request_framing(Version::HTTP_11, &head(&[("transfer-encoding", "Chunked")])),
        Ok(BodyFraming::Chunked)
    );
    assert_eq!(
        request_framing(Version::HTTP_11, &HeaderMap::new()),
        Ok(BodyFraming::None)
    );
}

#[test]
fn size_limits() {
    let uri: Uri = format!("/{}", "a".repeat(MAX_REQUEST_TARGET))
        .parse()
        .expect("uri");
    let mut h = HeaderMap::new();
    let r = check_request(
        Version::HTTP_11,
        &Method::GET,
        &uri,
        &mut h,
        HeadLimits::DEFAULT,
    );
    assert_eq!(r.map_err(|e| e.status.as_u16()), Err(414));
    let uri: Uri = format!("/{}", "a".repeat(MAX_REQUEST_TARGET - 1))
        .parse()
        .expect("uri");
    let r = check_request(
        Version::HTTP_11,
        &Method::GET,
        &uri,
        &mut h,
        HeadLimits::DEFAULT,
    );
    assert_eq!(r, Ok(()), "exactly the limit");
    let big = "v".repeat(MAX_FIELD);
    assert_eq!(status(check(Version::HTTP_11, &[("x", &big)])), 431);
    let fits = "v".repeat(MAX_FIELD - 3);
    assert_eq!(status(check(Version::HTTP_11, &[("x", &fits)])), 200);
    // 61 fields of 1 KiB (name, ": ", value) and their line ends.
    let kib = "v".repeat(1024 - 3);
    let many: Vec<_> = (0..61).map(|_| ("x", kib.as_str())).collect();
    assert_eq!(status(check(Version::HTTP_11, &many)), 431);
    assert_eq!(status(check(Version::HTTP_11, &many[..50])), 200);
    // HTTP/2 heads are bounded by SETTINGS_MAX_HEADER_LIST_SIZE instead.
    assert_eq!(status(check(Version::HTTP_2, &many)), 200);
}

#[test]
fn head_limits_follow_max_request_head() {
    let k = 1024;
    let l = |max| {
        let h = HeadLimits::for_max_request_head(max);
        (h.target, h.field, h.head)
    };
    assert_eq!(l(64 * k), (8 * k, 8 * k, 60 * k));
    assert_eq!(l(8 * k), (7680, 7680, 7680));
    assert_eq!(l(16 * k), (8 * k, 8 * k, 15 * k));
    assert_eq!(l(256 * k), (32 * k, 32 * k, 240 * k));
    assert_eq!(l(1024 * k), (128 * k, 128 * k, 960 * k));
    assert_eq!(HeadLimits::default(), HeadLimits::DEFAULT);
    assert_eq!(
        (MAX_REQUEST_TARGET, MAX_FIELD, MAX_HEAD),
        (8 * k, 8 * k, 60 * k)
    );
    // A larger head buffer admits what the default refuses.
    let uri: Uri = format!("/{}", "a".repeat(20 * k)).parse().expect("uri");
    let check = |limits| {
        check_request(
            Version::HTTP_11,
            &Method::GET,
            &uri,
            &mut HeaderMap::new(),
            limits,
        )
        .map_err(|e| e.status.as_u16())
    };
    assert_eq!(check(HeadLimits::DEFAULT), Err(414));
    assert_eq!(check(HeadLimits::for_max_request_head(256 * k)), Ok(()));
}

#[test]
fn paths() {
    for ok in [
        "/",
        "/a%2Fb",
        "/repo%2Fname/tags",
        "/a%2e%2e",
        "/%20",
        "/a/../b",
        "/a%3F%23",
    ] {
        assert_eq!(check_path(ok), Ok(()), "{ok}");
    }
    for bad in [
        "/%00",
        "/a%0a",
        "/a%0D",
        "/a%7f",
        "/public%2F..%2Fadmin",
        "/public%2f%2e%2e%2fadmin",
        "/public%5C..%5Cadmin",
        "/public\\..\\admin",
        "/a%2F.",
        "/%zz",
        "/a%",
        "/a%4",
        "/%%341",
        "/%+1",
    ] {
        assert_eq!(
            check_path(bad).map_err(|r| r.status),
            Err(StatusCode::BAD_REQUEST),
            "{bad}"
        );
    }
}

#[test]
fn responses() {
    let mut h = head(&[("content-length", "3"), ("transfer-encoding", "chunked")]);
    assert!(check_response(Version::HTTP_11, &mut h).is_err());
    let mut h = head(&[("transfer-encoding", "gzip")]);
    assert!(check_response(Version::HTTP_11, &mut h).is_err());
    let mut h = head(&[("content-length", "3"), ("content-length", "4")]);
    assert_eq!(
        check_response(Version::HTTP_11, &mut h),
        Err("upstream-bad-content-length")
    );
    let mut h = head(&[("content-length", "3"), ("content-length", "3")]);
    assert_eq!(check_response(Version::HTTP_11, &mut h), Ok(()));
    assert_eq!(h.get_all(header::CONTENT_LENGTH).iter().count(), 1);
    let mut h = head(&[("transfer-encoding", "chunked")]);
    assert_eq!(check_response(Version::HTTP_11, &mut h), Ok(()));
    let mut h = head(&[("transfer-encoding", "chunked"), ("content-length", "x")]);
    assert_eq!(check_response(Version::HTTP_2, &mut h), Ok(()));
}

/// Values a fuzzer or an attacker would try for the two framing headers.
fn framing_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("chunked".to_owned()),
        Just("CHUNKED".to_owned()),
        Just("gzip".to_owned()),
        Just("identity".to_owned()),
        Just(" chunked ".to_owned()),
        Just("0".to_owned()),
        Just("10".to_owned()),
        Just("010".to_owned()),
        "[0-9]{0,21}",
        "[ -~]{0,12}",
    ]
}

proptest! {
    /// Whatever the framing headers, an accepted head has one unambiguous framing:
    /// never both headers, at most one `Content-Length` line, and checking again
    /// gives the same answer and changes nothing.
    #[test]
    fn accepted_heads_have_one_framing(
        lines in proptest::collection::vec((any::<bool>(), framing_value()), 0..5),
        http10 in any::<bool>(),
    ) {
        let version = if http10 { Version::HTTP_10 } else { Version::HTTP_11 };
        let mut h = HeaderMap::new();
        for (te, v) in &lines {
            let name = if *te { header::TRANSFER_ENCODING } else { header::CONTENT_LENGTH };
            if let Ok(v) = HeaderValue::from_str(v) {
                h.append(name, v);
            }
        }
        let uri: Uri = "/".parse().expect("uri");
        let before = request_framing(version, &h);
        let r = check_request(version, &Method::POST, &uri, &mut h, HeadLimits::DEFAULT);
        match r {
            Ok(()) => {
                let framing = request_framing(version, &h);
                prop_assert_eq!(framing, before);
                prop_assert!(h.get_all(header::CONTENT_LENGTH).iter().count() <= 1);
                prop_assert!(!(h.contains_key(header::CONTENT_LENGTH)
                    && h.contains_key(header::TRANSFER_ENCODING)));
                let again = h.clone();
                prop_assert_eq!(
                    check_request(version, &Method::POST, &uri, &mut h, HeadLimits::DEFAULT),
                    Ok(())
                );
                prop_assert_eq!(h, again);
            }
            Err(refusal) => {
                prop_assert_eq!(before.err(), Some(refusal.why));
            }
        }
    }
}
