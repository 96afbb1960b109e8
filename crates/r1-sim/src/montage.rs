//! A contact sheet of simulated episodes, so that a person can see the scenes: one row per
//! task, labelled with the task's name, showing the first frame and three keyframes.

use std::path::Path;

use image::{Rgb, RgbImage};
use r1_data::Episode;

use crate::error::SimError;

/// Frames shown per task.
const COLUMNS: usize = 4;
const GAP: u32 = 2;
/// Glyphs are 5x7 pixels drawn at this scale, on a strip above each row.
const TEXT_SCALE: u32 = 2;
const LABEL_HEIGHT: u32 = 7 * TEXT_SCALE + 4;

/// Writes one PNG with a row per task (in order of first appearance): the first frame and
/// three keyframes (first, middle and last waypoint) of the task's first episode, from its
/// first camera. The file is written to a temporary name beside `path`, then renamed.
pub fn montage(episodes: &[Episode], path: &Path) -> Result<(), SimError> {
    let mut rows: Vec<&Episode> = Vec::new();
    for e in episodes {
        if !rows.iter().any(|r| r.task == e.task) {
            rows.push(e);
        }
    }
    if rows.is_empty() {
        return Err(SimError::Config("a montage needs at least one episode".into()));
    }
    let mut tiles: Vec<Vec<RgbImage>> = Vec::new();
    for e in &rows {
        let camera = e
            .cameras
            .first()
            .map(|c| c.name.as_str())
            .ok_or_else(|| SimError::Config(format!("{}: the episode has no camera to show", e.id())))?;
        let mut row = Vec::new();
        for frame in frames(e) {
            let image = e.steps[frame]
                .images
                .get(camera)
                .ok_or_else(|| SimError::Config(format!("{}: step {frame} has no {camera:?} image", e.id())))?;
            row.push(image.load_rgb(Path::new(""))?);
        }
        tiles.push(row);
    }
    let tile_w = tiles.iter().flatten().map(|t| t.width()).max().unwrap_or(1);
    let tile_h = tiles.iter().flatten().map(|t| t.height()).max().unwrap_or(1);
    let row_h = LABEL_HEIGHT + tile_h + GAP;
    let mut canvas = RgbImage::from_pixel(
        COLUMNS as u32 * (tile_w + GAP) + GAP,
        rows.len() as u32 * row_h + GAP,
        Rgb([255, 255, 255]),
    );
    for (r, (e, row)) in rows.iter().zip(&tiles).enumerate() {
        let top = GAP + r as u32 * row_h;
        draw_text(&mut canvas, GAP + 2, top + 2, &e.task);
        for (c, tile) in row.iter().enumerate() {
            let x = GAP + c as u32 * (tile_w + GAP);
            image::imageops::replace(&mut canvas, tile, x.into(), (top + LABEL_HEIGHT).into());
        }
    }
    write_png_atomic(&canvas, path)
}

/// The frames a row shows: 0, then the first, middle and last ground-truth waypoint (or
/// evenly spaced frames when the episode records none); empty for an empty episode.
fn frames(e: &Episode) -> Vec<usize> {
    let n = e.steps.len();
    if n == 0 {
        return Vec::new();
    }
    let keys: Vec<usize> = match &e.waypoints {
        Some(w) if !w.is_empty() => w.clone(),
        _ => (1..COLUMNS).map(|k| k * (n - 1) / (COLUMNS - 1)).collect(),
    };
    let picks = [0, keys[0], keys[keys.len() / 2], keys[keys.len() - 1]];
    let mut out: Vec<usize> = picks.into_iter().filter(|&f| f < n).collect();
    out.dedup();
    out
}

/// 5x7 capital letters and the underscore, one byte per row, bit 4 the leftmost pixel.
fn glyph(c: char) -> Option<[u8; 7]> {
    Some(match c.to_ascii_uppercase() {
        'A' => [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'B' => [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        'D' => [0x1E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1E],
        'E' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F],
        'F' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        'G' => [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F],
        'H' => [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'I' => [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'J' => [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        'K' => [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        'M' => [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        'O' => [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'P' => [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        'Q' => [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D],
        'R' => [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        'S' => [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E],
        'T' => [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'V' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A],
        'X' => [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
        'Y' => [0x11, 0x11, 0x0A, 0x04, 0x04, 0x04, 0x04],
        'Z' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
        '_' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F],
        _ => return None,
    })
}

/// Draws `text` in black with its top-left corner at `(x, y)`, clipped to the canvas;
/// characters without a glyph leave a blank.
fn draw_text(canvas: &mut RgbImage, x: u32, y: u32, text: &str) {
    let advance = 6 * TEXT_SCALE;
    for (i, c) in text.chars().enumerate() {
        let Some(rows) = glyph(c) else { continue };
        for (dy, bits) in rows.iter().enumerate() {
            for dx in 0..5u32 {
                if bits & (0x10 >> dx) == 0 {
                    continue;
                }
                for (sx, sy) in (0..TEXT_SCALE).flat_map(|a| (0..TEXT_SCALE).map(move |b| (a, b))) {
                    let px = x + i as u32 * advance + dx * TEXT_SCALE + sx;
                    let py = y + dy as u32 * TEXT_SCALE + sy;
                    if px < canvas.width() && py < canvas.height() {
                        canvas.put_pixel(px, py, Rgb([0, 0, 0]));
                    }
                }
            }
        }
    }
}

fn write_png_atomic(image: &RgbImage, path: &Path) -> Result<(), SimError> {
    r1_data::fsutil::write_file_atomic(path, |tmp| {
        image
            .save_with_format(tmp, image::ImageFormat::Png)
            .map_err(|e| std::io::Error::other(format!("cannot encode the montage: {e}")))
    })
    .map_err(|source| SimError::Io { path: path.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SimConfig, simulate};

    #[test]
    fn writes_one_labelled_row_per_task() {
        let cfg = SimConfig {
            tasks: vec!["reach_target".into(), "open_drawer".into()],
            episodes_per_task: 1,
            seed: 3,
            image_size: 32,
        };
        let eps = simulate(&cfg, |_, _| {}).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.png");
        montage(&eps, &path).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        assert_eq!((img.width(), img.height()), (4 * 34 + 2, 2 * (LABEL_HEIGHT + 34) + 2));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file is left behind");
        // The label strip of each row holds black text.
        for r in 0..2 {
            let top = GAP + r * (LABEL_HEIGHT + 34);
            let dark = (0..img.width()).flat_map(|x| (top..top + LABEL_HEIGHT).map(move |y| (x, y)));
            assert!(dark.filter(|&(x, y)| img.get_pixel(x, y).0 == [0, 0, 0]).count() > 20);
        }
        assert!(matches!(montage(&[], &path), Err(SimError::Config(_))));
        // A folder that cannot be created (a file stands in its way) is an error naming the path.
        std::fs::write(dir.path().join("file"), b"").unwrap();
        let blocked = dir.path().join("file/m.png");
        assert!(matches!(montage(&eps, &blocked), Err(SimError::Io { path, .. }) if path == blocked));
    }

    #[test]
    fn every_letter_of_the_task_names_has_a_glyph() {
        for name in crate::task_names() {
            assert!(name.chars().all(|c| glyph(c).is_some()), "{name}");
        }
        // Glyphs fit their 5-pixel width.
        for c in 'a'..='z' {
            assert!(glyph(c).unwrap().iter().all(|&row| row < 0x20));
        }
    }

    #[test]
    fn empty_episodes_show_no_frames() {
        let mut e = simulate(
            &SimConfig { tasks: vec!["reach_target".into()], episodes_per_task: 1, seed: 0, image_size: 16 },
            |_, _| {},
        )
        .unwrap()
        .remove(0);
        assert_eq!(frames(&e).len(), 3, "reach_target has two waypoints: frames 0, first, last");
        e.waypoints = None;
        assert_eq!(frames(&e), vec![0, (e.steps.len() - 1) / 3, 2 * (e.steps.len() - 1) / 3, e.steps.len() - 1]);
        e.steps.clear();
        assert!(frames(&e).is_empty());
    }
}
