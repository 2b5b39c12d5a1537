//! Service cluster IPs as a real API server gives them: `clusterIPs`, `ipFamilies` and
//! `ipFamilyPolicy` filled in on create from the server's service CIDRs
//! (`--service-cluster-ip-range`), and what it rejects rejected with its own messages.

use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::net::IpAddr;

/// The server's service CIDRs, primary first, and the cluster IPs given out.
#[derive(Clone, Debug, Default)]
pub struct ServiceNetwork {
    cidrs: Vec<(IpAddr, u8)>,
    used: BTreeSet<IpAddr>,
}

fn family(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() { "IPv4" } else { "IPv6" }
}

fn bits(ip: &IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(*v4)),
        IpAddr::V6(v6) => u128::from(*v6),
    }
}

fn from_bits(like: &IpAddr, n: u128) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(u32::try_from(n).unwrap_or(u32::MAX).into()),
        IpAddr::V6(_) => IpAddr::V6(n.into()),
    }
}

/// Go's `%q`-like rendering of a string list, as field errors print `[]string{...}`.
fn go_strings(list: &[String]) -> String {
    let inner: Vec<String> = list.iter().map(|s| format!("{s:?}")).collect();
    format!("[]string{{{}}}", inner.join(", "))
}

impl ServiceNetwork {
    /// `10.96.0.0/12`, `fd00:10:96::/112`, or both comma-separated (the first is primary).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut cidrs = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (addr, len) = part
                .split_once('/')
                .ok_or_else(|| format!("{part:?} is not a CIDR"))?;
            let addr: IpAddr = addr
                .parse()
                .map_err(|_| format!("{part:?} is not a CIDR"))?;
            let len: u8 = len.parse().map_err(|_| format!("{part:?} is not a CIDR"))?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            if len > max || max - len < 4 {
                return Err(format!("{part:?} is too small for a service range"));
            }
            cidrs.push((addr, len));
        }
        if cidrs.len() > 2 || (cidrs.len() == 2 && cidrs[0].0.is_ipv4() == cidrs[1].0.is_ipv4()) {
            return Err(format!(
                "{text:?}: give one CIDR, or one of each family (dual-stack)"
            ));
        }
        Ok(ServiceNetwork {
            cidrs,
            used: BTreeSet::new(),
        })
    }

    pub fn is_configured(&self) -> bool {
        !self.cidrs.is_empty()
    }

    fn is_dual_stack(&self) -> bool {
        self.cidrs.len() == 2
    }

    fn cidr_of(&self, fam: &str) -> Option<(IpAddr, u8)> {
        self.cidrs.iter().copied().find(|(a, _)| family(a) == fam)
    }

    fn contains(&self, ip: &IpAddr) -> bool {
        self.cidrs.iter().any(|(net, len)| {
            let host = u32::from(if net.is_ipv4() { 32 - len } else { 128 - len });
            net.is_ipv4() == ip.is_ipv4() && (bits(net) >> host) == (bits(ip) >> host)
        })
    }

    /// The next free address of the family's range, past the first ten (the first is the
    /// `kubernetes` Service's in a real cluster).
    fn next_free(&self, fam: &str) -> Option<IpAddr> {
        let (net, len) = self.cidr_of(fam)?;
        let host = u32::from(if net.is_ipv4() { 32 - len } else { 128 - len });
        let base = (bits(&net) >> host) << host;
        let size = if host >= 64 {
            u128::from(u64::MAX)
        } else {
            1u128 << host
        };
        (10..size.saturating_sub(1))
            .map(|i| from_bits(&net, base + i))
            .find(|ip| !self.used.contains(ip))
    }

    /// Defaults a Service being created, or says why the server refuses it (the message after
    /// `Service "NAME" is invalid: `).
    pub fn admit(&mut self, obj: &mut Value) -> Result<(), String> {
        if !self.is_configured() {
            return Ok(());
        }
        let spec = &obj["spec"];
        if spec["type"].as_str() == Some("ExternalName") {
            return Ok(());
        }
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut cluster_ips = strings(&spec["clusterIPs"]);
        if cluster_ips.is_empty()
            && let Some(ip) = spec["clusterIP"].as_str().filter(|s| !s.is_empty())
        {
            cluster_ips.push(ip.to_owned());
        }
        let headless = cluster_ips.first().is_some_and(|ip| ip == "None");
        let mut families = strings(&spec["ipFamilies"]);
        for (i, f) in families.iter().enumerate() {
            if f != "IPv4" && f != "IPv6" {
                return Err(format!(
                    "spec.ipFamilies[{i}]: Unsupported value: {f:?}: supported values: \"IPv4\", \"IPv6\""
                ));
            }
            if families[..i].contains(f) {
                return Err(format!("spec.ipFamilies[{i}]: Duplicate value: {f:?}"));
            }
        }
        if families.len() > 2 {
            return Err(format!(
                "spec.ipFamilies: Too many: {}: must have at most 2 items",
                families.len()
            ));
        }
        let policy = match spec["ipFamilyPolicy"].as_str() {
            None => {
                if cluster_ips.len() == 2 || families.len() == 2 {
                    "RequireDualStack"
                } else {
                    "SingleStack"
                }
            }
            Some(p @ ("SingleStack" | "PreferDualStack" | "RequireDualStack")) => p,
            Some(other) => {
                return Err(format!(
                    "spec.ipFamilyPolicy: Unsupported value: {other:?}: supported values: \"PreferDualStack\", \"RequireDualStack\", \"SingleStack\""
                ));
            }
        };
        let policy = policy.to_owned();
        let mut given = Vec::new();
        if !headless {
            for (i, text) in cluster_ips.iter().enumerate() {
                let Ok(ip) = text.parse::<IpAddr>() else {
                    return Err(format!(
                        "spec.clusterIPs[{i}]: Invalid value: {text:?}: must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
                    ));
                };
                match families.get(i) {
                    Some(f) if f != family(&ip) => {
                        return Err(format!(
                            "spec.clusterIPs[{i}]: Invalid value: {}: expected an {f} value as indicated by `ipFamilies[{i}]`",
                            go_strings(&cluster_ips)
                        ));
                    }
                    Some(_) => {}
                    None => families.push(family(&ip).to_owned()),
                }
                given.push(ip);
            }
        }
        if policy == "SingleStack" && (families.len() > 1 || cluster_ips.len() > 1) {
            return Err(format!(
                "spec.ipFamilyPolicy: Invalid value: \"SingleStack\": must be RequireDualStack or PreferDualStack when multiple {} are specified",
                if cluster_ips.len() > 1 {
                    "'clusterIPs'"
                } else {
                    "'ipFamilies'"
                }
            ));
        }
        if policy == "RequireDualStack" && !self.is_dual_stack() {
            return Err(
                "spec.ipFamilyPolicy: Invalid value: \"RequireDualStack\": this cluster is not configured for dual-stack services"
                    .into(),
            );
        }
        for (i, f) in families.iter().enumerate() {
            if self.cidr_of(f).is_none() {
                return Err(format!(
                    "spec.ipFamilies[{i}]: Invalid value: {f:?}: not configured on this cluster"
                ));
            }
        }
        if families.is_empty() {
            families.push(family(&self.cidrs[0].0).to_owned());
        }
        if policy != "SingleStack" && families.len() == 1 && self.is_dual_stack() {
            let other = if families[0] == "IPv4" {
                "IPv6"
            } else {
                "IPv4"
            };
            families.push(other.to_owned());
        }
        let ips: Vec<String> = if headless {
            vec!["None".to_owned()]
        } else {
            let mut ips = Vec::new();
            for (i, f) in families.iter().enumerate() {
                let ip = match given.get(i) {
                    Some(ip) => {
                        if !self.contains(ip) {
                            return Err(format!(
                                "spec.clusterIPs[{i}]: Invalid value: {}: failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. The range of valid IPs is {}",
                                go_strings(&cluster_ips),
                                self.cidr_of(f).map(|(a, l)| format!("{a}/{l}")).unwrap_or_default()
                            ));
                        }
                        if self.used.contains(ip) || ips.contains(ip) {
                            return Err(format!(
                                "spec.clusterIPs: Invalid value: {}: failed to allocate IP {ip}: provided IP is already allocated",
                                go_strings(&cluster_ips)
                            ));
                        }
                        *ip
                    }
                    None => self
                        .next_free(f)
                        .filter(|ip| !ips.contains(ip))
                        .ok_or_else(|| {
                            format!("spec.clusterIPs: Internal error: failed to allocate a service IP: range is full ({f})")
                        })?,
                };
                ips.push(ip);
            }
            self.used.extend(ips.iter().copied());
            ips.iter().map(IpAddr::to_string).collect()
        };
        let spec = &mut obj["spec"];
        spec["clusterIP"] = json!(ips[0]);
        spec["clusterIPs"] = json!(ips);
        spec["ipFamilies"] = json!(families);
        spec["ipFamilyPolicy"] = json!(policy);
        Ok(())
    }

    /// Gives back the cluster IPs of a deleted Service.
    pub fn release(&mut self, obj: &Value) {
        for ip in obj["spec"]["clusterIPs"].as_array().into_iter().flatten() {
            if let Some(ip) = ip.as_str().and_then(|s| s.parse::<IpAddr>().ok()) {
                self.used.remove(&ip);
            }
        }
    }

    /// On update the server keeps what it gave: a write that leaves these fields out keeps
    /// them.
    pub fn keep(current: &Value, next: &mut Value) {
        for field in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
            if next["spec"].get(field).is_none_or(Value::is_null)
                && let Some(v) = current["spec"].get(field)
                && next["spec"].is_object()
            {
                next["spec"][field] = v.clone();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admit(cidrs: &str, spec: Value) -> Result<Value, String> {
        let mut n = ServiceNetwork::parse(cidrs).unwrap();
        let mut obj = json!({"metadata": {"name": "s"}, "spec": spec});
        n.admit(&mut obj).map(|_| obj["spec"].clone())
    }

    #[test]
    fn single_stack_ipv4_cluster() {
        let s = admit("10.96.0.0/12", json!({"type": "LoadBalancer"})).unwrap();
        assert_eq!(s["clusterIPs"], json!(["10.96.0.10"]));
        assert_eq!(s["clusterIP"], "10.96.0.10");
        assert_eq!(s["ipFamilies"], json!(["IPv4"]));
        assert_eq!(s["ipFamilyPolicy"], "SingleStack");
        // PreferDualStack on a single-stack cluster stays single.
        let s = admit("10.96.0.0/12", json!({"ipFamilyPolicy": "PreferDualStack"})).unwrap();
        assert_eq!(s["ipFamilies"], json!(["IPv4"]));
        assert_eq!(
            admit("10.96.0.0/12", json!({"ipFamilies": ["IPv6"]})).unwrap_err(),
            "spec.ipFamilies[0]: Invalid value: \"IPv6\": not configured on this cluster"
        );
        assert_eq!(
            admit(
                "10.96.0.0/12",
                json!({"ipFamilyPolicy": "RequireDualStack"})
            )
            .unwrap_err(),
            "spec.ipFamilyPolicy: Invalid value: \"RequireDualStack\": this cluster is not configured for dual-stack services"
        );
    }

    #[test]
    fn dual_stack_clusters_either_family_first() {
        let s = admit(
            "fd00:10:96::/112,10.96.0.0/12",
            json!({"ipFamilyPolicy": "PreferDualStack"}),
        )
        .unwrap();
        assert_eq!(s["ipFamilies"], json!(["IPv6", "IPv4"]));
        assert_eq!(s["clusterIPs"], json!(["fd00:10:96::a", "10.96.0.10"]));
        let s = admit(
            "10.96.0.0/12,fd00:10:96::/112",
            json!({"ipFamilies": ["IPv6", "IPv4"]}),
        )
        .unwrap();
        assert_eq!(s["ipFamilyPolicy"], "RequireDualStack");
        assert_eq!(s["ipFamilies"], json!(["IPv6", "IPv4"]));
        let s = admit("10.96.0.0/12,fd00:10:96::/112", json!({})).unwrap();
        assert_eq!(s["ipFamilies"], json!(["IPv4"]));
        assert_eq!(
            admit(
                "10.96.0.0/12,fd00:10:96::/112",
                json!({"ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4", "IPv6"]})
            )
            .unwrap_err(),
            "spec.ipFamilyPolicy: Invalid value: \"SingleStack\": must be RequireDualStack or PreferDualStack when multiple 'ipFamilies' are specified"
        );
    }

    #[test]
    fn cluster_ips_are_unique_and_given_back() {
        let mut n = ServiceNetwork::parse("10.96.0.0/28").unwrap();
        let mut a = json!({"spec": {}});
        n.admit(&mut a).unwrap();
        let mut b = json!({"spec": {"clusterIP": "10.96.0.10"}});
        assert!(
            n.admit(&mut b)
                .unwrap_err()
                .contains("provided IP is already allocated")
        );
        let mut c = json!({"spec": {}});
        n.admit(&mut c).unwrap();
        assert_eq!(c["spec"]["clusterIP"], "10.96.0.11");
        n.release(&a);
        let mut d = json!({"spec": {}});
        n.admit(&mut d).unwrap();
        assert_eq!(d["spec"]["clusterIP"], "10.96.0.10");
        let mut e = json!({"spec": {"clusterIP": "None"}});
        n.admit(&mut e).unwrap();
        assert_eq!(e["spec"]["clusterIPs"], json!(["None"]));
    }
}
