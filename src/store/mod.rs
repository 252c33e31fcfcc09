//! Durable records in the state dir: the append-only audit trail, the saved reference, and the
//! prediction log (every live prediction, joined later with its label).
//! Owns: files under the state dir other than `state.json`. May not touch: routes, sockets.

pub mod audit;
pub mod predlog;
pub mod reference;
