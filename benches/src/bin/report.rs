//! `cargo run -p benches --release --bin report [-- OPTIONS]`: runs the suite
//! with short measurement times and prints one markdown table per operation,
//! with the figure per operation and its ratios to the baseline and to each
//! peer, then the targets and whether they are met.
//!
//! Options: `--warm-up-ms N` (default 300), `--measure-ms N` (default 1000),
//! `--samples N` (default 10), `--filter REGEX` (criterion's benchmark filter;
//! rows not run are left out of the table).
//!
//! Built with `RUSTFLAGS="--cfg tokio_unstable"` (in a target dir of its own),
//! it runs the runtime-hook-mode groups and checks their target too; without
//! the cfg those groups do not exist.
//!
//! Figures are criterion's median time per iteration, divided by the number of
//! operations in an iteration: the median is the figure least moved by other
//! work on a shared machine.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use benches::layout::{Group, GROUPS, TARGETS};
use criterion::Criterion;

struct Options {
    warm_up: Duration,
    measure: Duration,
    samples: usize,
    filter: Option<String>,
}

fn options() -> Options {
    let mut o = Options {
        warm_up: Duration::from_millis(300),
        measure: Duration::from_millis(1000),
        samples: 10,
        filter: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--warm-up-ms" => o.warm_up = Duration::from_millis(number(&value())),
            "--measure-ms" => o.measure = Duration::from_millis(number(&value())),
            "--samples" => o.samples = number(&value()) as usize,
            "--filter" => o.filter = Some(value()),
            // `cargo bench` style flags passed through by habit.
            "--bench" => {}
            other => panic!("unknown option {other} (see the doc comment of report.rs)"),
        }
    }
    o
}

fn number(s: &str) -> u64 {
    s.parse().unwrap_or_else(|_| panic!("not a number: {s}"))
}

fn main() {
    let o = options();
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
    let dir = target.join("criterion-report");
    // Results of an earlier run must not be mistaken for this one's.
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create the report directory");

    let load_before = load_average();
    let mut c = Criterion::default()
        .output_directory(&dir)
        .warm_up_time(o.warm_up)
        .measurement_time(o.measure)
        .sample_size(o.samples)
        .nresamples(10_000)
        .without_plots();
    if let Some(filter) = &o.filter {
        c = c.with_filter(filter.clone());
    }
    benches::suite::all(&mut c);
    c.final_summary();

    let medians = read_medians(&dir);
    let load = format!("{load_before} before, {} after", load_average());
    let report = render(&medians, &o, &load);
    let file = dir.join("report.md");
    fs::write(&file, &report).expect("write report.md");
    println!("\n{report}");
    println!("(also written to {})", file.display());
}

/// Criterion's median per iteration, in ns, by full id (`group/function`).
fn read_medians(dir: &Path) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n == "benchmark.json")
                && path
                    .parent()
                    .and_then(Path::file_name)
                    .is_some_and(|n| n == "new")
            {
                let bench = json(&path);
                let estimates = json(&path.with_file_name("estimates.json"));
                let id = bench["full_id"].as_str().unwrap_or_default().to_string();
                if let Some(median) = estimates["median"]["point_estimate"].as_f64() {
                    out.insert(id, median);
                }
            }
        }
    }
    out
}

fn json(path: &Path) -> serde_json::Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn per_op(medians: &HashMap<String, f64>, group: &Group, id: &str) -> Option<f64> {
    medians
        .get(&format!("{}/{id}", group.id))
        .map(|ns| ns / group.ops_per_iter)
}

fn render(medians: &HashMap<String, f64>, o: &Options, load: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "## rt-ext against its peers\n");
    let _ = writeln!(
        s,
        "Machine: {} ({} cores), {}; {}; load average {}. Criterion median of {} \
         samples, {} ms warm-up, {} ms measurement per benchmark.\n",
        cpu_model(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        kernel(),
        date(),
        load,
        o.samples,
        o.warm_up.as_millis(),
        o.measure.as_millis(),
    );
    let _ = writeln!(
        s,
        "`÷ first row` is each figure over the group's first row (bare tokio where \
         there is one). Each `rt-ext … ÷ this` column is that rt-ext figure over \
         the row's figure: below 1, rt-ext is faster.\n"
    );
    for group in GROUPS {
        let rows: Vec<_> = group
            .rows
            .iter()
            .filter_map(|r| per_op(medians, group, r.id).map(|ns| (r, ns)))
            .collect();
        if rows.is_empty() {
            continue;
        }
        // Columns of rt-ext over its peers, in a group that has peers.
        let ours: Vec<_> = if rows.iter().any(|(r, _)| !r.ours) {
            rows.iter().filter(|(r, _)| r.ours).collect()
        } else {
            Vec::new()
        };
        let _ = writeln!(s, "### {}\n", group.title);
        let mut header = String::from("| variant | ns/op | ÷ first row |");
        let mut rule = String::from("|---|---:|---:|");
        for (r, _) in &ours {
            let _ = write!(header, " {} ÷ this |", r.label);
            rule.push_str("---:|");
        }
        let _ = writeln!(s, "{header}\n{rule}");
        let first = rows[0].1;
        for (row, ns) in &rows {
            let _ = write!(s, "| {} | {} | {:.3} |", row.label, fmt_ns(*ns), ns / first);
            for (_, ours_ns) in &ours {
                if row.ours {
                    s.push_str(" |");
                } else {
                    let _ = write!(s, " {:.3} |", ours_ns / ns);
                }
            }
            s.push('\n');
        }
        s.push('\n');
    }
    let _ = writeln!(s, "### Targets (timings)\n");
    let _ = writeln!(s, "| target | ratio | limit | |\n|---|---:|---:|---|");
    for t in TARGETS {
        let group = GROUPS
            .iter()
            .find(|g| g.id == t.group)
            .expect("a known group");
        let (Some(num), Some(den)) = (
            per_op(medians, group, t.numerator),
            per_op(medians, group, t.denominator),
        ) else {
            continue;
        };
        let ratio = num / den;
        let verdict = if ratio <= t.limit { "met" } else { "MISSED" };
        let _ = writeln!(
            s,
            "| {} | {:.3} | {:.2} | {} |",
            t.what, ratio, t.limit, verdict
        );
    }
    s
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 100.0 {
        format!("{ns:.0}")
    } else if ns >= 10.0 {
        format!("{ns:.1}")
    } else {
        format!("{ns:.2}")
    }
}

fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn kernel() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|r| format!("Linux {}", r.trim()))
        .unwrap_or_else(|_| std::env::consts::OS.into())
}

/// The one-minute load average: other work on the machine moves timings.
fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(String::from))
        .unwrap_or_else(|| "unknown".into())
}

/// Today's date (UTC), as `date -u +%F` prints it.
fn date() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%F"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map_or_else(|| "date unknown".into(), |d| d.trim().to_string())
}
