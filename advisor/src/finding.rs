//! What the advisor reports: findings, their severities, and the score.

use std::fmt;

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    /// Points a finding of this severity takes off the quality score.
    pub fn weight(self) -> u32 {
        match self {
            Severity::Info => 2,
            Severity::Warning => 10,
            Severity::Critical => 25,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing the advisor found.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub severity: Severity,
    /// The rule's stable identifier (`select_star`, `seq_scan_large_table`).
    pub rule: &'static str,
    /// One line a person reads first.
    pub title: String,
    /// Why it matters, with the figures that made the rule fire.
    pub detail: String,
    /// The SQL fragment or plan node it is about.
    pub location: Option<String>,
    /// A rewrite or DDL that would help.
    pub suggestion: Option<String>,
    /// Estimated cost (PostgreSQL planner units) now, and with the suggestion.
    pub cost_before: Option<f64>,
    pub cost_after: Option<f64>,
}

impl Finding {
    pub fn new(
        severity: Severity,
        rule: &'static str,
        title: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Finding {
            severity,
            rule,
            title: title.into(),
            detail: detail.into(),
            location: None,
            suggestion: None,
            cost_before: None,
            cost_after: None,
        }
    }

    pub fn at(mut self, location: impl Into<String>) -> Self {
        self.location = Some(location.into());
        self
    }

    pub fn suggest(mut self, suggestion: impl Into<String>) -> Self {
        self.suggestion = Some(suggestion.into());
        self
    }

    pub fn costs(mut self, before: f64, after: f64) -> Self {
        self.cost_before = Some(before);
        self.cost_after = Some(after);
        self
    }

    /// The saving of the suggestion, in percent of the cost before.
    pub fn saving_pct(&self) -> Option<f64> {
        match (self.cost_before, self.cost_after) {
            (Some(b), Some(a)) if b > 0.0 => Some((b - a) / b * 100.0),
            _ => None,
        }
    }
}

/// The quality score, 0 to 100: 100 minus the weight of every finding
/// (critical 25, warning 10, info 2), and 0 for a statement that does not
/// plan (it names something that does not exist, or does not parse).
pub fn score(findings: &[Finding], plans: bool) -> u32 {
    if !plans {
        return 0;
    }
    let lost: u32 = findings.iter().map(|f| f.severity.weight()).sum();
    100u32.saturating_sub(lost)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_score_takes_each_findings_weight_off() {
        let f = |s| Finding::new(s, "r", "t", "d");
        assert_eq!(score(&[], true), 100);
        assert_eq!(score(&[f(Severity::Warning), f(Severity::Info)], true), 88);
        assert_eq!(score(&vec![f(Severity::Critical); 5], true), 0);
        assert_eq!(score(&[], false), 0);
    }

    #[test]
    fn saving_is_a_share_of_the_cost_before() {
        let f = Finding::new(Severity::Warning, "r", "t", "d").costs(200.0, 50.0);
        assert_eq!(f.saving_pct(), Some(75.0));
        assert_eq!(
            Finding::new(Severity::Info, "r", "t", "d").saving_pct(),
            None
        );
    }
}
