//! The chaos suite's machinery (issue 7): the system under test built from
//! real processes ([`system`]), the load driver ([`load`]), the
//! reconciliation of answers with stores and topic ([`reconcile`]), network
//! namespaces for partitions ([`netns`]) and the report ([`report`]).

#![allow(dead_code)]

pub mod flags;
pub mod load;
pub mod netns;
pub mod reconcile;
pub mod report;
pub mod system;

use std::future::Future;
use std::sync::OnceLock;

/// Runs `f` to completion on the suite's orchestration runtime (one worker;
/// the load driver has its own). Tasks it spawns, such as database
/// connections, keep running between calls.
pub fn block_on<F: Future>(f: F) -> F::Output {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("orchestration runtime")
    })
    .block_on(f)
}
