//! JSON Lines: one flat object per line, read in two streaming passes. Keys keep their order of
//! first appearance, which `serde_json::Value` (a sorted map without `preserve_order`) would lose,
//! hence the small visitors below.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::io::{BufRead, Read};

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{
    format_number, Builder, Column, Location, Picker, ReferenceError, Source, Table, MAX_COLUMNS, MAX_LINE_BYTES,
};

pub(super) fn read(source: Source<'_>, origin: &str, max_rows: usize, seed: u64) -> Result<Table, ReferenceError> {
    // Pass 1: every line parsed; columns, kinds, row count.
    let mut names: Vec<String> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    // Per column: (has a number, has a string or boolean, row that last set it + 1).
    let mut seen: Vec<(bool, bool, usize)> = Vec::new();
    let mut rows = 0usize;
    let mut lines = Lines::new(source.open(origin)?);
    while let Some((line, text)) = lines.next(origin)? {
        let row = parse_row(text, line, origin)?;
        for (key, value) in row.0 {
            let i = match index.get(key.as_ref()) {
                Some(&i) => i,
                None => {
                    if key.is_empty() {
                        return Err(ReferenceError::invalid(
                            origin,
                            Location::line(line),
                            "expected non-empty keys, found the key \"\"",
                        ));
                    }
                    if names.len() == MAX_COLUMNS {
                        return Err(ReferenceError::invalid(
                            origin,
                            Location::cell_at_line(line, &key),
                            format!("expected at most {MAX_COLUMNS} distinct keys (columns), found more"),
                        ));
                    }
                    index.insert(key.clone().into_owned(), names.len());
                    names.push(key.clone().into_owned());
                    seen.push((false, false, 0));
                    names.len() - 1
                }
            };
            let s = &mut seen[i];
            if s.2 == rows + 1 {
                return Err(ReferenceError::invalid(
                    origin,
                    Location::cell_at_line(line, &key),
                    "expected each key once per object, found it twice",
                ));
            }
            s.2 = rows + 1;
            match value {
                Value::Null => {}
                Value::Num(_) => s.0 = true,
                Value::Str(_) | Value::Bool(_) => s.1 = true,
                Value::Nested(what) => {
                    return Err(ReferenceError::invalid(
                        origin,
                        Location::cell_at_line(line, &key),
                        format!("expected a number, string, boolean or null, found {what}"),
                    ));
                }
            }
        }
        rows += 1;
    }

    // Pass 2: parse only the picked lines, typed.
    let mut picker = Picker::new(rows, max_rows, seed);
    let mut builders: Vec<Builder> = seen.iter().map(|s| Builder::new(s.1, picker.total())).collect();
    let mut lines = Lines::new(source.open(origin)?);
    let mut row = 0usize;
    let mut taken = 0usize;
    while !picker.done() {
        let Some((line, text)) = lines.next(origin)? else { break };
        if row >= rows {
            return Err(changed(origin, line));
        }
        if picker.take(row) {
            for b in builders.iter_mut() {
                match b {
                    Builder::Num(v) => v.push(f64::NAN),
                    Builder::Cat(v) => v.push(None),
                }
            }
            let parsed = parse_row(text, line, origin).map_err(|_| changed(origin, line))?;
            let mut numbers = NumberTokens { line: text, at: 0 };
            for (key, value) in parsed.0 {
                let value = match value {
                    Value::Num(x) => Value::Num(numbers.exact(x)),
                    other => other,
                };
                let Some(&i) = index.get(key.as_ref()) else { return Err(changed(origin, line)) };
                match (&mut builders[i], value) {
                    (_, Value::Null) => {}
                    (Builder::Num(v), Value::Num(x)) => *v.last_mut().expect("pushed above") = x,
                    (Builder::Cat(v), Value::Num(x)) => *v.last_mut().expect("pushed above") = Some(format_number(x)),
                    (Builder::Cat(v), Value::Str(s)) => *v.last_mut().expect("pushed above") = Some(s.into_owned()),
                    (Builder::Cat(v), Value::Bool(b)) => {
                        *v.last_mut().expect("pushed above") = Some(if b { "true" } else { "false" }.to_owned())
                    }
                    _ => return Err(changed(origin, line)),
                }
            }
            taken += 1;
        }
        row += 1;
    }
    if taken != picker.total() {
        return Err(changed(origin, 0));
    }
    let columns = names.into_iter().zip(builders).map(|(name, b)| Column { name, data: b.finish() }).collect();
    Ok(Table { columns, rows: taken })
}

fn changed(origin: &str, line: u64) -> ReferenceError {
    let at = if line > 0 { Location::line(line) } else { Location::default() };
    ReferenceError::invalid(origin, at, "the input changed while it was being read; load it again")
}

fn parse_row<'a>(text: &'a [u8], line: u64, origin: &str) -> Result<Row<'a>, ReferenceError> {
    serde_json::from_slice::<Row<'a>>(text).map_err(|e| {
        let first = text.iter().find(|b| !b.is_ascii_whitespace());
        let message = if first == Some(&b'[') {
            "expected one JSON object per line (JSON Lines), found a JSON array; write each element on its own line"
                .to_owned()
        } else {
            let full = e.to_string();
            let suffix = format!(" at line {} column {}", e.line(), e.column());
            let bare = full.strip_suffix(&suffix).unwrap_or(&full);
            format!("expected a JSON object, found invalid JSON at character {}: {bare}", e.column())
        };
        ReferenceError::invalid(origin, Location::line(line), message)
    })
}

/// The number tokens of a flat JSON line, in order, to re-read each number with std's correctly
/// rounded parser: serde_json without its `float_roundtrip` feature (not enabled here, it would
/// slow every JSON float in the proxy) can be one ulp off for 17-digit numbers, which would break
/// `to_jsonl` → `parse` identity.
struct NumberTokens<'a> {
    line: &'a [u8],
    at: usize,
}

impl NumberTokens<'_> {
    /// The next number token's exact value; `fallback` (serde_json's) if the token is not found.
    fn exact(&mut self, fallback: f64) -> f64 {
        let line = self.line;
        let mut i = self.at;
        while i < line.len() {
            match line[i] {
                b'"' => {
                    i += 1;
                    while i < line.len() {
                        match line[i] {
                            b'\\' => i += 2,
                            b'"' => {
                                i += 1;
                                break;
                            }
                            _ => i += 1,
                        }
                    }
                }
                b'-' | b'0'..=b'9' => {
                    let start = i;
                    while i < line.len() && matches!(line[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') {
                        i += 1;
                    }
                    self.at = i;
                    let token = std::str::from_utf8(&line[start..i]).ok();
                    return token.and_then(|t| t.parse::<f64>().ok()).filter(|x| x.is_finite()).unwrap_or(fallback);
                }
                _ => i += 1,
            }
        }
        self.at = i;
        fallback
    }
}

/// Non-blank lines with their 1-based physical line numbers; `\r\n` and a leading BOM handled.
struct Lines<'a> {
    reader: Box<dyn BufRead + 'a>,
    buf: Vec<u8>,
    line: u64,
}

impl<'a> Lines<'a> {
    fn new(reader: Box<dyn BufRead + 'a>) -> Lines<'a> {
        Lines { reader, buf: Vec::with_capacity(1024), line: 0 }
    }

    fn next(&mut self, origin: &str) -> Result<Option<(u64, &[u8])>, ReferenceError> {
        loop {
            self.buf.clear();
            let limit = MAX_LINE_BYTES as u64 + 2;
            let n = (&mut *self.reader)
                .take(limit)
                .read_until(b'\n', &mut self.buf)
                .map_err(|e| ReferenceError::io(origin, e))?;
            if n == 0 {
                return Ok(None);
            }
            self.line += 1;
            let buf = self.buf.as_slice();
            let mut end = buf.len();
            if buf[..end].ends_with(b"\n") {
                end -= 1;
            }
            if buf[..end].ends_with(b"\r") {
                end -= 1;
            }
            if end > MAX_LINE_BYTES {
                return Err(ReferenceError::invalid(
                    origin,
                    Location::line(self.line),
                    format!("expected lines of at most {MAX_LINE_BYTES} bytes, found a longer one"),
                ));
            }
            let start = if self.line == 1 && buf[..end].starts_with(b"\xEF\xBB\xBF") { 3 } else { 0 };
            if buf[start..end].iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Ok(Some((self.line, &self.buf[start..end])));
        }
    }
}

/// One JSON line: keys in order, flat values.
struct Row<'a>(Vec<(Cow<'a, str>, Value<'a>)>);

enum Value<'a> {
    Null,
    Num(f64),
    Str(Cow<'a, str>),
    Bool(bool),
    /// "an array" or "an object".
    Nested(&'static str),
}

struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Deserialize<'de> for Value<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Value<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Value<'de>, E> {
                Ok(Value::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Value<'de>, E> {
                Ok(Value::Null)
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<Value<'de>, E> {
                Ok(Value::Bool(b))
            }
            fn visit_i64<E: de::Error>(self, x: i64) -> Result<Value<'de>, E> {
                Ok(Value::Num(x as f64))
            }
            fn visit_u64<E: de::Error>(self, x: u64) -> Result<Value<'de>, E> {
                Ok(Value::Num(x as f64))
            }
            fn visit_f64<E: de::Error>(self, x: f64) -> Result<Value<'de>, E> {
                Ok(Value::Num(x))
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Value<'de>, E> {
                Ok(Value::Str(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Value<'de>, E> {
                Ok(Value::Str(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Value<'de>, E> {
                Ok(Value::Str(Cow::Owned(s)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Value::Nested("an array"))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value<'de>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Value::Nested("an object"))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Row<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Row<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Row<'de>, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8).min(MAX_COLUMNS));
                while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
                    let value = map.next_value::<Value<'de>>()?;
                    fields.push((key, value));
                }
                Ok(Row(fields))
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_tokens_skip_strings_and_escapes() {
        let line = br#"{"a\"1":"x\\","n2":"-5","b":1.0265909819511759e92, "c":null,"d":-0.5e-3}"#;
        let mut t = NumberTokens { line, at: 0 };
        assert_eq!(t.exact(0.0), 1.0265909819511759e92);
        assert_eq!(t.exact(0.0), -0.5e-3);
        assert_eq!(t.exact(7.0), 7.0);
    }

    #[test]
    fn lines_skip_blanks_and_strip_crlf_and_bom() {
        let mut lines = Lines::new(Box::new(&b"\xEF\xBB\xBF{}\r\n \t\r\n\n{\"a\":1}"[..]));
        assert_eq!(lines.next("x").unwrap(), Some((1, &b"{}"[..])));
        assert_eq!(lines.next("x").unwrap(), Some((4, &b"{\"a\":1}"[..])));
        assert_eq!(lines.next("x").unwrap(), None);
    }
}
