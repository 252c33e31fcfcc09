//! Routes: the model versions, which one is active, the canary weights, and the lock-free table
//! the data path reads them from.
//!
//! Owns: [`Routes`] (an immutable snapshot), its edits (pure functions returning a new snapshot),
//! and its persistence in the state dir. May not touch: sockets, the capture queue.
//! Architecture invariant: the data path only ever `load()`s the [`RouteTable`]; only the control
//! plane stores into it, and every store is one audited event.

mod state;
mod url;

pub use state::{PersistedRoutes, PersistedVersion, StateFile};
pub use url::UpstreamUrl;

use crate::config::{validate_version_name, Config, UpstreamProtocol};
use crate::telemetry::VersionMetrics;
use arc_swap::ArcSwap;
use serde::Serialize;
use std::sync::Arc;

/// One upstream model version.
#[derive(Debug)]
pub struct Version {
    pub name: Arc<str>,
    pub url: UpstreamUrl,
    /// Canary weight in percent; ignored while this version is the active one.
    pub weight: u32,
    pub protocol: UpstreamProtocol,
    /// Metric handles, shared by every snapshot that holds a version of this name.
    pub metrics: Arc<VersionMetrics>,
}

impl Version {
    pub fn new(name: &str, url: UpstreamUrl, weight: u32, protocol: UpstreamProtocol) -> Version {
        Version { name: name.into(), metrics: VersionMetrics::for_version(name), url, weight, protocol }
    }

    fn with(&self, url: Option<UpstreamUrl>, weight: Option<u32>, protocol: Option<UpstreamProtocol>) -> Version {
        Version {
            name: self.name.clone(),
            url: url.unwrap_or_else(|| self.url.clone()),
            weight: weight.unwrap_or(self.weight),
            protocol: protocol.unwrap_or(self.protocol),
            metrics: self.metrics.clone(),
        }
    }
}

/// An immutable routing snapshot. Requests load one and keep it for their whole exchange, so a
/// swap never changes the version a request started on.
#[derive(Debug)]
pub struct Routes {
    versions: Vec<Arc<Version>>,
    active: usize,
    previous: Option<Arc<str>>,
    /// Cumulative canary weights of the non-active versions: (upper bound in percent, index).
    canaries: Vec<(u32, usize)>,
}

/// Why an edit of the routes was refused. Maps to an HTTP status in the control plane.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RouteError {
    #[error("no version named {0:?}")]
    UnknownVersion(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
}

/// A requested change of one version (PUT /admin/versions/{name}).
#[derive(Debug, Default, Clone)]
pub struct VersionChange {
    pub url: Option<UpstreamUrl>,
    pub weight: Option<u32>,
    pub protocol: Option<UpstreamProtocol>,
}

impl Routes {
    /// Builds and checks a snapshot. `active` must name one of `versions`.
    pub fn new(versions: Vec<Arc<Version>>, active: &str, previous: Option<Arc<str>>) -> Result<Routes, RouteError> {
        let active = versions
            .iter()
            .position(|v| &*v.name == active)
            .ok_or_else(|| RouteError::UnknownVersion(active.to_owned()))?;
        let mut canaries = Vec::new();
        let mut sum = 0u32;
        for (i, v) in versions.iter().enumerate() {
            if i != active && v.weight > 0 {
                sum += v.weight;
                canaries.push((sum, i));
            }
        }
        if sum > 100 {
            return Err(RouteError::Invalid(format!(
                "canary weights of the non-active versions sum to {sum}; at most 100 allowed"
            )));
        }
        let previous = previous.filter(|p| versions.iter().any(|v| v.name == *p));
        Ok(Routes { versions, active, previous, canaries })
    }

    /// The routes the config describes, with the routing decisions of `state` (active version,
    /// weights, versions registered at run time) laid over it. Config says *where* versions are
    /// (URL, protocol); state says *who gets traffic*. Returns notes worth logging.
    pub fn from_config(config: &Config, state: Option<PersistedRoutes>) -> Result<(Routes, Vec<String>), RouteError> {
        let mut notes = Vec::new();
        let mut versions: Vec<Arc<Version>> = Vec::new();
        for v in &config.versions {
            let url = UpstreamUrl::parse(&v.url).map_err(|e| RouteError::Invalid(e.to_string()))?;
            let weight = state
                .as_ref()
                .and_then(|s| s.versions.iter().find(|p| p.name == v.name))
                .map(|p| p.weight)
                .unwrap_or(v.weight);
            versions.push(Arc::new(Version::new(&v.name, url, weight, v.protocol)));
        }
        let mut active = config.active_name();
        let mut previous = None;
        if let Some(s) = state {
            for p in &s.versions {
                if versions.iter().any(|v| *v.name == *p.name) {
                    continue;
                }
                match UpstreamUrl::parse(&p.url) {
                    Ok(url) => {
                        notes.push(format!("restored version {:?} ({}) registered at run time", p.name, p.url));
                        versions.push(Arc::new(Version::new(&p.name, url, p.weight, p.protocol)));
                    }
                    Err(e) => notes.push(format!("state: skipped version {:?}: bad url {:?}: {e}", p.name, p.url)),
                }
            }
            if versions.iter().any(|v| *v.name == *s.active) {
                if s.active != active {
                    notes.push(format!("active version {:?} restored from state (config says {active:?})", s.active));
                }
                active = s.active;
                previous = s.previous.map(Arc::from);
            } else {
                notes.push(format!("state: active version {:?} no longer exists; using {active:?}", s.active));
            }
        }
        match Routes::new(versions.clone(), &active, previous.clone()) {
            Ok(r) => Ok((r, notes)),
            // State weights may no longer fit after a config change: fall back to config weights.
            Err(RouteError::Invalid(why)) => {
                notes.push(format!("state: {why}; canary weights reset to the config's"));
                let versions = versions
                    .iter()
                    .map(|v| {
                        let w = config.versions.iter().find(|c| *c.name == *v.name).map(|c| c.weight).unwrap_or(0);
                        Arc::new(v.with(None, Some(w), None))
                    })
                    .collect();
                Routes::new(versions, &active, previous).map(|r| (r, notes))
            }
            Err(e) => Err(e),
        }
    }

    /// Picks the version for one request: a canary by its weight, else the active version.
    #[inline]
    pub fn pick(&self) -> &Arc<Version> {
        if !self.canaries.is_empty() {
            let r = fastrand::u32(0..100);
            for &(bound, i) in &self.canaries {
                if r < bound {
                    return &self.versions[i];
                }
            }
        }
        &self.versions[self.active]
    }

    pub fn active(&self) -> &Arc<Version> {
        &self.versions[self.active]
    }

    pub fn previous(&self) -> Option<&str> {
        self.previous.as_deref()
    }

    pub fn versions(&self) -> &[Arc<Version>] {
        &self.versions
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Version>> {
        self.versions.iter().find(|v| &*v.name == name)
    }

    /// Percent of traffic a version receives in this snapshot.
    pub fn traffic_share(&self, name: &str) -> u32 {
        let canary: u32 = self.canaries.iter().map(|&(_, i)| self.versions[i].weight).sum();
        match self.versions.iter().position(|v| &*v.name == name) {
            Some(i) if i == self.active => 100 - canary,
            Some(i) => self.versions[i].weight,
            None => 0,
        }
    }

    /// Makes `name` the active version. Its canary weight is reset to 0: activation is a full
    /// promotion. The version it replaces becomes `previous`, the target of a rollback.
    /// Invariant kept by every edit and by config validation: the active version's weight is 0.
    pub fn activate(&self, name: &str) -> Result<Routes, RouteError> {
        let target = self.get(name).ok_or_else(|| RouteError::UnknownVersion(name.to_owned()))?;
        if Arc::ptr_eq(target, self.active()) {
            return Routes::new(self.versions.clone(), name, self.previous.clone());
        }
        let versions = self
            .versions
            .iter()
            .map(|v| if &*v.name == name { Arc::new(v.with(None, Some(0), None)) } else { v.clone() })
            .collect();
        Routes::new(versions, name, Some(self.active().name.clone()))
    }

    /// Returns to the previously active version. The version rolled back from gets weight 0, so
    /// it receives no traffic at all until an operator says otherwise.
    pub fn rollback(&self) -> Result<Routes, RouteError> {
        let prev = self.previous.clone().ok_or_else(|| {
            RouteError::Conflict("no previous version to roll back to (no version was activated since start)".into())
        })?;
        let from = self.active().name.clone();
        let versions = self
            .versions
            .iter()
            .map(|v| if v.name == from { Arc::new(v.with(None, Some(0), None)) } else { v.clone() })
            .collect();
        // After a rollback there is nothing to roll back to: a second rollback is refused rather
        // than flip-flopping back onto the version just judged bad.
        Routes::new(versions, &prev, None)
    }

    /// Registers a new version (url required) or changes an existing one.
    /// Returns the new snapshot and whether the version was created.
    pub fn put(&self, name: &str, change: VersionChange) -> Result<(Routes, bool), RouteError> {
        validate_version_name(name)
            .map_err(|why| RouteError::Invalid(format!("version name {name:?}: expected {why}")))?;
        if let Some(w) = change.weight {
            if w > 100 {
                return Err(RouteError::Invalid(format!("weight {w}: expected a percentage from 0 to 100")));
            }
        }
        let active = self.active().name.clone();
        if *active == *name && change.weight.is_some_and(|w| w > 0) {
            return Err(RouteError::Invalid(format!(
                "version {name:?} is active: it takes the traffic the canaries leave; weight applies to canaries only"
            )));
        }
        match self.get(name) {
            Some(existing) => {
                let changed = Arc::new(existing.with(change.url, change.weight, change.protocol));
                let versions =
                    self.versions.iter().map(|v| if &*v.name == name { changed.clone() } else { v.clone() }).collect();
                Routes::new(versions, &active, self.previous.clone()).map(|r| (r, false))
            }
            None => {
                let url = change
                    .url
                    .ok_or_else(|| RouteError::Invalid(format!("version {name:?} is new: \"url\" is required")))?;
                let mut versions = self.versions.clone();
                versions.push(Arc::new(Version::new(
                    name,
                    url,
                    change.weight.unwrap_or(0),
                    change.protocol.unwrap_or_default(),
                )));
                Routes::new(versions, &active, self.previous.clone()).map(|r| (r, true))
            }
        }
    }

    /// Removes a version. The active one cannot be removed.
    pub fn delete(&self, name: &str) -> Result<Routes, RouteError> {
        let target = self.get(name).ok_or_else(|| RouteError::UnknownVersion(name.to_owned()))?;
        if Arc::ptr_eq(target, self.active()) {
            return Err(RouteError::Conflict(format!(
                "version {name:?} is active; activate another version before deleting it"
            )));
        }
        let versions = self.versions.iter().filter(|v| &*v.name != name).cloned().collect();
        Routes::new(versions, &self.active().name, self.previous.clone())
    }

    /// The JSON view used by the admin API and the audit trail.
    pub fn view(&self) -> RoutesView {
        RoutesView {
            active: self.active().name.to_string(),
            previous: self.previous.as_deref().map(str::to_owned),
            versions: self.versions.iter().map(|v| self.version_view(v)).collect(),
        }
    }

    pub fn version_view(&self, v: &Version) -> VersionView {
        VersionView {
            name: v.name.to_string(),
            url: v.url.to_string(),
            weight: v.weight,
            protocol: v.protocol,
            active: *v.name == *self.active().name,
            traffic_share: self.traffic_share(&v.name),
        }
    }

    pub fn persisted(&self) -> PersistedRoutes {
        PersistedRoutes {
            active: self.active().name.to_string(),
            previous: self.previous.as_deref().map(str::to_owned),
            versions: self
                .versions
                .iter()
                .map(|v| PersistedVersion {
                    name: v.name.to_string(),
                    url: v.url.to_string(),
                    weight: v.weight,
                    protocol: v.protocol,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RoutesView {
    pub active: String,
    pub previous: Option<String>,
    pub versions: Vec<VersionView>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct VersionView {
    pub name: String,
    pub url: String,
    pub weight: u32,
    pub protocol: UpstreamProtocol,
    pub active: bool,
    /// Percent of live traffic this version receives now.
    pub traffic_share: u32,
}

/// The shared, lock-free routing table.
pub type RouteTable = ArcSwap<Routes>;

#[cfg(test)]
mod tests;
