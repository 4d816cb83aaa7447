//! Column roles: the columns a table is hardly usable without, whatever the
//! question says.
//!
//! When the budget is tight a table is shown with some of its columns only.
//! Those it keeps, besides the ones the question matched, are its
//! *skeleton*: keys and join columns (a query can't join without them),
//! key-like columns (`sbtxcustid`, `airport_code`: joins the catalog does
//! not declare), and label columns (`name`, `title`, `city_name`: what an
//! answer shows for a row). A question that speaks of time ("last month",
//! "in 2023", "earliest") adds the table's temporal columns.

use helios_planner::Column;

use super::words::{split_words, stem};

/// Whether a column's name marks it as an identifier or code another table
/// may hold too: `id`, `customer_id`, `sbcustid`, `airport_code`, `iso_key`.
pub fn is_key_like(name: &str) -> bool {
    #[rustfmt::skip]
    const ENGLISH: &[&str] = &[
        "android", "fluid", "humid", "invalid", "liquid", "paid", "prepaid", "rapid", "unpaid",
        "valid",
    ];
    let lower = name.to_lowercase();
    let last = split_words(&lower).pop().unwrap_or_default();
    (lower.ends_with("id") && ENGLISH.binary_search(&last.as_str()).is_err())
        || lower.ends_with("_code")
        || lower.ends_with("_key")
}

/// Whether a column names or titles its row.
pub fn is_label(name: &str) -> bool {
    let words = split_words(name);
    matches!(
        words.last().map(String::as_str),
        Some("name" | "title" | "label")
    ) || name.to_lowercase().ends_with("name")
}

/// Whether a column holds dates or times, by type or by name.
pub fn is_temporal(column: &Column) -> bool {
    let ty = column.data_type.to_lowercase();
    if ty.contains("date") || ty.contains("time") || ty == "interval" {
        return true;
    }
    let words = split_words(&column.name);
    let lower = column.name.to_lowercase();
    words.iter().any(|w| {
        matches!(
            w.as_str(),
            "date" | "dt" | "time" | "year" | "month" | "day"
        )
    }) || lower.ends_with("_at")
        || lower.ends_with("date")
        || lower.ends_with("time")
}

/// Whether a question word speaks of time: units, relative words, month
/// names, years.
pub fn is_time_word(word: &str) -> bool {
    #[rustfmt::skip]
    const TIME: &[&str] = &[
        "ago", "annual", "annually", "apr", "april", "aug", "august", "date", "dated", "dates",
        "day", "daily", "days", "dec", "december", "duration", "earliest", "feb", "february",
        "hour", "hours", "jan", "january", "jul", "july", "jun", "june", "last", "latest", "mar",
        "march", "may", "minute", "minutes", "month", "monthly", "months", "newest", "nov",
        "november", "oct", "october", "oldest", "past", "quarter", "quarterly", "recent",
        "recently", "second", "seconds", "sep", "sept", "september", "since", "time", "times",
        "today", "week", "weekly", "weeks", "when", "year", "yearly", "years", "yesterday",
    ];
    TIME.binary_search(&word).is_ok()
        || (word.len() == 4
            && (word.starts_with("19") || word.starts_with("20"))
            && word.bytes().all(|b| b.is_ascii_digit()))
        || stem(word) == "dat"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_words_are_sorted_for_binary_search() {
        assert!(is_time_word("ago") && is_time_word("yesterday") && is_time_word("2023"));
        assert!(!is_time_word("customer") && !is_time_word("12345"));
    }

    #[test]
    fn classifies_columns_by_name() {
        assert!(is_key_like("sbTxCustId") && is_key_like("airport_code"));
        assert!(!is_key_like("paid") && !is_key_like("is_valid"));
        assert!(is_label("full_name") && is_label("title") && is_label("sbcustname"));
        assert!(!is_label("email"));
    }
}
