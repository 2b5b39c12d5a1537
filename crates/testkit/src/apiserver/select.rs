//! Label and field selectors, in the syntax of `?labelSelector=` and `?fieldSelector=`.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Op {
    Eq(String),
    NotEq(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    NotExists,
}

#[derive(Debug, Clone, PartialEq)]
struct Requirement {
    key: String,
    op: Op,
}

impl Requirement {
    fn matches(&self, value: Option<&str>) -> bool {
        match (&self.op, value) {
            (Op::Eq(v), Some(x)) => v == x,
            (Op::NotEq(v), x) => x != Some(v.as_str()),
            (Op::In(vs), Some(x)) => vs.iter().any(|v| v == x),
            (Op::NotIn(vs), x) => x.is_none_or(|x| !vs.iter().any(|v| v == x)),
            (Op::Exists, x) => x.is_some(),
            (Op::NotExists, x) => x.is_none(),
            (_, None) => false,
        }
    }
}

/// A parsed selector: every requirement must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selector(Vec<Requirement>);

/// Splits on commas outside parentheses: `a in (x,y),b` is two requirements.
fn split_top(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn set_values(rest: &str) -> Result<Vec<String>, String> {
    let inner = rest
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| format!("expected a parenthesised set of values, found {rest:?}"))?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

fn parse_requirement(part: &str, allow_sets: bool) -> Result<Requirement, String> {
    let part = part.trim();
    if let Some(key) = part.strip_prefix('!') {
        return Ok(Requirement {
            key: key.trim().to_string(),
            op: Op::NotExists,
        });
    }
    for (token, neg) in [("!=", true), ("==", false), ("=", false)] {
        if let Some((k, v)) = part.split_once(token) {
            let v = v.trim().to_string();
            let op = if neg { Op::NotEq(v) } else { Op::Eq(v) };
            return Ok(Requirement {
                key: k.trim().to_string(),
                op,
            });
        }
    }
    let mut words = part.splitn(2, char::is_whitespace);
    let key = words.next().unwrap_or_default().to_string();
    let rest = words.next().unwrap_or_default().trim_start();
    if rest.is_empty() {
        if key.is_empty() {
            return Err("empty requirement".into());
        }
        return Ok(Requirement {
            key,
            op: Op::Exists,
        });
    }
    if !allow_sets {
        return Err(format!("invalid selector: {part:?}"));
    }
    if let Some(r) = rest.strip_prefix("notin") {
        Ok(Requirement {
            key,
            op: Op::NotIn(set_values(r)?),
        })
    } else if let Some(r) = rest.strip_prefix("in") {
        Ok(Requirement {
            key,
            op: Op::In(set_values(r)?),
        })
    } else {
        Err(format!("unknown operator in {part:?}"))
    }
}

impl Selector {
    pub fn parse_labels(s: &str) -> Result<Self, String> {
        Self::parse(s, true)
    }

    pub fn parse_fields(s: &str) -> Result<Self, String> {
        Self::parse(s, false)
    }

    fn parse(s: &str, allow_sets: bool) -> Result<Self, String> {
        if s.trim().is_empty() {
            return Ok(Self::default());
        }
        split_top(s)
            .into_iter()
            .map(|p| parse_requirement(p, allow_sets))
            .collect::<Result<_, _>>()
            .map(Selector)
    }

    /// Label selectors look keys up in `metadata.labels`.
    pub fn matches_labels(&self, obj: &Value) -> bool {
        let labels = &obj["metadata"]["labels"];
        self.0.iter().all(|r| r.matches(labels[&r.key].as_str()))
    }

    /// Field selectors name a dotted path into the object (`metadata.name`, `spec.nodeName`).
    /// The real server allows only some paths per kind; this one allows any.
    pub fn matches_fields(&self, obj: &Value) -> bool {
        self.0.iter().all(|r| {
            let field = r.key.split('.').try_fold(obj, |v, k| v.get(k));
            let text = field.map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            });
            // An absent field compares as the empty string, as the real server's field sets do.
            r.matches(Some(text.as_deref().unwrap_or("")))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "a", "namespace": "ns", "labels": labels}})
    }

    #[test]
    fn label_operators() {
        let o = obj(json!({"app": "web", "tier": "front"}));
        let yes = [
            "app=web",
            "app==web",
            "app!=db",
            "missing!=x",
            "app in (web, db)",
            "app notin (db)",
            "missing notin (db)",
            "app",
            "!missing",
            "app=web,tier in (front,back),!missing",
        ];
        for s in yes {
            assert!(Selector::parse_labels(s).unwrap().matches_labels(&o), "{s}");
        }
        let no = [
            "app=db",
            "app!=web",
            "app in (db)",
            "missing in (x)",
            "app notin (web,db)",
            "missing",
            "!app",
            "app=web,tier=back",
        ];
        for s in no {
            assert!(
                !Selector::parse_labels(s).unwrap().matches_labels(&o),
                "{s}"
            );
        }
    }

    #[test]
    fn field_selectors() {
        let o = obj(json!({}));
        let sel = |s| Selector::parse_fields(s).unwrap().matches_fields(&o);
        assert!(sel("metadata.name=a"));
        assert!(sel("metadata.name=a,metadata.namespace=ns"));
        assert!(!sel("metadata.name!=a"));
        assert!(!sel("metadata.namespace=other"));
        assert!(Selector::parse_fields("metadata.name in (a)").is_err());
    }
}
