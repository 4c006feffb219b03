//! Latency charts for `baton-bench --png`: one empirical CDF per measured
//! distribution (system × case), time on a log axis so that milliseconds
//! and seconds fit on one chart. Bitmap backend only; text is drawn with
//! ab_glyph from a TrueType file read at run time (`BATON_BENCH_FONT`, else
//! Debian's DejaVu Sans from fonts-dejavu-core), so no fontconfig is needed.
//! Without a font the chart is drawn without any text (axes, grid and
//! curves only) and a note says so.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{Context, anyhow};
use plotters::prelude::*;
use plotters::style::FontStyle;

use super::{Row, System};

const FONT_PATHS: [&str; 2] =
    ["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"];

/// Registers a font once; false when none could be read.
fn font() -> bool {
    static FONT: OnceLock<bool> = OnceLock::new();
    *FONT.get_or_init(|| {
        let candidates =
            std::env::var("BATON_BENCH_FONT").into_iter().chain(FONT_PATHS.iter().map(|s| (*s).to_owned()));
        for path in candidates {
            if let Ok(bytes) = std::fs::read(&path) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        eprintln!("no TrueType font found (set BATON_BENCH_FONT); the chart has no text");
        false
    })
}

/// One hue per system; the system's curves go from dark to light in the
/// order drawn (`shade` of `of`).
fn color(system: System, shade: usize, of: usize) -> HSLColor {
    let hue = match system {
        System::Baton => 0.58,
        System::Etcd => 0.0,
        System::Zookeeper => 0.33,
    };
    let l = if of <= 1 { 0.42 } else { 0.22 + 0.46 * shade as f64 / (of - 1) as f64 };
    HSLColor(hue, 0.8, l)
}

/// Points of the empirical CDF of `samples` (sorted, step-free).
pub fn cdf_points(samples: &[f64]) -> Vec<(f64, f64)> {
    let mut v: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    let n = v.len() as f64;
    // At most ~2000 points per curve: keeps the PNG small and drawing fast.
    let step = (v.len() / 2000).max(1);
    let mut out: Vec<(f64, f64)> =
        v.iter().enumerate().filter(|(i, _)| i % step == 0).map(|(i, x)| (*x, (i + 1) as f64 / n)).collect();
    if let Some(last) = v.last() {
        out.push((*last, 1.0));
    }
    out
}

pub fn cdf_png(path: &Path, rows: &[&Row]) -> anyhow::Result<()> {
    let rows: Vec<&&Row> = rows.iter().filter(|r| !r.samples.is_empty()).collect();
    anyhow::ensure!(!rows.is_empty(), "nothing to draw");
    let text = font();
    let lo = rows.iter().flat_map(|r| r.samples.iter()).copied().filter(|x| *x > 0.0).fold(f64::INFINITY, f64::min);
    let hi = rows.iter().flat_map(|r| r.samples.iter()).copied().fold(0.0, f64::max);
    let lo = 10f64.powf((lo.max(1e-3)).log10().floor());
    let hi = 10f64.powf((hi.max(lo * 10.0)).log10().ceil());
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let root = BitMapBackend::new(path, (900, 440)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    // The chart on the left, the legend in its own column on the right.
    let (area, legend) = root.split_horizontally(660);
    let scenario = rows[0].scenario.clone();
    let mut builder = ChartBuilder::on(&area);
    builder.margin(12).margin_right(28).x_label_area_size(if text { 40 } else { 8 }).y_label_area_size(if text {
        50
    } else {
        8
    });
    if text {
        builder.caption(format!("{scenario}: latency CDF (log time axis)"), ("sans-serif", 20));
    }
    let mut chart = builder.build_cartesian_2d((lo..hi).log_scale(), 0f64..1.0).map_err(|e| anyhow!("{e}"))?;
    let mut mesh = chart.configure_mesh();
    // No minor grid: it is most of the PNG's size and little of its content.
    mesh.light_line_style(WHITE).bold_line_style(BLACK.mix(0.15)).x_labels(8).y_labels(6);
    if text {
        mesh.x_desc("ms").y_desc("fraction ≤ x").label_style(("sans-serif", 13)).x_label_formatter(&|v| {
            if *v >= 1.0 { format!("{v:.0}") } else { format!("{v}") }
        });
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(|e| anyhow!("{e}"))?;
    let mut drawn: Vec<System> = Vec::new();
    for r in &rows {
        let of = rows.iter().filter(|o| o.system == r.system).count();
        let shade = drawn.iter().filter(|s| **s == r.system).count();
        drawn.push(r.system);
        let c = color(r.system, shade, of);
        let points: Vec<(f64, f64)> = cdf_points(&r.samples).into_iter().map(|(x, y)| (x.max(lo), y)).collect();
        let series = chart.draw_series(LineSeries::new(points, c.stroke_width(2))).map_err(|e| anyhow!("{e}"))?;
        let _ = series;
        let y = 50 + 20 * (drawn.len() as i32 - 1);
        legend.draw(&PathElement::new(vec![(4, y), (28, y)], c.stroke_width(3))).map_err(|e| anyhow!("{e}"))?;
        if text {
            let label = format!("{} {}", r.system.name(), r.case);
            legend.draw(&Text::new(label, (34, y - 7), ("sans-serif", 13))).map_err(|e| anyhow!("{e}"))?;
        }
    }
    root.present().map_err(|e| anyhow!("{e}")).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
