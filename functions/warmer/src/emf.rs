//! One CloudWatch Embedded Metric Format line per target and round: written to stdout, where
//! Lambda's log agent turns it into metrics without an API call.

use serde_json::{json, Value};

use crate::fanout::TargetReport;

/// Namespace of the metrics.
pub const NAMESPACE: &str = "Hearth/Warmer";

/// The EMF document for one target's round, at `timestamp_ms`.
pub fn line(report: &TargetReport, timestamp_ms: u64) -> Value {
    json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["Target"]],
                "Metrics": [
                    {"Name": "Invocations", "Unit": "Count"},
                    {"Name": "DistinctEnvironments", "Unit": "Count"},
                    {"Name": "ColdStarts", "Unit": "Count"},
                    {"Name": "Errors", "Unit": "Count"},
                    {"Name": "DurationMs", "Unit": "Milliseconds"}
                ]
            }]
        },
        "Target": report.target,
        "Invocations": report.invoked,
        "DistinctEnvironments": report.distinct_environments,
        "ColdStarts": report.cold_starts,
        "Errors": report.errors,
        "DurationMs": report.duration_ms,
        "correlationId": report.correlation_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape() {
        let r = TargetReport {
            target: "payments".into(),
            correlation_id: "c".into(),
            invoked: 3,
            distinct_environments: 2,
            cold_starts: 1,
            errors: 1,
            error_samples: vec![],
            instance_ids: vec![],
            duration_ms: 80,
        };
        let v = line(&r, 1);
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Namespace"], NAMESPACE);
        assert_eq!(v["DistinctEnvironments"], 2);
        assert_eq!(v["Target"], "payments");
        // Every declared metric has a value at the top level, as EMF requires.
        for m in v["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let name = m["Name"].as_str().unwrap_or_default();
            assert!(v[name].is_number(), "{name}");
        }
    }
}
