//! Tokens to pieces: every word of the question is placed — as a schema
//! phrase (table, column, value, measure), a structure word ("how many",
//! "by", "top", "over", "without"), a date phrase, or a function word that
//! carries nothing ("the", "show me"). A word that is none of these is
//! *unplaced*, and the translator refuses rather than guess.

use super::dates::{self, Time};
use super::lex::Tok;
use super::vocab::{Meaning, Vocab, MAX_PHRASE};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    Asc,
    Desc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agg {
    Sum,
    Avg,
    Min,
    Max,
}

impl Agg {
    pub fn sql(self) -> &'static str {
        match self {
            Agg::Sum => "sum",
            Agg::Avg => "avg",
            Agg::Min => "min",
            Agg::Max => "max",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
}

impl Op {
    pub fn sql(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Eq => "=",
        }
    }
}

/// What an ordering adjective orders by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// cheapest, most expensive: a price or cost column.
    Price,
    /// latest, oldest: the time column.
    Time,
    /// largest, smallest, biggest: the table's amount column.
    Amount,
}

/// One placed part of the question.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Table {
        t: usize,
        plural: bool,
    },
    /// The columns a phrase may name; `plural`: "categories".
    Column {
        candidates: Vec<(usize, usize)>,
        plural: bool,
    },
    Value(Vec<(usize, usize, String)>),
    Quoted(String),
    Measure(usize),
    Number(f64),
    /// how many, number of, count.
    Count,
    /// total, sum, average, mean.
    Agg(Agg),
    /// highest, most, maximum, largest with nothing after it to say what:
    /// an aggregate or an ordering, depending on the rest.
    Extreme(Dir),
    /// cheapest, latest, largest: an ordering by a column of a role.
    Adjective(Dir, Role),
    /// by, per, for each.
    By,
    /// sorted by, ordered by.
    SortBy,
    Direction(Dir),
    /// top, bottom.
    Top(Dir),
    Compare(Op),
    Between,
    And,
    /// or, nor: another value of the same column.
    Or,
    Not,
    /// "to" before an ordering word: "from cheapest to most expensive".
    Until,
    /// with, having, has: the next table must have rows for the subject.
    With,
    Distinct,
    Time(Time),
}

/// The question's pieces, and the words that are none.
#[derive(Debug, Default)]
pub struct Parsed {
    pub pieces: Vec<Piece>,
    pub unplaced: Vec<String>,
}

/// Words that carry nothing here: they may stay unplaced.
fn is_filler(w: &str) -> bool {
    #[rustfmt::skip]
    const FILLER: &[&str] = &[
        "a", "all", "an", "any", "appear", "appeared", "appears", "are", "as", "at", "be", "been",
        "bought", "bring", "brings", "brought", "buy", "came", "can", "come", "comes", "cost",
        "costing", "costs", "currently",
        "data", "details", "did", "display", "do", "does", "done", "each", "entries", "ever",
        "every", "exist", "existing", "find", "for", "from", "generate", "generated", "generates",
        "get", "give", "got", "i", "in", "including", "inclusive", "information", "is", "it", "its",
        "kind", "know", "let",
        "list", "listed", "made", "make", "me", "now", "of", "on", "our", "overall", "per", "place",
        "placed", "please", "purchased", "records", "respective", "respectively", "return",
        "returning", "rows", "see", "show", "so", "sold", "some", "still",
        "that", "the", "their", "them", "there", "these", "they", "this", "those", "to", "us",
        "want", "was", "we", "were", "what", "whats", "when", "which", "who", "whom", "whose",
        "will", "would", "you",
    ];
    FILLER.binary_search(&w).is_ok()
}

/// A structure phrase at `i`: its length and piece (`None`: a filler
/// phrase, placed but meaning nothing).
fn keyword(toks: &[Tok], i: usize) -> Option<(usize, Option<Piece>)> {
    let w = |k: usize| toks.get(i + k).and_then(Tok::word).unwrap_or("");
    let one = |p: Piece| Some((1, Some(p)));
    let two = |p: Piece| Some((2, Some(p)));
    match (w(0), w(1), w(2)) {
        ("how", "many", _) => two(Piece::Count),
        ("how", "much", _) | ("right", "now", _) | ("in", "total", _) => Some((2, None)),
        ("number" | "count" | "amount", "of", _) => two(Piece::Count),
        ("total", "number", "of") => Some((3, Some(Piece::Count))),
        ("count" | "counts", _, _) => one(Piece::Count),
        ("sum", "of", _) | ("total", "of", _) => two(Piece::Agg(Agg::Sum)),
        ("sum" | "total" | "combined", _, _) => one(Piece::Agg(Agg::Sum)),
        ("average" | "avg" | "mean", _, _) => one(Piece::Agg(Agg::Avg)),
        ("minimum" | "min", _, _) => one(Piece::Agg(Agg::Min)),
        ("maximum" | "max", _, _) => one(Piece::Agg(Agg::Max)),
        ("highest" | "largest" | "biggest" | "most" | "newest" | "latest", "first", _) => {
            two(Piece::Direction(Dir::Desc))
        }
        ("lowest" | "smallest" | "least" | "oldest" | "earliest" | "cheapest", "first", _) => {
            two(Piece::Direction(Dir::Asc))
        }
        ("most", "expensive", _) | ("most", "costly", _) => {
            two(Piece::Adjective(Dir::Desc, Role::Price))
        }
        ("least", "expensive", _) => two(Piece::Adjective(Dir::Asc, Role::Price)),
        ("most", "recent" | "recently", _) => two(Piece::Adjective(Dir::Desc, Role::Time)),
        ("cheapest", _, _) => one(Piece::Adjective(Dir::Asc, Role::Price)),
        ("priciest" | "expensive", _, _) => one(Piece::Adjective(Dir::Desc, Role::Price)),
        ("latest" | "newest" | "recent", _, _) => one(Piece::Adjective(Dir::Desc, Role::Time)),
        ("earliest" | "oldest", _, _) => one(Piece::Adjective(Dir::Asc, Role::Time)),
        ("largest" | "biggest", _, _) => one(Piece::Adjective(Dir::Desc, Role::Amount)),
        ("smallest", _, _) => one(Piece::Adjective(Dir::Asc, Role::Amount)),
        ("first", _, _) => one(Piece::Adjective(Dir::Asc, Role::Time)),
        ("last", _, _) => one(Piece::Adjective(Dir::Desc, Role::Time)),
        ("most" | "highest" | "greatest", _, _) => one(Piece::Extreme(Dir::Desc)),
        ("least" | "fewest" | "lowest", _, _) => one(Piece::Extreme(Dir::Asc)),
        ("top" | "best", _, _) => one(Piece::Top(Dir::Desc)),
        ("bottom" | "worst", _, _) => one(Piece::Top(Dir::Asc)),
        ("sorted" | "ordered" | "ranked" | "arranged" | "listed", "from", _) => Some((2, None)),
        ("to", next, _) if is_ordering_word(next) => one(Piece::Until),
        ("sorted" | "ordered" | "order" | "sort" | "ranked" | "rank", "by", _) => {
            two(Piece::SortBy)
        }
        ("grouped" | "broken" | "split" | "break", "by", _) => two(Piece::By),
        ("broken", "down", "by") => Some((3, Some(Piece::By))),
        ("for" | "in", "each" | "every", _) => two(Piece::By),
        ("by" | "per" | "across", _, _) => one(Piece::By),
        ("each", _, _) if i > 0 => one(Piece::By),
        ("ascending" | "asc" | "increasing" | "alphabetical" | "alphabetically", _, _) => {
            one(Piece::Direction(Dir::Asc))
        }
        ("descending" | "desc" | "decreasing", _, _) => one(Piece::Direction(Dir::Desc)),
        ("more" | "greater" | "higher" | "larger" | "bigger", "than", _) => {
            two(Piece::Compare(Op::Gt))
        }
        ("less" | "fewer" | "lower" | "smaller" | "cheaper", "than", _) => {
            two(Piece::Compare(Op::Lt))
        }
        ("at", "least", _) => two(Piece::Compare(Op::Ge)),
        ("at", "most", _) => two(Piece::Compare(Op::Le)),
        ("no", "more", "than") => Some((3, Some(Piece::Compare(Op::Le)))),
        ("no", "less", "than") => Some((3, Some(Piece::Compare(Op::Ge)))),
        ("up", "to", _) => two(Piece::Compare(Op::Le)),
        ("equal", "to", _) => two(Piece::Compare(Op::Eq)),
        ("over" | "above" | "exceeding" | "exceeds" | "exceed", _, _) => {
            one(Piece::Compare(Op::Gt))
        }
        ("under" | "below", _, _) => one(Piece::Compare(Op::Lt)),
        ("exactly" | "equals", _, _) => one(Piece::Compare(Op::Eq)),
        ("between", _, _) => one(Piece::Between),
        ("and", _, _) => one(Piece::And),
        ("or" | "nor", _, _) => one(Piece::Or),
        ("neither" | "outside", _, _) => one(Piece::Not),
        ("other", "than", _) => two(Piece::Not),
        ("not" | "no" | "never" | "except" | "excluding" | "non" | "none", _, _) => one(Piece::Not),
        ("without", _, _) => Some((1, Some(Piece::Not))),
        (
            "with" | "having" | "has" | "have" | "had" | "contain" | "contains" | "containing",
            _,
            _,
        ) => one(Piece::With),
        ("distinct" | "unique" | "different", _, _) => one(Piece::Distinct),
        ("dollars" | "dollar" | "usd" | "euros" | "euro" | "eur", _, _) => Some((1, None)),
        _ => None,
    }
}

/// Place every word of `toks`.
pub fn parse(toks: &[Tok], vocab: &Vocab) -> Parsed {
    let mut out = Parsed::default();
    let mut i = 0;
    while i < toks.len() {
        if let Some((n, time)) = dates::parse(toks, i) {
            out.pieces.push(Piece::Time(time));
            i += n;
            continue;
        }
        match &toks[i] {
            Tok::Number { value, .. } => {
                out.pieces.push(Piece::Number(*value));
                i += 1;
                continue;
            }
            Tok::Quoted(v) => {
                out.pieces.push(Piece::Quoted(v.clone()));
                i += 1;
                continue;
            }
            Tok::Date { .. } => {
                out.unplaced.push(toks[i].display());
                i += 1;
                continue;
            }
            Tok::Word { text, .. } => {
                if let Some(n) = number_word(text) {
                    out.pieces.push(Piece::Number(n));
                    i += 1;
                    continue;
                }
            }
        }
        let schema = schema_phrase(toks, i, vocab);
        let kw = keyword(toks, i);
        let schema_len = schema.as_ref().map_or(0, |s| s.0);
        let kw_len = kw.as_ref().map_or(0, |k| k.0);
        // The longer reading wins; on a tie a structure word does, except
        // an aggregate word that no column, measure or table follows
        // ("orders with a total over 100": `total` is the column).
        let use_schema = schema_len > kw_len
            || (schema_len == kw_len
                && schema_len > 0
                && matches!(kw, Some((_, Some(Piece::Agg(_) | Piece::Count))))
                && !names_something(toks, i + kw_len, vocab));
        if use_schema {
            let (n, piece) = schema.expect("schema_len > 0");
            out.pieces.push(piece);
            i += n;
        } else if let Some((n, piece)) = kw {
            // "bought by customers in Kenya": who did it, not a grouping.
            let agent = piece == Some(Piece::By)
                && i > 0
                && matches!(
                    toks[i - 1].word(),
                    Some(
                        "bought" | "placed" | "made" | "purchased" | "sold" | "ordered" | "created"
                    )
                );
            if !agent {
                out.pieces.extend(piece);
            }
            i += n;
        } else {
            let w = toks[i].word().unwrap_or_default();
            if !is_filler(w) {
                out.unplaced.push(w.to_string());
            }
            i += 1;
        }
    }
    out
}

/// Words that start an ordering phrase ("most expensive", "cheapest").
fn is_ordering_word(w: &str) -> bool {
    matches!(
        w,
        "most"
            | "least"
            | "cheapest"
            | "priciest"
            | "expensive"
            | "highest"
            | "lowest"
            | "latest"
            | "newest"
            | "oldest"
            | "earliest"
            | "largest"
            | "smallest"
            | "biggest"
            | "recent"
    )
}

fn number_word(w: &str) -> Option<f64> {
    const NUMBERS: [&str; 10] = [
        "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    ];
    NUMBERS.iter().position(|n| *n == w).map(|i| i as f64 + 1.0)
}

/// Whether a table, column or measure starts at `i` (after "of", "the").
fn names_something(toks: &[Tok], mut i: usize, vocab: &Vocab) -> bool {
    while matches!(toks.get(i).and_then(Tok::word), Some("of" | "the")) {
        i += 1;
    }
    matches!(
        schema_phrase(toks, i, vocab),
        Some((
            _,
            Piece::Table { .. } | Piece::Column { .. } | Piece::Measure(_)
        ))
    ) || matches!(toks.get(i).and_then(Tok::word), Some("number" | "count"))
}

/// The longest schema phrase at `i`.
fn schema_phrase(toks: &[Tok], i: usize, vocab: &Vocab) -> Option<(usize, Piece)> {
    for n in (1..=MAX_PHRASE).rev() {
        if i + n > toks.len() {
            continue;
        }
        let stems: Option<Vec<&str>> = toks[i..i + n].iter().map(Tok::stem).collect();
        let Some(stems) = stems else { continue };
        let meanings = vocab.lookup(&stems.join(" "));
        if meanings.is_empty() {
            continue;
        }
        let last = toks[i + n - 1].word().unwrap_or_default();
        let plural = last.ends_with('s') && stems[n - 1] != last;
        // A stored value is the most specific reading ("pending" is a
        // status, whatever a comment says), then a measure, a table, a column.
        let values: Vec<(usize, usize, String)> = meanings
            .iter()
            .filter_map(|m| match m {
                Meaning::Value(t, c, v) => Some((*t, *c, v.clone())),
                _ => None,
            })
            .collect();
        if !values.is_empty() {
            return Some((n, Piece::Value(values)));
        }
        if let Some(m) = meanings.iter().find_map(|m| match m {
            Meaning::Measure(m) => Some(*m),
            _ => None,
        }) {
            return Some((n, Piece::Measure(m)));
        }
        let columns: Vec<(usize, usize)> = meanings
            .iter()
            .filter_map(|m| match m {
                Meaning::Column(t, c) => Some((*t, *c)),
                _ => None,
            })
            .collect();
        if let Some(t) = meanings.iter().find_map(|m| match m {
            Meaning::Table(t) => Some(*t),
            _ => None,
        }) {
            // A word naming a table and a column ("category" when there
            // is a `category` table and a `products.category`) names the
            // table; the column is how it is joined.
            return Some((n, Piece::Table { t, plural }));
        }
        return Some((
            n,
            Piece::Column {
                candidates: columns,
                plural,
            },
        ));
    }
    None
}
