//! One finding of `herald doctor`, and the report they make.

use serde::Serialize;
use std::fmt::Write as _;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The check holds.
    Pass,
    /// Works, but likely not as meant; does not fail the run.
    Warn,
    /// Will break announcing or reaching service addresses; the run exits non-zero.
    Fail,
    /// Could not be checked here (no API server in file mode, no node named).
    Skip,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
        }
    }
}

/// One line of the report: which check, about what, how it stands, and what to do.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Check {
    /// A stable name (`ipv6-enabled`, `service-cidr`, ...), for scripts and the metric.
    pub check: &'static str,
    /// What it is about: an interface, a Service, a pool, a family; empty for the whole.
    pub subject: String,
    pub status: Status,
    /// What holds, or what is wrong.
    pub message: String,
    /// What to change, when something is wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    pub fn pass(
        check: &'static str,
        subject: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::new(check, subject, Status::Pass, message, None)
    }

    pub fn skip(
        check: &'static str,
        subject: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::new(check, subject, Status::Skip, message, None)
    }

    pub fn fail(
        check: &'static str,
        subject: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self::new(check, subject, Status::Fail, message, Some(fix.into()))
    }

    pub fn warn(
        check: &'static str,
        subject: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self::new(check, subject, Status::Warn, message, Some(fix.into()))
    }

    fn new(
        check: &'static str,
        subject: impl Into<String>,
        status: Status,
        message: impl Into<String>,
        fix: Option<String>,
    ) -> Self {
        Self {
            check,
            subject: subject.into(),
            status,
            message: message.into(),
            fix,
        }
    }

    /// The one line people read: `FAIL  ipv6-enabled eth0: IPv6 is disabled ... Fix: ...`.
    pub fn line(&self) -> String {
        let mut line = format!("{:<4}  {}", self.status.label(), self.check);
        if !self.subject.is_empty() {
            let _ = write!(line, " {}", self.subject);
        }
        let _ = write!(line, ": {}", self.message);
        if let Some(fix) = &self.fix {
            let _ = write!(line, ". Fix: {fix}");
        }
        line
    }
}

/// Every check of one run, in the order they ran (node, then cluster).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// The node the node checks were about, when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    pub checks: Vec<Check>,
    pub passed: usize,
    pub warnings: usize,
    pub failed: usize,
    pub skipped: usize,
}

impl Report {
    pub fn new(node: Option<String>, checks: Vec<Check>) -> Self {
        let count = |s: Status| checks.iter().filter(|c| c.status == s).count();
        Self {
            node,
            passed: count(Status::Pass),
            warnings: count(Status::Warn),
            failed: count(Status::Fail),
            skipped: count(Status::Skip),
            checks,
        }
    }

    pub fn text(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            out.push_str(&c.line());
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "herald doctor: {} failed, {} warnings, {} passed, {} skipped",
            self.failed, self.warnings, self.passed, self.skipped
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_check_is_one_line_naming_the_fix() {
        let c = Check::fail("ipv6-enabled", "eth0", "IPv6 is disabled", "enable it");
        assert_eq!(
            c.line(),
            "FAIL  ipv6-enabled eth0: IPv6 is disabled. Fix: enable it"
        );
        assert!(!c.line().contains('\n'));
        let p = Check::pass("forwarding", "", "on");
        assert_eq!(p.line(), "pass  forwarding: on");
        let r = Report::new(None, vec![c, p]);
        assert_eq!((r.failed, r.passed), (1, 1));
        assert!(
            r.text()
                .ends_with("1 failed, 0 warnings, 1 passed, 0 skipped\n")
        );
    }
}
