//! The routing decisions that survive a restart: `state.json` in the state dir.
//! Written atomically (temporary file, fsync, rename), so a crash leaves the old or the new file.

use crate::config::UpstreamProtocol;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PersistedRoutes {
    pub active: String,
    #[serde(default)]
    pub previous: Option<String>,
    pub versions: Vec<PersistedVersion>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PersistedVersion {
    pub name: String,
    pub url: String,
    #[serde(default)]
    pub weight: u32,
    #[serde(default)]
    pub protocol: UpstreamProtocol,
}

/// `state.json` in a state dir.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    pub fn in_dir(dir: &Path) -> StateFile {
        StateFile { path: dir.join("state.json") }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved routes, `None` when there is no file yet.
    pub fn load(&self) -> Result<Option<PersistedRoutes>, String> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| format!("{}: not a vigil state file: {e}", self.path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", self.path.display())),
        }
    }

    pub fn save(&self, routes: &PersistedRoutes) -> std::io::Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        serde_json::to_writer_pretty(&mut f, routes)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            // Make the rename itself durable.
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}
