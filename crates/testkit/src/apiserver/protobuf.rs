//! Just enough of Kubernetes' protobuf encoding for the typed writes kubectl sends that way:
//! `kubectl create namespace NAME` posts a protobuf Namespace. The envelope (`k8s\0`, then a
//! `runtime.Unknown` with the type and the raw object) is read, and of the object its
//! ObjectMeta (name, generateName, namespace, labels, annotations); other kinds are refused as
//! a real server refuses what it cannot decode. Nothing here panics on any input.

use serde_json::{Map, Value, json};

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self.bytes.split_first()?;
            self.bytes = rest;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    /// The next field: (number, wire type, payload for length-delimited fields).
    fn field(&mut self) -> Option<(u64, u64, &'a [u8])> {
        let key = self.varint()?;
        let (number, wire) = (key >> 3, key & 7);
        match wire {
            0 => {
                self.varint()?;
                Some((number, wire, &[]))
            }
            1 => self.skip(8).map(|_| (number, wire, &[][..])),
            2 => {
                let len = usize::try_from(self.varint()?).ok()?;
                let payload = self.skip(len)?;
                Some((number, wire, payload))
            }
            5 => self.skip(4).map(|_| (number, wire, &[][..])),
            _ => None,
        }
    }

    fn skip(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < n {
            return None;
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Some(head)
    }

    fn fields(bytes: &'a [u8]) -> Option<Vec<(u64, &'a [u8])>> {
        let mut r = Reader { bytes };
        let mut out = Vec::new();
        while !r.bytes.is_empty() {
            let (n, wire, payload) = r.field()?;
            if wire == 2 {
                out.push((n, payload));
            }
        }
        Some(out)
    }
}

fn text(bytes: &[u8]) -> Option<String> {
    String::from_utf8(bytes.to_vec()).ok()
}

fn string_map(entries: &[&[u8]]) -> Option<Value> {
    let mut map = Map::new();
    for entry in entries {
        let fields = Reader::fields(entry)?;
        let get = |n| fields.iter().find(|(f, _)| *f == n).map(|(_, p)| *p);
        map.insert(
            text(get(1).unwrap_or(&[]))?,
            json!(text(get(2).unwrap_or(&[]))?),
        );
    }
    Some(Value::Object(map))
}

fn object_meta(bytes: &[u8]) -> Option<Value> {
    let fields = Reader::fields(bytes)?;
    let mut meta = Map::new();
    for (n, key) in [(1, "name"), (2, "generateName"), (3, "namespace")] {
        if let Some((_, p)) = fields.iter().find(|(f, _)| *f == n) {
            let s = text(p)?;
            if !s.is_empty() {
                meta.insert(key.into(), json!(s));
            }
        }
    }
    for (n, key) in [(11, "labels"), (12, "annotations")] {
        let entries: Vec<&[u8]> = fields
            .iter()
            .filter(|(f, _)| *f == n)
            .map(|(_, p)| *p)
            .collect();
        if !entries.is_empty() {
            meta.insert(key.into(), string_map(&entries)?);
        }
    }
    Some(Value::Object(meta))
}

fn get<'a>(fields: &[(u64, &'a [u8])], n: u64) -> Option<&'a [u8]> {
    fields.iter().find(|(f, _)| *f == n).map(|(_, p)| *p)
}

/// The JSON form of a protobuf-encoded object, or why it cannot be read.
pub fn decode(bytes: &[u8]) -> Result<Value, String> {
    let body = bytes
        .strip_prefix(b"k8s\0")
        .ok_or("not a Kubernetes protobuf envelope")?;
    let bad = || "the protobuf body could not be decoded".to_owned();
    let envelope = Reader::fields(body).ok_or_else(bad)?;
    let type_meta = Reader::fields(get(&envelope, 1).unwrap_or(&[])).ok_or_else(bad)?;
    let api_version = text(get(&type_meta, 1).unwrap_or(&[])).ok_or_else(bad)?;
    let kind = text(get(&type_meta, 2).unwrap_or(&[])).ok_or_else(bad)?;
    if (api_version.as_str(), kind.as_str()) != ("v1", "Namespace") {
        return Err(format!(
            "this server reads {api_version} {kind} as JSON only; send it as application/json"
        ));
    }
    let raw = Reader::fields(get(&envelope, 2).unwrap_or(&[])).ok_or_else(bad)?;
    let meta = object_meta(get(&raw, 1).unwrap_or(&[])).ok_or_else(bad)?;
    Ok(json!({"apiVersion": api_version, "kind": kind, "metadata": meta, "spec": {}}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_create_namespace_is_read() {
        // What kubectl 1.32 posts for `kubectl create namespace x`.
        let body = b"k8s\x00\n\x0f\n\x02v1\x12\tNamespace\x12\x19\n\x11\n\x01x\x12\x00\x1a\x00\"\x00*\x002\x008\x00B\x00\x12\x00\x1a\x02\n\x00\x1a\x00\"\x00";
        let v = decode(body).unwrap();
        assert_eq!(v["kind"], "Namespace");
        assert_eq!(v["metadata"], json!({"name": "x"}));
    }

    #[test]
    fn nothing_panics_on_garbage() {
        for n in 0..64u8 {
            let mut b = b"k8s\x00".to_vec();
            b.extend((0..n).map(|i| i.wrapping_mul(37).wrapping_add(n)));
            let _ = decode(&b);
        }
        assert!(decode(b"").is_err());
        assert!(decode(b"k8s\x00\n\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01").is_err());
    }
}
