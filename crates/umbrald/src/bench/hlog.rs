//! `--hlog`: the latency intervals in HdrHistogram's interval-log format (readable by
//! HistogramLogAnalyzer, hdrhistogram's own `IntervalLogIterator`, and similar tools), for
//! regression tracking. Values are microseconds; each interval is written twice, tagged
//! `corrected` and `uncorrected` (prefixed `rate<R>-` for each sweep step).

use std::io::Write;
use std::path::Path;

use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2Serializer;

use super::load::PhaseResult;
use crate::error::CliError;

/// Writes every interval of `phases` (each with its tag prefix) to `path`.
pub(crate) fn write(path: &Path, phases: &[(String, &PhaseResult)]) -> Result<(), CliError> {
    let what = || format!("hlog {}", path.display());
    let mut buffer = Vec::new();
    let Some(base) = phases.first().map(|(_, p)| p.window_start_wall) else {
        return Ok(());
    };
    {
        let mut serializer = V2Serializer::new();
        let mut log = IntervalLogWriterBuilder::new()
            .add_comment("umbrald bench latency log; values in microseconds")
            .with_base_time(base)
            .with_start_time(base)
            .with_max_value_divisor(1000.0)
            .begin_log_with(&mut buffer, &mut serializer)
            .map_err(CliError::output(what()))?;
        for (prefix, phase) in phases {
            let offset = phase
                .window_start_wall
                .duration_since(base)
                .unwrap_or_default();
            for interval in &phase.recorded.intervals {
                for (name, histogram) in [
                    ("corrected", &interval.latencies.corrected),
                    ("uncorrected", &interval.latencies.uncorrected),
                ] {
                    let tag_text = format!("{prefix}{name}");
                    log.write_histogram(
                        histogram,
                        offset + interval.start,
                        interval.length,
                        Tag::new(&tag_text),
                    )
                    .map_err(|e| CliError::Output {
                        what: what(),
                        source: std::io::Error::other(e.to_string()),
                    })?;
                }
            }
        }
    }
    let mut file = std::fs::File::create(path).map_err(CliError::output(what()))?;
    file.write_all(&buffer).map_err(CliError::output(what()))
}
