//! Date phrases: "in 2024", "in May 2024", "last month", "since March",
//! "between 2023-01-01 and 2023-06-30", "in the past 30 days", and the
//! time buckets of "by month" / "monthly".
//!
//! A range is a half-open interval `[start, end)`; absolute bounds are
//! literal dates, relative ones SQL on `CURRENT_DATE`, so a translation
//! cached today means the same tomorrow.

use super::lex::{days_in_month, Tok};

/// One end of a range.
#[derive(Debug, Clone, PartialEq)]
pub enum Bound {
    /// `'2024-01-01'`.
    Date(i32, u32, u32),
    /// SQL over `CURRENT_DATE`.
    Expr(String),
}

impl Bound {
    pub fn sql(&self) -> String {
        match self {
            Bound::Date(y, m, d) => format!("'{y:04}-{m:02}-{d:02}'"),
            Bound::Expr(e) => e.clone(),
        }
    }
}

/// `start <= column < end`; either end may be open.
#[derive(Debug, Clone, PartialEq)]
pub struct Range {
    pub start: Option<Bound>,
    pub end: Option<Bound>,
}

/// A time bucket for grouping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Day,
    Week,
    Month,
    Quarter,
    Year,
}

impl Unit {
    pub fn name(self) -> &'static str {
        match self {
            Unit::Day => "day",
            Unit::Week => "week",
            Unit::Month => "month",
            Unit::Quarter => "quarter",
            Unit::Year => "year",
        }
    }

    fn from_word(w: &str) -> Option<Unit> {
        Some(match w {
            "day" | "days" => Unit::Day,
            "week" | "weeks" => Unit::Week,
            "month" | "months" => Unit::Month,
            "quarter" | "quarters" => Unit::Quarter,
            "year" | "years" => Unit::Year,
            _ => return None,
        })
    }
}

/// What a date phrase says.
#[derive(Debug, Clone, PartialEq)]
pub enum Time {
    Range(Range),
    Bucket(Unit),
}

/// A calendar period: a year, a month of a year, or a day.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Period {
    Year(i32),
    Month(i32, u32),
    Day(i32, u32, u32),
    Quarter(i32, u32),
    /// A month with no year: the latest one that has begun.
    MonthOnly(u32),
}

impl Period {
    fn start(self) -> Bound {
        match self {
            Period::Year(y) => Bound::Date(y, 1, 1),
            Period::Month(y, m) => Bound::Date(y, m, 1),
            Period::Day(y, m, d) => Bound::Date(y, m, d),
            Period::Quarter(y, q) => Bound::Date(y, q * 3 - 2, 1),
            // Back (m - 1) months, to the year's start, forward again: the
            // latest first of that month not after today.
            Period::MonthOnly(m) => Bound::Expr(if m == 1 {
                "date_trunc('year', CURRENT_DATE)".into()
            } else {
                format!(
                    "date_trunc('year', CURRENT_DATE - INTERVAL '{n} months') + INTERVAL '{n} months'",
                    n = m - 1
                )
            }),
        }
    }

    fn end(self) -> Option<Bound> {
        Some(match self {
            Period::Year(y) => Bound::Date(y + 1, 1, 1),
            Period::Month(y, 12) | Period::Quarter(y, 4) => Bound::Date(y + 1, 1, 1),
            Period::Quarter(y, q) => Bound::Date(y, q * 3 + 1, 1),
            Period::Month(y, m) => Bound::Date(y, m + 1, 1),
            Period::Day(y, m, d) if d < days_in_month(y, m) => Bound::Date(y, m, d + 1),
            Period::Day(y, 12, _) => Bound::Date(y + 1, 1, 1),
            Period::Day(y, m, _) => Bound::Date(y, m + 1, 1),
            Period::MonthOnly(_) => return None,
        })
    }
}

fn month(w: &str) -> Option<u32> {
    const MONTHS: [&str; 12] = [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    // The full name, its first three letters, or "sept".
    MONTHS
        .iter()
        .position(|m| {
            *m == w || (w.len() == 3 && m.starts_with(w)) || (w == "sept" && *m == "september")
        })
        .map(|i| i as u32 + 1)
}

fn year(tok: Option<&Tok>) -> Option<i32> {
    match tok {
        Some(Tok::Number { value, text }) if text.len() == 4 && value.fract() == 0.0 => {
            let y = *value as i32;
            (1900..=2100).contains(&y).then_some(y)
        }
        _ => None,
    }
}

fn day(tok: Option<&Tok>) -> Option<u32> {
    match tok {
        Some(Tok::Number { value, text }) if text.len() <= 2 && value.fract() == 0.0 => {
            let d = *value as u32;
            (1..=31).contains(&d).then_some(d)
        }
        // "1st", "15th": the number, then the suffix as a word.
        _ => None,
    }
}

fn word(toks: &[Tok], i: usize) -> Option<&str> {
    toks.get(i).and_then(Tok::word)
}

/// A period at `i`, and how many tokens it takes. `bare_year`: whether a
/// lone number may be a year here (after "in", "since", ...).
fn period(toks: &[Tok], i: usize, bare_year: bool) -> Option<(usize, Period)> {
    if let Some(Tok::Date { year, month, day }) = toks.get(i) {
        return Some((1, Period::Day(*year, *month, *day)));
    }
    if let Some(m) = word(toks, i).and_then(month) {
        let mut n = 1;
        // "March 15, 2024", "March 15th 2024", "March 2024", "March".
        if let Some(d) = day(toks.get(i + 1)) {
            let skip = usize::from(matches!(word(toks, i + 2), Some("st" | "nd" | "rd" | "th")));
            if let Some(y) = year(toks.get(i + 2 + skip)) {
                if super::lex::valid_date(y, m, d) {
                    return Some((3 + skip, Period::Day(y, m, d)));
                }
            }
        }
        if word(toks, i + n) == Some("of") {
            n += 1;
        }
        if let Some(y) = year(toks.get(i + n)) {
            return Some((n + 1, Period::Month(y, m)));
        }
        return Some((1, Period::MonthOnly(m)));
    }
    // "15 March 2024".
    if let Some(d) = day(toks.get(i)) {
        if let Some(m) = word(toks, i + 1).and_then(month) {
            if let Some(y) = year(toks.get(i + 2)) {
                if super::lex::valid_date(y, m, d) {
                    return Some((3, Period::Day(y, m, d)));
                }
            }
        }
    }
    // "Q4 2025".
    if let Some(q) = word(toks, i)
        .and_then(|w| w.strip_prefix('q'))
        .and_then(|q| q.parse::<u32>().ok())
    {
        if (1..=4).contains(&q) {
            if let Some(y) = year(toks.get(i + 1)) {
                return Some((2, Period::Quarter(y, q)));
            }
        }
    }
    if bare_year {
        if let Some(y) = year(toks.get(i)) {
            return Some((1, Period::Year(y)));
        }
    }
    None
}

fn interval(n: u32, unit: Unit) -> String {
    format!(
        "INTERVAL '{n} {}{}'",
        unit.name(),
        if n == 1 { "" } else { "s" }
    )
}

fn truncated(unit: Unit) -> String {
    format!("date_trunc('{}', CURRENT_DATE)", unit.name())
}

/// A date phrase starting at `i`: its length and meaning.
pub fn parse(toks: &[Tok], i: usize) -> Option<(usize, Time)> {
    let w = word(toks, i);
    // Buckets: "monthly", "by month", "per year", "each week".
    if let Some(unit) = w.and_then(|w| match w {
        "daily" => Some(Unit::Day),
        "weekly" => Some(Unit::Week),
        "monthly" => Some(Unit::Month),
        "quarterly" => Some(Unit::Quarter),
        "yearly" | "annually" | "annual" => Some(Unit::Year),
        _ => None,
    }) {
        return Some((1, Time::Bucket(unit)));
    }
    if matches!(w, Some("by" | "per" | "each" | "every")) {
        let skip = usize::from(word(toks, i + 1) == Some("each"));
        if let Some(unit) = word(toks, i + 1 + skip).and_then(Unit::from_word) {
            return Some((2 + skip, Time::Bucket(unit)));
        }
    }
    if matches!(w, Some("for" | "in")) && matches!(word(toks, i + 1), Some("each" | "every")) {
        if let Some(unit) = word(toks, i + 2).and_then(Unit::from_word) {
            return Some((3, Time::Bucket(unit)));
        }
    }
    let range = |start: Option<Bound>, end: Option<Bound>| Time::Range(Range { start, end });
    // Relative: "(in) the last/past 30 days", "last month", "this year", "today".
    let mut j = i;
    if matches!(
        word(toks, j),
        Some("in" | "during" | "within" | "over" | "for")
    ) {
        j += 1;
    }
    if word(toks, j) == Some("the") {
        j += 1;
    }
    match word(toks, j) {
        Some("last" | "past" | "previous" | "recent") => {
            if let Some(Tok::Number { value, .. }) = toks.get(j + 1) {
                if value.fract() == 0.0 && *value >= 1.0 {
                    if let Some(unit) = word(toks, j + 2).and_then(Unit::from_word) {
                        let since = format!("CURRENT_DATE - {}", interval(*value as u32, unit));
                        return Some((j + 3 - i, range(Some(Bound::Expr(since)), None)));
                    }
                }
            }
            if let Some(unit) = word(toks, j + 1).and_then(Unit::from_word) {
                if word(toks, j) != Some("recent") {
                    let start = format!("{} - {}", truncated(unit), interval(1, unit));
                    return Some((
                        j + 2 - i,
                        range(Some(Bound::Expr(start)), Some(Bound::Expr(truncated(unit)))),
                    ));
                }
            }
        }
        Some("this" | "current") => {
            if let Some(unit) = word(toks, j + 1).and_then(Unit::from_word) {
                return Some((j + 2 - i, range(Some(Bound::Expr(truncated(unit))), None)));
            }
        }
        Some("today") => {
            return Some((
                j + 1 - i,
                range(
                    Some(Bound::Expr("CURRENT_DATE".into())),
                    Some(Bound::Expr("CURRENT_DATE + INTERVAL '1 day'".into())),
                ),
            ))
        }
        Some("yesterday") => {
            return Some((
                j + 1 - i,
                range(
                    Some(Bound::Expr("CURRENT_DATE - INTERVAL '1 day'".into())),
                    Some(Bound::Expr("CURRENT_DATE".into())),
                ),
            ))
        }
        _ => {}
    }
    // Absolute: "in 2024", "since March", "before 2023-06-01", "between X and Y".
    let prep = w?;
    let bare = |p: Period| !matches!(p, Period::MonthOnly(_));
    match prep {
        "in" | "during" | "for" | "on" | "of" | "within" => {
            let (n, p) = period(toks, i + 1, true)?;
            // "in May" alone: which May? Not a guess.
            bare(p).then(|| (n + 1, range(Some(p.start()), p.end())))
        }
        "since" | "from" | "starting" | "after" => {
            let mut k = i + 1;
            if prep == "starting" && matches!(word(toks, k), Some("from" | "in" | "on")) {
                k += 1;
            }
            let (n, p) = period(toks, k, true)?;
            let mut len = k + n - i;
            // "from X to Y", "from X until Y", "from X through Y".
            if prep == "from" {
                if matches!(word(toks, k + n), Some("to" | "until" | "through" | "till")) {
                    let (n2, p2) = period(toks, k + n + 1, true)?;
                    return Some((len + 1 + n2, range(Some(p.start()), p2.end())));
                }
                if !bare(p) {
                    return None;
                }
            }
            let start = if prep == "after" { p.end()? } else { p.start() };
            if word(toks, k + n) == Some("onwards") || word(toks, k + n) == Some("onward") {
                len += 1;
            }
            Some((len, range(Some(start), None)))
        }
        "before" | "until" | "till" | "through" | "prior" => {
            let mut k = i + 1;
            if prep == "prior" {
                if word(toks, k) != Some("to") {
                    return None;
                }
                k += 1;
            }
            let (n, p) = period(toks, k, true)?;
            let end = if matches!(prep, "until" | "till" | "through") {
                p.end()?
            } else {
                p.start()
            };
            Some((k + n - i, range(None, Some(end))))
        }
        "between" => {
            let (n, p) = period(toks, i + 1, true)?;
            if word(toks, i + 1 + n) != Some("and") {
                return None;
            }
            let (n2, p2) = period(toks, i + 2 + n, true)?;
            (bare(p) && bare(p2)).then(|| (n + n2 + 2, range(Some(p.start()), p2.end())))
        }
        _ => {
            // "May 2024", "2024-03-15" with no preposition.
            let (n, p) = period(toks, i, false)?;
            bare(p).then(|| (n, range(Some(p.start()), p.end())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::lex::tokenize;
    use super::*;

    fn at0(q: &str) -> Option<(usize, String)> {
        let toks = tokenize(q);
        parse(&toks, 0).map(|(n, t)| {
            let shown = match t {
                Time::Bucket(u) => format!("by {}", u.name()),
                Time::Range(r) => format!(
                    "[{}, {})",
                    r.start.map_or("-".into(), |b| b.sql()),
                    r.end.map_or("-".into(), |b| b.sql())
                ),
            };
            (n, shown)
        })
    }

    #[test]
    fn absolute_ranges() {
        assert_eq!(
            at0("in 2024").unwrap(),
            (2, "['2024-01-01', '2025-01-01')".into())
        );
        assert_eq!(
            at0("in May 2024").unwrap(),
            (3, "['2024-05-01', '2024-06-01')".into())
        );
        assert_eq!(
            at0("in december 2024").unwrap().1,
            "['2024-12-01', '2025-01-01')"
        );
        assert_eq!(at0("since 2023-02-28").unwrap().1, "['2023-02-28', -)");
        assert_eq!(at0("after 2023").unwrap().1, "['2024-01-01', -)");
        assert_eq!(at0("before March 15, 2024").unwrap().1, "[-, '2024-03-15')");
        assert_eq!(
            at0("between 2023-01-01 and 2023-06-30").unwrap(),
            (4, "['2023-01-01', '2023-07-01')".into())
        );
        assert_eq!(
            at0("from Jan 2023 to Mar 2023").unwrap().1,
            "['2023-01-01', '2023-04-01')"
        );
        assert!(at0("in May").is_none(), "which May is not guessed");
        assert!(at0("in 12").is_none());
    }

    #[test]
    fn relative_ranges_and_buckets() {
        assert_eq!(
            at0("in the last 30 days").unwrap(),
            (5, "[CURRENT_DATE - INTERVAL '30 days', -)".into())
        );
        assert_eq!(
            at0("last month").unwrap().1,
            "[date_trunc('month', CURRENT_DATE) - INTERVAL '1 month', date_trunc('month', CURRENT_DATE))"
        );
        assert_eq!(
            at0("since March").unwrap().1,
            "[date_trunc('year', CURRENT_DATE - INTERVAL '2 months') + INTERVAL '2 months', -)"
        );
        assert_eq!(at0("by month").unwrap(), (2, "by month".into()));
        assert_eq!(at0("yearly").unwrap(), (1, "by year".into()));
    }
}
