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

/// Draws the grid, ticks and axis titles; without a font (any text would fail to render) only a frame
/// around the plotting area.
macro_rules! axes {
    ($root:expr, $chart:expr, $x_label:expr, $y_label:expr, $text:expr, $err:expr) => {
        if $text {
            $chart
                .configure_mesh()
                .light_line_style(RGBColor(235, 235, 235))
                .x_desc($x_label)
                .y_desc($y_label)
                .label_style((FONT, 16))
                .axis_desc_style((FONT, 20))
                .draw()
                .map_err($err)?;
        } else {
            let (xs, ys) = $chart.plotting_area().get_pixel_range();
            $root.draw(&Rectangle::new([(xs.start, ys.start), (xs.end - 1, ys.end - 1)], BLACK)).map_err($err)?;
        }
    };
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

/// `(lo, hi)` padded by 5 % of the span (or ±0.5 around a single value).
fn padded(lo: f64, hi: f64) -> (f64, f64) {
    let span = hi - lo;
    if span > 0.0 { (lo - 0.05 * span, hi + 0.05 * span) } else { (lo - 0.5, hi + 0.5) }
}

/// A cartesian chart of ranges `xr` × `yr` on a white `root`, captioned with `title` when text can
/// be drawn (with room for tick labels), else with thin margins.
fn cartesian<'a, 'b>(
    root: &'a DrawingArea<BitMapBackend<'b>, plotters::coord::Shift>,
    path: &Path,
    title: &str,
    xr: (f64, f64),
    yr: (f64, f64),
    text: bool,
) -> Result<
    ChartContext<
        'a,
        BitMapBackend<'b>,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    EvalError,
> {
    let err = |e| write_error(path, e);
    root.fill(&WHITE).map_err(err)?;
    let mut builder = ChartBuilder::on(root);
    builder.margin(20);
    if text {
        builder.caption(title, (FONT, 26)).x_label_area_size(55).y_label_area_size(70);
    } else {
        builder.x_label_area_size(10).y_label_area_size(10);
    }
    builder.build_cartesian_2d(xr.0..xr.1, yr.0..yr.1).map_err(err)
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
    let mut chart = cartesian(&root, path, title, xr, yr, text)?;
    axes!(root, chart, x_label, y_label, text, err);
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
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((FONT, 16))
            .draw()
            .map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(Drawn { path: path.to_path_buf(), width: w, height: h, warning: (!text).then(|| NO_FONT.to_string()) })
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
    let mut chart = cartesian(&root, path, title, xr, yr, text)?;
    axes!(root, chart, x_label, y_label, text, err);
    let (front_colour, other_colour) = (colour(1), RGBColor(120, 120, 120));
    let mut front: Vec<(f64, f64)> = finite.iter().filter(|p| p.on_front).map(|p| (p.x, p.y)).collect();
    front.sort_by(|a, b| a.0.total_cmp(&b.0));
    chart.draw_series(LineSeries::new(front, front_colour.stroke_width(2))).map_err(err)?;
    for p in &finite {
        let c = if p.on_front { front_colour } else { other_colour };
        let size = if p.on_front { 6 } else { 4 };
        chart.draw_series(std::iter::once(Circle::new((p.x, p.y), size, c.filled()))).map_err(err)?;
        if text {
            // Above the marker, never on it: to its right in the left half of the chart, to its left
            // in the right half (about 7.5 pixels a character at this size), so labels stay inside.
            let style = TextStyle::from((FONT, 14).into_font()).color(&c);
            let width = (p.label.chars().count() as f64 * 7.5) as i32;
            let dx = if p.x > (xr.0 + xr.1) / 2.0 { -9 - width } else { 9 };
            let label = EmptyElement::at((p.x, p.y)) + Text::new(p.label.clone(), (dx, -16), style);
            chart.draw_series(std::iter::once(label)).map_err(err)?;
        }
    }
    root.present().map_err(err)?;
    Ok(Drawn { path: path.to_path_buf(), width: w, height: h, warning: (!text).then(|| NO_FONT.to_string()) })
}

/// A histogram of `values` in `bins` equal bins, as a probability density, with an optional density
/// `overlay` (e.g. a fitted lognormal) drawn as a curve on top.
///
/// With `log_x` the x axis is logarithmic: the bins are equal in `ln x` and the bars show the density
/// of `ln x`; the overlay, a density `f` of `x`, is drawn as `x·f(x)`, the matching density of `ln x`
/// (a lognormal then looks like a Gaussian bell). Values that are not positive are left out there, and
/// the warning says how many. Non-finite values are always left out.
pub fn histogram(
    path: &Path,
    title: &str,
    x_label: &str,
    values: &[f64],
    log_x: bool,
    overlay: Option<&dyn Fn(f64) -> f64>,
    bins: usize,
) -> Result<Drawn, EvalError> {
    draw_histogram(path, title, x_label, values, log_x, overlay, bins, text_available())
}

#[allow(clippy::too_many_arguments)]
fn draw_histogram(
    path: &Path,
    title: &str,
    x_label: &str,
    values: &[f64],
    log_x: bool,
    overlay: Option<&dyn Fn(f64) -> f64>,
    bins: usize,
    text: bool,
) -> Result<Drawn, EvalError> {
    if bins == 0 {
        return Err(EvalError::invalid("bins", "a histogram needs at least one bin"));
    }
    check_dir(path)?;
    let mut warnings = Vec::new();
    let kept: Vec<f64> = values.iter().copied().filter(|v| v.is_finite() && (!log_x || *v > 0.0)).collect();
    if kept.len() < values.len() {
        let why = if log_x { "not positive or not finite" } else { "not finite" };
        warnings.push(format!("{} of {} values left out ({why})", values.len() - kept.len(), values.len()));
    }
    // Bin in t = ln x (log axis) or t = x; bars are densities of t.
    let to_t = |x: f64| if log_x { x.ln() } else { x };
    let from_t = |t: f64| if log_x { t.exp() } else { t };
    let ts: Vec<f64> = kept.iter().map(|&x| to_t(x)).collect();
    let (tmin, tmax) = ts.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &t| (a.min(t), b.max(t)));
    let (tlo, thi) = if ts.is_empty() {
        (to_t(if log_x { 0.1 } else { 0.0 }), to_t(1.0))
    } else if tmax > tmin {
        (tmin, tmax)
    } else {
        (tmin - 0.5, tmax + 0.5)
    };
    let width = (thi - tlo) / bins as f64;
    let mut counts = vec![0usize; bins];
    for &t in &ts {
        counts[(((t - tlo) / width) as usize).min(bins - 1)] += 1;
    }
    let n = ts.len().max(1) as f64;
    let density: Vec<f64> = counts.iter().map(|&c| c as f64 / (n * width)).collect();
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
    let ymax = density.iter().chain(curve.iter().map(|(_, y)| y)).fold(0.0f64, |a, &b| a.max(b));
    let ymax = if ymax > 0.0 { ymax * 1.08 } else { 1.0 };
    let (xlo, xhi) = (from_t(tlo - 0.02 * (thi - tlo)), from_t(thi + 0.02 * (thi - tlo)));

    let (w, h) = HISTOGRAM_SIZE;
    let err = |e| write_error(path, e);
    let root = BitMapBackend::new(path, (w, h)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut builder = ChartBuilder::on(&root);
    builder.margin(20);
    if text {
        builder.caption(title, (FONT, 26)).x_label_area_size(55).y_label_area_size(70);
    } else {
        builder.x_label_area_size(10).y_label_area_size(10);
    }
    let y_desc = if log_x { format!("density of ln {x_label}") } else { "density".to_string() };
    let bars = density.iter().enumerate().map(|(i, &d)| {
        let (a, b) = (from_t(tlo + i as f64 * width), from_t(tlo + (i + 1) as f64 * width));
        Rectangle::new([(a, 0.0), (b, d)], colour(0).mix(0.55).filled())
    });
    let fit = LineSeries::new(curve.clone(), colour(1).stroke_width(3));
    if log_x {
        let mut chart = builder.build_cartesian_2d((xlo..xhi).log_scale(), 0.0..ymax).map_err(err)?;
        axes!(root, chart, x_label, &y_desc, text, err);
        chart.draw_series(bars).map_err(err)?;
        if !curve.is_empty() {
            chart.draw_series(fit).map_err(err)?;
        }
    } else {
        let mut chart = builder.build_cartesian_2d(xlo..xhi, 0.0..ymax).map_err(err)?;
        axes!(root, chart, x_label, &y_desc, text, err);
        chart.draw_series(bars).map_err(err)?;
        if !curve.is_empty() {
            chart.draw_series(fit).map_err(err)?;
        }
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

/// A grid of grayscale images (e.g. hidden units' receptive fields), `columns` per row, each
/// `width×height` pixels stored row-major and scaled to its own range (its minimum black, its maximum
/// white; a constant image is mid-gray; non-finite pixels are red). Each pixel is drawn as a
/// [`GRID_SCALE`]-pixel square and cells are separated by [`GRID_GAP`] pixels of light gray, so the
/// picture is `c·(GRID_SCALE·width + GRID_GAP) + GRID_GAP` wide and `r·(GRID_SCALE·height + GRID_GAP) +
/// GRID_GAP` high, for `c = min(columns, images)` columns and `r = ⌈images / columns⌉` rows.
pub fn image_grid(
    path: &Path,
    images: &[Vec<f32>],
    width: usize,
    height: usize,
    columns: usize,
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
    let (cols, rows) = (columns.min(images.len()), images.len().div_ceil(columns));
    let (cw, ch) = (GRID_SCALE * width as u32, GRID_SCALE * height as u32);
    let (w, h) = (cols as u32 * (cw + GRID_GAP) + GRID_GAP, rows as u32 * (ch + GRID_GAP) + GRID_GAP);
    let mut buf = vec![200u8; (w * h * 3) as usize];
    for (k, im) in images.iter().enumerate() {
        let (lo, hi) = im
            .iter()
            .filter(|v| v.is_finite())
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
        let (x0, y0) =
            (GRID_GAP + (k % columns) as u32 * (cw + GRID_GAP), GRID_GAP + (k / columns) as u32 * (ch + GRID_GAP));
        for (p, &v) in im.iter().enumerate() {
            let rgb = if !v.is_finite() {
                [220, 0, 0]
            } else {
                let g = if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
                let g = (g * 255.0).round() as u8;
                [g, g, g]
            };
            let (px, py) = (x0 + (p % width) as u32 * GRID_SCALE, y0 + (p / width) as u32 * GRID_SCALE);
            for dy in 0..GRID_SCALE {
                for dx in 0..GRID_SCALE {
                    let o = (((py + dy) * w + px + dx) * 3) as usize;
                    buf[o..o + 3].copy_from_slice(&rgb);
                }
            }
        }
    }
    let mut backend = BitMapBackend::new(path, (w, h));
    backend.blit_bitmap((0, 0), (w, h), &buf).map_err(|e| write_error(path, e))?;
    backend.present().map_err(|e| write_error(path, e))?;
    Ok(Drawn { path: path.to_path_buf(), width: w, height: h, warning: None })
}

#[cfg(test)]
mod tests {
    use super::*;

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
            let d = draw_histogram(&p, "w", "|w|", &values, true, Some(&f), 30, text).unwrap();
            assert_eq!(is_png(&p), HISTOGRAM_SIZE);
            assert_eq!(d.warning.is_some(), !text);
            let p = dir.path().join(format!("hist-lin-{text}.png"));
            draw_histogram(&p, "sparsity", "active fraction", &values, false, None, 20, text).unwrap();
            assert_eq!(is_png(&p), HISTOGRAM_SIZE);
        }
    }

    #[test]
    fn pareto_charts_are_drawn_with_and_without_text() {
        let dir = tempfile::tempdir().unwrap();
        let point = |label: &str, x, y, on_front| LabelledPoint { label: label.into(), x, y, on_front };
        let points = [
            point("defaults", 85.6, 8.7, true),
            point("rate 0.01", 79.1, 31.9, true),
            point("rate 0.003", 80.0, 20.0, false),
            point("diverged", f64::NAN, 1.0, false),
        ];
        for text in [false, true] {
            if text && !text_available() {
                continue;
            }
            let p = dir.path().join(format!("pareto-{text}.png"));
            let d = draw_pareto_chart(&p, "front", "clean", "robust", &points, text).unwrap();
            assert_eq!(is_png(&p), CHART_SIZE);
            assert_eq!(d.warning.is_some(), !text);
        }
        // Nothing finite to draw is still a picture, not an error.
        draw_pareto_chart(&dir.path().join("empty.png"), "t", "x", "y", &[], false).unwrap();
    }

    #[test]
    fn degenerate_inputs_still_draw() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("empty.png");
        draw_line_chart(&p, "t", "x", "y", &[], false).unwrap();
        draw_line_chart(&p, "t", "x", "y", &[Series::new("one", vec![(1.0, 5.0)])], false).unwrap();
        let d = draw_histogram(&p, "t", "x", &[0.0, -1.0, f64::NAN], true, None, 10, false).unwrap();
        assert!(d.warning.unwrap().contains("3 of 3"));
        draw_histogram(&p, "t", "x", &[2.0; 10], false, None, 10, false).unwrap();
        assert!(matches!(
            draw_histogram(&p, "t", "x", &[1.0], false, None, 0, false),
            Err(EvalError::InvalidParam { name: "bins", .. })
        ));
    }

    #[test]
    fn grid_has_the_documented_size() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("grid.png");
        let images: Vec<Vec<f32>> =
            (0..7).map(|k| (0..28 * 28).map(|i| ((i * (k + 1)) % 97) as f32).collect()).collect();
        let d = image_grid(&p, &images, 28, 28, 3).unwrap();
        let w = 3 * (GRID_SCALE * 28 + GRID_GAP) + GRID_GAP;
        let h = 3 * (GRID_SCALE * 28 + GRID_GAP) + GRID_GAP;
        assert_eq!((d.width, d.height), (w, h));
        assert_eq!(is_png(&p), (w, h));
        assert!(matches!(image_grid(&p, &[vec![0.0; 3]], 2, 2, 1), Err(EvalError::Shape(_))));
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
        let d = image_grid(&dir.join("fields.png"), &fields, 28, 28, 8).unwrap();
        eprintln!("{d:?}");
    }

    #[test]
    fn unwritable_paths_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("missing").join("x.png");
        for r in [
            draw_line_chart(&p, "t", "x", "y", &[], false),
            draw_histogram(&p, "t", "x", &[1.0], false, None, 5, false),
            image_grid(&p, &[vec![0.0; 4]], 2, 2, 1),
        ] {
            match r {
                Err(EvalError::Write { path, .. }) => assert!(path.ends_with("x.png")),
                other => panic!("expected a write error, got {other:?}"),
            }
        }
        // A folder where the file should be: the failure comes from the encoder.
        let r = image_grid(dir.path(), &[vec![0.0; 4]], 2, 2, 1);
        assert!(matches!(r, Err(EvalError::Write { .. })), "{r:?}");
    }
}
