//! Progress bars: one per workspace, drawn only on a terminal.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::domain::WorkspaceSlug;

/// The bars of a run; hidden when `visible` is false (not a terminal, or tests).
pub(super) fn bars(visible: bool) -> MultiProgress {
    if visible {
        MultiProgress::new()
    } else {
        MultiProgress::with_draw_target(ProgressDrawTarget::hidden())
    }
}

/// A new bar for a workspace's permission listings.
pub(super) fn workspace_bar(bars: &MultiProgress, ws: &WorkspaceSlug) -> ProgressBar {
    let bar = bars.add(ProgressBar::new(0));
    bar.set_style(
        ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(ws.to_string());
    bar
}
