//! The HTTP face: one handler parses the REST path against the resource table, counts the
//! request, applies the injected faults, and runs the verb on the store. Watches are a task
//! per request streaming newline-delimited events.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::resources::{self, RESOURCES, ResourceDef, StatusSub};
use super::select::Selector;
use super::store::{ApiError, EventType, Result, Target};
use super::{Controls, FaultMode};

/// What a path under `/api` or `/apis` names.
#[derive(Debug)]
enum Route {
    Version,
    Health,
    ApiVersions,
    GroupList,
    Group(String),
    ResourceList(String, String),
    OpenApiIndex,
    OpenApi(String, String),
    Resource(ResReq),
}

impl Route {
    /// A discovery document: what clients read to learn which groups, versions and
    /// resources the server has.
    fn is_discovery(&self) -> bool {
        matches!(
            self,
            Route::ApiVersions
                | Route::GroupList
                | Route::Group(_)
                | Route::ResourceList(..)
                | Route::OpenApiIndex
                | Route::OpenApi(..)
        )
    }
}

#[derive(Debug)]
struct ResReq {
    res: usize,
    version: &'static str,
    namespace: Option<String>,
    name: Option<String>,
    status: bool,
}

impl ResReq {
    fn def(&self) -> &'static ResourceDef {
        &RESOURCES[self.res]
    }
    fn target(&self) -> Target<'_> {
        Target {
            res: resources::storage_of(self.res),
            namespace: self.namespace.as_deref().unwrap_or(""),
        }
    }
    /// Stored objects leave in the version they were asked for.
    fn output(&self, obj: Value) -> Value {
        resources::to_served(self.res, self.version, obj)
    }
    fn input(&self, obj: Value) -> Value {
        resources::to_storage(self.res, obj)
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_route(path: &str) -> Option<Route> {
    let segs: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    match segs.as_slice() {
        ["version"] => Some(Route::Version),
        ["healthz" | "readyz" | "livez"] => Some(Route::Health),
        ["api"] => Some(Route::ApiVersions),
        ["openapi", "v3"] => Some(Route::OpenApiIndex),
        ["openapi", "v3", "api", v] => Some(Route::OpenApi(String::new(), v.to_string())),
        ["openapi", "v3", "apis", g, v] => Some(Route::OpenApi(g.to_string(), v.to_string())),
        ["apis"] => Some(Route::GroupList),
        ["apis", g] => Some(Route::Group(g.to_string())),
        ["api", v] => resources::group_served("", v)
            .then(|| Route::ResourceList(String::new(), v.to_string())),
        ["apis", g, v] => {
            resources::group_served(g, v).then(|| Route::ResourceList(g.to_string(), v.to_string()))
        }
        ["api", v, rest @ ..] => resource_route("", v, rest).map(Route::Resource),
        ["apis", g, v, rest @ ..] => resource_route(g, v, rest).map(Route::Resource),
        _ => None,
    }
}

fn resource_route(group: &str, version: &str, mut rest: &[&str]) -> Option<ResReq> {
    let mut namespace = None;
    // `namespaces/NS/RESOURCE/...` is a namespaced path; `namespaces/NAME[/status]` is the
    // Namespace object itself.
    if rest.len() >= 3 && rest[0] == "namespaces" && !matches!(rest[2], "status" | "finalize") {
        namespace = Some(rest[1].to_string());
        rest = &rest[2..];
    }
    let (plural, name, sub) = match rest {
        [p] => (*p, None, None),
        [p, n] => (*p, Some(n.to_string()), None),
        [p, n, s] => (*p, Some(n.to_string()), Some(*s)),
        _ => return None,
    };
    let (res, version) = resources::find(group, version, plural)?;
    let def = &RESOURCES[res];
    if namespace.is_some() != def.namespaced && (namespace.is_some() || name.is_some()) {
        return None;
    }
    let status = match sub {
        None => false,
        Some("status") if def.status != StatusSub::None => true,
        Some(_) => return None,
    };
    Some(ResReq {
        res,
        version,
        namespace,
        name,
        status,
    })
}

fn json_response(code: u16, body: &Value) -> Response {
    let mut r = (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        body.to_string(),
    )
        .into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

fn error_response(e: &ApiError) -> Response {
    json_response(e.code, &e.status())
}

fn not_found_route() -> Response {
    error_response(&ApiError::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    ))
}

fn method_not_allowed() -> ApiError {
    ApiError::new(
        405,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource",
    )
}

/// Who is asking: the bearer token when there is one (each kubeconfig this server writes has
/// its own), else the User-Agent.
fn client_id(headers: &HeaderMap) -> String {
    let text = |h| {
        headers
            .get(h)
            .and_then(|v: &header::HeaderValue| v.to_str().ok())
    };
    if let Some(token) = text(header::AUTHORIZATION).and_then(|a| a.strip_prefix("Bearer ")) {
        return token.trim().to_string();
    }
    text(header::USER_AGENT).unwrap_or("anonymous").to_string()
}

pub async fn handle(State(s): State<Arc<Controls>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let query: HashMap<String, String> =
        form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    if let Some(what) = path.strip_prefix("/testkit/") {
        return control(&s, what, &query);
    }
    // A kubeconfig written for a client names it in the server URL's path, since kubectl sends
    // no bearer token over plain HTTP.
    let (client, path) = match path
        .strip_prefix("/clients/")
        .and_then(|rest| rest.split_once('/'))
    {
        Some((name, rest)) => (percent_decode(name), format!("/{rest}")),
        None => (client_id(&parts.headers), path),
    };
    let Some(route) = parse_route(&path) else {
        return not_found_route();
    };
    let watch = matches!(query.get("watch").map(String::as_str), Some("true" | "1"));
    if let Route::Resource(r) = &route {
        let verb = match (&parts.method, r.name.is_some()) {
            (&Method::GET, _) if watch => "watch",
            (&Method::GET, true) => "get",
            (&Method::GET, false) => "list",
            (&Method::POST, _) => "create",
            (&Method::PUT, _) => "update",
            (&Method::PATCH, _) => "patch",
            (&Method::DELETE, true) => "delete",
            (&Method::DELETE, false) => "deletecollection",
            _ => "other",
        };
        let resource = if r.status {
            format!("{}/status", r.def().plural)
        } else {
            r.def().plural.to_string()
        };
        s.count(&client, verb, &resource);
    }
    if let Err(e) = s.gate(&client).await {
        return error_response(&e);
    }
    if route.is_discovery() && s.faults.borrow().discovery_broken {
        return error_response(&ApiError::new(
            503,
            "ServiceUnavailable",
            "the server is currently unable to handle the request",
        ));
    }
    let bytes = match axum::body::to_bytes(body, 64 << 20).await {
        Ok(b) => b,
        Err(e) => return error_response(&ApiError::bad_request(e.to_string())),
    };
    match route {
        Route::Version => json_response(200, &resources::version()),
        Route::Health => "ok".into_response(),
        Route::ApiVersions => json_response(200, &resources::api_versions(&s.server_address)),
        Route::GroupList => json_response(200, &resources::api_group_list()),
        Route::Group(g) => match resources::api_group(&g) {
            Some(doc) => json_response(200, &doc),
            None => not_found_route(),
        },
        Route::ResourceList(g, v) => json_response(200, &resources::resource_list(&g, &v)),
        Route::OpenApiIndex => json_response(200, &resources::openapi_v3_index()),
        Route::OpenApi(g, v) => match resources::openapi_v3(&g, &v) {
            Some(doc) => json_response(200, &doc),
            None => not_found_route(),
        },
        Route::Resource(r) => {
            let content_type = parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/json")
                .to_string();
            let result = match parts.method {
                Method::GET if watch => return watch_response(&s, &r, &query, &client),
                Method::GET if r.name.is_some() => read(&s, &r),
                Method::GET => list(&s, &r, &query),
                Method::POST
                    if r.name.is_none() && (r.namespace.is_some() || !r.def().namespaced) =>
                {
                    create(&s, &r, &content_type, &bytes)
                }
                Method::PUT if r.name.is_some() => update(&s, &r, &bytes),
                Method::PATCH if r.name.is_some() => patch(&s, &r, &content_type, &bytes),
                Method::DELETE if r.name.is_some() => delete(&s, &r, &bytes),
                Method::DELETE => delete_collection(&s, &r, &query),
                _ => Err(method_not_allowed()),
            };
            match result {
                Ok((code, v)) if parts.method == Method::GET && wants_table(&parts.headers) => {
                    json_response(code, &as_table(&r, v))
                }
                Ok((code, v)) => json_response(code, &v),
                Err(e) => error_response(&e),
            }
        }
    }
}

type Reply = Result<(u16, Value)>;

fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("as=Table"))
}

/// A list or an object as the Table kubectl asked for.
fn as_table(r: &ResReq, v: Value) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    match v.get("items").and_then(Value::as_array) {
        Some(items) => resources::table(r.res, items, v["metadata"].clone(), now),
        None => {
            let meta = json!({"resourceVersion": v["metadata"]["resourceVersion"]});
            resources::table(r.res, std::slice::from_ref(&v), meta, now)
        }
    }
}

fn parse_body(bytes: &[u8]) -> Result<Value> {
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::bad_request(format!("the body of the request could not be decoded: {e}"))
    })
}

fn read(s: &Controls, r: &ResReq) -> Reply {
    let name = r.name.as_deref().unwrap_or_default();
    let obj = s.store().get(&r.target(), name)?;
    Ok((200, r.output(obj)))
}

struct Filter {
    namespace: Option<String>,
    labels: Selector,
    fields: Selector,
}

impl Filter {
    fn new(r: &ResReq, q: &HashMap<String, String>) -> Result<Self> {
        let get = |k: &str| q.get(k).map(String::as_str).unwrap_or("");
        let mut fields = get("fieldSelector").to_string();
        if let Some(name) = &r.name {
            // A watch on a single object's path is a watch with a name selector.
            fields = format!("metadata.name={name},{fields}")
                .trim_end_matches(',')
                .to_string();
        }
        Ok(Self {
            namespace: r.namespace.clone(),
            labels: Selector::parse_labels(get("labelSelector")).map_err(ApiError::bad_request)?,
            fields: Selector::parse_fields(&fields).map_err(ApiError::bad_request)?,
        })
    }

    fn matches(&self, obj: &Value) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|ns| obj["metadata"]["namespace"].as_str() == Some(ns))
            && self.labels.matches_labels(obj)
            && self.fields.matches_fields(obj)
    }
}

fn encode_continue(rv: u64, ns: &str, name: &str) -> String {
    format!("{rv}/{ns}/{name}")
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode_continue(token: &str) -> Option<(u64, String, String)> {
    let bytes: Option<Vec<u8>> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(token.get(i..i + 2)?, 16).ok())
        .collect();
    let text = String::from_utf8(bytes?).ok()?;
    let mut parts = text.splitn(3, '/');
    let rv = parts.next()?.parse().ok()?;
    Some((rv, parts.next()?.to_string(), parts.next()?.to_string()))
}

fn list(s: &Controls, r: &ResReq, q: &HashMap<String, String>) -> Reply {
    let filter = Filter::new(r, q)?;
    let limit = q
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let store = s.store();
    let (list_rv, after) = match q.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => {
            let (rv, ns, name) = decode_continue(token)
                .ok_or_else(|| ApiError::bad_request("continue key is not valid"))?;
            if rv < store.compacted() {
                return Err(ApiError::expired(
                    "The provided continue parameter is too old to display a consistent list result. \
                     You can start a new list without the continue parameter.",
                ));
            }
            (rv, Some((ns, name)))
        }
        None => {
            let asked = q.get("resourceVersion").filter(|v| !v.is_empty());
            let exact = q.get("resourceVersionMatch").map(String::as_str) == Some("Exact");
            if let (Some(v), true) = (asked, exact) {
                let v: u64 = v
                    .parse()
                    .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {v:?}")))?;
                if v < store.compacted() {
                    return Err(ApiError::expired(format!(
                        "too old resource version: {v} ({})",
                        store.compacted()
                    )));
                }
            }
            (store.rv(), None)
        }
    };
    // Later pages read the current state rather than a snapshot at `list_rv`; a watch from
    // `list_rv` replays whatever changed in between, so a reflector still ends up exact.
    let mut items: Vec<Value> = store
        .list(resources::storage_of(r.res), r.namespace.as_deref(), after)
        .map(|o| r.output(o.clone()))
        .filter(|o| filter.matches(o))
        .take(limit.map_or(usize::MAX, |l| l + 1))
        .collect();
    drop(store);
    let mut metadata = json!({"resourceVersion": list_rv.to_string()});
    if let Some(l) = limit
        && items.len() > l
    {
        items.truncate(l);
        let last = &items[l - 1]["metadata"];
        let token = encode_continue(
            list_rv,
            last["namespace"].as_str().unwrap_or(""),
            last["name"].as_str().unwrap_or(""),
        );
        metadata["continue"] = json!(token);
    }
    let def = r.def();
    Ok((
        200,
        json!({
            "kind": format!("{}List", def.kind),
            "apiVersion": def.api_version(r.version),
            "metadata": metadata,
            "items": items,
        }),
    ))
}

fn create(s: &Controls, r: &ResReq, content_type: &str, bytes: &[u8]) -> Reply {
    if r.status {
        return Err(method_not_allowed());
    }
    // kubectl's typed creates (`kubectl create namespace`) come as protobuf.
    let obj = if content_type.starts_with("application/vnd.kubernetes.protobuf") {
        super::protobuf::decode(bytes).map_err(|e| ApiError::new(415, "UnsupportedMediaType", e))?
    } else {
        parse_body(bytes)?
    };
    if r.def().group == "events.k8s.io" {
        let mut checked = obj.clone();
        // The namespace the Event goes to is the request's, whatever the body says.
        if let Some(meta) = checked.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert(
                "namespace".into(),
                json!(r.namespace.clone().unwrap_or_default()),
            );
        }
        super::store::validate_event_create(r.def(), &checked)?;
    }
    let obj = r.input(obj);
    let created = s.write(|st| st.create(&r.target(), obj))?;
    Ok((201, r.output(created)))
}

fn update(s: &Controls, r: &ResReq, bytes: &[u8]) -> Reply {
    let obj = r.input(parse_body(bytes)?);
    let name = r.name.as_deref().unwrap_or_default();
    let updated = s.write(|st| st.update(&r.target(), name, obj, r.status))?;
    Ok((200, r.output(updated)))
}

fn strip_directives(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| !k.starts_with('$'));
            m.values_mut().for_each(strip_directives);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_directives),
        _ => {}
    }
}

fn patch(s: &Controls, r: &ResReq, content_type: &str, bytes: &[u8]) -> Reply {
    let name = r.name.as_deref().unwrap_or_default();
    let media = content_type.split(';').next().unwrap_or("").trim();
    let apply = media == "application/apply-patch+yaml";
    let body = parse_body(bytes).map_err(|e| {
        if apply {
            ApiError::new(
                415,
                "UnsupportedMediaType",
                "server-side apply accepts JSON bodies only",
            )
        } else {
            e
        }
    })?;
    let ops = match media {
        "application/json-patch+json" => Some(
            serde_json::from_value::<json_patch::Patch>(body.clone())
                .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?,
        ),
        "application/merge-patch+json" | "application/strategic-merge-patch+json" => None,
        _ if apply => None,
        other => {
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                format!(
                    "the body of the request was in an unknown format - accepted media types include: \
                     application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {other:?})"
                ),
            ));
        }
    };
    // The patch applies to the object as this request's type serves it.
    let run = |o: &mut Value| -> Result<()> {
        let mut served = r.output(o.take());
        match &ops {
            Some(ops) => json_patch::patch(&mut served, ops).map_err(|e| {
                ApiError::new(422, "Invalid", format!("the JSON patch failed: {e}"))
            })?,
            None => json_patch::merge(&mut served, &body),
        }
        // Strategic merge patch is served as a JSON merge patch, minus its `$`-directives:
        // right for maps and scalars, which is what herald and its tests patch.
        if media == "application/strategic-merge-patch+json" {
            strip_directives(&mut served);
        }
        *o = r.input(served);
        Ok(())
    };
    let t = r.target();
    s.write(|st| match st.get(&t, name) {
        // Server-side apply, approximately: create when absent, else a merge of the applied
        // configuration. Field ownership is not tracked.
        Err(e) if apply && e.code == 404 && !r.status => {
            let mut obj = body.clone();
            obj["metadata"]["name"] = json!(name);
            st.create(&t, r.input(obj)).map(|o| (201, r.output(o)))
        }
        Err(e) => Err(e),
        Ok(_) => st
            .patch(&t, name, run, r.status)
            .map(|o| (200, r.output(o))),
    })
}

fn delete(s: &Controls, r: &ResReq, bytes: &[u8]) -> Reply {
    if r.status {
        return Err(method_not_allowed());
    }
    let opts = if bytes.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        parse_body(bytes)?
    };
    let name = r.name.as_deref().unwrap_or_default();
    let gone = s.write(|st| st.delete(&r.target(), name, &opts["preconditions"]))?;
    Ok((200, r.output(gone)))
}

fn delete_collection(s: &Controls, r: &ResReq, q: &HashMap<String, String>) -> Reply {
    if r.status {
        return Err(method_not_allowed());
    }
    let filter = Filter::new(r, q)?;
    let deleted = s.write(|st| {
        let names: Vec<(String, String)> = st
            .list(resources::storage_of(r.res), r.namespace.as_deref(), None)
            .map(|o| r.output(o.clone()))
            .filter(|o| filter.matches(o))
            .map(|o| {
                let m = &o["metadata"];
                let text = |f: &str| m[f].as_str().unwrap_or("").to_string();
                (text("namespace"), text("name"))
            })
            .collect();
        names
            .into_iter()
            .map(|(ns, name)| {
                let t = Target {
                    res: resources::storage_of(r.res),
                    namespace: &ns,
                };
                st.delete(&t, &name, &Value::Null).map(|o| r.output(o))
            })
            .collect::<Result<Vec<_>>>()
    })?;
    let def = r.def();
    Ok((
        200,
        json!({
            "kind": format!("{}List", def.kind),
            "apiVersion": def.api_version(r.version),
            "metadata": {"resourceVersion": s.store().rv().to_string()},
            "items": deleted,
        }),
    ))
}

struct WatchSpec {
    res: usize,
    version: &'static str,
    filter: Filter,
    /// None: start with the current state as ADDED events.
    from: Option<u64>,
    bookmarks: bool,
    initial_end_bookmark: bool,
    timeout: Option<Duration>,
    client: String,
}

fn watch_response(
    s: &Arc<Controls>,
    r: &ResReq,
    q: &HashMap<String, String>,
    client: &str,
) -> Response {
    let spec = (|| {
        let flag = |k: &str| matches!(q.get(k).map(String::as_str), Some("true" | "1"));
        let from = match q.get("resourceVersion").map(String::as_str) {
            None | Some("") | Some("0") => None,
            Some(v) => Some(
                v.parse::<u64>()
                    .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {v:?}")))?,
            ),
        };
        let send_initial = flag("sendInitialEvents");
        Ok::<_, ApiError>(WatchSpec {
            res: r.res,
            version: r.version,
            filter: Filter::new(r, q)?,
            // A streaming list sends the current state whatever version it names.
            from: if send_initial { None } else { from },
            bookmarks: flag("allowWatchBookmarks"),
            initial_end_bookmark: send_initial,
            timeout: q
                .get("timeoutSeconds")
                .and_then(|t| t.parse().ok())
                .map(Duration::from_secs),
            client: client.to_string(),
        })
    })();
    let spec = match spec {
        Ok(spec) => spec,
        Err(e) => return error_response(&e),
    };
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(64);
    tokio::spawn(run_watch(s.clone(), spec, tx));
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    resp
}

fn event_line(kind: &str, object: Value) -> Bytes {
    let mut line = json!({"type": kind, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

struct WatchCount(Arc<Controls>);

impl Drop for WatchCount {
    fn drop(&mut self) {
        self.0.open_watches.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn run_watch(s: Arc<Controls>, w: WatchSpec, tx: mpsc::Sender<std::io::Result<Bytes>>) {
    s.open_watches.fetch_add(1, Ordering::SeqCst);
    let _count = WatchCount(s.clone());
    let def = &RESOURCES[w.res];
    let stored = resources::storage_of(w.res);
    let output = |o: Value| resources::to_served(w.res, w.version, o);
    let bookmark = |rv: u64, initial_end: bool| {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        event_line(
            "BOOKMARK",
            json!({"kind": def.kind, "apiVersion": def.api_version(w.version), "metadata": meta}),
        )
    };
    let mut faults = s.faults.subscribe();
    let epoch = faults.borrow_and_update().watch_epoch;
    let mut rv_rx = s.rv_tx.subscribe();
    let (mut cursor, mut pending, expired) = {
        let store = s.store();
        rv_rx.borrow_and_update();
        match w.from {
            None => {
                let initial: Vec<Bytes> = store
                    .list(stored, w.filter.namespace.as_deref(), None)
                    .map(|o| output(o.clone()))
                    .filter(|o| w.filter.matches(o))
                    .map(|o| event_line("ADDED", o))
                    .collect();
                (store.rv(), initial, false)
            }
            Some(from) if from < store.compacted() => {
                let e = ApiError::expired(format!(
                    "too old resource version: {from} ({})",
                    store.compacted()
                ));
                (from, vec![event_line("ERROR", e.status())], true)
            }
            Some(from) => {
                // Events since `from` already happened: have the loop send them at once.
                rv_rx.mark_changed();
                (from, Vec::new(), false)
            }
        }
    };
    if w.initial_end_bookmark && w.bookmarks && !expired {
        pending.push(bookmark(cursor, true));
    }
    for line in pending {
        if tx.send(Ok(line)).await.is_err() {
            return;
        }
    }
    if expired {
        return;
    }
    let deadline = w.timeout.map(|t| tokio::time::Instant::now() + t);
    let mut tick = tokio::time::interval(s.bookmark_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            changed = rv_rx.changed() => {
                if changed.is_err() {
                    return;
                }
                let (lines, now) = {
                    let store = s.store();
                    rv_rx.borrow_and_update();
                    (store.events_since(stored, cursor), store.rv())
                };
                let lines = match lines {
                    Ok(events) => events.into_iter().filter_map(|e| {
                        let object = output(e.object);
                        let is = w.filter.matches(&object);
                        let was = e.old.is_some_and(|o| w.filter.matches(&output(o)));
                        let kind = match (e.kind, was, is) {
                            (EventType::Modified, true, true) => "MODIFIED",
                            (EventType::Modified, false, true) => "ADDED",
                            (EventType::Modified, true, false) => "DELETED",
                            (EventType::Added | EventType::Deleted, _, true) => e.kind.as_str(),
                            _ => return None,
                        };
                        Some(event_line(kind, object))
                    }).collect::<Vec<_>>(),
                    Err(e) => {
                        // Events this watch has not sent were forgotten: tell it, as a real
                        // server does, and end.
                        let _ = tx.send(Ok(event_line("ERROR", e.status()))).await;
                        return;
                    }
                };
                cursor = now;
                for line in lines {
                    if tx.send(Ok(line)).await.is_err() {
                        return;
                    }
                }
            }
            _ = faults.changed() => {
                let f = faults.borrow_and_update().clone();
                if f.watch_epoch != epoch || f.stopped.is_some() || f.cut.contains_key(&w.client) {
                    // Cut the connection mid-stream, as a failing server or network would.
                    let _ = tx.send(Err(std::io::Error::other("watch dropped by the test"))).await;
                    return;
                }
            }
            _ = tick.tick(), if w.bookmarks => {
                if tx.send(Ok(bookmark(cursor, false))).await.is_err() {
                    return;
                }
            }
            _ = async { tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)).await }, if deadline.is_some() => return,
            _ = tx.closed() => return,
        }
    }
}

fn control(s: &Controls, what: &str, q: &HashMap<String, String>) -> Response {
    let mode = || match q.get("mode").map(String::as_str) {
        Some("unavailable") => FaultMode::Unavailable,
        _ => FaultMode::Hang,
    };
    let client = || q.get("client").cloned().unwrap_or_default();
    match what.trim_end_matches('/') {
        "counters" => {
            let counts: Vec<Value> = s
                .request_counts()
                .into_iter()
                .map(|c| json!({"client": c.client, "verb": c.verb, "resource": c.resource, "count": c.count}))
                .collect();
            return json_response(200, &json!(counts));
        }
        "reset-counters" => s.reset_counters(),
        "stop" => s.stop_with(mode()),
        "resume" => s.resume(),
        "delay" => s.set_delay(Duration::from_millis(
            q.get("ms").and_then(|m| m.parse().ok()).unwrap_or(0),
        )),
        "drop-watches" => s.drop_watches(),
        "history" => match q.get("limit").and_then(|l| l.parse().ok()) {
            Some(limit) => s.set_history_limit(limit),
            None => return error_response(&ApiError::bad_request("history needs ?limit=N")),
        },
        "clear-history" => s.clear_history(),
        "cut-off" => s.cut_off_with(&client(), mode()),
        "restore" => s.restore(&client()),
        "discovery" => s.break_discovery(q.get("broken").map(String::as_str) == Some("true")),
        "state" => {
            return json_response(
                200,
                &json!({
                    "resourceVersion": s.store().rv(),
                    "openWatches": s.open_watches.load(Ordering::SeqCst),
                }),
            );
        }
        _ => return not_found_route(),
    }
    json_response(200, &json!({"ok": true}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let r = |p| match parse_route(p) {
            Some(Route::Resource(r)) => Some((
                RESOURCES[r.res].plural,
                r.version,
                r.namespace,
                r.name,
                r.status,
            )),
            _ => None,
        };
        assert_eq!(
            r("/api/v1/services"),
            Some(("services", "v1", None, None, false))
        );
        assert_eq!(
            r("/api/v1/namespaces/a/services/x/status"),
            Some(("services", "v1", Some("a".into()), Some("x".into()), true))
        );
        assert_eq!(
            r("/api/v1/namespaces/a"),
            Some(("namespaces", "v1", None, Some("a".into()), false))
        );
        assert_eq!(
            r("/api/v1/namespaces/a/status"),
            Some(("namespaces", "v1", None, Some("a".into()), true))
        );
        assert_eq!(
            r("/api/v1/nodes/n1"),
            Some(("nodes", "v1", None, Some("n1".into()), false))
        );
        assert_eq!(r("/api/v1/namespaces/a/nodes/n1"), None);
        assert_eq!(r("/api/v1/services/x"), None);
        assert_eq!(r("/api/v1/namespaces/a/secrets/x/status"), None);
        assert_eq!(
            r("/apis/metallb.io/v1beta1/namespaces/m/bgppeers/p"),
            Some((
                "bgppeers",
                "v1beta1",
                Some("m".into()),
                Some("p".into()),
                false
            ))
        );
        assert_eq!(
            r("/apis/metallb.io/v1beta2/namespaces/m/ipaddresspools"),
            None
        );
        assert_eq!(r("/api/v1/namespaces/a/leases/x%3A1"), None);
        assert_eq!(
            r("/apis/coordination.k8s.io/v1/namespaces/a/leases/x%3A1"),
            Some(("leases", "v1", Some("a".into()), Some("x:1".into()), false))
        );
    }

    #[test]
    fn continue_tokens_round_trip() {
        let t = encode_continue(42, "ns", "a-b");
        assert_eq!(decode_continue(&t), Some((42, "ns".into(), "a-b".into())));
        assert_eq!(decode_continue("zz"), None);
    }
}
