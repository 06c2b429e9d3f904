//! Where the settings in force come from: defaults ← config file ← flags.
//!
//! ```toml
//! backends = ["http://10.0.0.1:50051", "http://10.0.0.2:50051"]
//! request_timeout_ms = 50
//! tls_cert = "/etc/hts/tls/gateway.crt"
//! tls_key = "/etc/hts/tls/gateway.key"
//!
//! [resilience]
//! max_retries = 1
//! breaker_delay_ms = 30000
//! ```
//!
//! Every key of [`GatewayConfig`] may appear in the file (and every
//! `[resilience]` key of [`crate::resilience::ResilienceConfig`]); an
//! unknown key or a wrong type is refused with the file's name. Each layer
//! is a JSON object holding only the keys it sets — the file's keys, and
//! the flags actually given on the command line — merged over the
//! serialised defaults by one generic [`merge`] and read back into a
//! [`GatewayConfig`]. No setting is listed here: adding one to the struct
//! is all it takes to make it settable from both sources.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::GatewayConfig;

/// The settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Reading the file failed.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The TOML is invalid, has unknown keys or values of the wrong type.
    #[error("invalid config file {path}: {source}")]
    Parse {
        /// The file.
        path: String,
        /// What the parser found.
        #[source]
        source: toml::de::Error,
    },
    /// The merged layers do not form a configuration (cannot happen for
    /// layers built here; kept for the flags' JSON).
    #[error("invalid settings: {0}")]
    Merge(#[from] serde_json::Error),
}

/// The layers above the defaults: the config file (read again at every
/// [`Layers::load`]) and the flags given on the command line (fixed).
#[derive(Debug, Clone, Default)]
pub struct Layers {
    file: Option<PathBuf>,
    flags: Value,
}

impl Layers {
    /// Layers of `file` (if any) and of the flags of `parsed` for which
    /// `given(id)` says they were given on the command line (clap's arg id
    /// is the field's name; flags left at their default do not override
    /// the file).
    pub fn new(
        file: Option<PathBuf>,
        parsed: &GatewayConfig,
        given: impl Fn(&str) -> bool,
    ) -> Layers {
        let full = serde_json::to_value(parsed).unwrap_or_default();
        Layers {
            file,
            flags: pick(&full, &given),
        }
    }

    /// The config file, if any.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Reads the file and merges defaults ← file ← flags.
    pub fn load(&self) -> Result<GatewayConfig, LoadError> {
        let file = match &self.file {
            Some(path) => {
                let name = path.display().to_string();
                let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
                    path: name.clone(),
                    source,
                })?;
                file_layer(&text, &name)?
            }
            None => Value::Object(Map::new()),
        };
        resolve(&[file, self.flags.clone()])
    }
}

/// The layer config-file `text` contributes: exactly the keys it sets.
/// Key names and value types are checked against [`GatewayConfig`] first,
/// so an error names the file and the line.
pub fn file_layer(text: &str, name: &str) -> Result<Value, LoadError> {
    let parse = |source| LoadError::Parse {
        path: name.to_owned(),
        source,
    };
    toml::from_str::<GatewayConfig>(text).map_err(parse)?;
    let table: toml::Table = toml::from_str(text).map_err(parse)?;
    Ok(serde_json::to_value(table)?)
}

/// The defaults with `layers` merged over them in order (later wins).
pub fn resolve(layers: &[Value]) -> Result<GatewayConfig, LoadError> {
    let mut merged = serde_json::to_value(GatewayConfig::default())?;
    for layer in layers {
        merge(&mut merged, layer);
    }
    Ok(serde_json::from_value(merged)?)
}

/// Writes every key of `over` into `base`; nested tables merge key by key,
/// anything else (numbers, strings, lists) is replaced whole.
pub fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(base), Value::Object(over)) => {
            for (key, value) in over {
                match base.get_mut(key) {
                    Some(slot) if slot.is_object() && value.is_object() => merge(slot, value),
                    _ => {
                        base.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (base, over) => *base = over.clone(),
    }
}

/// The keys of `full` (recursively into nested tables) that `given` names.
fn pick(full: &Value, given: &impl Fn(&str) -> bool) -> Value {
    let mut out = Map::new();
    if let Value::Object(map) = full {
        for (key, value) in map {
            if value.is_object() {
                let inner = pick(value, given);
                if inner.as_object().is_some_and(|m| !m.is_empty()) {
                    out.insert(key.clone(), inner);
                }
            } else if given(key) {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::time::Duration;

    fn flags(args: &[&str]) -> Layers {
        let mut argv = vec!["gateway"];
        argv.extend_from_slice(args);
        let matches = <GatewayConfig as clap::CommandFactory>::command().get_matches_from(&argv);
        let parsed = GatewayConfig::try_parse_from(&argv).unwrap();
        Layers::new(None, &parsed, |id| {
            matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine)
        })
    }

    #[test]
    fn the_file_sets_every_kind_of_key_and_keeps_the_defaults() {
        let layer = file_layer(
            r#"
listen = "127.0.0.1:9000"
backends = ["http://127.0.0.1:1", "http://127.0.0.1:2"]
request_timeout_ms = 80
max_body_len = 4096
frame_read_timeout_ms = 900
idle_timeout_secs = 7
login_timeout_secs = 3
listen_backlog = 64
redis_url = "redis://127.0.0.1:6379/0"
tls_cert = "/etc/hts/gw.crt"
tls_key = "/etc/hts/gw.key"
[resilience]
hedging = false
breaker_delay_ms = 1000
health_timeout_ms = 99
"#,
            "t.toml",
        )
        .unwrap();
        let c = resolve(&[layer]).unwrap();
        assert_eq!(c.listen, "127.0.0.1:9000");
        assert_eq!(c.backends.len(), 2);
        assert_eq!(*c.request_timeout_ms, Duration::from_millis(80));
        assert_eq!(c.max_body_len, 4096);
        assert_eq!(*c.frame_read_timeout_ms, Duration::from_millis(900));
        assert_eq!(*c.idle_timeout_secs, Duration::from_secs(7));
        assert_eq!(*c.login_timeout_secs, Duration::from_secs(3));
        assert_eq!(c.listen_backlog, 64);
        assert_eq!(c.redis_url.as_deref(), Some("redis://127.0.0.1:6379/0"));
        assert_eq!(c.tls_cert, Some(PathBuf::from("/etc/hts/gw.crt")));
        assert!(!c.resilience.hedging);
        assert_eq!(*c.resilience.breaker_delay_ms, Duration::from_secs(1));
        assert_eq!(*c.resilience.health_timeout_ms, Duration::from_millis(99));
        assert_eq!(c.resilience.max_retries, 1, "defaults kept");
        assert_eq!(c.max_connections, GatewayConfig::default().max_connections);
    }

    #[test]
    fn every_setting_is_reachable_from_the_file() {
        // A file that sets every key to a non-default value, generated from
        // the struct itself: nothing can be settable by flag only.
        let mut all = serde_json::to_value(GatewayConfig::default()).unwrap();
        fn bump(v: &mut Value) {
            match v {
                Value::Object(m) => m.values_mut().for_each(bump),
                Value::Bool(b) => *b = !*b,
                Value::Number(n) => {
                    *v = if let Some(i) = n.as_u64() {
                        Value::from(i + 1)
                    } else {
                        Value::from(n.as_f64().unwrap_or(0.0) / 2.0)
                    }
                }
                Value::String(s) => s.push('1'),
                Value::Array(a) => a.push(Value::from("http://127.0.0.1:9")),
                Value::Null => *v = Value::from("/x"),
            }
        }
        bump(&mut all);
        let text = toml::to_string(&all).unwrap();
        let c = resolve(&[file_layer(&text, "all.toml").unwrap()]).unwrap();
        assert_eq!(serde_json::to_value(&c).unwrap(), all);
    }

    #[test]
    fn flags_win_over_the_file_only_when_given() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gw.toml");
        std::fs::write(
            &path,
            "backends = [\"http://f:1\"]\nmax_connections = 7\n[resilience]\nmax_retries = 3\n",
        )
        .unwrap();
        let mut layers = flags(&["--max-retries", "1", "--max-body-len", "2048"]);
        layers.file = Some(path.clone());
        let c = layers.load().unwrap();
        assert_eq!(
            c.resilience.max_retries, 1,
            "a given flag wins, even at its default"
        );
        assert_eq!(c.max_body_len, 2048);
        assert_eq!(c.max_connections, 7, "the file wins over defaults");
        assert_eq!(c.backends, ["http://f:1"]);
        let mut layers = flags(&["--backend", "http://a:1", "--backend", "http://b:2"]);
        layers.file = Some(path);
        assert_eq!(
            layers.load().unwrap().backends,
            ["http://a:1", "http://b:2"]
        );
    }

    #[test]
    fn typos_and_wrong_types_name_the_file() {
        for bad in [
            "backend = []",
            "max_body_len = \"big\"",
            "[resilience]\nretries = 1",
        ] {
            let e = file_layer(bad, "t.toml").unwrap_err();
            assert!(e.to_string().contains("t.toml"), "{e}");
        }
        assert_eq!(
            resolve(&[file_layer("", "t").unwrap()])
                .unwrap()
                .max_connections,
            GatewayConfig::default().max_connections
        );
        let missing = Layers {
            file: Some("/nonexistent/gw.toml".into()),
            flags: Value::Object(Map::new()),
        };
        assert!(missing
            .load()
            .unwrap_err()
            .to_string()
            .contains("/nonexistent/gw.toml"));
    }
}
