//! Prometheus metrics, kept as atomics and rendered in the text exposition format.

use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5, 5.0, 10.0,
];

/// A fixed-bucket histogram.
#[derive(Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, seconds: f64) {
        // One increment in the first bucket that holds it; rendering accumulates.
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} histogram\n"));
        let mut cumulative = 0;
        for (i, b) in BUCKETS.iter().enumerate() {
            cumulative += self.counts[i].load(Ordering::Relaxed);
            out.push_str(&format!("{name}_bucket{{le=\"{b}\"}} {cumulative}\n"));
        }
        let count = self.count.load(Ordering::Relaxed);
        out.push_str(&format!("{name}_bucket{{le=\"+Inf\"}} {count}\n"));
        out.push_str(&format!(
            "{name}_sum {}\n{name}_count {count}\n",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        ));
    }
}

/// Every metric the webhook exports.
#[derive(Default)]
pub struct Metrics {
    /// Admissions allowed.
    pub allowed: AtomicU64,
    /// Admissions denied by a policy.
    pub denied: AtomicU64,
    /// Requests that could not be decided (bad body, deadline with fail-closed).
    pub errors: AtomicU64,
    /// Requests that hit the deadline.
    pub deadline_exceeded: AtomicU64,
    /// Mutations answered with a patch.
    pub patched: AtomicU64,
    /// Workloads decided ahead of admission (`/preverify`).
    pub preverified: AtomicU64,
    /// Successful policy reloads.
    pub reloads_ok: AtomicU64,
    /// Failed policy reloads (the previous policies stay in force).
    pub reloads_failed: AtomicU64,
    /// Successful trust root reloads.
    pub trust_root_reloads_ok: AtomicU64,
    /// Failed trust root reloads (the previous trust root stays in force).
    pub trust_root_reloads_failed: AtomicU64,
    /// Time to decide one admission request.
    pub latency: Histogram,
    /// Time to gather `verifyImages` evidence for one request (requests with image rules).
    pub gather: Histogram,
    /// Time to verify evidence and evaluate the policies for one request (off the runtime).
    pub verification: Histogram,
}

impl Metrics {
    /// Increments a counter.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Renders the text exposition format.
    pub fn render(&self, policies: usize, evidence: Option<&crate::evidence::Evidence>) -> String {
        let mut out = String::new();
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        out.push_str("# HELP provenance_admissions_total Admission requests by decision.\n");
        out.push_str("# TYPE provenance_admissions_total counter\n");
        for (d, c) in [
            ("allowed", &self.allowed),
            ("denied", &self.denied),
            ("error", &self.errors),
        ] {
            out.push_str(&format!(
                "provenance_admissions_total{{decision=\"{d}\"}} {}\n",
                g(c)
            ));
        }
        for (name, help, c) in [
            (
                "provenance_deadline_exceeded_total",
                "Requests that hit the per-request deadline.",
                &self.deadline_exceeded,
            ),
            (
                "provenance_preverify_total",
                "Workloads decided ahead of admission (/preverify).",
                &self.preverified,
            ),
            (
                "provenance_mutations_patched_total",
                "Mutation responses carrying a patch.",
                &self.patched,
            ),
        ] {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                g(c)
            ));
        }
        out.push_str("# HELP provenance_policy_reloads_total Policy reloads by result.\n# TYPE provenance_policy_reloads_total counter\n");
        out.push_str(&format!(
            "provenance_policy_reloads_total{{result=\"ok\"}} {}\n",
            g(&self.reloads_ok)
        ));
        out.push_str(&format!(
            "provenance_policy_reloads_total{{result=\"failed\"}} {}\n",
            g(&self.reloads_failed)
        ));
        out.push_str("# HELP provenance_trust_root_reloads_total Trust root reloads by result.\n# TYPE provenance_trust_root_reloads_total counter\n");
        out.push_str(&format!(
            "provenance_trust_root_reloads_total{{result=\"ok\"}} {}\n",
            g(&self.trust_root_reloads_ok)
        ));
        out.push_str(&format!(
            "provenance_trust_root_reloads_total{{result=\"failed\"}} {}\n",
            g(&self.trust_root_reloads_failed)
        ));
        out.push_str(&format!(
            "# HELP provenance_policies_loaded Policies in force.\n# TYPE provenance_policies_loaded gauge\nprovenance_policies_loaded {policies}\n"
        ));
        let zero = AtomicU64::new(0);
        for (name, help, c) in [
            (
                "provenance_cache_hits_total",
                "Evidence lookups served from the cache (stored or in flight).",
                evidence.map_or(&zero, |e| &e.hits),
            ),
            (
                "provenance_cache_misses_total",
                "Evidence lookups that went to the registry or layout.",
                evidence.map_or(&zero, |e| &e.misses),
            ),
            (
                "provenance_cache_refreshes_total",
                "Evidence retrievals started in the background ahead of an entry's expiry.",
                evidence.map_or(&zero, |e| &e.refreshes),
            ),
            (
                "provenance_registry_errors_total",
                "Evidence retrievals that failed (network, authentication, timeout, bad content).",
                evidence.map_or(&zero, |e| &e.errors),
            ),
        ] {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                g(c)
            ));
        }
        self.latency.render(
            "provenance_admission_duration_seconds",
            "Time to decide one admission request.",
            &mut out,
        );
        self.gather.render(
            "provenance_evidence_gather_duration_seconds",
            "Time to gather verifyImages evidence for one request.",
            &mut out,
        );
        self.verification.render(
            "provenance_verification_duration_seconds",
            "Time to verify signatures and attestations and evaluate the policies for one request.",
            &mut out,
        );
        out
    }
}
