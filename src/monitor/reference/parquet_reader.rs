//! Parquet through the crate's column readers (no Arrow): one column chunk at a time, values
//! converted as they are decoded, only the picked rows kept.

use std::panic::{catch_unwind, AssertUnwindSafe};

use parquet::basic::{ConvertedType, LogicalType, Repetition, TimeUnit, Type as Physical};
use parquet::column::reader::{ColumnReader, ColumnReaderImpl};
use parquet::data_type::{ByteArray, DataType, FixedLenByteArray, Int96};
use parquet::file::reader::{ChunkReader, FileReader, SerializedFileReader};
use parquet::schema::types::ColumnDescriptor;

use super::{Builder, Column, Location, Picker, ReferenceError, Table, MAX_COLUMNS};

/// Rows decoded per call.
const BATCH: usize = 8192;

pub(super) fn read<R: ChunkReader + 'static>(
    input: R,
    origin: &str,
    max_rows: usize,
    seed: u64,
) -> Result<Table, ReferenceError> {
    // The decoder is meant to return errors on bad input; this guard keeps a missed case from
    // taking the process down (in builds that unwind).
    catch_unwind(AssertUnwindSafe(|| read_file(input, origin, max_rows, seed))).unwrap_or_else(|_| {
        Err(ReferenceError::invalid(
            origin,
            Location::default(),
            "expected a readable Parquet file, found data the Parquet decoder could not handle",
        ))
    })
}

fn read_file<R: ChunkReader + 'static>(
    input: R,
    origin: &str,
    max_rows: usize,
    seed: u64,
) -> Result<Table, ReferenceError> {
    let fail = |at: Location, message: String| ReferenceError::invalid(origin, at, message);
    let file_len = input.len();
    let reader = SerializedFileReader::new(input)
        .map_err(|e| fail(Location::default(), format!("expected a Parquet file, found {e}")))?;
    let meta = reader.metadata();
    let schema = meta.file_metadata().schema_descr();
    for field in schema.root_schema().get_fields() {
        if field.is_group() {
            return Err(fail(
                Location::column(field.name()),
                "expected a flat column of numbers, strings or booleans, found a nested group".to_owned(),
            ));
        }
        if field.get_basic_info().has_repetition() && field.get_basic_info().repetition() == Repetition::REPEATED {
            return Err(fail(
                Location::column(field.name()),
                "expected a flat column of numbers, strings or booleans, found a repeated (list) field".to_owned(),
            ));
        }
    }
    let width = schema.num_columns();
    if width > MAX_COLUMNS {
        return Err(fail(Location::default(), format!("expected at most {MAX_COLUMNS} columns, found {width}")));
    }
    let descrs: Vec<_> = (0..width).map(|i| schema.column(i)).collect();
    let convs = descrs
        .iter()
        .map(|d| conversion(d).map_err(|m| fail(Location::column(d.name()), m)))
        .collect::<Result<Vec<Conv>, _>>()?;

    let mut groups = Vec::with_capacity(reader.num_row_groups());
    for g in 0..reader.num_row_groups() {
        let group = meta.row_group(g);
        if group.num_columns() != width {
            return Err(fail(
                Location::default(),
                format!("expected {width} column chunks in row group {g}, found {}", group.num_columns()),
            ));
        }
        // The decoder asserts on these instead of returning an error; check them first.
        for (chunk, descr) in group.columns().iter().zip(&descrs) {
            let start = chunk.dictionary_page_offset().unwrap_or(chunk.data_page_offset());
            let len = chunk.compressed_size();
            let fits = start >= 0
                && chunk.data_page_offset() >= 0
                && len >= 0
                && (start as u64).checked_add(len as u64).is_some_and(|end| end <= file_len);
            if !fits {
                return Err(fail(
                    Location::column(descr.name()),
                    format!(
                        "expected a column chunk inside the file in row group {g}, found offset {start} length {len}"
                    ),
                ));
            }
        }
        let n = group.num_rows();
        let n = usize::try_from(n)
            .map_err(|_| fail(Location::default(), format!("expected a row count, found {n} in row group {g}")))?;
        groups.push(n);
    }
    let rows: usize = groups.iter().try_fold(0usize, |a, &n| a.checked_add(n)).ok_or_else(|| {
        fail(Location::default(), "expected row group sizes that add up, found an overflow".to_owned())
    })?;

    let mut picker = Picker::new(rows, max_rows, seed);
    let mut columns = Vec::with_capacity(width);
    for (i, (descr, conv)) in descrs.iter().zip(&convs).enumerate() {
        let name = descr.name();
        let mut builder = Builder::new(conv.categorical(), picker.total());
        let mut chunk = Chunk { picker: &mut picker, row: 0, max_def: descr.max_def_level() };
        chunk.picker.rewind();
        for (g, &expected) in groups.iter().enumerate() {
            if chunk.picker.done() {
                break;
            }
            let column_reader = reader
                .get_row_group(g)
                .and_then(|group| group.get_column_reader(i))
                .map_err(|e| fail(Location::column(name), format!("expected a readable column chunk, found {e}")))?;
            chunk.read(column_reader, *conv, expected, &mut builder).map_err(|(row, message)| {
                let at = match row {
                    Some(r) => Location::cell_at_row(r as u64 + 1, name),
                    None => Location::column(name),
                };
                fail(at, message)
            })?;
        }
        let data = builder.finish();
        if data.len() != chunk.picker.total() {
            return Err(fail(
                Location::column(name),
                format!("expected {} rows as the footer says, found {}", picker.total(), data.len()),
            ));
        }
        columns.push(Column { name: name.to_owned(), data });
    }
    Ok(Table { columns, rows: picker.total() })
}

/// How a column's stored values become table values.
#[derive(Debug, Clone, Copy)]
enum Conv {
    Bool,
    /// INT32 / INT64, value / `div` (decimal scale, time unit).
    Int {
        unsigned: bool,
        div: f64,
    },
    /// Legacy INT96 timestamp, as seconds since the epoch.
    Int96,
    Float,
    /// Byte arrays holding UTF-8.
    Str,
    /// Byte arrays holding a big-endian two's complement unscaled decimal.
    Decimal {
        div: f64,
    },
    Float16,
    Uuid,
}

impl Conv {
    fn categorical(self) -> bool {
        matches!(self, Conv::Bool | Conv::Str | Conv::Uuid)
    }
}

fn unit_div(unit: &TimeUnit) -> f64 {
    match unit {
        TimeUnit::MILLIS => 1e3,
        TimeUnit::MICROS => 1e6,
        TimeUnit::NANOS => 1e9,
    }
}

/// The logical type, from the legacy converted type when the file has only that.
fn logical_of(d: &ColumnDescriptor) -> Result<Option<LogicalType>, String> {
    if let Some(l) = d.logical_type_ref() {
        return Ok(Some(l.clone()));
    }
    Ok(match d.converted_type() {
        ConvertedType::NONE => None,
        ConvertedType::UTF8 => Some(LogicalType::String),
        ConvertedType::ENUM => Some(LogicalType::Enum),
        ConvertedType::JSON => Some(LogicalType::Json),
        ConvertedType::BSON => Some(LogicalType::Bson),
        ConvertedType::DECIMAL => Some(LogicalType::decimal(d.type_scale(), d.type_precision())),
        ConvertedType::DATE => Some(LogicalType::Date),
        ConvertedType::TIME_MILLIS => Some(LogicalType::time(true, TimeUnit::MILLIS)),
        ConvertedType::TIME_MICROS => Some(LogicalType::time(true, TimeUnit::MICROS)),
        ConvertedType::TIMESTAMP_MILLIS => Some(LogicalType::timestamp(true, TimeUnit::MILLIS)),
        ConvertedType::TIMESTAMP_MICROS => Some(LogicalType::timestamp(true, TimeUnit::MICROS)),
        ConvertedType::UINT_8 => Some(LogicalType::integer(8, false)),
        ConvertedType::UINT_16 => Some(LogicalType::integer(16, false)),
        ConvertedType::UINT_32 => Some(LogicalType::integer(32, false)),
        ConvertedType::UINT_64 => Some(LogicalType::integer(64, false)),
        ConvertedType::INT_8 => Some(LogicalType::integer(8, true)),
        ConvertedType::INT_16 => Some(LogicalType::integer(16, true)),
        ConvertedType::INT_32 => Some(LogicalType::integer(32, true)),
        ConvertedType::INT_64 => Some(LogicalType::integer(64, true)),
        other => return Err(format!("expected a number, string or boolean type, found converted type {other}")),
    })
}

fn conversion(d: &ColumnDescriptor) -> Result<Conv, String> {
    let physical = d.physical_type();
    let logical = logical_of(d)?;
    let int = |div: f64| Conv::Int { unsigned: false, div };
    let conv = match (physical, &logical) {
        (Physical::BOOLEAN, _) => Conv::Bool,
        (Physical::INT32 | Physical::INT64, None | Some(LogicalType::Unknown | LogicalType::Date)) => int(1.0),
        (Physical::INT32 | Physical::INT64, Some(LogicalType::Integer(t))) => {
            Conv::Int { unsigned: !t.is_signed, div: 1.0 }
        }
        (Physical::INT32 | Physical::INT64, Some(LogicalType::Decimal(t))) => int(10f64.powi(t.scale)),
        (Physical::INT32 | Physical::INT64, Some(LogicalType::Time(t))) => int(unit_div(&t.unit)),
        (Physical::INT32 | Physical::INT64, Some(LogicalType::Timestamp(t))) => int(unit_div(&t.unit)),
        (Physical::INT96, _) => Conv::Int96,
        (Physical::FLOAT | Physical::DOUBLE, None | Some(LogicalType::Unknown)) => Conv::Float,
        (
            Physical::BYTE_ARRAY | Physical::FIXED_LEN_BYTE_ARRAY,
            None | Some(LogicalType::String | LogicalType::Enum | LogicalType::Json),
        ) => Conv::Str,
        (Physical::BYTE_ARRAY | Physical::FIXED_LEN_BYTE_ARRAY, Some(LogicalType::Decimal(t))) => {
            Conv::Decimal { div: 10f64.powi(t.scale) }
        }
        (Physical::FIXED_LEN_BYTE_ARRAY, Some(LogicalType::Float16)) => Conv::Float16,
        (Physical::FIXED_LEN_BYTE_ARRAY, Some(LogicalType::Uuid)) => Conv::Uuid,
        (physical, Some(l)) => {
            return Err(format!("expected a number, string or boolean type, found {physical} with logical type {l:?}"))
        }
    };
    Ok(conv)
}

/// Failure while decoding: the 0-based row when known, and what went wrong.
type ChunkError = (Option<usize>, String);

struct Chunk<'p> {
    picker: &'p mut Picker,
    /// Next row index across row groups.
    row: usize,
    max_def: i16,
}

impl Chunk<'_> {
    fn read(&mut self, reader: ColumnReader, conv: Conv, rows: usize, out: &mut Builder) -> Result<(), ChunkError> {
        let mismatch = || (None, format!("expected a column reader matching {conv:?}, found another physical type"));
        match (reader, conv) {
            (ColumnReader::BoolColumnReader(r), Conv::Bool) => {
                self.each(r, rows, |v: Option<&bool>| cat(out, v.map(|&b| if b { "true" } else { "false" }.to_owned())))
            }
            (ColumnReader::Int32ColumnReader(r), Conv::Int { unsigned, div }) => {
                self.each(r, rows, |v: Option<&i32>| {
                    num(out, v.map(|&x| if unsigned { x as u32 as f64 } else { x as f64 } / div))
                })
            }
            (ColumnReader::Int64ColumnReader(r), Conv::Int { unsigned, div }) => {
                self.each(r, rows, |v: Option<&i64>| {
                    num(out, v.map(|&x| if unsigned { x as u64 as f64 } else { x as f64 } / div))
                })
            }
            (ColumnReader::Int96ColumnReader(r), Conv::Int96) => {
                self.each(r, rows, |v: Option<&Int96>| num(out, v.map(int96_seconds)))
            }
            (ColumnReader::FloatColumnReader(r), Conv::Float) => {
                self.each(r, rows, |v: Option<&f32>| num(out, v.map(|&x| x as f64)))
            }
            (ColumnReader::DoubleColumnReader(r), Conv::Float) => {
                self.each(r, rows, |v: Option<&f64>| num(out, v.copied()))
            }
            (ColumnReader::ByteArrayColumnReader(r), _) => {
                self.each(r, rows, |v: Option<&ByteArray>| bytes(out, conv, v.map(|b| b.data())))
            }
            (ColumnReader::FixedLenByteArrayColumnReader(r), _) => {
                self.each(r, rows, |v: Option<&FixedLenByteArray>| bytes(out, conv, v.map(|b| b.data())))
            }
            _ => Err(mismatch()),
        }
    }

    /// Decodes `rows` rows of one column chunk, handing each picked row's value (None for null)
    /// to `emit`.
    fn each<T: DataType>(
        &mut self,
        mut reader: ColumnReaderImpl<T>,
        rows: usize,
        mut emit: impl FnMut(Option<&T::T>) -> Result<(), String>,
    ) -> Result<(), ChunkError> {
        let mut defs: Vec<i16> = Vec::with_capacity(BATCH.min(rows));
        let mut values: Vec<T::T> = Vec::with_capacity(BATCH.min(rows));
        let mut read = 0;
        while read < rows && !self.picker.done() {
            defs.clear();
            values.clear();
            let want = (rows - read).min(BATCH);
            let (records, _, _) = reader
                .read_records(want, Some(&mut defs), None, &mut values)
                .map_err(|e| (Some(self.row), format!("expected readable values, found {e}")))?;
            if records == 0 {
                return Err((Some(self.row), format!("expected {rows} rows in the row group, found {read}")));
            }
            if self.max_def > 0 && defs.len() < records {
                return Err((Some(self.row), "expected a definition level per row, found fewer".to_owned()));
            }
            let mut next_value = 0;
            for k in 0..records {
                let present = self.max_def == 0 || defs.get(k) == Some(&self.max_def);
                let take = self.picker.take(self.row);
                if present {
                    let value = values
                        .get(next_value)
                        .ok_or_else(|| (Some(self.row), "expected a value, found fewer values than rows".to_owned()))?;
                    next_value += 1;
                    if take {
                        emit(Some(value)).map_err(|m| (Some(self.row), m))?;
                    }
                } else if take {
                    emit(None).map_err(|m| (Some(self.row), m))?;
                }
                self.row += 1;
            }
            read += records;
        }
        Ok(())
    }
}

fn num(out: &mut Builder, v: Option<f64>) -> Result<(), String> {
    let Builder::Num(col) = out else { return Err("expected a numeric column".to_owned()) };
    match v {
        Some(x) if x.is_infinite() => {
            Err(format!("expected a finite number or null, found {}", if x > 0.0 { "inf" } else { "-inf" }))
        }
        Some(x) => {
            col.push(x);
            Ok(())
        }
        None => {
            col.push(f64::NAN);
            Ok(())
        }
    }
}

fn cat(out: &mut Builder, v: Option<String>) -> Result<(), String> {
    let Builder::Cat(col) = out else { return Err("expected a categorical column".to_owned()) };
    col.push(v);
    Ok(())
}

fn bytes(out: &mut Builder, conv: Conv, v: Option<&[u8]>) -> Result<(), String> {
    let Some(b) = v else {
        return match out {
            Builder::Num(col) => {
                col.push(f64::NAN);
                Ok(())
            }
            Builder::Cat(col) => {
                col.push(None);
                Ok(())
            }
        };
    };
    match conv {
        Conv::Str => {
            let s = std::str::from_utf8(b).map_err(|_| "expected UTF-8 text, found invalid bytes".to_owned())?;
            cat(out, Some(s.to_owned()))
        }
        Conv::Uuid => {
            if b.len() != 16 {
                return Err(format!("expected a 16-byte UUID, found {} bytes", b.len()));
            }
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            let s = format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32]);
            cat(out, Some(s))
        }
        Conv::Decimal { div } => {
            if b.is_empty() || b.len() > 16 {
                return Err(format!("expected a decimal of 1 to 16 bytes, found {} bytes", b.len()));
            }
            let mut x: i128 = if b[0] & 0x80 != 0 { -1 } else { 0 };
            for &byte in b {
                x = (x << 8) | byte as i128;
            }
            num(out, Some(x as f64 / div))
        }
        Conv::Float16 => {
            let [lo, hi] = b else { return Err(format!("expected a 2-byte FLOAT16, found {} bytes", b.len())) };
            num(out, Some(f16_to_f64(u16::from_le_bytes([*lo, *hi]))))
        }
        other => Err(format!("expected a byte-array conversion, found {other:?}")),
    }
}

fn int96_seconds(v: &Int96) -> f64 {
    const JULIAN_DAY_OF_EPOCH: i64 = 2_440_588;
    let d = v.data();
    let nanos = ((d[1] as i64) << 32) | d[0] as i64;
    let days = d[2] as i32 as i64 - JULIAN_DAY_OF_EPOCH;
    days as f64 * 86_400.0 + nanos as f64 / 1e9
}

/// IEEE 754 half precision to f64 (NaN stays NaN, so a NaN half is missing).
fn f16_to_f64(bits: u16) -> f64 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((bits >> 10) & 0x1f);
    let frac = f64::from(bits & 0x3ff);
    match exp {
        0 => sign * frac * 2f64.powi(-24),
        31 if frac == 0.0 => sign * f64::INFINITY,
        31 => f64::NAN,
        e => sign * (1.0 + frac / 1024.0) * 2f64.powi(e - 15),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_floats() {
        assert_eq!(f16_to_f64(0x3c00), 1.0);
        assert_eq!(f16_to_f64(0xc000), -2.0);
        assert_eq!(f16_to_f64(0x3555), 0.333251953125);
        assert_eq!(f16_to_f64(0x0001), 2f64.powi(-24));
        assert_eq!(f16_to_f64(0x7c00), f64::INFINITY);
        assert!(f16_to_f64(0x7e00).is_nan());
    }
}
