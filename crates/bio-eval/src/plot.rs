//! PNG pictures without system libraries: line charts (robustness versus eps), histograms (weight
//! magnitudes on a log axis with a fitted density overlaid, activity sparsity) and grids of grayscale
//! images (receptive fields).
//!
//! Drawing uses `plotters`' bitmap backend; text is rendered with `ab_glyph` from a TrueType font found
//! at run time: the file named by the `BIORULE_FONT` environment variable, else a common system font
//! (DejaVu Sans, Liberation Sans, Arial, ...; see [`font_path`]). Without a font the pictures are drawn
//! without any text, and each writer says so in [`Drawn::warning`]. `BIORULE_FONT=none` disables text.

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::backend::DrawingBackend;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use crate::error::EvalError;

/// One line of a [`line_chart`].
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Name shown in the legend.
    pub name: String,
    /// `(x, y)` points, drawn in the given order; non-finite points are skipped.
    pub points: Vec<(f64, f64)>,
}

impl Series {
    /// A named series.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self { name: name.into(), points }
    }
}

/// What a writer produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drawn {
    /// The PNG file written.
    pub path: PathBuf,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Something the reader should know, e.g. that no font was found so the picture has no text.
    pub warning: Option<String>,
}

/// Size of [`line_chart`] pictures in pixels.
pub const CHART_SIZE: (u32, u32) = (900, 600);
/// Size of [`histogram`] pictures in pixels.
pub const HISTOGRAM_SIZE: (u32, u32) = (900, 560);
/// Each image pixel of an [`image_grid`] becomes a square of this many pixels.
pub const GRID_SCALE: u32 = 3;
/// Pixels between (and around) the cells of an [`image_grid`].
pub const GRID_GAP: u32 = 2;

const FONT: &str = "sans-serif";
const NO_FONT: &str = "no TrueType font found (set BIORULE_FONT to a .ttf file); the picture has no text";

/// Where fonts are looked for, most preferred first, after `BIORULE_FONT`.
const FONT_CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
    "/usr/share/fonts/noto/NotoSans-Regular.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
    "/Library/Fonts/Arial.ttf",
    "C:\\Windows\\Fonts\\arial.ttf",
];

/// Folders searched (recursively, a few levels deep) for any `.ttf` when no candidate exists.
const FONT_DIRS: &[&str] =
    &["/usr/share/fonts", "/usr/local/share/fonts", "/System/Library/Fonts", "/Library/Fonts", "C:\\Windows\\Fonts"];

/// The font used for text: `BIORULE_FONT` if set (`none` disables text), else the first existing
/// file of a list of common system fonts, else a regular sans `.ttf` found under the system and user
/// font folders. `None` when there is none.
pub fn font_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("BIORULE_FONT") {
        return (p != "none").then(|| PathBuf::from(p));
    }
    if let Some(p) = FONT_CANDIDATES.iter().map(PathBuf::from).find(|p| p.is_file()) {
        return Some(p);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let user = home.iter().flat_map(|h| [h.join(".fonts"), h.join(".local/share/fonts"), h.join("Library/Fonts")]);
    let mut found = Vec::new();
    for dir in FONT_DIRS.iter().map(PathBuf::from).chain(user) {
        collect_ttf(&dir, 4, &mut found);
    }
    // Prefer a plain sans face: not bold, italic, mono, condensed or symbols.
    let score = |p: &PathBuf| {
        let name = p.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
        let odd = ["bold", "italic", "oblique", "mono", "cond", "light", "symbol", "emoji", "math"];
        (odd.iter().filter(|o| name.contains(*o)).count(), !name.contains("sans"), name)
    };
    found.into_iter().min_by_key(score)
}

fn collect_ttf(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() && depth > 0 {
            collect_ttf(&p, depth - 1, out);
        } else if p.extension().is_some_and(|x| x.eq_ignore_ascii_case("ttf")) {
            out.push(p);
        }
    }
}

/// Registers the font once per process; true when text can be drawn.
fn text_available() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| {
        let Some(bytes) = font_path().and_then(|p| std::fs::read(p).ok()) else { return false };
        // plotters keeps fonts for the whole process; the few hundred kB are leaked once.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        register_font(FONT, FontStyle::Normal, bytes).is_ok()
    })
}

fn write_error(path: &Path, e: impl Display) -> EvalError {
    EvalError::Write { path: path.display().to_string(), reason: e.to_string() }
}

fn check_dir(path: &Path) -> Result<(), EvalError> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => {
            Err(write_error(path, format!("folder {} does not exist", dir.display())))
        }
        _ => Ok(()),
    }
}

/// Most ticks on a horizontal axis (labels of up to ~8 characters stay apart on a 900-pixel chart).
const X_TICKS: usize = 9;
/// Most ticks on a vertical axis.
const Y_TICKS: usize = 8;

/// `v` as a tick label: at most 6 significant digits (so `9.999999999999999e-6` reads `1e-5`), no
/// trailing zeros, plain decimals from 0.001 to 999999 and `2.5e-5` style outside; `-0` prints `0`.
fn format_number(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    let scientific = format!("{v:.5e}");
    let (mantissa, exponent) = scientific.split_once('e').expect("`{:e}` always has an exponent");
    let exponent: i32 = exponent.parse().expect("`{:e}` writes an integer exponent");
    let mantissa = mantissa.trim_end_matches('0').trim_end_matches('.');
    if mantissa == "0" || mantissa == "-0" {
        return "0".to_string();
    }
    if (-3..=5).contains(&exponent) {
        let fraction_digits = mantissa.split_once('.').map_or(0, |(_, f)| f.len()) as i32;
        let decimals = (fraction_digits - exponent).max(0) as usize;
        let text = format!("{v:.decimals$}");
        if text.trim_start_matches('-').chars().all(|c| c == '0' || c == '.') { "0".to_string() } else { text }
    } else {
        format!("{mantissa}e{exponent}")
    }
}

/// `m·10^k` computed so that it is the closest double to the decimal number (`3·10⁻¹` is `0.3`,
/// where `3.0 * 0.1` is `0.30000000000000004`).
fn decimal(m: i64, k: i32) -> f64 {
    if k >= 0 { m as f64 * 10f64.powi(k) } else { m as f64 / 10f64.powi(-k) }
}

/// At most `max_ticks` evenly spaced ticks inside `[lo, hi]` at multiples of 1, 2 or 5·10^k, the
/// finest such step that fits; `[lo]` alone when the range is a single value.
fn linear_ticks(lo: f64, hi: f64, max_ticks: usize) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo || max_ticks < 2 {
        return if lo.is_finite() { vec![lo] } else { Vec::new() };
    }
    let mut k = ((hi - lo) / max_ticks as f64).log10().floor() as i32 - 1;
    loop {
        for m in [1i64, 2, 5] {
            let step = decimal(m, k);
            let (first, last) = ((lo / step).ceil() as i64, (hi / step).floor() as i64);
            if last - first < max_ticks as i64 {
                // Each tick is i·m·10^k in one rounding, and 0 is never -0.
                return (first..=last).map(|i| decimal(i * m, k) + 0.0).collect();
            }
        }
        k += 1;
    }
}

/// Ticks for a log axis over `[lo, hi]` (both > 0), at most `max_ticks`: when the range spans less
/// than a decade, [`linear_ticks`] (labels such as 0.02, 0.03, 0.04); else the densest of 1–9, 1–2–5
/// or 1 per decade that fits, then every n-th decade.
fn log_ticks(lo: f64, hi: f64, max_ticks: usize) -> Vec<f64> {
    if !(lo > 0.0 && hi > lo && hi.is_finite()) {
        return if lo > 0.0 && lo.is_finite() { vec![lo] } else { Vec::new() };
    }
    if hi / lo < 10.0 {
        return linear_ticks(lo, hi, max_ticks);
    }
    let (k0, k1) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    let inside = |v: &f64| *v >= lo * (1.0 - 1e-9) && *v <= hi * (1.0 + 1e-9);
    let mantissas: [&[i64]; 3] = [&[1, 2, 3, 4, 5, 6, 7, 8, 9], &[1, 2, 5], &[1]];
    for set in mantissas {
        let ticks: Vec<f64> = (k0..=k1).flat_map(|k| set.iter().map(move |&m| decimal(m, k))).filter(inside).collect();
        if ticks.len() <= max_ticks.max(1) {
            return ticks;
        }
    }
    let decades: Vec<f64> = (k0..=k1).map(|k| decimal(1, k)).filter(inside).collect();
    let every = decades.len().div_ceil(max_ticks.max(1));
    decades.into_iter().step_by(every).collect()
}

/// The whole numbers among `ticks` (`1, 1.5, 2, 2.5, 3` → `1, 2, 3`), for an axis whose values are
/// all whole (epochs, counts): a tick at 1.5 epochs names no point. `ticks` unchanged when fewer than
/// two would be left.
fn whole_ticks(ticks: &[f64]) -> Vec<f64> {
    let whole: Vec<f64> = ticks.iter().copied().filter(|t| t.fract() == 0.0).collect();
    if whole.len() >= 2 { whole } else { ticks.to_vec() }
}

/// `(lo, hi)` padded by 5 % of the span; a single value gets ±10 % of itself (±1 around 0), so that
/// the axis is centred on it and its ticks read near it.
fn padded(lo: f64, hi: f64) -> (f64, f64) {
    let span = hi - lo;
    if span > 0.0 {
        (lo - 0.05 * span, hi + 0.05 * span)
    } else {
        let half = if lo == 0.0 { 1.0 } else { 0.1 * lo.abs() };
        (lo - half, hi + half)
    }
}

/// One axis of a chart: the range drawn, its ticks, and whether it is a log10 axis (the chart's
/// coordinate is then `log10(value)`, so plotters' own log axis, which labels nothing within a
/// decade, is not used).
#[derive(Clone, Debug, PartialEq)]
struct Axis {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
    log: bool,
}

impl Axis {
    fn linear((lo, hi): (f64, f64), max_ticks: usize) -> Self {
        Axis { lo, hi, ticks: linear_ticks(lo, hi, max_ticks), log: false }
    }

    /// A log axis over the values `lo..hi` (both > 0).
    fn log((lo, hi): (f64, f64), max_ticks: usize) -> Self {
        let ticks = log_ticks(lo, hi, max_ticks).into_iter().map(f64::log10).collect();
        Axis { lo: lo.log10(), hi: hi.log10(), ticks, log: true }
    }

    /// The chart coordinate of value `v`.
    fn coord(&self, v: f64) -> f64 {
        if self.log { v.log10() } else { v }
    }

    /// The label of the tick at chart coordinate `c`.
    fn label(&self, c: f64) -> String {
        format_number(if self.log { 10f64.powf(c) } else { c })
    }

    /// Characters of the longest tick label.
    fn label_chars(&self) -> usize {
        self.ticks.iter().map(|&t| self.label(t).chars().count()).max().unwrap_or(1)
    }
}

/// A plotters coordinate whose grid lines and labels are exactly the axis' ticks (the labels are
/// written by [`Axis::label`], passed as the mesh's formatter).
impl Ranged for Axis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let fraction = (value - self.lo) / (self.hi - self.lo);
        limit.0 + ((limit.1 - limit.0) as f64 * fraction).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        // Bold lines (and labels) at the ticks; no light lines in between.
        if hint.weight().allow_light_points() { Vec::new() } else { self.ticks.clone() }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

type Chart<'a, 'b> = ChartContext<'a, BitMapBackend<'b>, Cartesian2d<Axis, Axis>>;

/// Draws the grid at the ticks, the tick labels and the axis titles; without a font (any text would
/// fail to render) only a frame around the plotting area.
#[allow(clippy::too_many_arguments)]
fn draw_axes(
    root: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    chart: &mut Chart<'_, '_>,
    x: &Axis,
    y: &Axis,
    x_label: &str,
    y_label: &str,
    text: bool,
    path: &Path,
) -> Result<(), EvalError> {
    let err = |e| write_error(path, e);
    if text {
        chart
            .configure_mesh()
            .bold_line_style(RGBColor(225, 225, 225))
            .x_desc(x_label)
            .y_desc(y_label)
            .x_label_formatter(&|c| x.label(*c))
            .y_label_formatter(&|c| y.label(*c))
            .label_style((FONT, 16))
            .axis_desc_style((FONT, 20))
            .draw()
            .map_err(err)?;
    } else {
        let (xs, ys) = chart.plotting_area().get_pixel_range();
        root.draw(&Rectangle::new([(xs.start, ys.start), (xs.end - 1, ys.end - 1)], BLACK)).map_err(err)?;
    }
    Ok(())
}

/// The legend of the labelled series, framed, at `position`.
fn draw_legend<'a, 'b: 'a>(
    chart: &mut Chart<'a, 'b>,
    position: SeriesLabelPosition,
    path: &Path,
) -> Result<(), EvalError> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 16))
        .draw()
        .map_err(|e| write_error(path, e))
}

/// Distinct colours for series, colour-blind friendly first (Okabe–Ito), then plotters' palette.
fn colour(i: usize) -> RGBColor {
    const OKABE_ITO: [RGBColor; 7] = [
        RGBColor(0, 114, 178),
        RGBColor(213, 94, 0),
        RGBColor(0, 158, 115),
        RGBColor(204, 121, 167),
        RGBColor(230, 159, 0),
        RGBColor(86, 180, 233),
        RGBColor(0, 0, 0),
    ];
    OKABE_ITO.get(i).copied().unwrap_or_else(|| {
        let (r, g, b) = Palette99::pick(i).rgb();
        RGBColor(r, g, b)
    })
}

/// A cartesian chart over the axes `x` × `y` on a white `root`, captioned with `title` when text can
/// be drawn (with room for the tick labels), else with thin margins.
fn cartesian<'a, 'b>(
    root: &'a DrawingArea<BitMapBackend<'b>, plotters::coord::Shift>,
    path: &Path,
    title: &str,
    x: &Axis,
    y: &Axis,
    text: bool,
) -> Result<Chart<'a, 'b>, EvalError> {
    let err = |e| write_error(path, e);
    root.fill(&WHITE).map_err(err)?;
    let mut builder = ChartBuilder::on(root);
    builder.margin(20);
    if text {
        // Room for the longest tick label (about 9 pixels a character) and the axis title beside it.
        let y_area = 40 + 9 * y.label_chars() as u32;
        builder.caption(title, (FONT, 26)).x_label_area_size(55).y_label_area_size(y_area);
    } else {
        builder.x_label_area_size(10).y_label_area_size(10);
    }
    builder.build_cartesian_2d(x.clone(), y.clone()).map_err(err)
}

/// A line chart of several series with markers, axis labels and a legend, e.g. robust accuracy versus
/// eps for each model and attack. When every y lies in [0, 1] the y axis spans [0, 1].
pub fn line_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> Result<Drawn, EvalError> {
    draw_line_chart(path, title, x_label, y_label, series, text_available())
}

fn draw_line_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    text: bool,
) -> Result<Drawn, EvalError> {
    check_dir(path)?;
    let finite: Vec<(f64, f64)> =
        series.iter().flat_map(|s| s.points.iter().copied()).filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
    let (xmin, xmax) = finite.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (ymin, ymax) = finite.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let (xr, yr) = if finite.is_empty() {
        ((0.0, 1.0), (0.0, 1.0))
    } else if ymin >= 0.0 && ymax <= 1.0 {
        (padded(xmin, xmax), (0.0, 1.0))
    } else {
        (padded(xmin, xmax), padded(ymin, ymax))
    };
    let (w, h) = CHART_SIZE;
    let err = |e| write_error(path, e);
    let root = BitMapBackend::new(path, (w, h)).into_drawing_area();
    let (mut x, y) = (Axis::linear(xr, X_TICKS), Axis::linear(yr, Y_TICKS));
    if finite.iter().all(|(px, _)| px.fract() == 0.0) {
        x.ticks = whole_ticks(&x.ticks);
    }
    let mut chart = cartesian(&root, path, title, &x, &y, text)?;
    draw_axes(&root, &mut chart, &x, &y, x_label, y_label, text, path)?;
    for (i, s) in series.iter().enumerate() {
        let c = colour(i);
        let pts: Vec<(f64, f64)> = s.points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
        let line = chart.draw_series(LineSeries::new(pts.clone(), c.stroke_width(2))).map_err(err)?;
        if text {
            line.label(s.name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(3)));
        }
        chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 4, c.filled()))).map_err(err)?;
    }
    if text && !series.is_empty() {
        draw_legend(&mut chart, emptiest_corner(&finite, xr, yr), path)?;
    }
    root.present().map_err(err)?;
    Ok(Drawn { path: path.to_path_buf(), width: w, height: h, warning: (!text).then(|| NO_FONT.to_string()) })
}

/// The corner of the plot with the fewest data points in its box (35% of each axis' range from
/// that corner), so the legend hides as little as it can; the upper right when several tie.
fn emptiest_corner(points: &[(f64, f64)], (x0, x1): (f64, f64), (y0, y1): (f64, f64)) -> SeriesLabelPosition {
    const REACH: f64 = 0.35;
    let (dx, dy) = ((x1 - x0) * REACH, (y1 - y0) * REACH);
    let inside = |right: bool, upper: bool| {
        points
            .iter()
            .filter(|(x, y)| {
                (if right { *x >= x1 - dx } else { *x <= x0 + dx })
                    && (if upper { *y >= y1 - dy } else { *y <= y0 + dy })
            })
            .count()
    };
    [
        (SeriesLabelPosition::UpperRight, inside(true, true)),
        (SeriesLabelPosition::LowerRight, inside(true, false)),
        (SeriesLabelPosition::UpperLeft, inside(false, true)),
        (SeriesLabelPosition::LowerLeft, inside(false, false)),
    ]
    .into_iter()
    .min_by_key(|(_, n)| *n)
    .map(|(corner, _)| corner)
    .expect("four corners")
}

/// One labelled point of a [`pareto_chart`].
#[derive(Clone, Debug, PartialEq)]
pub struct LabelledPoint {
    /// Text written next to the point.
    pub label: String,
    /// x value.
    pub x: f64,
    /// y value.
    pub y: f64,
    /// Drawn highlighted and joined to the other front points by a line.
    pub on_front: bool,
    /// A group (e.g. the sweep a point came from): with groups, each is drawn in its own colour with
    /// a legend, the front is a dark line through ringed points, and only front points are labelled.
    pub group: Option<String>,
    /// Half-lengths of the error bars in x and y (e.g. the standard deviation over seeds); `None`:
    /// no bar.
    pub spread: Option<(f64, f64)>,
}

/// A scatter chart of labelled points with the Pareto front (the points with `on_front`) in orange,
/// larger and joined in order of x, the others grey, e.g. clean versus robust accuracy of every
/// setting of a sweep. The title should say what orange means.
pub fn pareto_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    points: &[LabelledPoint],
) -> Result<Drawn, EvalError> {
    draw_pareto_chart(path, title, x_label, y_label, points, text_available())
}

fn draw_pareto_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    points: &[LabelledPoint],
    text: bool,
) -> Result<Drawn, EvalError> {
    check_dir(path)?;
    let finite: Vec<&LabelledPoint> = points.iter().filter(|p| p.x.is_finite() && p.y.is_finite()).collect();
    let range =
        |v: &mut dyn Iterator<Item = f64>| v.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(x), b.max(x)));
    let (xr, yr) = if finite.is_empty() {
        ((0.0, 1.0), (0.0, 1.0))
    } else {
        let (xlo, xhi) = range(&mut finite.iter().map(|p| p.x));
        let (ylo, yhi) = range(&mut finite.iter().map(|p| p.y));
        // Taller than a plain pad, so that the labels above the top points stay inside the picture.
        let (y0, y1) = padded(ylo, yhi);
        (padded(xlo, xhi), (y0, y1 + 0.05 * (y1 - y0)))
    };
    let (w, h) = CHART_SIZE;
    let err = |e| write_error(path, e);
    let root = BitMapBackend::new(path, (w, h)).into_drawing_area();
    let (x, y) = (Axis::linear(xr, X_TICKS), Axis::linear(yr, Y_TICKS));
    let mut chart = cartesian(&root, path, title, &x, &y, text)?;
    draw_axes(&root, &mut chart, &x, &y, x_label, y_label, text, path)?;
    let mut groups: Vec<&str> = Vec::new();
    for g in finite.iter().filter_map(|p| p.group.as_deref()) {
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    let grouped = !groups.is_empty();
    // Dark enough to read on white (labels are drawn in the point's colour).
    let other_colour = RGBColor(80, 80, 80);
    let front_colour = if grouped { RGBColor(40, 40, 40) } else { colour(1) };
    let mut front: Vec<(f64, f64)> = finite.iter().filter(|p| p.on_front).map(|p| (p.x, p.y)).collect();
    front.sort_by(|a, b| a.0.total_cmp(&b.0));
    chart.draw_series(LineSeries::new(front, front_colour.stroke_width(2))).map_err(err)?;
    for (i, g) in groups.iter().enumerate() {
        let c = colour(i);
        let mine: Vec<(f64, f64)> =
            finite.iter().filter(|p| p.group.as_deref() == Some(*g)).map(|p| (p.x, p.y)).collect();
        let dots = chart.draw_series(mine.into_iter().map(|xy| Circle::new(xy, 5, c.filled()))).map_err(err)?;
        if text {
            dots.label(g.to_string()).legend(move |(x, y)| Circle::new((x + 10, y), 5, c.filled()));
        }
    }
    let mut written: Vec<(i32, i32, i32, i32)> = Vec::new();
    for p in &finite {
        let c = if p.on_front { front_colour } else { other_colour };
        if let Some((dx, dy)) = p.spread.filter(|(dx, dy)| dx.is_finite() && dy.is_finite()) {
            // Error bars: ± the spread in each direction.
            let bars = [vec![(p.x - dx, p.y), (p.x + dx, p.y)], vec![(p.x, p.y - dy), (p.x, p.y + dy)]];
            chart.draw_series(bars.into_iter().map(|b| PathElement::new(b, c.stroke_width(1)))).map_err(err)?;
        }
        if !grouped {
            let size = if p.on_front { 6 } else { 4 };
            chart.draw_series(std::iter::once(Circle::new((p.x, p.y), size, c.filled()))).map_err(err)?;
        } else if p.group.is_none() {
            chart.draw_series(std::iter::once(Circle::new((p.x, p.y), 4, other_colour.filled()))).map_err(err)?;
        }
        if grouped && p.on_front {
            chart
                .draw_series(std::iter::once(Circle::new((p.x, p.y), 8, front_colour.stroke_width(2))))
                .map_err(err)?;
        }
        if text && (!grouped || p.on_front) {
            // Above the marker, never on it: to its right in the left half of the chart, to its left
            // in the right half (about 9 pixels a character at this size), so labels stay inside.
            let style = TextStyle::from((FONT, 17).into_font()).color(&c);
            let width = (p.label.chars().count() as f64 * 9.0) as i32;
            let dx = if p.x > (xr.0 + xr.1) / 2.0 { -9 - width } else { 9 };
            // With groups the legend names the colours, so a label that would overprint one already
            // written is left out (the table has every point) rather than made unreadable.
            let (px, py) = chart.backend_coord(&(p.x, p.y));
            let slot = (px + dx, py - 16, width, 16);
            let overlaps = |&(x, y, w, h): &(i32, i32, i32, i32)| {
                slot.0 < x + w && x < slot.0 + slot.2 && slot.1 < y + h && y < slot.1 + slot.3
            };
            if grouped && written.iter().any(overlaps) {
                continue;
            }
            written.push(slot);
            let label = EmptyElement::at((p.x, p.y)) + Text::new(p.label.clone(), (dx, -16), style);
            chart.draw_series(std::iter::once(label)).map_err(err)?;
        }
    }
    if text && grouped {
        draw_legend(&mut chart, SeriesLabelPosition::LowerLeft, path)?;
    }
    root.present().map_err(err)?;
    Ok(Drawn { path: path.to_path_buf(), width: w, height: h, warning: (!text).then(|| NO_FONT.to_string()) })
}

/// A histogram of `values` in `bins` equal bins, with an optional density `overlay` (e.g. a fitted
/// lognormal) drawn as a curve on top.
///
/// With `log_x` the x axis is logarithmic (its label says so): the bins are equal in `ln x` and the
/// bars show the density of `ln x`; the overlay, a density `f` of `x`, is drawn as `x·f(x)`, the
/// matching density of `ln x` (a lognormal then looks like a Gaussian bell). Values that are not
/// positive are left out there, and the warning says how many. On a linear axis the bars show the
/// density of `x` when there is an overlay to compare with, else the fraction of the values in each
/// bin (readable where a density would reach tens of thousands, e.g. when nearly every value is the
/// same). All values equal: the axis spans ±10 % around the value, and its bar is centred on it.
/// Non-finite values are always left out.
pub fn histogram(
    path: &Path,
    title: &str,
    x_label: &str,
    values: &[f64],
    log_x: bool,
    overlay: Option<&dyn Fn(f64) -> f64>,
    bins: usize,
) -> Result<Drawn, EvalError> {
    draw_histogram(path, title, x_label, values, log_x, overlay, Bins::Equal(bins), text_available())
}

/// A [`histogram`] (linear axis, bars as fractions of the values) of `values` that are whole
/// multiples of `step`, such as the fraction of a layer's units active on an input (multiples of
/// 1/width): at most `max_bins` bins, each holding the same whole number of multiples, centred on
/// them (`Bins::Lattice`). Equal bins from the smallest value to the largest would hold two
/// possible values in one bin and three (or none) in the next, and draw that alternation as a comb.
pub fn lattice_histogram(
    path: &Path,
    title: &str,
    x_label: &str,
    values: &[f64],
    step: f64,
    max_bins: usize,
) -> Result<Drawn, EvalError> {
    if !(step.is_finite() && step > 0.0) {
        return Err(EvalError::invalid("step", format!("the spacing of the values must be positive, got {step}")));
    }
    draw_histogram(path, title, x_label, values, false, None, Bins::Lattice { step, max: max_bins }, text_available())
}

/// How a histogram cuts its axis (of `t`: `x`, or `ln x` on a log axis) into bins.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Bins {
    /// This many equal bins from the smallest value to the largest.
    Equal(usize),
    /// The values are whole multiples of `step`: at most `max` bins of the same whole number of
    /// multiples each, the multiples in the middle of their bin.
    Lattice { step: f64, max: usize },
}

/// Where the bins of the values `ts` lie: `(first edge, bin width, bins)`. `ts` is not empty and
/// not all one value.
fn bin_layout(ts: &[f64], tmin: f64, tmax: f64, bins: Bins) -> (f64, f64, usize) {
    match bins {
        Bins::Equal(n) => (tmin, (tmax - tmin) / n as f64, n),
        Bins::Lattice { step, max } => {
            let (first, last) = ((tmin / step).round(), (tmax / step).round());
            let multiples = (last - first) as usize + 1;
            let per_bin = multiples.div_ceil(max.max(1));
            debug_assert!(ts.iter().all(|t| ((t / step).round() * step - t).abs() <= 1e-6 * step.max(t.abs())));
            ((first - 0.5) * step, per_bin as f64 * step, multiples.div_ceil(per_bin))
        }
    }
}

/// How many of `ts` fall into each of `bins` bins of width `width` from `first` (the last bin also
/// takes what lies on its upper edge).
fn bin_counts(ts: &[f64], first: f64, width: f64, bins: usize) -> Vec<usize> {
    let mut counts = vec![0usize; bins];
    for &t in ts {
        counts[(((t - first) / width).max(0.0) as usize).min(bins - 1)] += 1;
    }
    counts
}

#[allow(clippy::too_many_arguments)]
fn draw_histogram(
    path: &Path,
    title: &str,
    x_label: &str,
    values: &[f64],
    log_x: bool,
    overlay: Option<&dyn Fn(f64) -> f64>,
    bins: Bins,
    text: bool,
) -> Result<Drawn, EvalError> {
    if matches!(bins, Bins::Equal(0) | Bins::Lattice { max: 0, .. }) {
        return Err(EvalError::invalid("bins", "a histogram needs at least one bin"));
    }
    check_dir(path)?;
    let mut warnings = Vec::new();
    let kept: Vec<f64> = values.iter().copied().filter(|v| v.is_finite() && (!log_x || *v > 0.0)).collect();
    if kept.len() < values.len() {
        let why = if log_x { "not positive or not finite" } else { "not finite" };
        warnings.push(format!("{} of {} values left out ({why})", values.len() - kept.len(), values.len()));
    }
    // Bin in t = ln x (log axis) or t = x; bars are densities (or fractions) of t.
    let to_t = |x: f64| if log_x { x.ln() } else { x };
    let from_t = |t: f64| if log_x { t.exp() } else { t };
    let ts: Vec<f64> = kept.iter().map(|&x| to_t(x)).collect();
    let (tmin, tmax) = ts.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &t| (a.min(t), b.max(t)));
    let single = !ts.is_empty() && tmax == tmin;
    let equal_bins = match bins {
        Bins::Equal(n) => n,
        Bins::Lattice { max, .. } => max,
    };
    let (tlo, width, bins) = if ts.is_empty() {
        let (lo, hi) = (to_t(if log_x { 0.1 } else { 0.0 }), to_t(1.0));
        (lo, (hi - lo) / equal_bins as f64, equal_bins)
    } else if single {
        // A factor 1.1 either way on a log axis, ±10 % on a linear one; an odd count of equal bins
        // puts the single value's bin in the middle.
        let (lo, hi) = if log_x { (tmin - 0.1f64.ln_1p(), tmax + 0.1f64.ln_1p()) } else { padded(tmin, tmax) };
        (lo, (hi - lo) / (equal_bins | 1) as f64, equal_bins | 1)
    } else {
        bin_layout(&ts, tmin, tmax, bins)
    };
    let thi = tlo + bins as f64 * width;
    let counts = bin_counts(&ts, tlo, width, bins);
    let n = ts.len().max(1) as f64;
    let as_fraction = !log_x && overlay.is_none();
    let heights: Vec<f64> =
        counts.iter().map(|&c| if as_fraction { c as f64 / n } else { c as f64 / (n * width) }).collect();
    let curve: Vec<(f64, f64)> = overlay
        .map(|f| {
            (0..=400)
                .map(|i| {
                    let t = tlo + (thi - tlo) * i as f64 / 400.0;
                    let x = from_t(t);
                    (x, if log_x { x * f(x) } else { f(x) })
                })
                .filter(|(_, y)| y.is_finite())
                .collect()
        })
        .unwrap_or_default();
    let ymax = heights.iter().chain(curve.iter().map(|(_, y)| y)).fold(0.0f64, |a, &b| a.max(b));
    let ymax = if ymax > 0.0 { ymax * 1.08 } else { 1.0 };
    let margin = if single { 0.0 } else { 0.02 * (thi - tlo) };
    let x_range = (from_t(tlo - margin), from_t(thi + margin));
    let x = if log_x { Axis::log(x_range, X_TICKS) } else { Axis::linear(x_range, X_TICKS) };
    let y = Axis::linear((0.0, ymax), Y_TICKS);

    let (w, h) = HISTOGRAM_SIZE;
    let err = |e| write_error(path, e);
    let root = BitMapBackend::new(path, (w, h)).into_drawing_area();
    let mut chart = cartesian(&root, path, title, &x, &y, text)?;
    let (x_desc, y_desc) = if log_x {
        (format!("{x_label} (log axis)"), format!("density of ln {x_label}"))
    } else if as_fraction {
        (x_label.to_string(), "fraction of values per bin".to_string())
    } else {
        (x_label.to_string(), "density".to_string())
    };
    draw_axes(&root, &mut chart, &x, &y, &x_desc, &y_desc, text, path)?;
    let bars = heights.iter().enumerate().map(|(i, &d)| {
        let (a, b) = (from_t(tlo + i as f64 * width), from_t(tlo + (i + 1) as f64 * width));
        Rectangle::new([(x.coord(a), 0.0), (x.coord(b), d)], colour(0).mix(0.55).filled())
    });
    chart.draw_series(bars).map_err(err)?;
    if !curve.is_empty() {
        let points = curve.iter().map(|&(v, d)| (x.coord(v), d));
        chart.draw_series(LineSeries::new(points, colour(1).stroke_width(3))).map_err(err)?;
    }
    root.present().map_err(err)?;
    if !text {
        warnings.push(NO_FONT.to_string());
    }
    Ok(Drawn {
        path: path.to_path_buf(),
        width: w,
        height: h,
        warning: (!warnings.is_empty()).then(|| warnings.join("; ")),
    })
}

/// How the values of an [`image_grid`] become colours, one scale for every cell so that cells can
/// be compared and the colour bar can give values.
#[derive(Clone, Copy, Debug, PartialEq)]
enum ColourScale {
    /// No value is negative: black at 0, white at `max`.
    Gray { max: f32 },
    /// Signed values: blue at `−limit`, white at 0, red at `+limit`.
    Diverging { limit: f32 },
}

impl ColourScale {
    /// The scale for `images`: gray when no finite value is negative, else diverging, symmetric
    /// around 0 up to the largest magnitude.
    fn of(images: &[Vec<f32>]) -> Self {
        let finite = || images.iter().flatten().copied().filter(|v| v.is_finite());
        let magnitude = finite().fold(0.0f32, |m, v| m.max(v.abs()));
        let top = if magnitude > 0.0 { magnitude } else { 1.0 };
        if finite().any(|v| v < 0.0) { ColourScale::Diverging { limit: top } } else { ColourScale::Gray { max: top } }
    }

    /// The values at the bottom and top of the colour bar.
    fn range(&self) -> (f64, f64) {
        match *self {
            ColourScale::Gray { max } => (0.0, max as f64),
            ColourScale::Diverging { limit } => (-limit as f64, limit as f64),
        }
    }

    /// The colour of `v`; values beyond the range get its end colour, non-finite ones bright green.
    fn rgb(&self, v: f32) -> [u8; 3] {
        if !v.is_finite() {
            return [0, 200, 0];
        }
        let mix = |from: [u8; 3], to: [u8; 3], a: f32| {
            let a = a.clamp(0.0, 1.0);
            [0, 1, 2].map(|i| (from[i] as f32 + a * (to[i] as f32 - from[i] as f32)).round() as u8)
        };
        match *self {
            ColourScale::Gray { max } => mix([0, 0, 0], [255, 255, 255], v / max),
            // The ends of ColorBrewer's RdBu, white in the middle.
            ColourScale::Diverging { limit } if v >= 0.0 => mix([255, 255, 255], [178, 24, 43], v / limit),
            ColourScale::Diverging { limit } => mix([255, 255, 255], [33, 102, 172], -v / limit),
        }
    }
}

/// Height of the title strip of an [`image_grid`] (when text can be drawn).
pub const GRID_TITLE_HEIGHT: u32 = 40;
/// Width of the colour-bar strip right of an [`image_grid`]: the bar and, with text, its values.
pub const GRID_BAR_AREA: (u32, u32) = (120, 44);
const BAR_GAP: u32 = 14;
const BAR_WIDTH: u32 = 18;

/// The first-layer receptive fields of several models side by side: one row per model (its first
/// `units` units, each a `width×height` image), rows in the order given and named in the title. Each
/// field is divided by its own largest |w|, so models whose weights differ in scale by orders of
/// magnitude (a `bio` layer near 0.05, a backprop layer near 0.5) are all legible; the colour bar is
/// then in units of that largest |w|, blue–white–red when any weight is negative.
pub fn receptive_field_rows(
    path: &Path,
    rows: &[(String, Vec<Vec<f32>>)],
    width: usize,
    height: usize,
    units: usize,
) -> Result<Drawn, EvalError> {
    let mut images = Vec::new();
    for (_, fields) in rows {
        for u in 0..units {
            let field = fields.get(u).cloned().unwrap_or_else(|| vec![0.0; width * height]);
            let peak = field.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            images.push(if peak > 0.0 { field.iter().map(|v| v / peak).collect() } else { field });
        }
    }
    let names: Vec<&str> = rows.iter().map(|(n, _)| n.as_str()).collect();
    let title = format!("first-layer fields, rows top to bottom: {}; each field / its max |w|", names.join(", "));
    image_grid(path, &title, &images, width, height, units)
}

/// A grid of images (e.g. hidden units' receptive fields), `columns` per row, each `width×height`
/// pixels stored row-major, under `title`, with a colour bar giving the values. Every cell shares
/// one colour scale: gray from 0 (black) to the largest value (white) when no value is negative, else
/// blue–white–red symmetric around 0 (e.g. signed weights, or their change since initialisation).
/// Non-finite pixels are bright green. Each image pixel becomes a [`GRID_SCALE`]-pixel square and
/// cells are separated by [`GRID_GAP`] pixels of light gray, so the grid is `c·(GRID_SCALE·width +
/// GRID_GAP) + GRID_GAP` wide and `r·(GRID_SCALE·height + GRID_GAP) + GRID_GAP` high, for
/// `c = min(columns, images)` columns and `r = ⌈images / columns⌉` rows; the picture adds
/// [`GRID_TITLE_HEIGHT`] above and [`GRID_BAR_AREA`] on the right (the first value with text, the
/// second without, when neither title nor values are drawn).
pub fn image_grid(
    path: &Path,
    title: &str,
    images: &[Vec<f32>],
    width: usize,
    height: usize,
    columns: usize,
) -> Result<Drawn, EvalError> {
    draw_image_grid(path, title, images, width, height, columns, text_available())
}

fn draw_image_grid(
    path: &Path,
    title: &str,
    images: &[Vec<f32>],
    width: usize,
    height: usize,
    columns: usize,
    text: bool,
) -> Result<Drawn, EvalError> {
    if images.is_empty() {
        return Err(EvalError::NotEnoughData("no images to draw".into()));
    }
    if width == 0 || height == 0 {
        return Err(EvalError::invalid("image-shape", "width and height must be at least 1"));
    }
    if columns == 0 {
        return Err(EvalError::invalid("columns", "must be at least 1"));
    }
    if let Some((i, im)) = images.iter().enumerate().find(|(_, im)| im.len() != width * height) {
        return Err(EvalError::Shape(format!("image {i} has {} pixels, expected {width}×{height}", im.len())));
    }
    check_dir(path)?;
    let scale = ColourScale::of(images);
    let (cols, rows) = (columns.min(images.len()), images.len().div_ceil(columns));
    let (cw, ch) = (GRID_SCALE * width as u32, GRID_SCALE * height as u32);
    let (grid_w, grid_h) = (cols as u32 * (cw + GRID_GAP) + GRID_GAP, rows as u32 * (ch + GRID_GAP) + GRID_GAP);
    let top = if text { GRID_TITLE_HEIGHT } else { 0 };
    let (w, h) = (grid_w + if text { GRID_BAR_AREA.0 } else { GRID_BAR_AREA.1 }, top + grid_h);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    let mut put = |x: u32, y: u32, rgb: [u8; 3]| {
        let o = ((y * w + x) * 3) as usize;
        buf[o..o + 3].copy_from_slice(&rgb);
    };
    for y in top..top + grid_h {
        for x in 0..grid_w {
            put(x, y, [200, 200, 200]);
        }
    }
    for (k, im) in images.iter().enumerate() {
        let (x0, y0) = (
            GRID_GAP + (k % columns) as u32 * (cw + GRID_GAP),
            top + GRID_GAP + (k / columns) as u32 * (ch + GRID_GAP),
        );
        for (p, &v) in im.iter().enumerate() {
            let rgb = scale.rgb(v);
            let (px, py) = (x0 + (p % width) as u32 * GRID_SCALE, y0 + (p / width) as u32 * GRID_SCALE);
            for dy in 0..GRID_SCALE {
                for dx in 0..GRID_SCALE {
                    put(px + dx, py + dy, rgb);
                }
            }
        }
    }
    // The colour bar: top value at the top, a thin frame, beside the grid.
    let (lo, hi) = scale.range();
    let inset = (grid_h / 8).min(10);
    let (bar_x, bar_top, bar_bottom) = (grid_w + BAR_GAP, top + inset, top + grid_h - 1 - inset);
    let bar_y = |v: f64| bar_bottom as f64 - (v - lo) / (hi - lo) * (bar_bottom - bar_top) as f64;
    for y in bar_top..=bar_bottom {
        let v = hi - (y - bar_top) as f64 / (bar_bottom - bar_top) as f64 * (hi - lo);
        for x in bar_x..bar_x + BAR_WIDTH {
            let edge = y == bar_top || y == bar_bottom || x == bar_x || x == bar_x + BAR_WIDTH - 1;
            put(x, y, if edge { [0, 0, 0] } else { scale.rgb(v as f32) });
        }
    }
    let err = |e| write_error(path, e);
    let mut backend = BitMapBackend::new(path, (w, h));
    backend.blit_bitmap((0, 0), (w, h), &buf).map_err(|e| write_error(path, e))?;
    let root = backend.into_drawing_area();
    if text {
        let title_style = TextStyle::from((FONT, 22).into_font()).color(&BLACK);
        root.draw(&Text::new(title.to_string(), (GRID_GAP as i32 + 4, 10), title_style)).map_err(err)?;
        let label_style = TextStyle::from((FONT, 14).into_font()).color(&BLACK);
        for tick in linear_ticks(lo, hi, 5) {
            let y = bar_y(tick).round() as i32;
            let x = (bar_x + BAR_WIDTH) as i32;
            root.draw(&PathElement::new(vec![(x, y), (x + 5, y)], BLACK)).map_err(err)?;
            root.draw(&Text::new(format_number(tick), (x + 8, y - 7), label_style.clone())).map_err(err)?;
        }
    }
    root.present().map_err(err)?;
    Ok(Drawn { path: path.to_path_buf(), width: w, height: h, warning: (!text).then(|| NO_FONT.to_string()) })
}

/// A generous width of one character of a [`matrix_panels`] title (20 px font), in pixels.
pub const TITLE_CHAR_WIDTH: u32 = 11;

/// Side of one cell of a [`matrix_panels`] picture, in pixels.
pub const MATRIX_CELL: u32 = 34;

/// Small square matrices with values in [0, 1] side by side, each under its own name, e.g. the
/// accuracy matrix `R[i][j]` of every method of a continual-learning run: cell `(i, j)` is row `i`,
/// column `j`, gray from black (0) to white (1), with its value in percent written in it when text
/// can be drawn. At most `columns` panels per row; every matrix must be square.
pub fn matrix_panels(
    path: &Path,
    title: &str,
    panels: &[(String, Vec<Vec<f64>>)],
    columns: usize,
) -> Result<Drawn, EvalError> {
    if panels.is_empty() {
        return Err(EvalError::NotEnoughData("no matrices to draw".into()));
    }
    if columns == 0 {
        return Err(EvalError::invalid("columns", "must be at least 1"));
    }
    if let Some((name, _)) = panels.iter().find(|(_, m)| m.iter().any(|row| row.len() != m.len()) || m.is_empty()) {
        return Err(EvalError::Shape(format!("the matrix of {name} is not square")));
    }
    check_dir(path)?;
    let text = text_available();
    let n = panels.iter().map(|(_, m)| m.len()).max().unwrap_or(1) as u32;
    let (cols, rows) = (columns.min(panels.len()) as u32, panels.len().div_ceil(columns) as u32);
    let (label_h, title_h, gap) = (if text { 24 } else { 4 }, if text { 40 } else { 4 }, 16);
    let (pw, ph) = (n * MATRIX_CELL + gap, n * MATRIX_CELL + label_h + gap);
    // Wide enough for the title too (one panel alone is narrower than a sentence at 20 px).
    let title_w = if text { 2 * gap + TITLE_CHAR_WIDTH * title.chars().count() as u32 } else { 0 };
    let (w, h) = ((cols * pw + gap).max(title_w), title_h + rows * ph);
    let err = |e| write_error(path, e);
    let root = BitMapBackend::new(path, (w, h)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    if text {
        root.draw(&Text::new(title.to_string(), (gap as i32, 10), (FONT, 20).into_font())).map_err(err)?;
    }
    for (k, (name, m)) in panels.iter().enumerate() {
        let (x0, y0) = (gap + (k as u32 % cols) * pw, title_h + (k as u32 / cols) * ph);
        if text {
            root.draw(&Text::new(name.clone(), (x0 as i32, y0 as i32 + 2), (FONT, 16).into_font())).map_err(err)?;
        }
        for (i, row) in m.iter().enumerate() {
            for (j, &v) in row.iter().enumerate() {
                let (cx, cy) = ((x0 + j as u32 * MATRIX_CELL) as i32, (y0 + label_h + i as u32 * MATRIX_CELL) as i32);
                let g = if v.is_finite() { (255.0 * v.clamp(0.0, 1.0)).round() as u8 } else { 0 };
                let fill = if v.is_finite() { RGBColor(g, g, g) } else { RGBColor(0, 200, 0) };
                let cell = [(cx, cy), (cx + MATRIX_CELL as i32 - 1, cy + MATRIX_CELL as i32 - 1)];
                root.draw(&Rectangle::new(cell, fill.filled())).map_err(err)?;
                if text && v.is_finite() {
                    let ink = if g > 128 { BLACK } else { WHITE };
                    let label = format!("{:.0}", 100.0 * v);
                    let style = (FONT, 13).into_font().color(&ink);
                    root.draw(&Text::new(label, (cx + 6, cy + 10), style)).map_err(err)?;
                }
            }
        }
    }
    root.present().map_err(err)?;
    Ok(Drawn { path: path.to_path_buf(), width: w, height: h, warning: (!text).then(|| NO_FONT.to_string()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_legend_goes_to_the_emptiest_corner() {
        let corner = |points: &[(f64, f64)]| emptiest_corner(points, (1.0, 5.0), (0.0, 1.0));
        // Nothing anywhere: the upper right, as before.
        assert!(matches!(corner(&[]), SeriesLabelPosition::UpperRight));
        // Curves that end high on the right and one that falls to the bottom right (as a class-IL
        // average): only the lower left is free.
        let points = [(1.0, 0.98), (2.0, 0.93), (4.0, 0.83), (5.0, 0.84), (4.0, 0.25), (5.0, 0.2), (1.0, 0.9)];
        assert!(matches!(corner(&points), SeriesLabelPosition::LowerLeft));
        // Rising curves (few-shot accuracy against shots): the lower right is free.
        let rising = [(1.0, 0.1), (1.0, 0.2), (3.0, 0.6), (5.0, 0.9), (5.0, 0.95)];
        assert!(matches!(corner(&rising), SeriesLabelPosition::LowerRight));
    }

    fn is_png(path: &Path) -> (u32, u32) {
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let reader = decoder.read_info().unwrap();
        let info = reader.info();
        (info.width, info.height)
    }

    #[test]
    fn charts_are_drawn_with_and_without_text() {
        let dir = tempfile::tempdir().unwrap();
        let series = [
            Series::new("bio PGD", vec![(0.0, 0.85), (0.1, 0.6), (0.3, 0.2)]),
            Series::new("bp PGD", vec![(0.0, 0.88), (0.1, 0.1), (0.3, 0.0)]),
        ];
        for text in [false, true] {
            if text && !text_available() {
                continue;
            }
            let p = dir.path().join(format!("curve-{text}.png"));
            let d = draw_line_chart(&p, "robustness", "eps", "robust accuracy", &series, text).unwrap();
            assert_eq!(is_png(&p), CHART_SIZE);
            assert_eq!(d.warning.is_some(), !text);
            let values: Vec<f64> = (1..2000).map(|i| (i as f64 * 0.37).sin().abs() + 0.01).collect();
            let f = |x: f64| (-x).exp();
            let p = dir.path().join(format!("hist-{text}.png"));
            let d = draw_histogram(&p, "w", "|w|", &values, true, Some(&f), Bins::Equal(30), text).unwrap();
            assert_eq!(is_png(&p), HISTOGRAM_SIZE);
            assert_eq!(d.warning.is_some(), !text);
            let p = dir.path().join(format!("hist-lin-{text}.png"));
            draw_histogram(&p, "sparsity", "active fraction", &values, false, None, Bins::Equal(20), text).unwrap();
            assert_eq!(is_png(&p), HISTOGRAM_SIZE);
        }
    }

    #[test]
    fn pareto_charts_are_drawn_with_and_without_text() {
        let dir = tempfile::tempdir().unwrap();
        let point = |label: &str, x, y, on_front| LabelledPoint {
            label: label.into(),
            x,
            y,
            on_front,
            group: None,
            spread: None,
        };
        let points = [
            point("defaults", 85.6, 8.7, true),
            point("rate 0.01", 79.1, 31.9, true),
            point("rate 0.003", 80.0, 20.0, false),
            point("diverged", f64::NAN, 1.0, false),
        ];
        // The same points as two groups (two sweeps compared), and one point with none.
        let mut grouped = points.clone();
        for (i, p) in grouped.iter_mut().enumerate().take(3) {
            p.group = Some(if i == 0 { "today" } else { "schedule" }.into());
        }
        for text in [false, true] {
            if text && !text_available() {
                continue;
            }
            for (name, points) in [("plain", &points), ("grouped", &grouped)] {
                let p = dir.path().join(format!("pareto-{name}-{text}.png"));
                let d = draw_pareto_chart(&p, "front", "clean", "robust", points, text).unwrap();
                assert_eq!(is_png(&p), CHART_SIZE);
                assert_eq!(d.warning.is_some(), !text);
            }
        }
        // Nothing finite to draw is still a picture, not an error.
        draw_pareto_chart(&dir.path().join("empty.png"), "t", "x", "y", &[], false).unwrap();
    }

    /// Active fractions of a 200-unit layer spread uniformly over k/200, k = 50..=149 (100 possible
    /// values, 10 inputs each): equal bins cut the 100 values 2.5 to a bin, so the bars alternate
    /// 20 and 30 (the comb of the `bp` activity histogram); lattice bins hold 3 values each.
    #[test]
    fn values_on_a_lattice_get_whole_multiples_per_bin_and_no_comb() {
        let units = 200.0;
        let ts: Vec<f64> = (50..150).flat_map(|k| std::iter::repeat_n(k as f64 / units, 10)).collect();
        let (tmin, tmax) = (50.0 / units, 149.0 / units);
        let equal = {
            let (first, width, bins) = bin_layout(&ts, tmin, tmax, Bins::Equal(40));
            bin_counts(&ts, first, width, bins)
        };
        assert!(equal.contains(&20) && equal.contains(&30), "the artefact this test is about: {equal:?}");
        let (first, width, bins) = bin_layout(&ts, tmin, tmax, Bins::Lattice { step: 1.0 / units, max: 40 });
        assert_eq!((bins, (width * units).round()), (34, 3.0));
        // Each possible value sits in the middle third of a bin, not on an edge.
        for k in 50..150 {
            let position = (k as f64 / units - first) / width;
            let within = position - position.floor();
            assert!((1.0 / 6.0 - 1e-9..=5.0 / 6.0 + 1e-9).contains(&within), "k {k}: {within}");
        }
        let counts = bin_counts(&ts, first, width, bins);
        assert_eq!(counts.iter().sum::<usize>(), ts.len());
        // Every bin holds three possible values, so 30 inputs; the last holds the one left (149).
        assert!(counts[..bins - 1].iter().all(|&c| c == 30), "{counts:?}");
        assert_eq!(counts[bins - 1], 10);
        // Fewer possible values than bins: one value per bin, none empty between the extremes.
        let few: Vec<f64> = (10..=25).map(|k| k as f64 / 100.0).collect();
        let (first, width, bins) = bin_layout(&few, 0.10, 0.25, Bins::Lattice { step: 0.01, max: 40 });
        assert_eq!(bin_counts(&few, first, width, bins), vec![1; 16]);
        let (first, width, bins) = bin_layout(&few, 0.10, 0.25, Bins::Equal(40));
        assert!(bin_counts(&few, first, width, bins).contains(&0), "equal bins leave gaps between the values");
    }

    #[test]
    fn degenerate_inputs_still_draw() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("empty.png");
        draw_line_chart(&p, "t", "x", "y", &[], false).unwrap();
        draw_line_chart(&p, "t", "x", "y", &[Series::new("one", vec![(1.0, 5.0)])], false).unwrap();
        let d = draw_histogram(&p, "t", "x", &[0.0, -1.0, f64::NAN], true, None, Bins::Equal(10), false).unwrap();
        assert!(d.warning.unwrap().contains("3 of 3"));
        draw_histogram(&p, "t", "x", &[2.0; 10], false, None, Bins::Equal(10), false).unwrap();
        let refused = draw_histogram(&p, "t", "x", &[1.0], false, None, Bins::Equal(0), false).unwrap_err();
        assert_eq!(refused.invalid_setting(), Some("bins"));
    }

    #[test]
    fn grid_has_the_documented_size() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("grid.png");
        let images: Vec<Vec<f32>> =
            (0..7).map(|k| (0..28 * 28).map(|i| ((i * (k + 1)) % 97) as f32).collect()).collect();
        let grid = 3 * (GRID_SCALE * 28 + GRID_GAP) + GRID_GAP;
        for text in [false, true] {
            if text && !text_available() {
                continue;
            }
            let d = draw_image_grid(&p, "fields", &images, 28, 28, 3, text).unwrap();
            let (w, h) =
                if text { (grid + GRID_BAR_AREA.0, grid + GRID_TITLE_HEIGHT) } else { (grid + GRID_BAR_AREA.1, grid) };
            assert_eq!((d.width, d.height), (w, h));
            assert_eq!(is_png(&p), (w, h));
        }
        assert!(matches!(image_grid(&p, "t", &[vec![0.0; 3]], 2, 2, 1), Err(EvalError::Shape(_))));
    }

    #[test]
    fn grid_colours_share_one_scale() {
        let gray = ColourScale::of(&[vec![0.0, 0.5], vec![2.0, f32::NAN]]);
        assert_eq!(gray, ColourScale::Gray { max: 2.0 });
        assert_eq!(gray.rgb(0.0), [0, 0, 0]);
        assert_eq!(gray.rgb(2.0), [255, 255, 255]);
        assert_eq!(gray.rgb(1.0), [128, 128, 128]);
        assert_eq!(gray.range(), (0.0, 2.0));
        let signed = ColourScale::of(&[vec![-3.0, 1.0]]);
        assert_eq!(signed, ColourScale::Diverging { limit: 3.0 });
        assert_eq!(signed.range(), (-3.0, 3.0));
        assert_eq!(signed.rgb(0.0), [255, 255, 255]);
        assert_eq!(signed.rgb(3.0), [178, 24, 43]);
        assert_eq!(signed.rgb(-30.0), [33, 102, 172], "beyond the range: the end colour");
        assert_eq!(signed.rgb(f32::INFINITY), [0, 200, 0]);
        // All zero (e.g. no change at all): a scale that still has a range.
        assert_eq!(ColourScale::of(&[vec![0.0; 4]]), ColourScale::Gray { max: 1.0 });
    }

    #[test]
    fn numbers_print_as_a_person_writes_them() {
        let cases = [
            (9.999999999999999e-6, "1e-5"),
            (2e-5, "2e-5"),
            (2.5e-5, "2.5e-5"),
            (0.001, "0.001"),
            (0.30000000000000004, "0.3"),
            (0.0495, "0.0495"),
            (80000.0, "80000"),
            (1.0, "1"),
            (-0.0, "0"),
            (-1e-20, "-1e-20"),
            (-0.25, "-0.25"),
            (1234567.0, "1.23457e6"),
            (0.1 + 0.2 - 0.3, "5.55112e-17"),
        ];
        for (v, text) in cases {
            assert_eq!(format_number(v), text, "{v:e}");
        }
    }

    #[test]
    fn an_axis_of_whole_numbers_gets_whole_ticks() {
        // Epochs 1-3, padded: the ticks fall every half epoch, and only the whole ones are kept.
        let (lo, hi) = padded(1.0, 3.0);
        assert_eq!(linear_ticks(lo, hi, X_TICKS), vec![1.0, 1.5, 2.0, 2.5, 3.0]);
        assert_eq!(whole_ticks(&linear_ticks(lo, hi, X_TICKS)), vec![1.0, 2.0, 3.0]);
        // Fewer than two whole ticks: unchanged.
        assert_eq!(whole_ticks(&[0.5, 1.0, 1.5]), vec![0.5, 1.0, 1.5]);
    }

    #[test]
    fn linear_ticks_are_round_and_few() {
        assert_eq!(linear_ticks(0.0, 1.0, 7), vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
        assert_eq!(linear_ticks(-0.05, 0.35, 9), vec![-0.05, 0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3]);
        let near = linear_ticks(0.04945, 0.05005, 9);
        assert_eq!(
            near.iter().map(|&t| format_number(t)).collect::<Vec<_>>(),
            ["0.0495", "0.0496", "0.0497", "0.0498", "0.0499", "0.05"]
        );
        for (lo, hi, max) in [(0.0, 83000.0, 7), (1e-6, 3e-5, 9), (-2.0, 7.0, 3), (0.09, 0.11, 9)] {
            let ticks = linear_ticks(lo, hi, max);
            assert!((2..=max).contains(&ticks.len()), "{lo}..{hi}: {ticks:?}");
            assert!(ticks.iter().all(|t| (lo..=hi).contains(t)), "{lo}..{hi}: {ticks:?}");
            assert!(ticks.iter().all(|t| !(*t == 0.0 && t.is_sign_negative())), "no -0");
        }
        assert_eq!(linear_ticks(0.05, 0.05, 9), vec![0.05]);
    }

    #[test]
    fn log_ticks_label_less_than_a_decade() {
        // The shipped weight histogram spans about e^-4.6 .. e^-2.4: it had no label at all.
        let within = log_ticks(0.0101, 0.09, 9);
        assert_eq!(
            within.iter().map(|&t| format_number(t)).collect::<Vec<_>>(),
            ["0.02", "0.03", "0.04", "0.05", "0.06", "0.07", "0.08", "0.09"]
        );
        assert_eq!(log_ticks(0.021, 0.029, 9).len(), 9, "0.021, 0.022, ... 0.029");
        assert_eq!(
            log_ticks(1e-5, 1e-3, 9).iter().map(|&t| format_number(t)).collect::<Vec<_>>(),
            ["1e-5", "2e-5", "5e-5", "1e-4", "2e-4", "5e-4", "0.001"]
        );
        let wide = log_ticks(1e-12, 1.0, 6);
        assert!(wide.len() <= 6 && wide.len() >= 3, "{wide:?}");
        assert!(log_ticks(-1.0, 1.0, 5).is_empty());
    }

    #[test]
    fn a_single_value_gets_a_range_around_it() {
        let (lo, hi) = padded(0.05, 0.05);
        assert!((lo - 0.045).abs() < 1e-12 && (hi - 0.055).abs() < 1e-12, "{lo}..{hi}");
        assert_eq!(padded(0.0, 0.0), (-1.0, 1.0));
        assert_eq!(padded(-2.0, -2.0), (-2.2, -1.8));
        assert_eq!(padded(0.0, 10.0), (-0.5, 10.5));
        // One eps on a robustness chart: ticks around it, none at a meaningless -0.4.
        let x = Axis::linear(padded(0.1, 0.1), X_TICKS);
        assert!(x.ticks.iter().all(|t| (0.09..=0.11).contains(t)), "{:?}", x.ticks);
        assert!(x.ticks.contains(&0.1));
    }

    #[test]
    fn log_axes_read_in_values() {
        let x = Axis::log((0.01, 0.1), X_TICKS);
        assert!((x.lo + 2.0).abs() < 1e-12 && (x.hi + 1.0).abs() < 1e-12);
        let labels: Vec<String> = x.ticks.iter().map(|&c| x.label(c)).collect();
        assert_eq!(labels.first().map(String::as_str), Some("0.01"));
        assert_eq!(labels.last().map(String::as_str), Some("0.1"));
        assert_eq!(x.coord(0.1), -1.0);
    }

    /// Writes one picture of each kind for a person to look at (`--ignored`), into `BIORULE_PLOT_DIR`
    /// or a `biorule-plots` folder in the temporary directory.
    #[test]
    #[ignore = "writes sample pictures for visual inspection"]
    fn render_samples() {
        let dir = std::env::var_os("BIORULE_PLOT_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join("biorule-plots"));
        std::fs::create_dir_all(&dir).unwrap();
        let eps = [0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3];
        let curve = |a: f64, k: f64| Series::new("", eps.iter().map(|&e| (e, a * (-k * e).exp())).collect());
        let series = [
            Series { name: "bio PGD".into(), ..curve(0.85, 12.0) },
            Series { name: "bio Square".into(), ..curve(0.85, 9.0) },
            Series { name: "bp PGD".into(), ..curve(0.88, 30.0) },
            Series { name: "bp Square".into(), ..curve(0.88, 22.0) },
        ];
        let d = line_chart(&dir.join("curve.png"), "Robust accuracy", "eps (L∞)", "robust accuracy", &series).unwrap();
        eprintln!("{d:?}");
        // Lognormal weights (μ = −3, σ = 0.8) from a simple deterministic generator.
        let mut state = 1u64;
        let mut uniform = move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        let weights: Vec<f64> = (0..20000)
            .map(|_| {
                let z = (-2.0 * uniform().ln()).sqrt() * (2.0 * std::f64::consts::PI * uniform()).cos();
                (-3.0 + 0.8 * z).exp()
            })
            .collect();
        let pdf = |x: f64| {
            let z = (x.ln() + 3.0) / 0.8;
            (-0.5 * z * z).exp() / (x * 0.8 * (2.0 * std::f64::consts::PI).sqrt())
        };
        let d = histogram(&dir.join("weights.png"), "Hidden weights", "|w|", &weights, true, Some(&pdf), 50).unwrap();
        eprintln!("{d:?}");
        let sparsity: Vec<f64> = (0..2000).map(|_| 0.05 + 0.02 * (uniform() - 0.5) + 0.01 * uniform()).collect();
        let d =
            histogram(&dir.join("sparsity.png"), "Activity sparsity", "active fraction", &sparsity, false, None, 30)
                .unwrap();
        eprintln!("{d:?}");
        let fields: Vec<Vec<f32>> = (0..24)
            .map(|k| {
                let (cx, cy) = (6.0 + (k % 6) as f32 * 3.0, 6.0 + (k / 6) as f32 * 4.0);
                (0..28 * 28)
                    .map(|p| {
                        let (x, y) = ((p % 28) as f32, (p / 28) as f32);
                        (-((x - cx).powi(2) + (y - cy).powi(2)) / 18.0).exp() * (1.0 + k as f32)
                    })
                    .collect()
            })
            .collect();
        let d = image_grid(&dir.join("fields.png"), "Receptive fields", &fields, 28, 28, 8).unwrap();
        eprintln!("{d:?}");
    }

    #[test]
    fn unwritable_paths_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("missing").join("x.png");
        for r in [
            draw_line_chart(&p, "t", "x", "y", &[], false),
            draw_histogram(&p, "t", "x", &[1.0], false, None, Bins::Equal(5), false),
            image_grid(&p, "t", &[vec![0.0; 4]], 2, 2, 1),
        ] {
            match r {
                Err(EvalError::Write { path, .. }) => assert!(path.ends_with("x.png")),
                other => panic!("expected a write error, got {other:?}"),
            }
        }
        // A folder where the file should be: the failure comes from the encoder.
        let r = image_grid(dir.path(), "t", &[vec![0.0; 4]], 2, 2, 1);
        assert!(matches!(r, Err(EvalError::Write { .. })), "{r:?}");
    }
}
