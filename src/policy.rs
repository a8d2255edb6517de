//! The spec with the operator's defaults applied and everything parsed, or the reason it cannot be.
//!
//! The schema rejects most bad input at apply time; what only the operator can judge (a cron
//! expression, a time zone, values stored before the CRD's rules existed) ends here as
//! [`InvalidSpec`], reported as Ready=False and never retried until the object changes.

use std::str::FromStr;

use jiff::{SignedDuration, Timestamp};

use crate::api::{ApiTokenSpec, Rotation, TokenFormat};
use crate::token::Format;

mod format;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidSpec(pub String);

/// When automatic rotations come due.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    Every(SignedDuration),
    Cron(Box<crate::cron::CronSchedule>),
}

impl Schedule {
    /// The first due time strictly after `issued_at`.
    pub fn next_after(&self, issued_at: Timestamp) -> Option<Timestamp> {
        match self {
            Self::Every(every) => issued_at.checked_add(*every).ok(),
            Self::Cron(cron) => cron.next_after(issued_at),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub format: Format,
    /// `spec.format` as written, without defaults (recorded in status; see [`Policy::format_changed`]).
    pub requested_format: TokenFormat,
    pub expires_after: Option<SignedDuration>,
    pub schedule: Option<Schedule>,
    /// How long before expiry a value is renewed; set whenever `expires_after` is.
    pub renew_before: Option<SignedDuration>,
    pub auto_renew: bool,
    pub grace: SignedDuration,
}

pub const MIN_INTERVAL: SignedDuration = SignedDuration::from_mins(1);

/// Parses a Go-style duration exactly; [`whole_seconds`] rounds it for use.
pub fn parse_duration(field: &str, value: &str) -> Result<SignedDuration, InvalidSpec> {
    let bad = || {
        InvalidSpec(format!(
            "{field}: {value:?} is not a duration such as 90s, 10m or 720h"
        ))
    };
    // kube's parser panics on numbers too large for a Duration (found by src/fuzz.rs): no
    // sensible duration has more than 12 digits in a row or 64 characters.
    let huge = value.len() > 64
        || value
            .split(|c: char| !c.is_ascii_digit())
            .any(|digits| digits.len() > 12);
    if huge {
        return Err(bad());
    }
    let parsed = kube::core::Duration::from_str(value).map_err(|_| bad())?;
    if parsed.is_negative() {
        return Err(bad());
    }
    SignedDuration::try_from(std::time::Duration::from(parsed)).map_err(|_| bad())
}

/// Rounds up to whole seconds. Kubernetes stores times in whole seconds; a due time with a
/// fraction would never equal what status records and would wake the reconciler early.
fn whole_seconds(d: SignedDuration) -> SignedDuration {
    let extra = i64::from(d.subsec_nanos() > 0);
    SignedDuration::from_secs(d.as_secs().saturating_add(extra))
}

impl Policy {
    /// The spec with defaults applied, or the first thing wrong with it.
    pub fn resolve(spec: &ApiTokenSpec) -> Result<Self, InvalidSpec> {
        match Self::resolve_lenient(spec) {
            (policy, None) => Ok(policy),
            (_, Some(invalid)) => Err(invalid),
        }
    }

    /// Resolves field by field: an invalid field is reported and left out (no expiry, no
    /// schedule, the default renewal or grace), so an already issued value keeps expiring and
    /// grace windows keep closing while the user fixes the spec.
    pub fn resolve_lenient(spec: &ApiTokenSpec) -> (Self, Option<InvalidSpec>) {
        let rotation = spec.rotation.clone().unwrap_or_default();
        let mut first = None;
        let mut keep = |result: Result<Option<SignedDuration>, InvalidSpec>| {
            result.unwrap_or_else(|e| {
                first.get_or_insert(e);
                None
            })
        };
        let lifetime = keep(expires_after(spec));
        let renew_before =
            keep(renew_before(lifetime, &rotation)).or_else(|| lifetime.map(|l| l / 3));
        let grace = keep(optional_duration(
            "rotation.gracePeriod",
            &rotation.grace_period,
        ));
        let schedule = schedule(&rotation).unwrap_or_else(|e| {
            first.get_or_insert(e);
            None
        });
        let policy = Self {
            format: Format::from_spec(spec.format.as_ref()),
            requested_format: spec.format.clone().unwrap_or_default(),
            expires_after: lifetime.map(whole_seconds),
            schedule,
            renew_before: renew_before.map(whole_seconds),
            auto_renew: rotation.auto_renew.unwrap_or(true),
            grace: grace.map_or(SignedDuration::ZERO, whole_seconds),
        };
        (policy, first)
    }
}

fn optional_duration(
    field: &str,
    value: &Option<String>,
) -> Result<Option<SignedDuration>, InvalidSpec> {
    value
        .as_deref()
        .map(|v| parse_duration(field, v))
        .transpose()
}

fn expires_after(spec: &ApiTokenSpec) -> Result<Option<SignedDuration>, InvalidSpec> {
    let lifetime = optional_duration("expiresAfter", &spec.expires_after)?;
    if lifetime.is_some_and(|d| d < MIN_INTERVAL) {
        return Err(InvalidSpec("expiresAfter must be at least 1m".into()));
    }
    Ok(lifetime)
}

/// Renewal must leave at least [`MIN_INTERVAL`] between issue and renewal, like `every`: a
/// value renewed moments after it was issued would rotate in a loop.
fn renew_before(
    lifetime: Option<SignedDuration>,
    rotation: &Rotation,
) -> Result<Option<SignedDuration>, InvalidSpec> {
    let before = optional_duration("rotation.renewBefore", &rotation.renew_before)?;
    match (lifetime, before) {
        (None, Some(_)) => Err(InvalidSpec(
            "rotation.renewBefore needs expiresAfter".into(),
        )),
        (Some(lifetime), Some(before)) if lifetime - before < MIN_INTERVAL => Err(InvalidSpec(
            "rotation.renewBefore must be at least 1m shorter than expiresAfter".into(),
        )),
        (_, before) => Ok(before),
    }
}

fn schedule(rotation: &Rotation) -> Result<Option<Schedule>, InvalidSpec> {
    match (&rotation.every, &rotation.schedule) {
        (Some(_), Some(_)) => Err(InvalidSpec(
            "set either rotation.every or rotation.schedule, not both".into(),
        )),
        (Some(every), None) => {
            let every = parse_duration("rotation.every", every)?;
            if every < MIN_INTERVAL {
                return Err(InvalidSpec("rotation.every must be at least 1m".into()));
            }
            Ok(Some(Schedule::Every(whole_seconds(every))))
        }
        (None, Some(expr)) => {
            let cron = crate::cron::CronSchedule::parse(expr, rotation.time_zone.as_deref())?;
            Ok(Some(Schedule::Cron(Box::new(cron))))
        }
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Rotation;

    fn spec(expires: Option<&str>, rotation: Rotation) -> ApiTokenSpec {
        ApiTokenSpec {
            expires_after: expires.map(Into::into),
            rotation: Some(rotation),
            ..Default::default()
        }
    }

    /// Texts longer than 64 characters are refused before kube's parser sees them (it panics on
    /// some); 64 is still read.
    #[test]
    fn a_duration_text_of_64_characters_is_read_and_65_refused() {
        let at_limit = "0h".repeat(31) + "1m";
        assert_eq!(at_limit.len(), 64);
        assert_eq!(
            parse_duration("f", &at_limit),
            Ok(SignedDuration::from_mins(1))
        );
        let past = format!("0{at_limit}");
        assert_eq!(past.len(), 65);
        assert!(parse_duration("f", &past).is_err());
        assert!(
            kube::core::Duration::from_str(&past).is_ok(),
            "refused only for its length"
        );
    }

    #[test]
    fn defaults() {
        let p = Policy::resolve(&ApiTokenSpec::default()).unwrap();
        assert_eq!(p.format, Format::default());
        assert!(p.auto_renew);
        assert_eq!(p.grace, SignedDuration::ZERO);
        assert_eq!(
            (p.expires_after, p.renew_before, p.schedule),
            (None, None, None)
        );
    }

    #[test]
    fn renew_before_defaults_to_a_third_of_the_lifetime() {
        let p = Policy::resolve(&spec(Some("720h"), Rotation::default())).unwrap();
        assert_eq!(p.renew_before, Some(SignedDuration::from_hours(240)));
    }

    #[test]
    fn lenient_resolution_keeps_expiry_and_grace_of_an_invalid_spec() {
        let bad_cron = Rotation {
            schedule: Some("at dawn".into()),
            auto_renew: Some(false),
            grace_period: Some("10m".into()),
            ..Default::default()
        };
        let (p, invalid) = Policy::resolve_lenient(&spec(Some("1h"), bad_cron));
        assert!(invalid.unwrap().0.contains("at dawn"));
        assert_eq!(p.expires_after, Some(SignedDuration::from_hours(1)));
        assert_eq!(p.grace, SignedDuration::from_mins(10));
        assert!(!p.auto_renew);
        assert_eq!(p.schedule, None);

        let broken = spec(
            Some("soon"),
            Rotation {
                every: Some("1h".into()),
                ..Default::default()
            },
        );
        let (p, invalid) = Policy::resolve_lenient(&broken);
        assert!(invalid.unwrap().0.contains("expiresAfter"));
        // Only the invalid field is left out; the valid schedule stays.
        let hour = SignedDuration::from_hours(1);
        assert_eq!(
            (p.expires_after, p.schedule),
            (None, Some(Schedule::Every(hour)))
        );

        let (_, invalid) = Policy::resolve_lenient(&ApiTokenSpec::default());
        assert!(invalid.is_none());
    }

    #[test]
    fn durations_round_up_to_whole_seconds() {
        assert_eq!(
            whole_seconds(parse_duration("f", "1500ms").unwrap()),
            SignedDuration::from_secs(2)
        );
        let p = Policy::resolve(&spec(Some("100s"), Rotation::default())).unwrap();
        assert_eq!(p.renew_before, Some(SignedDuration::from_secs(34)));
    }

    #[test]
    fn durations_parse_go_style() {
        assert_eq!(
            parse_duration("f", "1h30m").unwrap(),
            SignedDuration::from_mins(90)
        );
        assert_eq!(parse_duration("f", "0s").unwrap(), SignedDuration::ZERO);
        assert!(parse_duration("f", "-5m").is_err());
        let err = parse_duration("rotation.every", "soon").unwrap_err();
        assert!(err.0.contains("rotation.every"), "{err}");
    }

    /// The schema's limits, at and around each boundary, so a stored object that predates a
    /// CRD rule gets the same answer from the operator as from `kubectl apply`.
    #[test]
    fn limits_hold_exactly_at_their_boundaries() {
        let lifetime = |value: &str| spec(Some(value), Rotation::default());
        let interval = |value: &str| {
            spec(
                None,
                Rotation {
                    every: Some(value.into()),
                    ..Default::default()
                },
            )
        };
        // expiresAfter 1h leaves renewal at most 59m before expiry, so it comes 1m after issue.
        let renewal = |value: &str| {
            spec(
                Some("1h"),
                Rotation {
                    renew_before: Some(value.into()),
                    ..Default::default()
                },
            )
        };
        let cases = [
            (lifetime("59s"), Err("expiresAfter must be at least 1m")),
            (
                lifetime("59s999ms"),
                Err("expiresAfter must be at least 1m"),
            ),
            (lifetime("1m"), Ok(())),
            (lifetime("61s"), Ok(())),
            (interval("59s"), Err("rotation.every must be at least 1m")),
            (interval("1m"), Ok(())),
            (renewal("58m"), Ok(())),
            (renewal("59m"), Ok(())),
            (
                renewal("59m1s"),
                Err("rotation.renewBefore must be at least 1m shorter than expiresAfter"),
            ),
            (
                renewal("1h"),
                Err("rotation.renewBefore must be at least 1m shorter than expiresAfter"),
            ),
            (
                renewal("2h"),
                Err("rotation.renewBefore must be at least 1m shorter than expiresAfter"),
            ),
        ];
        for (spec, want) in cases {
            let got = Policy::resolve(&spec).map(|_| ()).map_err(|e| e.0);
            assert_eq!(got, want.map_err(str::to_owned), "{spec:?}");
        }
    }

    #[test]
    fn rejects_what_the_schema_would_have() {
        let every = |e: &str| {
            spec(
                None,
                Rotation {
                    every: Some(e.into()),
                    ..Default::default()
                },
            )
        };
        assert!(Policy::resolve(&every("30s")).is_err());
        assert!(Policy::resolve(&every("1m")).is_ok());
        let both = Rotation {
            every: Some("1h".into()),
            schedule: Some("0 3 * * *".into()),
            ..Default::default()
        };
        assert!(Policy::resolve(&spec(None, both)).is_err());
        let renew = Rotation {
            renew_before: Some("2h".into()),
            ..Default::default()
        };
        let tight = Rotation {
            renew_before: Some("59m59s500ms".into()),
            ..Default::default()
        };
        assert!(
            Policy::resolve(&spec(Some("1h"), tight)).is_err(),
            "renewal moments after issue"
        );
        assert!(Policy::resolve(&spec(Some("1h"), renew.clone())).is_err());
        assert!(Policy::resolve(&spec(None, renew)).is_err());
    }
}
