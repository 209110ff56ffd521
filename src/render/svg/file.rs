//! Plots as files: SVG as drawn, or PNG rendered by resvg.

use std::path::Path;

/// Renders an SVG document to PNG with the system's fonts.
pub fn to_png(svg: &str) -> Result<Vec<u8>, String> {
    use resvg::{tiny_skia, usvg};
    let mut opt = usvg::Options::default();
    opt.fontdb_mut().load_system_fonts();
    let tree = usvg::Tree::from_str(svg, &opt).map_err(|e| format!("SVG: {e}"))?;
    let size = tree.size().to_int_size();
    // Twice the size: plots are read on high-density screens.
    let scale = 2.0;
    let mut pixmap = tiny_skia::Pixmap::new(
        (size.width() as f32 * scale) as u32,
        (size.height() as f32 * scale) as u32,
    )
    .ok_or("the plot has no area")?;
    resvg::render(
        &tree,
        tiny_skia::Transform::from_scale(scale, scale),
        &mut pixmap.as_mut(),
    );
    pixmap.encode_png().map_err(|e| format!("PNG: {e}"))
}

/// The output format a file name asks for: `svg` or `png`.
pub fn format_of(path: &Path) -> Result<&'static str, String> {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("svg") => Ok("svg"),
        Some("png") => Ok("png"),
        _ => Err(format!(
            "{}: the file name must end in .svg or .png (the format written)",
            path.display()
        )),
    }
}

/// Writes `svg` to `path`, as PNG when the name ends in `.png`.
pub fn write(path: &Path, svg: &str) -> Result<(), String> {
    let bytes = match format_of(path)? {
        "png" => to_png(svg)?,
        _ => svg.as_bytes().to_vec(),
    };
    std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_formats_follow_the_extension() {
        assert_eq!(format_of(Path::new("a.PNG")), Ok("png"));
        assert_eq!(format_of(Path::new("a.svg")), Ok("svg"));
        assert!(format_of(Path::new("a.pdf")).is_err());
    }
}
