//! Prometheus metrics every service serves on `GET /metrics`, counted by the platform's own
//! middleware so no service writes any: requests by route, method and status class, a
//! latency histogram by route, and the build the service runs (version and commit).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The upper bounds of the latency histogram's buckets, in seconds (`+Inf` follows).
pub const BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The route label of a request no route matched (keeps unknown paths out of the labels).
pub const UNMATCHED: &str = "unmatched";

/// What the build info gauge says of the running service.
#[derive(Debug, Clone)]
pub struct BuildInfo {
    pub service: String,
    pub environment: String,
    /// `SLIPWAY_VERSION`, which the image's configuration sets.
    pub version: String,
    /// `SLIPWAY_COMMIT`, which the image's configuration sets.
    pub commit: String,
}

#[derive(Debug, Default)]
struct Latency {
    /// Observations at or below each bound of `BUCKETS` (not yet cumulative).
    buckets: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Debug, Default)]
struct Counts {
    /// (route, method, status class) → requests.
    requests: BTreeMap<(String, String, &'static str), u64>,
    latency: BTreeMap<String, Latency>,
}

/// The service's metrics: cheap to clone, shared by every request.
#[derive(Debug, Clone)]
pub struct Metrics {
    build: Arc<BuildInfo>,
    counts: Arc<Mutex<Counts>>,
}

/// `2xx`, `4xx`, … for a status code.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

impl Metrics {
    pub fn new(build: BuildInfo) -> Metrics {
        Metrics { build: Arc::new(build), counts: Arc::default() }
    }

    /// Counts one answered request.
    pub fn observe(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        let mut counts = self.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // Only the standard methods become label values: any other would let clients
        // grow the series without bound.
        let method = match method {
            "GET" | "HEAD" | "POST" | "PUT" | "DELETE" | "PATCH" | "OPTIONS" | "CONNECT"
            | "TRACE" => method,
            _ => "other",
        };
        let key = (route.to_owned(), method.to_owned(), status_class(status));
        *counts.requests.entry(key).or_default() += 1;
        let seconds = elapsed.as_secs_f64();
        let latency = counts.latency.entry(route.to_owned()).or_default();
        if let Some(bucket) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            latency.buckets[bucket] += 1;
        }
        latency.sum += seconds;
        latency.count += 1;
    }

    /// Everything in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let counts = self.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let service = escape(&self.build.service);
        let mut out = String::new();
        let b = &self.build;
        out.push_str("# HELP slipway_build_info The build this service runs: always 1.\n");
        out.push_str("# TYPE slipway_build_info gauge\n");
        let _ = writeln!(
            out,
            "slipway_build_info{{service=\"{service}\",environment=\"{}\",version=\"{}\",commit=\"{}\"}} 1",
            escape(&b.environment),
            escape(&b.version),
            escape(&b.commit)
        );
        out.push_str("# HELP slipway_http_requests_total HTTP requests answered, by route, method and status class.\n");
        out.push_str("# TYPE slipway_http_requests_total counter\n");
        for ((route, method, class), n) in &counts.requests {
            let _ = writeln!(
                out,
                "slipway_http_requests_total{{service=\"{service}\",route=\"{}\",method=\"{}\",status_class=\"{class}\"}} {n}",
                escape(route),
                escape(method)
            );
        }
        out.push_str("# HELP slipway_http_request_duration_seconds Time to answer an HTTP request, by route.\n");
        out.push_str("# TYPE slipway_http_request_duration_seconds histogram\n");
        for (route, latency) in &counts.latency {
            let labels = format!("service=\"{service}\",route=\"{}\"", escape(route));
            let mut cumulative = 0;
            for (bound, n) in BUCKETS.iter().zip(latency.buckets) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "slipway_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "slipway_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                latency.count
            );
            let _ = writeln!(
                out,
                "slipway_http_request_duration_seconds_sum{{{labels}}} {}",
                latency.sum
            );
            let _ = writeln!(
                out,
                "slipway_http_request_duration_seconds_count{{{labels}}} {}",
                latency.count
            );
        }
        out
    }
}

/// A label value as the text format wants it: `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> Metrics {
        Metrics::new(BuildInfo {
            service: "shop-orders".to_owned(),
            environment: "ci".to_owned(),
            version: "0.1.0-0123456789ab".to_owned(),
            commit: "0123456789abcdef".to_owned(),
        })
    }

    #[test]
    fn status_classes() {
        for (status, class) in [
            (101, "1xx"),
            (200, "2xx"),
            (204, "2xx"),
            (302, "3xx"),
            (404, "4xx"),
            (500, "5xx"),
            (503, "5xx"),
        ] {
            assert_eq!(status_class(status), class, "{status}");
        }
    }

    #[test]
    fn requests_are_counted_by_route_method_and_class_with_a_cumulative_histogram() {
        let m = metrics();
        m.observe("/orders/{id}", "GET", 200, Duration::from_millis(3));
        m.observe("/orders/{id}", "GET", 404, Duration::from_millis(30));
        m.observe("/orders/{id}", "GET", 200, Duration::from_secs(20));
        m.observe("/orders", "POST", 201, Duration::from_millis(7));
        m.observe(UNMATCHED, "BREW", 405, Duration::from_millis(1));
        let text = m.render();
        for line in [
            "slipway_build_info{service=\"shop-orders\",environment=\"ci\",version=\"0.1.0-0123456789ab\",commit=\"0123456789abcdef\"} 1",
            "slipway_http_requests_total{service=\"shop-orders\",route=\"/orders/{id}\",method=\"GET\",status_class=\"2xx\"} 2",
            "slipway_http_requests_total{service=\"shop-orders\",route=\"/orders/{id}\",method=\"GET\",status_class=\"4xx\"} 1",
            "slipway_http_requests_total{service=\"shop-orders\",route=\"/orders\",method=\"POST\",status_class=\"2xx\"} 1",
            "slipway_http_requests_total{service=\"shop-orders\",route=\"unmatched\",method=\"other\",status_class=\"4xx\"} 1",
            "slipway_http_request_duration_seconds_bucket{service=\"shop-orders\",route=\"/orders/{id}\",le=\"0.005\"} 1",
            "slipway_http_request_duration_seconds_bucket{service=\"shop-orders\",route=\"/orders/{id}\",le=\"0.05\"} 2",
            "slipway_http_request_duration_seconds_bucket{service=\"shop-orders\",route=\"/orders/{id}\",le=\"10\"} 2",
            "slipway_http_request_duration_seconds_bucket{service=\"shop-orders\",route=\"/orders/{id}\",le=\"+Inf\"} 3",
            "slipway_http_request_duration_seconds_count{service=\"shop-orders\",route=\"/orders/{id}\"} 3",
        ] {
            assert!(text.lines().any(|l| l == line), "missing `{line}` in:\n{text}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
