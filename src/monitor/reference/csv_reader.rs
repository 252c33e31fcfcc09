//! CSV: a header row, then one record per row, read in two streaming passes.

use std::collections::HashMap;

use csv::ByteRecord;

use super::{classify, Builder, Cell, Column, Location, Picker, ReferenceError, Source, Table, MAX_COLUMNS};

/// What the first pass learned about one column.
#[derive(Default)]
struct Seen {
    text: bool,
    /// First infinite value: (line, text).
    infinite: Option<(u64, String)>,
}

pub(super) fn read(source: Source<'_>, origin: &str, max_rows: usize, seed: u64) -> Result<Table, ReferenceError> {
    // Pass 1: names, field counts, UTF-8, kinds, row count.
    let mut reader = open(source, origin)?;
    let mut record = ByteRecord::new();
    if !next(&mut reader, &mut record, origin)? {
        return Err(ReferenceError::invalid(
            origin,
            Location::line(1),
            "expected a header row naming the columns, found no data",
        ));
    }
    let names = header(&record, origin)?;
    let width = names.len();
    let mut seen: Vec<Seen> = names.iter().map(|_| Seen::default()).collect();
    let mut rows = 0usize;
    while next(&mut reader, &mut record, origin)? {
        let line = line_of(&record);
        check_width(&record, width, line, origin)?;
        for ((cell, s), name) in record.iter().zip(seen.iter_mut()).zip(&names) {
            let text = utf8(cell, line, name, origin)?;
            if s.text {
                continue;
            }
            match classify(text) {
                Cell::Text => s.text = true,
                Cell::Infinite if s.infinite.is_none() => s.infinite = Some((line, text.to_owned())),
                _ => {}
            }
        }
        rows += 1;
    }
    for (s, name) in seen.iter().zip(&names) {
        if let (false, Some((line, text))) = (s.text, &s.infinite) {
            return Err(ReferenceError::invalid(
                origin,
                Location::cell_at_line(*line, name),
                format!("expected a finite number or a missing value (empty cell) in a numeric column, found {text:?}"),
            ));
        }
    }

    // Pass 2: keep the picked rows, typed.
    let mut picker = Picker::new(rows, max_rows, seed);
    let mut builders: Vec<Builder> = seen.iter().map(|s| Builder::new(s.text, picker.total())).collect();
    let mut reader = open(source, origin)?;
    next(&mut reader, &mut record, origin)?;
    let mut row = 0usize;
    let mut taken = 0usize;
    while !picker.done() && next(&mut reader, &mut record, origin)? {
        let line = line_of(&record);
        if record.len() != width || row >= rows {
            return Err(changed(origin, line));
        }
        if picker.take(row) {
            for (cell, builder) in record.iter().zip(builders.iter_mut()) {
                let text = std::str::from_utf8(cell).map_err(|_| changed(origin, line))?;
                match (builder, classify(text)) {
                    (Builder::Num(v), Cell::Missing) => v.push(f64::NAN),
                    (Builder::Num(v), Cell::Num(x)) => v.push(x),
                    (Builder::Num(_), _) => return Err(changed(origin, line)),
                    (Builder::Cat(v), Cell::Missing) => v.push(None),
                    (Builder::Cat(v), _) => v.push(Some(text.to_owned())),
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

fn open<'a>(source: Source<'a>, origin: &str) -> Result<csv::Reader<Box<dyn std::io::BufRead + 'a>>, ReferenceError> {
    Ok(csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(source.open(origin)?))
}

fn next<R: std::io::Read>(
    reader: &mut csv::Reader<R>,
    record: &mut ByteRecord,
    origin: &str,
) -> Result<bool, ReferenceError> {
    reader.read_byte_record(record).map_err(|e| {
        let at = Location { line: e.position().map(|p| p.line()), ..Location::default() };
        let message = e.to_string();
        match e.into_kind() {
            csv::ErrorKind::Io(io) => ReferenceError::io(origin, io),
            _ => ReferenceError::invalid(origin, at, message),
        }
    })
}

fn line_of(record: &ByteRecord) -> u64 {
    record.position().map_or(0, |p| p.line())
}

fn header(record: &ByteRecord, origin: &str) -> Result<Vec<String>, ReferenceError> {
    let line = line_of(record).max(1);
    if record.len() > MAX_COLUMNS {
        return Err(ReferenceError::invalid(
            origin,
            Location::line(line),
            format!("expected at most {MAX_COLUMNS} columns, found {}", record.len()),
        ));
    }
    let mut names = Vec::with_capacity(record.len());
    let mut first_at: HashMap<String, usize> = HashMap::with_capacity(record.len());
    for (i, raw) in record.iter().enumerate() {
        let raw = if i == 0 { raw.strip_prefix(b"\xEF\xBB\xBF".as_slice()).unwrap_or(raw) } else { raw };
        let name = std::str::from_utf8(raw).map_err(|_| {
            ReferenceError::invalid(
                origin,
                Location::line(line),
                format!("expected UTF-8 text as the name of column {}, found invalid bytes", i + 1),
            )
        })?;
        if name.trim().is_empty() {
            return Err(ReferenceError::invalid(
                origin,
                Location::line(line),
                format!("expected a name for column {} in the header, found an empty one", i + 1),
            ));
        }
        if let Some(first) = first_at.insert(name.to_owned(), i + 1) {
            return Err(ReferenceError::invalid(
                origin,
                Location::cell_at_line(line, name),
                format!("expected unique column names, found `{name}` as columns {first} and {}", i + 1),
            ));
        }
        names.push(name.to_owned());
    }
    Ok(names)
}

fn check_width(record: &ByteRecord, width: usize, line: u64, origin: &str) -> Result<(), ReferenceError> {
    if record.len() == width {
        return Ok(());
    }
    Err(ReferenceError::invalid(
        origin,
        Location::line(line),
        format!("expected {width} fields as in the header, found {}", record.len()),
    ))
}

fn utf8<'c>(cell: &'c [u8], line: u64, name: &str, origin: &str) -> Result<&'c str, ReferenceError> {
    std::str::from_utf8(cell).map_err(|_| {
        ReferenceError::invalid(origin, Location::cell_at_line(line, name), "expected UTF-8 text, found invalid bytes")
    })
}

fn changed(origin: &str, line: u64) -> ReferenceError {
    let at = if line > 0 { Location::line(line) } else { Location::default() };
    ReferenceError::invalid(origin, at, "the input changed while it was being read; load it again")
}
