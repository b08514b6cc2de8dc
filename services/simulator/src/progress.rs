//! A small progress line on stderr while the simulator catches up with the
//! clock: a bar of simulated time, events accepted and the rate. Redrawn in
//! place on a terminal; a plain line every few seconds otherwise (CI logs).

use crate::client::Counters;
use crate::clock::{self, Millis};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

const WIDTH: usize = 30;

pub struct Progress {
    from: Millis,
    to: Millis,
    started: Instant,
    last_draw: Option<Instant>,
    terminal: bool,
    enabled: bool,
}

impl Progress {
    pub fn new(from: Millis, to: Millis, enabled: bool) -> Self {
        Self {
            from,
            to,
            started: Instant::now(),
            last_draw: None,
            terminal: std::io::stderr().is_terminal(),
            enabled,
        }
    }

    /// Redraws if enough time passed since the last draw.
    pub fn tick(&mut self, sim_now: Millis, counters: &Counters) {
        let every = if self.terminal {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(5)
        };
        if !self.enabled || self.last_draw.is_some_and(|at| at.elapsed() < every) {
            return;
        }
        self.last_draw = Some(Instant::now());
        let line = self.line(sim_now, counters);
        let mut err = std::io::stderr().lock();
        let _ = if self.terminal {
            write!(err, "\r{line}\x1b[K")
        } else {
            writeln!(err, "{line}")
        };
        let _ = err.flush();
    }

    /// Draws the final state and ends the line.
    pub fn finish(&mut self, sim_now: Millis, counters: &Counters) {
        if !self.enabled || self.last_draw.is_none() {
            return;
        }
        self.last_draw = None;
        let line = self.line(sim_now, counters);
        let mut err = std::io::stderr().lock();
        let _ = if self.terminal {
            writeln!(err, "\r{line}\x1b[K")
        } else {
            writeln!(err, "{line}")
        };
    }

    fn line(&self, sim_now: Millis, counters: &Counters) -> String {
        let span = (self.to - self.from).max(1) as f64;
        let share = ((sim_now - self.from) as f64 / span).clamp(0.0, 1.0);
        let filled = (share * WIDTH as f64).round() as usize;
        let accepted = Counters::get(&counters.accepted);
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        format!(
            "[{}{}] {:>3.0}% {} | {} accepted | {:.0} events/s | {} rejected | {} retried",
            "#".repeat(filled),
            "-".repeat(WIDTH - filled),
            share * 100.0,
            clock::utc_display(sim_now),
            accepted,
            accepted as f64 / secs,
            Counters::get(&counters.rejected),
            Counters::get(&counters.retried),
        )
    }
}
