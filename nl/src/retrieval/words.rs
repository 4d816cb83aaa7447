//! Words: how questions, identifiers, comments and stored values become the
//! terms retrieval compares.
//!
//! Identifiers are split where their author meant words to end
//! (`customer_id`, `orderDate`, `address2`), everything is lowercased, and a
//! light stemmer folds plurals and a few inflections together so that
//! "customers" finds `customer` and "cities" finds `city`. Function words
//! ("the", "which", "show") are dropped from questions: they say nothing
//! about which table is meant.

/// Split text or an identifier into lowercase words: at any character that
/// is not a letter or digit, at a lower-to-upper case change (`orderDate`),
/// before the last capital of a run followed by a lower-case letter
/// (`HTTPServer` → `http`, `server`), and between letters and digits.
pub fn split_words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut word = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            flush(&mut word, &mut out);
            continue;
        }
        if let Some(&prev) = i.checked_sub(1).and_then(|p| chars.get(p)) {
            let next = chars.get(i + 1).copied();
            let boundary = (prev.is_lowercase() && c.is_uppercase())
                || (prev.is_uppercase()
                    && c.is_uppercase()
                    && next.is_some_and(char::is_lowercase))
                || (prev.is_alphabetic() && c.is_ascii_digit())
                || (prev.is_ascii_digit() && c.is_alphabetic());
            if boundary && prev.is_alphanumeric() {
                flush(&mut word, &mut out);
            }
        }
        word.extend(c.to_lowercase());
    }
    flush(&mut word, &mut out);
    out
}

fn flush(word: &mut String, out: &mut Vec<String>) {
    if !word.is_empty() {
        out.push(std::mem::take(word));
    }
}

/// Fold a lowercase word to a stem that its plural and regular inflections
/// share: `customers`, `customer` → `customer`; `cities`, `city` → `citi`;
/// `placed`, `place` → `plac`; `shipping`, `shipped` → `ship`. Stems are
/// for comparison only, never shown. Deliberately light (no derivational
/// suffixes): identifiers are short and an aggressive stemmer merges words
/// that name different things.
pub fn stem(word: &str) -> String {
    let n = word.len();
    if !word.is_ascii() || n <= 3 || word.bytes().all(|b| b.is_ascii_digit()) {
        return word.to_string();
    }
    let mut w = word.to_string();
    // Plurals.
    if w.ends_with("ies") && n > 4 {
        w.truncate(n - 2); // cities -> citi
    } else if ["sses", "uses", "xes", "ches", "shes", "zes"]
        .iter()
        .any(|s| w.ends_with(s))
    {
        w.truncate(n - 2); // addresses -> address, boxes -> box
    } else if w.ends_with('s') && !(w.ends_with("ss") || w.ends_with("us") || w.ends_with("is")) {
        w.truncate(n - 1);
    }
    // Regular -ing / -ed forms, keeping a stem with a vowel.
    for suffix in ["ing", "ed"] {
        if let Some(s) = w.strip_suffix(suffix) {
            if s.len() >= 3 && s.bytes().any(is_vowel) {
                w = undouble(s);
            }
            break;
        }
    }
    // Final -e and consonant -y, so that `place`/`placed` and `city`/`cities` meet.
    let b = w.as_bytes();
    let len = b.len();
    if len >= 4 && b[len - 1] == b'e' {
        w.truncate(len - 1);
    } else if len >= 3 && b[len - 1] == b'y' && !is_vowel(b[len - 2]) {
        w.truncate(len - 1);
        w.push('i');
    }
    w
}

fn is_vowel(b: u8) -> bool {
    b"aeiou".contains(&b)
}

/// `shipp` → `ship`; `fall`, `press`, `buzz` keep their doubled letter.
fn undouble(s: &str) -> String {
    let b = s.as_bytes();
    let n = b.len();
    if n >= 2 && b[n - 1] == b[n - 2] && !b"lsz".contains(&b[n - 1]) {
        s[..n - 1].to_string()
    } else {
        s.to_string()
    }
}

/// Words that carry no hint of a table or column: articles, pronouns,
/// prepositions and the verbs people use to ask for results.
pub fn is_stop_word(w: &str) -> bool {
    #[rustfmt::skip]
    const STOP: &[&str] = &[
        "a", "about", "after", "all", "also", "am", "among", "an", "and", "any", "are", "as", "at",
        "be", "been", "before", "being", "both", "but", "by", "can", "could", "did", "do", "does",
        "during", "e", "each", "either", "etc", "every", "find", "for", "from", "g", "get", "give",
        "had", "has", "have", "having", "he", "her", "here", "him", "his", "how", "i", "if", "in",
        "include", "including", "inclusive", "into", "is", "it", "its", "just", "let", "list", "me",
        "my", "of", "on", "one", "only", "or", "other", "our", "out", "please", "return",
        "returned", "s", "sa", "she", "should", "show", "so", "than", "that", "the", "their",
        "them", "then", "there", "these", "they", "this", "those", "to", "us", "was", "we", "were",
        "what", "when", "where", "whether", "which", "while", "who", "whom", "whose", "why", "will",
        "with", "would", "you", "your",
    ];
    STOP.binary_search(&w).is_ok()
}

/// The terms of free text (a question, a comment): its words, stemmed,
/// without stop words.
pub fn terms(text: &str) -> Vec<String> {
    split_words(text)
        .into_iter()
        .filter(|w| !is_stop_word(w))
        .map(|w| stem(&w))
        .collect()
}

/// The terms of an identifier: every word counts, stop words included
/// (`is_active`, `to_airport` name things through them too).
pub fn identifier_terms(name: &str) -> Vec<String> {
    split_words(name).iter().map(|w| stem(w)).collect()
}

/// A stored value or a run of question words in comparable form: stemmed
/// words joined by single spaces. Empty when it has no words.
pub fn value_key(words: &[String]) -> String {
    words.iter().map(|w| stem(w)).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_identifiers_where_words_end() {
        assert_eq!(split_words("customer_id"), ["customer", "id"]);
        assert_eq!(split_words("orderDate"), ["order", "date"]);
        assert_eq!(split_words("HTTPServerLog"), ["http", "server", "log"]);
        assert_eq!(split_words("address2"), ["address", "2"]);
        assert_eq!(split_words("sbCustCountry"), ["sb", "cust", "country"]);
        assert_eq!(
            split_words("customers' orders, 2023!"),
            ["customers", "orders", "2023"]
        );
    }

    #[test]
    fn stems_meet_across_plurals_and_inflections() {
        for (a, b) in [
            ("customers", "customer"),
            ("cities", "city"),
            ("movies", "movie"),
            ("boxes", "box"),
            ("addresses", "address"),
            ("statuses", "status"),
            ("ordered", "order"),
            ("placed", "place"),
            ("shipping", "shipped"),
            ("cited", "cite"),
            ("rating", "rate"),
            ("keys", "key"),
        ] {
            assert_eq!(stem(a), stem(b), "{a} / {b}");
        }
        for w in ["id", "bus", "2023", "analysis", "status", "string"] {
            assert_eq!(stem(w), w);
        }
        assert_ne!(stem("order"), stem("orderly"));
    }

    #[test]
    fn questions_lose_their_function_words() {
        assert_eq!(
            terms("Which customers placed the most orders?"),
            ["customer", "plac", "most", "order"]
        );
        // Stop words stay in identifiers; stemming is the same as for questions.
        assert_eq!(identifier_terms("is_active"), ["is", "activ"]);
        assert_eq!(terms("active users"), identifier_terms("ActiveUser"));
    }

    #[test]
    fn stop_words_are_sorted_for_binary_search() {
        assert!(is_stop_word("the") && is_stop_word("your") && is_stop_word("a"));
        assert!(!is_stop_word("customer"));
    }
}
