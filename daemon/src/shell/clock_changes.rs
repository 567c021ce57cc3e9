//! Wakes herdd when the wall clock is set (by hand, by NTP stepping it, on
//! resume from suspend), so timers on a `schedule` follow the new time at
//! once instead of at their next deadline: a `CLOCK_REALTIME` timerfd armed
//! far in the future with `TFD_TIMER_CANCEL_ON_SET` becomes readable (its
//! read fails with `ECANCELED`) at every discontinuous change of the clock.

use nix::errno::Errno;
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tracing::warn;

/// An absolute time the timer never reaches (2096): it only ever wakes for
/// a change of the clock.
const NEVER: i64 = 4_000_000_000;

/// The timerfd, for tokio.
struct Fd(TimerFd);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// Tells when the wall clock was set. Without a timerfd (an old kernel)
/// it never does, and a timer notices a jump at its next deadline.
pub struct ClockChanges {
    fd: Option<AsyncFd<Fd>>,
}

impl ClockChanges {
    pub fn open() -> ClockChanges {
        let fd = TimerFd::new(
            ClockId::CLOCK_REALTIME,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )
        .map_err(std::io::Error::from)
        .and_then(|timer| {
            arm(&timer)?;
            // SAFETY: the AsyncFd owns the timerfd, which stays open for its
            // whole life.
            unsafe { AsyncFd::register_with_interest(Fd(timer), Interest::READABLE) }
                .map_err(|err| err.into_parts().1)
        });
        match fd {
            Ok(fd) => ClockChanges { fd: Some(fd) },
            Err(error) => {
                warn!(%error, "cannot watch for changes of the clock; timers see them late");
                ClockChanges { fd: None }
            }
        }
    }

    /// Waits until the wall clock has been set.
    pub async fn changed(&self) {
        let Some(fd) = &self.fd else {
            return std::future::pending().await;
        };
        loop {
            let Ok(mut ready) = fd.readable().await else {
                return std::future::pending().await;
            };
            let mut expirations = [0u8; 8];
            match nix::unistd::read(&fd.get_ref().0, &mut expirations) {
                // The clock was set: watch for the next change, and say so.
                Err(Errno::ECANCELED) => {
                    if let Err(error) = arm(&fd.get_ref().0) {
                        warn!(%error, "cannot watch for changes of the clock any more");
                    }
                    return;
                }
                Err(Errno::EAGAIN) => ready.clear_ready(),
                // Expired in 2096, or an error: nothing to tell.
                Ok(_) | Err(_) => {
                    ready.clear_ready();
                    let _ = arm(&fd.get_ref().0);
                }
            }
        }
    }
}

fn arm(timer: &TimerFd) -> std::io::Result<()> {
    timer
        .set(
            Expiration::OneShot(TimeSpec::new(NEVER, 0)),
            TimerSetTimeFlags::TFD_TIMER_ABSTIME | TimerSetTimeFlags::TFD_TIMER_CANCEL_ON_SET,
        )
        .map_err(std::io::Error::from)
}
