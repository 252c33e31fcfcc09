//! Group fairness of binary decisions: per-group rates and the between-group disparities fairlearn defines.
//!
//! Inputs per row: a group id (`usize`, the caller maps its sensitive attribute), the true outcome and the
//! predicted one, `true` being the favourable outcome. Sources (definitions, re-expressed): fairlearn
//! `metrics/_fairness_metrics.py` `demographic_parity_difference`, `demographic_parity_ratio`,
//! `equal_opportunity_difference` (all `method='between_groups'`: `MetricFrame.difference()` = group max − group
//! min, `MetricFrame.ratio()` = group min / group max), over the groups present in the data.
//!
//! Deviation, on purpose: a group with no positive row has no true positive rate (0/0). fairlearn's
//! `true_positive_rate` goes through scikit-learn's `confusion_matrix(normalize='true')`, which turns 0/0 into 0,
//! so fairlearn counts such a group with TPR 0 in the equal opportunity difference; here its TPR is `None` and
//! it is left out (likewise FPR for a group with no negative row). A group without positives says nothing about
//! equal opportunity; counting it as 0 reports a disparity that is not there.
//!
//! Counting is one pass with a map keyed by group (O(n log g) for g groups, no per-row allocation). Mismatched
//! lengths or no rows give `None`; nothing panics.

use serde::Serialize;
use std::collections::BTreeMap;

/// Rates of one group.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GroupRates {
    pub group: usize,
    /// Rows in the group.
    pub count: u64,
    /// P(ŷ = 1): fairlearn `selection_rate`.
    pub selection_rate: f64,
    /// P(ŷ = 1 | y = 1), recall; `None` without positive rows.
    pub tpr: Option<f64>,
    /// P(ŷ = 1 | y = 0); `None` without negative rows.
    pub fpr: Option<f64>,
    /// P(ŷ = y).
    pub accuracy: f64,
}

/// Per-group rates (ascending group id) and the disparities between groups.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FairnessReport {
    pub per_group: Vec<GroupRates>,
    /// max − min selection rate over groups (fairlearn `demographic_parity_difference`); 0 with one group.
    pub demographic_parity_difference: f64,
    /// min / max selection rate (fairlearn `demographic_parity_ratio`, the disparate impact ratio); `None` when
    /// no group is ever selected (0/0).
    pub demographic_parity_ratio: Option<f64>,
    /// max − min TPR over the groups that have positive rows (fairlearn `equal_opportunity_difference`, see the
    /// module doc); `None` when no group has one.
    pub equal_opportunity_difference: Option<f64>,
}

/// Confusion counts of one group.
#[derive(Default, Clone, Copy)]
struct Counts {
    tp: u64,
    fp: u64,
    fn_: u64,
    tn: u64,
}

impl Counts {
    fn rates(&self, group: usize) -> GroupRates {
        let Counts { tp, fp, fn_, tn } = *self;
        let count = tp + fp + fn_ + tn;
        let share = |num: u64, den: u64| (den > 0).then(|| num as f64 / den as f64);
        GroupRates {
            group,
            count,
            selection_rate: (tp + fp) as f64 / count as f64,
            tpr: share(tp, tp + fn_),
            fpr: share(fp, fp + tn),
            accuracy: (tp + tn) as f64 / count as f64,
        }
    }
}

/// The fairness report of binary decisions across groups.
pub fn fairness_report(groups: &[usize], y_true: &[bool], y_pred: &[bool]) -> Option<FairnessReport> {
    if groups.len() != y_true.len() || groups.len() != y_pred.len() || groups.is_empty() {
        return None;
    }
    let mut by_group: BTreeMap<usize, Counts> = BTreeMap::new();
    for ((&g, &t), &p) in groups.iter().zip(y_true).zip(y_pred) {
        let c = by_group.entry(g).or_default();
        match (t, p) {
            (true, true) => c.tp += 1,
            (false, true) => c.fp += 1,
            (true, false) => c.fn_ += 1,
            (false, false) => c.tn += 1,
        }
    }
    let per_group: Vec<GroupRates> = by_group.iter().map(|(&g, c)| c.rates(g)).collect();
    let (lo, hi) = min_max(per_group.iter().map(|g| g.selection_rate))?;
    Some(FairnessReport {
        demographic_parity_difference: hi - lo,
        demographic_parity_ratio: (hi > 0.0).then(|| lo / hi),
        equal_opportunity_difference: min_max(per_group.iter().filter_map(|g| g.tpr)).map(|(lo, hi)| hi - lo),
        per_group,
    })
}

/// (min, max) of a non-empty sequence.
fn min_max(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_groups() {
        // Group 0: 4 rows, selected 3 (tp 2, fp 1, fn 0, tn 1). Group 1: 4 rows, selected 1 (tp 1, fn 1, tn 2).
        let groups = [0, 0, 0, 0, 1, 1, 1, 1];
        let y_true = [true, true, false, false, true, true, false, false];
        let y_pred = [true, true, true, false, true, false, false, false];
        let r = fairness_report(&groups, &y_true, &y_pred).unwrap();
        let g0 =
            GroupRates { group: 0, count: 4, selection_rate: 0.75, tpr: Some(1.0), fpr: Some(0.5), accuracy: 0.75 };
        let g1 =
            GroupRates { group: 1, count: 4, selection_rate: 0.25, tpr: Some(0.5), fpr: Some(0.0), accuracy: 0.75 };
        assert_eq!(r.per_group, vec![g0, g1]);
        assert_eq!(r.demographic_parity_difference, 0.5);
        assert_eq!(r.demographic_parity_ratio, Some(0.25 / 0.75));
        assert_eq!(r.equal_opportunity_difference, Some(0.5));
    }

    #[test]
    fn undefined_rates() {
        // Group 7 has no positive row: left out of the equal opportunity difference.
        let r = fairness_report(&[7, 7, 2, 2], &[false, false, true, false], &[true, false, true, false]).unwrap();
        assert_eq!(r.per_group[1].tpr, None);
        assert_eq!(r.per_group[1].fpr, Some(0.5));
        assert_eq!(r.equal_opportunity_difference, Some(0.0));
        // Nobody selected: no ratio; no positives anywhere: no equal opportunity difference.
        let r = fairness_report(&[0, 1], &[false, false], &[false, false]).unwrap();
        assert_eq!(
            (r.demographic_parity_difference, r.demographic_parity_ratio, r.equal_opportunity_difference),
            (0.0, None, None)
        );
    }

    #[test]
    fn one_group_and_bad_input() {
        let r = fairness_report(&[3, 3, 3], &[true, false, true], &[true, true, false]).unwrap();
        assert_eq!(r.per_group.len(), 1);
        assert_eq!((r.demographic_parity_difference, r.demographic_parity_ratio), (0.0, Some(1.0)));
        assert_eq!(r.equal_opportunity_difference, Some(0.0));
        assert_eq!(fairness_report(&[], &[], &[]), None);
        assert_eq!(fairness_report(&[0], &[true, false], &[true]), None);
        assert_eq!(fairness_report(&[0, 1], &[true, false], &[true]), None);
        assert!(fairness_report(&[usize::MAX, 0], &[true, false], &[true, true]).is_some());
    }
}
