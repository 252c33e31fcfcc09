//! vigil: an inference sidecar proxy. See ARCHITECTURE.md for the map.

pub mod alerts;
pub mod app;
pub mod background;
pub mod capture;
pub mod codec;
pub mod config;
pub mod control;
pub mod demo;
pub mod monitor;
pub mod privacy;
pub mod proxy;
pub mod report;
pub mod rollout;
pub mod routes;
pub mod shadow;
pub mod store;
pub mod telemetry;
