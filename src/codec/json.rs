//! Any JSON body, tensors located by an RFC 6901 pointer (rules in the module doc of `codec`).
//!
//! The pointer is followed while the body streams by: keys and elements off the path are skipped
//! without being built, and the target is decoded in place.

use super::walk::{batch, run, Ctx, Handler, Key, Target, Visit};
use super::{Batch, DecodeError, Reason, Tensor};
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess};
use serde::Deserializer as _;

/// Checks that `pointer` is an RFC 6901 JSON pointer: `""`, or `/`-separated tokens in which `~`
/// is only ever followed by `0` or `1`. For config validation; the error says what is wrong.
pub fn check_pointer(pointer: &str) -> Result<(), String> {
    parse(pointer).map(|_| ())
}

/// The unescaped reference tokens of a pointer.
fn parse(pointer: &str) -> Result<Vec<String>, String> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err("a JSON pointer is \"\" or starts with \"/\"".to_owned());
    };
    rest.split('/')
        .map(|tok| {
            let mut out = String::with_capacity(tok.len());
            let mut chars = tok.chars();
            while let Some(c) = chars.next() {
                match c {
                    '~' => match chars.next() {
                        Some('0') => out.push('~'),
                        Some('1') => out.push('/'),
                        _ => return Err(format!("\"~\" must be followed by 0 or 1 in token {tok:?}")),
                    },
                    c => out.push(c),
                }
            }
            Ok(out)
        })
        .collect()
}

/// An array index token: decimal digits, no leading zero (RFC 6901 §4).
fn index(tok: &str) -> Option<usize> {
    if tok.is_empty() || !tok.bytes().all(|b| b.is_ascii_digit()) || (tok.len() > 1 && tok.starts_with('0')) {
        return None;
    }
    tok.parse().ok()
}

/// Decodes the value at `pointer` in `body`; `role` ("features" / "predictions") names it in
/// errors.
pub(crate) fn decode(body: &[u8], role: &str, pointer: &str) -> Result<Batch, DecodeError> {
    let toks = parse(pointer)
        .map_err(|e| DecodeError::new(Reason::PointerNotFound, format!("{role} pointer {pointer:?}: {e}")))?;
    let mut found = None;
    let mut deepest = 0;
    run(body, pointer, false, |ctx, de| {
        let nav = Nav { ctx, toks: &toks, depth: 0, found: &mut found, deepest: &mut deepest };
        de.deserialize_any(Visit(nav))
    })?;
    match found {
        Some(tensors) => Ok(batch(tensors)),
        None => {
            let missing: Vec<&str> = pointer.split('/').take(deepest + 2).collect();
            let detail = format!("{role} pointer {pointer:?}: nothing at {:?}", missing.join("/"));
            Err(DecodeError::new(Reason::PointerNotFound, detail))
        }
    }
}

/// Follows the pointer's tokens from `depth` on; at the end, decodes the target into `found`.
struct Nav<'a, 'p> {
    ctx: &'a mut Ctx,
    toks: &'p [String],
    depth: usize,
    found: &'a mut Option<Vec<Tensor>>,
    /// How many tokens matched, at most.
    deepest: &'a mut usize,
}

impl<'a> Nav<'a, '_> {
    fn here(&self) -> bool {
        self.depth == self.toks.len()
    }

    /// Splits into the target decoder and the slot for its result.
    fn target(self) -> (Target<'a>, &'a mut Option<Vec<Tensor>>) {
        (Target { ctx: self.ctx, objects: true, columns: true, name: None }, self.found)
    }

    fn deeper(&mut self) -> Nav<'_, '_> {
        *self.deepest = (*self.deepest).max(self.depth + 1);
        Nav { ctx: self.ctx, toks: self.toks, depth: self.depth + 1, found: self.found, deepest: self.deepest }
    }

    /// A scalar: the target if the pointer ends here, else nothing to follow.
    fn scalar<E: de::Error>(self, decode: impl FnOnce(Target<'a>) -> Result<Vec<Tensor>, E>) -> Result<(), E> {
        if self.here() {
            let (target, found) = self.target();
            *found = Some(decode(target)?);
        }
        Ok(())
    }
}

impl<'de> Handler<'de> for Nav<'_, '_> {
    type Out = ();
    fn ctx(&mut self) -> &mut Ctx {
        self.ctx
    }
    fn expecting(&self) -> &'static str {
        "any JSON value"
    }
    fn num<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.scalar(|t| t.num(v))
    }
    fn boolean<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.scalar(|t| t.boolean(v))
    }
    fn null<E: de::Error>(self) -> Result<(), E> {
        self.scalar(|t| t.null())
    }
    fn text<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.scalar(|t| t.text(v))
    }
    fn seq<A: SeqAccess<'de>>(mut self, mut s: A) -> Result<(), A::Error> {
        if self.here() {
            let (target, found) = self.target();
            *found = Some(target.seq(s)?);
            return Ok(());
        }
        let want = index(&self.toks[self.depth]);
        let mut i = 0;
        loop {
            let more = if Some(i) == want {
                s.next_element_seed(Visit(self.deeper()))?.is_some()
            } else {
                s.next_element::<IgnoredAny>()?.is_some()
            };
            if !more {
                return Ok(());
            }
            i += 1;
        }
    }
    fn map<A: MapAccess<'de>>(mut self, mut m: A) -> Result<(), A::Error> {
        if self.here() {
            let (target, found) = self.target();
            *found = Some(target.map(m)?);
            return Ok(());
        }
        while let Some(key) = m.next_key_seed(Key)? {
            if key == self.toks[self.depth].as_str() {
                m.next_value_seed(Visit(self.deeper()))?;
            } else {
                m.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}
