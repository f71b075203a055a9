//! Prometheus metrics (`GET /metrics`, text exposition format).

use prometheus_client::{
    encoding::{text::encode, EncodeLabelSet},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

/// Label: a request kind (`send`, `join`, …).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// The kind.
    pub kind: &'static str,
}

/// Label: an error code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    /// The code.
    pub code: &'static str,
}

/// The server's metrics. Cheap to update from any thread.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Open websocket connections.
    pub connections: Gauge,
    /// Frames received from clients.
    pub frames_in: Counter,
    /// Frames queued to clients (replies and pushes).
    pub frames_out: Counter,
    /// Pushes of room events, receipts, typing and signals queued to connections.
    pub deliveries: Counter,
    /// Error replies by code.
    pub errors: Family<CodeLabel, Counter>,
    /// Request handling time by kind, seconds.
    pub latency: Family<KindLabel, Histogram>,
    /// Connections closed because they did not read fast enough.
    pub slow_disconnects: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("tidings");
        let connections = Gauge::default();
        let frames_in = Counter::default();
        let frames_out = Counter::default();
        let deliveries = Counter::default();
        let errors = Family::<CodeLabel, Counter>::default();
        let latency = Family::<KindLabel, Histogram>::new_with_constructor(|| {
            // 50 µs … ~1.6 s
            Histogram::new([
                0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                0.25, 0.5, 1.0, 2.5,
            ])
        });
        let slow_disconnects = Counter::default();
        registry.register("connections", "Open websocket connections", connections.clone());
        registry.register("frames_received", "Frames received from clients", frames_in.clone());
        registry.register("frames_sent", "Frames queued to clients", frames_out.clone());
        registry.register("deliveries", "Pushes queued to connections", deliveries.clone());
        registry.register("errors", "Error replies by code", errors.clone());
        registry.register(
            "request_duration_seconds",
            "Request handling time by kind",
            latency.clone(),
        );
        registry.register(
            "slow_disconnects",
            "Connections closed because they read too slowly",
            slow_disconnects.clone(),
        );
        Self {
            registry,
            connections,
            frames_in,
            frames_out,
            deliveries,
            errors,
            latency,
            slow_disconnects,
        }
    }
}

impl Metrics {
    /// The metrics in Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
