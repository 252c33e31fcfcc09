//! `[privacy]`: what is redacted before anything reaches the prediction log, the saved reference,
//! the drift windows, exports or webhooks (see `src/privacy/` and docs/privacy.md).
//!
//! Validation checks the shape of each rule (one of `feature` / `path`, the keys its action
//! takes); whether a salt is available for `hash` is checked at start
//! ([`PrivacyConfig::salt`]), because the salt lives in the environment or a secret file, not in
//! the config.

use super::ConfigError;
use serde::Deserialize;
use std::path::PathBuf;

/// The environment variable read for the salt when `privacy.salt_env` is not set.
pub const DEFAULT_SALT_ENV: &str = "VIGIL_PRIVACY_SALT";

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacyConfig {
    /// Environment variable holding the secret salt of `hash` (default VIGIL_PRIVACY_SALT).
    pub salt_env: String,
    /// File holding the salt (trailing newline ignored); the environment variable wins when set.
    pub salt_file: Option<PathBuf>,
    /// Detectors run over every string value without a rule: "email", "phone", "card".
    pub detect: Vec<Detector>,
    /// What a detected substring becomes: "mask" ("[email]"), "hash" ("h:…") or "drop" ("").
    pub detect_action: DetectAction,
    pub rules: Vec<RuleConfig>,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        PrivacyConfig {
            salt_env: DEFAULT_SALT_ENV.into(),
            salt_file: None,
            detect: vec![Detector::Email, Detector::Phone, Detector::Card],
            detect_action: DetectAction::Mask,
            rules: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Detector {
    Email,
    Phone,
    Card,
}

impl Detector {
    pub fn as_str(self) -> &'static str {
        match self {
            Detector::Email => "email",
            Detector::Phone => "phone",
            Detector::Card => "card",
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum DetectAction {
    #[default]
    Mask,
    Hash,
    Drop,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ActionName {
    Drop,
    Hash,
    Mask,
    Generalize,
}

/// One `[[privacy.rules]]` entry, as written.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// A schema column (feature or prediction) by name.
    pub feature: Option<String>,
    /// A JSON pointer into a request or response body: "/inputs/2", "/inputs/2/data", a JSON
    /// codec's configured pointer, or the pointer of a `performance.segments` entry.
    pub path: Option<String>,
    pub action: Option<ActionName>,
    /// `mask`: characters kept at the end (default 4).
    pub keep_last: Option<usize>,
    /// `generalize`: ascending bucket edges; a value becomes "[lo,hi)", "<first" or ">=last".
    pub buckets: Option<Vec<f64>>,
    /// `generalize`: round to the nearest multiple (the value stays a number).
    pub round: Option<f64>,
}

impl PrivacyConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.salt_env.trim().is_empty() {
            return Err(ConfigError::invalid(
                "privacy.salt_env",
                &self.salt_env,
                "the name of an environment variable (default VIGIL_PRIVACY_SALT)",
            ));
        }
        for (i, r) in self.rules.iter().enumerate() {
            let key = |field: &str| format!("privacy.rules[{i}].{field}");
            match (&r.feature, &r.path) {
                (Some(_), Some(_)) | (None, None) => {
                    return Err(ConfigError::invalid(
                        &key("feature"),
                        r.feature.as_deref().unwrap_or(""),
                        "exactly one of feature (a column name) or path (a JSON pointer)",
                    ))
                }
                (Some(f), None) if f.trim().is_empty() => {
                    return Err(ConfigError::invalid(&key("feature"), f, "a column name"))
                }
                (None, Some(p)) if !p.starts_with('/') => {
                    return Err(ConfigError::invalid(
                        &key("path"),
                        p,
                        "a JSON pointer starting with / (e.g. \"/inputs/2/data\")",
                    ))
                }
                _ => {}
            }
            let Some(action) = r.action else {
                return Err(ConfigError::invalid(&key("action"), "", "one of drop, hash, mask, generalize"));
            };
            let takes = |name: &str, set: bool, ok: bool| -> Result<(), ConfigError> {
                if set && !ok {
                    return Err(ConfigError::invalid(
                        &key(name),
                        "(set)",
                        format!(
                            "{name} only with action = {}",
                            if name == "keep_last" { "\"mask\"" } else { "\"generalize\"" }
                        ),
                    ));
                }
                Ok(())
            };
            takes("keep_last", r.keep_last.is_some(), action == ActionName::Mask)?;
            takes("buckets", r.buckets.is_some(), action == ActionName::Generalize)?;
            takes("round", r.round.is_some(), action == ActionName::Generalize)?;
            if action == ActionName::Generalize {
                match (&r.buckets, r.round) {
                    (Some(b), None) => {
                        let ok = !b.is_empty() && b.iter().all(|x| x.is_finite()) && b.windows(2).all(|w| w[0] < w[1]);
                        if !ok {
                            return Err(ConfigError::invalid(
                                &key("buckets"),
                                &format!("{b:?}"),
                                "at least one finite edge, strictly ascending, e.g. [0, 18, 30, 50, 65]",
                            ));
                        }
                    }
                    (None, Some(x)) if !(x.is_finite() && x > 0.0) => {
                        return Err(ConfigError::invalid(&key("round"), &x.to_string(), "a positive number, e.g. 10"))
                    }
                    (None, Some(_)) => {}
                    _ => {
                        return Err(ConfigError::invalid(
                            &key("buckets"),
                            "",
                            "exactly one of buckets (ascending edges) or round (a step) for action = \"generalize\"",
                        ))
                    }
                }
            }
            let target = |r: &RuleConfig| (r.feature.clone(), r.path.clone());
            if self.rules[..i].iter().any(|o| target(o) == target(r)) {
                return Err(ConfigError::invalid(
                    &key(if r.feature.is_some() { "feature" } else { "path" }),
                    r.feature.as_deref().or(r.path.as_deref()).unwrap_or(""),
                    "a column or path not named by an earlier rule (one action per value)",
                ));
            }
        }
        Ok(())
    }

    /// Rules that cannot work with the `[schema]` as configured: a dropped column cannot also be
    /// a listed feature, prediction or target (it is removed from the reference), and a column
    /// that becomes text (hash, mask, buckets) cannot be forced numeric.
    pub fn validate_against(&self, schema: &super::SchemaConfig) -> Result<(), ConfigError> {
        for (i, r) in self.rules.iter().enumerate() {
            let (Some(f), Some(action)) = (&r.feature, r.action) else { continue };
            let listed =
                schema.features.contains(f) || schema.predictions.contains(f) || schema.target.as_ref() == Some(f);
            if action == ActionName::Drop && listed {
                return Err(ConfigError::invalid(
                    &format!("privacy.rules[{i}].feature"),
                    f,
                    "a column not listed in schema.features, schema.predictions or schema.target: a dropped column \
                     is removed from the reference and the records (use hash or generalize to keep it watched)",
                ));
            }
            let text = matches!(action, ActionName::Hash | ActionName::Mask) || r.buckets.is_some();
            if text && schema.numeric.contains(f) {
                return Err(ConfigError::invalid(
                    &format!("privacy.rules[{i}].feature"),
                    f,
                    "a column not listed in schema.numeric: this action turns its values into text \
                     (generalize with round keeps numbers)",
                ));
            }
        }
        Ok(())
    }

    /// The key that needs a salt (the first `hash` rule, or `privacy.detect_action`), if any.
    pub fn needs_salt(&self) -> Option<String> {
        if let Some(i) = self.rules.iter().position(|r| r.action == Some(ActionName::Hash)) {
            return Some(format!("privacy.rules[{i}].action"));
        }
        (self.detect_action == DetectAction::Hash && !self.detect.is_empty()).then(|| "privacy.detect_action".into())
    }

    /// The secret salt: the environment variable `salt_env`, else `salt_file`. `Ok(None)` when
    /// neither is set and no rule hashes; an error naming the key that needs it otherwise.
    pub fn salt(&self) -> Result<Option<Vec<u8>>, ConfigError> {
        let from_env = std::env::var_os(&self.salt_env).filter(|v| !v.is_empty());
        let salt = match (from_env, &self.salt_file) {
            (Some(v), _) => Some(v.into_encoded_bytes()),
            (None, Some(f)) => {
                let mut bytes = std::fs::read(f).map_err(|e| {
                    ConfigError::invalid(
                        "privacy.salt_file",
                        &f.display().to_string(),
                        format!("a readable file ({e})"),
                    )
                })?;
                while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    bytes.pop();
                }
                (!bytes.is_empty()).then_some(bytes)
            }
            (None, None) => None,
        };
        match (&salt, self.needs_salt()) {
            (None, Some(key)) => Err(ConfigError::invalid(
                &key,
                "hash",
                format!(
                    "a secret salt for the keyed hash: set the environment variable {} (privacy.salt_env) or privacy.salt_file",
                    self.salt_env
                ),
            )),
            (Some(s), Some(key)) if s.len() < 16 => Err(ConfigError::invalid(
                &key,
                "hash",
                format!("a salt of at least 16 bytes in {} or privacy.salt_file (it has {})", self.salt_env, s.len()),
            )),
            _ => Ok(salt),
        }
    }
}
