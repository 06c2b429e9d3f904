//! Fuzzes the gateway's TOML config file (`hts_gateway::config::layers`),
//! read at start and again on every SIGHUP, and what the gateway builds
//! from it.
//!
//! Input: the file's text (invalid UTF-8 is refused by `load` before
//! parsing, so such inputs are skipped). A file that parses is merged over
//! the defaults the way `hts gateway --config` does ([`file_layer`],
//! [`resolve`]); a configuration that passes [`GatewayConfig::validate`]
//! must then build without panicking: the policies (the router's admission,
//! budget and hedging, and `Router::reconfigure` as a SIGHUP reload does),
//! the failed-login limit (`LoginThrottle`), the connection limit, a
//! connection's in-flight permits and writer channel, the correlation
//! table, and a request deadline.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;

use hts_gateway::config::layers::{file_layer, resolve};
use hts_gateway::correlation::CorrelationTable;
use hts_gateway::login_throttle::LoginThrottle;
use hts_gateway::resilience::admission::Admission;
use hts_gateway::resilience::breaker::{BreakerOutcome, CircuitBreaker};
use hts_gateway::resilience::budget::RetryBudget;
use hts_gateway::resilience::hedge::Hedging;
use hts_gateway::resilience::ResilienceConfig;
use hts_gateway::upstream::Class;
use hts_gateway::GatewayConfig;
use tokio::sync::{mpsc, Semaphore};

/// Runs one fuzz input; panics when a property does not hold.
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let layer = match file_layer(text, "fuzz.toml") {
        Ok(layer) => layer,
        Err(e) => {
            assert!(e.to_string().contains("fuzz.toml"));
            return;
        }
    };
    let mut config = resolve(&[layer]).expect("a file that parses resolves");
    config.jwt_secret = b"secret".to_vec();
    if config.validate().is_err() {
        return;
    }
    build(&config);
}

/// Everything the gateway derives from a valid configuration.
fn build(config: &GatewayConfig) {
    let r = &config.resilience;
    let defaults = ResilienceConfig::default();
    // The policies built from the file, and reconfigured as a SIGHUP
    // reload from the defaults to this file and back does.
    let admission = Admission::new(r.admission());
    let budget = RetryBudget::new(r.budget());
    let hedging = Hedging::new(r.hedge());
    for step in [&defaults, r] {
        admission.reconfigure(step.admission());
        budget.reconfigure(step.budget());
        hedging.reconfigure(step.hedge());
    }
    budget.deposit();
    let _ = budget.withdraw();
    let account: Arc<str> = Arc::from("ACC-0001");
    let _ = admission.admit(&account, Class::Normal);
    let _ = admission.admit(&account, Class::Priority);
    let _ = hedging.delay(true, Instant::now());
    // A breaker tripped and probed with the configured delays.
    let cfg = r.breaker();
    let breaker = CircuitBreaker::new();
    let now = Instant::now();
    for _ in 0..cfg.window.min(1_000) {
        if let Some(admission) = breaker.try_admit(&cfg, now) {
            breaker.record(&cfg, admission, BreakerOutcome::Failure, now);
        }
    }
    // Probes after the open period fail: the delay doubles, capped.
    let mut at = now;
    for _ in 0..4 {
        at += cfg.max_delay.max(cfg.delay);
        let _ = breaker.state(at);
        if let Some(probe) = breaker.try_admit(&cfg, at) {
            breaker.record(&cfg, probe, BreakerOutcome::Failure, at);
        }
    }
    // The failed-login limit, struck and checked at the window's edges.
    if let Some(throttle) = LoginThrottle::new(
        config.login_failures_per_source,
        *config.login_failure_window_secs,
        config.max_login_sources,
    ) {
        let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        for _ in 0..config.login_failures_per_source.min(100) + 1 {
            throttle.record_failure(ip, now);
        }
        let _ = throttle.check(ip, now);
        if let Some(later) = now.checked_add(*config.login_failure_window_secs) {
            let _ = throttle.check(ip, later);
            throttle.record_failure(ip, later);
        }
    }
    // The server's and a connection's resources.
    let _connections = Semaphore::new(config.max_connections);
    let in_flight = config.max_in_flight_per_connection.max(1);
    let _permits = Semaphore::new(in_flight);
    let _writer = mpsc::channel::<u8>(in_flight + 8);
    let _table = CorrelationTable::new(config.correlation_capacity);
    let _deadline = tokio::time::Instant::now() + *config.request_timeout_ms;
}
