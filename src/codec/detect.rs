//! Which codec a request path speaks.

use super::Codec;

/// Detects the protocol from the request path (path only; anything from `?` on is ignored):
/// - V2: `/v2/models/{m}/infer` and `/v2/models/{m}/versions/{v}/infer`;
/// - V1: `/v1/models/{m}:predict`, `/v1/models/{m}/versions/{v}:predict` and
///   `/v1/models/{m}/labels/{l}:predict`. Only `:predict`: TF-Serving's `:classify` and `:regress`
///   take `examples` (tf.Example) bodies, which the V1 codec does not read.
///
/// Anything else (health, metadata, model lists, other verbs, empty segments, a trailing slash)
/// is `None`. [`Codec::Json`] is never detected: it comes from config.
pub fn detect(path: &str) -> Option<Codec> {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    let mut segs = path.strip_prefix('/')?.split('/');
    let proto = segs.next()?;
    if segs.next()? != "models" {
        return None;
    }
    let rest: Vec<&str> = segs.collect();
    if rest.iter().any(|s| s.is_empty()) {
        return None;
    }
    match proto {
        "v2" => match rest.as_slice() {
            [_model, "infer"] | [_model, "versions", _, "infer"] => Some(Codec::V2),
            _ => None,
        },
        "v1" => {
            let (last, head) = rest.split_last()?;
            let (name, verb) = last.rsplit_once(':')?;
            if verb != "predict" || name.is_empty() {
                return None;
            }
            match head {
                [] | [_, "versions" | "labels"] => Some(Codec::V1),
                _ => None,
            }
        }
        _ => None,
    }
}
