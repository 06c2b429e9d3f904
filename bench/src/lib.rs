//! `hts-bench`: the load harness of the HTS order gateway.
//!
//! Open-loop, coordinated-omission-correct load: request *i* is due at
//! `t0 + i / rate` whatever happened to earlier requests, and its latency is
//! measured both from that due time and from the moment it was actually
//! written. Layout (one job per module):
//!
//! * [`schedule`]: due times of an open-loop constant-rate schedule;
//! * [`mix`]: the place/cancel/query ratio;
//! * [`workload`]: accounts, tokens, unique request ids, order bodies;
//! * [`recorder`]: HDR histograms and outcome counters;
//! * [`procstat`]: CPU seconds and RSS of other processes from `/proc`;
//! * [`driver`]: the scheduler and the two transports (gateway frames, direct gRPC);
//! * [`report`]: the run report (markdown and JSON);
//! * [`plot`]: the PNG percentile-distribution plot;
//! * [`sweep`], [`idle`], [`compare`], [`echo_server`]: the subcommands.
#![deny(missing_docs)]

pub mod compare;
pub mod config;
pub mod driver;
pub mod echo_server;
pub mod idle;
pub mod mix;
pub mod plot;
pub mod procstat;
pub mod recorder;
pub mod report;
pub mod schedule;
pub mod sweep;
pub mod workload;
