//! Cron schedules in an IANA time zone, evaluated with the `croner` crate.
//!
//! Daylight-saving behaviour is croner's (documented there): a local time skipped by a spring-forward
//! transition fires at the first valid instant after it; a repeated hour fires once.

use croner::{Cron, parser::CronParser, parser::Seconds};
use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::policy::InvalidSpec;

#[derive(Debug, Clone)]
pub struct CronSchedule {
    expression: String,
    zone_name: String,
    cron: Cron,
    zone: TimeZone,
}

impl PartialEq for CronSchedule {
    fn eq(&self, other: &Self) -> bool {
        self.expression == other.expression && self.zone_name == other.zone_name
    }
}

impl CronSchedule {
    /// Parses a standard 5-field expression (no seconds field) and a time zone (default UTC).
    pub fn parse(expression: &str, zone: Option<&str>) -> Result<Self, InvalidSpec> {
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .build()
            .parse(expression)
            .map_err(|e| {
                InvalidSpec(format!(
                    "rotation.schedule {expression:?} is not a 5-field cron expression: {e}"
                ))
            })?;
        let zone_name = zone.unwrap_or("UTC").to_owned();
        let zone = TimeZone::get(&zone_name).map_err(|_| {
            InvalidSpec(format!(
                "rotation.timeZone {zone_name:?} is not an IANA time zone"
            ))
        })?;
        let schedule = Self {
            expression: expression.to_owned(),
            zone_name,
            cron,
            zone,
        };
        // Five fields repeat at least every four years (29 February); one that never fires (30
        // February, 31 April ...) has no next time after any instant.
        let fires = schedule.next_after(Timestamp::UNIX_EPOCH).is_some();
        if !fires {
            return Err(InvalidSpec(format!(
                "rotation.schedule {expression:?} never fires (no such date)"
            )));
        }
        Ok(schedule)
    }

    /// The first time the schedule fires strictly after `after`.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let local = after.to_zoned(self.zone.clone());
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|z| z.timestamp())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_schedule_that_never_fires_is_invalid() {
        for never in ["0 0 30 2 *", "0 0 31 4 *", "0 0 31 11 *", "15 3 30,31 2 *"] {
            let err = CronSchedule::parse(never, None).unwrap_err();
            assert_eq!(
                err.0,
                format!("rotation.schedule {never:?} never fires (no such date)")
            );
        }
        // Rare but real: once in four years, and the last day of a month that has it.
        for rare in ["0 0 29 2 *", "0 0 31 1,4 *"] {
            assert!(CronSchedule::parse(rare, None).is_ok(), "{rare}");
        }
        let leap = CronSchedule::parse("0 0 29 2 *", Some("Europe/Berlin")).unwrap();
        assert_eq!(
            leap.next_after(ts("2026-11-22T00:00:00Z")),
            Some(ts("2028-02-28T23:00:00Z"))
        );
    }

    #[test]
    fn weekly_in_utc() {
        let c = CronSchedule::parse("0 3 * * 0", None).unwrap();
        // 2026-11-22 is a Sunday.
        assert_eq!(
            c.next_after(ts("2026-11-21T12:00:00Z")),
            Some(ts("2026-11-22T03:00:00Z"))
        );
        assert_eq!(
            c.next_after(ts("2026-11-22T03:00:00Z")),
            Some(ts("2026-11-29T03:00:00Z"))
        );
    }

    #[test]
    fn time_zone_shifts_with_daylight_saving() {
        let c = CronSchedule::parse("0 3 * * *", Some("Europe/Berlin")).unwrap();
        // CEST (UTC+2) before 25 Oct 2026, CET (UTC+1) after.
        assert_eq!(
            c.next_after(ts("2026-10-24T12:00:00Z")),
            Some(ts("2026-10-25T02:00:00Z"))
        );
        assert_eq!(
            c.next_after(ts("2026-10-25T12:00:00Z")),
            Some(ts("2026-10-26T02:00:00Z"))
        );
    }

    #[test]
    fn skipped_local_time_fires_after_the_gap() {
        // 29 Mar 2026, 02:00-03:00 does not exist in Berlin; 02:30 fires at the first valid instant.
        let c = CronSchedule::parse("30 2 * * *", Some("Europe/Berlin")).unwrap();
        let next = c.next_after(ts("2026-03-28T12:00:00Z")).unwrap();
        assert!(
            next >= ts("2026-03-29T01:00:00Z") && next <= ts("2026-03-29T01:30:00Z"),
            "{next}"
        );
    }

    #[test]
    fn leap_day() {
        let c = CronSchedule::parse("0 0 29 2 *", None).unwrap();
        assert_eq!(
            c.next_after(ts("2026-03-01T00:00:00Z")),
            Some(ts("2028-02-29T00:00:00Z"))
        );
    }

    /// Policies compare by the schedule as written: the same expression in another zone, or
    /// another expression in the same zone, is a different schedule.
    #[test]
    fn schedules_are_equal_when_expression_and_zone_are() {
        let parse = |expr, zone| CronSchedule::parse(expr, zone).unwrap();
        let berlin = parse("0 3 * * *", Some("Europe/Berlin"));
        assert_eq!(berlin, parse("0 3 * * *", Some("Europe/Berlin")));
        assert_ne!(berlin, parse("0 3 * * *", Some("UTC")));
        assert_ne!(berlin, parse("0 4 * * *", Some("Europe/Berlin")));
        assert_eq!(parse("0 3 * * *", None), parse("0 3 * * *", Some("UTC")));
    }

    #[test]
    fn rejects_bad_expressions_and_zones() {
        assert!(CronSchedule::parse("every sunday", None).is_err());
        assert!(
            CronSchedule::parse("0 0 3 * * 0", None).is_err(),
            "seconds field is not allowed"
        );
        let err = CronSchedule::parse("0 3 * * 0", Some("Mars/Olympus")).unwrap_err();
        assert!(err.0.contains("Mars/Olympus"));
    }
}
