//! Values of declarations checked once, when read, and kept as they are written (rendered
//! and signed into states as that text): a share, a CPU quantity, a size.

use serde::{Deserialize, Serialize};

/// A share above 0 and at most 1, e.g. the 5xx share `0.05`, as its shortest decimal text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Ratio(String);

impl Ratio {
    /// `value` when above 0 and at most 1.
    pub fn new(value: f64) -> Option<Ratio> {
        (value > 0.0 && value <= 1.0).then(|| Ratio(value.to_string()))
    }

    pub fn value(&self) -> f64 {
        self.0.parse().unwrap_or_else(|_| unreachable!("a ratio is made from a number"))
    }
}

/// A CPU quantity as Kubernetes writes it: thousandths of a CPU (`250m`) or whole CPUs
/// (`2`), more than none.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cpu(String);

impl Cpu {
    /// `n` thousandths of a CPU, as `<n>m`.
    pub fn from_millis(n: u64) -> Cpu {
        Cpu(format!("{}m", n.max(1)))
    }

    /// `n` whole CPUs.
    pub fn whole(n: u64) -> Cpu {
        Cpu(n.max(1).to_string())
    }

    pub fn parse(text: &str) -> Option<Cpu> {
        whole(text.strip_suffix('m').unwrap_or(text)).map(|_| Cpu(text.to_owned()))
    }

    /// In thousandths of a CPU: `250m` is 250, `2` is 2000.
    pub fn millis(&self) -> u64 {
        match self.0.strip_suffix('m') {
            Some(millis) => whole(millis).unwrap_or(0),
            None => whole(&self.0).unwrap_or(0).saturating_mul(1000),
        }
    }
}

/// Binary units of a size, as Kubernetes spells them.
const UNITS: [(&str, i64); 4] =
    [("Ki", 1 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30), ("Ti", 1 << 40)];

/// A size as Kubernetes writes it: bytes, or a number of `Ki`, `Mi`, `Gi` or `Ti`; more than
/// none.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Size(String);

impl Size {
    /// `n` MiB, as `<n>Mi`.
    pub fn mebibytes(n: u64) -> Size {
        Size(format!("{}Mi", n.max(1)))
    }

    /// `n` GiB, as `<n>Gi`.
    pub fn gibibytes(n: u64) -> Size {
        Size(format!("{}Gi", n.max(1)))
    }

    /// `text` when it is a size in one of `units` (of `Ki`, `Mi`, `Gi`, `Ti`) or in bytes.
    pub fn parse_in(text: &str, units: &[&str]) -> Option<Size> {
        let number = units.iter().find_map(|unit| text.strip_suffix(unit)).unwrap_or(text);
        whole(number).map(|_| Size(text.to_owned()))
    }

    pub fn bytes(&self) -> i64 {
        let (number, unit) = UNITS
            .iter()
            .find_map(|(suffix, unit)| self.0.strip_suffix(suffix).map(|n| (n, *unit)))
            .unwrap_or((self.0.as_str(), 1));
        number.parse::<i64>().unwrap_or(0).saturating_mul(unit)
    }
}

/// `text` as a whole number above 0, written in digits only.
fn whole(text: &str) -> Option<u64> {
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| text.parse().ok()).flatten().filter(|n| *n > 0)
}

macro_rules! as_text {
    ($($unit:ident: $parse:expr, $what:literal;)*) => {$(
        impl std::fmt::Display for $unit {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $unit {
            type Error = String;

            fn try_from(text: String) -> Result<$unit, String> {
                let parse: fn(&str) -> Option<$unit> = $parse;
                parse(&text).ok_or_else(|| format!("`{text}` is not {}", $what))
            }
        }

        impl From<$unit> for String {
            fn from(value: $unit) -> String {
                value.0
            }
        }
    )*};
}

as_text! {
    Ratio: |text| text.parse().ok().and_then(Ratio::new), "a share above 0 and at most 1";
    Cpu: Cpu::parse, "a CPU quantity like 250m or 2";
    Size: |text| Size::parse_in(text, &["Ki", "Mi", "Gi", "Ti"]), "a size like 128Mi or 1Gi";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_read_as_kubernetes_writes_them() {
        assert_eq!(Cpu::parse("250m").map(|c| c.millis()), Some(250));
        assert_eq!(Cpu::parse("2").map(|c| c.millis()), Some(2000));
        assert_eq!(Size::parse_in("64Mi", &["Mi"]).map(|s| s.bytes()), Some(64 << 20));
        assert_eq!(Size::parse_in("1Gi", &["Ki", "Mi", "Gi"]).map(|s| s.bytes()), Some(1 << 30));
        for refused in ["", "0", "0m", "1.5", "-1", "m", "2x"] {
            assert_eq!(Cpu::parse(refused), None, "{refused}");
        }
        assert_eq!(Size::parse_in("1Ki", &["Mi", "Gi"]), None);
        assert_eq!(
            (Cpu::from_millis(250), Cpu::whole(2)),
            (Cpu::parse("250m").unwrap(), Cpu::parse("2").unwrap())
        );
        assert_eq!(Size::gibibytes(1).bytes(), 1 << 30);
        assert_eq!(Ratio::new(0.0), None);
        assert_eq!(Ratio::new(0.05).map(|r| r.to_string()), Some("0.05".to_owned()));
    }

    #[test]
    fn a_stored_value_reads_back_only_when_valid() {
        let cpu: Cpu = serde_json::from_str("\"250m\"").unwrap();
        assert_eq!(serde_json::to_string(&cpu).unwrap(), "\"250m\"");
        let wrong = serde_json::from_str::<Size>("\"lots\"").unwrap_err();
        assert!(wrong.to_string().contains("`lots` is not a size"), "{wrong}");
    }
}
