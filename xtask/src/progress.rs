//! Progress bars for long work, one style for every command.
//!
//! On a terminal the bar redraws in place. When standard error is not a terminal (a log file,
//! CI), it is written as plain lines instead, at most one every [`PLAIN_INTERVAL`] and once
//! more at the end, the way TRL's and EasyR1's logs read, so that `cargo xtask train > log`
//! shows the step, the message (reward, loss), the rate and the ETA as it goes.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};

/// Time between two plain progress lines.
const PLAIN_INTERVAL: Duration = Duration::from_secs(10);

/// A bar over `len` items with a message, elapsed time and ETA.
pub fn bar(len: u64, message: impl Into<String>) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:30}] {pos}/{len} {per_sec} elapsed {elapsed} eta {eta}")
            .expect("static template is valid")
            .progress_chars("=> "),
    );
    bar.set_message(message.into());
    if !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::term_like(Box::new(PlainLines::default())));
    }
    bar
}

/// [`bar`] for work resumed with `done` of its `len` items already done: they count in the
/// position, not in the rate or the ETA.
pub fn resumed_bar(len: u64, done: u64, message: impl Into<String>) -> ProgressBar {
    let bar = bar(len, message);
    bar.set_position(done);
    // The rate estimator takes in the jump to `done` at this tick; resetting it afterwards
    // forgets the jump (it keeps the position it measures from).
    bar.tick();
    bar.reset_eta();
    bar
}

/// A tick for `bar` that, once the first item is done, says how long all of them will take at
/// its pace: a long job (an evaluation whose model never stops talking) tells its user up front,
/// not only through the ETA of a bar they may not be watching.
pub fn estimating_tick<'a>(bar: &'a ProgressBar, item: &'static str) -> impl FnMut() + 'a {
    let start = Instant::now();
    let mut first = true;
    move || {
        bar.inc(1);
        if std::mem::take(&mut first) {
            let pace = start.elapsed();
            let count = bar.length().unwrap_or(1);
            let total = pace.mul_f64(count as f64);
            bar.suspend(|| {
                eprintln!(
                    "the first {item} took {:.2} s: about {} for all {count} at that pace",
                    pace.as_secs_f64(),
                    indicatif::HumanDuration(total)
                )
            });
        }
    }
}

/// A [`TermLike`] that turns redraws into occasional lines on standard error: cursor moves and
/// clears are ignored, and each redraw's text becomes one line when [`PLAIN_INTERVAL`] has
/// passed since the last one; the newest text not yet printed is printed when the bar goes.
#[derive(Debug, Default)]
struct PlainLines {
    state: Mutex<PlainState>,
}

#[derive(Debug, Default)]
struct PlainState {
    /// Text of the redraw in progress.
    pending: String,
    /// The newest complete redraw not printed yet.
    unprinted: Option<String>,
    last_print: Option<Instant>,
}

impl PlainState {
    fn print(&mut self, line: String) {
        let mut err = std::io::stderr().lock();
        // A log that cannot be written to is no reason to stop the work it reports on.
        let _ = writeln!(err, "{}", line.trim());
        self.last_print = Some(Instant::now());
        self.unprinted = None;
    }
}

impl PlainLines {
    fn state(&self) -> std::sync::MutexGuard<'_, PlainState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl TermLike for PlainLines {
    fn width(&self) -> u16 {
        120
    }

    fn move_cursor_up(&self, _n: usize) -> std::io::Result<()> {
        Ok(())
    }

    fn move_cursor_down(&self, _n: usize) -> std::io::Result<()> {
        Ok(())
    }

    fn move_cursor_right(&self, _n: usize) -> std::io::Result<()> {
        Ok(())
    }

    fn move_cursor_left(&self, _n: usize) -> std::io::Result<()> {
        Ok(())
    }

    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.write_str(s)
    }

    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.state().pending.push_str(s);
        Ok(())
    }

    fn clear_line(&self) -> std::io::Result<()> {
        Ok(())
    }

    fn flush(&self) -> std::io::Result<()> {
        let mut state = self.state();
        let text = std::mem::take(&mut state.pending);
        if text.trim().is_empty() {
            return Ok(());
        }
        if state.last_print.is_none_or(|t| t.elapsed() >= PLAIN_INTERVAL) {
            state.print(text);
        } else {
            state.unprinted = Some(text);
        }
        Ok(())
    }
}

impl Drop for PlainLines {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(line) = state.unprinted.take() {
            state.print(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Steps done before a resume are not speed: one step 20 ms after resuming at step 500
    /// reads as tens of steps a second, not millions.
    #[test]
    fn resumed_bar_rates_only_the_new_steps() {
        let bar = resumed_bar(2000, 500, "SFT");
        bar.set_draw_target(ProgressDrawTarget::hidden());
        std::thread::sleep(Duration::from_millis(20));
        bar.inc(1);
        bar.tick();
        assert_eq!(bar.position(), 501);
        assert!(bar.per_sec() < 1000.0, "{} steps/s", bar.per_sec());
    }
}
