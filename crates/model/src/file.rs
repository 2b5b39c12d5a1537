//! File mode: Kubernetes-style YAML documents read into [`Resources`].
//!
//! A field herald does not know is never silently dropped, because a misspelt
//! `passwordSecret` key or `aggregationLenght` would otherwise change what is announced
//! without a word. By default ([`UnknownFields::Error`], what `herald check` uses) it is an
//! error, as with `kubectl apply --validate=strict`; the speaker reads with
//! [`UnknownFields::Warn`], so a field of a newer MetalLB than herald knows does not reject a
//! configuration MetalLB would accept. A document of a kind whose problems harm only itself
//! (a Service, EndpointSlice or Node) is never an error: it is skipped with a warning. Every
//! problem in every document is reported, each with the line it is on.

use crate::crd::{self, BFDProfile, BGPAdvertisement, Community, IPAddressPool, L2Advertisement};
use crate::diag::{Diagnostic, Origin, ResourceRef, Severity, isolated_kind};
use crate::resources::{EndpointsMode, FieldLines, Resources, Sourced, Unreadable};
use serde::Deserialize;
use serde::de::{self, DeserializeOwned, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use serde_saphyr::Spanned;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What reading files produced: the resources, and every problem met on the way (unreadable
/// files, YAML syntax, unknown fields, wrong types, unknown kinds as notes).
#[derive(Clone, Debug, Default)]
pub struct Loaded {
    pub resources: Resources,
    pub diagnostics: Vec<Diagnostic>,
    /// How unknown fields were reported.
    pub unknown: UnknownFields,
}

/// How a field herald does not know is reported.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UnknownFields {
    /// An error: the configuration is rejected (`herald check`'s default).
    #[default]
    Error,
    /// A warning naming the field, which is ignored.
    Warn,
}

/// Reads every file, unknown fields being errors; `resources.endpoints_mode` is
/// `AssumeReadyEverywhere`.
pub fn load_files<P: AsRef<Path>>(paths: &[P]) -> Loaded {
    load_files_with(paths, UnknownFields::Error)
}

/// [`load_files`], reporting unknown fields as `unknown` says.
pub fn load_files_with<P: AsRef<Path>>(paths: &[P], unknown: UnknownFields) -> Loaded {
    let mut loaded = Loaded {
        unknown,
        ..Loaded::default()
    };
    for path in paths {
        let path = path.as_ref();
        match std::fs::read_to_string(path) {
            Ok(text) => read_into(&mut loaded, &text, Some(path)),
            Err(e) => loaded.diagnostics.push(
                Diagnostic::error(
                    ResourceRef::default(),
                    "",
                    format!("cannot read the file: {e}"),
                )
                .at(Origin {
                    file: Some(path.to_owned()),
                    ..Origin::default()
                })
                .fix("check the path and its permissions"),
            ),
        }
    }
    loaded.resources.endpoints_mode = EndpointsMode::AssumeReadyEverywhere;
    loaded
}

/// Reads YAML text, unknown fields being errors; `file` only labels diagnostics.
pub fn load_str(text: &str, file: Option<&Path>) -> Loaded {
    load_str_with(text, file, UnknownFields::Error)
}

/// [`load_str`], reporting unknown fields as `unknown` says.
pub fn load_str_with(text: &str, file: Option<&Path>, unknown: UnknownFields) -> Loaded {
    let mut loaded = Loaded {
        unknown,
        ..Loaded::default()
    };
    read_into(&mut loaded, text, file);
    loaded.resources.endpoints_mode = EndpointsMode::AssumeReadyEverywhere;
    loaded
}

fn read_into(loaded: &mut Loaded, text: &str, file: Option<&Path>) {
    let file: Option<PathBuf> = file.map(Path::to_owned);
    let documents = match serde_saphyr::from_multiple::<Option<Spanned<YamlNode>>>(text) {
        Ok(docs) => docs,
        Err(e) => {
            let line = e
                .location()
                .and_then(|l| usize::try_from(l.line()).ok())
                .filter(|l| *l > 0);
            let message = e.without_snippet().to_string();
            let message = message.strip_prefix("error: ").unwrap_or(&message);
            loaded.diagnostics.push(
                Diagnostic::error(
                    ResourceRef::default(),
                    "",
                    format!("not valid YAML: {message}"),
                )
                .at(Origin {
                    file,
                    line,
                    ..Origin::default()
                })
                .fix("correct the YAML syntax there"),
            );
            return;
        }
    };
    for (i, doc) in documents.into_iter().enumerate() {
        let Some(doc) = doc else { continue };
        if matches!(doc.value, YamlNode::Null) {
            continue;
        }
        let origin = Origin {
            file: file.clone(),
            document: Some(i + 1),
            line: line_of(&doc),
        };
        read_object(loaded, &doc, origin);
    }
}

fn line_of<T>(s: &Spanned<T>) -> Option<usize> {
    usize::try_from(s.referenced.line()).ok().filter(|l| *l > 0)
}

/// Reads one object (a whole document, or one item of a `List`).
fn read_object(loaded: &mut Loaded, node: &Spanned<YamlNode>, origin: Origin) {
    let mut lines = FieldLines::default();
    let mut value = node.value.to_json("", &mut lines);
    let lines = Arc::new(lines);
    let at = |field: &str| {
        let mut o = origin.clone();
        if let Some(l) = lines.line_of(field) {
            o.line = Some(l);
        }
        o
    };

    let Some(obj) = value.as_object_mut() else {
        loaded.diagnostics.push(
            Diagnostic::error(
                ResourceRef::default(),
                "",
                "a document must be a mapping (a Kubernetes object)",
            )
            .at(origin.clone())
            .fix("write apiVersion, kind, metadata and spec as keys of the document"),
        );
        return;
    };
    let text = |key: &str| {
        obj.get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let (api_version, kind) = (text("apiVersion"), text("kind"));
    let meta = obj.get("metadata");
    let meta_str = |key: &str| {
        meta.and_then(|m| m.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let resource = ResourceRef {
        kind: if kind.is_empty() {
            "object".into()
        } else {
            kind.clone()
        },
        namespace: meta_str("namespace"),
        name: meta_str("name").unwrap_or_default(),
    };
    let error = |field: &str, problem: String| {
        Diagnostic::error(resource.clone(), field, problem).at(at(field))
    };

    if api_version.is_empty() || kind.is_empty() {
        let missing = if api_version.is_empty() {
            "apiVersion"
        } else {
            "kind"
        };
        loaded.diagnostics.push(
            error(missing, format!("the document has no {missing}"))
                .fix("start every document with apiVersion and kind, e.g. apiVersion: metallb.io/v1beta1, kind: IPAddressPool"),
        );
        return;
    }

    // Exported objects carry an empty `status` on kinds that have none in our types; it
    // says nothing, so it is not worth an unknown-field error.
    let has_status = matches!(
        kind.as_str(),
        "IPAddressPool" | "Service" | "Node" | "EndpointSlice" | "Secret"
    );
    if !has_status {
        obj.remove("status");
    }
    // MetalLB lets these kinds be written without a spec (meaning: all defaults).
    if matches!(
        kind.as_str(),
        "L2Advertisement" | "BGPAdvertisement" | "Community" | "BFDProfile"
    ) {
        obj.entry("spec")
            .or_insert_with(|| Value::Object(Map::new()));
    }

    let unknown_fields = loaded.unknown;
    let r = &mut loaded.resources;
    let d = &mut Sink {
        diagnostics: &mut loaded.diagnostics,
        unknown: unknown_fields,
    };
    let src = (&origin, &lines);
    match (api_version.as_str(), kind.as_str()) {
        (crd::GROUP_V1BETA1, "IPAddressPool") => push(
            d,
            &mut r.unreadable,
            &mut r.pools,
            typed::<IPAddressPool>(value, &resource, &at),
            src,
        ),
        (crd::GROUP_V1BETA1, "L2Advertisement") => push(
            d,
            &mut r.unreadable,
            &mut r.l2_advertisements,
            typed::<L2Advertisement>(value, &resource, &at),
            src,
        ),
        (crd::GROUP_V1BETA1, "BGPAdvertisement") => push(
            d,
            &mut r.unreadable,
            &mut r.bgp_advertisements,
            typed::<BGPAdvertisement>(value, &resource, &at),
            src,
        ),
        (crd::GROUP_V1BETA1, "Community") => push(
            d,
            &mut r.unreadable,
            &mut r.communities,
            typed::<Community>(value, &resource, &at),
            src,
        ),
        (crd::GROUP_V1BETA1, "BFDProfile") => push(
            d,
            &mut r.unreadable,
            &mut r.bfd_profiles,
            typed::<BFDProfile>(value, &resource, &at),
            src,
        ),
        (crd::GROUP_V1BETA1, "BGPPeer") => {
            let peer =
                typed::<crd::v1beta1::BGPPeer>(value, &resource, &at).map(|(p, u)| (p.into(), u));
            push(d, &mut r.unreadable, &mut r.bgp_peers, peer, src)
        }
        (crd::GROUP_V1BETA2, "BGPPeer") => push(
            d,
            &mut r.unreadable,
            &mut r.bgp_peers,
            typed(value, &resource, &at),
            src,
        ),
        ("v1", "Service") => push(
            d,
            &mut r.unreadable,
            &mut r.services,
            typed(value, &resource, &at),
            src,
        ),
        ("v1", "Node") => push(
            d,
            &mut r.unreadable,
            &mut r.nodes,
            typed(value, &resource, &at),
            src,
        ),
        ("v1", "Secret") => push(
            d,
            &mut r.unreadable,
            &mut r.secrets,
            typed(value, &resource, &at),
            src,
        ),
        ("discovery.k8s.io/v1", "EndpointSlice") => push(
            d,
            &mut r.unreadable,
            &mut r.endpoint_slices,
            typed(value, &resource, &at),
            src,
        ),
        ("v1", "List") => {
            let YamlNode::Map(entries) = &node.value else {
                return;
            };
            let items = entries.iter().find(|(k, _)| k == "items").map(|(_, v)| v);
            if let Some(Spanned {
                value: YamlNode::Seq(items),
                ..
            }) = items
            {
                for item in items {
                    let origin = Origin {
                        line: line_of(item).or(origin.line),
                        ..origin.clone()
                    };
                    read_object(loaded, item, origin);
                }
            }
        }
        (_, "AddressPool") => d.diagnostics.push(
            error(
                "kind",
                "AddressPool was removed from MetalLB (v0.14) and is not read".into(),
            )
            .value(&kind)
            .fix("convert it to an IPAddressPool plus an L2Advertisement or BGPAdvertisement"),
        ),
        (
            v,
            "IPAddressPool" | "L2Advertisement" | "BGPAdvertisement" | "Community" | "BFDProfile"
            | "BGPPeer",
        ) if v.starts_with("metallb.io/") => {
            let supported = if kind == "BGPPeer" {
                "metallb.io/v1beta2 (or metallb.io/v1beta1)"
            } else {
                "metallb.io/v1beta1"
            };
            d.diagnostics.push(
                error(
                    "apiVersion",
                    format!("herald does not read {kind} in this version"),
                )
                .value(v)
                .fix(format!("write apiVersion: {supported}")),
            )
        }
        (v, k) => d.diagnostics.push(
            Diagnostic::note(
                resource.clone(),
                "",
                format!("herald does not read {k} ({v}); ignored"),
            )
            .at(origin.clone()),
        ),
    }
}

/// The object and its unknown fields, or why it could not be read (and the unknown fields
/// met before that, so they are reported in the same pass).
type Typed<T> = Result<(T, Vec<String>), (Box<Diagnostic>, Vec<String>)>;

/// Where one document's problems go, and how unknown fields count.
struct Sink<'a> {
    diagnostics: &'a mut Vec<Diagnostic>,
    unknown: UnknownFields,
}

/// Adds a read object, and a diagnostic for each unknown field in it. A Service,
/// EndpointSlice or Node that cannot be read, or has unknown fields, gets warnings, not
/// errors: it harms only itself.
fn push<T: kube::Resource<DynamicType = ()>>(
    sink: &mut Sink<'_>,
    unreadable: &mut Vec<Unreadable>,
    into: &mut Vec<Sourced<T>>,
    read: Typed<T>,
    (origin, lines): (&Origin, &Arc<FieldLines>),
) {
    let isolated = isolated_kind(&T::kind(&()));
    let diagnostics = &mut *sink.diagnostics;
    let (object, unknown, resource) = match read {
        Ok((object, unknown)) => {
            let resource = crate::resources::resource_ref(&object);
            (Some(object), unknown, resource)
        }
        Err((mut diagnostic, unknown)) => {
            let resource = diagnostic.resource.clone();
            if isolated {
                diagnostic.severity = Severity::Warning;
                diagnostic.fix = Some(format!(
                    "{}; until then herald skips this {}",
                    diagnostic.fix.as_deref().unwrap_or("correct it"),
                    resource.kind
                ));
            }
            // Known to exist, so references to it are not reported as a second mistake.
            let at = if diagnostic.field.is_empty() {
                String::new()
            } else {
                format!("{}: ", diagnostic.field)
            };
            unreadable.push(Unreadable::new(
                resource.clone(),
                format!("{at}{}", diagnostic.problem),
            ));
            diagnostics.push(*diagnostic);
            (None, unknown, resource)
        }
    };
    let severity = match sink.unknown {
        _ if isolated => Severity::Warning,
        UnknownFields::Error => Severity::Error,
        UnknownFields::Warn => Severity::Warning,
    };
    // Derived custom resources read apiVersion and kind through their type, not fields.
    let mut unknown: Vec<String> = unknown
        .into_iter()
        .filter(|f| f != "apiVersion" && f != "kind")
        .collect();
    unknown.sort_by_key(|f| lines.line_of(f));
    for field in unknown {
        let (parent, name) = field.rsplit_once('.').unwrap_or(("", &field));
        let place = if parent.is_empty() {
            "at the top level".to_owned()
        } else {
            format!("in {parent}")
        };
        let mut at = origin.clone();
        at.line = lines.line_of(&field).or(at.line);
        let mut d = Diagnostic::error(
            resource.clone(),
            &field,
            format!("unknown field {name:?} {place}"),
        )
        .value(name)
        .at(at)
        .fix("remove it or correct its spelling (field names are case-sensitive camelCase)");
        if severity == Severity::Warning {
            d.severity = severity;
            d.problem.push_str(", ignored");
        }
        diagnostics.push(d);
    }
    if let Some(object) = object {
        into.push(Sourced {
            object: Arc::new(object),
            origin: origin.clone(),
            lines: lines.clone(),
        });
    }
}

/// Deserializes `value` as `T`, collecting the paths of fields `T` does not have.
fn typed<T: DeserializeOwned>(
    value: Value,
    resource: &ResourceRef,
    at: &impl Fn(&str) -> Origin,
) -> Typed<T> {
    let mut unknown = Vec::new();
    let mut record = |path: serde_ignored::Path<'_>| unknown.push(ignored_path(&path));
    let ignored = serde_ignored::Deserializer::new(value, &mut record);
    match serde_path_to_error::deserialize::<_, T>(ignored) {
        Ok(object) => Ok((object, unknown)),
        Err(e) => {
            let field = e.path().to_string();
            let field = if field == "." { String::new() } else { field };
            let problem = if crate::diag::may_hold_secret(&resource.kind, &field) {
                crate::diag::SECRET_VALUE_PROBLEM.to_owned()
            } else {
                e.into_inner().to_string()
            };
            let diagnostic = Diagnostic::error(resource.clone(), &field, problem.clone())
                .at(at(&field))
                .fix(type_fix(&problem));
            Err((Box::new(diagnostic), unknown))
        }
    }
}

fn type_fix(problem: &str) -> String {
    if problem.starts_with("missing field") {
        "add the field; it is required".into()
    } else if problem.contains("expected u32")
        || problem.contains("expected i32")
        || problem.contains("expected u16")
    {
        "write a whole number without quotes, within the field's range".into()
    } else if problem.contains("expected a boolean") {
        "write true or false without quotes".into()
    } else {
        "write a value of the type the field takes (see the CRD in deploy/crds/)".into()
    }
}

/// `spec.nodeSelectors[0].matchLabels` from serde_ignored's path: how an unknown field is
/// named in diagnostics, whichever source read it.
pub fn ignored_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path as P;
    match path {
        P::Root => String::new(),
        P::Seq { parent, index } => format!("{}[{index}]", ignored_path(parent)),
        P::Map { parent, key } => {
            let p = ignored_path(parent);
            if p.is_empty() {
                key.clone()
            } else {
                format!("{p}.{key}")
            }
        }
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
            ignored_path(parent)
        }
    }
}

/// A YAML value that remembers where each of its parts was written.
#[derive(Debug)]
enum YamlNode {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<YamlNode>>),
    Map(Vec<(String, Spanned<YamlNode>)>),
}

impl YamlNode {
    /// The JSON value, recording the line of every path under `prefix` into `lines`.
    fn to_json(&self, prefix: &str, lines: &mut FieldLines) -> Value {
        let child = |path: String, node: &Spanned<YamlNode>, lines: &mut FieldLines| {
            if let Some(line) = line_of(node) {
                lines.0.insert(path.clone(), line);
            }
            node.value.to_json(&path, lines)
        };
        match self {
            YamlNode::Null => Value::Null,
            YamlNode::Bool(b) => Value::Bool(*b),
            YamlNode::Int(i) => Value::from(*i),
            YamlNode::UInt(u) => Value::from(*u),
            YamlNode::Float(f) => {
                serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number)
            }
            YamlNode::Str(s) => Value::String(s.clone()),
            YamlNode::Seq(items) => Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, n)| child(format!("{prefix}[{i}]"), n, lines))
                    .collect(),
            ),
            YamlNode::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, n)| {
                        let path = if prefix.is_empty() {
                            k.clone()
                        } else {
                            format!("{prefix}.{k}")
                        };
                        (k.clone(), child(path, n, lines))
                    })
                    .collect(),
            ),
        }
    }
}

impl<'de> Deserialize<'de> for YamlNode {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = YamlNode;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<YamlNode, E> {
        Ok(YamlNode::Null)
    }
    fn visit_none<E>(self) -> Result<YamlNode, E> {
        Ok(YamlNode::Null)
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<YamlNode, D::Error> {
        YamlNode::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<YamlNode, E> {
        Ok(YamlNode::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<YamlNode, E> {
        Ok(YamlNode::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<YamlNode, E> {
        Ok(YamlNode::UInt(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<YamlNode, E> {
        Ok(YamlNode::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<YamlNode, E> {
        Ok(YamlNode::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<YamlNode, E> {
        Ok(YamlNode::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<YamlNode, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(YamlNode::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<YamlNode, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<YamlNode>()? {
            let key = match key {
                YamlNode::Str(s) => s,
                YamlNode::Bool(b) => b.to_string(),
                YamlNode::Int(i) => i.to_string(),
                YamlNode::UInt(u) => u.to_string(),
                YamlNode::Float(f) => f.to_string(),
                YamlNode::Null => "null".into(),
                YamlNode::Seq(_) | YamlNode::Map(_) => {
                    return Err(de::Error::custom("a mapping key must be a plain value"));
                }
            };
            entries.push((key, map.next_value()?));
        }
        Ok(YamlNode::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Severity;

    fn load(text: &str) -> Loaded {
        load_str(text, Some(Path::new("test.yaml")))
    }

    fn errors(l: &Loaded) -> Vec<&Diagnostic> {
        l.diagnostics.iter().filter(|d| d.is_error()).collect()
    }

    #[test]
    fn reads_every_kind_and_notes_the_rest() {
        let l = load(
            "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p, namespace: metallb-system}\nspec:\n  addresses: [192.0.2.0/24]\n\
             ---\napiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: l2}\n\
             ---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n\
             ---\n",
        );
        assert!(errors(&l).is_empty(), "{:?}", l.diagnostics);
        assert_eq!(l.resources.pools.len(), 1);
        assert_eq!(l.resources.l2_advertisements.len(), 1);
        let note = &l.diagnostics[0];
        assert_eq!(note.severity, Severity::Note);
        assert_eq!(note.origin.document, Some(3));
        assert!(note.problem.contains("ConfigMap"));
    }

    #[test]
    fn unknown_fields_are_errors_with_their_line() {
        let l = load(
            "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata:\n  name: r1\nspec:\n  myASN: 64500\n  peerASN: 64501\n  peerAddress: 192.0.2.1\n  passwordSecret:\n    name: s\n    key: password\n  aggregationLenght: 24\n",
        );
        let e = errors(&l);
        let fields: Vec<(&str, Option<usize>)> = e
            .iter()
            .map(|d| (d.field.as_str(), d.origin.line))
            .collect();
        assert_eq!(
            fields,
            [
                ("spec.passwordSecret.key", Some(11)),
                ("spec.aggregationLenght", Some(12))
            ]
        );
        assert_eq!(e[0].resource.to_string(), "BGPPeer r1");
        // The object is still read, so validation can report its other problems too.
        assert_eq!(l.resources.bgp_peers.len(), 1);
    }

    #[test]
    fn an_unreadable_object_is_not_reported_again_as_missing() {
        let l = load(
            "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: r}\nspec:\n  myASN: 64500\n  peerASN: 64501\n  peerAddress: 192.0.2.1\n  holdTime: 90\n\
             ---\napiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: a}\nspec: {peers: [r]}\n",
        );
        let mut all = l.diagnostics.clone();
        all.extend(crate::validate(&l.resources).diagnostics);
        let fields: Vec<&str> = all
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.field.as_str())
            .collect();
        assert_eq!(fields, ["spec.holdTime"], "{all:#?}");
    }

    #[test]
    fn wrong_types_name_the_field_and_line() {
        let l = load(
            "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: r}\nspec:\n  myASN: sixty\n",
        );
        let e = errors(&l);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].field, "spec.myASN");
        assert_eq!(e[0].origin.line, Some(5));
        assert!(e[0].problem.contains("expected u32"), "{}", e[0].problem);
    }

    #[test]
    fn a_wrong_type_does_not_hide_unknown_fields() {
        let l = load(
            "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: r}\nspec:\n  holdTim: 90s\n  myASN: sixty\n",
        );
        let fields: Vec<&str> = errors(&l).iter().map(|d| d.field.as_str()).collect();
        assert_eq!(fields, ["spec.myASN", "spec.holdTim"]);
    }

    #[test]
    fn v1beta1_peers_become_v1beta2() {
        let l = load(
            "apiVersion: metallb.io/v1beta1\nkind: BGPPeer\nmetadata: {name: r}\nspec:\n  myASN: 64500\n  peerASN: 64501\n  peerAddress: 192.0.2.1\n  nodeSelectors:\n  - matchLabels: {zone: a}\n",
        );
        assert!(errors(&l).is_empty(), "{:?}", l.diagnostics);
        let spec = &l.resources.bgp_peers[0].object.spec;
        assert_eq!(spec.peer_asn, Some(64501));
        assert_eq!(
            spec.node_selectors[0].match_labels.as_ref().unwrap()["zone"],
            "a"
        );
    }

    #[test]
    fn lists_exported_objects_and_empty_status() {
        let l = load(
            "apiVersion: v1\nkind: List\nitems:\n- apiVersion: metallb.io/v1beta1\n  kind: L2Advertisement\n  metadata: {name: a}\n  status: {}\n- apiVersion: v1\n  kind: Service\n  metadata: {name: s, namespace: default}\n  spec: {type: LoadBalancer}\n  status:\n    loadBalancer:\n      ingress: [{ip: 192.0.2.1}, {ip: '2001:db8::1'}]\n",
        );
        assert!(errors(&l).is_empty(), "{:?}", l.diagnostics);
        assert_eq!(l.resources.l2_advertisements.len(), 1);
        assert_eq!(l.resources.services.len(), 1);
        assert_eq!(l.resources.services[0].origin.line, Some(8));
    }

    #[test]
    fn syntax_errors_and_missing_kind_and_old_versions() {
        assert_eq!(errors(&load("a: [1, 2\n")).len(), 1);
        let l = load(
            "metadata: {name: x}\n---\napiVersion: metallb.io/v1alpha1\nkind: IPAddressPool\nmetadata: {name: y}\n---\napiVersion: metallb.io/v1beta1\nkind: AddressPool\nmetadata: {name: z}\n",
        );
        let e = errors(&l);
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].field, "apiVersion");
        assert!(e[1].fix.as_deref().unwrap().contains("metallb.io/v1beta1"));
        assert!(e[2].fix.as_deref().unwrap().contains("IPAddressPool"));
    }

    #[test]
    fn unreadable_file_is_an_error_not_a_panic() {
        let l = load_files(&["/nonexistent/herald.yaml"]);
        assert_eq!(errors(&l).len(), 1);
        assert!(
            l.diagnostics[0]
                .to_string()
                .starts_with("/nonexistent/herald.yaml: error")
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics(text in "\\PC{0,200}") {
            let _ = load_str(&text, None);
        }
    }
}
