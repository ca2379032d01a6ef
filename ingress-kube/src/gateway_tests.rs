use super::*;

fn spec(v: serde_json::Value) -> IngressGatewayConfigSpec {
    serde_json::from_value(v).expect("spec")
}

#[test]
fn an_empty_spec_is_the_defaults() {
    assert_eq!(
        validate(&IngressGatewayConfigSpec::default()),
        Ok(GatewayConfig::default())
    );
}

#[test]
fn a_full_spec_is_typed() {
    let cfg = validate(&spec(serde_json::json!({
        "profile": "ingress-nginx",
        "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}, {"name": "https", "port": 443, "protocol": "HTTPS"}],
        "trustedProxies": ["10.0.0.0/8", "192.0.2.1"],
        "defaultTlsCertificate": {"namespace": "ingress", "name": "default-cert"},
        "ipAccess": {"allow": ["0.0.0.0/0"], "deny": ["203.0.113.0/24"]},
        "globalRateLimit": {"redisAddress": "redis.ingress:6379", "failureMode": "Closed", "timeout": "20ms"},
        "circuitBreaker": {"consecutiveErrors": 3, "baseEjectionTime": "10s", "maxEjectionPercent": 20},
        "timeouts": {"connect": "2s", "read": "1m"},
        "accessLog": {"enabled": false, "format": "json"},
        "annotationPrefix": "example.com",
        "annotationsRiskLevel": "Medium"
    })))
    .expect("valid");
    assert_eq!(cfg.profile, Profile::IngressNginx);
    assert_eq!(
        cfg.listeners[1],
        Listener {
            name: "https".into(),
            port: 443,
            protocol: ListenerProtocol::Https
        }
    );
    assert_eq!(cfg.trusted_proxies.len(), 2);
    assert_eq!(
        cfg.default_tls_certificate.map(|r| r.to_string()),
        Some(ObjectRef::namespaced(ObjectKind::Secret, "ingress", "default-cert").to_string())
    );
    assert_eq!(cfg.deny.len(), 1);
    let redis = cfg.global_rate_limit.expect("redis");
    assert_eq!(
        (redis.failure_mode, redis.timeout),
        (FailureMode::Closed, Duration::from_millis(20))
    );
    assert_eq!(
        cfg.circuit_breaker.map(|b| b.max_ejection_percent),
        Some(20)
    );
    assert_eq!(cfg.timeouts.read, Some(Duration::from_secs(60)));
    assert_eq!(cfg.timeouts.send, None);
    assert_eq!(
        cfg.access_log,
        AccessLog {
            enabled: false,
            format: AccessLogFormat::Json
        }
    );
    assert_eq!(cfg.annotation_prefix.as_deref(), Some("example.com/"));
    assert_eq!(
        cfg.annotations_risk_level,
        Some(ingress_core::annotations::Risk::Medium)
    );
}

#[test]
fn every_problem_is_reported_with_its_field() {
    let errs = validate(&spec(serde_json::json!({
        "profile": "haproxy",
        "listeners": [{"name": "a", "port": 0, "protocol": "TCP"}, {"name": "a", "port": 80, "protocol": "HTTP"}],
        "trustedProxies": ["10.0.0.0/33"],
        "globalRateLimit": {"redisAddress": "redis", "failureMode": "maybe"},
        "circuitBreaker": {"maxEjectionPercent": 101},
        "timeouts": {"connect": "soon"},
        "accessLog": {"format": "xml"},
        "annotationPrefix": "Not_A/Prefix/",
        "annotationsRiskLevel": "severe"
    })))
    .expect_err("invalid");
    let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.profile",
            "spec.listeners[0].port",
            "spec.listeners[0].protocol",
            "spec.listeners[1].name",
            "spec.trustedProxies[0]",
            "spec.globalRateLimit.redisAddress",
            "spec.globalRateLimit.failureMode",
            "spec.circuitBreaker.maxEjectionPercent",
            "spec.timeouts.connect",
            "spec.accessLog.format",
            "spec.annotationsRiskLevel",
            "spec.annotationPrefix",
        ]
    );
    let status = IngressGatewayConfigStatus::of(&Err(errs), Some(3));
    assert!(!status.accepted);
    assert_eq!(status.reason, "Invalid");
    assert!(
        status.message.starts_with("spec.profile: unknown profile"),
        "{}",
        status.message
    );
    assert_eq!(status.observed_generation, Some(3));
}

#[test]
fn durations_parse() {
    assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
    assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
    for bad in ["", "5", "ms", "1.5s", "-1s", "99999999999999999999h"] {
        assert_eq!(parse_duration(bad), None, "{bad}");
    }
}
