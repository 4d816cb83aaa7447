//! Pieces to an intent: what is counted, summed or listed, grouped by what,
//! filtered how, in which order, how many rows.
//!
//! The pieces are read left to right; structure words wait for what they
//! apply to ("by" → the next column or table is a group, "over" → the next
//! number is a bound). Columns are resolved against the tables the question
//! names, so "name" in "customers in Berlin by name" is `customers.name`.

use super::dates::{Range, Time, Unit};
use super::parse::{Agg, Dir, Op, Piece, Role};
use super::vocab::Vocab;
use super::Refusal;

/// A column: (table, column).
pub type Col = (usize, usize);

/// What a result column aggregates.
#[derive(Debug, Clone, PartialEq)]
pub enum Aggregate {
    /// `count(*)` of the subject's rows ("how many" with no table after it).
    CountRows,
    /// `count(*)` of the table's rows (distinct when the join fans out).
    Count(usize),
    /// `count(DISTINCT column)`: "number of countries".
    CountDistinct(Col),
    Of(Agg, Col),
    Measure(usize),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Group {
    Column(Col),
    /// A table's rows: its key and label.
    Table(usize),
    /// `date_trunc(unit, column)`; the column is found when planning if
    /// the question did not name it.
    Bucket(Unit, Option<Col>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `column IN (values)` (one value: `=`).
    Equals {
        col: Col,
        values: Vec<String>,
        negated: bool,
    },
    Compare {
        col: Col,
        op: Op,
        value: f64,
    },
    Between {
        col: Col,
        low: f64,
        high: f64,
        negated: bool,
    },
    Time {
        col: Option<Col>,
        range: Range,
        negated: bool,
    },
    /// The subject has (or has not) rows in this table. `implicit`: the
    /// table was only named ("customers who ordered in 2024"), which is a
    /// condition only when the table is on the many side.
    Exists {
        table: usize,
        negated: bool,
        implicit: bool,
    },
    /// The subject has more (or fewer) than `value` rows in this table.
    CountOf {
        table: usize,
        op: Op,
        value: f64,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum OrderKey {
    Column(Col),
    /// An entry of `Intent::aggregates`.
    Aggregate(usize),
    /// The time column of the subject, found when planning.
    Role(Role),
}

#[derive(Debug, Default, Clone)]
pub struct Intent {
    pub subject: Option<usize>,
    /// Whether the subject was named in the singular ("the cheapest product").
    pub singular: bool,
    pub aggregates: Vec<Aggregate>,
    pub groups: Vec<Group>,
    pub filters: Vec<Filter>,
    /// Per filter: the existence filter it belongs to ("customers with no
    /// orders in 2025": the date is the orders').
    pub within: Vec<Option<usize>>,
    /// `HAVING aggregate op value`, for groups by a column.
    pub having: Vec<(usize, Op, f64)>,
    pub order: Option<(OrderKey, Dir)>,
    pub limit: Option<u64>,
    pub columns: Vec<Col>,
    pub distinct: bool,
    /// Tables named besides the subject, in order.
    pub mentioned: Vec<usize>,
}

impl Intent {
    pub fn is_aggregate(&self) -> bool {
        !self.aggregates.is_empty() || !self.groups.is_empty() || !self.having.is_empty()
    }

    fn filter(&mut self, f: Filter, within: Option<usize>) {
        self.filters.push(f);
        self.within.push(within);
    }

    /// Order by the aggregate just added.
    fn order_by_last(&mut self, d: Dir) {
        self.order = Some((OrderKey::Aggregate(self.aggregates.len() - 1), d));
    }
}

/// What waits for the next piece.
#[derive(Default)]
struct Pending {
    count: bool,
    aggs: Vec<Agg>,
    extreme: Option<Dir>,
    by: bool,
    sort: bool,
    /// "by number of", "by total": the next aggregate orders the result.
    rank: Option<Dir>,
    top: Option<Dir>,
    compare: Option<Op>,
    between: Option<Option<f64>>,
    not: bool,
    with: bool,
    or: bool,
}

pub fn build(pieces: &[Piece], vocab: &Vocab) -> Result<Intent, Refusal> {
    let mut it = Intent::default();
    // The subject is the first table named outside a "by", "with" or
    // "most" phrase; failing that, found later from what is aggregated.
    let mut tables_in_order = Vec::new();
    for (k, p) in pieces.iter().enumerate() {
        if let Piece::Table { t, plural } = p {
            let led = k > 0
                && matches!(
                    pieces[k - 1],
                    Piece::By | Piece::With | Piece::Extreme(_) | Piece::SortBy | Piece::Not
                );
            if it.subject.is_none() && !led {
                it.subject = Some(*t);
                it.singular = !plural;
            } else if !tables_in_order.contains(t) {
                tables_in_order.push(*t);
            }
        }
    }
    it.mentioned = tables_in_order
        .into_iter()
        .filter(|t| Some(*t) != it.subject)
        .collect();

    let mut p = Pending::default();
    // Whether a superlative (most, highest, cheapest) orders the result.
    let mut superlative = false;
    // After "to" in "from cheapest to most expensive".
    let mut until = false;
    // The aggregate the previous pieces made ("whose average total is above").
    let mut just_aggregated: Option<usize> = None;
    let subject_named = it.subject.is_some();
    let mut last_column: Option<(Col, bool)> = None;
    let mut extreme_columns: Vec<(Dir, Col, bool)> = Vec::new();
    // The existence filter later conditions belong to.
    let mut exists: Option<usize> = None;
    let mut k = 0;
    while k < pieces.len() {
        let piece = &pieces[k];
        let next = pieces.get(k + 1);
        if matches!(piece, Piece::Extreme(_) | Piece::Adjective(..)) {
            superlative = true;
        }
        let aggregated_before = just_aggregated.take();
        if matches!(piece, Piece::Compare(_)) {
            just_aggregated = aggregated_before;
        }
        match piece {
            Piece::Count => {
                if p.by || p.sort {
                    p.rank = Some(Dir::Desc);
                    p.by = false;
                    p.sort = false;
                }
                p.count = true;
                exists = None;
            }
            Piece::Agg(a) => {
                if p.by || p.sort {
                    p.rank = Some(Dir::Desc);
                    p.by = false;
                    p.sort = false;
                }
                p.aggs.push(*a);
                exists = None;
            }
            Piece::Extreme(d) => {
                if !std::mem::take(&mut until) {
                    p.extreme = Some(*d);
                }
                p.with = false;
            }
            Piece::Top(d) => p.top = Some(*d),
            Piece::By => {
                p.by = true;
                exists = None;
            }
            Piece::SortBy => {
                // "ordered by customers in Kenya": who ordered, not a sort.
                if !matches!(next, Some(Piece::Table { .. })) {
                    p.sort = true;
                }
                exists = None;
            }
            Piece::Not => p.not = true,
            Piece::With => p.with = true,
            Piece::Or => p.or = true,
            Piece::Distinct => it.distinct = true,
            Piece::Compare(op) => p.compare = Some(*op),
            Piece::Between => p.between = Some(None),
            Piece::And => {}
            Piece::Direction(d) => match &mut it.order {
                Some((_, dir)) => *dir = *d,
                None => {
                    let col = last_column.map(|(c, _)| c).or_else(|| {
                        it.subject
                            .and_then(|t| vocab.roles[t].label.map(|c| (t, c)))
                    });
                    let col = col.ok_or_else(|| Refusal::unsure("what to sort by"))?;
                    it.columns.retain(|c| *c != col);
                    it.order = Some((OrderKey::Column(col), *d));
                }
            },
            Piece::Adjective(d, role) => {
                if std::mem::take(&mut until) {
                    // "from cheapest to most expensive": the first says it.
                } else if matches!(it.order, Some((OrderKey::Role(r), od)) if r == *role && od != *d)
                {
                    // "the cheapest and the most expensive": two answers.
                    return Err(Refusal::unsure("which of two orderings is meant"));
                } else {
                    it.order = Some((OrderKey::Role(*role), *d));
                }
                p.top = None;
            }
            Piece::Until => until = true,
            Piece::Table { t, plural } => {
                let t = *t;
                if p.rank.is_some() && p.count {
                    p.count = false;
                    it.aggregates.push(Aggregate::Count(t));
                    let d = p.top.take().or(p.rank.take()).unwrap_or(Dir::Desc);
                    it.order_by_last(d);
                } else if p.by {
                    it.groups.push(Group::Table(t));
                    if p.extreme.is_some() || p.top.is_some() {
                        it.singular = !plural;
                    }
                    p.by = false;
                } else if p.with && Some(t) == it.subject {
                    p.with = false; // "countries we have customers in"
                } else if p.with || (p.not && Some(t) != it.subject) {
                    // "customers without orders", "products never ordered".
                    it.filter(
                        Filter::Exists {
                            table: t,
                            negated: std::mem::take(&mut p.not),
                            implicit: false,
                        },
                        None,
                    );
                    exists = Some(it.filters.len() - 1);
                    p.with = false;
                } else if let Some(d) = p.extreme.take() {
                    // "customers with the most orders".
                    it.aggregates.push(Aggregate::Count(t));
                    it.order_by_last(d);
                } else if p.count {
                    p.count = false;
                    it.aggregates.push(Aggregate::Count(t));
                    if let Some(d) = p.top.take().or(p.sort.then_some(Dir::Desc)) {
                        it.order_by_last(d);
                    }
                    p.sort = false;
                } else if p.sort {
                    let label = vocab.roles[t].label.ok_or_else(|| {
                        Refusal::unsure(&format!("how to sort by {}", vocab.table_name(t)))
                    })?;
                    it.order = Some((OrderKey::Column((t, label)), Dir::Asc));
                    p.sort = false;
                } else if Some(t) != it.subject && it.subject.is_some() {
                    // Only named: "customers who ordered in 2024".
                    it.filter(
                        Filter::Exists {
                            table: t,
                            negated: false,
                            implicit: true,
                        },
                        None,
                    );
                    exists = Some(it.filters.len() - 1);
                }
            }
            Piece::Column { candidates, plural } => {
                let col = resolve_column(candidates, &it, vocab)?;
                let numeric = vocab.is_numeric(col.0, col.1);
                let before_value = matches!(next, Some(Piece::Value(v)) if v.iter().any(|(t, c, _)| (*t, *c) == col))
                    || matches!(next, Some(Piece::Quoted(_)));
                let before_compare =
                    matches!(next, Some(Piece::Compare(_) | Piece::Between | Piece::Not))
                        || (matches!(next, Some(Piece::Time(Time::Range(_))))
                            && vocab.is_temporal(col.0, col.1));
                let names_value = matches!(k.checked_sub(1).map(|j| &pieces[j]), Some(Piece::Value(v)) if v.iter().any(|(t, c, _)| (*t, *c) == col));
                // "country name": the name of the country, not the row's.
                let label_of_previous = matches!(
                    k.checked_sub(1).map(|j| &pieces[j]),
                    Some(Piece::Column { .. })
                ) && last_column.is_some_and(|(prev, _)| {
                    prev.0 == col.0 && prev != col && vocab.roles[col.0].label == Some(col.1)
                });
                if label_of_previous {
                    k += 1;
                    continue;
                }
                last_column = Some((col, *plural));
                if names_value && p.aggs.is_empty() && !p.by && !p.sort {
                    // "in the Books category": the column the value is of.
                } else if !p.aggs.is_empty() {
                    for a in std::mem::take(&mut p.aggs) {
                        it.aggregates.push(Aggregate::Of(a, col));
                    }
                    just_aggregated = Some(it.aggregates.len() - 1);
                    let order = p.extreme.take().or(p.top.take()).or(p.rank.take());
                    if let Some(d) = order {
                        it.order_by_last(d);
                    }
                } else if p.by && !(numeric && (p.top.is_some() || it.order.is_none() && p.sort)) {
                    if numeric
                        && (p.top.is_some() || matches!(it.order, Some((OrderKey::Role(_), _))))
                    {
                        it.order = Some((OrderKey::Column(col), p.top.unwrap_or(Dir::Desc)));
                    } else {
                        it.groups.push(Group::Column(col));
                    }
                    p.by = false;
                } else if p.by || p.sort {
                    let d = p
                        .top
                        .take()
                        .unwrap_or(if numeric { Dir::Desc } else { Dir::Asc });
                    let d = if p.sort && !p.by { Dir::Asc } else { d };
                    it.order = Some((OrderKey::Column(col), d));
                    p.by = false;
                    p.sort = false;
                } else if let Some(d) = p.extreme.take() {
                    extreme_columns.push((d, col, *plural));
                } else if p.top.is_some() && matches!(next, Some(Piece::By)) {
                    // "top 3 countries by revenue": what is ranked.
                    it.columns.push(col);
                } else if let Some(d) = p.top.take() {
                    it.order = Some((OrderKey::Column(col), d));
                } else if p.count {
                    // "number of countries": distinct values.
                    p.count = false;
                    it.aggregates.push(Aggregate::CountDistinct(col));
                } else if !before_value && !before_compare && !it.columns.contains(&col) {
                    it.columns.push(col);
                }
            }
            Piece::Value(candidates) => {
                let (t, c, v) = resolve_value(candidates, last_column.map(|l| l.0), &it, vocab)?;
                it.columns.retain(|col| *col != (t, c));
                let negated = std::mem::take(&mut p.not);
                add_value(&mut it, &mut p, (t, c), v, negated, exists)?;
                last_column = Some(((t, c), false));
                p.with = false;
                if p.by {
                    return Err(Refusal::unsure("what to group by"));
                }
            }
            Piece::Quoted(v) => {
                let col = match last_column {
                    Some((col, _)) if vocab.is_text(col.0, col.1) => col,
                    _ => return Err(Refusal::words(&[format!("'{v}'")], "a quoted value needs the column it is compared with, e.g. city 'Springfield'")),
                };
                it.columns.retain(|c| *c != col);
                let negated = std::mem::take(&mut p.not);
                add_value(&mut it, &mut p, col, v.clone(), negated, exists)?;
            }
            Piece::Measure(m) => {
                it.aggregates.push(Aggregate::Measure(*m));
                just_aggregated = Some(it.aggregates.len() - 1);
                p.aggs.clear();
                let d = p
                    .extreme
                    .take()
                    .or(p.top.take())
                    .or(p.rank.take())
                    .or((p.by || p.sort).then_some(Dir::Desc));
                if let Some(d) = d {
                    it.order_by_last(d);
                }
                p.by = false;
                p.sort = false;
            }
            Piece::Number(n) => {
                let previous = k.checked_sub(1).map(|j| &pieces[j]);
                let skip = usize::from(matches!(next, Some(Piece::Distinct)));
                let next = pieces.get(k + 1 + skip);
                if let (Some(op), Some(a)) = (p.compare, aggregated_before) {
                    // "customers whose average order value is above 2000".
                    p.compare = None;
                    let op = if std::mem::take(&mut p.not) {
                        negate(op)?
                    } else {
                        op
                    };
                    it.having.push((a, op, *n));
                } else if let (Some(op), Some(Piece::Table { t, .. })) = (p.compare, next) {
                    // "customers with more than 30 orders".
                    p.compare = None;
                    let op = if std::mem::take(&mut p.not) {
                        negate(op)?
                    } else {
                        op
                    };
                    if it.subject.is_some_and(|s| s != *t) {
                        it.filter(
                            Filter::CountOf {
                                table: *t,
                                op,
                                value: *n,
                            },
                            None,
                        );
                    } else {
                        it.aggregates.push(Aggregate::Count(*t));
                        it.having.push((it.aggregates.len() - 1, op, *n));
                    }
                    p.with = false;
                    k += 2 + skip;
                    continue;
                } else if let Some(op) = p.compare.take() {
                    let col = compare_column(last_column.map(|l| l.0), &it, vocab)?;
                    let op = if std::mem::take(&mut p.not) {
                        negate(op)?
                    } else {
                        op
                    };
                    it.filter(Filter::Compare { col, op, value: *n }, exists);
                    last_column = None;
                } else if let Some(low) = p.between {
                    match low {
                        None => p.between = Some(Some(*n)),
                        Some(low) => {
                            let col = compare_column(last_column.map(|l| l.0), &it, vocab)?;
                            let negated = std::mem::take(&mut p.not);
                            it.filter(
                                Filter::Between {
                                    col,
                                    low,
                                    high: *n,
                                    negated,
                                },
                                exists,
                            );
                            p.between = None;
                        }
                    }
                } else if let Some(Piece::Table { t, plural: false }) = previous {
                    // "customer 42", "order 50001": a row by its key.
                    let key = match vocab.roles[*t].primary_key[..] {
                        [c] if vocab.is_numeric(*t, c) => (*t, c),
                        _ => {
                            return Err(Refusal::words(
                                &[format_number(*n)],
                                "a number after a table needs a one-column numeric key",
                            ))
                        }
                    };
                    let negated = std::mem::take(&mut p.not);
                    let within = if it.subject == Some(*t) { None } else { exists };
                    it.filter(
                        Filter::Equals {
                            col: key,
                            values: vec![format_number(*n)],
                            negated,
                        },
                        within,
                    );
                } else if n.fract() == 0.0
                    && *n >= 1.0
                    && (p.top.is_some()
                        || matches!(
                            next,
                            Some(
                                Piece::Table { .. }
                                    | Piece::Adjective(..)
                                    | Piece::Extreme(_)
                                    | Piece::Column { .. }
                            )
                        ))
                {
                    it.limit = Some(*n as u64);
                } else {
                    return Err(Refusal::words(
                        &[format_number(*n)],
                        "a number needs a comparison (over, under, at least) or a count (top 5)",
                    ));
                }
            }
            Piece::Time(Time::Bucket(unit)) => {
                let col = last_column
                    .filter(|(c, _)| vocab.is_temporal(c.0, c.1))
                    .map(|l| l.0);
                it.columns.retain(|c| Some(*c) != col);
                it.groups.push(Group::Bucket(*unit, col));
                p.by = false;
            }
            Piece::Time(Time::Range(range)) => {
                let col = last_column
                    .filter(|(c, _)| vocab.is_temporal(c.0, c.1))
                    .map(|l| l.0);
                it.columns.retain(|c| Some(*c) != col);
                let negated = std::mem::take(&mut p.not);
                it.filter(
                    Filter::Time {
                        col,
                        range: range.clone(),
                        negated,
                    },
                    exists,
                );
            }
        }
        k += 1;
    }
    if p.by || p.sort || p.compare.is_some() || p.between.is_some() || p.or {
        return Err(Refusal::unsure("what the question's last words apply to"));
    }
    if p.count {
        it.aggregates.insert(0, Aggregate::CountRows);
        if let Some((OrderKey::Aggregate(i), _)) = &mut it.order {
            *i += 1;
        }
        for h in &mut it.having {
            h.0 += 1;
        }
    }
    if let Some(a) = p.aggs.first() {
        return Err(Refusal::unsure(&format!("what to take the {} of", a.sql())));
    }
    if p.not {
        return Err(Refusal::unsure("what \"not\" applies to"));
    }
    // "the customer who spent the most": the aggregate just named.
    if let Some(d) = p.extreme.take() {
        if it.order.is_none() && !it.aggregates.is_empty() {
            it.order_by_last(d);
        } else if it.order.is_none() {
            return Err(Refusal::unsure(if d == Dir::Desc {
                "most by what"
            } else {
                "least by what"
            }));
        }
    }
    if let Some(d) = p.top {
        if it.order.is_none() {
            return Err(Refusal::unsure(if d == Dir::Desc {
                "top by what"
            } else {
                "bottom by what"
            }));
        }
    }
    // "highest price": of the rows listed, or of each group.
    for (d, col, plural) in extreme_columns {
        let listing = it.subject.is_some() && it.aggregates.is_empty() && it.groups.is_empty();
        let agg = if d == Dir::Desc { Agg::Max } else { Agg::Min };
        if listing {
            it.order = Some((OrderKey::Column(col), d));
            if it.limit.is_none() && it.singular {
                it.limit = Some(1);
            }
        } else if it.groups.is_empty() && !it.columns.is_empty() {
            // "which category has the highest price": group by the column named.
            it.aggregates.push(Aggregate::Of(agg, col));
            it.order_by_last(d);
            if it.limit.is_none() && !plural {
                it.limit = Some(1);
            }
        } else {
            it.aggregates.push(Aggregate::Of(agg, col));
        }
    }
    // "the customer with the most orders": one row.
    if superlative && it.singular && subject_named && it.limit.is_none() && it.order.is_some() {
        it.limit = Some(1);
    }
    // "what categories are there": the values, once each.
    if !subject_named && it.aggregates.is_empty() && it.groups.is_empty() && !it.columns.is_empty()
    {
        // "categories with no product over 300" is about whole categories,
        // not rows: a negation here is not a row filter.
        if pieces.iter().any(|p| matches!(p, Piece::Not)) {
            return Err(Refusal::unsure(
                "whether \"not\" applies to each row or to each value listed",
            ));
        }
        it.distinct = true;
    }
    // "which category has the highest average price": one row.
    if it.limit.is_none() && it.groups.is_empty() && !it.columns.is_empty() {
        if let (Some((OrderKey::Aggregate(_), _)), Some(Piece::Column { plural: false, .. })) = (
            &it.order,
            pieces.iter().find(|p| matches!(p, Piece::Column { .. })),
        ) {
            if pieces.iter().any(|p| matches!(p, Piece::Extreme(_))) {
                it.limit = Some(1);
            }
        }
    }
    Ok(it)
}

fn negate(op: Op) -> Result<Op, Refusal> {
    Ok(match op {
        Op::Gt => Op::Le,
        Op::Ge => Op::Lt,
        Op::Lt => Op::Ge,
        Op::Le => Op::Gt,
        Op::Eq => return Err(Refusal::unsure("\"not equal to\"")),
    })
}

/// An equality filter, or one more value of the last ("Electronics or Clothing").
fn add_value(
    it: &mut Intent,
    p: &mut Pending,
    col: Col,
    value: String,
    negated: bool,
    exists: Option<usize>,
) -> Result<(), Refusal> {
    if std::mem::take(&mut p.or) {
        match it.filters.last_mut() {
            Some(Filter::Equals { col: c, values, .. }) if *c == col => {
                values.push(value);
                return Ok(());
            }
            _ => return Err(Refusal::unsure("what \"or\" joins")),
        }
    }
    it.filter(
        Filter::Equals {
            col,
            values: vec![value],
            negated,
        },
        exists,
    );
    Ok(())
}

fn format_number(n: f64) -> String {
    if n.fract() == 0.0 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

/// The column among `candidates` the question means: one of the subject,
/// then of a table it names, then the only one.
fn resolve_column(candidates: &[Col], it: &Intent, vocab: &Vocab) -> Result<Col, Refusal> {
    let named: Vec<usize> = it.subject.iter().chain(&it.mentioned).copied().collect();
    for t in &named {
        let here: Vec<&Col> = candidates.iter().filter(|c| c.0 == *t).collect();
        if here.len() == 1 {
            return Ok(*here[0]);
        }
    }
    // Otherwise only a unique candidate is taken.
    if candidates.len() == 1 {
        return Ok(candidates[0]);
    }
    let names: Vec<String> = candidates
        .iter()
        .map(|&(t, c)| format!("{}.{}", vocab.table_name(t), vocab.column_name(t, c)))
        .collect();
    Err(Refusal::unsure(&format!(
        "which column is meant: {}",
        names.join(", ")
    )))
}

fn resolve_value(
    candidates: &[(usize, usize, String)],
    column: Option<Col>,
    it: &Intent,
    vocab: &Vocab,
) -> Result<(usize, usize, String), Refusal> {
    if let Some(col) = column {
        if let Some(v) = candidates.iter().find(|(t, c, _)| (*t, *c) == col) {
            return Ok(v.clone());
        }
    }
    let named: Vec<usize> = it.subject.iter().chain(&it.mentioned).copied().collect();
    for t in &named {
        let here: Vec<_> = candidates.iter().filter(|v| v.0 == *t).collect();
        if here.len() == 1 {
            return Ok(here[0].clone());
        }
    }
    let mut distinct: Vec<(usize, usize)> = candidates.iter().map(|v| (v.0, v.1)).collect();
    distinct.dedup();
    if distinct.len() == 1 {
        return Ok(candidates[0].clone());
    }
    let names: Vec<String> = distinct
        .iter()
        .map(|&(t, c)| format!("{}.{}", vocab.table_name(t), vocab.column_name(t, c)))
        .collect();
    Err(Refusal::unsure(&format!(
        "which column '{}' is a value of: {}",
        candidates[0].2,
        names.join(", ")
    )))
}

/// The column a bare comparison ("orders over 100") is about: the one just
/// named, or the subject's only amount column.
fn compare_column(named: Option<Col>, it: &Intent, vocab: &Vocab) -> Result<Col, Refusal> {
    if let Some(col) = named {
        if vocab.is_numeric(col.0, col.1) {
            return Ok(col);
        }
    }
    if let Some(t) = it.subject {
        if let [c] = vocab.roles[t].amounts[..] {
            return Ok((t, c));
        }
    }
    Err(Refusal::unsure("which column the number is compared with"))
}
