//! Sorting f64 samples: a radix sort with the result of `sort_unstable_by(f64::total_cmp)`, bit for bit.
//!
//! Keys: each value maps to an order-preserving u64, `2^63 + |x|` for a positive sign and `2^63 − |x|` for a
//! negative one (|x| = the bits without the sign), so unsigned key order is numeric order. Unlike the usual
//! "flip every bit of a negative" key, this one keeps the trailing zero bits of the magnitude. Relative to the
//! smallest key, the bits common to every key are dropped: the common trailing zeros (29 for values that came
//! from f32) and everything above the highest bit of the range (the sign and most of the exponent for a narrow
//! range). What is left is `bits` wide.
//!
//! - `bits` <= the prefix width (20, or 30 when the range spans many binades): an exact LSD radix sort, one
//!   counting pass per 10-bit digit.
//! - wider (full-precision f64: about 52 bits): the LSD passes sort by the top prefix bits only. Keys sharing
//!   a prefix are then adjacent but not yet in order: an insertion sort finishes them (with 10,000 normal
//!   values over 2^20 prefixes, about 1% of keys need a move, by a place or two). Heavy ties do not make it
//!   slower (equal keys never move); if a range stretched by outliers crowds the keys into few prefixes, the
//!   insertion sort gives up after a budget of moves and each run of equal prefix is sorted by the standard
//!   library.
//!
//! Values with no sign bit set (the common case of a positive feature) skip the key transform: their bit
//! patterns already compare as the values do.
//!
//! A pass whose digit is the same in every key (its histogram is one bucket) is skipped. The one key
//! collision, −0.0 and +0.0 (both 2^63), is undone after sorting: the zeros are one run, and the counted
//! −0.0s are written at its start, as `total_cmp` orders them.
//!
//! Fallbacks, all exact: below [`RADIX_MIN_LEN`] values, or with NaN present, an unstable sort of the usual
//! total-order u64 keys (u64 comparisons are cheaper than `total_cmp`; keys are distinct per bit pattern, so
//! the result is the same); below [`KEY_SORT_MIN_LEN`], `sort_unstable_by(f64::total_cmp)` itself.

/// Below this length, `sort_unstable_by(f64::total_cmp)` (no key buffer).
pub const KEY_SORT_MIN_LEN: usize = 64;

/// Below this length the u64-key comparison sort is used: measured on 64 different samples per size
/// (256..5,000 decimal-parsed f32 and full-precision normals of both signs), the radix sort's fixed cost (a
/// range pass, the histograms) is repaid from about 600 positive and 1,000 mixed-sign values.
pub const RADIX_MIN_LEN: usize = 1024;

const SIGN: u64 = 1 << 63;

/// Digit width of the counting passes. Measured on 100 different 10,000-value samples of decimal-parsed f32
/// (full-precision f64 in a narrow range): 10 bits (two passes for a 20-bit prefix) beat 9 and 11 by 2-3% and
/// 12 (histograms past L1) and 8 (three passes, or many more keys to finish) by more; for f32-origin values
/// 11 bits would be about 10% faster.
const DIGIT: u32 = 10;
const BUCKETS: usize = 1 << DIGIT;
const MASK: u64 = (BUCKETS - 1) as u64;
const MAX_PASSES: usize = 3;

/// Sorts `values` ascending in `f64::total_cmp` order: the same result, bit for bit, as
/// `values.sort_unstable_by(f64::total_cmp)` (-0.0 before +0.0; NaN with the sign set first, without it last).
pub fn sort_f64(values: &mut [f64]) {
    sort_f64_with(values, &mut Vec::new());
}

/// [`sort_f64`] with a caller-owned scratch buffer (resized to `values.len()`, contents irrelevant), so
/// repeated sorts do not allocate.
pub fn sort_f64_with(values: &mut [f64], scratch: &mut Vec<u64>) {
    let n = values.len();
    if n < KEY_SORT_MIN_LEN {
        values.sort_unstable_by(f64::total_cmp);
        return;
    }
    if scratch.len() < n {
        scratch.resize(n, 0);
    }
    let scratch = &mut scratch[..n];
    // (The radix sort counts in u32.)
    if n < RADIX_MIN_LEN || n > u32::MAX as usize {
        sort_by_total_order_keys(values, scratch);
        return;
    }
    let (lo, hi, or, non_finite) = scan(values);
    if non_finite && values.iter().any(|x| x.is_nan()) {
        sort_by_total_order_keys(values, scratch);
        return;
    }
    let (kmin, kmax) = (key(lo.to_bits()), key(hi.to_bits()));
    let span = kmax - kmin;
    let magnitudes = or & !SIGN;
    // Every key − kmin is a multiple of 2^tz, since every magnitude is.
    let tz = if magnitudes == 0 { 0 } else { magnitudes.trailing_zeros() };
    let bits = (64 - (span >> tz).leading_zeros()) as usize;
    // Past 52 bits the range covers several binades, whose exponent bits would fill a 20-bit prefix.
    let prefix = if bits > 52 { 3 * DIGIT as usize } else { 2 * DIGIT as usize };
    let passes = bits.min(prefix).div_ceil(DIGIT as usize);
    // The counting passes sort by the bits from `base` up; below it, the insertion sort finishes.
    let base = bits.saturating_sub(passes * DIGIT as usize) as u32;
    // Both zeros have one key; count the -0.0s to restore them (only possible if the range holds zero).
    let negative_zeros = if lo <= 0.0 && hi >= 0.0 { values.iter().filter(|x| x.to_bits() == SIGN).count() } else { 0 };
    let shape = Shape { passes, base, tz };
    if or & SIGN == 0 {
        // No sign bit anywhere: key(x) − kmin is just the bit pattern minus the smallest one.
        let lo_bits = lo.to_bits();
        radix_passes(
            values,
            scratch,
            shape,
            move |x| x.to_bits().wrapping_sub(lo_bits),
            move |k| f64::from_bits((k << tz).wrapping_add(lo_bits)),
        );
    } else {
        // key(x) − kmin = (2^63 − kmin) ± magnitude.
        let offset = SIGN.wrapping_sub(kmin);
        let rel = move |x: f64| {
            let b = x.to_bits();
            let s = ((b as i64) >> 63) as u64; // all ones for a negative sign
            offset.wrapping_add(((b & !SIGN) ^ s).wrapping_sub(s))
        };
        radix_passes(values, scratch, shape, rel, move |k| f64::from_bits(from_key((k << tz).wrapping_add(kmin))));
    }
    if negative_zeros > 0 {
        // The zeros are one run, in no particular sign order (one key): total_cmp puts the -0.0s first.
        let start = values.partition_point(|&x| x < 0.0);
        let end = values.partition_point(|&x| x <= 0.0);
        values[start..start + negative_zeros].fill(-0.0);
        values[start + negative_zeros..end].fill(0.0);
    }
}

/// How the keys are cut: `passes` digits from bit `base` up of `(key − kmin) >> tz`.
#[derive(Clone, Copy)]
struct Shape {
    passes: usize,
    base: u32,
    tz: u32,
}

/// The counting passes and the finish, given `rel(x) = key(x) − kmin` and its inverse `back(rel >> tz)`.
#[inline(always)]
fn radix_passes(
    values: &mut [f64],
    scratch: &mut [u64],
    Shape { passes, base, tz }: Shape,
    rel: impl Fn(f64) -> u64 + Copy,
    back: impl Fn(u64) -> f64 + Copy,
) {
    let n = values.len();
    let mut hist = [[0u32; BUCKETS]; MAX_PASSES];
    let top = tz + base;
    // The histogram pass also turns the values into their keys, in place.
    match passes {
        0 => {}
        1 => histograms::<1>(values, &mut hist, rel, (tz, top)),
        2 => histograms::<2>(values, &mut hist, rel, (tz, top)),
        _ => histograms::<3>(values, &mut hist, rel, (tz, top)),
    }
    // Digits whose histogram is a single bucket are the same in every key: no pass.
    let mut active = [0u32; MAX_PASSES];
    let mut count = 0;
    for (p, h) in hist.iter().enumerate().take(passes) {
        if !h.iter().any(|&c| c as usize == n) {
            active[count] = p as u32;
            count += 1;
        }
    }
    let active = &active[..count];
    // The keys move values → scratch → values …; a last pass into `values` writes the values themselves.
    let mut in_scratch = false;
    let mut converted = passes == 0;
    let mut offsets = [0u32; BUCKETS];
    for (idx, &p) in active.iter().enumerate() {
        let mut start = 0u32;
        for (o, &c) in offsets.iter_mut().zip(&hist[p as usize]) {
            *o = start;
            start += c;
        }
        let shift = base + DIGIT * p;
        if !in_scratch {
            scatter(values, scratch, &mut offsets, shift, f64::to_bits, |k| k);
        } else if idx + 1 == active.len() {
            scatter(scratch, values, &mut offsets, shift, |k| k, back);
            converted = true;
        } else {
            scatter(scratch, values, &mut offsets, shift, |k| k, f64::from_bits);
        }
        in_scratch = !in_scratch;
    }
    if !converted {
        if in_scratch {
            values.iter_mut().zip(scratch.iter()).for_each(|(x, &k)| *x = back(k));
        } else {
            values.iter_mut().for_each(|x| *x = back(x.to_bits()));
        }
    }
    if base > 0 {
        finish_prefix_sorted(values, |x| rel(x) >> top);
    }
}

/// One pass: the smallest and largest value, the OR of all bit patterns, and whether some value is NaN or
/// infinite (x·0 is then NaN rather than ±0). The range comes from ordered pairs and is only meaningful
/// without NaN. In a function of its own: inlined into the sort, the vectoriser packs the min and max chains
/// into one register and the loop runs several times slower.
#[inline(never)]
fn scan(values: &[f64]) -> (f64, f64, u64, bool) {
    let (mut lo, mut hi) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
    let (mut or, mut poison) = (0u64, 0u64);
    let quads = values.chunks_exact(4);
    for &x in quads.remainder() {
        (lo[0], hi[0]) = (if x < lo[0] { x } else { lo[0] }, if x > hi[0] { x } else { hi[0] });
        or |= x.to_bits();
        poison |= (x * 0.0).to_bits();
    }
    for c in quads {
        for h in 0..2 {
            let (x, y) = (c[2 * h], c[2 * h + 1]);
            let (a, b) = if x < y { (x, y) } else { (y, x) };
            lo[h] = if a < lo[h] { a } else { lo[h] };
            hi[h] = if b > hi[h] { b } else { hi[h] };
        }
        or |= c[0].to_bits() | c[1].to_bits() | c[2].to_bits() | c[3].to_bits();
        poison |= (c[0] * 0.0).to_bits() | (c[1] * 0.0).to_bits() | (c[2] * 0.0).to_bits() | (c[3] * 0.0).to_bits();
    }
    let lo = if lo[1] < lo[0] { lo[1] } else { lo[0] };
    let hi = if hi[1] > hi[0] { hi[1] } else { hi[0] };
    (lo, hi, or, poison & !SIGN != 0)
}

/// Replaces every value by the bits of its key `rel(x) >> tz`, and counts the `P` digits of `rel(x) >> top`.
#[inline(always)]
fn histograms<const P: usize>(
    values: &mut [f64],
    hist: &mut [[u32; BUCKETS]; MAX_PASSES],
    rel: impl Fn(f64) -> u64,
    (tz, top): (u32, u32),
) {
    for x in values.iter_mut() {
        let r = rel(*x);
        let t = r >> top;
        for (p, h) in hist.iter_mut().enumerate().take(P) {
            h[((t >> (DIGIT as usize * p)) & MASK) as usize] += 1;
        }
        *x = f64::from_bits(r >> tz);
    }
}

/// One stable counting-sort pass on the digit at `shift`; `offsets` are the buckets' start positions.
#[inline(always)]
fn scatter<S: Copy, D>(
    src: &[S],
    dst: &mut [D],
    offsets: &mut [u32; BUCKETS],
    shift: u32,
    load: impl Fn(S) -> u64,
    store: impl Fn(u64) -> D,
) {
    for &x in src {
        let k = load(x);
        let d = ((k >> shift) & MASK) as usize;
        let o = offsets[d];
        dst[o as usize] = store(k);
        offsets[d] = o + 1;
    }
}

/// Values ordered by `prefix(x)` (the radix key's top bits), NaN-free: sorts them completely. An insertion
/// sort, since values out of order are rare and only ever behind neighbours with the same prefix; past a budget
/// of moves (few prefixes holding many values), each run of equal prefix is sorted with `sort_unstable_by`
/// instead. (-0.0 and +0.0 compare equal here; the caller rewrites the zeros.)
fn finish_prefix_sorted(values: &mut [f64], prefix: impl Fn(f64) -> u64 + Copy) {
    let n = values.len();
    let mut budget = 4 * n;
    let Some(&first) = values.first() else { return };
    // The largest value so far, values[i − 1], kept in a register (an insertion leaves it at i).
    let mut prev = first;
    for i in 1..n {
        let x = values[i];
        if x < prev {
            let mut j = i;
            while j > 0 && values[j - 1] > x {
                values[j] = values[j - 1];
                j -= 1;
            }
            values[j] = x;
            budget = budget.saturating_sub(i - j);
            if budget == 0 {
                sort_runs(&mut values[i..], prefix);
                // values[..=i] is sorted, and its last run of equal prefix may continue in values[i..]: sort that
                // boundary run as a whole.
                let p = prefix(values[i]);
                let start = values[..=i].partition_point(|&x| prefix(x) < p);
                let end = i + values[i..].partition_point(|&x| prefix(x) == p);
                values[start..end].sort_unstable_by(f64::total_cmp);
                return;
            }
        } else {
            prev = x;
        }
    }
}

/// Values ordered by `prefix(x)`: sorts each run of equal prefix.
fn sort_runs(values: &mut [f64], prefix: impl Fn(f64) -> u64) {
    let n = values.len();
    let mut start = 0;
    while start < n {
        let p = prefix(values[start]);
        let mut end = start + 1;
        while end < n && prefix(values[end]) == p {
            end += 1;
        }
        if end - start > 1 {
            values[start..end].sort_unstable_by(f64::total_cmp);
        }
        start = end;
    }
}

/// The radix key of a bit pattern: `2^63 ± magnitude` (both zeros give 2^63).
#[inline(always)]
fn key(b: u64) -> u64 {
    let s = ((b as i64) >> 63) as u64; // all ones for a negative sign
    SIGN.wrapping_add(((b & !SIGN) ^ s).wrapping_sub(s))
}

/// Inverse of [`key`] (2^63 gives +0.0).
#[inline(always)]
fn from_key(k: u64) -> u64 {
    let v = k.wrapping_sub(SIGN);
    let s = ((v as i64) >> 63) as u64;
    ((v ^ s).wrapping_sub(s)) | (s & SIGN)
}

/// The usual total-order key (negatives: every bit flipped; others: sign bit set), an unstable u64 sort, and
/// back. Exact for every bit pattern, NaN included.
fn sort_by_total_order_keys(values: &mut [f64], keys: &mut [u64]) {
    for (k, &x) in keys.iter_mut().zip(values.iter()) {
        let b = x.to_bits();
        *k = b ^ (((b as i64 >> 63) as u64) | SIGN);
    }
    keys.sort_unstable();
    for (x, &k) in values.iter_mut().zip(keys.iter()) {
        *x = f64::from_bits(k ^ ((k >> 63).wrapping_sub(1) | SIGN));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(values: &[f64]) {
        let mut expected = values.to_vec();
        expected.sort_unstable_by(f64::total_cmp);
        let mut got = values.to_vec();
        sort_f64(&mut got);
        let first_difference = |got: &[f64]| got.iter().zip(&expected).position(|(a, b)| a.to_bits() != b.to_bits());
        if let Some(i) = first_difference(&got) {
            panic!("n = {}: at {i}, {:e} instead of {:e}", values.len(), got[i], expected[i]);
        }
        // And through the scratch-reusing entry point, with a dirty buffer.
        let mut got = values.to_vec();
        let mut scratch = vec![u64::MAX; 7];
        sort_f64_with(&mut got, &mut scratch);
        assert_eq!(first_difference(&got), None, "n = {} (scratch)", values.len());
    }

    #[test]
    fn keys_order_and_round_trip() {
        let special = [
            f64::NEG_INFINITY,
            f64::MIN,
            -1.0,
            -f64::MIN_POSITIVE,
            -5e-324,
            -0.0,
            0.0,
            5e-324,
            f64::MIN_POSITIVE,
            1.0,
            f64::MAX,
            f64::INFINITY,
        ];
        for &a in &special {
            let back = f64::from_bits(from_key(key(a.to_bits())));
            // ±0 share a key (restored by the zero run fix-up); everything else round-trips.
            if a != 0.0 {
                assert_eq!(back.to_bits(), a.to_bits());
            }
            for &b in &special {
                if a != 0.0 || b != 0.0 {
                    assert_eq!(key(a.to_bits()).cmp(&key(b.to_bits())), a.total_cmp(&b), "{a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn edge_cases() {
        check(&[]);
        check(&[1.0]);
        check(&[0.0, -0.0, 0.0, -0.0]);
        check(&vec![3.5; 3000]);
        check(&vec![-0.0; 3000]);
        let mut zeros: Vec<f64> = (0..3000).map(|i| if i % 3 == 0 { -0.0 } else { 0.0 }).collect();
        check(&zeros);
        zeros.extend((0..500).map(|i| (i as f64 - 250.0) / 8.0));
        check(&zeros);
        let mut special = zeros.clone();
        special.extend([f64::INFINITY, f64::NEG_INFINITY, 5e-324, -5e-324, f64::MAX, f64::MIN]);
        check(&special);
        special.extend([f64::NAN, -f64::NAN]);
        check(&special);
        check(&vec![f64::NAN; 3000]);
        check(&vec![-f64::NAN; 100]);
        // Descending, and already sorted.
        check(&(0..5000).map(|i| -(i as f64)).collect::<Vec<_>>());
        check(&(0..5000).map(|i| i as f64).collect::<Vec<_>>());
        // One byte varies in the middle of the key only.
        check(&(0..3000).map(|i| f64::from_bits(0x4000_0000_0000_0000 | ((i as u64 % 256) << 24))).collect::<Vec<_>>());
        // Full-precision values sharing a 16-bit prefix in runs; and one outlier stretching the range.
        let mut runs: Vec<f64> = (0..4000).map(|i| 1.0 + (i % 7) as f64 * 1e-9 + (i / 7) as f64 * 1e-3).collect();
        check(&runs);
        runs.push(1e300);
        check(&runs);
        // Random values crowded into a few prefixes by an outlier: the insertion sort runs out of budget.
        let mut rng = fastrand::Rng::with_seed(11);
        let mut crowded: Vec<f64> = (0..6000).map(|_| 1.0 + rng.f64() * 1e-9).collect();
        crowded.push(1e300);
        check(&crowded);
        crowded.extend((0..3000).map(|_| -1.0 - rng.f64() * 1e-9));
        check(&crowded);
    }

    #[test]
    fn random_kinds_and_sizes() {
        let mut rng = fastrand::Rng::with_seed(0x50_47);
        for trial in 0..500 {
            let n = match trial % 4 {
                0 => rng.usize(0..3000),
                1 => rng.usize(0..20_000),
                _ => rng.usize(2000..6000),
            };
            let kind = trial % 11;
            let v: Vec<f64> = (0..n)
                .map(|_| match kind {
                    // Small integers with signed zeros: heavy ties.
                    0 => {
                        let x = rng.i32(-3..4) as f64;
                        if x == 0.0 && rng.bool() {
                            -0.0
                        } else {
                            x
                        }
                    }
                    // f32-origin values around an offset (constant low bytes, narrow range).
                    1 => (rng.f64() * 8.0 + 40.0) as f32 as f64,
                    // f32-origin values of both signs.
                    2 => (rng.f64() * 8.0 - 4.0) as f32 as f64,
                    // Any bit pattern: huge ranges, subnormals, infinities, NaNs of both signs.
                    3 => f64::from_bits(rng.u64(..)),
                    // Subnormals only, both signs.
                    4 => f64::from_bits(rng.u64(0..1 << 52)) * if rng.bool() { -1.0 } else { 1.0 },
                    // Wide magnitude range.
                    5 => (rng.f64() - 0.5) * 10f64.powi(rng.i32(-300..300)),
                    // Full-precision uniform in [-1, 1).
                    6 => rng.f64() * 2.0 - 1.0,
                    // Decimal-parsed f32 text (full-precision f64 in a narrow range), as the codec delivers FP32.
                    8 => format!("{}", (rng.f64() * 8.0 + 33.0) as f32).parse().unwrap(),
                    // Heavy tails of both signs: long runs behind a shared prefix.
                    9 => (rng.f64() - 0.5).powi(7) * 1e6,
                    // A few distinct values, occasionally a NaN.
                    7 => [1.5, -2.25, 1e300, -1e-300, 0.1, -0.0, 0.0][rng.usize(0..7)],
                    _ => {
                        if rng.usize(0..1000) == 0 {
                            f64::NAN
                        } else {
                            rng.f64()
                        }
                    }
                })
                .collect();
            check(&v);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn matches_std_sort_any_bits(v in proptest::collection::vec(any::<u64>(), 0..5000)) {
            let v: Vec<f64> = v.into_iter().map(f64::from_bits).collect();
            check(&v);
        }

        #[test]
        fn matches_std_sort_ties(v in proptest::collection::vec(-20i32..20, 0..5000), scale in -4i32..4) {
            let v: Vec<f64> = v.into_iter().map(|x| x as f64 * 2f64.powi(scale)).collect();
            check(&v);
        }

        #[test]
        fn matches_std_sort_f32(v in proptest::collection::vec(any::<f32>(), 0..5000)) {
            let v: Vec<f64> = v.into_iter().map(f64::from).collect();
            check(&v);
        }
    }
}
