//! Prometheus' text exposition format (version 0.0.4): `# HELP` and
//! `# TYPE` lines per family, then one line per sample, label values
//! escaped (`\\`, `\"`, `\n`), help text escaped (`\\`, `\n`), labels in
//! name order and values as vmware_exporter's client library writes them
//! (Python's `repr` of a float: `1.0`, `2.5e+16`, `NaN`, `+Inf`).

use std::fmt::Write as _;

/// The content type of the format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    /// A value that goes up and down.
    Gauge,
    /// A count that only goes up (its name ends in `_total`).
    Counter,
}

impl Type {
    fn name(self) -> &'static str {
        match self {
            Type::Gauge => "gauge",
            Type::Counter => "counter",
        }
    }
}

/// One family being written: its header, then samples appended one by
/// one ([`Family::sample`]), the label values in the order of the names
/// given at [`Family::new`].
#[derive(Debug)]
pub struct Family {
    name: String,
    /// Label names, as given.
    labels: Vec<String>,
    /// The positions of `labels` in name order.
    order: Vec<usize>,
    out: String,
    samples: usize,
}

impl Family {
    /// A family with its `# HELP` and `# TYPE` lines written.
    pub fn new(name: &str, help: &str, kind: Type, labels: &[&str]) -> Family {
        let mut out = String::with_capacity(256);
        out.push_str("# HELP ");
        out.push_str(name);
        out.push(' ');
        for c in help.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push_str("\n# TYPE ");
        out.push_str(name);
        out.push(' ');
        out.push_str(kind.name());
        out.push('\n');
        let mut order: Vec<usize> = (0..labels.len()).collect();
        order.sort_by_key(|index| labels[*index]);
        Family {
            name: name.to_owned(),
            labels: labels.iter().map(|label| (*label).to_owned()).collect(),
            order,
            out,
            samples: 0,
        }
    }

    /// The family's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many samples were written.
    pub fn samples(&self) -> usize {
        self.samples
    }

    /// Appends one sample. `values` are the label values in the order of
    /// the names; missing ones leave their labels out (as the Python client
    /// does when given fewer values than names).
    pub fn sample(&mut self, values: &[&str], value: f64) {
        self.samples += 1;
        self.out.push_str(&self.name);
        let mut first = true;
        for index in &self.order {
            let Some(text) = values.get(*index) else {
                continue;
            };
            self.out.push(if first { '{' } else { ',' });
            first = false;
            self.out.push_str(&self.labels[*index]);
            self.out.push_str("=\"");
            escape_label(&mut self.out, text);
            self.out.push('"');
        }
        if !first {
            self.out.push('}');
        }
        self.out.push(' ');
        write_value(&mut self.out, value);
        self.out.push('\n');
    }

    /// The family's text.
    pub fn text(&self) -> &str {
        &self.out
    }

    /// Appends the family's text to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.out.as_bytes());
    }
}

fn escape_label(out: &mut String, text: &str) {
    if !text.contains(['\\', '"', '\n']) {
        out.push_str(text);
        return;
    }
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Writes `value` as Python's `repr(float)` does: the shortest digits that
/// read back to the same float, positional between 1e-4 and 1e16 (always
/// with a fraction part), scientific with a signed two-digit exponent
/// otherwise.
pub fn write_value(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
        return;
    }
    if value.is_infinite() {
        out.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
        return;
    }
    if value == 0.0 {
        out.push_str(if value.is_sign_negative() {
            "-0.0"
        } else {
            "0.0"
        });
        return;
    }
    // `{:e}` gives the shortest round-trip digits: `-1.2345e3`.
    let scientific = format!("{value:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    out.push_str(sign);
    if (-4..16).contains(&exponent) {
        let point = exponent + 1;
        if point <= 0 {
            out.push_str("0.");
            for _ in 0..-point {
                out.push('0');
            }
            out.push_str(&digits);
        } else {
            let point = point as usize;
            if digits.len() <= point {
                out.push_str(&digits);
                for _ in digits.len()..point {
                    out.push('0');
                }
                out.push_str(".0");
            } else {
                out.push_str(&digits[..point]);
                out.push('.');
                out.push_str(&digits[point..]);
            }
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(
            out,
            "e{}{:02}",
            if exponent < 0 { '-' } else { '+' },
            exponent.abs()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(v: f64) -> String {
        let mut out = String::new();
        write_value(&mut out, v);
        out
    }

    #[test]
    fn values_are_written_as_python_repr_writes_them() {
        for (v, text) in [
            (1.0, "1.0"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (-2.5, "-2.5"),
            (1234.5678, "1234.5678"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (0.000012345, "1.2345e-05"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (12345678901234567890.0, "1.2345678901234567e+19"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (0.1 + 0.2, "0.30000000000000004"),
            (4_294_967_296.0, "4294967296.0"),
            (1_614_556_800.123456, "1614556800.123456"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
        ] {
            assert_eq!(value(v), text, "{v:e}");
        }
    }

    #[test]
    fn families_follow_the_text_format() {
        let mut family = Family::new(
            "vmware_vm_guest_disk_free",
            "Disk metric\\per \"partition\"\nsecond line",
            Type::Gauge,
            &["vm_name", "partition", "dc_name"],
        );
        family.sample(&["vm \"one\"", "C:\\", "dc\n0"], 1.5);
        family.sample(&["vm2"], 2.0);
        let mut empty = Family::new("vpoller_exporter_up", "Up", Type::Counter, &[]);
        empty.sample(&[], 1.0);
        assert_eq!(
            family.text(),
            "# HELP vmware_vm_guest_disk_free Disk metric\\\\per \"partition\"\\nsecond line\n\
             # TYPE vmware_vm_guest_disk_free gauge\n\
             vmware_vm_guest_disk_free{dc_name=\"dc\\n0\",partition=\"C:\\\\\",vm_name=\"vm \\\"one\\\"\"} 1.5\n\
             vmware_vm_guest_disk_free{vm_name=\"vm2\"} 2.0\n"
        );
        assert_eq!(
            empty.text(),
            "# HELP vpoller_exporter_up Up\n# TYPE vpoller_exporter_up counter\nvpoller_exporter_up 1.0\n"
        );
        assert_eq!(family.samples(), 2);
    }
}
