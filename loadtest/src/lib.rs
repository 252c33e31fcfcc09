//! # vigil-loadtest: model traffic at a constant rate, measured honestly
//!
//! Generates realistic inference requests (KServe Open Inference Protocol V2 or
//! TF-Serving V1 REST bodies, rows drawn from a [reference distribution](mod@reference))
//! at a fixed rate, and reports latency percentiles corrected for *coordinated
//! omission*.
//!
//! ```no_run
//! # async fn demo() {
//! use std::time::Duration;
//! let cfg = vigil_loadtest::Config {
//!     rate: 500.0,
//!     duration: Some(Duration::from_secs(30)),
//!     batch: 32,
//!     ..Default::default()
//! };
//! let report = vigil_loadtest::run(cfg, std::future::pending()).await;
//! println!("{}", report.to_table());
//! # }
//! ```
//!
//! ## Open model, constant rate
//!
//! Real clients do not wait for each other: requests arrive when users click,
//! whether or not the server is keeping up. A *closed*-model load generator
//! (N workers, each sending its next request when the previous answer arrives)
//! silently slows down when the server slows down, which is exactly when you wanted
//! to measure it. This generator is *open*: request `i` is scheduled for
//! `t0 + i / rate` ([`schedule::Schedule`]) no matter how the previous ones fared.
//!
//! ## Coordinated omission, and the correction
//!
//! Any generator has finite concurrency (here `connections` requests in flight). Say
//! the rate is 1,000 req/s over 10 connections and the server freezes for 1 s. The
//! ten in-flight requests each see ~1 s; the ~1,000 requests that *should* have been
//! sent during the freeze are not sent at all, because every connection is busy. When
//! the server recovers they go out late and are answered in a few hundred microseconds.
//! If you time each request from the moment it was actually sent, you record 10 bad
//! samples and thousands of good ones, and p99 says "fine": the generator has
//! *coordinated* with the server to *omit* the samples that would have been bad (Gil
//! Tene's term). A real user who clicked during that second waited for the freeze.
//!
//! The correction (as in wrk2 and oha's `--latency-correction`): time every request
//! from its **intended** send time, `t0 + i / rate`, not from when a connection became
//! free. A request that waited 700 ms for a connection and then took 300 us is recorded
//! as ~700 ms. Concretely here (see [`generator`]): a pacer releases one permit per
//! request at its intended time; `connections` workers take permits in order and claim
//! the next request index; latency is `completion - (t0 + index / rate)`. The
//! uncorrected ("service") latency is reported next to it, so the effect is visible.
//!
//! The correction is only honest if the generator itself sends on time, so the pacer
//! is a dedicated thread with microsecond-class wake-ups rather than tokio's 1 ms timer
//! (see [`schedule`]). If the generator is CPU-starved, its own lateness lands in the
//! corrected numbers; that errs on the side of reporting worse latency, never better.
//!
//! ## Modules
//!
//! * [`reference`](mod@reference): feature distributions (built-in demo reference, CSV files) and the
//!   [`RowTransform`] hook for drift scenarios.
//! * [`payload`]: V2 / V1 request bodies and paths.
//! * [`schedule`]: intended times and the pacer.
//! * [`generator`]: [`Config`] and [`run`].
//! * [`report`]: [`Report`], percentiles, table and JSON output.

pub mod generator;
pub mod payload;
pub mod reference;
pub mod report;
pub mod schedule;

pub use generator::{run, Config, ConfigError};
pub use payload::Protocol;
pub use reference::{
    default_features, ColumnStats, Distribution, FeatureSpec, Reference, ReferenceError, RowTransform, Sampler, Shift,
};
pub use report::{ErrorCounts, LatencySummary, Report, ReportSummary};
