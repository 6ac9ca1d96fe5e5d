//! What the integration tests share, one concept a file. Each test crate
//! uses a subset, hence `dead_code` and `unused_imports` allowed here.
#![allow(dead_code, unused_imports)]

mod backends;
mod bounded;
mod calls;
mod cluster;
mod events;
mod fixtures;
pub mod layout;
mod load;
mod proxy;
mod sentinel;
mod server;
pub mod shapes;

/// The reference model of a series, the fuzz crate's own.
#[path = "../../fuzz/src/series.rs"]
pub mod series;

pub use backends::{
    assert_near_serving, connect, embedded, with_cluster, with_near, with_redis, TestCache,
    NEAR_BYTES,
};
pub use bounded::*;
pub use calls::*;
pub use cluster::{NodeLine, RedisCluster, NODE_TIMEOUT_MS};
pub use events::{capture_events, Events};
pub use fixtures::*;
pub use load::{assert_every_call_works, Load, Report};
pub use proxy::{Fault, FaultProxy};
pub use sentinel::SentinelSet;
pub use server::{wait_until, RedisServer};
