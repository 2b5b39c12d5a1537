//! `kubectl` against the testkit API server: discovery, create -f, get, replace -f,
//! patch --type=merge, apply and delete on every kind herald reads or writes.

use std::path::PathBuf;
use std::process::Command;

use testkit::apiserver::ApiServer;

struct Kubectl {
    kubeconfig: PathBuf,
    cache: PathBuf,
    dir: PathBuf,
}

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Kubectl {
    fn new(server: &ApiServer, name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("herald-kubectl-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let kubeconfig = dir.join("kubeconfig");
        server.write_kubeconfig(&kubeconfig, "kubectl").unwrap();
        Self {
            kubeconfig,
            cache: dir.join("cache"),
            dir,
        }
    }

    fn run(&self, args: &[&str]) -> Out {
        let out = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache)
            .args(args)
            .output()
            .expect("kubectl must be installed (Debian package kubectl) for these tests");
        Out {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs kubectl and returns its stdout, failing the test when it fails.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.ok,
            "kubectl {args:?} failed: {}{}",
            out.stdout, out.stderr
        );
        out.stdout
    }

    /// Runs kubectl expecting failure; returns its stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.ok,
            "kubectl {args:?} should have failed: {}",
            out.stdout
        );
        out.stderr
    }

    fn file(&self, name: &str, yaml: &str) -> String {
        let p = self.dir.join(name);
        std::fs::write(&p, yaml).unwrap();
        p.to_string_lossy().into_owned()
    }
}

impl Drop for Kubectl {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One kind: how kubectl names it, a manifest with `{V}` standing for a value that replace
/// changes, and a JSONPath to that value.
struct Kind {
    resource: &'static str,
    singular_kind: &'static str,
    manifest: &'static str,
    path: &'static str,
    /// A merge patch setting the value to "patched".
    patch: &'static str,
}

const KINDS: &[Kind] = &[
    Kind {
        resource: "services",
        singular_kind: "service",
        manifest: "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  labels: {app: web}\nspec:\n  type: LoadBalancer\n  loadBalancerClass: '{V}'\n  ports: [{port: 80, protocol: TCP}]\n",
        path: "{.spec.loadBalancerClass}",
        patch: r#"{"spec":{"loadBalancerClass":"patched"}}"#,
    },
    Kind {
        resource: "endpointslices",
        singular_kind: "endpointslice.discovery.k8s.io",
        manifest: "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: web-abc\n  labels: {kubernetes.io/service-name: web}\naddressType: IPv6\nendpoints:\n- addresses: ['2001:db8::5']\n  nodeName: '{V}'\n  conditions: {ready: true}\nports: [{port: 80}]\n",
        path: "{.endpoints[0].nodeName}",
        patch: r#"{"endpoints":[{"addresses":["2001:db8::5"],"nodeName":"patched"}]}"#,
    },
    Kind {
        resource: "nodes",
        singular_kind: "node",
        manifest: "apiVersion: v1\nkind: Node\nmetadata:\n  name: node-1\n  labels: {zone: '{V}'}\n",
        path: "{.metadata.labels.zone}",
        patch: r#"{"metadata":{"labels":{"zone":"patched"}}}"#,
    },
    Kind {
        resource: "secrets",
        singular_kind: "secret",
        manifest: "apiVersion: v1\nkind: Secret\nmetadata:\n  name: bgp-password\ntype: kubernetes.io/basic-auth\ndata: {user: '{V}'}\n",
        path: "{.data.user}",
        patch: r#"{"data":{"user":"patched"}}"#,
    },
    Kind {
        resource: "events",
        singular_kind: "event",
        manifest: "apiVersion: v1\nkind: Event\nmetadata:\n  name: web.nodeassigned\ninvolvedObject: {kind: Service, name: web, namespace: metallb-system}\nreason: nodeAssigned\nmessage: '{V}'\ntype: Normal\n",
        path: "{.message}",
        patch: r#"{"message":"patched"}"#,
    },
    Kind {
        resource: "events.events.k8s.io",
        singular_kind: "event.events.k8s.io",
        manifest: "apiVersion: events.k8s.io/v1\nkind: Event\nmetadata:\n  name: web.announced\nregarding: {kind: Service, name: web, namespace: metallb-system}\nreason: nodeAssigned\nnote: '{V}'\ntype: Normal\naction: Announce\nreportingController: herald\nreportingInstance: herald-node-1\neventTime: '2026-01-01T00:00:00.000000Z'\n",
        path: "{.note}",
        patch: r#"{"note":"patched"}"#,
    },
    Kind {
        resource: "leases",
        singular_kind: "lease.coordination.k8s.io",
        manifest: "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata:\n  name: herald-2001-db8--10\nspec:\n  holderIdentity: '{V}'\n  leaseDurationSeconds: 15\n",
        path: "{.spec.holderIdentity}",
        patch: r#"{"spec":{"holderIdentity":"patched"}}"#,
    },
    Kind {
        resource: "ipaddresspools",
        singular_kind: "ipaddresspool.metallb.io",
        manifest: "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: pool\nspec:\n  addresses: ['192.0.2.0/24', '2001:db8::/120']\n  serviceAllocation: {namespaces: ['{V}']}\n",
        path: "{.spec.serviceAllocation.namespaces[0]}",
        patch: r#"{"spec":{"serviceAllocation":{"namespaces":["patched"]}}}"#,
    },
    Kind {
        resource: "l2advertisements",
        singular_kind: "l2advertisement.metallb.io",
        manifest: "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata:\n  name: l2\nspec:\n  ipAddressPools: [pool]\n  interfaces: ['{V}']\n",
        path: "{.spec.interfaces[0]}",
        patch: r#"{"spec":{"interfaces":["patched"]}}"#,
    },
    Kind {
        resource: "bgpadvertisements",
        singular_kind: "bgpadvertisement.metallb.io",
        manifest: "apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata:\n  name: bgp\nspec:\n  ipAddressPools: [pool]\n  communities: ['{V}']\n  localPref: 100\n",
        path: "{.spec.communities[0]}",
        patch: r#"{"spec":{"communities":["patched"]}}"#,
    },
    Kind {
        resource: "bgppeers.v1beta1.metallb.io",
        singular_kind: "bgppeer.metallb.io",
        manifest: "apiVersion: metallb.io/v1beta1\nkind: BGPPeer\nmetadata:\n  name: router-v1beta1\nspec:\n  myASN: 64512\n  peerASN: 64513\n  peerAddress: 192.0.2.1\n  routerID: '{V}'\n",
        path: "{.spec.routerID}",
        patch: r#"{"spec":{"routerID":"patched"}}"#,
    },
    Kind {
        resource: "bgppeers.v1beta2.metallb.io",
        singular_kind: "bgppeer.metallb.io",
        manifest: "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata:\n  name: router-v1beta2\nspec:\n  myASN: 64512\n  peerASN: 64513\n  peerAddress: '2001:db8::1'\n  routerID: '{V}'\n",
        path: "{.spec.routerID}",
        patch: r#"{"spec":{"routerID":"patched"}}"#,
    },
    Kind {
        resource: "communities",
        singular_kind: "community.metallb.io",
        manifest: "apiVersion: metallb.io/v1beta1\nkind: Community\nmetadata:\n  name: communities\nspec:\n  communities:\n  - name: '{V}'\n    value: '65535:65282'\n",
        path: "{.spec.communities[0].name}",
        patch: r#"{"spec":{"communities":[{"name":"patched","value":"65535:65282"}]}}"#,
    },
    Kind {
        resource: "bfdprofiles",
        singular_kind: "bfdprofile.metallb.io",
        manifest: "apiVersion: metallb.io/v1beta1\nkind: BFDProfile\nmetadata:\n  name: fast\n  labels: {profile: '{V}'}\nspec:\n  receiveInterval: 300\n  transmitInterval: 300\n  detectMultiplier: 3\n  echoMode: false\n  minimumTtl: 254\n",
        path: "{.metadata.labels.profile}",
        patch: r#"{"metadata":{"labels":{"profile":"patched"}}}"#,
    },
];

fn name_of(manifest: &str) -> &str {
    let after = manifest.split("metadata:\n  name: ").nth(1).unwrap();
    after.lines().next().unwrap()
}

fn exercise(k: &Kubectl, kind: &Kind) {
    let name = name_of(kind.manifest);
    let qualified = format!("{}/{name}", kind.singular_kind);
    let created = k.file(
        &format!("{name}-1.yaml"),
        &kind.manifest.replace("{V}", "first"),
    );
    let replaced = k.file(
        &format!("{name}-2.yaml"),
        &kind.manifest.replace("{V}", "second"),
    );
    let get = |jsonpath: &str| {
        k.ok(&[
            "get",
            kind.resource,
            name,
            "-o",
            &format!("jsonpath={jsonpath}"),
        ])
    };
    let value = || get(kind.path);

    assert_eq!(
        k.ok(&["create", "-f", &created]).trim(),
        format!("{qualified} created")
    );
    let err = k.fails(&["create", "-f", &created]);
    assert!(
        err.contains("AlreadyExists") || err.contains("already exists"),
        "{err}"
    );
    let listed = k.ok(&["get", kind.resource, "-o", "name"]);
    assert!(listed.lines().any(|l| l == qualified), "{listed}");
    assert_eq!(value(), "first");
    assert_eq!(
        k.ok(&["replace", "-f", &replaced]).trim(),
        format!("{qualified} replaced")
    );
    assert_eq!(value(), "second");
    let patched = k.ok(&[
        "patch",
        kind.resource,
        name,
        "--type=merge",
        "-p",
        kind.patch,
    ]);
    assert_eq!(patched.trim(), format!("{qualified} patched"));
    assert_eq!(value(), "patched");
    let api_version = get("{.apiVersion}");
    let want = kind
        .manifest
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("apiVersion: ");
    assert_eq!(api_version, want, "served in the version asked for");
    assert_eq!(
        k.ok(&["apply", "-f", &created])
            .lines()
            .last()
            .unwrap_or(""),
        format!("{qualified} configured")
    );
    assert_eq!(value(), "first");
    assert_eq!(
        k.ok(&["delete", "-f", &created]).trim(),
        format!("{} \"{name}\" deleted", kind.singular_kind)
    );
    let err = k.fails(&["get", kind.resource, name]);
    assert!(
        err.contains("NotFound") && err.contains("not found"),
        "{err}"
    );
    let err = k.fails(&["delete", kind.resource, name]);
    assert!(err.contains("not found"), "{err}");
}

#[test]
fn kubectl_works_on_every_kind() {
    let server = ApiServer::start().unwrap();
    let failures: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = KINDS
            .iter()
            .map(|kind| {
                let server = &server;
                scope.spawn(move || {
                    let k = Kubectl::new(server, kind.resource);
                    exercise(&k, kind)
                })
            })
            .collect();
        handles
            .into_iter()
            .zip(KINDS)
            .filter_map(|(h, kind)| {
                h.join().err().map(|e| {
                    let msg = e
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    format!("{}: {msg}", kind.resource)
                })
            })
            .collect()
    });
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    let creates = server.requests_from("kubectl", "create", "bgppeers");
    assert!(creates >= 4, "{creates} {:?}", server.request_counts());
}

#[test]
fn kubectl_discovery_short_names_and_errors() {
    let server = ApiServer::start().unwrap();
    let k = Kubectl::new(&server, "discovery");
    let resources = k.ok(&["api-resources", "-o", "name"]);
    for r in [
        "services",
        "nodes",
        "secrets",
        "events",
        "leases.coordination.k8s.io",
        "endpointslices.discovery.k8s.io",
        "events.events.k8s.io",
        "ipaddresspools.metallb.io",
        "l2advertisements.metallb.io",
        "bgpadvertisements.metallb.io",
        "bgppeers.metallb.io",
        "communities.metallb.io",
        "bfdprofiles.metallb.io",
    ] {
        assert!(
            resources.lines().any(|l| l == r),
            "{r} missing from:\n{resources}"
        );
    }
    let ns = k.ok(&["get", "ns", "-o", "name"]);
    assert!(
        ns.contains("namespace/metallb-system") && ns.contains("namespace/default"),
        "{ns}"
    );
    let versions = k.ok(&["api-versions"]);
    assert!(
        versions.contains("metallb.io/v1beta1") && versions.contains("metallb.io/v1beta2"),
        "{versions}"
    );
    assert!(k.ok(&["get", "svc"]).is_empty());
    assert!(
        k.run(&["get", "svc"])
            .stderr
            .contains("No resources found in metallb-system namespace.")
    );
    let svc = k.file("svc.yaml", "apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n  labels: {app: x}\nspec: {type: LoadBalancer}\n");
    k.ok(&["create", "-f", &svc]);
    k.ok(&["create", "-f", &svc, "-n", "default"]);
    assert_eq!(
        k.ok(&["get", "svc", "-A", "-o", "name", "-l", "app=x"])
            .lines()
            .count(),
        2
    );
    assert_eq!(
        k.ok(&["get", "svc", "-A", "-o", "name", "-l", "app!=x"])
            .lines()
            .count(),
        0
    );
    let err = k.fails(&["create", "-f", &svc, "-n", "nowhere"]);
    assert!(err.contains("namespaces \"nowhere\" not found"), "{err}");
    let err = k.fails(&["get", "nosuchkind"]);
    assert!(
        err.contains("the server doesn't have a resource type \"nosuchkind\""),
        "{err}"
    );
    k.ok(&[
        "patch",
        "svc",
        "a",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"loadBalancer":{"ingress":[{"ip":"192.0.2.10"},{"ip":"2001:db8::10"}]}}}"#,
    ]);
    let table = k.ok(&["get", "svc", "a"]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ],
        "{table}"
    );
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        row[..4],
        ["a", "LoadBalancer", "<none>", "192.0.2.10,2001:db8::10"],
        "{table}"
    );
    k.ok(&["label", "svc", "a", "tier=front"]);
    assert_eq!(
        k.ok(&["get", "svc", "-l", "tier=front", "-o", "name"])
            .trim(),
        "service/a"
    );
    k.ok(&["delete", "ns", "default"]);
    assert_eq!(
        k.ok(&["get", "svc", "-A", "-o", "name"]).trim(),
        "service/a",
        "namespace contents go with it"
    );
}
