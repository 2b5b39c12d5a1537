//! Lease names, and the labels and annotations that mark an election's Leases.
//!
//! Every Lease of an election carries the label `herald.io/election=<election>`, so one watch
//! with that selector sees all of them, and `herald.io/lease-role` saying what it is:
//! - `member`: one per member, renewed periodically: its liveness. Named
//!   `<election>-member-<identity>`.
//! - `candidacy`: one per member, written only when the set of keys it stands for changes.
//!   Named `<election>-candidacy-<identity>`.
//! - `key`: one per key, written only when the key changes hands. Named `<election>-<key>`.
//!
//! Names are what the API server accepts for a Lease (a DNS subdomain: lowercase
//! alphanumerics, `-` and `.`, starting and ending with an alphanumeric, at most 253
//! characters). Member identities are Kubernetes node or pod names and fit as they are unless
//! very long; a name that would not be valid is shortened and given a hash suffix. Who a Lease
//! belongs to is read from its annotations, never parsed back out of its name.

use crate::hash;

pub const LABEL_ELECTION: &str = "herald.io/election";
pub const LABEL_ROLE: &str = "herald.io/lease-role";
pub const ANNOTATION_MEMBER: &str = "herald.io/member";
pub const ANNOTATION_KEY: &str = "herald.io/key";
/// The keys a member stands for: space-separated `key` or `key=preference`.
pub const ANNOTATION_CANDIDACY: &str = "herald.io/candidacy";

pub const ROLE_MEMBER: &str = "member";
pub const ROLE_CANDIDACY: &str = "candidacy";
pub const ROLE_KEY: &str = "key";

const MAX_NAME: usize = 253;
/// Longest key accepted: leaves room for the election's name in the Lease name.
pub const MAX_KEY: usize = 200;

/// Whether `key` can name a key: a DNS-subdomain-like string that cannot be confused with a
/// member's or candidacy's Lease name.
pub fn valid_key(key: &str) -> bool {
    let bytes = key.as_bytes();
    !key.is_empty()
        && key.len() <= MAX_KEY
        && bytes
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && !key.starts_with("member-")
        && !key.starts_with("candidacy-")
}

pub fn member_lease(election: &str, identity: &str) -> String {
    subdomain(&format!("{election}-member-{identity}"))
}

pub fn candidacy_lease(election: &str, identity: &str) -> String {
    subdomain(&format!("{election}-candidacy-{identity}"))
}

pub fn key_lease(election: &str, key: &str) -> String {
    subdomain(&format!("{election}-{key}"))
}

/// `name` if it is a valid DNS subdomain; otherwise a valid one made from it, with a hash of
/// the original so that two different inputs do not meet.
fn subdomain(name: &str) -> String {
    let ok = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.';
    let bytes = name.as_bytes();
    if name.len() <= MAX_NAME
        && !name.is_empty()
        && bytes.iter().all(|&b| ok(b))
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
    {
        return name.to_owned();
    }
    let suffix = format!("-{:016x}", hash::weight(name, ""));
    let mut cleaned: String = name
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if ok(c as u8) && c.is_ascii() { c } else { '-' })
        .collect();
    cleaned.truncate(MAX_NAME - suffix.len());
    let trimmed = cleaned.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    format!("{}{suffix}", if trimmed.is_empty() { "x" } else { trimmed })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid_subdomain(name: &str) -> bool {
        subdomain(name) == name
    }

    #[test]
    fn ordinary_names_are_kept() {
        assert_eq!(member_lease("herald", "node-a"), "herald-member-node-a");
        assert_eq!(key_lease("herald", "ip-192.0.2.10"), "herald-ip-192.0.2.10");
        assert_eq!(
            candidacy_lease("herald", "worker-1.example.com"),
            "herald-candidacy-worker-1.example.com"
        );
    }

    #[test]
    fn bad_or_long_names_are_made_valid_and_kept_apart() {
        let long = "n".repeat(253);
        let a = member_lease("herald", &long);
        let b = member_lease("herald", &format!("{long}x"));
        assert!(a.len() <= MAX_NAME && valid_subdomain(&a), "{a}");
        assert_ne!(a, b);
        let odd = member_lease("herald", "Node_A:");
        assert!(valid_subdomain(&odd), "{odd}");
        assert_ne!(odd, member_lease("herald", "node-a"));
    }

    #[test]
    fn keys() {
        assert!(valid_key("ip-2001-0db8-0000-0000-0000-0000-0000-0000"));
        assert!(valid_key("ip-192.0.2.10"));
        assert!(!valid_key("ip-2001:db8::"));
        assert!(!valid_key("ip-"));
        assert!(!valid_key("member-x"));
        assert!(!valid_key(""));
        assert!(!valid_key(&"a".repeat(MAX_KEY + 1)));
    }
}
