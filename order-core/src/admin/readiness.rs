//! Dependency probes of the order service: the database (an outbox stats
//! query, which also feeds the metrics) and the account service (gRPC
//! health check).

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use crate::outbox::OutboxStats;
use crate::store::OrderStore;

/// Seconds a load balancer should wait before asking again when not ready.
pub const RETRY_AFTER_SECS: u64 = 5;
/// Time one dependency probe may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The readiness verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: &'static str,
    /// Unreachable dependencies: `database`, `account_service`.
    pub missing: Vec<&'static str>,
    /// Why each missing dependency failed, by name.
    pub errors: std::collections::BTreeMap<&'static str, String>,
    /// Outbox counts when the database answered.
    #[serde(skip)]
    pub outbox: Option<OutboxStats>,
}

impl Readiness {
    /// Whether every dependency answered.
    pub fn is_ready(&self) -> bool {
        self.missing.is_empty()
    }
}

/// The probes' handles.
pub struct Probes {
    store: Arc<dyn OrderStore>,
    accounts: HealthClient<Channel>,
}

impl Probes {
    /// Probes of `store` and the account service at `account_url` (connected lazily).
    pub fn new(store: Arc<dyn OrderStore>, account_url: &str) -> anyhow::Result<Probes> {
        let channel = Endpoint::from_shared(account_url.to_owned())?
            .connect_timeout(PROBE_TIMEOUT)
            .connect_lazy();
        Ok(Probes {
            store,
            accounts: HealthClient::new(channel),
        })
    }

    /// Probes both dependencies concurrently.
    pub async fn check(&self) -> Readiness {
        let (db, acc) = tokio::join!(self.database(), self.account_service());
        let mut missing = Vec::new();
        let mut errors = std::collections::BTreeMap::new();
        let outbox = match db {
            Ok(stats) => Some(stats),
            Err(e) => {
                missing.push("database");
                errors.insert("database", e);
                None
            }
        };
        if let Err(e) = acc {
            missing.push("account_service");
            errors.insert("account_service", e);
        }
        Readiness {
            status: if missing.is_empty() {
                "ready"
            } else {
                "not_ready"
            },
            missing,
            errors,
            outbox,
        }
    }

    async fn database(&self) -> Result<OutboxStats, String> {
        match tokio::time::timeout(PROBE_TIMEOUT, self.store.outbox_stats()).await {
            Ok(Ok(stats)) => Ok(stats),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {PROBE_TIMEOUT:?}")),
        }
    }

    async fn account_service(&self) -> Result<(), String> {
        let mut client = self.accounts.clone();
        let request = HealthCheckRequest {
            service: String::new(),
        };
        match tokio::time::timeout(PROBE_TIMEOUT, client.check(request)).await {
            Ok(Ok(r)) if r.get_ref().status == ServingStatus::Serving as i32 => Ok(()),
            Ok(Ok(r)) => Err(format!("health status {}", r.get_ref().status)),
            Ok(Err(e)) => Err(format!("{}: {}", e.code(), e.message())),
            Err(_) => Err(format!("no answer within {PROBE_TIMEOUT:?}")),
        }
    }
}
