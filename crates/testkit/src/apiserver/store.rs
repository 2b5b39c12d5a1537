//! Object storage with one global resourceVersion counter and a bounded window of change
//! events that watches replay from. Objects are plain JSON; the resource table says how each
//! kind behaves.

use std::collections::{BTreeMap, VecDeque};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use super::resources::{RESOURCES, ResourceDef, StatusSub};
use super::services::ServiceNetwork;

/// An error as the API reports it: a `Status` object with a reason and an HTTP code.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    details: Option<Value>,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn about(mut self, def: &ResourceDef, name: &str) -> Self {
        let mut d = json!({"name": name, "kind": def.plural});
        if !def.group.is_empty() {
            d["group"] = json!(def.group);
        }
        self.details = Some(d);
        self
    }

    pub fn not_found(def: &ResourceDef, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", def.qualified()),
        )
        .about(def, name)
    }

    pub fn already_exists(def: &ResourceDef, name: &str) -> Self {
        let msg = format!("{} \"{name}\" already exists", def.qualified());
        Self::new(409, "AlreadyExists", msg).about(def, name)
    }

    pub fn conflict(def: &ResourceDef, name: &str, why: &str) -> Self {
        let msg = format!(
            "Operation cannot be fulfilled on {} \"{name}\": {why}",
            def.qualified()
        );
        Self::new(409, "Conflict", msg).about(def, name)
    }

    pub fn stale(def: &ResourceDef, name: &str) -> Self {
        Self::conflict(
            def,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn invalid(def: &ResourceDef, name: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        let msg = format!("{} \"{name}\" is invalid: {message}", def.kind);
        // As a real server: the kind (not the resource) and one cause per field, which is
        // what kubectl prints ("The Service \"x\" is invalid: spec.f: Invalid value: ...").
        let (field, text) = match message.split_once(": ") {
            Some((f, t)) if !f.contains(' ') => (f.to_owned(), t.to_owned()),
            _ => (String::new(), message.clone()),
        };
        let mut details = json!({
            "name": name,
            "kind": def.kind,
            "causes": [{"reason": "FieldValueInvalid", "message": text, "field": field}],
        });
        if !def.group.is_empty() {
            details["group"] = json!(def.group);
        }
        let mut e = Self::new(422, "Invalid", msg);
        e.details = Some(details);
        e
    }

    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    pub fn status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

pub type Result<T> = std::result::Result<T, ApiError>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Event {
    pub rv: u64,
    pub res: usize,
    pub kind: EventType,
    pub object: Value,
    /// The object before a modification, so filtered watches can tell when an object leaves
    /// or enters their selection.
    pub old: Option<Value>,
}

/// (resource row, namespace or "", name)
type Key = (usize, String, String);

pub struct Store {
    rv: u64,
    objects: BTreeMap<Key, Value>,
    history: VecDeque<Event>,
    history_limit: usize,
    /// Every event with a version above this one is still in `history`; a watch from an
    /// older version has missed something and gets 410 Expired.
    compacted: u64,
    seed: u64,
    /// Service CIDRs and the cluster IPs given out; unconfigured, Services get none.
    pub services: ServiceNetwork,
}

/// How a write names its target.
pub struct Target<'a> {
    pub res: usize,
    pub namespace: &'a str,
}

impl Target<'_> {
    fn def(&self) -> &'static ResourceDef {
        &RESOURCES[self.res]
    }
    fn key(&self, name: &str) -> Key {
        (self.res, self.namespace.to_string(), name.to_string())
    }
}

pub fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn meta(obj: &Value) -> &Value {
    &obj["metadata"]
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj["metadata"][field].as_str().unwrap_or_default()
}

fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    obj["metadata"]
        .as_object_mut()
        .expect("metadata was just made an object")
}

/// The parts of an object whose change bumps `metadata.generation`.
fn spec_of(def: &ResourceDef, obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("metadata");
        if def.status != StatusSub::None {
            m.remove("status");
        }
    }
    o
}

fn has_finalizers(obj: &Value) -> bool {
    meta(obj)["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty())
}

impl Store {
    pub fn new(history_limit: usize) -> Self {
        // Versions start from the clock, so a restarted server (the lab's herald-apiserver)
        // is ahead of every version its previous run gave out: clients resuming from one get
        // 410 and list again, instead of silently waiting for numbers to catch up.
        let first_rv = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_micros() as u64);
        let seed =
            std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), 0u8);
        Self {
            rv: first_rv,
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            history_limit,
            compacted: first_rv,
            seed,
            services: ServiceNetwork::default(),
        }
    }

    pub fn rv(&self) -> u64 {
        self.rv
    }

    pub fn compacted(&self) -> u64 {
        self.compacted
    }

    pub fn set_history_limit(&mut self, limit: usize) {
        self.history_limit = limit;
        self.trim();
    }

    pub fn clear_history(&mut self) {
        self.history.clear();
        self.compacted = self.rv;
    }

    fn trim(&mut self) {
        while self.history.len() > self.history_limit {
            if let Some(e) = self.history.pop_front() {
                self.compacted = e.rv;
            }
        }
    }

    fn random(&mut self) -> u64 {
        // xorshift64*: names and uids need only be unlikely to collide.
        self.seed ^= self.seed >> 12;
        self.seed ^= self.seed << 25;
        self.seed ^= self.seed >> 27;
        self.seed.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn uid(&mut self) -> String {
        let (a, b) = (self.random(), self.random());
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | (b >> 48) & 0x3fff,
            b & 0xffff_ffff_ffff
        )
    }

    fn record(&mut self, res: usize, kind: EventType, object: &Value, old: Option<Value>) {
        self.history.push_back(Event {
            rv: self.rv,
            res,
            kind,
            object: object.clone(),
            old,
        });
        self.trim();
    }

    fn bump(&mut self, obj: &mut Value) {
        self.rv += 1;
        meta_mut(obj).insert("resourceVersion".into(), json!(self.rv.to_string()));
    }

    pub fn get(&self, t: &Target, name: &str) -> Result<Value> {
        self.objects
            .get(&t.key(name))
            .cloned()
            .ok_or_else(|| ApiError::not_found(t.def(), name))
    }

    /// Objects of one resource, in one namespace or all (`None`), in key order, those after
    /// `after` (a (namespace, name) cursor) only.
    pub fn list<'s>(
        &'s self,
        res: usize,
        namespace: Option<&'s str>,
        after: Option<(String, String)>,
    ) -> impl Iterator<Item = &'s Value> + 's {
        let start = match after {
            Some((ns, name)) => std::ops::Bound::Excluded((res, ns, name)),
            None => std::ops::Bound::Included((res, String::new(), String::new())),
        };
        self.objects
            .range((start, std::ops::Bound::Unbounded))
            .take_while(move |((r, _, _), _)| *r == res)
            .filter(move |((_, ns, _), _)| namespace.is_none_or(|want| want == ns))
            .map(|(_, v)| v)
    }

    /// Change events of one resource newer than `after`, or Err when some have been forgotten.
    pub fn events_since(&self, res: usize, after: u64) -> Result<Vec<Event>> {
        if after < self.compacted {
            return Err(ApiError::expired(format!(
                "too old resource version: {after} ({})",
                self.compacted
            )));
        }
        // The history is in version order: find the first newer event by bisection, so a
        // watch woken by one change does not walk the whole window.
        let first = self.history.partition_point(|e| e.rv <= after);
        Ok(self
            .history
            .range(first..)
            .filter(|e| e.res == res)
            .cloned()
            .collect())
    }

    fn check_namespace(&self, t: &Target) -> Result<()> {
        if !t.def().namespaced {
            return Ok(());
        }
        let ns_res = RESOURCES
            .iter()
            .position(|d| d.group.is_empty() && d.plural == "namespaces")
            .expect("the table serves namespaces");
        if self
            .objects
            .contains_key(&(ns_res, String::new(), t.namespace.to_string()))
        {
            Ok(())
        } else {
            Err(ApiError::new(
                404,
                "NotFound",
                format!("namespaces \"{}\" not found", t.namespace),
            ))
        }
    }

    pub fn create(&mut self, t: &Target, mut obj: Value) -> Result<Value> {
        let def = t.def();
        if !obj.is_object() {
            return Err(ApiError::bad_request("the body must be a JSON object"));
        }
        check_type(def, &obj)?;
        stamp_type(def, &mut obj);
        let mut name = meta_str(&obj, "name").to_string();
        if name.is_empty() {
            let prefix = meta_str(&obj, "generateName").to_string();
            if prefix.is_empty() {
                return Err(ApiError::invalid(
                    def,
                    "",
                    "metadata.name: Required value: name or generateName is required",
                ));
            }
            const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
            let suffix: String = (0..5)
                .map(|_| ALPHABET[(self.random() % ALPHABET.len() as u64) as usize] as char)
                .collect();
            name = format!("{prefix}{suffix}");
        }
        validate_name(def, &name)?;
        validate_labels(def, &name, &obj)?;
        let given_ns = meta_str(&obj, "namespace");
        if def.namespaced && !given_ns.is_empty() && given_ns != t.namespace {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        self.check_namespace(t)?;
        if self.objects.contains_key(&t.key(&name)) {
            return Err(ApiError::already_exists(def, &name));
        }
        let uid = self.uid();
        let m = meta_mut(&mut obj);
        m.insert("name".into(), json!(name));
        if def.namespaced {
            m.insert("namespace".into(), json!(t.namespace));
        } else {
            m.remove("namespace");
        }
        m.insert("uid".into(), json!(uid));
        m.insert("creationTimestamp".into(), json!(now_rfc3339()));
        m.insert("generation".into(), json!(1));
        for server_owned in [
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "managedFields",
        ] {
            m.remove(server_owned);
        }
        if def.status == StatusSub::Reset
            && let Some(o) = obj.as_object_mut()
        {
            o.remove("status");
        }
        fold_string_data(def, &mut obj);
        default_service(def, &mut obj);
        if is_service(def) {
            self.services
                .admit(&mut obj)
                .map_err(|m| ApiError::invalid(def, &name, m))?;
        }
        if def.plural == "namespaces" && def.group.is_empty() {
            obj["status"] = json!({"phase": "Active"});
        }
        self.bump(&mut obj);
        self.objects.insert(t.key(&name), obj.clone());
        self.record(t.res, EventType::Added, &obj, None);
        Ok(obj)
    }

    /// PUT, on the object itself or (`status_only`) on its status subresource.
    pub fn update(
        &mut self,
        t: &Target,
        name: &str,
        body: Value,
        status_only: bool,
    ) -> Result<Value> {
        let def = t.def();
        if !body.is_object() {
            return Err(ApiError::bad_request("the body must be a JSON object"));
        }
        check_type(def, &body)?;
        let mut body = body;
        stamp_type(def, &mut body);
        let body_name = meta_str(&body, "name");
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let current = self.get(t, name)?;
        if !status_only {
            validate_labels(def, name, &body)?;
        }
        let want_rv = meta_str(&body, "resourceVersion");
        if !want_rv.is_empty() && want_rv != meta_str(&current, "resourceVersion") {
            return Err(ApiError::stale(def, name));
        }
        let mut next = if status_only {
            let mut n = current.clone();
            match body.get("status") {
                Some(s) => n["status"] = s.clone(),
                None => {
                    n.as_object_mut().map(|o| o.remove("status"));
                }
            }
            // A status write may change labels and annotations too, as on a real server
            // (MetalLB writes metallb.io/ip-allocated-from-pool that way).
            validate_labels(def, name, &body)?;
            for field in ["labels", "annotations"] {
                match body["metadata"].get(field) {
                    Some(v) if !v.is_null() => _ = meta_mut(&mut n).insert(field.into(), v.clone()),
                    _ => _ = meta_mut(&mut n).remove(field),
                }
            }
            n
        } else {
            let mut n = body;
            let m = meta_mut(&mut n);
            let cm = current["metadata"].as_object().cloned().unwrap_or_default();
            for kept in [
                "name",
                "namespace",
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
            ] {
                match cm.get(kept) {
                    Some(v) => m.insert(kept.into(), v.clone()),
                    None => m.remove(kept),
                };
            }
            if def.status != StatusSub::None {
                match current.get("status") {
                    Some(s) => n["status"] = s.clone(),
                    None => {
                        n.as_object_mut().map(|o| o.remove("status"));
                    }
                }
            }
            if is_service(def) {
                ServiceNetwork::keep(&current, &mut n);
            }
            default_service(def, &mut n);
            if spec_of(def, &n) != spec_of(def, &current) {
                let g = cm.get("generation").and_then(Value::as_i64).unwrap_or(0);
                meta_mut(&mut n).insert("generation".into(), json!(g + 1));
            }
            n
        };
        fold_string_data(def, &mut next);
        meta_mut(&mut next).insert(
            "resourceVersion".into(),
            current["metadata"]["resourceVersion"].clone(),
        );
        if next == current {
            // A write that changes nothing is not a change: no new version, no event.
            return Ok(current);
        }
        self.bump(&mut next);
        if meta(&next).get("deletionTimestamp").is_some() && !has_finalizers(&next) {
            self.objects.remove(&t.key(name));
            if is_service(def) {
                self.services.release(&next);
            }
            self.record(t.res, EventType::Deleted, &next, None);
            return Ok(next);
        }
        self.objects.insert(t.key(name), next.clone());
        self.record(t.res, EventType::Modified, &next, Some(current));
        Ok(next)
    }

    /// A patch is an update of the patched current object; a resourceVersion in the patch is
    /// a precondition like in a PUT.
    pub fn patch(
        &mut self,
        t: &Target,
        name: &str,
        apply: impl FnOnce(&mut Value) -> Result<()>,
        status_only: bool,
    ) -> Result<Value> {
        let mut next = self.get(t, name)?;
        apply(&mut next)?;
        self.update(t, name, next, status_only)
    }

    pub fn delete(&mut self, t: &Target, name: &str, preconditions: &Value) -> Result<Value> {
        let def = t.def();
        let mut obj = self.get(t, name)?;
        for (field, what) in [("resourceVersion", "ResourceVersion"), ("uid", "UID")] {
            if let Some(want) = preconditions[field].as_str()
                && want != meta_str(&obj, field)
            {
                let why = format!(
                    "Precondition failed: {what} in precondition: {want}, {what} in object meta: {}",
                    meta_str(&obj, field)
                );
                return Err(ApiError::conflict(def, name, &why));
            }
        }
        if has_finalizers(&obj) {
            if meta(&obj).get("deletionTimestamp").is_none() {
                let old = obj.clone();
                let m = meta_mut(&mut obj);
                m.insert("deletionTimestamp".into(), json!(now_rfc3339()));
                m.insert("deletionGracePeriodSeconds".into(), json!(0));
                self.bump(&mut obj);
                self.objects.insert(t.key(name), obj.clone());
                self.record(t.res, EventType::Modified, &obj, Some(old));
            }
            return Ok(obj);
        }
        self.objects.remove(&t.key(name));
        if is_service(def) {
            self.services.release(&obj);
        }
        self.bump(&mut obj);
        self.record(t.res, EventType::Deleted, &obj, None);
        if def.group.is_empty() && def.plural == "namespaces" {
            // Namespace deletion is immediate here, and takes its contents along.
            let doomed: Vec<Key> = self
                .objects
                .keys()
                .filter(|(r, ns, _)| RESOURCES[*r].namespaced && ns == name)
                .cloned()
                .collect();
            for key in doomed {
                if let Some(mut o) = self.objects.remove(&key) {
                    if is_service(&RESOURCES[key.0]) {
                        self.services.release(&o);
                    }
                    self.bump(&mut o);
                    self.record(key.0, EventType::Deleted, &o, None);
                }
            }
        }
        Ok(obj)
    }
}

const SUBDOMAIN: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const LABEL_1123: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const LABEL_1035: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character";
const LABEL_VALUE: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";

fn is_label_1123(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

fn is_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_label_1123)
}

/// A label value, or the name part of a label key (which may not be empty).
fn is_label_value(s: &str) -> bool {
    let b = s.as_bytes();
    b.is_empty()
        || (b.len() <= 63
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric())
}

/// Names as the real server checks them: what herald generates (Lease names from IPv6
/// addresses, say) must pass here to pass in a cluster.
fn validate_name(def: &ResourceDef, name: &str) -> Result<()> {
    let (ok, rule) = match (def.group, def.plural) {
        ("", "services") => (
            is_label_1123(name) && name.as_bytes()[0].is_ascii_lowercase(),
            LABEL_1035,
        ),
        ("", "namespaces") => (is_label_1123(name), LABEL_1123),
        _ => (is_subdomain(name), SUBDOMAIN),
    };
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            def,
            name,
            format!("metadata.name: Invalid value: \"{name}\": {rule}"),
        ))
    }
}

fn validate_labels(def: &ResourceDef, name: &str, obj: &Value) -> Result<()> {
    let Some(labels) = obj["metadata"]["labels"].as_object() else {
        return Ok(());
    };
    for (key, value) in labels {
        let (prefix, key_name) = key.rsplit_once('/').unwrap_or(("", key));
        let key_ok = key.matches('/').count() <= 1
            && !key_name.is_empty()
            && is_label_value(key_name)
            && (prefix.is_empty() && !key.contains('/') || is_subdomain(prefix));
        if !key_ok {
            return Err(ApiError::invalid(
                def,
                name,
                format!(
                    "metadata.labels: Invalid value: \"{key}\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
                ),
            ));
        }
        let text = value.as_str().unwrap_or("\u{0}");
        if !is_label_value(text) {
            return Err(ApiError::invalid(
                def,
                name,
                format!("metadata.labels: Invalid value: \"{text}\": {LABEL_VALUE}"),
            ));
        }
    }
    Ok(())
}

/// A name with an optional DNS-subdomain prefix: `metallb.io/speaker`, `herald`.
fn is_qualified_name(s: &str) -> bool {
    let (prefix, name) = match s.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, s),
    };
    !name.is_empty()
        && is_label_value(name)
        && prefix.is_none_or(|p| !p.is_empty() && is_subdomain(p))
}

/// What the real server checks when an Event is created through `events.k8s.io/v1` (core
/// `v1` Events keep the old, lax rules), so a writer that passes here passes in a cluster.
pub fn validate_event_create(def: &ResourceDef, obj: &Value) -> Result<()> {
    let text = |field: &str| obj[field].as_str().unwrap_or("");
    let mut errors = Vec::new();
    let mut required_within = |field: &str, limit: usize| {
        let value = text(field);
        if value.is_empty() {
            errors.push(format!("{field}: Required value"));
        } else if value.len() > limit {
            errors.push(format!(
                "{field}: Too long: may not be more than {limit} bytes"
            ));
        }
    };
    required_within("reportingInstance", 128);
    required_within("action", 128);
    required_within("reason", 128);
    let controller = text("reportingController");
    if controller.is_empty() {
        errors.push("reportingController: Required value".into());
    } else if !is_qualified_name(controller) {
        errors.push(format!(
            "reportingController: Invalid value: \"{controller}\": must be a qualified name"
        ));
    }
    if text("note").len() > 1024 {
        errors.push("note: Too long: may not be more than 1024 bytes".into());
    }
    if text("eventTime").is_empty() {
        errors.push("eventTime: Required value".into());
    }
    if !matches!(text("type"), "Normal" | "Warning") {
        errors.push(format!(
            "type: Invalid value: \"\": has invalid value: {}",
            text("type")
        ));
    }
    for deprecated in [
        "deprecatedFirstTimestamp",
        "deprecatedLastTimestamp",
        "deprecatedCount",
    ] {
        if !obj[deprecated].is_null() {
            errors.push(format!(
                "{deprecated}: Invalid value: \"\": needs to be unset"
            ));
        }
    }
    let source = &obj["deprecatedSource"];
    if source["component"].as_str().is_some_and(|c| !c.is_empty())
        || source["host"].as_str().is_some_and(|h| !h.is_empty())
    {
        errors.push("deprecatedSource: Invalid value: \"\": needs to be unset".into());
    }
    let namespace = obj["metadata"]["namespace"].as_str().unwrap_or("");
    let regarding = obj["regarding"]["namespace"].as_str().unwrap_or("");
    if regarding.is_empty()
        && !namespace.is_empty()
        && !matches!(namespace, "default" | "kube-system")
    {
        errors.push(
            "involvedObject.namespace: Invalid value: \"\": does not match event.namespace".into(),
        );
    }
    let series = &obj["series"];
    if !series.is_null() {
        if series["count"].as_i64().unwrap_or(0) < 2 {
            errors.push("series.count: Invalid value: should be at least 2".into());
        }
        if series["lastObservedTime"].as_str().unwrap_or("").is_empty() {
            errors.push("series.lastObservedTime: Required value".into());
        }
    }
    if errors.is_empty() {
        return Ok(());
    }
    let name = meta_str(obj, "name");
    let name = if name.is_empty() {
        meta_str(obj, "generateName")
    } else {
        name
    };
    let message = if errors.len() == 1 {
        errors.remove(0)
    } else {
        format!("[{}]", errors.join(", "))
    };
    Err(ApiError::invalid(def, name, message))
}

fn is_service(def: &ResourceDef) -> bool {
    def.group.is_empty() && def.plural == "services"
}

/// The defaults a real server gives every Service write, so code that reads them (traffic
/// policies above all) sees what it would in a cluster. Cluster IPs are not allocated.
fn default_service(def: &ResourceDef, obj: &mut Value) {
    if !(def.group.is_empty() && def.plural == "services") {
        return;
    }
    if !obj["spec"].is_object() {
        obj["spec"] = json!({});
    }
    let spec = &mut obj["spec"];
    let default = |spec: &mut Value, field: &str, value: Value| {
        if spec.get(field).is_none_or(Value::is_null) {
            spec[field] = value;
        }
    };
    default(spec, "type", json!("ClusterIP"));
    default(spec, "sessionAffinity", json!("None"));
    default(spec, "internalTrafficPolicy", json!("Cluster"));
    let kind = spec["type"].as_str().unwrap_or_default().to_string();
    if kind == "LoadBalancer" || kind == "NodePort" {
        default(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if kind == "LoadBalancer" {
        default(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    if let Some(ports) = spec["ports"].as_array_mut() {
        for p in ports {
            if p.get("protocol").is_none() {
                p["protocol"] = json!("TCP");
            }
            if p.get("targetPort").is_none() {
                p["targetPort"] = p["port"].clone();
            }
        }
    }
}

fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A Secret's `stringData` is write-only: the server folds it into `data`, base64-encoded.
fn fold_string_data(def: &ResourceDef, obj: &mut Value) {
    if !(def.group.is_empty() && def.plural == "secrets") {
        return;
    }
    let Some(Value::Object(strings)) = obj.as_object_mut().and_then(|o| o.remove("stringData"))
    else {
        return;
    };
    if !obj["data"].is_object() {
        obj["data"] = json!({});
    }
    for (k, v) in strings {
        obj["data"][k] = json!(base64(v.as_str().unwrap_or_default().as_bytes()));
    }
}

/// Objects are kept in the storage version, whatever version wrote them, so a write that
/// changes only the version is no change.
fn stamp_type(def: &ResourceDef, obj: &mut Value) {
    obj["apiVersion"] = json!(def.api_version(def.versions[0]));
    obj["kind"] = json!(def.kind);
}

/// `apiVersion` and `kind`, when given, must name the resource; any served version will do.
fn check_type(def: &ResourceDef, obj: &Value) -> Result<()> {
    if let Some(kind) = obj["kind"].as_str()
        && kind != def.kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({kind}) does not match the expected kind ({})",
            def.kind
        )));
    }
    if let Some(av) = obj["apiVersion"].as_str()
        && !def.versions.iter().any(|v| def.api_version(v) == av)
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({})",
            def.api_version(def.versions[0])
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::resources::find;

    fn svc() -> usize {
        find("", "v1", "services").unwrap().0
    }
    fn ns() -> usize {
        find("", "v1", "namespaces").unwrap().0
    }

    fn store() -> Store {
        let mut s = Store::new(100);
        let t = Target {
            res: ns(),
            namespace: "",
        };
        s.create(&t, json!({"metadata": {"name": "a"}})).unwrap();
        s
    }

    #[test]
    fn events_created_through_events_k8s_io_are_checked_as_a_real_server_does() {
        let def = &RESOURCES[find("events.k8s.io", "v1", "events").unwrap().0];
        let good = json!({
            "metadata": {"name": "web.17", "namespace": "metallb-system"},
            "eventTime": "2026-01-01T00:00:00.000000Z", "type": "Normal",
            "reason": "nodeAssigned", "action": "Announce", "note": "n",
            "reportingController": "metallb.io/speaker", "reportingInstance": "node-1",
            "regarding": {"kind": "Service", "name": "web", "namespace": "metallb-system"},
        });
        validate_event_create(def, &good).unwrap();
        let mut node_event = good.clone();
        node_event["metadata"]["namespace"] = json!("default");
        node_event["regarding"] = json!({"kind": "Node", "name": "n1"});
        validate_event_create(def, &node_event).unwrap();

        let long = "x".repeat(1025);
        for (field, value, says) in [
            (
                "reportingController",
                json!(null),
                "reportingController: Required value",
            ),
            (
                "reportingController",
                json!("not/a/name"),
                "must be a qualified name",
            ),
            (
                "reportingInstance",
                json!(""),
                "reportingInstance: Required value",
            ),
            ("action", json!(null), "action: Required value"),
            ("reason", json!("r".repeat(129)), "reason: Too long"),
            ("note", json!(long), "note: Too long"),
            ("eventTime", json!(null), "eventTime: Required value"),
            ("type", json!("Info"), "type: Invalid value"),
            (
                "deprecatedCount",
                json!(1),
                "deprecatedCount: Invalid value",
            ),
            (
                "deprecatedSource",
                json!({"component": "x"}),
                "deprecatedSource",
            ),
            (
                "regarding",
                json!({"kind": "Node", "name": "n1"}),
                "does not match event.namespace",
            ),
            ("series", json!({"count": 1}), "series.count"),
        ] {
            let mut bad = good.clone();
            bad[field] = value;
            let e = validate_event_create(def, &bad).unwrap_err();
            assert_eq!((e.code, e.reason), (422, "Invalid"), "{field}");
            assert!(e.message.contains(says), "{field}: {}", e.message);
        }
        let e =
            validate_event_create(def, &json!({"metadata": {"generateName": "web."}})).unwrap_err();
        assert!(
            e.message.starts_with("Event \"web.\" is invalid: ["),
            "{}",
            e.message
        );
    }

    #[test]
    fn secrets_fold_string_data() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        let mut s = store();
        let t = Target {
            res: find("", "v1", "secrets").unwrap().0,
            namespace: "a",
        };
        let o = s
            .create(&t, json!({"metadata": {"name": "x"}, "data": {"a": "YQ=="}, "stringData": {"password": "hunter2"}}))
            .unwrap();
        assert_eq!(o["data"], json!({"a": "YQ==", "password": "aHVudGVyMg=="}));
        assert!(o.get("stringData").is_none());
    }

    #[test]
    fn names_and_labels_are_validated_as_a_real_server_does() {
        let mut s = store();
        let lease = Target {
            res: find("coordination.k8s.io", "v1", "leases").unwrap().0,
            namespace: "a",
        };
        for bad in ["2001:db8::1", "Upper", "-x", "x-", "a..b", ""] {
            let e = s
                .create(&lease, json!({"metadata": {"name": bad}}))
                .unwrap_err();
            assert_eq!((e.code, e.reason), (422, "Invalid"), "{bad}");
        }
        for good in [
            "2001-db8--1",
            "192.0.2.1",
            "a",
            "herald-2001-db8-0-0-0-0-0-0",
        ] {
            s.create(&lease, json!({"metadata": {"name": good}}))
                .unwrap();
        }
        let svc = Target {
            res: svc(),
            namespace: "a",
        };
        assert_eq!(
            s.create(&svc, json!({"metadata": {"name": "1web"}}))
                .unwrap_err()
                .code,
            422
        );
        assert_eq!(
            s.create(&svc, json!({"metadata": {"name": "web.x"}}))
                .unwrap_err()
                .code,
            422
        );
        let labels = |l: Value| json!({"metadata": {"name": "l", "labels": l}});
        for bad in [
            json!({"ip": "2001:db8::1"}),
            json!({"a/b/c": "x"}),
            json!({"Bad_Prefix/x": "x"}),
            json!({"x": "-y"}),
            json!({"x": 1}),
        ] {
            assert_eq!(
                s.create(&svc, labels(bad.clone())).unwrap_err().code,
                422,
                "{bad}"
            );
        }
        s.create(&svc, labels(json!({"metallb.io/ip": "2001-db8--1", "app": "", "kubernetes.io/service-name": "web"})))
            .unwrap();
        let mut o = s.get(&svc, "l").unwrap();
        o["metadata"]["labels"]["ip"] = json!("192.0.2.1/32");
        assert_eq!(s.update(&svc, "l", o, false).unwrap_err().code, 422);
    }

    #[test]
    fn services_get_the_real_defaults() {
        let mut s = store();
        let t = Target {
            res: svc(),
            namespace: "a",
        };
        let o = s
            .create(&t, json!({"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}}))
            .unwrap();
        assert_eq!(o["spec"]["externalTrafficPolicy"], "Cluster");
        assert_eq!(
            o["spec"]["ports"][0],
            json!({"port": 80, "protocol": "TCP", "targetPort": 80})
        );
        let o = s
            .create(&t, json!({"metadata": {"name": "local"}, "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local"}}))
            .unwrap();
        assert_eq!(o["spec"]["externalTrafficPolicy"], "Local");
        let o = s
            .create(&t, json!({"metadata": {"name": "plain"}}))
            .unwrap();
        assert_eq!(o["spec"]["type"], "ClusterIP");
        assert!(o["spec"].get("externalTrafficPolicy").is_none());
        // A PUT without the defaults gets them again: no change, no new version.
        let same = s
            .update(&t, "plain", json!({"metadata": {"name": "plain"}}), false)
            .unwrap();
        assert_eq!(
            same["metadata"]["resourceVersion"],
            o["metadata"]["resourceVersion"]
        );
    }

    #[test]
    fn status_writes_carry_labels_and_annotations_and_cluster_ips_stay() {
        let mut s = store();
        s.services = ServiceNetwork::parse("10.96.0.0/12").unwrap();
        let t = Target {
            res: svc(),
            namespace: "a",
        };
        let o = s
            .create(
                &t,
                json!({"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer"}}),
            )
            .unwrap();
        assert_eq!(o["spec"]["clusterIPs"], json!(["10.96.0.10"]));
        let mut w = o.clone();
        w["status"] = json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}});
        w["metadata"]["annotations"] = json!({"metallb.io/ip-allocated-from-pool": "p"});
        w["spec"]["type"] = json!("ClusterIP");
        let n = s.update(&t, "lb", w, true).unwrap();
        assert_eq!(
            n["metadata"]["annotations"]["metallb.io/ip-allocated-from-pool"],
            "p"
        );
        assert_eq!(n["status"]["loadBalancer"]["ingress"][0]["ip"], "192.0.2.1");
        assert_eq!(
            n["spec"]["type"], "LoadBalancer",
            "a status write leaves the spec"
        );
        // A PUT without the cluster IPs keeps them.
        let put = json!({"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer"}});
        let n = s.update(&t, "lb", put, false).unwrap();
        assert_eq!(n["spec"]["clusterIP"], "10.96.0.10");
        // Deleting gives the address back.
        s.delete(&t, "lb", &json!({})).unwrap();
        let o = s
            .create(&t, json!({"metadata": {"name": "next"}, "spec": {}}))
            .unwrap();
        assert_eq!(o["spec"]["clusterIP"], "10.96.0.10");
        let bad = s
            .create(
                &t,
                json!({"metadata": {"name": "v6"}, "spec": {"ipFamilies": ["IPv6"]}}),
            )
            .unwrap_err();
        assert_eq!(bad.code, 422);
        assert_eq!(
            bad.message,
            "Service \"v6\" is invalid: spec.ipFamilies[0]: Invalid value: \"IPv6\": not configured on this cluster"
        );
    }

    #[test]
    fn timestamps_are_rfc3339() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z'), "{t}");
    }

    #[test]
    fn create_update_conflict_and_noop() {
        let mut s = store();
        let start = s.rv();
        let t = Target {
            res: svc(),
            namespace: "a",
        };
        let o = s
            .create(&t, json!({"metadata": {"name": "x"}, "spec": {"type": "ClusterIP"}, "status": {"x": 1}}))
            .unwrap();
        assert!(o.get("status").is_none(), "create drops a service's status");
        assert_eq!(o["metadata"]["generation"], 1);
        let rv = o["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(s.create(&t, o.clone()).unwrap_err().code, 409);
        let same = s.update(&t, "x", o.clone(), false).unwrap();
        assert_eq!(
            same["metadata"]["resourceVersion"],
            rv.as_str(),
            "a no-op keeps the version"
        );
        let mut changed = o.clone();
        changed["spec"]["type"] = json!("LoadBalancer");
        let n = s.update(&t, "x", changed.clone(), false).unwrap();
        assert_eq!(n["metadata"]["generation"], 2);
        let e = s.update(&t, "x", changed, false).unwrap_err();
        assert_eq!((e.code, e.reason), (409, "Conflict"));
        let ev = s.events_since(svc(), start).unwrap();
        assert_eq!(ev.len(), 2);
    }

    #[test]
    fn window_expires() {
        let mut s = store();
        s.set_history_limit(1);
        let t = Target {
            res: ns(),
            namespace: "",
        };
        s.create(&t, json!({"metadata": {"name": "b"}})).unwrap();
        let a = s.rv();
        s.create(&t, json!({"metadata": {"name": "c"}})).unwrap();
        assert_eq!(s.events_since(ns(), a - 1).unwrap_err().code, 410);
        assert_eq!(s.events_since(ns(), a).unwrap().len(), 1);
        s.clear_history();
        assert_eq!(s.events_since(ns(), a).unwrap_err().code, 410);
        assert!(s.events_since(ns(), s.rv()).unwrap().is_empty());
    }

    #[test]
    fn finalizers_delay_deletion() {
        let mut s = store();
        let t = Target {
            res: svc(),
            namespace: "a",
        };
        s.create(&t, json!({"metadata": {"name": "x", "finalizers": ["f"]}}))
            .unwrap();
        let o = s.delete(&t, "x", &Value::Null).unwrap();
        assert!(o["metadata"]["deletionTimestamp"].is_string());
        s.patch(
            &t,
            "x",
            |o| {
                o["metadata"]["finalizers"] = json!([]);
                Ok(())
            },
            false,
        )
        .unwrap();
        assert_eq!(s.get(&t, "x").unwrap_err().code, 404);
    }
}
