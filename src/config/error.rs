//! Configuration errors that name the key, the value and what was expected.

use std::fmt;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{origin}: TOML syntax error at line {line}, column {column}: {message}")]
    Syntax { origin: String, line: usize, column: usize, message: String },
    #[error("{0}")]
    Invalid(Invalid),
}

/// One bad key: where it is, what it holds, what vigil wanted instead.
#[derive(Debug)]
pub struct Invalid {
    pub key: String,
    pub value: String,
    pub expected: String,
    /// `file:line` when the value came from a file.
    pub location: Option<String>,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid config key `{}`: value {} but expected {}", self.key, self.value, self.expected)?;
        if let Some(loc) = &self.location {
            write!(f, " (at {loc})")?;
        }
        Ok(())
    }
}

impl ConfigError {
    pub fn invalid(key: &str, value: &str, expected: impl Into<String>) -> ConfigError {
        ConfigError::Invalid(Invalid {
            key: key.to_owned(),
            value: format!("{value:?}"),
            expected: expected.into(),
            location: None,
        })
    }

    pub(super) fn syntax(origin: &str, text: &str, e: &toml::de::Error) -> ConfigError {
        let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((0, 0));
        ConfigError::Syntax { origin: origin.to_owned(), line, column, message: e.message().trim().to_owned() }
    }

    pub(super) fn from_serde(origin: &str, text: &str, e: serde_path_to_error::Error<toml::de::Error>) -> ConfigError {
        let key = match e.path().to_string() {
            p if p == "." || p.is_empty() => "(top level)".to_owned(),
            p => p,
        };
        let inner = e.into_inner();
        let (value, location) = match inner.span() {
            Some(span) => {
                let (line, _) = line_col(text, span.start);
                let raw = text.get(span.clone()).unwrap_or("").trim();
                (raw.to_owned(), Some(format!("{origin}:{line}")))
            }
            None => (String::new(), Some(origin.to_owned())),
        };
        let message = inner.message().trim().to_owned();
        // "missing field `url`": name the missing key itself.
        if let Some(field) = message.strip_prefix("missing field `").and_then(|m| m.strip_suffix('`')) {
            let key = if key == "(top level)" { field.to_owned() } else { format!("{key}.{field}") };
            return ConfigError::Invalid(Invalid {
                key,
                value: "(missing)".into(),
                expected: "this key to be set: it has no default".into(),
                location,
            });
        }
        ConfigError::Invalid(Invalid {
            key,
            value: if value.is_empty() { "(missing)".into() } else { value },
            expected: expected_from_serde(&message),
            location,
        })
    }
}

/// serde says "invalid type: string \"x\", expected usize"; keep the part that says what was
/// wanted, in words an operator reads without knowing Rust's integer types.
fn expected_from_serde(message: &str) -> String {
    let wanted = match message.split_once(", expected ") {
        Some((_, wanted)) => wanted,
        None => message,
    };
    match wanted {
        "usize" | "u64" | "u32" | "u16" => "a non-negative integer".to_owned(),
        "invalid socket address syntax" | "socket address" => {
            "a socket address, IP and port, such as \"0.0.0.0:8080\" (host names are not resolved)".to_owned()
        }
        "a boolean" | "bool" => "true or false".to_owned(),
        w if message.starts_with("unknown field") => format!("a known key, one of {}", w.trim_start_matches("one of ")),
        w if message.contains(", expected ") => w.to_owned(),
        // serde said what is wrong but not what it wanted.
        problem => format!("a valid value ({problem})"),
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map(|i| offset - i).unwrap_or(offset + 1);
    (line, column)
}
