//! Label selectors, checked once and then matched without errors.
//!
//! Checked as Kubernetes' `LabelSelectorAsSelector` checks them (and so as MetalLB does): a
//! key is a qualified name (`[prefix/]name`), a value a label value, `In` / `NotIn` take
//! values and `Exists` / `DoesNotExist` none.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "operator", rename_all = "PascalCase")]
pub enum Requirement {
    In {
        key: String,
        values: BTreeSet<String>,
    },
    NotIn {
        key: String,
        values: BTreeSet<String>,
    },
    Exists {
        key: String,
    },
    DoesNotExist {
        key: String,
    },
}

/// A checked `LabelSelector`: every label and every requirement must hold.
/// The empty selector matches everything, as in Kubernetes.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Selector {
    pub match_labels: BTreeMap<String, String>,
    pub requirements: Vec<Requirement>,
}

/// A selector problem: the field (relative to the selector) and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelectorError {
    pub field: String,
    pub value: String,
    pub problem: String,
    pub fix: String,
}

impl Selector {
    pub fn parse(s: &LabelSelector) -> Result<Self, Vec<SelectorError>> {
        let mut errors = Vec::new();
        for (k, v) in s.match_labels.iter().flatten() {
            let field = format!("matchLabels[{k:?}]");
            if let Some(problem) = key_problem(k) {
                errors.push(SelectorError {
                    field: field.clone(),
                    value: k.clone(),
                    problem: format!("the label key {problem}"),
                    fix: KEY_FIX.into(),
                });
            }
            if let Some(problem) = value_problem(v) {
                errors.push(SelectorError {
                    field,
                    value: v.clone(),
                    problem: format!("the label value {problem}"),
                    fix: VALUE_FIX.into(),
                });
            }
        }
        let mut requirements = Vec::new();
        for (i, e) in s.match_expressions.iter().flatten().enumerate() {
            let values: BTreeSet<String> = e.values.iter().flatten().cloned().collect();
            let field = format!("matchExpressions[{i}]");
            if let Some(problem) = key_problem(&e.key) {
                errors.push(SelectorError {
                    field: format!("{field}.key"),
                    value: e.key.clone(),
                    problem: format!("the key {problem}"),
                    fix: KEY_FIX.into(),
                });
                continue;
            }
            for (j, v) in e.values.iter().flatten().enumerate() {
                if let Some(problem) = value_problem(v) {
                    errors.push(SelectorError {
                        field: format!("{field}.values[{j}]"),
                        value: v.clone(),
                        problem: format!("the value {problem}"),
                        fix: VALUE_FIX.into(),
                    });
                }
            }
            let req = match e.operator.as_str() {
                "In" | "NotIn" if values.is_empty() => {
                    errors.push(SelectorError {
                        field: format!("{field}.values"),
                        value: String::new(),
                        problem: format!("operator {} needs at least one value", e.operator),
                        fix: "list the values, or use Exists / DoesNotExist".into(),
                    });
                    continue;
                }
                "In" => Requirement::In {
                    key: e.key.clone(),
                    values,
                },
                "NotIn" => Requirement::NotIn {
                    key: e.key.clone(),
                    values,
                },
                "Exists" | "DoesNotExist" if !values.is_empty() => {
                    errors.push(SelectorError {
                        field: format!("{field}.values"),
                        value: values.into_iter().collect::<Vec<_>>().join(","),
                        problem: format!("operator {} takes no values", e.operator),
                        fix: "remove values, or use In / NotIn".into(),
                    });
                    continue;
                }
                "Exists" => Requirement::Exists { key: e.key.clone() },
                "DoesNotExist" => Requirement::DoesNotExist { key: e.key.clone() },
                other => {
                    errors.push(SelectorError {
                        field: format!("{field}.operator"),
                        value: other.to_owned(),
                        problem: "unknown operator".into(),
                        fix: "use In, NotIn, Exists or DoesNotExist".into(),
                    });
                    continue;
                }
            };
            requirements.push(req);
        }
        requirements.sort();
        if errors.is_empty() {
            Ok(Selector {
                match_labels: s.match_labels.clone().unwrap_or_default(),
                requirements,
            })
        } else {
            Err(errors)
        }
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.requirements.iter().all(|r| match r {
                Requirement::In { key, values } => {
                    labels.get(key).is_some_and(|v| values.contains(v))
                }
                Requirement::NotIn { key, values } => {
                    labels.get(key).is_none_or(|v| !values.contains(v))
                }
                Requirement::Exists { key } => labels.contains_key(key),
                Requirement::DoesNotExist { key } => !labels.contains_key(key),
            })
    }
}

const KEY_FIX: &str = "write a label key: a name of up to 63 letters, digits, '-', '_' or '.', \
     starting and ending with a letter or digit, optionally after a DNS prefix and '/' \
     (example.com/zone)";
const VALUE_FIX: &str = "write a label value: up to 63 letters, digits, '-', '_' or '.', starting and \
     ending with a letter or digit (or empty)";

/// What is wrong with a label key, as Kubernetes' `IsQualifiedName` sees it.
pub fn key_problem(key: &str) -> Option<String> {
    if key.is_empty() {
        return Some("is empty".into());
    }
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            return Some(format!("{key:?} has an empty prefix before '/'"));
        }
        if let Some(problem) = dns_subdomain_problem(prefix) {
            return Some(format!(
                "{key:?} has the prefix {prefix:?}, which {problem}"
            ));
        }
    }
    if name.is_empty() {
        return Some(format!("{key:?} has no name after the prefix"));
    }
    name_problem(name).map(|problem| format!("{key:?} {problem}"))
}

/// What is wrong with a label value, as Kubernetes' `IsValidLabelValue` sees it.
pub fn value_problem(value: &str) -> Option<String> {
    if value.is_empty() {
        return None;
    }
    name_problem(value).map(|problem| format!("{value:?} {problem}"))
}

/// The rule shared by label names and values: at most 63 characters of `[-A-Za-z0-9_.]`,
/// the first and last alphanumeric.
fn name_problem(s: &str) -> Option<String> {
    if s.len() > 63 {
        return Some(format!(
            "is {} characters long; at most 63 are allowed",
            s.len()
        ));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Some(format!(
            "contains {c:?}; only letters, digits, '-', '_' and '.' are allowed"
        ));
    }
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !alnum(s.chars().next()) || !alnum(s.chars().last()) {
        return Some("must start and end with a letter or digit".into());
    }
    None
}

/// A DNS-1123 subdomain: at most 253 characters of lower-case `[a-z0-9.-]`, each dot-separated
/// part starting and ending alphanumeric.
fn dns_subdomain_problem(s: &str) -> Option<String> {
    if s.len() > 253 {
        return Some("is longer than 253 characters".into());
    }
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    for part in s.split('.') {
        let bad = part.is_empty()
            || !alnum(part.chars().next())
            || !alnum(part.chars().last())
            || part
                .chars()
                .any(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
        if bad {
            return Some("is not a DNS subdomain (lower-case letters, digits, '-' and '.')".into());
        }
    }
    None
}

/// MetalLB's rule for a list of selectors: empty matches everything, otherwise any one must.
pub fn any_matches(selectors: &[Selector], labels: &BTreeMap<String, String>) -> bool {
    selectors.is_empty() || selectors.iter().any(|s| s.matches(labels))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn expressions_and_labels_all_hold() {
        let s = Selector::parse(&LabelSelector {
            match_labels: Some(labels(&[("zone", "a")])),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "role".into(),
                operator: "NotIn".into(),
                values: Some(vec!["edge".into()]),
            }]),
        })
        .unwrap();
        assert!(s.matches(&labels(&[("zone", "a")])));
        assert!(!s.matches(&labels(&[("zone", "a"), ("role", "edge")])));
        assert!(!s.matches(&labels(&[("zone", "b")])));
    }

    #[test]
    fn empty_list_matches_all() {
        assert!(any_matches(&[], &labels(&[])));
    }

    fn expression(key: &str, operator: &str, values: &[&str]) -> LabelSelector {
        LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: key.into(),
                operator: operator.into(),
                values: Some(values.iter().map(|v| v.to_string()).collect()),
            }]),
        }
    }

    #[test]
    fn a_requirement_needs_a_key() {
        let err = Selector::parse(&expression("", "Exists", &[])).unwrap_err();
        assert_eq!(err[0].field, "matchExpressions[0].key");
        assert!(err[0].problem.contains("empty"), "{:?}", err[0]);
    }

    #[test]
    fn keys_and_values_are_label_syntax() {
        for key in ["zone", "example.com/zone", "a_b.c-d", "k8s.io/x"] {
            assert!(
                Selector::parse(&expression(key, "Exists", &[])).is_ok(),
                "{key}"
            );
        }
        for key in [
            "-zone",
            "zone-",
            "Example.com/zone",
            "/zone",
            "example.com/",
            "a/b/c",
            "zo ne",
        ] {
            assert!(
                Selector::parse(&expression(key, "Exists", &[])).is_err(),
                "{key}"
            );
        }
        assert!(Selector::parse(&expression("zone", "In", &["a", ""])).is_ok());
        let err = Selector::parse(&expression("zone", "In", &["a b"])).unwrap_err();
        assert_eq!(err[0].field, "matchExpressions[0].values[0]");
        let long = "x".repeat(64);
        let err = Selector::parse(&LabelSelector {
            match_labels: Some(labels(&[("zone", &long)])),
            match_expressions: None,
        })
        .unwrap_err();
        assert!(err[0].problem.contains("64 characters"), "{:?}", err[0]);
    }

    #[test]
    fn bad_operator_is_named() {
        let err = Selector::parse(&LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "k".into(),
                operator: "Equals".into(),
                values: None,
            }]),
        })
        .unwrap_err();
        assert_eq!(err[0].field, "matchExpressions[0].operator");
    }
}
