//! Corpus items: startup parameters, steps and expectations, plus extra message builders.

use crate::common::raw;

/// Startup parameters of every connection unless an item overrides some.
const BASE_PARAMS: &[(&str, &str)] = &[
    ("user", "postgres"),
    ("database", "postgres"),
    ("application_name", "helios-difftest"),
    ("client_encoding", "UTF8"),
    ("DateStyle", "ISO, MDY"),
    ("TimeZone", "UTC"),
    ("IntervalStyle", "postgres"),
    ("extra_float_digits", "1"),
];

/// What the test does next on a connection.
pub(crate) enum Step {
    Send(Vec<u8>),
    /// Read until this many ReadyForQuery messages have arrived.
    Ready(usize),
    /// Read until a message with one of these tags (inclusive).
    Until(&'static [u8]),
    /// Read until the server closes the connection.
    Closed,
    /// Run SQL in another session, directly (psql).
    Elsewhere(String),
    /// Close the socket at once, without Terminate, ending the item.
    Abort,
}

pub(crate) struct Item {
    pub(crate) name: String,
    pub(crate) params: Vec<(String, String)>,
    pub(crate) steps: Vec<Step>,
    /// What the direct stream must contain, so that an item cannot silently
    /// stop testing what its name says (checked on the direct run; the
    /// Helios run must then be identical).
    pub(crate) expect: Vec<Expect>,
    /// Helios answers this itself (the upstream never sees it): its errors
    /// are compared on severity, SQLSTATE and message only, as the source
    /// file, line and routine fields name PostgreSQL's code.
    pub(crate) answered_by_helios: bool,
}

pub(crate) enum Expect {
    /// The SQLSTATEs of the ErrorResponses, in order.
    Errors(&'static [&'static str]),
    /// How many messages of this tag.
    Count(u8, usize),
    /// The server refuses the startup with this SQLSTATE.
    StartupError(&'static str),
}

pub(crate) fn item(name: &str) -> Item {
    Item {
        name: name.to_string(),
        params: BASE_PARAMS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        steps: Vec::new(),
        expect: Vec::new(),
        answered_by_helios: false,
    }
}

impl Item {
    /// Override (or add) a startup parameter.
    pub(crate) fn param(mut self, k: &str, v: &str) -> Self {
        match self.params.iter_mut().find(|(name, _)| name == k) {
            Some((_, old)) => *old = v.to_string(),
            None => self.params.push((k.to_string(), v.to_string())),
        }
        self
    }

    pub(crate) fn errors(mut self, codes: &'static [&'static str]) -> Self {
        self.expect.push(Expect::Errors(codes));
        self
    }

    pub(crate) fn answered_by_helios(mut self) -> Self {
        self.answered_by_helios = true;
        self
    }

    pub(crate) fn startup_error(mut self, code: &'static str) -> Self {
        self.expect.push(Expect::StartupError(code));
        self
    }

    pub(crate) fn count(mut self, tag: u8, n: usize) -> Self {
        self.expect.push(Expect::Count(tag, n));
        self
    }

    /// A simple Query, read up to its ReadyForQuery.
    pub(crate) fn q(mut self, sql: &str) -> Self {
        self.steps.push(Step::Send(raw::query(sql)));
        self.steps.push(Step::Ready(1));
        self
    }

    /// Send these messages as one write.
    pub(crate) fn send(mut self, msgs: &[Vec<u8>]) -> Self {
        self.steps.push(Step::Send(msgs.concat()));
        self
    }

    pub(crate) fn ready(mut self, n: usize) -> Self {
        self.steps.push(Step::Ready(n));
        self
    }

    pub(crate) fn until(mut self, tags: &'static [u8]) -> Self {
        self.steps.push(Step::Until(tags));
        self
    }

    pub(crate) fn closed(mut self) -> Self {
        self.steps.push(Step::Closed);
        self
    }

    pub(crate) fn elsewhere(mut self, sql: &str) -> Self {
        self.steps.push(Step::Elsewhere(sql.to_string()));
        self
    }

    pub(crate) fn abort(mut self) -> Self {
        self.steps.push(Step::Abort);
        self
    }

    /// Extended-protocol messages followed by Sync, read up to ReadyForQuery.
    pub(crate) fn ext(self, msgs: &[Vec<u8>]) -> Self {
        let mut all = msgs.to_vec();
        all.push(raw::sync());
        self.send(&all).ready(1)
    }
}

// ---------------------------------------------------------------------------
// Message builders beyond common::raw.

pub(crate) fn pbe(sql: &str) -> Vec<Vec<u8>> {
    vec![
        raw::parse("", sql, &[]),
        raw::bind("", "", &[], &[], &[]),
        raw::execute("", 0),
    ]
}
