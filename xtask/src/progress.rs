//! Progress bars for long work, one style for every command.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar over `len` items with a message, elapsed time and ETA. Hidden when standard error is
/// not a terminal (CI logs stay readable).
pub fn bar(len: u64, message: impl Into<String>) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:30}] {pos}/{len} {per_sec} elapsed {elapsed} eta {eta}")
            .expect("static template is valid")
            .progress_chars("=> "),
    );
    bar.set_message(message.into());
    bar
}
