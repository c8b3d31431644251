//! `completion.svg`: the completion-time CDF of each system (fraction of
//! nodes done against seconds since t0), with the bounds as vertical lines.
//! Drawn with plotters' SVG backend, which needs no font libraries.

use std::path::Path;

use plotters::prelude::*;

use crate::report::{Report, ordered};

/// Plot size in pixels.
const SIZE: (u32, u32) = (900, 540);

/// Why the plot could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("draw {path}: {detail}")]
pub struct PlotError {
    /// The file.
    pub path: String,
    /// What plotters said.
    pub detail: String,
}

/// The step points of an empirical CDF over `total` nodes, of which the
/// ones in `times` completed: starts at (0, 0), rises by 1/total at each
/// completion time.
pub fn cdf_steps(times: &[f64], total: usize) -> Vec<(f64, f64)> {
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    let total = total.max(1) as f64;
    let mut points = vec![(0.0, 0.0)];
    for (i, t) in sorted.iter().enumerate() {
        points.push((*t, i as f64 / total));
        points.push((*t, (i + 1) as f64 / total));
    }
    points
}

/// Draws the CDF of every system in `report` to `path`.
pub fn write_completion_svg(report: &Report, path: &Path) -> Result<(), PlotError> {
    draw(report, path).map_err(|detail| PlotError {
        path: path.display().to_string(),
        detail,
    })
}

fn draw(report: &Report, path: &Path) -> Result<(), String> {
    let systems = ordered(report);
    let has_direct = systems.iter().any(|(name, _)| *name == "direct");
    let latest = systems
        .iter()
        .flat_map(|(_, s)| s.per_node_s.iter().flatten().copied())
        .chain([report.bound_s])
        .chain(has_direct.then_some(report.direct_bound_s))
        .fold(1.0_f64, f64::max);
    let x_max = latest * 1.05;

    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let caption = format!(
        "{}: {} nodes, {:.0} MiB: completion time per node",
        report.scenario,
        report.peers,
        crate::units::mib(report.image_bytes)
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..x_max, 0.0..1.02)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("seconds since t0")
        .y_desc("fraction of nodes done")
        .draw()
        .map_err(|e| e.to_string())?;

    for (i, (name, s)) in systems.iter().enumerate() {
        let ok_times: Vec<f64> = s.per_node_s.iter().flatten().copied().collect();
        let color = Palette99::pick(i).to_rgba();
        let label = match s.max_s {
            Some(max) => format!("{name} (max {max:.1} s)"),
            None => format!("{name} (no node completed)"),
        };
        chart
            .draw_series(LineSeries::new(
                cdf_steps(&ok_times, s.per_node_s.len()),
                color.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }

    let mut bounds = vec![(report.bound_s, "Kumar–Ross bound", BLACK.to_rgba())];
    if has_direct {
        bounds.push((
            report.direct_bound_s,
            "direct bound",
            RGBAColor(128, 128, 128, 1.0),
        ));
    }
    for (t, what, color) in bounds {
        chart
            .draw_series(LineSeries::new(
                vec![(t, 0.0), (t, 1.02)],
                color.stroke_width(1),
            ))
            .map_err(|e| e.to_string())?
            .label(format!("{what} {t:.1} s"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::cdf_steps;

    #[test]
    fn cdf_is_a_staircase() {
        let steps = cdf_steps(&[2.0, 1.0], 4);
        assert_eq!(
            steps,
            vec![(0.0, 0.0), (1.0, 0.0), (1.0, 0.25), (2.0, 0.25), (2.0, 0.5)]
        );
    }
}
