//! Hand-rolled scanners for personal data in free text: e-mail addresses, phone numbers, payment
//! card numbers. Pure functions of a `&str`, fuzzed (`fuzz/fuzz_targets/privacy.rs`): they never
//! panic, run in time linear in the text (card grouping is quadratic in the groups of one run of
//! digits, which is bounded), and return byte ranges on char boundaries (every byte they match is
//! ASCII).
//!
//! Why not the `regex` crate: the rules need things a regular expression states badly (the Luhn
//! check, "9 to 15 digits whatever the separators", the exclusions that keep decimals, dates and
//! IPv4 addresses out), and each scanner is a few dozen lines.
//!
//! What counts:
//! - **e-mail**: `local@domain.tld`; local part of letters, digits and `._%+-`; a domain of at
//!   least two dot-separated labels of letters, digits and `-`, the last one at least two letters.
//! - **card**: 13 to 19 digits, single spaces or hyphens allowed between digits, passing the Luhn
//!   check. A 16-digit id passes Luhn one time in ten: such ids are masked too (the safe side).
//! - **phone**: 9 to 15 digits with separators (space, `-`, `.`, parentheses), either after a `+`
//!   (E.164: `+14155552671`, `+44 20 7946 0958`) or in groups of at most 5 digits:
//!   `(555) 123-4567`, `555.123.4567`, `020 7946 0958`, `06 12 34 56 78`. A bare run of digits
//!   (`5551234567`) is an id, not a phone; a decimal (`3.14159265358`), a date (`2024-01-15`), an
//!   IPv4 address and a list of numbers separated by single spaces not starting with 0
//!   (`10 20 30 40 50`) are not phones.

use std::ops::Range;

/// What a scanner found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Email,
    Phone,
    Card,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Email => "email",
            Kind::Phone => "phone",
            Kind::Card => "card",
        }
    }
}

/// Which scanners run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Detectors {
    pub email: bool,
    pub phone: bool,
    pub card: bool,
}

impl Detectors {
    pub const ALL: Detectors = Detectors { email: true, phone: true, card: true };

    pub fn any(self) -> bool {
        self.email || self.phone || self.card
    }
}

/// Every match in `text`, in order, without overlaps: e-mail first (a phone number can be the
/// local part of an address), then card (Luhn-checked, more specific), then phone.
pub fn find(text: &str, on: Detectors) -> Vec<(Range<usize>, Kind)> {
    let bytes = text.as_bytes();
    // Cheap exits: no '@' means no e-mail; fewer than 9 digits means no phone or card.
    let has_at = on.email && bytes.contains(&b'@');
    let digits = if on.phone || on.card { bytes.iter().filter(|b| b.is_ascii_digit()).count() } else { 0 };
    if !has_at && digits < 9 {
        return Vec::new();
    }
    let mut found: Vec<(Range<usize>, Kind)> = Vec::new();
    if has_at {
        found.extend(emails(bytes).into_iter().map(|r| (r, Kind::Email)));
    }
    let free = |found: &[(Range<usize>, Kind)], r: &Range<usize>| {
        found.iter().all(|(f, _)| f.end <= r.start || r.end <= f.start)
    };
    if on.card && digits >= 13 {
        for r in cards(bytes) {
            if free(&found, &r) {
                found.push((r, Kind::Card));
            }
        }
    }
    if on.phone && digits >= 9 {
        for r in phones(bytes) {
            if free(&found, &r) {
                found.push((r, Kind::Phone));
            }
        }
    }
    found.sort_by_key(|(r, _)| r.start);
    found
}

fn is_local(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn is_domain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-')
}

/// E-mail addresses: around each '@', the longest local part before and domain after.
pub fn emails(s: &[u8]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut after = 0; // matches never overlap
    for at in 0..s.len() {
        if s[at] != b'@' || at < after {
            continue;
        }
        let mut start = at;
        while start > after && is_local(s[start - 1]) {
            start -= 1;
        }
        while start < at && s[start] == b'.' {
            start += 1;
        }
        if start == at {
            continue;
        }
        let mut end = at + 1;
        while end < s.len() && is_domain(s[end]) {
            end += 1;
        }
        while end > at + 1 && matches!(s[end - 1], b'.' | b'-') {
            end -= 1;
        }
        if valid_domain(&s[at + 1..end]) {
            out.push(start..end);
            after = end;
        }
    }
    out
}

fn valid_domain(d: &[u8]) -> bool {
    let mut labels = 0;
    let mut last: &[u8] = &[];
    for label in d.split(|b| *b == b'.') {
        if label.is_empty() || label[0] == b'-' || label[label.len() - 1] == b'-' {
            return false;
        }
        labels += 1;
        last = label;
    }
    labels >= 2 && last.len() >= 2 && last.iter().all(u8::is_ascii_alphabetic)
}

/// A run of digits with separators, as the card and phone scanners see it.
struct Run {
    range: Range<usize>,
    /// (start, end) of each group of consecutive digits.
    groups: Vec<(usize, usize)>,
    plus: bool,
}

/// Runs of digits joined by the separators in `seps`, at most `max_gap` separator bytes between
/// two groups. A run starts after a byte that is not a letter, digit, or one of `._/:,` (so
/// decimals, versions, paths and times are not split into runs), and may start with '+' or '('.
fn runs(s: &[u8], seps: &[u8], max_gap: usize) -> Vec<Run> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        if !s[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        // Start of a run: step back over '(' and '+'.
        let mut start = i;
        while start > 0 && matches!(s[start - 1], b'(' | b'+') && i - start < 2 {
            start -= 1;
        }
        let plus = s[start..i].contains(&b'+');
        // "tel:+1..." is a phone; "10:30" and "1.5" are not runs of their own.
        let boundary_ok = start == 0 || {
            let b = s[start - 1];
            !(b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'/' | b',' | b'-' | b'+') || (b == b':' && !plus))
        };
        let mut groups = Vec::new();
        let mut j = i;
        let mut end;
        loop {
            let g = j;
            while j < s.len() && s[j].is_ascii_digit() {
                j += 1;
            }
            groups.push((g, j));
            end = j;
            if j < s.len() && s[j] == b')' && s[start..g].contains(&b'(') {
                end = j + 1;
            }
            let mut k = j;
            while k < s.len() && seps.contains(&s[k]) && k - j < max_gap {
                k += 1;
            }
            if k > j && k < s.len() && s[k].is_ascii_digit() {
                j = k;
            } else {
                break;
            }
        }
        let after_ok = end >= s.len() || !(s[end].is_ascii_alphanumeric() || matches!(s[end], b'@' | b':' | b'/'));
        let decimal_tail = end + 1 < s.len() && matches!(s[end], b'.' | b',') && s[end + 1].is_ascii_digit();
        if boundary_ok && after_ok && !decimal_tail {
            out.push(Run { range: start..end, groups, plus });
        }
        i = end.max(i + 1);
    }
    out
}

fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (k, d) in digits.iter().rev().enumerate() {
        let mut x = u32::from(d - b'0');
        if k % 2 == 1 {
            x *= 2;
            if x > 9 {
                x -= 9;
            }
        }
        sum += x;
    }
    sum % 10 == 0
}

/// Payment card numbers: within each run, the longest stretch of whole groups with 13 to 19
/// digits that passes Luhn, leftmost first.
pub fn cards(s: &[u8]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    for run in runs(s, b" -", 1) {
        let g = &run.groups;
        // A run of more than 19 groups of digits is not a card number's shape; bound the work.
        if g.len() > 64 {
            continue;
        }
        let mut a = 0;
        while a < g.len() {
            let mut hit = None;
            let mut digits = Vec::with_capacity(19);
            for (b, &(gs, ge)) in g.iter().enumerate().skip(a) {
                digits.extend_from_slice(&s[gs..ge]);
                if digits.len() > 19 {
                    break;
                }
                if digits.len() >= 13 && luhn(&digits) {
                    hit = Some(b);
                }
            }
            match hit {
                Some(b) => {
                    out.push(g[a].0..g[b].1);
                    a = b + 1;
                }
                None => a += 1,
            }
        }
    }
    out
}

/// Phone numbers: runs of 9 to 15 digits (see the module head for the shapes).
pub fn phones(s: &[u8]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    for run in runs(s, b" -.()", 2) {
        let digits: usize = run.groups.iter().map(|(a, b)| b - a).sum();
        if !(9..=15).contains(&digits) {
            continue;
        }
        if !run.plus && !national(s, &run) {
            continue;
        }
        out.push(run.range);
    }
    out
}

fn national(s: &[u8], run: &Run) -> bool {
    let g = &run.groups;
    if g.len() < 2 || g.iter().any(|(a, b)| b - a > 5) {
        return false;
    }
    let seps: Vec<&[u8]> = g.windows(2).map(|w| &s[w[0].1..w[1].0]).collect();
    // One '.' between two groups: a decimal number.
    if g.len() == 2 && seps[0] == b"." {
        return false;
    }
    // IPv4: four groups of at most three digits joined by single dots.
    if g.len() == 4 && seps.iter().all(|x| *x == b".") && g.iter().all(|(a, b)| b - a <= 3) {
        return false;
    }
    // Numbers separated by single spaces: a phone in groups (at most 4) or with a trunk 0.
    let spaces_only = seps.iter().all(|x| *x == b" ") && !s[run.range.clone()].contains(&b'(');
    if spaces_only && g.len() > 4 && s[g[0].0] != b'0' {
        return false;
    }
    // A date (2024-01-15, 2024.01.15) followed by more numbers.
    let len = |k: usize| g[k].1 - g[k].0;
    if g.len() >= 3 && len(0) == 4 && len(1) == 2 && len(2) == 2 && matches!(seps[0], b"-" | b".") {
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(&str, Kind)> {
        find(text, Detectors::ALL).into_iter().map(|(r, k)| (&text[r], k)).collect()
    }

    #[test]
    fn emails_in_text() {
        assert_eq!(
            kinds("contact me at bob.smith+x@mail.example.com."),
            [("bob.smith+x@mail.example.com", Kind::Email)]
        );
        assert_eq!(kinds("a@b.co, c_d@e-f.org"), [("a@b.co", Kind::Email), ("c_d@e-f.org", Kind::Email)]);
        assert_eq!(kinds("<jane@corp.io>"), [("jane@corp.io", Kind::Email)]);
        assert_eq!(kinds("5551234567@sms.example.net"), [("5551234567@sms.example.net", Kind::Email)]);
        for no in ["@", "a@", "@b.com", "user@localhost", "x@y.c", "x@y.12", "a@-b.com", "a@b..com", "me @ home"] {
            assert!(kinds(no).is_empty(), "{no}");
        }
    }

    #[test]
    fn luhn_positives_and_negatives() {
        for yes in
            ["4111111111111111", "4111 1111 1111 1111", "5500-0000-0000-0004", "340000000000009", "6011000990139424"]
        {
            assert_eq!(kinds(yes), [(yes, Kind::Card)], "{yes}");
        }
        assert_eq!(kinds("card: 4012 8888 8888 1881 exp 12/29"), [("4012 8888 8888 1881", Kind::Card)]);
        // One digit off fails Luhn; 12 or 20 digits are not card lengths.
        for no in
            ["4111111111111112", "4111 1111 1111 1112", "411111111111", "41111111111111111111", "4111  1111 1111 1111"]
        {
            assert!(!kinds(no).iter().any(|(_, k)| *k == Kind::Card), "{no}: {:?}", kinds(no));
        }
    }

    #[test]
    fn phone_formats() {
        for yes in [
            "+14155552671",
            "+44 20 7946 0958",
            "+1 (415) 555-2671",
            "(555) 123-4567",
            "555-123-4567",
            "555.123.4567",
            "020 7946 0958",
            "06 12 34 56 78",
            "+33 6 12 34 56 78",
        ] {
            assert_eq!(kinds(yes), [(yes, Kind::Phone)], "{yes}");
        }
        assert_eq!(kinds("call (555) 123-4567 today"), [("(555) 123-4567", Kind::Phone)]);
        assert_eq!(kinds("tel:+14155552671"), [("+14155552671", Kind::Phone)]);
    }

    #[test]
    fn no_false_positives_on_numbers_ids_and_dates() {
        for no in [
            "12345",
            "5551234567",
            "3.14159265358",
            "0.123456789012",
            "-122.4194155",
            "1234567.891",
            "2024-01-15",
            "2024-01-15 10:30:00",
            "2024-01-15T10:30:00Z",
            "15/01/2024",
            "192.168.100.200",
            "10 20 30 40 50",
            "v1.2.3",
            "order 123456789",
            "1e10",
            "1,234,567,890",
            "id-123-456-789",
            "abc123456789",
            "",
        ] {
            assert!(kinds(no).is_empty(), "{no}: {:?}", kinds(no));
        }
    }

    #[test]
    fn several_kinds_in_one_text() {
        let t = "mail ann@x.org or +1 415 555 2671, card 4111-1111-1111-1111.";
        assert_eq!(
            kinds(t),
            [("ann@x.org", Kind::Email), ("+1 415 555 2671", Kind::Phone), ("4111-1111-1111-1111", Kind::Card)]
        );
    }

    #[test]
    fn non_ascii_text_is_safe() {
        let t = "é@ü.de ☎ +49 30 901820 — ünïcødé 4111 1111 1111 1111";
        let found = find(t, Detectors::ALL);
        for (r, _) in &found {
            assert!(t.is_char_boundary(r.start) && t.is_char_boundary(r.end));
        }
        assert!(found.iter().any(|(r, k)| *k == Kind::Card && &t[r.clone()] == "4111 1111 1111 1111"));
        assert!(found.iter().any(|(r, k)| *k == Kind::Phone && &t[r.clone()] == "+49 30 901820"));
    }
}
