//! vigil: an inference sidecar proxy. See ARCHITECTURE.md for the map.

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
pub mod routes;
pub mod shadow;
pub mod store;
pub mod telemetry;
