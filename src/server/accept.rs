//! What the accept loop does when `accept` fails: pause, for longer and longer, instead of
//! spinning on a listener that stays readable (out of file descriptors, the pending
//! connection stays in the backlog), and warn about it without flooding the log.

use std::io;
use std::time::Duration;

use tokio::time::Instant;

/// The first pause after an accept error; each further error in a row doubles it.
const FIRST_PAUSE: Duration = Duration::from_millis(10);
/// The longest pause between two accept attempts.
const LONGEST_PAUSE: Duration = Duration::from_secs(1);
/// At most one warning per this long for each kind of trouble.
pub const WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// Whether `error` concerns only the one connection being accepted (the client went away
/// before berth took it), so the next accept may follow at once.
fn concerns_one_connection(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

/// The pause in force after consecutive accept errors.
#[derive(Debug, Default)]
pub struct Backoff {
    pause: Option<Duration>,
}

impl Backoff {
    /// Records a failed accept and returns how long to wait before the next one (`None`: at
    /// once). Errors such as running out of file descriptors (`EMFILE`, `ENFILE`) or memory
    /// last until connections close, so the pause grows from 10 ms to 1 s while they repeat.
    pub fn failed(&mut self, error: &io::Error) -> Option<Duration> {
        if concerns_one_connection(error) {
            return None;
        }
        let pause = self
            .pause
            .map_or(FIRST_PAUSE, |p| (p * 2).min(LONGEST_PAUSE));
        self.pause = Some(pause);
        Some(pause)
    }

    /// Records a successful accept: the next error starts with a short pause again.
    pub fn succeeded(&mut self) {
        self.pause = None;
    }
}

/// Lets a warning through at most once per interval and counts the ones held back.
#[derive(Debug)]
pub struct Throttle {
    interval: Duration,
    last: Option<Instant>,
    held_back: u64,
}

impl Throttle {
    pub fn new(interval: Duration) -> Self {
        Throttle {
            interval,
            last: None,
            held_back: 0,
        }
    }

    /// Whether to log now; if so, how many occurrences were held back since the last line.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.duration_since(last) < self.interval => {
                self.held_back += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.held_back))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emfile() -> io::Error {
        io::Error::from_raw_os_error(libc::EMFILE)
    }

    #[test]
    fn running_out_of_descriptors_pauses_longer_and_longer() {
        let mut backoff = Backoff::default();
        let pauses: Vec<u64> = (0..10)
            .map(|_| backoff.failed(&emfile()).unwrap().as_millis() as u64)
            .collect();
        assert_eq!(pauses, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
        let enfile = io::Error::from_raw_os_error(libc::ENFILE);
        assert_eq!(backoff.failed(&enfile), Some(LONGEST_PAUSE));
        backoff.succeeded();
        assert_eq!(backoff.failed(&emfile()), Some(FIRST_PAUSE));
    }

    #[test]
    fn a_client_that_went_away_does_not_pause_accepting() {
        let mut backoff = Backoff::default();
        for errno in [libc::ECONNABORTED, libc::ECONNRESET] {
            assert_eq!(backoff.failed(&io::Error::from_raw_os_error(errno)), None);
        }
        assert_eq!(backoff.failed(&emfile()), Some(FIRST_PAUSE));
    }

    #[test]
    fn warnings_are_throttled_and_counted() {
        let mut throttle = Throttle::new(Duration::from_secs(10));
        let start = Instant::now();
        assert_eq!(throttle.allow(start), Some(0));
        assert_eq!(throttle.allow(start + Duration::from_secs(1)), None);
        assert_eq!(throttle.allow(start + Duration::from_secs(9)), None);
        assert_eq!(throttle.allow(start + Duration::from_secs(10)), Some(2));
        assert_eq!(throttle.allow(start + Duration::from_secs(11)), None);
    }
}
