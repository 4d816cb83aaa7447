//! The whole analysis of one statement.

/// How far the analysis goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Static,
    Explain,
    Analyze,
}

/// The advisor's answer for one statement.
#[derive(Debug, Clone, Default)]
pub struct Advice {
    pub findings: Vec<crate::Finding>,
    pub score: u32,
}

pub fn advise() -> Advice {
    Advice::default()
}
