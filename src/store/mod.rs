//! Durable records in the state dir: the append-only audit trail and the saved reference.
//! Owns: files under the state dir other than `state.json`. May not touch: routes, sockets.

pub mod audit;
pub mod reference;
