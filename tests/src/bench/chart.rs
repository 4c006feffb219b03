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

fn color(system: System, shade: usize) -> RGBColor {
    // One hue per system, darker for later cases of the same system.
    let base: [(u8, u8, u8); 3] = match system {
        System::Baton => [(31, 119, 180), (10, 70, 130), (120, 170, 220)],
        System::Etcd => [(214, 39, 40), (140, 20, 20), (240, 130, 120)],
        System::Zookeeper => [(44, 160, 44), (20, 100, 20), (140, 210, 130)],
    };
    let (r, g, b) = base[shade % base.len()];
    RGBColor(r, g, b)
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
    let root = BitMapBackend::new(path, (880, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let scenario = rows[0].scenario.clone();
    let mut builder = ChartBuilder::on(&root);
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
    if text {
        mesh.x_desc("ms").y_desc("fraction ≤ x").label_style(("sans-serif", 13)).x_label_formatter(&|v| {
            if *v >= 1.0 { format!("{v:.0}") } else { format!("{v}") }
        });
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(|e| anyhow!("{e}"))?;
    let mut shades: Vec<(System, usize)> = Vec::new();
    for r in &rows {
        let shade = {
            let entry = shades.iter_mut().find(|(s, _)| *s == r.system);
            match entry {
                Some((_, n)) => {
                    *n += 1;
                    *n - 1
                }
                None => {
                    shades.push((r.system, 1));
                    0
                }
            }
        };
        let c = color(r.system, shade);
        let points: Vec<(f64, f64)> = cdf_points(&r.samples).into_iter().map(|(x, y)| (x.max(lo), y)).collect();
        let series = chart.draw_series(LineSeries::new(points, c.stroke_width(2))).map_err(|e| anyhow!("{e}"))?;
        if text {
            let label = format!("{} {}", r.system.name(), r.case);
            series.label(label).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
        }
    }
    if text {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
    }
    root.present().map_err(|e| anyhow!("{e}")).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
