//! Rows of the what-if space back into request bodies the model accepts, in the shape of a live
//! request vigil captured.
//!
//! Owns: [`Template`] (the layout of one live request, learnt once, used for many row sets) and
//! the rules below. May not touch: the model, the network, the codebook's contents (it only reads
//! codes). Pure functions of bytes and rows; nothing here panics on any input.
//!
//! # What is kept, what is rewritten
//! The live request is decoded with its codec (so only bodies vigil understands become templates)
//! and mapped onto the schema's features with the rules of `Schema::map_request`: an input named
//! like a feature with one value per row carries that feature; an input as wide as the feature
//! list carries all of them in order. Those values are rewritten from the rows; everything else is
//! kept:
//! - **V2** (Open Inference Protocol): every top-level key but `id` (a shadow request is not the
//!   live one; the model may use ids); each input's `name`, `datatype`, `parameters` and any other
//!   key. A feature input gets shape `[n]` or `[n, 1]` as the original had; a wide input
//!   `[n, F]`; `data` flat or nested as the original's was. An input that carries no feature is
//!   repeated row-wise (its values from the live row [`Template::context_row`]) when it has the
//!   batch dimension, and left as it was when its shape is `[]`.
//! - **V1** (TF-Serving REST): `instances` rows as lists (positional features, nested as the
//!   original row was) or objects (by name; keys that are not features are copied from the
//!   context row); `inputs` columnar (an object of columns, each a list of rows, or a bare list of
//!   rows as `instances`). `signature_name` and every other key are kept.
//! - **Json pointers**: the value at the `features` pointer is replaced by the new rows in the
//!   same layout (a list of rows as V1 `instances`, an object of columns as V1 `inputs`); the rest
//!   of the document is kept.
//!
//! # How values are written
//! - Missing (`NaN`) is JSON `null`; so is an infinite number. Nothing written is invalid JSON.
//! - V2 datatypes decide: FP64 as the shortest text that reads back as the same `f64` (see
//!   [`f64_text`]); FP32, FP16, BF16 as the shortest text of the `f32` (a value beyond `f32`'s
//!   range is written as the `f64`, so the model sees the overflow); INT and UINT rounded to the
//!   nearest integer; BOOL `true` for nonzero; BYTES as text (a number as its shortest text, a
//!   category as its string).
//! - V1 and Json have no datatypes: each position keeps the JSON type the live request used
//!   there (strings stay strings, booleans booleans; numbers stay numbers, and whole numbers are
//!   written without a fraction where the live request wrote integers: nothing is rounded).
//! - A categorical value is a code of the codebook (rounded to the nearest whole code). Where the
//!   live request had numbers, the category must read as a number ("3"), else
//!   [`EncodeError::Value`].
//!
//! Round trip: `decode_request(encode(rows))` mapped with the schema and encoded with the codebook
//! gives back `rows` on every feature the template carries (numbers bit-exact for FP64 and
//! untyped JSON, up to the limit of [`f64_text`]; equal after rounding to `f32` for FP32;
//! categories equal; missing stays missing).

use super::rows::{code_index, Codebook};
use crate::codec::{Codec, DecodeError, Reason};
use crate::monitor::schema::{Kind, Schema};
use bytes::Bytes;
use serde_json::Value;

/// Why a template could not be built, or rows not written.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EncodeError {
    /// The live request does not decode with its codec.
    #[error("the live request does not decode: {0}")]
    Decode(DecodeError),
    /// The live request's layout cannot be rebuilt with other rows; the message says why.
    #[error("cannot write what-if rows in this request's layout: {0}")]
    Unsupported(String),
    /// The rows handed to [`Template::encode`] do not fit the template.
    #[error("{0}")]
    Rows(String),
    /// A value cannot be written where the live request had this feature.
    #[error("feature {feature:?}: {detail}")]
    Value { feature: String, detail: String },
}

/// How one value is written (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scalar {
    /// FP64 or an untyped JSON number; with `ints`, whole numbers are written as integers.
    F64 {
        ints: bool,
    },
    /// FP32, FP16, BF16.
    F32,
    /// INT*, UINT*: rounded.
    Int,
    Bool,
    /// BYTES, or JSON strings.
    Text,
}

impl Scalar {
    /// The V2 datatype's rule.
    fn of_datatype(datatype: &str) -> Scalar {
        match datatype {
            "FP32" | "FP16" | "BF16" => Scalar::F32,
            "BOOL" => Scalar::Bool,
            "BYTES" => Scalar::Text,
            d if d.starts_with("INT") || d.starts_with("UINT") => Scalar::Int,
            _ => Scalar::F64 { ints: false },
        }
    }

    /// The rule of an untyped position, from the values the live request had there: strings stay
    /// strings, booleans booleans, numbers numbers (integers if all were). All `null`: by kind.
    fn infer<'a>(samples: impl Iterator<Item = &'a Value>, kind: Kind) -> Scalar {
        let (mut text, mut boolean, mut int, mut float) = (false, false, false, false);
        for v in samples {
            match v {
                Value::String(_) => text = true,
                Value::Bool(_) => boolean = true,
                Value::Number(n) if n.is_f64() => float = true,
                Value::Number(_) => int = true,
                _ => {}
            }
        }
        match (text, boolean, int, float) {
            (true, ..) => Scalar::Text,
            (_, true, false, false) => Scalar::Bool,
            (_, _, true, false) => Scalar::F64 { ints: true },
            (_, _, _, true) => Scalar::F64 { ints: false },
            _ if kind == Kind::Categorical => Scalar::Text,
            _ => Scalar::F64 { ints: false },
        }
    }
}

/// One written value: which feature, and how.
#[derive(Debug, Clone, Copy)]
struct Slot {
    feature: usize,
    scalar: Scalar,
}

/// One row's value in a list-or-scalar layout: the live row's structure (a scalar, a list, a
/// nested list) whose leaves, in order, are the slots.
#[derive(Debug, Clone)]
struct Cell {
    structure: Value,
    slots: Vec<Slot>,
}

/// What an input / a key of a row object / a column carries.
#[derive(Debug, Clone)]
enum Part {
    /// Features, written from the rows.
    Cell(Cell),
    /// No feature; has the batch dimension: the context row's value, once per row.
    Repeat,
    /// No feature, no batch dimension: kept as it was.
    Keep,
}

impl Part {
    fn cell(&self) -> Option<&Cell> {
        match self {
            Part::Cell(c) => Some(c),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
struct V2Input {
    /// `shape[1..]`.
    dims: Vec<usize>,
    /// Whether the shape has a batch dimension (is not `[]`).
    batch: bool,
    /// Whether `data` was nested (its first element a list).
    nested: bool,
    /// Features: a cell whose structure is unused (V2 writes by shape); slots per row.
    part: Part,
}

/// The target of a V1 / Json layout.
#[derive(Debug, Clone)]
enum Block {
    /// A bare scalar: one row of one feature.
    Scalar(Cell),
    /// A list of rows, each like the cell.
    Rows(Cell),
    /// A list of rows, each an object: per key, a cell or a copy of the context row's value.
    Objects(Vec<(String, Part)>),
    /// An object of columns: per key, rows of cells (`bare`: a bare scalar, one row), a repeated
    /// context value, or kept.
    Columns(Vec<(String, Part, bool)>),
}

#[derive(Debug, Clone)]
enum Layout {
    /// `doc["inputs"][k]` is `inputs[k]`.
    V2(Vec<V2Input>),
    /// The block at the pointer (unescaped tokens).
    Doc { pointer: Vec<String>, block: Block },
}

/// Whether values are written as the model expects, or deliberately in the wrong JSON type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Normal,
    WrongTypes,
}

/// The layout of one live request, to write other rows in; see the module doc.
#[derive(Debug, Clone)]
pub struct Template {
    doc: Value,
    layout: Layout,
    features: usize,
    covered: Vec<bool>,
    live_rows: usize,
    context: usize,
    max_rows: Option<usize>,
}

impl Template {
    /// Learns the layout of `request`, a live request body that `codec` decodes, whose inputs
    /// map onto `schema`'s features. Errors: [`EncodeError::Decode`] if it does not decode,
    /// [`EncodeError::Unsupported`] if its layout cannot carry other rows (binary extensions,
    /// rows that carry none of the features, an input named like a feature but wider than one
    /// value, no rows at all).
    pub fn new(codec: &Codec, request: &[u8], schema: &Schema) -> Result<Template, EncodeError> {
        let batch = codec.decode_request(request).map_err(|e| match e.reason {
            Reason::Unsupported => EncodeError::Unsupported(e.to_string()),
            _ => EncodeError::Decode(e),
        })?;
        let live_rows = batch.tensors.iter().map(|t| t.rows).max().unwrap_or(0);
        if live_rows == 0 {
            return Err(EncodeError::Unsupported(
                "the live request has no rows, so there is no row layout to copy".into(),
            ));
        }
        let doc: Value = serde_json::from_slice(request)
            .map_err(|e| EncodeError::Unsupported(format!("the body decodes but is not plain JSON: {e}")))?;
        let f = schema.features.len();
        if f == 0 {
            return Err(EncodeError::Unsupported("the schema has no features".into()));
        }
        let mapper = Mapper { schema };
        let layout = match codec {
            Codec::V2 => Layout::V2(v2_inputs(&doc, &mapper)?),
            Codec::V1 => {
                let key = if doc.get("instances").is_some() { "instances" } else { "inputs" };
                let target =
                    doc.get(key).ok_or_else(|| EncodeError::Unsupported("no \"instances\" or \"inputs\"".into()))?;
                let block = block(target, &mapper, key == "instances")?;
                Layout::Doc { pointer: vec![key.to_owned()], block }
            }
            Codec::Json(p) => {
                let pointer = tokens(&p.features)?;
                let target = at(&doc, &pointer).ok_or_else(|| {
                    EncodeError::Unsupported(format!("nothing at the features pointer {:?}", p.features))
                })?;
                Layout::Doc { block: block(target, &mapper, false)?, pointer }
            }
        };
        let mut covered = vec![false; f];
        let mut max_rows = None;
        let mut mark = |part: Option<&Cell>, one_row: bool| {
            if let Some(c) = part {
                for s in &c.slots {
                    covered[s.feature] = true;
                }
                if one_row {
                    max_rows = Some(1);
                }
            }
        };
        match &layout {
            Layout::V2(inputs) => inputs.iter().for_each(|i| mark(i.part.cell(), !i.batch)),
            Layout::Doc { block, .. } => match block {
                Block::Scalar(c) => mark(Some(c), true),
                Block::Rows(c) => mark(Some(c), false),
                Block::Objects(parts) => parts.iter().for_each(|(_, p)| mark(p.cell(), false)),
                Block::Columns(cols) => cols.iter().for_each(|(_, p, bare)| mark(p.cell(), *bare)),
            },
        }
        if !covered.iter().any(|&c| c) {
            return Err(EncodeError::Unsupported(format!(
                "the request carries none of the {f} schema features (inputs are matched by feature name, or \
                 one input as wide as the feature list)"
            )));
        }
        Ok(Template { doc, layout, features: f, covered, live_rows, context: 0, max_rows })
    }

    /// Chooses which live row the values of non-feature inputs are copied from (default 0): the
    /// row the what-if rows were derived from. Clamped to the live request's rows.
    pub fn context_row(&mut self, row: usize) {
        self.context = row.min(self.live_rows.saturating_sub(1));
    }

    /// Rows the live request had.
    pub fn live_rows(&self) -> usize {
        self.live_rows
    }

    /// Whether the layout carries feature `i` (features it does not carry are not sent, whatever
    /// the rows say).
    pub fn covers(&self, i: usize) -> bool {
        self.covered.get(i).copied().unwrap_or(false)
    }

    /// The most rows one body can carry: `Some(1)` when the live request had no batch dimension
    /// for a feature (a bare scalar, a V2 shape `[]`), else `None` (no limit of the layout's).
    pub fn max_rows(&self) -> Option<usize> {
        self.max_rows
    }

    /// A request body carrying `rows` (row-major, `rows.len() / width` rows of the codebook's
    /// space). `width` must be the codebook's width and the schema's feature count.
    pub fn encode(&self, book: &Codebook, rows: &[f64], width: usize) -> Result<Bytes, EncodeError> {
        self.write(book, rows, width, Mode::Normal)
    }

    /// The same request with every numeric feature value sent as a JSON string (`"3.5"`) and
    /// every categorical one as a JSON number (its code): what a careless client sends. Inputs
    /// that carry no feature are unchanged. For the stress test.
    pub fn encode_wrong_types(&self, book: &Codebook, rows: &[f64], width: usize) -> Result<Bytes, EncodeError> {
        self.write(book, rows, width, Mode::WrongTypes)
    }

    fn write(&self, book: &Codebook, rows: &[f64], width: usize, mode: Mode) -> Result<Bytes, EncodeError> {
        if width != self.features || book.width() != self.features {
            return Err(EncodeError::Rows(format!(
                "rows of width {width} for a codebook of {} and a template of {} features",
                book.width(),
                self.features
            )));
        }
        if rows.len() % width != 0 {
            return Err(EncodeError::Rows(format!("{} values are not whole rows of {width} features", rows.len())));
        }
        let n = rows.len() / width;
        if let Some(max) = self.max_rows.filter(|&m| n > m) {
            return Err(EncodeError::Unsupported(format!(
                "the live request carries a feature without a batch dimension, so a body holds at most {max} row; \
                 {n} were asked"
            )));
        }
        let w = Writer { book, rows, width, n, mode };
        let json = match &self.layout {
            Layout::V2(inputs) => self.v2(&w, inputs)?,
            Layout::Doc { pointer, block } => {
                let target = at(&self.doc, pointer).ok_or_else(|| EncodeError::Unsupported("target moved".into()))?;
                let new = self.block(&w, block, target)?;
                splice(&self.doc, pointer, new)
            }
        };
        let mut out = Vec::with_capacity(64 + rows.len() * 12);
        json.write(&mut out).map_err(|e| EncodeError::Unsupported(format!("writing JSON: {e}")))?;
        Ok(Bytes::from(out))
    }

    fn v2<'a>(&'a self, w: &Writer<'_>, inputs: &[V2Input]) -> Result<Json<'a>, EncodeError> {
        let top = self.doc.as_object().ok_or_else(|| EncodeError::Unsupported("not an object".into()))?;
        let originals = top.get("inputs").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
        let mut list = Vec::with_capacity(inputs.len());
        for (input, original) in inputs.iter().zip(originals) {
            let Some(obj) = original.as_object() else { continue };
            let rows = if input.batch { w.n } else { 1 };
            let shape: Vec<Json> = std::iter::once(rows).chain(input.dims.iter().copied()).map(Json::uint).collect();
            let per_row: usize = input.dims.iter().product();
            let leaves = match &input.part {
                Part::Keep => {
                    list.push(Json::Keep(original));
                    continue;
                }
                Part::Cell(cell) => {
                    let mut leaves = Vec::with_capacity(rows * cell.slots.len());
                    for r in 0..rows {
                        for s in &cell.slots {
                            leaves.push(w.value(*s, r)?);
                        }
                    }
                    leaves
                }
                Part::Repeat => {
                    let mut flat = Vec::new();
                    if let Some(d) = obj.get("data") {
                        flatten(d, &mut flat);
                    }
                    let context = self.context.min(self.live_rows.saturating_sub(1));
                    let row = flat.get(context * per_row..(context + 1) * per_row).unwrap_or(&[]);
                    if row.len() != per_row {
                        return Err(EncodeError::Unsupported(format!(
                            "input {:?}: its data does not hold {per_row} values per row",
                            obj.get("name").and_then(Value::as_str).unwrap_or("")
                        )));
                    }
                    (0..rows).flat_map(|_| row.iter().copied().map(Json::Keep)).collect()
                }
            };
            let data = if input.nested {
                let dims: Vec<usize> = std::iter::once(rows).chain(input.dims.iter().copied()).collect();
                nest(leaves, &dims)
            } else {
                Json::Arr(leaves)
            };
            let mut fields: Vec<(&str, Json)> = Vec::with_capacity(obj.len() + 2);
            for (k, v) in obj {
                match k.as_str() {
                    "shape" | "data" => {}
                    _ => fields.push((k, Json::Keep(v))),
                }
            }
            let shape = match obj.get("shape") {
                Some(original) if !input.batch => Json::Keep(original),
                _ => Json::Arr(shape),
            };
            fields.push(("shape", shape));
            fields.push(("data", data));
            list.push(Json::Obj(fields));
        }
        let mut out: Vec<(&str, Json)> = Vec::with_capacity(top.len());
        let mut list = Some(list);
        for (k, v) in top {
            match k.as_str() {
                "id" => {}
                "inputs" => out.push((k, Json::Arr(list.take().unwrap_or_default()))),
                _ => out.push((k, Json::Keep(v))),
            }
        }
        Ok(Json::Obj(out))
    }

    fn block<'a>(&'a self, w: &Writer<'_>, block: &'a Block, target: &'a Value) -> Result<Json<'a>, EncodeError> {
        let items = target.as_array().map(Vec::as_slice).unwrap_or(&[]);
        let context = |items: &'a [Value]| items.get(self.context).or_else(|| items.first());
        match block {
            Block::Scalar(cell) => w.fill(cell, 0),
            Block::Rows(cell) => Ok(Json::Arr((0..w.n).map(|r| w.fill(cell, r)).collect::<Result<_, _>>()?)),
            Block::Objects(parts) => {
                let ctx = context(items).and_then(Value::as_object);
                let mut rows = Vec::with_capacity(w.n);
                for r in 0..w.n {
                    let mut fields = Vec::with_capacity(parts.len());
                    for (key, part) in parts {
                        let v = match part {
                            Part::Cell(cell) => w.fill(cell, r)?,
                            Part::Repeat | Part::Keep => match ctx.and_then(|o| o.get(key)) {
                                Some(v) => Json::Keep(v),
                                None => Json::Null,
                            },
                        };
                        fields.push((key.as_str(), v));
                    }
                    rows.push(Json::Obj(fields));
                }
                Ok(Json::Arr(rows))
            }
            Block::Columns(cols) => {
                let obj = target.as_object();
                let mut fields = Vec::with_capacity(cols.len());
                for (key, part, bare) in cols {
                    let original = obj.and_then(|o| o.get(key));
                    let v = match (part, original) {
                        (Part::Cell(cell), _) if *bare => w.fill(cell, 0)?,
                        (Part::Cell(cell), _) => {
                            Json::Arr((0..w.n).map(|r| w.fill(cell, r)).collect::<Result<_, _>>()?)
                        }
                        (Part::Repeat, Some(v)) => {
                            let items = v.as_array().map(Vec::as_slice).unwrap_or(&[]);
                            match context(items) {
                                Some(c) => Json::Arr((0..w.n).map(|_| Json::Keep(c)).collect()),
                                None => Json::Keep(v),
                            }
                        }
                        (_, Some(v)) => Json::Keep(v),
                        (_, None) => Json::Null,
                    };
                    fields.push((key.as_str(), v));
                }
                Ok(Json::Obj(fields))
            }
        }
    }
}

/// Maps names and widths onto features as `Schema::map_request` does.
struct Mapper<'s> {
    schema: &'s Schema,
}

impl Mapper<'_> {
    fn width(&self) -> usize {
        self.schema.features.len()
    }

    fn kind(&self, i: usize) -> Kind {
        self.schema.features.get(i).map(|c| c.kind).unwrap_or(Kind::Numeric)
    }

    /// The features an input of this name and width carries, in order; `Ok(None)` for none.
    fn features(&self, name: Option<&str>, width: usize) -> Result<Option<Vec<usize>>, EncodeError> {
        match name.and_then(|n| self.schema.feature(n)) {
            Some(i) if width == 1 => Ok(Some(vec![i])),
            Some(i) => Err(EncodeError::Unsupported(format!(
                "input {:?} has {width} values per row; the feature of that name takes one",
                self.schema.features[i].name
            ))),
            None if width == self.width() => Ok(Some((0..width).collect())),
            None => Ok(None),
        }
    }

    /// A cell over these features, each slot's JSON type inferred from `rows` (the live values of
    /// this part, one structure per row).
    fn cell(&self, structure: &Value, features: Vec<usize>, rows: &[&Value]) -> Cell {
        let per_row: Vec<Vec<&Value>> = rows
            .iter()
            .map(|r| {
                let mut l = Vec::new();
                flatten(r, &mut l);
                l
            })
            .collect();
        let slots = features
            .into_iter()
            .enumerate()
            .map(|(j, i)| Slot {
                feature: i,
                scalar: Scalar::infer(per_row.iter().filter_map(|l| l.get(j).copied()), self.kind(i)),
            })
            .collect();
        Cell { structure: structure.clone(), slots }
    }
}

/// The V2 inputs of a live request.
fn v2_inputs(doc: &Value, m: &Mapper<'_>) -> Result<Vec<V2Input>, EncodeError> {
    let inputs = doc.get("inputs").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
    let mut out = Vec::with_capacity(inputs.len());
    for input in inputs {
        let name = input.get("name").and_then(Value::as_str);
        let datatype = input.get("datatype").and_then(Value::as_str).unwrap_or("");
        let shape: Vec<usize> = input
            .get("shape")
            .and_then(Value::as_array)
            .map(|s| s.iter().map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()).unwrap_or(0)).collect())
            .unwrap_or_default();
        let batch = !shape.is_empty();
        let dims: Vec<usize> = shape.iter().skip(1).copied().collect();
        let width = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).unwrap_or(usize::MAX);
        let nested = matches!(input.get("data").and_then(|d| d.get(0)), Some(Value::Array(_)));
        let scalar = Scalar::of_datatype(datatype);
        let part = match m.features(name, width)? {
            Some(features) => Part::Cell(Cell {
                structure: Value::Null,
                slots: features.into_iter().map(|feature| Slot { feature, scalar }).collect(),
            }),
            None if batch => Part::Repeat,
            None => Part::Keep,
        };
        out.push(V2Input { dims, batch, nested, part });
    }
    Ok(out)
}

/// The layout of a V1 `instances` / `inputs` value or a Json pointer's target. `row_form`: V1
/// `instances`, where an object is not columns.
fn block(target: &Value, m: &Mapper<'_>, row_form: bool) -> Result<Block, EncodeError> {
    match target {
        Value::Array(rows) => {
            let Some(first) = rows.first() else {
                return Err(EncodeError::Unsupported(
                    "the request has an empty list of rows: no layout to copy".into(),
                ));
            };
            let all: Vec<&Value> = rows.iter().collect();
            match first {
                Value::Object(keys) => {
                    let mut parts = Vec::with_capacity(keys.len());
                    for (key, v) in keys {
                        let width = leaf_count(v);
                        let part = match m.features(Some(key), width)? {
                            Some(features) => {
                                let column: Vec<&Value> = rows.iter().filter_map(|r| r.get(key)).collect();
                                Part::Cell(m.cell(v, features, &column))
                            }
                            None => Part::Repeat,
                        };
                        parts.push((key.clone(), part));
                    }
                    Ok(Block::Objects(parts))
                }
                row => match m.features(None, leaf_count(row))? {
                    Some(features) => Ok(Block::Rows(m.cell(row, features, &all))),
                    None => Err(EncodeError::Unsupported(format!(
                        "each row has {} values but the schema has {} features",
                        leaf_count(row),
                        m.width()
                    ))),
                },
            }
        }
        Value::Object(_) if row_form => Err(EncodeError::Unsupported("\"instances\" is an object, not rows".into())),
        Value::Object(cols) => {
            let mut parts = Vec::with_capacity(cols.len());
            for (key, v) in cols {
                let (first, all, bare): (Option<&Value>, Vec<&Value>, bool) = match v {
                    Value::Array(items) => (items.first(), items.iter().collect(), false),
                    scalar => (Some(scalar), vec![scalar], true),
                };
                let part = match first {
                    None => Part::Keep,
                    Some(row) => match m.features(Some(key), leaf_count(row))? {
                        Some(features) => Part::Cell(m.cell(row, features, &all)),
                        None if bare => Part::Keep,
                        None => Part::Repeat,
                    },
                };
                parts.push((key.clone(), part, bare));
            }
            Ok(Block::Columns(parts))
        }
        scalar => match m.features(None, 1)? {
            Some(features) => Ok(Block::Scalar(m.cell(scalar, features, &[scalar]))),
            None => Err(EncodeError::Unsupported(format!(
                "the features are a single value but the schema has {} features",
                m.width()
            ))),
        },
    }
}

/// Writes rows into cells.
struct Writer<'b> {
    book: &'b Codebook,
    rows: &'b [f64],
    width: usize,
    n: usize,
    mode: Mode,
}

impl Writer<'_> {
    /// Row `r` in the cell's structure.
    fn fill<'a>(&self, cell: &'a Cell, r: usize) -> Result<Json<'a>, EncodeError> {
        let mut slots = cell.slots.iter();
        self.fill_at(&cell.structure, r, &mut slots)
    }

    fn fill_at<'a>(
        &self,
        v: &'a Value,
        r: usize,
        slots: &mut std::slice::Iter<'_, Slot>,
    ) -> Result<Json<'a>, EncodeError> {
        match v {
            Value::Array(items) => {
                Ok(Json::Arr(items.iter().map(|x| self.fill_at(x, r, slots)).collect::<Result<_, _>>()?))
            }
            _ => match slots.next() {
                Some(s) => self.value(*s, r),
                None => Ok(Json::Keep(v)),
            },
        }
    }

    /// The JSON of feature `slot.feature` in row `r`.
    fn value(&self, slot: Slot, r: usize) -> Result<Json<'static>, EncodeError> {
        let i = slot.feature;
        let v = self.rows.get(r * self.width + i).copied().unwrap_or(f64::NAN);
        if v.is_nan() {
            return Ok(Json::Null);
        }
        let bad = |detail: String| EncodeError::Value { feature: self.book.name(i).to_owned(), detail };
        if self.book.is_categorical(i) {
            let category = self.book.category(i, v).ok_or_else(|| {
                bad(format!("{v} is not a category code (the codebook has {} categories)", self.book.categories(i)))
            })?;
            if self.mode == Mode::WrongTypes {
                return Ok(Json::Num(int_text(code_index(v).unwrap_or(0) as f64)));
            }
            return match slot.scalar {
                Scalar::Text => Ok(Json::Str(category.to_owned())),
                Scalar::Bool => match category.trim() {
                    "true" | "True" => Ok(Json::Bool(true)),
                    "false" | "False" => Ok(Json::Bool(false)),
                    c => c.parse::<f64>().ok().filter(|x| !x.is_nan()).map(|x| Json::Bool(x != 0.0)).ok_or_else(|| {
                        bad(format!("category {category:?} is not a boolean, and the model takes booleans here"))
                    }),
                },
                s => match category.trim().parse::<f64>() {
                    Ok(x) if x.is_finite() => Ok(number(x, s)),
                    _ => Err(bad(format!(
                        "category {category:?} is not a number, and the live request sent numbers for this feature"
                    ))),
                },
            };
        }
        if !v.is_finite() {
            return Ok(Json::Null);
        }
        if self.mode == Mode::WrongTypes {
            return Ok(Json::Str(number_text(v)));
        }
        Ok(match slot.scalar {
            Scalar::Text => Json::Str(number_text(v)),
            Scalar::Bool => Json::Bool(v != 0.0),
            s => number(v, s),
        })
    }
}

/// A finite number by a numeric rule.
fn number(x: f64, scalar: Scalar) -> Json<'static> {
    Json::Num(match scalar {
        Scalar::F64 { ints: true } if is_whole(x) => int_text(x),
        Scalar::F32 => f32_text(x),
        Scalar::Int => int_text(x.round()),
        _ => f64_text(x),
    })
}

/// Whole and small enough to write as an integer that reads back as the same `f64` (not -0).
fn is_whole(x: f64) -> bool {
    x.fract() == 0.0 && x.abs() < 9.0e15 && !(x == 0.0 && x.is_sign_negative())
}

/// A whole number as a JSON integer (beyond `i64`: as a float).
fn int_text(x: f64) -> String {
    if x.abs() < 9.0e18 {
        format!("{}", x as i64)
    } else {
        f64_text(x)
    }
}

/// A number as text for a string position: a whole number without a fraction ("35"), else the
/// shortest text that reads back as the same `f64` (Rust's and Python's parsers are exact).
fn number_text(x: f64) -> String {
    if is_whole(x) {
        int_text(x)
    } else {
        format!("{x:?}")
    }
}

/// `f32` text: the shortest that reads back as the same `f32`; beyond `f32`'s range the `f64`.
fn f32_text(x: f64) -> String {
    let f = x as f32;
    if f.is_finite() {
        serde_json::to_string(&f).unwrap_or_else(|_| f64_text(x))
    } else {
        f64_text(x)
    }
}

/// JSON text for a finite `f64` that serde_json (which the codecs decode with) reads back as the
/// same bits.
///
/// The shortest round-trip text (ryu) reads back exactly with a correctly rounding parser, but
/// serde_json without its `float_roundtrip` feature computes `significand as f64` and one
/// multiplication or division by a power of ten, which is off by one unit in the last place for
/// about one text in six. So: the shortest text if it reads back exactly; else 17 significant
/// digits; else a search among the texts `S e-E` with an integer `S` in [2⁵³, 2⁶⁴) (exactly
/// representable, so the parser's only rounding is its one division) near `x·10^E`. Every
/// candidate is checked by parsing it. About one value in a thousand has no text this parser
/// reads exactly; it gets the shortest text, which reads back at most a unit in the last place
/// away (a few units below 1e-290, where serde_json divides twice). With serde_json's
/// `float_roundtrip` feature the first candidate always succeeds.
pub(crate) fn f64_text(x: f64) -> String {
    let exact = |s: &str| serde_json::from_str::<f64>(s).map(f64::to_bits).ok() == Some(x.to_bits());
    let shortest = serde_json::to_string(&x).unwrap_or_else(|_| format!("{x:e}"));
    if !x.is_finite() || exact(&shortest) {
        return shortest;
    }
    let long = format!("{x:.16e}");
    if exact(&long) {
        return long;
    }
    const LO: f64 = 9_007_199_254_740_992.0; // 2^53
    const HI: f64 = 18_446_744_073_709_551_616.0; // 2^64
    let a = x.abs();
    let sign = if x < 0.0 { "-" } else { "" };
    let e0 = (63.0 * std::f64::consts::LOG10_2 - a.log10()).floor() as i32;
    for e in [e0, e0 - 1, e0 - 2, e0 - 3] {
        let scaled = if e >= 0 { a * 10f64.powi(e) } else { a / 10f64.powi(-e) };
        if !(LO..HI).contains(&scaled) {
            continue;
        }
        // Positive and finite: neighbours by bits.
        let mut s = f64::from_bits(scaled.to_bits().saturating_sub(8));
        for _ in 0..17 {
            if (LO..HI).contains(&s) {
                let text =
                    if e >= 0 { format!("{sign}{}e-{e}", s as u64) } else { format!("{sign}{}e{}", s as u64, -e) };
                if exact(&text) {
                    return text;
                }
            }
            s = f64::from_bits(s.to_bits() + 1);
        }
    }
    shortest
}

/// The leaves (non-list values) of a value, in order.
fn flatten<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Array(items) => items.iter().for_each(|x| flatten(x, out)),
        leaf => out.push(leaf),
    }
}

fn leaf_count(v: &Value) -> usize {
    match v {
        Value::Array(items) => items.iter().map(leaf_count).sum(),
        _ => 1,
    }
}

/// Nests row-major leaves by `dims` (their product is the leaves' count).
fn nest<'a>(leaves: Vec<Json<'a>>, dims: &[usize]) -> Json<'a> {
    if dims.len() <= 1 {
        return Json::Arr(leaves);
    }
    let chunk: usize = dims[1..].iter().product();
    let mut it = leaves.into_iter();
    let groups = (0..dims[0]).map(|_| nest(it.by_ref().take(chunk).collect(), &dims[1..])).collect();
    Json::Arr(groups)
}

/// An RFC 6901 pointer's unescaped tokens.
fn tokens(pointer: &str) -> Result<Vec<String>, EncodeError> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let rest = pointer
        .strip_prefix('/')
        .ok_or_else(|| EncodeError::Unsupported(format!("{pointer:?} is not a JSON pointer")))?;
    Ok(rest.split('/').map(|t| t.replace("~1", "/").replace("~0", "~")).collect())
}

/// The value at the tokens (array elements by decimal index).
fn at<'a>(doc: &'a Value, tokens: &[String]) -> Option<&'a Value> {
    tokens.iter().try_fold(doc, |v, t| match v {
        Value::Object(m) => m.get(t),
        Value::Array(items) => index(t).and_then(|i| items.get(i)),
        _ => None,
    })
}

fn index(t: &str) -> Option<usize> {
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) || (t.len() > 1 && t.starts_with('0')) {
        return None;
    }
    t.parse().ok()
}

/// `doc` with the value at the tokens replaced by `new`.
fn splice<'a>(doc: &'a Value, tokens: &[String], new: Json<'a>) -> Json<'a> {
    let Some((first, rest)) = tokens.split_first() else { return new };
    match doc {
        Value::Object(m) => {
            let mut new = Some(new);
            Json::Obj(
                m.iter()
                    .map(|(k, v)| {
                        if k == first {
                            if let Some(n) = new.take() {
                                return (k.as_str(), splice(v, rest, n));
                            }
                        }
                        (k.as_str(), Json::Keep(v))
                    })
                    .collect(),
            )
        }
        Value::Array(items) => {
            let target = index(first);
            let mut new = Some(new);
            Json::Arr(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| match (Some(i) == target, new.take()) {
                        (true, Some(n)) => splice(v, rest, n),
                        (_, n) => {
                            new = n;
                            Json::Keep(v)
                        }
                    })
                    .collect(),
            )
        }
        v => Json::Keep(v),
    }
}

/// A JSON document being written: parts kept from the live request, and new values whose number
/// text is chosen here.
enum Json<'a> {
    Keep(&'a Value),
    /// The text of a finite number.
    Num(String),
    Str(String),
    Bool(bool),
    Null,
    Arr(Vec<Json<'a>>),
    Obj(Vec<(&'a str, Json<'a>)>),
}

impl Json<'_> {
    fn uint(x: usize) -> Json<'static> {
        Json::Num(x.to_string())
    }

    fn write(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        match self {
            Json::Keep(v) => serde_json::to_writer(&mut *out, v)?,
            Json::Num(s) => out.extend_from_slice(s.as_bytes()),
            Json::Str(s) => serde_json::to_writer(&mut *out, s)?,
            Json::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Json::Null => out.extend_from_slice(b"null"),
            Json::Arr(items) => {
                out.push(b'[');
                for (k, x) in items.iter().enumerate() {
                    if k > 0 {
                        out.push(b',');
                    }
                    x.write(out)?;
                }
                out.push(b']');
            }
            Json::Obj(fields) => {
                out.push(b'{');
                for (k, (key, x)) in fields.iter().enumerate() {
                    if k > 0 {
                        out.push(b',');
                    }
                    serde_json::to_writer(&mut *out, key)?;
                    out.push(b':');
                    x.write(out)?;
                }
                out.push(b'}');
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
