//! Diagnostics: every problem found in the configuration, located as precisely as we can.
//!
//! A diagnostic names where the problem is (file, line, document, resource, field), what the
//! bad value is, what is wrong with it, and what to write instead. Validation collects all
//! of them in one pass so a user fixes a file once, not once per error.

use serde::Serialize;
use std::fmt;
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The configuration is rejected.
    Error,
    /// Legal, but it does not do what it seems to (e.g. localPref towards eBGP peers only).
    Warning,
    /// Information, such as a document of a kind herald does not read.
    Note,
}

/// Where a resource came from: a document in a file, or the API server.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Origin {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// 1-based index of the YAML document within the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<usize>,
    /// 1-based line where the document starts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
}

/// The resource a diagnostic is about: `IPAddressPool metallb-system/prod`.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ResourceRef {
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

impl fmt::Display for ResourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = if self.name.is_empty() {
            "<unnamed>"
        } else {
            &self.name
        };
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{}", self.kind, ns, name),
            None => write!(f, "{} {}", self.kind, name),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub origin: Origin,
    pub resource: ResourceRef,
    /// Path of the field in the resource, e.g. `spec.addresses[0]`; empty for the whole object.
    pub field: String,
    /// The offending value as written, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// What is wrong.
    pub problem: String,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Diagnostic {
    pub fn error(
        resource: ResourceRef,
        field: impl Into<String>,
        problem: impl Into<String>,
    ) -> Self {
        Self {
            severity: Severity::Error,
            origin: Origin::default(),
            resource,
            field: field.into(),
            value: None,
            problem: problem.into(),
            fix: None,
        }
    }

    pub fn warning(
        resource: ResourceRef,
        field: impl Into<String>,
        problem: impl Into<String>,
    ) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(resource, field, problem)
        }
    }

    pub fn note(
        resource: ResourceRef,
        field: impl Into<String>,
        problem: impl Into<String>,
    ) -> Self {
        Self {
            severity: Severity::Note,
            ..Self::error(resource, field, problem)
        }
    }

    pub fn value(mut self, value: impl Into<String>) -> Self {
        self.value = Some(value.into());
        self
    }

    pub fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }

    pub fn at(mut self, origin: Origin) -> Self {
        self.origin = origin;
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// One line, for logs: `pools.yaml:7: error: IPAddressPool ns/prod (document 2): spec.addresses[0] = "x": problem; fix: ...`
impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.origin.file {
            write!(f, "{}", file.display())?;
            if let Some(line) = self.origin.line {
                write!(f, ":{line}")?;
            }
            f.write_str(": ")?;
        }
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        };
        f.write_str(severity)?;
        if !self.resource.kind.is_empty() {
            write!(f, ": {}", self.resource)?;
        }
        if let Some(doc) = self.origin.document {
            write!(f, " (document {doc})")?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        if let Some(value) = &self.value {
            write!(f, " = {value:?}")?;
        }
        write!(f, ": {}", self.problem)?;
        if let Some(fix) = &self.fix {
            write!(f, "; fix: {fix}")?;
        }
        Ok(())
    }
}

/// Whether any diagnostic in the list rejects the configuration.
pub fn has_errors(diagnostics: &[Diagnostic]) -> bool {
    diagnostics.iter().any(Diagnostic::is_error)
}

/// Whether a problem with an object of `kind` harms only that object: a Service, an
/// EndpointSlice or a Node herald cannot use is skipped with a warning, and everything else
/// keeps following the cluster. Only problems in the `metallb.io` configuration (and the
/// Secrets it names) reject a configuration, and so keep the last valid one (MetalLB's rule).
pub fn isolated_kind(kind: &str) -> bool {
    matches!(kind, "Service" | "EndpointSlice" | "Node")
}

/// Whether the value at `field` of a `kind` object may be a secret (a BGP password, a
/// Secret's data): a problem with it is reported without the value, which parsers otherwise
/// quote.
pub fn may_hold_secret(kind: &str, field: &str) -> bool {
    let field = field.trim_start_matches('.');
    (kind == "Secret" && (field.starts_with("data") || field.starts_with("stringData")))
        || field == "password"
        || field.ends_with(".password")
}

/// What a parser said about a field that may hold a secret, without the value it quoted.
pub const SECRET_VALUE_PROBLEM: &str =
    "the value has the wrong type (not shown: it may be a password)";
