//! Durable records in the state dir. For now: the append-only audit trail.
//! Owns: files under the state dir other than `state.json`. May not touch: routes, sockets.

pub mod audit;
