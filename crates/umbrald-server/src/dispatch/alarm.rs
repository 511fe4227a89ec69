//! A precise alarm clock for the scheduler.
//!
//! tokio's timers tick in milliseconds, which would turn a `max_queue_delay_us` of 100 µs into
//! a wait of one to two milliseconds. The alarm is a small std thread that sleeps on a
//! channel with a deadline (a futex wait, precise to tens of microseconds) and calls a
//! callback when the deadline passes; the scheduler sets the next deadline after every step.

use std::time::Instant;

use crossbeam_channel::{RecvTimeoutError, Sender};

/// Handle of the alarm thread. Dropping it stops the thread.
#[derive(Debug)]
pub(crate) struct Alarm {
    tx: Sender<Option<Instant>>,
    armed: Option<Instant>,
}

impl Alarm {
    /// Starts the alarm thread; `fire` runs on it each time an armed deadline passes.
    pub fn start(fire: impl Fn() + Send + 'static) -> std::io::Result<Self> {
        let (tx, rx) = crossbeam_channel::unbounded::<Option<Instant>>();
        std::thread::Builder::new()
            .name("umbrald-alarm".to_owned())
            .spawn(move || {
                let mut at: Option<Instant> = None;
                loop {
                    let next = match at {
                        Some(deadline) => rx.recv_deadline(deadline),
                        None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                    };
                    match next {
                        Ok(new) => at = new,
                        Err(RecvTimeoutError::Timeout) => {
                            at = None;
                            fire();
                        }
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
            })?;
        Ok(Self { tx, armed: None })
    }

    /// Arms the alarm for `at` (replacing any earlier deadline), or disarms it with `None`.
    /// Setting the deadline already armed costs nothing.
    pub fn set(&mut self, at: Option<Instant>) {
        if at != self.armed {
            self.armed = at;
            let _ = self.tx.send(at);
        }
    }

    /// Forgets the armed deadline after it fired, so that setting it again re-arms it.
    pub fn fired(&mut self, now: Instant) {
        if self.armed.is_some_and(|at| at <= now) {
            self.armed = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    #[test]
    fn fires_once_at_the_deadline_and_can_be_replaced() {
        let (tx, rx) = mpsc::channel();
        let mut alarm = Alarm::start(move || {
            let _ = tx.send(Instant::now());
        })
        .expect("thread starts");
        let t0 = Instant::now();
        alarm.set(Some(t0 + Duration::from_millis(500)));
        alarm.set(Some(t0 + Duration::from_millis(2)));
        let fired = rx.recv_timeout(Duration::from_secs(2)).expect("fires");
        assert!(fired >= t0 + Duration::from_millis(2));
        assert!(
            fired < t0 + Duration::from_millis(400),
            "the later deadline was replaced"
        );
        assert!(
            rx.recv_timeout(Duration::from_millis(50)).is_err(),
            "fires once"
        );
        alarm.fired(Instant::now());
        alarm.set(Some(Instant::now()));
        rx.recv_timeout(Duration::from_secs(2)).expect("re-armed");
        alarm.set(None);
    }
}
