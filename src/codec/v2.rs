//! Open Inference Protocol V2 bodies (rules in the module doc of `codec`).

use super::walk::{clip, drain_seq, run, Acc, AnyText, Ctx, Flat, Handler, Key, Kind, Visit};
use super::{Batch, DecodeError, Reason, Tensor};
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess};
use serde::Deserializer as _;

/// Which tensors to take.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// `inputs`.
    Request,
    /// `outputs`.
    Response,
}

impl Side {
    fn field(self) -> &'static str {
        match self {
            Side::Request => "inputs",
            Side::Response => "outputs",
        }
    }
}

/// The most dimensions a shape may have.
const MAX_DIMS: usize = 64;

pub(crate) fn decode(body: &[u8], side: Side) -> Result<Batch, DecodeError> {
    run(body, "", true, |ctx, de| de.deserialize_any(Visit(Top { ctx, side, body_len: body.len() })))
}

/// The body: `{"id"?, "inputs" | "outputs", ...}`.
struct Top<'a> {
    ctx: &'a mut Ctx,
    side: Side,
    body_len: usize,
}

impl<'de> Handler<'de> for Top<'_> {
    type Out = Batch;
    fn ctx(&mut self) -> &mut Ctx {
        self.ctx
    }
    fn expecting(&self) -> &'static str {
        "a V2 inference object"
    }
    fn wrong_reason(&self) -> Reason {
        Reason::NotObject
    }
    fn map<A: MapAccess<'de>>(self, mut m: A) -> Result<Batch, A::Error> {
        let Top { ctx, side, body_len } = self;
        let mut id = None;
        let mut tensors = None;
        let mut error = None;
        while let Some(key) = m.next_key_seed(Key)? {
            let r = if key == side.field() {
                m.next_value_seed(Visit(TensorList { ctx: &mut *ctx, body_len, side })).map(|t| tensors = Some(t))
            } else if key == "id" {
                m.next_value_seed(Visit(Id { ctx: &mut *ctx })).map(|v| id = v)
            } else if key == "error" {
                m.next_value_seed(Visit(AnyText { ctx: &mut *ctx })).map(|v| error = v)
            } else {
                m.next_value::<IgnoredAny>().map(|_| ())
            };
            if let Err(e) = r {
                return Err(ctx.at_key(e, &key));
            }
        }
        match tensors {
            Some(tensors) => Ok(Batch { id, tensors }),
            None => {
                let also = error.map(|e| format!(" (the body has \"error\": {:?})", clip(&e))).unwrap_or_default();
                Err(ctx.fail(Reason::MissingField, format!("no \"{}\"{also}", side.field())))
            }
        }
    }
}

/// `id`: a string, a number taken as its text, or null.
struct Id<'a> {
    ctx: &'a mut Ctx,
}

impl<'de> Handler<'de> for Id<'_> {
    type Out = Option<String>;
    fn ctx(&mut self) -> &mut Ctx {
        self.ctx
    }
    fn expecting(&self) -> &'static str {
        "a string"
    }
    fn text<E: de::Error>(self, v: &str) -> Result<Self::Out, E> {
        Ok(Some(v.to_owned()))
    }
    fn uint<E: de::Error>(self, v: u64) -> Result<Self::Out, E> {
        Ok(Some(v.to_string()))
    }
    fn int<E: de::Error>(self, v: i64) -> Result<Self::Out, E> {
        Ok(Some(v.to_string()))
    }
    fn num<E: de::Error>(self, v: f64) -> Result<Self::Out, E> {
        Ok(Some(v.to_string()))
    }
    fn null<E: de::Error>(self) -> Result<Self::Out, E> {
        Ok(None)
    }
}

/// `inputs` / `outputs`: a list of tensor objects, all with the same rows.
struct TensorList<'a> {
    ctx: &'a mut Ctx,
    body_len: usize,
    side: Side,
}

impl<'de> Handler<'de> for TensorList<'_> {
    type Out = Vec<Tensor>;
    fn ctx(&mut self) -> &mut Ctx {
        self.ctx
    }
    fn expecting(&self) -> &'static str {
        "a list of tensors"
    }
    fn seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Vec<Tensor>, A::Error> {
        let TensorList { ctx, body_len, side } = self;
        let mut out: Vec<Tensor> = Vec::new();
        loop {
            let i = out.len();
            let t = match s.next_element_seed(Visit(TensorObj { ctx: &mut *ctx, body_len })) {
                Ok(Some(t)) => t,
                Ok(None) => return Ok(out),
                Err(e) => return Err(ctx.at_index(e, i)),
            };
            if let Some(first) = out.first() {
                if t.rows != first.rows {
                    let msg = format!("{} rows (shape[0]), {}[0] has {}", t.rows, side.field(), first.rows);
                    let e = ctx.fail(Reason::ShapeMismatch, msg);
                    let e = ctx.at_key(e, "shape");
                    return Err(ctx.at_index(e, i));
                }
            }
            out.push(t);
        }
    }
}

/// A known datatype's value kind.
fn datatype(s: &str) -> Option<Kind> {
    Some(match s {
        "BOOL" | "UINT8" | "UINT16" | "UINT32" | "UINT64" | "INT8" | "INT16" | "INT32" | "INT64" | "FP16" | "BF16"
        | "FP32" | "FP64" => Kind::Num,
        "BYTES" => Kind::Text,
        _ => return None,
    })
}

/// One tensor: `{"name", "shape", "datatype", "data", "parameters"?}` in any order.
struct TensorObj<'a> {
    ctx: &'a mut Ctx,
    body_len: usize,
}

impl<'de> Handler<'de> for TensorObj<'_> {
    type Out = Tensor;
    fn ctx(&mut self) -> &mut Ctx {
        self.ctx
    }
    fn expecting(&self) -> &'static str {
        "a tensor object"
    }
    fn map<A: MapAccess<'de>>(self, mut m: A) -> Result<Tensor, A::Error> {
        let TensorObj { ctx, body_len } = self;
        let mut name: Option<String> = None;
        let mut shape: Option<Vec<u64>> = None;
        let mut dtype: Option<(String, Kind)> = None;
        let mut data: Option<Acc> = None;
        while let Some(key) = m.next_key_seed(Key)? {
            let r = match key.as_ref() {
                "name" => m.next_value_seed(Visit(Name { ctx: &mut *ctx })).map(|v| name = Some(v)),
                "shape" => m.next_value_seed(Visit(Shape { ctx: &mut *ctx })).map(|v| shape = Some(v)),
                "datatype" => m.next_value_seed(Visit(Datatype { ctx: &mut *ctx })).map(|v| dtype = Some(v)),
                "data" => {
                    let mut acc = Acc::new(dtype.as_ref().map_or(Kind::Unknown, |d| d.1));
                    if let Some(shape) = &shape {
                        // Room for the values the shape claims, but never more than the body can
                        // hold (a value and its comma take at least two bytes).
                        let claimed = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d)).unwrap_or(u64::MAX);
                        acc.reserve_nums(claimed.min(body_len as u64 / 2 + 1) as usize);
                    }
                    m.next_value_seed(Visit(Flat { acc: &mut acc, ctx: &mut *ctx })).map(|()| data = Some(acc))
                }
                "parameters" => m.next_value_seed(Visit(Parameters { ctx: &mut *ctx })),
                _ => m.next_value::<IgnoredAny>().map(|_| ()),
            };
            if let Err(e) = r {
                return Err(ctx.at_key(e, &key));
            }
        }
        let have = [name.is_some(), shape.is_some(), dtype.is_some(), data.is_some()];
        let (Some(name), Some(shape), Some((dtype, kind)), Some(data)) = (name, shape, dtype, data) else {
            let missing: Vec<&str> =
                ["name", "shape", "datatype", "data"].into_iter().zip(have).filter(|f| !f.1).map(|f| f.0).collect();
            return Err(ctx.fail(Reason::MissingField, format!("no \"{}\"", missing.join("\", \""))));
        };
        let (rows, width) = match shape.split_first() {
            None => (1u64, Some(1u64)),
            Some((&rows, rest)) => (rows, rest.iter().try_fold(1u64, |a, &d| a.checked_mul(d))),
        };
        let total = width.and_then(|w| w.checked_mul(rows));
        let (Some(width), Some(total)) = (width, total) else {
            let e = ctx.fail(Reason::BadShape, format!("shape {} has more elements than fit in 64 bits", dims(&shape)));
            return Err(ctx.at_key(e, "shape"));
        };
        let (Ok(rows), Ok(width)) = (usize::try_from(rows), usize::try_from(width)) else {
            let e = ctx.fail(Reason::BadShape, format!("shape {} is too large", dims(&shape)));
            return Err(ctx.at_key(e, "shape"));
        };
        if data.len() as u64 != total {
            let msg = format!("{} values for shape {}", data.len(), dims(&shape));
            let e = ctx.fail(Reason::ShapeMismatch, msg);
            return Err(ctx.at_key(e, "data"));
        }
        if data.kind() != kind && data.kind() != Kind::Unknown {
            let found = if data.kind() == Kind::Text { "strings" } else { "numbers" };
            let e = ctx.fail(Reason::MixedTypes, format!("{found} for datatype {dtype}"));
            return Err(ctx.at_key(e, "data"));
        }
        Ok(Tensor { name: Some(name), rows, width, values: data.finish_as(kind) })
    }
}

/// `[2,4]`, for details.
fn dims(shape: &[u64]) -> String {
    let inner: Vec<String> = shape.iter().map(u64::to_string).collect();
    format!("[{}]", inner.join(","))
}

/// `name`: a string.
struct Name<'a> {
    ctx: &'a mut Ctx,
}

impl<'de> Handler<'de> for Name<'_> {
    type Out = String;
    fn ctx(&mut self) -> &mut Ctx {
        self.ctx
    }
    fn expecting(&self) -> &'static str {
        "a string"
    }
    fn text<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }
}

/// `datatype`: a known datatype's name.
struct Datatype<'a> {
    ctx: &'a mut Ctx,
}

impl<'de> Handler<'de> for Datatype<'_> {
    type Out = (String, Kind);
    fn ctx(&mut self) -> &mut Ctx {
        self.ctx
    }
    fn expecting(&self) -> &'static str {
        "a datatype name"
    }
    fn wrong_reason(&self) -> Reason {
        Reason::BadDatatype
    }
    fn text<E: de::Error>(self, v: &str) -> Result<Self::Out, E> {
        match datatype(v) {
            Some(kind) => Ok((v.to_owned(), kind)),
            None => Err(self.ctx.fail(Reason::BadDatatype, format!("unknown datatype {:?}", clip(v)))),
        }
    }
}

/// `shape`: a list of non-negative integers.
struct Shape<'a> {
    ctx: &'a mut Ctx,
}

impl<'de> Handler<'de> for Shape<'_> {
    type Out = Vec<u64>;
    fn ctx(&mut self) -> &mut Ctx {
        self.ctx
    }
    fn expecting(&self) -> &'static str {
        "a list of dimensions"
    }
    fn wrong_reason(&self) -> Reason {
        Reason::BadShape
    }
    fn seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Vec<u64>, A::Error> {
        let mut out = Vec::new();
        loop {
            let i = out.len();
            if i > MAX_DIMS {
                return Err(self.ctx.fail(Reason::BadShape, format!("more than {MAX_DIMS} dimensions")));
            }
            match s.next_element_seed(Visit(Dim { ctx: &mut *self.ctx })) {
                Ok(Some(d)) => out.push(d),
                Ok(None) => return Ok(out),
                Err(e) => return Err(self.ctx.at_index(e, i)),
            }
        }
    }
}

/// One dimension of a shape.
struct Dim<'a> {
    ctx: &'a mut Ctx,
}

impl<'de> Handler<'de> for Dim<'_> {
    type Out = u64;
    fn ctx(&mut self) -> &mut Ctx {
        self.ctx
    }
    fn expecting(&self) -> &'static str {
        "a non-negative integer"
    }
    fn wrong_reason(&self) -> Reason {
        Reason::BadShape
    }
    fn uint<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }
    fn int<E: de::Error>(self, v: i64) -> Result<u64, E> {
        Err(self.ctx.fail(Reason::BadShape, format!("expected a non-negative integer, found {v}")))
    }
}

/// `parameters`: only Triton's `binary_data_size` matters (→ unsupported); anything else is skipped.
struct Parameters<'a> {
    ctx: &'a mut Ctx,
}

impl<'de> Handler<'de> for Parameters<'_> {
    type Out = ();
    fn ctx(&mut self) -> &mut Ctx {
        self.ctx
    }
    fn expecting(&self) -> &'static str {
        "an object"
    }
    fn map<A: MapAccess<'de>>(self, mut m: A) -> Result<(), A::Error> {
        while let Some(key) = m.next_key_seed(Key)? {
            if key == "binary_data_size" {
                let msg = "binary_data_size: Triton's binary data extension is not decoded";
                return Err(self.ctx.fail(Reason::Unsupported, msg));
            }
            m.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }
    fn seq<A: SeqAccess<'de>>(self, s: A) -> Result<(), A::Error> {
        drain_seq(s)
    }
    fn num<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn boolean<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn null<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn text<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
}
