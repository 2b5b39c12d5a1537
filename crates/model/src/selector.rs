//! Label selectors, checked once and then matched without errors.

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
        let mut requirements = Vec::new();
        for (i, e) in s.match_expressions.iter().flatten().enumerate() {
            let values: BTreeSet<String> = e.values.iter().flatten().cloned().collect();
            let field = format!("matchExpressions[{i}]");
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
