//! Columns and ages the way kubectl prints them, so the plugin's tables read like
//! `kubectl get` beside them and scripts that cut kubectl's columns cut these too.

use k8s_openapi::jiff::Timestamp;

/// Rows under upper-case headers, each column as wide as its widest cell plus three spaces
/// and at least ten (kubectl's tabwriter settings); the last column is not padded.
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
    min_width: usize,
}

impl Table {
    pub fn new<S: Into<String>>(headers: impl IntoIterator<Item = S>) -> Self {
        Table {
            headers: headers.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
            min_width: 10,
        }
    }

    /// Columns only as wide as their cells (plus the gap): for tables inside a longer text,
    /// where kubectl's minimum of ten would leave holes.
    pub fn compact(mut self) -> Self {
        self.min_width = 0;
        self
    }

    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table, each line starting with `indent`.
    pub fn render(&self, indent: &str) -> String {
        self.lines(indent, true)
    }

    /// The rows alone, aligned as under headers.
    pub fn render_rows(&self, indent: &str) -> String {
        self.lines(indent, false)
    }

    fn lines(&self, indent: &str, headers: bool) -> String {
        let columns = self.headers.len();
        let header = headers.then_some(&self.headers);
        let mut widths = vec![0; columns];
        for line in header.into_iter().chain(&self.rows) {
            for (i, cell) in line.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for line in header.into_iter().chain(&self.rows) {
            let mut text = String::from(indent);
            for (i, cell) in line.iter().enumerate().take(columns) {
                text.push_str(cell);
                if i + 1 < columns {
                    let width = (widths[i] + 3).max(self.min_width);
                    text.extend(std::iter::repeat_n(' ', width - cell.chars().count()));
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }
}

/// kubectl's AGE column (apimachinery's `HumanDuration`): seconds up to two minutes, then
/// coarser units, at most two of them.
pub fn age(now: Timestamp, then: Timestamp) -> String {
    let seconds = now.as_second() - then.as_second();
    if seconds < -1 {
        return "<invalid>".into();
    }
    let s = seconds.max(0);
    if s < 120 {
        return format!("{s}s");
    }
    let minutes = s / 60;
    if minutes < 10 {
        return match s % 60 {
            0 => format!("{minutes}m"),
            r => format!("{minutes}m{r}s"),
        };
    }
    if minutes < 3 * 60 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        return match minutes % 60 {
            0 => format!("{hours}h"),
            m => format!("{hours}h{m}m"),
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        return match hours % 24 {
            0 => format!("{days}d"),
            h => format!("{days}d{h}h"),
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    let years = days / 365;
    if hours < 24 * 365 * 8 {
        return match days % 365 {
            0 => format!("{years}y"),
            d => format!("{years}y{d}d"),
        };
    }
    format!("{years}y")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    #[test]
    fn ages_read_like_kubectl() {
        let cases = [
            (0, "0s"),
            (-1, "0s"),
            (-5, "<invalid>"),
            (119, "119s"),
            (120, "2m"),
            (125, "2m5s"),
            (600, "10m"),
            (179 * 60, "179m"),
            (3 * 3600 + 5 * 60, "3h5m"),
            (8 * 3600 + 59, "8h"),
            (47 * 3600, "47h"),
            (50 * 3600, "2d2h"),
            (9 * 86400, "9d"),
            (3 * 365 * 86400 + 4 * 86400, "3y4d"),
            (9 * 365 * 86400, "9y"),
        ];
        for (seconds, want) in cases {
            assert_eq!(age(at(seconds), at(0)), want, "{seconds}s");
        }
    }

    #[test]
    fn columns_align_with_three_spaces_and_a_minimum_of_ten() {
        let mut t = Table::new(["NAME", "PHASE", "AGE"]);
        t.row(["chat", "Progressing", "5s"]);
        t.row(["a-much-longer-name", "Stable", "2m"]);
        assert_eq!(
            t.render(""),
            "NAME                 PHASE         AGE\n\
             chat                 Progressing   5s\n\
             a-much-longer-name   Stable        2m\n"
        );
        let mut c = Table::new(["check", "value"]).compact();
        c.row(["p95", "0.2"]);
        assert_eq!(c.render("  "), "  check   value\n  p95     0.2\n");
    }
}
