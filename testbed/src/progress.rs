//! Progress output for long steps: a spinner with the step name while it runs, then one line with
//! its duration. Lines go to stderr so that stdout stays for results.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Reports the steps of one operation.
#[derive(Debug)]
pub struct Progress {
    start: Instant,
    quiet: bool,
}

/// One running step.
#[derive(Debug)]
pub struct Step {
    name: String,
    bar: ProgressBar,
    start: Instant,
    quiet: bool,
}

impl Progress {
    /// A reporter; `quiet` hides everything (tests).
    pub fn new(quiet: bool) -> Self {
        Self {
            start: Instant::now(),
            quiet,
        }
    }

    /// Starts a step.
    pub fn step(&self, name: &str) -> Step {
        let bar = if self.quiet {
            ProgressBar::hidden()
        } else {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_message(name.to_owned());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        };
        Step {
            name: name.to_owned(),
            bar,
            start: Instant::now(),
            quiet: self.quiet,
        }
    }

    /// Time since the operation started.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}

impl Step {
    /// The step's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Shows a detail next to the step name (e.g. the current sub-step).
    pub fn detail(&self, detail: &str) {
        self.bar.set_message(format!("{}: {detail}", self.name));
    }

    /// Ends the step successfully, printing its duration.
    pub fn done(self) {
        self.bar.finish_and_clear();
        if !self.quiet {
            eprintln!(
                "  ok  {} ({:.1} s)",
                self.name,
                self.start.elapsed().as_secs_f64()
            );
        }
    }

    /// Ends the step as failed.
    pub fn failed(self) {
        self.bar.finish_and_clear();
        if !self.quiet {
            eprintln!(
                "  FAILED  {} (after {:.1} s)",
                self.name,
                self.start.elapsed().as_secs_f64()
            );
        }
    }
}

/// Runs `f` as a step: prints its duration on success and marks it failed on error.
pub(crate) fn run_step<T>(
    progress: &Progress,
    name: &str,
    f: impl FnOnce(&Step) -> crate::Result<T>,
) -> crate::Result<T> {
    let step = progress.step(name);
    match f(&step) {
        Ok(value) => {
            step.done();
            Ok(value)
        }
        Err(error) => {
            step.failed();
            Err(error)
        }
    }
}
