//! Crash points for the fault-injection tests (`xtask/tests/crash.rs`).
//!
//! A checkpoint is written in stages (the model, the optimiser state, `state.json`, the rename);
//! a crash between two of them is the case worth testing, and a kill at a random time almost
//! never lands there. With `R1_CRASH_AT=<point>:<n>` in its environment, the process stops the
//! `n`-th time it reaches `<point>`, says so on stderr, and waits to be killed, so that the test
//! can send SIGKILL at exactly that moment. Without the variable a point does nothing.

use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable naming the point to stop at.
pub const ENV: &str = "R1_CRASH_AT";

/// What a stopped process prints on stderr before waiting to be killed.
pub const STOPPED: &str = "r1: stopped at crash point";

/// The model folder of a checkpoint is written, the optimiser state not yet.
pub const MODEL_SAVED: &str = "model-saved";
/// The optimiser state is written, `state.json` not yet.
pub const OPTIMIZER_SAVED: &str = "optimizer-saved";
/// The checkpoint is complete in its temporary folder, not yet renamed into place.
pub const BEFORE_RENAME: &str = "before-rename";

/// Stops here for good if [`ENV`] names `name` and this is its `n`-th visit.
pub fn point(name: &str) {
    let Some(wanted) = std::env::var_os(ENV) else { return };
    let Some((target, visit)) = wanted.to_str().and_then(|w| w.rsplit_once(':')) else { return };
    if target != name {
        return;
    }
    // Only the named point is counted, so one counter serves.
    static VISITS: AtomicU64 = AtomicU64::new(0);
    let count = VISITS.fetch_add(1, Ordering::SeqCst) + 1;
    if visit.parse() == Ok(count) {
        eprintln!("{STOPPED} {name}:{count}");
        loop {
            std::thread::park();
        }
    }
}
