//! TF-Serving / KServe V1 bodies (rules in the module doc of `codec`).

use super::walk::{batch, clip, run, AnyText, Ctx, Handler, Key, Target, Visit};
use super::{Batch, DecodeError, Reason, Tensor};
use serde::de::{IgnoredAny, MapAccess};
use serde::Deserializer as _;

/// Which tensors to take.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// `instances` (row form), else `inputs` (columnar form).
    Request,
    /// `predictions` (row form), else `outputs` (columnar form).
    Response,
}

impl Side {
    /// The row-form and the columnar-form field.
    fn fields(self) -> (&'static str, &'static str) {
        match self {
            Side::Request => ("instances", "inputs"),
            Side::Response => ("predictions", "outputs"),
        }
    }
}

pub(crate) fn decode(body: &[u8], side: Side) -> Result<Batch, DecodeError> {
    run(body, "", false, |ctx, de| de.deserialize_any(Visit(Top { ctx, side })))
}

struct Top<'a> {
    ctx: &'a mut Ctx,
    side: Side,
}

impl<'de> Handler<'de> for Top<'_> {
    type Out = Batch;
    fn ctx(&mut self) -> &mut Ctx {
        self.ctx
    }
    fn expecting(&self) -> &'static str {
        "a V1 object"
    }
    fn wrong_reason(&self) -> Reason {
        Reason::NotObject
    }
    fn map<A: MapAccess<'de>>(self, mut m: A) -> Result<Batch, A::Error> {
        let Top { ctx, side } = self;
        let (row_form, columnar) = side.fields();
        let mut rows: Option<Vec<Tensor>> = None;
        let mut cols: Option<Vec<Tensor>> = None;
        let mut error: Option<String> = None;
        while let Some(key) = m.next_key_seed(Key)? {
            let r = if key == row_form {
                let t = Target { ctx: &mut *ctx, objects: true, columns: false, name: None };
                m.next_value_seed(Visit(t)).map(|t| rows = Some(t))
            } else if key == columnar {
                let t = Target { ctx: &mut *ctx, objects: false, columns: true, name: None };
                m.next_value_seed(Visit(t)).map(|t| cols = Some(t))
            } else if key == "error" {
                m.next_value_seed(Visit(AnyText { ctx: &mut *ctx })).map(|v| error = v)
            } else {
                m.next_value::<IgnoredAny>().map(|_| ())
            };
            if let Err(e) = r {
                return Err(ctx.at_key(e, &key));
            }
        }
        match rows.or(cols) {
            Some(tensors) => Ok(batch(tensors)),
            None => {
                let also = error.map(|e| format!(" (the body has \"error\": {:?})", clip(&e))).unwrap_or_default();
                Err(ctx.fail(Reason::MissingField, format!("no \"{row_form}\" or \"{columnar}\"{also}")))
            }
        }
    }
}
