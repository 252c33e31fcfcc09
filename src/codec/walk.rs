//! The streaming machinery every codec shares: one serde_json pass with hand-written visitors.
//!
//! A [`Handler`] says what it accepts at one position of the document (each method has a default
//! that fails with `wrong_type`, or the handler's own reason); [`Visit`] adapts it to serde's
//! `Visitor` / `DeserializeSeed`. Our own failures are kept in [`Ctx::err`] (serde only carries a
//! placeholder error up the stack) and each level on the way up adds its path segment, so the
//! detail reads `inputs[1].data[3]: …` and costs nothing unless something fails.

use super::{Batch, DecodeError, Reason, Tensor, Values, MAX_VALUES};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

/// JSON nests no deeper than this in serde_json (its recursion limit).
const MAX_DEPTH: usize = 128;

/// One path segment of an error's location.
enum Seg {
    Key(String),
    Index(usize),
}

/// Our own failure, kept aside while serde unwinds.
struct Fail {
    reason: Reason,
    msg: String,
    /// Innermost first.
    path: Vec<Seg>,
}

/// Per-decode state: the failure (if any) and the value budget.
pub(crate) struct Ctx {
    err: Option<Fail>,
    budget: usize,
}

impl Ctx {
    fn new() -> Self {
        Ctx { err: None, budget: MAX_VALUES }
    }

    /// Records a failure and returns the placeholder error that carries it up through serde.
    pub fn fail<E: de::Error>(&mut self, reason: Reason, msg: impl Into<String>) -> E {
        self.err = Some(Fail { reason, msg: msg.into(), path: Vec::new() });
        E::custom("vigil codec")
    }

    /// Adds a path segment to a failure on its way up (a no-op for serde's own errors).
    pub fn at_index<E>(&mut self, e: E, i: usize) -> E {
        if let Some(f) = &mut self.err {
            f.path.push(Seg::Index(i));
        }
        e
    }

    /// Adds a key segment to a failure on its way up.
    pub fn at_key<E>(&mut self, e: E, key: &str) -> E {
        if let Some(f) = &mut self.err {
            f.path.push(Seg::Key(key.to_owned()));
        }
        e
    }

    /// Counts one value against [`MAX_VALUES`].
    #[inline]
    pub fn charge<E: de::Error>(&mut self) -> Result<(), E> {
        if self.budget == 0 {
            return Err(self.fail(Reason::TooLarge, format!("more than {MAX_VALUES} values in the body")));
        }
        self.budget -= 1;
        Ok(())
    }

    fn take(&mut self, prefix: &str) -> Option<DecodeError> {
        let f = self.err.take()?;
        let mut detail = String::from(prefix);
        for seg in f.path.iter().rev() {
            match seg {
                Seg::Key(k) if detail.is_empty() => detail.push_str(k),
                Seg::Key(k) => {
                    detail.push('.');
                    detail.push_str(k);
                }
                Seg::Index(i) => {
                    detail.push('[');
                    detail.push_str(&i.to_string());
                    detail.push(']');
                }
            }
        }
        if !detail.is_empty() {
            detail.push_str(": ");
        }
        detail.push_str(&f.msg);
        Some(DecodeError::new(f.reason, detail))
    }
}

/// Runs one decode over `body`: `top` builds the top-level seed. `prefix` starts every detail (the
/// Json codec's pointer). With `tail_unsupported`, bytes after the JSON are `unsupported` (V2:
/// Triton's binary tail), else `not_json`.
pub(crate) fn run<'de, T>(
    body: &'de [u8],
    prefix: &str,
    tail_unsupported: bool,
    top: impl FnOnce(
        &mut Ctx,
        &mut serde_json::Deserializer<serde_json::de::SliceRead<'de>>,
    ) -> Result<T, serde_json::Error>,
) -> Result<T, DecodeError> {
    if body.iter().all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r')) {
        return Err(DecodeError::new(Reason::Empty, format!("{} bytes, no JSON", body.len())));
    }
    let mut ctx = Ctx::new();
    let mut de = serde_json::Deserializer::from_slice(body);
    let out = match top(&mut ctx, &mut de) {
        Ok(out) => out,
        Err(e) => return Err(ctx.take(prefix).unwrap_or_else(|| classify(e))),
    };
    if let Err(e) = de.end() {
        return Err(if tail_unsupported {
            DecodeError::new(
                Reason::Unsupported,
                format!("bytes after the JSON body ({e}): Triton's binary data extension is not decoded"),
            )
        } else {
            DecodeError::new(Reason::NotJson, e.to_string())
        });
    }
    Ok(out)
}

/// serde_json's own errors (ours are in [`Ctx`]).
fn classify(e: serde_json::Error) -> DecodeError {
    use serde_json::error::Category;
    let msg = e.to_string();
    match e.classify() {
        Category::Eof => DecodeError::new(Reason::Truncated, msg),
        _ if msg.starts_with("recursion limit exceeded") => {
            DecodeError::new(Reason::TooLarge, format!("JSON nested deeper than {MAX_DEPTH} ({msg})"))
        }
        _ => DecodeError::new(Reason::NotJson, msg),
    }
}

/// What one position of the document accepts. Each default rejects with [`Handler::wrong`].
pub(crate) trait Handler<'de>: Sized {
    type Out;
    fn ctx(&mut self) -> &mut Ctx;
    /// What belongs here, for the error: "a list", "a string"...
    fn expecting(&self) -> &'static str;
    /// The reason for a value of the wrong JSON type.
    fn wrong_reason(&self) -> Reason {
        Reason::WrongType
    }
    fn wrong<E: de::Error>(&mut self, found: &str) -> E {
        let (reason, expecting) = (self.wrong_reason(), self.expecting());
        self.ctx().fail(reason, format!("expected {expecting}, found {found}"))
    }

    fn num<E: de::Error>(mut self, _v: f64) -> Result<Self::Out, E> {
        Err(self.wrong("a number"))
    }
    fn uint<E: de::Error>(self, v: u64) -> Result<Self::Out, E> {
        self.num(v as f64)
    }
    fn int<E: de::Error>(self, v: i64) -> Result<Self::Out, E> {
        self.num(v as f64)
    }
    fn boolean<E: de::Error>(mut self, _v: bool) -> Result<Self::Out, E> {
        Err(self.wrong("a boolean"))
    }
    fn null<E: de::Error>(mut self) -> Result<Self::Out, E> {
        Err(self.wrong("null"))
    }
    fn text<E: de::Error>(mut self, _v: &str) -> Result<Self::Out, E> {
        Err(self.wrong("a string"))
    }
    fn seq<A: SeqAccess<'de>>(mut self, _s: A) -> Result<Self::Out, A::Error> {
        Err(self.wrong("a list"))
    }
    fn map<A: MapAccess<'de>>(mut self, _m: A) -> Result<Self::Out, A::Error> {
        Err(self.wrong("an object"))
    }
}

/// Adapts a [`Handler`] to serde.
pub(crate) struct Visit<H>(pub H);

impl<'de, H: Handler<'de>> DeserializeSeed<'de> for Visit<H> {
    type Value = H::Out;
    #[inline]
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<H::Out, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, H: Handler<'de>> Visitor<'de> for Visit<H> {
    type Value = H::Out;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.expecting())
    }
    #[inline]
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<H::Out, E> {
        self.0.boolean(v)
    }
    #[inline]
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<H::Out, E> {
        self.0.int(v)
    }
    #[inline]
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<H::Out, E> {
        self.0.uint(v)
    }
    #[inline]
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<H::Out, E> {
        self.0.num(v)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<H::Out, E> {
        self.0.text(v)
    }
    fn visit_unit<E: de::Error>(self) -> Result<H::Out, E> {
        self.0.null()
    }
    fn visit_none<E: de::Error>(self) -> Result<H::Out, E> {
        self.0.null()
    }
    fn visit_seq<A: SeqAccess<'de>>(self, s: A) -> Result<H::Out, A::Error> {
        self.0.seq(s)
    }
    fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<H::Out, A::Error> {
        self.0.map(m)
    }
}

/// An object key, borrowed from the body when it has no escapes.
pub(crate) struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// Skips the rest of a list.
pub(crate) fn drain_seq<'de, A: SeqAccess<'de>>(mut s: A) -> Result<(), A::Error> {
    while s.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

/// Skips the rest of an object.
pub(crate) fn drain_map<'de, A: MapAccess<'de>>(mut m: A) -> Result<(), A::Error> {
    while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

/// Any value; the text if it is a string (for an `error` field in a detail).
pub(crate) struct AnyText<'a> {
    pub ctx: &'a mut Ctx,
}

impl<'de> Handler<'de> for AnyText<'_> {
    type Out = Option<String>;
    fn ctx(&mut self) -> &mut Ctx {
        self.ctx
    }
    fn expecting(&self) -> &'static str {
        "anything"
    }
    fn text<E: de::Error>(self, v: &str) -> Result<Self::Out, E> {
        Ok(Some(v.to_owned()))
    }
    fn num<E: de::Error>(self, _: f64) -> Result<Self::Out, E> {
        Ok(None)
    }
    fn boolean<E: de::Error>(self, _: bool) -> Result<Self::Out, E> {
        Ok(None)
    }
    fn null<E: de::Error>(self) -> Result<Self::Out, E> {
        Ok(None)
    }
    fn seq<A: SeqAccess<'de>>(self, s: A) -> Result<Self::Out, A::Error> {
        drain_seq(s).map(|()| None)
    }
    fn map<A: MapAccess<'de>>(self, m: A) -> Result<Self::Out, A::Error> {
        drain_map(m).map(|()| None)
    }
}

// ---------------------------------------------------------------------------------------------
// Values of one tensor or column

/// The kind of values a column holds so far.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    /// No number or string seen yet (only nulls, or nothing).
    Unknown,
    Num,
    Text,
}

/// The values of one tensor or column as they arrive: numbers or strings, nulls held back until
/// the kind is known.
pub(crate) struct Acc {
    kind: Kind,
    nums: Vec<f64>,
    texts: Vec<String>,
    nulls: usize,
}

impl Acc {
    pub fn new(kind: Kind) -> Self {
        Acc { kind, nums: Vec::new(), texts: Vec::new(), nulls: 0 }
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Reserves room for `n` numbers (callers bound `n` by the body length).
    pub fn reserve_nums(&mut self, n: usize) {
        if self.kind == Kind::Num {
            self.nums.reserve(n);
        }
    }

    pub fn len(&self) -> usize {
        match self.kind {
            Kind::Unknown => self.nulls,
            Kind::Num => self.nums.len(),
            Kind::Text => self.texts.len(),
        }
    }

    #[inline]
    fn push_num<E: de::Error>(&mut self, ctx: &mut Ctx, v: f64) -> Result<(), E> {
        ctx.charge()?;
        match self.kind {
            Kind::Num => {}
            Kind::Unknown => {
                self.kind = Kind::Num;
                self.nums.resize(self.nulls, f64::NAN);
            }
            Kind::Text => return Err(ctx.fail(Reason::MixedTypes, "a number among strings")),
        }
        self.nums.push(v);
        Ok(())
    }

    fn push_text<E: de::Error>(&mut self, ctx: &mut Ctx, v: &str) -> Result<(), E> {
        ctx.charge()?;
        match self.kind {
            Kind::Text => {}
            Kind::Unknown => {
                self.kind = Kind::Text;
                self.texts.resize(self.nulls, String::new());
            }
            Kind::Num => return Err(ctx.fail(Reason::MixedTypes, format!("a string {:?} among numbers", clip(v)))),
        }
        self.texts.push(v.to_owned());
        Ok(())
    }

    fn push_null<E: de::Error>(&mut self, ctx: &mut Ctx) -> Result<(), E> {
        ctx.charge()?;
        match self.kind {
            Kind::Unknown => self.nulls += 1,
            Kind::Num => self.nums.push(f64::NAN),
            Kind::Text => self.texts.push(String::new()),
        }
        Ok(())
    }

    /// The values; a column of only nulls (or none) is numeric.
    pub fn finish(self) -> Values {
        match self.kind {
            Kind::Text => Values::Text(self.texts),
            Kind::Num => Values::Num(self.nums),
            Kind::Unknown => Values::Num(vec![f64::NAN; self.nulls]),
        }
    }

    /// The values as `kind` (for a V2 BYTES tensor of only nulls).
    pub fn finish_as(self, kind: Kind) -> Values {
        match (self.kind, kind) {
            (Kind::Unknown, Kind::Text) => Values::Text(vec![String::new(); self.nulls]),
            _ => self.finish(),
        }
    }
}

/// At most 40 characters of `s`, for error details.
pub(crate) fn clip(s: &str) -> Cow<'_, str> {
    match s.char_indices().nth(40) {
        Some((i, _)) => Cow::Owned(format!("{}…", &s[..i])),
        None => Cow::Borrowed(s),
    }
}

/// Flattens a value (scalar, or lists nested to any depth) into an [`Acc`].
pub(crate) struct Flat<'a> {
    pub acc: &'a mut Acc,
    pub ctx: &'a mut Ctx,
}

impl<'de> Handler<'de> for Flat<'_> {
    type Out = ();
    fn ctx(&mut self) -> &mut Ctx {
        self.ctx
    }
    fn expecting(&self) -> &'static str {
        "a number, string, boolean, null or list"
    }
    #[inline]
    fn num<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.acc.push_num(self.ctx, v)
    }
    fn boolean<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.acc.push_num(self.ctx, if v { 1.0 } else { 0.0 })
    }
    fn null<E: de::Error>(self) -> Result<(), E> {
        self.acc.push_null(self.ctx)
    }
    fn text<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.acc.push_text(self.ctx, v)
    }
    fn seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<(), A::Error> {
        let Flat { acc, ctx } = self;
        let mut i = 0;
        loop {
            match s.next_element_seed(Visit(Flat { acc: &mut *acc, ctx: &mut *ctx })) {
                Ok(Some(())) => i += 1,
                Ok(None) => return Ok(()),
                Err(e) => return Err(ctx.at_index(e, i)),
            }
        }
    }
    fn map<A: MapAccess<'de>>(self, m: A) -> Result<(), A::Error> {
        Err(object_value(self.ctx, m))
    }
}

/// The error for an object where a value belongs: TF-Serving's `{"b64": …}` is `unsupported`,
/// anything else `wrong_type`.
pub(crate) fn object_value<'de, A: MapAccess<'de>>(ctx: &mut Ctx, mut m: A) -> A::Error {
    match m.next_key_seed(Key) {
        Ok(Some(k)) if k == "b64" => {
            ctx.fail(Reason::Unsupported, "a TF-Serving {\"b64\": …} binary value (base64 is not decoded)")
        }
        Ok(_) => ctx.fail(Reason::WrongType, "an object where a value belongs"),
        Err(e) => e,
    }
}

// ---------------------------------------------------------------------------------------------
// Rows (V1 instances / predictions, Json arrays) and columns (V1 inputs / outputs, Json objects)

/// Above this many columns, object rows look keys up in a hash map.
const LINEAR_KEYS: usize = 16;

struct Col {
    name: String,
    acc: Acc,
    width: usize,
    /// The last row (1-based) that had this key.
    seen: usize,
}

enum Mode {
    /// No row yet.
    Empty,
    /// Rows are scalars.
    Scalar(Acc),
    /// Rows are lists of `width` values (flattened).
    List { acc: Acc, width: usize },
    /// Rows are objects: one column per key.
    Objects { cols: Vec<Col>, index: Option<HashMap<String, usize>> },
}

/// The rows decoded so far.
pub(crate) struct Rows {
    mode: Mode,
    rows: usize,
    objects: bool,
}

impl Rows {
    /// `objects`: whether rows may be objects (row form), or not (a column's rows).
    pub fn new(objects: bool) -> Self {
        Rows { mode: Mode::Empty, rows: 0, objects }
    }

    /// The tensors: one (named `name`) for scalar or list rows, one per key for object rows, none
    /// for no rows.
    pub fn finish(self, name: Option<String>) -> Vec<Tensor> {
        let rows = self.rows;
        match self.mode {
            Mode::Empty => Vec::new(),
            Mode::Scalar(acc) => vec![Tensor { name, rows, width: 1, values: acc.finish() }],
            Mode::List { acc, width } => vec![Tensor { name, rows, width, values: acc.finish() }],
            Mode::Objects { cols, .. } => cols
                .into_iter()
                .map(|c| Tensor { name: Some(c.name), rows, width: c.width, values: c.acc.finish() })
                .collect(),
        }
    }

    fn kind_name(&self) -> &'static str {
        match self.mode {
            Mode::Empty => "nothing",
            Mode::Scalar(_) => "a scalar",
            Mode::List { .. } => "a list",
            Mode::Objects { .. } => "an object",
        }
    }
}

/// A list of rows: the handler for `instances`, `predictions`, a column, a Json target list.
pub(crate) struct RowList<'a> {
    pub rows: &'a mut Rows,
    pub ctx: &'a mut Ctx,
}

impl<'de> Handler<'de> for RowList<'_> {
    type Out = ();
    fn ctx(&mut self) -> &mut Ctx {
        self.ctx
    }
    fn expecting(&self) -> &'static str {
        "a list of rows"
    }
    fn seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<(), A::Error> {
        let RowList { rows, ctx } = self;
        loop {
            let i = rows.rows;
            match s.next_element_seed(Visit(Row { rows: &mut *rows, ctx: &mut *ctx })) {
                Ok(Some(())) => rows.rows += 1,
                Ok(None) => return Ok(()),
                Err(e) => return Err(ctx.at_index(e, i)),
            }
        }
    }
}

/// One row of a [`RowList`].
struct Row<'a> {
    rows: &'a mut Rows,
    ctx: &'a mut Ctx,
}

impl Row<'_> {
    fn ragged<E: de::Error>(&mut self, this: &str) -> E {
        let was = self.rows.kind_name();
        self.ctx.fail(Reason::Ragged, format!("{this} row, row 0 was {was}"))
    }

    fn scalar<E: de::Error>(mut self, push: impl FnOnce(&mut Flat<'_>) -> Result<(), E>) -> Result<(), E> {
        if let Mode::Empty = self.rows.mode {
            self.rows.mode = Mode::Scalar(Acc::new(Kind::Unknown));
        }
        match &mut self.rows.mode {
            Mode::Scalar(acc) => push(&mut Flat { acc, ctx: self.ctx }),
            _ => Err(self.ragged("a scalar")),
        }
    }
}

impl<'de> Handler<'de> for Row<'_> {
    type Out = ();
    fn ctx(&mut self) -> &mut Ctx {
        self.ctx
    }
    fn expecting(&self) -> &'static str {
        "a row"
    }
    fn num<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.scalar(|f| f.acc.push_num(f.ctx, v))
    }
    fn boolean<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.scalar(|f| f.acc.push_num(f.ctx, if v { 1.0 } else { 0.0 }))
    }
    fn null<E: de::Error>(self) -> Result<(), E> {
        self.scalar(|f| f.acc.push_null(f.ctx))
    }
    fn text<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.scalar(|f| f.acc.push_text(f.ctx, v))
    }
    fn seq<A: SeqAccess<'de>>(mut self, s: A) -> Result<(), A::Error> {
        let first = matches!(self.rows.mode, Mode::Empty);
        if first {
            self.rows.mode = Mode::List { acc: Acc::new(Kind::Unknown), width: 0 };
        }
        let Mode::List { acc, width } = &mut self.rows.mode else {
            return Err(self.ragged("a list"));
        };
        let before = acc.len();
        Flat { acc: &mut *acc, ctx: &mut *self.ctx }.seq(s)?;
        let n = acc.len() - before;
        if first {
            *width = n;
        } else if n != *width {
            let w = *width;
            return Err(self.ctx.fail(Reason::Ragged, format!("{n} values, row 0 had {w}")));
        }
        Ok(())
    }
    fn map<A: MapAccess<'de>>(mut self, mut m: A) -> Result<(), A::Error> {
        if !self.rows.objects {
            return Err(object_value(self.ctx, m));
        }
        let first = matches!(self.rows.mode, Mode::Empty);
        if first {
            self.rows.mode = Mode::Objects { cols: Vec::new(), index: None };
        }
        let row = self.rows.rows + 1;
        let Mode::Objects { cols, index } = &mut self.rows.mode else {
            return Err(self.ragged("an object"));
        };
        let ctx = self.ctx;
        let mut pos = 0;
        while let Some(key) = m.next_key_seed(Key)? {
            if key == "b64" {
                return Err(
                    ctx.fail(Reason::Unsupported, "a TF-Serving {\"b64\": …} binary value (base64 is not decoded)")
                );
            }
            let c = match find_col(cols, index, &key, pos) {
                Some(c) => c,
                None if first => add_col(cols, index, &key),
                None => {
                    return Err(ctx.fail(Reason::Ragged, format!("key {:?} is not in row 0", clip(&key))));
                }
            };
            pos += 1;
            let col = &mut cols[c];
            if col.seen == row {
                return Err(ctx.fail(Reason::Ragged, format!("key {:?} twice", clip(&key))));
            }
            col.seen = row;
            let before = col.acc.len();
            if let Err(e) = m.next_value_seed(Visit(Flat { acc: &mut col.acc, ctx: &mut *ctx })) {
                return Err(ctx.at_key(e, &key));
            }
            let n = col.acc.len() - before;
            if first {
                col.width = n;
            } else if n != col.width {
                let w = col.width;
                let e = ctx.fail(Reason::Ragged, format!("{n} values, row 0 had {w}"));
                return Err(ctx.at_key(e, &key));
            }
        }
        if pos != cols.len() {
            let missing = cols.iter().find(|c| c.seen != row).map(|c| c.name.as_str()).unwrap_or("");
            return Err(ctx.fail(Reason::Ragged, format!("no key {:?}, which row 0 has", clip(missing))));
        }
        Ok(())
    }
}

/// The column for `key`: first at `pos` (rows usually repeat the first row's order), then by search.
fn find_col(cols: &[Col], index: &mut Option<HashMap<String, usize>>, key: &str, pos: usize) -> Option<usize> {
    if cols.get(pos).is_some_and(|c| c.name == key) {
        return Some(pos);
    }
    if cols.len() <= LINEAR_KEYS {
        return cols.iter().position(|c| c.name == key);
    }
    let index = index.get_or_insert_with(|| cols.iter().enumerate().map(|(i, c)| (c.name.clone(), i)).collect());
    index.get(key).copied()
}

fn add_col(cols: &mut Vec<Col>, index: &mut Option<HashMap<String, usize>>, key: &str) -> usize {
    let c = cols.len();
    cols.push(Col { name: key.to_owned(), acc: Acc::new(Kind::Unknown), width: 0, seen: 0 });
    if let Some(index) = index {
        index.insert(key.to_owned(), c);
    }
    c
}

/// A value decoded as rows: a list is rows, an object is columns (only where `columns`), a scalar
/// is one row of width 1. The handler for V1 `inputs`/`outputs` and a Json pointer's target.
pub(crate) struct Target<'a> {
    pub ctx: &'a mut Ctx,
    /// Whether list rows may be objects.
    pub objects: bool,
    /// Whether an object is columns (else it is `wrong_type`).
    pub columns: bool,
    /// The name for a list or scalar.
    pub name: Option<String>,
}

impl Target<'_> {
    fn scalar<E: de::Error>(self, push: impl FnOnce(&mut Flat<'_>) -> Result<(), E>) -> Result<Vec<Tensor>, E> {
        let mut acc = Acc::new(Kind::Unknown);
        push(&mut Flat { acc: &mut acc, ctx: self.ctx })?;
        Ok(vec![Tensor { name: self.name, rows: 1, width: 1, values: acc.finish() }])
    }
}

impl<'de> Handler<'de> for Target<'_> {
    type Out = Vec<Tensor>;
    fn ctx(&mut self) -> &mut Ctx {
        self.ctx
    }
    fn expecting(&self) -> &'static str {
        if self.columns {
            "a list of rows or an object of columns"
        } else {
            "a list of rows"
        }
    }
    fn num<E: de::Error>(self, v: f64) -> Result<Vec<Tensor>, E> {
        self.scalar(|f| f.acc.push_num(f.ctx, v))
    }
    fn boolean<E: de::Error>(self, v: bool) -> Result<Vec<Tensor>, E> {
        self.scalar(|f| f.acc.push_num(f.ctx, if v { 1.0 } else { 0.0 }))
    }
    fn null<E: de::Error>(self) -> Result<Vec<Tensor>, E> {
        self.scalar(|f| f.acc.push_null(f.ctx))
    }
    fn text<E: de::Error>(self, v: &str) -> Result<Vec<Tensor>, E> {
        self.scalar(|f| f.acc.push_text(f.ctx, v))
    }
    fn seq<A: SeqAccess<'de>>(self, s: A) -> Result<Vec<Tensor>, A::Error> {
        let mut rows = Rows::new(self.objects);
        RowList { rows: &mut rows, ctx: self.ctx }.seq(s)?;
        Ok(rows.finish(self.name))
    }
    fn map<A: MapAccess<'de>>(self, mut m: A) -> Result<Vec<Tensor>, A::Error> {
        if !self.columns {
            return Err(object_value(self.ctx, m));
        }
        let ctx = self.ctx;
        let mut out: Vec<Tensor> = Vec::new();
        let mut at: HashMap<String, usize> = HashMap::new();
        while let Some(key) = m.next_key_seed(Key)? {
            let col = Target { ctx: &mut *ctx, objects: false, columns: false, name: Some(key.to_string()) };
            let tensors = match m.next_value_seed(Visit(col)) {
                Ok(t) => t,
                Err(e) => return Err(ctx.at_key(e, &key)),
            };
            // A column gives at most one tensor; a repeated key replaces the earlier one.
            for t in tensors {
                match at.get(key.as_ref()) {
                    Some(&i) => out[i] = t,
                    None => {
                        at.insert(key.to_string(), out.len());
                        out.push(t);
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Builds a [`Batch`] with no id.
pub(crate) fn batch(tensors: Vec<Tensor>) -> Batch {
    Batch { id: None, tensors }
}
