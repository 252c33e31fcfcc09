//! Durable records in the state dir: the append-only audit trail, the saved reference, and the
//! prediction log (every live prediction, joined later with its label) and its export; backups
//! of the whole state dir.
//! Owns: files under the state dir other than `state.json`. May not touch: routes, sockets.

pub mod audit;
pub mod backup;
pub mod configlog;
pub mod export;
pub mod predlog;
pub mod reference;
