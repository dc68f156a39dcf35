//! Five-field cron expressions (`minute hour day-of-month month day-of-week`), as an
//! environment's backup schedule (SPEC §9), evaluated in UTC. Each field takes `*`, a
//! number, a range `a-b`, a step `*/n` or `a-b/n`, and comma-separated lists of those;
//! months and weekdays also take their English three-letter names (`jan`, `mon`), and
//! weekday 7 is Sunday like 0. As in classic cron, when both day fields are restricted a
//! day matches either of them.
//!
//! Pure: times are milliseconds since the Unix epoch, the unit of the server's columns.

use std::fmt;

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    minutes: Vec<bool>,
    hours: Vec<bool>,
    days: Vec<bool>,
    months: Vec<bool>,
    weekdays: Vec<bool>,
    /// The field was `*` (or `*/1`): it restricts nothing.
    days_any: bool,
    weekdays_any: bool,
    text: String,
}

/// Why an expression is not a schedule, naming the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronError(pub String);

impl fmt::Display for CronError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CronError {}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
    /// Where the first name counts from (1 for months, 0 for weekdays).
    names_from: u32,
}

const FIELDS: [Field; 5] = [
    Field {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
        names_from: 0,
    },
    Field {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
        names_from: 0,
    },
    Field {
        name: "day of month",
        min: 1,
        max: 31,
        names: &[],
        names_from: 0,
    },
    Field {
        name: "month",
        min: 1,
        max: 12,
        names: &MONTHS,
        names_from: 1,
    },
    Field {
        name: "day of week",
        min: 0,
        max: 7,
        names: &WEEKDAYS,
        names_from: 0,
    },
];

impl Field {
    fn value(&self, text: &str) -> Result<u32, CronError> {
        let lower = text.to_ascii_lowercase();
        if let Some(i) = self.names.iter().position(|n| *n == lower) {
            return Ok(i as u32 + self.names_from);
        }
        let n: u32 = text.parse().map_err(|_| {
            CronError(format!(
                "{}: `{text}` is not a number{}",
                self.name,
                if self.names.is_empty() {
                    String::new()
                } else {
                    format!(" or a name ({})", self.names.join(", "))
                }
            ))
        })?;
        if n < self.min || n > self.max {
            return Err(CronError(format!(
                "{}: {n} is outside {}-{}",
                self.name, self.min, self.max
            )));
        }
        Ok(n)
    }

    /// The values the field allows, as a table indexed by value, and whether it was `*`.
    fn parse(&self, text: &str) -> Result<(Vec<bool>, bool), CronError> {
        let mut allowed = vec![false; self.max as usize + 1];
        let mut any = false;
        for part in text.split(',') {
            let (range, step) = match part.split_once('/') {
                Some((range, step)) => {
                    let step: u32 = step.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                        CronError(format!(
                            "{}: the step `{step}` is not a positive number",
                            self.name
                        ))
                    })?;
                    (range, step)
                }
                None => (part, 1),
            };
            let (from, to) = if range == "*" {
                any |= step == 1;
                (self.min, self.max)
            } else if let Some((a, b)) = range.split_once('-') {
                let (a, b) = (self.value(a)?, self.value(b)?);
                if a > b {
                    return Err(CronError(format!(
                        "{}: the range `{range}` runs backwards",
                        self.name
                    )));
                }
                (a, b)
            } else if range.is_empty() {
                return Err(CronError(format!("{}: an empty list item", self.name)));
            } else {
                let a = self.value(range)?;
                // `5/15` means from 5 to the end, every 15.
                (a, if part.contains('/') { self.max } else { a })
            };
            let mut v = from;
            while v <= to {
                allowed[v as usize] = true;
                v += step;
            }
        }
        Ok((allowed, any))
    }
}

impl Schedule {
    pub fn parse(text: &str) -> Result<Schedule, CronError> {
        let parts: Vec<&str> = text.split_whitespace().collect();
        if parts.len() != 5 {
            return Err(CronError(format!(
                "`{text}` has {} field(s); a schedule has five: minute hour day-of-month month day-of-week (e.g. `0 3 * * *` for 03:00 UTC daily)",
                parts.len()
            )));
        }
        let mut tables = Vec::with_capacity(5);
        for (field, part) in FIELDS.iter().zip(&parts) {
            tables.push(field.parse(part)?);
        }
        let (mut weekdays, weekdays_any) = tables.pop().expect("five");
        // 7 is Sunday too.
        if weekdays[7] {
            weekdays[0] = true;
        }
        weekdays.truncate(7);
        let (months, _) = tables.pop().expect("four");
        let (days, days_any) = tables.pop().expect("three");
        let (hours, _) = tables.pop().expect("two");
        let (minutes, _) = tables.pop().expect("one");
        Ok(Schedule {
            minutes,
            hours,
            days,
            months,
            weekdays,
            days_any,
            weekdays_any,
            text: parts.join(" "),
        })
    }

    /// The expression, its fields separated by single spaces.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn day_matches(&self, date: Date) -> bool {
        if !self.months[date.month as usize] {
            return false;
        }
        let by_day = self.days[date.day as usize];
        let by_weekday = self.weekdays[date.weekday as usize];
        match (self.days_any, self.weekdays_any) {
            (true, true) => true,
            (true, false) => by_weekday,
            (false, true) => by_day,
            (false, false) => by_day || by_weekday,
        }
    }

    /// The first time the schedule fires strictly after `after_ms` (to the minute), or
    /// `None` when it never does within five years (`0 0 30 2 *`: February 30th).
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        const MINUTE: i64 = 60_000;
        const DAY: i64 = 24 * 60 * MINUTE;
        let start = after_ms.div_euclid(MINUTE) * MINUTE + MINUTE;
        let mut day_start = start.div_euclid(DAY) * DAY;
        for _ in 0..(5 * 366) {
            let date = Date::of_day(day_start.div_euclid(DAY));
            if self.day_matches(date) {
                for hour in 0..24 {
                    if !self.hours[hour] {
                        continue;
                    }
                    for minute in 0..60 {
                        let at = day_start + (hour as i64 * 60 + minute as i64) * MINUTE;
                        if self.minutes[minute] && at >= start {
                            return Some(at);
                        }
                    }
                }
            }
            day_start += DAY;
        }
        None
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A calendar date in the proleptic Gregorian calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Date {
    year: i64,
    month: u32,
    day: u32,
    /// 0 = Sunday.
    weekday: u32,
}

impl Date {
    /// The date `days` days after 1970-01-01 (a Thursday).
    fn of_day(days: i64) -> Date {
        let weekday = (days + 4).rem_euclid(7) as u32;
        // Count from 0000-03-01, so each leap day ends its year; eras are 400 years.
        let shifted = days + 719_468;
        let era = shifted.div_euclid(146_097);
        let day_of_era = shifted.rem_euclid(146_097);
        let year_of_era =
            (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let month_from_march = (5 * day_of_year + 2) / 153;
        let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
        let month = if month_from_march < 10 {
            month_from_march + 3
        } else {
            month_from_march - 9
        } as u32;
        let year = year_of_era + era * 400 + i64::from(month <= 2);
        Date {
            year,
            month,
            day,
            weekday,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Milliseconds of a UTC time, computed independently of the code under test.
    fn at(year: i64, month: u32, day: u32, hour: i64, minute: i64) -> i64 {
        // Days before each month in a common year.
        const BEFORE: [i64; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
        let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let mut days: i64 = (1970..year).map(|y| 365 + i64::from(leap(y))).sum();
        days += BEFORE[month as usize - 1] + i64::from(month > 2 && leap(year));
        days += i64::from(day) - 1;
        ((days * 24 + hour) * 60 + minute) * 60_000
    }

    /// Dates come out right across leap years and centuries, with their weekdays.
    #[test]
    fn days_become_dates() {
        let d = |ms: i64| Date::of_day(ms / 86_400_000);
        assert_eq!(
            d(at(1970, 1, 1, 0, 0)),
            Date {
                year: 1970,
                month: 1,
                day: 1,
                weekday: 4
            }
        );
        assert_eq!(d(at(2000, 2, 29, 12, 0)).day, 29);
        assert_eq!(d(at(2000, 2, 29, 12, 0)).weekday, 2, "a Tuesday");
        assert_eq!(d(at(2026, 12, 1, 0, 0)).weekday, 2, "a Tuesday");
        assert_eq!(d(at(2100, 3, 1, 0, 0)).month, 3);
        for (y, m, dd) in [(2024, 12, 31), (2025, 1, 1), (2028, 2, 29), (2400, 2, 29)] {
            let date = d(at(y, m, dd, 0, 0));
            assert_eq!((date.year, date.month, date.day), (y, m, dd));
        }
    }

    /// The next firing is strictly after the given time, to the minute.
    #[test]
    fn the_next_time_follows_the_fields() {
        let daily = Schedule::parse("0 3 * * *").unwrap();
        let now = at(2026, 12, 1, 2, 59);
        assert_eq!(daily.next_after(now), Some(at(2026, 12, 1, 3, 0)));
        assert_eq!(
            daily.next_after(at(2026, 12, 1, 3, 0)),
            Some(at(2026, 12, 2, 3, 0))
        );
        let every_minute = Schedule::parse("* * * * *").unwrap();
        assert_eq!(
            every_minute.next_after(at(2026, 12, 31, 23, 59) + 30_000),
            Some(at(2027, 1, 1, 0, 0))
        );
        let quarter = Schedule::parse("*/15 * * * *").unwrap();
        assert_eq!(
            quarter.next_after(at(2026, 1, 1, 10, 16)),
            Some(at(2026, 1, 1, 10, 30))
        );
        let offset_steps = Schedule::parse("5/20 9-17 * * mon-fri").unwrap();
        // 2026-12-05 is a Saturday: Monday the 7th at 09:05.
        assert_eq!(
            offset_steps.next_after(at(2026, 12, 4, 17, 50)),
            Some(at(2026, 12, 7, 9, 5))
        );
        let leap_day = Schedule::parse("30 1 29 feb *").unwrap();
        assert_eq!(
            leap_day.next_after(at(2026, 3, 1, 0, 0)),
            Some(at(2028, 2, 29, 1, 30))
        );
        assert_eq!(Schedule::parse("0 0 30 2 *").unwrap().next_after(0), None);
    }

    /// With both day fields restricted, either matches (classic cron); Sunday is 0 or 7.
    #[test]
    fn restricted_day_fields_match_either() {
        let s = Schedule::parse("0 0 13 * 5").unwrap();
        // 2026-12-04 is a Friday, before the 13th.
        assert_eq!(
            s.next_after(at(2026, 12, 1, 0, 0)),
            Some(at(2026, 12, 4, 0, 0))
        );
        let sunday = Schedule::parse("0 12 * * 7").unwrap();
        assert_eq!(
            sunday.next_after(at(2026, 12, 1, 0, 0)),
            Some(at(2026, 12, 6, 12, 0))
        );
    }

    /// A wrong expression names the field and what is wrong with it.
    #[test]
    fn bad_expressions_name_the_field() {
        let e = |text: &str| Schedule::parse(text).unwrap_err().to_string();
        assert!(e("0 3 * *").contains("has 4 field(s)"), "{}", e("0 3 * *"));
        assert!(e("60 * * * *").contains("minute: 60 is outside 0-59"));
        assert!(e("0 24 * * *").contains("hour: 24"));
        assert!(e("0 0 0 * *").contains("day of month: 0"));
        assert!(e("0 0 * foo *").contains("month: `foo` is not a number or a name"));
        assert!(e("*/0 * * * *").contains("the step `0`"));
        assert!(e("0 5-2 * * *").contains("runs backwards"));
        assert!(e("0 1,,2 * * *").contains("empty list item"));
        assert_eq!(
            Schedule::parse(" 0  3 * *  * ").unwrap().as_str(),
            "0 3 * * *"
        );
    }
}
