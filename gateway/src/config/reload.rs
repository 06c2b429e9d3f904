//! Changing the settings of a running gateway: one rule for SIGHUP, `POST
//! /admin/reload` and the admin API's backend controls.
//!
//! A reload reads the layers again (defaults ← file ← the same flags) and:
//!
//! * refuses the whole reload, changing nothing, when a key that cannot
//!   change live differs from the value in force ([`restart_only_changes`]:
//!   everything but [`RELOADABLE`]); the error names each key with both
//!   values and says to restart;
//! * applies every `[resilience]` policy ([`Router::reconfigure`]);
//! * applies the backend list as a *change* against the list the previous
//!   load gave ([`crate::resilience::BackendSet::apply_file_change`]):
//!   backends the file newly lists join, backends it dropped drain, and a
//!   backend it still lists stays as the admin API left it — a drained one
//!   stays drained, one added by hand stays.
//!
//! The admin API's changes are never written back to the file: the file
//! describes what to change at the next reload, the live set what is.

use std::sync::Arc;

use arc_swap::ArcSwap;
use serde_json::Value;

use super::layers::{Layers, LoadError};
use super::{GatewayConfig, InvalidConfig};
use crate::resilience::{Router, SetError};

/// Top-level keys a reload may change while the gateway runs.
pub const RELOADABLE: [&str; 2] = ["backends", "resilience"];

/// A reload that was refused; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file could not be read or parsed.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The new settings are out of range.
    #[error(transparent)]
    Invalid(#[from] InvalidConfig),
    /// Keys that only take effect at start differ from the values in force.
    #[error(
        "{} cannot change while the gateway runs ({}); nothing was reloaded: \
         restart the gateway to apply {}",
        keys.join(", "),
        details.join("; "),
        if keys.len() == 1 { "it" } else { "them" }
    )]
    NeedsRestart {
        /// The keys.
        keys: Vec<String>,
        /// `key: in force A, new B` per key.
        details: Vec<String>,
    },
    /// A new backend URL is unusable.
    #[error(transparent)]
    Backends(#[from] SetError),
}

/// The restart-only keys whose value differs between `in_force` and `next`,
/// each with both values.
pub fn restart_only_changes(
    in_force: &GatewayConfig,
    next: &GatewayConfig,
) -> Vec<(String, Value, Value)> {
    let (Ok(Value::Object(old)), Ok(Value::Object(new))) =
        (serde_json::to_value(in_force), serde_json::to_value(next))
    else {
        return Vec::new();
    };
    new.into_iter()
        .filter(|(key, _)| !RELOADABLE.contains(&key.as_str()))
        .filter_map(|(key, value)| {
            let before = old.get(&key).cloned().unwrap_or(Value::Null);
            (before != value).then_some((key, before, value))
        })
        .collect()
}

/// Reloads a running gateway's settings from its layers.
#[derive(Debug)]
pub struct Reloader {
    layers: Layers,
    in_force: Arc<ArcSwap<GatewayConfig>>,
    router: Arc<Router>,
}

impl Reloader {
    /// A reloader of `router` from `layers`; `in_force` holds the settings
    /// the gateway runs with (the admin API reports them).
    pub fn new(
        layers: Layers,
        in_force: Arc<ArcSwap<GatewayConfig>>,
        router: Arc<Router>,
    ) -> Reloader {
        Reloader {
            layers,
            in_force,
            router,
        }
    }

    /// Reads the layers again and applies them by the module's rule.
    pub fn reload(&self) -> Result<(), ReloadError> {
        let mut next = self.layers.load()?;
        let current = self.in_force.load_full();
        next.jwt_secret = current.jwt_secret.clone();
        next.tls = current.tls.clone();
        next.validate()?;
        let changed = restart_only_changes(&current, &next);
        if !changed.is_empty() {
            return Err(ReloadError::NeedsRestart {
                keys: changed.iter().map(|(k, _, _)| k.clone()).collect(),
                details: changed
                    .iter()
                    .map(|(k, a, b)| format!("{k}: in force {a}, new {b}"))
                    .collect(),
            });
        }
        self.router
            .set()
            .apply_file_change(&current.backends, &next.backends)?;
        self.router
            .reconfigure(next.resilience.clone())
            .map_err(InvalidConfig::from)?;
        self.in_force.store(Arc::new(next));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Millis;
    use std::time::Duration;

    #[test]
    fn only_restart_only_keys_are_reported() {
        let a = GatewayConfig::default();
        let mut b = a.clone();
        b.backends.push("http://x:1".into());
        b.resilience.max_retries = 5;
        assert!(restart_only_changes(&a, &b).is_empty());
        b.request_timeout_ms = Millis(Duration::from_millis(99));
        b.listen = "0.0.0.0:1".into();
        let keys: Vec<String> = restart_only_changes(&a, &b)
            .into_iter()
            .map(|(k, _, _)| k)
            .collect();
        assert_eq!(keys, ["listen", "request_timeout_ms"]);
        let e = ReloadError::NeedsRestart {
            keys,
            details: vec!["request_timeout_ms: in force 50, new 99".into()],
        };
        let text = e.to_string();
        assert!(text.contains("request_timeout_ms"), "{text}");
        assert!(text.contains("restart"), "{text}");
        assert!(text.contains("nothing was reloaded"), "{text}");
    }
}
