//! Offline replay of a recorded run: the engine's inputs as the live detectors fed them
//! ([`detect::ENGINE_INPUT_FILE`]) go through the same engine again, rebuilt from the run's
//! [`detect::ENGINE_SETUP_FILE`] and the store it started from, with the run's own clock (each
//! input's recorded time), paced at N× the run's speed or as fast as it goes. The alarms it
//! raises are compared with the live ones of the run's alarm file.

use std::path::Path;
use std::time::{Duration, Instant};

use fingerprint::Store;
use fingerprint::engine::{AlarmComparison, EngineSetup, Input, compare_alarms};
use reports::model::Alarm;

use super::detect;

/// How close in time a replayed alarm must be to its live twin: one poll of the live detectors.
pub const RESOLUTION_US: i64 = detect::POLL.as_micros() as i64;

/// How fast a replay feeds its inputs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Speed {
    /// As fast as the engine takes them.
    Max,
    /// N× the run's pace (1 is the run's own).
    Times(f64),
}

impl std::str::FromStr for Speed {
    type Err = String;

    fn from_str(text: &str) -> Result<Speed, String> {
        if text == "max" {
            return Ok(Speed::Max);
        }
        match text.parse::<f64>() {
            Ok(times) if times.is_finite() && times > 0.0 => Ok(Speed::Times(times)),
            _ => Err(format!(
                "`{text}` is not a speed; write a positive factor (`10` for ten times the run's pace) or `max`"
            )),
        }
    }
}

/// What a replay found.
#[derive(Debug)]
pub struct Replayed {
    /// The engine's setup, as the run recorded it.
    pub setup: EngineSetup,
    /// Inputs fed.
    pub inputs: usize,
    /// The run's clock span fed, µs (first and last input).
    pub span_us: Option<(i64, i64)>,
    /// The alarms the replay raised, in order.
    pub alarms: Vec<Alarm>,
    /// The run's live alarms of the engine's detectors.
    pub live: Vec<Alarm>,
    /// How the two compare.
    pub comparison: AlarmComparison,
    /// Wall time the replay took.
    pub took: Duration,
}

/// Replays `run_dir` at `speed`, calling `fired` with each alarm as it fires.
pub fn replay(
    run_dir: &Path,
    speed: Speed,
    mut fired: impl FnMut(&Alarm),
) -> Result<Replayed, String> {
    let inputs_file = run_dir.join(detect::ENGINE_INPUT_FILE);
    if !inputs_file.is_file() {
        return Err(format!(
            "{} has no {}: the run was recorded before the engine's inputs were, or ran no built-in detector; nothing to replay",
            run_dir.display(),
            detect::ENGINE_INPUT_FILE
        ));
    }
    let setup = fingerprint::engine::read_setup(&run_dir.join(detect::ENGINE_SETUP_FILE))
        .map_err(|e| e.to_string())?;
    let store_file = run_dir.join(detect::ENGINE_STORE_FILE);
    let store = Store::load(&store_file).map_err(|e| e.to_string())?;
    let inputs = fingerprint::engine::read_inputs(&inputs_file).map_err(|e| e.to_string())?;
    let mut engine = setup.engine(store).ok_or_else(|| {
        format!(
            "{} names no built-in detector",
            run_dir.join(detect::ENGINE_SETUP_FILE).display()
        )
    })?;
    let detectors = setup.detectors();
    let live: Vec<Alarm> = detect::read_alarms_file(&run_dir.join(super::ALARMS_FILE))?
        .into_iter()
        .filter(|alarm| detectors.contains(&alarm.detector))
        .collect();
    let began = Instant::now();
    let first_us = inputs.first().map(Input::at_us);
    let mut alarms = Vec::new();
    for input in &inputs {
        if let (Speed::Times(times), Some(first_us)) = (speed, first_us) {
            let due = Duration::from_secs_f64(
                (input.at_us().saturating_sub(first_us)).max(0) as f64 / 1e6 / times,
            );
            if let Some(wait) = due.checked_sub(began.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        for alarm in engine.feed(input) {
            fired(&alarm);
            alarms.push(alarm);
        }
    }
    let comparison = compare_alarms(&live, &alarms, RESOLUTION_US);
    Ok(Replayed {
        setup,
        inputs: inputs.len(),
        span_us: first_us.zip(inputs.last().map(Input::at_us)),
        alarms,
        live,
        comparison,
        took: began.elapsed(),
    })
}
