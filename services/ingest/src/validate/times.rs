//! Times that the contract relates to one another, checked together: a
//! charging session cannot start after the event that reports it, nor last
//! longer than from its start to then; a bin cannot have been emptied after
//! the reading that reports it; a request cannot be due before it was
//! created. Each pair is the event's `observed_at` and one payload time;
//! a broken pair is INCONSISTENT and names the payload's field.
//!
//! The timestamps themselves were checked by the payload rules before this.

use super::{Check, Rejection, timestamp};
use citybrain_proto::events::v1::{Event, RequestTransition, SessionPhase, event::Payload};
use citybrain_proto::ingest::v1::ReasonCode;
use std::time::{Duration, SystemTime};

/// Checks every related pair of `event`, whose `observed_at` is `observed`.
pub fn check(event: &Event, observed: SystemTime) -> Check {
    match &event.payload {
        Some(Payload::ChargingSession(p)) => {
            let Some(started) = &p.started_at else {
                return Ok(());
            };
            let path = "charging_session.started_at";
            let started = timestamp(path, started)?;
            not_after(path, started, observed)?;
            if p.phase == SessionPhase::Ended as i32
                && let Some(duration) = p.duration_s
            {
                // Whole seconds, rounded up: a vendor that rounds the
                // duration of a session 3599.4 s long to 3600 is right.
                let span = observed.duration_since(started).unwrap_or_default();
                let most = span.as_secs() + u64::from(span.subsec_nanos() > 0);
                if u64::from(duration) > most {
                    return Err(Rejection::new(
                        ReasonCode::Inconsistent,
                        "charging_session.duration_s",
                        format!(
                            "duration_s ({duration} s) is longer than from started_at to \
                             observed_at ({most} s)"
                        ),
                    ));
                }
            }
            Ok(())
        }
        Some(Payload::BinReading(p)) => match &p.last_emptied_at {
            Some(emptied) => {
                let path = "bin_reading.last_emptied_at";
                not_after(path, timestamp(path, emptied)?, observed)
            }
            None => Ok(()),
        },
        Some(Payload::ServiceRequest(p)) if p.transition == RequestTransition::Created as i32 => {
            match &p.expected_by {
                Some(due) => {
                    let path = "service_request.expected_by";
                    let due = timestamp(path, due)?;
                    if let Ok(early) = observed.duration_since(due)
                        && !early.is_zero()
                    {
                        return Err(Rejection::new(
                            ReasonCode::Inconsistent,
                            path,
                            format!(
                                "expected_by is {} before observed_at, when the request was \
                                 created",
                                seconds(early)
                            ),
                        ));
                    }
                    Ok(())
                }
                None => Ok(()),
            }
        }
        _ => Ok(()),
    }
}

/// `path`'s time must not be after the event's `observed_at`.
fn not_after(path: &str, at: SystemTime, observed: SystemTime) -> Check {
    if at > observed {
        let field = path.rsplit('.').next().unwrap_or(path);
        return Err(Rejection::new(
            ReasonCode::Inconsistent,
            path,
            format!(
                "{field} is {} after observed_at",
                seconds(at.duration_since(observed).unwrap_or_default())
            ),
        ));
    }
    Ok(())
}

/// A gap between two times as a vendor reads it: "3600 s", "0.25 s".
fn seconds(gap: Duration) -> String {
    if gap.subsec_nanos() == 0 {
        format!("{} s", gap.as_secs())
    } else {
        format!("{} s", gap.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::{Limits, validate};
    use citybrain_proto::feed::Kind;
    use citybrain_samples as samples;
    use prost_types::Timestamp;
    use std::time::UNIX_EPOCH;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_795_000_000)
    }

    fn at(offset: i64) -> Option<Timestamp> {
        Some(Timestamp {
            seconds: 1_795_000_000 + offset,
            nanos: 0,
        })
    }

    fn answer(event: &Event) -> Result<Kind, (ReasonCode, String)> {
        validate(event, now(), &Limits::default()).map_err(|r| (r.reason, r.field))
    }

    fn session(mutate: impl FnOnce(&mut citybrain_proto::events::v1::ChargingSession)) -> Event {
        let mut event = samples::event(Kind::ChargingSession, now());
        if let Some(Payload::ChargingSession(p)) = event.payload.as_mut() {
            mutate(p);
        }
        event
    }

    #[test]
    fn a_session_starts_before_it_is_reported_and_lasts_no_longer() {
        let inconsistent = |field: &str| Err((ReasonCode::Inconsistent, field.to_string()));
        let ended = Kind::ChargingSession;
        // The sample lasted 3 h; started 3 h before observed_at is right.
        assert_eq!(
            answer(&session(|p| p.started_at = at(-3 * 3600))),
            Ok(ended)
        );
        assert_eq!(
            answer(&session(|p| p.started_at = at(1))),
            inconsistent("charging_session.started_at")
        );
        assert_eq!(
            answer(&session(|p| p.started_at = at(-3 * 3600 + 1))),
            inconsistent("charging_session.duration_s")
        );
        let mut rounded = session(|p| p.started_at = at(-3 * 3600 + 1));
        if let Some(ts) = rounded.observed_at.as_mut() {
            ts.nanos = 500_000_000;
        }
        assert_eq!(
            answer(&rounded),
            Ok(ended),
            "3599.5 s may be reported as 3600"
        );
        let started = |p: &mut citybrain_proto::events::v1::ChargingSession| {
            p.phase = SessionPhase::Started as i32;
            p.meter_stop_wh = None;
            p.energy_kwh = None;
            p.stop_reason = 0;
            p.fee_electricity_cny = None;
            p.fee_service_cny = None;
            p.fee_total_cny = None;
        };
        assert_eq!(
            answer(&session(|p| {
                started(p);
                p.started_at = at(60);
            })),
            inconsistent("charging_session.started_at"),
            "a STARTED event cannot report a start after itself either"
        );
        assert_eq!(
            answer(&session(|p| {
                started(p);
                p.started_at = at(0);
            })),
            Ok(ended)
        );
        let rejection = validate(
            &session(|p| p.started_at = at(3600)),
            now(),
            &Limits::default(),
        )
        .unwrap_err();
        assert_eq!(rejection.message, "started_at is 3600 s after observed_at");
    }

    #[test]
    fn a_bin_is_emptied_before_the_reading_that_reports_it() {
        let bin = |offset| {
            let mut event = samples::event(Kind::BinReading, now());
            if let Some(Payload::BinReading(p)) = event.payload.as_mut() {
                p.last_emptied_at = at(offset);
            }
            event
        };
        assert_eq!(answer(&bin(-3600)), Ok(Kind::BinReading));
        assert_eq!(answer(&bin(0)), Ok(Kind::BinReading));
        assert_eq!(
            answer(&bin(1)),
            Err((
                ReasonCode::Inconsistent,
                "bin_reading.last_emptied_at".into()
            ))
        );
    }

    #[test]
    fn a_request_is_due_after_it_was_created() {
        let request = |transition: RequestTransition, offset| {
            let mut event = samples::event(Kind::ServiceRequest, now());
            if let Some(Payload::ServiceRequest(p)) = event.payload.as_mut() {
                p.transition = transition as i32;
                p.department = "民政科".into();
                p.expected_by = at(offset);
            }
            event
        };
        let created = RequestTransition::Created;
        assert_eq!(answer(&request(created, 3600)), Ok(Kind::ServiceRequest));
        assert_eq!(answer(&request(created, 0)), Ok(Kind::ServiceRequest));
        assert_eq!(
            answer(&request(created, -1)),
            Err((
                ReasonCode::Inconsistent,
                "service_request.expected_by".into()
            ))
        );
        assert_eq!(
            answer(&request(RequestTransition::Resolved, -86_400)),
            Ok(Kind::ServiceRequest),
            "a request resolved after its deadline is late, not inconsistent"
        );
    }
}
