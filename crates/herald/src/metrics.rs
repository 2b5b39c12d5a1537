//! herald's Prometheus metrics: its own (`herald_*`) and MetalLB's names and labels, so
//! existing dashboards and alerts keep working.
//!
//! The configuration metrics live here; the actuators register collectors that read their
//! counters at scrape time ([`Metrics::register`]).

use model::NodePlan;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder,
    MetricEncoder,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family as MetricFamily;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// The content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    result: ReloadResult,
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum ReloadResult {
    Success,
    Failure,
}

impl EncodeLabelValue for ReloadResult {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(
            &match self {
                ReloadResult::Success => "success",
                ReloadResult::Failure => "failure",
            },
            encoder,
        )
    }
}

pub struct Metrics {
    registry: Registry,
    config_loaded: Gauge,
    config_stale: Gauge,
    config_reloads: MetricFamily<ReloadLabels, Counter>,
    plan_l2_addresses: Gauge,
    plan_bgp_routes: Gauge,
    plan_bgp_peers: Gauge,
    doctor_failed: Gauge,
    doctor_warnings: Gauge,
    /// MetalLB's names for the configuration state, in Kubernetes mode.
    k8s_config: Option<(Gauge, Gauge)>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        // Registered without the prefix because the text encoder appends `_info`.
        registry.register(
            "herald_build",
            "herald's version",
            Info::new(vec![(
                "version".to_owned(),
                env!("CARGO_PKG_VERSION").to_owned(),
            )]),
        );
        let config_loaded = Gauge::default();
        registry.register(
            "herald_config_loaded_bool",
            "1 when the last configuration read was valid",
            config_loaded.clone(),
        );
        let config_stale = Gauge::default();
        registry.register(
            "herald_config_stale_bool",
            "1 when the running plan comes from an older configuration than a newer one that was rejected",
            config_stale.clone(),
        );
        let config_reloads = MetricFamily::<ReloadLabels, Counter>::default();
        // Both series exist from the start, so rate() and alerts see a zero, not nothing.
        for result in [ReloadResult::Success, ReloadResult::Failure] {
            let _ = config_reloads.get_or_create(&ReloadLabels { result });
        }
        registry.register(
            "herald_config_reloads",
            "Configuration reads (the first load included), by result",
            config_reloads.clone(),
        );
        let plan_l2_addresses = Gauge::default();
        registry.register(
            "herald_plan_l2_addresses",
            "Addresses the running plan may answer ARP/NDP for on this node",
            plan_l2_addresses.clone(),
        );
        let plan_bgp_routes = Gauge::default();
        registry.register(
            "herald_plan_bgp_routes",
            "Routes the running plan announces, summed over BGP peers",
            plan_bgp_routes.clone(),
        );
        let plan_bgp_peers = Gauge::default();
        registry.register(
            "herald_plan_bgp_peers",
            "BGP sessions the running plan has this node run",
            plan_bgp_peers.clone(),
        );
        let doctor_failed = Gauge::default();
        registry.register(
            "herald_doctor_failed_checks",
            "Node checks (those of `herald doctor`) failing on this node: see /status or run herald doctor",
            doctor_failed.clone(),
        );
        let doctor_warnings = Gauge::default();
        registry.register(
            "herald_doctor_warnings",
            "Node checks (those of `herald doctor`) warning on this node",
            doctor_warnings.clone(),
        );
        Self {
            registry,
            doctor_failed,
            doctor_warnings,
            config_loaded,
            config_stale,
            config_reloads,
            plan_l2_addresses,
            plan_bgp_routes,
            plan_bgp_peers,
            k8s_config: None,
        }
    }

    /// Kubernetes mode: MetalLB's `metallb_k8s_client_*` metrics, the counters read from the
    /// source at scrape time and the configuration state kept with herald's own.
    pub fn register_kubernetes(&mut self, source: k8s::Metrics) {
        let loaded = Gauge::default();
        self.registry.register(
            "metallb_k8s_client_config_loaded_bool",
            "1 when the configuration read from the cluster was valid",
            loaded.clone(),
        );
        let stale = Gauge::default();
        self.registry.register(
            "metallb_k8s_client_config_stale_bool",
            "1 when the running configuration is older than a newer one that was rejected",
            stale.clone(),
        );
        self.k8s_config = Some((loaded, stale));
        self.register(Box::new(KubernetesCounters(source)));
    }

    /// Adds metrics that are read at scrape time.
    pub fn register(&mut self, collector: Box<dyn Collector>) {
        self.registry.register_collector(collector);
    }

    pub fn reload(&self, result: ReloadResult) {
        self.config_reloads
            .get_or_create(&ReloadLabels { result })
            .inc();
    }

    pub fn set_config_state(&self, loaded: bool, stale: bool) {
        let gauges = [(&self.config_loaded, &self.config_stale)]
            .into_iter()
            .chain(self.k8s_config.as_ref().map(|(l, s)| (l, s)));
        for (l, s) in gauges {
            l.set(i64::from(loaded));
            s.set(i64::from(stale));
        }
    }

    pub fn set_plan(&self, plan: &NodePlan) {
        self.plan_l2_addresses.set(gauge(plan.l2.len()));
        self.plan_bgp_peers.set(gauge(plan.bgp.len()));
        self.plan_bgp_routes
            .set(gauge(plan.bgp.iter().map(|p| p.routes.len()).sum()));
    }

    pub fn set_node_checks(&self, failed: usize, warnings: usize) {
        self.doctor_failed.set(gauge(failed));
        self.doctor_warnings.set(gauge(warnings));
    }

    /// The OpenMetrics text exposition of every metric.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

#[derive(Debug)]
struct KubernetesCounters(k8s::Metrics);

impl Collector for KubernetesCounters {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let c = self.0.counters();
        counter_family(
            &mut encoder,
            "metallb_k8s_client_updates",
            "Objects received from the Kubernetes API (adds, changes, deletes, listed objects)",
            vec![(vec![], c.updates)],
        )?;
        counter_family(
            &mut encoder,
            "metallb_k8s_client_update_errors",
            "Objects that could not be read, and list or watch requests that failed",
            vec![(vec![], c.update_errors)],
        )
    }
}

/// The samples of one metric family read at scrape time: labels and value.
pub type Family = Vec<(Vec<(&'static str, String)>, u64)>;

/// Encodes a counter family (the exposition appends `_total` to `name`).
pub fn counter_family(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: Family,
) -> Result<(), std::fmt::Error> {
    let metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    encode_samples(metric, samples, ConstCounter::new)
}

/// Encodes a family of plain values under exactly `name`: a gauge, or (`Unknown`) a
/// MetalLB counter whose name has no `_total`, which the counter type would add.
pub fn gauge_family(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric_type: MetricType,
    samples: Family,
) -> Result<(), std::fmt::Error> {
    let metric = encoder.encode_descriptor(name, help, None, metric_type)?;
    encode_samples(metric, samples, ConstGauge::new)
}

fn encode_samples<M: EncodeMetric>(
    mut metric: MetricEncoder,
    samples: Family,
    make: fn(u64) -> M,
) -> Result<(), std::fmt::Error> {
    for (labels, value) in samples {
        if labels.is_empty() {
            // `name{} 1` is not valid exposition; a metric without labels has no braces.
            return make(value).encode(metric);
        }
        make(value).encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Fixed;

    impl Collector for Fixed {
        fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
            counter_family(&mut encoder, "t_plain", "help", vec![(vec![], 3)])?;
            counter_family(
                &mut encoder,
                "t_labelled",
                "help",
                vec![
                    (vec![("peer", "a".into())], 1),
                    (vec![("peer", "b".into())], 2),
                ],
            )?;
            gauge_family(
                &mut encoder,
                "t_untyped",
                "help",
                MetricType::Unknown,
                vec![(vec![("ip", "192.0.2.1".into())], 4)],
            )
        }
    }

    #[test]
    fn collected_families_encode_as_exposition() {
        let mut m = Metrics::new();
        m.register(Box::new(Fixed));
        let text = m.encode().expect("encodes");
        for line in [
            "t_plain_total 3\n",
            "t_labelled_total{peer=\"a\"} 1\n",
            "t_labelled_total{peer=\"b\"} 2\n",
            "# TYPE t_untyped unknown\n",
            "t_untyped{ip=\"192.0.2.1\"} 4\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(!text.contains("{}"), "{text}");
    }

    #[test]
    fn exposition_names_every_metric() {
        let m = Metrics::new();
        m.set_config_state(true, false);
        m.reload(ReloadResult::Success);
        m.set_plan(&NodePlan::default());
        let text = m.encode().expect("encodes");
        for line in [
            "herald_build_info{version=\"",
            "herald_config_loaded_bool 1",
            "herald_config_stale_bool 0",
            "herald_config_reloads_total{result=\"success\"} 1",
            "herald_config_reloads_total{result=\"failure\"} 0",
            "herald_plan_l2_addresses 0",
            "herald_plan_bgp_routes 0",
            "herald_plan_bgp_peers 0",
            "# EOF",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
