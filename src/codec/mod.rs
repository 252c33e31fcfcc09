//! Codecs: the bytes of a captured HTTP body → tensors ([`Batch`]), for the Open Inference Protocol
//! V2 ([`Codec::V2`]), TF-Serving / KServe V1 ([`Codec::V1`]) and any JSON located by RFC 6901
//! pointers ([`Codec::Json`]).
//!
//! Owns: parsing and the rules below. May not touch: anything stateful (metrics, windows, config,
//! sockets). Every function is total: any bytes give a [`Batch`] or a [`DecodeError`] whose
//! [`Reason`] is a small fixed set of metric labels; nothing panics, and work is bounded by the body
//! length (serde_json's nesting limit of 128, and at most [`MAX_VALUES`] values per body).
//!
//! # How it decodes
//! One pass of serde_json's streaming deserializer with hand-written visitors: numbers go straight
//! into a `Vec<f64>`, no `serde_json::Value` tree is built, and nothing is allocated from a size the
//! body merely claims (a V2 shape of 10¹² elements with 3 values fails with `shape_mismatch` after
//! reading the 3 values). Unknown fields are skipped without being built.
//!
//! # Shared rules (all codecs)
//! - Values: JSON numbers, and booleans as 1/0, are [`Values::Num`] (as `f64`, also for integer and
//!   FP16/FP32 datatypes: the decimal text is parsed once to `f64`, never narrowed); JSON strings
//!   are [`Values::Text`]. `null` is `NaN` (missing) in a numeric tensor and `""` in a text one; a
//!   tensor whose values are all `null` is numeric. Numbers and strings in one tensor (or column) →
//!   `mixed_types`. A JSON `NaN`/`Infinity` literal (Python's `json.dumps` writes them) is not JSON:
//!   `not_json`.
//! - A TF-Serving binary value `{"b64": "…"}` anywhere a value is expected → `unsupported`; any other
//!   object where a value is expected → `wrong_type`.
//! - Duplicate keys in an object: the last one wins (as `serde_json::Value` and `JSON.parse`),
//!   except that object rows must not repeat a key (`ragged`).
//! - A body cut short (the capture cap, a reset) is `truncated`; an empty or all-whitespace body is
//!   `empty`; a body whose top level is JSON but not an object is `not_object` (V1, V2).
//!
//! # V2 (Open Inference Protocol: KServe, Triton, MLServer)
//! - Request tensors come from `inputs` (`outputs` in a request lists requested outputs and is
//!   ignored); response tensors from `outputs`. Each needs `name`, `shape`, `datatype` and `data`
//!   (`missing_field`); `parameters` is only looked at for Triton's `binary_data_size`
//!   (→ `unsupported`). A body with bytes after its JSON (Triton's binary tail) is `unsupported`.
//! - `id` is a string (a number is taken as its text; `null` is none).
//! - `shape`: a list of at most 64 non-negative integers (`bad_shape`, also when the element count
//!   overflows `usize`). rows = `shape[0]`, width = product of the other dims (`[B]` → width 1).
//!   `[]` (a 0-d scalar) is one row of width 1. `[0]`, `[0, F]` are zero rows (width 1 or F), and
//!   need no data. `data` is flat row-major or nested to any depth, it is flattened and only its
//!   count is checked against the product of `shape` (`shape_mismatch`), not how it nests.
//! - `datatype`: BOOL, UINT8/16/32/64, INT8/16/32/64, FP16, BF16, FP32, FP64 → `Num`; BYTES →
//!   `Text`. Spelled exactly so (upper case), else `bad_datatype`. Strings in numeric data, or
//!   numbers/booleans in BYTES data → `mixed_types` (BYTES over JSON is strings, per the protocol).
//!   Values are not range-checked against the datatype (an INT8 of 300 is kept as 300).
//! - All tensors of one body must have the same rows (they are one batch): else `shape_mismatch`.
//!   This holds for responses too (a response row answers a request row).
//!
//! # V1 (TF-Serving REST, KServe V1)
//! - Request `{"instances": [...]}` (row form): each row is a scalar (one unnamed tensor of width
//!   1), a list (one unnamed tensor whose width is the row's flattened length; every row the same
//!   width, else `ragged`) or an object (one named tensor per key, in the first row's key order,
//!   width 1 for a scalar or the flattened length of a list; every row the same keys and widths,
//!   else `ragged`). Mixing scalar, list and object rows → `ragged`. A key named `b64` in an object
//!   row is TF-Serving's binary form → `unsupported`. A bare scalar for `instances` is one row of
//!   width 1; an object → `wrong_type`.
//! - Request `{"inputs": ...}` (columnar form): an object `{name: rows}` gives one named tensor per
//!   key (rows: a list of scalars or of lists; a bare scalar is one row of width 1). Columns may
//!   have different row counts, as TF-Serving allows. A bare list is one unnamed tensor, as
//!   `instances`. `signature_name` and other keys are ignored. Both `instances` and `inputs`:
//!   `instances` is used.
//! - Response `{"predictions": [...]}`: rows as `instances` (scalars → one unnamed tensor of width
//!   1: the caller names it; lists; objects → named tensors); `{"outputs": ...}` as `inputs`.
//! - An empty list gives no tensor (its width is unknown).
//! - Only `:predict` is a V1 path for [`detect`]; `:classify` / `:regress` have other bodies.
//!
//! # Json(Pointers)
//! `features` (requests) and `predictions` (responses) are RFC 6901 pointers (`""` is the whole
//! document; `~0` is `~`, `~1` is `/`; array elements by decimal index). The target is decoded as
//! V1's: a list is rows (as `instances`), an object is columns (as `inputs`), a scalar is one row of
//! width 1. A missing target, or a pointer that is not RFC 6901 syntax → `pointer_not_found`. The
//! whole body must still be valid JSON. [`Batch::id`] is always `None`.

mod detect;
mod json;
mod v1;
mod v2;
mod walk;

pub use detect::detect;
pub use json::check_pointer;

use std::fmt;

/// The most values (numbers, strings, nulls) one body may hold before decoding stops with
/// [`Reason::TooLarge`].
pub const MAX_VALUES: usize = 10_000_000;

/// A decoded 2-D block of values: `rows` × `width`, row-major. One row per batch item.
///
/// Invariant: `values.len() == rows * width`.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// The V2 tensor name, the V1 object key / column name; `None` for unnamed V1 rows and columns.
    pub name: Option<String>,
    /// Batch items (V2: `shape[0]`).
    pub rows: usize,
    /// Values per row (V2: product of `shape[1..]`).
    pub width: usize,
    /// `rows * width` values, row-major.
    pub values: Values,
}

/// The values of a [`Tensor`].
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// Integers, floats and booleans (as 0/1). JSON `null` is `NaN` (missing).
    Num(Vec<f64>),
    /// V2 BYTES and JSON strings. JSON `null` is `""` (so `""` is missing or empty).
    Text(Vec<String>),
}

impl Values {
    /// The number of values.
    pub fn len(&self) -> usize {
        match self {
            Values::Num(v) => v.len(),
            Values::Text(v) => v.len(),
        }
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One body's worth: the tensors in body order, and the V2 `id` if present.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Batch {
    /// The V2 body's `id`; always `None` for V1 and Json.
    pub id: Option<String>,
    /// The tensors, in the order the body has them.
    pub tensors: Vec<Tensor>,
}

/// Why a body could not be decoded: a small fixed set, each a metric label ([`Reason::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The body is empty or only whitespace.
    Empty,
    /// The body ends in the middle of its JSON (cut by the capture cap or a reset).
    Truncated,
    /// Not JSON: a syntax error, invalid UTF-8 in a string, `NaN`, bytes after the JSON (V1, Json).
    NotJson,
    /// JSON whose top level is not an object (V1, V2).
    NotObject,
    /// A field has the wrong JSON type (`inputs` not a list, `name` not a string, an object where a
    /// value belongs...).
    WrongType,
    /// A required field is absent (V2 `inputs`/`outputs`, a tensor's `name`/`shape`/`datatype`/
    /// `data`; V1 `instances`/`inputs`, `predictions`/`outputs`).
    MissingField,
    /// A V2 `shape` that is not a list of at most 64 non-negative integers, or whose element count
    /// overflows.
    BadShape,
    /// A V2 `datatype` that is not a string naming a known datatype.
    BadDatatype,
    /// A V2 tensor whose value count differs from its shape's product, or tensors of one body with
    /// different rows (`shape[0]`).
    ShapeMismatch,
    /// V1/Json rows that differ: in width, in keys, or in kind (scalar / list / object).
    Ragged,
    /// Strings mixed with numbers in one tensor, or values of the other kind than the V2 datatype.
    MixedTypes,
    /// A valid protocol extension vigil does not decode: Triton's binary data extension, TF-Serving's
    /// `{"b64": …}` binary values.
    Unsupported,
    /// The Json codec's pointer has no target in the body, or is not an RFC 6901 pointer.
    PointerNotFound,
    /// More than [`MAX_VALUES`] values, or JSON nested deeper than 128.
    TooLarge,
}

impl Reason {
    /// Every reason, in declaration order (for pre-registering metric labels).
    pub const ALL: &'static [Reason] = &[
        Reason::Empty,
        Reason::Truncated,
        Reason::NotJson,
        Reason::NotObject,
        Reason::WrongType,
        Reason::MissingField,
        Reason::BadShape,
        Reason::BadDatatype,
        Reason::ShapeMismatch,
        Reason::Ragged,
        Reason::MixedTypes,
        Reason::Unsupported,
        Reason::PointerNotFound,
        Reason::TooLarge,
    ];

    /// The metric label: snake_case, stable.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Empty => "empty",
            Reason::Truncated => "truncated",
            Reason::NotJson => "not_json",
            Reason::NotObject => "not_object",
            Reason::WrongType => "wrong_type",
            Reason::MissingField => "missing_field",
            Reason::BadShape => "bad_shape",
            Reason::BadDatatype => "bad_datatype",
            Reason::ShapeMismatch => "shape_mismatch",
            Reason::Ragged => "ragged",
            Reason::MixedTypes => "mixed_types",
            Reason::Unsupported => "unsupported",
            Reason::PointerNotFound => "pointer_not_found",
            Reason::TooLarge => "too_large",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A body that could not be decoded: the reason (a metric label) and a detail for logs that names
/// the field, pointer or index, e.g. `shape_mismatch: inputs[1].data: 9 values for shape [2,4]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {detail}", reason.as_str())]
pub struct DecodeError {
    /// The metric label.
    pub reason: Reason,
    /// Where and what, for a log line.
    pub detail: String,
}

impl DecodeError {
    pub(crate) fn new(reason: Reason, detail: impl Into<String>) -> Self {
        DecodeError { reason, detail: detail.into() }
    }
}

/// Where the Json codec finds features (in request bodies) and predictions (in response bodies):
/// RFC 6901 JSON pointers, `""` being the whole document. [`check_pointer`] validates one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pointers {
    /// Pointer to the features in a request body.
    pub features: String,
    /// Pointer to the predictions in a response body.
    pub predictions: String,
}

/// A body format: how to find tensors in request and response bodies.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Codec {
    /// Open Inference Protocol V2 (KServe, Triton, MLServer REST).
    V2,
    /// TF-Serving REST / KServe V1.
    V1,
    /// Any JSON, tensors located by pointers.
    Json(Pointers),
}

impl Codec {
    /// Decodes a request body: V2 `inputs`, V1 `instances`/`inputs`, Json `features` pointer.
    pub fn decode_request(&self, body: &[u8]) -> Result<Batch, DecodeError> {
        match self {
            Codec::V2 => v2::decode(body, v2::Side::Request),
            Codec::V1 => v1::decode(body, v1::Side::Request),
            Codec::Json(p) => json::decode(body, "features", &p.features),
        }
    }

    /// Decodes a response body: V2 `outputs`, V1 `predictions`/`outputs`, Json `predictions` pointer.
    pub fn decode_response(&self, body: &[u8]) -> Result<Batch, DecodeError> {
        match self {
            Codec::V2 => v2::decode(body, v2::Side::Response),
            Codec::V1 => v1::decode(body, v1::Side::Response),
            Codec::Json(p) => json::decode(body, "predictions", &p.predictions),
        }
    }

    /// The codec's name for config and labels: `"v2"`, `"v1"` or `"json"`.
    pub fn name(&self) -> &'static str {
        match self {
            Codec::V2 => "v2",
            Codec::V1 => "v1",
            Codec::Json(_) => "json",
        }
    }
}

#[cfg(test)]
mod tests;
