//! Go `time.Time` as Kyverno's time functions use it: RFC 3339 and Go-layout parsing,
//! RFC 3339 formatting in the parsed offset, durations in nanoseconds. No clock.

/// Seconds between 0001-01-01 and 1970-01-01 (Go's `Truncate` counts from year 1).
const UNIX_TO_ABS: i128 = 62_135_596_800;

/// A point in time with the UTC offset it was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GoTime {
    unix: i64,
    nanos: u32,
    offset: i32,
}

/// Broken-down local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    /// 0 = Sunday.
    pub weekday: u32,
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ => {
            if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 {
                29
            } else {
                28
            }
        }
    }
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

impl GoTime {
    /// From Unix seconds, nanoseconds and an offset in seconds.
    pub(crate) fn from_unix(unix: i64, nanos: u32, offset: i32) -> GoTime {
        GoTime {
            unix,
            nanos,
            offset,
        }
    }

    fn total_nanos(&self) -> i128 {
        i128::from(self.unix) * 1_000_000_000 + i128::from(self.nanos)
    }

    fn from_total(n: i128, offset: i32) -> GoTime {
        let unix = n.div_euclid(1_000_000_000);
        let nanos = n.rem_euclid(1_000_000_000) as u32;
        GoTime {
            unix: unix.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64,
            nanos,
            offset,
        }
    }

    /// The same instant in UTC.
    pub(crate) fn utc(self) -> GoTime {
        GoTime { offset: 0, ..self }
    }

    /// `self - other` in nanoseconds, saturating like Go's `Sub`.
    pub(crate) fn sub(&self, other: &GoTime) -> i64 {
        let d = self.total_nanos() - other.total_nanos();
        d.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }

    /// `self + d` nanoseconds.
    pub(crate) fn add(self, d: i64) -> GoTime {
        GoTime::from_total(self.total_nanos() + i128::from(d), self.offset)
    }

    /// Go's `Truncate`: rounds down to a multiple of `d` since year 1 (UTC); `d <= 0` is a
    /// no-op except for dropping monotonic readings.
    pub(crate) fn truncate(self, d: i64) -> GoTime {
        if d <= 0 {
            return self;
        }
        let abs = self.total_nanos() + UNIX_TO_ABS * 1_000_000_000;
        let r = abs.rem_euclid(i128::from(d));
        GoTime::from_total(self.total_nanos() - r, self.offset)
    }

    /// Local broken-down time.
    pub(crate) fn civil(&self) -> Civil {
        let local = self.unix.saturating_add(i64::from(self.offset));
        let days = local.div_euclid(86_400);
        let secs = local.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        Civil {
            year,
            month,
            day,
            hour: secs / 3600,
            minute: secs / 60 % 60,
            second: secs % 60,
            weekday: (days + 4).rem_euclid(7) as u32,
        }
    }

    /// `time.RFC3339` formatting (no fractional seconds), in the time's own offset.
    pub(crate) fn format_rfc3339(&self) -> String {
        let c = self.civil();
        let zone = if self.offset == 0 {
            "Z".to_string()
        } else {
            let sign = if self.offset < 0 { '-' } else { '+' };
            let o = self.offset.unsigned_abs();
            format!("{sign}{:02}:{:02}", o / 3600, o / 60 % 60)
        };
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{zone}",
            c.year, c.month, c.day, c.hour, c.minute, c.second
        )
    }

    /// `time.Parse(time.RFC3339, s)`.
    pub(crate) fn parse_rfc3339(s: &str) -> Option<GoTime> {
        GoTime::parse_layout("2006-01-02T15:04:05Z07:00", s)
    }

    /// `time.Parse(layout, s)` for the layout elements Kyverno policies use: `2006 06 01 1 Jan
    /// January 02 2 _2 002 15 03 3 04 4 05 5 PM pm Mon Monday MST Z07:00 Z0700 Z07 -07:00
    /// -0700 -07 .000 .999` (fractional seconds after `05` are accepted as Go does).
    pub(crate) fn parse_layout(layout: &str, s: &str) -> Option<GoTime> {
        let mut p = LayoutParser {
            s: s.as_bytes(),
            pos: 0,
        };
        let (mut year, mut month, mut day) = (1i64, 1u32, 1u32);
        let (mut hour, mut minute, mut second, mut nanos) = (0u32, 0u32, 0u32, 0u32);
        let mut pm: Option<bool> = None;
        let mut offset = 0i32;
        let mut yday: Option<u32> = None;
        let l = layout.as_bytes();
        let mut i = 0usize;
        while i < l.len() {
            let rest = &layout[i..];
            let tok = [
                "January", "Jan", "Monday", "Mon", "MST", "2006", "002", "01", "02", "03", "04",
                "05", "06", "15", "_2", "Z07:00", "Z0700", "Z07", "-07:00", "-0700", "-07", "PM",
                "pm", "1", "2", "3", "4", "5",
            ]
            .into_iter()
            .find(|t| rest.starts_with(t));
            let frac = frac_token(rest);
            if let Some(n) = frac {
                nanos = p.fraction(n.1)?;
                i += n.0;
                continue;
            }
            let Some(t) = tok else {
                let c = rest.chars().next()?;
                p.literal(c)?;
                i += c.len_utf8();
                continue;
            };
            match t {
                "January" => month = p.name(&MONTHS, false)? + 1,
                "Jan" => month = p.name(&MONTHS, true)? + 1,
                "Monday" => {
                    p.name(&DAYS, false)?;
                }
                "Mon" => {
                    p.name(&DAYS, true)?;
                }
                "MST" => {
                    let n = p.s[p.pos..]
                        .iter()
                        .take_while(|b| b.is_ascii_uppercase())
                        .count();
                    if n < 3 {
                        return None;
                    }
                    p.pos += n;
                }
                "2006" => year = i64::from(p.digits(4, 4)?),
                "06" => {
                    let y = i64::from(p.digits(2, 2)?);
                    year = if y >= 69 { 1900 + y } else { 2000 + y };
                }
                "002" => yday = Some(p.digits(3, 3)?),
                "01" => month = p.digits(2, 2)?,
                "1" => month = p.digits(1, 2)?,
                "02" => day = p.digits(2, 2)?,
                "_2" => {
                    if p.s.get(p.pos) == Some(&b' ') {
                        p.pos += 1;
                    }
                    day = p.digits(1, 2)?;
                }
                "2" => day = p.digits(1, 2)?,
                "15" => hour = p.digits(1, 2)?,
                "03" => hour = p.digits(2, 2)?,
                "3" => hour = p.digits(1, 2)?,
                "04" => minute = p.digits(2, 2)?,
                "4" => minute = p.digits(1, 2)?,
                "05" | "5" => {
                    second = if t == "05" {
                        p.digits(2, 2)?
                    } else {
                        p.digits(1, 2)?
                    };
                    // Go accepts a fractional second here even if the layout has none.
                    if p.s.get(p.pos) == Some(&b'.')
                        && p.s.get(p.pos + 1).is_some_and(u8::is_ascii_digit)
                        && frac_token(&layout[i + t.len()..]).is_none()
                    {
                        p.pos += 1;
                        let n = p.s[p.pos..]
                            .iter()
                            .take_while(|b| b.is_ascii_digit())
                            .count();
                        nanos = p.fraction(n)?;
                    }
                }
                "PM" | "pm" => {
                    let w = p.s.get(p.pos..p.pos + 2)?;
                    pm = Some(match w.to_ascii_uppercase().as_slice() {
                        b"PM" => true,
                        b"AM" => false,
                        _ => return None,
                    });
                    p.pos += 2;
                }
                z => {
                    let zulu_ok = z.starts_with('Z');
                    if zulu_ok && p.s.get(p.pos) == Some(&b'Z') {
                        p.pos += 1;
                        offset = 0;
                    } else {
                        let sign = match p.s.get(p.pos)? {
                            b'+' => 1,
                            b'-' => -1,
                            _ => return None,
                        };
                        p.pos += 1;
                        let hh = p.digits(2, 2)?;
                        let mut mm = 0;
                        if z.ends_with("07:00") {
                            p.literal(':')?;
                            mm = p.digits(2, 2)?;
                        } else if z.ends_with("0700") {
                            mm = p.digits(2, 2)?;
                        }
                        if hh > 23 || mm > 59 {
                            return None;
                        }
                        offset = sign * (hh as i32 * 3600 + mm as i32 * 60);
                    }
                }
            }
            i += t.len();
        }
        if p.pos != p.s.len() {
            return None;
        }
        if let Some(is_pm) = pm {
            if hour > 12 {
                return None;
            }
            if is_pm && hour < 12 {
                hour += 12;
            } else if !is_pm && hour == 12 {
                hour = 0;
            }
        }
        if let Some(yd) = yday {
            let mut rem = yd;
            month = 1;
            while month <= 12 && rem > days_in_month(year, month) {
                rem -= days_in_month(year, month);
                month += 1;
            }
            day = rem;
        }
        if !(1..=12).contains(&month)
            || day < 1
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 59
        {
            return None;
        }
        let days = days_from_civil(year, month, day);
        let local = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
        Some(GoTime {
            unix: local - i64::from(offset),
            nanos,
            offset,
        })
    }
}

/// A fractional-second layout element (`.000`, `.999`, `,000`): (layout length, digits).
fn frac_token(rest: &str) -> Option<(usize, usize)> {
    let b = rest.as_bytes();
    if !matches!(b.first(), Some(b'.' | b',')) {
        return None;
    }
    let d = b.get(1)?;
    if *d != b'0' && *d != b'9' {
        return None;
    }
    let n = b[1..].iter().take_while(|c| *c == d).count();
    // Go requires the run not to be followed by another digit.
    if b.get(1 + n).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    Some((1 + n, if *d == b'0' { n } else { 0 }))
}

struct LayoutParser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl LayoutParser<'_> {
    fn literal(&mut self, c: char) -> Option<()> {
        let mut buf = [0u8; 4];
        let e = c.encode_utf8(&mut buf).as_bytes();
        if self.s.get(self.pos..self.pos + e.len())? == e {
            self.pos += e.len();
            Some(())
        } else {
            None
        }
    }

    fn digits(&mut self, min: usize, max: usize) -> Option<u32> {
        let n = self.s[self.pos..]
            .iter()
            .take(max)
            .take_while(|b| b.is_ascii_digit())
            .count();
        if n < min {
            return None;
        }
        let v = std::str::from_utf8(&self.s[self.pos..self.pos + n])
            .ok()?
            .parse()
            .ok()?;
        self.pos += n;
        Some(v)
    }

    /// A fractional second after the separator: `fixed` digits, or (0) any number of digits.
    fn fraction(&mut self, fixed: usize) -> Option<u32> {
        if matches!(self.s.get(self.pos), Some(b'.' | b',')) {
            self.pos += 1;
        }
        let n = self.s[self.pos..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if fixed > 0 && n != fixed {
            return None;
        }
        let digits = &self.s[self.pos..self.pos + n];
        self.pos += n;
        let mut v: u64 = 0;
        for (k, d) in digits.iter().enumerate() {
            if k < 9 {
                v = v * 10 + u64::from(d - b'0');
            }
        }
        for _ in n.min(9)..9 {
            v *= 10;
        }
        Some(v as u32)
    }

    fn name(&mut self, names: &[&str], abbrev: bool) -> Option<u32> {
        for (i, n) in names.iter().enumerate() {
            let cand = if abbrev { &n[..3] } else { n };
            if self
                .s
                .get(self.pos..self.pos + cand.len())
                .is_some_and(|w| w.eq_ignore_ascii_case(cand.as_bytes()))
            {
                self.pos += cand.len();
                return Some(i as u32);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn rfc3339_round_trip_and_offsets() {
        let t = GoTime::parse_rfc3339("2021-01-02T03:04:05+02:00").unwrap();
        assert_eq!(t.format_rfc3339(), "2021-01-02T03:04:05+02:00");
        assert_eq!(t.utc().format_rfc3339(), "2021-01-02T01:04:05Z");
        let f = GoTime::parse_rfc3339("2021-01-02T03:04:05.5Z").unwrap();
        assert_eq!(
            f.sub(&GoTime::parse_rfc3339("2021-01-02T03:04:05Z").unwrap()),
            500_000_000
        );
        assert!(GoTime::parse_rfc3339("2021-02-30T00:00:00Z").is_none());
        assert_eq!(t.civil().weekday, 6);
    }

    #[test]
    fn layouts() {
        let t =
            GoTime::parse_layout("Mon Jan _2 15:04:05 2006", "Sat Jan  2 03:04:05 2021").unwrap();
        assert_eq!(t.format_rfc3339(), "2021-01-02T03:04:05Z");
        let t = GoTime::parse_layout("2006-01-02", "2023-12-31").unwrap();
        assert_eq!(t.format_rfc3339(), "2023-12-31T00:00:00Z");
        let t = GoTime::parse_rfc3339("2023-12-31T13:45:00Z").unwrap();
        assert_eq!(
            t.truncate(3_600_000_000_000).format_rfc3339(),
            "2023-12-31T13:00:00Z"
        );
    }
}
