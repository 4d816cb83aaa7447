//! A question as tokens: words (with their stems), numbers, quoted values
//! and ISO dates. Punctuation other than quotes only separates.

use crate::retrieval::words::stem;

/// One token of a question.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// A lowercase word and its stem (see `retrieval::words::stem`).
    Word { text: String, stem: String },
    /// A number as written (`100`, `19.99`, `1,000`, `$20`), and its value.
    Number { value: f64, text: String },
    /// Text in quotes, as written: a value to compare with.
    Quoted(String),
    /// `2024-03-15`.
    Date { year: i32, month: u32, day: u32 },
}

impl Tok {
    /// The word, when this is one.
    pub fn word(&self) -> Option<&str> {
        match self {
            Tok::Word { text, .. } => Some(text),
            _ => None,
        }
    }

    pub fn stem(&self) -> Option<&str> {
        match self {
            Tok::Word { stem, .. } => Some(stem),
            _ => None,
        }
    }

    /// How the token reads in an error message.
    pub fn display(&self) -> String {
        match self {
            Tok::Word { text, .. } => text.clone(),
            Tok::Number { text, .. } => text.clone(),
            Tok::Quoted(v) => format!("'{v}'"),
            Tok::Date { year, month, day } => format!("{year:04}-{month:02}-{day:02}"),
        }
    }
}

/// Split a question into tokens. Contractions become words (`isn't` →
/// `is not`, `customer's` → `customer`).
pub fn tokenize(question: &str) -> Vec<Tok> {
    let chars: Vec<char> = question.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if (c == '\'' || c == '"' || c == '‘' || c == '“')
            && (i == 0 || !chars[i - 1].is_alphanumeric())
        {
            let close = match c {
                '‘' => '’',
                '“' => '”',
                other => other,
            };
            if let Some(len) = chars[i + 1..].iter().position(|&d| d == close) {
                let text: String = chars[i + 1..i + 1 + len].iter().collect();
                if !text.trim().is_empty() {
                    out.push(Tok::Quoted(text));
                }
                i += len + 2;
                continue;
            }
        }
        if c.is_ascii_digit() || (matches!(c, '$' | '€' | '£') && next_is_digit(&chars, i)) {
            let start = if c.is_ascii_digit() { i } else { i + 1 };
            let mut j = start;
            while j < chars.len()
                && (chars[j].is_ascii_digit()
                    || ((chars[j] == '.' || chars[j] == ',') && next_is_digit(&chars, j))
                    || (chars[j] == '-' && next_is_digit(&chars, j)))
            {
                j += 1;
            }
            let text: String = chars[start..j].iter().collect();
            if let Some(date) = iso_date(&text) {
                out.push(date);
            } else if let Some(number) = number(&text) {
                out.push(number);
            } else {
                out.push(word(&text));
            }
            // `2024s`, `10th`, `5k`: the letters stay a word of their own.
            i = j;
            continue;
        }
        if c.is_alphanumeric() {
            let mut j = i;
            while j < chars.len() && chars[j].is_alphanumeric() {
                j += 1;
            }
            let text: String = chars[i..j].iter().collect::<String>().to_lowercase();
            i = j;
            // `isn't`, `don't`, `customer's`: the apostrophe and what follows.
            if i + 1 < chars.len() && matches!(chars[i], '\'' | '’') && chars[i + 1].is_alphabetic()
            {
                let mut k = i + 1;
                while k < chars.len() && chars[k].is_alphabetic() {
                    k += 1;
                }
                let tail: String = chars[i + 1..k].iter().collect::<String>().to_lowercase();
                i = k;
                if tail == "t" && text.ends_with('n') {
                    let base = match text.as_str() {
                        "can" | "won" => text.clone(),
                        _ => text[..text.len() - 1].to_string(),
                    };
                    out.push(word(&base));
                    out.push(word("not"));
                    continue;
                }
            }
            out.push(word(&text));
            continue;
        }
        i += 1;
    }
    out
}

fn next_is_digit(chars: &[char], i: usize) -> bool {
    chars.get(i + 1).is_some_and(char::is_ascii_digit)
}

fn word(text: &str) -> Tok {
    // "ids": too short for the stemmer's plurals, and common in questions.
    let stem = if text == "ids" {
        "id".to_string()
    } else {
        stem(text)
    };
    Tok::Word {
        text: text.to_string(),
        stem,
    }
}

fn number(text: &str) -> Option<Tok> {
    // `1,000` is a thousand; `1,5` is not written by English speakers.
    let plain: String = text.chars().filter(|&c| c != ',').collect();
    if plain.contains('-') {
        return None;
    }
    let value: f64 = plain.parse().ok()?;
    Some(Tok::Number { value, text: plain })
}

fn iso_date(text: &str) -> Option<Tok> {
    let parts: Vec<&str> = text.split('-').collect();
    if parts.len() != 3 || parts[0].len() != 4 {
        return None;
    }
    let year: i32 = parts[0].parse().ok()?;
    let month: u32 = parts[1].parse().ok()?;
    let day: u32 = parts[2].parse().ok()?;
    valid_date(year, month, day).then_some(Tok::Date { year, month, day })
}

/// Whether the day exists (Gregorian calendar).
pub fn valid_date(year: i32, month: u32, day: u32) -> bool {
    (1..=12).contains(&month) && day >= 1 && day <= days_in_month(year, month)
}

pub fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(q: &str) -> Vec<String> {
        tokenize(q).iter().map(Tok::display).collect()
    }

    #[test]
    fn splits_words_numbers_quotes_and_dates() {
        assert_eq!(
            shown("Orders over $1,000 since 2024-03-15 in 'New York'?"),
            [
                "orders",
                "over",
                "1000",
                "since",
                "2024-03-15",
                "in",
                "'New York'"
            ]
        );
        assert_eq!(
            shown("isn't the customer's city"),
            ["is", "not", "the", "customer", "city"]
        );
        assert_eq!(shown("top 5, 19.99"), ["top", "5", "19.99"]);
        assert_eq!(shown("2024-02-30"), ["2024-02-30"]);
        assert!(matches!(tokenize("2024-02-30")[0], Tok::Word { .. }));
    }
}
