//! The election's Leases as the API server holds them: reading a `coordination.k8s.io/v1`
//! Lease into an [`Observed`], and building the Lease each [`Write`] sends.
//!
//! A Lease that is not the election's (wrong label, unknown role, no identity) reads as
//! `None` and is ignored: someone else's Lease in the namespace is no concern of ours, and a
//! damaged one of ours must not stop the election.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;

use crate::core::Observed;
use crate::names::{self, ANNOTATION_CANDIDACY, ANNOTATION_KEY, ANNOTATION_MEMBER};

/// Who released a key last, on a key Lease that names no holder.
pub const ANNOTATION_RELEASED_BY: &str = "herald.io/released-by";

/// Reads `lease` as one of `election`'s.
pub fn read(lease: &Lease, election: &str) -> Option<Observed> {
    let meta = &lease.metadata;
    let labels = meta.labels.as_ref()?;
    if labels.get(names::LABEL_ELECTION).map(String::as_str) != Some(election) {
        return None;
    }
    let annotations = meta.annotations.clone().unwrap_or_default();
    let resource_version = meta.resource_version.clone().unwrap_or_default();
    let spec = lease.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.filter(|h| !h.is_empty());
    match labels.get(names::LABEL_ROLE).map(String::as_str)? {
        names::ROLE_MEMBER => {
            let identity = annotations.get(ANNOTATION_MEMBER)?.clone();
            let seconds = spec.lease_duration_seconds.unwrap_or(0).max(1);
            Some(Observed::Member {
                identity,
                holder,
                duration: Duration::from_secs(seconds.unsigned_abs().into()),
                resource_version,
                annotations,
            })
        }
        names::ROLE_CANDIDACY => Some(Observed::Candidacy {
            identity: annotations.get(ANNOTATION_MEMBER)?.clone(),
            keys: parse_candidacy(
                annotations
                    .get(ANNOTATION_CANDIDACY)
                    .map_or("", String::as_str),
            ),
            resource_version,
        }),
        names::ROLE_KEY => {
            let key = annotations.get(ANNOTATION_KEY)?.clone();
            Some(Observed::Key {
                released_by: holder
                    .is_none()
                    .then(|| annotations.get(ANNOTATION_RELEASED_BY).cloned())
                    .flatten(),
                key,
                holder,
                resource_version,
                transitions: spec.lease_transitions.unwrap_or(0),
            })
        }
        _ => None,
    }
}

/// `key key=preference ...`; anything else in the list is skipped.
pub fn parse_candidacy(text: &str) -> BTreeMap<String, u32> {
    text.split_ascii_whitespace()
        .filter_map(|item| {
            let (key, preference) = match item.split_once('=') {
                Some((key, p)) => (key, p.parse().ok()?),
                None => (item, 0),
            };
            names::valid_key(key).then(|| (key.to_owned(), preference))
        })
        .collect()
}

pub fn format_candidacy(keys: &BTreeMap<String, u32>) -> String {
    let items: Vec<String> = keys
        .iter()
        .map(|(key, &p)| {
            if p == 0 {
                key.clone()
            } else {
                format!("{key}={p}")
            }
        })
        .collect();
    items.join(" ")
}

/// Everything a Lease of the election needs besides its spec.
pub struct Meta<'a> {
    pub election: &'a str,
    pub namespace: &'a str,
    pub name: String,
    pub role: &'static str,
    pub resource_version: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

impl Meta<'_> {
    fn object_meta(self) -> ObjectMeta {
        let mut labels = self.labels;
        labels.insert(names::LABEL_ELECTION.into(), self.election.into());
        labels.insert(names::LABEL_ROLE.into(), self.role.into());
        labels.insert("app.kubernetes.io/managed-by".into(), "herald".into());
        ObjectMeta {
            name: Some(self.name),
            namespace: Some(self.namespace.into()),
            resource_version: self.resource_version,
            labels: Some(labels),
            annotations: Some(self.annotations),
            ..ObjectMeta::default()
        }
    }
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

/// A member Lease: renewed (`holder` set) or released (`holder` none).
pub fn member(meta: Meta<'_>, holder: Option<&str>, duration: Duration) -> Lease {
    let seconds = i32::try_from(duration.as_secs().max(1)).unwrap_or(i32::MAX);
    let now = now();
    Lease {
        metadata: meta.object_meta(),
        spec: Some(LeaseSpec {
            holder_identity: holder.map(str::to_owned),
            lease_duration_seconds: Some(seconds),
            renew_time: Some(now.clone()),
            acquire_time: holder.map(|_| now),
            ..LeaseSpec::default()
        }),
    }
}

/// A candidacy Lease: the annotation carries the keys; the spec names the member.
pub fn candidacy(meta: Meta<'_>, identity: &str) -> Lease {
    Lease {
        metadata: meta.object_meta(),
        spec: Some(LeaseSpec {
            holder_identity: Some(identity.to_owned()),
            renew_time: Some(now()),
            ..LeaseSpec::default()
        }),
    }
}

/// A key Lease naming `holder` (or none, released), after `transitions` changes of hands.
/// It has no duration: whether its holder is alive is its member Lease's business.
pub fn key(meta: Meta<'_>, holder: Option<&str>, transitions: i32) -> Lease {
    let now = now();
    Lease {
        metadata: meta.object_meta(),
        spec: Some(LeaseSpec {
            holder_identity: holder.map(str::to_owned),
            acquire_time: holder.map(|_| now.clone()),
            renew_time: Some(now),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(role: &'static str, annotations: &[(&str, &str)]) -> Meta<'static> {
        Meta {
            election: "herald",
            namespace: "metallb-system",
            name: "x".into(),
            role,
            resource_version: Some("7".into()),
            labels: BTreeMap::new(),
            annotations: annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn what_is_written_reads_back() {
        let m = member(
            meta(
                names::ROLE_MEMBER,
                &[
                    (ANNOTATION_MEMBER, "node-a"),
                    ("herald.io/macs", "02:00:00:00:00:01"),
                ],
            ),
            Some("node-a"),
            Duration::from_secs(3),
        );
        let Some(Observed::Member {
            identity,
            holder,
            duration,
            resource_version,
            annotations,
        }) = read(&m, "herald")
        else {
            panic!("a member Lease");
        };
        assert_eq!(
            (identity.as_str(), holder.as_deref()),
            ("node-a", Some("node-a"))
        );
        assert_eq!(duration, Duration::from_secs(3));
        assert_eq!(resource_version, "7");
        assert_eq!(annotations["herald.io/macs"], "02:00:00:00:00:01");

        let released = key(
            meta(
                names::ROLE_KEY,
                &[
                    (ANNOTATION_KEY, "ip-192.0.2.10"),
                    (ANNOTATION_RELEASED_BY, "node-a"),
                ],
            ),
            None,
            4,
        );
        assert_eq!(
            read(&released, "herald"),
            Some(Observed::Key {
                key: "ip-192.0.2.10".into(),
                holder: None,
                released_by: Some("node-a".into()),
                resource_version: "7".into(),
                transitions: 4,
            })
        );
    }

    #[test]
    fn other_leases_are_ignored() {
        let m = member(
            meta(names::ROLE_MEMBER, &[(ANNOTATION_MEMBER, "node-a")]),
            Some("node-a"),
            Duration::from_secs(3),
        );
        assert_eq!(read(&m, "herald-controller"), None);
        let anonymous = member(
            meta(names::ROLE_MEMBER, &[]),
            Some("node-a"),
            Duration::from_secs(3),
        );
        assert_eq!(read(&anonymous, "herald"), None);
        assert_eq!(read(&Lease::default(), "herald"), None);
    }

    #[test]
    fn candidacy_lists_round_trip_and_skip_junk() {
        let keys = BTreeMap::from([
            ("ip-192.0.2.10".to_owned(), 0),
            ("ip-192.0.2.11".to_owned(), 150),
        ]);
        assert_eq!(format_candidacy(&keys), "ip-192.0.2.10 ip-192.0.2.11=150");
        assert_eq!(parse_candidacy(&format_candidacy(&keys)), keys);
        assert_eq!(
            parse_candidacy("  ip-a=x BAD ip-b=4294967296 ip-c=3\n"),
            BTreeMap::from([("ip-c".to_owned(), 3)])
        );
    }
}
