//! Atomic folder writes and image output, shared by the native writer and the dataset writer.
//!
//! A folder is built under a hidden temporary sibling (same parent, so the final `rename` is
//! atomic on one file system) and renamed into place only when complete. If anything fails,
//! the temporary folder is removed when its guard drops: nothing half-written is left.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::episode::ImageRef;
use crate::error::{DataError, Result};

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
        let name = target
            .file_name()
            .ok_or_else(|| DataError::Config(format!("{}: not a folder name", target.display())))?;
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
        Ok(Self {
            tmp,
            target: target.to_path_buf(),
            committed: false,
        })
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
                    "{}: already exists (remove it, choose another folder, or ask to overwrite)",
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
            std::fs::copy(&src, dest)
                .map(drop)
                .map_err(|e| DataError::io(&src, e))
        }
        other => {
            let rgb = other.load_rgb(base)?;
            rgb.save_with_format(dest, image::ImageFormat::Png)
                .map_err(|source| DataError::Image {
                    path: dest.to_path_buf(),
                    source,
                })
        }
    }
}

/// Creates `dir` and its parents.
pub fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))
}
