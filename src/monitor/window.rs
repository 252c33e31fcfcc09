//! Live windows: the records of one model version that the reference is compared with.
//!
//! A window is a ring of sub-windows (slots). Each slot keeps, per column, counts over the
//! reference's frozen bins, and the raw values while the window is small enough for exact tests
//! (`drift.exact_limit`). Memory per column is fixed by the bins and the ring's length, whatever
//! the traffic. A count window ("the last N records") fills slots of N / sub_windows rows; while it
//! keeps raw values it is exactly the last N. A time window ("the last T") has one slot per
//! T / sub_windows of wall-clock time.

use super::profile::{ColumnProfile, Profile, Shape};
use super::schema::{Col, Records};
use super::stats::binning::bin_index;
use crate::config::WindowSpec;
use std::collections::VecDeque;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A missing categorical value in `CatSlot::raw`.
const MISSING: u32 = u32::MAX;

#[derive(Debug)]
pub(super) struct NumSlot {
    /// One value per row (NaN: missing), while raw values are kept.
    pub raw: Vec<f64>,
    pub grid: Vec<u32>,
    pub bins: Vec<u32>,
    pub distinct: Vec<u32>,
    pub missing: u64,
    pub min: f64,
    pub max: f64,
}

#[derive(Debug)]
pub(super) struct CatSlot {
    /// Category index per row (the last index is "unseen"; MISSING: missing), while raw is kept.
    pub raw: Vec<u32>,
    /// Per category, plus one slot for categories the reference has not seen.
    pub counts: Vec<u32>,
    pub missing: u64,
}

#[derive(Debug)]
pub(super) enum SlotCol {
    Num(NumSlot),
    Cat(CatSlot),
}

#[derive(Debug)]
pub(super) struct Slot {
    key: u64,
    pub rows: usize,
    pub first: SystemTime,
    pub last: SystemTime,
    /// Whether every row's raw values are here.
    pub raw: bool,
    pub cols: Vec<SlotCol>,
    pub pca_errors: Vec<f64>,
    pub pca_sum: f64,
    pub pca_n: u64,
}

/// One version's live window.
#[derive(Debug)]
pub struct Window {
    spec: WindowSpec,
    sub_windows: usize,
    exact_limit: usize,
    /// Count windows: rows per slot. Time windows: slot span in milliseconds.
    slot_size: u64,
    keep_grid: bool,
    pub(super) slots: VecDeque<Slot>,
    raw_rows: usize,
    next_key: u64,
    pub records_total: u64,
}

/// What a column's window holds at evaluation time.
pub(super) enum Gathered {
    /// Exact: the raw non-missing values (unsorted), or category counts (+ unseen).
    NumExact {
        values: Vec<f64>,
        missing: u64,
    },
    NumBinned {
        grid: Vec<u64>,
        bins: Vec<u64>,
        distinct: Vec<u64>,
        missing: u64,
        min: f64,
        max: f64,
    },
    Cat {
        counts: Vec<u64>,
        missing: u64,
    },
}

impl Window {
    pub fn new(spec: WindowSpec, sub_windows: usize, exact_limit: usize) -> Window {
        let (slot_size, keep_grid) = match spec {
            WindowSpec::Count(n) => ((n as u64).div_ceil(sub_windows as u64).max(1), n > exact_limit),
            WindowSpec::Time(t) => (((t.as_millis() as u64) / sub_windows as u64).max(1), true),
        };
        Window {
            spec,
            sub_windows,
            exact_limit,
            slot_size,
            keep_grid,
            slots: VecDeque::new(),
            raw_rows: 0,
            next_key: 0,
            records_total: 0,
        }
    }

    pub fn spec(&self) -> WindowSpec {
        self.spec
    }

    fn time_key(&self, t: SystemTime) -> u64 {
        t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64 / self.slot_size
    }

    /// Drops slots that fell out of a time window.
    pub fn expire(&mut self, now: SystemTime) {
        if let WindowSpec::Time(_) = self.spec {
            let now_key = self.time_key(now);
            while let Some(s) = self.slots.front() {
                if s.key + (self.sub_windows as u64) <= now_key {
                    self.evict();
                } else {
                    break;
                }
            }
        }
    }

    fn evict(&mut self) {
        if let Some(s) = self.slots.pop_front() {
            if s.raw {
                self.raw_rows -= s.rows;
            }
        }
    }

    fn new_slot(&mut self, key: u64, time: SystemTime, profile: &Profile) {
        let raw = match self.spec {
            WindowSpec::Count(n) => n <= self.exact_limit,
            WindowSpec::Time(_) => self.raw_rows < self.exact_limit,
        };
        let keep_grid = self.keep_grid;
        let cols = profile
            .columns()
            .map(|c| match &c.shape {
                Shape::Num(p) => SlotCol::Num(NumSlot {
                    raw: Vec::new(),
                    grid: if keep_grid { vec![0; p.grid_edges.len() + 1] } else { Vec::new() },
                    bins: if keep_grid { vec![0; p.psi_edges.len() + 1] } else { Vec::new() },
                    distinct: if keep_grid { vec![0; p.distinct_counts.len()] } else { Vec::new() },
                    missing: 0,
                    min: f64::INFINITY,
                    max: f64::NEG_INFINITY,
                }),
                Shape::Cat(p) => {
                    SlotCol::Cat(CatSlot { raw: Vec::new(), counts: vec![0; p.categories.len() + 1], missing: 0 })
                }
            })
            .collect();
        self.slots.push_back(Slot {
            key,
            rows: 0,
            first: time,
            last: time,
            raw,
            cols,
            pca_errors: Vec::new(),
            pca_sum: 0.0,
            pca_n: 0,
        });
    }

    /// Adds one exchange's rows. `pca_errors` has one reconstruction error per row, or is empty.
    pub fn ingest(&mut self, rec: &Records, profile: &Profile, pca_errors: &[f64]) {
        let mut row = 0;
        while row < rec.rows {
            let take = match self.spec {
                WindowSpec::Count(_) => {
                    let room = match self.slots.back() {
                        Some(s) if (s.rows as u64) < self.slot_size => self.slot_size as usize - s.rows,
                        _ => {
                            let key = self.next_key;
                            self.next_key += 1;
                            self.new_slot(key, rec.time, profile);
                            while self.slots.len() > self.sub_windows + 1 {
                                self.evict();
                            }
                            self.slot_size as usize
                        }
                    };
                    room.min(rec.rows - row)
                }
                WindowSpec::Time(_) => {
                    let key = self.time_key(rec.time);
                    if self.slots.back().is_none_or(|s| s.key < key) {
                        self.new_slot(key, rec.time, profile);
                        self.expire(rec.time);
                    }
                    rec.rows - row
                }
            };
            self.add_rows(rec, profile, pca_errors, row, row + take);
            row += take;
        }
        self.records_total += rec.rows as u64;
    }

    fn add_rows(&mut self, rec: &Records, profile: &Profile, pca_errors: &[f64], from: usize, to: usize) {
        let exact_limit = self.exact_limit;
        let raw_rows = self.raw_rows;
        let slot = self.slots.back_mut().expect("a slot was made");
        // A time window stops keeping raw values once the window holds exact_limit of them.
        if slot.raw && matches!(self.spec, WindowSpec::Time(_)) && raw_rows + (to - from) > exact_limit {
            slot.raw = false;
            self.raw_rows -= slot.rows;
            for c in slot.cols.iter_mut() {
                match c {
                    SlotCol::Num(n) => n.raw = Vec::new(),
                    SlotCol::Cat(c) => c.raw = Vec::new(),
                }
            }
            slot.pca_errors = Vec::new();
        }
        let raw = slot.raw;
        let n_features = rec.features.len();
        for (i, (cp, sc)) in profile.columns().zip(slot.cols.iter_mut()).enumerate() {
            let col = if i < n_features { rec.features[i].as_ref() } else { rec.predictions[i - n_features].as_ref() };
            add_column(cp, sc, col, from, to, raw);
        }
        if !pca_errors.is_empty() {
            for &e in &pca_errors[from..to] {
                slot.pca_sum += e;
                slot.pca_n += 1;
                if raw {
                    slot.pca_errors.push(e);
                }
            }
        }
        slot.rows += to - from;
        slot.last = rec.time;
        if raw {
            self.raw_rows += to - from;
        }
    }

    /// Rows in the window and its first/last record times.
    pub fn bounds(&self) -> (usize, Option<SystemTime>, Option<SystemTime>) {
        let rows = match self.spec {
            WindowSpec::Count(n) if self.exact() => self.slots.iter().map(|s| s.rows).sum::<usize>().min(n),
            _ => self.slots.iter().map(|s| s.rows).sum(),
        };
        (rows, self.slots.front().map(|s| s.first), self.slots.back().map(|s| s.last))
    }

    /// Whether evaluation sees raw values (exact tests) rather than bin counts.
    pub fn exact(&self) -> bool {
        self.slots.iter().all(|s| s.raw)
    }

    /// Rows to take from the slots, newest first: all, or the last N of a count window.
    fn take_plan(&self) -> Vec<(usize, usize)> {
        let limit = match self.spec {
            WindowSpec::Count(n) if self.exact() => n,
            _ => usize::MAX,
        };
        let mut left = limit;
        let mut plan = Vec::new();
        for (i, s) in self.slots.iter().enumerate().rev() {
            if left == 0 {
                break;
            }
            let k = s.rows.min(left);
            plan.push((i, k));
            left -= k;
        }
        plan
    }

    /// Gathers column `i` (features then predictions) for evaluation. Exact numeric values are written to
    /// `spare` (its contents are discarded; its allocation is reused).
    pub(super) fn gather(&self, i: usize, cp: &ColumnProfile, spare: Vec<f64>) -> Gathered {
        let exact = self.exact();
        let plan = self.take_plan();
        match &cp.shape {
            Shape::Num(p) => {
                if exact {
                    // Copied slot by slot (memcpy), then the missing values (NaN) squeezed out in one
                    // branch-free pass, if there are any.
                    let mut values = spare;
                    values.clear();
                    values.reserve(plan.iter().map(|&(_, k)| k).sum());
                    for &(s, k) in &plan {
                        let SlotCol::Num(c) = &self.slots[s].cols[i] else { unreachable!("same profile") };
                        values.extend_from_slice(&c.raw[c.raw.len() - k..]);
                    }
                    let mut kept = values.len();
                    // (A fold without early exit, so that it vectorises.)
                    if values.iter().fold(false, |nan, x| nan | x.is_nan()) {
                        kept = 0;
                        for r in 0..values.len() {
                            let x = values[r];
                            values[kept] = x;
                            kept += !x.is_nan() as usize;
                        }
                    }
                    let missing = (values.len() - kept) as u64;
                    values.truncate(kept);
                    Gathered::NumExact { values, missing }
                } else {
                    let mut grid = vec![0u64; p.grid_edges.len() + 1];
                    let mut bins = vec![0u64; p.psi_edges.len() + 1];
                    let mut distinct = vec![0u64; p.distinct_counts.len()];
                    let (mut missing, mut min, mut max) = (0, f64::INFINITY, f64::NEG_INFINITY);
                    for &(s, _) in &plan {
                        let SlotCol::Num(c) = &self.slots[s].cols[i] else { unreachable!("same profile") };
                        add_into(&mut grid, &c.grid);
                        add_into(&mut bins, &c.bins);
                        add_into(&mut distinct, &c.distinct);
                        missing += c.missing;
                        min = min.min(c.min);
                        max = max.max(c.max);
                    }
                    Gathered::NumBinned { grid, bins, distinct, missing, min, max }
                }
            }
            Shape::Cat(p) => {
                let mut counts = vec![0u64; p.categories.len() + 1];
                let mut missing = 0;
                for &(s, k) in &plan {
                    let SlotCol::Cat(c) = &self.slots[s].cols[i] else { unreachable!("same profile") };
                    if exact {
                        for &x in &c.raw[c.raw.len() - k..] {
                            if x == MISSING {
                                missing += 1;
                            } else {
                                counts[x as usize] += 1;
                            }
                        }
                    } else {
                        add_into(&mut counts, &c.counts);
                        missing += c.missing;
                    }
                }
                Gathered::Cat { counts, missing }
            }
        }
    }

    /// Mean PCA reconstruction error over the window, and the records it covers.
    pub fn pca_mean(&self) -> (f64, u64) {
        let exact = self.exact();
        let (mut sum, mut n) = (0.0, 0u64);
        for (s, k) in self.take_plan() {
            let slot = &self.slots[s];
            if exact {
                let e = &slot.pca_errors;
                let k = k.min(e.len());
                sum += e[e.len() - k..].iter().sum::<f64>();
                n += k as u64;
            } else {
                sum += slot.pca_sum;
                n += slot.pca_n;
            }
        }
        (if n > 0 { sum / n as f64 } else { f64::NAN }, n)
    }
}

fn add_into(acc: &mut [u64], add: &[u32]) {
    for (a, b) in acc.iter_mut().zip(add) {
        *a += *b as u64;
    }
}

fn add_column(cp: &ColumnProfile, sc: &mut SlotCol, col: Option<&Col>, from: usize, to: usize, raw: bool) {
    match (sc, &cp.shape) {
        (SlotCol::Num(s), Shape::Num(p)) => {
            let values = match col {
                Some(Col::Num(v)) => &v[from..to],
                _ => {
                    s.missing += (to - from) as u64;
                    if raw {
                        s.raw.extend(std::iter::repeat_n(f64::NAN, to - from));
                    }
                    return;
                }
            };
            for &x in values {
                if raw {
                    s.raw.push(x);
                }
                if x.is_nan() {
                    s.missing += 1;
                    continue;
                }
                if !s.grid.is_empty() {
                    s.grid[bin_index(&p.grid_edges, x)] += 1;
                    s.bins[bin_index(&p.psi_edges, x)] += 1;
                    if let Some(d) = p.distinct_index(x) {
                        s.distinct[d] += 1;
                    }
                }
                s.min = s.min.min(x);
                s.max = s.max.max(x);
            }
        }
        (SlotCol::Cat(s), Shape::Cat(p)) => {
            let unseen = p.categories.len() as u32;
            match col {
                Some(Col::Cat(v)) => {
                    for x in &v[from..to] {
                        let idx = match x {
                            None => MISSING,
                            Some(label) => p.index.get(label).map(|&i| i as u32).unwrap_or(unseen),
                        };
                        if idx == MISSING {
                            s.missing += 1;
                        } else {
                            s.counts[idx as usize] += 1;
                        }
                        if raw {
                            s.raw.push(idx);
                        }
                    }
                }
                _ => {
                    s.missing += (to - from) as u64;
                    if raw {
                        s.raw.extend(std::iter::repeat_n(MISSING, to - from));
                    }
                }
            }
        }
        _ => unreachable!("slot columns are made from the same profile"),
    }
}

/// The span of one sub-window of a time window, for reports.
pub fn slot_span(spec: WindowSpec, sub_windows: usize) -> Option<Duration> {
    match spec {
        WindowSpec::Time(t) => Some(t / sub_windows as u32),
        WindowSpec::Count(_) => None,
    }
}
