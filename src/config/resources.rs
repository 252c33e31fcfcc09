//! `[resources]`: where the model server's resource usage is read from, besides vigil's own.
//!
//! The model process is found by one of `model_pid`, `model_pid_file` (re-read at every scrape,
//! so a restarted server is followed) or `model_process_name` (a substring of `/proc/*/comm` or
//! the command line; needs a shared process namespace in Kubernetes). `model_cgroup` is a cgroup
//! v2 directory whose `cpu.stat`, `memory.*` and `pids.current` describe the model's container or
//! pod. All optional: none set reports vigil's own figures only.

use super::ConfigError;
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ResourcesConfig {
    /// The model server's process id.
    pub model_pid: Option<u32>,
    /// A file whose content is the model server's pid (surrounding whitespace ignored).
    pub model_pid_file: Option<PathBuf>,
    /// A substring of the model server's command name or command line (e.g. "mlserver").
    /// The oldest matching process other than vigil is taken (the parent of any workers).
    pub model_process_name: Option<String>,
    /// A cgroup v2 directory, e.g. "/sys/fs/cgroup" or "/host/cgroup/kubepods.slice/...".
    pub model_cgroup: Option<PathBuf>,
}

impl ResourcesConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let set: Vec<&str> = [
            ("resources.model_pid", self.model_pid.is_some()),
            ("resources.model_pid_file", self.model_pid_file.is_some()),
            ("resources.model_process_name", self.model_process_name.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, on)| on.then_some(k))
        .collect();
        if set.len() > 1 {
            return Err(ConfigError::invalid(
                set[1],
                &format!("both {} and {}", set[0], set[1]),
                "one way to find the model process: model_pid, model_pid_file or model_process_name",
            ));
        }
        if self.model_pid == Some(0) {
            return Err(ConfigError::invalid("resources.model_pid", "0", "a process id (a positive number)"));
        }
        if let Some(f) = &self.model_pid_file {
            if f.as_os_str().is_empty() {
                return Err(ConfigError::invalid("resources.model_pid_file", "", "a path to a file holding a pid"));
            }
        }
        if let Some(n) = &self.model_process_name {
            if n.trim().is_empty() {
                return Err(ConfigError::invalid(
                    "resources.model_process_name",
                    n,
                    "a non-empty part of the model server's command name or command line",
                ));
            }
        }
        if let Some(dir) = &self.model_cgroup {
            if !dir.is_dir() {
                return Err(ConfigError::invalid(
                    "resources.model_cgroup",
                    &dir.display().to_string(),
                    "an existing cgroup v2 directory (one holding cpu.stat), e.g. \"/sys/fs/cgroup\"",
                ));
            }
        }
        Ok(())
    }
}
