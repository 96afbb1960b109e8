//! Atomic writes and image output. [`write_file_atomic`] is how every r1 crate writes a file in
//! place (checkpoints, optimiser state, configs, plots, reports, the montage); [`StagedDir`]
//! builds whole folders (datasets, episodes) that appear at once.
//!
//! A folder is built under a hidden temporary sibling (same parent, so the final `rename` is
//! atomic on one file system) and renamed into place only when complete. If anything fails,
//! the temporary folder is removed when its guard drops: nothing half-written is left.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::episode::ImageRef;
use crate::error::{DataError, Result};
use crate::video::Video;

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// A temporary folder that becomes `target` on [`StagedDir::commit`] and is deleted if
/// dropped uncommitted.
pub struct StagedDir {
    tmp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl StagedDir {
    /// Creates the temporary sibling of `target` (and `target`'s parent if needed).
    pub fn new(target: &Path) -> Result<Self> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let name =
            target.file_name().ok_or_else(|| DataError::Config(format!("{}: not a folder name", target.display())))?;
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).map_err(|e| DataError::io(&parent, e))?;
        let unique = format!(
            ".{}.tmp-{}-{}",
            name.to_string_lossy(),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let tmp = parent.join(unique);
        std::fs::create_dir(&tmp).map_err(|e| DataError::io(&tmp, e))?;
        Ok(Self { tmp, target: target.to_path_buf(), committed: false })
    }

    /// Where to write the content.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// Moves the finished folder into place. An existing `target` is replaced only when
    /// `replace` is set, and removed only after the new folder is in place.
    pub fn commit(mut self, replace: bool) -> Result<()> {
        let old = if self.target.exists() {
            if !replace {
                return Err(DataError::Config(format!(
                    "{}: already exists (remove it, choose another folder, or pass --overwrite to replace it)",
                    self.target.display()
                )));
            }
            let mut old = self.tmp.clone().into_os_string();
            old.push("-old");
            let old = PathBuf::from(old);
            std::fs::rename(&self.target, &old).map_err(|e| DataError::io(&self.target, e))?;
            Some(old)
        } else {
            None
        };
        if let Err(e) = std::fs::rename(&self.tmp, &self.target) {
            if let Some(old) = &old {
                // Put the previous content back: a failed write must not lose it.
                let _ = std::fs::rename(old, &self.target);
            }
            return Err(DataError::io(&self.target, e));
        }
        self.committed = true;
        if let Some(old) = old {
            std::fs::remove_dir_all(&old).map_err(|e| DataError::io(&old, e))?;
        }
        Ok(())
    }
}

impl Drop for StagedDir {
    fn drop(&mut self) {
        if !self.committed {
            // Best effort: the error that made us drop is the one worth reporting.
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}

/// Writes `image` as a PNG file at `dest`. PNG sources are copied byte for byte; anything
/// else (JPEG) is decoded and re-encoded. Relative `ImageRef::Path`s resolve against `base`.
pub fn write_png(image: &ImageRef, base: &Path, dest: &Path) -> Result<()> {
    match image {
        ImageRef::Encoded(bytes) if bytes.starts_with(PNG_SIGNATURE) => {
            std::fs::write(dest, bytes).map_err(|e| DataError::io(dest, e))
        }
        ImageRef::Path(p) if p.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")) => {
            let src = base.join(p);
            std::fs::copy(&src, dest).map(drop).map_err(|e| DataError::io(&src, e))
        }
        other => save_png(&other.load_rgb(base)?, dest),
    }
}

/// [`write_png`] for many images (destination folders must exist): the frames of one video
/// are decoded by one FFmpeg run ([`crate::video::decode`]) instead of one run each.
pub fn write_pngs(images: &[(&ImageRef, PathBuf)], base: &Path) -> Result<()> {
    // Video frames grouped by file, in first-seen order; everything else written directly.
    let mut videos: Vec<VideoWrites> = Vec::new();
    for (image, dest) in images {
        match image {
            ImageRef::Video(frame) => match videos.iter_mut().find(|(v, _)| Arc::ptr_eq(v, &frame.video)) {
                Some((_, frames)) => frames.push((frame.timestamp, dest)),
                None => videos.push((&frame.video, vec![(frame.timestamp, dest)])),
            },
            other => write_png(other, base, dest)?,
        }
    }
    for (video, frames) in videos {
        let timestamps: Vec<f64> = frames.iter().map(|(t, _)| *t).collect();
        crate::video::decode(video, &timestamps, |i, rgb| save_png(&rgb, frames[i].1))?;
    }
    Ok(())
}

/// The frames to write from one video: timestamp and destination.
type VideoWrites<'a> = (&'a Arc<Video>, Vec<(f64, &'a Path)>);

fn save_png(rgb: &image::RgbImage, dest: &Path) -> Result<()> {
    rgb.save_with_format(dest, image::ImageFormat::Png)
        .map_err(|source| DataError::Image { path: dest.to_path_buf(), source })
}

/// Writes the file `path` atomically: `write` fills a temporary sibling (its argument), which
/// is flushed to disk, renamed over `path`, and the folder's entry flushed too (on Unix), so
/// that after a crash `path` holds either its old content or the new, never a part. The
/// folder is created if needed; on failure the temporary file is removed and `path` is
/// untouched. Errors are the file system's; callers name `path` in theirs.
pub fn write_file_atomic(path: &Path, write: impl FnOnce(&Path) -> std::io::Result<()>) -> std::io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    // Ends with the final name, so writers that pick a format by extension see the right one.
    let tmp = dir.join(format!(".tmp-{}-{}-{name}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)));
    let result =
        write(&tmp).and_then(|()| std::fs::File::open(&tmp)?.sync_all()).and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        // Best effort: the temporary file may not exist, and the first error is the one worth
        // reporting.
        let _ = std::fs::remove_file(&tmp);
        return result;
    }
    sync_dir(dir)
}

/// [`write_file_atomic`] of `bytes`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_file_atomic(path, |tmp| std::fs::write(tmp, bytes))
}

/// Flushes a folder's entries (the rename of a file into it) to disk.
#[cfg(unix)]
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Folders cannot be opened for flushing here; the rename is as durable as the platform makes it.
#[cfg(not(unix))]
pub fn sync_dir(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Creates `dir` and its parents.
pub fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))
}
