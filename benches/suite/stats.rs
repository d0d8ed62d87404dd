//! Medians, percentiles and the table the suite prints.

use std::time::Duration;

#[derive(Clone, Copy, Debug)]
pub struct Summary {
    pub median: Duration,
    pub p95: Duration,
    pub count: usize,
}

pub fn summarize(samples: &[Duration]) -> Summary {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let at = |p: f64| {
        let index = ((sorted.len().max(1) - 1) as f64 * p).round() as usize;
        sorted.get(index).copied().unwrap_or_default()
    };
    Summary {
        median: at(0.5),
        p95: at(0.95),
        count: sorted.len(),
    }
}

pub fn ms(duration: Duration) -> String {
    let ms = duration.as_secs_f64() * 1e3;
    if ms >= 100.0 {
        format!("{ms:.0} ms")
    } else if ms >= 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.2} ms")
    }
}

pub fn timing(summary: Summary) -> String {
    format!(
        "{} (p95 {}, n={})",
        ms(summary.median),
        ms(summary.p95),
        summary.count
    )
}

pub fn kib(bytes: u64) -> String {
    if bytes >= 10 * 1024 * 1024 {
        format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
    } else {
        format!("{} kB", bytes / 1024)
    }
}

/// `a / b` of two medians, the form that survives machine noise.
pub fn ratio(a: Summary, b: Summary) -> String {
    let denominator = b.median.as_secs_f64();
    if denominator == 0.0 {
        return "-".into();
    }
    format!("{:.2}x", a.median.as_secs_f64() / denominator)
}

pub struct Row {
    pub what: String,
    pub measured: String,
    pub compared: String,
    pub target: String,
}

/// Rows printed as they come (so a long run shows progress) and again as
/// one Markdown table at the end, ready to paste.
#[derive(Default)]
pub struct Table {
    rows: Vec<Row>,
}

impl Table {
    pub fn add(&mut self, what: &str, measured: String, compared: String, target: &str) {
        eprintln!("  {what}: {measured}   {compared}");
        self.rows.push(Row {
            what: what.into(),
            measured,
            compared,
            target: target.into(),
        });
    }

    pub fn print(&self) {
        println!("| measurement | supd | compared (same run) | target |");
        println!("|---|---|---|---|");
        for row in &self.rows {
            println!(
                "| {} | {} | {} | {} |",
                row.what, row.measured, row.compared, row.target
            );
        }
    }
}
